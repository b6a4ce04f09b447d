"""Errors shared by the benchmark data readers."""

from __future__ import annotations


class BenchmarkDataError(RuntimeError):
    """A benchmark data file is missing, unreadable or does not have the expected contents."""

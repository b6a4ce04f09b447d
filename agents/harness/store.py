"""A results store: one file per finished job, written the moment it finishes (see docs/harness.md).

A :class:`RunStore` is a directory holding ``manifest.json`` (the settings that identify the run:
what was asked for, not how it was executed) and one ``<job id>.run.json`` per finished job, each
written atomically (:func:`dgpo_env.io.atomic_write_text`), so a run that is interrupted, killed or
crashes keeps every job that finished, and a later run with the same settings resumes from them.

:func:`prepare_outputs` is the policy shared by ``dgpo compare`` and the benchmark scripts: existing
outputs are never replaced silently; ``resume`` continues them (refused if the settings differ,
naming the setting) and ``force`` deletes them first.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dgpo_env.io import atomic_write_text, dumps_json, fsync_directory

MANIFEST = "manifest.json"
"""File name of a store's manifest."""

RECORD_SUFFIX = ".run.json"
"""Suffix of a store's per-job files."""


class OutputsExistError(ValueError):
    """Outputs of an earlier run exist and neither resume nor force was given."""


class SettingsMismatchError(ValueError):
    """A run cannot resume from outputs made with different settings."""


def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON would give them back (tuples become lists, keys strings)."""
    return dict(json.loads(json.dumps(dict(settings), default=str)))


def check_settings(found: Mapping[str, Any], expected: Mapping[str, Any], source: str | Path) -> None:
    """Refuse to resume from ``source`` unless its settings equal ``expected``.

    Args:
        found: The settings recorded in ``source``.
        expected: The settings of this run.
        source: The store or file they were read from (for the message).

    Raises:
        SettingsMismatchError: Naming every setting that differs, with both values.
    """
    found, expected = normalise(found), normalise(expected)
    differ = [key for key in dict.fromkeys([*expected, *found]) if found.get(key) != expected.get(key)]
    if differ:
        detail = "; ".join(f"{key} {found.get(key)!r} there, {expected.get(key)!r} now" for key in differ)
        raise SettingsMismatchError(
            f"cannot resume from {source}: it was made with different settings ({detail}); "
            "pass --force to start over, or change the settings back"
        )


class RunStore:
    """Per-job results in a directory (see the module docstring).

    Args:
        directory: The store's directory (created by :meth:`create`).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"RunStore({str(self.directory)!r})"

    def exists(self) -> bool:
        """Whether the directory exists (with or without a manifest)."""
        return self.directory.exists()

    def settings(self) -> dict[str, Any] | None:
        """The settings in the manifest, or ``None`` when there is none."""
        path = self.directory / MANIFEST
        if not path.is_file():
            return None
        return dict(json.loads(path.read_text())["settings"])

    def create(self, settings: Mapping[str, Any]) -> None:
        """Create the directory (if needed) and write the manifest.

        Args:
            settings: JSON-ready settings that identify the run.

        Raises:
            OSError: If the directory cannot be written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = {
            "settings": normalise(settings),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(self.directory / MANIFEST, dumps_json(manifest) + "\n")

    def path(self, job_id: str) -> Path:
        """File of job ``job_id`` (the id percent-encoded into a safe file name)."""
        return self.directory / (quote(job_id, safe="-_.+=@") + RECORD_SUFFIX)

    def put(self, job_id: str, record: Mapping[str, Any]) -> Path:
        """Store one finished job, atomically and durably.

        Args:
            job_id: The job's id.
            record: Its JSON-ready result.

        Returns:
            The file written.

        Raises:
            OSError: If it cannot be written.
        """
        return atomic_write_text(self.path(job_id), dumps_json({"job_id": job_id, "record": dict(record)}) + "\n")

    def load(self) -> dict[str, dict[str, Any]]:
        """Every stored job: ``{job_id: record}`` (an unreadable file is skipped with a warning)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*" + RECORD_SUFFIX)):
            try:
                data = json.loads(path.read_text())
                out[str(data["job_id"])] = dict(data["record"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                warnings.warn(f"ignoring unreadable result file {path}: {err}", stacklevel=2)
        return out

    def remove(self) -> None:
        """Delete the manifest, the job files and stray temporary files, then the directory if empty."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name == MANIFEST or path.name.endswith(RECORD_SUFFIX) or path.name.endswith(".tmp"):
                path.unlink()
        fsync_directory(self.directory)
        try:
            self.directory.rmdir()
        except OSError:
            pass


def prepare_outputs(
    outputs: Iterable[Path], store: RunStore, settings: Mapping[str, Any], *, resume: bool, force: bool
) -> None:
    """Apply the no-silent-overwrite policy before any work starts, then make sure the store exists.

    Args:
        outputs: Final output files of the run (JSON, plot).
        store: The run's store.
        settings: The settings that identify the run (written to a new manifest, checked against an
            existing one when resuming).
        resume: Continue from existing outputs.
        force: Delete existing outputs and the store first.

    Raises:
        ValueError: If both ``resume`` and ``force`` are given.
        OutputsExistError: If outputs or the store exist and neither flag is given.
        SettingsMismatchError: If resuming from a store with different settings.
        OSError: If files cannot be deleted or the store cannot be created.
    """
    if resume and force:
        raise ValueError("pass either --resume (continue) or --force (start over), not both")
    outputs = list(outputs)
    existing = [str(p) for p in outputs if p.exists()] + ([str(store.directory)] if store.exists() else [])
    if existing and not (resume or force):
        raise OutputsExistError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} (from an earlier run); "
            "pass --resume to continue it or --force to start over"
        )
    if force:
        for path in outputs:
            path.unlink(missing_ok=True)
        store.remove()
    found = store.settings() if resume else None
    if found is not None:
        check_settings(found, settings, store.directory)
    else:
        store.create(settings)


__all__ = [
    "MANIFEST",
    "RECORD_SUFFIX",
    "OutputsExistError",
    "RunStore",
    "SettingsMismatchError",
    "check_settings",
    "normalise",
    "prepare_outputs",
]

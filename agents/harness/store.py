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
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping
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


class DamagedOutputError(ValueError):
    """A store file or an output of an earlier run cannot be read back (wrong shape, garbage, a directory)."""

    def __init__(self, path: str | Path, what: str) -> None:
        what = " ".join(str(what).split())  # one line
        super().__init__(f"{path} is damaged: {what}; pass --force to start over or remove the file")
        self.path = Path(path)


def read_json_object(path: Path, what: str) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` if there is no file.

    Args:
        path: The file.
        what: What the file should be, for the message (``"a comparison JSON"``, ``"a manifest"``).

    Raises:
        DamagedOutputError: If ``path`` is not a regular file, not JSON, or not a JSON object.
    """
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise DamagedOutputError(path, "it is not a regular file")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DamagedOutputError(path, f"cannot be read as JSON ({err})") from err
    if not isinstance(data, dict):
        raise DamagedOutputError(path, f"not {what} (a {type(data).__name__}, not an object)")
    return data


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
        """The settings in the manifest, or ``None`` when there is none.

        Raises:
            DamagedOutputError: If the manifest is not a file, not JSON, or not ``{"settings": {...}}``.
        """
        path = self.directory / MANIFEST
        data = read_json_object(path, "a manifest")
        if data is None:
            return None
        if not isinstance(data.get("settings"), dict):
            raise DamagedOutputError(path, 'not a manifest (expected {"settings": {...}, ...})')
        return dict(data["settings"])

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

    def load(self, *, strict: bool = False) -> dict[str, dict[str, Any]]:
        """Every stored job: ``{job_id: record}``.

        Args:
            strict: Raise :class:`DamagedOutputError` for an unreadable file (not JSON, not
                ``{"job_id": str, "record": {...}}``, or stored under another job's file name) instead of
                skipping it with a warning.
        """
        out: dict[str, dict[str, Any]] = {}
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*" + RECORD_SUFFIX)):
            try:
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as err:
                    raise DamagedOutputError(path, f"cannot be read as JSON ({err})") from err
                if not isinstance(data, dict) or not isinstance(data.get("job_id"), str):
                    raise DamagedOutputError(path, 'not a job file (expected {"job_id": ..., "record": {...}})')
                if not isinstance(data.get("record"), dict):
                    raise DamagedOutputError(path, "its record is not a JSON object")
                if self.path(data["job_id"]) != path:
                    raise DamagedOutputError(path, f"it holds job {data['job_id']!r}, not the job of its file name")
            except DamagedOutputError as err:
                if strict:
                    raise
                warnings.warn(f"ignoring unreadable result file {path}: {err}", stacklevel=2)
                continue
            out[data["job_id"]] = dict(data["record"])
        return out

    def remove(self) -> None:
        """Delete the manifest, the job files and stray temporary files, then the directory if empty."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name == MANIFEST or path.name.endswith(RECORD_SUFFIX) or path.name.endswith(".tmp"):
                if path.is_dir() and not path.is_symlink():  # a damaged store: a directory in a file's place
                    shutil.rmtree(path)
                else:
                    path.unlink()
        fsync_directory(self.directory)
        try:
            self.directory.rmdir()
        except OSError:
            pass


def prepare_outputs(
    outputs: Iterable[Path],
    store: RunStore,
    settings: Mapping[str, Any],
    *,
    resume: bool,
    force: bool,
    check: Callable[[], None] | None = None,
) -> None:
    """Apply the no-silent-overwrite policy before any work starts, then make sure the store exists.

    Every check (including ``check``) happens before anything is deleted or created, so a refused
    run leaves the outputs as they were.

    Args:
        outputs: Final output files of the run (JSON, plot).
        store: The run's store.
        settings: The settings that identify the run (written to a new manifest, checked against an
            existing one when resuming).
        resume: Continue from existing outputs.
        force: Delete existing outputs and the store first.
        check: Called (when resuming) after the store's settings are checked and before the store is
            created; raises to refuse, e.g. because an existing output has other settings.

    Raises:
        ValueError: If both ``resume`` and ``force`` are given.
        OutputsExistError: If outputs or the store exist and neither flag is given.
        SettingsMismatchError: If resuming from a store with different settings.
        DamagedOutputError: If resuming from a store whose manifest cannot be read.
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
    found = store.settings() if resume else None
    if found is not None:
        check_settings(found, settings, store.directory)
    if resume and check is not None:
        check()
    if force:
        for path in outputs:
            path.unlink(missing_ok=True)
        store.remove()
    if found is None:
        store.create(settings)


__all__ = [
    "MANIFEST",
    "RECORD_SUFFIX",
    "DamagedOutputError",
    "OutputsExistError",
    "RunStore",
    "SettingsMismatchError",
    "check_settings",
    "normalise",
    "prepare_outputs",
]

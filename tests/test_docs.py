"""The documentation: the MkDocs site builds without warnings, and no citation points outside the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED_DIRS = ("dgpo_env", "agents", "tests", "benchmarks", "examples", "docs")
CHECKED_FILES = ("README.md", "pyproject.toml", "mkdocs.yml")
SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".json"}

# Built from parts so that this file does not match itself.
EXTERNAL_REFERENCE = "DESIGN" + ".md"
TRACKER_NUMBER = re.compile(r"\bissues?[\s#_-]*\d+", re.IGNORECASE)


def _checked_files() -> list[Path]:
    files = [ROOT / name for name in CHECKED_FILES if (ROOT / name).is_file()]
    for directory in CHECKED_DIRS:
        files += [p for p in sorted((ROOT / directory).rglob("*")) if p.is_file() and p.suffix in SUFFIXES]
    return files


def test_no_citation_of_an_external_design_document() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _checked_files()
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if EXTERNAL_REFERENCE in line
    ]
    assert not hits, f"cite the pages under docs/ instead: {hits}"


def test_no_tracker_numbers_in_code_tests_benchmarks_examples() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _checked_files()
        if path.suffix == ".py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if TRACKER_NUMBER.search(line)
    ]
    assert not hits, f"say what the target or rule is instead of an issue number: {hits}"


def test_cited_docs_pages_exist() -> None:
    cited = set()
    for path in _checked_files():
        cited |= set(re.findall(r"docs/([a-z0-9_-]+\.md)", path.read_text(encoding="utf-8", errors="replace")))
    missing = sorted(name for name in cited if not (ROOT / "docs" / name).is_file())
    assert not missing, f"code or docs cite pages that do not exist: {missing}"


def test_mkdocs_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    pytest.importorskip("material")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    assert (site / "api" / "envs" / "index.html").is_file()
    shutil.rmtree(site, ignore_errors=True)

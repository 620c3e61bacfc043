"""ccusage as a test oracle: install it once, lay the corpus out as Claude trees, run it.

ccusage 20.0.24 is the Rust build published on npm with a native binary per platform
(20.0.26's native packages were never published, hence the pin). It is installed with
`npm install --prefix` into `.cache/ccusage/<version>` at the repository root (ignored by
git) the first time a test asks for it, and reused afterwards. Every run is sandboxed:
`CLAUDE_CONFIG_DIR` and `HOME` point into a fresh temporary directory, so neither the
user's transcripts nor their ccusage configuration can leak in, and `--offline` makes
ccusage use the prices embedded in its binary.

A test helper module, not a test file. Tests call `ccusage_available()` and skip with the
reason it returns.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CCUSAGE_VERSION",
    "CORPUS_DIR",
    "REPO_ROOT",
    "OracleUnavailable",
    "ccusage_available",
    "corpus_available",
    "install_ccusage",
    "lay_out_corpus_trees",
    "run_ccusage",
]

CCUSAGE_VERSION = "20.0.24"
REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "ccusage"
BINARY_ENV = "EVENTSTORE_CCUSAGE_BIN"  # use this ccusage binary instead of installing one
INSTALL_TIMEOUT_S = 180
RUN_TIMEOUT_S = 120

# A session directory's own sub-trees (Claude Code 2.1.x layout).
_SESSION_SUBDIRS = frozenset({"subagents", "workflows", "tool-results"})
# Directory names under which a corpus source already keeps a Claude `projects/` layout.
_PROJECTS_ANCHORS = ("projects", "real_projects")

_install_result: dict[Path, Path | str] = {}


class OracleUnavailable(Exception):
    """ccusage cannot be installed or run here; the message says why."""


def corpus_available() -> str | None:
    """None when the shared corpus is present, else the reason tests using it must skip."""
    if (CORPUS_DIR / "MANIFEST.tsv").is_file():
        return None
    return f"transcript corpus not found at {CORPUS_DIR} (../shared/corpus from the repo root)"


def corpus_repos() -> list[str]:
    """The corpus's repositories as the test trees name them (owner__name); one placeholder when
    the corpus is absent, so a parametrized test still runs and skips with the reason."""
    if corpus_available() is not None:
        return ["<corpus missing>"]
    with (CORPUS_DIR / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        next(handle)
        return sorted({row.split("\t")[1].replace("/", "__") for row in handle if "\t" in row})


def ccusage_available(cache_dir: Path | None = None) -> str | None:
    """None when ccusage can run (installing it on first use), else the reason to skip."""
    try:
        install_ccusage(cache_dir)
    except OracleUnavailable as exc:
        return str(exc)
    return None


def install_ccusage(cache_dir: Path | None = None) -> Path:
    """The ccusage binary, installed with npm into `cache_dir` once; raises OracleUnavailable."""
    override = os.environ.get(BINARY_ENV)
    if override:
        binary = Path(override)
        if not binary.is_file():
            raise OracleUnavailable(f"${BINARY_ENV} is {override!r}, which is not a file")
        return binary
    cache = (cache_dir or DEFAULT_CACHE_DIR).resolve()
    known = _install_result.get(cache)
    if isinstance(known, Path):
        return known
    if isinstance(known, str):
        raise OracleUnavailable(known)
    try:
        binary = _install(cache)
    except OracleUnavailable as exc:
        _install_result[cache] = str(exc)
        raise
    _install_result[cache] = binary
    return binary


def run_ccusage(
    projects_dir: Path,
    command: str = "daily",
    timezone: str = "UTC",
    *,
    extra_args: tuple[str, ...] = (),
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """`ccusage claude COMMAND --json --offline --timezone TZ` over one `projects/` tree.

    Rows keep ccusage's keys and gain `period` (a copy of `date`, `week`, `month` or
    `sessionId`) so they line up with our own `--json` shape.
    """
    binary = install_ccusage(cache_dir)
    projects_dir = Path(projects_dir).resolve()
    if not projects_dir.is_dir():
        raise FileNotFoundError(f"no such projects tree: {projects_dir}")
    with tempfile.TemporaryDirectory(prefix="ccusage-oracle-") as tmp:
        root = Path(tmp)
        (root / "projects").symlink_to(projects_dir, target_is_directory=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "CLAUDE_CONFIG_DIR": str(root),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "NO_COLOR": "1",
            "TZ": "UTC",
        }
        args = [
            str(binary),
            "claude",
            command,
            "--json",
            "--offline",
            "--timezone",
            timezone,
            *extra_args,
        ]
        proc = subprocess.run(
            args, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    if proc.returncode != 0:
        raise RuntimeError(f"ccusage exited {proc.returncode}: {proc.stderr.strip()[:2000]}")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"ccusage printed non-JSON output: {proc.stdout[:500]!r}") from exc
    for rows in report.values():
        if isinstance(rows, list):
            for row in rows:
                if isinstance(row, dict) and "period" not in row:
                    for key in ("date", "week", "month", "sessionId"):
                        if key in row:
                            row["period"] = row[key]
                            break
    return report


def lay_out_corpus_trees(corpus: Path, dest: Path) -> list[Path]:
    """Copy the corpus into one Claude Code `projects/` tree per source repository.

    Returns the `projects` directories. Files a source already keeps under a `projects/`
    (or `real_projects/`) directory keep their path below it; a session directory with
    `subagents/` (2.1.x layout) stays next to its `<session>.jsonl`; any other file goes
    into a project directory named, like Claude Code names them, after its directory.
    """
    corpus = Path(corpus)
    groups: dict[str, list[tuple[Path, Path]]] = {}
    for source, repo, repo_path in _corpus_files(corpus):
        groups.setdefault(_slug(repo), []).append((source, repo_path))
    trees = []
    for slug, files in sorted(groups.items()):
        projects = Path(dest) / slug / "projects"
        placed: dict[Path, Path] = {}
        for source, repo_path in sorted(files):
            target = projects.joinpath(*_claude_layout(repo_path))
            if target in placed:
                raise ValueError(f"{source} and {placed[target]} both map to {target}")
            placed[target] = source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        trees.append(projects)
    return trees


# --- installation -------------------------------------------------------------------


def _native_package() -> str | None:
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if system is None or machine is None:
        return None
    return f"@ccusage/ccusage-{system}-{machine}"


def _binary_in(prefix: Path) -> Path | None:
    package = _native_package()
    if package is None:
        return None
    binary = prefix / "node_modules" / package / "bin" / "ccusage"
    if not binary.is_file():
        return None
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def _install(cache: Path) -> Path:
    if _native_package() is None:
        raise OracleUnavailable(
            f"ccusage {CCUSAGE_VERSION} has no native build for {sys.platform}/{platform.machine()}"
        )
    prefix = cache / CCUSAGE_VERSION
    binary = _binary_in(prefix)
    if binary is not None:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise OracleUnavailable("npm is not on PATH, so ccusage cannot be installed")
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".install.lock"):
        binary = _binary_in(prefix)  # another process may have finished meanwhile
        if binary is not None:
            return binary
        staging = Path(tempfile.mkdtemp(prefix=f"{CCUSAGE_VERSION}-", dir=cache))
        try:
            proc = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(staging),
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    f"ccusage@{CCUSAGE_VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise OracleUnavailable(f"npm install ccusage@{CCUSAGE_VERSION} failed: {exc}") from exc
        if proc.returncode != 0 or _binary_in(staging) is None:
            shutil.rmtree(staging, ignore_errors=True)
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise OracleUnavailable(
                f"npm install ccusage@{CCUSAGE_VERSION} failed (exit {proc.returncode}): "
                + " | ".join(detail)
            )
        shutil.rmtree(prefix, ignore_errors=True)
        staging.rename(prefix)
    binary = _binary_in(prefix)
    assert binary is not None
    return binary


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- corpus layout ------------------------------------------------------------------


def _corpus_files(corpus: Path) -> Iterator[tuple[Path, str, Path]]:
    """(file in the corpus, source repository, path inside that repository)."""
    manifest = corpus / "MANIFEST.tsv"
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                source = corpus / row["file"]
                if source.is_file():
                    yield source, row["repo"], Path(row["path"])
        return
    for source in sorted(corpus.rglob("*")):
        if source.is_file() and source.name != "MANIFEST.tsv":
            relative = source.relative_to(corpus)
            yield source, relative.parts[0], Path(*relative.parts[1:])


def _slug(repo: str) -> str:
    return repo.replace("/", "__")


def _encode_dir(parts: tuple[str, ...]) -> str:
    # Claude Code's own encoding of a cwd into a project directory name.
    return re.sub(r"[^a-zA-Z0-9]", "-", "/".join(parts)) or "root"


def _claude_layout(repo_path: Path) -> tuple[str, ...]:
    parts = repo_path.parts
    for anchor in _PROJECTS_ANCHORS:
        if anchor in parts[:-2]:
            below = len(parts) - 1 - parts[::-1].index(anchor)
            return parts[below + 1 :]
    for i in range(len(parts) - 1):
        if parts[i + 1] in _SESSION_SUBDIRS:
            return (_encode_dir(parts[:i]), *parts[i:])
    return (_encode_dir(parts[:-1]), parts[-1])


DAY_TOKEN_KEYS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")


def assert_days_match(ours: dict[str, dict], theirs: dict[str, dict]) -> float:
    """Assert per-day token equality of two {period: row} maps (ours against ccusage's);
    return the largest relative cost difference."""
    theirs = dict(theirs)
    # ccusage counts <synthetic> and API-error lines, which we skip; Claude Code writes them
    # with zero usage, so all they can add is a day of zeros.
    for period in set(theirs) - set(ours):
        if all(theirs[period][k] == 0 for k in DAY_TOKEN_KEYS) and theirs[period]["totalCost"] == 0:
            del theirs[period]
    assert sorted(ours) == sorted(theirs), "days differ"
    worst = 0.0
    for period, row in theirs.items():
        assert {k: ours[period][k] for k in DAY_TOKEN_KEYS} == {k: row[k] for k in DAY_TOKEN_KEYS}, period
        if row["totalCost"]:
            worst = max(worst, abs(ours[period]["totalCost"] - row["totalCost"]) / row["totalCost"])
        else:
            assert ours[period]["totalCost"] == 0, period
    return worst

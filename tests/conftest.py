"""Shared fixtures: a fresh store in a temporary directory, and the shared real-transcript corpus."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from eventstore import NewEvent, Store

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {CORPUS} (it sits beside the repo in the workplace)")
    return CORPUS


def new_event(stream: str = "s", data: bytes = b"{}", *, event_id: str | None = None, type: str = "test.happened",
              op: str = "create", entity: str = "thing", entity_id: str = "1") -> NewEvent:
    """A NewEvent with defaults for tests."""
    return NewEvent(event_id=event_id or uuid.uuid4().hex, stream=stream, type=type, entity=entity,
                    entity_id=entity_id, op=op, data=data)


def run_cli(*args: str, db: Path | None = None, input: bytes | None = None, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run the real `eventstore` command in a subprocess."""
    cmd = [sys.executable, "-m", "eventstore"]
    if db is not None:
        cmd += ["--db", str(db)]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(cmd + list(args), input=input, capture_output=True, env=full_env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"eventstore {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}")
    return result


def load_generator():
    """The synthetic transcript generator from benchmarks/ (not an installed package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_transcripts", REPO / "benchmarks" / "gen_transcripts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_transcripts", module)
    spec.loader.exec_module(module)
    return module

"""Where things are: the database path and the transcript roots, as CONTRACT.md defines them."""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    """`$EVENTSTORE_DB`, else `$XDG_DATA_HOME/eventstore/events.db` (~/.local/share/...).

    A relative `$XDG_DATA_HOME` is ignored, as the XDG base directory spec asks: it would put
    the database wherever the command happens to run."""
    if env := os.environ.get("EVENTSTORE_DB"):
        return Path(env).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or "").expanduser()
    if not data_home.is_absolute():
        data_home = Path.home() / ".local" / "share"
    return data_home / "eventstore" / "events.db"


def default_roots() -> list[Path]:
    """Each `$CLAUDE_CONFIG_DIR` entry + /projects, else ~/.config/claude/projects and ~/.claude/projects that exist."""
    if env := os.environ.get("CLAUDE_CONFIG_DIR"):
        roots = []
        for entry in env.split(","):
            if entry.strip():
                root = Path(entry.strip()).expanduser()
                roots.append(root / "projects")
        return [r for r in roots if r.is_dir()]
    candidates = [Path.home() / ".config" / "claude" / "projects", Path.home() / ".claude" / "projects"]
    return [r for r in candidates if r.is_dir()]

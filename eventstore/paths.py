"""Where things are: the database path and the transcript roots, as CONTRACT.md defines them."""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    """`$EVENTSTORE_DB`, else `$XDG_DATA_HOME/eventstore/events.db` (~/.local/share/...)."""
    if env := os.environ.get("EVENTSTORE_DB"):
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "eventstore" / "events.db"


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

"""The README documents every command, and its Quick start is the one CI runs."""

from __future__ import annotations

import re

from conftest import REPO
from eventstore.cli import COMMANDS


def test_every_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    first_cells = re.findall(r"^\| ([^|]*`[^|]*)\|", readme, re.M)
    documented = {word for cell in first_cells for word in re.findall(r"`([a-z]+)", cell)}
    assert set(COMMANDS) <= documented, f"missing from README: {sorted(set(COMMANDS) - documented)}"


def test_quick_start_matches_ci():
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()

#!/usr/bin/env bash
# `make run`: tail the user's Claude Code transcripts, or show the bundled sample when there are none.
set -euo pipefail
cd "$(dirname "$0")/.."
es=.venv/bin/eventstore
# The default roots that hold at least one transcript.
roots=$(.venv/bin/python -c 'from eventstore.paths import default_roots
print(" ".join(str(r) for r in default_roots() if next(r.rglob("*.jsonl"), None)))')
if [ -n "$roots" ]; then
    echo "Tailing your Claude Code transcripts in: $roots"
    echo "(database: $(.venv/bin/python -c 'from eventstore.paths import default_db_path; print(default_db_path())'); Ctrl-C to stop)"
    exec "$es" tail
fi
db=.cache/demo/events.db
echo "No Claude Code transcripts found (\$CLAUDE_CONFIG_DIR, ~/.config/claude/projects, ~/.claude/projects);"
echo "once you have some, 'make run' tails them into $(.venv/bin/python -c 'from eventstore.paths import default_db_path; print(default_db_path())')."
echo "Ingesting the bundled sample tree examples/projects into $db instead."
echo
"$es" --db "$db" ingest examples/projects
echo
"$es" --db "$db" sessions --limit 10
echo
"$es" --db "$db" usage daily 2>/dev/null || true
echo
echo "Try:"
echo "  $es --db $db search parser"
echo "  $es --db $db tasks"
echo "  $es --db $db events --limit 5"

"""The tasks read model: a person's own tasks and the ones Claude Code keeps, with their history.

Sources, folded in log order:

* `task.created` / `task.updated` (schemas.tasks): tasks a person records, or a person's
  changes to any task.
* TodoWrite tool uses: each call is the whole list of one session's (or subagent's) todos.
  It is diffed against the list as it stood: a new item becomes a task (`todowrite`), a
  changed status or priority an update, and an item dropped from the list while not
  completed becomes `deleted`. Only what the list changed is taken: a status or priority a
  person set stays until the list itself changes it. Ids are stable: derived from session,
  agent, content (and the item's rank among equal contents).
* TaskCreate / TaskUpdate tool uses, applied when their result arrives without an error.
  Their ids are per-list integers ("1", "2", ...), the list being the session's (subagents and
  teammates write to their session's list); ours are derived from session and that id.

A task's version counts its changes, whoever made them (1: as created), so `tasks set
--expect-version` notices a change Claude Code made since the task was read. Every change is
kept in `task_history`, so the list can be shown as it stood at any time (`tasks --as-of`).
Owns the tables in `TasksProjection.tables`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Collection, Sequence
from hashlib import blake2b
from operator import itemgetter
from typing import Any

import msgspec

from eventstore.feed import iso
from schemas import lean
from schemas import tasks as task_events
from schemas.envelope import RecordedEvent
from schemas.transcript import as_utf8
from schemas.transcript_events import session_of_stream

__all__ = ["TaskRow", "TasksProjection", "derived_id", "get_task", "list_tasks", "parse_status_filter"]

NAME = "tasks"
USER, TODOWRITE, TASKCREATE = "user", "todowrite", "taskcreate"
_ASSISTANT, _USER = "claude.assistant", "claude.user"
_TOOL_NAMES = frozenset(("TodoWrite", "TaskCreate", "TaskUpdate"))
_TOOL_MARKER = re.compile(rb'"(?:TodoWrite|TaskCreate|TaskUpdate)"')
_TOOL_USE_ID = re.compile(rb'"tool_use_id"\s*:\s*"([^"\\]+)"')
_TASK_TOOLS = ("TaskCreate", "TaskUpdate")
_CREATED_TEXT = re.compile(r"Task #(\w+) created")

DDL = """
CREATE TABLE {p}tasks (
    task_id          TEXT PRIMARY KEY,
    title            TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         TEXT,              -- high | medium | low; NULL: none
    session_id       TEXT,
    source           TEXT NOT NULL,     -- user | todowrite | taskcreate
    list_key         TEXT,              -- the Claude Code list it belongs to
    in_list          INTEGER NOT NULL DEFAULT 0,  -- in that list's latest TodoWrite snapshot
    listed_status    TEXT,              -- what that list last said of it (NULL: not from a list)
    listed_priority  TEXT,
    created_at       INTEGER NOT NULL,  -- ms since the epoch
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL   -- its changes so far, whoever made them (1: as created)
) WITHOUT ROWID;
CREATE INDEX {p}tasks_list ON {p}tasks (list_key) WHERE in_list = 1;

-- Every state a task has been in: one row per event that changed it.
CREATE TABLE {p}task_history (
    task_id  TEXT NOT NULL,
    position INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    title    TEXT NOT NULL,
    status   TEXT NOT NULL,
    priority TEXT,
    version  INTEGER NOT NULL,
    PRIMARY KEY (task_id, position)
) WITHOUT ROWID;

-- TaskCreate/TaskUpdate tool uses waiting for their result.
CREATE TABLE {p}task_pending (
    tool_use_id TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    tool        TEXT NOT NULL,
    input       BLOB NOT NULL       -- the tool input, JSON
) WITHOUT ROWID;
"""


# Lean decoders: only the fields read here.


class _Block(lean.Block, gc=False):
    """`lean.Block` with a call's input and a result's content and error flag."""

    input: Any = None
    content: Any = None
    is_error: Any = None


class _Message(lean.Message, gc=False):
    content: str | list[_Block] | None = None


class _Line(msgspec.Struct, gc=False):
    agentId: Any = None
    message: _Message | None = None
    toolUseResult: Any = None


_LINE = msgspec.json.Decoder(_Line)


def _line(data: bytes) -> _Line:
    try:
        return _LINE.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):  # incl. ValidationError
        obj = msgspec.json.decode(as_utf8(data))  # not JSON at all: let it raise, the runner records it
    if not isinstance(obj, dict):
        return _Line()
    message = obj.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    blocks = [
        _Block(**{k: b.get(k) for k in _Block.__struct_fields__}) for b in content if isinstance(b, dict)
    ] if isinstance(content, list) else None
    return _Line(agentId=obj.get("agentId"), message=_Message(content=blocks),
                 toolUseResult=obj.get("toolUseResult"))


def _calls_task_tool(data: bytes, calls: set[str]) -> bool:
    """Whether a response calls TodoWrite, TaskCreate or TaskUpdate, read from the shared decode (a
    line of odd types is scanned for the names instead); adds to `calls` the ids of its
    TaskCreate and TaskUpdate calls."""
    line = lean.assistant(data)
    if line is None:
        return _TOOL_MARKER.search(data) is not None
    content = line.message.content if line.message is not None else None
    if type(content) is not list:
        return False
    found = False
    for block in content:
        name = block.name
        if type(name) is str and name in _TOOL_NAMES and block.type == "tool_use":
            found = True
            if name in _TASK_TOOLS and type(block.id) is str:
                calls.add(block.id)
    return found


def _answered(data: bytes) -> tuple[str, ...]:
    """The tool calls a user line holds results of (read from the shared decode; a line of odd types
    is scanned for them instead)."""
    line = lean.user(data)
    if line is None:
        return tuple(found.decode() for found in _TOOL_USE_ID.findall(data))
    content = line.message.content if line.message is not None else None
    if type(content) is not list:
        return ()
    ids: tuple[str, ...] = ()
    for block in content:
        if block.type == "tool_result" and type(block.tool_use_id) is str:
            ids += (block.tool_use_id,)
    return ids


def derived_id(*parts: str) -> str:
    """A stable 12-hex-digit task id for a task Claude Code keeps."""
    return blake2b("\x1f".join(parts).encode(), digest_size=6).hexdigest()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _priority(value: object) -> str | None:
    return value if value in task_events.PRIORITIES else None


class _State(msgspec.Struct):
    title: str
    status: str
    priority: str | None
    version: int
    in_list: int
    list_key: str | None = None
    listed_status: str | None = None
    listed_priority: str | None = None


class TasksProjection:
    """Tasks from people (task.* events) and from Claude Code (TodoWrite, TaskCreate/TaskUpdate)."""

    name = NAME
    version = "2"
    handles = frozenset((_ASSISTANT, _USER)) | task_events.TYPES
    payloads = handles
    inline = True
    tables = ("tasks", "task_history", "task_pending")

    def create(self, tx, prefix: str) -> None:
        """Create the tables under `prefix`."""
        tx.execute(DDL.format(p=prefix))

    def apply(self, tx, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Fold a batch of events into the task rows and their history."""
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> _Facts:
        """What in a batch may touch tasks, worked out from the events alone (see `_Facts`)."""
        facts = _Facts()
        facts.add(events)
        return facts

    def facts_builder(self) -> _Facts:
        """`facts` of a batch handed over a chunk at a time (projections.base)."""
        return _Facts()

    def apply_facts(self, tx, facts: _Facts, prefix: str) -> None:
        """Fold a batch's facts into the task rows and their history, in log order."""
        fold = _Fold(tx, prefix)
        pending = fold.pending_ids
        answers = facts.answers
        positions = [position for position, _, _ in answers]
        at = 0  # the next answer to look at
        for position, event, line in [*facts.items, (None, None, None)]:
            stop = len(answers) if position is None else bisect.bisect_left(positions, position, at)
            if pending:  # lines answering tool calls before this item: any for a task tool waiting?
                for where, at_time, ids in answers[at:stop]:
                    if pending and not pending.isdisjoint(ids):
                        answer = facts.lines.get(where)
                        if answer is None:  # the call was in an earlier batch: read the line again
                            answer = _line(tx.execute("SELECT event_payload(?)", (where,))[0][0])
                        fold.tool_results((where, at_time), answer)
            at = stop
            if line is not None:
                fold.assistant(event, line)
            elif event is not None:
                fold.person(event)
        fold.write()


class _Facts:
    """What a batch holds for tasks: `items`, (position, event, decoded line or None) of each
    response calling a task tool (its event without the payload) and of each person's task event;
    `answers`, (position, time, tool_use ids) of each line holding tool results; `lines`, by
    position, the decoded lines among them that answer a task tool called in the same batch (an
    answer to an earlier batch's call is read again when applied: few are). Built a chunk of the
    batch at a time (`add`), in log order."""

    __slots__ = ("items", "answers", "lines", "calls")

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.answers: list[tuple[int, int, tuple[str, ...]]] = []
        self.lines: dict[int, _Line] = {}
        self.calls: set[str] = set()  # ids of the TaskCreate and TaskUpdate calls of this batch

    def add(self, events: Sequence[RecordedEvent]) -> None:
        """Take the next events of the batch, in log order."""
        items, answers, lines, calls = self.items, self.answers, self.lines, self.calls
        for event in events:
            type_ = event.type
            if type_ == _ASSISTANT:
                if _calls_task_tool(event.data, calls):
                    items.append((event.position, msgspec.structs.replace(event, data=b""), _line(event.data)))
            elif type_ == _USER:
                ids = _answered(event.data)
                if ids:
                    answers.append((event.position, _at(event), ids))
                    if calls and not calls.isdisjoint(ids):
                        lines[event.position] = _line(event.data)
            elif type_ in task_events.TYPES:
                items.append((event.position, event, None))

    def result(self) -> _Facts:
        return self


class _Fold:
    """Applies events one by one; all state lives in the tables (see projections.base)."""

    def __init__(self, tx, prefix: str) -> None:
        self.tx, self.p = tx, prefix
        self.pending_ids: set[str] = {
            tool_use_id for (tool_use_id,) in tx.execute(f"SELECT tool_use_id FROM {prefix}task_pending")}
        # Tasks read or changed in this batch, as they now stand; the changes are written at the end.
        self.states: dict[str, _State | None] = {}
        self.in_lists: dict[str, set[str]] = {}  # list key -> tasks of it in `states`
        self.writes: list[tuple[bool, tuple]] = []  # (a new task?, its row or update), in order
        self.history: list[tuple] = []

    # Sources

    def person(self, event: RecordedEvent) -> None:
        payload = task_events.decode(event.data)
        at = _at(event)
        if isinstance(payload, task_events.TaskCreated):
            state = _State(title=payload.title, status=payload.status, priority=_priority(payload.priority),
                           version=1, in_list=0)
            self._put(payload.task_id, state, event.position, at, created=True, session=payload.session_id,
                      source=USER, list_key=None)
            return
        state = self._get(payload.task_id)
        if state is None:
            raise LookupError(f"task {payload.task_id} does not exist")
        if payload.title is not None:
            state.title = payload.title
        if payload.status is not None:
            state.status = payload.status
        if payload.priority is not None:
            state.priority = _priority(payload.priority)
        self._put(payload.task_id, state, event.position, at)

    def assistant(self, event: RecordedEvent, line: _Line) -> None:
        session = session_of_stream(event.stream)
        content = line.message.content if line.message else None
        if session is None or not isinstance(content, list):
            return
        for block in content:
            if block.type != "tool_use" or not isinstance(block.input, dict):
                continue
            if block.name == "TodoWrite":
                self._todo_snapshot(event, session, _str(line.agentId) or "", block.input.get("todos"))
            elif block.name in _TASK_TOOLS and _str(block.id):
                self.tx.execute(_put_sql(self.p, "task_pending", ("tool_use_id", "session_id", "tool", "input"), 1),
                                (block.id, session, block.name, msgspec.json.encode(block.input)))
                self.pending_ids.add(block.id)

    def tool_results(self, where: tuple[int, int], line: _Line) -> None:
        """A line of tool results; `where` is its (position, time)."""
        content = line.message.content if line.message else None
        if not isinstance(content, list):
            return
        for block in content:
            tool_use_id = block.tool_use_id
            if block.type != "tool_result" or not isinstance(tool_use_id, str) or tool_use_id not in self.pending_ids:
                continue
            session, tool, raw = self.tx.execute(
                f"SELECT session_id, tool, input FROM {self.p}task_pending WHERE tool_use_id = ?", (tool_use_id,))[0]
            self.tx.execute(f"DELETE FROM {self.p}task_pending WHERE tool_use_id = ?", (tool_use_id,))
            self.pending_ids.discard(tool_use_id)
            result = line.toolUseResult
            if block.is_error is True or (isinstance(result, dict) and result.get("success") is False):
                continue
            tool_input = msgspec.json.decode(raw)
            if tool == "TaskCreate":
                self._task_created(where, session, tool_input, block.content, result)
            else:
                self._task_updated(where, session, tool_input)

    # Claude Code's lists

    def _todo_snapshot(self, event: RecordedEvent, session: str, agent: str, todos: object) -> None:
        if not isinstance(todos, list):
            return
        list_key = f"{session}\x1f{agent}"
        at = _at(event)
        seen: dict[str, int] = {}
        current: dict[str, tuple[str, str, str | None]] = {}  # task id -> (title, status, priority)
        for item in todos:
            if not isinstance(item, dict):
                continue
            content = _str(item.get("content"))
            if content is None:
                continue
            rank = seen[content] = seen.get(content, -1) + 1
            task_id = derived_id(TODOWRITE, session, agent, content, str(rank))
            if task_id not in current:
                current[task_id] = (content, _str(item.get("status")) or "pending", _priority(item.get("priority")))
        self._load(current)
        for task_id, (content, status, priority) in current.items():
            state = self._get(task_id)
            if state is None:
                self._put(task_id, _State(title=content, status=status, priority=priority, version=1, in_list=1,
                                          listed_status=status, listed_priority=priority),
                          event.position, at, created=True, session=session, source=TODOWRITE, list_key=list_key)
                continue
            if state.in_list:  # take what the list changed; keep what a person set and the list did not touch
                status = status if status != state.listed_status else state.status
                priority = priority if priority != state.listed_priority else state.priority
            if (state.status, state.priority, state.in_list, state.listed_status, state.listed_priority) != (
                    status, priority, 1, *current[task_id][1:]):
                changed = (state.status, state.priority) != (status, priority)
                state.status, state.priority, state.in_list = status, priority, 1
                state.listed_status, state.listed_priority = current[task_id][1:]
                self._put(task_id, state, event.position, at, history=changed)
        listed = {task_id for (task_id,) in self.tx.execute(
            f"SELECT task_id FROM {self.p}tasks WHERE list_key = ? AND in_list = 1", (list_key,))}
        states = self.states
        listed |= self.in_lists.get(list_key, set())  # the table does not hold this batch's changes yet
        dropped = [task_id for task_id in listed if task_id not in current
                   and (task_id not in states or states[task_id].in_list == 1)]
        dropped.sort()
        self._load(dropped)
        for task_id in dropped:
            state = self._get(task_id)
            changed = state.status not in ("completed", "deleted")
            if changed:
                state.status = "deleted"
            state.in_list = 0
            self._put(task_id, state, event.position, at, history=changed)

    def _task_created(self, where: tuple[int, int], session: str, tool_input: object, text: object, result: object) -> None:
        task = result.get("task") if isinstance(result, dict) else None
        number = _str(task.get("id")) if isinstance(task, dict) else None
        if number is None:
            match = _CREATED_TEXT.search(_text(text))
            number = match.group(1) if match else None
        subject = (_str(task.get("subject")) if isinstance(task, dict) else None) or (
            _str(tool_input.get("subject")) if isinstance(tool_input, dict) else None)
        if number is None or subject is None:
            return
        task_id = derived_id(TASKCREATE, session, number)
        state = self._get(task_id)
        if state is None:
            self._put(task_id, _State(title=subject, status="pending", priority=None, version=1, in_list=0),
                      *where, created=True, session=session, source=TASKCREATE, list_key=session)
        elif state.title != subject:
            state.title = subject
            self._put(task_id, state, *where)

    def _task_updated(self, where: tuple[int, int], session: str, tool_input: object) -> None:
        if not isinstance(tool_input, dict):
            return
        number = tool_input.get("taskId")
        number = str(number) if isinstance(number, (str, int)) and not isinstance(number, bool) else None
        if number is None:
            return
        task_id = derived_id(TASKCREATE, session, number)
        state = self._get(task_id)
        if state is None:
            return  # a list this log never saw created (shared, or from before the log began)
        status, subject = _str(tool_input.get("status")), _str(tool_input.get("subject"))
        if (status is None or status == state.status) and (subject is None or subject == state.title):
            return
        state.status = status or state.status
        state.title = subject or state.title
        self._put(task_id, state, *where)

    # Rows

    def _get(self, task_id: str) -> _State | None:
        """A task as it stands (read once per batch, then kept current by `_put`)."""
        if task_id not in self.states:
            self._load((task_id,))
        return self.states[task_id]

    def _load(self, task_ids) -> None:
        """Read these tasks in one query (those not read yet), for `_get`."""
        states = self.states
        wanted = [task_id for task_id in task_ids if task_id not in states]
        if not wanted:
            return
        for task_id in wanted:
            states[task_id] = None
        for task_id, *row in self.tx.execute(
                f"SELECT task_id, title, status, priority, version, in_list, list_key, listed_status, listed_priority"
                f" FROM {self.p}tasks"
                f" WHERE task_id IN (SELECT value FROM json_each(?))", (msgspec.json.encode(wanted),)):
            self._keep(task_id, _State(*row))

    def _keep(self, task_id: str, state: _State) -> None:
        self.states[task_id] = state
        if state.list_key is not None:
            self.in_lists.setdefault(state.list_key, set()).add(task_id)

    def _put(self, task_id: str, state: _State, position: int, at: int, *, created: bool = False,
             session: str | None = None, source: str | None = None, list_key: str | None = None,
             history: bool = True) -> None:
        """Change a task: the batch's view now, the row when `write` runs at the end of the batch. A
        change kept in the history (`history`) counts in its version."""
        if created:
            state.list_key = list_key
            self.writes.append((True, (task_id, state.title, state.status, state.priority, session, source, list_key,
                                       state.in_list, state.listed_status, state.listed_priority, at, at,
                                       state.version)))
        else:
            if history:
                state.version += 1
            self.writes.append((False, (state.title, state.status, state.priority, state.in_list, state.listed_status,
                                        state.listed_priority, state.version, at if history else None, task_id)))
        self._keep(task_id, state)
        if history:
            self.history.append((task_id, position, at, state.title, state.status, state.priority, state.version))

    def write(self) -> None:
        """Write the batch's changes, in the order they were made (so the table's pages fill as they
        would row by row): one statement for each run of inserts or of updates, one for the history."""
        p = self.p
        insert = _put_sql(p, "tasks", ("task_id", "title", "status", "priority", "session_id", "source", "list_key",
                                       "in_list", "listed_status", "listed_priority", "created_at", "updated_at",
                                       "version"), 1)
        update = (f"UPDATE {p}tasks SET title = ?, status = ?, priority = ?, in_list = ?, listed_status = ?,"
                  " listed_priority = ?, version = ?, updated_at = coalesce(?, updated_at) WHERE task_id = ?")
        for created, run in itertools.groupby(self.writes, key=itemgetter(0)):
            self.tx.executemany(insert if created else update, [row for _, row in run])
        self.tx.executemany(
            _put_sql(p, "task_history", ("task_id", "position", "at", "title", "status", "priority", "version"), 2),
            self.history)


@functools.cache
def _put_sql(prefix: str, table: str, columns: tuple[str, ...], key_columns: int) -> str:
    """Insert a row or overwrite the one with its key (the first `key_columns` columns).

    An upsert, not INSERT OR REPLACE: inside the runner's savepoint every REPLACE statement
    opens a statement journal, whose cost grows with the size of the database.
    """
    key, rest = columns[:key_columns], columns[key_columns:]
    return (f"INSERT INTO {prefix}{table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}")


def _at(event: RecordedEvent) -> int:
    return event.occurred_at if event.occurred_at is not None else event.recorded_at


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


# Queries


class TaskRow(msgspec.Struct, kw_only=True):
    """One task as `eventstore tasks --json` shows it."""

    task_id: str
    title: str
    status: str
    priority: str | None
    session_id: str | None
    source: str
    created_at: str
    updated_at: str
    version: int


def parse_status_filter(expr: str | None) -> tuple[list[str], bool] | None:
    """'pending,in_progress' -> (statuses, False); '!completed' -> (['completed'], True); None: all.
    A leading '!' negates the whole list, which may repeat it ('!completed,!deleted'). ValueError
    for a '!' with no status after it, or one inside a list it does not start."""
    if expr is None or not expr.strip():
        return None
    expr = expr.strip()
    negate = expr.startswith("!")
    items = [s.strip() for s in expr.split(",") if s.strip()]
    if not negate and any(item.startswith("!") for item in items):
        raise ValueError(f"{expr!r}: '!' negates the whole list and goes first ('!completed,deleted')")
    statuses = [s for s in (item.lstrip("!").strip() for item in items) if s]
    if not statuses:
        raise ValueError(f"{expr!r} names no status: give a comma list, '!' first to negate it ('!completed')")
    return statuses, negate


_PRIORITY_RANK = "CASE {col} WHEN 'high' THEN 0 WHEN 'medium' THEN 1 WHEN 'low' THEN 2 ELSE 3 END"


def list_tasks_sql(*, statuses: Collection[str] | None = None, negate: bool = False, session: str | None = None,
                   as_of: int | None = None, task_id: str | None = None) -> tuple[str, list[object]]:
    """The query behind `list_tasks`, with its parameters."""
    params: list[object] = []
    if as_of is None:
        source = ("SELECT task_id, title, status, priority, session_id, source, created_at, updated_at, version"
                  " FROM tasks")
    else:
        source = (
            "SELECT t.task_id, h.title, h.status, h.priority, t.session_id, t.source, t.created_at,"
            " h.at AS updated_at, h.version FROM task_history h JOIN tasks t USING (task_id)"
            " WHERE h.position = (SELECT max(position) FROM task_history l WHERE l.task_id = h.task_id AND l.at <= ?)"
        )
        params.append(as_of)
    where = []
    if statuses:
        where.append(f"status {'NOT IN' if negate else 'IN'} ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    if session is not None:
        where.append("session_id = ?")
        params.append(session)
    if task_id is not None:
        where.append("task_id = ?")
        params.append(task_id)
    sql = (f"SELECT * FROM ({source})" + (f" WHERE {' AND '.join(where)}" if where else "")
           + f" ORDER BY {_PRIORITY_RANK.format(col='priority')}, updated_at DESC, task_id")
    return sql, params


def list_tasks(conn, *, statuses: Collection[str] | None = None, negate: bool = False, session: str | None = None,
               as_of: int | None = None) -> list[TaskRow]:
    """Tasks by priority (high, medium, low, none), then most recently updated; optionally as of a time."""
    sql, params = list_tasks_sql(statuses=statuses, negate=negate, session=session, as_of=as_of)
    return [_row(r) for r in conn.execute(sql, params).fetchall()]


def get_task(conn, task_id: str) -> TaskRow | None:
    """One task as it stands now, or None."""
    sql, params = list_tasks_sql(task_id=task_id)
    rows = conn.execute(sql, params).fetchall()
    return _row(rows[0]) if rows else None


def _row(r: tuple) -> TaskRow:
    return TaskRow(task_id=r[0], title=r[1], status=r[2], priority=r[3], session_id=r[4], source=r[5],
                   created_at=iso(r[6]), updated_at=iso(r[7]), version=r[8])

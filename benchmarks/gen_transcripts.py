"""Seeded, deterministic generator of a synthetic Claude Code ``projects/`` tree.

``generate(out, target_bytes, seed)`` writes about ``target_bytes`` of JSONL under
``out``, laid out like ``~/.claude/projects``::

    out/<encoded-cwd>/<sessionId>.jsonl                       main transcripts
    out/<encoded-cwd>/agent-<8hex>.jsonl                      old subagent layout (2.0.x)
    out/<encoded-cwd>/<sessionId>/subagents/agent-<id>.jsonl  new subagent layout (2.1.x)
    out/<encoded-cwd>/<sessionId>/subagents/agent-<id>.meta.json

The records follow the transcript field guide (TRANSCRIPTS.md): versions 1.0.x to
2.1.x with the key order and optional fields of each version, one content block per
assistant line with partial streaming ``output_tokens`` on early lines, usage copies
inside ``agent_progress`` records, ``<synthetic>`` API-error messages, sidechain /btw
replays, compaction, summaries (also concatenated onto the previous line), empty and
summary-only files, checkpoint copies of a session in another project directory,
torn last lines, large tool results and base64 images.

Everything comes from ``random.Random`` instances seeded from ``seed``: the same seed
and size give a byte-identical tree (no clock, no uuid4, sorted iteration).

CLI: ``python benchmarks/gen_transcripts.py OUT --mb N [--seed S]`` prints the stats.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

__all__ = ["generate", "encode_cwd"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

WINDOW_START_MS = 1_777_593_600_000  # 2026-05-01T00:00:00Z
WINDOW_DAYS = 60
DAY_MS = 86_400_000
# A record written without its newline, a summary appended on the same line: only versions
# that still write summaries (about half of the lines) do it, so ~1 in 5,000 lines overall.
CONCAT_RATE = 1 / 2500
_CHAIN = object()  # "parent is the thread's previous record"
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Chronological list of CLI versions; sessions get versions in time order.
VERSIONS = (
    "1.0.17 1.0.24 1.0.33 1.0.43 1.0.51 1.0.56 1.0.62 1.0.72 1.0.83 1.0.98 1.0.108 1.0.128 "
    "2.0.5 2.0.14 2.0.28 2.0.37 2.0.42 2.0.55 2.0.64 2.0.76 2.1.1 2.1.5 2.1.6 2.1.7 2.1.12 "
    "2.1.14 2.1.17 2.1.22 2.1.29 2.1.38 2.1.41 2.1.42 2.1.78 2.1.80 2.1.81 2.1.114 2.1.119 "
    "2.1.150 2.1.168 2.1.178 2.1.199 2.1.210 2.1.217 2.1.218"
).split()

FUTURE_MODEL = "claude-sonnet-5-20261201"  # not in any price table: parsers must tolerate it

WORDS = (
    "the a to and of in is it that for this we on with be as can should will now then "
    "function file test tests module class method value values error errors config "
    "parser record records event events store index query session sessions token tokens "
    "cache usage schema migration projection handler request response client server "
    "build run check update add remove fix refactor implement rename move split merge "
    "because since so but also only still already just instead first next finally "
    "let me look at the current implementation and see where it breaks after that "
    "I will update run verify confirm the change passes all green failing flaky "
    "timeout retry batch stream buffer offset cursor segment snapshot checkpoint "
    "dedupe duplicate group key hash line lines byte bytes size limit memory disk "
    "path paths directory directories project projects transcript transcripts "
    "assistant user system tool tools result results output input model models "
    "cost price daily weekly monthly report summary total totals count counts "
    "async await sync thread worker pool queue lock sqlite table column row rows "
    "insert select where order by limit join null empty missing invalid valid "
    "parse decode encode json jsonl utf-8 newline trailing partial torn append "
    "looks good great done works passing coverage lint types mypy ruff pytest"
).split()

IDENTS = (
    "user session event store record index cache parser config token batch stream "
    "writer reader query schema buffer offset handler router client request response "
    "payload digest ledger cursor segment manifest snapshot usage model price report "
    "project entry line chunk frame window bucket counter metric span trace"
).split()

SURNAMES = "wadler hopper lovelace knuth liskov hamming turing dijkstra ritchie thompson kay".split()
ADJS = "zippy quiet brave lucky gentle swift curious mellow jolly rustic sleepy vivid".split()
GERUNDS = "wondering dancing humming drifting jumping baking sailing weaving roaming".split()
TYPES = "Record Event Session Usage Batch Config Entry Snapshot Report".split()


# --------------------------------------------------------------------------- helpers

def _vt(version: str) -> tuple[int, ...]:
    """Parse ``"2.1.42"`` into a comparable tuple."""
    return tuple(int(x) for x in version.split("."))


def _js_hash36(s: str) -> str:
    """32-bit Java/JS style string hash of ``s`` written in base 36."""
    h = 0
    for ch in s:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    if h & 0x80000000:
        h = (1 << 32) - h
    digits = ""
    while True:
        h, r = divmod(h, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
        if not h:
            return digits


def encode_cwd(cwd: str) -> str:
    """Project directory name: every non-alphanumeric char becomes '-' (long paths hashed)."""
    name = "".join(c if c.isascii() and c.isalnum() else "-" for c in cwd)
    if len(name) > 200:
        name = name[:200] + "-" + _js_hash36(cwd)
    return name


def _uuid(rng: random.Random) -> str:
    """A uuid4-shaped string drawn from ``rng``."""
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _b62(rng: random.Random, n: int) -> str:
    """``n`` random base62 characters."""
    return "".join(rng.choices(B62, k=n))


def _hex(rng: random.Random, n: int) -> str:
    """``n`` random lowercase hex digits."""
    return "%0*x" % (n, rng.getrandbits(4 * n))


def _ln(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    """Lognormal integer with the given median, clamped to [lo, hi]."""
    return int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))


def _iso(ms: int) -> str:
    """ISO-8601 UTC timestamp with milliseconds and ``Z``."""
    s, m = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%03dZ" % m


def _slice(rng: random.Random, pool: str, n: int, sep: str = ". ") -> str:
    """About ``n`` characters of ``pool`` starting just after a random ``sep``."""
    size = len(pool)
    if n >= size - 400:
        return (pool * (n // size + 1))[:n]
    p = rng.randrange(size - n - 400)
    if sep:
        q = pool.find(sep, p, p + 400)
        if q != -1:
            p = q + len(sep)
    return pool[p:p + n]


# --------------------------------------------------------------------------- text pools

def _sentence(rng: random.Random) -> str:
    """One prose sentence, sometimes with inline code."""
    words = rng.choices(WORDS, k=rng.randint(6, 22))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), f"`{rng.choice(IDENTS)}_{rng.choice(IDENTS)}()`")
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice(".....?:!")


def _prose_pool(rng: random.Random, size: int) -> str:
    """Markdown-ish assistant/user prose: paragraphs, bullets, headings, a few non-ASCII marks."""
    parts, n = [], 0
    while n < size:
        r = rng.random()
        if r < 0.1:
            block = f"## {_sentence(rng)[:-1]}"
        elif r < 0.3:
            block = "\n".join(f"- {_sentence(rng)}" for _ in range(rng.randint(2, 6)))
        elif r < 0.35:
            block = f"Done — {_sentence(rng)} ✓"
        else:
            block = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        parts.append(block)
        n += len(block) + 2
    return "\n\n".join(parts)


_PY = '''def {f}_{g}({a}, {b}: int = {n}) -> {T}:
    """{doc}"""
    {a}_{g} = {b} + {n}
    if not {a}:
        raise ValueError("{f} {g} missing")
    for {c} in {a}.{g}s:
        {c}.{f}({b})
    return {T}({a}_{g})
'''
_TS = '''export function {f}{G}({a}: {T}, {b}: number): {T} {{
  const {c} = {a}.{g}.filter((x) => x.{f} > {b});
  if ({c}.length === 0) {{
    throw new Error(`{f} {g} missing`);
  }}
  // {doc}
  return {c}.reduce((acc, x) => acc + x.{f}, {n});
}}
'''
_RS = '''pub fn {f}_{g}({a}: &{T}, {b}: usize) -> Result<{T}, Error> {{
    let {c} = {a}.{g}s.iter().filter(|x| x.{f} > {b}).count();
    if {c} == 0 {{
        return Err(Error::Missing("{f} {g}"));
    }}
    Ok({T}::new({c} + {n}))
}}
'''


def _code_pool(rng: random.Random, size: int) -> str:
    """Source-code-like text in Python, TypeScript and Rust flavours."""
    parts, n = [], 0
    while n < size:
        f, g, a, b, c = rng.choices(IDENTS, k=5)
        doc = _sentence(rng)
        tpl = rng.choice((_PY, _PY, _TS, _RS))
        block = tpl.format(f=f, g=g, G=g.title(), a=a, b=b + "_n", c=c + "_v", n=rng.randint(0, 999),
                           T=rng.choice(TYPES), doc=doc)
        parts.append(block)
        n += len(block) + 1
    return "\n".join(parts)


def _log_pool(rng: random.Random, size: int) -> str:
    """Command output: test runs, compiler lines, git and ls listings."""
    lines, n = [], 0
    while n < size:
        r = rng.random()
        a, b = rng.choice(IDENTS), rng.choice(IDENTS)
        if r < 0.35:
            outcome = rng.choice(("PASSED", "PASSED", "PASSED", "FAILED", "SKIPPED"))
            line = f"tests/test_{a}.py::test_{b}_{rng.choice(IDENTS)} {outcome} [{rng.randint(1, 100):3d}%]"
        elif r < 0.5:
            line = f"   Compiling {a}-{b} v0.{rng.randint(1, 9)}.{rng.randint(0, 30)}"
        elif r < 0.65:
            line = f"{_hex(rng, 7)} {_sentence(rng)[:60]}"
        elif r < 0.8:
            when = f"May {rng.randint(1, 30):2d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
            line = f"-rw-r--r--  1 dev  staff  {rng.randint(80, 90000):6d} {when} {a}_{b}.py"
        elif r < 0.9:
            line = (f"src/{a}/{b}.ts({rng.randint(1, 400)},{rng.randint(1, 80)}): error TS2345: "
                    f"Argument of type '{rng.choice(TYPES)}' is not assignable.")
        else:
            line = f"{rng.choice(('INFO', 'DEBUG', 'WARN'))} {a}.{b}: {_sentence(rng)}"
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines)


def _title(rng: random.Random) -> str:
    """A short session title."""
    verb = rng.choice(("Fix", "Add", "Refactor", "Debug", "Implement", "Speed up"))
    what = rng.choice(("handling", "parser", "tests", "dedupe", "migration", "CLI"))
    return f"{verb} {rng.choice(IDENTS)} {rng.choice(IDENTS)} {what}"


class _Pools:
    """Shared text pools (prose, code, command output, base64) built once per seed and size."""

    _cache: dict = {}

    def __init__(self, seed: int, size: int):
        rng = random.Random(seed * 7919 + 17)
        self.prose = _prose_pool(rng, size)
        self.code = _code_pool(rng, size)
        self.log = _log_pool(rng, size // 2)
        png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(1_100_000)
        self.image = base64.b64encode(png).decode("ascii")
        self.sig = base64.b64encode(rng.randbytes(200_000)).decode("ascii")

    @classmethod
    def get(cls, seed: int, size: int) -> "_Pools":
        """Cached pools for (seed, size)."""
        key = (seed, size)
        if key not in cls._cache:
            cls._cache.clear()
            cls._cache[key] = cls(seed, size)
        return cls._cache[key]


# --------------------------------------------------------------------------- versions

class _Flags:
    """Which fields and record types a CLI version writes (ranges from the field guide)."""

    def __init__(self, version: str):
        v = _vt(version)
        self.version = version
        self.git_branch = v >= (1, 0, 55)
        self.cache_creation = v >= (1, 0, 98)
        self.old_todo_items = v <= (1, 0, 56)
        self.thinking_meta = (1, 0, 128) <= v <= (2, 1, 42)
        self.layout = "inline" if v < (2, 0, 28) else "old" if v < (2, 1, 17) else "new"
        self.queue_ops = v >= (2, 0, 37)
        self.slug = (2, 0, 55) <= v <= (2, 1, 81)
        self.file_history = v >= (2, 0, 55)
        self.user_todos = (2, 0, 55) <= v <= (2, 1, 42)
        self.stop_hook = v >= (2, 0, 64)
        self.compact = (2, 0, 76) <= v <= (2, 1, 42)
        self.server_tool_use = v >= (2, 0, 76)
        self.turn_duration = v >= (2, 1, 1)
        self.source_tool = v >= (2, 1, 1)
        self.api_error = (2, 1, 5) <= v <= (2, 1, 17)
        self.progress = (2, 1, 7) <= v <= (2, 1, 81)
        self.permission_mode = v >= (2, 1, 7)
        self.local_command = v >= (2, 1, 12)
        self.inference_geo = v >= (2, 1, 17)
        self.todowrite = v <= (2, 1, 15)
        self.tasks = v >= (2, 1, 29)
        self.pr_link = v >= (2, 1, 37)
        self.iterations = v >= (2, 1, 38)
        self.speed = v >= (2, 1, 41)
        self.caller = v >= (2, 1, 42)
        self.new_order = v >= (2, 1, 78)  # also entrypoint, promptId, Agent tool, empty thinking
        self.custom_title = (2, 1, 78) <= v <= (2, 1, 81)
        self.last_prompt = v >= (2, 1, 79)
        self.attachments = v >= (2, 1, 114)  # also permission-mode, stop_details, meta.json
        self.ai_title = v >= (2, 1, 168)  # also mode records, promptSource
        self.origin = v >= (2, 1, 178)
        self.session_id_dup = v >= (2, 1, 199)
        self.effort = v >= (2, 1, 217)
        self.summaries = v <= (2, 1, 22)
        self.untyped_system = (1, 0, 43) <= v <= (1, 0, 56)
        self.partial_p = (0.55 if v < (2, 0, 0) else 0.0 if v < (2, 0, 55) else 0.5 if v <= (2, 1, 7)
                          else 0.0 if v < (2, 1, 30) else 0.1 if v <= (2, 1, 42)
                          else 0.5 if v <= (2, 1, 114) else 0.0)
        self.models = _models_for(v)
        self.light_model = "claude-haiku-4-5-20251001" if v >= (2, 0, 14) else "claude-sonnet-4-20250514"


def _models_for(v: tuple[int, ...]) -> list[tuple[str, int]]:
    """Main-thread models (with weights) plausible for a CLI version."""
    if v < (1, 0, 72):
        return [("claude-sonnet-4-20250514", 7), ("claude-opus-4-20250514", 3)]
    if v < (2, 0, 0):
        return [("claude-sonnet-4-20250514", 5), ("claude-opus-4-1-20250805", 4), ("claude-opus-4-20250514", 1)]
    if v < (2, 0, 55):
        return [("claude-sonnet-4-5-20250929", 7), ("claude-opus-4-1-20250805", 2), ("claude-haiku-4-5-20251001", 1)]
    if v < (2, 1, 29):
        return [("claude-opus-4-5-20251101", 6), ("claude-sonnet-4-5-20250929", 3), ("claude-haiku-4-5-20251001", 1)]
    if v < (2, 1, 78):
        return [("claude-opus-4-6", 6), ("claude-opus-4-5-20251101", 2), ("claude-sonnet-4-5-20250929", 2)]
    if v < (2, 1, 168):
        return [("claude-opus-4-7", 5), ("claude-opus-4-6", 3), ("claude-sonnet-4-5-20250929", 1),
                ("claude-haiku-4-5-20251001", 1)]
    return [("claude-opus-4-8", 5), ("claude-opus-4-7", 2), ("claude-fable-5", 2), ("claude-haiku-4-5-20251001", 1)]


# Features forced into at least one eligible session so small trees show every quirk.
_FORCEABLE = {
    "agent_inline": lambda f: f.layout == "inline",
    "agent_old": lambda f: f.layout == "old",
    "agent_new": lambda f: f.layout == "new",
    "agent_progress": lambda f: f.progress and f.layout == "new",
    "agent_meta": lambda f: f.attachments,
    "partial": lambda f: f.partial_p > 0,
    "compact": lambda f: f.compact,
    "api_error": lambda f: f.api_error,
    "synthetic": lambda f: True,
    "btw": lambda f: f.new_order,
    "local_command": lambda f: f.local_command,
    "resume": lambda f: f.summaries,
    "concat": lambda f: f.summaries,
    "future_model": lambda f: f.ai_title,
    "todowrite": lambda f: f.todowrite,
    "tasks": lambda f: f.tasks,
    "image": lambda f: True,
    "big": lambda f: True,
}

# Eras that must appear in every tree (checked on the planned versions).
_REQUIRED_ERAS = (
    lambda v: v < (2, 0, 28),
    lambda v: (2, 0, 28) <= v < (2, 1, 17),
    lambda v: (2, 1, 17) <= v <= (2, 1, 81),
    lambda v: v >= (2, 1, 114),
)


# --------------------------------------------------------------------------- planning

class _Plan:
    """Everything a session needs to be generated independently of the others."""

    __slots__ = ("index", "seed", "sid", "project", "start_ms", "version", "budget", "kind",
                 "leaf_uuid", "summary_leaves", "checkpoint_project", "torn", "force")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def _project_cwds(rng: random.Random, n: int) -> list[str]:
    """Plausible working directories, including odd characters and one very long path."""
    user = rng.choice(("alex", "sam", "dana", "kim", "rio"))
    repos = ["eventstore", "web-app", "api", "infra", "ml-pipeline", "docs", "cli", "mobile",
             "data-tools", "playground", "blog", "dotfiles", "scratch", "ledger", "bench"]
    rng.shuffle(repos)
    cwds = []
    for i in range(n):
        repo = repos[i % len(repos)] + ("" if i < len(repos) else str(i))
        r = rng.random()
        if i == 2:
            cwds.append(f"/Users/{user}/Documents/Side Projects/{repo}.io")
        elif i == 4:
            cwds.append(f"/Users/{user}/.agents/{repo}")
        elif i == 6:
            cwds.append(f"C:\\Users\\{user}\\src\\{repo}")
        elif i == 8:
            deep = "/".join(f"very_long_directory_name_{k:02d}" for k in range(8))
            cwds.append(f"/Users/{user}/work/{deep}/{repo}")
        elif r < 0.3:
            cwds.append(f"/home/{user}/src/{repo}")
        elif r < 0.45:
            cwds.append(f"/Users/{user}/code/{repo}/packages/{rng.choice(('core', 'web', 'server'))}")
        else:
            cwds.append(f"/Users/{user}/code/{repo}")
    return cwds


def _plan(target: int, seed: int) -> tuple[list[str], list[_Plan]]:
    """Split the byte budget into sessions and assign projects, times, versions and quirks."""
    rng = random.Random(seed)
    scale = max(1.0, target / 2_000_000)
    n_projects = min(14, 3 + int(round(1.4 * math.log2(scale))))
    cwds = _project_cwds(rng, n_projects)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(n_projects)]

    median = min(500_000, max(40_000, target / 22))
    budgets, total = [], 0
    while total < target:
        b = _ln(rng, median, 1.0, 6_000, max(60_000, target // 4))
        b = min(b, target - total)
        if b < 6_000 and budgets:
            budgets[-1] += b
            break
        budgets.append(b)
        total += b

    plans = [_Plan(budget=b, kind="normal") for b in budgets]
    n_special = max(2, len(budgets) // 15)  # empty (0-byte) and summary-only files
    for k in range(n_special):
        kind = "summary_only" if k % 3 == 1 else "empty"
        plans.insert(rng.randrange(len(plans) + 1), _Plan(budget=0, kind=kind))

    starts = sorted(WINDOW_START_MS + rng.randrange(WINDOW_DAYS * DAY_MS) for _ in plans)
    n = len(plans)
    for k, (p, start) in enumerate(zip(plans, starts)):
        p.index = k
        p.seed = rng.getrandbits(64)
        p.sid = _uuid(rng)
        p.leaf_uuid = _uuid(rng)
        p.project = rng.choices(range(n_projects), weights)[0]
        if rng.random() < 0.18:  # evening start: long sessions cross midnight
            start = start - start % DAY_MS + rng.randrange(79_200_000, DAY_MS)
        p.start_ms = start
        pos = min(len(VERSIONS) - 1, int((k + rng.random()) / n * len(VERSIONS)))
        p.version = VERSIONS[pos]
        p.force = set()
        p.checkpoint_project = None
        p.torn = None
    _cover_eras(plans)
    normal = [p for p in plans if p.kind == "normal"]
    if normal:
        big = max(normal, key=lambda p: p.budget)
        big.start_ms = big.start_ms - big.start_ms % DAY_MS + 84_600_000  # 23:30 start: crosses midnight
    _assign_forced(rng, normal)
    for p in plans:  # earlier sessions' leaves, some unresolvable (another machine)
        p.summary_leaves = [rng.choice(plans[:p.index]).leaf_uuid if p.index and rng.random() < 0.7
                            else _uuid(rng) for _ in range(rng.choice((1, 1, 2, 3, 15)))]
    if n_projects > 1 and len(normal) > 2:
        for p in rng.sample(normal[:-1], max(1, len(normal) // 30)):
            p.checkpoint_project = (p.project + 1 + rng.randrange(n_projects - 1)) % n_projects
    recent = sorted(normal, key=lambda p: p.start_ms, reverse=True)[:max(2, len(normal) // 40)]
    for k, p in enumerate(recent):  # still being written: cut mid-record, or just no final newline
        p.torn = ("partial", "nonl")[k % 2]
    return cwds, plans


def _cover_eras(plans: list[_Plan]) -> None:
    """Make sure every required version era has at least one normal session."""
    normal = [p for p in plans if p.kind == "normal"]

    def sole_member(p: _Plan) -> bool:
        """True if moving ``p`` would leave some required era empty."""
        return any(era(_vt(p.version)) and sum(era(_vt(q.version)) for q in normal) == 1
                   for era in _REQUIRED_ERAS)

    for era in _REQUIRED_ERAS:
        if any(era(_vt(p.version)) for p in normal):
            continue
        in_era = [i for i, v in enumerate(VERSIONS) if era(_vt(v))]
        mid = in_era[len(in_era) // 2]
        movable = [p for p in normal if not sole_member(p)]
        if movable:
            best = min(movable, key=lambda p: abs(VERSIONS.index(p.version) - mid))
            best.version = VERSIONS[mid]


def _assign_forced(rng: random.Random, normal: list[_Plan]) -> None:
    """Give each forceable feature to one eligible, preferably large, session."""
    if not normal:
        return
    flags = {p.index: _Flags(p.version) for p in normal}
    median = sorted(p.budget for p in normal)[len(normal) // 2]
    for feature, ok in _FORCEABLE.items():
        eligible = [p for p in normal if ok(flags[p.index])]
        roomy = [p for p in eligible if p.budget >= median] or eligible
        if roomy:
            rng.choice(roomy).force.add(feature)


# --------------------------------------------------------------------------- sessions

class _Ctx:
    """One thread of records: the main session or a subagent, and its own token state."""

    __slots__ = ("out", "side", "agent", "cwd", "parent", "head", "tail", "tokens", "fresh",
                 "last_call", "mirror", "model", "limit", "void")

    def __init__(self, out, side, agent, cwd, model):
        self.out, self.side, self.agent, self.cwd, self.model = out, side, agent, cwd, model
        self.parent = None
        self.head = self.tail = None
        self.tokens, self.fresh, self.last_call = 0, 0, 0
        self.mirror = None
        self.limit = 150_000
        self.void = False  # records of a subagent whose file is missing: not written, not counted


class _Session:
    """Generates one session (main file, subagent files, checkpoint copy) from its plan."""

    def __init__(self, plan: _Plan, cwd: str, cwds: list[str], out: Path, pools: _Pools,
                 garbage_rate: float):
        self.p = plan
        self.rng = random.Random(plan.seed)
        self.pools = pools
        self.out = out
        self.cwds = cwds
        self.garbage_rate = garbage_rate
        self.proj = encode_cwd(cwd)
        self.cwd = cwd
        self.clock = plan.start_ms
        self.size = 0
        self.count: Counter = Counter()
        self.files: dict[str, list[str]] = {}
        self.meta: dict[str, str] = {}
        self.force = set(plan.force)
        self.main_key = f"{self.proj}/{plan.sid}.jsonl"
        # a checkpoint copy repeats 40-100% of the main file: leave room for it
        self.budget = plan.budget / 1.7 if plan.checkpoint_project is not None else plan.budget
        self._set_version(plan.version)
        rng = self.rng
        self.model = rng.choices(*zip(*self.f.models))[0]
        if "future_model" in self.force or (self.f.ai_title and rng.random() < 0.03):
            self.model = FUTURE_MODEL
        feature_branch = f"feature/{rng.choice(IDENTS)}-{rng.choice(IDENTS)}"
        self.branch = rng.choice(("main", "main", "main", "master", feature_branch, "HEAD", ""))
        self.slug = f"{rng.choice(ADJS)}-{rng.choice(GERUNDS)}-{rng.choice(SURNAMES)}"
        self.entrypoint = "sdk-cli" if rng.random() < 0.1 else "cli"
        self.hooks = rng.random() < 0.45
        self.cache_mode = rng.choice(("5m", "5m", "1h", "1h", "mixed"))
        self.iter_empty = rng.random() < 0.15
        self.paths = [self._new_path() for _ in range(rng.randint(12, 40))]
        self.edited: dict[str, int] = {}
        self.todos: list[dict] = []
        self.tasks: dict[str, str] = {}
        self.partial_p = 0.9 if "partial" in self.force else self.f.partial_p
        self.agents_made = 0
        self.last_msg: dict | None = None
        self.prompt_uuid = plan.leaf_uuid
        self.prompt_day = self.clock // DAY_MS
        self.main = self._ctx(self._file(self.main_key), False, None, cwd, self.model)
        self.main.fresh = rng.randint(12_000, 28_000)

    # ---- plumbing

    def _set_version(self, version: str) -> None:
        """Switch CLI version (also mid-file, after a resume)."""
        self.version = version
        self.f = _Flags(version)

    def _file(self, key: str) -> list[str]:
        """Line list for a file path relative to the output root."""
        return self.files.setdefault(key, [])

    def _ctx(self, out, side, agent, cwd, model) -> _Ctx:
        """A new record thread with envelope dicts for the current version."""
        c = _Ctx(out, side, agent, cwd, model)
        self._envelope(c)
        return c

    def _envelope(self, c: _Ctx) -> None:
        """Precompute the version-dependent envelope fields of a thread."""
        f = self.f
        env = {"userType": "external"}
        if f.new_order:
            env["entrypoint"] = self.entrypoint
        env["cwd"] = c.cwd
        env["sessionId"] = self.p.sid
        if f.session_id_dup:
            env["session_id"] = self.p.sid
        env["version"] = self.version
        if f.git_branch:
            env["gitBranch"] = self.branch
        if f.new_order:
            if f.slug:
                env["slug"] = self.slug
            c.head, c.tail = {}, env
        else:
            if c.agent:
                env["agentId"] = c.agent
            if f.slug:
                env["slug"] = self.slug
            c.head, c.tail = env, {}

    def _tick(self, lo: int, hi: int) -> str:
        """Advance the clock by lo..hi ms and return the timestamp."""
        self.clock += self.rng.randint(lo, hi)
        return _iso(self.clock)

    def _rec(self, c: _Ctx, body: dict, prompt_id: str | None = None, parent=_CHAIN) -> dict:
        """Wrap a record body in the envelope, in the key order of the version."""
        d = {"parentUuid": c.parent if parent is _CHAIN else parent, "isSidechain": c.side}
        if self.f.new_order:
            if prompt_id:
                d["promptId"] = prompt_id
            if c.agent:
                d["agentId"] = c.agent
            d.update(body)
            d.update(c.tail)
        else:
            d.update(c.head)
            d.update(body)
        return d

    def _emit(self, c: _Ctx, d: dict, chain: bool = True) -> dict:
        """Serialise one record as a line of the thread's file."""
        t = d["type"]
        if not c.void:
            s = _encode(d)
            c.out.append(s)
            self.size += len(s) + 1
            self.count[t] += 1
            if self.f.summaries and self.rng.random() < CONCAT_RATE:
                self._concat_summary(c, d.get("uuid") or self.p.leaf_uuid)
        if chain:
            c.parent = d["uuid"]
            if c.mirror is not None and t in ("user", "assistant"):
                self._mirror(c, d)
        return d

    def _concat_summary(self, c: _Ctx, leaf: str) -> None:
        """Append a summary to the last line as if that record had been written without its newline."""
        s = _encode({"type": "summary", "summary": self._title(), "leafUuid": leaf})
        c.out[-1] += s
        self.size += len(s)
        self.count["summary"] += 1
        self.count["concatenated_lines"] += 1

    def _meta_rec(self, c: _Ctx, d: dict) -> None:
        """Emit a record that has no uuid (summary, titles, snapshots, queue operations)."""
        self._emit(c, d, chain=False)

    def _title(self) -> str:
        """A short session title."""
        return _title(self.rng)

    def _new_path(self) -> str:
        """A source file path inside the project."""
        rng = self.rng
        ext = rng.choice(("py", "py", "ts", "tsx", "rs", "md", "json"))
        d = rng.choice(("src", "src", "tests", "lib", "app", "scripts", "docs"))
        sep = "\\" if self.cwd[1:3] == ":\\" else "/"
        return sep.join((self.cwd, d, rng.choice(IDENTS), f"{rng.choice(IDENTS)}_{rng.choice(IDENTS)}.{ext}"))

    def _prose(self, median: int, sigma: float = 0.9, lo: int = 20, hi: int = 20_000) -> str:
        """Prose of lognormal length."""
        return _slice(self.rng, self.pools.prose, _ln(self.rng, median, sigma, lo, hi))

    def _code(self, n: int) -> str:
        """About n characters of source code starting at a line boundary."""
        return _slice(self.rng, self.pools.code, n, "\n")

    # ---- usage and assistant groups

    def _usage(self, inp: int, out: int, cc: int, cr: int, h1: int, synthetic: bool = False) -> dict:
        """A usage object with the keys, order and extras of the current version."""
        f = self.f
        cache = {"ephemeral_5m_input_tokens": cc - h1, "ephemeral_1h_input_tokens": h1}
        tier = None if synthetic else "standard"
        if f.iterations and not synthetic:
            iters = [] if self.iter_empty else [{
                "input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": cr,
                "cache_creation_input_tokens": cc, "cache_creation": cache, "type": "message"}]
        else:
            iters = None
        if f.new_order:
            u = {"input_tokens": inp, "cache_creation_input_tokens": cc, "cache_read_input_tokens": cr,
                 "output_tokens": out}
            if f.server_tool_use:
                u["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
            u["service_tier"] = tier
            u["cache_creation"] = {"ephemeral_1h_input_tokens": h1, "ephemeral_5m_input_tokens": cc - h1}
            u["inference_geo"] = None if synthetic else ""
            if f.iterations:
                u["iterations"] = iters
            if f.speed:
                u["speed"] = None if synthetic else "standard"
            return u
        u = {"input_tokens": inp, "cache_creation_input_tokens": cc, "cache_read_input_tokens": cr}
        if f.cache_creation:
            u["cache_creation"] = cache
        u["output_tokens"] = out
        if f.server_tool_use:
            u["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
        u["service_tier"] = tier
        if f.inference_geo:
            u["inference_geo"] = None if synthetic else "not_available"
        if f.iterations:
            u["iterations"] = iters
        if f.speed:
            u["speed"] = None if synthetic else "standard"
        return u

    def _call_tokens(self, c: _Ctx) -> tuple[int, int, int, int]:
        """(input, cache_creation, cache_read, 1h part) for the next API call of a thread."""
        rng = self.rng
        gap = self.clock - c.last_call
        expired = c.last_call and gap > (300_000 if self.cache_mode == "5m" else 3_600_000)
        if expired or not self.f.cache_creation and rng.random() < 0.05:
            cc, cr = c.tokens + c.fresh, 0
        else:
            cc, cr = c.fresh, c.tokens
        inp = rng.randint(1, 12) if rng.random() < 0.93 else rng.randint(100, 4000)
        c.tokens, c.fresh, c.last_call = cc + cr, 0, self.clock
        if not self.f.cache_creation or self.cache_mode == "5m":
            h1 = 0
        elif self.cache_mode == "1h":
            h1 = cc
        else:
            h1 = rng.randint(0, cc)
        return inp, cc, cr, h1

    def _group(self, c: _Ctx, blocks: list[tuple[dict, int]], stop: str, leaf: str | None = None) -> list[dict]:
        """Emit one API response: one line per content block, same message.id and requestId."""
        rng, f = self.rng, self.f
        mid, rid = "msg_01" + _b62(rng, 22), "req_011C" + _b62(rng, 20)
        inp, cc, cr, h1 = self._call_tokens(c)
        out_tokens = max(2, sum(t for _, t in blocks))
        c.fresh += out_tokens
        final = self._usage(inp, out_tokens, cc, cr, h1)
        early = final
        if len(blocks) > 1 and rng.random() < self.partial_p:
            partial = rng.choice((1, 1, 8, rng.randint(1, max(1, out_tokens // 3))))
            early = self._usage(inp, min(partial, out_tokens - 1), cc, cr, h1)
            self.count["partial_usage_groups"] += 1
        if len(blocks) > 1:
            self.count["multi_line_groups"] += 1
        recs = []
        last = len(blocks) - 1
        for i, (block, _) in enumerate(blocks):
            msg = {"model": c.model, "id": mid, "type": "message", "role": "assistant", "content": [block],
                   "stop_reason": stop if i == last else None, "stop_sequence": None}
            if f.attachments:
                msg["stop_details"] = None
            msg["usage"] = final if i == last else early
            ts = self._tick(300, 9_000 if block["type"] != "thinking" else 25_000)
            uid = leaf if (leaf and i == last) else _uuid(rng)
            body = {"message": msg, "requestId": rid, "type": "assistant", "uuid": uid, "timestamp": ts}
            if f.effort and rng.random() < 0.5:
                body["effort"] = "high"
            recs.append(self._emit(c, self._rec(c, body)))
        if c is self.main:
            self.last_msg = msg
        return recs

    def _synthetic(self, c: _Ctx) -> None:
        """A ``<synthetic>`` zero-usage API error message."""
        rng = self.rng
        text, err, status = rng.choice((
            ("Login expired · Please run /login", "authentication_failed", 401),
            ('API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
             "unknown", 529),
            ("API Error: Request rejected (429) · rate limited", "rate_limit", 429),
        ))
        msg = {"id": _uuid(rng), "container": None, "model": "<synthetic>", "role": "assistant",
               "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
               "usage": self._usage(0, 0, 0, 0, 0, synthetic=True), "content": [{"type": "text", "text": text}]}
        body = {"message": msg, "type": "assistant", "uuid": _uuid(rng), "timestamp": self._tick(500, 4000)}
        if not self.f.version.startswith("1."):
            body["error"] = err
        body["isApiErrorMessage"] = True
        if self.f.new_order:
            body["apiErrorStatus"] = status
        self._emit(c, self._rec(c, body))
        self.count["synthetic_messages"] += 1

    # ---- blocks

    def _text_block(self, median: int) -> tuple[dict, int]:
        """Assistant text block and its token estimate."""
        t = self._prose(median, 1.0, 10, 12_000)
        return {"type": "text", "text": t}, len(t) // 4 + 1

    def _thinking_block(self) -> tuple[dict, int]:
        """Thinking block: text up to 2.1.42, empty text with only the signature from 2.1.78."""
        rng = self.rng
        sig = _slice(rng, self.pools.sig, _ln(rng, 900, 0.8, 200, 12_000) // 4 * 4, "")
        if self.f.new_order:
            return {"type": "thinking", "thinking": "", "signature": sig}, rng.randint(40, 3000)
        t = self._prose(900, 0.9, 40, 9_000)
        return {"type": "thinking", "thinking": t, "signature": sig}, len(t) // 4 + 1

    def _tool_block(self, name: str, inp: dict) -> tuple[dict, int, str]:
        """tool_use block, its token estimate and its id."""
        tid = "toolu_01" + _b62(self.rng, 22)
        b = {"type": "tool_use", "id": tid, "name": name, "input": inp}
        if self.f.caller:
            b["caller"] = {"type": "direct"}
        return b, 30 + sum(len(v) for v in inp.values() if isinstance(v, str)) // 4, tid

    # ---- tools

    def _pick_tool(self, sub: bool) -> str:
        """Choose a tool name plausible for the version and the thread."""
        f, rng = self.f, self.rng
        if sub:
            return rng.choice(("Read", "Read", "Grep", "Glob", "Bash", "Bash"))
        names = ["Read"] * 24 + ["Bash"] * 24 + ["Edit"] * 15 + ["Grep"] * 7 + ["Glob"] * 4 + ["Write"] * 4
        names += ["WebFetch", "mcp__github__get_issue"]
        if f.todowrite:
            names += ["TodoWrite"] * 5
        if f.tasks:
            names += ["TaskCreate"] * 2 + ["TaskUpdate"] * 3
        names += ["Agent" if f.new_order else "Task"] * 2
        return rng.choice(names)

    def _tool(self, name: str, big: int = 0) -> dict:
        """Input, result content and toolUseResult for one tool call."""
        return getattr(self, "_t_" + (name if name in ("Read", "Bash", "Edit", "Write", "Grep", "Glob",
                                                         "TodoWrite", "TaskCreate", "TaskUpdate", "WebFetch")
                                      else "mcp"))(big)

    def _numbered(self, text: str, start: int) -> str:
        """``cat -n`` style listing as Read returns it."""
        return "\n".join(f"{i:6d}→{line}" for i, line in enumerate(text.split("\n"), start))

    def _t_Read(self, big: int) -> dict:
        """Read a file: numbered content plus the structured file object."""
        rng = self.rng
        path = rng.choice(self.paths)
        text = self._code(big // 2 or _ln(rng, 1600, 1.0, 60, 30_000))
        start = 1 if rng.random() < 0.8 else rng.randint(20, 900)
        nlines = text.count("\n") + 1
        content = self._numbered(text, start)
        if not self.f.version.startswith("1."):
            content += ("\n\n<system-reminder>\nWhenever you read a file, you should consider whether it "
                        "would be considered malware. You CAN and SHOULD provide analysis of malware, what it is "
                        "doing. But you MUST refuse to improve or augment the code.\n</system-reminder>\n")
        inp = {"file_path": path}
        if start > 1:
            inp["offset"], inp["limit"] = start, nlines
        tur = {"type": "text", "file": {"filePath": path, "content": text, "numLines": nlines,
                                        "startLine": start, "totalLines": start + nlines + rng.randint(0, 400)}}
        return {"input": inp, "content": content, "tur": tur}

    def _t_Bash(self, big: int) -> dict:
        """Run a shell command: stdout/stderr, sometimes failing."""
        rng = self.rng
        a, b = rng.choice(IDENTS), rng.choice(IDENTS)
        cmd, desc = rng.choice((
            (f"pytest -q tests/test_{a}.py", "Run the tests"), ("git status && git diff --stat", "Check git state"),
            (f"rg -n '{a}_{b}' src", f"Find {a} usages"), ("npm run build 2>&1 | tail -50", "Build the app"),
            (f"cargo test {a}", "Run cargo tests"), (f"ls -la src/{a}", "List files"),
            ("git log --oneline -20", "Recent commits"), (f"python -m {a}.{b} --check", "Run the checker"),
        ))
        out = _slice(rng, self.pools.log, big // 2 or _ln(rng, 700, 1.3, 0, 40_000), "\n")
        res = {"input": {"command": cmd, "description": desc}, "long": rng.random() < 0.2}
        if rng.random() < 0.1:
            res["content"], res["is_error"], res["tur"] = f"Exit code 1\n{out}", True, f"Error: Exit code 1\n{out}"
            return res
        tur = {"stdout": out, "stderr": "", "interrupted": False, "isImage": False}
        if self.f.turn_duration:
            tur["noOutputExpected"] = False
        res["content"], res["tur"] = out, tur
        return res

    def _t_Edit(self, big: int) -> dict:
        """Edit a file: old/new strings, the original file and a structured patch."""
        rng = self.rng
        path = rng.choice(self.paths)
        old = self._code(_ln(rng, 260, 0.8, 20, 3000)).rstrip("\n")
        new = old + "\n" + self._code(_ln(rng, 200, 0.9, 10, 3000)).rstrip("\n")
        original = self._code(_ln(rng, 3500, 0.9, 200, 40_000))
        start = rng.randint(1, 400)
        ol, nl = old.split("\n"), new.split("\n")
        patch = [{"oldStart": start, "oldLines": len(ol), "newStart": start, "newLines": len(nl),
                  "lines": [" " + x for x in ol] + ["+" + x for x in nl[len(ol):]]}]
        self.edited[path] = self.edited.get(path, 0) + 1
        if self.f.new_order:
            content = f"The file {path} has been updated successfully."
        else:
            content = (f"The file {path} has been updated. Here's the result of running `cat -n` on a snippet "
                       f"of the edited file:\n" + self._numbered(new, start))
        tur = {"filePath": path, "oldString": old, "newString": new, "originalFile": original,
               "structuredPatch": patch, "userModified": False, "replaceAll": False}
        return {"input": {"file_path": path, "old_string": old, "new_string": new}, "content": content,
                "tur": tur, "edit": path}

    def _t_Write(self, big: int) -> dict:
        """Create a file."""
        path = self._new_path()
        self.paths.append(path)
        text = self._code(_ln(self.rng, 1500, 0.9, 50, 20_000))
        self.edited[path] = self.edited.get(path, 0) + 1
        return {"input": {"file_path": path, "content": text}, "content": f"File created successfully at: {path}",
                "tur": {"type": "create", "filePath": path, "content": text, "structuredPatch": [],
                        "originalFile": None}, "edit": path}

    def _t_Grep(self, big: int) -> dict:
        """Search file contents."""
        rng = self.rng
        files = rng.sample(self.paths, min(len(self.paths), rng.randint(0, 12)))
        pattern = f"{rng.choice(IDENTS)}_{rng.choice(IDENTS)}"
        content = f"Found {len(files)} files\n" + "\n".join(files) if files else "No files found"
        return {"input": {"pattern": pattern, "output_mode": "files_with_matches"}, "content": content,
                "tur": {"mode": "files_with_matches", "filenames": files, "numFiles": len(files)}}

    def _t_Glob(self, big: int) -> dict:
        """Match file names."""
        rng = self.rng
        files = rng.sample(self.paths, min(len(self.paths), rng.randint(1, 25)))
        return {"input": {"pattern": rng.choice(("**/*.py", "src/**/*.ts", "**/*.rs", "tests/**"))},
                "content": "\n".join(files),
                "tur": {"filenames": files, "durationMs": rng.randint(3, 900), "numFiles": len(files),
                        "truncated": False}}

    def _t_TodoWrite(self, big: int) -> dict:
        """Rewrite the whole todo list, advancing statuses."""
        rng = self.rng
        old = [dict(t) for t in self.todos]
        if not self.todos or all(t["status"] == "completed" for t in self.todos):
            self.todos = []
            for i in range(rng.randint(3, 9)):
                verb = rng.choice(("Add", "Fix", "Write", "Update", "Run"))
                obj = f"{rng.choice(IDENTS)} {rng.choice(IDENTS)}"
                if self.f.old_todo_items:
                    item = {"content": f"{verb} {obj}", "status": "pending",
                            "priority": rng.choice(("high", "medium", "low")), "id": str(i + 1)}
                else:
                    item = {"content": f"{verb} {obj}", "status": "pending",
                            "activeForm": f"{verb.rstrip('e')}ing {obj}"}
                self.todos.append(item)
            self.todos[0]["status"] = "in_progress"
        else:
            for t in self.todos:
                if t["status"] == "in_progress":
                    t["status"] = "completed"
                    break
            for t in self.todos:
                if t["status"] == "pending":
                    t["status"] = "in_progress"
                    break
        new = [dict(t) for t in self.todos]
        return {"input": {"todos": new},
                "content": "Todos have been modified successfully. Ensure that you continue to use the todo list "
                           "to track your progress. Please proceed with the current tasks if applicable",
                "tur": {"oldTodos": old, "newTodos": new}}

    def _t_TaskCreate(self, big: int) -> dict:
        """Create a task (2.1.29+ task tools)."""
        rng = self.rng
        tid = str(len(self.tasks) + 1)
        verb = rng.choice(("Implement", "Test", "Document", "Benchmark"))
        subject = f"{verb} {rng.choice(IDENTS)} {rng.choice(IDENTS)}"
        self.tasks[tid] = "pending"
        return {"input": {"subject": subject, "description": self._prose(200, 0.6),
                          "activeForm": f"Working on {subject.lower()}"},
                "content": f"Task #{tid} created successfully: {subject}",
                "tur": {"task": {"id": tid, "subject": subject}}}

    def _t_TaskUpdate(self, big: int) -> dict:
        """Move a task to its next status."""
        if not self.tasks:
            return self._t_TaskCreate(big)
        open_ = [k for k, s in self.tasks.items() if s != "completed"] or list(self.tasks)
        tid = open_[0]
        frm = self.tasks[tid]
        to = {"pending": "in_progress", "in_progress": "completed", "completed": "completed"}[frm]
        self.tasks[tid] = to
        return {"input": {"taskId": tid, "status": to}, "content": f"Updated task #{tid} status",
                "tur": {"success": True, "taskId": tid, "updatedFields": ["status"],
                        "statusChange": {"from": frm, "to": to}}}

    def _t_WebFetch(self, big: int) -> dict:
        """Fetch a URL and summarise it."""
        rng = self.rng
        url = f"https://docs.example.org/{rng.choice(IDENTS)}/{rng.choice(IDENTS)}"
        text = self._prose(1200, 0.8)
        return {"input": {"url": url, "prompt": self._prose(120, 0.5)}, "content": text,
                "tur": {"bytes": len(text) * 9, "code": 200, "codeText": "OK", "result": text,
                        "durationMs": rng.randint(300, 9000), "url": url}}

    def _t_mcp(self, big: int) -> dict:
        """An MCP tool whose toolUseResult is a list of blocks."""
        rng = self.rng
        blocks = [{"type": "text", "text": self._prose(900, 0.8)}]
        return {"input": {"owner": "acme", "repo": rng.choice(IDENTS), "issue_number": rng.randint(1, 4000)},
                "content": blocks, "tur": blocks}

    # ---- user-side records

    def _prompt_text(self) -> str:
        """A typed prompt."""
        rng = self.rng
        lead = rng.choice(("Can you", "Please", "Let's", "I want to", "Now", "OK,", "Next:"))
        text = self._prose(260, 1.1, 30, 8000)
        return f"{lead} {text[0].lower()}{text[1:]}"

    def _user_prompt(self, c: _Ctx, content, meta: bool = False, extra: dict | None = None,
                     uid: str | None = None) -> dict:
        """Emit a user prompt record (string or block-array content)."""
        f, rng = self.f, self.rng
        uid = uid or _uuid(rng)
        body = {"type": "user", "message": {"role": "user", "content": content}}
        if meta:
            body["isMeta"] = True
        body["uuid"] = uid
        body["timestamp"] = self._tick(5_000, 240_000)
        if extra:
            body.update(extra)
        top = not (meta or c.side)
        if f.thinking_meta and top and rng.random() < 0.5:
            body["thinkingMetadata"] = ({"level": "high", "disabled": False, "triggers": []}
                                        if rng.random() < 0.6 else {"maxThinkingTokens": 31999})
        if f.user_todos and top:
            body["todos"] = [dict(t) for t in self.todos]
        if f.permission_mode and top:
            body["permissionMode"] = rng.choice(("default", "default", "acceptEdits", "bypassPermissions", "plan"))
        if f.ai_title and top:
            body["promptSource"] = "typed"
        if f.origin and top:
            body["origin"] = {"kind": "human"}
        self._grow(c, content)
        return self._emit(c, self._rec(c, body, prompt_id=_uuid(rng) if f.new_order else None))

    def _grow(self, c: _Ctx, content) -> None:
        """Add the token estimate of some content to the thread's pending context."""
        if isinstance(content, str):
            c.fresh += len(content) // 4 + 4
        else:
            for b in content:
                if b.get("type") == "image":
                    c.fresh += 1600
                else:
                    t = b.get("text") or b.get("content") or ""
                    c.fresh += (len(t) if isinstance(t, str) else 400) // 4 + 4

    def _tool_result(self, c: _Ctx, tid: str, res: dict, src: dict) -> dict:
        """Emit the user record carrying one tool_result block and its toolUseResult."""
        f, rng = self.f, self.rng
        block = {"tool_use_id": tid, "type": "tool_result", "content": res["content"]}
        if res.get("is_error"):
            block["is_error"] = True
        body = {"type": "user", "message": {"role": "user", "content": [block]}, "uuid": _uuid(rng),
                "timestamp": self._tick(100, 30_000 if res.get("long") else 4_000), "toolUseResult": res["tur"]}
        if f.source_tool:
            body["sourceToolAssistantUUID"] = src["uuid"]
        c.fresh += len(res["content"]) // 4 + 10 if isinstance(res["content"], str) else 300
        return self._emit(c, self._rec(c, body, prompt_id=_uuid(rng) if f.new_order else None))

    def _image_prompt(self, c: _Ctx, huge: bool, uid: str) -> None:
        """A prompt with a pasted base64 screenshot."""
        rng = self.rng
        cap = max(30_000, (self.budget - self.size) // 2)
        n = (rng.randint(900_000, 1_050_000) if huge else _ln(rng, 150_000, 0.7, 30_000, min(cap, 400_000))) // 4 * 4
        img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": self.pools.image[:n]}}
        self._user_prompt(c, [{"type": "text", "text": self._prompt_text()}, img], uid=uid)
        self.count["images"] += 1

    # ---- progress, hooks, attachments, system

    def _progress(self, c: _Ctx, data: dict, parent_tool: str, tool_id: str, ts: str | None = None) -> None:
        """Emit a progress record."""
        body = {"type": "progress", "data": data, "parentToolUseID": parent_tool, "toolUseID": tool_id,
                "timestamp": ts or self._tick(50, 1500), "uuid": _uuid(self.rng)}
        self._emit(c, self._rec(c, body))

    def _mirror(self, sub: _Ctx, d: dict) -> None:
        """agent_progress copy of a subagent record in the parent thread (usage included)."""
        parent, tool_id, prompt = sub.mirror
        inner = {"type": d["type"], "message": d["message"]}
        if "requestId" in d:
            inner["requestId"] = d["requestId"]
            self.count["agent_progress_assistant_copies"] += 1
        inner["uuid"], inner["timestamp"] = d["uuid"], d["timestamp"]
        data = {"message": inner, "normalizedMessages": [], "type": "agent_progress", "prompt": prompt,
                "agentId": sub.agent}
        self._progress(parent, data, tool_id, "agent_msg_01" + _b62(self.rng, 22), d["timestamp"])

    def _hook(self, c: _Ctx, event: str, name: str, tool_id: str) -> None:
        """A hook firing, in the form of the version (untyped system, progress or attachment)."""
        f, rng = self.f, self.rng
        cmd = rng.choice(('"${CLAUDE_PLUGIN_ROOT}/scripts/notify.sh" busy', "uv run ruff check --fix", "callback"))
        if f.attachments:
            att = {"type": "hook_success", "hookName": name, "toolUseID": tool_id, "hookEvent": event,
                   "content": "", "stdout": "ok\n", "stderr": "", "exitCode": 0, "command": cmd,
                   "durationMs": rng.randint(20, 1500)}
            self._attachment(c, att)
        elif f.progress:
            self._progress(c, {"type": "hook_progress", "hookEvent": event, "hookName": name, "command": cmd},
                           tool_id, tool_id)
        elif f.untyped_system and event == "PostToolUse":
            body = {"type": "system", "content": f"Running \x1b[1m{name}\x1b[22m...", "isMeta": False,
                    "timestamp": self._tick(20, 800), "uuid": _uuid(rng), "toolUseID": tool_id, "level": "info"}
            self._emit(c, self._rec(c, body))

    def _attachment(self, c: _Ctx, att: dict) -> None:
        """Emit an attachment record (2.1.114+)."""
        body = {"attachment": att, "type": "attachment", "uuid": _uuid(self.rng), "timestamp": self._tick(1, 300)}
        self._emit(c, self._rec(c, body))

    def _system(self, c: _Ctx, subtype: str, fields: dict, parent=_CHAIN, trailer: dict | None = None) -> dict:
        """Emit a system record of a given subtype."""
        body = {"type": "system", "subtype": subtype}
        body.update(fields)
        body["timestamp"] = self._tick(1, 400)
        body["uuid"] = _uuid(self.rng)
        if trailer:
            body.update(trailer)
        return self._emit(c, self._rec(c, body, parent=parent))

    def _small(self, kind: str) -> None:
        """One of the small uuid-less metadata records."""
        rng, sid = self.rng, self.p.sid
        d = {
            "custom-title": lambda: {"type": "custom-title", "customTitle": self._title(), "sessionId": sid},
            "agent-name": lambda: {"type": "agent-name", "agentName": rng.choice(SURNAMES), "sessionId": sid},
            "ai-title": lambda: {"type": "ai-title", "aiTitle": self._title(), "sessionId": sid},
            "last-prompt": lambda: {"type": "last-prompt", "lastPrompt": self._prose(120, 0.6)[:200],
                                    "sessionId": sid},
            "permission-mode": lambda: {"type": "permission-mode",
                                        "permissionMode": rng.choice(("default", "acceptEdits", "plan")),
                                        "sessionId": sid},
            "mode": lambda: {"type": "mode", "mode": "normal", "sessionId": sid},
            "pr-link": lambda: {"type": "pr-link", "prNumber": rng.randint(1, 900),
                                "prUrl": f"https://github.com/acme/{rng.choice(IDENTS)}/pull/{rng.randint(1, 900)}",
                                "prRepository": "acme/app", "timestamp": _iso(self.clock), "sessionId": sid},
        }[kind]()
        self._meta_rec(self.main, d)

    def _snapshot(self, message_id: str, update: bool) -> None:
        """file-history-snapshot of the files edited so far."""
        rng = self.rng
        ts = _iso(self.clock)
        backups = {p: {"backupFileName": f"{_hex(rng, 16)}@v{v}", "version": v, "backupTime": ts}
                   for p, v in sorted(self.edited.items())[:30]}
        snapshot = {"messageId": message_id, "trackedFileBackups": backups, "timestamp": ts}
        self._meta_rec(self.main, {"type": "file-history-snapshot", "messageId": message_id, "snapshot": snapshot,
                                   "isSnapshotUpdate": update})

    def _summary(self, leaf: str) -> None:
        """A summary record (no uuid, no timestamp)."""
        self._meta_rec(self.main, {"type": "summary", "summary": self._title(), "leafUuid": leaf})

    # ---- session flow

    def run(self) -> None:
        """Generate the whole session up to its byte budget."""
        rng = self.rng
        self._header()
        turn = 0
        while True:
            self._turn(turn)
            turn += 1
            if (turn == 1 and self.force & {"resume", "concat"}) or (self.size < self.budget and rng.random() < 0.04):
                self._resume()
            if self.size + 0.5 * self.size / turn >= self.budget:  # stop if half a mean turn would overshoot
                break
        if self.f.last_prompt:
            self._small("last-prompt")
        if self.f.custom_title and rng.random() < 0.5:
            self._small("custom-title")
            self._small("agent-name")

    def _header(self) -> None:
        """Head-of-file records: summaries, queue operations, modes, SessionStart hooks, warmups."""
        p, f, rng, c = self.p, self.f, self.rng, self.main
        if f.summaries and rng.random() < 0.25:
            for leaf in p.summary_leaves:
                self._summary(leaf)
        if f.queue_ops and self.entrypoint == "sdk-cli":
            prompt = [{"type": "text", "text": self._prompt_text()}]
            self._meta_rec(c, {"type": "queue-operation", "operation": "enqueue", "timestamp": _iso(self.clock),
                               "content": prompt, "sessionId": p.sid})
            self._meta_rec(c, {"type": "queue-operation", "operation": "dequeue",
                               "timestamp": self._tick(1, 40), "sessionId": p.sid})
        if f.attachments:
            self._small("permission-mode")
        if f.ai_title:
            self._small("mode")
        if self.hooks:
            self._hook(c, "SessionStart", "SessionStart:startup", _uuid(rng))
        if f.layout == "old" and rng.random() < 0.6:
            self._warmup()

    def _warmup(self) -> None:
        """A 2.0.x "Warmup" sidechain: tiny agent-<8hex>.jsonl with one light-model reply."""
        aid = _hex(self.rng, 8)
        sub = self._ctx(self._file(f"{self.proj}/agent-{aid}.jsonl"), True, aid, self.cwd, self.f.light_model)
        sub.fresh = self.rng.randint(9_000, 14_000)
        self._user_prompt(sub, "Warmup")
        self._group(sub, [self._text_block(500)], "end_turn")
        self.count["subagent_files_old"] += 1
        self.count["warmup_agents"] += 1

    def _resume(self) -> None:
        """A break and a resume: hooks, maybe a version upgrade, a mid-file summary (<= 2.1.22)."""
        rng, c = self.rng, self.main
        self.clock += rng.randint(3_600_000, 14 * 3_600_000)
        if rng.random() < 0.3:
            i = VERSIONS.index(self.version)
            nxt = VERSIONS[min(i + 1, len(VERSIONS) - 1)]
            if _Flags(nxt).layout == self.f.layout and _Flags(nxt).new_order == self.f.new_order:
                self._set_version(nxt)
                self._envelope(c)
        if self.f.summaries:
            if "concat" in self.force and c.out:
                self.force.discard("concat")
                self._concat_summary(c, c.parent or self.p.leaf_uuid)
            else:
                self._summary(c.parent or self.p.leaf_uuid)
            self.count["mid_file_summaries"] += 1
        if self.hooks or self.f.attachments:
            self._hook(c, "SessionStart", "SessionStart:resume", _uuid(rng))
        self.force.discard("resume")

    def _pre_prompt(self, turn: int) -> None:
        """Things that happen between turns: slash commands, date changes, queued prompts."""
        f, rng, c = self.f, self.rng, self.main
        if f.attachments and self.clock // DAY_MS != self.prompt_day:
            self._attachment(c, {"type": "date_change", "newDate": _iso(self.clock)[:10]})
        self.prompt_day = self.clock // DAY_MS
        if "local_command" in self.force or rng.random() < 0.04:
            self.force.discard("local_command")
            self._local_command()
        if f.queue_ops and rng.random() < 0.03:
            self._meta_rec(c, {"type": "queue-operation", "operation": "enqueue", "timestamp": self._tick(1, 9000),
                               "content": self._prompt_text()[:300], "sessionId": self.p.sid})
            self._meta_rec(c, {"type": "queue-operation", "operation": rng.choice(("dequeue", "remove")),
                               "timestamp": self._tick(1, 9000), "sessionId": self.p.sid})

    def _local_command(self) -> None:
        """A local slash command: system/local_command (2.1.12+) or caveat + user records."""
        rng, c = self.rng, self.main
        cmd = rng.choice(("mcp", "cost", "context", "model", "status"))
        head = (f"<command-name>/{cmd}</command-name>\n            <command-message>{cmd}</command-message>\n"
                f"            <command-args></command-args>")
        stdout = f"<local-command-stdout>{self._prose(160, 0.6)}</local-command-stdout>"
        if self.f.local_command:
            self._system(c, "local_command", {"content": head, "level": "info"}, trailer={"isMeta": False})
            self._system(c, "local_command", {"content": stdout, "level": "info"}, trailer={"isMeta": False})
        else:
            self._user_prompt(c, "Caveat: The messages below were generated by the user while running local "
                                 "commands. DO NOT respond to these messages or otherwise consider them in your "
                                 "response unless the user explicitly asks you to.", meta=True)
            self._user_prompt(c, head, meta=False)
            self._user_prompt(c, stdout, meta=False)
        self.count["local_commands"] += 1

    def _turn(self, turn: int) -> None:
        """One user prompt and the agent loop that answers it."""
        f, rng, c = self.f, self.rng, self.main
        self._pre_prompt(turn)
        t0 = self.clock
        remaining = self.budget - self.size
        self.prompt_uuid = pid = _uuid(rng)
        if f.file_history:
            self._snapshot(pid, False)
        if ("image" in self.force and remaining > 80_000) or (rng.random() < 0.012 and remaining > 600_000):
            self.force.discard("image")
            self._image_prompt(c, remaining > 1_500_000 and rng.random() < 0.2, pid)
        else:
            self._user_prompt(c, self._prompt_text(), uid=pid)
        if f.attachments:
            if turn == 0:
                names = ["TaskCreate", "TaskUpdate", "WebFetch"]
                self._attachment(c, {"type": "deferred_tools_delta", "addedNames": names, "addedLines": names,
                                     "removedNames": []})
                self._attachment(c, {"type": "skill_listing", "content": self._prose(1800, 0.4), "skillCount": 7,
                                     "isInitial": True})
            if self.hooks:
                self._hook(c, "UserPromptSubmit", "UserPromptSubmit", _uuid(rng))
        n_steps = min(40, 1 + int(rng.expovariate(1 / 5)))
        messages = 1
        size0 = self.size
        for step in range(n_steps):
            last = step == n_steps - 1 or self.size + 0.5 * (self.size - size0) / (step or 1) >= self.budget
            if ("compact" in self.force and step == 1) or c.tokens > c.limit:
                self._compact(c)
            if f.api_error and ("api_error" in self.force or rng.random() < 0.02):
                self.force.discard("api_error")
                self._api_errors(c)
            if "synthetic" in self.force or rng.random() < 0.004:
                self.force.discard("synthetic")
                self._synthetic(c)
                break
            messages += self._step(c, last, turn, step)
            if last:
                break
        self._end_turn(t0, messages)

    def _step(self, c: _Ctx, last: bool, turn: int, step: int) -> int:
        """One API call (one line per block) and the tool results it asks for."""
        f, rng = self.f, self.rng
        blocks: list[tuple[dict, int]] = []
        if rng.random() < (0.45 if f.new_order else 0.3):
            blocks.append(self._thinking_block())
        if last:
            blocks.append(self._text_block(700))
            leaf = self.p.leaf_uuid if turn == 0 else None
            self._group(c, blocks, "end_turn", leaf=leaf)
            return len(blocks)
        if rng.random() < 0.55:
            blocks.append(self._text_block(220))
        jobs = []
        for _ in range(rng.choice((1, 1, 1, 1, 1, 2, 2, 3))):
            name = self._forced_tool(step) or self._pick_tool(False)
            if name in ("Task", "Agent"):
                if jobs and any(j[0] in ("Task", "Agent") for j in jobs):
                    name = "Read"
                elif self.agents_made >= 6:
                    name = "Bash"
            big = self._big_size() if name in ("Read", "Bash") else 0
            if name in ("Task", "Agent"):
                inp = self._agent_input(name)
                res = None
            else:
                res = self._tool(name, big)
                inp = res["input"]
                if big:
                    self.count["large_tool_results"] += 1
            block, tokens, tid = self._tool_block(name, inp)
            blocks.append((block, tokens))
            jobs.append((name, tid, res, inp))
        recs = self._group(c, blocks, "tool_use")
        src = recs[-1]
        n = len(recs)
        if rng.random() < 0.015 and all(j[0] not in ("Task", "Agent") for j in jobs):  # user hits Esc
            self._user_prompt(c, [{"type": "text", "text": "[Request interrupted by user for tool use]"}])
            return n + 1
        for name, tid, res, inp in jobs:
            if name in ("Task", "Agent"):
                res = self._run_agent(name, tid, inp)
            elif res.get("long") and f.progress:
                self._bash_progress(c, tid, res["content"])
            self._tool_result(c, tid, res, src)
            n += 1
            if res.get("edit") and f.file_history and rng.random() < 0.5:
                self._snapshot(self.prompt_uuid, True)
            if self.hooks:
                self._hook(c, "PostToolUse", f"PostToolUse:{name}", tid)
        return n

    def _forced_tool(self, step: int) -> str | None:
        """A tool name that a forced feature still needs, if any."""
        agent = "Agent" if self.f.new_order else "Task"
        needs = {"agent_inline": agent, "agent_old": agent, "agent_new": agent, "agent_progress": agent,
                 "agent_meta": agent, "todowrite": "TodoWrite", "tasks": "TaskCreate"}
        for feature, name in needs.items():
            if feature in self.force:
                if feature in ("agent_inline", "agent_old", "agent_new") and self.f.layout not in feature:
                    continue
                self.force.discard(feature)
                if feature == "agent_progress":
                    self.force.discard("agent_new")
                return name
        if "big" in self.force and step >= 1:
            return "Bash"
        return None

    def _big_size(self) -> int:
        """Size of a 50-300 KB tool output when one is due, else 0."""
        rng = self.rng
        remaining = self.budget - self.size
        if "big" in self.force and remaining > 60_000:
            self.force.discard("big")
            return rng.randint(50_000, int(min(300_000, max(50_001, remaining // 2))))
        if rng.random() < 0.006 and remaining > 900_000:
            return rng.randint(50_000, 300_000)
        return 0

    def _bash_progress(self, c: _Ctx, tid: str, output: str) -> None:
        """bash_progress records streamed while a long command runs."""
        rng = self.rng
        lines = output.split("\n")
        k = rng.randint(1, 3)
        for i in range(1, k + 1):
            upto = "\n".join(lines[: max(1, len(lines) * i // (k + 1))])
            tail = "\n".join(upto.split("\n")[-5:])
            self._progress(c, {"type": "bash_progress", "output": tail, "fullOutput": upto[-20_000:],
                               "elapsedTimeSeconds": 3 * i, "totalLines": upto.count("\n") + 1, "timeoutMs": 120000},
                           tid, f"bash-progress-{i - 1}", self._tick(2_500, 3_500))

    def _api_errors(self, c: _Ctx) -> None:
        """system/api_error retries before a response (2.1.5..2.1.17)."""
        rng = self.rng
        n = rng.randint(1, 3)
        for attempt in range(1, n + 1):
            err = {"status": 529, "headers": {}, "requestID": "req_011C" + _b62(rng, 20),
                   "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}
            self._system(c, "api_error", {"level": "error", "error": err, "retryInMs": 500 * 2 ** attempt,
                                          "retryAttempt": attempt, "maxRetries": 10})
            self.clock += 500 * 2 ** attempt
        self.count["api_errors"] += n

    def _compact(self, c: _Ctx) -> None:
        """Compaction: compact_boundary + isCompactSummary user record (2.0.76..2.1.42)."""
        rng, f = self.rng, self.f
        self.force.discard("compact")
        pre = c.tokens + c.fresh
        if f.compact:
            logical = c.parent
            meta = {"trigger": rng.choice(("auto", "auto", "manual")), "preTokens": pre}
            b = self._system(c, "compact_boundary", {"content": "Conversation compacted", "isMeta": False},
                             parent=None, trailer={"level": "info", "logicalParentUuid": logical,
                                                   "compactMetadata": meta})
            text = ("This session is being continued from a previous conversation that ran out of context. "
                    "The conversation is summarized below:\n" + self._prose(5000, 0.5, 800, 20_000))
            body = {"type": "user", "message": {"role": "user", "content": text}, "isVisibleInTranscriptOnly": True,
                    "isCompactSummary": True, "uuid": _uuid(rng), "timestamp": self._tick(20_000, 90_000)}
            self._emit(c, self._rec(c, body, parent=b["uuid"]))
            if f.progress:
                self._hook(c, "SessionStart", "SessionStart:compact", _uuid(rng))
            self.count["compactions"] += 1
        c.tokens, c.fresh = 0, rng.randint(15_000, 30_000)

    def _end_turn(self, t0: int, messages: int) -> None:
        """Stop hooks, turn duration, /btw replays and titles after a turn."""
        f, rng, c = self.f, self.rng, self.main
        if self.hooks and f.stop_hook:
            info = {"command": "uv run ruff check", "durationMs": rng.randint(40, 900)}
            fields = {"hookCount": 1, "hookInfos": [info],
                      "hookErrors": [], "preventedContinuation": False, "stopReason": "",
                      "hasOutput": rng.random() < 0.5, "level": "suggestion"}
            self._system(c, "stop_hook_summary", fields, trailer={"toolUseID": _uuid(rng)})
        if f.turn_duration:
            fields = {"durationMs": self.clock - t0}
            if f.attachments:
                fields["messageCount"] = messages
            if f.origin:
                fields["pendingBackgroundAgentCount"] = 0
            self._system(c, "turn_duration", fields, trailer={"isMeta": False})
        if f.new_order and self.last_msg and ("btw" in self.force or rng.random() < 0.03):
            self.force.discard("btw")
            self._btw()
        if f.ai_title and rng.random() < 0.15:
            self._small("ai-title")
        if f.last_prompt and rng.random() < 0.2:
            self._small("last-prompt")
            if f.attachments:
                self._small("permission-mode")
        if f.pr_link and rng.random() < 0.01:
            self._small("pr-link")
        if f.attachments and self.tasks and rng.random() < 0.2:
            tasks = [{"id": k, "subject": f"task {k}", "status": v} for k, v in sorted(self.tasks.items())]
            self._attachment(c, {"type": "task_reminder", "content": tasks, "itemCount": len(tasks)})

    def _btw(self) -> None:
        """Sidechain /btw replay: same message.id as the last response, new requestId, isSidechain."""
        rng, c = self.rng, self.main
        side = self._ctx(c.out, True, None, self.cwd, c.model)
        side.parent = c.parent
        side.tokens, side.fresh = c.tokens, c.fresh
        self._user_prompt(side, f"/btw {self._prompt_text()[:200]}")
        msg = dict(self.last_msg)
        msg["content"] = [self._text_block(300)[0]]
        body = {"message": msg, "requestId": "req_011C" + _b62(rng, 20), "type": "assistant", "uuid": _uuid(rng),
                "timestamp": self._tick(800, 6000)}
        self._emit(side, self._rec(side, body))
        self.count["btw_replays"] += 1

    # ---- subagents

    def _agent_input(self, name: str) -> dict:
        """Task (<= 2.1.4x) / Agent (2.1.78+) tool input."""
        rng = self.rng
        verb = rng.choice(("Explore", "Review", "Research", "Audit"))
        inp = {"description": f"{verb} {rng.choice(IDENTS)} {rng.choice(IDENTS)}",
               "prompt": self._prose(700, 0.7, 80, 6000),
               "subagent_type": rng.choice(("general-purpose", "general-purpose", "Explore", "Plan"))}
        if name == "Agent" and rng.random() < 0.3:
            inp["isolation"] = "worktree"
        return inp

    def _run_agent(self, name: str, tool_id: str, inp: dict) -> dict:
        """Run a subagent in the layout of the version; return its tool result."""
        f, rng, c = self.f, self.rng, self.main
        self.agents_made += 1
        layout, cwd = f.layout, self.cwd
        drop = False
        if layout == "inline":
            aid, out = None, c.out
        elif layout == "old":
            aid = _hex(rng, 8)
            out = self._file(f"{self.proj}/agent-{aid}.jsonl")
            self.count["subagent_files_old"] += 1
        else:
            aid = ("a" + _hex(rng, 16)) if f.new_order else _hex(rng, 7)
            drop = f.progress and rng.random() < 0.08  # partial tree: only the progress copies remain
            key = f"{self.proj}/{self.p.sid}/subagents/agent-{aid}"
            out = [] if drop else self._file(key + ".jsonl")
            if inp.get("isolation"):
                cwd = f"{self.cwd}/.claude/worktrees/agent-{aid[:8]}"
            if f.attachments and not drop:
                meta = {"agentType": inp["subagent_type"]}
                if inp.get("isolation"):
                    meta["worktreePath"] = cwd
                meta["description"] = inp["description"]
                self.meta[key + ".meta.json"] = _encode(meta)
            self.count["subagent_files_dropped" if drop else "subagent_files_new"] += 1
        model = c.model if rng.random() < 0.6 else f.light_model
        sub = self._ctx(out, True, aid, cwd, model)
        sub.void = drop
        sub.fresh = rng.randint(6_000, 14_000)
        if f.progress and layout == "new":
            sub.mirror = (c, tool_id, inp["prompt"])
        size0 = self.size
        start = self.clock
        self._user_prompt(sub, inp["prompt"])
        budget = min(max(8_000, (self.budget - self.size) // 3), 400_000)
        calls = tools = 0
        result_text = ""
        while True:
            calls += 1
            done = self.size - size0 > budget or calls > 14 or (calls > 2 and rng.random() < 0.15)
            blocks = [self._thinking_block()] if rng.random() < 0.2 else []
            if done:
                tb = self._text_block(1200)
                result_text = tb[0]["text"]
                self._group(sub, blocks + [tb], "end_turn")
                break
            if rng.random() < 0.4:
                blocks.append(self._text_block(150))
            name_ = self._pick_tool(True)
            res = self._tool(name_)
            block, tokens, tid = self._tool_block(name_, res["input"])
            recs = self._group(sub, blocks + [(block, tokens)], "tool_use")
            self._tool_result(sub, tid, res, recs[-1])
            tools += 1
        usage = self._usage(rng.randint(1, 9), len(result_text) // 4 + 1, rng.randint(100, 3000),
                            sub.tokens, 0)
        text = [{"type": "text", "text": result_text}]
        if aid and not f.version.startswith("1."):
            note = f"agentId: {aid} (for resuming to continue this agent's work if needed)"
            text.append({"type": "text", "text": note})
        tur = {"status": "completed", "prompt": inp["prompt"]}
        if aid:
            tur["agentId"] = aid
        if f.new_order:
            tur["agentType"] = inp["subagent_type"]
        tur.update({"content": text[:1], "totalDurationMs": self.clock - start,
                    "totalTokens": sub.tokens + sub.fresh, "totalToolUseCount": tools, "usage": usage})
        return {"content": text, "tur": tur}

    # ---- output

    def write(self) -> Counter:
        """Write all files of the session; return counters including exact bytes and lines."""
        p, rng = self.p, self.rng
        cnt = self.count
        for key in sorted(self.files):
            lines = self.files[key]
            if not lines:
                continue
            if self.garbage_rate:
                lines = self._with_garbage(lines)
            data = "\n".join(lines)
            if key == self.main_key and p.torn:
                if p.torn == "partial":
                    data = data[: len(data) - max(1, len(lines[-1]) // 2)]
                cnt["torn_files"] += 1
            else:
                data += "\n"
            self._write(key, data, len(lines))
            cnt["max_line_chars"] = max(cnt["max_line_chars"], max(map(len, lines)))
        for key in sorted(self.meta):
            path = self.out / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.meta[key], encoding="utf-8")
            cnt["meta_files"] += 1
        if p.checkpoint_project is not None:
            lines = self.files[self.main_key]
            k = max(1, int(len(lines) * rng.uniform(0.4, 1.0)))
            key = f"{encode_cwd(self.cwds[p.checkpoint_project])}/{p.sid}.jsonl"
            self._write(key, "\n".join(lines[:k]) + "\n", k)
            cnt["checkpoint_copies"] += 1
            cnt["checkpoint_lines"] += k
        return cnt

    def _with_garbage(self, lines: list[str]) -> list[str]:
        """Insert non-JSON junk lines at ``garbage_rate``."""
        rng, out = self.rng, []
        for s in lines:
            if rng.random() < self.garbage_rate:
                out.append(rng.choice(("\x00\x00\x00\x00", "<<<<<<< HEAD", "not json at all", '{"type":"assist')))
                self.count["garbage_lines"] += 1
            out.append(s)
        return out

    def _write(self, key: str, data: str, n_lines: int) -> None:
        """Write one JSONL file and count it."""
        path = self.out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = data.encode("utf-8")
        path.write_bytes(raw)
        self.count["files"] += 1
        self.count["lines"] += n_lines
        self.count["bytes"] += len(raw)


def _special_file(plan: _Plan, cwd: str, out: Path) -> Counter:
    """Write an empty file or a summary-only file for a plan of that kind."""
    rng = random.Random(plan.seed)
    path = out / encode_cwd(cwd) / f"{plan.sid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    cnt: Counter = Counter(files=1)
    if plan.kind == "empty":
        path.write_bytes(b"")
        cnt["empty_files"] += 1
        return cnt
    lines = [_encode({"type": "summary", "summary": _title(rng), "leafUuid": leaf}) for leaf in plan.summary_leaves]
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(raw)
    cnt.update(summary_only_files=1, summary=len(lines), lines=len(lines), bytes=len(raw))
    return cnt


def _run_plan(args) -> Counter:
    """Generate one planned session (worker entry point)."""
    plan, cwds, out, seed, pool_size, garbage_rate = args
    cwd = cwds[plan.project]
    if plan.kind != "normal":
        return _special_file(plan, cwd, out)
    s = _Session(plan, cwd, cwds, out, _Pools.get(seed, pool_size), garbage_rate)
    s.run()
    cnt = s.write()
    cnt["sessions"] += 1
    return cnt


# --------------------------------------------------------------------------- public API

def generate(out: Path, target_bytes: int, seed: int = 0, garbage_rate: float = 0.0,
             workers: int = 1) -> dict:
    """Write a synthetic projects tree of about ``target_bytes`` JSONL bytes under ``out``; return stats.

    The output depends only on (target_bytes, seed, garbage_rate), never on ``workers``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cwds, plans = _plan(int(target_bytes), seed)
    pool_size = int(min(8_000_000, max(400_000, target_bytes // 16)))
    _Pools.get(seed, pool_size)  # build before forking so workers share it
    jobs = [(p, cwds, out, seed, pool_size, garbage_rate) for p in plans]
    total: Counter = Counter()
    if workers > 1 and len(plans) > 4:
        import multiprocessing
        ctx = multiprocessing.get_context("fork")
        jobs.sort(key=lambda j: -j[0].budget)  # big sessions first for load balance
        with ctx.Pool(workers) as pool:
            for cnt in pool.imap_unordered(_run_plan, jobs, chunksize=1):
                _merge(total, cnt)
    else:
        for job in jobs:
            _merge(total, _run_plan(job))
    return _stats(total, cwds, plans)


def _merge(total: Counter, cnt: Counter) -> None:
    """Add one session's counters to the total (maxima are maxed, not summed)."""
    longest = max(total["max_line_chars"], cnt.pop("max_line_chars", 0))
    total.update(cnt)
    total["max_line_chars"] = longest


def _stats(total: Counter, cwds: list[str], plans: list[_Plan]) -> dict:
    """Final stats dict in a stable key order."""
    stats = {
        "files": total["files"],
        "meta_files": total["meta_files"],
        "lines": total["lines"],
        "bytes": total["bytes"],
        "avg_line_bytes": round(total["bytes"] / max(1, total["lines"]), 1),
        "max_line_chars": total["max_line_chars"],
        "projects": len({encode_cwd(c) for c in cwds}),
        "sessions": total["sessions"],
        "empty_files": total["empty_files"],
        "summary_only_files": total["summary_only_files"],
        "assistant_records": total["assistant"],
        "user_records": total["user"],
        "system_records": total["system"],
        "progress_records": total["progress"],
        "attachment_records": total["attachment"],
        "summary_records": total["summary"],
        "versions": len({p.version for p in plans if p.kind == "normal"}),
    }
    for key in ("multi_line_groups", "partial_usage_groups", "agent_progress_assistant_copies",
                "subagent_files_old", "subagent_files_new", "subagent_files_dropped", "warmup_agents",
                "synthetic_messages", "btw_replays", "compactions", "api_errors", "local_commands",
                "mid_file_summaries", "concatenated_lines", "torn_files", "checkpoint_copies", "checkpoint_lines",
                "images", "large_tool_results", "garbage_lines"):
        stats[key] = total[key]
    stats["record_types"] = {k: total[k] for k in sorted(
        ("user", "assistant", "system", "progress", "attachment", "summary", "file-history-snapshot",
         "queue-operation", "custom-title", "agent-name", "ai-title", "last-prompt", "mode",
         "permission-mode", "pr-link"))}
    return stats


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: generate a tree and print its stats as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="output directory (plays the role of ~/.claude/projects)")
    ap.add_argument("--mb", type=float, required=True, help="target size in MB (10^6 bytes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--garbage-rate", type=float, default=0.0, help="fraction of non-JSON junk lines")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes (output does not depend on it)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    stats = generate(a.out, int(a.mb * 1_000_000), a.seed, a.garbage_rate, a.workers)
    stats["elapsed_s"] = round(time.perf_counter() - t0, 2)
    json.dump(stats, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

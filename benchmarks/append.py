"""Append throughput of the Store against the plain-insert ceiling, measured in the same run.

For batches of 1, 100 and 10,000 events of about 1 KB, appends per second through
`Store.append` (ids checked, versions assigned, payloads compressed, indexes kept), and the
ceiling: the same ids and payloads inserted into a bare table with one unique index, 10,000
rows a transaction, nothing else. Runs alternate so machine noise hits both sides alike;
medians are reported.

    python benchmarks/append.py [--json] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventstore import NewEvent, Store  # noqa: E402
from eventstore.storage import PAGE_SIZE, SETTINGS, use_small_pages  # noqa: E402

OLD_PAGE_SIZE = 16_384
"""The page size the store used before 4 KiB: its ceiling is measured too, to show the change
of page size is not what moves the ratio."""

WORDS = ("the build fails because the parser drops a trailing newline when the file is rotated so we "
         "retry with backoff and record the offset in the checkpoint table before commit test passes "
         "refactor module function class error warning token cache usage session agent tool result").split()
SIZES = {1: 2_000, 100: 50_000, 10_000: 100_000}
"""Batch size -> events appended per measurement."""


def payloads(n: int, seed: int) -> list[bytes]:
    """Realistic ~1 KB JSON payloads (varied words, ids and numbers)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(110, 150)))
        record = {"type": "note", "id": i, "session": f"s-{rng.randrange(50)}", "tokens": rng.randrange(10**6),
                  "text": text}
        out.append(json.dumps(record, separators=(",", ":")).encode())
    return out


def events_for(datas: list[bytes]) -> list[NewEvent]:
    rng = random.Random(len(datas))
    return [NewEvent(event_id=uuid.UUID(int=rng.getrandbits(128)).hex, stream=f"stream-{i % 100}", type="note.added",
                     entity="note", entity_id=str(i), op="create", data=d) for i, d in enumerate(datas)]


def measure_store(directory: Path, events: list[NewEvent], batch: int) -> float:
    with Store(directory / "store.db") as store:
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            store.append(events[start:start + batch])
        return len(events) / (time.perf_counter() - started)


def measure_ceiling(directory: Path, events: list[NewEvent], page_size: int = PAGE_SIZE) -> float:
    """The ceiling with the store's connection settings (page size, WAL, checkpoints, sync,
    cache), or another page size."""
    conn = apsw.Connection(str(directory / f"ceiling-{page_size}.db"))
    conn.execute(f"PRAGMA page_size = {page_size:d}")
    for setting in SETTINGS:
        if setting is not use_small_pages:
            setting(conn)
    conn.execute("CREATE TABLE rows (id BLOB NOT NULL UNIQUE, data BLOB NOT NULL)")
    rows = [(bytes.fromhex(e.event_id), e.data) for e in events]
    started = time.perf_counter()
    for start in range(0, len(rows), 10_000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO rows (id, data) VALUES (?, ?)", rows[start:start + 10_000])
        conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - started)
    conn.close()
    return rate


def run(rounds: int) -> dict:
    results: dict = {"ceiling": [], "ceiling_16k": [], **{str(b): [] for b in SIZES}}
    all_payloads = payloads(max(SIZES.values()), seed=1)
    bytes_per_event = statistics.mean(map(len, all_payloads))
    for r in range(rounds):
        for batch, count in SIZES.items():
            events = events_for(all_payloads[:count])
            with tempfile.TemporaryDirectory() as tmp:
                if batch == 10_000:
                    results["ceiling"].append(measure_ceiling(Path(tmp), events))
                    results["ceiling_16k"].append(measure_ceiling(Path(tmp), events, OLD_PAGE_SIZE))
                results[str(batch)].append(measure_store(Path(tmp), events, batch))
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {"bytes_per_event": round(bytes_per_event), "rounds": rounds,
            "events_per_second": {k: round(v) for k, v in medians.items()},
            "batch_10000_vs_ceiling": round(medians["10000"] / medians["ceiling"], 3),
            "batch_10000_vs_ceiling_16k": round(medians["10000"] / medians["ceiling_16k"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.rounds)
    if args.json:
        print(json.dumps(report))
        return
    rates = report["events_per_second"]
    ceiling = rates["ceiling"]
    print(f"events of ~{report['bytes_per_event']} bytes, median of {report['rounds']} alternating rounds")
    print(f"| {'what':<38} | {'events/s':>10} | {'vs ceiling':>10} |")
    print(f"|{'-' * 40}|{'-' * 12}|{'-' * 12}|")
    for batch in SIZES:
        print(f"| {'Store.append, batches of ' + format(batch, ','):<38} | {rates[str(batch)]:>10,} | "
              f"{rates[str(batch)] / ceiling:>10.2f} |")
    print(f"| {'plain insert ceiling, 10,000 a txn':<38} | {ceiling:>10,} | {1:>10.2f} |")
    print(f"| {'the same with 16 KiB pages':<38} | {rates['ceiling_16k']:>10,} | {rates['ceiling_16k'] / ceiling:>10.2f} |")
    print(f"batches of 10,000 against the 16 KiB-page ceiling: {report['batch_10000_vs_ceiling_16k']:.2f}")


if __name__ == "__main__":
    main()

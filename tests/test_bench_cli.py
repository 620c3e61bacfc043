"""`eventstore bench ingest`: the command runs benchmarks/ingest.py and prints its figures as JSON."""

from __future__ import annotations

import json

from conftest import REPO, run_cli


def test_bench_ingest_on_a_corpus_directory_json_shape(tmp_path):
    result = run_cli("bench", "ingest", "--corpus", str(REPO / "examples" / "projects"), "--skip-tail", "--json",
                     env={"TMPDIR": str(tmp_path)})
    report = json.loads(result.stdout)
    assert report["tree"]["corpus"] == str(REPO / "examples" / "projects") and report["tree"]["files"] > 10
    for key in ("ceiling", "log_compressed", "log_uncompressed", "ingest_command"):
        assert report[key]["mb_per_s"] > 0
    assert report["ingest_command"]["summary"]["events_appended"] > 900
    assert report["ingest_command"]["peak_rss_mb"] > 0 and report["reingest_seconds"] > 0
    assert 0 < report["database_size_ratio"] and 0 < report["log_vs_ceiling"]
    assert "tail" not in report
    assert not list(tmp_path.iterdir())  # its scratch databases are gone


def test_bench_ingest_refuses_both_sources(tmp_path):
    result = run_cli("bench", "ingest", "--corpus", str(tmp_path), "--synthetic-mb", "1", check=False)
    assert result.returncode == 2 and "not both" in result.stderr.decode()

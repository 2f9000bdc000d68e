"""CI proof that the benchmark still runs: bench/run.py with tiny parameters, no speed targets.

Correctness is still checked (every socket got the start, no acknowledged record was lost);
timings are not: speed is judged by the full run recorded in docs/benchmarks.md.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run as bench

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_runs_end_to_end_on_tiny_parameters(tmp_path):
    wrk, missing = bench.ensure_wrk()
    if wrk is None:
        pytest.skip("the ingest phase needs wrk: %s (Debian: apt-get install wrk)" % missing)
    out, raw = tmp_path / "benchmarks.md", tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--sockets", "20",
         "--ingest-seconds", "2", "--connections", "4", "--records", "500", "--rounds", "1",
         "--out", str(out), "--json", str(raw)],
        capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(raw.read_text())
    for kind in ("server5k", "reference"):
        assert results[kind]["fanout20"]["delivered"] == 1.0
        assert results[kind]["fanout20"]["connected"] == 20
        assert results[kind]["ingest"]["acked"] > 0
        assert results[kind]["ingest"]["lost"] == 0
        assert results[kind]["stall"]["logins_ok"] == 20
        assert results[kind]["startup_s"] > 0
    assert results["server5k"]["ingest"]["non2xx"] == 0
    report = out.read_text()
    assert "| ingest: requests/s" in report and "Server5K" in report
    assert "bench/run.py --sockets 20" in report

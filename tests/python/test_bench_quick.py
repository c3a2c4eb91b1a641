"""The benchmark suite runs and writes its reports (`bench/run.py --quick`). Times are not checked:
a benchmark, not a timed test, guards speed."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_quick_writes_reports(tmp_path):
    env = dict(os.environ, INFINIDATA_TMPDIR=str(tmp_path / "idt"))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    md = (tmp_path / "latest.md").read_text()
    assert "| workload |" in md and "## Goals" in md
    latest = json.loads((tmp_path / "latest.json").read_text())
    stamped = [p for p in tmp_path.iterdir() if p.suffix == ".json" and p.name != "latest.json"]
    assert len(stamped) == 1
    assert json.loads(stamped[0].read_text()) == latest
    assert latest["mode"] == "quick"
    for key in ("cpu", "cores", "kernel", "python", "numpy"):
        assert key in latest["machine"]
    for lib in ("infinidata", "numpy"):
        res = latest["results"][lib]
        assert "construct" in res and "shuffled_pass" in res
        assert not [w for w, r in res.items() if "error" in r], res
    assert {g["goal"] for g in latest["goals"]}

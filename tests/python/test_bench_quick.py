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


def _probe(*args, tmp):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import run  # bench/run.py

    exe = run.build_probe()
    assert exe, "bench/limits.c did not build"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TMPDIR=str(tmp)))


def test_probe_prints_one_json_object_per_test_and_removes_its_files(tmp_path):
    """The project's own probe (bench/limits.c, `make probe`): every test prints one JSON object
    with its figure, and the scratch files it writes are gone afterwards."""
    cases = [
        (("memcpy", "--mib", 8), "gb_per_s"),
        (("gather", "--mib", 8, "--threads", 2), "rows_per_s"),
        (("shuffle", "--rows", 100000), "bucketed_s"),
        (("pwrite", "--bytes", 4 << 20, "--dir", tmp_path), "mb_per_s"),
        (("randread", "--disk-mib", 8, "--depth", "1,2,64", "--seconds", 0.05), "best_reads_per_s"),
        (("randread", "--disk-mib", 8, "--depth", "1,4", "--seconds", 0.05, "--engine", "threads"),
         "best_reads_per_s"),
        (("seqread", "--disk-mib", 8, "--depth", "1,4"), "best_mb_per_s"),
    ]
    for args, key in cases:
        r = _probe(*args, tmp=tmp_path)
        assert r.returncode == 0, (args, r.stderr)
        out = json.loads(r.stdout)
        assert out["test"] == args[0] and out[key] > 0, out
        assert list(tmp_path.iterdir()) == [], (args, list(tmp_path.iterdir()))
    rr = json.loads(_probe("randread", "--disk-mib", 8, "--depth", "1,2,64", "--seconds", 0.05, tmp=tmp_path).stdout)
    assert [d["depth"] for d in rr["depths"]] == [1, 2, 64] and all(d["reads"] > 0 for d in rr["depths"])
    # a file given with --file is read and kept
    f = tmp_path / "data"
    f.write_bytes(os.urandom(1 << 20))
    out = json.loads(_probe("seqread", "--file", f, "--depth", "2", tmp=tmp_path).stdout)
    assert out["bytes_read"] == 1 << 20 and f.exists()


def test_probe_rejects_bad_arguments(tmp_path):
    for args, msg in [(("nosuchtest",), "usage"), (("randread", "--depth", "0"), "--depth"),
                      (("pwrite",), "--bytes"), (("seqread", "--file", tmp_path / "missing"), "missing"),
                      (("seqread", "--block", 3, "--file", "x"), "--block")]:
        r = _probe(*args, tmp=tmp_path)
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)
        assert r.stdout == ""

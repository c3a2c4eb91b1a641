#!/usr/bin/env python3
"""bench/run.py: the benchmark suite of infinidata against its peers, on the same data, in one run.

    python bench/run.py            # full: ~2 GB table, 1 GiB goal table, every peer (make bench)
    python bench/run.py --quick    # a few MB, infinidata and NumPy only, no installs (make bench-quick)
    python bench/run.py --out DIR  # results folder (default bench/results, or bench/results/quick)

Generates the data once (bench/common.py), then runs bench/worker.py once per library, each in
its own process: infinidata and NumPy np.memmap with this interpreter, Hugging Face datasets and
the original Infinidata 0.0.1 with the venvs that bench/peers.py makes in bench/.venvs/ on first
use. Writes latest.md (markdown tables), <timestamp>.json and latest.json (every figure, with
the machine's facts and limits) and chart.png (when matplotlib is there) into the results folder.
See bench/README.md for what each workload measures.
"""

import argparse
import json
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import common  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402

MAIN = ["construct", "contiguous_pass", "shuffle_view", "shuffled_pass", "shuffled_pass_t2", "point_reads",
        "random_take", "concat_1000", "composed_300", "shuffle_20m"]
GOAL = ["g_construct", "g_contiguous_pass", "g_shuffled_pass", "g_shuffled_pass_t2", "g_shuffled_pass_tN"]
LIBS = {  # name -> workloads; the goal table of issue 5 is measured against NumPy only
    "infinidata": MAIN + GOAL,
    "numpy": MAIN + GOAL,
    "datasets": MAIN,
    "infinidata-0.0.1": MAIN,
}

RSS_INTERVAL = 0.005  # seconds between samples of a worker's RssAnon (read by this process)

FULL = dict(rows=1_000_000, g_rows=2_097_152, shuffle_rows=20_000_000, batch=4096, point_reads=10_000,
            take_rows=100_000, concat_tables=1000, concat_rows=256, compose_ops=300, compose_budget=90.0, repeat=3,
            repeat_budget=15.0, timeout=300)
QUICK = dict(FULL, rows=2_000, g_rows=16_384, shuffle_rows=1_000_000, point_reads=2_000, take_rows=2_000,
             repeat=1, timeout=60)


def log(*a):
    print(*a, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=30).stdout.strip()
    except Exception:
        return ""


def machine_facts():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import numpy

    try:
        import infinidata

        ours = infinidata.__version__
    except Exception as e:  # the run will report the failure per workload
        ours = f"import failed: {e}"
    commit = sh(["git", "rev-parse", "--short", "HEAD"])
    if commit and sh(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (+ uncommitted changes)"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "infinidata": ours,
        "commit": commit or "?",
    }


def loadavg():
    """The 1-minute load average: other work on the machine (other processes) slows every figure."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def build_probe():
    """Build the probe bench/limits.c into build/limits (make does it too); returns its path or None."""
    exe = os.path.join(ROOT, "build", "limits")
    src = os.path.join(HERE, "limits.c")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    r = subprocess.run([cc, "-O2", "-std=c11", "-pthread", src, "-o", exe], capture_output=True, text=True)
    return exe if r.returncode == 0 else None


def probe(test, *args, timeout=600):
    """Run `build/limits TEST ARGS...` (bench/limits.c); returns its JSON object, or {'skipped': why}."""
    exe = build_probe()
    if not exe:
        return {"skipped": "bench/limits.c could not be built (no C compiler?)"}
    try:
        r = subprocess.run([exe, test, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"limits {test} timed out"}
    if r.returncode:
        return {"skipped": f"limits {test} exited {r.returncode}: {r.stderr.strip()[-200:]}"}
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"skipped": f"limits {test} printed no JSON: {r.stdout[-200:]}"}


def run_limits(mib):
    """Run the probe's in-memory tests (bench/limits.c: memcpy, gather on 1 and 2 threads,
    shuffle) on mib MiB; returns its figures, or {'skipped': why}."""
    lim = {"mib": mib, "probe": {}}
    for name, args in (("memcpy", ("--mib", mib)), ("gather1", ("--mib", mib, "--threads", 1)),
                       ("gather2", ("--mib", mib, "--threads", 2)), ("shuffle", ())):
        r = probe(name.rstrip("12"), *args)
        if "skipped" in r:
            lim["skipped"] = r["skipped"]
            return lim
        lim["probe"][name] = r
    P = lim["probe"]
    lim["copy_gbs"] = P["memcpy"]["gb_per_s"]
    for t in (1, 2):
        lim[f"gather{t}_gbs"] = P[f"gather{t}"]["gb_per_s"]
        lim[f"gather{t}_mrows"] = P[f"gather{t}"]["rows_per_s"] / 1e6
    lim["shuffle_fy_s"], lim["shuffle_bucketed_s"] = P["shuffle"]["fisher_yates_s"], P["shuffle"]["bucketed_s"]
    lim["raw"] = "\n".join(json.dumps(v) for v in P.values())
    return lim


def run_worker(py, lib, workloads, data, work, params, env):
    """Run worker.py for lib; return (info, {workload: record}). A workload that runs past
    params['timeout'] seconds is recorded as timed out, its worker killed and a new one started
    for the workloads left; a crash is recorded likewise."""
    results, info, todo = {}, {}, list(workloads)
    errpath = os.path.join(work, "worker-stderr.log")
    while todo:
        cmd = [py, os.path.join(HERE, "worker.py"), "--lib", lib, "--data", data, "--work", work,
               "--workloads", ",".join(todo), "--params", json.dumps(params)]
        with open(errpath, "ab") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=work, env=env,
                                 start_new_session=True)
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        buf, started, timed_out = b"", time.monotonic(), False
        eof, base, peak = False, None, 0
        while not eof and todo:
            limit = params["timeout"] + (120 if not info else 0)  # + start-up (imports)
            left = started + limit - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready = sel.select(timeout=min(left, RSS_INTERVAL))
            v = common.rss_anon(p.pid)  # the worker's anonymous RSS, sampled from outside
            if v is not None and v > peak:
                peak = v
            if not ready:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                eof = True
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == "ready":
                    info = rec
                elif rec.get("event") == "begin":
                    base = peak = rec.get("rss_anon") or 0
                elif rec.get("workload") in todo:
                    w = rec.pop("workload")
                    end = rec.pop("rss_anon_end", None) or 0
                    if base and "seconds" in rec:
                        rec["anon_peak_mb"] = (max(peak, end) - base) / 1e6
                    results[w] = rec
                    todo.remove(w)
                    log_record(lib, w, rec)
                started = time.monotonic()
        if timed_out:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()
        sel.close()
        p.stdout.close()
        if todo:
            w = todo.pop(0)
            if timed_out:
                why = f"timed out after {params['timeout']} s"
            else:
                tail = open(errpath, errors="replace").read()[-600:].strip().replace("\n", " | ")
                why = f"worker exited {p.returncode}: {tail}"
            results[w] = {"error": why}
            log_record(lib, w, results[w])
            if not info and not timed_out:  # it cannot even start: skip the rest
                for w in todo:
                    results[w] = {"error": why}
                todo = []
    return info, results


def log_record(lib, w, rec):
    if "error" in rec:
        msg = "ERROR " + rec["error"][:200]
    elif "skipped" in rec:
        msg = "n/a"
    else:
        msg = f"{rec['seconds']:.3f} s"
        if rec.get("bytes"):
            msg += f"  {rec['bytes'] / rec['seconds'] / 1e9:.2f} GB/s"
        elif rec.get("rows"):
            msg += f"  {rec['rows'] / rec['seconds'] / 1e6:.2f} M rows/s"
        msg += f"  anon peak +{rec.get('anon_peak_mb', 0):.0f} MB  disk {rec.get('disk_mb', 0):.0f} MB"
    log(f"  [{lib}] {w:<20} {msg}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="infinidata benchmarks against NumPy memmap, Hugging Face "
                                 "datasets and the original Infinidata")
    ap.add_argument("--quick", action="store_true",
                    help="small sizes (a few MB), infinidata and NumPy only, no installs, no probe")
    ap.add_argument("--out", help="results folder (default bench/results; bench/results/quick with --quick, "
                    "so a quick run never overwrites the full run's reports)")
    ap.add_argument("--libs", help="comma-separated subset of: " + ", ".join(LIBS))
    ap.add_argument("--rows", type=int, help="rows of the main table (default 1,000,000: ~2 GB)")
    ap.add_argument("--g-rows", type=int, help="rows of the 128-float goal table (default 2,097,152: 1 GiB)")
    ap.add_argument("--shuffle-rows", type=int, help="rows of the shuffle benchmark (default 20,000,000)")
    ap.add_argument("--timeout", type=int, help="seconds allowed for one workload (default 300)")
    ap.add_argument("--repeat", type=int, help="best of this many runs, within a time budget (default 3)")
    ap.add_argument("--tmp", help="where the data and the libraries' temp files go (default: system temp)")
    ap.add_argument("--no-limits", action="store_true", help="skip the probe (bench/limits.c)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="run nothing: rewrite latest.md and chart.png in --out from a results JSON")
    a = ap.parse_args(argv)
    if a.out is None:
        a.out = os.path.join(HERE, "results", "quick") if a.quick else os.path.join(HERE, "results")
    if a.from_json:
        with open(a.from_json) as f:
            res = json.load(f)
        res["goals"] = report.goals(res)
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "latest.md"), "w") as f:
            f.write(report.markdown(res))
        report.chart(res, os.path.join(a.out, "chart.png"))
        log(f"rewrote latest.md and chart.png in {a.out} from {a.from_json}")
        return 0

    params = dict(QUICK if a.quick else FULL)
    for k in ("rows", "g_rows", "shuffle_rows", "timeout", "repeat"):
        if getattr(a, k) is not None:
            params[k] = getattr(a, k)
    libs = a.libs.split(",") if a.libs else (["infinidata", "numpy"] if a.quick else list(LIBS))
    for lib in libs:
        if lib not in LIBS:
            ap.error(f"unknown library {lib!r}; choose from {', '.join(LIBS)}")
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    res = {"timestamp": stamp, "mode": "quick" if a.quick else "full", "params": params,
           "machine": machine_facts(), "libs": {}, "results": {}, "skipped": {}}
    if not a.quick:  # the chart and the demo's progress bars; never needed by make test
        peers.ensure_in_current(["matplotlib", "tqdm"], log)

    base = tempfile.mkdtemp(prefix="infinidata-bench-", dir=a.tmp)
    try:
        data = os.path.join(base, "data")
        rows, g_rows = params["rows"], params["g_rows"]
        log(f"generating data: {rows:,} rows (embedding float32 (512,), label int64, text str) "
            f"+ {g_rows:,} x 128 float32 goal table in {base}")
        t0 = time.perf_counter()
        common.generate(data, rows, g_rows)
        with open(os.path.join(data, "meta.json")) as f:
            meta = json.load(f)
        res["data"] = dict(meta, row_bytes=common.main_row_bytes(meta),
                           main_gb=rows * common.main_row_bytes(meta) / 1e9,
                           g_gb=g_rows * common.G_DIM * 4 / 1e9, generate_s=time.perf_counter() - t0)
        log(f"  {time.perf_counter() - t0:.1f} s; main table {res['data']['main_gb']:.2f} GB, "
            f"goal table {res['data']['g_gb']:.2f} GB")

        for lib in libs:
            if lib in ("infinidata", "numpy"):
                py = sys.executable
            else:
                try:
                    py = peers.ensure(lib, log)
                except peers.PeerUnavailable as e:
                    log(f"[{lib}] skipped: {e}")
                    res["skipped"][lib] = str(e)
                    continue
            work = os.path.join(base, "work-" + lib)
            os.makedirs(os.path.join(work, "tmp"))
            env = dict(os.environ, INFINIDATA_TMPDIR=os.path.join(work, "tmp"),
                       HF_DATASETS_CACHE=os.path.join(work, "hf-cache"), HF_HOME=os.path.join(work, "hf-home"),
                       HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
            load0 = loadavg()
            log(f"[{lib}] running {len(LIBS[lib])} workloads (load average {load0})")
            t0 = time.perf_counter()
            info, results = run_worker(py, lib, LIBS[lib], data, work, params, env)
            res["libs"][lib] = {"version": info.get("version"), "numpy": info.get("numpy"),
                                "python": info.get("python"), "seconds": time.perf_counter() - t0,
                                "loadavg_start": load0, "loadavg_end": loadavg()}
            res["results"][lib] = results
            shutil.rmtree(work, ignore_errors=True)

        if a.quick or a.no_limits:
            res["limits"] = {"skipped": "quick mode" if a.quick else "--no-limits"}
        else:
            log("running the probe build/limits (bench/limits.c) on 1024 MiB (the machine's best case)")
            res["limits"] = run_limits(1024)
            res["limits"]["loadavg_start"] = loadavg()
            log("  " + res["limits"].get("raw", res["limits"].get("skipped", "")).replace("\n", "\n  "))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    res["goals"] = report.goals(res)
    res["total_s"] = time.time() - t_start
    md = report.markdown(res)
    with open(os.path.join(a.out, f"{stamp}.json"), "w") as f:
        json.dump(res, f, indent=1)
    shutil.copyfile(os.path.join(a.out, f"{stamp}.json"), os.path.join(a.out, "latest.json"))
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write(md)
    chart = report.chart(res, os.path.join(a.out, "chart.png"))
    log("")
    log(md)
    log(f"wrote {os.path.join(a.out, 'latest.md')}, {stamp}.json, latest.json"
        + (", chart.png" if chart else f" (no chart: {report.CHART_SKIPPED})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""bench/scale.py: larger than memory (`make bench-scale`): a table of a chosen multiple of RAM,
built, shuffled and read twice (shuffled, contiguous) from a cold page cache, every row's content
checked, next to the disk's limits measured by the probe (build/limits, bench/limits.c) in the
same run.

    python bench/scale.py                   # 1.2x RAM (make bench-scale)
    python bench/scale.py --scale 0.05      # a small try (make bench-scale SCALE=0.05)
    python bench/scale.py --gib 2           # an absolute size instead

The table has one column `x` of int64 (512,): 4 KiB rows, row i holding i * 512 + j in element
j, so a row's id is x[0] // 512 and its content is checked cheaply. Work happens in a child
process; this process samples the child's anonymous RSS (RssAnon) every 10 ms from outside and
reports the peak growth per phase. The page cache is dropped (sync; echo 3 >
/proc/sys/vm/drop_caches, needs root; otherwise the report says the passes may be warm) before
each read pass. The table lives in --tmp (INFINIDATA_TMPDIR, default ./.infinidata_tmp) and is
deleted at the end. Writes scale-<stamp>.json, scale-latest.json and scale-latest.md into --out
(default bench/results).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import loadavg  # noqa: E402  (bench/run.py: the 1-minute load average)

ROW_ELEMS = 512          # int64 per row: 4096 bytes
ROW_BYTES = ROW_ELEMS * 8
CHUNK_ROWS = 1 << 18     # rows per TableView when built by concatenation (1 GiB)
APPEND_ROWS = 1 << 14    # rows per TableWriter.append (64 MiB)
CHECK_STRIDE = 16        # every row: its id and elements 0, 16, 32, ..., 496 and 511 are checked


def log(*a):
    print(*a, flush=True, file=sys.stderr)


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def drop_caches():
    """Empty the page cache; returns True if it could (root), else False."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- the child: builds and reads

def rows_of(lo, hi, np):
    """Rows [lo, hi) of the table: x[i, j] = i * 512 + j."""
    return (np.arange(lo, hi, dtype=np.int64)[:, None] * ROW_ELEMS + np.arange(ROW_ELEMS, dtype=np.int64))


def child(a):
    import numpy as np

    import infinidata as idt

    out = sys.stdout

    def emit(**kw):
        out.write(json.dumps(kw) + "\n")
        out.flush()

    def phase(name):
        emit(event="start", phase=name)
        sys.stdin.readline()  # the parent has its baseline

    nrows = a.rows
    phase("build")
    t0 = time.perf_counter()
    writer = getattr(idt, "TableWriter", None)
    if writer is not None and not a.concat_build:
        how = "TableWriter, 64 MiB appends"
        with writer(progress=False) as w:
            for lo in range(0, nrows, APPEND_ROWS):
                w.append({"x": rows_of(lo, min(nrows, lo + APPEND_ROWS), np)})
            tv = w.finish()
    else:
        how = "concat of 1 GiB TableViews"
        parts = [idt.TableView({"x": rows_of(lo, min(nrows, lo + CHUNK_ROWS), np)})
                 for lo in range(0, nrows, CHUNK_ROWS)]
        tv = idt.TableView.concat(parts) if len(parts) > 1 else parts[0]
        del parts
    build_s = time.perf_counter() - t0
    emit(event="end", phase="build", seconds=build_s, rows=nrows, how=how)

    phase("shuffle")
    t0 = time.perf_counter()
    sv = tv.shuffle(seed=12)
    emit(event="end", phase="shuffle", seconds=time.perf_counter() - t0)

    emit(event="probe")  # the parent runs the disk probe now, on the table's files
    sys.stdin.readline()

    def check(x, nxt, name):
        """Row content: element j of row i is i * 512 + j; checked at 0, 255 and 511 (the first,
        a middle and the last 8 bytes of the row's 4 KiB), which catches a wrong, shifted or
        torn row; each id must come once (the caller's bitmap)."""
        ids = x[:, 0] // ROW_ELEMS
        if x.shape[1] != ROW_ELEMS or not ((x[:, 0] % ROW_ELEMS == 0).all() and
                                           (x[:, 255] - x[:, 0] == 255).all() and
                                           (x[:, ROW_ELEMS - 1] - x[:, 0] == ROW_ELEMS - 1).all()):
            raise SystemExit(f"{name}: wrong row content in the batch starting at row {nxt}")
        return ids

    def run_pass(name, view, ordered):
        dropped = drop_caches() if not a.no_drop_caches else False
        phase(name)
        seen = np.zeros(nrows, dtype=np.bool_)
        nxt = 0
        check_s = 0.0
        t0 = time.perf_counter()
        it = view.batch_iter(a.batch, threads=a.threads, readahead=a.readahead)
        workers = it.workers
        for b in it:
            c0 = time.perf_counter()
            x = b["x"]
            ids = check(x, nxt, name)
            if ordered and not (ids == np.arange(nxt, nxt + len(ids))).all():
                raise SystemExit(f"{name}: rows out of order in the batch starting at row {nxt}")
            if seen[ids].any():
                raise SystemExit(f"{name}: a row came twice (batch starting at row {nxt})")
            seen[ids] = True
            nxt += len(ids)
            check_s += time.perf_counter() - c0
        dt = time.perf_counter() - t0
        if nxt != nrows or not seen.all():
            raise SystemExit(f"{name}: {nxt} rows came, {nrows} expected")
        emit(event="end", phase=name, seconds=dt, check_seconds=check_s, rows=nrows, bytes=nrows * ROW_BYTES,
             cache_dropped=dropped, workers=workers)

    if not a.skip_shuffled:
        run_pass("shuffled_pass", sv, False)
    if not a.skip_contiguous:
        run_pass("contiguous_pass", tv, True)
    emit(event="done")


# ---------------------------------------------------------------- the parent: samples, probes, reports

def rss_anon(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def probe_exe():
    exe = os.path.join(ROOT, "build", "limits")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(os.path.join(HERE, "limits.c")):
        subprocess.run(["cc", "-O2", "-std=c11", "-pthread", os.path.join(HERE, "limits.c"), "-o", exe], check=True)
    return exe


def run_probe(test, *args):
    r = subprocess.run([probe_exe(), test, *map(str, args)], capture_output=True, text=True, timeout=900)
    if r.returncode:
        return {"skipped": r.stderr.strip()[-300:]}
    return json.loads(r.stdout)


def write_probe_file(tmp, mib):
    """A file of `mib` MiB of data on the table's disk (written, synced) for the probe's reads."""
    import numpy as np

    path = os.path.join(tmp, f"probe-{os.getpid()}.bin")
    chunk = np.random.default_rng(0).integers(0, 255, 1 << 20, dtype=np.uint8).tobytes()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def parent(a):
    ram = meminfo("MemTotal")
    if a.gib:
        nbytes = int(a.gib * (1 << 30))
    else:
        nbytes = int(a.scale * ram)
    a.rows = max(1, nbytes // ROW_BYTES)
    tmp = os.path.abspath(a.tmp or os.environ.get("INFINIDATA_TMPDIR") or os.path.join(ROOT, ".infinidata_tmp"))
    os.makedirs(tmp, exist_ok=True)
    dev_ra = {}
    for d in sorted(os.listdir("/sys/block")):
        try:
            with open(f"/sys/block/{d}/queue/read_ahead_kb") as f:
                dev_ra[d] = int(f.read())
        except OSError:
            pass
    facts = {
        "ram_bytes": ram, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
        "read_ahead_kb": dev_ra, "loadavg_start": loadavg(), "tmp": tmp,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "free_disk_bytes": os.statvfs(tmp).f_bavail * os.statvfs(tmp).f_frsize,
    }
    need = a.rows * ROW_BYTES
    if need * 1.05 > facts["free_disk_bytes"]:
        raise SystemExit(f"not enough disk in {tmp}: {need / 1e9:.1f} GB needed, "
                         f"{facts['free_disk_bytes'] / 1e9:.1f} GB free")
    params = dict(scale=a.scale if not a.gib else None, gib=a.gib, rows=a.rows, row_bytes=ROW_BYTES,
                  table_bytes=need, batch=a.batch, threads=a.threads, readahead=a.readahead)
    log(f"bench-scale: {a.rows:,} rows of 4 KiB = {need / 1e9:.1f} GB ({need / ram:.2f}x RAM of "
        f"{ram / 1e9:.1f} GB), batch {a.batch}, threads {a.threads}, readahead {a.readahead}, in {tmp}")
    env = dict(os.environ, INFINIDATA_TMPDIR=tmp)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--rows", str(a.rows), "--batch", str(a.batch),
           "--threads", str(a.threads), "--readahead", str(a.readahead)]
    for flag in ("no_drop_caches", "skip_shuffled", "skip_contiguous", "concat_build"):
        if getattr(a, flag):
            cmd.append("--" + flag.replace("_", "-"))
    t_start = time.time()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    state = {"peak": 0, "base": 0, "on": False}
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            r = rss_anon(p.pid)
            if r is not None and state["on"]:
                state["peak"] = max(state["peak"], r)
            time.sleep(0.01)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    phases, probe = {}, {}
    cur = {}
    try:
        for line in p.stdout:
            ev = json.loads(line)
            if ev["event"] == "start":
                base = rss_anon(p.pid) or 0
                state.update(peak=base, base=base, on=True)
                cur = {"cpu0": cpu_seconds(p.pid), "busy0": cpu_busy(), "load0": loadavg(), "t0": time.time()}
                log(f"  {ev['phase']} ...")
                p.stdin.write("\n")
                p.stdin.flush()
            elif ev["event"] == "end":
                state["on"] = False
                busy1 = cpu_busy()
                rec = {k: v for k, v in ev.items() if k not in ("event", "phase")}
                rec["rss_anon_growth_mb"] = (state["peak"] - state["base"]) / 1e6
                c1 = cpu_seconds(p.pid)
                if c1 is not None and cur.get("cpu0") is not None:
                    rec["cpu_seconds"] = c1 - cur["cpu0"]
                db, dt = busy1[0] - cur["busy0"][0], busy1[1] - cur["busy0"][1]
                rec["machine_cpu_busy"] = db / dt if dt else None
                rec["loadavg"] = [cur["load0"], loadavg()]
                if "rows" in rec and ev["phase"].endswith("pass"):
                    rec["rows_per_s"] = rec["rows"] / rec["seconds"]
                    rec["mb_per_s"] = rec["bytes"] / rec["seconds"] / 1e6
                phases[ev["phase"]] = rec
                log(f"  {ev['phase']}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in rec.items()))
            elif ev["event"] == "probe":
                os.sync()  # the table's dirty pages reach the disk before the disk is measured
                if not a.skip_probe:
                    path = write_probe_file(tmp, a.probe_mib)
                    try:
                        log(f"  probe: random 4 KiB O_DIRECT reads and sequential read of a {a.probe_mib} MiB file")
                        probe["randread"] = run_probe("randread", "--file", path, "--depth", "1,2,4,8,16,32,64",
                                                      "--seconds", a.probe_seconds)
                        probe["seqread"] = run_probe("seqread", "--file", path, "--depth", "1,4,16")
                    finally:
                        os.unlink(path)
                    log("  " + json.dumps(probe)[:600])
                p.stdin.write("\n")
                p.stdin.flush()
            elif ev["event"] == "done":
                break
    finally:
        stop.set()
        try:
            p.stdin.close()
        except OSError:
            pass
        rc = p.wait()
    if rc:
        raise SystemExit(f"bench-scale child failed (exit {rc})")
    facts["loadavg_end"] = loadavg()
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)), "run_seconds": time.time() - t_start,
           "params": params, "machine": facts, "phases": phases, "probe": probe}
    res["goals"] = goals(res)
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t_start))
    for name in (f"scale-{stamp}.json", "scale-latest.json"):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(res, f, indent=1)
    md = report(res)
    with open(os.path.join(a.out, "scale-latest.md"), "w") as f:
        f.write(md)
    print(md)


def goals(res):
    P, ph = res["probe"], res["phases"]
    g = []
    rr = P.get("randread", {})
    q32 = next((d["reads_per_s"] for d in rr.get("depths", []) if d["depth"] == 32), None)
    sp = ph.get("shuffled_pass")
    if q32 and sp:
        g.append({"goal": "shuffled pass rows/s >= 50 % of random 4 KiB reads/s at QD32", "ours": sp["rows_per_s"],
                  "limit": q32, "ratio": sp["rows_per_s"] / q32, "target": 0.5})
    sq = P.get("seqread", {}).get("best_mb_per_s")
    cp = ph.get("contiguous_pass")
    if sq and cp:
        g.append({"goal": "contiguous pass MB/s >= 70 % of sequential read MB/s", "ours": cp["mb_per_s"],
                  "limit": sq, "ratio": cp["mb_per_s"] / sq, "target": 0.7})
    peak = max((v.get("rss_anon_growth_mb", 0) for k, v in ph.items() if k.endswith("pass")), default=None)
    if peak is not None:
        g.append({"goal": "anonymous RSS growth during the passes <= 256 MB", "ours": peak, "limit": 256,
                  "ratio": peak / 256, "target": None})
    for x in g:
        x["result"] = ("PASS" if x["ratio"] >= x["target"] else "MISS") if x["target"] else \
            ("PASS" if x["ours"] <= x["limit"] else "MISS")
    return g


def report(res):
    p, m, ph, P = res["params"], res["machine"], res["phases"], res["probe"]
    L = [f"# Larger than memory (bench/scale.py, {res['when']})", ""]
    L.append(f"{p['rows']:,} rows of 4 KiB (one int64 (512,) column) = {p['table_bytes'] / 1e9:.1f} GB, "
             f"{p['table_bytes'] / m['ram_bytes']:.2f}x the RAM ({m['ram_bytes'] / 1e9:.1f} GB); "
             f"{m['cores']} cores, kernel {m['kernel']}, read_ahead_kb {m['read_ahead_kb']}; batch_size "
             f"{p['batch']}, threads {p['threads']}, readahead {p['readahead']}; commit {m['commit']}; load average "
             f"{m['loadavg_start']} at the start, {m['loadavg_end']} at the end; whole run "
             f"{res['run_seconds'] / 60:.1f} min.")
    L.append("")
    L.append("| phase | seconds | rows/s | MB/s | RSS anon growth (MB) | CPU s (library process) | machine CPU busy | load |")
    L.append("|---|---|---|---|---|---|---|---|")
    for name in ("build", "shuffle", "shuffled_pass", "contiguous_pass"):
        r = ph.get(name)
        if not r:
            continue
        rows = r.get("rows_per_s") or (r["rows"] / r["seconds"] if r.get("rows") else None)
        mbs = r.get("mb_per_s") or (r["rows"] * 4096 / r["seconds"] / 1e6 if r.get("rows") else None)
        what = name + (f" ({r['how']})" if r.get("how") else "")
        busy = f"{r['machine_cpu_busy'] * 100:.0f} %" if r.get("machine_cpu_busy") is not None else ""
        load = "–".join(f"{x:.1f}" for x in r.get("loadavg", []) if x is not None)
        L.append(f"| {what} | {r['seconds']:.1f} | {rows:,.0f} | {mbs:,.0f} | {r['rss_anon_growth_mb']:.0f} | "
                 f"{r.get('cpu_seconds', 0):.1f} | {busy} | {load} |"
                 if rows else
                 f"| {what} | {r['seconds']:.1f} | | | {r['rss_anon_growth_mb']:.0f} | {r.get('cpu_seconds', 0):.1f} | "
                 f"{busy} | {load} |")
    L.append("")
    for name in ("shuffled_pass", "contiguous_pass"):
        r = ph.get(name)
        if r:
            L.append(f"- {name}: every row checked (elements 0, 255 and 511 against its id; each id once"
                     f"{'; in order' if name.startswith('contiguous') else ''}), the "
                     f"check took {r['check_seconds']:.1f} s of the {r['seconds']:.1f} s; page cache "
                     f"{'dropped' if r['cache_dropped'] else 'NOT dropped (not root?): may be warm'} before; "
                     f"{r['workers']} worker threads.")
    L.append("")
    rr, sq = P.get("randread", {}), P.get("seqread", {})
    if rr.get("depths"):
        L.append(f"Disk limits (the probe, `build/limits`, on a {rr.get('file_bytes', 0) >> 20} MiB file next to the "
                 f"table, `O_DIRECT`, {rr.get('engine')}):")
        L.append("")
        L.append("| random 4 KiB reads, queue depth | " + " | ".join(str(d["depth"]) for d in rr["depths"]) + " |")
        L.append("|---" * (len(rr["depths"]) + 1) + "|")
        L.append("| reads/s | " + " | ".join(f"{d['reads_per_s']:,.0f}" for d in rr["depths"]) + " |")
        L.append("")
    if sq.get("depths"):
        L.append("Sequential read (1 MiB blocks): " + ", ".join(f"QD{d['depth']} {d['mb_per_s']:,.0f} MB/s"
                                                                for d in sq["depths"]) + ".")
        L.append("")
    if res.get("goals"):
        L.append("| goal | ours | limit | ratio | result |")
        L.append("|---|---|---|---|---|")
        for g in res["goals"]:
            L.append(f"| {g['goal']} | {g['ours']:,.0f} | {g['limit']:,.0f} | {g['ratio']:.2f} | **{g['result']}** |")
        L.append("")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.2, help="table size as a multiple of RAM (1.2)")
    ap.add_argument("--gib", type=float, default=None, help="table size in GiB instead of --scale")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--readahead", type=int, default=8)
    ap.add_argument("--tmp", default=None, help="where the table goes (INFINIDATA_TMPDIR)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--probe-seconds", type=float, default=2.0)
    ap.add_argument("--probe-mib", type=int, default=4096, help="size of the probe's file (MiB)")
    ap.add_argument("--skip-probe", action="store_true")
    ap.add_argument("--skip-shuffled", action="store_true")
    ap.add_argument("--skip-contiguous", action="store_true")
    ap.add_argument("--no-drop-caches", action="store_true")
    ap.add_argument("--concat-build", action="store_true", help="build from concatenated TableViews, not TableWriter")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a)
    else:
        parent(a)


if __name__ == "__main__":
    main()

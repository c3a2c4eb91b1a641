#!/usr/bin/env python3
"""bench/writes.py: how fast infinidata writes, next to the machine's sequential write rate.

    python bench/writes.py [--mib 1024] [--reps 3] [--drop-caches] [--out bench/results]

For B = --mib MiB of row data, in one run and alternating, best of --reps:
  - the probe's sequential pwrite of B bytes into a fresh file on the temp area's file system,
    fsync included (`build/limits pwrite`, bench/limits.c): the machine's limit;
  - construction: TableView({"x": float32 rows of 512 B}) from an in-memory array of B bytes;
  - append: a TableWriter fed the same bytes as 32 MiB batches;
  - text: construction of a str column of B/4 bytes of UTF-8 (from a `U` array of B bytes),
    next to the probe writing the same number of bytes as the column stores;
  - flatten of the table, and of a shuffled view of it (its source in the page cache), output
    B bytes, default threads; with --drop-caches also the table's flatten from a cold cache.
Rates are MB/s of bytes the table holds; `ratio` is that over the probe's pwrite MB/s.
--drop-caches (root only; it affects the whole machine) drops the page cache before each
measurement, as "from a clean page cache" asks. Writes writes.json and writes.md.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import infinidata  # noqa: E402
from infinidata import _infinidata as core  # noqa: E402


def drop_caches():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def probe_pwrite(nbytes, directory):
    exe = os.path.join(ROOT, "build", "limits")
    if not os.path.exists(exe):
        r = subprocess.run(["make", "-C", ROOT, "build/limits"], capture_output=True, text=True)
        if r.returncode != 0:
            return None
    r = subprocess.run([exe, "pwrite", "--bytes", str(nbytes), "--dir", directory],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args(argv)
    nbytes = a.mib << 20
    rows = nbytes // 512
    x = np.ones((rows, 128), np.float32)
    x[:, 0] = np.arange(rows)
    text = np.array([f"{i:012d}" + "abcdefghijklmnopqrstuvwxyz"[i % 26] * 115 for i in range(nbytes // 4 // 128)])
    text_bytes = int(np.char.str_len(text).sum())  # ASCII: the UTF-8 bytes the column stores
    tmpdir = core._tmp_dir()
    res = {"bytes": nbytes, "reps": a.reps, "drop_caches": a.drop_caches, "tmp_dir": tmpdir,
           "loadavg_start": os.getloadavg()[0], "runs": []}

    def prep():
        if a.drop_caches:
            drop_caches()

    for rep in range(a.reps):
        run = {}
        prep()
        p = probe_pwrite(nbytes, tmpdir)
        run["pwrite_mb_s"] = p["mb_per_s"] if p else None
        run["pwrite_before_fsync_mb_s"] = (nbytes / 1e6 / p["seconds_before_fsync"]) if p else None
        prep()
        s, tv = timed(lambda: infinidata.TableView({"x": x}))
        run["construct_mb_s"] = nbytes / 1e6 / s
        del tv
        prep()

        def append():
            step = (32 << 20) // 512
            with infinidata.TableWriter() as w:
                for i in range(0, rows, step):
                    w.append({"x": x[i:i + step]})
                return w.finish()

        s, tv = timed(append)
        run["append_mb_s"] = nbytes / 1e6 / s
        prep()
        s, tt = timed(lambda: infinidata.TableView({"t": text}))
        run["text_construct_mb_s"] = text_bytes / 1e6 / s
        del tt
        prep()
        p = probe_pwrite(text_bytes, tmpdir)
        run["pwrite_text_bytes_before_fsync_mb_s"] = (text_bytes / 1e6 / p["seconds_before_fsync"]) if p else None
        prep()
        if a.drop_caches:  # the source read from disk as it is flattened
            s, f = timed(lambda: tv.flatten())
            run["flatten_contiguous_cold_mb_s"] = nbytes / 1e6 / s
            del f
        tv[::4096]  # noqa: B018 (the goal is "when the source is in cache": it is now)
        s, f = timed(lambda: tv.flatten())
        run["flatten_contiguous_mb_s"] = nbytes / 1e6 / s
        del f
        sh = tv.shuffle(seed=rep)
        sh[:1]  # noqa: B018
        tv[::4096]  # noqa: B018 (source in cache: it was just written)
        s, f = timed(lambda: sh.flatten())
        run["flatten_shuffled_mb_s"] = nbytes / 1e6 / s
        s, f1 = timed(lambda: sh.flatten(threads=1))
        run["flatten_shuffled_t1_mb_s"] = nbytes / 1e6 / s
        del f, f1, sh, tv
        res["runs"].append(run)
        print(json.dumps(run), flush=True)
    res["loadavg_end"] = os.getloadavg()[0]
    write_report(res, a.out)


NAMES = [("pwrite_mb_s", "probe: sequential pwrite + fsync (build/limits pwrite)"),
         ("pwrite_before_fsync_mb_s", "probe: the same before its fsync"),
         ("construct_mb_s", "TableView(dict) of float32 rows"),
         ("append_mb_s", "TableWriter.append, 32 MiB batches"),
         ("text_construct_mb_s", "TableView(dict) of a str column (UTF-8 bytes stored)"),
         ("pwrite_text_bytes_before_fsync_mb_s", "probe: pwrite before fsync of the str column's stored bytes"),
         ("flatten_contiguous_mb_s", "flatten() of the table (source in the page cache)"),
         ("flatten_contiguous_cold_mb_s", "flatten() of the table, source read from disk (--drop-caches)"),
         ("flatten_shuffled_mb_s", "flatten() of a shuffled view (default threads)"),
         ("flatten_shuffled_t1_mb_s", "flatten(threads=1) of a shuffled view")]


def write_report(res, out):
    """writes.md and writes.json from a result dict: best MB/s of each, the ratio of bests to
    the probe's pwrite (with and before fsync), and the range of per-run ratios."""
    runs = res["runs"]
    best = {k: max(r[k] for r in runs if r.get(k) is not None) for k in runs[0]
            if any(r.get(k) is not None for r in runs)}
    res["best"] = best
    lim, lim0 = best.get("pwrite_mb_s"), best.get("pwrite_before_fsync_mb_s")
    mib = res["bytes"] >> 20
    lines = [f"# Writing at disk speed ({mib} MiB, best of {res['reps']}, load average "
             f"{res['loadavg_start']:.1f} at start{', page cache dropped before each' if res.get('drop_caches') else ''})", "",
             "| what | MB/s (best) | / pwrite+fsync (best) | / pwrite before fsync (best) | / pwrite+fsync, per run |",
             "|---|---|---|---|---|"]
    for k, name in NAMES:
        if k not in best:
            continue
        per = [r[k] / r["pwrite_mb_s"] for r in runs if r.get(k) and r.get("pwrite_mb_s")]
        rng = f"{min(per):.2f}-{max(per):.2f}" if per else "-"
        r1 = f"{best[k] / lim:.2f}" if lim else "-"
        r0 = f"{best[k] / lim0:.2f}" if lim0 else "-"
        lines.append(f"| {name} | {best[k]:.0f} | {r1} | {r0} | {rng} |")
    t, t0 = best.get("text_construct_mb_s"), best.get("pwrite_text_bytes_before_fsync_mb_s")
    if t and t0:
        per = [r["text_construct_mb_s"] / r["pwrite_text_bytes_before_fsync_mb_s"] for r in runs
               if r.get("text_construct_mb_s") and r.get("pwrite_text_bytes_before_fsync_mb_s")]
        lines += ["", f"The str column against the probe writing the same bytes before its fsync: "
                  f"{t / t0:.2f} (bests), {min(per):.2f}-{max(per):.2f} per run."]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "writes.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(out, "writes.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--from-json":  # rewrite the report of a run
        with open(sys.argv[2]) as f:
            r = json.load(f)
        write_report(r, os.path.dirname(os.path.abspath(sys.argv[2])))
    else:
        main()

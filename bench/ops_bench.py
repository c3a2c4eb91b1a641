"""bench/ops_bench.py: dataset operations (issue 16) against Hugging Face datasets.

    make bench-ops                       # 10M rows, both libraries (~10-20 minutes on 2 cores)
    .venv/bin/python bench/ops_bench.py --rows 1000000 --libs infinidata

Both libraries start from the same .npy files (np.load(mmap_mode="r")): 10M rows of an int64
key (full range), a string key (two words and a number, 8-20 characters), an int64 label
(0..9) and a float32 value. Each library runs in its own process (HF in bench/.venvs/datasets,
made by bench/peers.py) and does the same steps:

  sort by the int key, sort by the string key, shard(16, 3), train_test_split(0.1, seed=0),
  filter with a batched predicate on the label (label % 2 == 0), map with a batched function
  (key * 2, label + 1) keeping only its columns;

each timed once (after one warm-up of the same call for the cheap ones), and after each a read
of the first --read-rows rows of the result in batches of 4096 (all four columns), compared
with the same read of a once-shuffled view of the table (the speed the issue asks for). HF
runs on an in-memory Arrow table (Dataset.from_dict: no cache files; numpy format for the
batched functions), which is its fastest setting. The infinidata process also times
np.argsort(kind="stable") on the same int64 keys in RAM against tv.sort with 1 and N threads.

Results: bench/results/ops.json and bench/results/ops.md (the load average is recorded; the
development machine is shared, so read the ratios with it).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
COLS = ["key_int", "key_str", "label", "x"]


def generate(d, n, seed=0, chunk=1 << 20):
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa",
                      "lambda", "mu", "nu", "xi", "omicron", "pi"])
    arrays = {
        "key_int": np.lib.format.open_memmap(os.path.join(d, "key_int.npy"), "w+", np.int64, (n,)),
        "key_str": np.lib.format.open_memmap(os.path.join(d, "key_str.npy"), "w+", "U20", (n,)),
        "label": np.lib.format.open_memmap(os.path.join(d, "label.npy"), "w+", np.int64, (n,)),
        "x": np.lib.format.open_memmap(os.path.join(d, "x.npy"), "w+", np.float32, (n,)),
    }
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        arrays["key_int"][s:s + m] = rng.integers(-2**63, 2**63 - 1, m, dtype=np.int64)
        a, b = words[rng.integers(0, 16, m)], words[rng.integers(0, 16, m)]
        num = rng.integers(0, 100000, m).astype("U6")
        arrays["key_str"][s:s + m] = np.char.add(np.char.add(a, b), num)
        arrays["label"][s:s + m] = rng.integers(0, 10, m)
        arrays["x"][s:s + m] = rng.random(m, dtype=np.float32)
    for a in arrays.values():
        a.flush()


def open_cols(d):
    return {c: np.load(os.path.join(d, c + ".npy"), mmap_mode="r") for c in COLS}


# ---- the worker (one library per process) ----

def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Ours:
    name = "infinidata"

    def __init__(self, cols):
        import infinidata

        self.I = infinidata
        self.t = infinidata.TableView(cols)

    def sort(self, col):
        return self.t.sort(col)

    def shard(self):
        return self.t.shard(16, 3)

    def split(self):
        return self.t.train_test_split(0.1, seed=0)["train"]

    def filter(self):
        return self.t.filter(lambda b: b["label"] % 2 == 0, batch_size=10_000, columns=["label"])

    def map(self):
        return self.t.map(lambda b: {"k2": b["key_int"] * 2, "l1": b["label"] + 1}, batch_size=10_000,
                          columns=["key_int", "label"])

    def shuffled(self):
        return self.t.shuffle(seed=1)

    def read(self, v, rows):
        v = v.new_view(slice(0, min(rows, len(v))))
        got = 0
        for b in v.batch_iter(4096):
            got += len(next(iter(b.values())))
        return got


class HF:
    name = "datasets"

    def __init__(self, cols):
        import datasets
        import pyarrow as pa

        datasets.disable_caching()
        datasets.disable_progress_bars()
        self.version = datasets.__version__
        table = pa.table({c: pa.array(np.asarray(a)) for c, a in cols.items()})
        self.t = datasets.Dataset(table)
        self.np_t = self.t.with_format("numpy")

    def sort(self, col):
        return self.t.sort(col)

    def shard(self):
        return self.t.shard(16, 3)

    def split(self):
        return self.t.train_test_split(test_size=0.1, seed=0)["train"]

    def filter(self):
        return self.np_t.filter(lambda lab: lab % 2 == 0, batched=True, batch_size=10_000,
                                input_columns=["label"])

    def map(self):
        return self.np_t.map(lambda k, lab: {"k2": k * 2, "l1": lab + 1}, batched=True, batch_size=10_000,
                             input_columns=["key_int", "label"], remove_columns=self.t.column_names)

    def shuffled(self):
        return self.t.shuffle(seed=1)

    def read(self, v, rows):
        v = v.with_format("numpy").select(range(min(rows, len(v))))
        got = 0
        for b in v.iter(batch_size=4096):
            got += len(next(iter(b.values())))
        return got


def worker(lib, data, read_rows, threads):
    cols = open_cols(data)
    out = {"lib": lib}
    t_build, ad = timed(lambda: (Ours if lib == "infinidata" else HF)(cols))
    out["build"] = t_build
    out["version"] = getattr(ad, "version", None) or getattr(getattr(ad, "I", None), "__version__", "?")
    n = len(cols["key_int"])
    if lib == "infinidata":
        keys = np.array(cols["key_int"])
        out["np_argsort_stable"] = min(timed(lambda: np.argsort(keys, kind="stable"))[0] for _ in range(2))
        del keys
        out["sort_int_1thread"] = min(timed(lambda: ad.t.sort("key_int", threads=1))[0] for _ in range(2))
        out[f"sort_int_{threads}threads"] = min(timed(lambda: ad.t.sort("key_int", threads=threads))[0]
                                                for _ in range(2))
    t, base = timed(ad.shuffled)
    out["shuffle"] = t
    out["read_shuffled"] = timed(lambda: ad.read(base, read_rows))[0]
    if lib != "infinidata":
        del base  # HF's shuffled read takes minutes: once is enough
    for name, fn in [("sort_int", lambda: ad.sort("key_int")), ("sort_str", lambda: ad.sort("key_str")),
                     ("shard", ad.shard), ("train_test_split", ad.split), ("filter", ad.filter),
                     ("map", ad.map)]:
        if name in ("shard", "train_test_split"):
            fn()  # cheap ones: a warm-up first
        t, res = timed(fn)
        out[name] = t
        if lib == "infinidata":  # the once-shuffled read again, right before (a shared machine drifts)
            out[f"read_shuffled_before_{name}"] = timed(lambda: ad.read(base, read_rows))[0]
        out[f"read_after_{name}"] = timed(lambda: ad.read(res, read_rows))[0]
        out[f"rows_after_{name}"] = len(res)
        del res
        print(f"[{lib}] {name}: {t:.3f} s, read {out[f'read_after_{name}']:.3f} s", file=sys.stderr, flush=True)
    out["rows"] = n
    print(json.dumps(out), flush=True)


# ---- the driver ----

OPS = ["sort_int", "sort_str", "shard", "train_test_split", "filter", "map"]
GOALS = {"sort_int": 1.5, "sort_str": 1.5, "train_test_split": 5, "filter": 5}


def report(res, args, load):
    ours, hf = res.get("infinidata"), res.get("datasets")
    lines = [f"# Dataset operations vs Hugging Face datasets ({args.rows:,} rows)", "",
             f"`{' '.join(sys.argv)}` on {platform.node()}, {os.cpu_count()} CPUs, load average "
             f"before/after: {load[0]} / {load[1]}; datasets {hf.get('version') if hf else '-'}.",
             "Ratios: HF time / infinidata time (above 1: infinidata is faster). Reads: the first "
             f"{args.read_rows:,} rows of the result in batches of 4096, all its columns (map's result "
             "has two int columns; a shard has len/16 rows); the last column divides ours by the same "
             "read of a once-shuffled view of the table, timed right before it."
             + (f" HF figures reused from an earlier run ({hf.get('reused')})." if hf and hf.get("reused") else ""),
             "",
             "| operation | infinidata s | HF s | ratio | goal | read after (ours) | read after (HF) | "
             "ours read / once-shuffled read |", "|---|---|---|---|---|---|---|---|"]
    for op in OPS:
        a = ours.get(op) if ours else None
        b = hf.get(op) if hf else None
        ratio = f"{b / a:.1f}x" if a and b else "-"
        goal = GOALS.get(op)
        gtxt = "-" if goal is None or not (a and b) else f">= {goal}x " + ("PASS" if b / a >= goal else "MISS")
        ra = ours.get(f"read_after_{op}") if ours else None
        rb = hf.get(f"read_after_{op}") if hf else None
        rs = ours.get(f"read_shuffled_before_{op}", ours.get("read_shuffled")) if ours else None
        rel = f"{ra / rs:.2f}" if ra and rs else "-"
        fmt = lambda x: f"{x:.3f}" if x is not None else "-"  # noqa: E731
        lines.append(f"| {op} | {fmt(a)} | {fmt(b)} | {ratio} | {gtxt} | {fmt(ra)} | {fmt(rb)} | {rel} |")
    if ours:
        lines += ["", f"Once-shuffled view read: infinidata {ours['read_shuffled']:.3f} s"
                  + (f", HF {hf['read_shuffled']:.3f} s" if hf else "") + ".", "",
                  "Sort engine vs NumPy on the same in-RAM int64 keys (full 64-bit range):", "",
                  "| | seconds |", "|---|---|",
                  f"| np.argsort(kind=\"stable\") | {ours['np_argsort_stable']:.3f} |",
                  f"| tv.sort, 1 thread (view made, index composed) | {ours['sort_int_1thread']:.3f} |"]
        for k, v in ours.items():
            if k.startswith("sort_int_") and k.endswith("threads"):
                lines.append(f"| tv.sort, {k[9:-7]} threads | {v:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--read-rows", type=int, default=1_000_000)
    ap.add_argument("--libs", default="infinidata,datasets")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--tmp", default=None, help="where the data and temp files go")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--reuse", action="store_true",
                    help="keep the results of libraries not run now from the previous ops.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.read_rows, args.threads)
    tmp = tempfile.mkdtemp(prefix="idt-ops-bench-", dir=args.tmp)
    load = [os.getloadavg()]
    res = {}
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        print(f"[ops] generating {args.rows:,} rows in {data}", file=sys.stderr, flush=True)
        generate(data, args.rows)
        for lib in args.libs.split(","):
            if lib == "datasets":
                sys.path.insert(0, HERE)
                import peers

                try:
                    py = peers.ensure("datasets", log=lambda m: print(m, file=sys.stderr))
                except peers.PeerUnavailable as e:
                    print(f"[ops] datasets unavailable: {e}", file=sys.stderr)
                    continue
            else:
                py = sys.executable
            env = dict(os.environ, INFINIDATA_TMPDIR=os.path.join(tmp, "idt"), HF_HOME=os.path.join(tmp, "hf"))
            p = subprocess.run([py, os.path.abspath(__file__), "--worker", lib, "--data", data,
                                "--read-rows", str(args.read_rows), "--threads", str(args.threads)],
                               env=env, capture_output=True, text=True, timeout=args.timeout)
            sys.stderr.write(p.stderr)
            if p.returncode:
                print(f"[ops] {lib} failed ({p.returncode})", file=sys.stderr)
                continue
            res[lib] = json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load.append(os.getloadavg())
    load = [" ".join(f"{x:.1f}" for x in l) for l in load]
    os.makedirs(args.out, exist_ok=True)
    prev = os.path.join(args.out, "ops.json")
    if args.reuse and os.path.exists(prev):
        with open(prev) as f:
            old = json.load(f)
        for lib, r in old["results"].items():
            if lib not in res:
                r.setdefault("reused", f"load average {old['load'][0]}")
                res[lib] = r
    with open(os.path.join(args.out, "ops.json"), "w") as f:
        json.dump({"args": vars(args), "load": load, "results": res}, f, indent=1)
    md = report(res, args, load)
    with open(os.path.join(args.out, "ops.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())

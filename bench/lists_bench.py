"""bench/lists_bench.py: a shuffled pass over a list column (issue 13 item 8).

    make bench-lists                                   # ~1-2 minutes
    .venv/bin/python bench/lists_bench.py --rows 50000 --batch 256 --threads 1

One token column: --rows rows of int32 token ids, lengths uniform in 1..2048 (mean ~1024).
Each case is a full pass over a shuffled view (shuffle(seed=0)) with batch_iter, timed as the
median of --repeat passes, in the same process and run, so the ratios hold on a loaded
machine (the load average is recorded):

  ragged    the list column, batches as Ragged (values + int64 offsets)
  fixed_mean  a fixed (L,) int32 column with L = the mean length and the same stored bytes
            (rows = total tokens / L): the goal is ragged >= 0.8 x its bytes/s
  padded    the list column with pad={"tok": (0, 2048)}: (B, 2048) arrays + lengths
  fixed_2048  a fixed (2048,) int32 column of --rows rows (the same output bytes): the goal
            is padded >= 0.8 x its rows/s
  hf        Hugging Face datasets on the same tokens (features Sequence(int32), from an Arrow
            table), shuffle(seed=0), with_format("numpy"), batches of --batch rows via
            Dataset.iter; run in a child process (skipped when datasets is missing)

Throughput is tokens (int32 values) delivered per second; for padded cases also rows/s. Results
go to bench/results/lists.json and bench/results/lists.md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MAXLEN = 2048


def make_tokens(n, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAXLEN + 1, n).astype(np.int64)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = rng.integers(0, 50000, int(offsets[-1]), dtype=np.int32)
    return values, offsets


def timed_passes(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run_infinidata(values, offsets, args):
    import infinidata
    TV = infinidata.TableView
    n = len(offsets) - 1
    total = int(offsets[-1])
    mean_len = int(round(total / n))
    rows_mean = total // mean_len
    res = {}

    lists = TV({"tok": infinidata.Ragged(values, offsets)}).shuffle(seed=0)
    fixed_mean = TV({"tok": values[:rows_mean * mean_len].reshape(rows_mean, mean_len)}).shuffle(seed=0)
    rng = np.random.default_rng(1)
    fixed_2048 = TV({"tok": rng.integers(0, 50000, (n, MAXLEN), dtype=np.int32)}).shuffle(seed=0)

    def pass_ragged():
        got = 0
        for b in lists.batch_iter(args.batch, threads=args.threads, readahead=args.readahead):
            got += b["tok"].values.shape[0]
        assert got == total

    def pass_fixed_mean():
        got = 0
        for b in fixed_mean.batch_iter(args.batch, threads=args.threads, readahead=args.readahead):
            got += b["tok"].size
        assert got == rows_mean * mean_len

    def pass_padded():
        got = 0
        for b in lists.batch_iter(args.batch, threads=args.threads, readahead=args.readahead,
                                  pad={"tok": (0, MAXLEN)}):
            got += b["tok"].shape[0]
        assert got == n

    def pass_fixed_2048():
        got = 0
        for b in fixed_2048.batch_iter(args.batch, threads=args.threads, readahead=args.readahead):
            got += b["tok"].shape[0]
        assert got == n

    # correctness once: the ragged pass gives what the model gives
    first = next(iter(lists.batch_iter(args.batch)))["tok"]
    perm = TV({"i": np.arange(n)}).shuffle(seed=0)[:args.batch]["i"]
    for k in (0, len(first) - 1):
        np.testing.assert_array_equal(first[k], values[offsets[perm[k]]:offsets[perm[k] + 1]])

    for name, fn, tokens, rows in (("ragged", pass_ragged, total, n),
                                   ("fixed_mean", pass_fixed_mean, rows_mean * mean_len, rows_mean),
                                   ("padded", pass_padded, n * MAXLEN, n),
                                   ("fixed_2048", pass_fixed_2048, n * MAXLEN, n)):
        fn()  # warm: page cache, buffer pool
        med, times = timed_passes(fn, args.repeat)
        res[name] = {"seconds": med, "passes": times, "tokens": tokens, "rows": rows,
                     "tokens_per_s": tokens / med, "rows_per_s": rows / med,
                     "stored_bytes": (total if name in ("ragged", "padded") else tokens) * 4}
    res["mean_len"] = mean_len
    return res


HF_CHILD = r"""
import json, statistics, sys, time
import numpy as np, pyarrow as pa, datasets
values = np.load(sys.argv[1]); offsets = np.load(sys.argv[2])
batch, repeat = int(sys.argv[3]), int(sys.argv[4])
arr = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
ds = datasets.Dataset(pa.table({"tok": arr}))
ds = ds.cast(datasets.Features({"tok": datasets.Sequence(datasets.Value("int32"))}))
ds = ds.shuffle(seed=0).with_format("numpy")
total = int(offsets[-1])
def one():
    got = 0
    for b in ds.iter(batch_size=batch):
        got += sum(len(r) for r in b["tok"])
    assert got == total, (got, total)
one()
times = []
for _ in range(repeat):
    t0 = time.perf_counter(); one(); times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(json.dumps({"seconds": med, "passes": times, "tokens": total, "rows": len(offsets) - 1,
                  "tokens_per_s": total / med, "rows_per_s": (len(offsets) - 1) / med,
                  "datasets": datasets.__version__}))
"""


def run_hf(values, offsets, args):
    with tempfile.TemporaryDirectory(prefix="idt-lists-bench-") as d:
        vp, op = os.path.join(d, "v.npy"), os.path.join(d, "o.npy")
        np.save(vp, values)
        np.save(op, offsets)
        p = subprocess.run([sys.executable, "-c", HF_CHILD, vp, op, str(args.batch), str(args.repeat)],
                           capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout).strip().splitlines()[-1:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--readahead", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-hf", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()

    values, offsets = make_tokens(args.rows)
    load0 = os.getloadavg()
    res = {"args": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
           "total_tokens": int(offsets[-1]), "loadavg_start": load0}
    res["infinidata"] = run_infinidata(values, offsets, args)
    if not args.no_hf:
        try:
            import datasets  # noqa: F401
            res["hf"] = run_hf(values, offsets, args)
        except ImportError:
            res["hf"] = {"error": "datasets is not installed"}
    res["loadavg_end"] = os.getloadavg()
    r = res["infinidata"]
    res["ratios"] = {
        "ragged_vs_fixed_mean_tokens": r["ragged"]["tokens_per_s"] / r["fixed_mean"]["tokens_per_s"],
        "padded_vs_fixed_2048_rows": r["padded"]["rows_per_s"] / r["fixed_2048"]["rows_per_s"],
    }
    if "tokens_per_s" in res.get("hf", {}):
        res["ratios"]["ragged_vs_hf_tokens"] = r["ragged"]["tokens_per_s"] / res["hf"]["tokens_per_s"]

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lists.json"), "w") as f:
        json.dump(res, f, indent=1)
    lines = [f"# List column: a shuffled pass (bench/lists_bench.py)", "",
             f"{args.rows} rows of int32 tokens, lengths uniform 1..{MAXLEN} ({res['total_tokens']} tokens, "
             f"mean {r['mean_len']}); batch_iter({args.batch}, threads={args.threads}, "
             f"readahead={args.readahead}) over shuffle(seed=0); median of {args.repeat} passes; "
             f"load average {load0[0]:.1f} at start, {res['loadavg_end'][0]:.1f} at end on {res['cpus']} CPUs.", "",
             "| case | s/pass | Mtokens/s | rows/s |", "| --- | --- | --- | --- |"]
    for name in ("ragged", "fixed_mean", "padded", "fixed_2048"):
        c = r[name]
        lines.append(f"| {name} | {c['seconds']:.3f} | {c['tokens_per_s'] / 1e6:.1f} | {c['rows_per_s']:.0f} |")
    if "tokens_per_s" in res.get("hf", {}):
        c = res["hf"]
        lines.append(f"| hf datasets {c['datasets']} (Sequence(int32), numpy format) | {c['seconds']:.3f} | "
                     f"{c['tokens_per_s'] / 1e6:.1f} | {c['rows_per_s']:.0f} |")
    elif "hf" in res:
        lines.append(f"| hf datasets | {res['hf'].get('error')} | | |")
    lines += ["", "| ratio | value | goal |", "| --- | --- | --- |",
              f"| ragged / fixed (mean length, same stored bytes), tokens/s | "
              f"{res['ratios']['ragged_vs_fixed_mean_tokens']:.2f} | >= 0.8 |",
              f"| padded to {MAXLEN} / fixed ({MAXLEN},), rows/s | {res['ratios']['padded_vs_fixed_2048_rows']:.2f} | >= 0.8 |"]
    if "ragged_vs_hf_tokens" in res["ratios"]:
        lines.append(f"| ragged / HF datasets, tokens/s | {res['ratios']['ragged_vs_hf_tokens']:.1f} | - |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "lists.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()

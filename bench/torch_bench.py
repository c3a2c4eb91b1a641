#!/usr/bin/env python3
"""bench/torch_bench.py: feeding PyTorch, samples/s, infinidata.torch against the usual ways.

    python bench/torch_bench.py                 # 1M rows x 128 float32 + int64 label (make bench)
    python bench/torch_bench.py --rows 20000    # a quick look
    python bench/torch_bench.py --cases tableloader,batch_iter --out /tmp/x

The data (x: float32 (rows, 128), y: int64) is written once as .npy files; every case opens
them with np.load(mmap_mode="r") and reads shuffled batches of 256 in one process (plus the
DataLoader workers it asks for), each case in a fresh process:

| case | what |
|---|---|
| tableloader | infinidata.torch.TableLoader(view, 256, seed=0), in-process (num_workers=0), default threads |
| batch_iter | the raw engine: view.shuffle(seed).batch_iter(256, threads, readahead) with the same threads/readahead, arrays to tensors by torch.from_numpy (the adapter's floor) |
| tabledataset | TableDataset + DataLoader(batch_size=256, shuffle=True, collate_fn=collate), num_workers=0 |
| tabledataset_w2 | the same with num_workers=2 |
| memmap_w2 | (a) a map-style Dataset over np.memmap (one row per __getitem__) + DataLoader(shuffle=True, num_workers=2) |
| hf_w2 | (b) Hugging Face datasets Dataset.with_format("torch") + DataLoader(shuffle=True, num_workers=2) (bench venv datasets-torch) |
| mds_w2 | (c) MosaicML streaming StreamingDataset(local=MDS shards, shuffle=True) + DataLoader(num_workers=2) (bench venv mosaicml-streaming) |

Time counts from making the iterator (so DataLoader worker start-up is in) to the last batch
of one epoch, or to --max-seconds for the slow cases (their rate is then samples read /
time). Fast cases take the best of --repeat epochs. Building each library's own copy of the
data (TableView, Arrow cache, MDS shards) is not timed. Results: <out>/torch.md, torch.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import loadavg  # noqa: E402  (bench/run.py: the 1-minute load average)

DIM = 128
BATCH = 256
CASES = ["tableloader", "batch_iter", "tabledataset", "tabledataset_w2", "memmap_w2", "hf_w2", "mds_w2"]
VENV_OF = {"hf_w2": "datasets-torch", "mds_w2": "mosaicml-streaming"}


def log(*a):
    print(*a, flush=True)


# ---- the data ----

def generate(d, rows, chunk=65536):
    import numpy as np

    os.makedirs(d, exist_ok=True)
    fmt = np.lib.format
    x = fmt.open_memmap(os.path.join(d, "x.npy"), "w+", np.float32, (rows, DIM))
    y = fmt.open_memmap(os.path.join(d, "y.npy"), "w+", np.int64, (rows,))
    rng = np.random.default_rng(0)
    for i in range(0, rows, chunk):
        n = min(chunk, rows - i)
        x[i:i + n] = rng.random((n, DIM), dtype=np.float32)
        y[i:i + n] = np.arange(i, i + n)
    x.flush()
    y.flush()
    del x, y


def load(d):
    import numpy as np

    return np.load(os.path.join(d, "x.npy"), mmap_mode="r"), np.load(os.path.join(d, "y.npy"), mmap_mode="r")


# ---- one case, in its own process ----

def _timed_epoch(make_iter, total, max_seconds, check):
    """Run one epoch (or until max_seconds); returns (samples, seconds, rows seen ok)."""
    t0 = time.perf_counter()
    it = make_iter()
    n = 0
    ok = True
    for batch in it:
        x, y = check(batch)
        n += len(y)
        if x.shape[1:] != (DIM,):
            ok = False
        if time.perf_counter() - t0 > max_seconds:
            break
    dt = time.perf_counter() - t0
    if n < total and dt <= max_seconds:
        ok = False  # an epoch that ended early
    return n, dt, ok


def worker(case, d, args):
    import numpy as np

    x_mm, y_mm = load(d)
    rows = len(y_mm)
    threads = args.threads
    readahead = 2 * threads
    repeat = args.repeat
    info = {}

    def by_key(b):
        return b["x"], b["y"]

    def by_pos(b):
        return b[0], b[1]

    if case in ("tableloader", "batch_iter", "tabledataset", "tabledataset_w2"):
        import torch
        import infinidata
        from infinidata.torch import TableDataset, TableLoader, collate

        tv = infinidata.TableView({"x": x_mm, "y": y_mm})
        info["torch"] = torch.__version__
        if case == "tableloader":
            ld = TableLoader(tv, BATCH, seed=0, threads=threads, readahead=readahead)
            epochs = iter(range(1_000_000))

            def make():  # a new epoch each time: its shuffle is timed, as in batch_iter's case
                ld.set_epoch(next(epochs))
                return iter(ld)
            check = by_key
        elif case == "batch_iter":
            def make():
                v = tv.shuffle(seed=1)
                return ({k: torch.from_numpy(a) for k, a in b.items()}
                        for b in v.batch_iter(BATCH, threads=threads, readahead=readahead))
            check = by_key
        else:
            nw = 2 if case.endswith("_w2") else 0
            ds = TableDataset(tv)
            dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=nw,
                                             collate_fn=collate)
            make, check = (lambda: iter(dl)), by_key
    elif case == "memmap_w2":
        import torch

        class MemmapDataset(torch.utils.data.Dataset):
            def __init__(self, x, y):
                self.x, self.y = x, y

            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                return torch.from_numpy(np.array(self.x[i])), int(self.y[i])

        dl = torch.utils.data.DataLoader(MemmapDataset(x_mm, y_mm), batch_size=BATCH, shuffle=True,
                                         num_workers=2)
        make, check = (lambda: iter(dl)), by_pos
        repeat = 1
    elif case == "hf_w2":
        import datasets
        import torch

        cache = os.path.join(d, "hf")
        datasets.disable_progress_bars()
        info["datasets"] = datasets.__version__

        def gen():
            for i in range(0, rows, 65536):
                yield {"x": np.asarray(x_mm[i:i + 65536]), "y": np.asarray(y_mm[i:i + 65536])}

        t0 = time.perf_counter()
        features = datasets.Features({"x": datasets.Sequence(datasets.Value("float32"), length=DIM),
                                      "y": datasets.Value("int64")})
        parts = [datasets.Dataset.from_dict(b, features=features) for b in gen()]
        ds = datasets.concatenate_datasets(parts)
        ds.save_to_disk(cache)
        ds = datasets.load_from_disk(cache).with_format("torch")
        info["build_s"] = round(time.perf_counter() - t0, 1)
        dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=2)
        make, check = (lambda: iter(dl)), by_key
        repeat = 1
    elif case == "mds_w2":
        import types

        # streaming/__init__ imports streaming.vision -> torchvision, whose PyPI wheel is the
        # CUDA build and fails to load next to the CPU torch; MDS reading does not use it
        sys.modules.setdefault("streaming.vision", types.ModuleType("streaming.vision"))
        import streaming
        import torch
        from streaming import MDSWriter, StreamingDataset

        info["streaming"] = streaming.__version__
        out = os.path.join(d, "mds")
        t0 = time.perf_counter()
        if not os.path.exists(os.path.join(out, "index.json")):
            with MDSWriter(out=out, columns={"x": f"ndarray:float32:{DIM}", "y": "int64"},
                           size_limit="64mb") as w:
                for i in range(0, rows, 65536):
                    xs, ys = np.asarray(x_mm[i:i + 65536]), np.asarray(y_mm[i:i + 65536])
                    for k in range(len(ys)):
                        w.write({"x": xs[k], "y": ys[k]})
        info["build_s"] = round(time.perf_counter() - t0, 1)
        streaming.base.util.clean_stale_shared_memory()
        ds = StreamingDataset(local=out, shuffle=True, shuffle_seed=0, batch_size=BATCH)
        dl = torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=2)
        make, check = (lambda: iter(dl)), by_key
        repeat = 1
    else:
        raise SystemExit(f"unknown case {case}")

    best = None
    for _ in range(max(1, repeat)):
        n, dt, ok = _timed_epoch(make, rows, args.max_seconds, check)
        if best is None or n / dt > best[0] / best[1]:
            best = (n, dt, ok)
    n, dt, ok = best
    info.update(samples=n, seconds=round(dt, 3), samples_per_s=round(n / dt), full_epoch=n >= rows, ok=ok)
    print("RESULT " + json.dumps(info), flush=True)


# ---- the driver ----

def python_for(case):
    """The interpreter for a case: .venv's, or a peer's bench venv (made on first use)."""
    if case not in VENV_OF:
        return sys.executable
    import peers

    return peers.ensure(VENV_OF[case], log=log)


def run_case(case, d, args):
    try:
        py = python_for(case)
    except Exception as e:  # peers.PeerUnavailable: it says why
        return {"error": f"not installed: {e}"}
    env = dict(os.environ, INFINIDATA_TMPDIR=os.path.join(d, "idt-tmp"))
    cmd = [py, os.path.abspath(__file__), "--worker", case, "--data", d, "--threads", str(args.threads),
           "--repeat", str(args.repeat), "--max-seconds", str(args.max_seconds)]
    la0 = loadavg()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s", "load": [la0, loadavg()]}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            r["load"] = [la0, loadavg()]
            return r
    tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
    return {"error": f"exit {p.returncode}: {tail}", "load": [la0, loadavg()]}


def report(res, args):
    def rate(c):
        r = res.get(c, {})
        return r.get("samples_per_s") if "error" not in r else None

    lines = [f"# infinidata.torch: samples/s, {args.rows:,} rows x {DIM} float32 + int64 label, "
             f"batch {BATCH}, shuffled", "",
             f"`{' '.join(args.argv)}`; {os.cpu_count()} CPUs; threads={args.threads}, readahead="
             f"{2 * args.threads}; slow cases stop after {args.max_seconds} s.", "",
             "| case | samples/s | samples | seconds | load before/after | note |", "|---|---|---|---|---|---|"]
    for c in CASES:
        if c not in res:
            continue
        r = res[c]
        load = "/".join(f"{x:.1f}" for x in r.get("load", []) if x is not None)
        if "error" in r:
            lines.append(f"| {c} | - | - | - | {load} | {r['error'][:300]} |")
            continue
        note = []
        if not r.get("full_epoch"):
            note.append("partial epoch (time cap)")
        if not r.get("ok"):
            note.append("CHECK FAILED")
        for k in ("datasets", "streaming", "build_s"):
            if k in r:
                note.append(f"{k}={r[k]}")
        lines.append(f"| {c} | {r['samples_per_s']:,} | {r['samples']:,} | {r['seconds']} | {load} | "
                     f"{', '.join(note)} |")
    lines.append("")
    tl, raw = rate("tableloader"), rate("batch_iter")
    peers_ = {c: rate(c) for c in ("memmap_w2", "hf_w2", "mds_w2") if rate(c)}
    if tl and peers_:
        best = max(peers_, key=peers_.get)
        x = tl / peers_[best]
        lines.append(f"- goal TableLoader >= 10x the best of (a)-(c): {x:.1f}x {best} "
                     f"({'PASS' if x >= 10 else 'MISS'})")
    if tl and raw:
        x = tl / raw
        lines.append(f"- goal TableLoader within 20 % of raw batch_iter: {x:.2f} of it "
                     f"({'PASS' if x >= 0.8 else 'MISS'})")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=None, help="TableLoader/batch_iter threads "
                    "(default: infinidata.torch.default_threads())")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--tmp", default=None, help="where the data goes (default: a temp dir)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.threads is None:
            args.threads = 2
        worker(args.worker, args.data, args)
        return
    args.argv = ["bench/torch_bench.py"] + sys.argv[1:]
    if args.threads is None:
        from infinidata.torch import default_threads

        args.threads = default_threads()
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}; cases: {', '.join(CASES)}")
    d = tempfile.mkdtemp(prefix="idt-torch-bench-", dir=args.tmp)
    res = {}
    try:
        log(f"[torch-bench] writing {args.rows:,} rows to {d} ...")
        generate(d, args.rows)
        for c in cases:
            log(f"[torch-bench] {c} ...")
            res[c] = run_case(c, d, args)
            log(f"[torch-bench] {c}: {res[c]}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    md = report(res, args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "torch.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump({"rows": args.rows, "batch": BATCH, "threads": args.threads, "results": res}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()

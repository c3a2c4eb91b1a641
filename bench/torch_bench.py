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
| pack | sequence packing: TableLoader(docs, 8, pack={"column": "tokens", "seq_len": 2048}), in-process, default threads: tokens/s |
| pack_python | the same epoch (same shuffled documents, same batches) packed by a plain Python packer over batch_iter's Ragged batches (a NumPy slice copy per document piece): tokens/s |

The packing cases read their own data: --pack-docs documents (default 200,000) of int32
token ids, lengths drawn log-normally around 300 tokens (some empty, a few over 10,000),
as a list column; their rate is tokens packed per second over one epoch.

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
CASES = ["tableloader", "batch_iter", "tabledataset", "tabledataset_w2", "memmap_w2", "hf_w2", "mds_w2",
         "pack", "pack_python"]
PACK_CASES = ("pack", "pack_python")
SEQ_LEN = 2048
PACK_BATCH = 8
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


def generate_docs(d, docs):
    """Documents for the packing cases: lengths.npy (int64) and values.npy (int32 ids)."""
    import numpy as np

    rng = np.random.default_rng(1)
    lens = np.minimum(rng.lognormal(5.4, 1.0, docs), 20_000).astype(np.int64)
    lens[rng.random(docs) < 0.01] = 0
    np.save(os.path.join(d, "doc_lengths.npy"), lens)
    total = int(lens.sum())
    v = np.lib.format.open_memmap(os.path.join(d, "doc_values.npy"), "w+", np.int32, (total,))
    for i in range(0, total, 1 << 24):
        n = min(1 << 24, total - i)
        v[i:i + n] = (np.arange(i, i + n) % 50_000).astype(np.int32)
    v.flush()
    del v


def python_packer(view, seq_len, batch, threads, readahead, pad_id=0):
    """A plain Python packer: the documents of `view` (in its order, read by batch_iter) laid
    into (batch, seq_len) rows one piece at a time with NumPy slice copies; the same outputs
    as TableLoader(pack=...) (tokens, position_ids, cu_seqlens as tensors)."""
    import numpy as np
    import torch

    ar = np.arange(seq_len, dtype=np.int64)

    def fresh():
        return (np.full((batch, seq_len), pad_id, np.int32), np.zeros((batch, seq_len), np.int64), [0])

    tok, pos, cu = fresh()
    r = c = 0
    for b in view.batch_iter(1024, threads=threads, readahead=readahead):
        rag = b["tokens"]
        vals, offs = rag.values, rag.offsets
        for i in range(len(offs) - 1):
            a, z = int(offs[i]), int(offs[i + 1])
            while a < z:
                take = min(z - a, seq_len - c)
                tok[r, c:c + take] = vals[a:a + take]
                pos[r, c:c + take] = ar[:take]
                a += take
                c += take
                cu.append(r * seq_len + c)
                if c == seq_len:
                    r, c = r + 1, 0
                    if r == batch:
                        yield {"tokens": torch.from_numpy(tok), "position_ids": torch.from_numpy(pos),
                               "cu_seqlens": torch.from_numpy(np.array(cu, np.int32))}
                        tok, pos, cu = fresh()
                        r = 0
    if r or c:
        if c:
            pos[r, c:] = ar[:seq_len - c]
            cu.append((r + 1) * seq_len)
            r += 1
        yield {"tokens": torch.from_numpy(tok[:r]), "position_ids": torch.from_numpy(pos[:r]),
               "cu_seqlens": torch.from_numpy(np.array(cu, np.int32))}


def pack_worker(case, d, args):
    """The packing cases: tokens/s over one epoch (best of --repeat)."""
    import numpy as np
    import torch
    import infinidata
    from infinidata import torch as itorch

    lens = np.load(os.path.join(d, "doc_lengths.npy"))
    values = np.load(os.path.join(d, "doc_values.npy"), mmap_mode="r")
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    tv = infinidata.TableView({"tokens": infinidata.Ragged(values, offsets)})
    total = int(offsets[-1])
    threads = args.threads
    info = {"torch": torch.__version__, "documents": len(lens), "tokens": total}
    pack = {"column": "tokens", "seq_len": SEQ_LEN, "pad_id": 0}
    best = None
    for epoch in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        if case == "pack":
            ld = itorch.TableLoader(tv, PACK_BATCH, seed=0, threads=threads, readahead=2 * threads,
                                    pack=pack)
            ld.set_epoch(epoch)          # the shuffle and the cumulative lengths are timed
            it = iter(ld)
        else:
            ev = tv.shuffle(seed=itorch._epoch_seed(0, epoch))
            it = python_packer(ev, SEQ_LEN, PACK_BATCH, threads, 2 * threads)
        rows = 0
        for b in it:
            rows += len(b["tokens"])
            if time.perf_counter() - t0 > args.max_seconds:
                break
        dt = time.perf_counter() - t0
        done = min(rows * SEQ_LEN, total)
        if best is None or done / dt > best[0] / best[1]:
            best = (done, dt, rows * SEQ_LEN >= total)
    done, dt, full = best
    info.update(samples=done, seconds=round(dt, 3), samples_per_s=round(done / dt), full_epoch=full,
                ok=full or dt > args.max_seconds)
    print("RESULT " + json.dumps(info), flush=True)


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

    if case in PACK_CASES:
        return pack_worker(case, d, args)

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


def case_table(res, cases, unit):
    """The markdown table (a list of lines) of those of `cases` that ran, in `unit` (samples or
    tokens): rate, amount, seconds, load averages, and what to know (an error, a partial epoch,
    a failed check, build time and versions)."""
    lines = [f"| case | {unit}/s | {unit} | seconds | load before/after | note |", "|---|---|---|---|---|---|"]
    for c in cases:
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
    return lines


def report(res, args):
    def rate(c):
        r = res.get(c, {})
        return r.get("samples_per_s") if "error" not in r else None

    lines = [f"# infinidata.torch: samples/s, {args.rows:,} rows x {DIM} float32 + int64 label, "
             f"batch {BATCH}, shuffled", "",
             f"`{' '.join(args.argv)}`; {os.cpu_count()} CPUs; threads={args.threads}, readahead="
             f"{2 * args.threads}; slow cases stop after {args.max_seconds} s.", "",
             *case_table(res, [c for c in CASES if c not in PACK_CASES], "samples"), ""]
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
    if any(c in res for c in PACK_CASES):
        lines += ["", f"## Sequence packing: tokens/s, {args.pack_docs:,} documents, seq_len {SEQ_LEN}, "
                  f"batch {PACK_BATCH}, shuffled", "", *case_table(res, PACK_CASES, "tokens")]
        pk, pp = rate("pack"), rate("pack_python")
        if pk and pp:
            lines += ["", f"- TableLoader(pack=...) packs {pk / pp:.1f}x the tokens/s of the Python packer"]
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
    ap.add_argument("--pack-docs", type=int, default=200_000, help="documents of the packing cases")
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
        if any(c not in PACK_CASES for c in cases):
            generate(d, args.rows)
        if any(c in PACK_CASES for c in cases):
            generate_docs(d, args.pack_docs)
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
        json.dump({"rows": args.rows, "batch": BATCH, "pack_docs": args.pack_docs, "threads": args.threads, "results": res}, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()

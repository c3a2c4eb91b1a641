"""bench/worker.py: runs the workloads for one library and prints one JSON line per workload.

    python bench/worker.py --lib LIB --data DATA_DIR --work WORK_DIR --workloads a,b,c --params JSON

LIB is infinidata (this project, in .venv), numpy (np.memmap, in .venv), datasets (Hugging Face,
in bench/.venvs/datasets) or infinidata-0.0.1 (the original, in bench/.venvs/infinidata-0.0.1,
whose import name is also `infinidata`: that is why every library runs in a process of its own).
Every workload is written once, below, against the small Adapter interface, so each library
runs exactly the same steps on the same data. run.py starts this script and reads its output.
"""

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

import common
from common import disk_used, main_row_bytes, open_data, rss_anon, timed

# ---- adapters: the same operations, one class per library ----


class InfinidataAdapter:
    """This project and the original Infinidata share the API, so one adapter serves both."""

    threads = True

    def __init__(self, work):
        import infinidata

        self.m = infinidata
        self.version = getattr(infinidata, "__version__", None)
        if self.version is None:
            try:
                from importlib.metadata import version

                self.version = version("infinidata")
            except Exception:
                self.version = "?"

    def build(self, cols, persist=True):
        return self.m.TableView(dict(cols))

    def n(self, t):
        return len(t)

    def batches(self, t, bs, threads=1, readahead=0):
        return t.batch_iter(bs, threads=threads, readahead=readahead)

    def shuffle(self, t, seed):
        return t.shuffle(seed=seed)

    def row(self, t, i):
        return t[i]

    def take(self, t, idx):
        return t[idx]

    def slice(self, t, start, stop, step):
        return t.new_view(slice(start, stop, step))

    def concat(self, ts):
        return self.m.TableView.concat(ts)


class NumpyTable:
    """A 'view' for the NumPy peer: the column arrays and an optional int64 index array."""

    def __init__(self, cols, idx=None):
        self.cols, self.idx = cols, idx
        self.n = len(idx) if idx is not None else len(next(iter(cols.values())))


class NumpyAdapter:
    """np.memmap: construction copies the columns into .npy files and maps them; a contiguous
    batch is np.array(mm[i:i+bs]) (a memcpy), a shuffled batch mm[perm[i:i+bs]] (NumPy's fancy
    indexing gather); views are index arrays composed with NumPy. Text is NumPy's fixed-width U."""

    threads = False

    def __init__(self, work):
        self.work = work
        self.version = np.__version__
        self.k = 0

    def build(self, cols, persist=True):
        if not persist:
            return NumpyTable({c: np.ascontiguousarray(a) for c, a in cols.items()})
        out = {}
        for c, a in cols.items():
            self.k += 1
            path = os.path.join(self.work, "np-%d-%s.npy" % (self.k, c))
            mm = np.lib.format.open_memmap(path, "w+", a.dtype, a.shape)
            for i in range(0, len(a), 65536):
                mm[i : i + 65536] = a[i : i + 65536]
            del mm  # unmapped; the pages stay in the page cache, like the other libraries' files
            out[c] = np.load(path, mmap_mode="r")
        return NumpyTable(out)

    def n(self, t):
        return t.n

    def batches(self, t, bs, threads=1, readahead=0):
        if t.idx is None:
            for i in range(0, t.n, bs):
                yield {c: np.array(a[i : i + bs]) for c, a in t.cols.items()}
        else:
            for i in range(0, t.n, bs):
                ix = t.idx[i : i + bs]
                yield {c: a[ix] for c, a in t.cols.items()}

    def shuffle(self, t, seed):
        perm = np.random.default_rng(seed).permutation(t.n)
        return NumpyTable(t.cols, perm if t.idx is None else t.idx[perm])

    def row(self, t, i):
        k = i if t.idx is None else t.idx[i]
        return {c: np.array(a[k]) for c, a in t.cols.items()}

    def take(self, t, idx):
        ix = idx if t.idx is None else t.idx[idx]
        return {c: a[ix] for c, a in t.cols.items()}

    def slice(self, t, start, stop, step):
        base = t.idx if t.idx is not None else np.arange(t.n, dtype=np.int64)
        return NumpyTable(t.cols, base[start:stop:step])

    def concat(self, ts):
        if all(x.cols is ts[0].cols for x in ts):  # views of one table: concatenate the indexes
            return NumpyTable(ts[0].cols, np.concatenate(
                [x.idx if x.idx is not None else np.arange(x.n, dtype=np.int64) for x in ts]))
        cols = {}
        for c in ts[0].cols:  # separate tables: NumPy can only copy
            cols[c] = np.concatenate([x.cols[c] if x.idx is None else x.cols[c][x.idx] for x in ts])
        return NumpyTable(cols)


class DatasetsAdapter:
    """Hugging Face datasets: Dataset.from_dict, then save_to_disk + load_from_disk so the table
    is memory-mapped Arrow like the others' (not held in RAM); with_format('numpy'); shuffle,
    select, concatenate_datasets, .iter(batch_size)."""

    threads = False

    def __init__(self, work):
        import datasets

        datasets.disable_progress_bars()
        try:
            datasets.logging.set_verbosity_error()
        except Exception:
            pass
        self.m = datasets
        self.version = datasets.__version__
        self.work = work
        self.k = 0

    def build(self, cols, persist=True):
        ds = self.m.Dataset.from_dict({c: np.asarray(a) for c, a in cols.items()})
        if persist:
            self.k += 1
            path = os.path.join(self.work, "hf-saved-%d" % self.k)
            ds.save_to_disk(path)
            del ds
            ds = self.m.load_from_disk(path)
        return ds.with_format("numpy")

    def n(self, t):
        return len(t)

    def batches(self, t, bs, threads=1, readahead=0):
        return t.iter(batch_size=bs)

    def shuffle(self, t, seed):
        return t.shuffle(seed=seed)

    def row(self, t, i):
        return t[int(i)]

    def take(self, t, idx):
        return t[idx]

    def slice(self, t, start, stop, step):
        return t.select(range(*slice(start, stop, step).indices(len(t))))

    def concat(self, ts):
        return self.m.concatenate_datasets(ts).with_format("numpy")


ADAPTERS = {
    "infinidata": InfinidataAdapter,
    "infinidata-0.0.1": InfinidataAdapter,
    "numpy": NumpyAdapter,
    "datasets": DatasetsAdapter,
}

# ---- workloads: each written once, in terms of the adapter ----

SEED = 1234


class Bench:
    def __init__(self, A, cols, g, meta, params, work):
        self.A, self.cols, self.g, self.meta, self.p, self.work = A, cols, g, meta, params, work
        self.rb = main_row_bytes(meta)
        self.cache = {}
        self.rng = np.random.default_rng(7)
        n = meta["rows"]
        self.q_point = np.random.default_rng(11).integers(0, n, params["point_reads"])
        self.q_take = np.random.default_rng(12).integers(0, n, min(params["take_rows"], n))

    # lazily built state, shared by the workloads (built untimed when a workload needs it)
    def table(self):
        if "table" not in self.cache:
            self.cache["table"] = self.A.build(self.cols)
        return self.cache["table"]

    def shuffled(self):
        if "shuffled" not in self.cache:
            self.cache["shuffled"] = self.A.shuffle(self.table(), SEED)
        return self.cache["shuffled"]

    def g_table(self):
        if "g" not in self.cache:
            self.cache["g"] = self.A.build({"x": self.g})
        return self.cache["g"]

    def g_shuffled(self):
        if "g_shuffled" not in self.cache:
            self.cache["g_shuffled"] = self.A.shuffle(self.g_table(), SEED)
        return self.cache["g_shuffled"]

    def drain(self, it):
        rows = 0
        for b in it:
            rows += len(next(iter(b.values())))
        return rows

    def rep(self, fn):
        r = timed(fn, self.p["repeat"], self.p["repeat_budget"])
        self.cpu = common.LAST_CPU[0]
        return r

    # Each returns dict(seconds=, rows=, bytes=, runs=, extra...). Rows are the rows read or made.
    def w_construct(self):
        c0, t0 = time.process_time(), time.perf_counter()
        self.cache["table"] = self.A.build(self.cols)
        dt = time.perf_counter() - t0
        n = self.meta["rows"]
        return dict(seconds=dt, runs=1, rows=n, bytes=n * self.rb, cpu_s=time.process_time() - c0)

    def _pass(self, t, bs, threads=1, readahead=0):
        A = self.A
        sec, runs, rows = self.rep(lambda: self.drain(A.batches(t, bs, threads, readahead)))
        assert rows == A.n(t), (rows, A.n(t))
        return dict(seconds=sec, runs=runs, rows=rows)

    def w_contiguous_pass(self):
        r = self._pass(self.table(), self.p["batch"])
        r["bytes"] = r["rows"] * self.rb
        return r

    def w_shuffle_view(self):
        t = self.table()
        sec, runs, _ = self.rep(lambda: self.A.shuffle(t, SEED + 1))
        return dict(seconds=sec, runs=runs, rows=self.A.n(t))

    def w_shuffled_pass(self, threads=1, readahead=0):
        if threads > 1 and not self.A.threads:
            return None
        r = self._pass(self.shuffled(), self.p["batch"], threads, readahead)
        r["bytes"] = r["rows"] * self.rb
        return r

    def w_shuffled_pass_t2(self):
        return self.w_shuffled_pass(2, 4)

    def w_point_reads(self):
        s, A = self.shuffled(), self.A
        q = [int(i) for i in self.q_point]

        def go():
            for i in q:
                A.row(s, i)

        sec, runs, _ = self.rep(go)
        return dict(seconds=sec, runs=runs, rows=len(q), per_read_us=sec / len(q) * 1e6)

    def w_random_take(self):
        t, q = self.table(), self.q_take
        sec, runs, out = self.rep(lambda: self.A.take(t, q))
        assert len(out["label"]) == len(q)
        return dict(seconds=sec, runs=runs, rows=len(q), bytes=len(q) * self.rb)

    def w_concat_1000(self):
        A, n, k = self.A, self.meta["rows"], self.p["concat_tables"]
        m = max(1, min(self.p["concat_rows"], n // k))
        t0 = time.perf_counter()
        smalls = [A.build({c: np.array(a[j * m : (j + 1) * m]) for c, a in self.cols.items()}, persist=False)
                  for j in range(k)]
        build = time.perf_counter() - t0

        def go():
            v = A.concat(smalls)
            return self.drain(A.batches(v, self.p["batch"]))

        sec, runs, rows = self.rep(go)
        assert rows == k * m
        return dict(seconds=sec, runs=runs, rows=rows, bytes=rows * self.rb, build_small_s=build,
                    tables=k, rows_each=m)

    def w_composed_300(self):
        A = self.A
        v = self.table()
        t0 = time.perf_counter()
        for k in range(self.p["compose_ops"]):
            if time.perf_counter() - t0 > self.p["compose_budget"]:
                raise TimeoutError("composing stopped after %d of %d ops: over the %g s budget"
                                   % (k, self.p["compose_ops"], self.p["compose_budget"]))
            if k % 3 == 0:
                v = A.shuffle(v, SEED + 10 + k)
            elif k % 3 == 1:
                v = A.slice(v, None, None, -1)
            else:
                h = A.n(v) // 2
                v = A.concat([A.slice(v, 0, h, 1), A.slice(v, h, None, 1)])
        compose = time.perf_counter() - t0
        q = self.q_take
        s = self.shuffled()
        once = self.rep(lambda: A.take(s, q))[0]  # drop the rows read: they would count in the RSS
        sec, runs, out = self.rep(lambda: A.take(v, q))
        assert len(out["label"]) == len(q)
        return dict(seconds=sec, runs=runs, rows=len(q), bytes=len(q) * self.rb, compose_s=compose,
                    once_shuffled_s=once, ratio_to_once=sec / once)

    def w_shuffle_20m(self):
        n = self.p["shuffle_rows"]
        t = self.A.build({"x": np.arange(n, dtype=np.int64)}, persist=False)
        sec, runs, _ = self.rep(lambda: self.A.shuffle(t, SEED + 2))
        return dict(seconds=sec, runs=runs, rows=n)

    # the goal table of issue 5: 1 GiB of float32, 2M rows x 128, built from a np.memmap
    def w_g_construct(self):
        c0, t0 = time.process_time(), time.perf_counter()
        self.cache["g"] = self.A.build({"x": self.g})
        dt = time.perf_counter() - t0
        return dict(seconds=dt, runs=1, rows=len(self.g), bytes=self.g.nbytes, cpu_s=time.process_time() - c0)

    def _g_pass(self, t, threads=1, readahead=0):
        if threads > 1 and not self.A.threads:
            return None
        r = self._pass(t, self.p["batch"], threads, readahead)
        r["bytes"] = r["rows"] * self.g.shape[1] * 4
        return r

    def w_g_contiguous_pass(self):
        return self._g_pass(self.g_table())

    def w_g_shuffled_pass(self):
        return self._g_pass(self.g_shuffled())

    def w_g_shuffled_pass_t2(self):
        return self._g_pass(self.g_shuffled(), 2, 4)

    def w_g_shuffled_pass_tN(self):
        n = os.cpu_count() or 1
        if n <= 2:
            return None
        r = self._g_pass(self.g_shuffled(), n, 2 * n)
        if r:
            r["threads"] = n
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, choices=sorted(ADAPTERS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--workloads", required=True)
    ap.add_argument("--params", required=True)
    a = ap.parse_args()
    params = json.loads(a.params)
    cols, g, meta = open_data(a.data)
    A = ADAPTERS[a.lib](a.work)
    print(json.dumps({"event": "ready", "lib": a.lib, "version": A.version, "numpy": np.__version__,
                      "python": sys.version.split()[0]}), flush=True)
    b = Bench(A, cols, g, meta, params, a.work)
    for w in a.workloads.split(","):
        rec = {"workload": w}
        # run.py samples this process's RssAnon from outside (no thread here: a sampling thread
        # would take the GIL and stall libraries that release it); it needs the value at the start.
        print(json.dumps({"event": "begin", "workload": w, "rss_anon": rss_anon()}), flush=True)
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            b.cpu = None
            r = getattr(b, "w_" + w)()
            if r is not None and b.cpu is not None and "cpu_s" not in r:
                r["cpu_s"] = b.cpu  # CPU seconds of the timed (fastest) run, all threads
            rec["workload_cpu_s"] = time.process_time() - c0  # CPU of all threads, all runs
            rec["workload_wall_s"] = time.perf_counter() - t0
            rec["rss_anon_end"] = rss_anon()
            if r is None:
                rec["skipped"] = "not applicable"
            else:
                rec.update(r)
        except Exception as e:
            rec["error"] = "%s: %s" % (type(e).__name__, str(e)[:300])
            rec["traceback"] = traceback.format_exc()[-2000:]
        rec["disk_mb"] = disk_used(a.work) / 1e6
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

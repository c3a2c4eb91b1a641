"""infinidata.torch: TableDataset, collate and TableLoader against NumPy as the model.

Ranks are simulated in one process with explicit rank/world_size (every rule of the split),
and checked once for real with torch.distributed (gloo, 4 processes, then 2 to resume). The
DataLoader worker cases run with fork and spawn. Data is tiny throughout."""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import infinidata  # noqa: E402
from infinidata import torch as itorch  # noqa: E402
from infinidata.torch import TableDataset, TableLoader, collate, view_fingerprint  # noqa: E402

from conftest import UNDER_ASAN, run_python  # noqa: E402
from _torch_harness import run_distributed  # noqa: E402

TV = infinidata.TableView


def make_cols(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "i": np.arange(n, dtype=np.int64),
        "x": rng.random((n, 3), dtype=np.float32),
        "b": rng.random(n) < 0.5,
        "u8": rng.integers(0, 255, n, dtype=np.uint8),
        "s": np.array([f"r{k}" * (k % 3 + 1) for k in range(n)]),
        "t": np.arange(n).astype("datetime64[s]"),
    }


@pytest.fixture(scope="module")
def table():
    cols = make_cols(203)
    return cols, TV(cols)


def ids(batch):
    return batch["i"].numpy().tolist()


def run_ranks(view, world, batch_size, **kw):
    """Each rank's list of batches (lists of row ids) from one pass, ranks in one process."""
    out = []
    for r in range(world):
        ld = TableLoader(view, batch_size, rank=r, world_size=world, threads=1, **kw)
        out.append([ids(b) for b in ld])
    return out


def global_order(per_rank):
    """Rows in global order: step by step, rank by rank."""
    order = []
    for step in zip(*per_rank):
        for block in step:
            order.extend(block)
    return order


# ---- import ----

def test_importing_infinidata_does_not_import_torch():
    p = run_python("import sys, infinidata\nprint('torch' in sys.modules)")
    assert p.stdout.strip() == "False"


# ---- TableDataset ----

def test_dataset_items_match_numpy(table):
    cols, tv = table
    ds = TableDataset(tv)
    assert len(ds) == len(tv)
    for i in (0, 5, 202, -1):
        got, want = ds[i], tv[i]
        assert list(got) == list(cols)
        for k in cols:
            np.testing.assert_array_equal(got[k], want[k], strict=True)
    with pytest.raises(IndexError):
        ds[203]
    with pytest.raises(TypeError, match="int"):
        ds[1.5]


class CountingView:
    """Counts reads of a view (to check one gather per batch)."""

    def __init__(self, view):
        self.view, self.reads = view, 0

    def __len__(self):
        return len(self.view)

    def __getitem__(self, key):
        self.reads += 1
        return self.view[key]


@pytest.mark.parametrize("use_collate", [False, True])
def test_dataloader_one_gather_per_batch(table, use_collate):
    cols, tv = table
    ds = TableDataset(tv, columns=["i", "x", "b", "u8"])
    spy = ds.view = CountingView(ds.view)
    kw = {"collate_fn": collate} if use_collate else {}
    dl = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False, **kw)
    batches = list(dl)
    assert spy.reads == len(batches) == 13
    for k, name in [("i", torch.int64), ("x", torch.float32), ("b", torch.bool), ("u8", torch.uint8)]:
        got = torch.cat([b[k] for b in batches]).numpy()
        assert batches[0][k].dtype == name
        np.testing.assert_array_equal(got, cols[k], strict=True)


def test_collate_shares_the_gathered_memory_and_keeps_strings_numpy(table):
    cols, tv = table
    ds = TableDataset(tv)
    g = ds.__getitems__([3, 1, 4, 1, 5])
    assert len(g) == 5
    np.testing.assert_array_equal(g[1]["x"], cols["x"][1], strict=True)
    assert g[-1]["i"] == 5
    with pytest.raises(IndexError):
        g[5]
    out = collate(g)
    assert out["x"].data_ptr() == g.columns["x"].ctypes.data  # no copy, no re-stacking
    np.testing.assert_array_equal(out["i"].numpy(), np.array([3, 1, 4, 1, 5]), strict=True)
    assert isinstance(out["s"], np.ndarray) and out["s"].tolist() == [cols["s"][k] for k in [3, 1, 4, 1, 5]]
    assert isinstance(out["t"], np.ndarray) and out["t"].dtype == np.dtype("datetime64[s]")
    # the default collate works on the same list of samples (strings become a list; it has
    # no rule for datetime64, so that column is left out here)
    d = torch.utils.data.default_collate(TableDataset(tv, columns=["x", "s"]).__getitems__([0, 2]))
    assert d["s"] == [cols["s"][0], cols["s"][2]]
    np.testing.assert_array_equal(d["x"].numpy(), cols["x"][[0, 2]], strict=True)
    with pytest.raises(TypeError):
        ds.__getitems__([0.5, 1.0])
    with pytest.raises(IndexError):
        ds.__getitems__([0, 999])


def test_dataset_transform_is_per_sample(table):
    cols, tv = table
    ds = TableDataset(tv, columns="i", transform=lambda s: {"j": int(s["i"]) * 2})
    assert ds[7] == {"j": 14}
    dl = torch.utils.data.DataLoader(ds, batch_size=10, collate_fn=collate)
    first = next(iter(dl))
    np.testing.assert_array_equal(first["j"].numpy(), np.arange(10) * 2)
    with pytest.raises(TypeError, match="callable"):
        TableDataset(tv, transform=3)
    with pytest.raises(TypeError, match="TableView"):
        TableDataset(cols)
    with pytest.raises(KeyError):
        TableDataset(tv, columns=["nope"])


# ---- TableLoader, one process ----

def test_loader_unshuffled_batches_are_the_views_rows(table):
    cols, tv = table
    ld = TableLoader(tv, 16, shuffle=False)
    bs = list(ld)
    assert len(bs) == len(ld) == 13
    for k, b in enumerate(bs):
        want = tv[k * 16:(k + 1) * 16]
        for name in cols:
            g = b[name]
            if name in ("s", "t"):
                assert isinstance(g, np.ndarray)
                np.testing.assert_array_equal(g, want[name], strict=True)
            else:
                assert isinstance(g, torch.Tensor)
                np.testing.assert_array_equal(g.numpy(), want[name], strict=True)
    assert [len(b["i"]) for b in bs][-2:] == [16, 11]
    assert len(list(TableLoader(tv, 16, shuffle=False, drop_last=True))) == 12


def test_loader_epochs_are_seeded_permutations(table):
    _, tv = table
    a = TableLoader(tv, 32, seed=5)
    e0 = [r for b in a for r in ids(b)]
    e0_again = [r for b in a for r in ids(b)]           # no set_epoch: epoch 0 again
    assert sorted(e0) == list(range(len(tv))) and e0 == e0_again
    a.set_epoch(1)
    e1 = [r for b in a for r in ids(b)]
    assert sorted(e1) == list(range(len(tv))) and e1 != e0
    b = TableLoader(tv, 7, seed=5)
    b.set_epoch(1)
    assert [r for x in b for r in ids(x)] == e1        # independent of the batch size
    c = TableLoader(tv, 32, seed=6)
    assert [r for x in c for r in ids(x)] != e0


@pytest.mark.parametrize("n", [203, 64, 66, 1, 0])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_rank_split_is_exact_and_independent_of_world_size(n, world, drop_last):
    tv = TV({"i": np.arange(n, dtype=np.int64)})
    B = 8
    single = global_order(run_ranks(tv, 1, B * world, seed=3, drop_last=drop_last))
    per_rank = run_ranks(tv, world, B, seed=3, drop_last=drop_last)
    counts = {len(r) for r in per_rank}
    assert len(counts) == 1                       # every rank the same number of batches
    order = global_order(per_rank)
    assert order == single                        # the global order does not depend on world
    step = world * B
    if drop_last:
        assert len(order) == (n // step) * step
        assert all(len(b) == B for r in per_rank for b in r)
    else:
        assert sorted(order) == list(range(n))    # every row exactly once
        if n % step:
            sizes = [r[-1] for r in per_rank]
            assert max(map(len, sizes)) - min(map(len, sizes)) <= 1  # the tail split evenly


def test_tail_smaller_than_world_gives_empty_last_batches():
    tv = TV({"i": np.arange(10, dtype=np.int64), "x": np.zeros((10, 2), np.float32)})
    per_rank = []
    for r in range(4):
        bs = list(TableLoader(tv, 4, rank=r, world_size=4, shuffle=False))
        per_rank.append(bs)
    assert [len(bs) for bs in per_rank] == [1, 1, 1, 1]
    assert [len(bs[0]["i"]) for bs in per_rank] == [3, 3, 2, 2]
    tv = TV({"i": np.arange(2, dtype=np.int64), "x": np.zeros((2, 2), np.float32)})
    last = [list(TableLoader(tv, 4, rank=r, world_size=4, shuffle=False))[-1] for r in range(4)]
    assert [len(b["i"]) for b in last] == [1, 1, 0, 0]
    assert last[3]["x"].shape == (0, 2) and last[3]["x"].dtype == torch.float32


def test_state_dict_is_exact_in_process_and_resumes_with_another_world_and_batch(table):
    _, tv = table
    W, B, k = 4, 8, 3
    loaders = [TableLoader(tv, B, rank=r, world_size=W, seed=11) for r in range(W)]
    seen = []
    for ld in loaders:
        ld.set_epoch(2)
        it = iter(ld)
        for _ in range(k):
            seen.extend(ids(next(it)))
        it.close()
    states = [ld.state_dict() for ld in loaders]
    assert all(s == states[0] for s in states)
    st = states[0]
    assert st["rows_consumed"] == k * W * B and st["epoch"] == 2 and st["seed"] == 11
    assert loaders[0].state_dict(batches=k)["rows_consumed"] == k * W * B
    for W2, B2 in [(2, 5), (3, 16), (1, 1000)]:
        rest = []
        for r in range(W2):
            ld = TableLoader(tv, B2, rank=r, world_size=W2, seed=0)   # the state's seed wins
            ld.load_state_dict(st)
            ld.set_epoch(2)                   # the same epoch: keeps the restored position
            rest.extend(r_ for b in ld for r_ in ids(b))
        assert sorted(seen + rest) == list(range(len(tv)))
        # and the rows come in the order of the uninterrupted epoch
        full = TableLoader(tv, 1000, seed=11)
        full.set_epoch(2)
        order = [r_ for b in full for r_ in ids(b)]
        assert set(order[:k * W * B]) == set(seen)
    # a finished epoch resumes to nothing; the next set_epoch starts over
    ld = TableLoader(tv, 64, seed=11)
    list(ld)
    done = ld.state_dict()
    assert done["rows_consumed"] == len(tv)
    ld2 = TableLoader(tv, 64, seed=11)
    ld2.load_state_dict(done)
    assert list(ld2) == []
    ld2.set_epoch(1)
    assert sum(len(b["i"]) for b in ld2) == len(tv)


def test_fingerprint_is_content_based_and_survives_save_and_load(table, tmp_path):
    cols, tv = table
    fp = view_fingerprint(tv)
    assert fp == view_fingerprint(TV(cols))                   # another uuid, same content
    tv.save_to_disk(str(tmp_path), "t")
    back = TV.load_from_disk(str(tmp_path), "t")
    assert view_fingerprint(back) == fp
    import pickle
    assert view_fingerprint(pickle.loads(pickle.dumps(tv))) == fp
    assert view_fingerprint(tv.shuffle(seed=1)) != fp          # another order
    assert view_fingerprint(tv.new_view(slice(0, 202))) != fp  # another length
    other = dict(cols, x=cols["x"] + 1)
    assert view_fingerprint(TV(other)) != fp                   # other values
    assert view_fingerprint(tv.select_columns(["i", "x"])) != fp
    ld = TableLoader(back, 10)
    next(iter(ld))
    st = ld.state_dict()
    fresh = TableLoader(tv, 10)
    fresh.load_state_dict(st)                                  # loaded view, same rows: fine
    with pytest.raises(ValueError, match="fingerprint"):
        TableLoader(tv.shuffle(seed=2), 10).load_state_dict(st)
    with pytest.raises(ValueError, match="shuffle"):
        TableLoader(tv, 10, shuffle=False).load_state_dict(st)
    for bad in [{}, dict(st, version=99), dict(st, rows_consumed=10**9), dict(st, epoch=-1),
                dict(st, rows_consumed="3")]:
        with pytest.raises((ValueError, TypeError)):
            TableLoader(tv, 10).load_state_dict(bad)
    with pytest.raises(TypeError):
        TableLoader(tv, 10).load_state_dict([1, 2])


def test_loader_argument_errors(table, monkeypatch):
    cols, tv = table
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            TableLoader(tv, bad)
    for bad in (1.5, True, "8", None):
        with pytest.raises(TypeError, match="batch_size"):
            TableLoader(tv, bad)
    with pytest.raises(ValueError, match="rank 4 out of range"):
        TableLoader(tv, 8, rank=4, world_size=4)
    with pytest.raises(ValueError, match="world_size"):
        TableLoader(tv, 8, world_size=0)
    with pytest.raises(ValueError, match="seed"):
        TableLoader(tv, 8, seed=-1)
    with pytest.raises(ValueError, match="threads"):
        TableLoader(tv, 8, threads=0)
    with pytest.raises(ValueError, match="readahead"):
        TableLoader(tv, 8, readahead=-1)
    with pytest.raises(TypeError, match="TableView"):
        TableLoader(cols, 8)
    with pytest.raises(TypeError, match="callable"):
        TableLoader(tv, 8, transform="no")
    with pytest.raises(KeyError):
        TableLoader(tv, 8, columns=["nope"])
    with pytest.raises(TypeError, match="must be a list column"):
        TableLoader(tv, 8, pack={"column": "s", "seq_len": 16})
    if not itorch._accelerator_available():
        with pytest.raises(ValueError, match="pin_memory"):
            TableLoader(tv, 8, pin_memory=True)
    with pytest.raises(ValueError, match="epoch"):
        TableLoader(tv, 8).set_epoch(-1)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK"):
        list(TableLoader(tv, 8))
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="rank 5 out of range"):
        list(TableLoader(tv, 8))


def test_rank_and_world_from_the_environment(table, monkeypatch):
    _, tv = table
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    got = [ids(b) for b in TableLoader(tv, 8, seed=2)]
    want = [ids(b) for b in TableLoader(tv, 8, seed=2, rank=1, world_size=3)]
    assert got == want
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert len(TableLoader(tv, 8)) == 26


def test_default_threads_follow_the_readme_and_local_ranks(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert itorch.default_threads() == 2 * cpus
    assert itorch.default_readahead(itorch.default_threads()) == 4 * cpus
    assert itorch.default_threads(in_worker=True) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(4 * cpus))
    assert itorch.default_threads() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert itorch.default_threads() == cpus


def test_loader_columns_transform_and_threads(table):
    cols, tv = table
    ld = TableLoader(tv, 50, shuffle=False, columns=["x", "i"], threads=3, readahead=5,
                     transform=lambda b: {"y": b["x"].sum(1), "i": b["i"]})
    bs = list(ld)
    np.testing.assert_allclose(torch.cat([b["y"] for b in bs]).numpy(), cols["x"].sum(1), rtol=1e-6)
    assert list(bs[0]) == ["y", "i"]
    only = next(iter(TableLoader(tv, 4, columns="u8", shuffle=False)))
    assert list(only) == ["u8"] and only["u8"].dtype == torch.uint8


def test_empty_view_yields_nothing():
    tv = TV({"i": np.arange(0, dtype=np.int64)})
    ld = TableLoader(tv, 4)
    assert list(ld) == [] and len(ld) == 0
    assert ld.state_dict()["rows_consumed"] == 0


# ---- DataLoader workers ----

def _tmp_entries():
    root = os.environ["INFINIDATA_TMPDIR"]
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_dataloader_workers_split_rows_and_leave_no_files(table, ctx):
    # (nothing from this test module goes to the workers: a spawned worker would import it,
    # and conftest with it)
    _, tv = table
    before = _tmp_entries()
    ld = TableLoader(tv, 8, seed=4)
    # no set_epoch first: fork workers shuffle (and so make files) on their own
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2, multiprocessing_context=ctx,
                                     collate_fn=collate)  # passes the batches through as they are
    got = list(dl)
    order = [r for b in got for r in ids(b)]
    inproc = [r for b in TableLoader(tv, 8, seed=4) for r in ids(b)]
    assert order == inproc                                  # each row once, in the epoch order
    assert isinstance(got[0]["t"], np.ndarray) and isinstance(got[0]["s"], np.ndarray)
    assert _tmp_entries() == before                         # no worker left a temp directory
    if ctx == "spawn":
        return  # (each spawned worker imports torch: the rest runs with fork only, for time)
    # resume inside a DataLoader with workers: the loop counts batches
    k = 5
    st = ld.state_dict(batches=k)
    assert st["rows_consumed"] == 40
    ld2 = TableLoader(tv, 8, seed=4)
    ld2.load_state_dict(st)
    dl2 = torch.utils.data.DataLoader(ld2, batch_size=None, num_workers=2, multiprocessing_context=ctx,
                                      collate_fn=collate)
    assert [r for b in dl2 for r in ids(b)] == inproc[40:]
    # the map-style dataset with workers
    ds = TableDataset(tv, columns=["i", "x"])
    dl3 = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                                      multiprocessing_context=ctx, collate_fn=collate,
                                      generator=torch.Generator().manual_seed(0))
    rows = [r for b in dl3 for r in ids(b)]
    assert sorted(rows) == list(range(len(tv)))
    assert _tmp_entries() == before


def _rss_transform(b):
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
    return {"n": torch.tensor([len(b["x"])]), "rss": torch.tensor([rss])}


@pytest.mark.memory_counts
@pytest.mark.skipif(UNDER_ASAN, reason="RSS is not meaningful under ASan")
def test_worker_rss_does_not_grow_with_the_dataset_size():
    peaks = {}
    for n in (8_192, 262_144):          # 4 MiB and 128 MiB of float32 rows
        tv = TV({"x": np.ones((n, 128), np.float32)})
        ld = TableLoader(tv, 256, seed=1, transform=_rss_transform)
        dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2, multiprocessing_context="fork")
        out = list(dl)
        assert sum(int(b["n"]) for b in out) == n
        peaks[n] = max(int(b["rss"]) for b in out)
        del tv, ld, dl
    # the rows live in shared file mappings: a worker's anonymous memory is the same for 32x
    # the data (growth below 16 MiB where the data grew by 124 MiB)
    assert peaks[262_144] - peaks[8_192] < 16 * 1024, peaks


# ---- torch.distributed ----

# Runs after _torch_harness.GLOO: launch, json, os, np, torch, infinidata, TableLoader.
DIST = r"""
N, B, K = 1003, 8, 7          # rows, batch size, batches taken before the stop

def ids(b):
    return b["i"].numpy().tolist()

def phase(tv, tag):
    res = {}
    if tag == "run":
        ld = TableLoader(tv, B, seed=9, threads=1)      # rank and world from torch.distributed
        for epoch in (0, 1):
            ld.set_epoch(epoch)
            res[f"e{epoch}"] = [ids(b) for b in ld]
        ld.set_epoch(2)
        it = iter(ld)
        res["stop_seen"] = [r for _ in range(K) for r in ids(next(it))]
        it.close()
        res["state"] = ld.state_dict()
    else:
        state = json.load(open(os.path.join(os.environ["DATA"], "state.json")))
        ld = TableLoader(tv, B + 3, seed=0, threads=1)
        ld.load_state_dict(state)
        ld.set_epoch(state["epoch"])
        res["rest"] = [r for b in ld for r in ids(b)]
    return res

if __name__ == "__main__":
    infinidata.TableView({"i": np.arange(N, dtype=np.int64)}).save_to_disk(os.environ["DATA"], "t")
    run = launch(4, "run", phase)
    for e in ("e0", "e1"):
        per_rank = [r[e] for r in run]
        assert len({len(x) for x in per_rank}) == 1, [len(x) for x in per_rank]  # equal batch counts
        rows = [i for x in per_rank for b in x for i in b]
        assert sorted(rows) == list(range(N)), e                                 # each row once
    assert run[0]["e0"] != run[0]["e1"]
    # the same global order as one process
    one = TableLoader(infinidata.TableView.load_from_disk(os.environ["DATA"], "t"), B * 4, seed=9,
                      rank=0, world_size=1)
    glob = [i for step in zip(*[r["e0"] for r in run]) for b in step for i in b]
    assert glob == [i for b in one for i in ids(b)]
    states = [r["state"] for r in run]
    assert all(s == states[0] for s in states) and states[0]["rows_consumed"] == K * 4 * B
    json.dump(states[0], open(os.path.join(os.environ["DATA"], "state.json"), "w"))
    rest = launch(2, "resume", phase)
    seen = [i for r in run for i in r["stop_seen"]] + [i for r in rest for i in r["rest"]]
    assert sorted(seen) == list(range(N)), (len(seen), len(set(seen)))
    print("OK")
"""


def test_distributed_gloo_four_ranks_then_resume_on_two(tmp_path):
    run_distributed(tmp_path, DIST)

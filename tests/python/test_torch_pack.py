"""infinidata.torch sequence packing (TableLoader(pack=...)) and list-column pad=, against a
plain Python packer (infinidata.torch.python_pack) over the documents in epoch order.

Ranks are simulated in one process with explicit rank/world_size, and checked once for real
with torch.distributed (gloo, 4 processes, then 2 to resume). Tokens of list columns are
unique integers, so "every token exactly once" is checked by value. Data is tiny."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import infinidata  # noqa: E402
from infinidata import torch as itorch  # noqa: E402
from infinidata.torch import TableLoader, python_pack  # noqa: E402

from _torch_harness import run_distributed  # noqa: E402

TV = infinidata.TableView


def doc_lengths(n, seq_len, seed):
    """Mostly short documents, some empty, some longer than a whole batch."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 2 * seq_len + 1, n)
    lens[rng.random(n) < 0.1] = 0
    lens[rng.random(n) < 0.05] = seq_len * 5 + 3
    return lens


def make_docs(kind, n=120, seq_len=16, seed=0, dtype=np.int32):
    """(view, docs in view order as 1-D arrays) with the documents in column "tokens" and an
    "id" column beside it: a list column of unique token ids, or a bytes column."""
    lens = doc_lengths(n, seq_len, seed)
    if kind == "list":
        if not hasattr(infinidata, "Ragged"):
            pytest.skip("list columns are not in this build yet")
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        values = np.arange(1, offsets[-1] + 1).astype(dtype)    # unique, never the pad id 0
        docs = [values[offsets[d]:offsets[d + 1]] for d in range(n)]
        tv = TV({"tokens": infinidata.Ragged(values, offsets), "id": np.arange(n)})
    else:
        rng = np.random.default_rng(seed + 1)
        docs = [rng.integers(1, 256, k).astype(np.uint8) for k in lens]   # no NUL: none stripped
        tv = TV({"tokens": np.array([d.tobytes() for d in docs], dtype="S"), "id": np.arange(n)})
    return tv, docs


def epoch_docs(tv, docs, seed, epoch, shuffle=True):
    """The documents in the loader's epoch order."""
    if not shuffle:
        return docs
    order = tv.shuffle(seed=itorch._epoch_seed(seed, epoch))[:]["id"]
    return [docs[i] for i in order]


def model_batches(docs, seq_len, pad_id, blocks):
    """The model's batches for [(first packed row, rows), ...]: python_pack over every
    document, cut per batch (cu_seqlens: the boundaries inside the batch's rows)."""
    tok, pos, cu = python_pack(docs, seq_len, pad_id)
    out = []
    for r0, m in blocks:
        lo, hi = r0 * seq_len, (r0 + m) * seq_len
        bcu = [0] + [int(c) - lo for c in cu if lo < c <= hi]
        out.append((tok[r0:r0 + m], pos[r0:r0 + m], np.array(bcu, dtype=np.int32)))
    return out


def check_batch(got, want, dtype):
    assert set(got) == {"tokens", "position_ids", "cu_seqlens"}
    t, p, c = (got[k].numpy() for k in ("tokens", "position_ids", "cu_seqlens"))
    assert t.dtype == dtype and p.dtype == np.int64 and c.dtype == np.int32
    np.testing.assert_array_equal(t, want[0], strict=True)
    np.testing.assert_array_equal(p, want[1], strict=True)
    np.testing.assert_array_equal(c, want[2], strict=True)


def rows_of(batches):
    return sum(len(b["tokens"]) for b in batches)


KINDS = ["list", "bytes"]


# ---- one process ----

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seq_len,batch", [(16, 4), (7, 3), (1, 5), (200, 2)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_packing_matches_the_python_packer(kind, seq_len, batch, shuffle):
    tv, docs = make_docs(kind, seq_len=seq_len)
    dtype = np.int32 if kind == "list" else np.uint8
    ld = TableLoader(tv, batch, shuffle=shuffle, seed=3, threads=2,
                     pack={"column": "tokens", "seq_len": seq_len, "pad_id": 0})
    ld.set_epoch(1)
    got = list(ld)
    ed = epoch_docs(tv, docs, 3, 1, shuffle)
    total = sum(len(d) for d in docs)
    nrows = -(-total // seq_len)
    blocks = [(r, min(batch, nrows - r)) for r in range(0, nrows, batch)]
    want = model_batches(ed, seq_len, 0, blocks)
    assert len(got) == len(want) == len(ld)
    for g, w in zip(got, want):
        check_batch(g, w, dtype)
    # padding only in the epoch's last row; every token once, in epoch order
    flat = np.concatenate([g["tokens"].numpy().ravel() for g in got])
    np.testing.assert_array_equal(flat[:total], np.concatenate(ed))
    assert (flat[total:] == 0).all() and len(flat) - total < seq_len
    assert ld.state_dict()["rows_consumed"] == nrows


@pytest.mark.parametrize("threads,readahead", [(1, 0), (1, 3), (3, 0), (4, 9)])
def test_packing_threads_and_readahead_give_the_same_batches(threads, readahead):
    tv, docs = make_docs("list", n=300)
    pack = {"column": "tokens", "seq_len": 16, "pad_id": 0}
    base = [b["tokens"].numpy() for b in TableLoader(tv, 4, seed=1, threads=1, readahead=0, pack=pack)]
    got = [b["tokens"].numpy() for b in TableLoader(tv, 4, seed=1, threads=threads,
                                                     readahead=readahead, pack=pack)]
    assert len(got) == len(base)
    for a, b in zip(got, base):
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_packing_rank_split_every_token_once_and_order_independent_of_world(world, drop_last):
    tv, docs = make_docs("list", n=150, seq_len=10, seed=5)
    pack = {"column": "tokens", "seq_len": 10}
    per_rank = []
    for r in range(world):
        ld = TableLoader(tv, 3, seed=2, rank=r, world_size=world, threads=1, drop_last=drop_last,
                         pack=pack)
        per_rank.append([b["tokens"].numpy() for b in ld])
        assert len(per_rank[-1]) == len(ld)
    assert len({len(x) for x in per_rank}) == 1                  # equal batch counts
    glob = [b for step in zip(*per_rank) for b in step]
    rows = np.concatenate(glob) if glob else np.zeros((0, 10), np.int32)
    ed = np.concatenate(epoch_docs(tv, docs, 2, 0))
    total = len(ed)
    full = total // 10
    if drop_last:
        keep = (full // (3 * world)) * 3 * world                 # whole global steps of full rows
        np.testing.assert_array_equal(rows.ravel(), ed[:keep * 10])
    else:
        flat = rows.ravel()
        np.testing.assert_array_equal(flat[:total], ed)          # every token once, global order
        assert (flat[total:] == 0).all() and len(flat) - total < 10
        tokens = flat[flat != 0]
        assert len(np.unique(tokens)) == len(tokens) == total


def test_packing_resume_mid_epoch_at_another_world_size_and_batch():
    tv, docs = make_docs("list", n=200, seq_len=8, seed=7)
    pack = {"column": "tokens", "seq_len": 8, "pad_id": 0}
    seen, state = [], None
    loaders = [TableLoader(tv, 4, seed=11, rank=r, world_size=4, threads=2, pack=pack) for r in range(4)]
    its = []
    for ld in loaders:
        ld.set_epoch(3)
        its.append(iter(ld))
    for _ in range(5):                                           # 5 global steps at world size 4
        for it in its:
            seen.append(next(it)["tokens"].numpy().ravel())
    states = [ld.state_dict() for ld in loaders]
    assert all(s == states[0] for s in states)
    state = states[0]
    assert state["rows_consumed"] == 5 * 4 * 4 and state["seq_len"] == 8 and state["epoch"] == 3
    for it in its:
        it.close()
    for r in range(2):                                           # resume at world size 2, batch 3
        ld = TableLoader(tv, 3, seed=0, rank=r, world_size=2, threads=1, pack=pack)
        ld.load_state_dict(state)
        ld.set_epoch(3)
        seen.extend(b["tokens"].numpy().ravel() for b in ld)
    flat = np.concatenate(seen)
    tokens = flat[flat != 0]
    total = sum(len(d) for d in docs)
    assert len(tokens) == total and len(np.unique(tokens)) == total   # every token exactly once


def test_packing_edge_cases():
    pack = {"column": "tokens", "seq_len": 4, "pad_id": 7}
    # only empty documents, and no documents: no batches
    for tv in (TV({"tokens": np.array([b"", b""], dtype="S1")}),
               TV({"tokens": np.array([b"ab"], dtype="S")}).new_view(slice(0, 0))):
        ld = TableLoader(tv, 2, pack=pack)
        assert len(ld) == 0 and list(ld) == []
        assert ld.state_dict()["rows_consumed"] == 0
    # one document much longer than a batch: rows of it, positions restart at every row
    tv = TV({"tokens": np.array([bytes(range(1, 40))])})
    got = list(TableLoader(tv, 3, shuffle=False, pack=pack))
    assert [len(b["tokens"]) for b in got] == [3, 3, 3, 1]
    last = got[-1]
    assert last["tokens"].tolist() == [[37, 38, 39, 7]]
    assert last["position_ids"].tolist() == [[0, 1, 2, 0]]
    assert last["cu_seqlens"].tolist() == [0, 3, 4]
    assert got[0]["position_ids"].tolist() == [[0, 1, 2, 3]] * 3
    assert got[0]["cu_seqlens"].tolist() == [0, 4, 8, 12]
    # fewer rows than ranks in the last step: empty last batches of the packed shape
    tv = TV({"tokens": np.array([b"abcdefgh", b"ij"])})               # 3 packed rows of 4
    per = [list(TableLoader(tv, 1, shuffle=False, rank=r, world_size=2, pack=pack)) for r in range(2)]
    assert [len(x) for x in per] == [2, 2]
    assert per[1][-1]["tokens"].shape == (0, 4) and per[1][-1]["cu_seqlens"].tolist() == [0]
    # drop_last: the partial row and the partial step go
    ld = TableLoader(tv, 1, shuffle=False, drop_last=True, pack=pack)
    assert [b["tokens"].tolist() for b in ld] == [[list(b"abcd")], [list(b"efgh")]]
    # transform sees the packed dict
    ld = TableLoader(tv, 8, shuffle=False, pack=pack, transform=lambda b: b["tokens"].sum().item())
    assert list(ld) == [sum(b"abcdefghij") + 2 * 7]


def test_packing_int64_tokens_and_pad_range():
    tv, docs = make_docs("list", n=40, dtype=np.int64)
    got = list(TableLoader(tv, 2, shuffle=False, pack={"column": "tokens", "seq_len": 16,
                                                       "pad_id": -(2**63)}))
    assert got[0]["tokens"].dtype == torch.int64
    flat = np.concatenate([b["tokens"].numpy().ravel() for b in got])
    total = sum(len(d) for d in docs)
    np.testing.assert_array_equal(flat[:total], np.concatenate(docs))
    assert (flat[total:] == -(2**63)).all()


def test_pack_argument_errors():
    tv, _ = make_docs("bytes", n=10)
    tv = tv.new_view(slice(None))
    cols = {"f": np.zeros(3), "u": np.array(["a", "b", "c"]), "s": np.array([b"a", b"b", b"c"]),
            "m": np.zeros((3, 2), np.int32)}
    other = TV(cols)
    bad = [
        ([1, 2], TypeError, "pack must be a dict"),
        ({"column": "tokens"}, ValueError, "pack needs 'seq_len'"),
        ({"seq_len": 4}, ValueError, "pack needs 'column'"),
        ({"column": "tokens", "seq_len": 4, "pad": 1}, ValueError, "unknown keys \\['pad'\\]"),
        ({"column": 3, "seq_len": 4}, TypeError, "pack\\['column'\\] must be a column name"),
        ({"column": "nope", "seq_len": 4}, KeyError, "'nope' is not a column"),
        ({"column": "tokens", "seq_len": 0}, ValueError, "pack\\['seq_len'\\] must be between 1"),
        ({"column": "tokens", "seq_len": 2**31}, ValueError, "seq_len"),
        ({"column": "tokens", "seq_len": 4.0}, TypeError, "seq_len"),
        ({"column": "tokens", "seq_len": 4, "pad_id": 256}, ValueError, "pad_id'\\] 256 does not fit .*uint8"),
        ({"column": "tokens", "seq_len": 4, "pad_id": -1}, ValueError, "does not fit"),
        ({"column": "tokens", "seq_len": 4, "pad_id": True}, TypeError, "pad_id"),
        ({"column": "tokens", "seq_len": 4, "pad_id": 1.5}, TypeError, "pad_id"),
    ]
    for pack, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            TableLoader(tv, 2, pack=pack)
    for name in ("f", "u", "m"):
        with pytest.raises(TypeError, match=f"'{name}' must be a list column of integer token ids"):
            TableLoader(other, 2, pack={"column": name, "seq_len": 4})
    with pytest.raises(ValueError, match="cannot be combined"):
        TableLoader(tv, 2, columns=["tokens"], pack={"column": "tokens", "seq_len": 4})
    with pytest.raises(TypeError, match="pad must be a dict"):
        TableLoader(tv, 2, pad=0)
    with pytest.raises(KeyError, match="'zz'"):
        TableLoader(tv, 2, pad={"zz": (0, 4)})
    with pytest.raises(TypeError, match="not a list column"):
        TableLoader(tv, 2, pad={"tokens": (0, 4)})
    # states do not cross between packing and not, or another seq_len
    packed = TableLoader(tv, 2, pack={"column": "tokens", "seq_len": 4})
    plain = TableLoader(tv, 2)
    with pytest.raises(ValueError, match="without packing"):
        packed.load_state_dict(plain.state_dict())
    with pytest.raises(ValueError, match="packing seq_len=4, this loader does not pack"):
        plain.load_state_dict(packed.state_dict())
    with pytest.raises(ValueError, match="seq_len=5"):
        packed.load_state_dict(dict(packed.state_dict(), seq_len=5))
    with pytest.raises(ValueError, match="rows_consumed"):
        packed.load_state_dict(dict(packed.state_dict(), rows_consumed=10**6))


def test_pack_core_refuses_foreign_cumulative_lengths():
    tv, _ = make_docs("bytes", n=10)
    cum = tv._pack_cumlen(0)
    blk = np.array([[0, 2]], dtype=np.int64)
    lying = cum.copy()
    lying[1:] += 5
    with pytest.raises(ValueError, match="do not match the view"):
        tv._pack(0, lying, blk, 4, b"\x00")
    with pytest.raises(ValueError, match="int64 array of 11 entries"):
        tv._pack(0, cum[:-1], blk, 4, b"\x00")
    with pytest.raises(ValueError, match="int64 array"):
        tv._pack(0, cum.astype(np.int32), blk, 4, b"\x00")
    with pytest.raises(ValueError, match="pad value has 2 bytes"):
        tv._pack(0, cum, blk, 4, b"\x00\x00")
    for bad in (np.array([[0, -1]]), np.array([[-1, 2]]), np.array([[0, 2**40]]), np.array([0, 2]),
                np.array([[0, 2]], dtype=np.int32)):
        with pytest.raises(ValueError, match="block|blocks"):
            tv._pack(0, cum, bad, 4, b"\x00")
    with pytest.raises(ValueError, match="seq_len"):
        tv._pack(0, cum, blk, 0, b"\x00")
    with pytest.raises(TypeError, match="not a list column"):
        tv._pack_cumlen(1)
    with pytest.raises(IndexError, match="column 2 out of range"):
        tv._pack_cumlen(2)
    # several blocks in one call: each as a batch of its own
    tok, pos, cu, starts = tv._pack(0, cum, np.array([[1, 2], [0, 1], [5, 0]], dtype=np.int64), 4, b"\x00")
    assert tok.shape == (3, 4) and starts[0] == 0 and len(starts) == 4 and starts[3] == starts[2] + 1
    for i, (r0, m) in enumerate([(1, 2), (0, 1), (5, 0)]):
        t1, p1, c1, _ = tv._pack(0, cum, np.array([[r0, m]], dtype=np.int64), 4, b"\x00")
        row = [0, 2, 3][i]
        np.testing.assert_array_equal(tok[row:row + m], t1, strict=True)
        np.testing.assert_array_equal(pos[row:row + m], p1, strict=True)
        np.testing.assert_array_equal(cu[starts[i]:starts[i + 1]], c1, strict=True)
    assert len(cu) == starts[-1]


# ---- DataLoader workers ----

@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_packing_in_dataloader_workers(ctx):
    tv, _ = make_docs("bytes", n=80, seq_len=8)
    pack = {"column": "tokens", "seq_len": 8, "pad_id": 0}
    ld = TableLoader(tv, 3, seed=4, pack=pack)
    ld.set_epoch(2)
    dl = torch.utils.data.DataLoader(ld, batch_size=None, num_workers=2, multiprocessing_context=ctx,
                                     collate_fn=itorch.collate)
    got = list(dl)
    inproc = TableLoader(tv, 3, seed=4, pack=pack)
    inproc.set_epoch(2)
    want = list(inproc)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in w:
            np.testing.assert_array_equal(g[k].numpy(), w[k].numpy(), strict=True)
    st = ld.state_dict(batches=4)
    assert st["rows_consumed"] == 12 and st["seq_len"] == 8


# ---- torch.distributed ----

# Runs after _torch_harness.GLOO: launch, json, os, np, torch, infinidata, TableLoader.
DIST = r"""
N, L, B, K = 301, 8, 3, 4      # documents, seq_len, batch size, batches taken before the stop
PACK = {"column": "tokens", "seq_len": L, "pad_id": 0}

def flat(b):
    return b["tokens"].numpy().ravel().tolist()

def phase(tv, tag):
    res = {}
    if tag == "run":
        ld = TableLoader(tv, B, seed=9, threads=1, pack=PACK)   # rank and world from torch.distributed
        ld.set_epoch(0)
        res["e0"] = [flat(b) for b in ld]
        ld.set_epoch(1)
        it = iter(ld)
        res["stop_seen"] = [t for _ in range(K) for t in flat(next(it))]
        it.close()
        res["state"] = ld.state_dict()
    else:
        state = json.load(open(os.path.join(os.environ["DATA"], "state.json")))
        ld = TableLoader(tv, B + 2, seed=0, threads=2, pack=PACK)
        ld.load_state_dict(state)
        ld.set_epoch(state["epoch"])
        res["rest"] = [t for b in ld for t in flat(b)]
    return res

def tokens_once(seen, total):
    seen = [t for t in seen if t != 0]
    assert sorted(seen) == list(range(1, total + 1)), (len(seen), len(set(seen)), total)

if __name__ == "__main__":
    rng = np.random.default_rng(0)
    lens = rng.integers(0, 3 * L, N)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    total = int(offsets[-1])
    values = np.arange(1, total + 1, dtype=np.int32)                    # unique token ids
    infinidata.TableView({"tokens": infinidata.Ragged(values, offsets)}).save_to_disk(
        os.environ["DATA"], "t")
    run = launch(4, "run", phase)
    per_rank = [r["e0"] for r in run]
    assert len({len(x) for x in per_rank}) == 1, [len(x) for x in per_rank]   # equal batch counts
    tokens_once([t for x in per_rank for b in x for t in b], total)           # every token once
    states = [r["state"] for r in run]
    assert all(s == states[0] for s in states) and states[0]["rows_consumed"] == K * 4 * B
    json.dump(states[0], open(os.path.join(os.environ["DATA"], "state.json"), "w"))
    rest = launch(2, "resume", phase)
    tokens_once([t for r in run for t in r["stop_seen"]] + [t for r in rest for t in r["rest"]], total)
    print("OK")
"""


def test_distributed_gloo_packing_four_ranks_then_resume_on_two(tmp_path):
    if not hasattr(infinidata, "Ragged"):
        pytest.skip("list columns are not in this build yet")
    run_distributed(tmp_path, DIST)


# ---- list columns without packing ----

def test_loader_list_columns_as_ragged_or_padded():
    tv, docs = make_docs("list", n=50, seq_len=6, seed=8)
    order = tv.shuffle(seed=itorch._epoch_seed(0, 0))[:]["id"]
    plain = list(TableLoader(tv, 8, threads=2))
    rag = plain[0]["tokens"]
    assert isinstance(rag, infinidata.Ragged) and rag.dtype == np.int32
    got = [np.asarray(r) for b in plain for r in b["tokens"]]
    assert len(got) == 50
    for g, i in zip(got, order):
        np.testing.assert_array_equal(g, docs[i], strict=True)
    padded = list(TableLoader(tv, 8, threads=2, pad={"tokens": (-1, 5)}))
    assert [len(b["tokens"]) for b in padded] == [8] * 6 + [2]
    for b, p in zip(plain, padded):
        want, lens = b["tokens"].to_padded(-1, 5)
        assert isinstance(p["tokens"], torch.Tensor) and p["tokens"].dtype == torch.int32
        np.testing.assert_array_equal(p["tokens"].numpy(), want, strict=True)
        np.testing.assert_array_equal(p["tokens_lengths"].numpy(), lens, strict=True)
        np.testing.assert_array_equal(p["id"].numpy(), b["id"].numpy(), strict=True)
    # an empty last batch (fewer rows than ranks) keeps the padded shape
    small = tv.new_view(slice(0, 3))
    per = [list(TableLoader(small, 2, rank=r, world_size=4, pad={"tokens": (0, 5)})) for r in range(4)]
    assert [len(x) for x in per] == [1, 1, 1, 1]
    last = per[3][0]
    assert tuple(last["tokens"].shape) == (0, 5) and tuple(last["tokens_lengths"].shape) == (0,)
    assert last["tokens"].dtype == torch.int32 and last["tokens_lengths"].dtype == torch.int64


def test_fingerprint_of_list_columns_sees_their_values():
    tv, _ = make_docs("list", n=30, seed=1)
    same = TV({"tokens": tv[:]["tokens"], "id": np.arange(30)})
    assert itorch.view_fingerprint(tv) == itorch.view_fingerprint(same)
    rag = tv[:]["tokens"]
    vals = rag.values.copy()
    vals[rag.offsets[0]] += 1 if len(vals) else 0
    other = TV({"tokens": infinidata.Ragged(vals, rag.offsets), "id": np.arange(30)})
    assert itorch.view_fingerprint(tv) != itorch.view_fingerprint(other)


@pytest.mark.parametrize("kind", KINDS)
def test_packing_a_column_of_a_zipped_view(kind):
    tv, docs = make_docs(kind, n=60, seq_len=8, seed=9)
    other = TV({"w": np.arange(60.0)})
    for z in (TV.zip([other, tv]), TV.zip([tv.select_columns(["id"]), other, tv.select_columns(["tokens"])])):
        pack = {"column": "tokens", "seq_len": 8}
        got = [b["tokens"].numpy() for b in TableLoader(z, 3, seed=1, pack=pack)]
        want = [b["tokens"].numpy() for b in TableLoader(tv, 3, seed=1, pack=pack)]
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b, strict=True)
        j = list(z.column_names).index("tokens")
        np.testing.assert_array_equal(z._pack_cumlen(j), tv._pack_cumlen(0), strict=True)

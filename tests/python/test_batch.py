"""Batch iteration (issue 5): order and content against tv[i:i+bs] and NumPy for every dtype and
string columns, threads and readahead, drop_last, clean early stops, huge arguments, errors."""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import infinidata
from conftest import (FIXED_DTYPES, assert_same, data_files, expected, n_threads,
                      n_threads_settled, run_python, sample)

TableView = infinidata.TableView

COMBOS = [(1, 0), (1, 1), (1, 5), (2, 0), (2, 4), (3, 2), (8, 100)]
WORDS = ["", "a", "bb", "héllo", "😀😀😀", "a fairly long string to widen one batch"]


def make_cols(n, seed=0):
    rng = np.random.default_rng(seed)
    cols = {f"c{i}": sample(d, (n,), seed=seed + i) for i, d in enumerate(FIXED_DTYPES)}
    cols["vec"] = sample("float32", (n, 3, 2), seed=seed)
    cols["u"] = np.array([WORDS[k] for k in rng.integers(0, len(WORDS), n)], dtype="U")
    cols["s"] = np.array([WORDS[k].encode() for k in rng.integers(0, len(WORDS), n)], dtype="S")
    cols["o"] = np.array([WORDS[k] for k in rng.integers(0, len(WORDS), n)], dtype=object)
    cols["uv"] = np.array([WORDS[k] for k in rng.integers(0, len(WORDS), 2 * n)],
                          dtype="U").reshape(n, 2)
    return cols


N = 101
COLS = make_cols(N)
TV = TableView(COLS)


def check_batches(it, tv, model, bs, drop_last):
    n = len(tv)
    want = n // bs if drop_last else -(-n // bs)
    assert it.num_batches() == want
    got = 0
    for k, batch in enumerate(it):
        sl = slice(k * bs, (k + 1) * bs)
        assert len(next(iter(batch.values()))) == (bs if (k + 1) * bs <= n else n - k * bs)
        assert_same(batch, tv[sl])
        assert_same(batch, expected(model, sl))
        for a in batch.values():
            assert a.flags.c_contiguous and a.flags.writeable
        got += 1
    assert got == want
    assert it.num_batches() == want  # the total, also once the iterator is finished


@pytest.fixture(autouse=True)
def thread_baseline():
    gc.collect()
    before = n_threads()
    yield
    gc.collect()
    assert n_threads_settled(before) == before, "worker threads left running"


@pytest.mark.parametrize("threads,readahead", COMBOS)
@pytest.mark.parametrize("bs", [7, 13, 100, 101, 102, 1000])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_match_slices(threads, readahead, bs, drop_last):
    it = TV.batch_iter(bs, drop_last_batch=drop_last, threads=threads, readahead=readahead)
    check_batches(it, TV, COLS, bs, drop_last)


@pytest.mark.parametrize("threads,readahead", COMBOS)
def test_batch_size_one(threads, readahead):
    # with one row per batch, drop_last changes nothing
    for drop_last in (False, True):
        it = TV.batch_iter(1, drop_last_batch=drop_last, threads=threads, readahead=readahead)
        if drop_last:
            assert it.num_batches() == N
            it.close()
        else:
            check_batches(it, TV, COLS, 1, drop_last)


def test_keyword_and_positional_arguments():
    check_batches(TV.batch_iter(10, True, 2, 3), TV, COLS, 10, True)
    check_batches(TV.batch_iter(batch_size=10), TV, COLS, 10, False)


@pytest.mark.parametrize("threads,readahead", [(1, 0), (2, 4), (4, 1)])
def test_batches_of_composite_views(threads, readahead):
    parts = [make_cols(40, 1), make_cols(33, 2)]
    v = TableView.concat([TableView(parts[0]).shuffle(5),
                          TableView(parts[1]).new_view(slice(None, None, -1)),
                          TableView(parts[0]).new_view([1, 1, 2, 39])])
    perm = TableView({"p": np.arange(40)}).shuffle(5)[:]["p"]
    model = {k: np.concatenate([parts[0][k][perm], parts[1][k][::-1], parts[0][k][[1, 1, 2, 39]]])
             for k in parts[0]}
    for bs, drop in [(1, False), (5, False), (5, True), (17, True), (200, False), (200, True)]:
        check_batches(v.batch_iter(bs, drop, threads, readahead), v, model, bs, drop)
    sel = v.select_columns(["u", "c3"])
    check_batches(sel.batch_iter(8, threads=threads, readahead=readahead), sel,
                  {"u": model["u"], "c3": model["c3"]}, 8, False)


def test_string_widths_are_per_batch():
    words = ["a"] * 10 + ["x" * 30] + ["bb"] * 9
    tv = TableView({"w": np.array(words), "b": np.array([w.encode() for w in words])})
    widths = [b["w"].dtype for b in tv.batch_iter(5)]
    assert widths == [np.dtype("U1"), np.dtype("U1"), np.dtype("U30"), np.dtype("U2")]
    widths = [b["b"].dtype for b in tv.batch_iter(5, threads=2, readahead=3)]
    assert widths == [np.dtype("S1"), np.dtype("S1"), np.dtype("S30"), np.dtype("S2")]


def test_zero_row_views():
    empty = TV.new_view(slice(0, 0))
    for threads, readahead in COMBOS:
        for drop in (False, True):
            it = empty.batch_iter(4, drop, threads, readahead)
            assert it.num_batches() == 0
            assert list(it) == []


def test_batch_iter_concat():
    parts = [make_cols(n, 10 + n) for n in (7, 0, 30, 1, 12)]
    tvs = [TableView(p) for p in parts]
    model = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cat = TableView.concat(tvs)
    for i, (threads, readahead) in enumerate(COMBOS):
        for bs in ((1,) if i % 3 == 0 else ()) + (4, 9, 50, 51):
            for drop in (False, True) if bs > 1 else (False,):
                it = TableView.batch_iter_concat(tvs, bs, drop, threads, readahead)
                check_batches(it, cat, model, bs, drop)
    it = TableView.batch_iter_concat(views=tvs, batch_size=6, drop_last_batch=True, threads=2,
                                     readahead=1)
    check_batches(it, cat, model, 6, True)


def test_batch_iter_concat_errors():
    a = TableView({"x": np.arange(5), "s": np.array(["a"] * 5)})
    with pytest.raises(ValueError):
        TableView.batch_iter_concat([], 2)
    for bad in [TableView({"x": np.arange(5.0), "s": np.array(["a"] * 5)}),
                TableView({"x": np.arange(5), "s": np.array([b"a"] * 5)}),
                TableView({"x": np.arange(5)}),
                TableView({"x": np.arange(5), "t": np.array(["a"] * 5)}),
                TableView({"x": np.zeros((5, 2), int), "s": np.array(["a"] * 5)})]:
        with pytest.raises(ValueError):
            TableView.batch_iter_concat([a, bad], 2)
        with pytest.raises(ValueError):
            TableView.batch_iter_concat([bad, a, a], 2)
    with pytest.raises(TypeError):
        TableView.batch_iter_concat([a, "x"], 2)
    for kw in (dict(batch_size=0), dict(batch_size=2, threads=0), dict(batch_size=2, readahead=-1)):
        with pytest.raises(ValueError):
            TableView.batch_iter_concat([a, a], **kw)


@pytest.mark.parametrize("kw", [dict(batch_size=0), dict(batch_size=-5), dict(batch_size=1, threads=0),
                                dict(batch_size=1, threads=-2), dict(batch_size=1, readahead=-1),
                                dict(batch_size=1, threads=4, readahead=-100)], ids=repr)
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        TV.batch_iter(**kw)


def test_bad_argument_types():
    for kw in (dict(batch_size="3"), dict(batch_size=2.0), dict(batch_size=2, threads=1.5),
               dict(batch_size=2, readahead="x")):
        with pytest.raises(TypeError):
            TV.batch_iter(**kw)
    with pytest.raises(TypeError):
        TV.batch_iter()


# ---- huge arguments ----

def test_huge_threads_and_readahead_over_1000_views():
    parts = [{"i": np.arange(k * 5, k * 5 + 5, dtype=np.int64),
              "s": np.array([str(k)] * 5)} for k in range(1000)]
    tvs = [TableView(p) for p in parts]
    model = {"i": np.arange(5000, dtype=np.int64), "s": np.concatenate([p["s"] for p in parts])}
    t0 = time.monotonic()
    it = TableView.batch_iter_concat(tvs, 7, threads=3000, readahead=10000)
    assert 1 <= it.workers <= 64
    assert it.workers <= 2 * (os.cpu_count() or 1)
    cat = TableView.concat(tvs)
    check_batches(it, cat, model, 7, False)
    it = TV.batch_iter(1, threads=3000, readahead=10000)
    check_batches(it, TV, COLS, 1, False)
    assert time.monotonic() - t0 < 60


def test_huge_readahead_on_large_rows_is_bounded():
    # 1,000 batches of 8 MiB would be 8 GiB in flight: the window must be capped
    tv = TableView({"x": np.zeros((64, 1 << 17), dtype=np.float64)})
    it = tv.batch_iter(1, threads=2, readahead=1000)
    n = 0
    for b in it:
        assert b["x"].shape == (1, 1 << 17)
        n += 1
    assert n == 64


# ---- early stops ----

def _big_view():
    return TableView({"x": np.arange(200_000 * 4, dtype=np.float32).reshape(200_000, 4),
                      "s": np.array(["abc"] * 200_000)})


BIG = _big_view()


@pytest.mark.parametrize("threads,readahead", [(2, 4), (4, 16), (1, 3), (64, 1000)])
def test_early_stops_join_workers(threads, readahead):
    base = n_threads()
    # break out of a for loop over a temporary iterator
    for i, b in enumerate(BIG.batch_iter(10, threads=threads, readahead=readahead)):
        if i == 3:
            break
    assert n_threads_settled(base) == base
    # close()
    it = BIG.batch_iter(10, threads=threads, readahead=readahead)
    next(it)
    assert n_threads() > base
    nb = it.num_batches()
    it.close()
    assert n_threads_settled(base) == base
    assert list(it) == []
    it.close()  # twice is fine
    assert it.num_batches() == nb
    # del without taking anything
    it = BIG.batch_iter(10, threads=threads, readahead=readahead)
    del it
    assert n_threads_settled(base) == base

    # an exception in the consumer
    def consume():
        for i, _ in enumerate(BIG.batch_iter(10, threads=threads, readahead=readahead)):
            if i == 2:
                raise RuntimeError("consumer failed")

    try:
        consume()
    except RuntimeError:
        pass
    assert n_threads_settled(base) == base
    # exhausted: workers are joined when the last batch has been taken
    it = TV.batch_iter(10, threads=threads, readahead=readahead)
    list(it)
    assert n_threads_settled(base) == base
    del it


def test_keyboard_interrupt_stops_workers():
    base = n_threads()
    main = threading.get_ident()
    timer = threading.Timer(0.2, lambda: signal.pthread_kill(main, signal.SIGINT))
    deadline = time.monotonic() + 30
    interrupted = False
    timer.start()
    try:
        while time.monotonic() < deadline:
            for _ in BIG.batch_iter(1000, threads=2, readahead=4):
                pass
    except KeyboardInterrupt:
        interrupted = True
    finally:
        timer.cancel()
    assert interrupted
    gc.collect()
    assert n_threads_settled(base) == base


def test_iterator_keeps_its_view_alive():
    cols = make_cols(50, 3)
    tv = TableView(cols).shuffle(1)
    perm = TableView({"p": np.arange(50)}).shuffle(1)[:]["p"]
    model = {k: a[perm] for k, a in cols.items()}
    ref = TableView({k: a[perm] for k, a in cols.items()})
    its = [tv.batch_iter(6), tv.batch_iter(6, threads=2, readahead=3),
           TableView.batch_iter_concat([tv, tv.new_view(slice(0, 0))], 6, threads=3)]
    del tv
    gc.collect()
    for it in its:
        check_batches(it, ref, model, 6, False)


def test_several_iterators_at_once_same_thread():
    its = [TV.batch_iter(9, threads=t, readahead=r) for t, r in [(1, 0), (2, 2), (3, 5), (1, 1)]]
    nb = -(-N // 9)
    for k in range(nb):
        for it in its:
            assert_same(next(it), TV[k * 9:(k + 1) * 9])
    for it in its:
        with pytest.raises(StopIteration):
            next(it)


def test_several_iterators_in_several_threads():
    errors = []

    def run(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(5):
                bs = int(rng.integers(1, 40))
                threads, readahead = COMBOS[int(rng.integers(0, len(COMBOS)))]
                for k, b in enumerate(TV.batch_iter(bs, threads=threads, readahead=readahead)):
                    assert_same(b, expected(COLS, slice(k * bs, (k + 1) * bs)))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=run, args=(s,)) for s in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


def test_batches_do_not_share_memory_and_survive_the_iterator():
    it = TV.batch_iter(10, threads=2, readahead=2)
    batches = list(it)
    del it
    gc.collect()
    for k, b in enumerate(batches):
        assert_same(b, TV[k * 10:(k + 1) * 10])
        b["c3"][:] = 0  # writable, owned: changes stay local to this batch
    for k, b in enumerate(batches[:-1]):
        assert not np.shares_memory(b["c3"], batches[k + 1]["c3"])


def test_interpreter_exit_with_running_iterators(tmp_path):
    code = (
        "import numpy as np, infinidata, sys\n"
        "from infinidata import _infinidata as c\n"
        "tv = infinidata.TableView({'x': np.arange(4_000_000, dtype=np.float32).reshape(-1, 4)})\n"
        "its = [tv.batch_iter(100, threads=4, readahead=50) for _ in range(3)]\n"
        "next(its[0])\n"
        "print(c._tmp_dir())\n"
        "sys.exit(0)\n"
    )
    t0 = time.monotonic()
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(tmp_path / "t")}, timeout=60)
    assert time.monotonic() - t0 < 30
    procdir = p.stdout.strip()
    assert procdir.startswith(str(tmp_path))
    assert not os.path.exists(procdir)


def test_no_temp_files_left_by_iteration():
    gc.collect()
    before = data_files()
    for threads, readahead in COMBOS:
        for b in BIG.batch_iter(50_000, threads=threads, readahead=readahead):
            pass
        for i, b in enumerate(TableView.batch_iter_concat([BIG, BIG], 30_000, threads=threads,
                                                          readahead=readahead)):
            if i == 3:
                break
    gc.collect()
    assert data_files() == before


@pytest.mark.parametrize("bs", [2 ** 40, 2 ** 62, 2 ** 63 - 1])
@pytest.mark.parametrize("threads,readahead", [(1, 0), (1, 1), (2, 5), (3000, 10_000)])
def test_huge_batch_sizes(bs, threads, readahead):
    it = TV.batch_iter(bs, threads=threads, readahead=readahead)
    check_batches(it, TV, COLS, bs, False)
    it = TV.batch_iter(bs, drop_last_batch=True, threads=threads, readahead=readahead)
    assert it.num_batches() == 0
    assert list(it) == []


def test_zero_width_rows():
    cols = {"e": np.zeros((30, 0)), "e2": np.zeros((30, 3, 0), dtype=np.int8),
            "es": np.zeros((30, 0), dtype="U3"), "x": np.arange(30)}
    tv = TableView(cols)
    for threads, readahead in [(1, 0), (2, 3)]:
        check_batches(tv.batch_iter(7, threads=threads, readahead=readahead), tv, cols, 7, False)
    only_empty = tv.select_columns(["e"])
    check_batches(only_empty.batch_iter(4, threads=2, readahead=1000), only_empty,
                  {"e": cols["e"]}, 4, False)

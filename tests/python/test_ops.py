"""Dataset operations: sort, shard, train_test_split, predicate filter, drop_columns, checked
against NumPy models (np.unique ranks + np.lexsort for sort; HF's shard arithmetic)."""

import math
import os
import pickle

import numpy as np
import pytest

import infinidata
from conftest import assert_same, data_files, expected, normalize_strings, sort_order

TableView = infinidata.TableView


def read_back(arr):
    """The column as the engine reads it back (strings as U/S, trailing NULs dropped)."""
    return normalize_strings(arr) if arr.dtype.kind in "USOT" else arr


def model_order(cols, keys, desc):
    return sort_order(cols, keys, desc)


def random_column(kind, n, rng):
    if kind == "bool":
        return rng.integers(0, 2, n).astype(bool)
    if kind in ("U", "O", "S"):
        alphabet = ["", "a", "b", "ab", "abcdefg", "abcdefgh", "abcdefghij", "é", "日本", "😀", "a\x00b",
                    "\ud800", "abcdefgé"]
        words = [alphabet[i] + alphabet[j] for i, j in zip(rng.integers(0, 13, n), rng.integers(0, 13, n))]
        if kind == "S":
            return np.array([w.encode("utf-8", "surrogatepass") for w in words], dtype="S")
        if kind == "O":
            arr = np.empty(n, dtype=object)
            arr[:] = words
            return arr
        return np.array(words)
    dt = np.dtype(kind)
    if dt.kind == "f":
        a = rng.integers(-6, 6, n).astype(dt) / dt.type(2)
        special = rng.integers(0, 10, n)
        a[special == 0] = np.nan
        a[special == 1] = -0.0
        a[special == 2] = np.inf
        a[special == 3] = -np.inf
        return a
    if dt.kind in "mM":
        a = rng.integers(-5, 5, n).astype(np.int64)
        a[rng.integers(0, 8, n) == 0] = np.iinfo(np.int64).min  # NaT
        a[rng.integers(0, 8, n) == 0] = np.iinfo(np.int64).max
        return a.view(dt)
    info = np.iinfo(dt)
    raw = rng.integers(info.min, info.max, n, endpoint=True, dtype=np.int64 if dt.kind == "i" else np.uint64)
    raw[rng.integers(0, 4, n) == 0] = info.max
    return raw.astype(dt)


KINDS = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
         "float16", "float32", "float64", "M8[ns]", "m8[s]", "U", "S", "O"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_each_kind(kind, descending):
    rng = np.random.default_rng(len(kind) + descending)
    n = 500
    cols = {"k": random_column(kind, n, rng), "id": np.arange(n)}
    tv = TableView(cols)
    order = model_order(cols, ["k"], [descending])
    got = tv.sort("k", descending=descending)
    assert_same(got[:], expected(cols, order))
    # external runs and threads give the same order
    assert_same(tv.sort("k", descending=descending, memory_budget=500, threads=3)[:], expected(cols, order))


def test_sort_multi_key_and_composed_views():
    rng = np.random.default_rng(5)
    n = 3000
    cols = {"a": rng.integers(0, 3, n), "s": random_column("U", n, rng), "f": random_column("float32", n, rng),
            "id": np.arange(n)}
    tv = TableView(cols)
    view = TableView.concat([tv.shuffle(seed=3), tv.new_view(slice(None, None, -7))])
    perm = TableView({"p": np.arange(n)}).shuffle(seed=3)[:]["p"]
    vcols = {k: np.concatenate([v[perm], v[::-7]]) for k, v in cols.items()}
    assert_same(view[:], expected(vcols, slice(None)))
    for keys, desc in [(["a", "s"], [False, True]), (["s", "f", "a"], [True, False, True]), (["f"], True)]:
        order = model_order(vcols, keys, desc if isinstance(desc, list) else [desc] * len(keys))
        want = expected(vcols, order)
        assert_same(view.sort(keys, descending=desc)[:], want)
        assert_same(view.sort(keys, descending=desc, memory_budget=2000, threads=1)[:], want)


def test_sort_env_budget_forces_external(monkeypatch):
    rng = np.random.default_rng(1)
    cols = {"x": rng.integers(0, 50, 2000), "s": random_column("S", 2000, rng)}
    tv = TableView(cols)
    monkeypatch.setenv("INFINIDATA_SORT_MEMORY", "300")
    want = expected(cols, model_order(cols, ["x", "s"], [True, False]))
    assert_same(tv.sort(["x", "s"], descending=[True, False])[:], want)
    monkeypatch.setenv("INFINIDATA_SORT_MEMORY", "lots")
    with pytest.raises(ValueError, match="INFINIDATA_SORT_MEMORY"):
        tv.sort("x")


def test_sort_result_composes(tmp_path):
    rng = np.random.default_rng(2)
    cols = {"x": rng.integers(0, 10, 400), "v": rng.random((400, 3)).astype(np.float32)}
    tv = TableView(cols)
    s = tv.sort("x", descending=True)
    order = model_order(cols, ["x"], [True])
    want = expected(cols, order)
    s.save_to_disk(str(tmp_path), "sorted")
    assert_same(TableView.load_from_disk(str(tmp_path), "sorted")[:], want)
    assert_same(pickle.loads(pickle.dumps(s))[:], want)
    got = [b for b in s.batch_iter(64, threads=2, readahead=3)]
    assert_same({k: np.concatenate([b[k] for b in got]) for k in cols}, want)
    assert_same(s[10:50:3], expected({k: a[order] for k, a in cols.items()}, slice(10, 50, 3)))
    # sorting a sorted view again by the same key changes nothing (stable)
    assert_same(s.sort("x", descending=True)[:], want)


def test_sort_errors():
    tv = TableView({"x": np.arange(4), "m": np.zeros((4, 2)), "c": np.zeros(4, np.complex64),
                    "o": np.zeros(4, ">i4")})
    with pytest.raises(KeyError, match=r"no column named 'nope'; the columns are 'x', 'm', 'c', 'o'"):
        tv.sort("nope")
    with pytest.raises(TypeError, match="'m'.*shape"):
        tv.sort("m")
    with pytest.raises(TypeError, match="complex64|<c8"):
        tv.sort("c")
    with pytest.raises(ValueError, match="at least one"):
        tv.sort([])
    with pytest.raises(ValueError, match="twice"):
        tv.sort(["x", "x"])
    with pytest.raises(ValueError, match="2 entries for 1"):
        tv.sort("x", descending=[True, False])
    with pytest.raises(TypeError, match="descending"):
        tv.sort("x", descending="yes")
    with pytest.raises(TypeError, match="bools"):
        tv.sort("x", descending=[1])
    with pytest.raises(ValueError, match="threads"):
        tv.sort("x", threads=0)
    with pytest.raises(TypeError, match="threads"):
        tv.sort("x", threads=1.5)
    with pytest.raises(ValueError, match="memory_budget"):
        tv.sort("x", memory_budget=0)
    with pytest.raises(TypeError):
        tv.sort(5)
    # a byte-swapped source is stored natively, so it sorts
    assert list(tv.sort("o")[:]["o"]) == [0, 0, 0, 0]


def test_sort_empty_and_external_leaves_no_files():
    assert len(TableView({"x": np.zeros(0, np.int64)}).sort("x")) == 0
    import gc

    tv = TableView({"x": np.arange(50_000)[::-1].copy()})
    gc.collect()  # files of earlier tests' garbage go now, not during the check
    before = data_files()
    s = tv.sort("x", memory_budget=10_000)
    assert np.array_equal(s[:]["x"], np.arange(50_000))
    del s
    gc.collect()
    assert data_files() == before


# ---- shard ----

@pytest.mark.parametrize("n", [0, 1, 7, 10, 23])
@pytest.mark.parametrize("k", [1, 3, 4, 10])
def test_shard_matches_hf_arithmetic(n, k):
    tv = TableView({"i": np.arange(n)})
    got = [tv.shard(k, i)[:]["i"] for i in range(k)]
    div, mod = divmod(n, k)
    for i, g in enumerate(got):
        start = div * i + min(i, mod)
        assert np.array_equal(g, np.arange(start, start + div + (i < mod)))
    assert np.array_equal(np.concatenate(got), np.arange(n))
    for i in range(k):
        assert np.array_equal(tv.shard(k, i, contiguous=False)[:]["i"], np.arange(n)[i::k])


def test_shard_errors():
    tv = TableView({"i": np.arange(5)})
    with pytest.raises(ValueError, match="index"):
        tv.shard(3, 3)
    with pytest.raises(ValueError, match="index"):
        tv.shard(3, -1)
    with pytest.raises(ValueError, match="num_shards"):
        tv.shard(0, 0)
    with pytest.raises(TypeError, match="num_shards"):
        tv.shard(2.0, 0)
    with pytest.raises(TypeError, match="index"):
        tv.shard(2, True)


# ---- train_test_split ----

@pytest.mark.parametrize("n,test_size,want_test", [(10, 0.25, 3), (10, 0.2, 2), (100, 0.001, 1),
                                                   (7, 3, 3), (7, np.int64(6), 6), (3, 0.5, 2)])
def test_split_sizes_and_partition(n, test_size, want_test):
    tv = TableView({"i": np.arange(n)})
    split = tv.train_test_split(test_size, seed=4)
    train, test = split
    assert len(test) == want_test == math.ceil(test_size * n) if isinstance(test_size, float) else want_test
    assert len(train) == n - want_test
    assert split["train"] is train and split["test"] is test and split.test is test
    ids = np.concatenate([train[:]["i"], test[:]["i"]])
    assert np.array_equal(np.sort(ids), np.arange(n))
    again = tv.train_test_split(test_size, seed=4)
    assert np.array_equal(again["test"][:]["i"], test[:]["i"])
    assert split.keys() == ["train", "test"]
    assert pickle.loads(pickle.dumps(split))["test"][:]["i"].tolist() == test[:]["i"].tolist()


def test_split_seeds_differ_and_none_is_random():
    tv = TableView({"i": np.arange(1000)})
    a = tv.train_test_split(0.5, seed=1)["test"][:]["i"]
    b = tv.train_test_split(0.5, seed=2)["test"][:]["i"]
    assert not np.array_equal(a, b)
    assert len(tv.train_test_split(0.1)["test"]) == 100


@pytest.mark.parametrize("bad,exc", [(0.0, ValueError), (1.0, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                     (0, ValueError), (10, ValueError), (-1, ValueError), (True, TypeError),
                                     ("0.1", TypeError), (None, TypeError)])
def test_split_validation(bad, exc):
    tv = TableView({"i": np.arange(10)})
    with pytest.raises(exc, match="test_size"):
        tv.train_test_split(bad)


def test_split_empty_set_refused():
    with pytest.raises(ValueError, match="empty"):
        TableView({"i": np.arange(1)}).train_test_split(0.5)
    with pytest.raises(ValueError, match="seed"):
        TableView({"i": np.arange(10)}).train_test_split(0.5, seed=-1)


def test_split_stratified():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c", "d"]), [50, 30, 15, 5])
    rng.shuffle(labels)
    tv = TableView({"label": labels, "i": np.arange(100)})
    train, test = tv.train_test_split(0.2, seed=7, stratify_by="label")
    got = {c: int((test[:]["label"] == c).sum()) for c in "abcd"}
    assert got == {"a": 10, "b": 6, "c": 3, "d": 1}
    ids = np.concatenate([train[:]["i"], test[:]["i"]])
    assert np.array_equal(np.sort(ids), np.arange(100))
    assert np.array_equal(tv.train_test_split(0.2, seed=7, stratify_by="label")["test"][:]["i"], test[:]["i"])
    # largest remainders: 7 test rows over classes of 4, 3, 3 -> exact 2.8, 2.1, 2.1 -> 3, 2, 2
    tv2 = TableView({"y": np.array([2, 2, 2, 2, 0, 0, 0, 1, 1, 1])})
    t = tv2.train_test_split(7, seed=1, stratify_by="y")["test"][:]["y"]
    assert sorted(t.tolist()) == [0, 0, 1, 1, 2, 2, 2]
    # a tie of remainders goes to the smaller class value: 1 test row over two classes of 2
    t = TableView({"y": np.array([5, 5, 3, 3])}).train_test_split(1, seed=0, stratify_by="y")["test"][:]["y"]
    assert t.tolist() == [3]
    with pytest.raises(KeyError, match="nope"):
        tv.train_test_split(0.2, stratify_by="nope")
    with pytest.raises(TypeError, match="stratify"):
        TableView({"f": np.zeros(4)}).train_test_split(0.5, stratify_by="f")


# ---- filter with a predicate ----

def test_filter_predicate_matches_numpy():
    rng = np.random.default_rng(3)
    cols = {"x": rng.integers(0, 100, 2345), "s": random_column("U", 2345, rng), "v": rng.random((2345, 2))}
    tv = TableView(cols).shuffle(seed=1)
    perm = TableView({"p": np.arange(2345)}).shuffle(seed=1)[:]["p"]
    shown = {k: a[perm] for k, a in cols.items()}
    seen = []

    def pred(batch):
        seen.append(sorted(batch))
        return (batch["x"] % 3 == 0) & (np.char.str_len(batch["s"]) > 2)

    got = tv.filter(pred, batch_size=100)
    mask = (shown["x"] % 3 == 0) & (np.char.str_len(read_back(shown["s"])) > 2)
    assert_same(got[:], expected(shown, mask))
    assert len(seen) == 24 and seen[0] == ["s", "v", "x"]
    seen.clear()
    got = tv.filter(lambda b: list(b["x"] < 10), batch_size=1000, columns=["x"])
    assert_same(got[:], expected(shown, shown["x"] < 10))
    assert_same(tv.filter(shown["x"] > 50)[:], expected(shown, shown["x"] > 50))  # the mask form


def test_filter_predicate_errors():
    tv = TableView({"x": np.arange(25)})
    with pytest.raises(TypeError, match="bool array.*int64"):
        tv.filter(lambda b: b["x"], batch_size=10)
    with pytest.raises(ValueError, match=r"shape \(9,\).*row 0.*\(10,\)"):
        tv.filter(lambda b: b["x"][1:] > 3, batch_size=10)
    with pytest.raises(ValueError, match=r"row 20.*\(5,\)"):
        tv.filter(lambda b: np.ones(10, bool), batch_size=10)
    with pytest.raises(KeyError, match="nope"):
        tv.filter(lambda b: b["x"] > 1, columns=["nope"])
    with pytest.raises(ValueError, match="batch_size"):
        tv.filter(lambda b: b["x"] > 1, batch_size=0)
    with pytest.raises(ZeroDivisionError):
        tv.filter(lambda b: 1 / 0)
    assert len(TableView({"x": np.arange(0)}).filter(lambda b: b["x"] > 0)) == 0


# ---- drop_columns ----

def test_drop_columns():
    cols = {"a": np.arange(3), "b": np.array(["x", "y", "z"]), "c": np.zeros((3, 2))}
    tv = TableView(cols)
    d = tv.drop_columns("b")
    assert d.column_names == ["a", "c"]
    assert_same(d[:], expected({"a": cols["a"], "c": cols["c"]}, slice(None)))
    assert tv.drop_columns(["a", "c"]).column_names == ["b"]
    with pytest.raises(KeyError, match=r"no column named 'q'; the columns are 'a', 'b', 'c'"):
        tv.drop_columns(["a", "q"])
    with pytest.raises(ValueError, match="every column"):
        tv.drop_columns(["a", "b", "c"])
    with pytest.raises(TypeError):
        tv.drop_columns([1])


# ---- map ----

def _double_and_len(batch):
    return {"y": batch["x"] * 2, "l": np.char.str_len(batch["s"]).astype(np.int32),
            "v": np.stack([batch["x"], -batch["x"]], axis=1).astype(np.float32), "t": np.char.upper(batch["s"])}


def _map_model(cols):
    x, s = cols["x"], cols["s"]
    return {"y": x * 2, "l": np.char.str_len(s).astype(np.int32),
            "v": np.stack([x, -x], axis=1).astype(np.float32), "t": np.char.upper(s)}


@pytest.mark.parametrize("num_proc", [1, 3])
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_map_matches_numpy(num_proc, batch_size):
    rng = np.random.default_rng(num_proc + batch_size)
    n = 2000 if batch_size > 1 else 50
    cols = {"x": rng.integers(-100, 100, n), "s": random_column("U", n, rng), "z": rng.random(n)}
    tv = TableView(cols).shuffle(seed=9)
    perm = TableView({"p": np.arange(n)}).shuffle(seed=9)[:]["p"]
    shown = {k: a[perm] for k, a in cols.items()}
    seen = set()

    def fn(batch):
        seen.update(batch)
        return _double_and_len(batch)

    out = tv.map(fn, batch_size=batch_size, columns=["x", "s"], num_proc=num_proc)
    assert out.column_names == ["y", "l", "v", "t"]
    assert_same(out[:], _map_model(shown))
    if num_proc == 1:
        assert seen == {"x", "s"}
    # the result composes like any table
    assert_same(pickle.loads(pickle.dumps(out))[5:9], expected(_map_model(shown), slice(5, 9)))


def test_map_parallel_parts_outlive_workers(tmp_path):
    tv = TableView({"x": np.arange(30_000), "s": np.array(["ab", "c"] * 15_000)})
    before = set(os.listdir(os.path.dirname(infinidata._infinidata._tmp_dir())))
    out = tv.map(_double_and_len, batch_size=1000, num_proc=4)
    after = set(os.listdir(os.path.dirname(infinidata._infinidata._tmp_dir())))
    assert after == before  # workers removed their own temp directories
    assert not [f for f in os.listdir(infinidata._infinidata._tmp_dir()) if f.endswith(".idtview")]
    # the parts became this process's own temp files (the layout of its directory holds)
    assert all(f == "lock" or (f.endswith(".idt") and f[0] in "ab")
               for f in os.listdir(infinidata._infinidata._tmp_dir()))
    want = _map_model({"x": np.arange(30_000), "s": np.array(["ab", "c"] * 15_000)})
    out.save_to_disk(str(tmp_path), "mapped")
    assert_same(TableView.load_from_disk(str(tmp_path), "mapped")[:], want)
    assert_same(out.sort("y", descending=True)[:3], expected(want, np.arange(30_000)[::-1][:3]))
    # and they go with the last view that uses them
    import gc
    gc.collect()
    files = data_files()
    del out
    gc.collect()
    assert len(data_files()) < len(files)
    before_map = data_files()
    tv.map(_double_and_len, batch_size=1000, num_proc=3)
    gc.collect()
    assert data_files() == before_map


def test_map_errors():
    tv = TableView({"x": np.arange(25), "s": np.array(["a"] * 25)})
    with pytest.raises(TypeError, match="dict"):
        tv.map(lambda b: b["x"], batch_size=10)
    with pytest.raises(ValueError, match=r"9 rows in column 'y'.*row 0.*10 rows"):
        tv.map(lambda b: {"y": b["x"][1:]}, batch_size=10)
    with pytest.raises(ValueError, match="scalar"):
        tv.map(lambda b: {"y": 3}, batch_size=10)
    with pytest.raises(ValueError, match="no columns"):
        tv.map(lambda b: {}, batch_size=10)
    with pytest.raises(TypeError, match="function"):
        tv.map(5)
    with pytest.raises(ValueError, match="batch_size"):
        tv.map(_double_and_len, batch_size=0)
    with pytest.raises(ValueError, match="num_proc"):
        tv.map(_double_and_len, num_proc=0)
    with pytest.raises(KeyError, match="nope"):
        tv.map(_double_and_len, columns=["nope"])
    with pytest.raises(ValueError):  # the columns change between batches: the writer refuses
        tv.map(lambda b: {"y": b["x"]} if b["x"][0] == 0 else {"q": b["x"]}, batch_size=10)
    with pytest.raises(ZeroDivisionError):
        tv.map(lambda b: {"y": b["x"] // 0 if b["x"][0] > 10 else 1 / 0}, batch_size=5, num_proc=3)
    # a worker failing after others saved their parts: nothing of the map is left behind
    before = set(os.listdir(infinidata._infinidata._tmp_dir()))
    with pytest.raises(ValueError, match="rows in column"):
        tv.map(lambda b: {"y": b["x"][:1] if b["x"][0] >= 20 else b["x"]}, batch_size=5, num_proc=3)
    assert set(os.listdir(infinidata._infinidata._tmp_dir())) == before


def test_map_empty_view():
    tv = TableView({"x": np.zeros(0, np.int64)})
    out = tv.map(lambda b: {"y": b["x"].astype(np.float32), "s": b["x"].astype(str)}, num_proc=2)
    assert len(out) == 0 and out.schema["y"][0] == np.float32


def test_sort_stops_from_its_progress_callback(monkeypatch):
    """The binding's progress step runs inside the sort (between passes, where it also checks
    Ctrl-C): an exception there stops the sort, which removes what it made."""
    import gc

    class Stop(Exception):
        pass

    class Bar:
        done = []

        def update(self, k):
            Bar.done.append(k)
            raise Stop()

        def close(self):
            pass

    n = 8_000_000  # long enough for a report (every 0.1 s) before the end on any machine
    tv = TableView({"x": np.random.default_rng(0).integers(0, 2**62, n)})
    monkeypatch.setattr(infinidata._progress, "start", lambda *a, **k: Bar())
    gc.collect()
    before = data_files()
    for budget in (None, 1 << 20):
        with pytest.raises(Stop):
            tv.sort("x", memory_budget=budget, threads=1, progress=True)
    # stopped at the first report (the binding reports at most every 0.1 s), before the end
    assert len(Bar.done) == 2 and all(0 < k < n * 8 for k in Bar.done)
    gc.collect()
    assert data_files() == before


def test_sort_threads_and_mixed_stores():
    """Large enough for several threads per pass; a concat of tables with different column sets
    (stores looked up by name) sorts the same."""
    rng = np.random.default_rng(11)
    n = 300_000
    cols = {"k": rng.integers(0, 1000, n), "s": random_column("U", n, rng), "id": np.arange(n)}
    tv = TableView(cols)
    for keys, desc in [(["k", "s"], [True, False]), (["s"], True)]:
        want = expected(cols, model_order(cols, keys, desc if isinstance(desc, list) else [desc]))
        for threads in (1, 4):
            assert_same(tv.sort(keys, descending=desc, threads=threads)[:], want)
    extra = TableView({"k": np.array([5, -1, 5]), "other": np.zeros(3)}).select_columns(["k"])
    mixed = TableView.concat([TableView({"k": np.array([3, 5, 0])}), extra])
    assert mixed.sort("k")[:]["k"].tolist() == [-1, 0, 3, 5, 5, 5]
    assert mixed.sort("k", descending=True, memory_budget=64)[:]["k"].tolist() == [5, 5, 5, 3, 0, -1]

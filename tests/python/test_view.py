"""Views (issue 4): new_view, concat, shuffle, select_columns, remove_matching_strings and
filter against a NumPy model, including a seeded random sequence of operations."""

import gc

import numpy as np
import pytest

import infinidata
from conftest import assert_same, expected, normalize_strings, run_python

TableView = infinidata.TableView

VOCAB = ["", "a", "b", "cat", "dog", "héllo", "😀", "zebra crossing"]


def make_cols(n, id0, seed):
    rng = np.random.default_rng(seed)
    pick = lambda: [VOCAB[k] for k in rng.integers(0, len(VOCAB), n)]  # noqa: E731
    return {
        "id": np.arange(id0, id0 + n, dtype=np.int64),
        "f": rng.standard_normal((n, 2)).astype(np.float32),
        "u": np.array(pick(), dtype="U16"),
        "b": np.array([w.encode() for w in pick()], dtype="S20"),
        "o": np.array(pick(), dtype=object),
        "m": np.array([[VOCAB[k] for k in rng.integers(0, len(VOCAB), 2)] for _ in range(n)],
                      dtype="U16").reshape(n, 2),
    }


def perm_of(n, seed):
    """The permutation shuffle(seed) applies to n rows (it depends only on seed and n)."""
    return TableView({"p": np.arange(n, dtype=np.int64)}).shuffle(seed)[:]["p"]


def check_view(tv, model, rng=None):
    """Full read, plus a few random reads of every kind, against the model."""
    n = len(next(iter(model.values())))
    assert len(tv) == n
    assert tv.column_names == list(model)
    assert_same(tv[:], expected(model, slice(None)))
    if rng is None:
        return
    if n:
        i = int(rng.integers(-n, n))
        assert_same(tv[i], expected(model, i))
        idx = rng.integers(-n, n, int(rng.integers(0, 20)))
        assert_same(tv[idx], expected(model, idx))
    sl = slice(int(rng.integers(-n - 2, n + 2)), int(rng.integers(-n - 2, n + 2)),
               int(rng.choice([-3, -1, 1, 2, 7])))
    assert_same(tv[sl], expected(model, sl))


# ---- new_view ----

@pytest.fixture(scope="module")
def base():
    cols = make_cols(60, 0, 1)
    return TableView(cols), cols


@pytest.mark.parametrize("key", [
    slice(None), slice(None, None, -1), slice(5, 50, 3), slice(-5, -50, -4), slice(100, 200),
    slice(-1000, 1000, 7), slice(50, 5), [], [3, 3, -1, 0], np.array([59, -60, 10], np.int8),
    np.arange(60)[::-1], np.array([], np.uint16), np.arange(60) % 4 == 1, np.zeros(60, bool),
    np.ones(60, bool), np.array([5, 7], dtype=np.uint64),
], ids=repr)
def test_new_view_reads_what_getitem_reads(base, key):
    tv, cols = base
    v = tv.new_view(key)
    model = {k: a[np.asarray(key, dtype=np.intp) if isinstance(key, list) else key]
             for k, a in cols.items()}
    check_view(v, model, np.random.default_rng(0))
    assert_same(v[:], tv[key])


def test_new_view_of_new_view_chains(base):
    tv, cols = base
    v, model = tv, dict(cols)
    rng = np.random.default_rng(2)
    for step in range(60):
        n = len(v)
        if step % 3 == 0:
            key = slice(None, None, -1)
        elif step % 3 == 1 and n:
            key = rng.integers(-n, n, n + 3)
        else:
            key = rng.integers(0, 2, n).astype(bool) | (np.arange(n) < 5)
        v = v.new_view(key)
        model = {k: a[key] for k, a in model.items()}
        check_view(v, model, rng)


@pytest.mark.parametrize("key,exc", [
    (slice(None, None, 0), ValueError), ([60], IndexError), ([-61], IndexError),
    (np.array([0, 100]), IndexError), (np.ones(59, bool), IndexError),
    (np.ones(61, bool), IndexError), (1.5, TypeError), ("a", TypeError),
    (np.array([1.0]), TypeError), (None, TypeError),
], ids=repr)
def test_new_view_errors(base, key, exc):
    tv, _ = base
    with pytest.raises(exc):
        tv.new_view(key)


def test_views_keep_their_data_alive():
    cols = make_cols(40, 0, 3)
    tv = TableView(cols)
    views = [tv.new_view(slice(None, None, -2)), tv.new_view([1, 1, 39]), tv.shuffle(3),
             tv.select_columns(["u", "id"]), tv.filter(np.arange(40) % 2 == 0),
             TableView.concat([tv, tv])]
    models = [{k: a[::-2] for k, a in cols.items()}, {k: a[[1, 1, 39]] for k, a in cols.items()},
              {k: a[perm_of(40, 3)] for k, a in cols.items()}, {"u": cols["u"], "id": cols["id"]},
              {k: a[np.arange(40) % 2 == 0] for k, a in cols.items()},
              {k: np.concatenate([a, a]) for k, a in cols.items()}]
    del tv
    gc.collect()
    for v, m in zip(views, models):
        check_view(v, m)
    # and views of views outlive their parents too
    grand = views[2].new_view(slice(3, 30, 2)).shuffle(8)
    gm = {k: a[3:30:2][perm_of(14, 8)] for k, a in models[2].items()}
    del views
    gc.collect()
    check_view(grand, gm)


# ---- concat ----

def test_concat_basic_and_string_widths():
    a = make_cols(10, 0, 1)
    b = make_cols(7, 100, 2)
    b["u"] = b["u"].astype("U40")  # widths differ: still the same column
    b["b"] = b["b"].astype("S3")
    ta, tb = TableView(a), TableView(b)
    cat = TableView.concat([ta, tb, ta])
    check_view(cat, {k: np.concatenate([a[k], b[k], a[k]]) for k in a},
               np.random.default_rng(1))
    assert cat.schema == ta.schema


def test_concat_single_and_empty_views():
    a = make_cols(10, 0, 1)
    ta = TableView(a)
    check_view(TableView.concat([ta]), a)
    empty = ta.new_view(slice(0, 0))
    check_view(TableView.concat([empty, ta, empty]), a)
    check_view(TableView.concat([empty, empty]), {k: v[:0] for k, v in a.items()})
    z = TableView({k: v[:0] for k, v in a.items()})
    check_view(TableView.concat([z, ta, z]), a)


def test_concat_of_concats_is_correct():
    parts = [make_cols(5 + i, 1000 * i, i) for i in range(8)]
    tvs = [TableView(p) for p in parts]
    models = list(parts)
    views = list(tvs)
    rng = np.random.default_rng(4)
    for _ in range(40):
        i, j = rng.integers(0, len(views), 2)
        v = TableView.concat([views[i], views[j].new_view(slice(None, None, -1))])
        m = {k: np.concatenate([models[i][k], models[j][k][::-1]]) for k in models[i]}
        if len(v) > 400:
            v = v.new_view(slice(0, None, 3))
            m = {k: a[::3] for k, a in m.items()}
        views.append(v)
        models.append(m)
        check_view(v, m, rng)


def test_concat_matches_columns_by_name():
    a = make_cols(6, 0, 1)
    b = make_cols(4, 10, 2)
    va = TableView(a).select_columns(["u", "id"])
    vb = TableView(b).select_columns(["id", "u"])
    cat = TableView.concat([va, vb])
    check_view(cat, {"u": np.concatenate([a["u"], b["u"]]),
                     "id": np.concatenate([a["id"], b["id"]])})
    # tables whose other columns differ still concat on the selected ones
    c = {"id": np.arange(3, dtype=np.int64), "other": np.arange(3.0),
         "u": np.array(["x", "yy", "zzz"])}
    vc = TableView(c).select_columns(["id", "u"])
    cat2 = TableView.concat([vb, vc, cat.select_columns(["id", "u"])])
    check_view(cat2, {"id": np.concatenate([b["id"], c["id"], a["id"], b["id"]]),
                      "u": np.concatenate([b["u"], c["u"], a["u"], b["u"]])},
               np.random.default_rng(0))
    sh = cat2.shuffle(1)
    p = perm_of(len(cat2), 1)
    check_view(sh, {"id": np.concatenate([b["id"], c["id"], a["id"], b["id"]])[p],
                    "u": np.concatenate([b["u"], c["u"], a["u"], b["u"]])[p]})


MISMATCH = {
    "dtype": {"x": np.arange(3, dtype=np.int32), "s": np.array(["a"] * 3)},
    "float_vs_int": {"x": np.arange(3.0), "s": np.array(["a"] * 3)},
    "shape": {"x": np.zeros((3, 1), np.int64), "s": np.array(["a"] * 3)},
    "shape2": {"x": np.zeros((3, 2, 1), np.int64), "s": np.array(["a"] * 3)},
    "str_vs_bytes": {"x": np.arange(3), "s": np.array([b"a"] * 3)},
    "str_vs_fixed": {"x": np.arange(3), "s": np.arange(3)},
    "name": {"x": np.arange(3), "t": np.array(["a"] * 3)},
    "fewer_columns": {"x": np.arange(3)},
    "more_columns": {"x": np.arange(3), "s": np.array(["a"] * 3), "y": np.arange(3)},
    "datetime_unit": {"x": np.arange(3).astype("M8[s]"), "s": np.array(["a"] * 3)},
    "string_row_shape": {"x": np.arange(3), "s": np.array([["a", "b"]] * 3)},
}


@pytest.mark.parametrize("name", list(MISMATCH))
def test_concat_schema_mismatch(name):
    good = TableView({"x": np.arange(5), "s": np.array(["q"] * 5)})
    bad = TableView(MISMATCH[name])
    for views in ([good, bad], [bad, good], [good, good, bad]):
        with pytest.raises(ValueError) as ei:
            TableView.concat(views)
        msg = str(ei.value)
        if name not in ("fewer_columns", "more_columns"):  # it says which column differs
            assert any(f"'{c}'" in msg for c in ("x", "s", "t")), msg


def test_concat_bad_arguments():
    t = TableView({"x": np.arange(3)})
    with pytest.raises(ValueError):
        TableView.concat([])
    with pytest.raises(ValueError):
        TableView.concat(())
    with pytest.raises(TypeError):
        TableView.concat([t, np.arange(3)])
    with pytest.raises(TypeError):
        TableView.concat(5)
    check_view(TableView.concat((t, t)), {"x": np.concatenate([np.arange(3)] * 2)})
    check_view(TableView.concat([t]), {"x": np.arange(3)})


# ---- shuffle ----

def _py_shuffle(n, seed):
    """shuffle.c's documented generator for n <= 65536: xoshiro256** seeded through
    splitmix64 (stream 2), Lemire bounded draws, Fisher-Yates from the top."""
    M = (1 << 64) - 1

    def splitmix(x):
        x = (x + 0x9E3779B97F4A7C15) & M
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return x, z ^ (z >> 31)

    x = seed ^ ((2 * 0xD1B54A32D192ED03) & M)
    s = []
    for _ in range(4):
        x, z = splitmix(x)
        s.append(z)

    def rotl(v, k):
        return ((v << k) | (v >> (64 - k))) & M

    def nxt():
        out = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return out

    def below(b):
        m = nxt() * b
        lo = m & M
        if lo < b:
            t = ((1 << 64) - b) % b
            while lo < t:
                m = nxt() * b
                lo = m & M
        return m >> 64

    a = list(range(n))
    for i in range(n - 1, 0, -1):
        k = below(i + 1)
        a[i], a[k] = a[k], a[i]
    return a


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (10, 42), (1000, 2 ** 64 - 1),
                                    (777, 123456789)])
def test_shuffle_uses_the_documented_generator(n, seed):
    got = TableView({"i": np.arange(n)}).shuffle(seed)[:]["i"]
    assert got.tolist() == _py_shuffle(n, seed)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 65536, 65537, 300_001])
def test_shuffle_is_a_seeded_permutation(n):
    tv = TableView({"i": np.arange(n, dtype=np.int64), "s": np.arange(n).astype("U")})
    a = tv.shuffle(7)[:]
    b = tv.shuffle(7)[:]
    assert_same(a, b)
    np.testing.assert_array_equal(np.sort(a["i"]), np.arange(n), strict=True)
    np.testing.assert_array_equal(a["s"], normalize_strings(a["i"].astype("U")), strict=True)
    if n >= 100:
        c = tv.shuffle(8)[:]["i"]
        assert not np.array_equal(a["i"], c)
        d = tv.shuffle()[:]["i"]
        e = tv.shuffle(None)[:]["i"]
        assert not np.array_equal(d, e)
        np.testing.assert_array_equal(np.sort(d), np.arange(n), strict=True)
        assert not np.array_equal(a["i"], np.arange(n))


def test_shuffle_is_the_same_in_another_process(tmp_path):
    code = ("import numpy as np, infinidata\n"
            "tv = infinidata.TableView({'i': np.arange(100_000)})\n"
            "print(','.join(map(str, tv.shuffle(2024)[:]['i'][:50].tolist())))\n"
            "print(int(tv.shuffle(2024)[:]['i'].sum()))\n")
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(tmp_path)})
    first, total = p.stdout.split()
    here = TableView({"i": np.arange(100_000)}).shuffle(2024)[:]["i"]
    assert first == ",".join(map(str, here[:50].tolist()))
    assert int(total) == int(here.sum())


def test_shuffle_seed_arguments():
    tv = TableView({"i": np.arange(50)})
    for seed in [0, 1, 2 ** 63, 2 ** 64 - 1, np.uint64(2 ** 64 - 1), np.int8(5)]:
        got = tv.shuffle(seed)[:]["i"]
        np.testing.assert_array_equal(np.sort(got), np.arange(50), strict=True)
        assert got.tolist() == tv.shuffle(seed=int(seed))[:]["i"].tolist()
    for seed in [-1, 2 ** 64, -(2 ** 70), 2 ** 100]:
        with pytest.raises(ValueError):
            tv.shuffle(seed)
    for seed in [1.0, "1", [1], True]:
        with pytest.raises(TypeError):
            tv.shuffle(seed)


def test_shuffle_of_a_composite_view():
    parts = [make_cols(30, 0, 1), make_cols(20, 100, 2)]
    v = TableView.concat([TableView(parts[0]).new_view(slice(None, None, -1)),
                          TableView(parts[1]).new_view([3, 3, 5])])
    model = {k: np.concatenate([parts[0][k][::-1], parts[1][k][[3, 3, 5]]]) for k in parts[0]}
    s = v.shuffle(99)
    check_view(s, {k: a[perm_of(len(v), 99)] for k, a in model.items()}, np.random.default_rng(0))
    assert sorted(s[:]["id"].tolist()) == sorted(model["id"].tolist())


# ---- select_columns ----

def test_select_columns_forms(base):
    tv, cols = base
    order = list(cols)
    check_view(tv.select_columns(["o", "id"]), {"o": cols["o"], "id": cols["id"]})
    check_view(tv.select_columns("u"), {"u": cols["u"]})
    s = tv.select_columns({"m", "f", "id"})  # a set keeps the view's own order
    assert s.column_names == [c for c in order if c in {"m", "f", "id"}]
    check_view(s, {c: cols[c] for c in s.column_names})
    check_view(tv.select_columns(tuple(reversed(order))), {c: cols[c] for c in reversed(order)})
    check_view(tv.select_columns(frozenset(["b"])), {"b": cols["b"]})
    sub = tv.select_columns(["u", "id"]).select_columns(["id"])
    check_view(sub, {"id": cols["id"]})
    assert sub.schema == {"id": tv.schema["id"]}


def test_select_columns_errors(base):
    tv, _ = base
    with pytest.raises(KeyError) as ei:
        tv.select_columns(["id", "nope"])
    assert "nope" in str(ei.value)
    with pytest.raises(KeyError):
        tv.select_columns({"id", "nope"})
    with pytest.raises(KeyError):
        tv.select_columns("nope")
    with pytest.raises(KeyError):
        tv.select_columns(["u"]).select_columns(["id"])  # gone from this view
    for empty in ([], set(), ()):
        with pytest.raises(ValueError):
            tv.select_columns(empty)
    with pytest.raises(ValueError):
        tv.select_columns(["id", "id"])
    with pytest.raises(TypeError):
        tv.select_columns([1])
    with pytest.raises(TypeError):
        tv.select_columns(5)


# ---- remove_matching_strings ----

def _remove_model(cols, col, strings):
    vals = cols[col]
    sset = set(strings)
    if vals.ndim == 1:
        keep = np.array([x not in sset for x in vals], dtype=bool)
    else:
        keep = np.array([not any(x in sset for x in row.flat) for row in vals], dtype=bool)
    return {k: a[keep] for k, a in cols.items()}


@pytest.mark.parametrize("col", ["u", "o", "b", "m"])
@pytest.mark.parametrize("which", [[], ["a"], ["a", "cat", "😀"], ["nothing"], VOCAB,
                                   ["", "héllo"]], ids=repr)
def test_remove_matching_strings(base, col, which):
    tv, cols = base
    strings = [w.encode() for w in which] if col == "b" else list(which)
    for container in (list, set, tuple):
        v = tv.remove_matching_strings(col, container(strings))
        check_view(v, _remove_model(cols, col, strings), np.random.default_rng(3))


def test_remove_matching_strings_on_composite_views():
    parts = [make_cols(40, 0, 5), make_cols(25, 500, 6)]
    v = TableView.concat([TableView(parts[0]).shuffle(1), TableView(parts[1]).new_view(
        slice(None, None, -2))]).select_columns(["b", "u", "id"])
    p = perm_of(40, 1)
    model = {k: np.concatenate([parts[0][k][p], parts[1][k][::-2]]) for k in ["b", "u", "id"]}
    check_view(v.remove_matching_strings("u", ["dog", "a"]),
               _remove_model(model, "u", ["dog", "a"]))
    check_view(v.remove_matching_strings("b", {b"dog", b"zebra crossing"}),
               _remove_model(model, "b", [b"dog", b"zebra crossing"]))


def test_remove_matching_strings_errors(base):
    tv, _ = base
    with pytest.raises(TypeError):
        tv.remove_matching_strings("id", ["a"])
    with pytest.raises(TypeError):
        tv.remove_matching_strings("f", [])
    with pytest.raises(KeyError):
        tv.remove_matching_strings("nope", ["a"])
    with pytest.raises(KeyError):
        tv.select_columns(["id"]).remove_matching_strings("u", ["a"])
    with pytest.raises(TypeError):
        tv.remove_matching_strings("u", [b"a"])
    with pytest.raises(TypeError):
        tv.remove_matching_strings("b", ["a"])


# ---- filter ----

def test_filter(base):
    tv, cols = base
    rng = np.random.default_rng(0)
    for mask in [np.ones(60, bool), np.zeros(60, bool), rng.integers(0, 2, 60).astype(bool),
                 (np.arange(120) % 2 == 0)[::2], [i % 5 == 0 for i in range(60)]]:
        m = np.asarray(mask)
        check_view(tv.filter(mask), {k: a[m] for k, a in cols.items()}, rng)


def test_filter_errors(base):
    tv, _ = base
    for mask in [np.ones(59, bool), np.ones(61, bool), np.ones((60, 1), bool),
                 np.ones((1, 60), bool), np.zeros(0, bool)]:
        with pytest.raises(ValueError):
            tv.filter(mask)
    for mask in [np.ones(60, np.int64), np.ones(60, np.uint8), np.arange(60.0),
                 np.array(["a"] * 60), [1] * 60]:
        with pytest.raises(TypeError):
            tv.filter(mask)


# ---- the model-based random sequence ----

def _rand_slice(rng, n):
    def bound():
        return None if rng.random() < 0.2 else int(rng.integers(-n - 3, n + 4))
    step = None if rng.random() < 0.2 else int(rng.choice([-7, -3, -2, -1, 1, 1, 2, 3, 5]))
    return slice(bound(), bound(), step)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_operation_sequence_against_numpy(seed):
    rng = np.random.default_rng(1000 + seed)
    bases = [make_cols(n, 10_000 * i, seed * 10 + i) for i, n in enumerate([50, 80, 30])]
    pool = [(TableView(c), dict(c)) for c in bases]
    counts = {}
    for step in range(200):
        op = rng.choice(["slice", "index", "list", "mask", "filter", "shuffle", "concat",
                         "select", "remove", "drop"])
        i = int(rng.integers(0, len(pool)))
        tv, model = pool[i]
        n = len(tv)
        names = list(model)
        if n > 3000 and op in ("concat", "index", "list"):
            op = "slice"
        if op == "slice":
            key = _rand_slice(rng, n)
            new, nm = tv.new_view(key), {k: a[key] for k, a in model.items()}
        elif op == "index":
            key = rng.integers(-n, n, int(rng.integers(0, 2 * n + 2))) if n else np.zeros(0, int)
            key = key.astype(rng.choice(["int64", "int32", "int16"]))
            new, nm = tv.new_view(key), {k: a[key] for k, a in model.items()}
        elif op == "list":
            key = [int(x) for x in rng.integers(-n, n, int(rng.integers(0, 20)))] if n else []
            new = tv.new_view(key)
            nm = {k: a[np.asarray(key, dtype=np.intp)] for k, a in model.items()}
        elif op in ("mask", "filter"):
            m = rng.random(n) < rng.random()
            new = tv.new_view(m) if op == "mask" else tv.filter(m)
            nm = {k: a[m] for k, a in model.items()}
        elif op == "shuffle":
            s = int(rng.integers(0, 2 ** 63))
            new = tv.shuffle(s)
            nm = {k: a[perm_of(n, s)] for k, a in model.items()}
            if "id" in model:  # a permutation of the rows, whatever the generator
                assert sorted(new[:]["id"].tolist()) == sorted(model["id"].tolist())
        elif op == "concat":
            same = [p for p in pool if set(p[1]) == set(names)]
            k = int(rng.integers(1, 4))
            picks = [pool[i]] + [same[int(j)] for j in rng.integers(0, len(same), k - 1)]
            new = TableView.concat([p[0] for p in picks])
            nm = {c: np.concatenate([p[1][c] for p in picks]) for c in names}
        elif op == "select":
            k = int(rng.integers(1, len(names) + 1))
            chosen = [names[j] for j in rng.permutation(len(names))[:k]]
            if rng.random() < 0.5:
                new = tv.select_columns(chosen)
                nm = {c: model[c] for c in chosen}
            else:
                new = tv.select_columns(set(chosen))
                nm = {c: model[c] for c in names if c in chosen}
        elif op == "remove":
            strcols = [c for c in names if c in ("u", "b", "o", "m")]
            if not strcols:
                continue
            col = strcols[int(rng.integers(0, len(strcols)))]
            words = [VOCAB[j] for j in rng.choice(len(VOCAB), int(rng.integers(0, 4)),
                                                  replace=False)]
            if col == "b":
                words = [w.encode() for w in words]
            new = tv.remove_matching_strings(col, words)
            nm = _remove_model(model, col, words)
        else:  # drop a view; the views made from it must not notice
            if len(pool) > 2:
                pool.pop(i)
                gc.collect()
            counts[op] = counts.get(op, 0) + 1
            continue
        counts[op] = counts.get(op, 0) + 1
        check_view(new, nm, rng)
        pool.append((new, nm))
        if len(pool) > 25:
            pool.pop(int(rng.integers(0, len(pool))))
    assert len(counts) >= 9, counts
    for tv, model in pool:
        check_view(tv, model, rng)


def test_views_over_tables_of_different_schemas():
    # concat of selections of tables whose other columns differ: every operation still works
    a = {"id": np.arange(4), "u": np.array(["a", "b", "c", "a"]), "zz": np.arange(4.0)}
    b = {"aa": np.zeros(3), "id": np.arange(10, 13), "u": np.array(["a", "x", "yy"])}
    cat = TableView.concat([TableView(a).select_columns(["u", "id"]),
                            TableView(b).select_columns(["u", "id"])])
    m = {"u": np.concatenate([a["u"], b["u"]]), "id": np.concatenate([a["id"], b["id"]])}
    check_view(cat, m, np.random.default_rng(0))
    check_view(cat.remove_matching_strings("u", ["a"]), _remove_model(m, "u", ["a"]))
    p = perm_of(7, 3)
    check_view(cat.shuffle(3).remove_matching_strings("u", ["x"]),
               _remove_model({k: v[p] for k, v in m.items()}, "u", ["x"]))
    check_view(cat.select_columns(["id"]).filter(np.arange(7) > 2), {"id": m["id"][3:]})
    for k, batch in enumerate(cat.batch_iter(3, threads=2, readahead=2)):
        assert_same(batch, expected(m, slice(3 * k, 3 * k + 3)))


def test_remove_matching_strings_ignores_trailing_nul_padding():
    tv = TableView({"u": np.array(["a", "b", "ab"]),
                    "o": np.array([b"a", b"b\0", b""], dtype=object)})
    check_view(tv.remove_matching_strings("u", ["a\0"]),
               {"u": np.array(["b", "ab"]), "o": np.array([b"b", b""], dtype=object)})
    check_view(tv.remove_matching_strings("o", [b"b"]),
               {"u": np.array(["a", "ab"]), "o": np.array([b"a", b""], dtype=object)})
    check_view(tv.remove_matching_strings("o", [b""]),
               {"u": np.array(["a", "b"]), "o": np.array([b"a", b"b"], dtype=object)})

"""Reads (issue 3, item 7): every key kind against NumPy on the source arrays, with Hypothesis
for random slices and index arrays, string width rules, and every error case."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import infinidata
from conftest import assert_same, expected

TableView = infinidata.TableView

N = 257
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "intp", "uintp", "longlong", "ulonglong", "short", "byte"]
HSET = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def make_cols(n, seed):
    rng = np.random.default_rng(seed)
    words = ["", "a", "bb", "ccc", "héllo", "😀x", "long string " * 3]
    return {
        "i": np.arange(n, dtype=np.int64) + 1000 * seed,
        "f": rng.standard_normal((n, 2, 3)).astype(np.float32),
        "b": rng.integers(0, 2, n).astype(bool),
        "c": (rng.standard_normal(n) + 1j).astype(np.complex64),
        "t": (np.arange(n) * 3600).astype("M8[s]"),
        "u": np.array([words[k] for k in rng.integers(0, len(words), n)]),
        "s": np.array([w.encode() for w in (words[k] for k in rng.integers(0, len(words), n))]),
        "o": np.array([words[k] for k in rng.integers(0, len(words), n)], dtype=object),
        "uv": np.array([[words[k] for k in rng.integers(0, len(words), 2)] for _ in range(n)]),
    }


def take_model(cols, idx):
    return {k: v[idx] for k, v in cols.items()}


def build_targets():
    """(name, view, model cols): a plain table, a concat of separately built tables with a
    reversed slice among them, and a shuffled, sliced composite (reads through ref arrays)."""
    base = make_cols(N, 0)
    t0 = TableView(base)
    parts = [make_cols(100, 1), make_cols(90, 2), make_cols(67, 3)]
    tvs = [TableView(p) for p in parts]
    cat = TableView.concat([tvs[0], tvs[1].new_view(slice(None, None, -1)), tvs[2]])
    cat_model = {k: np.concatenate([parts[0][k], parts[1][k][::-1], parts[2][k]]) for k in base}
    perm = TableView({"p": np.arange(len(cat))}).shuffle(seed=5)[:]["p"]
    shuf = cat.shuffle(seed=5)
    shuf_model = take_model(cat_model, perm)
    mixed = TableView.concat([shuf.new_view(slice(3, 200, 2)), t0.new_view(slice(None, None, -1)),
                              shuf.new_view(np.array([0, 0, -1, 5]))])
    mixed_model = {k: np.concatenate([shuf_model[k][3:200:2], base[k][::-1],
                                      shuf_model[k][[0, 0, -1, 5]]]) for k in base}
    return [("table", t0, base), ("concat", cat, cat_model), ("mixed", mixed, mixed_model)]


TARGETS = build_targets()
TARGET_IDS = [t[0] for t in TARGETS]


@pytest.fixture(params=range(len(TARGETS)), ids=TARGET_IDS)
def target(request):
    _, tv, cols = TARGETS[request.param]
    assert len(tv) == len(cols["i"])
    return tv, cols


# ---- int keys ----

def test_int_keys_every_position(target):
    tv, cols = target
    n = len(tv)
    for i in list(range(n)) + list(range(-n, 0, 7)):
        assert_same(tv[i], expected(cols, i))


def test_int_key_returns_numpy_scalars_for_1d_columns(target):
    tv, cols = target
    row = tv[3]
    assert isinstance(row["i"], np.int64)
    assert isinstance(row["b"], np.bool_)
    assert isinstance(row["u"], np.str_)
    assert isinstance(row["s"], np.bytes_)
    assert isinstance(row["o"], np.str_)
    assert isinstance(row["f"], np.ndarray) and row["f"].shape == (2, 3)
    assert isinstance(row["uv"], np.ndarray) and row["uv"].shape == (2,)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_numpy_integer_scalar_keys(target, dtype):
    tv, cols = target
    n = len(tv)
    vals = [0, 1, 100, 127]
    if np.dtype(dtype).kind == "i":
        vals += [-1, -100, -128]
    for v in vals:
        k = np.dtype(dtype).type(v)
        if -n <= v < n:
            assert_same(tv[k], expected(cols, int(v)))
    # zero-dimensional integer arrays index like integers
    assert_same(tv[np.array(7, dtype=dtype)], expected(cols, np.array(7, dtype=dtype)))


def test_int_out_of_range(target):
    tv, _ = target
    n = len(tv)
    for bad in [n, n + 1, -n - 1, 2 ** 63 - 1, -(2 ** 63), 2 ** 70, -(2 ** 70), np.int64(n),
                np.uint64(2 ** 64 - 1), np.int8(-128) if n < 128 else np.int64(-n - 5)]:
        with pytest.raises(IndexError):
            tv[bad]


def test_index_error_names_index_and_length():
    tv = TableView({"a": np.arange(10)})
    with pytest.raises(IndexError) as ei:
        tv[12]
    assert "12" in str(ei.value) and "10" in str(ei.value)
    with pytest.raises(IndexError) as ei:
        tv[np.array([1, -13, 2])]
    assert "-13" in str(ei.value) and "10" in str(ei.value)


# ---- slices ----

SLICE_BOUND = st.one_of(st.none(), st.integers(-2 * N - 5, 2 * N + 5),
                        st.sampled_from([-(2 ** 63), 2 ** 63 - 1, 2 ** 80, -(2 ** 80)]))
SLICE_STEP = st.one_of(st.none(), st.integers(-N - 3, N + 3).filter(lambda s: s != 0),
                       st.sampled_from([2 ** 63 - 1, -(2 ** 63) + 1, 2 ** 80, -(2 ** 80)]))


@HSET
@given(start=SLICE_BOUND, stop=SLICE_BOUND, step=SLICE_STEP)
def test_random_slices(target, start, stop, step):
    tv, cols = target
    key = slice(start, stop, step)
    assert_same(tv[key], expected(cols, key))


def test_slice_edge_cases(target):
    tv, cols = target
    n = len(tv)
    for key in [slice(None), slice(None, None, -1), slice(0, 0), slice(n, None), slice(-1, None),
                slice(None, -n - 10), slice(5, 2), slice(2, 5, -1), slice(n - 1, -n - 1, -1),
                slice(1, n, n), slice(None, None, n + 10), slice(None, None, -n - 10),
                slice(-1, -2, -1), slice(10, -10, 3), slice(-10, 10, -3)]:
        assert_same(tv[key], expected(cols, key))


def test_slice_step_zero(target):
    tv, _ = target
    with pytest.raises(ValueError):
        tv[::0]
    with pytest.raises(ValueError):
        tv[1:5:0]


def test_slice_with_numpy_integers(target):
    tv, cols = target
    key = slice(np.int16(-50), np.uint8(200), np.int64(3))
    assert_same(tv[key], expected(cols, slice(-50, 200, 3)))


# ---- index arrays and lists ----

def index_arrays(n):
    return hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in ("int8", "int16", "int32", "int64")]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=st.integers(-min(n, 128), min(n, 127) - 1),
    )


@HSET
@given(data=st.data())
def test_random_index_arrays(target, data):
    tv, cols = target
    idx = data.draw(index_arrays(len(tv)))
    assert_same(tv[idx], expected(cols, idx))


@HSET
@given(data=st.data())
def test_random_index_lists(target, data):
    tv, cols = target
    n = len(tv)
    lst = data.draw(st.lists(st.integers(-n, n - 1), max_size=300))
    assert_same(tv[lst], expected(cols, lst))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_every_index_dtype(target, dtype):
    tv, cols = target
    n = len(tv)
    dt = np.dtype(dtype)
    hi = min(n - 1, np.iinfo(dt).max)
    vals = [0, hi, 3, 3, 3, hi // 2]
    if dt.kind == "i":
        vals += [-1, -min(n, -np.iinfo(dt).min)]
    idx = np.array(vals, dtype=dt)
    assert_same(tv[idx], expected(cols, idx))


def test_index_array_layouts(target):
    tv, cols = target
    base = np.arange(60, dtype=np.int64).reshape(6, 10) * 3 % len(tv)
    for idx in [base[::-1], base[:, ::2], base.T, np.asfortranarray(base), base.astype(">i4"),
                base[::2, ::-3], np.broadcast_to(np.array([1, 2]), (3, 2))]:
        assert_same(tv[idx], expected(cols, idx))


def test_index_repeats_empty_and_shapes(target):
    tv, cols = target
    for idx in [np.array([], dtype=np.int64), np.array([], dtype=np.uint8), [], [[]],
                np.zeros((0, 3), dtype=np.int32), np.zeros((2, 0), dtype=np.int32),
                np.full(1000, -1), np.array([[0, 1], [1, 0]]), [[1, 2, 3], [4, 5, 6]],
                np.array([[[5]]]), np.arange(len(tv))[::-1]]:
        key = np.asarray(idx, dtype=np.int64) if isinstance(idx, list) else idx
        assert_same(tv[idx], expected(cols, key))


def test_uint64_indexes(target):
    tv, cols = target
    idx = np.array([0, 5, len(tv) - 1], dtype=np.uint64)
    assert_same(tv[idx], expected(cols, idx))
    for bad in ([len(tv)], [2 ** 63], [2 ** 64 - 1], [1, 2 ** 63 + 7]):
        with pytest.raises(IndexError):
            tv[np.array(bad, dtype=np.uint64)]


def test_index_out_of_range(target):
    tv, _ = target
    n = len(tv)
    for bad in [[n], [0, -n - 1], [1, 2, 3, n + 100], np.array([[0], [n]]),
                np.array([np.iinfo(np.int64).min]), [2 ** 62]]:
        with pytest.raises(IndexError):
            tv[bad]


# ---- bool masks ----

@HSET
@given(data=st.data())
def test_random_bool_masks(target, data):
    tv, cols = target
    mask = data.draw(hnp.arrays(np.bool_, len(tv)))
    assert_same(tv[mask], expected(cols, mask))


def test_bool_mask_forms(target):
    tv, cols = target
    n = len(tv)
    for mask in [np.zeros(n, bool), np.ones(n, bool), np.arange(n) % 3 == 0,
                 (np.arange(2 * n) % 2 == 0)[::2], np.arange(n)[::-1] < 10]:
        assert_same(tv[mask], expected(cols, mask))
    as_list = [bool(x) for x in np.arange(n) % 2 == 1]
    assert_same(tv[as_list], expected(cols, np.array(as_list)))


def test_bool_mask_wrong_length(target):
    tv, cols = target
    n = len(tv)
    for mask in [np.ones(n - 1, bool), np.ones(n + 1, bool),
                 [True] * (n + 3), np.ones((1, n), bool), np.ones((n, 1), bool)]:
        with pytest.raises(IndexError):
            np.asarray(cols["i"])[np.asarray(mask)]
        with pytest.raises(IndexError):
            tv[mask]
    # an empty bool array is no mask of the wrong length for NumPy: an empty index list
    empty = np.zeros(0, bool)
    assert_same(tv[empty], expected(cols, empty))


# ---- bad keys ----

@pytest.mark.parametrize("key", [1.0, np.float64(2.0), 1.5, "a", b"a", None, (1, 2), (1,),
                                 {1, 2}, {"a": 1}, 1j, object(), Ellipsis, True, np.True_,
                                 np.array([1.0, 2.0]), np.array([0.5]), [1.0, 2.0],
                                 np.array(["a"]), np.array([1 + 0j]), [0, 1.5],
                                 np.array([None, 1], dtype=object)],
                         ids=repr)
def test_bad_key_types(key):
    tv = TableView({"a": np.arange(10)})
    with pytest.raises(TypeError):
        tv[key]


def test_bad_key_types_on_composite_views(target):
    tv, _ = target
    for key in [2.0, "u", None, np.array([0.0])]:
        with pytest.raises(TypeError):
            tv[key]


# ---- string widths ----

def test_string_width_is_longest_in_result():
    words = ["a", "bbbb", "", "héllo😀", "cc", ""]
    tv = TableView({"u": np.array(words), "s": np.array([w.encode() for w in words]),
                    "o": np.array(words, dtype=object)})
    assert tv[0]["u"] == np.str_("a")
    assert tv[[0]]["u"].dtype == np.dtype("U1")
    assert tv[[2]]["u"].dtype == np.dtype("U1")  # empty string alone: width 1, as NumPy
    assert tv[[2, 5]]["s"].dtype == np.dtype("S1")
    assert tv[[0, 1]]["u"].dtype == np.dtype("U4")
    assert tv[3:4]["u"].dtype == np.dtype("U6")  # code points, not UTF-8 bytes
    assert tv[3:4]["s"].dtype == np.dtype(f"S{len('héllo😀'.encode())}")
    assert tv[:]["o"].dtype == np.dtype("U6")
    assert tv[[]]["u"].dtype == np.dtype("U1")
    for key in [slice(None), [4, 0], np.array([True, False, True, False, False, True])]:
        for col in ("u", "s", "o"):
            got = tv[key][col]
            vals = [words[i] for i in np.arange(6)[key]]
            if col == "s":
                vals = [w.encode() for w in vals]
            np.testing.assert_array_equal(got, np.array(vals), strict=True)


def test_string_row_shape_width_over_all_elements():
    arr = np.array([["a", "bcd"], ["", "e"], ["fghij", ""]])
    tv = TableView({"w": arr})
    assert tv[:]["w"].dtype == np.dtype("U5")
    assert tv[1]["w"].dtype == np.dtype("U1")
    assert tv[:2]["w"].dtype == np.dtype("U3")
    np.testing.assert_array_equal(tv[[2, 0]]["w"], np.array([["fghij", ""], ["a", "bcd"]]),
                                  strict=True)


def test_reads_return_fresh_writable_arrays():
    tv = TableView({"a": np.arange(10)})
    r1 = tv[2:5]["a"]
    r1[:] = -1
    np.testing.assert_array_equal(tv[2:5]["a"], np.array([2, 3, 4]), strict=True)
    assert r1.flags.writeable and r1.flags.owndata or r1.base is not None


def test_large_contiguous_and_gathered_reads_match_numpy():
    rng = np.random.default_rng(1)
    cols = {"x": rng.standard_normal((200_000, 16)).astype(np.float32),
            "y": np.arange(200_000, dtype=np.int16)}
    tv = TableView(cols)
    assert_same(tv[:], expected(cols, slice(None)))
    assert_same(tv[1000:150_000:7], expected(cols, slice(1000, 150_000, 7)))
    idx = rng.integers(-200_000, 200_000, 50_000)
    assert_same(tv[idx], expected(cols, idx))
    sh = tv.shuffle(3)
    perm = TableView({"p": np.arange(200_000)}).shuffle(3)[:]["p"]
    assert_same(sh[5000:9000], {k: v[perm[5000:9000]] for k, v in cols.items()})

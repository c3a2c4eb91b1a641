"""TableView construction (issue 3, items 5, 6 and 12): every dtype, row shapes, awkward input
layouts, memmaps, zero rows, properties, and bad input leaving nothing behind."""

import gc
import uuid

import numpy as np
import pytest

import infinidata
from conftest import (FIXED_DTYPES, assert_same, data_files, expected, normalize_strings, sample,
                      sys_stats)

TableView = infinidata.TableView

def strings(n, shape=(), seed=0, alphabet="abcxyzé😀 ", maxlen=12):
    rng = np.random.default_rng(seed)
    letters = list(alphabet)
    total = n * int(np.prod(shape))
    out = ["".join(rng.choice(letters, rng.integers(0, maxlen + 1))) for _ in range(total)]
    return out


def check_full_read(tv, cols):
    n = len(tv)
    assert n == len(next(iter(cols.values())))
    assert_same(tv[:], expected(cols, slice(None)))
    for i in (sorted({0, n // 2, n - 1, -1, -n}) if n else []):
        assert_same(tv[i], expected(cols, i))


# ---- every dtype ----

@pytest.mark.parametrize("dtype", FIXED_DTYPES)
@pytest.mark.parametrize("rowshape", [(), (3,), (2, 3)], ids=["scalar", "vec3", "mat2x3"])
def test_fixed_dtype_roundtrip(dtype, rowshape):
    n = 37
    cols = {"x": sample(dtype, (n,) + rowshape)}
    tv = TableView(cols)
    assert len(tv) == n
    assert tv.schema == {"x": (np.dtype(dtype), rowshape)}
    check_full_read(tv, cols)
    assert_same(tv[::-3], expected(cols, slice(None, None, -3)))
    idx = np.array([5, 0, -1, 5, 36])
    assert_same(tv[idx], expected(cols, idx))


def test_all_dtypes_in_one_table():
    n = 50
    cols = {f"c{i}_{d}": sample(d, (n,), seed=i) for i, d in enumerate(FIXED_DTYPES)}
    cols["u"] = np.array(strings(n), dtype="U")
    cols["s"] = np.array([s.encode() for s in strings(n, seed=1)], dtype="S")
    cols["ostr"] = np.array(strings(n, seed=2), dtype=object)
    cols["obytes"] = np.array([s.encode() for s in strings(n, seed=3)], dtype=object)
    cols["tstr"] = np.array(strings(n, seed=4), dtype=np.dtypes.StringDType())
    tv = TableView(cols)
    assert tv.column_names == list(cols)
    check_full_read(tv, cols)
    sch = tv.schema
    assert sch["u"] == (np.dtype("U"), ())
    assert sch["s"] == (np.dtype("S"), ())
    assert sch["ostr"] == (np.dtype("U"), ())
    assert sch["obytes"] == (np.dtype("S"), ())
    assert sch["tstr"] == (np.dtype("U"), ())


@pytest.mark.parametrize("kind", ["U", "S", "ostr", "obytes", "tstr"])
@pytest.mark.parametrize("rowshape", [(), (2,), (2, 3), (0,)], ids=["scalar", "vec2", "mat", "empty"])
def test_string_columns(kind, rowshape):
    n = 23
    words = strings(n, rowshape, seed=7)
    if kind in ("S", "obytes"):
        words = [w.encode("utf-8") for w in words]
    dtype = {"U": "U", "S": "S", "ostr": object, "obytes": object,
             "tstr": np.dtypes.StringDType()}[kind]
    flat = np.empty(len(words), dtype=object)
    flat[:] = words
    arr = flat.astype(dtype).reshape((n,) + rowshape)
    cols = {"w": arr}
    tv = TableView(cols)
    check_full_read(tv, cols)
    got = tv[:]["w"]
    if arr.size or kind != "obytes":  # an object array with no element cannot say it holds bytes
        assert got.dtype.kind == ("S" if kind in ("S", "obytes") else "U")


def test_strings_stored_compactly_read_back_at_longest_width():
    # One long string among many short ones: each read is as wide as its own longest string.
    words = ["a"] * 100 + ["x" * 5000] + ["bb"] * 100
    arr = np.array(words)
    tv = TableView({"w": arr})
    assert tv[:100]["w"].dtype == np.dtype("U1")
    assert tv[:]["w"].dtype == np.dtype("U5000")
    assert tv[101:]["w"].dtype == np.dtype("U2")
    np.testing.assert_array_equal(tv[:]["w"], arr, strict=True)


def test_unicode_beyond_bmp_and_empty_strings():
    words = ["", "😀", "é", "a😀b", "\u4e2d\u6587", ""]
    for arr in (np.array(words), np.array(words, dtype=object),
                np.array(words, dtype=np.dtypes.StringDType())):
        cols = {"w": arr}
        tv = TableView(cols)
        check_full_read(tv, cols)
        assert tv[0]["w"] == np.str_("")
        assert tv[0:1]["w"].dtype == np.dtype("U1")


def test_large_unicode_column_read_once_and_encoded_on_threads():
    # Over 8 MB of NumPy unicode (elements of 16+ code points) is an open column: read once,
    # encoded on threads in parts, its size found as it goes. The strings read back are
    # NumPy's, for ASCII columns and for mixed ones, several 32 MB chunks long.
    rng = np.random.default_rng(5)
    n, width = 300_000, 40  # 48 MB of UCS4: two construction chunks, many shares
    lens = rng.integers(0, width + 1, n)
    base = np.array(["".join(chr(97 + (i * 7 + k) % 26) for k in range(width)) for i in range(64)])
    for mixed in (False, True):
        arr = base[np.arange(n) % 64].astype(f"U{width}")
        arr = np.array([a[:k] for a, k in zip(arr.tolist(), lens.tolist())], dtype=f"U{width}")
        if mixed:
            arr[::97] = np.char.add("é", arr[::97])[:].astype(f"U{width}")
            arr[5::1001] = "😀" * (width // 2)
        tv = TableView({"t": arr})
        got = tv[:]["t"]
        want = arr.astype(f"U{max(1, int(np.char.str_len(arr).max()))}")
        np.testing.assert_array_equal(got, want, strict=True)


def _big_text(n, width, seed):
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghij é😀\u0000"))
    codes = alphabet[rng.integers(0, len(alphabet), (n, width))]
    lens = rng.integers(0, width + 1, n)
    codes[np.arange(width)[None, :] >= lens[:, None]] = ""
    return np.array(["".join(r) for r in codes[:2000].tolist()], dtype=f"U{width}")[np.arange(n) % 2000]


def test_several_large_unicode_columns_beside_others_save_and_verify(tmp_path):
    # Open columns are laid out one after another behind the columns of known size; the
    # image's checksum (hashed as the bytes go) must hold when a verified load reads it all.
    cols = {"a": _big_text(70_000, 40, 1), "b": _big_text(70_000, 50, 2),
            "m": np.arange(70_000, dtype=np.float32), "o": np.array(["x", "yé"] * 35_000, dtype=object),
            "s": np.array([b"q", b"r\xff"] * 35_000)}
    tv = TableView(cols)
    check_full_read(tv, cols)
    tv.save_to_disk(str(tmp_path), "t")
    back = TableView.load_from_disk(str(tmp_path), "t", verify=True)
    check_full_read(back, cols)


def test_large_unicode_in_other_byte_order_and_strided():
    a = _big_text(100_000, 30, 3)
    for arr in (a.astype(">U30"), np.stack([a, a[::-1]], axis=1)[:, 1]):
        cols = {"t": arr}
        check_full_read(TableView(cols), cols)


def test_large_unicode_beyond_u1fffff_is_measured_and_built_again():
    # NumPy unicode may hold any 32-bit value; past U+1FFFFF a code point takes 5-7 bytes,
    # more than the open column's bound (the input's size): the column is measured and the
    # table built again, with the same result and nothing left behind.
    raw = np.full((80_000, 32), 0x7FFFFFFF, dtype=np.uint32)  # 7 bytes each
    raw[::3] = ord("q")
    raw[1::5, 31] = 0x3FFFFFF
    arr = raw.view("U32").reshape(-1)
    assert (raw >= 0x200000).sum() * 7 > raw.size * 4  # more than the bound: built twice
    files = data_files()
    tv = TableView({"t": arr, "i": np.arange(80_000)})
    got = tv[:]["t"]
    assert got.dtype == np.dtype("U32")
    np.testing.assert_array_equal(got.view(np.uint32).reshape(-1, 32), raw)
    del tv, got
    gc.collect()
    assert data_files() == files


def test_trailing_nul_padding_is_not_part_of_a_string():
    # NumPy treats trailing NULs as padding; they are not stored.
    u = np.array(["ab", "c", ""], dtype="U6")
    s = np.array([b"ab\0", b"c", b""], dtype="S6")
    cols = {"u": u, "s": s}
    tv = TableView(cols)
    assert_same(tv[:], expected(cols, slice(None)))
    assert tv[:]["u"].dtype == np.dtype("U2")
    assert tv[:]["s"].dtype == np.dtype("S2")


def test_object_strings_with_nul_characters():
    # Python str/bytes objects may end in NUL characters; as U/S they read back without them
    # (as np.array would give), and inner NULs are kept.
    cols = {"o": np.array(["a\0b", "c\0", "\0", "d"], dtype=object),
            "b": np.array([b"a\0b", b"c\0", b"\0", b"d"], dtype=object)}
    tv = TableView(cols)
    assert_same(tv[:], expected(cols, slice(None)))


@pytest.mark.parametrize("rowshape", [(0,), (3, 0), (0, 2), (1, 1, 1)])
@pytest.mark.parametrize("dtype", ["float64", "int8", "M8[ms]", "U", "S"])
def test_degenerate_row_shapes(rowshape, dtype):
    n = 12
    if dtype in ("U", "S"):
        arr = np.array(strings(n, rowshape, seed=2), dtype="U").reshape((n,) + rowshape)
        arr = arr if dtype == "U" else np.char.encode(arr, "utf-8")
    else:
        arr = sample(dtype, (n,) + rowshape)
    cols = {"d": arr, "x": np.arange(n)}
    tv = TableView(cols)
    assert tv.schema["d"][1] == rowshape
    check_full_read(tv, cols)
    assert_same(tv[[0, -1, 5]], expected(cols, [0, -1, 5]))
    assert_same(tv[::-5], expected(cols, slice(None, None, -5)))


# ---- input layouts ----

def _layouts():
    base = np.arange(120, dtype=np.int32).reshape(40, 3) * 7 - 100
    f8 = np.linspace(-1, 1, 40 * 6).reshape(40, 6)
    return {
        "strided_rows": np.arange(200, dtype=np.int64)[::5],
        "strided_2d": base[::2],
        "fortran_2d": np.asfortranarray(base),
        "fortran_3d": np.asfortranarray(f8.reshape(40, 2, 3)),
        "negative_stride": base[::-1],
        "negative_inner_stride": base[:, ::-1],
        "transposed": np.arange(120, dtype=np.float32).reshape(3, 40).T,
        "column_of_2d": np.arange(400, dtype=np.int16).reshape(40, 10)[:, 3],
        "big_endian_i4": base.astype(">i4"),
        "big_endian_f8": f8.astype(">f8"),
        "big_endian_c16": (f8 + 1j).astype(">c16"),
        "big_endian_M8": np.arange(40).astype(">M8[ns]"),
        "big_endian_U": np.array(strings(40, seed=3), dtype=">U12"),
        "big_endian_strided": f8.astype(">f4")[::-1, ::2],
        "unaligned": np.frombuffer(b"\0" + np.arange(40, dtype="<i8").tobytes(), dtype="<i8",
                                   offset=1),
        "U_strided": np.array(strings(80, seed=4))[::-2],
        "S_fortran": np.asfortranarray(np.array([s.encode() for s in strings(80, seed=5)],
                                                dtype="S").reshape(40, 2)),
        "broadcast_zero_stride": np.broadcast_to(np.arange(3.0), (40, 3)),
    }


@pytest.mark.parametrize("name", list(_layouts()))
def test_awkward_input_layouts(name):
    arr = _layouts()[name]
    cols = {"x": arr}
    tv = TableView(cols)
    check_full_read(tv, cols)
    got = tv[:]["x"]
    assert got.dtype.isnative or got.dtype.itemsize == 1 or got.dtype.kind == "S"
    assert got.flags.c_contiguous


def test_byte_swapped_values_are_native():
    a = np.array([1, 256, -2], dtype=">i4")
    tv = TableView({"a": a})
    got = tv[:]["a"]
    assert got.dtype == np.dtype("=i4")
    assert got.tolist() == [1, 256, -2]
    assert tv.schema["a"][0] == np.dtype("=i4")


def test_list_input_and_table_of_many_columns():
    cols = {f"k{i}": np.arange(10) * i for i in range(100)}
    tv = TableView(cols)
    assert tv.column_names == [f"k{i}" for i in range(100)]
    assert_same(tv[3:7], expected(cols, slice(3, 7)))
    tv2 = TableView({"l": [1, 2, 3]})
    np.testing.assert_array_equal(tv2[:]["l"], np.array([1, 2, 3]), strict=True)


def test_source_changes_after_construction_do_not_show():
    a = np.arange(10)
    tv = TableView({"a": a})
    a[:] = -1
    np.testing.assert_array_equal(tv[:]["a"], np.arange(10), strict=True)


def test_memmap_input(tmp_path):
    path = tmp_path / "mm.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(5000, 8))
    mm[:] = np.arange(40000, dtype=np.float32).reshape(5000, 8)
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=(5000, 8))
    tv = TableView({"m": ro, "col": ro[:, 1]})
    assert len(tv) == 5000
    assert_same(tv[:], {"m": np.asarray(ro), "col": np.asarray(ro[:, 1])})
    assert_same(tv[4000:4010], {"m": np.asarray(ro[4000:4010]), "col": np.asarray(ro[4000:4010, 1])})
    assert type(tv[:]["m"]) is np.ndarray
    tv2 = TableView({"rev": ro[::-3]})
    assert_same(tv2[:], {"rev": np.asarray(ro[::-3])})
    del ro, mm


def test_memmap_columns_of_different_lengths_are_rejected(tmp_path):
    path = tmp_path / "mm.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(100, 2))
    with pytest.raises(ValueError):
        TableView({"m": mm, "half": mm[::2, 0]})


# ---- zero rows ----

@pytest.mark.parametrize("dtype", ["int8", "float64", "complex128", "M8[s]", "bool", "U", "S",
                                   "object", "StringDType"])
@pytest.mark.parametrize("rowshape", [(), (4,), (2, 0)], ids=["scalar", "vec", "empty"])
def test_zero_rows(dtype, rowshape):
    dt = np.dtypes.StringDType() if dtype == "StringDType" else (
        np.dtype("U3") if dtype == "U" else np.dtype("S3") if dtype == "S" else np.dtype(dtype))
    arr = np.empty((0,) + rowshape, dtype=dt)
    cols = {"z": arr}
    tv = TableView(cols)
    assert len(tv) == 0
    assert_same(tv[:], expected(cols, slice(None)))
    assert_same(tv[5:1:-1], expected(cols, slice(5, 1, -1)))
    empty_idx = np.array([], dtype=np.int64)
    assert_same(tv[empty_idx], expected(cols, empty_idx))
    assert_same(tv[np.zeros(0, dtype=bool)], expected(cols, np.zeros(0, dtype=bool)))
    with pytest.raises(IndexError):
        tv[0]
    assert "0 rows" in repr(tv)


# ---- properties ----

def test_len_uuid_names_schema_repr():
    cols = {"b": np.zeros((5, 2, 3), dtype=np.float32), "a": np.array(["x"] * 5),
            "c": np.zeros(5, dtype=np.uint8)}
    tv = TableView(cols)
    assert len(tv) == 5
    u = tv.uuid()
    assert isinstance(u, str)
    assert uuid.UUID(u).version == 4
    assert str(uuid.UUID(u)) == u
    assert tv.uuid() == u  # stable for a view
    assert tv.column_names == ["b", "a", "c"]
    assert tv.schema == {"b": (np.dtype(np.float32), (2, 3)), "a": (np.dtype("U"), ()),
                         "c": (np.dtype(np.uint8), ())}
    r = repr(tv)
    assert "5 rows" in r and "3 columns" in r
    for name in cols:
        assert name in r


def test_uuids_are_distinct_for_every_view():
    tv = TableView({"a": np.arange(10)})
    ids = {tv.uuid()}
    for view in [tv.new_view(slice(None)), tv.new_view(slice(None)), tv.shuffle(1), tv.shuffle(1),
                 tv.select_columns(["a"]), TableView.concat([tv]), TableView({"a": np.arange(10)})]:
        ids.add(view.uuid())
    assert len(ids) == 8


def test_tableview_is_not_a_copy_of_its_argument_dict():
    cols = {"a": np.arange(4)}
    tv = TableView(cols)
    cols["b"] = np.arange(4)
    del cols["a"]
    assert tv.column_names == ["a"]


# ---- bad input ----

BAD_INPUTS = {
    "empty_dict": ({}, ValueError),
    "not_a_dict": ([("a", np.arange(3))], TypeError),
    "int_key": ({1: np.arange(3)}, TypeError),
    "bytes_key": ({b"a": np.arange(3)}, TypeError),
    "lengths_differ": ({"a": np.arange(3), "b": np.arange(4)}, ValueError),
    "zero_d": ({"a": np.array(5)}, ValueError),
    "zero_d_second": ({"a": np.arange(1), "b": np.array(5)}, ValueError),
    "object_ints": ({"a": np.array([1, 2], dtype=object)}, TypeError),
    "object_none_first": ({"a": np.array([None, "x"], dtype=object)}, TypeError),
    "object_str_then_int": ({"a": np.array(["x", 1], dtype=object)}, TypeError),
    "object_str_then_bytes": ({"a": np.array(["x", b"y"], dtype=object)}, TypeError),
    "object_bytes_then_str": ({"a": np.array([b"x", "y"], dtype=object)}, TypeError),
    "object_2d_mixed": ({"a": np.array([["x", "y"], ["z", None]], dtype=object)}, TypeError),
    "structured": ({"a": np.zeros(3, dtype=[("f", "i4"), ("g", "f8")])}, TypeError),
    "void": ({"a": np.zeros(3, dtype="V8")}, TypeError),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_and_leaves_nothing(name):
    arg, exc = BAD_INPUTS[name]
    before_files = data_files()
    before = sys_stats()
    with pytest.raises(exc):
        TableView(arg)
    after = sys_stats()
    assert data_files() == before_files
    for k in ("allocs", "maps", "fds", "blobs", "file_blobs"):
        assert after[k] == before[k], (k, before, after)


@pytest.mark.parametrize("bad", ["object_ints", "object_str_then_bytes", "structured", "zero_d"])
def test_bad_column_next_to_large_good_column_leaves_no_file(bad):
    bad_arr = BAD_INPUTS[bad][0]["a"]
    n = 1 if bad_arr.ndim == 0 else len(bad_arr)
    good = np.ones((n, 300_000), dtype=np.float64)  # > 1 MiB per table: its own blob file
    before_files = data_files()
    before = sys_stats()
    for cols in ({"good": good, "bad": bad_arr}, {"bad": bad_arr, "good": good}):
        with pytest.raises((TypeError, ValueError)):
            TableView(cols)
    after = sys_stats()
    assert data_files() == before_files
    for k in ("allocs", "maps", "fds", "blobs", "file_blobs"):
        assert after[k] == before[k], (k, before, after)


def test_lengths_differ_message_names_the_columns():
    with pytest.raises(ValueError) as ei:
        TableView({"first": np.arange(3), "second": np.arange(5)})
    msg = str(ei.value)
    assert "first" in msg and "second" in msg


def test_bad_input_object_message_names_the_column():
    with pytest.raises(TypeError) as ei:
        TableView({"ok": np.arange(2), "weird": np.array([1.5, 2.5], dtype=object)})
    assert "weird" in str(ei.value)


def test_failed_construction_then_good_one():
    with pytest.raises(TypeError):
        TableView({"a": np.array(["x", 3], dtype=object)})
    gc.collect()
    cols = {"a": np.array(["x", "y"], dtype=object)}
    assert_same(TableView(cols)[:], expected(cols, slice(None)))
    assert normalize_strings(cols["a"]).dtype == np.dtype("U1")

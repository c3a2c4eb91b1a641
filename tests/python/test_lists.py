"""The list column kind: rows that are 1-D arrays of varying length (token ids).

The model is a Python list of 1-D NumPy arrays: every read, view operation, batch and round
trip is compared with it, dtypes strictly. Ragged (the multi-row result) is checked against
plain NumPy slicing of its values."""

import os
import pickle
import struct

import numpy as np
import pytest

import infinidata
from infinidata import CorruptDataError, Ragged, TableView

LIST_DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "e", "f", "d", "F", "D"]


def rows_of(n, dtype="i4", seed=0, maxlen=7):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, maxlen + 1, n)
    return [(rng.integers(-50, 50, k) if np.dtype(dtype).kind in "if" else rng.integers(0, 2, k))
            .astype(dtype) for k in lens]


def same_row(got, want):
    assert isinstance(got, np.ndarray) and got.ndim == 1
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want, strict=True)


def same_rows(r, want):
    assert isinstance(r, Ragged)
    assert len(r) == len(want)
    assert r.offsets.dtype == np.int64 and r.offsets.shape == (len(want) + 1,)
    for i, w in enumerate(want):
        same_row(r[i], w)


@pytest.fixture
def table():
    rows = rows_of(50, seed=1)
    rows[3] = np.zeros(0, np.int32)
    tv = TableView({"tok": rows, "x": np.arange(50)})
    return tv, rows


# ---- construction and schema ----

@pytest.mark.parametrize("dt", LIST_DTYPES)
def test_every_value_dtype_round_trips(dt):
    rows = rows_of(9, dt, seed=2)
    rows[0] = rows[0][:0]
    tv = TableView({"l": rows})
    assert tv.schema == {"l": (np.dtype(dt), "list")}
    for i in range(9):
        same_row(tv[i]["l"], rows[i])
    same_rows(tv[:]["l"], rows)


def test_constructions_agree():
    rows = rows_of(20, seed=3)
    obj = np.empty(20, dtype=object)
    obj[:] = rows
    rag = Ragged.from_arrays(rows)
    shifted = Ragged(np.r_[np.int32(99), rag.values].astype(np.int32), rag.offsets + 1)  # offsets from 1
    for src in (rows, tuple(rows), obj, rag, shifted):
        tv = TableView({"l": src})
        assert tv.schema["l"] == (np.dtype("int32"), "list")
        same_rows(tv[:]["l"], rows)


def test_ragged_inputs_non_native_and_strided():
    vals = np.arange(40, dtype=">i8")[::2]            # byte-swapped and strided
    tv = TableView({"l": Ragged(vals, [0, 3, 3, 20])})
    assert tv.schema["l"] == (np.dtype("int64"), "list")
    same_row(tv[0]["l"], np.array([0, 2, 4], dtype=np.int64))
    same_row(tv[2]["l"], np.arange(6, 40, 2, dtype=np.int64))


def test_equal_lengths_make_a_fixed_column_as_numpy_does():
    rows = [np.arange(3, dtype=np.int16)] * 4
    tv = TableView({"a": rows})
    assert tv.schema["a"] == (np.dtype("int16"), (3,))
    obj = np.empty(4, dtype=object)
    obj[:] = rows
    assert TableView({"a": obj}).schema["a"] == (np.dtype("int16"), "list")  # an object array: lists


def test_zero_rows_and_all_empty_rows():
    tv = TableView({"l": Ragged(np.zeros(0, np.float32), [0])})
    assert len(tv) == 0 and tv.schema["l"] == (np.dtype("float32"), "list")
    same_rows(tv[:]["l"], [])
    e = TableView({"l": [np.zeros(0, np.uint8), np.zeros(0, np.uint8)] + [np.ones(1, np.uint8)]})
    same_rows(e[:2]["l"], [np.zeros(0, np.uint8)] * 2)
    assert e[:2]["l"].values.shape == (0,)


def test_values_dtype_follows_concatenate():
    rows = [np.arange(2, dtype=np.int8), np.arange(3, dtype=np.int32)]
    tv = TableView({"l": rows})
    assert tv.schema["l"][0] == np.concatenate(rows).dtype


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.arange(3).astype("M8[s]"),
                                 np.arange(2, dtype=np.longdouble)])
def test_refused_value_dtypes(bad):
    with pytest.raises(TypeError, match="bool, integers"):
        TableView({"l": [bad, bad[:1]]})


def test_bad_list_inputs():
    with pytest.raises(TypeError, match="row 1"):
        TableView({"l": np.array([np.arange(2), 5, np.arange(1)], dtype=object)})
    with pytest.raises(TypeError, match="row 1 .*2 dimensions"):
        TableView({"l": [np.arange(2), np.zeros((2, 2)), np.arange(3)]})
    with pytest.raises(ValueError, match="columns differ in length"):
        TableView({"l": [np.arange(2), np.arange(3)], "x": np.arange(3)})
    with pytest.raises(ValueError, match="non-decreasing"):
        Ragged(np.arange(5), [0, 3, 2])
    with pytest.raises(ValueError, match="past the 5 values"):
        Ragged(np.arange(5), [0, 6])
    with pytest.raises(ValueError, match="negative"):
        Ragged(np.arange(5), [-1, 2])
    with pytest.raises(TypeError, match="integers"):
        Ragged(np.arange(5), [0.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        Ragged(np.zeros((2, 2)), [0, 1])


def test_ragged_arrays_changed_after_construction_are_checked_again():
    r = Ragged(np.arange(6, dtype=np.int32), np.array([0, 2, 6]))
    r.offsets[1] = 9  # the user's array, changed behind the Ragged's back
    with pytest.raises(ValueError, match="out of order or past 6"):
        TableView({"l": r})


def test_schema_repr_and_writer_schema():
    tv = TableView({"l": rows_of(3), "x": np.arange(3)})
    assert repr(tv) == "<TableView 3 rows x 2 columns {l: list<int32>, x: int64}>"
    w = infinidata.TableWriter(tv.schema)
    w.append({"l": rows_of(4, seed=9), "x": np.arange(4)})
    with pytest.raises(ValueError, match="list of int32.*list of int64|list of int64.*list of int32"):
        w.append({"l": [np.arange(2), np.arange(3)], "x": np.arange(2)})
    out = w.finish()
    same_rows(out[:]["l"], rows_of(4, seed=9))


# ---- reads against the model ----

def test_reads_match_the_model(table):
    tv, rows = table
    for i in (0, 3, 49, -1, -50):
        same_row(tv[i]["tok"], rows[i])
    for sl in (slice(None), slice(5, 20), slice(None, None, -1), slice(3, 40, 7), slice(10, 10),
               slice(45, 5, -4)):
        same_rows(tv[sl]["tok"], rows[sl])
    idx = np.array([3, -1, 0, 3, 17], dtype=np.int16)
    same_rows(tv[idx]["tok"], [rows[i] for i in idx])
    same_rows(tv[[2, 2]]["tok"], [rows[2]] * 2)
    mask = np.arange(50) % 3 == 0
    same_rows(tv[mask]["tok"], [r for r, m in zip(rows, mask) if m])
    np.testing.assert_array_equal(tv[mask]["x"], np.arange(50)[mask], strict=True)


def test_multi_dim_index_is_refused_for_lists(table):
    tv, _ = table
    with pytest.raises(IndexError, match="1-D index"):
        tv[np.zeros((2, 2), dtype=np.int64)]
    assert tv.select_columns(["x"])[np.zeros((2, 2), dtype=np.int64)]["x"].shape == (2, 2)


def test_large_reads(table):
    rows = rows_of(3000, seed=5)
    tv = TableView({"t": rows, "i": np.arange(3000)})
    same_rows(tv[:]["t"], rows)  # > 64 rows: gathered with the GIL released
    s = tv.shuffle(seed=2)[:]
    same_rows(s["t"], [rows[i] for i in s["i"]])


# ---- the Ragged type ----

def test_ragged_api():
    r = Ragged(np.arange(10, dtype=np.int16), np.array([0, 3, 3, 7, 10]))
    assert len(r) == 4 and r.dtype == np.int16
    np.testing.assert_array_equal(r.lengths, np.array([3, 0, 4, 3]), strict=True)
    assert r.tolist() == [[0, 1, 2], [], [3, 4, 5, 6], [7, 8, 9]]
    same_row(r[-1], np.arange(7, 10, dtype=np.int16))
    assert r[2].base is not None  # a view of values
    assert r[1:3].tolist() == [[], [3, 4, 5, 6]]
    assert r[::-2].tolist() == [[7, 8, 9], []]
    assert r[np.array([3, 0, 0])].tolist() == [[7, 8, 9], [0, 1, 2], [0, 1, 2]]
    assert r[np.array([True, False, False, True])].tolist() == [[0, 1, 2], [7, 8, 9]]
    assert r[[]].tolist() == []
    with pytest.raises(IndexError):
        r[4]
    with pytest.raises(IndexError):
        r[np.array([True])]
    with pytest.raises(IndexError):
        r[np.array([-5])]
    with pytest.raises(TypeError):
        r[1.0]
    with pytest.raises(TypeError):
        r[0, 1]
    assert pickle.loads(pickle.dumps(r)) == r
    assert r == Ragged.from_arrays([np.arange(3), np.arange(0), np.arange(3, 7), np.arange(7, 10)],
                                   dtype=np.int16)
    assert r.tolist() == [list(x) for x in r]


def test_to_padded_matches_a_loop():
    r = Ragged.from_arrays([np.arange(k, dtype=np.float32) + 1 for k in (3, 0, 5, 1)])
    for length in (None, 0, 2, 5, 9):
        arr, lens = r.to_padded(pad_value=-1, length=length)
        L = 5 if length is None else length
        want = np.full((4, L), -1, dtype=np.float32)
        for i in range(4):
            k = min(len(r[i]), L)
            want[i, :k] = r[i][:k]
        np.testing.assert_array_equal(arr, want, strict=True)
        np.testing.assert_array_equal(lens, np.minimum(r.lengths, L), strict=True)
    assert Ragged(np.zeros(0, np.int8), [0]).to_padded()[0].shape == (0, 0)
    with pytest.raises(ValueError):
        r.to_padded(length=-1)
    with pytest.raises(TypeError):
        r.to_padded(length=2.0)


# ---- views, persistence, pickling ----

def test_view_operations_match_the_model(table):
    tv, rows = table
    s = tv.shuffle(seed=7)
    order = s[:]["x"]
    same_rows(s[:]["tok"], [rows[i] for i in order])
    same_rows(s[5:9]["tok"], [rows[i] for i in order[5:9]])
    t = tv.new_view(np.array([49, 0, 0, 10]))
    same_rows(t[:]["tok"], [rows[i] for i in (49, 0, 0, 10)])
    f = tv.filter(np.arange(50) % 4 == 1)
    same_rows(f[:]["tok"], rows[1::4])
    c = TableView.concat([tv, s, t])
    same_rows(c[:]["tok"], rows + [rows[i] for i in order] + [rows[i] for i in (49, 0, 0, 10)])
    sel = tv.select_columns(["tok"])
    assert sel.column_names == ["tok"]
    same_rows(sel[::5]["tok"], rows[::5])
    fl = c.flatten(threads=3)
    same_rows(fl[:]["tok"], [c[i]["tok"] for i in range(len(c))])
    assert len(fl) == 104
    same_rows(tv.column("tok"), rows)


def test_concat_needs_matching_value_dtypes():
    a = TableView({"l": [np.arange(2, dtype=np.int32), np.arange(1, dtype=np.int32)]})
    b = TableView({"l": [np.arange(2, dtype=np.int64), np.arange(1, dtype=np.int64)]})
    f = TableView({"l": np.arange(4, dtype=np.int32)})
    with pytest.raises(ValueError, match=r"column 'l' differs: view 0 has lists of <i4 values, view 1 has lists of <i8"):
        TableView.concat([a, b])
    with pytest.raises(ValueError, match="lists of <i4 values, view 1 has fixed <i4"):
        TableView.concat([a, f])


def test_sort_and_string_ops_refuse_list_columns(table):
    tv, _ = table
    with pytest.raises(TypeError, match="list column"):
        tv.sort("tok")
    with pytest.raises(TypeError, match="lists of <i4, not strings"):
        tv.remove_matching_strings("tok", ["a"])


def test_save_load_and_pickle(table, tmp_path):
    tv, rows = table
    v = TableView.concat([tv.shuffle(seed=3), tv.new_view(slice(2, 9))])
    want = [v[i]["tok"] for i in range(len(v))]
    d = str(tmp_path / "saved")
    v.save_to_disk(d, "v")
    for verify in (True, False):
        got = TableView.load_from_disk(d, "v", verify=verify)
        assert got.schema == v.schema
        same_rows(got[:]["tok"], want)
    p = pickle.loads(pickle.dumps(v))
    same_rows(p[:]["tok"], want)


def test_writer_and_from_batches():
    parts = [rows_of(k, seed=k) for k in (5, 0, 7)]
    out = TableView.from_batches({"l": Ragged.from_arrays(p, dtype=np.int32)} for p in parts if p)
    same_rows(out[:]["l"], [r for p in parts for r in p])
    w = infinidata.TableWriter()
    for k in range(6):
        w.append({"l": rows_of(3, seed=10 + k)})
    same_rows(w.finish()[:]["l"], [r for k in range(6) for r in rows_of(3, seed=10 + k)])


# ---- batches ----

@pytest.mark.parametrize("threads,readahead", [(1, 0), (3, 4)])
def test_batches_are_ragged_slices(table, threads, readahead):
    tv, rows = table
    s = tv.shuffle(seed=11)
    order = s[:]["x"]
    got = list(s.batch_iter(8, threads=threads, readahead=readahead))
    assert len(got) == 7
    for k, b in enumerate(got):
        assert list(b) == ["tok", "x"]
        same_rows(b["tok"], [rows[i] for i in order[8 * k:8 * k + 8]])
        np.testing.assert_array_equal(b["x"], order[8 * k:8 * k + 8], strict=True)


@pytest.mark.parametrize("threads", [1, 3])
def test_padded_batches(table, threads):
    tv, rows = table
    s = tv.shuffle(seed=12)
    order = s[:]["x"]
    for length in (0, 4, 10):
        for k, b in enumerate(s.batch_iter(16, threads=threads, pad={"tok": (-7, length)})):
            assert list(b) == ["tok", "tok_lengths", "x"]
            want, wl = Ragged.from_arrays([rows[i] for i in order[16 * k:16 * k + 16]], dtype=np.int32) \
                .to_padded(-7, length)
            np.testing.assert_array_equal(b["tok"], want, strict=True)
            np.testing.assert_array_equal(b["tok_lengths"], wl, strict=True)


def test_pad_errors(table):
    tv, _ = table
    with pytest.raises(KeyError, match="nope"):
        tv.batch_iter(4, pad={"nope": (0, 3)})
    with pytest.raises(TypeError, match="only list columns"):
        tv.batch_iter(4, pad={"x": (0, 3)})
    with pytest.raises(TypeError, match="tuple"):
        tv.batch_iter(4, pad={"tok": 3})
    with pytest.raises(TypeError, match="length must be an int"):
        tv.batch_iter(4, pad={"tok": (0, 2.5)})
    with pytest.raises(ValueError, match="out of range"):
        tv.batch_iter(4, pad={"tok": (0, -1)})
    with pytest.raises(TypeError, match="dict"):
        tv.batch_iter(4, pad=[("tok", 0, 3)])
    u = TableView({"tok": [np.arange(2, dtype=np.uint8), np.arange(3, dtype=np.uint8)]})
    with pytest.raises(OverflowError):
        u.batch_iter(1, pad={"tok": (-1, 3)})
    clash = TableView({"tok": rows_of(3), "tok_lengths": np.arange(3)})
    with pytest.raises(ValueError, match="would replace the column"):
        clash.batch_iter(1, pad={"tok": (0, 3)})


def test_batch_iter_concat_pads(table):
    tv, rows = table
    bs = list(TableView.batch_iter_concat([tv, tv], 40, pad={"tok": (0, 3)}))
    allrows = rows + rows
    want, wl = Ragged.from_arrays(allrows, dtype=np.int32).to_padded(0, 3)
    np.testing.assert_array_equal(np.concatenate([b["tok"] for b in bs]), want, strict=True)
    np.testing.assert_array_equal(np.concatenate([b["tok_lengths"] for b in bs]), wl, strict=True)


# ---- adversarial loads ----

def _store_file(d):
    return [os.path.join(d, f) for f in os.listdir(d) if f.startswith("s-")][0]


def _list_layout(raw):
    from test_format import read_store
    h = read_store(raw)
    return h, [c for c in h["cols"] if c["kind"] == 3][0]


def _forge(path, at, fmt, value):
    from test_persist import fix_store_header
    raw = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, raw, at, value)
    open(path, "wb").write(fix_store_header(bytes(raw)))


@pytest.fixture
def saved_lists(tmp_path):
    tv = TableView({"l": [np.arange(k, dtype=np.int32) for k in (2, 0, 5, 1)]})
    d = str(tmp_path / "d")
    tv.save_to_disk(d, "v")
    return d


@pytest.mark.parametrize("case", ["descending", "past_end", "first_not_zero", "partial_value", "kind_dtype",
                                  "row_shape"])
def test_forged_list_stores_are_refused(saved_lists, case):
    sp = _store_file(saved_lists)
    raw = open(sp, "rb").read()
    h, c = _list_layout(raw)
    off = c["off_off"]
    if case == "descending":      # offsets 0, 2, 2, 7, 8 -> 0, 2, 1, 7, 8
        raw2 = bytearray(raw)
        struct.pack_into("<Q", raw2, off + 16, 1)
        open(sp, "wb").write(bytes(raw2))  # row data: only the content checksum would notice
        with pytest.raises(CorruptDataError, match="offset 1 is 2, above offset 2 .1."):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return
    if case == "past_end":
        raw2 = bytearray(raw)
        struct.pack_into("<Q", raw2, off + 32, 9)
        open(sp, "wb").write(bytes(raw2))
        with pytest.raises(CorruptDataError, match="offsets run from 0 to 9, expected 0 to the data length 8"):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return
    if case == "first_not_zero":
        raw2 = bytearray(raw)
        struct.pack_into("<Q", raw2, off, 1)
        open(sp, "wb").write(bytes(raw2))
        with pytest.raises(CorruptDataError, match="offsets run from 1"):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return
    if case == "partial_value":  # buf_len 32 -> 30: not a whole number of int32 values
        _forge(sp, c["tail_at"] + 8, "<Q", 30)
        with pytest.raises(CorruptDataError, match="not a whole number of 4-byte values"):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return
    if case == "kind_dtype":      # a list column whose values claim datetime64: not allowed
        at = raw.index(b"<i4", c["tail_at"] - 16 - 8)
        raw2 = bytearray(raw)
        raw2[at:at + 3] = b"<M8"
        open(sp, "wb").write(fix_store_header_bytes(bytes(raw2)))
        with pytest.raises(CorruptDataError, match="not one infinidata stores"):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return
    if case == "row_shape":      # ndim 1 for a list column
        hdr_col = 64  # the only column's description starts after the fixed header
        raw2 = bytearray(raw)
        assert struct.unpack_from("<I", raw2, hdr_col)[0] == 3
        struct.pack_into("<I", raw2, hdr_col + 4, 1)
        open(sp, "wb").write(fix_store_header_bytes(bytes(raw2)))
        with pytest.raises(CorruptDataError):
            TableView.load_from_disk(saved_lists, "v", verify=False)
        return


def fix_store_header_bytes(b):
    from test_persist import fix_store_header
    return fix_store_header(b)


def test_forged_list_in_manifest_is_refused(saved_lists):
    """The manifest's own column description: a list column with a row shape."""
    from test_persist import fix_manifest
    mp = os.path.join(saved_lists, "v.idtview")
    raw = bytearray(open(mp, "rb").read())
    at = raw.index(b"<i4")
    raw[at:at + 3] = b"<m8"
    open(mp, "wb").write(fix_manifest(bytes(raw)))
    with pytest.raises(CorruptDataError):
        TableView.load_from_disk(saved_lists, "v")


def test_old_format_version_is_named(saved_lists):
    assert infinidata.FORMAT_VERSION == 2


def test_dataset_operations_carry_list_columns(table):
    tv, rows = table
    f = tv.filter(lambda b: b["tok"].lengths > 2, batch_size=7)
    same_rows(f[:]["tok"], [r for r in rows if len(r) > 2])
    m = tv.map(lambda b: {"t": b["tok"][::-1], "n": b["tok"].lengths}, batch_size=8)
    assert m.schema == {"t": (np.dtype("int32"), "list"), "n": (np.dtype("int64"), ())}
    want = [r for k in range(0, 50, 8) for r in rows[k:k + 8][::-1]]
    same_rows(m[:]["t"], want)
    np.testing.assert_array_equal(m[:]["n"], np.array([len(r) for r in rows], np.int64), strict=True)
    m2 = tv.map(lambda b: {"t": list(b["tok"])}, batch_size=8, num_proc=2)  # a list of arrays
    same_rows(m2[:]["t"], rows)
    with pytest.raises(ValueError, match="3 rows in column 'bad'"):
        tv.map(lambda b: {"bad": b["tok"][:3]}, batch_size=8)
    same_rows(tv.shard(3, 1)[:]["tok"], rows[np.array_split(np.arange(50), 3)[1][0]:
                                            np.array_split(np.arange(50), 3)[1][-1] + 1])
    s = tv.train_test_split(10, seed=0)
    assert len(s.train) == 40 and s.train.schema == tv.schema
    same_rows(tv.sort("x", descending=True)[:]["tok"], rows[::-1])


def test_writer_list_column_takes_rows_of_equal_length():
    w = infinidata.TableWriter({"l": (np.int16, "list")})
    w.append({"l": [np.arange(3, dtype=np.int16), np.arange(1, dtype=np.int16)]})
    w.append({"l": np.arange(6, dtype=np.int16).reshape(2, 3)})     # equal lengths: still rows
    w.append({"l": [np.arange(2, dtype=np.int16)] * 2})
    out = w.finish()
    assert out.schema == {"l": (np.dtype("int16"), "list")}
    assert out[:]["l"].tolist() == [[0, 1, 2], [0], [0, 1, 2], [3, 4, 5], [0, 1], [0, 1]]
    w = infinidata.TableWriter({"l": (np.int16, "list")})
    with pytest.raises(ValueError, match="list of int16"):
        w.append({"l": np.arange(4, dtype=np.int16)})  # 1-D: a fixed column, not rows

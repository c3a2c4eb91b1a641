"""List columns in and out of Arrow, Parquet, pandas and Hugging Face datasets (issue 14):
list<T> / large_list<T> import to the list kind (nulls, fill_null, sliced and chunked
arrays, offsets not starting at 0), export as list<T>, against NumPy (Ragged) as the model
with strict dtypes. The type round trip Parquet -> TableView -> Parquet for list types is in
test_arrow.py (ROUND_TRIP)."""

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import infinidata  # noqa: E402

TableView = infinidata.TableView

if not hasattr(infinidata, "Ragged"):
    pytest.skip("list columns are not in this build yet", allow_module_level=True)
Ragged = infinidata.Ragged


def rows_model(n, dtype, seed=0):
    """n rows of 0..6 values of dtype (some empty) as a list of 1-D arrays."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 7))
        if np.dtype(dtype) == np.bool_:
            out.append(rng.random(k) < 0.5)
        elif np.dtype(dtype).kind == "f":
            out.append(rng.standard_normal(k).astype(dtype))
        else:
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, k, dtype=dtype, endpoint=True))
    return out


def as_ragged(rows, dtype):
    lens = np.array([len(r) for r in rows], dtype=np.int64)
    offs = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    vals = np.concatenate(rows).astype(dtype) if rows else np.empty(0, dtype)
    return Ragged(vals, offs)


def check_column(tv, name, rows, dtype):
    dtype = np.dtype(dtype)
    assert tv.schema[name] == (dtype, "list")
    got = tv[:][name]
    assert isinstance(got, Ragged) and got.dtype == dtype and len(got) == len(rows)
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(got[i], np.asarray(r, dtype), strict=True)


LIST_TYPES = [
    (pa.list_(pa.int32()), np.int32), (pa.large_list(pa.int64()), np.int64),
    (pa.list_(pa.uint8()), np.uint8), (pa.list_(pa.int16()), np.int16),
    (pa.list_(pa.uint64()), np.uint64), (pa.list_(pa.float16()), np.float16),
    (pa.list_(pa.float32()), np.float32), (pa.large_list(pa.float64()), np.float64),
    (pa.list_(pa.bool_()), np.bool_),
]


@pytest.mark.parametrize("typ,dtype", LIST_TYPES, ids=lambda x: str(x))
def test_list_import_matches_the_model(typ, dtype):
    rows = rows_model(40, dtype)
    arr = pa.array([r.tolist() for r in rows], typ)
    tv = TableView.from_arrow(pa.table({"l": arr, "i": np.arange(40)}))
    check_column(tv, "l", rows, dtype)
    np.testing.assert_array_equal(tv[:]["i"], np.arange(40), strict=True)
    # sliced arrays (offsets not starting at 0) and several chunks
    chunks = [arr.slice(3, 10), arr.slice(0, 0), arr.slice(20, 17)]
    tv = TableView.from_arrow(pa.table({"l": pa.chunked_array(chunks, typ)}))
    check_column(tv, "l", rows[3:13] + rows[20:37], dtype)


def test_list_import_groups_and_readers(monkeypatch):
    # many groups (each its own stored table) concatenated in order
    from infinidata import _arrow

    monkeypatch.setattr(_arrow, "GROUP_START", 64)
    monkeypatch.setattr(_arrow, "GROUP_BYTES", 256)
    rows = rows_model(500, np.int32, seed=3)
    t = pa.table({"l": pa.array([r.tolist() for r in rows], pa.list_(pa.int32()))})
    tv = TableView.from_arrow(pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=17)))
    check_column(tv, "l", rows, np.int32)


def test_list_import_of_dictionary_values():
    vals = pa.array([5, 7, 5, 9]).dictionary_encode()
    arr = pa.ListArray.from_arrays(pa.array([0, 2, 2, 4], pa.int32()), vals)
    tv = TableView.from_arrow(pa.table({"l": arr}))
    check_column(tv, "l", [np.array([5, 7]), np.array([], np.int64), np.array([5, 9])], np.int64)


def test_list_nulls_are_valueerror_with_count_unless_filled():
    typ = pa.list_(pa.int32())
    t = pa.table({"l": pa.array([[1, None], None, [3], [None, None]], typ)})
    with pytest.raises(ValueError, match=r"column 'l' holds 4 null values.*fill_null"):
        TableView.from_arrow(t)
    tv = TableView.from_arrow(t, fill_null={"l": -1})
    check_column(tv, "l", [[1, -1], [], [3], [-1, -1]], np.int32)
    # a null list only
    t = pa.table({"l": pa.array([[1], None], typ)})
    with pytest.raises(ValueError, match="holds 1 null"):
        TableView.from_arrow(t)
    # nulls outside the slice shown do not count
    arr = pa.array([[None], [1, 2], None, [3]], typ).slice(1, 1)
    check_column(TableView.from_arrow(pa.table({"l": arr})), "l", [[1, 2]], np.int32)
    # a fill value that does not fit the values
    with pytest.raises(ValueError, match="fill_null value 'x' does not fit the values of column 'l'"):
        TableView.from_arrow(pa.table({"l": pa.array([[None]], typ)}), fill_null={"l": "x"})


def test_list_nulls_in_parquet_name_the_whole_file_count(tmp_path):
    typ = pa.list_(pa.int64())
    t = pa.table({"l": pa.array([[1, None]] * 30 + [None] * 5, typ)})
    p = tmp_path / "n.parquet"
    pq.write_table(t, p, row_group_size=7)
    with pytest.raises(ValueError, match="column 'l' holds"):
        TableView.from_parquet(p)
    tv = TableView.from_parquet(p, fill_null={"l": 0})
    check_column(tv, "l", [[1, 0]] * 30 + [[]] * 5, np.int64)


def test_list_export_to_arrow_iter_arrow_and_parquet(tmp_path):
    rows = rows_model(60, np.int16, seed=4)
    tv = TableView({"l": as_ragged(rows, np.int16), "x": np.arange(60.0)})
    t = tv.to_arrow()
    assert t.schema.field("l").type == pa.list_(pa.int16())
    assert [np.asarray(v, np.int16).tolist() for v in t.column("l").to_pylist()] == [r.tolist() for r in rows]
    # any view: shuffled, sliced, taken; batches of 7
    sh = tv.shuffle(seed=2).new_view(slice(5, 50, 3))
    order = sh[:]["x"].astype(int)
    batches = list(sh.iter_arrow(batch_size=7))
    assert [b.num_rows for b in batches] == [7] * 2 + [1]
    got = [v for b in batches for v in b.column(0).to_pylist()]
    assert got == [rows[i].tolist() for i in order]
    # Parquet round trip through a file
    p = tmp_path / "l.parquet"
    sh.to_parquet(p, row_group_size=4)
    back = TableView.from_parquet(p)
    check_column(back, "l", [rows[i] for i in order], np.int16)
    # bool values (bit-packed in Arrow) and an empty view
    bools = rows_model(10, np.bool_, seed=5)
    tb = TableView({"b": as_ragged(bools, np.bool_)})
    assert tb.to_arrow().column("b").to_pylist() == [r.tolist() for r in bools]
    empty = tb.new_view(slice(0, 0)).to_arrow()
    assert empty.schema.field("b").type == pa.list_(pa.bool_()) and empty.num_rows == 0


def test_list_export_of_complex_values_is_typeerror():
    tv = TableView({"c": Ragged(np.arange(4).astype(np.complex64), [0, 1, 4])})
    with pytest.raises(TypeError, match="'c' is a list column of complex64"):
        tv.to_arrow()


def test_list_to_pandas_and_hf(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = rows_model(12, np.float32, seed=6)
    tv = TableView({"l": as_ragged(rows, np.float32), "i": np.arange(12)})
    df = tv.to_pandas()
    assert df["l"].dtype == object
    for got, want in zip(df["l"], rows):
        np.testing.assert_array_equal(got, want, strict=True)
    back = TableView.from_pandas(pd.DataFrame({"l": [r.tolist() for r in rows]}))
    assert back.schema["l"] == (np.dtype(np.float64), "list")   # Python floats: float64
    datasets = pytest.importorskip("datasets")
    ds = tv.to_hf()
    assert isinstance(ds.features["l"], (datasets.Sequence, datasets.List)) if hasattr(datasets, "List") \
        else isinstance(ds.features["l"], datasets.Sequence)
    assert [np.asarray(v, np.float32).tolist() for v in ds["l"]] == [r.tolist() for r in rows]
    # from_hf after a shuffle keeps the dataset's order
    sh = ds.shuffle(seed=1)
    back = TableView.from_hf(sh)
    order = sh["i"]
    check_column(back, "l", [rows[i] for i in order], np.float32)
    ds2 = tv.to_hf(tmp_path / "d.arrow")
    assert len(ds2) == 12 and ds2[3]["l"] == pytest.approx(rows[3].tolist())

"""Data in and out: Arrow, Parquet, pandas and Hugging Face datasets.

Everything here moves Arrow buffers, never Python rows. Out: record batches are built from
the batch iterator's arrays (fixed-width columns, zero copy; list columns as Ragged, whose
offsets and values become an Arrow list array) and from the stored strings in Arrow's own
layout (`TableView._packed_strings`). In: Arrow record batches are grouped into stored
tables of up to GROUP_BYTES each by `_infinidata._from_parts` (numeric buffers are passed as
NumPy views of Arrow's memory, strings as Arrow's offsets + bytes, lists as Arrow's offsets
+ a NumPy view of the values), on a
background thread so that decoding the next batches overlaps the writing; the groups are
concatenated into one view at the end. Memory is bounded by about two groups.

pyarrow is imported on first use: `import infinidata` works without it.
"""

import concurrent.futures
import importlib
import os
import uuid as _uuid

import numpy as np

from . import _infinidata as _C

GROUP_BYTES = 128 << 20     # most bytes of Arrow data per stored table (import); the first
GROUP_START = 16 << 20      # group holds GROUP_START, each next one twice the last
EXPORT_BYTES = 64 << 20     # default batch size of exports, in bytes of fixed-width rows
READ_BATCH_ROWS = 65536     # rows per record batch read from Parquet

_EXTRAS = {"pyarrow": "arrow", "pandas": "pandas", "datasets": "hf"}


def _need(module, what):
    """Import an optional dependency, or raise ImportError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pkg = module.split(".")[0]
        raise ImportError(f"{what} needs the '{pkg}' package: pip install {pkg} "
                          f"(or pip install 'infinidata[{_EXTRAS[pkg]}]')") from e


def _pa(what):
    _need("pyarrow", what)
    return importlib.import_module("pyarrow")


# ---------------------------------------------------------------- the type mapping (in)

class _Col:
    """How one Arrow column becomes a stored column: kind 'F' (fixed-width NumPy dtype),
    'U' (str), 'S' (bytes) or 'L' (a list column of dtype values), the row shape, and the
    Arrow leaf type conversion."""

    __slots__ = ("name", "kind", "dtype", "shape", "leaf", "cast")

    def __init__(self, name, kind, dtype, shape, leaf, cast):
        self.name, self.kind, self.dtype, self.shape = name, kind, dtype, shape
        self.leaf, self.cast = leaf, cast


def _plan(pa, field):
    """The _Col for an Arrow field, or TypeError naming the column and its Arrow type."""
    pat = pa.types
    name = field.name
    typ = field.type
    shape = []
    while True:
        if pat.is_dictionary(typ):
            typ = typ.value_type
            continue
        if pat.is_fixed_size_list(typ):
            shape.append(typ.list_size)
            typ = typ.value_type
            continue
        break
    cast = None
    if pat.is_list(typ) or pat.is_large_list(typ):
        return _plan_list(pa, field, typ, shape)
    if hasattr(pat, "is_list_view") and (pat.is_list_view(typ) or pat.is_large_list_view(typ)):
        raise TypeError(f"column {name!r} has Arrow type {field.type}: list views are not "
                        f"supported (cast the column to list<T> first)")
    if pat.is_boolean(typ) or pat.is_integer(typ) or pat.is_floating(typ):
        kind, dtype = "F", np.dtype(typ.to_pandas_dtype())
    elif pat.is_timestamp(typ):
        kind, dtype = "F", np.dtype(f"M8[{typ.unit}]")
        if typ.tz is not None:
            cast = pa.timestamp(typ.unit)
    elif pat.is_duration(typ):
        kind, dtype = "F", np.dtype(f"m8[{typ.unit}]")
    elif pat.is_date32(typ):
        kind, dtype = "F", np.dtype("M8[D]")
    elif pat.is_date64(typ):
        kind, dtype = "F", np.dtype("M8[ms]")
    elif pat.is_string(typ) or pat.is_large_string(typ) or (
            hasattr(pat, "is_string_view") and pat.is_string_view(typ)):
        kind, dtype = "U", None
        if not (pat.is_string(typ) or pat.is_large_string(typ)):
            cast = pa.large_string()
    elif pat.is_binary(typ) or pat.is_large_binary(typ) or pat.is_fixed_size_binary(typ) or (
            hasattr(pat, "is_binary_view") and pat.is_binary_view(typ)):
        kind, dtype = "S", None
        if not (pat.is_binary(typ) or pat.is_large_binary(typ)):
            cast = pa.large_binary()
    else:
        raise TypeError(f"column {name!r} has Arrow type {field.type}, which infinidata cannot "
                        f"store (supported: integers, floats, bool, timestamp, duration, date32/64, "
                        f"string, binary, fixed_size_list and dictionaries of these)")
    return _Col(name, kind, dtype, tuple(shape), typ, cast)


def _plan_list(pa, field, typ, shape):
    """The _Col of a list<T> / large_list<T> field: a list column of T's NumPy dtype, T being
    bool, an integer or a float (a dictionary of those is decoded)."""
    pat = pa.types
    vt = typ.value_type
    if pat.is_dictionary(vt):
        vt = vt.value_type
    if shape:
        raise TypeError(f"column {field.name!r} has Arrow type {field.type}: a fixed_size_list "
                        f"of lists cannot be stored (a list column has no row shape)")
    if not (pat.is_boolean(vt) or pat.is_integer(vt) or pat.is_floating(vt)):
        raise TypeError(f"column {field.name!r} has Arrow type {field.type}, which infinidata "
                        f"cannot store: list values must be bool, integers or floats (list<{vt}> "
                        f"is not supported)")
    return _Col(field.name, "L", np.dtype(vt.to_pandas_dtype()), (), typ, None)


def _plans(pa, schema, fill_null):
    cols = [_plan(pa, f) for f in schema]
    names = [c.name for c in cols]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"column name {dup!r} appears twice")
    for k in (fill_null or {}):
        if k not in names:
            raise KeyError(f"fill_null names column {k!r}, which is not among the columns {names}")
    return cols


def _total_nulls(arr):
    """Nulls in an array at every nesting level of fixed_size_list, or in a list array: null
    lists plus null values inside the lists shown."""
    n = arr.null_count
    pa = importlib.import_module("pyarrow")
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        offs = arr.offsets
        if len(arr):
            a0, z = offs[0].as_py(), offs[len(arr)].as_py()
            n += arr.values.slice(a0, z - a0).null_count
        return n
    while pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
        n += arr.null_count
    return n


def _leaf(pa, col, arr, fill, null_hint):
    """Arrow array of one column (one chunk) -> the flat leaf array (rows * prod(shape)
    values), nulls checked or filled, dictionaries decoded."""
    pc = importlib.import_module("pyarrow.compute")
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if col.kind == "L":
        return _list_leaf(pa, col, arr, fill, null_hint)
    if fill is None:
        nulls = _total_nulls(arr)
        if nulls:
            total = null_hint(col.name) if null_hint else None
            raise ValueError(f"column {col.name!r} holds {total if total else nulls} null "
                             f"values{'' if total else ' (in one batch)'}; pass "
                             f"fill_null={{{col.name!r}: value}} to replace them")
    while pa.types.is_fixed_size_list(arr.type):
        if fill is not None and arr.null_count:
            arr = _fill_slots(pa, arr, fill)
            break
        arr = arr.flatten()
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
    if col.cast is not None:
        arr = arr.cast(col.cast)
    if fill is not None and arr.null_count:
        try:
            arr = pc.fill_null(arr, pa.scalar(fill, arr.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise ValueError(f"fill_null value {fill!r} does not fit column {col.name!r} of "
                             f"Arrow type {arr.type}: {e}") from None
    return arr


def _list_leaf(pa, col, arr, fill, null_hint):
    """A list array (one chunk) -> (offsets, values) with no nulls: null lists and null values
    raise ValueError naming the column and the count, unless `fill` is given: then a null
    list becomes an empty list and a null value becomes `fill`."""
    pc = importlib.import_module("pyarrow.compute")
    nulls = _total_nulls(arr)
    if nulls and fill is None:
        total = null_hint(col.name) if null_hint else None
        raise ValueError(f"column {col.name!r} holds {total if total else nulls} null values "
                         f"(null lists and nulls inside lists){'' if total else ' (in one batch)'}; "
                         f"pass fill_null={{{col.name!r}: value}} to replace them (a null list "
                         f"becomes an empty list)")
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar([], arr.type))
    offs = arr.offsets
    values = arr.values
    if pa.types.is_dictionary(values.type):
        a0 = offs[0].as_py() if len(arr) else 0
        z = offs[len(arr)].as_py() if len(arr) else 0
        values = values.slice(a0, z - a0).dictionary_decode()
        offs = pc.subtract(offs, pa.scalar(a0, offs.type))
    if values.null_count:
        try:
            values = pc.fill_null(values, pa.scalar(fill, values.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
            raise ValueError(f"fill_null value {fill!r} does not fit the values of column "
                             f"{col.name!r} (Arrow type {values.type}): {e}") from None
    return offs, values


def _fill_slots(pa, arr, fill):
    """A fixed_size_list array with null slots -> its flat leaf values, every value under a
    null slot (at any level) or null itself replaced by `fill`."""
    pc = importlib.import_module("pyarrow.compute")
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    while pa.types.is_fixed_size_list(arr.type):
        k = arr.type.list_size
        arr = arr.values.slice(arr.offset * k, len(arr) * k)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        mask = np.repeat(mask, k) | arr.is_null().to_numpy(zero_copy_only=False)
    try:
        return pc.if_else(pa.array(mask), pa.scalar(fill, arr.type), arr)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise ValueError(f"fill_null value {fill!r} does not fit Arrow type {arr.type}: {e}") \
            from None


def _numpy_values(pa, dtype, arr):
    """A primitive Arrow array without nulls as a NumPy array of `dtype` (a view of Arrow's
    buffer when aligned; bool, bit-packed in Arrow, is converted)."""
    if dtype == np.bool_:
        return arr.to_numpy(zero_copy_only=False)
    a = np.frombuffer(arr.buffers()[1], dtype=dtype.newbyteorder("="), count=len(arr),
                      offset=arr.offset * dtype.itemsize)
    a = a.astype(dtype, copy=False)
    if not a.flags.c_contiguous or not a.flags.aligned:
        a = np.ascontiguousarray(a)
    return a


def _part(pa, col, arr, nrows):
    """A leaf array -> what _from_parts takes for one chunk of this column."""
    if col.kind == "L":
        offs, values = arr
        o = np.asarray(offs)    # int32 or int64, no nulls: a view of Arrow's buffer
        if not o.flags.aligned or not o.flags.c_contiguous:
            o = np.ascontiguousarray(o)
        return (o, _numpy_values(pa, col.dtype, values))
    if col.kind == "F":
        if col.dtype.kind in "mM" and pa.types.is_date32(arr.type):
            a = arr.to_numpy(zero_copy_only=False)          # int32 days -> datetime64[D]
        elif col.dtype == np.bool_:
            a = arr.to_numpy(zero_copy_only=False)
        else:
            a = np.frombuffer(arr.buffers()[1], dtype=col.dtype.newbyteorder("="),
                              count=len(arr), offset=arr.offset * col.dtype.itemsize)
        a = a.astype(col.dtype, copy=False)
        if not a.flags.c_contiguous or not a.flags.aligned:
            a = np.ascontiguousarray(a)
        return a.reshape((nrows,) + col.shape)
    bufs = arr.buffers()
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    odt = np.int64 if large else np.int32
    offs = np.frombuffer(bufs[1], dtype=odt, count=len(arr) + 1, offset=arr.offset * odt().itemsize) \
        if bufs[1] is not None else np.zeros(1, odt)
    if not offs.flags.aligned:
        offs = offs.copy()
    return (offs, bufs[2] if len(bufs) > 2 else None)


def _groups(pa, batches, cols, fill_null, null_hint):
    """Yield groups of converted record batches, as (nrows, {column: [parts]}) ready for
    _from_parts: GROUP_START bytes of Arrow data first, doubling up to GROUP_BYTES."""
    fill_null = fill_null or {}
    parts = {c.name: [] for c in cols}
    rows = size = 0
    limit = min(GROUP_START, GROUP_BYTES)   # small first groups: the last build, which
                                            # nothing overlaps, stays short for small inputs
    for b in batches:
        n = b.num_rows
        if n == 0:
            continue
        for i, c in enumerate(cols):
            arr = b.column(i)
            leaf = _leaf(pa, c, arr, fill_null.get(c.name), null_hint)
            parts[c.name].append(_part(pa, c, leaf, n))
        rows += n
        size += b.nbytes
        if size >= limit:
            yield rows, parts
            parts = {c.name: [] for c in cols}
            rows = size = 0
            limit = min(2 * limit, GROUP_BYTES)
    if rows:
        yield rows, parts


def _build(cols, rows, parts):
    return _C._from_parts([(c.name, c.kind, c.dtype, c.shape, parts[c.name]) for c in cols], rows)


def _import(pa, schema, batches, fill_null=None, null_hint=None, progress=None, total=-1,
            desc="import"):
    """Record batches of `schema` -> one TableView, built group by group on a worker thread.
    progress: the progress= keyword (a bar of rows, total rows when known, else -1)."""
    from . import _progress

    cols = _plans(pa, schema, fill_null)
    if not cols:
        raise ValueError("the Arrow data has no columns; a TableView needs at least one")
    views = []
    bar = _progress.start(progress, total, desc, unit="rows")
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        pending = None
        try:
            for rows, parts in _groups(pa, batches, cols, fill_null, null_hint):
                fut = ex.submit(_build, cols, rows, parts)
                if pending is not None:
                    views.append(pending.result())
                pending = fut
                if bar is not None:
                    bar.update(rows)
            if pending is not None:
                views.append(pending.result())
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
    if not views:
        empty = {c.name: ([np.empty((0,) + c.shape, c.dtype)] if c.kind == "F"
                          else [(np.zeros(1, np.int64), np.empty(0, c.dtype))] if c.kind == "L"
                          else [(np.zeros(1, np.int64), None)]) for c in cols}
        return _build(cols, 0, empty)
    return views[0] if len(views) == 1 else _C.TableView.concat(views)


def _reader_of(pa, obj):
    """A RecordBatchReader (or (schema, iterable of batches)) for an Arrow-like object."""
    if isinstance(obj, pa.Table):
        return obj.schema, obj.to_batches()
    if isinstance(obj, pa.RecordBatch):
        return obj.schema, [obj]
    if isinstance(obj, pa.RecordBatchReader):
        return obj.schema, obj
    if hasattr(obj, "__arrow_c_stream__"):
        r = pa.RecordBatchReader.from_stream(obj)
        return r.schema, r
    if hasattr(obj, "__arrow_c_array__"):
        b = pa.record_batch(obj)
        return b.schema, [b]
    raise TypeError(f"from_arrow() takes a pyarrow Table, RecordBatch or RecordBatchReader, or "
                    f"an object with __arrow_c_stream__ (polars, DuckDB), not "
                    f"{type(obj).__module__}.{type(obj).__name__}")


def from_arrow(obj, fill_null=None, *, progress=None):
    """TableView.from_arrow(obj, fill_null=None, *, progress=None) -> TableView

    A new table from Arrow data: a pyarrow Table, RecordBatch or RecordBatchReader, or any
    object with __arrow_c_stream__ (a polars DataFrame, a DuckDB result). Batches are
    streamed: memory stays bounded for a reader however long it is. Types map as the
    README's table says; a column holding nulls is a ValueError unless fill_null maps its
    name to a replacement value; an unsupported type is a TypeError naming the column.
    progress: a bar of rows (None: when tqdm is installed and stderr is a terminal).
    """
    pa = _pa("TableView.from_arrow")
    schema, batches = _reader_of(pa, obj)
    hint = None
    if isinstance(obj, pa.Table):
        def hint(name):
            return sum(_total_nulls(c) for c in obj.column(name).chunks)
    total = obj.num_rows if isinstance(obj, (pa.Table, pa.RecordBatch)) else -1
    return _import(pa, schema, batches, fill_null, hint, progress, total, "from_arrow")


def _parquet_files(path):
    if isinstance(path, (list, tuple)):
        files = []
        for p in path:
            files.extend(_parquet_files(p))
        return files
    p = os.fspath(path)
    if os.path.isdir(p):
        names = sorted(n for n in os.listdir(p) if n.endswith(".parquet"))
        files = [os.path.join(p, n) for n in names if os.path.isfile(os.path.join(p, n))]
        if not files:
            raise ValueError(f"no *.parquet files in directory {p!r}")
        return files
    if not os.path.exists(p):
        raise FileNotFoundError(2, "no such Parquet file or directory", p)
    return [p]


def from_parquet(path, columns=None, fill_null=None, *, progress=None):
    """TableView.from_parquet(path, columns=None, fill_null=None, *, progress=None) -> TableView

    A new table from Parquet: one file, a list of files, or a directory (its *.parquet
    files, not recursive, in name order). Row groups are streamed into the table, so a
    dataset larger than memory imports in bounded memory. `columns` picks columns (in that
    order). Every file must have the same schema (a ValueError names the file and the
    column otherwise). Types, nulls and progress are handled as in from_arrow.
    """
    pa = _pa("TableView.from_parquet")
    pq = _need("pyarrow.parquet", "TableView.from_parquet")
    if isinstance(columns, str):
        raise TypeError("columns must be a list of column names, not a str")
    files = _parquet_files(path)
    if not files:
        raise ValueError("from_parquet() was given no files")
    schemas = []
    for f in files:
        try:
            s = pq.read_schema(f)
        except pa.ArrowInvalid as e:
            raise ValueError(f"{f}: not a readable Parquet file: {e}") from None
        if columns is not None:
            missing = [c for c in columns if c not in s.names]
            if missing:
                raise KeyError(f"{f} has no column {missing[0]!r}; its columns are {s.names}")
            s = pa.schema([s.field(c) for c in columns])
        schemas.append(s)
    first = schemas[0]
    for f, s in zip(files[1:], schemas[1:]):
        for fld in first:
            if fld.name not in s.names:
                raise ValueError(f"{f} has no column {fld.name!r}, which {files[0]} has")
            if not s.field(fld.name).type.equals(fld.type):
                raise ValueError(f"{f}: column {fld.name!r} is {s.field(fld.name).type}, but "
                                 f"{fld.type} in {files[0]}")
        for fld in s:
            if fld.name not in first.names:
                raise ValueError(f"{f}: column {fld.name!r} is not in {files[0]}")
    names = list(columns) if columns is not None else first.names

    def null_hint(name):
        total = 0
        for f in files:
            md = pq.ParquetFile(f).metadata
            ci = md.schema.names.index(name) if name in md.schema.names else -1
            for rg in range(md.num_row_groups):
                for k in range(md.row_group(rg).num_columns):
                    cc = md.row_group(rg).column(k)
                    if cc.path_in_schema.split(".")[0] == name and cc.statistics is not None \
                            and cc.statistics.has_null_count:
                        total += cc.statistics.null_count
            del ci
        return total or None

    def batches():
        # one file and one row group at a time (Arrow decodes a row group's columns on its
        # threads): bounded memory whatever the files' sizes
        for f in files:
            pf = pq.ParquetFile(f, pre_buffer=False)
            try:
                for b in pf.iter_batches(batch_size=READ_BATCH_ROWS, columns=names):
                    yield b.select(names) if b.schema.names != names else b
            finally:
                pf.close()

    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return _import(pa, first, batches(), fill_null, null_hint, progress, total, "from_parquet")


def from_pandas(df, fill_null=None, *, progress=None):
    """TableView.from_pandas(df, fill_null=None, *, progress=None) -> TableView

    A new table from a pandas DataFrame's columns (through Arrow; the index is not kept:
    call df.reset_index() first to keep it as a column). Types and nulls as in from_arrow
    (NaN in a float column is a value, not a null; None and pd.NA are nulls).
    """
    pa = _pa("TableView.from_pandas")
    _need("pandas", "TableView.from_pandas")
    pd = importlib.import_module("pandas")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_pandas() takes a pandas DataFrame, not {type(df).__name__}")
    names, arrays = [], []
    for i, name in enumerate(df.columns):
        try:
            # from_pandas=False: NaN stays a float value; None, pd.NA and NaT are nulls
            arrays.append(pa.array(df.iloc[:, i], from_pandas=False))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise TypeError(f"column {name!r} of the DataFrame cannot be converted to Arrow: "
                            f"{e}") from None
        names.append(str(name))
    return from_arrow(pa.table(arrays, names=names), fill_null=fill_null, progress=progress)


def from_hf(dataset, fill_null=None, *, progress=None):
    """TableView.from_hf(dataset, fill_null=None, *, progress=None) -> TableView

    A new table from a Hugging Face datasets.Dataset, through its Arrow table (never Python
    rows), in the dataset's own row order: after shuffle() or select() its indices mapping
    is honoured (a view over the imported rows when it covers many of them, else only the
    selected rows are copied).
    """
    pa = _pa("TableView.from_hf")
    datasets = _need("datasets", "TableView.from_hf")
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"from_hf() takes a datasets.Dataset, not {type(dataset).__name__} "
                        f"(for a DatasetDict, pick a split: from_hf(dd['train']))")
    table = dataset.data.table
    table = table.select(dataset.column_names) if table.column_names != dataset.column_names \
        else table
    indices = dataset._indices
    if indices is None:
        return from_arrow(table, fill_null=fill_null, progress=progress)
    idx = indices.column(0)
    if len(idx) * 4 >= len(table):
        whole = from_arrow(table, fill_null=fill_null, progress=progress)
        ix = np.concatenate([c.to_numpy() for c in idx.chunks]) if idx.num_chunks else \
            np.empty(0, np.int64)
        return whole.new_view(ix.astype(np.int64, copy=False))

    def taken():
        step = READ_BATCH_ROWS
        for a in range(0, len(idx), step):
            yield from table.take(idx.slice(a, step)).to_batches()
    return _import(pa, table.schema, taken(), fill_null, None, progress, len(idx), "from_hf")


# ---------------------------------------------------------------- out

_TIME_UNITS = ("s", "ms", "us", "ns")


def _arrow_type(pa, name, dtype, kind, shape):
    """(Arrow type, NumPy dtype to convert to first or None) for a stored column."""
    if kind == "L":
        if dtype.kind == "c":
            raise TypeError(f"column {name!r} is a list column of {dtype}, which Arrow has no "
                            f"type for")
        return pa.list_(pa.from_numpy_dtype(dtype)), None
    if kind == "U":
        t, conv = pa.string(), None
    elif kind == "S":
        t, conv = pa.binary(), None
    elif dtype.kind == "c" or dtype.kind == "V" or dtype.kind == "O":
        raise TypeError(f"column {name!r} has dtype {dtype}, which Arrow has no type for")
    elif dtype.kind == "M":
        unit = np.datetime_data(dtype)[0]
        if unit in _TIME_UNITS:
            t, conv = pa.timestamp(unit), None
        elif unit in ("D", "W", "M", "Y"):
            t, conv = pa.date32(), (None if unit == "D" else np.dtype("M8[D]"))
        elif unit in ("h", "m"):
            t, conv = pa.timestamp("s"), np.dtype("M8[s]")
        else:
            raise TypeError(f"column {name!r} has dtype {dtype}: Arrow timestamps go down to "
                            f"nanoseconds only")
    elif dtype.kind == "m":
        unit = np.datetime_data(dtype)[0]
        if unit in _TIME_UNITS:
            t, conv = pa.duration(unit), None
        elif unit in ("W", "D", "h", "m"):
            t, conv = pa.duration("s"), np.dtype("m8[s]")
        else:
            raise TypeError(f"column {name!r} has dtype {dtype}, which Arrow has no duration for")
    else:
        t, conv = pa.from_numpy_dtype(dtype), None
    for k in reversed(shape):
        t = pa.list_(t, k)
    return t, conv


def _schema_plan(pa, tv):
    plan = []
    for name, (dtype, shape) in tv.schema.items():
        dtype = np.dtype(dtype)
        if isinstance(shape, str):  # "list": a list column of dtype values
            kind, shape = "L", ()
        else:
            kind = "U" if dtype.kind == "U" else "S" if dtype.kind == "S" else "F"
        t, conv = _arrow_type(pa, name, dtype, kind, tuple(shape))
        plan.append((name, kind, dtype, tuple(shape), t, conv))
    return plan


def leaf_type(t):
    while hasattr(t, "list_size"):
        t = t.value_type
    return t


def _days32(name, a):
    """datetime64[D] values -> the int32 days of Arrow's date32 (range checked)."""
    days = a.astype("M8[D]", copy=False).view(np.int64)
    if days.size and (days.min() < -(1 << 31) or days.max() >= 1 << 31):
        raise ValueError(f"column {name!r} holds a date outside Arrow date32's range "
                         f"(+-5.8 million years; NaT included)")
    return days.astype(np.int32)


def _wrap_shape(pa, leaf, shape):
    for k in reversed(shape):
        leaf = pa.FixedSizeListArray.from_arrays(leaf, k)
    return leaf


def _default_batch(tv):
    row = 0
    for dtype, shape in tv.schema.values():
        if isinstance(shape, str):  # a list column: guess 32 values a row
            row += 32 * np.dtype(dtype).itemsize
            continue
        per = int(np.prod(shape)) if shape else 1
        row += per * (dtype.itemsize if dtype.kind not in "US" else 32)
    return max(1, min(1 << 20, EXPORT_BYTES // max(row, 1)))


def iter_arrow(self, batch_size=None):
    """iter_arrow(batch_size=None) -> iterator of pyarrow.RecordBatch

    The rows in order as Arrow record batches of batch_size rows (the last may be shorter;
    None: about 64 MB of fixed-width data per batch), holding at most a few batches in
    memory. Fixed-width columns are handed over without a copy; strings are built from the
    stored UTF-8 directly. Row shapes become (nested) fixed_size_list, list columns list<T>.
    Column types as the README's table says.
    """
    pa = _pa("TableView.iter_arrow")
    plan = _schema_plan(pa, self)
    schema = pa.schema([(p[0], p[4]) for p in plan])
    if batch_size is None:
        batch_size = _default_batch(self)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, not {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    return _iter_batches(pa, self, plan, schema, int(batch_size))


def _iter_batches(pa, tv, plan, schema, batch_size):
    n = len(tv)
    fixed = [p[0] for p in plan if p[1] in "FL"]   # list columns come as Ragged
    position = {p[0]: j for j, p in enumerate(plan)}
    it = tv.select_columns(fixed).batch_iter(batch_size, threads=1, readahead=2) if fixed else None
    try:
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            fb = next(it) if it is not None else {}
            arrays = []
            for name, kind, dtype, shape, t, conv in plan:
                if kind == "L":
                    arrays.append(_list_array(pa, name, fb[name], t, count))
                elif kind == "F":
                    a = fb[name]
                    if conv is not None:
                        a = a.astype(conv)
                    if dtype.kind == "M" and pa.types.is_date32(t if not shape else leaf_type(t)):
                        a = _days32(name, a)
                    leaf_t = t
                    for _ in shape:
                        leaf_t = leaf_t.value_type
                    flat = a.reshape(-1)
                    if dtype == np.bool_:
                        leaf = pa.array(flat, type=pa.bool_())
                    else:
                        leaf = pa.Array.from_buffers(leaf_t, len(flat), [None, pa.py_buffer(flat)])
                    arrays.append(_wrap_shape(pa, leaf, shape))
                else:
                    offs, data = tv._packed_strings(start, count, position[name])
                    if len(data) > 0x7FFFFFFF:
                        raise ValueError(f"column {name!r}: {count} rows hold {len(data)} bytes of "
                                         f"strings, over Arrow's 2 GiB per array; use a smaller "
                                         f"batch_size")
                    leaf_t = pa.string() if kind == "U" else pa.binary()
                    leaf = pa.Array.from_buffers(leaf_t, len(offs) - 1,
                                                 [None, pa.py_buffer(offs.astype(np.int32)),
                                                  pa.py_buffer(data)])
                    if kind == "U":
                        try:
                            leaf.validate(full=True)
                        except pa.ArrowInvalid:
                            raise ValueError(
                                f"column {name!r} holds a string that is not valid UTF-8 (a "
                                f"surrogate or a code point above U+10FFFF, which NumPy 'U' "
                                f"allows and Arrow does not)") from None
                    arrays.append(_wrap_shape(pa, leaf, shape))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        if it is not None:
            it.close()


def _list_array(pa, name, rag, t, count):
    """A Ragged (a batch of a list column) as an Arrow list<T> array (the values' buffer
    shared, int32 offsets)."""
    offs = np.asarray(rag.offsets, dtype=np.int64)
    values = np.ascontiguousarray(rag.values[offs[0]:offs[-1]])
    offs = offs - offs[0]
    if offs[-1] > 0x7FFFFFFF:
        raise ValueError(f"column {name!r}: {count} rows hold {int(offs[-1])} list values, over "
                         f"Arrow list's 2**31 - 1 per array; use a smaller batch_size")
    vt = t.value_type
    if values.dtype == np.bool_:
        leaf = pa.array(values, type=pa.bool_())
    else:
        leaf = pa.Array.from_buffers(vt, len(values), [None, pa.py_buffer(values)])
    return pa.ListArray.from_arrays(pa.array(offs.astype(np.int32)), leaf, type=t)


def to_arrow(self, batch_size=None):
    """to_arrow(batch_size=None) -> pyarrow.Table

    The whole table in memory as a pyarrow Table (chunked as iter_arrow batches it). For
    tables larger than memory use iter_arrow or to_parquet.
    """
    pa = _pa("TableView.to_arrow")
    plan = _schema_plan(pa, self)
    schema = pa.schema([(p[0], p[4]) for p in plan])
    return pa.Table.from_batches(list(iter_arrow(self, batch_size)), schema=schema)


def _write_atomically(path, write):
    """Call write(tmp) for a temporary name beside `path`, then rename it to `path`; on any
    failure remove the temporary file (ours) and re-raise. `path` is never half written."""
    d, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(d, f".{base}.{_uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def to_parquet(self, path, row_group_size=None, compression="snappy"):
    """to_parquet(path, row_group_size=None, compression='snappy') -> None

    Write the table to one Parquet file, streaming: one row group of row_group_size rows at
    a time (None: about 64 MB of fixed-width data per row group). The file appears whole or
    not at all (written under a temporary name in the same directory, then renamed); on
    failure nothing is left behind.
    """
    _pa("TableView.to_parquet")
    pq = _need("pyarrow.parquet", "TableView.to_parquet")
    pa = importlib.import_module("pyarrow")
    path = os.fspath(path)
    batches = iter_arrow(self, row_group_size)
    plan = _schema_plan(pa, self)
    schema = pa.schema([(p[0], p[4]) for p in plan])

    def write(tmp):
        with pq.ParquetWriter(tmp, schema, compression=compression) as w:
            wrote = False
            for b in batches:
                w.write_batch(b)
                wrote = True
            if not wrote:
                w.write_table(schema.empty_table())
    _write_atomically(path, write)


def to_pandas(self):
    """to_pandas() -> pandas.DataFrame

    The whole table in memory as a DataFrame (through Arrow). Columns with a row shape, and
    list columns, become object columns holding one array per row.
    """
    _need("pandas", "TableView.to_pandas")
    return to_arrow(self).to_pandas()


def to_hf(self, path=None):
    """to_hf(path=None) -> datasets.Dataset

    The table as a Hugging Face Dataset. With path=None it is built in memory; with a path,
    the rows are streamed into an Arrow file there (the format datasets caches in) and the
    Dataset memory-maps it, so tables larger than memory work.
    """
    pa = _pa("TableView.to_hf")
    datasets = _need("datasets", "TableView.to_hf")
    if path is None:
        return datasets.Dataset(datasets.table.InMemoryTable(to_arrow(self)))
    path = os.fspath(path)
    plan = _schema_plan(pa, self)
    schema = pa.schema([(p[0], p[4]) for p in plan])

    def write(tmp):
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
            for b in iter_arrow(self):
                w.write_batch(b)
    _write_atomically(path, write)
    return datasets.Dataset.from_file(path)

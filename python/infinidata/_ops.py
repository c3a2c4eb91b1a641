"""Dataset operations over views, in the manner of Hugging Face datasets: shard,
train_test_split, filter by a predicate, drop_columns (views: no row is copied; the heavy
lifting, slices, shuffles and masks, is the engine's) and map (a new table written through
TableWriter, in parallel processes if asked). They are attached to TableView as methods
when the package is imported.
"""

import math
import operator
import os
import pickle
import sys
import traceback
import uuid
from collections.abc import Mapping

import numpy as np

from . import _infinidata, _progress
from ._infinidata import TableView
from ._ragged import Ragged, _as_list_column


def _int_arg(value, what, minimum):
    """`value` as an int >= minimum (bools refused), else TypeError / ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {value}")
    return value


def _names(names, what):
    """A str or an iterable of str as a list of str."""
    if isinstance(names, str):
        return [names]
    try:
        out = list(names)
    except TypeError:
        raise TypeError(f"{what} must be a str or a list of str, not {type(names).__name__}") from None
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"{what} must be str, not {type(n).__name__}")
    return out


def _check_known(tv, names):
    """The core's KeyError (naming the first unknown name and listing the columns) when tv
    lacks one of `names`: column lookup is the engine's decision, not redone here."""
    if names:
        tv.select_columns(set(names))


def _source(tv, columns):
    """tv, or just `columns` of it (None: all), checked."""
    if columns is None:
        return tv
    names = _names(columns, "columns")
    _check_known(tv, names)
    return tv.select_columns(names)


class SplitResult(tuple):
    """The (train, test) pair train_test_split returns: a tuple that can also be indexed by
    "train" and "test" (as a Hugging Face DatasetDict) and has .train / .test."""

    __slots__ = ()

    def __new__(cls, train, test):
        return super().__new__(cls, (train, test))

    def __getitem__(self, key):
        if isinstance(key, str):
            if key == "train":
                return tuple.__getitem__(self, 0)
            if key == "test":
                return tuple.__getitem__(self, 1)
            raise KeyError(f"{key!r}: a split has 'train' and 'test'")
        return tuple.__getitem__(self, key)

    @property
    def train(self):
        return tuple.__getitem__(self, 0)

    @property
    def test(self):
        return tuple.__getitem__(self, 1)

    def keys(self):
        return ["train", "test"]

    def values(self):
        return [self.train, self.test]

    def items(self):
        return [("train", self.train), ("test", self.test)]

    def __repr__(self):
        return f"SplitResult(train={self.train!r}, test={self.test!r})"

    def __reduce__(self):
        return (SplitResult, (self.train, self.test))


def shard(self, num_shards, index, contiguous=True):
    """shard(num_shards, index, contiguous=True) -> TableView: shard `index` of `num_shards`.

    As Hugging Face datasets: contiguous shards are consecutive runs of rows, the first
    len % num_shards shards one row longer; contiguous=False takes rows index, index +
    num_shards, ... Every row is in exactly one shard. A view: no row is copied."""
    num_shards = _int_arg(num_shards, "num_shards", 1)
    index = _int_arg(index, "index", 0)
    if index >= num_shards:
        raise ValueError(f"index must be in [0, {num_shards - 1}] for {num_shards} shards, not {index}")
    n = len(self)
    if not contiguous:
        return self.new_view(slice(index, None, num_shards))
    div, mod = divmod(n, num_shards)
    start = div * index + min(index, mod)
    end = start + div + (1 if index < mod else 0)
    return self.new_view(slice(start, end))


def _split_sizes(n, test_size):
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int, not {type(test_size).__name__}")
    if isinstance(test_size, (float, np.floating)):
        f = float(test_size)
        if not 0.0 < f < 1.0:
            raise ValueError(f"test_size={f} should be in the (0, 1) range when a float "
                             "(the fraction of rows that go to the test set)")
        n_test = math.ceil(f * n)
    else:
        n_test = operator.index(test_size)
        if not 0 < n_test < n:
            raise ValueError(f"test_size={n_test} should be between 1 and {n - 1} rows "
                             f"(the view has {n}) when an int")
    n_train = n - n_test
    if n_test == 0 or n_train == 0:
        raise ValueError(f"with {n} rows and test_size={test_size} the "
                         f"{'test' if n_test == 0 else 'train'} set would be empty; adjust test_size")
    return n_train, n_test


def _column_values(tv, name, batch_size=1 << 16):
    """Every value of one scalar column, as one NumPy array (read in batches)."""
    col = tv.select_columns([name])
    parts = [b[name] for b in col.batch_iter(batch_size)]
    if not parts:
        return col[0:0][name]
    if parts[0].dtype.kind in "US":  # batches may have different string widths
        width = max(p.dtype.itemsize for p in parts) // (4 if parts[0].dtype.kind == "U" else 1)
        parts = [p.astype(f"{parts[0].dtype.kind}{max(width, 1)}") for p in parts]
    return np.concatenate(parts)


def _stratified_quotas(counts, n_test):
    """Test rows per class: n_test * count / n, rounded down, and the rows left over given one
    each to the classes with the largest remainders (ties: the first class in sorted order)."""
    n = int(counts.sum())
    exact = counts * n_test
    base = exact // n
    rem = exact - base * n
    left = n_test - int(base.sum())
    order = np.lexsort((np.arange(len(counts)), -rem))  # largest remainder, then class order
    base[order[:left]] += 1
    return base


def train_test_split(self, test_size, seed=None, stratify_by=None):
    """train_test_split(test_size, seed=None, stratify_by=None) -> SplitResult (train, test).

    test_size: a float in (0, 1) gives ceil(test_size * len) test rows; an int gives that many.
    Both sets are random (a seeded shuffle: the same seed gives the same split on every run
    and machine) and are views. Without stratify_by the test set is the first rows of
    tv.shuffle(seed) and the train set the rest (no copy). With stratify_by (a scalar column:
    integers, bools or strings) each class gets test rows in proportion to its size: the
    exact share n_test * class_rows / rows rounded down, and the rows left over go one each
    to the classes with the largest remainders (ties: the smaller class value first). The
    class column is read once into memory; the two sets are then in random order."""
    n = len(self)
    n_train, n_test = _split_sizes(n, test_size)
    if seed is not None:
        _int_arg(seed, "seed", 0)
    if stratify_by is None:
        shuffled = self.shuffle(seed=seed)
        return SplitResult(shuffled.new_view(slice(n_test, None)), shuffled.new_view(slice(0, n_test)))
    if not isinstance(stratify_by, str):
        raise TypeError(f"stratify_by must be a column name (str), not {type(stratify_by).__name__}")
    _check_known(self, [stratify_by])
    dtype, shape = self.schema[stratify_by]
    if shape != () or dtype.kind not in "biuUSO":
        raise TypeError(f"cannot stratify by column {stratify_by!r} of dtype {dtype} and row shape "
                        f"{shape}: it must hold scalar integers, bools or strings")
    labels = _column_values(self, stratify_by)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quotas = _stratified_quotas(counts.astype(np.int64), n_test)
    rng = np.random.default_rng(seed)
    by_class = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    test_parts, train_parts = [], []
    for c in range(len(counts)):
        rows = rng.permutation(by_class[starts[c]:starts[c + 1]])
        test_parts.append(rows[:quotas[c]])
        train_parts.append(rows[quotas[c]:])
    test_idx = rng.permutation(np.concatenate(test_parts))
    train_idx = rng.permutation(np.concatenate(train_parts))
    return SplitResult(self.new_view(train_idx), self.new_view(test_idx))


def filter(self, predicate, batch_size=10_000, columns=None):
    """filter(predicate, batch_size=10_000, columns=None) -> TableView.

    predicate: a bool array of len(tv) (a mask), or a function that receives each batch (a
    dict of column -> array, `columns` only when given) and returns a bool array (or list of
    bools) with one entry per row of the batch. The result is a view of the rows where it is
    True (a 1-byte-per-row mask is kept while batches run; no row is copied)."""
    if not callable(predicate):
        return self._filter_mask(predicate)
    batch_size = _int_arg(batch_size, "batch_size", 1)
    src = _source(self, columns)
    n = len(self)
    mask = np.zeros(n, dtype=bool)
    start = 0
    for batch in src.batch_iter(batch_size, threads=2, readahead=4):
        rows = min(batch_size, n - start)
        out = predicate(batch)
        arr = np.asarray(out)
        if arr.dtype != np.bool_:
            raise TypeError(f"the filter predicate must return a bool array (or list of bools), got "
                            f"{type(out).__name__} of dtype {arr.dtype} for the batch at row {start}")
        if arr.shape != (rows,):
            raise ValueError(f"the filter predicate returned shape {arr.shape} for the batch at row "
                             f"{start}; it must give one bool per row: shape ({rows},)")
        mask[start:start + rows] = arr
        start += rows
    return self._filter_mask(mask)


def _map_outputs(out, rows, start):
    """Check one batch's result of a map function: a dict of str -> array of `rows` rows."""
    if not isinstance(out, Mapping):
        raise TypeError(f"the map function must return a dict of column name -> array, got "
                        f"{type(out).__name__} for the batch at row {start}")
    if not out:
        raise ValueError(f"the map function returned no columns for the batch at row {start}")
    checked = {}
    for name, value in out.items():
        if not isinstance(name, str):
            raise TypeError(f"the map function returned a column name of type {type(name).__name__} "
                            f"for the batch at row {start}; names must be str")
        arr = value if isinstance(value, np.ndarray) else _as_list_column(value, name)  # a list column
        if arr is None:
            arr = np.asarray(value)
        if isinstance(arr, Ragged):
            if len(arr) != rows:
                raise ValueError(f"the map function returned {len(arr)} rows in column {name!r} for the "
                                 f"batch at row {start}, which has {rows} rows")
        elif arr.ndim == 0 or len(arr) != rows:
            got = "a scalar" if arr.ndim == 0 else f"{len(arr)} rows"
            raise ValueError(f"the map function returned {got} in column {name!r} for the batch at "
                             f"row {start}, which has {rows} rows")
        checked[name] = arr
    return checked


def _map_part(src, fn, batch_size, bar):
    """fn over the batches of `src`, written through a TableWriter (len(src) > 0)."""
    from ._writer import TableWriter

    n = len(src)
    with TableWriter(progress=False) as w:
        start = 0
        for batch in src.batch_iter(batch_size, threads=2, readahead=4):
            rows = min(batch_size, n - start)
            w.append(_map_outputs(fn(batch), rows, start))
            if bar is not None:
                bar.update(rows)
            start += rows
        return w.finish()


def _map_worker(payload, fn, batch_size, dest, name, conn):
    """In a child process: map one shard (a pickled view: its files, not its rows) and save the
    result into the parent's temp directory, so that it outlives this process."""
    try:
        view = pickle.loads(payload)
        _map_part(view, fn, batch_size, None).save_to_disk(dest, name)
        conn.send(None)
    except BaseException as e:  # report everything to the parent, which raises it
        tb = traceback.format_exc()
        try:
            conn.send((e, tb))
        except Exception:
            conn.send((None, tb))
    finally:
        conn.close()


def map(self, fn, batch_size=10_000, columns=None, num_proc=1, *, progress=None):
    """map(fn, batch_size=10_000, columns=None, num_proc=1, *, progress=None) -> TableView.

    fn receives each batch (a dict of column -> array, only `columns` when given) and returns
    a dict of column -> array with the batch's row count; the results are written through a
    TableWriter into a new table of fn's columns (join them to the source with
    with_columns, or select what you need). num_proc > 1 splits the view into that many
    contiguous shards, each mapped in its own process (fork where available, else spawn:
    then fn must be picklable); a worker receives its shard pickled (a description of
    files, never rows), writes its part, and saves it into this process's temp directory,
    where the part outlives the worker; this process then takes the part files over (they
    go when the last view using them goes) and concatenates the parts as views, without a
    copy. An exception in fn is
    raised here (from a worker: the same exception when it can be pickled, else
    RuntimeError with its traceback). progress: a bar of rows (num_proc = 1) or parts."""
    if not callable(fn):
        raise TypeError(f"map needs a function, not {type(fn).__name__}")
    batch_size = _int_arg(batch_size, "batch_size", 1)
    num_proc = _int_arg(num_proc, "num_proc", 1)
    src = _source(self, columns)
    n = len(src)
    if n == 0:  # fn still decides the columns, from an empty batch
        return TableView(_map_outputs(fn(src[0:0]), 0, 0))
    num_proc = min(num_proc, -(-n // batch_size))
    if num_proc == 1:
        bar = _progress.start(progress, n, "map", "rows")
        try:
            return _map_part(src, fn, batch_size, bar)
        finally:
            if bar is not None:
                bar.close()
    return _map_parallel(src, fn, batch_size, num_proc, progress)


def _map_parallel(src, fn, batch_size, num_proc, progress):
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    dest = _infinidata._tmp_dir()
    token = uuid.uuid4().hex
    names = [f"map-{token}-{i}" for i in range(num_proc)]
    procs, conns = [], []
    existing = set(os.listdir(dest))
    ok = False
    bar = _progress.start(progress, num_proc, "map", "parts")
    try:
        for i in range(num_proc):
            recv, send = ctx.Pipe(duplex=False)
            payload = pickle.dumps(src.shard(num_proc, i))
            p = ctx.Process(target=_map_worker, args=(payload, fn, batch_size, dest, names[i], send),
                            daemon=True)
            p.start()
            send.close()
            procs.append(p)
            conns.append(recv)
        failure = None
        for i, (p, c) in enumerate(zip(procs, conns)):
            try:
                msg = c.recv()
            except EOFError:
                msg = (None, f"map worker {i} (pid {p.pid}) died without a result")
            p.join()
            if msg is not None and failure is None:
                failure = (i, msg)
            if bar is not None:
                bar.update(1)
        if failure is not None:
            i, (exc, tb) = failure
            if isinstance(exc, BaseException):
                raise exc
            raise RuntimeError(f"map worker {i} failed:\n{tb}")
        parts = [TableView.load_from_disk(dest, name, verify=False) for name in names]
        for p in parts:  # the part files become this process's: removed with the last view
            p._adopt_files()
        ok = True
        return TableView.concat(parts)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()
        # the manifests go; the data files stay with the loaded parts, or go too on failure
        # (the parts' files are the saved-file names that appeared during this map)
        made = [f for f in set(os.listdir(dest)) - existing
                if f.endswith(".idtview") or (not ok and f[:2] in ("s-", "r-") and f.endswith(".idt"))]
        for f in made:
            try:
                os.unlink(os.path.join(dest, f))
            except FileNotFoundError:
                pass
        if bar is not None:
            bar.close()


def drop_columns(self, names):
    """drop_columns(names) -> TableView: a view without these columns (a str or a list of str).
    An unknown name is a KeyError listing the columns; dropping them all is a ValueError."""
    names = _names(names, "column names")
    _check_known(self, names)
    drop = set(names)
    keep = [c for c in self.column_names if c not in drop]
    if not keep:
        raise ValueError(f"cannot drop every column of a view ({self.column_names})")
    return self.select_columns(keep)


def rename_columns(self, mapping):
    """rename_columns(mapping) -> TableView: a view with columns renamed (a dict old -> new).

    Other columns, the column order and the rows are unchanged; no row is copied. An old name
    the view does not have is a KeyError listing the columns; a result with two columns of
    one name (say a -> b while b stays) is a ValueError naming it. Renames apply at once, so
    {"a": "b", "b": "a"} swaps two names."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"rename_columns() takes a dict old name -> new name, not {type(mapping).__name__}")
    olds, news = [], []
    for old, new in mapping.items():
        if not isinstance(old, str) or not isinstance(new, str):
            bad = old if not isinstance(old, str) else new
            raise TypeError(f"column names must be str, not {type(bad).__name__} ({bad!r})")
        olds.append(old)
        news.append(new)
    _check_known(self, olds)
    return self._rename(olds, news)


def zip_views(views):
    """TableView.zip(views) -> TableView: the columns of same-length views side by side.

    The result shows the columns of views[0], then those of views[1], ... in their order. No
    row is copied: the result holds each input's rows as they are (its column groups), so
    adding a computed column never copies the existing ones; every view operation, save,
    load and pickle works on it as on any view. Different lengths are a ValueError naming
    both; a column name in two views is a ValueError naming it."""
    if isinstance(views, TableView):
        raise TypeError("zip() takes a list of TableView objects, not one TableView")
    views = list(views)
    if not views:
        raise ValueError("zip() needs at least one view")
    return TableView._zip(views)


def with_columns(self, other):
    """with_columns(other) -> TableView: this view's columns with `other`'s added.

    `other` (a TableView of the same length) gives columns: one named as a column of this
    view replaces it in place, the others are appended in `other`'s order. No row is copied
    (see TableView.zip). A different length is a ValueError naming both."""
    if not isinstance(other, TableView):
        raise TypeError(f"with_columns() takes a TableView, not {type(other).__name__}")
    if len(other) != len(self):
        raise ValueError(f"cannot add columns of {len(other)} rows to a view of {len(self)} rows")
    theirs = other.column_names
    replaced = set(theirs)
    mine = [c for c in self.column_names if c not in replaced]
    if not mine:
        return other.select_columns([c for c in self.column_names] + [c for c in theirs if c not in self.column_names])
    both = TableView._zip([self.select_columns(mine), other])
    order = [c for c in self.column_names] + [c for c in theirs if c not in set(self.column_names)]
    return both.select_columns(order)


def _attach():
    TableView.rename_columns = rename_columns
    TableView.zip = staticmethod(zip_views)
    TableView.with_columns = with_columns
    TableView.shard = shard
    TableView.train_test_split = train_test_split
    TableView.filter = filter
    TableView.drop_columns = drop_columns
    TableView.map = map

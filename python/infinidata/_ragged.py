"""Ragged: rows of varying length as one values array and int64 offsets (a list column read).

A Ragged of n rows holds a 1-D NumPy array ``values`` and an int64 array ``offsets`` of n + 1
entries, non-decreasing and within ``values``: row i is ``values[offsets[i]:offsets[i + 1]]``.
It is what a multi-row read or a batch gives for a list column, and one way to build one.
Everything is NumPy work over the two arrays: no Python object per row.
"""

import numpy as np

__all__ = ["Ragged"]

# The value dtypes a list column holds (numeric and bool; no times, no long double).
_LIST_KINDS = "biufc"


def _check_value_dtype(dtype, what):
    dtype = np.dtype(dtype)
    ok = dtype.kind in _LIST_KINDS and dtype.fields is None and dtype.subdtype is None
    if ok and dtype.kind == "f":
        ok = dtype.itemsize <= 8
    if ok and dtype.kind == "c":
        ok = dtype.itemsize <= 16
    if not ok:
        raise TypeError(f"{what}: list values must be bool, integers, float16/32/64 or complex64/128, "
                        f"not {dtype}")
    return dtype


class Ragged:
    """Ragged(values, offsets): n rows of varying length over one 1-D values array.

    ``values`` is any 1-D array of bool, integers, float16/32/64 or complex64/128 values;
    ``offsets`` is n + 1 integers, non-decreasing, within ``len(values)`` (they need not start
    at 0). ``len(r)`` is n; ``r[i]`` is row i as a 1-D view of values; ``r[slice | int array |
    bool mask]`` is a Ragged; ``lengths`` is int64; ``tolist()`` gives lists of Python
    numbers; ``to_padded(pad_value=0, length=None)`` gives an (n, length) array and the
    lengths clipped to length.
    """

    __slots__ = ("_values", "_offsets")

    def __init__(self, values, offsets):
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"Ragged values must be 1-D, not {values.ndim}-D")
        _check_value_dtype(values.dtype, "Ragged")
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or offsets.shape[0] < 1:
            raise ValueError("Ragged offsets must be a 1-D array of n + 1 entries (at least one)")
        if offsets.dtype.kind not in "iu":
            raise TypeError(f"Ragged offsets must be integers, not {offsets.dtype}")
        if offsets.dtype.kind == "u" and offsets.size and offsets.max() > np.iinfo(np.int64).max:
            raise ValueError("Ragged offsets exceed the int64 range")
        offsets = offsets.astype(np.int64, copy=False)
        if offsets[0] < 0:
            raise ValueError(f"Ragged offset {int(offsets[0])} (entry 0) is negative")
        if offsets.shape[0] > 1:
            d = np.diff(offsets)
            bad = np.flatnonzero(d < 0)
            if bad.size:
                i = int(bad[0]) + 1
                raise ValueError(f"Ragged offsets must be non-decreasing: entry {i} is {int(offsets[i])} "
                                 f"after {int(offsets[i - 1])}")
        if offsets[-1] > values.shape[0]:
            raise ValueError(f"Ragged offset {int(offsets[-1])} (entry {offsets.shape[0] - 1}) is past the "
                             f"{values.shape[0]} values")
        self._values = values
        self._offsets = offsets

    @classmethod
    def _trusted(cls, values, offsets):
        """A Ragged over arrays the library made (checked by construction): no O(n) checks."""
        r = object.__new__(cls)
        r._values = values
        r._offsets = offsets
        return r

    @classmethod
    def from_arrays(cls, rows, dtype=None):
        """A Ragged holding each 1-D array of `rows` (a sequence) as a row, values joined as
        numpy.concatenate joins them (dtype: their common type, or `dtype`)."""
        rows = list(rows)
        for i, r in enumerate(rows):
            if not isinstance(r, np.ndarray) or r.ndim != 1:
                raise TypeError(f"row {i} is {type(r).__name__}"
                                f"{'' if not isinstance(r, np.ndarray) else f' of {r.ndim} dimensions'}, "
                                "not a 1-D array")
        lengths = np.fromiter((r.shape[0] for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if rows:
            values = np.concatenate(rows, dtype=dtype) if dtype is not None else np.concatenate(rows)
        else:
            values = np.zeros(0, dtype=dtype if dtype is not None else np.float64)
        return cls(values, offsets)

    @property
    def values(self):
        """The values array (1-D); rows are windows of it."""
        return self._values

    @property
    def offsets(self):
        """int64, n + 1 entries: row i is values[offsets[i]:offsets[i + 1]]."""
        return self._offsets

    @property
    def dtype(self):
        """The values' dtype."""
        return self._values.dtype

    @property
    def lengths(self):
        """int64 array of the n row lengths."""
        return np.diff(self._offsets)

    def __len__(self):
        return self._offsets.shape[0] - 1

    def __iter__(self):
        v, o = self._values, self._offsets
        for i in range(len(self)):
            yield v[o[i]:o[i + 1]]

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if i < -n or i >= n:
                raise IndexError(f"index {i} is out of bounds for a Ragged of {n} rows")
            if i < 0:
                i += n
            return self._values[self._offsets[i]:self._offsets[i + 1]]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                stop = max(stop, start)
                return Ragged._trusted(self._values, self._offsets[start:stop + 1])
            return self._take(np.arange(start, stop, step, dtype=np.int64))
        if isinstance(key, tuple):
            raise TypeError("a Ragged is 1-D: index it with one int, slice, int array or bool mask")
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} does not match a Ragged of {n} rows")
            return self._take(np.flatnonzero(idx))
        if idx.dtype.kind not in "iu" and not (idx.size == 0 and idx.dtype.kind == "f"):
            raise TypeError(f"a Ragged is indexed by int, slice, int array or bool mask, not {idx.dtype}")
        if idx.ndim != 1:
            raise IndexError(f"a Ragged takes a 1-D index array, not {idx.ndim}-D")
        idx = idx.astype(np.int64, copy=False)
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < -n or hi >= n:
                bad = lo if lo < -n else hi
                raise IndexError(f"index {bad} is out of bounds for a Ragged of {n} rows")
            idx = np.where(idx < 0, idx + n, idx)
        return self._take(idx)

    def _take(self, idx):
        """Rows idx (int64, in range) as a new Ragged with its own values."""
        o = self._offsets
        starts, ends = o[idx], o[idx + 1]
        lengths = ends - starts
        offsets = np.zeros(idx.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            return Ragged._trusted(self._values[:0].copy(), offsets)
        # positions: for each output value, its source index (vectorized, no per-row loop)
        pos = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1] - starts, lengths)
        return Ragged._trusted(self._values[pos], offsets)

    def tolist(self):
        """A list of n lists of Python numbers (as ndarray.tolist gives)."""
        o = self._offsets
        v = self._values[o[0]:o[-1]].tolist()
        o = (o - o[0]).tolist()
        return [v[a:b] for a, b in zip(o[:-1], o[1:])]

    def to_padded(self, pad_value=0, length=None):
        """(array, lengths): an (n, length) array of the values' dtype, each row's first
        min(len, length) values then pad_value; lengths int64, clipped to length. length=None
        is the longest row (0 when there are no rows)."""
        lengths = self.lengths
        n = lengths.shape[0]
        if length is None:
            length = int(lengths.max()) if n else 0
        elif isinstance(length, (bool, np.bool_)) or not isinstance(length, (int, np.integer)):
            raise TypeError(f"length must be an int or None, not {type(length).__name__}")
        length = int(length)
        if length < 0:
            raise ValueError(f"length must be 0 or more, not {length}")
        clipped = np.minimum(lengths, length)
        out = np.full((n, length), pad_value, dtype=self._values.dtype)
        total = int(clipped.sum())
        if total:
            rows = np.repeat(np.arange(n, dtype=np.int64), clipped)
            starts = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(clipped, out=starts[1:])
            cols = np.arange(total, dtype=np.int64) - np.repeat(starts[:-1], clipped)
            src = np.repeat(self._offsets[:-1], clipped) + cols
            out[rows, cols] = self._values[src]
        return out, clipped

    def __eq__(self, other):
        if not isinstance(other, Ragged):
            return NotImplemented
        return (self.dtype == other.dtype and len(self) == len(other) and
                np.array_equal(self.lengths, other.lengths) and
                np.array_equal(self._values[self._offsets[0]:self._offsets[-1]],
                               other._values[other._offsets[0]:other._offsets[-1]]))

    __hash__ = None

    def __repr__(self):
        n = len(self)
        rows = [repr(self[i].tolist()) for i in range(min(n, 3))]
        more = ", ..." if n > 3 else ""
        return f"Ragged([{', '.join(rows)}{more}], dtype={self.dtype}, rows={n})"

    def __reduce__(self):
        return (Ragged, (self._values, self._offsets))


def _as_list_column(val, name, want_list=False):
    """What the constructor calls for a column value that may be a list column: a Ragged, or a
    list or object array of 1-D arrays (lengths differing, for a list) -> a Ragged; anything
    else -> None (NumPy's conversion decides). With want_list (a writer whose schema has a list
    column here), rows of equal length (a list of them, or a 2-D array) are a Ragged too."""
    if isinstance(val, Ragged):
        return val
    if want_list:
        r = _as_list_column(val, name)
        if r is not None:
            return r
        arr = val if isinstance(val, np.ndarray) else np.asarray(val)
        if arr.ndim == 2 and arr.dtype != object:
            n, k = arr.shape
            return Ragged(arr.reshape(-1), np.arange(n + 1, dtype=np.int64) * k)
        return None
    if isinstance(val, np.ndarray):
        if val.dtype != object or val.ndim != 1 or val.shape[0] == 0:
            return None
        first = val[0]
        if not isinstance(first, np.ndarray) or first.ndim != 1:
            return None
        rows = list(val)
    elif isinstance(val, (list, tuple)):
        if not val or not isinstance(val[0], np.ndarray) or val[0].ndim != 1:
            return None
        rows = val
        n0 = val[0].shape[0]
        if all(isinstance(r, np.ndarray) and r.ndim == 1 and r.shape[0] == n0 for r in rows):
            return None  # equal lengths: a 2-D array, as NumPy makes it
    else:
        return None
    for i, r in enumerate(rows):
        if not isinstance(r, np.ndarray) or r.ndim != 1:
            raise TypeError(f"column '{name}': row {i} is {type(r).__name__}"
                            f"{f' of {r.ndim} dimensions' if isinstance(r, np.ndarray) else ''}; a list "
                            "column needs a 1-D array in every row")
    try:
        return Ragged.from_arrays(rows)
    except TypeError as e:
        raise TypeError(f"column '{name}': {e}") from None

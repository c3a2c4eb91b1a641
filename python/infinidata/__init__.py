"""infinidata: datasets far larger than memory.

Tables of named NumPy columns live in memory-mapped temp files, not in the Python heap.
Slices, index arrays, shuffles, filters and concatenations are views that copy no row data;
reads return NumPy arrays; batches stream out on worker threads. The engine is C.

    >>> import numpy as np, infinidata
    >>> tv = infinidata.TableView({"x": np.arange(10, dtype=np.float32)})
    >>> tv[2:5]["x"]
    array([2., 3., 4.], dtype=float32)

Temp files go under $INFINIDATA_TMPDIR, else ./.infinidata_tmp (created on first use).
"""

from ._infinidata import (  # noqa: F401
    FORMAT_VERSION,
    BatchIter,
    CorruptDataError,
    TableView,
    gc,
    memory_stats,
    gc_saved,
)
from . import _arrow
from ._ragged import Ragged


def _column(self, name):
    """column(name) -> numpy.ndarray

    One column, all rows, as one array (what tv[:][name] gives, without reading the other
    columns). An unknown name is a KeyError listing the columns.
    """
    if not isinstance(name, str):
        raise TypeError(f"column() takes a column name (str), not {type(name).__name__}")
    return self.select_columns([name])[:][name]


def _attach():
    """Add the Python-level methods (column, data in and out) to the C TableView type."""
    TableView.column = _column
    for name in ("iter_arrow", "to_arrow", "to_parquet", "to_pandas", "to_hf"):
        setattr(TableView, name, getattr(_arrow, name))
    for name in ("from_arrow", "from_parquet", "from_pandas", "from_hf"):
        setattr(TableView, name, staticmethod(getattr(_arrow, name)))


_attach()


from ._writer import TableWriter, from_batches as _from_batches  # noqa: E402

TableView.from_batches = staticmethod(_from_batches)

from . import _ops  # noqa: E402

_ops._attach()
SplitResult = _ops.SplitResult

__all__ = ["Ragged", "SplitResult", "TableView", "TableWriter", "BatchIter", "CorruptDataError", "FORMAT_VERSION", "gc",
           "memory_stats", "gc_saved"]
__version__ = "0.1.0"

from . import _mpexit  # noqa: E402,F401  (multiprocessing children remove their temp files)

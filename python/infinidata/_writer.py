"""TableWriter: build a table from batches of rows, in bounded memory."""

import os
import threading
import warnings

from . import _progress
from ._infinidata import TableView, _Writer

__all__ = ["TableWriter", "from_batches"]


class TableWriter:
    """Build a table larger than memory from batches of rows.

    ``schema`` is a dict of column name -> ``(dtype, row_shape)``, as ``TableView.schema``
    gives (``"U"``/``str`` for text, ``"S"``/``bytes`` for raw bytes); without it the first
    batch decides. ``append(batch)`` takes a dict of arrays (same column names, dtypes and
    row shapes; string widths and sources may vary; byte order is normalized);
    ``finish()`` returns the TableView of every appended row, in order. Memory stays
    bounded by one batch plus a few MB whatever the total: each batch is written to the
    temp area as it comes.

    As a context manager, an exception in the block, or leaving it without ``finish()``
    (with a ResourceWarning), removes everything written; so does dropping an unfinished
    writer. One writer may be shared by threads (calls are serialized). A forked child
    cannot use its parent's writer (RuntimeError) and never removes its files.
    ``progress``: see ``infinidata`` progress bars (rows appended, total unknown).
    """

    def __init__(self, schema=None, *, progress=None):
        self._w = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._bar = None
        _progress.wanted(progress)  # a bad value fails before anything is made
        self._w = _Writer(schema)
        self._bar = _progress.start(progress, -1, "TableWriter", "rows")

    def append(self, batch):
        """Add the rows of ``batch``, a dict of column name -> array."""
        with self._lock:
            before = self._w.rows
            self._w.append(batch)
            if self._bar is not None:
                self._bar.update(self._w.rows - before)

    def finish(self):
        """The TableView of every appended row, in order. The writer is closed after."""
        with self._lock:
            try:
                return self._w.finish()
            finally:
                self._close_bar()

    def abort(self):
        """Drop everything written (idempotent)."""
        with self._lock:
            self._close_bar()
            self._w.abort()

    @property
    def rows(self):
        """Rows appended so far."""
        return self._w.rows

    @property
    def closed(self):
        """True once finished or aborted."""
        return not self._w.open

    def _close_bar(self):
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._w.open and os.getpid() == self._pid:
            if exc_type is None:
                warnings.warn("TableWriter left without finish(): what it wrote was removed",
                              ResourceWarning, stacklevel=2)
            self.abort()
        return False

    def __del__(self):
        w = getattr(self, "_w", None)
        if w is not None and w.open and os.getpid() == self._pid:
            warnings.warn("unfinished TableWriter dropped: what it wrote was removed",
                          ResourceWarning, stacklevel=2)
            try:
                self._close_bar()
            finally:
                w.abort()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<infinidata.TableWriter {state}, {self.rows} rows>"


def from_batches(iterable, *, schema=None, progress=None):
    """A TableView of the rows of every batch (dict of arrays) of ``iterable``, in order,
    built with a TableWriter (bounded memory). An exception while iterating removes what
    was written. No batch needs ``schema`` (a zero-row table), else ValueError."""
    w = TableWriter(schema, progress=progress)
    try:
        for batch in iterable:
            w.append(batch)
        return w.finish()
    finally:
        if not w.closed:
            w.abort()

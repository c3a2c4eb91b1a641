"""infinidata.torch: feeding PyTorch training from TableViews, one process to many nodes.

    from infinidata.torch import TableLoader
    loader = TableLoader(view, batch_size=256, seed=0)      # an IterableDataset
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:                                 # dicts of torch tensors
            ...

`TableLoader` is the fast path: each rank's share of an epoch is a view (slices of one
seeded shuffle of the whole view: no row is copied to make it) iterated by the C batch
iterator on worker threads, and every batch becomes tensors without a copy
(`torch.from_numpy` over the gathered buffers). It splits rows across ranks
(`torch.distributed`, else `RANK`/`WORLD_SIZE`) and across DataLoader workers, and its
`state_dict()` resumes exactly, also with another world size or batch size.

`TableDataset` is a map-style Dataset for code built around samplers: `__getitems__` makes a
`DataLoader(batch_size=B)` fetch each batch with one gather instead of B reads, and
`collate` turns that gathered batch into tensors without re-stacking samples.

Importing `infinidata` never imports torch; importing this module does.
"""

import collections
import collections.abc
import concurrent.futures
import hashlib
import operator
import os

import numpy as np
import torch
import torch.utils.data as _tud

from . import TableView

__all__ = ["TableDataset", "TableLoader", "collate", "view_fingerprint", "default_threads",
           "default_readahead", "python_pack"]

_STATE_VERSION = 1
_PACK_GROUP_TOKENS = 1 << 18  # tokens packed per C call (consecutive batches of a rank together)
_FP_SAMPLES = 64  # rows read to fingerprint a view


# ---- helpers ----

def default_threads(in_worker=False):
    """Gather threads TableLoader uses when `threads=None`: the README's recommendation of
    2 x the CPUs this process may use, shared among the ranks of the machine (divided by
    `LOCAL_WORLD_SIZE`, which torchrun sets), at least 1; the batch iterator itself never
    starts more than 2 x CPUs or 64. 1 inside a DataLoader worker (the workers already run
    side by side)."""
    if in_worker:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    local = _env_int("LOCAL_WORLD_SIZE") or 1
    return max(1, (2 * cpus) // max(1, local))


def default_readahead(threads):
    """Batches in flight TableLoader uses when `readahead=None`: 2 x threads (the README's
    `threads=4, readahead=8` on 2 cores)."""
    return 2 * threads


def _to_tensor(a):
    """A NumPy array as a torch tensor sharing its memory, when torch has the dtype (bool,
    integers, floats, complex); other arrays (strings, datetimes) are returned unchanged."""
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biufc":
        return a
    try:
        return torch.from_numpy(a)
    except TypeError:  # a dtype this torch cannot hold
        return a


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {rng}, got {value}")
    return value


def _check_view(view):
    if not isinstance(view, TableView):
        raise TypeError(f"view must be an infinidata.TableView, not {type(view).__name__}")


def _select(view, columns):
    if columns is None:
        return view
    if isinstance(columns, str):
        columns = [columns]
    return view.select_columns(list(columns))


def _hash_array(h, a):
    if hasattr(a, "offsets") and hasattr(a, "values"):  # a Ragged (list column)
        h.update(b"ragged")
        _hash_array(h, a.offsets)
        _hash_array(h, a.values)
        return
    a = np.asarray(a)
    h.update(repr((a.dtype.kind, a.shape)).encode())
    if a.dtype.kind in "UOT":
        h.update("\x00".join(map(str, a.ravel().tolist())).encode("utf-8", "surrogatepass"))
    elif a.dtype.kind == "S":
        h.update(b"\x00".join(a.ravel().tolist()))
    else:
        h.update(a.dtype.str.encode())
        h.update(np.ascontiguousarray(a).tobytes())


def view_fingerprint(view):
    """A short hex string identifying `view` by its content and structure, not its random
    uuid: the same for a view saved and loaded again (or pickled to another process), and
    different, with high probability, for another table, another row order or another schema.

    It hashes (BLAKE2b) the row count, every column's name, dtype and row shape, and the
    values of 64 rows at evenly spaced positions: one small gather, cheap for any size. It
    does not read every row, so two views that differ only in rows between the sampled
    positions have the same fingerprint."""
    _check_view(view)
    h = hashlib.blake2b(digest_size=16)
    n = len(view)
    h.update(b"infinidata-view-fingerprint-1")
    h.update(n.to_bytes(8, "little"))
    for name, (dtype, shape) in view.schema.items():
        shape = shape if isinstance(shape, str) else tuple(shape)  # "list" for a list column
        h.update(repr((name, np.dtype(dtype).str, shape)).encode())
    if n:
        k = min(n, _FP_SAMPLES)
        pos = (np.arange(k, dtype=np.int64) * n) // k
        rows = view[pos]
        for name in view.column_names:
            h.update(name.encode())
            _hash_array(h, rows[name])
    return h.hexdigest()


def _epoch_seed(seed, epoch):
    """The shuffle seed of an epoch: a hash of (seed, epoch), in [0, 2**64)."""
    d = hashlib.blake2b(f"infinidata.torch:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(d, "little")


def _blocks(view, blocks):
    """The rows of `view` named by [(start, length), ...], in order, as one view (slices and
    a concat: no row is copied)."""
    parts = [view.new_view(slice(s, s + n)) for s, n in blocks if n > 0]
    if not parts:
        return view.new_view(slice(0, 0))
    if len(parts) == 1:
        return parts[0]
    return TableView.concat(parts)


def _rank_plan(n, start, batch_size, rank, world_size, drop_last):
    """A rank's batches of one epoch from global row `start`: a list of (offset, length)
    blocks of the epoch order, one per batch, and the global rows consumed after each.

    Each global step takes world_size x batch_size consecutive rows; rank r takes the r-th
    block of batch_size. A last partial step is dropped with drop_last, else split evenly
    across ranks in order (the first `rest % world_size` ranks one row more), so every rank
    has the same number of batches; a rank may then get an empty last batch when fewer rows
    than ranks remain."""
    step = world_size * batch_size
    rem = max(0, n - start)
    full = rem // step
    blocks = [(start + s * step + rank * batch_size, batch_size) for s in range(full)]
    after = [start + (s + 1) * step for s in range(full)]
    tail = rem - full * step
    if tail and not drop_last:
        q, m = divmod(tail, world_size)
        base = start + full * step
        blocks.append((base + rank * q + min(rank, m), q + (1 if rank < m else 0)))
        after.append(n)
    return blocks, after


def _rows_after(n, start, batch_size, world_size, drop_last, batches):
    """Global rows consumed once every rank has taken `batches` batches from `start`."""
    _, after = _rank_plan(n, start, batch_size, 0, world_size, drop_last)
    if batches <= 0:
        return start
    if batches >= len(after):
        return n
    return after[batches - 1]


def _env_int(name):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


class _PackSpec:
    """pack= checked against the view: the column (its index after selection), seq_len, the
    pad id as the token dtype's bytes."""

    __slots__ = ("column", "seq_len", "pad_id", "pad", "dtype")

    def __init__(self, pack, view):
        if not isinstance(pack, collections.abc.Mapping):
            raise TypeError(f"pack must be a dict such as {{'column': 'tokens', 'seq_len': 2048}}, "
                            f"not {type(pack).__name__}")
        unknown = sorted(set(pack) - {"column", "seq_len", "pad_id"}, key=str)
        if unknown:
            raise ValueError(f"pack has unknown keys {unknown}: it takes 'column', 'seq_len' and "
                             f"'pad_id'")
        for key in ("column", "seq_len"):
            if key not in pack:
                raise ValueError(f"pack needs {key!r} (e.g. {{'column': 'tokens', 'seq_len': 2048}})")
        column = pack["column"]
        if not isinstance(column, str):
            raise TypeError(f"pack['column'] must be a column name (str), not {type(column).__name__}")
        schema = view.schema
        if column not in schema:
            raise KeyError(f"pack['column'] {column!r} is not a column of the view; its columns are "
                           f"{list(view.column_names)}")
        dtype, shape = schema[column]
        dtype = np.dtype(dtype)
        if shape == "list" and dtype.kind in "iu":
            self.dtype = dtype
        elif dtype.kind == "S" and shape == ():
            self.dtype = np.dtype(np.uint8)  # a bytes column packs its bytes (byte-level models)
        else:
            kind = "a list column of " + str(dtype) if shape == "list" else f"{dtype} with row shape {shape}"
            raise TypeError(f"pack['column'] {column!r} must be a list column of integer token ids "
                            f"(or a bytes column, packed byte by byte); it is {kind}")
        self.column = column
        self.seq_len = _check_int("pack['seq_len']", pack["seq_len"], 1, 2**31 - 1)
        pad_id = pack.get("pad_id", 0)
        if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)):
            raise TypeError(f"pack['pad_id'] must be an int, not {type(pad_id).__name__}")
        info = np.iinfo(self.dtype)
        if not info.min <= int(pad_id) <= info.max:
            raise ValueError(f"pack['pad_id'] {int(pad_id)} does not fit the tokens' dtype "
                             f"{self.dtype} ({info.min}..{info.max})")
        self.pad_id = int(pad_id)
        self.pad = np.array(self.pad_id, dtype=self.dtype).tobytes()


def python_pack(docs, seq_len, pad_id=0):
    """The plain Python packer sequence packing is checked and measured against: `docs` (an
    iterable of 1-D integer arrays, in order) concatenated and cut into rows of `seq_len`,
    the last row padded with `pad_id`. Returns (tokens (rows, seq_len), position_ids int64,
    cu_seqlens int32) as TableLoader(pack=...) defines them for one batch of every row."""
    tokens, positions, cu = [], [], [0]
    row, pos, dtype = [], [], None
    for doc in docs:
        doc = np.asarray(doc)
        dtype = doc.dtype if dtype is None else dtype
        i = 0
        while i < len(doc):
            take = min(len(doc) - i, seq_len - len(row))
            row.extend(doc[i:i + take].tolist())
            pos.extend(range(take))
            cu.append(len(tokens) * seq_len + len(row))
            i += take
            if len(row) == seq_len:
                tokens.append(row)
                positions.append(pos)
                row, pos = [], []
    if row:
        k = seq_len - len(row)
        row.extend([pad_id] * k)
        pos.extend(range(k))
        tokens.append(row)
        positions.append(pos)
        cu.append(len(tokens) * seq_len)
    dtype = np.int64 if dtype is None else dtype
    return (np.array(tokens, dtype=dtype).reshape(-1, seq_len),
            np.array(positions, dtype=np.int64).reshape(-1, seq_len), np.array(cu, dtype=np.int32))


def _packed_rows(total_tokens, seq_len, drop_last):
    """Packed rows of an epoch: the last one partial (padded) unless drop_last drops it."""
    return total_tokens // seq_len if drop_last else -(-total_tokens // seq_len)


# ---- the map-style dataset ----

class _Gathered(collections.abc.Sequence):
    """The samples of one batch, gathered at once: sample k is {column: column[k]}. A list of
    samples to PyTorch's default collate; `collate` turns it into tensors without stacking."""

    __slots__ = ("columns", "_n")

    def __init__(self, columns, n):
        self.columns = columns
        self._n = n

    def __len__(self):
        return self._n

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._n))]
        k = operator.index(k)
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError(f"sample {k} out of range for a batch of {self._n}")
        return {name: col[k] for name, col in self.columns.items()}


def collate(batch):
    """A DataLoader `collate_fn` for both classes. A batch that TableDataset.__getitems__
    gathered at once becomes a dict of tensors sharing the gathered arrays' memory (string
    and datetime columns stay NumPy); a TableLoader batch (a dict: `batch_size=None`) passes
    through unchanged (PyTorch's default would try to convert its NumPy string and datetime
    columns); anything else (a list of transformed samples) goes to PyTorch's default
    collate."""
    if isinstance(batch, _Gathered):
        return {name: _to_tensor(col) for name, col in batch.columns.items()}
    if isinstance(batch, collections.abc.Mapping):
        return batch
    return _tud.default_collate(batch)


class TableDataset(_tud.Dataset):
    """A map-style Dataset over a TableView.

    `ds[i]` is row i as `view[i]` gives it (a dict of NumPy scalars and arrays), passed
    through `transform` when given. `__getitems__(indices)` (what a DataLoader with a
    batch_size calls) reads all the indices with one gather and returns the batch's samples
    as a list-like (`transform` then applies to each sample); the default collate works on
    it, and `collate_fn=infinidata.torch.collate` makes tensors from the gathered arrays
    without stacking samples one by one. `columns` (a name or names) restricts the columns.

    Each sample read on its own (`batch_size=None`, or a sampler without batching) costs a
    Python call and a small read per row: prefer TableLoader where the order can be the
    loader's."""

    def __init__(self, view, columns=None, transform=None):
        _check_view(view)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, not {type(transform).__name__}")
        self.view = _select(view, columns)
        self.transform = transform

    def __len__(self):
        return len(self.view)

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"TableDataset index must be an int, not {type(index).__name__}")
        sample = self.view[int(index)]
        return self.transform(sample) if self.transform is not None else sample

    def __getitems__(self, indices):
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"__getitems__ takes a list of int indices, got {type(indices).__name__}"
                            f" of dtype {idx.dtype}")
        rows = self.view[idx.astype(np.int64, copy=False)]
        batch = _Gathered(rows, len(idx))
        if self.transform is not None:
            return [self.transform(s) for s in batch]
        return batch


# ---- the loader ----

class TableLoader(_tud.IterableDataset):
    """An IterableDataset yielding batches of a TableView as dicts of torch tensors,
    shuffled per epoch, split across ranks and DataLoader workers, resumable exactly.

    view: the TableView (every row once per epoch). batch_size: rows per batch (per rank).
    shuffle: each epoch's order is a seeded permutation of the whole view, derived from
    (seed, epoch) and independent of the number of ranks; without shuffle the view's order.
    drop_last: drop the last partial global step. threads / readahead: the C batch
    iterator's gather threads and batches in flight (None: `default_threads()`, 2 x threads).
    columns: a name or names to read (default all). transform: called on each batch (the dict
    of tensors), its result yielded. rank / world_size: None: from torch.distributed when
    initialised, else the RANK / WORLD_SIZE environment variables, else 0 / 1.
    pin_memory: copy each tensor to pinned memory (needs an accelerator).
    pad: {list column: (pad_value, length)}: those list columns come as (batch, length)
    tensors plus "<name>_lengths" (int64), as `batch_iter(pad=...)` gives them; other list
    columns come as `Ragged`.
    pack: {"column": name, "seq_len": L, "pad_id": 0}: sequence packing. The column's
    documents (a list column of integer token ids; a bytes column packs its bytes) are
    concatenated in epoch order and cut into packed rows of L tokens; a batch is batch_size
    consecutive packed rows, as {"tokens": (batch, L), "position_ids": int64 (batch, L),
    restarting at every document and every row, "cu_seqlens": int32, the segment boundaries
    over the flattened batch for variable-length attention}. Only the epoch's last row is
    padded (pad_id), and with drop_last it is dropped. Ranks, workers, len() and resume
    count packed rows instead of table rows; the copying runs in C on `threads` threads.

    Numeric columns become tensors sharing the gathered buffers (`torch.from_numpy`); string
    and datetime columns stay NumPy arrays."""

    def __init__(self, view, batch_size, *, shuffle=True, seed=0, drop_last=False, threads=None,
                 readahead=None, columns=None, transform=None, rank=None, world_size=None,
                 pin_memory=False, pad=None, pack=None):
        super().__init__()
        _check_view(view)
        self._pack = None
        if pack is not None:
            if columns is not None or pad is not None:
                raise ValueError("pack= yields only the packed tokens, position_ids and cu_seqlens: "
                                 "columns= and pad= cannot be combined with it")
            self._pack = _PackSpec(pack, view)
            columns = [self._pack.column]
        self.pad = self._check_pad(pad, _select(view, columns))
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.seed = _check_int("seed", seed, 0, 2**64 - 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.threads = None if threads is None else _check_int("threads", threads, 1)
        self.readahead = None if readahead is None else _check_int("readahead", readahead, 0)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, not {type(transform).__name__}")
        self.transform = transform
        self.world_size = None if world_size is None else _check_int("world_size", world_size, 1)
        self.rank = None if rank is None else _check_int("rank", rank, 0)
        if self.rank is not None and self.world_size is not None and self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} out of range for world_size {self.world_size}")
        self.pin_memory = bool(pin_memory)
        if self.pin_memory and not _accelerator_available():
            raise ValueError("pin_memory=True needs an accelerator (CUDA or another torch "
                             "accelerator); none is available")
        self.view = view
        self._view = _select(view, columns)
        self._fingerprint = None
        self._epoch = 0
        self._pending = None    # global row at which the next pass starts (load_state_dict)
        self._consumed = 0      # global rows of the current epoch consumed so far
        self._epoch_start = 0   # global row at which the current epoch's pass started
        self._cache = None      # (epoch, the epoch-ordered view, its cumulative token counts)
        self._total_tokens = None  # pack: tokens of the whole view (the same every epoch)

    # -- epochs and ranks --

    @property
    def epoch(self):
        return self._epoch

    def set_epoch(self, epoch):
        """Make the next pass iterate epoch `epoch` (from its start, or from the position
        load_state_dict restored when it names the same epoch). Computes the epoch's order
        now, so that DataLoader workers started afterwards share it instead of each
        shuffling."""
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self._epoch:
            self._epoch = epoch
            self._pending = None
            self._consumed = 0
            self._epoch_start = 0
        self._epoch_view()

    @staticmethod
    def _check_pad(pad, view):
        if pad is None:
            return None
        if not isinstance(pad, collections.abc.Mapping):
            raise TypeError(f"pad must be a dict {{list column: (pad_value, length)}}, not "
                            f"{type(pad).__name__}")
        schema = view.schema
        for name in pad:
            if name not in schema:
                raise KeyError(f"pad names {name!r}, which is not a column of the view; its columns "
                               f"are {list(view.column_names)}")
            if schema[name][1] != "list":
                raise TypeError(f"pad names {name!r}, which is not a list column ({schema[name][0]} "
                                f"with row shape {schema[name][1]})")
        return dict(pad)

    def _epoch_view(self):
        if self._cache is not None and self._cache[0] == self._epoch:
            return self._cache[1]
        self._cache = None  # release the previous epoch's order first
        v = self._view.shuffle(seed=_epoch_seed(self.seed, self._epoch)) if self.shuffle else self._view
        self._cache = (self._epoch, v, None)
        if self._pack is not None:
            self._epoch_cum()
        return v

    def _epoch_cum(self):
        """pack: the cumulative token counts of the epoch's documents in epoch order (computed
        in C, once per epoch and process: O(documents), reading only offsets)."""
        ev = self._epoch_view()
        if self._cache[2] is None:
            cum = ev._pack_cumlen(0)
            self._cache = (self._epoch, ev, cum)
            self._total_tokens = int(cum[-1])
        return self._cache[2]

    def _units(self):
        """What an epoch counts: table rows, or packed rows with pack=."""
        if self._pack is None:
            return len(self._view)
        if self._total_tokens is None:
            self._epoch_cum()
        return _packed_rows(self._total_tokens, self._pack.seq_len, self.drop_last)

    def _rank_world(self):
        rank, world = self.rank, self.world_size
        if rank is None or world is None:
            drank = dworld = None
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                drank, dworld = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                drank, dworld = _env_int("RANK"), _env_int("WORLD_SIZE")
            rank = rank if rank is not None else (drank if drank is not None else 0)
            world = world if world is not None else (dworld if dworld is not None else 1)
        if world < 1:
            raise ValueError(f"world_size must be >= 1, got {world}")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} out of range for world_size {world}")
        return rank, world

    def _start(self):
        return self._pending if self._pending is not None else 0

    def __len__(self):
        """Batches this rank yields in the next pass (all workers together)."""
        _, world = self._rank_world()
        blocks, _ = _rank_plan(self._units(), self._start(), self.batch_size, 0, world,
                               self.drop_last)
        return len(blocks)

    # -- iteration --

    def __iter__(self):
        rank, world = self._rank_world()
        ev = self._epoch_view()
        n = self._units()
        start = self._start()
        self._pending = None
        self._consumed = start
        self._epoch_start = start
        blocks, after = _rank_plan(n, start, self.batch_size, rank, world, self.drop_last)
        info = _tud.get_worker_info()
        mine = range(len(blocks))
        if info is not None and info.num_workers > 1:
            mine = range(info.id, len(blocks), info.num_workers)
        threads = self.threads if self.threads is not None else default_threads(info is not None)
        readahead = self.readahead if self.readahead is not None else default_readahead(threads)
        if self._pack is not None:
            return self._run_pack(ev, self._epoch_cum(), blocks, after, list(mine), threads,
                                  readahead, n)
        return self._run(ev, blocks, after, list(mine), threads, readahead, n)

    def _run(self, ev, blocks, after, mine, threads, readahead, n):
        # every block but a possibly empty last one is read through one view and batch_iter
        nonempty = [k for k in mine if blocks[k][1] > 0]
        empty_last = bool(mine) and blocks[mine[-1]][1] == 0
        if _contiguous(blocks, nonempty):
            s = blocks[nonempty[0]][0]
            e = blocks[nonempty[-1]][0] + blocks[nonempty[-1]][1]
            part = ev.new_view(slice(s, e))
        else:
            part = _blocks(ev, [blocks[k] for k in nonempty])
        kw = {} if self.pad is None else {"pad": self.pad}
        it = part.batch_iter(self.batch_size, threads=threads, readahead=readahead, **kw)
        try:
            for k, batch in zip(nonempty, it):
                out = self._finish(batch)
                self._consumed = after[k]
                yield out
            if empty_last:
                out = self._finish(self._empty_batch(ev))
                self._consumed = after[mine[-1]]
                yield out
        finally:
            it.close()
        self._consumed = n

    def _empty_batch(self, ev):
        """A batch of no rows, padded list columns in their padded shape."""
        batch = ev[0:0]
        for name, (_, length) in (self.pad or {}).items():
            batch[name] = np.empty((0, length), dtype=np.dtype(ev.schema[name][0]))
            batch[name + "_lengths"] = np.empty(0, dtype=np.int64)
        return batch

    def _run_pack(self, ev, cum, blocks, after, mine, threads, readahead, n):
        """Packed batches: block k is packed rows [s, s + m) of the epoch. Consecutive batches
        of `mine` are packed together in groups of about _PACK_GROUP_TOKENS tokens, one C call
        each (ev._pack, the GIL released), on `threads` threads with about `readahead`
        batches in flight; each batch is then a slice of its group's arrays (no copy)."""
        spec = self._pack
        L = spec.seq_len
        g = max(1, min(64, _PACK_GROUP_TOKENS // max(1, self.batch_size * L)))
        groups = [mine[i:i + g] for i in range(0, len(mine), g)]

        def make(group):
            blk = np.array([blocks[k] for k in group], dtype=np.int64).reshape(-1, 2)
            return ev._pack(0, cum, blk, L, spec.pad)

        pool = concurrent.futures.ThreadPoolExecutor(threads) if threads > 1 else None
        ahead = max(threads, -(-readahead // g))
        pending = collections.deque()
        todo = iter(groups)
        try:
            while True:
                while pool is not None and len(pending) < ahead:
                    group = next(todo, None)
                    if group is None:
                        break
                    pending.append((group, pool.submit(make, group)))
                if pool is None:
                    group = next(todo, None)
                    if group is None:
                        break
                    packed = make(group)
                elif pending:
                    group, fut = pending.popleft()
                    packed = fut.result()
                else:
                    break
                tokens, pos, cu, starts = packed
                row = 0
                for i, k in enumerate(group):
                    m = blocks[k][1]
                    out = self._finish({"tokens": tokens[row:row + m], "position_ids": pos[row:row + m],
                                        "cu_seqlens": cu[starts[i]:starts[i + 1]]})
                    row += m
                    self._consumed = after[k]
                    yield out
        finally:
            if pool is not None:
                for _, fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True)
        self._consumed = n

    def _finish(self, batch):
        out = {name: _to_tensor(a) for name, a in batch.items()}
        if self.transform is not None:
            out = self.transform(out)
        if self.pin_memory:
            if isinstance(out, torch.Tensor):
                out = out.pin_memory()
            elif isinstance(out, dict):
                out = {k: (v.pin_memory() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
        return out

    # -- state --

    def fingerprint(self):
        """view_fingerprint() of the view given to the loader (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = view_fingerprint(self.view)
        return self._fingerprint

    def state_dict(self, batches=None):
        """The position to resume from: {"version", "seed", "shuffle", "epoch",
        "rows_consumed", "fingerprint", "batch_size", "world_size", "seq_len"}. rows_consumed
        counts the epoch's rows consumed by all ranks together (global steps taken x
        world_size x batch_size; the epoch's length once it is over); with pack= they are
        packed rows, and seq_len is pack's (None without packing).

        In-process iteration (no DataLoader workers) keeps it exact after every batch the
        loop received. With DataLoader workers the iteration happens in copies of the loader
        inside the workers, so this object cannot see it: pass `batches`, the number of
        batches your loop received in this epoch (the DataLoader yields them in order), and
        the position is computed from it."""
        _, world = self._rank_world()
        if batches is None:
            rows = self._pending if self._pending is not None else self._consumed
        else:
            batches = _check_int("batches", batches, 0)
            rows = _rows_after(self._units(), self._epoch_start, self.batch_size, world,
                               self.drop_last, batches)
        return {"version": _STATE_VERSION, "seed": self.seed, "shuffle": self.shuffle,
                "epoch": self._epoch, "rows_consumed": int(rows), "fingerprint": self.fingerprint(),
                "batch_size": self.batch_size, "world_size": world, "seq_len": self._seq_len()}

    def _seq_len(self):
        return None if self._pack is None else self._pack.seq_len

    def load_state_dict(self, state):
        """Resume from a state_dict(): the next pass iterates epoch state["epoch"] from its
        next unseen row, with this loader's batch size and world size (they may differ from
        the saved ones). A state taken over another view (fingerprint), with another shuffle
        setting, another packing seq_len, or malformed raises ValueError."""
        if not isinstance(state, collections.abc.Mapping):
            raise TypeError(f"state must be a dict from state_dict(), not {type(state).__name__}")
        for key in ("version", "seed", "shuffle", "epoch", "rows_consumed", "fingerprint"):
            if key not in state:
                raise ValueError(f"state is missing {key!r}: not a TableLoader state_dict()")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state version {state['version']!r} is not supported (expected "
                             f"{_STATE_VERSION})")
        seed = _check_int("state['seed']", state["seed"], 0, 2**64 - 1)
        epoch = _check_int("state['epoch']", state["epoch"], 0)
        if state.get("seq_len") != self._seq_len():
            saved = state.get("seq_len")
            raise ValueError(f"state was saved " + ("without packing" if saved is None else
                             f"packing seq_len={saved!r}") + ", this loader " +
                             ("does not pack" if self._pack is None else
                              f"packs seq_len={self._pack.seq_len}") +
                             ": rows_consumed would count other rows")
        n = self._units()
        rows = _check_int("state['rows_consumed']", state["rows_consumed"], 0, n)
        if state["fingerprint"] != self.fingerprint():
            raise ValueError(f"state was saved for another view (fingerprint {state['fingerprint']!r}, "
                             f"this view's is {self.fingerprint()!r}): not the same rows, order or "
                             f"schema")
        if bool(state["shuffle"]) != self.shuffle:
            raise ValueError(f"state was saved with shuffle={bool(state['shuffle'])}, this loader has "
                             f"shuffle={self.shuffle}")
        if seed != self.seed:
            self.seed = seed
            self._cache = None
        self._epoch = epoch
        self._pending = rows
        self._consumed = rows
        self._epoch_start = rows

    # -- pickling (spawned DataLoader workers) --

    def __getstate__(self):
        state = self.__dict__.copy()
        # resolved here, in the parent, where torch.distributed is initialised
        state["rank"], state["world_size"] = self._rank_world()
        # the epoch order travels as a description of the parent's files: no worker reshuffles;
        # packing's cumulative counts (8 bytes a document) are recomputed by each worker
        self._epoch_view()
        state["_cache"] = self._cache[:2] + (None,)
        return state


def _contiguous(blocks, ks):
    """Whether blocks ks (ascending) are back to back, so one slice covers them."""
    if not ks:
        return False
    for a, b in zip(ks, ks[1:]):
        if blocks[a][0] + blocks[a][1] != blocks[b][0]:
            return False
    return True


def _accelerator_available():
    acc = getattr(torch, "accelerator", None)
    if acc is not None and hasattr(acc, "is_available"):
        return bool(acc.is_available())
    return torch.cuda.is_available()

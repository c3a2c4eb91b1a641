"""Injected failures through the core's seam (issue 3, items 10-11): every allocation, open,
fallocate and mmap of an operation is made to fail in turn. Each failure must surface as the
right Python exception (ENOMEM -> MemoryError, ENOSPC -> OSError(ENOSPC), EMFILE ->
OSError(EMFILE)), and afterwards the core's live allocations, mappings and descriptors are
what they were before and no data file is left behind."""

import errno
import gc

import numpy as np
import pytest

import infinidata
from conftest import assert_same, data_files, expected, run_python, tmp_dir
from infinidata import _infinidata as core

TableView = infinidata.TableView
BIG = 300_000  # rows of float64: a store over 1 MiB, in a file of its own


@pytest.fixture(autouse=True)
def disarm():
    core._fault_reset()
    yield
    core._fault_reset()


def _snapshot():
    s = core._sys_stats()
    return {k: s[k] for k in ("allocs", "maps", "fds", "blobs", "file_blobs")}, data_files()


def sweep(kind, op, check, exc_types, want_errno=None, errnum=0, max_nth=400):
    """Fail the 1st, 2nd, ... call of `kind` made by op() until op() makes no such call.
    Every injected failure must raise one of exc_types (with errno want_errno for OSError) and
    leave nothing behind; the run without failure must give a result that check() accepts.
    Returns how many failures were injected."""
    tmp_dir()  # the process directory exists before counting
    gc.collect()
    injected = 0
    for nth in range(1, max_nth + 1):
        stats0, files0 = _snapshot()
        core._fault_arm(kind, nth, errnum)
        result, error = None, None
        try:
            result = op()
        except Exception as e:  # noqa: BLE001
            # keep no reference to the exception: its traceback would hold this frame
            error = (type(e), getattr(e, "errno", None), repr(e))
        fired = core._fault_reset()
        if fired:
            injected += 1
            if error is not None:
                etype, eno, text = error
                assert issubclass(etype, exc_types), (nth, text)
                if issubclass(etype, OSError) and want_errno is not None:
                    assert eno == want_errno, (nth, eno, text)
            else:  # a failure the core recovered from: the result must still be right
                check(result)
        else:
            assert error is None, (nth, error)
            check(result)
        result = None
        stats1, files1 = _snapshot()
        assert stats1 == stats0, (nth, stats0, stats1)
        assert files1 == files0, (nth, files0, files1)
        if not fired:
            return injected
    raise AssertionError(f"op still failing after {max_nth} injected faults")


# ---- the operations ----

def small_cols():
    return {"x": np.arange(10, dtype=np.int64), "s": np.array(["ab", "", "héllo"] * 3 + ["z"]),
            "o": np.array([b"q", b"rr"] * 5, dtype=object)}


def big_cols():
    return {"x": np.arange(BIG, dtype=np.float64), "s": np.array(["ab", "c"] * (BIG // 2))}


def text_cols():
    # 9.6 MB of NumPy unicode: an open column, encoded once on the pipeline's threads
    words = np.array([f"w{i:05d}" + "é" * (i % 3) + "x" * (i % 29) for i in range(1000)], dtype="U40")
    return {"t": words[np.arange(60_000) % 1000], "x": np.arange(60_000, dtype=np.int32)}


SMALL = small_cols()
BIGC = big_cols()
TEXT = text_cols()


def _table_check(cols):
    def check(tv):
        assert_same(tv[:], expected(cols, slice(None)))
    return check


def _ops():
    s_tv = TableView(SMALL)
    b_tv = TableView(BIGC)
    s2 = TableView(small_cols())
    idx_s = np.array([3, 3, -1, 0, 9])
    idx_b = np.arange(BIG)[::-1]
    mask_b = np.arange(BIG) % 3 != 0  # 200,000 rows kept: a ref array of its own file

    def model(cols, key):
        return {k: v[key] for k, v in cols.items()}

    def view_check(m):
        def check(v):
            assert_same(v[:], expected(m, slice(None)))
        return check

    perm_s = TableView({"p": np.arange(10)}).shuffle(5)[:]["p"]
    perm_b = TableView({"p": np.arange(BIG)}).shuffle(5)[:]["p"]
    cat_m = {k: np.concatenate([SMALL[k], SMALL[k][::-1]]) for k in SMALL}

    def batches(tv, cols, bsize, threads, readahead):
        def op():
            return list(tv.batch_iter(bsize, threads=threads, readahead=readahead))

        def check(bs):
            assert len(bs) == -(-len(tv) // bsize)
            for k, b in enumerate(bs):
                assert_same(b, expected(cols, slice(k * bsize, (k + 1) * bsize)))
        return op, check

    ops = {
        "construct_small": (lambda: TableView(SMALL), _table_check(SMALL)),
        "construct_big": (lambda: TableView(BIGC), _table_check(BIGC)),
        "construct_text_open": (lambda: TableView(TEXT), _table_check(TEXT)),
        "construct_strings_2d": (
            lambda: TableView({"m": np.array([["a", "bc"], ["", "d"]] * 20)}),
            _table_check({"m": np.array([["a", "bc"], ["", "d"]] * 20)})),
        "take_small": (lambda: s_tv.new_view(idx_s), view_check(model(SMALL, idx_s))),
        "take_big": (lambda: b_tv.new_view(idx_b), view_check(model(BIGC, idx_b))),
        "mask_big": (lambda: b_tv.new_view(mask_b), view_check(model(BIGC, mask_b))),
        "slice": (lambda: b_tv.new_view(slice(5, None, -7)),
                  view_check(model(BIGC, slice(5, None, -7)))),
        "shuffle_small": (lambda: s_tv.shuffle(5), view_check(model(SMALL, perm_s))),
        "shuffle_big": (lambda: b_tv.shuffle(5), view_check(model(BIGC, perm_b))),
        "filter": (lambda: s_tv.filter(np.arange(10) % 2 == 1),
                   view_check(model(SMALL, np.arange(10) % 2 == 1))),
        "remove_strings": (lambda: b_tv.remove_matching_strings("s", ["c"]),
                           view_check(model(BIGC, np.arange(BIG) % 2 == 0))),
        "concat": (lambda: TableView.concat([s_tv, s2.new_view(slice(None, None, -1))]),
                   view_check(cat_m)),
        "select": (lambda: s_tv.select_columns(["o", "x"]),
                   view_check({"o": SMALL["o"], "x": SMALL["x"]})),
        "compose_through_concat": (
            lambda: TableView.concat([s_tv, s2.new_view(slice(None, None, -1))]).shuffle(5)
            .new_view([1, 2, 3]),
            view_check({k: v[TableView({"p": np.arange(20)}).shuffle(5)[:]["p"]][[1, 2, 3]]
                        for k, v in cat_m.items()})),
        "read_index": (lambda: b_tv[np.arange(0, BIG, 7)],
                       lambda r: assert_same(r, expected(BIGC, np.arange(0, BIG, 7)))),
        "batches_inline": batches(s_tv, SMALL, 3, 1, 0),
        "batches_threads": batches(b_tv, BIGC, 70_000, 2, 3),
    }
    return ops


OPS = _ops()
ALLOC_OPS = list(OPS)
FILE_OPS = ["construct_big", "construct_text_open", "take_big", "mask_big", "shuffle_big", "remove_strings"]


@pytest.mark.parametrize("name", ALLOC_OPS)
def test_enomem_from_allocations(name):
    op, check = OPS[name]
    n = sweep(core.FAULT_ALLOC, op, check, (MemoryError,))
    if name not in ("read_index",):  # a read allocates nothing in the core
        assert n > 0, "no allocation was made: the fault was never injected"


@pytest.mark.parametrize("name", FILE_OPS + ["construct_small", "take_small", "shuffle_small"])
def test_enospc_from_fallocate(name):
    op, check = OPS[name]
    n = sweep(core.FAULT_FALLOCATE, op, check, (OSError,), want_errno=errno.ENOSPC)
    assert n > 0


@pytest.mark.parametrize("name", FILE_OPS)
def test_emfile_from_open(name):
    op, check = OPS[name]
    n = sweep(core.FAULT_OPEN, op, check, (OSError,), want_errno=errno.EMFILE)
    assert n > 0


@pytest.mark.parametrize("name", FILE_OPS)
def test_enomem_from_mmap(name):
    op, check = OPS[name]
    n = sweep(core.FAULT_MMAP, op, check, (MemoryError,))
    assert n > 0


@pytest.mark.parametrize("name", ["construct_big", "construct_small", "construct_text_open", "shuffle_big",
                                  "compose_through_concat", "batches_threads"])
def test_any_call_failing(name):
    op, check = OPS[name]
    n = sweep(core.FAULT_ANY, op, check, (MemoryError, OSError))
    assert n > 0


@pytest.mark.parametrize("kind,err,exc", [
    ("FAULT_OPEN", errno.EACCES, PermissionError),
    ("FAULT_FALLOCATE", errno.EIO, OSError),
    ("FAULT_FALLOCATE", errno.EDQUOT, OSError),
    ("FAULT_MMAP", errno.EACCES, PermissionError),
])
def test_chosen_errno_reaches_python(kind, err, exc):
    op, check = OPS["construct_big"]
    n = sweep(getattr(core, kind), op, check, (exc,), want_errno=err, errnum=err)
    assert n > 0


def test_enospc_message_and_disk_full_partial_file_removed():
    tmp_dir()
    stats0, files0 = _snapshot()
    core._fault_arm(core.FAULT_FALLOCATE, 1)
    with pytest.raises(OSError) as ei:
        TableView(BIGC)
    assert core._fault_reset() == 1
    assert ei.value.errno == errno.ENOSPC
    assert ".idt" in str(ei.value) or "temp" in str(ei.value)
    stats1, files1 = _snapshot()
    assert stats1 == stats0 and files1 == files0


def test_sticky_fault_then_recovery():
    tmp_dir()
    stats0, files0 = _snapshot()
    core._fault_arm(core.FAULT_ALLOC, 1, 0, True)
    for op in (lambda: TableView(SMALL), lambda: TableView(BIGC)):
        with pytest.raises(MemoryError):
            op()
    assert core._fault_reset() >= 2
    stats1, files1 = _snapshot()
    assert stats1 == stats0 and files1 == files0
    assert_same(TableView(SMALL)[:], expected(SMALL, slice(None)))


def test_fault_kinds_are_distinct_constants():
    kinds = [core.FAULT_ALLOC, core.FAULT_OPEN, core.FAULT_FALLOCATE, core.FAULT_MMAP,
             core.FAULT_WRITE, core.FAULT_RENAME, core.FAULT_LINK, core.FAULT_MKDIR,
             core.FAULT_ADVISE, core.FAULT_PUNCH, core.FAULT_SYNC, core.FAULT_TRUNCATE,
             core.FAULT_STAT, core.FAULT_LOCK, core.FAULT_ANY]
    assert len(set(kinds)) == len(kinds)
    with pytest.raises(ValueError):
        core._fault_arm(-1, 1)
    with pytest.raises(ValueError):
        core._fault_arm(max(kinds) + 1, 1)


SETUP_CODE = r"""
import os, numpy as np, infinidata
from infinidata import _infinidata as c
root = os.environ['INFINIDATA_TMPDIR']
c._fault_arm(getattr(c, KIND), NTH)
try:
    infinidata.TableView({'x': np.arange(10)})
except OSError as e:
    print('OSError', e.errno, 'FIRED', c._fault_reset())
    left = sorted(os.listdir(root)) if os.path.exists(root) else []
    assert not [d for d in left if d.startswith('.new-')], left
    print('LEFT', left)
else:
    print('no error', c._fault_reset())
c._fault_reset()
tv = infinidata.TableView({'x': np.arange(10)})
assert tv[:]['x'].tolist() == list(range(10))
print('DIR', c._tmp_dir())
"""


# Opens 1 and 2 of a fresh process are the reaper's (the temp root and its listing: best
# effort, a failure skips reaping); 3 is the lock file. Stat 1 checks the root; lock 1 is the
# process directory's own lock.
@pytest.mark.parametrize("kind,nth", [("FAULT_MKDIR", 1), ("FAULT_MKDIR", 2),
                                      ("FAULT_OPEN", 3), ("FAULT_RENAME", 1),
                                      ("FAULT_STAT", 1), ("FAULT_LOCK", 1)])
def test_temp_area_setup_failures(tmp_path, kind, nth):
    root = tmp_path / "t"
    code = SETUP_CODE.replace("KIND", repr(kind)).replace("NTH", str(nth))
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(root)})
    out = p.stdout
    assert out.startswith("OSError"), out
    assert "FIRED 1" in out
    procdir = out.split("DIR ")[1].strip()
    assert procdir.startswith(str(root))

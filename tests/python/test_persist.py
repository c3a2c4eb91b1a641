"""Saving and loading (issue 6, items 1-5 and 8): round trips of every kind of view and every
dtype, dedup measured in bytes on disk, hard links and copies, atomicity under injected
faults, a corpus of damaged and hostile files (checked in subprocesses, so that a crash is a
failure rather than a lost test run), the format version, pickling (in the same process and
in a spawned child) and concurrent loads from several processes."""

import errno
import gc
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import struct
import subprocess
import sys
import uuid

import numpy as np
import pytest

import infinidata
from conftest import (FIXED_DTYPES, assert_same, blob_files, expected, run_python, sample,
                      tmp_dir)
from infinidata import _infinidata as core

TableView = infinidata.TableView
CorruptDataError = infinidata.CorruptDataError

VOCAB = ["", "a", "cat", "dog", "héllo", "😀", "zebra crossing", "x" * 40]


def make_cols(n, id0=0, seed=0):
    rng = np.random.default_rng(seed)
    pick = lambda: [VOCAB[k] for k in rng.integers(0, len(VOCAB), n)]  # noqa: E731
    return {
        "id": np.arange(id0, id0 + n, dtype=np.int64),
        "f": rng.standard_normal((n, 2, 3)).astype(np.float32),
        "u": np.array(pick(), dtype="U40"),
        "b": np.array([w.encode() for w in pick()], dtype="S80"),
        "o": np.array(pick(), dtype=object),
        "t": (np.arange(id0, id0 + n) * 1000).astype("M8[ms]"),
        "c": (rng.standard_normal(n) + 1j).astype(np.complex64),
        "ok": rng.integers(0, 2, n).astype(bool),
    }


def assert_reads_equal(got, want):
    """Two read results (dicts of arrays or scalars) are identical: columns, order, values,
    dtypes, shapes."""
    assert_same(got, want)


def check_loaded(loaded, orig, seed=0):
    """`loaded` reads exactly what `orig` reads, whatever the access."""
    rng = np.random.default_rng(seed)
    n = len(orig)
    assert len(loaded) == n
    assert loaded.column_names == orig.column_names
    assert loaded.schema == orig.schema
    assert_reads_equal(loaded[:], orig[:])
    keys = [slice(None, None, -1), slice(1, None, 3), slice(-5, None), slice(n + 3, None)]
    if n:
        keys += [rng.integers(-n, n, 17), int(rng.integers(-n, n)), 0, -1, rng.random(n) < 0.4,
                 [n - 1, 0, n - 1]]
    for key in keys:
        assert_reads_equal(loaded[key], orig[key])
    for bs, threads, ra in [(max(7, n // 40), 1, 0), (max(5, n // 30), 3, 4)]:
        got = list(loaded.batch_iter(bs, threads=threads, readahead=ra))
        want = list(orig.batch_iter(bs, threads=threads, readahead=ra))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_reads_equal(g, w)


def listing(d):
    return sorted(os.listdir(d))


def data_names(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".idt"))


def snapshot(d):
    """Name -> (inode, size, content digest) of every entry of `d`; None if `d` is missing."""
    if not os.path.exists(d):
        return None
    out = {}
    for f in os.listdir(d):
        p = os.path.join(d, f)
        st = os.stat(p)
        with open(p, "rb") as fh:
            out[f] = (st.st_ino, st.st_size, hashlib.sha1(fh.read()).hexdigest())
    return out


def disk_bytes(d):
    """Bytes on disk of the files of `d`: st_blocks*512 of distinct inodes, and st_size."""
    seen = set()
    blocks = size = 0
    for f in os.listdir(d):
        st = os.stat(os.path.join(d, f))
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        blocks += st.st_blocks * 512
        size += st.st_size
    return blocks, size


def manifest_bytes(d, name):
    st = os.stat(os.path.join(d, name + ".idtview"))
    return st.st_blocks * 512, st.st_size


def roundtrip(tv, d, name="v"):
    tv.save_to_disk(str(d), name)
    return TableView.load_from_disk(str(d), name)


# ---- round trips of every kind of view ----

@pytest.fixture(scope="module")
def tables():
    a_cols = make_cols(60, 0, seed=1)
    b_cols = make_cols(45, 1000, seed=2)
    return TableView(a_cols), TableView(b_cols), a_cols, b_cols


def _composed(a, b):
    v = a.shuffle(seed=3).new_view(slice(2, None, 2))
    v = v.filter(v[:]["ok"])
    v = v.new_view([3, 1, -1, 3, 0])
    return TableView.concat([v, b.remove_matching_strings("u", ["cat"])])


def _empty_table(a, b):
    return TableView({k: v[:0] for k, v in make_cols(3, 0, seed=9).items()})


VIEW_KINDS = {
    "base": lambda a, b: a,
    "slice_step": lambda a, b: a.new_view(slice(3, 50, 4)),
    "slice_negative_step": lambda a, b: a.new_view(slice(None, None, -3)),
    "one_row": lambda a, b: a.new_view(7),
    "take": lambda a, b: a.new_view([5, -1, 5, 0, 59, 17]),
    "take_array": lambda a, b: a.new_view(np.array([9, 8, 7, 7, 1], dtype=np.int32)),
    "mask": lambda a, b: a.new_view(a[:]["id"] % 3 == 0),
    "shuffle": lambda a, b: a.shuffle(seed=7),
    "shuffle_then_slice": lambda a, b: a.shuffle(seed=8).new_view(slice(10, None, 2)),
    "filter": lambda a, b: a.filter(a[:]["ok"]),
    "select_columns_list": lambda a, b: a.select_columns(["u", "id", "f"]),
    "select_columns_set": lambda a, b: a.select_columns({"o", "c"}),
    "remove_matching_strings": lambda a, b: a.remove_matching_strings("u", ["cat", "dog", ""]),
    "remove_matching_bytes": lambda a, b: a.remove_matching_strings("b", [b"a", "😀".encode()]),
    "concat": lambda a, b: TableView.concat([a, b]),
    "concat_of_concats": lambda a, b: TableView.concat([
        TableView.concat([a.new_view(slice(0, 10)), b.shuffle(seed=1)]),
        TableView.concat([b.filter(b[:]["ok"]), a.new_view(slice(None, None, -7))]),
    ]),
    "concat_selected": lambda a, b: TableView.concat([
        a.select_columns(["id", "u"]), b.shuffle(seed=2).select_columns(["id", "u"])]),
    "composed": _composed,
    "empty_slice": lambda a, b: a.new_view(slice(5, 5)),
    "empty_take": lambda a, b: a.new_view([]),
    "empty_filter": lambda a, b: a.filter(np.zeros(60, dtype=bool)),
    "empty_table": _empty_table,
    "concat_with_empty": lambda a, b: TableView.concat([a.new_view(slice(0, 0)), b]),
}


@pytest.mark.parametrize("kind", list(VIEW_KINDS))
def test_view_roundtrip(tables, tmp_path, kind):
    a, b, _, _ = tables
    tv = VIEW_KINDS[kind](a, b)
    loaded = roundtrip(tv, tmp_path / "d", "v")
    check_loaded(loaded, tv)
    # a loaded view saved again: into the same directory and into another one
    loaded.save_to_disk(str(tmp_path / "d"), "again")
    loaded.save_to_disk(str(tmp_path / "d2"), "v")
    check_loaded(TableView.load_from_disk(str(tmp_path / "d"), "again"), tv)
    check_loaded(TableView.load_from_disk(str(tmp_path / "d2"), "v"), tv)
    # views made from a loaded view save and load too
    if len(loaded):
        derived = TableView.concat([loaded.shuffle(seed=4), tv.new_view(slice(None, None, -2))])
        check_loaded(roundtrip(derived, tmp_path / "d", "derived"), derived)


def test_roundtrip_matches_numpy_model(tmp_path):
    cols = make_cols(80, 0, seed=5)
    tv = TableView(cols)
    perm = np.random.default_rng(0).permutation(80)
    loaded = roundtrip(tv.new_view(perm), tmp_path / "d")
    assert_same(loaded[:], expected(cols, perm))
    assert_same(loaded[::-3], expected(cols, perm[::-3]))
    assert_same(loaded[4], expected(cols, int(perm[4])))


def test_loaded_chain_of_saves(tmp_path):
    """Load, derive, save, load again, several times over; every stage reads right."""
    cols = make_cols(50, 0, seed=6)
    tv = TableView(cols)
    idx = np.arange(50)
    cur = tv
    for step in range(4):
        sel = np.random.default_rng(step).permutation(len(idx))[: max(1, len(idx) - 7)]
        cur = cur.new_view(sel)
        idx = idx[sel]
        cur = roundtrip(cur, tmp_path / f"d{step % 2}", f"s{step}")
        assert_same(cur[:], expected(cols, idx))


# ---- round trips of every dtype family ----

@pytest.mark.parametrize("dtype", FIXED_DTYPES)
@pytest.mark.parametrize("rowshape", [(), (2, 3)], ids=["scalar", "mat2x3"])
def test_fixed_dtype_roundtrip(tmp_path, dtype, rowshape):
    n = 29
    cols = {"x": sample(dtype, (n,) + rowshape), "k": np.arange(n, dtype=np.int16)}
    tv = TableView(cols)
    loaded = roundtrip(tv, tmp_path / "d")
    assert loaded.schema == tv.schema
    assert_same(loaded[:], expected(cols, slice(None)))
    idx = np.array([3, 0, 28, 3, 11])
    loaded2 = roundtrip(tv.new_view(idx), tmp_path / "d", "w")
    assert_same(loaded2[:], expected(cols, idx))
    assert_same(loaded2[-1], expected(cols, 11))


def _words(n, seed, alphabet="abcxyzé😀 \t", maxlen=12):
    rng = np.random.default_rng(seed)
    letters = list(alphabet)
    return ["".join(rng.choice(letters, rng.integers(0, maxlen + 1))) for _ in range(n)]


@pytest.mark.parametrize("kind", ["U", "S", "ostr", "obytes", "tstr", "ascii"])
@pytest.mark.parametrize("rowshape", [(), (2,), (2, 3)], ids=["scalar", "vec2", "mat"])
def test_string_roundtrip(tmp_path, kind, rowshape):
    n = 31
    total = n * int(np.prod(rowshape))
    words = _words(total, 3, alphabet="abc xyz" if kind == "ascii" else "abcxyzé😀 \t")
    if kind in ("S", "obytes"):
        words = [w.encode("utf-8") for w in words]
    dtype = {"U": "U", "ascii": "U", "S": "S", "ostr": object, "obytes": object,
             "tstr": np.dtypes.StringDType()}[kind]
    flat = np.empty(total, dtype=object)
    flat[:] = words
    cols = {"w": flat.astype(dtype).reshape((n,) + rowshape), "i": np.arange(n)}
    tv = TableView(cols)
    loaded = roundtrip(tv, tmp_path / "d")
    assert_same(loaded[:], expected(cols, slice(None)))
    sh = tv.shuffle(seed=1)
    assert_same(roundtrip(sh, tmp_path / "d", "sh")[:], sh[:])


def test_all_dtypes_one_table_roundtrip(tmp_path):
    n = 40
    cols = {f"c{i}": sample(d, (n,), seed=i) for i, d in enumerate(FIXED_DTYPES)}
    cols["u"] = np.array(_words(n, 1), dtype="U")
    cols["s"] = np.array([w.encode() for w in _words(n, 2)], dtype="S")
    cols["o"] = np.array(_words(n, 3), dtype=object)
    cols["m"] = sample("float64", (n, 4, 1, 2))
    tv = TableView(cols)
    loaded = roundtrip(tv, tmp_path / "d")
    assert loaded.schema == tv.schema
    assert_same(loaded[:], expected(cols, slice(None)))
    check_loaded(loaded, tv)


def test_large_table_with_strings_roundtrip(tmp_path):
    """Stores and ref arrays too big for the arena (their own temp files, hard-linked)."""
    n = 150_000
    cols = {"x": np.arange(n, dtype=np.float64), "s": np.array([f"row {i} é" for i in range(n)])}
    tv = TableView(cols)
    sh = tv.shuffle(seed=11)
    loaded = roundtrip(sh, tmp_path / "d")
    assert_reads_equal(loaded[:], sh[:])
    got = np.concatenate([b["x"] for b in loaded.batch_iter(10_000, threads=2, readahead=2)])
    np.testing.assert_array_equal(got, sh[:]["x"], strict=True)


def test_saved_view_outlives_the_saving_process(tmp_path):
    """A child saves and exits (removing its temp files); the saved directory still holds
    everything the view reads."""
    d, npz = tmp_path / "d", tmp_path / "want.npz"
    code = f"""
import numpy as np, infinidata
TV = infinidata.TableView
n = 200_000
t = TV({{"x": np.arange(n, dtype=np.int64), "s": np.array([str(i % 97) for i in range(n)])}})
small = TV({{"x": np.arange(5, dtype=np.int64), "s": np.array(["a", "b", "c", "d", "é"])}})
v = TV.concat([t.shuffle(seed=1).new_view(slice(0, None, 3)), small, t.new_view(slice(5, 9))])
v.save_to_disk({str(d)!r}, "v")
np.savez({str(npz)!r}, **v[:])
"""
    run_python(code, env={"INFINIDATA_TMPDIR": str(tmp_path / "childtmp")})
    assert not os.path.exists(tmp_path / "childtmp") or os.listdir(tmp_path / "childtmp") == []
    loaded = TableView.load_from_disk(str(d), "v")
    want = dict(np.load(npz))
    got = loaded[:]
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], strict=True)


def test_load_errors(tmp_path):
    d = tmp_path / "d"
    tv = TableView(make_cols(10))
    tv.shuffle(seed=1).save_to_disk(str(d), "v")
    with pytest.raises(FileNotFoundError):
        TableView.load_from_disk(str(d), "nope")
    with pytest.raises(FileNotFoundError):
        TableView.load_from_disk(str(tmp_path / "missing_dir"), "v")
    for bad in ["a/b", ".hidden", "", "..", "."]:
        with pytest.raises(ValueError):
            tv.save_to_disk(str(d), bad)
    assert listing(d) == sorted(["v.idtview"] + data_names(d))
    for f in data_names(d):  # a missing data file: FileNotFoundError naming it
        e = tmp_path / f"e_{f}"
        shutil.copytree(d, e)
        os.unlink(e / f)
        with pytest.raises(FileNotFoundError) as ei:
            TableView.load_from_disk(str(e), "v")
        assert f in str(ei.value)


def test_loaded_data_is_read_only(tmp_path):
    d = tmp_path / "d"
    tv = TableView({"x": np.arange(300_000, dtype=np.int64)})
    tv.save_to_disk(str(d), "v")
    before = snapshot(d)
    loaded = TableView.load_from_disk(str(d), "v")
    r = loaded[:]
    r["x"][:] = -1  # the read is a copy
    for b in loaded.batch_iter(100_000):
        b["x"][:] = -1
    del tv, r
    gc.collect()
    assert snapshot(d) == before
    np.testing.assert_array_equal(loaded[:]["x"], np.arange(300_000), strict=True)


# ---- dedup, hard links and copies ----

BIG = 300_000  # rows of float64: 2.4 MB, more than the arena's 1 MiB: a file of its own


def big_table(seed=0):
    rng = np.random.default_rng(seed)
    return TableView({"x": rng.standard_normal(BIG), "i": np.arange(BIG, dtype=np.int64)})


def test_dedup_three_views_of_one_table(tmp_path):
    d = str(tmp_path / "d")
    tv = big_table()
    v1 = tv.new_view(slice(10, 200_000, 3))
    v2 = tv.select_columns(["x"])
    v3 = TableView.concat([tv.new_view(slice(1000, 2000)), tv.new_view(slice(None, None, -7))])
    v1.save_to_disk(d, "v1")
    [store] = data_names(d)
    store_blocks = os.stat(os.path.join(d, store)).st_blocks * 512
    assert store_blocks >= BIG * 16
    after1 = disk_bytes(d)
    v2.save_to_disk(d, "v2")
    v3.save_to_disk(d, "v3")
    after3 = disk_bytes(d)
    assert data_names(d) == [store]  # the table once
    m2, m3 = manifest_bytes(d, "v2"), manifest_bytes(d, "v3")
    assert after3[0] - after1[0] == m2[0] + m3[0]  # only the manifests were added
    assert after3[1] - after1[1] == m2[1] + m3[1]
    assert after3[0] == store_blocks + sum(manifest_bytes(d, n)[0] for n in ["v1", "v2", "v3"])
    for name, v in [("v1", v1), ("v2", v2), ("v3", v3)]:
        assert_reads_equal(TableView.load_from_disk(d, name)[:], v[:])


def test_dedup_small_tables_copied_once(tmp_path):
    """Arena-held tables are copied (not linked); still each is stored once."""
    d = str(tmp_path / "d")
    a = TableView(make_cols(200, 0, seed=1))
    views = [a, a.new_view(slice(None, None, 2)), a.select_columns(["u"]),
             TableView.concat([a, a.new_view(slice(1, 3)), a.new_view(slice(None, None, -9))])]
    views[0].save_to_disk(d, "v0")
    first = disk_bytes(d)
    [store] = data_names(d)
    for i, v in enumerate(views[1:], 1):
        v.save_to_disk(d, f"v{i}")
    assert data_names(d) == [store]
    added = disk_bytes(d)[1] - first[1]
    assert added == sum(manifest_bytes(d, f"v{i}")[1] for i in range(1, len(views)))


def test_dedup_shared_ref_array_and_resave_of_loaded_view(tmp_path):
    d = str(tmp_path / "d")
    tv = big_table(1)
    sh = tv.shuffle(seed=5)  # a ref array of 2.4 MB
    sh.save_to_disk(d, "sh")
    names = data_names(d)
    assert [n[0] for n in names] == ["r", "s"]
    base = disk_bytes(d)
    sh.new_view(slice(0, 1000)).save_to_disk(d, "sh_head")  # same ref array: manifest only
    tv.save_to_disk(d, "base")  # same store: manifest only
    assert data_names(d) == names
    assert disk_bytes(d)[0] - base[0] == (manifest_bytes(d, "sh_head")[0]
                                          + manifest_bytes(d, "base")[0])
    # re-saving a view loaded from this directory adds only its manifest
    loaded = TableView.load_from_disk(d, "sh")
    before = disk_bytes(d)
    before_names = listing(d)
    loaded.save_to_disk(d, "sh_again")
    assert listing(d) == sorted(before_names + ["sh_again.idtview"])
    assert disk_bytes(d)[0] - before[0] == manifest_bytes(d, "sh_again")[0]
    assert disk_bytes(d)[1] - before[1] == manifest_bytes(d, "sh_again")[1]
    assert_reads_equal(TableView.load_from_disk(d, "sh_again")[:], sh[:])
    # a view of a loaded view, saved to the same directory: manifest only as well
    loaded.new_view(slice(None, None, -5)).save_to_disk(d, "sh_rev")
    assert data_names(d) == names


def test_hard_link_when_same_file_system(tmp_path):
    d = str(tmp_path / "d")
    os.makedirs(d)
    if os.stat(d).st_dev != os.stat(tmp_dir()).st_dev:
        pytest.skip("the temp area is on another file system than tmp_path")
    tv = big_table(2)
    want = tv[:]
    tv.save_to_disk(d, "t")
    [store] = data_names(d)
    st = os.stat(os.path.join(d, store))
    assert st.st_nlink == 2  # the temp file and the saved name
    temp = [f for f in blob_files() if os.path.samestat(os.stat(os.path.join(tmp_dir(), f)), st)]
    assert len(temp) == 1
    del tv
    gc.collect()
    assert not os.path.exists(os.path.join(tmp_dir(), temp[0]))  # the temp name went ...
    assert os.stat(os.path.join(d, store)).st_nlink == 1  # ... the saved file stays
    assert_reads_equal(TableView.load_from_disk(d, "t")[:], want)


@pytest.mark.parametrize("sticky,err", [(False, errno.EXDEV), (True, errno.EPERM), (True, 0)],
                         ids=["exdev_once", "eperm_sticky", "eio_sticky"])
def test_copy_when_link_fails(tmp_path, sticky, err):
    """link() failing (another file system: EXDEV; no hard links there: EPERM) falls back to a
    copy; with sticky, every link fails, the manifest's publication included."""
    d = str(tmp_path / "d")
    tv = big_table(3)
    core._fault_arm(core.FAULT_LINK, 1, err, sticky)
    try:
        tv.save_to_disk(d, "t")
    finally:
        fired = core._fault_reset()
    assert fired >= 1
    [store] = data_names(d)
    st = os.stat(os.path.join(d, store))
    assert st.st_nlink == 1
    assert not any(os.path.samestat(os.stat(os.path.join(tmp_dir(), f)), st)
                   for f in blob_files())
    assert not [f for f in listing(d) if f.startswith(".tmp-")]
    assert_reads_equal(TableView.load_from_disk(d, "t")[:], tv[:])
    with pytest.raises(FileExistsError):  # still refused, even with no hard links
        core._fault_arm(core.FAULT_LINK, 1, err, True)
        try:
            tv.save_to_disk(d, "t")
        finally:
            core._fault_reset()


def other_fs_dir():
    """A fresh directory on a file system other than the temp area's (tmpfs), or None."""
    base = "/dev/shm"
    if not os.path.isdir(base) or not os.access(base, os.W_OK):
        return None
    if os.stat(base).st_dev == os.stat(tmp_dir()).st_dev:
        return None
    return os.path.join(base, f"infinidata-test-{uuid.uuid4().hex}")


def test_copy_to_other_file_system(tmp_path):
    d = other_fs_dir()
    if d is None:
        pytest.skip("no writable tmpfs on another device")
    try:
        tv = big_table(4)
        sh = tv.shuffle(seed=1)
        sh.save_to_disk(d, "sh")
        for f in data_names(d):
            st = os.stat(os.path.join(d, f))
            assert st.st_nlink == 1 and st.st_dev != os.stat(tmp_dir()).st_dev
        assert_reads_equal(TableView.load_from_disk(d, "sh")[:], sh[:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- overwrite ----

def test_file_exists_and_overwrite(tmp_path):
    d = str(tmp_path / "d")
    a = TableView(make_cols(20, 0, seed=1))
    b = TableView(make_cols(30, 100, seed=2)).shuffle(seed=3)
    a.save_to_disk(d, "v")
    before = snapshot(d)
    with pytest.raises(FileExistsError) as ei:
        b.save_to_disk(d, "v")
    assert ei.value.errno == errno.EEXIST
    assert "v" in str(ei.value)
    assert snapshot(d) == before
    assert_reads_equal(TableView.load_from_disk(d, "v")[:], a[:])
    b.save_to_disk(d, "v", overwrite=True)
    assert_reads_equal(TableView.load_from_disk(d, "v")[:], b[:])
    b.save_to_disk(d, "v", overwrite=True)  # overwriting with the same view
    assert_reads_equal(TableView.load_from_disk(d, "v")[:], b[:])
    a.save_to_disk(d, name="v", overwrite=True)
    assert_reads_equal(TableView.load_from_disk(d, "v")[:], a[:])
    assert not [f for f in listing(d) if f.startswith(".")]


# ---- atomicity under injected failures ----

def atomic_view(big_rows=200_000):
    """A view over four data files: two arena stores and an arena ref array (always copied)
    and a store of its own temp file (linked on the same file system)."""
    a = TableView({"x": np.arange(50.0), "s": np.array([f"a{i}" for i in range(50)])})
    b = TableView({"x": -np.arange(40.0), "s": np.array([f"bé{i}" for i in range(40)])})
    big = TableView({"x": np.arange(float(big_rows)),
                     "s": np.array([str(i % 1000) for i in range(big_rows)])})
    return TableView.concat([a, b.shuffle(seed=1), big.new_view(slice(None, None, 1000))]), a


def sweep_faults(v, d, name, kind, overwrite=False, check_errno=None):
    """Arm the nth call of `kind` (sticky) for n = 1, 2, ... until a save succeeds; after each
    failure the directory must be exactly as before. A save may succeed although a fault fired
    only where it has a fallback (a failed link is replaced by a copy or a rename). Returns the
    number of failed saves."""
    before = snapshot(d)
    nth = 0
    while True:
        nth += 1
        assert nth < 500
        core._fault_arm(kind, nth, 0, True)
        try:
            v.save_to_disk(d, name, overwrite=overwrite)
        except (OSError, MemoryError) as e:
            fired = core._fault_reset()
            assert fired >= 1, e
            if check_errno is not None:
                assert isinstance(e, OSError) and e.errno == check_errno, (nth, e)
            after = snapshot(d)
            assert after == before, (nth, e, before, after)
            continue
        except BaseException:
            core._fault_reset()
            raise
        fired = core._fault_reset()
        assert fired == 0 or kind == core.FAULT_LINK, f"a save succeeded although fault {nth} fired"
        return nth - 1


@pytest.mark.parametrize("kind", ["FALLOCATE", "WRITE"])
@pytest.mark.parametrize("state", ["empty_dir", "earlier_save", "no_dir"])
def test_enospc_mid_save_leaves_directory_unchanged(tmp_path, kind, state):
    d = str(tmp_path / "d")
    v, a = atomic_view()
    if state != "no_dir":
        os.makedirs(d)
    if state == "earlier_save":  # shares one of the view's stores: it must survive
        a.new_view(slice(0, 5)).save_to_disk(d, "earlier")
        TableView({"x": np.zeros(3), "s": np.array(["q"] * 3)}).save_to_disk(d, "other")
    failures = sweep_faults(v, d, "new", getattr(core, f"FAULT_{kind}"), check_errno=errno.ENOSPC)
    # every copied file (b's store, the ref array, a's store unless saved earlier) and the
    # manifest were each a failure point
    assert failures >= (3 if state == "earlier_save" else 4)
    check_loaded(TableView.load_from_disk(d, "new"), v)
    if state == "earlier_save":
        assert_reads_equal(TableView.load_from_disk(d, "earlier")[:], a[:5])


def test_enospc_mid_copy_to_other_file_system():
    """On another file system every file is copied, the big one included."""
    d = other_fs_dir()
    if d is None:
        pytest.skip("no writable tmpfs on another device")
    try:
        v, a = atomic_view()
        for kind in (core.FAULT_FALLOCATE, core.FAULT_WRITE):
            sub = os.path.join(d, str(kind))
            os.makedirs(sub)
            a.save_to_disk(sub, "earlier")
            failures = sweep_faults(v, sub, "new", kind, check_errno=errno.ENOSPC)
            assert failures >= 4  # b's store, the ref array, the big store, the manifest
            check_loaded(TableView.load_from_disk(sub, "new"), v)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("state", ["earlier_save", "no_dir", "overwrite"])
def test_any_fault_mid_save_leaves_directory_unchanged(tmp_path, state):
    """Every core call of a save (allocations, opens, links, renames, ...) failing in turn."""
    d = str(tmp_path / "d")
    v, a = atomic_view()
    if state != "no_dir":
        a.save_to_disk(d, "earlier")
    if state == "overwrite":
        a.shuffle(seed=9).save_to_disk(d, "new")
        old = TableView.load_from_disk(d, "new")[:]
    failures = sweep_faults(v, d, "new", core.FAULT_ANY, overwrite=(state == "overwrite"))
    assert failures >= 10
    check_loaded(TableView.load_from_disk(d, "new"), v)
    if state == "overwrite":
        assert_reads_equal(a.shuffle(seed=9)[:], old)
    for kind in ("RENAME", "LINK", "OPEN", "MKDIR"):  # each kind alone, still unchanged after
        sweep_faults(v, d, f"new_{kind}", getattr(core, f"FAULT_{kind}"))


# ---- format version ----

def test_format_version_is_refused_with_its_number(tmp_path):
    d = tmp_path / "d"
    TableView(make_cols(10)).shuffle(seed=1).save_to_disk(str(d), "v")
    assert isinstance(infinidata.FORMAT_VERSION, int) and infinidata.FORMAT_VERSION >= 1
    assert issubclass(CorruptDataError, ValueError)
    m = d / "v.idtview"
    raw = m.read_bytes()
    assert struct.unpack_from("<I", raw, 8)[0] == infinidata.FORMAT_VERSION
    for other in (infinidata.FORMAT_VERSION + 1, 0, 0xDEADBEEF):
        # only the version field is patched: the header checksum is now wrong too, and the
        # loader must report the version (it checks it before the checksum)
        m.write_bytes(raw[:8] + struct.pack("<I", other) + raw[12:])
        with pytest.raises(CorruptDataError) as ei:
            TableView.load_from_disk(str(d), "v")
        msg = str(ei.value)
        assert f"version {other}" in msg, msg
        assert str(m) in msg, msg
    m.write_bytes(raw)
    # a store image of another version is refused the same way
    [store] = [f for f in data_names(d) if f.startswith("s-")]
    sp = d / store
    sraw = sp.read_bytes()
    assert struct.unpack_from("<I", sraw, 8)[0] == infinidata.FORMAT_VERSION
    sp.write_bytes(sraw[:8] + struct.pack("<I", 7777) + sraw[12:])
    with pytest.raises(CorruptDataError) as ei:
        TableView.load_from_disk(str(d), "v")
    assert "version 7777" in str(ei.value) and store in str(ei.value)


# ---- pickling ----

def test_pickle_same_process(tables, tmp_path):
    a, b, _, _ = tables
    big = big_table(5)
    loaded = roundtrip(TableView.concat([a, b]).shuffle(seed=2), tmp_path / "d")
    cases = [a, a.shuffle(seed=1), VIEW_KINDS["concat_of_concats"](a, b), a.select_columns(["u"]),
             a.new_view(slice(0, 0)), loaded, loaded.new_view(slice(None, None, -2)), big,
             big.shuffle(seed=3)]
    for v in cases:
        data = pickle.dumps(v)
        assert len(data) < 16384  # a description of files, never the rows
        u = pickle.loads(data)
        check_loaded(u, v)
        # an unpickled view pickles again
        check_loaded(pickle.loads(pickle.dumps(u, protocol=2)), v)


SPAWN_CHILD = """
import traceback
try:
    out = [dict(v[:]) for v in views]
    out.append([dict(b) for b in views[-1].batch_iter(1000, threads=2, readahead=2)])
    q.put(("ok", out))
except BaseException:
    q.put(("error", traceback.format_exc()))
"""


def test_pickle_to_spawned_child(tables, tmp_path):
    a, b, _, _ = tables
    big = big_table(6)
    loaded = roundtrip(a.shuffle(seed=5), tmp_path / "d")
    views = [a, VIEW_KINDS["concat_of_concats"](a, b), loaded, a.new_view(slice(3, 3)),
             big.shuffle(seed=1)]
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=exec, args=(SPAWN_CHILD, {"views": views, "q": q}))
    p.start()
    try:
        status, out = q.get(timeout=120)
    finally:
        p.join(60)
    assert status == "ok", out
    assert p.exitcode == 0
    for v, got in zip(views, out):
        assert_reads_equal(got, v[:])
    want_batches = list(views[-1].batch_iter(1000))
    assert len(out[-1]) == len(want_batches)
    for g, w in zip(out[-1], want_batches):
        assert_reads_equal(g, w)


# ---- several processes at once ----

CONCURRENT_CHILD = r"""
import sys, numpy as np, infinidata
TV = infinidata.TableView
d, npz, me = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = dict(np.load(npz))
def same(got, w):
    assert sorted(got) == sorted(w), (sorted(got), sorted(w))
    for k in w:
        np.testing.assert_array_equal(got[k], w[k], strict=True)
for it in range(5):
    v = TV.load_from_disk(d, "v")
    same(v[:], want)
    parts = list(v.batch_iter(9973, threads=2, readahead=3))
    same({k: np.concatenate([p[k] for p in parts]) for k in want}, want)
    idx = np.random.default_rng(me * 100 + it).integers(0, len(v), 500)
    same(v[idx], {k: w[idx] for k, w in want.items()})
    if it == 2:
        v.shuffle(seed=me).save_to_disk(d, f"w{me}")  # concurrent saves into the directory
    if it > 2:
        same(TV.load_from_disk(d, f"w{me}")[:], v.shuffle(seed=me)[:])
print("ok", me)
"""


def test_concurrent_loads_from_several_processes(tmp_path):
    d, npz = str(tmp_path / "d"), str(tmp_path / "want.npz")
    n = 60_000
    t = TableView({"x": np.arange(n, dtype=np.float32),
                   "s": np.array([f"s{i % 501}é" for i in range(n)])})
    v = TableView.concat([t.shuffle(seed=3), t.new_view(slice(None, None, 17))])
    v.save_to_disk(d, "v")
    np.savez(npz, **v[:])
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_CHILD, d, npz, str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    mine = TableView.load_from_disk(d, "v")  # and this process reads meanwhile
    for _ in range(3):
        assert_reads_equal(mine[:], v[:])
    outs = [p.communicate(timeout=120) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, (i, out, err)
        assert out.strip() == f"ok {i}"
    loaded = TableView.load_from_disk(d, "v")
    for i in range(4):
        assert_reads_equal(TableView.load_from_disk(d, f"w{i}")[:], loaded.shuffle(seed=i)[:])
    assert not [f for f in listing(d) if f.startswith(".tmp-")]


# ---- damaged and hostile files ----

M64 = (1 << 64) - 1


def hash64(data, seed=0):
    """The core's idt_hash64 (FNV-1a with a final mix), to forge valid checksums."""
    h = 0xCBF29CE484222325 ^ seed
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    return h


def fix_manifest(raw):
    """Set a manifest's length and checksum fields to match its bytes."""
    b = bytearray(raw)
    if len(b) < 32:
        return bytes(b)
    struct.pack_into("<Q", b, 16, len(b))
    struct.pack_into("<Q", b, 24, 0)
    struct.pack_into("<Q", b, 24, hash64(b))
    return bytes(b)


def fix_store_header(raw):
    b = bytearray(raw)
    hdr = struct.unpack_from("<I", b, 12)[0]
    if len(b) < 40 or hdr > len(b) or hdr < 40:
        return bytes(b)
    struct.pack_into("<Q", b, 32, 0)
    struct.pack_into("<Q", b, 32, hash64(b[:hdr]))
    return bytes(b)


CORPUS_CHILD = r"""
import json, sys, traceback
import numpy as np
import infinidata
TV = infinidata.TableView
spec = json.load(open(sys.argv[1]))
start = int(sys.argv[2])
want = dict(np.load(spec["expected"]))
cols = spec["columns"]
n = len(want[cols[0]])

def same(got, w):
    if list(got) != cols:
        return False
    for k in cols:
        try:
            np.testing.assert_array_equal(got[k], w[k], strict=True)
        except AssertionError:
            return False
    return True

def check(d):
    v = TV.load_from_disk(d, spec["name"])
    full = v[:]
    m = len(v)
    reads = [full]
    for threads, ra in ((1, 0), (2, 2)):
        parts = list(v.batch_iter(7, threads=threads, readahead=ra))
        reads.append({k: np.concatenate([p[k] for p in parts]) if parts else full[k][:0]
                      for k in full})
    if m:
        idx = np.random.default_rng(0).permutation(m)
        inv = np.argsort(idx)
        got = v[idx]
        reads.append({k: got[k][inv] for k in got})
        rev = v[::-1]
        reads.append({k: rev[k][::-1] for k in rev})
        rows = [v[i] for i in range(m)]
        reads.append({k: np.array([r[k] for r in rows], dtype=full[k].dtype).reshape(full[k].shape)
                      for k in full})
    # widths of string results depend on the rows read: compare values as objects
    def norm(r):
        return {k: (a.astype(object) if a.dtype.kind in "US" else a) for k, a in r.items()}
    consistent = all(list(r) == list(full) for r in reads)
    if consistent:
        base = norm(full)
        for r in reads[1:]:
            rr = norm(r)
            for k in full:
                if rr[k].shape != base[k].shape or not np.array_equal(
                        rr[k], base[k], equal_nan=rr[k].dtype.kind in "fc"):
                    if not (rr[k].dtype.kind in "mM"
                            and np.array_equal(rr[k].view("i8"), base[k].view("i8"))):
                        consistent = False
    return {"outcome": "equal" if consistent and same(full, want) else "diff",
            "consistent": consistent, "rows": m}

variants = spec["variants"]
for i in range(start, len(variants)):
    print("BEGIN", i, flush=True)
    try:
        res = check(variants[i]["dir"])
    except infinidata.CorruptDataError as e:
        res = {"outcome": "corrupt", "msg": str(e)}
    except OSError as e:
        res = {"outcome": "oserror", "msg": str(e), "errno": e.errno}
    except BaseException as e:
        res = {"outcome": "other", "msg": type(e).__name__ + ": " + str(e)[:300],
               "tb": traceback.format_exc()[-800:]}
    print("END", i, json.dumps(res), flush=True)
"""


def run_corpus(tmp_path, name, variants, want_npz, columns):
    """Run every variant through load + full read + batch_iter + random reads in child
    processes; a child that dies (a signal) has its variant recorded as a crash and the rest
    continue in a new child. Returns one result dict per variant."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"name": name, "expected": str(want_npz),
                                     "columns": columns, "variants": variants}))
    results = [None] * len(variants)
    start = 0
    while start < len(variants):
        p = subprocess.run([sys.executable, "-c", CORPUS_CHILD, str(spec_path), str(start)],
                           capture_output=True, text=True, timeout=300)
        last_begin = None
        for line in p.stdout.splitlines():
            if line.startswith("BEGIN "):
                last_begin = int(line.split()[1])
            elif line.startswith("END "):
                _, i, res = line.split(" ", 2)
                results[int(i)] = json.loads(res)
        if p.returncode == 0:
            assert all(r is not None for r in results[start:]), p.stderr[-2000:]
            break
        if last_begin is None or results[last_begin] is not None:
            pytest.fail(f"corpus child failed outside a variant (rc {p.returncode}):\n"
                        f"{p.stderr[-3000:]}")
        results[last_begin] = {"outcome": "crash", "msg": f"rc {p.returncode}",
                               "stderr": p.stderr[-1500:]}
        start = last_begin + 1
    return results


@pytest.fixture(scope="module")
def corpus_source(tmp_path_factory):
    """A saved directory holding a manifest, one store image and one ref array, and the rows
    its view reads."""
    root = tmp_path_factory.mktemp("corpus")
    n = 40
    rng = np.random.default_rng(42)
    cols = {
        "id": np.arange(n, dtype=np.int64),
        "v": rng.standard_normal((n, 3)).astype(np.float32),
        "u": np.array([VOCAB[k] for k in rng.integers(0, len(VOCAB), n)], dtype="U40"),
        "a": np.array([f"ascii{k}" * (k % 4) for k in range(n)]),
        "s": np.array([VOCAB[k].encode() for k in rng.integers(0, len(VOCAB), n)], dtype="S40"),
        "o": np.array([VOCAB[k] for k in rng.integers(0, len(VOCAB), n)], dtype=object),
        "w": np.array([[VOCAB[k] for k in rng.integers(0, len(VOCAB), 2)] for _ in range(n)]),
        "t": np.arange(n).astype("m8[s]"),
    }
    tv = TableView(cols)
    view = TableView.concat([tv.shuffle(seed=5), tv.new_view(slice(1, None, 3))])
    src = root / "src"
    view.save_to_disk(str(src), "v")
    want = root / "want.npz"
    np.savez(want, **view[:])
    files = {"manifest": "v.idtview"}
    for f in data_names(src):
        files["store" if f.startswith("s-") else "refs"] = f
    assert sorted(files) == ["manifest", "refs", "store"]
    return root, src, want, view.column_names, files


def make_variants(root, src, files, kind, mutations):
    """One directory per mutation of `files[kind]` (the others hard-linked)."""
    target = files[kind]
    raw = (src / target).read_bytes()
    out = []
    vroot = root / f"var-{kind}-{uuid.uuid4().hex[:8]}"
    vroot.mkdir()
    for j, (label, fn) in enumerate(mutations):
        d = vroot / str(j)
        d.mkdir()
        for f in os.listdir(src):
            if f != target:
                os.link(src / f, d / f)
        (d / target).write_bytes(fn(raw))
        out.append({"dir": str(d), "label": label})
    return out, raw


def damage_mutations(raw, kind, rng):
    """Truncations (0 included), extensions and seeded byte flips of a file."""
    n = len(raw)
    muts = []
    for t in sorted({0, 1, 4, 7, 8, 12, 16, 24, 31, 32, 40, 55, 56, 64, n // 3, n // 2,
                     n - 64, n - 9, n - 8, n - 1}):
        if 0 <= t < n:
            muts.append((f"truncate {t}", lambda r, t=t: r[:t]))
    muts.append(("extend 8 zeros", lambda r: r + b"\0" * 8))
    muts.append(("extend 4096 ones", lambda r: r + b"\xff" * 4096))
    hdr = n
    if kind == "store":  # every header byte, then a seeded sample of the rest
        hdr = struct.unpack_from("<I", raw, 12)[0]
        positions = list(range(hdr)) + sorted(rng.choice(np.arange(hdr, n), min(n - hdr, 500),
                                                         replace=False).tolist())
    else:
        positions = list(range(n))
    for pos in positions:
        mask = int(rng.integers(1, 256))

        def flip(r, pos=pos, mask=mask):
            b = bytearray(r)
            b[pos] ^= mask
            return bytes(b)
        region = ("header" if pos < hdr else "rows") if kind == "store" else kind
        muts.append((f"flip {pos} ({region}) ^{mask:#x}", flip))
    return muts


def hostile_mutations(raw, kind, rng):
    """Changes with the checksums forged to match: the structural checks alone must hold."""
    n = len(raw)
    fix = fix_manifest if kind == "manifest" else fix_store_header
    if kind == "manifest":
        skip = set(range(16, 32))
        span = n
    else:
        skip = set(range(32, 40))
        span = struct.unpack_from("<I", raw, 12)[0]
    muts = []
    for pos in range(span):
        if pos in skip:
            continue
        mask = int(rng.integers(1, 256))

        def flip(r, pos=pos, mask=mask):
            b = bytearray(r)
            b[pos] ^= mask
            return fix(bytes(b))
        muts.append((f"forged flip {pos} ^{mask:#x}", flip))
    for pos in range(0, span - 7, 4):  # extreme values in every aligned field
        if pos in skip:
            continue
        for val, width in ((0xFFFFFFFF, 4), (0x7FFFFFFF, 4), (0, 4), (M64, 8), (1 << 62, 8),
                           (1 << 40, 8)):
            def put(r, pos=pos, val=val, width=width):
                b = bytearray(r)
                b[pos:pos + width] = val.to_bytes(width, "little")
                return fix(bytes(b))
            muts.append((f"forged {pos}={val:#x}/{width}", put))
    if kind == "manifest":
        muts.append(("forged truncate 200", lambda r: fix(r[:200])))
        muts.append(("forged extend", lambda r: fix(r + b"\0" * 8)))
    return muts


def summarize(results, variants):
    counts = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return counts


@pytest.mark.parametrize("kind", ["manifest", "store", "refs"])
def test_damaged_files_corpus(corpus_source, tmp_path, kind):
    """Truncations and byte flips (checksums not fixed) of each file kind: every one must give
    CorruptDataError (or OSError) or read exactly the saved rows, and never crash."""
    root, src, want, columns, files = corpus_source
    rng = np.random.default_rng({"manifest": 1, "store": 2, "refs": 3}[kind])
    raw = (src / files[kind]).read_bytes()
    variants, _ = make_variants(root, src, files, kind, damage_mutations(raw, kind, rng))
    results = run_corpus(tmp_path, "v", variants, want, columns)
    bad = []
    for v, r in zip(variants, results):
        if r["outcome"] == "equal":
            continue
        if r["outcome"] in ("corrupt", "oserror"):
            if r["outcome"] == "corrupt" and v["dir"] not in r["msg"]:
                bad.append((v["label"], "message does not name the file", r["msg"]))
            continue
        bad.append((v["label"], r["outcome"], r.get("msg", ""), r.get("stderr", r.get("tb", ""))))
    counts = summarize(results, variants)
    print(f"{kind}: {len(variants)} damaged variants of {len(raw)} bytes: {counts}")
    where = {k: sum(f"({k})" in b[0] for b in bad) for k in ("header", "rows")}
    assert not bad, (f"{len(bad)} of {len(variants)} damaged {kind} variants neither raised "
                     f"CorruptDataError nor read the saved rows ({counts}; flips among them by "
                     f"region: {where}); first ones:\n" + "\n".join(map(repr, bad[:15])))


@pytest.mark.parametrize("kind", ["manifest", "store"])
def test_hostile_files_corpus(corpus_source, tmp_path, kind):
    """Flips and extreme field values with forged checksums: the loader's structural checks
    must refuse them (CorruptDataError) or give a view whose every access agrees (one that
    describes other valid rows is not detectable), and the process must never crash."""
    root, src, want, columns, files = corpus_source
    rng = np.random.default_rng({"manifest": 4, "store": 5}[kind])
    raw = (src / files[kind]).read_bytes()
    variants, _ = make_variants(root, src, files, kind, hostile_mutations(raw, kind, rng))
    results = run_corpus(tmp_path, "v", variants, want, columns)
    bad = []
    for v, r in zip(variants, results):
        if r["outcome"] in ("corrupt", "oserror"):
            continue
        if r["outcome"] in ("equal", "diff") and r["consistent"]:
            continue
        bad.append((v["label"], r["outcome"], r.get("msg", ""), r.get("stderr", r.get("tb", ""))))
    counts = summarize(results, variants)
    print(f"{kind}: {len(variants)} hostile variants: {counts}")
    assert not bad, (f"{len(bad)} of {len(variants)} hostile {kind} variants crashed, raised "
                     f"something else or read inconsistently ({counts}); first ones:\n"
                     + "\n".join(map(repr, bad[:15])))


def test_errors_on_paths_that_are_not_utf8(tmp_path):
    """Linux paths are bytes: an error about one must still be the right OSError."""
    base = os.fsencode(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        TableView.load_from_disk(base + b"/\xff-missing", "v")
    d = base + b"/\xffdir"
    tv = TableView({"x": np.arange(3)})
    tv.save_to_disk(d, "v")
    assert_reads_equal(TableView.load_from_disk(d, "v")[:], tv[:])
    with pytest.raises(FileExistsError):
        tv.save_to_disk(d, "v")


def test_saving_an_unpickled_view_whose_store_starts_an_arena_file(tmp_path):
    # The first small table of a fresh process sits at offset 0 of a 64 MiB arena file; a view
    # unpickled from it maps that range. Saving must write just the store, not link the
    # whole arena file (which would then fail its checksum when loaded).
    code = f"""
import os, pickle, numpy as np, infinidata
tv = infinidata.TableView({{"a": np.arange(10, dtype=np.int32), "s": np.array(["x", "yy"] * 5)}})
p = pickle.loads(pickle.dumps(tv))
p.save_to_disk({str(tmp_path / 'd')!r}, "v")
back = infinidata.TableView.load_from_disk({str(tmp_path / 'd')!r}, "v")
assert (back[:]["a"] == np.arange(10)).all() and list(back[:]["s"]) == ["x", "yy"] * 5
sizes = [os.path.getsize(os.path.join({str(tmp_path / 'd')!r}, f)) for f in os.listdir({str(tmp_path / 'd')!r})]
assert max(sizes) < 1 << 20, sizes
print("ok")
"""
    env = dict(os.environ, INFINIDATA_TMPDIR=str(tmp_path / "tmp"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr

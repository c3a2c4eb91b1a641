"""Saved directories as untrusted input, and saves that do not trust what they find.

Forged dtypes (references, structured, void, other byte orders) refused at load with and
without verify; FIFOs, devices and directories under a saved file's name fail at once; a
damaged or planted file under a content name is replaced by the next save; stale temporary
files and files only a replaced manifest named are swept; NUL in names; one column selected
twice; file modes of linked and copied files. Loads that crashed or hung the old code run in
a subprocess with a timeout, so a regression fails the test instead of killing the run."""

import fcntl
import functools
import os
import stat
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import infinidata
from infinidata import CorruptDataError, TableView
from conftest import UNDER_ASAN
from test_persist import fix_manifest, fix_store_header

HERE = os.path.dirname(os.path.abspath(__file__))


def run_child(code, *args, timeout=60):
    """Run code in a fresh interpreter; returns (returncode, stdout, stderr). A hang is a
    returncode of None."""
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or ""
    return p.returncode, p.stdout, p.stderr


# A child that loads a view and reads every row; prints what happened on its last line.
LOAD_CHILD = """
import sys, infinidata
d, name, verify = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
try:
    tv = infinidata.TableView.load_from_disk(d, name, verify=verify)
    got = tv[:]
    repr(got)
    print("LOADED")
except infinidata.CorruptDataError as e:
    print("CORRUPT", e)
except Exception as e:
    print("OTHER", type(e).__name__, e)
"""


def child_load(d, name="v", verify=True, timeout=60):
    rc, out, err = run_child(LOAD_CHILD, d, name, "1" if verify else "0", timeout=timeout)
    if rc is None:
        return "HANG"
    if rc != 0:
        return f"CRASH rc={rc} {err[-400:]}"
    return out.strip().splitlines()[-1]


# ---- forging a column's dtype in the manifest and the store header ----

def _col_entries(raw, pos, ncols, trailer):
    """Offsets of each column description's dtype length field and dtype bytes."""
    out = []
    for _ in range(ncols):
        start = pos
        kind, ndim, nl, dl, isz = struct.unpack_from("<IIIIQ", raw, pos)
        pos += 24 + 8 * ndim
        name = bytes(raw[pos:pos + nl]).decode()
        out.append((name, start, pos + nl, dl))
        pos = start + ((pos + nl + dl - start + 7) & ~7) + trailer
    return out


def _patch(raw, entries, col, dtype, kind=None, itemsize=None):
    b = bytearray(raw)
    for name, start, dpos, dl in entries:
        if name != col:
            continue
        room = ((dpos + dl - start + 7) & ~7) - (dpos - start)  # bytes for dtype + padding
        assert len(dtype) <= room, (dtype, room)
        b[dpos:dpos + room] = dtype.encode().ljust(room, b"\0")
        struct.pack_into("<I", b, start + 12, len(dtype))
        if kind is not None:
            struct.pack_into("<I", b, start, kind)
        if itemsize is not None:
            struct.pack_into("<Q", b, start + 16, itemsize)
    return bytes(b)


def forge_dtype(d, col, dtype, kind=None, itemsize=None, name="v"):
    """Rewrite column `col`'s dtype string (and optionally kind, itemsize) in the manifest and
    every store header of saved directory d, with valid checksums: only the dtype is wrong."""
    m = os.path.join(d, name + ".idtview")
    raw = open(m, "rb").read()
    ncols = struct.unpack_from("<Q", raw, 32)[0]
    ent = _col_entries(raw, 40, ncols, 0)
    open(m, "wb").write(fix_manifest(_patch(raw, ent, col, dtype, kind, itemsize)))
    for f in os.listdir(d):
        if f.startswith("s-"):
            p = os.path.join(d, f)
            raw = open(p, "rb").read()
            ncols = struct.unpack_from("<Q", raw, 24)[0]
            ent = _col_entries(raw, 64, ncols, 40)
            new = fix_store_header(_patch(raw, ent, col, dtype, kind, itemsize))
            os.unlink(p)  # a new file: never write through a link into the temp area
            open(p, "wb").write(new)


def saved(tmp_path, cols=None, name="v"):
    d = str(tmp_path / "d")
    if cols is None:
        cols = {"x": (np.arange(6) + 1j).astype(np.complex128), "y": np.arange(6.0),
                "s": np.array(["a", "bb", "c", "", "é", "f"])}
    TableView(cols).save_to_disk(d, name)
    return d


# dtype strings that fit in the padding of a one-letter column named next to a 16-byte and
# an 8-byte column; each is something NumPy parses but construction never writes
FORGED_16 = ["T", "O,O", "O,i8", "(2,)O", "|V16", "V16", "c16", ">c16", "<U4", "|S16", "|O", "O,V8"]
FORGED_8 = ["O", "|O8", "<M8[0s]", "M8", ">f8", "<f8 ", "<V8", "<m8[B]", "<i8x", "|b1"]


@pytest.mark.parametrize("dtype", FORGED_16)
def test_forged_dtype_16_refused(tmp_path, dtype):
    d = saved(tmp_path)
    if len(dtype) > 7:
        pytest.skip("does not fit the padding")
    forge_dtype(d, "x", dtype)
    for verify in (True, False):
        got = child_load(d, verify=verify)
        assert got.startswith("CORRUPT"), (dtype, verify, got)
        assert "dtype" in got, got


@pytest.mark.parametrize("dtype", FORGED_8)
def test_forged_dtype_8_refused(tmp_path, dtype):
    d = saved(tmp_path)
    forge_dtype(d, "y", dtype)
    for verify in (True, False):
        got = child_load(d, verify=verify)
        assert got.startswith("CORRUPT"), (dtype, verify, got)


@pytest.mark.parametrize("dtype", ["T", "O", "<f8", "U"])
def test_string_column_takes_no_dtype_from_file(tmp_path, dtype):
    """A string column's dtype field must be the library's own kind marker; a Python dtype
    string there is refused, never handed to NumPy."""
    d = saved(tmp_path)
    forge_dtype(d, "s", dtype)
    got = child_load(d)
    if dtype == "U":
        assert got == "LOADED", got
    else:
        assert got.startswith("CORRUPT"), got


def test_forged_kind_string_as_fixed_refused(tmp_path):
    """A string column relabelled fixed with a reference dtype of the offsets' width."""
    d = saved(tmp_path)
    forge_dtype(d, "s", "O", kind=0, itemsize=8)
    for verify in (True, False):
        assert child_load(d, verify=verify).startswith("CORRUPT")


def test_forged_dtype_in_description_refused(tmp_path):
    tv = TableView({"x": (np.arange(6) + 1j).astype(np.complex128)})
    fn, (raw,) = tv.__reduce__()
    ncols = struct.unpack_from("<Q", raw, 32)[0]
    for dtype in ("T", "O,O", "|V16"):
        forged = fix_manifest(_patch(raw, _col_entries(raw, 40, ncols, 0), "x", dtype))
        with pytest.raises(CorruptDataError, match="dtype"):
            fn(forged)
    assert fn(raw)[:]["x"].tolist() == tv[:]["x"].tolist()


TIME_DTYPES = ["M8", "m8", "M8[Y]", "M8[M]", "M8[W]", "M8[D]", "m8[h]", "m8[m]", "M8[s]", "M8[ms]",
               "m8[us]", "M8[ns]", "m8[ps]", "M8[fs]", "m8[as]", "M8[25s]", "m8[3us]", "M8[7D]"]


@pytest.mark.parametrize("dtype", TIME_DTYPES + ["longdouble", "clongdouble", "u2", "i1", "?", "e"])
def test_every_constructible_dtype_roundtrips(tmp_path, dtype):
    """The allow-list holds everything construction writes (NumPy is the model)."""
    dt = np.dtype(dtype)
    a = np.arange(12, dtype=np.int64).astype(dt).reshape(6, 2)
    d = str(tmp_path / "d")
    TableView({"a": a}).save_to_disk(d, "v")
    for verify in (True, False):
        got = TableView.load_from_disk(d, "v", verify=verify)
        assert got.schema["a"][0] == dt
        np.testing.assert_array_equal(got[:]["a"], a, strict=True)


def test_construction_refuses_what_the_allow_list_refuses():
    with pytest.raises(TypeError):
        TableView({"x": np.zeros(3, dtype=[("a", "i4")])})
    with pytest.raises(TypeError):
        TableView({"x": np.zeros(3, dtype="V4")})


# ---- item 6: only regular files ----

def _replace_with(path, what):
    os.unlink(path)
    if what == "fifo":
        os.mkfifo(path)
    elif what == "dir":
        os.mkdir(path)
    elif what == "device":
        os.symlink("/dev/zero", path)
    elif what == "null":
        os.symlink("/dev/null", path)


@pytest.mark.parametrize("what", ["fifo", "dir", "device", "null"])
@pytest.mark.parametrize("target", ["manifest", "store"])
def test_non_regular_files_fail_at_once(tmp_path, what, target):
    d = saved(tmp_path)
    if target == "manifest":
        p = os.path.join(d, "v.idtview")
    else:
        p = os.path.join(d, [f for f in os.listdir(d) if f.startswith("s-")][0])
    _replace_with(p, what)
    got = child_load(d, timeout=20)
    assert got != "HANG", (what, target)
    assert got.startswith("CORRUPT"), got
    assert "not a regular file" in got, got
    with pytest.raises(CorruptDataError, match="not a regular file"):
        TableView.load_from_disk(d, "v")


def test_regular_file_through_a_symlink_loads(tmp_path):
    d = saved(tmp_path)
    s = [f for f in os.listdir(d) if f.startswith("s-")][0]
    os.rename(os.path.join(d, s), str(tmp_path / "elsewhere"))
    os.symlink(str(tmp_path / "elsewhere"), os.path.join(d, s))
    assert len(TableView.load_from_disk(d, "v")) == 6


# ---- item 7: a save does not trust what it finds ----

def _files(d, prefix):
    return sorted(f for f in os.listdir(d) if f.startswith(prefix))


def _plant(path, data):
    os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)


def _damages(raw):
    flipped = bytearray(raw)
    flipped[-1] ^= 0x55
    return {
        "flipped_byte": bytes(flipped),
        "truncated": raw[: len(raw) // 2],
        "appended": raw + b"\0" * 4096,
        "empty": b"",
        "other_bytes": os.urandom(len(raw)),
    }


@functools.lru_cache(maxsize=1)
def _views():
    big = TableView({"x": np.arange(300_000.0), "s": np.array([str(i % 97) for i in range(300_000)])})
    small = TableView({"x": np.arange(50.0), "s": np.array([f"w{i}" for i in range(50)])})
    return {"big_linked": big.shuffle(seed=1), "small_copied": small.shuffle(seed=2)}


@pytest.mark.parametrize("which", ["big_linked", "small_copied"])
@pytest.mark.parametrize("prefix", ["s-", "r-"])
@pytest.mark.parametrize("damage", ["flipped_byte", "truncated", "appended", "empty", "other_bytes"])
@pytest.mark.parametrize("how", ["new_name", "overwrite"])
def test_planted_file_under_content_name_is_replaced(tmp_path, which, prefix, damage, how):
    v = _views()[which]
    want = v[:]
    d = str(tmp_path / "d")
    v.save_to_disk(d, "a")
    for f in _files(d, prefix):
        p = os.path.join(d, f)
        _plant(p, _damages(open(p, "rb").read())[damage])
    if how == "new_name":
        v.save_to_disk(d, "b")
        name = "b"
    else:
        v.save_to_disk(d, "a", overwrite=True)  # overwrite repairs
        name = "a"
    got = TableView.load_from_disk(d, name)
    np.testing.assert_array_equal(got[:]["x"], want["x"], strict=True)
    assert got[:]["s"].tolist() == want["s"].tolist()
    assert not [f for f in os.listdir(d) if f.startswith(".tmp-")]


def test_intact_files_are_reused_not_rewritten(tmp_path):
    v = _views()["small_copied"]
    d = str(tmp_path / "d")
    v.save_to_disk(d, "a")
    inodes = {f: os.stat(os.path.join(d, f)).st_ino for f in os.listdir(d) if f[:2] in ("s-", "r-")}
    v.save_to_disk(d, "b")
    assert {f: os.stat(os.path.join(d, f)).st_ino for f in inodes} == inodes


def test_planted_fifo_under_content_name_is_replaced(tmp_path):
    v = _views()["small_copied"]
    d = str(tmp_path / "d")
    v.save_to_disk(d, "a")
    for f in _files(d, "s-"):
        os.unlink(os.path.join(d, f))
        os.mkfifo(os.path.join(d, f))
    rc, out, err = run_child("""
        import sys, numpy as np, infinidata
        d = sys.argv[1]
        small = infinidata.TableView({"x": np.arange(50.0), "s": np.array([f"w{i}" for i in range(50)])})
        v = small.shuffle(seed=2)
        v.save_to_disk(d, "a", overwrite=True)
        assert infinidata.TableView.load_from_disk(d, "a")[:]["x"].tolist() == v[:]["x"].tolist()
        print("OK")
    """, d, timeout=30)
    assert rc == 0 and "OK" in out, (rc, out, err)


# ---- item 8: garbage ----

def _referenced(d):
    """Data files whose names some manifest of d holds."""
    names = set()
    for m in os.listdir(d):
        if m.endswith(".idtview"):
            raw = open(os.path.join(d, m), "rb").read()
            names |= {f for f in os.listdir(d) if f[:2] in ("s-", "r-") and f.encode() in raw}
    return names


def test_160_overwrite_saves_leave_only_live_files(tmp_path):
    tv = TableView({"x": np.arange(150_000, dtype=np.int64)})  # 1.2 MB
    d = str(tmp_path / "d")
    for i in range(160):
        tv.shuffle(seed=i).save_to_disk(d, "v", overwrite=True)
    files = sorted(os.listdir(d))
    assert files == sorted(["v.idtview"] + list(_referenced(d))), files
    assert len(files) == 3  # manifest, the store, the last shuffle's ref array
    np.testing.assert_array_equal(TableView.load_from_disk(d, "v")[:]["x"],
                                  tv.shuffle(seed=159)[:]["x"], strict=True)


def test_overwrite_keeps_files_other_manifests_name(tmp_path):
    tv = TableView({"x": np.arange(1000, dtype=np.int64)})
    d = str(tmp_path / "d")
    s1 = tv.shuffle(seed=1)
    s1.save_to_disk(d, "keep")
    s1.save_to_disk(d, "v")
    tv.shuffle(seed=2).save_to_disk(d, "v", overwrite=True)
    np.testing.assert_array_equal(TableView.load_from_disk(d, "keep")[:]["x"], s1[:]["x"])
    tv.shuffle(seed=3).save_to_disk(d, "v", overwrite=True)
    assert sorted(f for f in os.listdir(d) if f.startswith("r-")) == sorted(
        f for f in _referenced(d) if f.startswith("r-"))
    assert len([f for f in os.listdir(d) if f.startswith("r-")]) == 2


def test_overwrite_with_unreadable_other_manifest_removes_nothing(tmp_path):
    tv = TableView({"x": np.arange(1000, dtype=np.int64)})
    d = str(tmp_path / "d")
    tv.shuffle(seed=1).save_to_disk(d, "v")
    with open(os.path.join(d, "other.idtview"), "wb") as f:
        f.write(b"not a manifest")
    before = set(os.listdir(d))
    tv.shuffle(seed=2).save_to_disk(d, "v", overwrite=True)
    assert before <= set(os.listdir(d))


STALE = [".tmp-0123456789abcdef-s-" + "0" * 32 + ".idt", ".tmp-fedcba9876543210-r-" + "a" * 32 + ".idt",
         ".tmp-00000000000000ff-v.idtview"]
FOREIGN = [".tmp-notes", ".tmp-0123456789abcdef-notes.txt", "s-123.idt", "notes.txt", ".tmp-XYZ-v.idtview",
           "s-" + "0" * 32 + ".idt.bak", ".tmp-0123456789ABCDEF-s-" + "0" * 32 + ".idt"]


def _put(d, names, size=10):
    for n in names:
        with open(os.path.join(d, n), "wb") as f:
            f.write(b"x" * size)


def test_next_save_removes_stale_temp_files_only(tmp_path):
    d = saved(tmp_path)
    _put(d, STALE + FOREIGN)
    TableView({"z": np.arange(3)}).save_to_disk(d, "w")
    left = set(os.listdir(d))
    assert not left & set(STALE), left
    assert set(FOREIGN) <= left


def test_live_writers_temp_files_are_kept(tmp_path):
    """A save holds the directory's lock shared while it runs: another save must not take its
    temporary files for a dead writer's."""
    d = saved(tmp_path)
    _put(d, STALE)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # as a running save does
        TableView({"z": np.arange(3)}).save_to_disk(d, "w")
        assert set(STALE) <= set(os.listdir(d))
        with pytest.raises(OSError, match="in progress"):
            infinidata.gc_saved(d)
    finally:
        os.close(fd)
    TableView({"z": np.arange(3)}).save_to_disk(d, "w2")
    assert not set(STALE) & set(os.listdir(d))


def test_killed_save_leaves_temp_that_next_save_removes(tmp_path):
    """A writer killed mid-save (holding the directory's lock, its temporary files written):
    its lock dies with it, and the next save removes its files."""
    d = saved(tmp_path)
    _put(d, STALE)
    rc, out, err = run_child("""
        import fcntl, os, signal, sys
        fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.kill(os.getpid(), signal.SIGKILL)
    """, d)
    assert rc == -9
    TableView({"z": np.arange(3)}).save_to_disk(d, "w")
    assert not set(STALE) & set(os.listdir(d))


def test_gc_saved_cli(tmp_path):
    d = saved(tmp_path)
    tv = TableView({"x": np.arange(1000, dtype=np.int64)})
    tv.shuffle(seed=1).save_to_disk(d, "w")
    live = set(os.listdir(d))
    orphan_r = "r-" + "b" * 32 + ".idt"
    orphan_s = "s-" + "c" * 32 + ".idt"
    _put(d, STALE + FOREIGN + [orphan_r, orphan_s], size=100)
    cmd = [sys.executable, "-m", "infinidata", "gc", "--saved", d]
    p = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, cwd=HERE)
    assert p.returncode == 0, p.stderr
    for n in STALE + [orphan_r, orphan_s]:
        assert n in p.stdout
    assert "would remove 3 temporary files, 2 unreferenced data files, 500 bytes" in p.stdout, p.stdout
    assert set(STALE + [orphan_r, orphan_s]) <= set(os.listdir(d))
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    assert p.returncode == 0, p.stderr
    assert "removed 3 temporary files, 2 unreferenced data files, 500 bytes" in p.stdout, p.stdout
    assert set(os.listdir(d)) == live | set(FOREIGN)
    assert len(TableView.load_from_disk(d, "v")) == 6 and len(TableView.load_from_disk(d, "w")) == 1000


def test_gc_saved_leaves_data_files_when_a_manifest_is_unreadable(tmp_path):
    d = saved(tmp_path)
    orphan = "r-" + "b" * 32 + ".idt"
    _put(d, [orphan] + STALE)
    with open(os.path.join(d, "broken.idtview"), "wb") as f:
        f.write(b"garbage")
    r = infinidata.gc_saved(d)
    assert r["manifests_unreadable"] and r["data_files"] == 0 and r["tmp_files"] == len(STALE)
    assert orphan in os.listdir(d)
    p = subprocess.run([sys.executable, "-m", "infinidata", "gc", "--saved", d], capture_output=True,
                       text=True, cwd=HERE)
    assert p.returncode == 1 and "left alone" in p.stderr


def test_plain_gc_still_sweeps_temp_root(tmp_path):
    p = subprocess.run([sys.executable, "-m", "infinidata", "gc", "--dry-run", "--root", str(tmp_path)],
                       capture_output=True, text=True, cwd=HERE)
    assert p.returncode == 0 and "dead process directories" in p.stdout, p.stdout + p.stderr


# ---- item 9: names ----

def test_nul_in_column_name_refused():
    with pytest.raises(ValueError, match="NUL"):
        TableView({"a\0b": np.arange(3)})
    with pytest.raises(ValueError, match="NUL"):
        TableView({"ok": np.arange(3), "\0": np.arange(3)})
    tv = TableView({"a": np.arange(3), "s": np.array(["x", "y", "z"])})
    with pytest.raises(ValueError, match="NUL"):
        tv.select_columns(["a\0junk"])
    with pytest.raises(ValueError, match="NUL"):
        tv.remove_matching_strings("s\0junk", ["x"])


def test_nul_in_view_name_refused(tmp_path):
    tv = TableView({"a": np.arange(3)})
    with pytest.raises(ValueError):
        tv.save_to_disk(str(tmp_path / "d"), "v\0w")
    assert not os.path.exists(tmp_path / "d" / "v.idtview")
    tv.save_to_disk(str(tmp_path / "d"), "v")
    with pytest.raises(ValueError):
        TableView.load_from_disk(str(tmp_path / "d"), "v\0w")


def test_manifest_selecting_a_column_twice_refused(tmp_path):
    d = str(tmp_path / "d")
    TableView({"a": np.arange(3), "b": np.arange(3.0)}).save_to_disk(d, "v")
    m = os.path.join(d, "v.idtview")
    raw = open(m, "rb").read()
    ncols = struct.unpack_from("<Q", raw, 32)[0]
    name, start, dpos, dl = _col_entries(raw, 40, ncols, 0)[-1]
    pos = start + ((dpos + dl - start + 7) & ~7)
    assert struct.unpack_from("<QQQ", raw, pos) == (2, 0, 1)
    b = bytearray(raw)
    struct.pack_into("<QQQ", b, pos, 2, 1, 1)
    open(m, "wb").write(fix_manifest(bytes(b)))
    for verify in (True, False):
        got = child_load(d, verify=verify)
        assert got.startswith("CORRUPT") and "selected twice" in got, got


# ---- item 10: modes ----

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_linked_and_copied_files_get_one_mode(tmp_path, umask):
    d = str(tmp_path / "d")
    rc, out, err = run_child("""
        import os, sys, numpy as np, infinidata
        os.umask(int(sys.argv[2]))
        d = sys.argv[1]
        big = infinidata.TableView({"x": np.arange(400_000.0)})   # its own temp file: linked
        small = infinidata.TableView({"y": np.arange(10.0)})      # in an arena file: copied
        big.save_to_disk(d, "b")
        big.shuffle(seed=1).save_to_disk(d, "c")                  # a large ref array: linked
        small.shuffle(seed=1).save_to_disk(d, "e")
        links = sorted(os.stat(os.path.join(d, f)).st_nlink for f in os.listdir(d))
        print(links)
    """, d, umask)
    assert rc == 0, err
    links = eval(out.strip().splitlines()[-1])
    assert 1 in links and max(links) >= 2, links  # both paths were taken
    modes = {f: stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) for f in os.listdir(d)}
    assert set(modes.values()) == {0o644 & ~umask}, modes
    assert len(modes) == 7, modes


# ---- item 14: what mmap cannot protect against (documented in the README) ----

def test_truncated_under_a_loaded_view_is_sigbus_as_documented(tmp_path):
    """A data file truncated by another process while a view of it is loaded kills the
    reader with SIGBUS on the next read of the lost pages (the README says so, as LMDB's
    documentation does); a load after the truncation is a clean CorruptDataError."""
    d = str(tmp_path / "d")
    TableView({"x": np.arange(200_000.0)}).save_to_disk(d, "v")
    rc, out, err = run_child("""
        import os, sys, infinidata
        d = sys.argv[1]
        tv = infinidata.TableView.load_from_disk(d, "v")
        [s] = [f for f in os.listdir(d) if f.startswith("s-")]
        os.truncate(os.path.join(d, s), 4096)
        print("truncated", flush=True)
        tv[:]
        print("read")
    """, d)
    # SIGBUS; under make sanitize ASan catches it and aborts (SIGABRT)
    assert rc == (-6 if UNDER_ASAN else -7), (rc, out, err)
    assert "truncated" in out and "read" not in out
    with pytest.raises(CorruptDataError):
        TableView.load_from_disk(d, "v")
    readme = open(os.path.join(HERE, "..", "..", "README.md")).read()
    assert "SIGBUS" in readme

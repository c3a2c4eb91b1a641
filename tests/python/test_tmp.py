"""The temp area under hostile conditions, and disk that follows live data.

Reaping removes only what infinidata made: temp roots are planted with symlinks to a victim
directory, directories named like a process's with unlocked `lock` files, FIFOs and files
named like ours but not ours; every victim file must survive. The root is read once (gc
too), a user-made root is never removed, a root deleted under a running process is made
again. Arena space is reused and given back: disk held (allocated blocks, as `du` counts)
follows the live data under churn, and a small RLIMIT_FSIZE does not break small tables.
Everything runs in child processes with their own INFINIDATA_TMPDIR."""

import gc
import os
import pickle
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import infinidata
from infinidata import _infinidata as core
from conftest import run_python

MARK = core._TMP_MARKER


def plant(d, files):
    """Make directory d holding `files` (name -> bytes); returns files."""
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return files


def user_files():
    return {"lock": b"", "notes.txt": b"precious", "a0.idt": b"user data", "b1.idt": b"more"}


def listing(d):
    """{name: (kind, bytes or link target)} of directory d, not following symlinks."""
    out = {}
    for name in os.listdir(d):
        p = os.path.join(d, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[name] = ("link", os.readlink(p))
        elif stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                out[name] = ("file", f.read())
        elif stat.S_ISFIFO(st.st_mode):
            out[name] = ("fifo", None)
        elif stat.S_ISDIR(st.st_mode):
            out[name] = ("dir", listing(p))
        else:
            out[name] = ("other", None)
    return out


TABLE_AND_GC = (
    "import numpy as np, infinidata\n"
    "t = infinidata.TableView({'x': np.arange(5)})\n"
    "assert t[:]['x'].tolist() == list(range(5))\n"
    "infinidata.gc()\n"
)


def use_area(root, timeout=60):
    """A process that makes a table in `root` (reaping at its first blob) and runs gc();
    then `python -m infinidata gc` on the same root."""
    env = {"INFINIDATA_TMPDIR": str(root)}
    run_python(TABLE_AND_GC, env=env, timeout=timeout)
    p = subprocess.run([sys.executable, "-m", "infinidata", "gc"], env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


def dead_process_dir(root, extra_code=""):
    """Run a child that makes tables in root and exits without cleanup; its directory."""
    code = (
        "import os, numpy as np, infinidata\n"
        "from infinidata import _infinidata as core\n"
        "t = infinidata.TableView({'x': np.arange(5)})\n"
        "big = infinidata.TableView({'x': np.arange(300_000)})\n"
        "print(core._tmp_dir(), flush=True)\n"
        + extra_code +
        "os._exit(0)\n"
    )
    return run_python(code, env={"INFINIDATA_TMPDIR": str(root)}).stdout.strip()


# ---- reaping: only what the library made ----

def test_user_dirs_named_like_ours_survive_in_a_shared_root(tmp_path):
    # INFINIDATA_TMPDIR pointed at a directory a user keeps files in (like $HOME)
    root = tmp_path / "home"
    root.mkdir()
    (root / "diary.txt").write_bytes(b"dear diary")
    plant(root / "p1234-0123456789abcdef", user_files())          # exact name, empty lock
    plant(root / "photos", user_files())                            # p*, unlocked lock
    plant(root / "p77-00000000000000ff",                            # a marker for another name
          dict(user_files(), lock=(MARK + "78-00000000000000ff\n").encode()))
    plant(root / "p78-00000000000000ee",                            # the marker plus junk
          dict(user_files(), lock=(MARK + "78-00000000000000ee\nmore\n").encode()))
    fifo_dir = root / "p88-00000000000000dd"                         # the lock is a FIFO
    plant(fifo_dir, {"data.txt": b"keep"})
    os.mkfifo(fifo_dir / "lock")
    (root / "p99-00000000000000cc").write_bytes(b"a file named like a directory")
    old_new = root / ".new-5-0000000000000011"                       # old, half-made-looking
    plant(old_new, user_files())
    os.utime(old_new, (time.time() - 7200, time.time() - 7200))
    before = listing(root)
    out = use_area(root)
    assert out.startswith("removed 0 dead process directories, 0 files"), out
    assert listing(root) == before  # the user's root is not removed either, nor emptied


def test_symlinks_are_never_followed(tmp_path):
    victim = tmp_path / "victim"
    # the victim even looks like a dead process's directory (marker and all)
    vfiles = plant(victim, dict(user_files(), lock=(MARK + "4242-00000000000000aa\n").encode()))
    other = tmp_path / "other"
    ofiles = plant(other, {"lock": (MARK + "4244-00000000000000cc\n").encode(),
                           "b5.idt": b"not ours either"})
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(victim, root / "p4242-00000000000000aa")
    # a dead process's directory whose data file names are symlinks out of the root
    dead = dead_process_dir(root)
    os.symlink(victim / "notes.txt", os.path.join(dead, "a900.idt"))
    os.symlink(victim, os.path.join(dead, "b901.idt"))
    # a directory whose lock is a symlink to a marked lock elsewhere
    lnk = root / "p4244-00000000000000cc"
    lnk.mkdir()
    os.symlink(other / "lock", lnk / "lock")
    (lnk / "b1.idt").write_bytes(b"x" * 5000)
    os.symlink(root, root / "p4245-00000000000000dd")  # a loop
    use_area(root)
    assert listing(victim) == {k: ("file", v) for k, v in vfiles.items()}
    assert listing(other) == {k: ("file", v) for k, v in ofiles.items()}
    assert os.path.islink(root / "p4242-00000000000000aa")
    assert os.path.islink(root / "p4245-00000000000000dd")
    # the dead directory lost its own files only: the symlinks (not ours) and so the
    # lock and the directory stay
    assert sorted(os.listdir(dead)) == ["a900.idt", "b901.idt", "lock"]
    assert sorted(os.listdir(lnk)) == ["b1.idt", "lock"]


def test_dead_dir_with_foreign_entries_keeps_them(tmp_path):
    root = tmp_path / "root"
    dead = dead_process_dir(root)
    ours = sorted(os.listdir(dead))
    assert "lock" in ours and any(n.startswith("a") for n in ours) and any(n.startswith("b") for n in ours)
    with open(os.path.join(dead, "mine.txt"), "wb") as f:
        f.write(b"user file")
    os.mkfifo(os.path.join(dead, "b77.idt"))         # named like ours, not a regular file
    os.mkdir(os.path.join(dead, "a78.idt"))
    rep = infinidata.gc(root=str(root), dry_run=True)
    assert rep["dirs"] == 1 and rep["files"] == len(ours)
    rep = infinidata.gc(root=str(root))
    assert rep["dirs"] == 1 and rep["files"] == len(ours)
    assert sorted(os.listdir(dead)) == ["a78.idt", "b77.idt", "lock", "mine.txt"]
    with open(os.path.join(dead, "mine.txt"), "rb") as f:
        assert f.read() == b"user file"
    # once the user's entries are gone, the next reaping removes the rest
    for n in ("mine.txt", "b77.idt"):
        os.unlink(os.path.join(dead, n))
    os.rmdir(os.path.join(dead, "a78.idt"))
    assert infinidata.gc(root=str(root))["dirs"] == 1
    assert not os.path.exists(dead)


def xattrs_supported(d):
    try:
        os.setxattr(d, "user.infinidata-test", b"1")
        return True
    except OSError:
        return False


def test_a_dead_process_dir_is_still_reaped(tmp_path):
    root = tmp_path / "root"
    dead = dead_process_dir(root)
    run_python(TABLE_AND_GC, env={"INFINIDATA_TMPDIR": str(root)})
    assert not os.path.exists(dead)
    # made by the library (by another process): it goes when empty, where the file system
    # keeps the attribute that marks it
    assert not root.exists() or not xattrs_supported(tmp_path)


# ---- the root ----

def test_user_made_root_is_kept_at_exit_library_made_goes(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    run_python(TABLE_AND_GC, env={"INFINIDATA_TMPDIR": str(mine)})
    assert mine.is_dir() and os.listdir(mine) == []
    made = tmp_path / "made"
    run_python(TABLE_AND_GC, env={"INFINIDATA_TMPDIR": str(made)})
    assert not made.exists()


def test_gc_reads_the_root_the_process_uses(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    dead_a, dead_b = dead_process_dir(a), dead_process_dir(b)
    code = (
        "import os, numpy as np, infinidata\n"
        "from infinidata import _infinidata as core\n"
        "r = infinidata.gc(dry_run=True)\n"                 # first use: fixes the root (a)
        "assert r['dirs'] == 1, r\n"
        f"os.environ['INFINIDATA_TMPDIR'] = {str(b)!r}\n"
        "t = infinidata.TableView({'x': np.arange(3)})\n"   # still in a
        f"assert core._tmp_dir().startswith({str(a)!r}), core._tmp_dir()\n"
        "print(infinidata.gc())\n"
    )
    run_python(code, env={"INFINIDATA_TMPDIR": str(a)})
    assert not os.path.exists(dead_a)
    assert os.path.exists(dead_b)
    # the default root is made absolute at first use: a later chdir does not move it
    cwd1, cwd2 = tmp_path / "cwd1", tmp_path / "cwd2"
    cwd1.mkdir()
    cwd2.mkdir()
    dead1 = dead_process_dir(cwd1 / ".infinidata_tmp")
    dead2 = dead_process_dir(cwd2 / ".infinidata_tmp")
    code = (
        "import os, infinidata\n"
        "r = infinidata.gc(dry_run=True)\n"
        f"os.chdir({str(cwd2)!r})\n"
        "print(infinidata.gc()['dirs'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "INFINIDATA_TMPDIR"}
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(cwd1), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1"
    assert not os.path.exists(dead1)
    assert os.path.exists(dead2)


def test_root_deleted_under_a_running_process_is_made_again(tmp_path):
    root = tmp_path / "root"
    code = (
        "import os, shutil, numpy as np, infinidata\n"
        "from infinidata import _infinidata as core\n"
        "T = infinidata.TableView\n"
        "t1 = T({'x': np.arange(10)})\n"
        "t2 = T({'x': np.arange(300_000)})\n"
        "d1 = core._tmp_dir()\n"
        f"shutil.rmtree({str(root)!r})\n"
        "t3 = T({'x': np.arange(300_000) * 2})\n"
        "t4 = T({'x': np.arange(20) * 3}).shuffle(1)\n"
        "d2 = core._tmp_dir()\n"
        "assert os.path.isdir(d2) and d2 != d1, (d1, d2)\n"
        "assert t1[:]['x'].tolist() == list(range(10))\n"
        "assert t2[:]['x'].tolist() == list(range(300_000))\n"
        "assert np.array_equal(t3[:]['x'], np.arange(300_000) * 2)\n"
        "assert sorted(t4[:]['x'].tolist()) == [3 * i for i in range(20)]\n"
        "assert any(f.startswith('b') for f in os.listdir(d2))\n"
        f"shutil.rmtree({str(root)!r})\n"
        "assert os.path.isdir(core._tmp_dir())\n"
        "print('OK')\n"
    )
    assert run_python(code, env={"INFINIDATA_TMPDIR": str(root)}).stdout.strip() == "OK"
    assert not root.exists()


def test_unwritable_root_is_a_clean_error(tmp_path):
    # not writable even by root; reaping it finds nothing of ours and removes nothing
    bad = "/proc/sys"
    code = (
        "import numpy as np, infinidata\n"
        "print(infinidata.gc())\n"
        "try:\n"
        "    infinidata.TableView({'x': np.arange(3)})\n"
        "except OSError as e:\n"
        "    print('OSError', e)\n"
    )
    out = run_python(code, env={"INFINIDATA_TMPDIR": bad}).stdout.splitlines()
    assert out[0] == "{'dirs': 0, 'files': 0, 'bytes': 0}"
    assert out[1].startswith("OSError") and bad in out[1]


# ---- disk that follows live data ----

CHURN = r"""
import gc, os, sys, numpy as np, infinidata
from infinidata import _infinidata as core
T = infinidata.TableView
N = int(sys.argv[1])

def held():
    d = core._tmp_dir()
    return sum(os.lstat(os.path.join(d, f)).st_blocks * 512 for f in os.listdir(d))

keep = [T({'x': np.arange(3, dtype=np.int64) + k}) for k in range(20)]
words = np.array(['w%d' % k for k in range(300)])
peak = 0
for i in range(N):
    n = 1000 + i % 700
    t = T({'x': np.arange(n, dtype=np.int64), 's': np.resize(words[: 1 + i % 300], n)})
    v = t.shuffle(i).new_view(slice(None, None, 2))
    assert len(v) == (len(t) + 1) // 2
    del t, v
    if i % 50 == 0:
        peak = max(peak, held())
peak = max(peak, held())
live = core._sys_stats().get('arena_bytes', -1)
for k, t in enumerate(keep):
    assert t[:]['x'].tolist() == [k, k + 1, k + 2]
del keep, t
gc.collect()
print(peak, live, held(), core._sys_stats().get('arena_bytes', -1))
"""


def test_churn_keeps_disk_near_live_data(tmp_path):
    root = tmp_path / "root"
    p = subprocess.run([sys.executable, "-c", CHURN, "2000"], capture_output=True, text=True,
                       env=dict(os.environ, INFINIDATA_TMPDIR=str(root)), timeout=300)
    assert p.returncode == 0, p.stderr
    peak, live, after, live_after = map(int, p.stdout.split())
    # 20 tiny tables alive (their stores are a few hundred bytes each); 2000 tables of
    # ~10 KB, each shuffled and sliced, made and dropped: held blocks stay within the stated
    # bound (live bytes + two pages per live small object + IDT_ARENA_SLACK, 16 MiB, + the
    # table in flight), not the ~50 MB a bump allocator keeps
    assert 0 < live < 64 * 1024, live
    assert peak <= live + 20 * 8192 + (16 << 20) + (1 << 20), (peak, live)
    assert after < 1024 * 1024, after  # nothing alive: the lock file and empty chunk
    assert live_after == 0


FSIZE = r"""
import errno, resource, signal, numpy as np, infinidata
assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # Python ignores it: EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
T = infinidata.TableView
ts = [T({'x': np.arange(3), 's': np.array(['a', 'bc', 'd'])}) for _ in range(50)]
assert all(t[:]['x'].tolist() == [0, 1, 2] for t in ts)
sh = T({'x': np.arange(5000)}).shuffle(3)
assert sorted(sh[:]['x'].tolist()) == list(range(5000))
try:
    T({'x': np.arange(1_000_000)})  # 8 MB: over the limit
except OSError as e:
    print('OSError', e.errno == errno.EFBIG)
"""


def test_small_file_size_limit_still_makes_small_tables(tmp_path):
    out = run_python(FSIZE, env={"INFINIDATA_TMPDIR": str(tmp_path / "root")}).stdout.strip()
    assert out == "OSError True"


FSIZE_TEXT = r"""
import errno, resource, numpy as np, infinidata
T = infinidata.TableView
n = 300_000
a = np.array(['abc%d' % i for i in range(n)], dtype='U32')  # 38 MB of UCS4, ~3 MB stored
resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, 32 << 20))
t = T({'s': a, 'i': np.arange(n)})  # read once, its file growing with what is written
assert (t[:]['s'] == a).all() and t[n - 1]['s'] == 'abc%d' % (n - 1)
try:
    T({'s': np.array(['x' * 31 + str(i % 10) for i in range(n)], dtype='U32')})  # 9.6 MB stored
    T({'s': np.array(['y' * 300] * 120_000, dtype='U300')})  # 36 MB stored: over the limit
except OSError as e:
    print('OSError', e.errno == errno.EFBIG)
"""


def test_file_size_limit_counts_text_stored_not_its_bound(tmp_path):
    # A large NumPy unicode column is an open column, with room for 4 bytes per code point;
    # the limit (and the disk) must see only the bytes stored.
    out = run_python(FSIZE_TEXT, env={"INFINIDATA_TMPDIR": str(tmp_path / "root")}).stdout.strip()
    assert out == "OSError True"


FORK_REUSE = r"""
import os, numpy as np, infinidata
from infinidata import _infinidata as core
T = infinidata.TableView
t = T({'x': np.arange(1000, dtype=np.int64) * 3})
go_r, go_w = os.pipe()
res_r, res_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(go_w)
    os.read(go_r, 1)  # the parent has dropped t and made tables where t was
    ok = t[:]['x'].tolist() == [3 * i for i in range(1000)]
    os.write(res_w, b'1' if ok else b'0')
    os._exit(0)
os.close(go_r)
os.close(res_w)
del t
us = [T({'x': np.full(1000, -1, dtype=np.int64)}) for _ in range(5)]
os.write(go_w, b'g')
res = os.read(res_r, 1)
os.waitpid(pid, 0)
held_back = core._sys_stats()['arena_bytes']
del us
u = T({'x': np.arange(3)})  # the child is gone: what it could see is given back
print(res.decode(), held_back > core._sys_stats()['arena_bytes'] + 8000 * 5)
"""


def test_fork_child_keeps_reading_what_the_parent_dropped(tmp_path):
    out = run_python(FORK_REUSE, env={"INFINIDATA_TMPDIR": str(tmp_path / "root")}).stdout.split()
    assert out == ["1", "True"]


def test_unpickled_view_keeps_its_bytes_after_the_original_goes():
    t = infinidata.TableView({"x": np.arange(1000, dtype=np.int64) * 7})
    t2 = pickle.loads(pickle.dumps(t))
    del t
    gc.collect()
    us = [infinidata.TableView({"x": np.full(1000, -1, dtype=np.int64)}) for _ in range(20)]
    assert t2[:]["x"].tolist() == [7 * i for i in range(1000)]
    del us

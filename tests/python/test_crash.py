"""Crash safety of the temp area (issue 6, items 6 and 7): a process killed with SIGKILL leaves
its directory, which `gc --dry-run` reports without touching, `gc` and the next process remove;
a live process's directory is never touched (its lock decides, not its PID); a forked child
reads its parent's views and its exit removes none of the parent's files; importing creates
nothing; an uncreatable temp directory is an OSError naming the path.

Every scenario runs in child processes with their own INFINIDATA_TMPDIR under tmp_path."""

import fcntl
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import infinidata
from infinidata import _infinidata as core
from conftest import run_python

PY = sys.executable

# A child that builds tables and views forever (a big table: a file of its own; small ones:
# arena files; shuffles: ref arrays; batch workers running), after printing its directory.
WORKER = r"""
import sys, numpy as np, infinidata
from infinidata import _infinidata as core
TV = infinidata.TableView
print(core._tmp_dir(), flush=True)
keep = []
i = 0
words = np.array([str(k % 977) for k in range(160_000)])
while True:
    big = TV({"x": np.arange(150_000 + i, dtype=np.int64), "s": words[:150_000 + i]})
    small = TV({"x": np.arange(i + 1, dtype=np.int64), "s": np.array(["é"] * (i + 1))})
    keep.append(TV.concat([big.shuffle(seed=i), small]))
    for b in keep[-1].batch_iter(50_000, threads=2, readahead=2):
        pass
    keep = keep[-4:]
    i += 1
    if i == 3:
        print("READY", flush=True)
"""


def env_for(area):
    env = dict(os.environ)
    env["INFINIDATA_TMPDIR"] = str(area)
    return env


def entries(area):
    return sorted(os.listdir(area)) if os.path.exists(area) else []


def snapshot(d):
    out = {}
    for f in os.listdir(d):
        st = os.stat(os.path.join(d, f))
        out[f] = (st.st_ino, st.st_size)
    return out


def usage(d):
    """Files and bytes (st_blocks * 512) of a process directory, as gc counts them."""
    files = nbytes = 0
    for f in os.listdir(d):
        st = os.lstat(os.path.join(d, f))
        files += 1
        nbytes += st.st_blocks * 512
    return files, nbytes


def start_and_kill(area, delay=0.05):
    """Start WORKER in `area`, let it work, SIGKILL it mid-work; returns its directory."""
    p = subprocess.Popen([PY, "-c", WORKER], env=env_for(area), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        procdir = p.stdout.readline().strip()
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        time.sleep(delay)
        assert p.poll() is None
    finally:
        p.kill()  # SIGKILL
        p.wait(30)
        p.stdout.close()
        p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    return procdir, p.pid


def gc_cli(area, *args, env_area=None):
    """`python -m infinidata gc ARGS` -> (dirs, files, bytes, stdout)."""
    env = env_for(env_area if env_area is not None else area)
    p = subprocess.run([PY, "-m", "infinidata", "gc", *args], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(r"(would remove|removed) (\d+) dead process directories, (\d+) files, "
                     r"(\d+) bytes\n", p.stdout)
    assert m, p.stdout
    assert (m.group(1) == "would remove") == ("--dry-run" in args)
    return int(m.group(2)), int(m.group(3)), int(m.group(4)), p.stdout


def test_sigkill_leaves_dir_gc_dry_run_reports_next_process_reaps(tmp_path):
    area = tmp_path / "area"
    procdir, pid = start_and_kill(area)
    assert entries(area) == [os.path.basename(procdir)]
    assert os.path.basename(procdir).startswith(f"p{pid}-")
    left = snapshot(procdir)
    assert "lock" in left and any(f.endswith(".idt") for f in left)
    files, nbytes = usage(procdir)
    assert nbytes > 1_000_000
    # dry run: reports it, removes nothing (with --root and with the environment's root)
    assert gc_cli(area, "--dry-run", "--root", str(area))[:3] == (1, files, nbytes)
    assert gc_cli(area, "--dry-run")[:3] == (1, files, nbytes)
    assert infinidata.gc(root=str(area), dry_run=True) == {"dirs": 1, "files": files,
                                                             "bytes": nbytes}
    assert entries(area) == [os.path.basename(procdir)]
    assert snapshot(procdir) == left
    # the next process that makes a table in the area removes it: only its own dir remains
    code = r"""
import os, sys, numpy as np, infinidata
from infinidata import _infinidata as core
t = infinidata.TableView({"x": np.arange(10)})
assert t[3]["x"] == 3
root = os.environ["INFINIDATA_TMPDIR"]
print(sorted(os.listdir(root)), os.path.basename(core._tmp_dir()))
"""
    out = run_python(code, env={"INFINIDATA_TMPDIR": str(area)}).stdout.strip()
    listed, mine = out.rsplit(" ", 1)
    assert listed == repr([mine])
    assert not os.path.exists(procdir)
    # ... and after it exits, nothing is left
    assert entries(area) == []


def test_gc_cli_removes_and_reports_bytes(tmp_path):
    area = tmp_path / "area"
    first, _ = start_and_kill(area, 0.0)
    fd = os.open(os.path.join(first, "lock"), os.O_RDWR)
    try:  # hold the first one's lock, or the second worker would reap it at its first blob
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second, _ = start_and_kill(area, 0.1)
    finally:
        os.close(fd)
    dirs = [first, second]
    assert entries(area) == sorted(os.path.basename(d) for d in dirs)
    files = sum(usage(d)[0] for d in dirs)
    nbytes = sum(usage(d)[1] for d in dirs)
    assert gc_cli(area, "--dry-run", "--root", str(area))[:3] == (2, files, nbytes)
    # --root wins over the environment
    assert gc_cli(area, "--root", str(area), env_area=tmp_path / "elsewhere")[:3] == (2, files,
                                                                                     nbytes)
    assert entries(area) == []
    assert not os.path.exists(tmp_path / "elsewhere")  # gc creates nothing
    assert gc_cli(area, "--root", str(area))[:3] == (0, 0, 0)
    assert infinidata.gc(root=str(area)) == {"dirs": 0, "files": 0, "bytes": 0}
    assert infinidata.gc(root=str(tmp_path / "missing")) == {"dirs": 0, "files": 0, "bytes": 0}
    assert not os.path.exists(tmp_path / "missing")


LIVE = r"""
import sys, numpy as np, infinidata
from infinidata import _infinidata as core
TV = infinidata.TableView
n = 300_000
x = np.arange(n, dtype=np.int64) * 3
s = np.array([f"v{k % 1013}é" for k in range(n)])
big = TV({"x": x, "s": s})
small = TV({"x": x[:100], "s": s[:100]})
perm = np.random.default_rng(1).permutation(n)
views = {"big": (big, np.arange(n)), "small": (small, np.arange(100)),
         "take": (big.new_view(perm), perm),
         "cat": (TV.concat([small, big.new_view(slice(None, None, -7))]),
                 np.concatenate([np.arange(100), np.arange(n)[::-7]]))}
print(core._tmp_dir(), flush=True)
print("READY", flush=True)
sys.stdin.readline()
for name, (v, idx) in views.items():
    got = v[:]
    np.testing.assert_array_equal(got["x"], x[idx], strict=True)
    np.testing.assert_array_equal(got["s"], np.array(s[idx].tolist()), strict=True)
    parts = [b["x"] for b in v.batch_iter(40_000, threads=2, readahead=2)]
    np.testing.assert_array_equal(np.concatenate(parts), x[idx], strict=True)
print("OK", flush=True)
"""


def test_gc_never_removes_a_live_process_dir(tmp_path):
    area = tmp_path / "area"
    dead, _ = start_and_kill(area)
    p = subprocess.Popen([PY, "-c", LIVE], env=env_for(area), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        live = p.stdout.readline().strip()
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        # the live child made its first blob: it reaped the dead dir already
        assert entries(area) == [os.path.basename(live)]
        before = snapshot(live)
        assert len(before) >= 3
        assert gc_cli(area, "--dry-run", "--root", str(area))[:3] == (0, 0, 0)
        assert gc_cli(area, "--root", str(area))[:3] == (0, 0, 0)
        assert gc_cli(area)[:3] == (0, 0, 0)
        assert infinidata.gc(root=str(area)) == {"dirs": 0, "files": 0, "bytes": 0}
        # another process using the same area (it reaps at its first blob) leaves it alone
        run_python("import numpy as np, infinidata\n"
                   "t = infinidata.TableView({'x': np.arange(500_000)}).shuffle(seed=1)\n"
                   "assert (np.sort(t[:]['x']) == np.arange(500_000)).all()\n",
                   env={"INFINIDATA_TMPDIR": str(area)})
        assert snapshot(live) == before
        assert entries(area) == [os.path.basename(live)]
        assert os.path.exists(dead) is False
        out, err = p.communicate("go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert out.strip() == "OK", (out, err)
    assert entries(area) == []


def fake_dir(area, name, data=b"x" * 10000):
    """A process directory as infinidata makes one: its lock file holds the marker."""
    d = area / name
    d.mkdir(parents=True)
    (d / "lock").write_bytes((core._TMP_MARKER + name[1:] + "\n").encode())
    (d / "b0.idt").write_bytes(data)
    return d


def test_the_lock_decides_not_the_pid(tmp_path):
    area = tmp_path / "area"
    # named after a live process (this one: as if a dead process's PID had been reused),
    # but nobody holds its lock: it is a dead process's and goes
    reused = fake_dir(area, f"p{os.getpid()}-00000000deadbeef")
    # named after a PID that cannot be alive, but its lock is held: it stays
    held = fake_dir(area, "p999999999-00000000cafef00d")
    fd = os.open(held / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rep = infinidata.gc(root=str(area), dry_run=True)
        assert rep["dirs"] == 1 and rep["files"] == 2
        rep = infinidata.gc(root=str(area))
        assert rep["dirs"] == 1 and rep["files"] == 2 and rep["bytes"] >= 10000
        assert not reused.exists()
        assert sorted(os.listdir(held)) == ["b0.idt", "lock"]
        # a new process in the area reaps at its first blob: still not the held one
        run_python("import numpy as np, infinidata\n"
                   "infinidata.TableView({'x': np.arange(5)})\n",
                   env={"INFINIDATA_TMPDIR": str(area)})
        assert sorted(os.listdir(held)) == ["b0.idt", "lock"]
    finally:
        os.close(fd)  # releases the lock
    assert infinidata.gc(root=str(area))["dirs"] == 1
    assert entries(area) == []


FORK = r"""
import gc, os, sys, traceback
import numpy as np, infinidata
from infinidata import _infinidata as core
TV = infinidata.TableView

def snapshot(d):
    return {f: (os.stat(os.path.join(d, f)).st_ino, os.stat(os.path.join(d, f)).st_size)
            for f in os.listdir(d)}

def same(got, want):
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], strict=True)

n = 250_000
big = TV({"x": np.arange(n, dtype=np.int64), "s": np.array([f"r{k % 333}" for k in range(n)])})
small = TV({"x": np.arange(50, dtype=np.int64), "s": np.array(["é"] * 50)})
views = {"big": big, "small": small, "sh": big.shuffle(seed=1),
         "cat": TV.concat([small.shuffle(seed=2), big.new_view(slice(5, None, 11))])}
want = {k: v[:] for k, v in views.items()}
mine = core._tmp_dir()
before = snapshot(mine)
assert any(f.startswith("b") for f in before) and any(f.startswith("a") for f in before)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    code = 1
    try:
        for k, v in views.items():
            same(v[:], want[k])
            parts = list(v.batch_iter(30_000, threads=2, readahead=2))
            same({c: np.concatenate([p[c] for p in parts]) for c in want[k]}, want[k])
        own = TV({"y": np.arange(400_000, dtype=np.int64)})
        derived = views["big"].shuffle(seed=7)  # the child's own ref array over the parent's store
        assert sorted(derived[:]["x"].tolist()) == list(range(n))
        child_dir = core._tmp_dir()
        assert child_dir != mine and os.path.isdir(child_dir)
        assert infinidata.gc()["dirs"] == 0  # the parent's dir is locked by the parent
        os.write(w, child_dir.encode())
        del views, big, small, own, derived  # dropping inherited views only unmaps them
        gc.collect()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os.close(w)
    sys.exit(code)  # a normal exit: atexit handlers run
os.close(w)
child_dir = b""
while True:
    chunk = os.read(r, 4096)
    if not chunk:
        break
    child_dir += chunk
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
child_dir = child_dir.decode()
assert child_dir and not os.path.exists(child_dir), child_dir  # the child removed its own
assert snapshot(mine) == before  # and none of the parent's
for k, v in views.items():
    same(v[:], want[k])
    same(TV.concat([v, v])[len(v):], want[k])
print("OK")
"""


def test_forked_child_reads_parent_views_and_removes_nothing_of_the_parent(tmp_path):
    area = tmp_path / "area"
    p = run_python(FORK, env={"INFINIDATA_TMPDIR": str(area)}, timeout=180)
    assert p.stdout.strip() == "OK"
    assert entries(area) == []


MP_FORK = r"""
import multiprocessing as mp, os, sys
import numpy as np, infinidata
from infinidata import _infinidata as core
TV = infinidata.TableView

def work(args):
    i, = args
    v = VIEWS[i % len(VIEWS)]
    got = v[:]["x"]
    own = TV({"y": np.arange(300_000) + i}).shuffle(seed=i)  # the worker's own files
    return i, got.tolist() == WANT[i % len(VIEWS)].tolist(), int(own[:]["y"].sum())

n = 200_000
big = TV({"x": np.arange(n, dtype=np.int64)})
VIEWS = [big, big.shuffle(seed=3), big.new_view(slice(None, None, -9))]
WANT = [v[:]["x"] for v in VIEWS]
mine = core._tmp_dir()
before = sorted(os.listdir(mine))
with mp.get_context("fork").Pool(3) as pool:
    res = pool.map(work, [(i,) for i in range(6)])
assert all(ok for _, ok, _ in res), res
assert [s for _, _, s in res] == [sum(range(300_000)) + 300_000 * i for i in range(6)]
assert sorted(os.listdir(mine)) == before
for v, w in zip(VIEWS, WANT):
    assert v[:]["x"].tolist() == w.tolist()
root = os.environ["INFINIDATA_TMPDIR"]
# pool workers leave by os._exit (no atexit): their directories wait for a gc, which never
# takes this live process's own
others = [d for d in os.listdir(root) if os.path.join(root, d) != mine]
rep = infinidata.gc()
assert rep["dirs"] == len(others), (rep, others)
assert sorted(os.listdir(root)) == [os.path.basename(mine)]
assert sorted(os.listdir(mine)) == before
for v, w in zip(VIEWS, WANT):
    assert v[:]["x"].tolist() == w.tolist()
print("OK", len(others))
"""


def test_fork_pool_workers_leave_parent_files(tmp_path):
    area = tmp_path / "area"
    p = run_python(MP_FORK, env={"INFINIDATA_TMPDIR": str(area)}, timeout=180)
    assert p.stdout.startswith("OK")
    assert entries(area) == []


def test_import_creates_no_directory(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    area = tmp_path / "area"
    code = ("import infinidata, infinidata.__main__\n"
            "from infinidata import _infinidata, TableView, CorruptDataError, FORMAT_VERSION\n"
            "print(FORMAT_VERSION, TableView.__name__)\n")
    run_python(code, env={"INFINIDATA_TMPDIR": str(area)}, cwd=str(cwd))
    assert not area.exists()
    assert os.listdir(cwd) == []
    env = dict(os.environ)
    env.pop("INFINIDATA_TMPDIR", None)  # the default, ./.infinidata_tmp, is not made either
    p = subprocess.run([PY, "-c", code + "infinidata.gc(dry_run=True)\n"], env=env, cwd=str(cwd),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert os.listdir(cwd) == []


@pytest.mark.parametrize("how", ["under_a_file", "is_a_file"])
def test_uncreatable_temp_dir_raises_oserror_naming_it(tmp_path, how):
    f = tmp_path / "plain_file"
    f.write_text("not a directory")
    target = f / "sub" if how == "under_a_file" else f
    code = r"""
import sys, numpy as np, infinidata
for attempt in range(2):  # and again: still a clean error
    try:
        infinidata.TableView({"x": np.arange(3)})
    except OSError as e:
        print(type(e).__name__, e.errno, str(e))
    else:
        print("no error")
"""
    out = run_python(code, env={"INFINIDATA_TMPDIR": str(target)}).stdout.splitlines()
    assert len(out) == 2
    for line in out:
        assert line != "no error"
        assert str(target) in line, line
    if how == "under_a_file":
        assert out[0].split()[1] == str(20)  # ENOTDIR
    assert f.read_text() == "not a directory"


def test_tmpdir_is_read_once(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    code = r"""
import os, numpy as np, infinidata
from infinidata import _infinidata as core
t = infinidata.TableView({"x": np.arange(3)})
first = core._tmp_dir()
os.environ["INFINIDATA_TMPDIR"] = %r
u = infinidata.TableView({"x": np.arange(4)})
assert core._tmp_dir() == first
print(first)
""" % str(b)
    first = run_python(code, env={"INFINIDATA_TMPDIR": str(a)}).stdout.strip()
    assert os.path.dirname(first) == str(a)
    assert not b.exists()
    assert entries(a) == []

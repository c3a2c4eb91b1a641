"""Temp files, processes, memory and system limits (issue 3 items 9-10, issue 4 items 7-10):
files counted as views come and go, nothing made at import, everything gone at exit, bounded
anonymous RSS, mappings and descriptors at scale, no leaks, many threads at once. Counted, not
timed."""

import gc
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import infinidata
from conftest import (arena_files, assert_same, blob_files, data_files, expected, n_mappings,
                      run_python, sys_stats, tmp_dir)

TableView = infinidata.TableView
MB = 1 << 20

BIG_ROWS = 300_000  # 2.4 MB of int64: a store (or ref array) of its own, in its own file


def perm_of(n, seed):
    return TableView({"p": np.arange(n, dtype=np.int64)}).shuffle(seed)[:]["p"]


# ---- files as views come and go ----

def test_files_follow_the_views_that_read_them():
    gc.collect()
    before = data_files()
    x = np.arange(BIG_ROWS, dtype=np.int64)
    tv = TableView({"x": x})
    files_store = data_files()
    assert len(blob_files()) == len([f for f in before if f.startswith("b")]) + 1
    new = sorted(set(files_store) - set(before))
    assert len(new) == 1 and new[0].startswith("b"), new

    sl = tv.new_view(slice(None, None, -3))  # zero copy: no file
    sel = tv.select_columns(["x"])
    cat = TableView.concat([tv, sl, tv])
    assert data_files() == files_store

    s1 = tv.shuffle(1)  # a ref array of 2.4 MB: one more file
    assert len(data_files()) == len(files_store) + 1
    s2 = s1.shuffle(2)  # composed through s1 straight into the store: its own ref array
    assert len(data_files()) == len(files_store) + 2
    del tv
    gc.collect()
    assert len(data_files()) == len(files_store) + 2  # the views still read the store
    del s1  # an intermediate view of the chain: its ref array goes, s2 does not need it
    gc.collect()
    assert len(data_files()) == len(files_store) + 1
    p1, p2 = perm_of(BIG_ROWS, 1), perm_of(BIG_ROWS, 2)
    np.testing.assert_array_equal(s2[:]["x"], x[p1][p2], strict=True)
    np.testing.assert_array_equal(cat[:]["x"], np.concatenate([x, x[::-3], x]), strict=True)
    np.testing.assert_array_equal(sel[:]["x"], x, strict=True)
    del s2
    gc.collect()
    assert data_files() == files_store
    del sl, sel
    gc.collect()
    assert data_files() == files_store  # cat still reads the store
    del cat
    gc.collect()
    assert data_files() == before


def test_small_tables_and_ref_arrays_share_arena_files():
    gc.collect()
    before = data_files()
    st0 = sys_stats()
    tabs = [TableView({"i": np.arange(k, k + 4), "s": np.array(["a", "b", "c", str(k)])})
            for k in range(3000)]
    takes = [t.new_view([3, 0, 0]) for t in tabs]
    st1 = sys_stats()
    assert st1["blobs"] - st0["blobs"] == 6000
    assert st1["file_blobs"] == st0["file_blobs"]
    assert len(blob_files()) == len([f for f in before if f.startswith("b")])
    assert len(arena_files()) <= len([f for f in before if f.startswith("a")]) + 1
    assert st1["maps"] - st0["maps"] <= 1 and st1["fds"] - st0["fds"] <= 1
    assert_same(takes[1234][:], {"i": np.array([1237, 1234, 1234]),
                                 "s": np.array(["1234", "a", "a"])})
    del tabs, takes
    st2 = sys_stats()
    assert st2["blobs"] == st0["blobs"]
    assert len(data_files()) <= len(before) + 1  # at most the arena file in use stays


def test_tmp_dir_layout():
    d = tmp_dir()
    root = os.environ["INFINIDATA_TMPDIR"]
    assert os.path.dirname(d) == os.path.realpath(root)
    name = os.path.basename(d)
    assert name.startswith(f"p{os.getpid()}-")
    assert "lock" in os.listdir(d)
    for f in os.listdir(d):  # blobs, and saved data files (parallel map saves parts here)
        assert f == "lock" or (f.endswith(".idt") and (f[0] in "ab" or f[:2] in ("s-", "r-"))), f


# ---- processes ----

def test_import_creates_nothing(tmp_path):
    target = tmp_path / "tmpdir"
    code = ("import infinidata, infinidata._infinidata as c, numpy\n"
            "print(infinidata.TableView, c._sys_stats())\n")
    run_python(code, env={"INFINIDATA_TMPDIR": str(target)}, cwd=str(tmp_path))
    assert not target.exists()
    assert os.listdir(tmp_path) == []
    # without INFINIDATA_TMPDIR: ./.infinidata_tmp, and only on first use
    env = {k: v for k, v in os.environ.items() if k != "INFINIDATA_TMPDIR"}
    code = ("import os, sys, numpy as np, infinidata\n"
            "assert not os.path.exists('.infinidata_tmp')\n"
            "tv = infinidata.TableView({'a': np.arange(3)})\n"
            "from infinidata import _infinidata as c\n"
            "d = c._tmp_dir()\n"
            "assert os.path.dirname(d) == os.path.realpath('.infinidata_tmp'), d\n"
            "print(d)\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(p.stdout.strip())
    assert not (tmp_path / ".infinidata_tmp").exists()  # an empty root goes too


def test_exit_with_live_views_removes_everything(tmp_path):
    root = tmp_path / "t"
    code = (
        "import numpy as np, infinidata, os\n"
        "from infinidata import _infinidata as c\n"
        "tv = infinidata.TableView({'x': np.arange(1_000_000), 's': np.array(['ab'] * 1_000_000)})\n"
        "views = [tv.shuffle(1), tv.new_view(slice(None, None, -1)), tv.new_view([1, 2]),\n"
        "         infinidata.TableView({'y': np.arange(5)})]\n"
        "it = tv.batch_iter(1000, threads=2, readahead=4)\n"
        "next(it)\n"
        "d = c._tmp_dir()\n"
        "files = sorted(os.listdir(d))\n"
        "assert any(f.startswith('b') for f in files) and any(f.startswith('a') for f in files), files\n"
        "print(d)\n"
    )
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(root)})
    d = p.stdout.strip()
    assert d.startswith(str(root))
    assert not os.path.exists(d)
    assert not root.exists()


def test_tmpdir_is_read_once_at_first_use(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    code = (
        "import os, numpy as np, infinidata\n"
        "from infinidata import _infinidata as c\n"
        "t1 = infinidata.TableView({'x': np.arange(10)})\n"
        f"os.environ['INFINIDATA_TMPDIR'] = {str(b)!r}\n"
        "t2 = infinidata.TableView({'x': np.arange(400_000)})\n"
        "print(c._tmp_dir())\n"
    )
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(a)})
    assert p.stdout.strip().startswith(str(a))
    assert not b.exists()


@pytest.mark.parametrize("kind", ["under_a_file", "not_writable"])
def test_unusable_tmpdir_raises_oserror_naming_it(tmp_path, kind):
    if kind == "under_a_file":
        (tmp_path / "file").write_text("x")
        bad = tmp_path / "file" / "sub"
    else:
        if os.geteuid() == 0:
            # root writes anywhere; a path below /proc cannot be created by anyone
            bad = "/proc/infinidata-test/sub"
        else:
            (tmp_path / "ro").mkdir(mode=0o500)
            bad = tmp_path / "ro" / "sub"
    code = (
        "import numpy as np, infinidata\n"
        "try:\n"
        "    infinidata.TableView({'x': np.arange(10)})\n"
        "except OSError as e:\n"
        "    print('OSError', e.errno, str(e))\n"
        "else:\n"
        "    print('no error')\n"
    )
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(bad)})
    out = p.stdout.strip()
    assert out.startswith("OSError"), out
    assert str(bad) in out


# ---- memory ----

PEAK_CODE = r"""
import json, sys, threading, time
import numpy as np, infinidata

def rss_anon():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1]) * 1024

def measure(fn):
    peak = [0]
    done = threading.Event()
    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.002)
    base = rss_anon()
    t = threading.Thread(target=poll)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    peak[0] = max(peak[0], rss_anon())
    return out, peak[0] - base

path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
result = {}
for name, dtype in [('native', '<f4'), ('byteswapped', '>f4')]:
    mm = np.memmap(path, dtype=dtype, mode='r', shape=(rows, cols))
    tv, growth = measure(lambda: infinidata.TableView({'x': mm}))
    result[name] = growth
    step = rows // 97
    ok = np.array_equal(tv[::step]['x'], mm[::step]) and np.array_equal(tv[-5:]['x'], mm[-5:])
    idx = np.random.default_rng(0).integers(0, rows, 1000)
    ok = ok and np.array_equal(tv[idx]['x'], mm[idx]) and tv[:]['x'].dtype == np.float32
    result[name + '_ok'] = bool(ok)
    del tv, mm
print(json.dumps(result))
"""


@pytest.mark.slow
@pytest.mark.memory_counts
def test_anon_rss_bounded_building_from_a_512mb_memmap(tmp_path):
    rows, cols = 1 << 20, 128  # 512 MiB of float32
    path = tmp_path / "big.f32"
    chunk = 1 << 16
    with open(path, "wb") as f:  # written in chunks: the test itself stays small too
        for start in range(0, rows, chunk):
            f.write((np.arange(start * cols, (start + chunk) * cols, dtype=np.int64) % 100_003)
                    .astype("<f4").tobytes())
    assert path.stat().st_size == rows * cols * 4
    script = tmp_path / "peak.py"
    script.write_text(PEAK_CODE)
    p = subprocess.run([sys.executable, str(script), str(path), str(rows), str(cols)],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, INFINIDATA_TMPDIR=str(tmp_path / "t")))
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["native_ok"] and res["byteswapped_ok"], res
    assert res["native"] < 64 * MB, res
    assert res["byteswapped"] < 64 * MB, res


@pytest.mark.slow
@pytest.mark.memory_counts
def test_200k_slice_views_add_few_mappings():
    cols = {"x": np.arange(1000, dtype=np.int64), "s": np.array([str(i) for i in range(1000)])}
    tv = TableView(cols)
    gc.collect()
    m0 = n_mappings()
    views = [tv.new_view(slice(i % 997, None, 1 + i % 5)) for i in range(200_000)]
    assert n_mappings() - m0 < 2000
    for i in (0, 4, 199_999, 123_456):
        sl = slice(i % 997, None, 1 + i % 5)
        assert_same(views[i][:], expected(cols, sl))
    # index views (small ref arrays) share arena files too
    takes = [tv.new_view([i % 1000, -1, 7]) for i in range(100_000)]
    assert n_mappings() - m0 < 2000
    assert_same(takes[54_321][:], expected(cols, [321, -1, 7]))
    del views, takes


@pytest.mark.slow
@pytest.mark.memory_counts
def test_a_million_live_views():
    cols = {"x": np.arange(1000, dtype=np.int32), "s": np.array(["ab", "c"] * 500)}
    tv = TableView(cols)
    m0 = n_mappings()
    views = [tv.new_view(slice(i % 1000, i % 1000 + 5)) for i in range(1_000_000)]
    assert len(views) == 1_000_000
    assert n_mappings() - m0 < 2000
    rng = np.random.default_rng(0)
    for i in rng.integers(0, 1_000_000, 200):
        a = int(i) % 1000
        assert_same(views[int(i)][:], expected(cols, slice(a, a + 5)))
    assert len({views[k].uuid() for k in range(0, 1_000_000, 1000)}) == 1000
    cat = TableView.concat(views[:1000])
    assert len(cat) == sum(len(v) for v in views[:1000])
    del views
    gc.collect()


CONCAT_100K_CODE = r"""
import resource, os, numpy as np, infinidata
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from infinidata import _infinidata as c
T = infinidata.TableView
N = 100_000
tabs = [T({'i': np.arange(3 * k, 3 * k + 3, dtype=np.int64),
           's': np.array(['x' * (k % 7), str(k), '']),
           'f': np.full((3, 2), k, dtype=np.float32)}) for k in range(N)]
fds = len(os.listdir('/proc/self/fd'))
assert fds < 100, fds
cat = T.concat(tabs)
assert len(cat) == 3 * N
r = cat[:]
assert np.array_equal(r['i'], np.arange(3 * N)), 'i'
s = np.array([v for k in range(N) for v in ('x' * (k % 7), str(k), '')])
assert np.array_equal(r['s'], s) and r['s'].dtype == s.dtype, 's'
assert np.array_equal(r['f'], np.repeat(np.arange(N, dtype=np.float32), 3)[:, None].repeat(2, 1))
idx = np.random.default_rng(1).integers(-3 * N, 3 * N, 10_000)
assert np.array_equal(cat[idx]['i'], np.arange(3 * N)[idx])
sh = cat.shuffle(4)
assert np.array_equal(np.sort(sh[:]['i']), np.arange(3 * N))
n = 0
for b in T.batch_iter_concat(tabs[:5000], 1000, threads=2, readahead=4):
    assert np.array_equal(b['i'], np.arange(n, n + len(b['i'])))
    n += len(b['i'])
assert n == 15000
st = c._sys_stats()
print(st['fds'], st['maps'], len(os.listdir(c._tmp_dir())))
"""


@pytest.mark.slow
def test_concat_of_100k_small_tables_under_1024_open_files(tmp_path):
    p = run_python(CONCAT_100K_CODE, env={"INFINIDATA_TMPDIR": str(tmp_path / "t")}, timeout=240)
    fds, maps, files = map(int, p.stdout.split())
    assert fds < 50 and maps < 1000 and files < 100, (fds, maps, files)


LEAK_CODE = r"""
import gc, json, os, numpy as np, infinidata
from infinidata import _infinidata as c
T = infinidata.TableView
rng = np.random.default_rng(0)
words = np.array(['', 'a', 'héllo', 'xyz', '😀'])

def rss_anon():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1]) * 1024

def files():
    d = c._tmp_dir()
    return sorted(f for f in os.listdir(d) if f.endswith('.idt'))

keep = T({'k': np.arange(20, dtype=np.int64), 'w': words[np.arange(20) % 5]})

def cycle(i):
    n = 1 + i % 40
    a = T({'k': np.arange(n, dtype=np.int64), 'w': words[np.arange(n) % 5]})
    v = T.concat([a, keep.new_view(slice(None, None, -2))])
    v = v.shuffle(i)
    v = v.new_view(np.arange(len(v))[::-1] if i % 2 else slice(1, None, 2))
    v = v.select_columns(['w', 'k'] if i % 3 else {'k'})
    if i % 5 == 0:
        v = v.filter(np.arange(len(v)) % 2 == 0)
    if i % 7 == 0 and 'w' in v.column_names:
        v = v.remove_matching_strings('w', ['a'])
    r = v[:]
    assert len(r['k']) == len(v)
    if i % 11 == 0:
        for b in v.batch_iter(3, threads=1 + i % 3, readahead=i % 4):
            pass

for i in range(1000):
    cycle(i)
gc.collect()
r0, f0, s0 = rss_anon(), files(), c._sys_stats()
for i in range(20_000):
    cycle(i)
gc.collect()
r1, f1, s1 = rss_anon(), files(), c._sys_stats()
print(json.dumps({'rss_growth': r1 - r0, 'files_before': f0, 'files_after': f1,
                  'stats_before': s0, 'stats_after': s1}))
"""


@pytest.mark.slow
@pytest.mark.memory_counts
def test_no_leak_over_20000_cycles(tmp_path):
    p = run_python(LEAK_CODE, env={"INFINIDATA_TMPDIR": str(tmp_path / "t")}, timeout=240)
    res = json.loads(p.stdout)
    assert res["rss_growth"] < 30 * MB, res["rss_growth"]
    fb, fa = res["files_before"], res["files_after"]
    sb, sa = res["stats_before"], res["stats_after"]
    for k in ("allocs", "maps", "fds", "blobs", "arena_chunks", "file_blobs"):
        assert sa[k] == sb[k], (k, sb, sa)
    # the same files; only the arena file being filled may have been replaced by a new one
    assert [f for f in fb if f.startswith("b")] == [f for f in fa if f.startswith("b")]
    assert len(fa) == len(fb), (fb, fa)


# ---- threads ----

def test_many_threads_creating_reading_dropping_views():
    parts = [{"i": np.arange(k * 1000, k * 1000 + 200, dtype=np.int64),
              "s": np.array([f"s{j}" * (j % 4) for j in range(200)]),
              "v": np.arange(400, dtype=np.float64).reshape(200, 2) + k} for k in range(3)]
    bases = [TableView(p) for p in parts]
    gc.collect()
    files0 = data_files()
    st0 = sys_stats()
    errors = []
    start = threading.Barrier(8)

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            start.wait()
            for it in range(150):
                k = int(rng.integers(0, 3))
                tv, model = bases[k], parts[k]
                ops = int(rng.integers(0, 5))
                if ops == 0:
                    key = slice(int(rng.integers(-250, 250)), int(rng.integers(-250, 250)),
                                int(rng.choice([-3, -1, 1, 2])))
                    v, m = tv.new_view(key), {c: a[key] for c, a in model.items()}
                elif ops == 1:
                    key = rng.integers(-200, 200, int(rng.integers(0, 300)))
                    v, m = tv.new_view(key), {c: a[key] for c, a in model.items()}
                elif ops == 2:
                    s = int(rng.integers(0, 1000))
                    v = tv.shuffle(s)
                    p = perm_of(200, s)
                    m = {c: a[p] for c, a in model.items()}
                elif ops == 3:
                    j = int(rng.integers(0, 3))
                    v = TableView.concat([tv, bases[j].new_view(slice(None, None, -1))])
                    m = {c: np.concatenate([model[c], parts[j][c][::-1]]) for c in model}
                else:
                    v = tv.select_columns(["s", "i"]).filter(np.arange(200) % 3 == 0)
                    m = {c: model[c][np.arange(200) % 3 == 0] for c in ("s", "i")}
                assert_same(v[:], expected(m, slice(None)))
                if len(v):
                    idx = rng.integers(-len(v), len(v), 50)
                    assert_same(v[idx], expected(m, idx))
                del v
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, repr(errors[0])
    st1 = sys_stats()
    assert st1["blobs"] == st0["blobs"]
    assert st1["file_blobs"] == st0["file_blobs"]
    assert len(data_files()) <= len(files0) + 1


FORK_CODE = r"""
import os, sys, numpy as np, infinidata
from infinidata import _infinidata as c
T = infinidata.TableView
tv = T({'x': np.arange(400_000), 's': np.array(['ab', 'c'] * 200_000)})
sh = tv.shuffle(1)
small = T({'y': np.arange(5)})
d = c._tmp_dir()
before = sorted(os.listdir(d))
pid = os.fork()
if pid == 0:
    ok = np.array_equal(np.sort(sh[:]['x']), np.arange(400_000)) and small[:]['y'].tolist() == list(range(5))
    mine = T({'z': np.arange(300_000)}).shuffle(2)
    ok = ok and np.array_equal(np.sort(mine[:]['z']), np.arange(300_000))
    child_dir = c._tmp_dir()
    ok = ok and child_dir != d and sorted(os.listdir(d)) == before
    del sh, tv, small, mine
    print('CHILD', ok, child_dir, flush=True)
    sys.exit(0)  # a normal exit: atexit cleanup runs in the child
_, status = os.waitpid(pid, 0)
assert status == 0, status
assert sorted(os.listdir(d)) == before, (before, os.listdir(d))
assert np.array_equal(np.sort(sh[:]['x']), np.arange(400_000))
print('PARENT', d)
"""


def test_forked_child_leaves_the_parents_files_alone(tmp_path):
    p = run_python(FORK_CODE, env={"INFINIDATA_TMPDIR": str(tmp_path / "t")})
    lines = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines())
    ok, child_dir = lines["CHILD"].split()
    assert ok == "True", p.stdout
    assert not os.path.exists(child_dir)  # the child's own files went at its exit
    assert not os.path.exists(lines["PARENT"].strip())  # and the parent's at its exit

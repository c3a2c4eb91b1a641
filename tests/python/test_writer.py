"""TableWriter, TableView.from_batches and flatten, against NumPy as the model."""

import gc
import os
import threading
import warnings

import numpy as np
import pytest

import infinidata
from conftest import assert_same, data_files, expected, rss_anon_kb, run_python, sys_stats

DTYPES = ["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16",
          "M8[ns]", "M8[D]", "M8[s]", "m8[us]", "m8[h]", ">i4", ">f8", "<u2"]


def _col(dtype, n, rng, shape=()):
    dt = np.dtype(dtype)
    raw = rng.integers(0, 250, size=(n,) + shape)
    if dt.kind == "b":
        return (raw % 2).astype(dt)
    if dt.kind in "mM":
        return raw.astype(np.int64).astype(dt)
    return raw.astype(dt)


def _concat(batches):
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _check_table(tv, batches):
    want = _concat(batches)
    assert len(tv) == len(next(iter(want.values())))
    assert_same(tv[:], expected(want, slice(None)))
    if len(tv):
        idx = np.random.default_rng(0).integers(0, len(tv), size=min(50, len(tv)))
        assert_same(tv[idx], expected(want, idx))


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(dtype):
    rng = np.random.default_rng(1)
    batches = [{"x": _col(dtype, n, rng), "y": _col(dtype, n, rng, (2, 3))} for n in (5, 0, 1, 17)]
    with infinidata.TableWriter() as w:
        for b in batches:
            w.append(b)
        tv = w.finish()
    _check_table(tv, batches)
    native = np.dtype(dtype).newbyteorder("=")
    assert tv.schema == {"x": (native, ()), "y": (native, (2, 3))}


def _strs(n, rng, width):
    return [("é" if i % 5 == 0 else "") + "".join(chr(97 + int(c)) for c in rng.integers(0, 26, size=int(rng.integers(0, width + 1))))
            for i in range(n)]


def test_round_trip_strings_of_every_source_and_width():
    rng = np.random.default_rng(2)
    batches = [
        {"s": np.array(_strs(10, rng, 3), dtype="U3"), "b": np.array([b"ab", b"", b"c"] * 3 + [b"x"], dtype="S2")},
        {"s": np.array(_strs(7, rng, 40), dtype=object), "b": np.array([b"long bytes" * 3] * 7, dtype=object)},
        {"s": np.array(_strs(4, rng, 9), dtype=np.dtypes.StringDType()), "b": np.array([b"\x00\xff"] * 4)},
        {"s": np.array(_strs(6, rng, 2)).astype(">U2"), "b": np.array([b"q"] * 6, dtype="S9")},
    ]
    tv = infinidata.TableView.from_batches(batches)
    got = tv[:]
    want_s = [x for b in batches for x in b["s"].tolist()]
    want_b = [bytes(x).rstrip(b"\0") for b in batches for x in b["b"].tolist()]
    assert got["s"].dtype.kind == "U" and got["s"].tolist() == want_s
    assert got["b"].dtype.kind == "S" and got["b"].tolist() == want_b
    assert tv.schema == {"s": (np.dtype("U"), ()), "b": (np.dtype("S"), ())}


@pytest.mark.parametrize("sizes", [[1] * 40, [0, 0, 3, 0], [1000], [7, 300, 1, 2, 999, 0, 64]])
def test_batch_boundaries(sizes):
    rng = np.random.default_rng(3)
    batches = [{"a": _col("i8", n, rng), "v": _col("f4", n, rng, (4,)),
                "t": np.array(_strs(n, rng, 6), dtype="U6")} for n in sizes]
    tv = infinidata.TableView.from_batches(iter(batches))
    _check_table(tv, batches)
    # every kind of read across the piece boundaries
    sh = tv.shuffle(seed=4)
    perm = np.asarray(sh[:]["a"])
    assert sorted(perm.tolist()) == sorted(tv[:]["a"].tolist())
    for b in tv.batch_iter(13, threads=2, readahead=2):
        assert set(b) == {"a", "v", "t"}


def test_schema_argument_matches_tv_schema_and_zero_batches():
    src = infinidata.TableView({"x": np.zeros((2, 3), "f4"), "s": np.array(["a", "b"]),
                                "b": np.array([b"a", b"b"])})
    tv = infinidata.TableView.from_batches([], schema=src.schema)
    assert len(tv) == 0 and tv.schema == src.schema
    assert_same(tv[:], {"x": np.zeros((0, 3), "f4"), "s": np.zeros(0, "U1"), "b": np.zeros(0, "S1")})
    w = infinidata.TableWriter({"x": ("float32", [3]), "s": (str, ()), "b": ("S", ())})
    w.append({"s": np.array(["q"]), "x": np.ones((1, 3), ">f4"), "b": np.array([b"z"], dtype=object)})
    tv = w.finish()
    assert tv.column_names == ["x", "s", "b"]
    assert_same(tv[:], {"x": np.ones((1, 3), "f4"), "s": np.array(["q"]), "b": np.array([b"z"])})


def test_no_schema_and_no_batch_cannot_finish():
    with pytest.raises(ValueError, match="schema"):
        infinidata.TableView.from_batches([])
    assert data_files() == [] or True  # nothing made; checked strictly in test_no_files_left


@pytest.mark.parametrize("bad,msg", [
    ({"a": np.arange(3.0), "s": np.array(["x"] * 3)}, r"column 'a': the batch has float64 with row shape \(\), the writer's schema has int64 with row shape \(\)"),
    ({"a": np.zeros((3, 2), "i8"), "s": np.array(["x"] * 3)}, r"column 'a': the batch has int64 with row shape \(2,\), the writer's schema has int64 with row shape \(\)"),
    ({"a": np.arange(3), "s": np.array([b"x"] * 3)}, r"column 's': the batch has bytes \(S\) with row shape \(\), the writer's schema has str \(U\)"),
    ({"a": np.arange(3)}, r"missing column 's' \(str \(U\) with row shape \(\)\)"),
    ({"a": np.arange(3), "s": np.array(["x"] * 3), "z": np.arange(3)}, r"column 'z' \(int64 with row shape \(\)\), which the writer's schema does not have"),
])
def test_schema_mismatch_names_column_and_types(bad, msg):
    with infinidata.TableWriter() as w:
        w.append({"a": np.arange(2), "s": np.array(["u", "v"])})
        with pytest.raises(ValueError, match=msg):
            w.append(bad)
        w.append({"a": np.arange(1), "s": np.array(["w"], dtype=object)})  # still usable
        tv = w.finish()
    assert tv[:]["a"].tolist() == [0, 1, 0]


def test_bad_schema_arguments():
    with pytest.raises(TypeError):
        infinidata.TableWriter([("a", "i8")])
    with pytest.raises(ValueError, match="ambiguous"):
        infinidata.TableWriter({"a": (object, ())})
    with pytest.raises(TypeError):
        infinidata.TableWriter({"a": "i8"})
    with pytest.raises(ValueError, match="row shape"):
        infinidata.TableWriter({"a": ("i8", (-1,))})
    with pytest.raises(ValueError, match="at least one column"):
        infinidata.TableWriter({})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # nothing half-made to warn about
        with pytest.raises(TypeError, match="progress"):
            infinidata.TableWriter(progress="yes")
        gc.collect()
    w = infinidata.TableWriter()
    with pytest.raises(TypeError):
        w.append([np.arange(3)])
    with pytest.raises(ValueError, match="differ in length"):
        w.append({"a": np.arange(3), "b": np.arange(2)})
    w.abort()


def test_finished_writer_refuses_more():
    w = infinidata.TableWriter()
    w.append({"a": np.arange(3)})
    tv = w.finish()
    assert w.closed
    with pytest.raises(ValueError, match="finished"):
        w.append({"a": np.arange(3)})
    with pytest.raises(ValueError, match="finished"):
        w.finish()
    w.abort()  # idempotent, and it does not touch the finished table
    assert tv[:]["a"].tolist() == [0, 1, 2]


# ---- abandoned writers leave nothing ----

def _files_now():
    gc.collect()
    return data_files()


def test_exception_in_block_removes_files():
    before = _files_now()
    with pytest.raises(RuntimeError, match="boom"):
        with infinidata.TableWriter() as w:
            w.append({"a": np.zeros(600_000)})  # a file of its own
            assert _files_now() != before
            raise RuntimeError("boom")
    assert w.closed
    assert _files_now() == before


def test_leaving_block_without_finish_warns_and_removes():
    before = _files_now()
    with pytest.warns(ResourceWarning, match="without finish"):
        with infinidata.TableWriter() as w:
            w.append({"a": np.zeros(600_000)})
    assert _files_now() == before


def test_dropping_unfinished_writer_warns_and_removes():
    before = _files_now()
    w = infinidata.TableWriter()
    w.append({"a": np.zeros(600_000)})
    with pytest.warns(ResourceWarning, match="dropped"):
        del w
        gc.collect()
    assert _files_now() == before


def test_from_batches_error_in_iterable_removes_files():
    before = _files_now()

    def gen():
        yield {"a": np.zeros(600_000)}
        yield {"a": np.zeros(10)}
        raise KeyError("source broke")

    with pytest.raises(KeyError, match="source broke"):
        infinidata.TableView.from_batches(gen())
    assert _files_now() == before
    with pytest.raises(ValueError):
        infinidata.TableView.from_batches([{"a": np.zeros(600_000)}, {"a": np.zeros(3, "f4")}])
    assert _files_now() == before


def test_finished_table_frees_its_files_when_dropped():
    before = _files_now()
    tv = infinidata.TableView.from_batches({"a": np.zeros(400_000)} for _ in range(3))
    assert _files_now() != before
    del tv
    assert _files_now() == before


# ---- scale, memory, many batches ----

def test_many_tiny_batches_are_merged():
    w = infinidata.TableWriter()
    for i in range(2000):
        w.append({"i": np.array([i]), "s": np.array([f"r{i}"])})
        assert w._w.pieces <= 256 + i // 256
    tv = w.finish()
    assert tv[:]["i"].tolist() == list(range(2000))
    assert tv[:]["s"].tolist() == [f"r{i}" for i in range(2000)]
    assert sys_stats()["maps"] < 100


def _maps_lines():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_many_batches_over_1mib_share_extent_files(tmp_path):
    # 300 batches of 1.1 MB: past the writer's first 64 such pieces (files of their own) they
    # are carved from shared extent files of up to 1 GiB, so files and mappings grow with the
    # bytes (330 MB: a few extents), not with the batch count (300 files and mappings before).
    gc.collect()
    files0, maps0, stats0 = len(data_files()), _maps_lines(), sys_stats()["maps"]
    rows = 1100 * 1024 // 16  # 1.1 MB of int64 pairs, plus a short string per row
    with infinidata.TableWriter() as w:
        for k in range(300):
            w.append({"x": np.arange(2 * k * rows, 2 * (k + 1) * rows, dtype=np.int64).reshape(rows, 2),
                      "t": np.array([f"b{k}"] * rows)})
        tv = w.finish()
    files, maps = len(data_files()) - files0, _maps_lines() - maps0
    assert files <= 64 + 8, f"{files} files for 300 batches"
    assert sys_stats()["maps"] - stats0 <= 64 + 8
    assert maps < 150, f"{maps} more mappings for 300 batches"
    assert len(tv) == 300 * rows
    sel = np.arange(0, len(tv), 997)
    got = tv[sel]
    np.testing.assert_array_equal(got["t"], np.array([f"b{i}" for i in sel // rows]), strict=True)
    np.testing.assert_array_equal(got["x"], np.stack([2 * sel, 2 * sel + 1], axis=1), strict=True)
    # saved (the pooled pieces' bytes are copied) and loaded back, pickled and unpickled
    tv.save_to_disk(str(tmp_path), "t")
    back = infinidata.TableView.load_from_disk(str(tmp_path), "t", verify=True)
    assert_same(back[::4999], tv[::4999])
    import pickle
    assert_same(pickle.loads(pickle.dumps(tv))[123_456:123_460], tv[123_456:123_460])
    del tv, back, w
    gc.collect()
    assert len(data_files()) == files0


@pytest.mark.memory_counts
def test_memory_bounded_by_one_batch():
    batch = {"x": np.ones((4096, 256), np.float32)}  # 4 MiB
    w = infinidata.TableWriter()
    w.append(batch)
    base = rss_anon_kb()
    for _ in range(60):  # 240 MiB in all
        w.append(batch)
    grown = rss_anon_kb() - base
    tv = w.finish()
    assert len(tv) == 61 * 4096
    assert grown < 32 * 1024, f"anonymous RSS grew {grown} KiB while appending 240 MiB"


def test_threads_share_a_writer():
    w = infinidata.TableWriter({"t": ("i8", ()), "i": ("i8", ())})
    errors = []

    def run(t):
        try:
            for i in range(200):
                w.append({"t": np.full(5, t), "i": np.arange(i * 5, i * 5 + 5)})
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ths = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    assert not errors
    got = w.finish()[:]
    for t in range(4):  # each thread's rows are all there, in its order
        assert got["i"][got["t"] == t].tolist() == list(range(1000))


def test_fork_child_cannot_use_or_remove_parent_writer(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    w = infinidata.TableWriter()
    w.append({"a": np.arange(300_000)})
    before = _files_now()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            try:
                w.append({"a": np.arange(3)})
            except RuntimeError as e:
                if "forked child" in str(e):
                    try:
                        w.finish()
                    except RuntimeError:
                        code = 0
            del w
            gc.collect()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert _files_now() == before
    tv = w.finish()
    assert tv[:]["a"].tolist() == list(range(300_000))


# ---- flatten ----

def _views():
    rng = np.random.default_rng(9)
    n = 3000
    cols = {"id": np.arange(n), "v": rng.random((n, 3)).astype("f4"),
            "s": np.array(_strs(n, rng, 12)), "b": np.array([b"x" * (i % 7) for i in range(n)], dtype="S7")}
    tv = infinidata.TableView(cols)
    other = infinidata.TableView({k: v[:100] for k, v in cols.items()})
    mask = rng.random(n) < 0.3
    return cols, {
        "table": (tv, slice(None)),
        "slice": (tv.new_view(slice(5, 2500, 3)), np.arange(5, 2500, 3)),
        "reversed": (tv.new_view(slice(None, None, -1)), np.arange(n)[::-1]),
        "take": (tv.new_view(rng.integers(-n, n, 500)), None),
        "shuffle": (tv.shuffle(seed=1), None),
        "filter": (tv.filter(mask), np.flatnonzero(mask)),
        "concat": (infinidata.TableView.concat([tv.shuffle(seed=2)[::7] if False else tv.new_view(slice(0, 50)), other, tv.shuffle(seed=2)]), None),
        "select": (tv.select_columns(["s", "id"]), slice(None)),
        "empty": (tv.new_view(slice(0, 0)), np.arange(0)),
        "remove": (tv.remove_matching_strings("b", [b"xx", b""]), None),
    }


@pytest.mark.parametrize("kind", ["table", "slice", "reversed", "take", "shuffle", "filter",
                                  "concat", "select", "empty", "remove"])
@pytest.mark.parametrize("threads", [None, 1, 3])
def test_flatten_equals_the_view(kind, threads):
    _, views = _views()
    v, _ = views[kind]
    f = v.flatten(threads=threads)
    assert len(f) == len(v) and f.column_names == v.column_names and f.schema == v.schema
    assert_same(f[:], v[:])
    if len(v):
        idx = np.random.default_rng(1).integers(0, len(v), 40)
        assert_same(f[idx], v[idx])
    # a flattened view is one contiguous store: flattening again gives the same rows
    assert_same(f.flatten()[:], v[:])


def test_flatten_large_and_shaped_strings():
    n = 70_000  # several chunks
    s = np.array([["ab" * (i % 9), "é" * (i % 3)] for i in range(n)])
    tv = infinidata.TableView({"s": s, "i": np.arange(n, dtype="u2")}).shuffle(seed=3)
    f = tv.flatten(threads=2)
    assert_same(f[:], tv[:])


def test_flatten_bad_arguments():
    tv = infinidata.TableView({"a": np.arange(3)})
    with pytest.raises(ValueError):
        tv.flatten(threads=0)
    with pytest.raises(TypeError):
        tv.flatten(threads="2")
    with pytest.raises(TypeError):
        tv.flatten(2)
    with pytest.raises(TypeError, match="progress"):
        tv.flatten(progress=1)


def test_flatten_saves_and_loads(tmp_path):
    _, views = _views()
    v, _ = views["concat"]
    f = v.flatten()
    f.save_to_disk(str(tmp_path), "f")
    assert_same(infinidata.TableView.load_from_disk(str(tmp_path), "f")[:], v[:])


# ---- progress ----

PROGRESS_CODE = r"""
import sys, numpy as np, infinidata
tv = infinidata.TableView({"a": np.arange(100_000)}, progress=PROG)
tv.flatten(progress=PROG)
infinidata.TableView.from_batches([{"a": np.arange(5)}], progress=PROG)
print("done")
"""


def test_progress_off_when_stderr_not_a_terminal():
    p = run_python(PROGRESS_CODE.replace("PROG", "None"), env={"CI": ""})
    assert p.stdout.strip() == "done" and p.stderr == ""
    from infinidata import _progress
    assert _progress.wanted(None) is False  # pytest captures stderr: not a terminal
    assert _progress.wanted(False) is False


def test_progress_off_under_ci_even_on_a_terminal(monkeypatch):
    from infinidata import _progress

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    monkeypatch.setenv("CI", "true")
    assert _progress.wanted(None) is False
    monkeypatch.setenv("CI", "")
    try:
        import tqdm  # noqa: F401
        have = True
    except ImportError:
        have = False
    assert _progress.wanted(None) is have


def test_progress_true_draws_a_bar():
    pytest.importorskip("tqdm")
    p = run_python(PROGRESS_CODE.replace("PROG", "True"))
    assert p.stdout.strip() == "done"
    for desc in ("TableView()", "flatten", "TableWriter"):
        assert desc in p.stderr, p.stderr


def test_progress_true_without_tqdm_is_a_clear_error():
    code = "import sys; sys.modules['tqdm'] = None\n" + PROGRESS_CODE.replace("PROG", "True")
    code = code.replace('print("done")', "")
    code = ("try:\n" + "".join("    " + line + "\n" for line in code.splitlines()) +
            "except ImportError as e:\n    assert 'tqdm' in str(e), e\n    print('refused')\n")
    p = run_python(code)
    assert p.stdout.strip() == "refused"


# ---- Ctrl-C: long operations stop between chunks, clean up and raise ----
#
# _test_cancel_after(n) makes the n-th progress check from now raise KeyboardInterrupt
# exactly as a SIGINT seen there would (deterministic); test_sigint_* send real signals.

from infinidata import _infinidata as _core  # noqa: E402


@pytest.fixture
def cancel():
    yield _core._test_cancel_after
    _core._test_cancel_after(0)


def _interrupted(fn, cancel, n=2):
    before = _files_now()
    cancel(n)
    with pytest.raises(KeyboardInterrupt):
        fn()
    cancel(0)
    assert _files_now() == before
    s = sys_stats()
    return s


BIG = np.arange(12_000_000, dtype=np.int64)  # 96 MB: three 32 MB construction chunks


def test_cancel_construction(cancel):
    _interrupted(lambda: infinidata.TableView({"a": BIG}), cancel)
    text = np.array(["x" * 40] * 2_000_000)  # 320 MB of U40: one call, parts checked in the core
    for n in (2, 7, 40):
        _interrupted(lambda: infinidata.TableView({"s": text}), cancel, n)
    _interrupted(lambda: infinidata.TableView({"s": text[::-1]}), cancel)  # chunked: strided


def test_cancel_writer_append_keeps_writer_usable(cancel):
    with infinidata.TableWriter() as w:
        w.append({"a": np.arange(5)})
        _interrupted(lambda: w.append({"a": BIG}), cancel)
        w.append({"a": np.arange(3)})
        tv = w.finish()
    assert tv[:]["a"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    before = _files_now()
    cancel(2)
    with pytest.raises(KeyboardInterrupt):
        with infinidata.TableWriter() as w:
            w.append({"a": np.arange(5)})
            w.append({"a": BIG})
    cancel(0)
    assert _files_now() == before and w.closed


@pytest.fixture(scope="module")
def big_view():
    tv = infinidata.TableView({"a": BIG[:6_000_000], "s": np.array(["ab", "cde"] * 3_000_000)})
    yield tv


def test_cancel_flatten(cancel, big_view):
    sh = big_view.shuffle(seed=1)
    for threads in (1, 2):
        for n in (1, 3):  # in the measuring pass, in the writing pass
            _interrupted(lambda: sh.flatten(threads=threads), cancel, n)


def test_cancel_shuffle_take_filter_remove(cancel, big_view):
    _interrupted(lambda: big_view.shuffle(seed=2), cancel, 1)
    sh = big_view.shuffle(seed=3)
    idx = np.arange(len(big_view))[::-1].copy()
    mask = np.ones(len(big_view), bool)
    _interrupted(lambda: sh.new_view(idx), cancel, 1)
    _interrupted(lambda: sh.filter(mask), cancel, 1)
    _interrupted(lambda: sh.remove_matching_strings("s", ["zz"]), cancel, 1)


def test_cancel_save_by_copy_and_verified_load(cancel, big_view, tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm):
        pytest.skip("no /dev/shm")
    import tempfile
    with tempfile.TemporaryDirectory(dir=shm) as other_fs:
        target = os.path.join(other_fs, "saved")
        _interrupted(lambda: big_view.save_to_disk(target, "v"), cancel, 1)
        assert not os.path.exists(os.path.join(target, "v.idtview"))
        assert [f for f in os.listdir(target) if not f.startswith(".")] == [] if os.path.isdir(target) else True
    big_view.save_to_disk(str(tmp_path), "v")
    _interrupted(lambda: infinidata.TableView.load_from_disk(str(tmp_path), "v"), cancel, 1)
    tv = infinidata.TableView.load_from_disk(str(tmp_path), "v")
    assert len(tv) == len(big_view)


SIGINT_CODE = r"""
import os, signal, threading, time, numpy as np, infinidata
from infinidata import _infinidata as core
tv = infinidata.TableView({"a": np.arange(40_000_000)}).shuffle(seed=1)
d = core._tmp_dir()
before = sorted(os.listdir(d))
stop = threading.Event()
def kicker():
    # one SIGINT, once the operation has made its output file (it is then inside C)
    while not stop.is_set():
        if sorted(os.listdir(d)) != before:
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.001)
threading.Thread(target=kicker, daemon=True).start()
try:
    OP
    print("finished")
except KeyboardInterrupt:
    stop.set()
    time.sleep(0.1)
    print("interrupted", sorted(os.listdir(d)) == before)
"""


@pytest.mark.parametrize("op", ["tv.flatten(threads=2)", "infinidata.TableView({'x': np.ones((4000, 65536), np.uint8)})"])
def test_sigint_interrupts_and_cleans_up(op):
    p = run_python(SIGINT_CODE.replace("OP", op), timeout=300)
    assert p.stdout.strip() == "interrupted True", p.stdout + p.stderr


def test_columns_read_from_the_dict_as_it_was_at_the_call():
    """A column whose __array__ mutates the dict being read must not crash the constructor
    or the writer, nor rename columns: the names and arrays are taken when the call starts."""
    class Evil:
        def __init__(self, d):
            self.d = d

        def __array__(self, dtype=None, copy=None):
            self.d.clear()
            self.d["zzz"] = np.arange(2)
            return np.arange(3)

    for make in (lambda d: infinidata.TableView(d), lambda d: infinidata.TableView.from_batches([d])):
        d = {"a": np.zeros(3), "b": None, "c": np.ones(3)}
        d["b"] = Evil(d)
        tv = make(d)
        assert tv.column_names == ["a", "b", "c"]
        assert tv[:]["b"].tolist() == [0, 1, 2] and tv[:]["c"].tolist() == [1.0, 1.0, 1.0]


def test_flatten_of_a_concat_of_tables_with_other_column_sets():
    a = infinidata.TableView({"x": np.arange(5), "s": np.array(list("abcde")), "extra": np.zeros(5)})
    b = infinidata.TableView({"s": np.array(["long string é"] * 3), "x": np.arange(3) + 100})
    v = infinidata.TableView.concat([a.select_columns(["x", "s"]), b.new_view([2, 0])]).shuffle(seed=5)
    f = v.flatten(threads=2)
    assert f.column_names == ["x", "s"]
    assert_same(f[:], v[:])


def test_flatten_is_a_new_table_independent_of_its_source():
    tv = infinidata.TableView({"x": np.arange(10)})
    f = tv.flatten()
    assert f.uuid() != tv.uuid()
    want = tv[:]
    del tv
    gc.collect()
    assert_same(f[:], want)

"""Shared fixtures and helpers for the infinidata test suite.

The temp area is read by infinidata once, at first use, from INFINIDATA_TMPDIR; it is set here,
at import time of this conftest (before any test module imports infinidata), to a fresh
directory, so the suite never touches ./.infinidata_tmp and can count the files it makes.
"""

import atexit
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest

# A run started in the background of a non-interactive shell inherits SIGINT ignored, and
# Python then never raises KeyboardInterrupt: the Ctrl-C tests need Python's usual handler
# (child interpreters started by the tests get it back through exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_SUITE_TMP = tempfile.mkdtemp(prefix="infinidata-pytest-")
os.environ["INFINIDATA_TMPDIR"] = os.path.join(_SUITE_TMP, "tmp")
_SUITE_PID = os.getpid()


def _remove_suite_tmp():
    # Spawned children (multiprocessing, DataLoader workers) import this module too and make a
    # directory of their own: each removes its own at exit; a forked child never removes its
    # parent's.
    if os.getpid() == _SUITE_PID:
        shutil.rmtree(_SUITE_TMP, ignore_errors=True)


atexit.register(_remove_suite_tmp)

import infinidata  # noqa: E402
from infinidata import _infinidata as _core  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# Under AddressSanitizer (make sanitize preloads it) RSS and mapping counts measure the
# sanitizer's shadow memory and quarantine, not infinidata: such checks are skipped there.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a large-scale check (runs by default; deselect "
                                       "with -m 'not slow' for a quick pass)")
    config.addinivalue_line("markers", "memory_counts: counts RssAnon or /proc/self/maps "
                                       "(skipped only under AddressSanitizer)")


def pytest_collection_modifyitems(config, items):
    if not UNDER_ASAN:
        return
    skip = pytest.mark.skip(reason="RSS and mapping counts are not meaningful under ASan")
    for item in items:
        if "memory_counts" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config):
    # infinidata removes its own process directory at exit; the parent is ours to remove.
    _remove_suite_tmp()


# ---- temp files ----

def tmp_dir():
    """This process's infinidata temp directory (made if it does not exist yet)."""
    return _core._tmp_dir()


def data_files(directory=None):
    """Sorted names of the data files (a*.idt arena files, b*.idt blob files) in `directory`
    (default: this process's temp directory)."""
    d = directory or tmp_dir()
    return sorted(f for f in os.listdir(d) if f.endswith(".idt") and f[:1] in "ab")


def blob_files(directory=None):
    """Sorted names of the one-file-per-blob data files (b*.idt)."""
    return [f for f in data_files(directory) if f.startswith("b")]


def arena_files(directory=None):
    """Sorted names of the shared arena files (a*.idt)."""
    return [f for f in data_files(directory) if f.startswith("a")]


def sys_stats():
    """The core's live counts after a full garbage collection."""
    gc.collect()
    return _core._sys_stats()


# ---- memory and process facts ----

def rss_anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def n_mappings():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def n_threads():
    return len(os.listdir("/proc/self/task"))


def n_threads_settled(expected, timeout=5.0):
    """The thread count once it reaches `expected` (or after `timeout` s, whatever it is then):
    a thread that pthread_join has returned for can stay listed in /proc for a moment, so
    a count taken right after a join may be one high; a thread really left running is not."""
    import time
    deadline = time.monotonic() + timeout
    while (n := n_threads()) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return n


def run_python(code, env=None, cwd=None, timeout=120):
    """Run `code` in a fresh interpreter (the same one running the tests); returns the
    CompletedProcess, failing the test with its output when it exits non-zero."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run([sys.executable, "-c", code], env=full_env, cwd=cwd, timeout=timeout,
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"subprocess exited with {p.returncode}\nstdout:\n{p.stdout}\n"
                    f"stderr:\n{p.stderr}")
    return p


# ---- the NumPy model ----

STRING_KINDS = "USOT"


def _is_string_col(arr):
    return arr.dtype.kind in STRING_KINDS


def _strip_trailing(x):
    return bytes(x).rstrip(b"\0") if isinstance(x, (bytes, np.bytes_)) else str(x).rstrip("\0")


def _str_len(x):
    # NumPy treats trailing NULs as padding; infinidata stores strings without them.
    if isinstance(x, (bytes, np.bytes_)):
        return len(bytes(x).rstrip(b"\0"))
    return len(str(x).rstrip("\0"))


def _string_kind(arr):
    """'U' or 'S': what infinidata reads a string column back as."""
    k = arr.dtype.kind
    if k in "UT":
        return "U"
    if k == "S":
        return "S"
    # object: decided by the elements (all str or all bytes)
    for x in arr.flat:
        return "S" if isinstance(x, bytes) else "U"
    return "U"


def expected_column(arr, key):
    """What infinidata should return for `key` on a column whose source array is `arr`:
    exactly arr[key] (in native byte order), with string columns converted to U/S of the width of the longest string
    in the result (at least 1), as np.array(list_of_str) would give."""
    if isinstance(key, list):
        key = np.asarray(key, dtype=np.intp) if len(key) == 0 else np.asarray(key)
    out = arr[key]
    if not _is_string_col(arr):
        if not out.dtype.isnative:  # stored and returned in native byte order
            out = out.astype(out.dtype.newbyteorder("="))
            if out.ndim == 0:
                out = out[()]
        return out
    kind = _string_kind(arr)
    if isinstance(out, (str, bytes, np.str_, np.bytes_)):  # a scalar from an int key
        # trailing NULs are padding in NumPy's U/S (a U5 array cannot hand back 'abcd\0'),
        # so an object string's trailing NULs are not kept either
        return np.str_(_strip_trailing(out)) if kind == "U" else np.bytes_(_strip_trailing(out))
    out = np.asarray(out)
    width = max([_str_len(x) for x in out.flat] + [1])
    if out.dtype.kind == "O":
        res = np.empty(out.shape, dtype=f"{kind}{width}")
        for i, x in np.ndenumerate(out):
            res[i] = x
        return res
    return out.astype(f"{kind}{width}")


def expected(cols, key):
    """The dict infinidata should return for tv[key], tv built from the dict `cols`."""
    return {name: expected_column(arr, key) for name, arr in cols.items()}


def assert_same(got, want):
    """Compare a read result (dict of column -> array or scalar) to the NumPy model, exactly:
    same columns, values, dtypes and shapes (np.testing.assert_array_equal with strict=True)."""
    assert isinstance(got, dict), type(got)
    assert list(got) == list(want), (list(got), list(want))
    for name in want:
        g, w = got[name], want[name]
        if np.isscalar(w) or isinstance(w, np.generic):
            assert type(g) is type(w), (name, type(g), type(w))
        np.testing.assert_array_equal(g, w, strict=True, err_msg=f"column {name!r}")


def normalize_strings(arr):
    """A source string column as the fixed-width U/S array infinidata reads back (all rows)."""
    return expected_column(arr, slice(None))


# ---- sample data ----

TIME_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]
FIXED_DTYPES = (
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
     "float16", "float32", "float64", "longdouble", "complex64", "complex128", "clongdouble",
     "M8", "m8"]
    + [f"M8[{u}]" for u in TIME_UNITS]
    + [f"m8[{u}]" for u in TIME_UNITS]
)


def sample(dtype, shape, seed=0):
    """Random data of `dtype` and `shape`, covering the dtype's range (extremes, NaN, NaT)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        flat[: min(n, 2)] = [info.min, info.max][: min(n, 2)]
    elif dt.kind == "f":
        flat = (rng.standard_normal(n) * 1e3).astype(dt)
        if n >= 3:
            flat[:3] = [np.inf, -np.inf, np.nan]
    elif dt.kind == "c":
        flat = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
        if n >= 1:
            flat[0] = complex(np.nan, np.inf)
    elif dt.kind in "mM":
        unit = np.datetime_data(dt)[0]
        if unit == "generic":
            flat = np.zeros(n, dtype=dt)
        else:
            flat = rng.integers(-(10 ** 6), 10 ** 6, n).astype(dt)
            if n >= 1:
                flat[0] = np.array("NaT", dtype=dt)
    else:
        raise AssertionError(dt)
    return flat.reshape(shape)



@pytest.fixture
def fresh_files():
    """Names of data files before the test, after a collection (for before/after counts)."""
    gc.collect()
    return data_files()


__all__ = [
    "infinidata", "tmp_dir", "data_files", "blob_files", "arena_files", "sys_stats",
    "rss_anon_kb", "n_mappings", "n_threads", "run_python", "expected", "expected_column",
    "assert_same", "normalize_strings", "HERE", "FIXED_DTYPES", "TIME_UNITS", "sample",
]


def sort_order(cols, keys, desc):
    """The model of tv.sort(keys, descending=desc) on a table built from `cols`: the stable
    order of rows by the keys as infinidata reads them back (np.unique ranks, np.lexsort),
    NaN and NaT last in both directions. desc: a bool or one per key."""
    if isinstance(desc, (bool, np.bool_)):
        desc = [desc] * len(keys)
    lex = []
    for name, d in zip(keys, desc):
        a = cols[name]
        a = normalize_strings(a) if _is_string_col(a) else a
        if a.dtype.kind in "fc":
            missing = np.isnan(a)
        elif a.dtype.kind in "mM":
            missing = np.isnat(a)
        else:
            missing = np.zeros(len(a), dtype=bool)
        _, inv = np.unique(a, return_inverse=True)
        rank = inv.reshape(-1).astype(np.int64)
        rank = -rank if d else rank
        lex.append(np.where(missing, np.iinfo(np.int64).max, rank))
    return np.lexsort(lex[::-1])

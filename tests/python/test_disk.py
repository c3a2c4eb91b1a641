"""Reading beyond memory: batches queue the disk reads of their rows (prefetch.c). Speed is
measured by `make bench-scale`; here: the same rows in every mode, a bounded anonymous RSS
whatever the table size, the advice actually given (counted), and the hooks' bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import infinidata
from infinidata import _infinidata as core

MB = 1 << 20
AUTO, ALWAYS, OFF = 0, 1, 2


@pytest.fixture
def mode():
    old = core._prefetch_mode()
    yield core._prefetch_mode
    core._prefetch_mode(old)


def rows(lo, hi):
    return np.arange(lo, hi, dtype=np.int64)[:, None] * 512 + np.arange(512, dtype=np.int64)


def test_batches_equal_numpy_in_every_prefetch_mode(mode):
    base = np.arange(3000, dtype=np.int64)
    text = np.array([f"r{i}" + "é" * (i % 4) for i in range(3000)])
    tv = infinidata.TableView({"x": rows(0, 3000), "id": base, "s": text})
    views = {"shuffled": tv.shuffle(seed=4), "contiguous": tv,
             "concat of a shuffle and a slice": infinidata.TableView.concat([tv.shuffle(seed=5),
                                                                             tv.new_view(slice(100, 900))])}
    for m in (ALWAYS, OFF, AUTO):
        mode(m)
        for name, v in views.items():
            want = v[:]
            for threads, ra in ((1, 0), (3, 4)):
                got = list(v.batch_iter(256, threads=threads, readahead=ra))
                for col in ("x", "id", "s"):
                    cat = np.concatenate([b[col] for b in got])
                    assert cat.dtype == want[col].dtype, (m, name, col)
                    np.testing.assert_array_equal(cat, want[col], err_msg=f"mode {m} {name} {col}")


def test_advice_is_given_for_cold_rows_and_not_for_resident_ones(mode):
    tv = infinidata.TableView({"x": rows(0, 4096)})  # 16 MiB, in memory (just written)
    sv = tv.shuffle(seed=1)
    mode(AUTO)
    c0 = core._advise_calls()
    for _ in sv.batch_iter(512):
        pass
    in_ram = core._advise_calls() - c0
    # resident: a few samples (mincore) per checked batch, checks skipped while resident
    assert 0 < in_ram <= 16 * 8 + 2, in_ram
    mode(ALWAYS)
    c0 = core._advise_calls()
    for _ in sv.batch_iter(512):
        pass
    forced = core._advise_calls() - c0
    # advising: one madvise per row of each batch (random rows), and of the batch ahead
    assert forced >= 4096, forced
    mode(OFF)
    c0 = core._advise_calls()
    for _ in sv.batch_iter(512, threads=2, readahead=2):
        pass
    assert core._advise_calls() - c0 <= 2  # at most the MADV_RANDOM on and off


def test_prefetch_mode_rejects_bad_values(mode):
    with pytest.raises(ValueError, match="prefetch mode must be 0"):
        core._prefetch_mode(3)
    with pytest.raises(ValueError, match="not -5"):
        core._prefetch_mode(-5)
    assert core._prefetch_mode() == core._prefetch_mode()


RSS_CODE = r"""
import json, sys, threading, time
import numpy as np, infinidata
from infinidata import _infinidata as core

def rss_anon():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('RssAnon:'):
                return int(line.split()[1]) * 1024

nrows = int(sys.argv[1])
parts = [infinidata.TableView({"x": np.arange(lo, min(nrows, lo + 8192), dtype=np.int64)[:, None] * 512
                               + np.arange(512, dtype=np.int64)}) for lo in range(0, nrows, 8192)]
tv = infinidata.TableView.concat(parts)
del parts
out = {}
for mode in (1, 0):
    core._prefetch_mode(mode)
    for name, v in (("shuffled", tv.shuffle(seed=2)), ("contiguous", tv)):
        base = peak = rss_anon()
        n = 0
        for b in v.batch_iter(1024, threads=4, readahead=4):
            n += len(b["x"])
            peak = max(peak, rss_anon())
        assert n == nrows
        out[f"{name} mode {mode}"] = peak - base
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.memory_counts
def test_anon_rss_of_a_pass_does_not_follow_the_table_size(tmp_path):
    """A pass over a 256 MiB table of 4 KiB rows, advising every batch, holds no more anonymous
    memory than its window (4 batches of 4 MiB, and the buffers being recycled), far below the
    table: prefetching reads into the page cache, never into the heap."""
    script = tmp_path / "rss.py"
    script.write_text(RSS_CODE)
    p = subprocess.run([sys.executable, str(script), str(65536)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, INFINIDATA_TMPDIR=str(tmp_path / "t")))
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)
    for k, grew in res.items():
        assert grew < 64 * MB, (k, grew / MB)

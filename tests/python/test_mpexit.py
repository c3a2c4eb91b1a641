"""Multiprocessing children remove their own temp files when they end (python/infinidata/_mpexit.py).

A child started by fork or forkserver leaves through os._exit, so the C atexit cleanup never
runs in it; before this, every such child that made a view left its temp directory behind
until the next process reaped it. Each case runs in a fresh interpreter with its own temp
area and counts the directories left in it."""

import os

import pytest

from conftest import run_python

CHILD = r"""
import multiprocessing as mp, os, sys
IMPORT_FIRST = {import_first}
if IMPORT_FIRST:
    import numpy as np, infinidata

def work(q):
    import numpy as np, infinidata
    v = infinidata.TableView({{"x": np.arange(50_000)}}).shuffle(seed=1)   # files of the child's own
    q.put((os.getpid(), int(v[:]["x"].sum()), sorted(os.listdir(os.environ["INFINIDATA_TMPDIR"]))))

if __name__ == "__main__":
    import numpy as np, infinidata
    from infinidata import _infinidata as core
    ctx = mp.get_context("{method}")
    mine = os.path.basename(core._tmp_dir())
    q = ctx.Queue()
    ps = [ctx.Process(target=work, args=(q,)) for _ in range(2)]
    for p in ps:
        p.start()
    got = [q.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0, p.exitcode
    root = os.environ["INFINIDATA_TMPDIR"]
    for pid, s, during in got:
        assert s == sum(range(50_000))
        assert any(d.startswith(f"p{{pid}}-") for d in during), (pid, during)  # it did make files
    left = sorted(os.listdir(root))
    assert left == [mine], (left, mine)
    print("OK")
"""


@pytest.mark.parametrize("method, import_first", [("fork", True), ("fork", False),
                                                  ("forkserver", False), ("spawn", True)])
def test_multiprocessing_children_leave_no_temp_dir(tmp_path, method, import_first):
    area = tmp_path / "area"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(method=method, import_first=import_first))
    code = f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"
    p = run_python(code, env={"INFINIDATA_TMPDIR": str(area)}, cwd=str(tmp_path), timeout=120)
    assert p.stdout.strip() == "OK"
    assert not area.exists() or os.listdir(area) == []  # the parent's own goes at its exit

"""Looking inside (issue 14 items 5-7): the info / verify / import commands, memory_stats(),
and the small things users expect (len of a batch iterator, signatures, column(), KeyError
listing the columns, save_to_disk without a name)."""

import gc
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import infinidata
from conftest import tmp_dir

TableView = infinidata.TableView
PY = sys.executable


def cli(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([PY, "-m", "infinidata", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def small(n=100):
    return TableView({"x": np.arange(n), "s": np.array([f"r{i}" for i in range(n)]),
                      "e": np.ones((n, 2, 3), np.float32)})


# ---- info / verify ----

def test_info_one_and_all(tmp_path):
    tv = small()
    tv.save_to_disk(tmp_path, "a")
    tv.shuffle(seed=0).save_to_disk(tmp_path, "b")
    r = cli("info", tmp_path, "a")
    assert r.returncode == 0, r.stderr
    assert "a: 100 rows" in r.stdout and "format version" in r.stdout
    assert "  x: int64" in r.stdout and "  s: str" in r.stdout and "  e: float32(2, 3)" in r.stdout
    files = [l for l in r.stdout.splitlines() if l.startswith("a:")][0]
    n_files = int(files.split(" rows, ")[1].split(" files")[0])
    assert n_files == 2  # the manifest and one store
    r = cli("info", tmp_path)
    assert r.returncode == 0
    assert "a: 100 rows" in r.stdout and "b: 100 rows, 3 files" in r.stdout


def test_verify_ok_damaged_missing_usage(tmp_path):
    tv = small()
    tv.save_to_disk(tmp_path, "a")
    tv.new_view(np.arange(50)).save_to_disk(tmp_path, "b")
    r = cli("verify", tmp_path)
    assert r.returncode == 0 and "a: ok" in r.stdout and "b: ok" in r.stdout, r.stderr
    r = cli("verify", tmp_path, "a")
    assert r.returncode == 0 and r.stderr == ""
    # one flipped byte in the row data of a store
    store = [f for f in os.listdir(tmp_path) if f.startswith("s-")][0]
    with open(tmp_path / store, "r+b") as f:
        f.seek(os.path.getsize(tmp_path / store) - 10)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 1]))
    r = cli("verify", tmp_path)
    assert r.returncode == 1 and store in r.stderr and "a:" in r.stderr
    # info reads headers only: still answers
    assert cli("info", tmp_path, "a").returncode == 0
    r = cli("verify", tmp_path, "nope")
    assert r.returncode == 1 and "nope" in r.stderr
    r = cli("verify", tmp_path / "missing-dir")
    assert r.returncode == 1 and "missing-dir" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("verify", empty).returncode == 1
    for bad in (["verify"], ["info"], ["verify", tmp_path, "a", "extra"], ["import", tmp_path],
                ["frobnicate"]):
        r = cli(*bad)
        assert r.returncode == 2, bad
        assert "usage" in r.stderr


def test_every_command_has_help():
    for cmd in ([], ["gc"], ["info"], ["verify"], ["import"]):
        r = cli(*cmd, "--help")
        assert r.returncode == 0 and "usage" in r.stdout, cmd


def test_gc_command_still_works():
    r = cli("gc", "--dry-run")
    assert r.returncode == 0 and "would remove" in r.stdout


def test_import_parquet_and_arrow_files(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow.ipc as ipc
    t = pa.table({"x": np.arange(10), "s": [str(i) for i in range(10)]})
    pq.write_table(t, tmp_path / "a.parquet")
    with ipc.new_file(str(tmp_path / "b.arrow"), t.schema) as w:
        w.write_table(t)
    with ipc.new_stream(str(tmp_path / "c.arrow"), t.schema) as w:
        w.write_table(t)
    out = tmp_path / "out"
    r = cli("import", tmp_path / "a.parquet", tmp_path / "b.arrow", tmp_path / "c.arrow", out, "v")
    assert r.returncode == 0, r.stderr
    assert "importing" in r.stderr  # progress
    tv = TableView.load_from_disk(out, "v")
    assert tv[:]["x"].tolist() == list(range(10)) * 3
    assert tv[:]["s"].tolist() == [str(i) for i in range(10)] * 3
    r = cli("import", tmp_path / "a.parquet", out, "v")
    assert r.returncode == 1 and "already" in r.stderr
    r = cli("import", "-q", "--overwrite", tmp_path / "a.parquet", out, "v")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert len(TableView.load_from_disk(out, "v")) == 10
    r = cli("import", tmp_path / "missing.parquet", out, "w")
    assert r.returncode == 1 and "missing.parquet" in r.stderr
    (tmp_path / "junk.bin").write_bytes(b"junk" * 100)
    r = cli("import", tmp_path / "junk.bin", out, "w")
    assert r.returncode == 1 and "junk.bin" in r.stderr
    assert not os.path.exists(out / "w.idtview")


# ---- memory_stats ----

def test_memory_stats_counts_files_bytes_threads():
    gc.collect()
    s0 = infinidata.memory_stats()
    assert set(s0) == {"files", "bytes_on_disk", "mappings", "descriptors", "threads"}
    assert all(isinstance(v, int) and v >= 0 for v in s0.values())
    tv = TableView({"x": np.arange(1 << 20, dtype=np.int64)})  # 8 MB: a file of its own
    s1 = infinidata.memory_stats()
    assert s1["files"] == s0["files"] + 1
    assert s1["bytes_on_disk"] >= s0["bytes_on_disk"] + (8 << 20)
    assert s1["mappings"] == s0["mappings"] + 1
    it = tv.batch_iter(1000, threads=2, readahead=4)
    assert infinidata.memory_stats()["threads"] == s0["threads"] + 2
    it.close()
    assert infinidata.memory_stats()["threads"] == s0["threads"]
    del tv, it
    gc.collect()
    s2 = infinidata.memory_stats()
    assert s2["files"] == s0["files"] and s2["mappings"] == s0["mappings"]
    assert s2["descriptors"] == s0["descriptors"]


def test_memory_stats_files_match_the_temp_directory():
    tv = TableView({"x": np.arange(1 << 18, dtype=np.int64)})
    d = tmp_dir()
    on_disk = [f for f in os.listdir(d) if f != "lock" and not f.startswith(".")]
    assert infinidata.memory_stats()["files"] == len(on_disk)
    del tv


# ---- small things ----

def test_len_of_batch_iterator():
    tv = small(10)
    assert len(tv.batch_iter(3)) == 4
    assert len(tv.batch_iter(3, drop_last_batch=True)) == 3
    it = tv.batch_iter(5, threads=2)
    assert len(it) == 2
    list(it)
    assert len(it) == 2  # the total, not what is left
    assert len(TableView.batch_iter_concat([tv, tv], 4)) == 5


def public_methods():
    out = []
    for name in dir(TableView):
        if name.startswith("_") and name not in ("__init__", "__reduce__"):
            continue
        attr = getattr(TableView, name)
        if callable(attr) and not isinstance(attr, type):
            out.append((name, attr))
    it = small(3).batch_iter(2)
    out += [("BatchIter.close", it.close), ("BatchIter.num_batches", it.num_batches),
            ("gc", infinidata.gc), ("memory_stats", infinidata.memory_stats)]
    return out


@pytest.mark.parametrize("name,fn", public_methods(), ids=[n for n, _ in public_methods()])
def test_inspect_signature_on_every_method(name, fn):
    sig = inspect.signature(fn)
    assert sig is not None
    if name == "batch_iter":
        assert list(sig.parameters) == ["self", "batch_size", "drop_last_batch", "threads",
                                        "readahead", "pad"]
        assert sig.parameters["pad"].kind is inspect.Parameter.KEYWORD_ONLY
    if name == "save_to_disk":
        assert sig.parameters["name"].default is None
    if name == "load_from_disk":
        assert sig.parameters["verify"].default is True


def test_signature_of_the_class():
    assert list(inspect.signature(TableView).parameters) == ["columns", "progress"]


def test_load_from_disk_docstring_names_verify():
    assert "verify" in TableView.load_from_disk.__doc__


def test_keyerror_lists_the_columns():
    tv = small(3)
    with pytest.raises(KeyError) as e:
        tv.select_columns(["nope"])
    assert "'nope'" in str(e.value) and "'x', 's', 'e'" in str(e.value)
    with pytest.raises(KeyError, match="'x', 's', 'e'"):
        tv.column("nope")
    with pytest.raises(KeyError, match="'x', 's', 'e'"):
        tv.remove_matching_strings("nope", ["a"])


def test_keyerror_with_many_long_columns_stays_readable():
    tv = TableView({f"column_{'x' * 40}_{i}": np.arange(2) for i in range(50)})
    with pytest.raises(KeyError) as e:
        tv.select_columns(["nope"])
    assert "..." in str(e.value) and len(str(e.value)) < 500


def test_column_returns_one_array():
    tv = small(5).shuffle(seed=2)
    for name in ("x", "s", "e"):
        got = tv.column(name)
        want = tv[:][name]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError):
        tv.column(0)


def test_save_to_disk_name_optional(tmp_path):
    tv = small(4)
    name = tv.save_to_disk(tmp_path)
    assert name == tv.uuid()
    assert os.path.exists(tmp_path / f"{name}.idtview")
    assert TableView.load_from_disk(tmp_path, name)[:]["x"].tolist() == [0, 1, 2, 3]
    assert tv.save_to_disk(tmp_path, "given") == "given"
    with pytest.raises(FileExistsError):
        tv.save_to_disk(tmp_path)
    assert tv.save_to_disk(tmp_path, overwrite=True) == name


def test_import_works_without_optional_dependencies_and_errors_say_what_to_install():
    code = """
import sys
for m in ("pyarrow", "pyarrow.parquet", "pandas", "datasets"):
    sys.modules[m] = None          # as if not installed
import numpy as np
import infinidata
tv = infinidata.TableView({"x": np.arange(3)})
for call, pkg, extra in [(lambda: tv.to_arrow(), "pyarrow", "arrow"),
                         (lambda: tv.to_parquet("x.parquet"), "pyarrow", "arrow"),
                         (lambda: infinidata.TableView.from_parquet("x"), "pyarrow", "arrow"),
                         (lambda: tv.to_pandas(), "pandas", "pandas"),
                         (lambda: infinidata.TableView.from_hf(None), "pyarrow", "arrow")]:
    try:
        call()
    except ImportError as e:
        assert f"pip install {pkg}" in str(e) and f"infinidata[{extra}]" in str(e), str(e)
    else:
        raise AssertionError("no ImportError")
print("ok")
"""
    from conftest import run_python
    assert run_python(code).stdout.strip() == "ok"

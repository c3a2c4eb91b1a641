"""Column edits without copying rows: rename_columns, TableView.zip, with_columns, and the
views they make (several column groups, each with its own rows) under every view operation,
checked against NumPy (strict dtypes)."""

import gc
import os
import pickle
import struct

import numpy as np
import pytest

import infinidata
from conftest import assert_same, data_files, expected, run_python, sort_order, sys_stats

TableView = infinidata.TableView


def table(n=23, seed=0, prefix=""):
    rng = np.random.default_rng(seed)
    cols = {
        prefix + "i": rng.integers(-50, 50, n).astype(np.int32),
        prefix + "f": rng.standard_normal((n, 2)).astype(np.float32),
        prefix + "s": np.array(["é" * int(k) + str(k) for k in rng.integers(0, 9, n)]),
        prefix + "b": np.array([bytes([65 + int(k)]) * int(k) for k in rng.integers(0, 6, n)], dtype="S5"),
    }
    return cols


def check(tv, model):
    n = len(next(iter(model.values())))
    assert len(tv) == n
    assert tv.column_names == list(model)
    keys = [slice(None), slice(None, None, -1), slice(2, None, 3)]
    if n:
        keys += [0, n - 1, -n, np.array([n // 2, 0, -1, n // 2]), np.arange(n) % 3 != 1]
    for key in keys:
        assert_same(tv[key], expected(model, key))


def zipped(n=23):
    a, b = table(n, 1), table(n, 2, "z")
    perm = np.random.default_rng(3).permutation(n)
    ta = TableView(a)
    tb = TableView(b).new_view(perm)  # rows of their own: a second group
    model = dict(a)
    model.update({k: v[perm] for k, v in b.items()})
    return TableView.zip([ta, tb]), model


# ---- zip ----

def test_zip_reads_match_numpy():
    z, model = zipped()
    check(z, model)
    assert z.schema == {**TableView(table(3, 1)).schema, **TableView(table(3, 2, "z")).schema}


def test_zip_of_columns_of_one_view_and_of_one_view():
    t = TableView(table())
    z = TableView.zip([t.select_columns(["s", "i"]), t.select_columns(["b"])])
    model = {k: table()[k] for k in ["s", "i", "b"]}
    check(z, model)
    one = TableView.zip([t])
    check(one, table())


def test_zip_errors():
    t = TableView(table(5))
    u = TableView({"x": np.arange(6)})
    with pytest.raises(ValueError, match=r"5 rows.*6|6.*5 rows"):
        TableView.zip([t, u])
    with pytest.raises(ValueError, match="'i'"):
        TableView.zip([t, TableView({"i": np.arange(5)})])
    with pytest.raises(ValueError, match="'x'"):
        TableView.zip([u, u])
    with pytest.raises(ValueError):
        TableView.zip([])
    with pytest.raises(TypeError):
        TableView.zip(t)
    with pytest.raises(TypeError):
        TableView.zip([t, {"x": np.arange(5)}])


def test_zip_many_columns_and_groups():
    n = 11
    parts, model = [], {}
    for p in range(5):
        cols = {f"c{p}_{k}": np.arange(n, dtype=np.int16) * (k + 1) + p for k in range(30)}
        perm = np.random.default_rng(p).permutation(n)
        parts.append(TableView(cols).new_view(perm))
        model.update({k: v[perm] for k, v in cols.items()})
    wide = {f"w{k}": np.arange(n, dtype=np.int64) + k for k in range(150)}  # wider than a group
    parts.append(TableView(wide))
    model.update(wide)
    z = TableView.zip(parts)
    check(z, model)
    order = list(model)[::-1]
    check(z.select_columns(order), {k: model[k] for k in order})
    for batch, k in zip(z.batch_iter(4, threads=3), range(100)):
        assert_same(batch, expected(model, slice(4 * k, 4 * k + 4)))


# ---- every view operation on a zipped view ----

def test_view_ops_on_zipped():
    z, model = zipped(40)
    n = 40
    rng = np.random.default_rng(9)
    idx = rng.integers(-n, n, 60)
    check(z.new_view(idx), {k: v[idx] for k, v in model.items()})
    check(z.new_view(slice(35, 2, -3)), {k: v[35:2:-3] for k, v in model.items()})
    mask = rng.random(n) < 0.4
    check(z.new_view(mask), {k: v[mask] for k, v in model.items()})
    check(z.new_view(np.array([], dtype=np.int64)), {k: v[:0] for k, v in model.items()})
    perm = TableView({"p": np.arange(n)}).shuffle(seed=5)[:]["p"]
    check(z.shuffle(seed=5), {k: v[perm] for k, v in model.items()})
    names = ["zs", "i", "zf"]
    check(z.select_columns(names), {k: model[k] for k in names})
    check(z.drop_columns(["zb", "f"]), {k: v for k, v in model.items() if k not in ("zb", "f")})
    # views of views stay views of the same data
    vv = z.new_view(slice(None, None, -1)).shuffle(seed=2).new_view(mask[::-1])
    ref = {k: v[::-1] for k, v in model.items()}
    p2 = TableView({"p": np.arange(n)}).shuffle(seed=2)[:]["p"]
    ref = {k: v[p2][mask[::-1]] for k, v in ref.items()}
    check(vv, ref)


def test_sort_by_keys_in_different_groups():
    z, model = zipped(50)
    for keys, desc in [(["zi", "i"], False), (["i", "zs"], [True, False]), ("zb", True), (["s"], False)]:
        ks = [keys] if isinstance(keys, str) else keys
        order = sort_order(model, ks, desc)
        for threads in (1, 3):
            check(z.sort(keys, descending=desc, threads=threads), {k: v[order] for k, v in model.items()})
    order = sort_order(model, ["zi", "s"], False)
    got = z.sort(["zi", "s"], memory_budget=64)  # runs merged on disk
    check(got, {k: v[order] for k, v in model.items()})


def test_concat_plain_and_differently_grouped():
    z, model = zipped(12)
    t = TableView({k: model[k] for k in ["zs", "i", "b", "zi", "f", "s", "zf", "zb"]})
    other = TableView.zip([t.select_columns(["i", "zi"]), t.select_columns(["zs", "s"]).shuffle(seed=1),
                           t.select_columns(["b", "f", "zf", "zb"])])
    p1 = TableView({"p": np.arange(12)}).shuffle(seed=1)[:]["p"]
    m_other = {k: t[:][k] for k in ["i", "zi", "b", "f", "zf", "zb"]}
    m_other.update({k: model[k][p1] for k in ["zs", "s"]})
    m_other = {k: m_other[k] for k in other.column_names}
    check(other, m_other)
    for parts, ms in [([z, t], [model, model]), ([t, z, other], [model, model, m_other]),
                      ([other, z.new_view(slice(3, 9)), z], [m_other, {k: v[3:9] for k, v in model.items()}, model])]:
        cat = TableView.concat(parts)
        names = parts[0].column_names
        check(cat, {k: np.concatenate([m[k] for m in ms]) for k in names})
    with pytest.raises(ValueError, match="1 columns"):
        TableView.concat([z, TableView({"x": np.arange(3)})])
    with pytest.raises(ValueError, match="'zs'"):
        TableView.concat([z, z.rename_columns({"zs": "q"})])


def test_remove_matching_strings_and_filter_on_zipped():
    z, model = zipped(30)
    strs = list(model["zs"][:4])
    keep = ~np.isin(model["zs"], strs)
    check(z.remove_matching_strings("zs", strs), {k: v[keep] for k, v in model.items()})
    keep = ~np.isin(model["b"], [model["b"][0]])
    check(z.remove_matching_strings("b", [model["b"][0]]), {k: v[keep] for k, v in model.items()})
    got = z.filter(lambda b: b["zi"] > b["i"], batch_size=7)
    check(got, {k: v[model["zi"] > model["i"]] for k, v in model.items()})


def test_batch_iter_threads_and_flatten():
    z, model = zipped(57)
    for threads, readahead in [(1, 0), (3, 2)]:
        it = z.batch_iter(8, threads=threads, readahead=readahead)
        for k, batch in enumerate(it):
            assert_same(batch, expected(model, slice(8 * k, 8 * k + 8)))
        assert k == 7
    flat = z.flatten()
    check(flat, model)
    check(z.shuffle(seed=4).flatten(threads=2), {k: v[TableView({"p": np.arange(57)}).shuffle(seed=4)[:]["p"]]
                                                   for k, v in model.items()})


def test_column_and_arrow_export():
    z, model = zipped(9)
    for name in model:
        np.testing.assert_array_equal(z.column(name), expected(model, slice(None))[name], strict=True)


# ---- rename ----

def test_rename_columns():
    t = TableView(table())
    model = table()
    r = t.rename_columns({"i": "id", "s": "text"})
    want = {("id" if k == "i" else "text" if k == "s" else k): v for k, v in model.items()}
    check(r, want)
    assert r.schema == {("id" if k == "i" else "text" if k == "s" else k): v for k, v in t.schema.items()}
    swap = t.rename_columns({"i": "s", "s": "i"})
    check(swap, {("s" if k == "i" else "i" if k == "s" else k): v for k, v in model.items()})
    check(t.rename_columns({}), model)
    check(t, model)  # the source is untouched


def test_rename_errors():
    t = TableView(table(4))
    with pytest.raises(KeyError, match="'nope'"):
        t.rename_columns({"nope": "x"})
    with pytest.raises(ValueError, match="'s'"):
        t.rename_columns({"i": "s"})
    with pytest.raises(ValueError, match="empty"):
        t.rename_columns({"i": ""})
    with pytest.raises(TypeError):
        t.rename_columns([("i", "x")])
    with pytest.raises(TypeError):
        t.rename_columns({"i": 3})
    with pytest.raises(KeyError):  # a column hidden by select is not shown
        t.select_columns(["s"]).rename_columns({"i": "x"})


def test_rename_to_a_hidden_column_name_and_views_of_it():
    t = TableView(table(20))
    model = table(20)
    r = t.select_columns(["i", "f"]).rename_columns({"i": "s"})  # the store also holds an "s"
    m = {"s": model["i"], "f": model["f"]}
    check(r, m)
    idx = np.array([3, 1, -1, 7, 7])
    check(r.new_view(idx), {k: v[idx] for k, v in m.items()})
    check(r.new_view(idx).rename_columns({"s": "i"}), {"i": model["i"][idx], "f": model["f"][idx]})
    check(r.flatten(), m)
    order = sort_order(m, ["s"], True)
    check(r.sort("s", descending=True), {k: v[order] for k, v in m.items()})


def test_renamed_views_concat_with_originals():
    """The same column name read from stores that call it differently."""
    a, b = table(10, 1), table(10, 2)
    ta, tb = TableView(a), TableView(b)
    ra = ta.rename_columns({"i": "tmp"}).rename_columns({"tmp": "i"})
    cat = TableView.concat([tb, ra.new_view(slice(None, None, -1)), ta])
    check(cat, {k: np.concatenate([b[k], a[k][::-1], a[k]]) for k in a})
    sw = ta.rename_columns({"s": "b", "b": "s"})  # s now holds bytes: not concatenable with tb
    with pytest.raises(ValueError):
        TableView.concat([sw, tb])
    x = tb.rename_columns({"i": "j"})
    y = ta.shuffle(seed=3).rename_columns({"i": "j"})
    perm = TableView({"p": np.arange(10)}).shuffle(seed=3)[:]["p"]
    cat = TableView.concat([x, y])
    names = ["j", "f", "s", "b"]
    src = {"j": "i", "f": "f", "s": "s", "b": "b"}
    check(cat, {k: np.concatenate([b[src[k]], a[src[k]][perm]]) for k in names})


def test_rename_zipped_columns():
    z, model = zipped(15)
    r = z.rename_columns({"zi": "i2", "i": "zi"})
    want = {({"zi": "i2", "i": "zi"}.get(k, k)): v for k, v in model.items()}
    check(r, want)
    check(r.shuffle(seed=1).sort("i2").select_columns(["i2", "zi"]),
          {k: want[k][TableView({"p": np.arange(15)}).shuffle(seed=1)[:]["p"]][
              np.argsort(want["i2"][TableView({"p": np.arange(15)}).shuffle(seed=1)[:]["p"]], kind="stable")]
           for k in ["i2", "zi"]})


# ---- with_columns ----

def test_with_columns_replaces_in_place_and_appends():
    t = TableView(table(16))
    model = table(16)
    extra = {"s": np.arange(16, dtype=np.uint8), "new": np.linspace(0, 1, 16)}
    w = t.with_columns(TableView(extra))
    want = dict(model)
    want["s"] = extra["s"]
    want["new"] = extra["new"]
    check(w, want)
    assert w.column_names == ["i", "f", "s", "b", "new"]
    # a computed column from map, joined back
    m = t.map(lambda b: {"i2": b["i"] * 2}, batch_size=5, columns=["i"])
    w2 = t.with_columns(m)
    check(w2, {**model, "i2": model["i"] * 2})
    # replacing every column
    allnew = {k: np.zeros(16, dtype=np.int8) for k in reversed(list(model))}
    check(t.with_columns(TableView(allnew)), {k: allnew[k] for k in model})


def test_with_columns_errors():
    t = TableView(table(6))
    with pytest.raises(ValueError, match="5 rows.*6 rows"):
        t.with_columns(TableView({"x": np.arange(5)}))
    with pytest.raises(TypeError):
        t.with_columns({"x": np.arange(6)})


# ---- no copy, resources ----

def test_column_edits_copy_no_rows():
    n = 200_000
    t = TableView({"a": np.arange(n), "b": np.arange(n, dtype=np.float64)})
    u = TableView({"c": np.arange(n, dtype=np.int32)}).shuffle(seed=1)
    gc.collect()
    before, blobs = infinidata.memory_stats(), sys_stats()["blobs"]
    files = data_files()
    views = [TableView.zip([t, u]), t.rename_columns({"a": "x"}), t.with_columns(u), u.rename_columns({"c": "a"})]
    views.append(TableView.zip([views[1], views[3].rename_columns({"a": "y"})]))
    after = infinidata.memory_stats()
    assert data_files() == files
    assert after["bytes_on_disk"] == before["bytes_on_disk"]
    assert after["mappings"] == before["mappings"]
    assert sys_stats()["blobs"] == blobs  # aliases share the blobs of what they rename
    for v in views:
        np.testing.assert_array_equal(v.column(v.column_names[-1])[:3], v[:3][v.column_names[-1]])
    del views
    gc.collect()
    assert infinidata.memory_stats() == before


def test_dropped_sources_keep_zipped_rows_alive():
    a, b = table(30, 1), table(30, 2, "z")
    z = TableView.zip([TableView(a).shuffle(seed=1), TableView(b).rename_columns({"zi": "k"})])
    perm = TableView({"p": np.arange(30)}).shuffle(seed=1)[:]["p"]
    gc.collect()
    model = {k: v[perm] for k, v in a.items()}
    model.update({("k" if k == "zi" else k): v for k, v in b.items()})
    check(z, model)
    del z
    gc.collect()


# ---- persistence ----

def persisted_views():
    z, model = zipped(21)
    yield "zipped", z, model
    t = TableView(table(21))
    m = table(21)
    r = t.rename_columns({"i": "j", "s": "text"})
    yield "renamed", r, {{"i": "j", "s": "text"}.get(k, k): v for k, v in m.items()}
    perm = TableView({"p": np.arange(21)}).shuffle(seed=2)[:]["p"]
    rz = TableView.zip([r.shuffle(seed=2).select_columns(["j", "text"]), t.select_columns(["b"])])
    yield "renamed zipped", rz, {"j": m["i"][perm], "text": m["s"][perm], "b": m["b"]}
    cat = TableView.concat([t, t.rename_columns({"i": "q"}).rename_columns({"q": "i"}).new_view(slice(None, None, -1))])
    yield "concat of renamed", cat, {k: np.concatenate([v, v[::-1]]) for k, v in m.items()}
    w = z.with_columns(TableView({"zi": np.arange(21, dtype=np.uint8)}).rename_columns({"zi": "zi"}))
    mw = dict(model)
    mw["zi"] = np.arange(21, dtype=np.uint8)
    yield "with_columns", w, mw


@pytest.mark.parametrize("kind", ["zipped", "renamed", "renamed zipped", "concat of renamed", "with_columns"])
def test_save_load_and_pickle(tmp_path, kind):
    [(tv, model)] = [(v, m) for k, v, m in persisted_views() if k == kind]
    tv.save_to_disk(str(tmp_path), "v")
    loaded = TableView.load_from_disk(str(tmp_path), "v")
    check(loaded, model)
    assert loaded.schema == tv.schema
    check(loaded.new_view(slice(3, 12)).shuffle(seed=1).sort(list(model)[0]),
          (lambda mm: {k: v[sort_order(mm, [list(model)[0]], False)] for k, v in mm.items()})(
              {k: v[3:12][TableView({"p": np.arange(9)}).shuffle(seed=1)[:]["p"]] for k, v in model.items()}))
    check(pickle.loads(pickle.dumps(tv)), model)
    check(pickle.loads(pickle.dumps(loaded)), model)
    # saved again from the loaded view, into the same directory: the same files
    before = sorted(os.listdir(tmp_path))
    loaded.save_to_disk(str(tmp_path), "again")
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["again.idtview"])
    infinidata.gc_saved(str(tmp_path))  # aliases name no file: nothing a manifest needs goes
    check(TableView.load_from_disk(str(tmp_path), "again"), model)


def test_rename_saves_no_second_copy(tmp_path):
    t = TableView(table(50)).shuffle(seed=3)
    t.save_to_disk(str(tmp_path), "a")
    stores = sorted(f for f in os.listdir(tmp_path) if f.startswith("s-"))
    t.rename_columns({"i": "x"}).save_to_disk(str(tmp_path), "b")
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("s-")) == stores
    assert len([f for f in os.listdir(tmp_path) if f.startswith("r-")]) == 2  # one ref array each


def test_pickle_to_spawned_child(tmp_path):
    rz = [v for k, v, m in persisted_views() if k == "renamed zipped"][0]
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(rz))
    code = ("import pickle, sys, numpy as np\n"
            f"v = pickle.loads(open({str(path)!r}, 'rb').read())\n"
            "print(v.column_names, int(v[:]['j'].sum()), len(v))\n")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == f"{rz.column_names} {int(rz[:]['j'].sum())} {len(rz)}"


# ---- saved groups and aliases are validated ----

def _parse(raw):
    """Offsets in a manifest: {"files": [(kind, offset)], "extra": offset of the extra group
    count, "groups": [(schema offset, segments offset)], "map": offset of the column map}."""
    pos = 32
    out = {"files": [], "groups": []}

    def u32():
        nonlocal pos
        pos += 4
        return struct.unpack_from("<I", raw, pos - 4)[0]

    def u64():
        nonlocal pos
        pos += 8
        return struct.unpack_from("<Q", raw, pos - 8)[0]

    def pad():
        nonlocal pos
        pos += -pos % 8

    def columns():
        start = pos
        for _ in range(u64()):
            _kind, ndim, nl, dl = u32(), u32(), u32(), u32()
            u64()
            for _ in range(ndim):
                u64()
            nonlocal_skip(nl + dl)
            pad()
        for _ in range(u64()):
            u64()
        return start

    def nonlocal_skip(n):
        nonlocal pos
        pos += n

    def segments():
        start = pos
        nonlocal_skip(40 * u64())
        return start

    sch = columns()
    for _ in range(u64()):
        at = pos
        kind = u32()
        out["files"].append((kind, at))
        if kind == 2:
            nc = u32()
            u64()
            for _ in range(nc):
                u64()
                nl = u32()
                u32()
                nonlocal_skip(nl)
                pad()
            continue
        pl = u32()
        nonlocal_skip(8 + 8 + 16 + pl)
        pad()
        if kind == 1:
            u64()
            u64()
            nonlocal_skip(8 * u64())
    out["groups"].append((sch, segments()))
    out["extra"] = pos
    for _ in range(u64()):
        sch = columns()
        out["groups"].append((sch, segments()))
    out["map"] = pos
    return out


def _forge(tmp_path, patch):
    from test_persist import fix_manifest
    a = TableView({"aaaa": np.arange(10, dtype=np.int64), "s": np.array(["x"] * 10)}).shuffle(seed=1)
    b = TableView({"cc": np.arange(10, dtype=np.int32)}).rename_columns({"cc": "bbbb"})
    TableView.zip([a, b]).save_to_disk(str(tmp_path), "v")
    m = tmp_path / "v.idtview"
    raw = bytearray(m.read_bytes())
    TableView.load_from_disk(str(tmp_path), "v")  # sound before the patch
    patch(raw, _parse(bytes(raw)))
    m.write_bytes(fix_manifest(bytes(raw)))
    with pytest.raises(infinidata.CorruptDataError) as ei:
        TableView.load_from_disk(str(tmp_path), "v")
    return str(ei.value)


def _put(raw, off, value):
    struct.pack_into("<Q", raw, off, value)


FORGERIES = {
    # group counts
    "no extra group": (lambda r, p: _put(r, p["extra"], 0), "trailing bytes"),
    "extra groups": (lambda r, p: _put(r, p["extra"], 3), ""),
    "huge group count": (lambda r, p: _put(r, p["extra"], 1 << 60), "extra group count"),
    # the column map
    "map too short": (lambda r, p: _put(r, p["map"], 2), "grouped column count"),
    "map group out of range": (lambda r, p: _put(r, p["map"] + 8, 2), "column group"),
    "map column out of range": (lambda r, p: _put(r, p["map"] + 16, 9), "group column"),
    "column shown twice": (lambda r, p: (_put(r, p["map"] + 8 + 32, 0), _put(r, p["map"] + 8 + 40, 0)),
                           "shown twice"),
    # group lengths: group 1 is one run of the 10-row table
    "group lengths differ": (lambda r, p: _put(r, p["groups"][1][1] + 8 + 32, 9), "group 1 has 9 rows"),
    # a name in two groups: the alias and group 1's schema call "bbbb" "aaaa"
    "column in two groups": (lambda r, p: r.__setitem__(slice(None), bytes(r).replace(b"bbbb", b"aaaa")),
                             "'aaaa' is in two groups"),
    # aliases
    "alias base not a store": (lambda r, p: _put(r, [o for k, o in p["files"] if k == 2][0] + 8,
                                                  [i for i, (k, o) in enumerate(p["files"]) if k == 1][0]),
                               "base"),
    "alias column out of range": (lambda r, p: _put(r, [o for k, o in p["files"] if k == 2][0] + 16, 5),
                                  "alias column"),
    "alias of a later file": (lambda r, p: _put(r, [o for k, o in p["files"] if k == 2][0] + 8, 99), "base"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_groups_and_aliases_are_corrupt(tmp_path, forgery):
    patch, needle = FORGERIES[forgery]
    msg = _forge(tmp_path, patch)
    assert needle in msg, msg


# ---- the torch adapter ----

def _passthrough(b):
    return b


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_torch_loader_over_zipped_and_renamed_view(ctx):
    torch = pytest.importorskip("torch")
    from infinidata.torch import TableLoader
    n = 40
    a = TableView({"row": np.arange(n, dtype=np.int64), "s": np.array([f"r{i}" for i in range(n)])})
    b = TableView({"v": np.arange(n, dtype=np.float32) * 10}).shuffle(seed=7)
    perm = TableView({"p": np.arange(n)}).shuffle(seed=7)[:]["p"]
    z = TableView.zip([a, b]).rename_columns({"v": "value"})
    inproc = [np.asarray(bt["row"]).tolist() for bt in TableLoader(z, 8, seed=4)]
    dl = torch.utils.data.DataLoader(TableLoader(z, 8, seed=4), batch_size=None, num_workers=2,
                                     multiprocessing_context=ctx, collate_fn=_passthrough)
    got = []
    for bt in dl:
        rows = np.asarray(bt["row"])
        np.testing.assert_array_equal(np.asarray(bt["value"]), (perm[rows] * 10).astype(np.float32))
        np.testing.assert_array_equal(np.asarray(bt["s"]), np.array([f"r{i}" for i in rows]))
        got.append(rows.tolist())
    assert got == inproc
    assert sorted(r for g in got for r in g) == list(range(n))


def test_packing_a_column_of_a_zipped_view():
    pytest.importorskip("torch")
    from infinidata.torch import TableLoader
    rng = np.random.default_rng(5)
    n = 50
    docs = [rng.integers(1, 256, int(k)).astype(np.uint8).tobytes() for k in rng.integers(1, 30, n)]
    tokens = TableView({"tokens": np.array(docs, dtype="S")}).new_view(np.arange(n)[::-1])
    ids = TableView({"id": np.arange(n)})
    z = TableView.zip([ids, tokens.rename_columns({"tokens": "toks"})])
    assert z.column_names == ["id", "toks"]
    plain = z.flatten()  # the same rows in one table: the model
    pack = {"column": "toks", "seq_len": 16, "pad_id": 0}
    got = [b["tokens"].numpy() for b in TableLoader(z, 4, seed=2, pack=pack)]
    want = [b["tokens"].numpy() for b in TableLoader(plain, 4, seed=2, pack=pack)]
    assert len(got) == len(want) > 3
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_list_columns_in_zipped_and_renamed_views(tmp_path):
    values = np.arange(20, dtype=np.int32)
    offsets = np.array([0, 2, 2, 5, 9, 10, 14, 20])
    rows = [values[offsets[i]:offsets[i + 1]] for i in range(7)]
    a = TableView({"tok": infinidata.Ragged(values, offsets), "id": np.arange(7)})
    b = TableView({"y": np.arange(7.0)}).shuffle(seed=1)
    perm = TableView({"p": np.arange(7)}).shuffle(seed=1)[:]["p"]
    z = TableView.zip([a.rename_columns({"tok": "t"}), b])
    assert z.schema["t"] == (np.dtype("int32"), "list")

    def same(view, idx):
        got = view[:]
        assert [list(r) for r in got["t"].tolist()] == [list(rows[i]) for i in idx]
        np.testing.assert_array_equal(got["y"], perm[idx].astype(np.float64), strict=True)

    same(z, np.arange(7))
    sh = TableView({"p": np.arange(7)}).shuffle(seed=3)[:]["p"]
    same(z.shuffle(seed=3), sh)
    np.testing.assert_array_equal(z[2]["t"], rows[2], strict=True)
    for k, bt in enumerate(z.batch_iter(3, threads=2, pad={"t": (-1, 3)})):
        for q, i in enumerate(range(3 * k, min(3 * k + 3, 7))):
            m = min(3, len(rows[i]))
            assert bt["t_lengths"][q] == m
            np.testing.assert_array_equal(bt["t"][q][:m], rows[i][:m])
            assert (bt["t"][q][m:] == -1).all()
    z.save_to_disk(str(tmp_path), "z")
    same(TableView.load_from_disk(str(tmp_path), "z"), np.arange(7))
    same(pickle.loads(pickle.dumps(z)), np.arange(7))
    same(z.flatten(), np.arange(7))

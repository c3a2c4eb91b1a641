"""Model-based test: random programs of TableView operations against a NumPy model.

A Hypothesis RuleBasedStateMachine builds tables and views of them (new_view with every key
kind, shuffle, concat, select_columns, filter, remove_matching_strings, sort, shard,
train_test_split, filter by predicate, map, drop_columns, rename_columns, zip, with_columns,
save/load, pickle),
reads them (int, slice, int array, bool mask, batch_iter with threads and readahead) and
drops them, and checks every read against the same operation on a dict of NumPy arrays
(conftest.expected / assert_same: np.testing.assert_array_equal(..., strict=True), so
values, dtypes and shapes all match).

Each run picks a column family (a few fixed dtypes with row shapes, str, bytes and object
string columns, some with row shapes) so that its tables can be concatenated. CI size:
30 programs of up to 30 steps; INFINIDATA_SOAK=1 (`make soak`) runs 600 programs of up to 60.
The steps run are counted and printed at the end of the module (`pytest -s` shows it).
"""

import collections
import gc
import os
import pickle
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize,
                                 invariant, multiple, rule)

import infinidata
from conftest import assert_same, expected, sort_order

TableView = infinidata.TableView

SOAK = os.environ.get("INFINIDATA_SOAK") == "1"
MAX_ROWS = 40

FIXED = ["bool", "int8", "uint16", "int32", "int64", "uint64", "float16", "float32", "float64",
         "complex64", "complex128", "M8[ns]", "M8[D]", "m8[s]", ">i4", "<f8"]
ROW_SHAPES = [(), (), (), (2,), (3, 2), (0,), (1,)]
# NUL (inside a string it is kept; trailing ones are padding, as in NumPy), a lone surrogate,
# multi-byte UTF-8 of every length
ALPHABET = ["a", "b", "z", " ", "\t", "é", "ß", "€", "日", "😀", "\x00", "\ud800", "\U0010ffff"]

text = st.lists(st.sampled_from(ALPHABET), max_size=6).map("".join)
binary = st.binary(max_size=6)

STEPS = collections.Counter()


def _strip_nul(s):
    return s.rstrip(b"\0") if isinstance(s, bytes) else s.rstrip("\0")


def model_take(model, key):
    """The model's rows for a new_view / filter key."""
    if isinstance(key, list):
        key = np.asarray(key, dtype=np.intp) if len(key) == 0 else np.asarray(key)
    return {k: a[key] for k, a in model.items()}


def nrows(model):
    return len(next(iter(model.values())))


class TableModel(RuleBasedStateMachine):
    views = Bundle("views")

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="infinidata-model-")
        self.saves = 0
        self.family = None

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers ----

    def check_full(self, tv, model):
        """Every row, and a few fixed reads of each key kind (the read rule draws random ones)."""
        n = nrows(model)
        assert len(tv) == n
        assert tv.column_names == list(model)
        keys = [slice(None), slice(None, None, -1), slice(1, None, 3)]
        if n:
            keys += [n - 1, -n, np.array([n // 2, 0, -1, n // 2]), np.arange(n) % 3 != 1]
        for key in keys:
            assert_same(tv[key], expected(model, key))

    def make_column(self, data, kind, n):
        dtype, shape = kind
        if dtype == "U":
            flat = data.draw(st.lists(text, min_size=n * int(np.prod(shape)),
                                      max_size=n * int(np.prod(shape))))
            return np.array(flat, dtype=f"U{max([len(s) for s in flat] + [1])}").reshape((n,) + shape)
        if dtype == "O":
            flat = data.draw(st.lists(text, min_size=n, max_size=n))
            arr = np.empty(n, dtype=object)
            arr[:] = flat
            return arr
        if dtype == "S":
            flat = data.draw(st.lists(binary, min_size=n, max_size=n))
            return np.array(flat, dtype=f"S{max([len(s) for s in flat] + [1])}")
        seed = data.draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        dt = np.dtype(dtype)
        size = n * int(np.prod(shape))
        raw = rng.integers(0, 256, size * dt.itemsize, dtype=np.uint8)
        if dt.kind == "b":
            arr = (raw[:size] & 1).astype(bool)
        else:
            arr = raw.view(dt)  # every bit pattern: NaNs, infinities, NaT, extremes
        return arr.reshape((n,) + shape)

    # ---- the column family of this run ----

    @initialize(data=st.data())
    def pick_family(self, data):
        n_fixed = data.draw(st.integers(1, 3))
        fam = {"id": ("int64", ())}
        for i in range(n_fixed):
            fam[f"x{i}"] = (data.draw(st.sampled_from(FIXED)), data.draw(st.sampled_from(ROW_SHAPES)))
        fam["u"] = ("U", ())
        if data.draw(st.booleans()):
            fam["m"] = ("U", (2,))
        if data.draw(st.booleans()):
            fam["o"] = ("O", ())
        fam["s"] = ("S", ())
        # the column order is the dict's, not sorted
        order = data.draw(st.permutations(list(fam)))
        self.family = {k: fam[k] for k in order}
        self.next_id = 0

    # ---- making views ----

    @rule(target=views, n=st.integers(0, MAX_ROWS), data=st.data())
    def construct(self, n, data):
        STEPS["construct"] += 1
        source = {}
        for name, kind in self.family.items():
            if name == "id":
                source[name] = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
            else:
                source[name] = self.make_column(data, kind, n)
        self.next_id += n
        tv = TableView(source)
        model = source  # conftest.expected gives what the engine reads back (native order, U/S)
        self.check_full(tv, model)
        return (tv, model)

    @rule(target=views, v=views, data=st.data())
    def new_view(self, v, data):
        STEPS["new_view"] += 1
        tv, model = v
        n = len(tv)
        kind = data.draw(st.sampled_from(["int", "slice", "array", "list", "mask"]))
        if kind == "int":
            assume(n > 0)
            key = data.draw(st.integers(-n, n - 1))
            new = tv.new_view(key)  # one row, as a view
            nm = model_take(model, [key])
        else:
            key = self.draw_key(data, n, kind)
            new = tv.new_view(key)
            nm = model_take(model, key)
        self.check_full(new, nm)
        return (new, nm)

    def draw_key(self, data, n, kind):
        if kind == "slice":
            bound = st.none() | st.integers(-n - 3, n + 3)
            step = st.none() | st.integers(-5, 5).filter(lambda s: s != 0)
            return slice(data.draw(bound), data.draw(bound), data.draw(step))
        if kind in ("array", "list"):
            if n == 0:
                idx = []
            else:
                idx = data.draw(st.lists(st.integers(-n, n - 1), max_size=2 * MAX_ROWS))
            if kind == "list":
                return idx
            dt = data.draw(st.sampled_from(["int64", "int32", "intp", "int16"] if n < 2**15 else ["int64"]))
            return np.array(idx, dtype=dt)
        if n <= MAX_ROWS:
            return np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        p = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
        return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).random(n) < p

    @rule(target=views, v=views, seed=st.integers(0, 2**64 - 1))
    def shuffle(self, v, seed):
        STEPS["shuffle"] += 1
        tv, model = v
        new = tv.shuffle(seed=seed)
        n = len(tv)
        # the permutation depends only on (seed, n): read it off a table of row numbers
        perm = TableView({"p": np.arange(n, dtype=np.int64)}).shuffle(seed=seed)[:]["p"]
        assert np.array_equal(np.sort(perm), np.arange(n))
        nm = {k: a[perm] for k, a in model.items()}
        self.check_full(new, nm)
        assert_same(tv.shuffle(seed=seed)[:], new[:])  # seeded: the same again
        return (new, nm)

    @rule(target=views, parts=st.lists(views, min_size=1, max_size=4))
    def concat(self, parts):
        STEPS["concat"] += 1
        names = list(parts[0][1])
        assume(sum(len(tv) for tv, _ in parts) <= 50 * MAX_ROWS)  # repeated concats grow fast
        if any(sorted(m) != sorted(names) for _, m in parts):
            with pytest.raises(ValueError):
                TableView.concat([tv for tv, _ in parts])
            return multiple()
        new = TableView.concat([tv for tv, _ in parts])
        nm = {k: np.concatenate([m[k] for _, m in parts]) for k in names}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def select_columns(self, v, data):
        STEPS["select_columns"] += 1
        tv, model = v
        names = data.draw(st.lists(st.sampled_from(list(model)), min_size=1, unique=True))
        new = tv.select_columns(names)
        nm = {k: model[k] for k in names}
        self.check_full(new, nm)
        assert new.schema == {k: tv.schema[k] for k in names}
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def filter(self, v, data):
        STEPS["filter"] += 1
        tv, model = v
        mask = self.draw_key(data, len(tv), "mask")
        new = tv.filter(mask)
        nm = model_take(model, mask)
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def remove_matching_strings(self, v, data):
        STEPS["remove_matching_strings"] += 1
        tv, model = v
        cols = [k for k, a in model.items() if a.dtype.kind in "USO"]
        assume(cols)
        col = data.draw(st.sampled_from(cols))
        arr = model[col]
        present = [x for x in arr.flat]
        want_bytes = arr.dtype.kind == "S"
        pool = st.sampled_from(present) if present else st.nothing()
        extra = binary if want_bytes else text
        strings = data.draw(st.lists(pool | extra, max_size=4))
        strings = [bytes(s) if want_bytes else str(s) for s in strings]
        new = tv.remove_matching_strings(col, strings)
        drop = {_strip_nul(s) for s in strings}  # trailing NULs are padding on both sides
        keep = np.array([not any(_strip_nul(x) in drop for x in np.ravel(row)) for row in arr],
                        dtype=bool).reshape(len(arr))
        nm = {k: a[keep] for k, a in model.items()}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def sort(self, v, data):
        STEPS["sort"] += 1
        tv, model = v
        cols = [k for k, a in model.items() if a.ndim == 1 and a.dtype.kind != "c"]
        assume(cols)
        keys = data.draw(st.lists(st.sampled_from(cols), min_size=1, max_size=3, unique=True))
        desc = data.draw(st.booleans() | st.lists(st.booleans(), min_size=len(keys), max_size=len(keys)))
        budget = data.draw(st.sampled_from([None, None, 64, 1000]))  # small: runs merged on disk
        threads = data.draw(st.sampled_from([None, 1, 3]))
        new = tv.sort(keys, descending=desc, threads=threads, memory_budget=budget)
        order = sort_order(model, keys, desc)
        nm = {k: a[order] for k, a in model.items()}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def shard(self, v, data):
        STEPS["shard"] += 1
        tv, model = v
        k = data.draw(st.integers(1, 5))
        i = data.draw(st.integers(0, k - 1))
        contiguous = data.draw(st.booleans())
        new = tv.shard(k, i, contiguous=contiguous)
        n = len(tv)
        if contiguous:
            div, mod = divmod(n, k)
            start = div * i + min(i, mod)
            key = slice(start, start + div + (i < mod))
        else:
            key = slice(i, None, k)
        nm = {c: a[key] for c, a in model.items()}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def train_test_split(self, v, data):
        STEPS["train_test_split"] += 1
        tv, model = v
        n = len(tv)
        assume(n >= 2)
        n_test = data.draw(st.integers(1, n - 1))
        seed = data.draw(st.integers(0, 2**64 - 1))
        train, test = tv.train_test_split(n_test, seed=seed)
        perm = TableView({"p": np.arange(n, dtype=np.int64)}).shuffle(seed=seed)[:]["p"]
        m_test = {k: a[perm[:n_test]] for k, a in model.items()}
        m_train = {k: a[perm[n_test:]] for k, a in model.items()}
        self.check_full(test, m_test)
        self.check_full(train, m_train)
        return multiple((train, m_train), (test, m_test))

    @rule(target=views, v=views, m=st.integers(1, 4), r=st.integers(0, 3),
          batch_size=st.integers(1, 15), only_id=st.booleans())
    def filter_predicate(self, v, m, r, batch_size, only_id):
        STEPS["filter_predicate"] += 1
        tv, model = v
        assume("id" in model)
        new = tv.filter(lambda b: b["id"] % m == r, batch_size=batch_size,
                        columns=["id"] if only_id else None)
        nm = model_take(model, model["id"] % m == r)
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, batch_size=st.integers(1, 15), num_proc=st.sampled_from([1, 1, 1, 2]))
    def map(self, v, batch_size, num_proc):
        STEPS["map"] += 1
        tv, model = v
        assume("id" in model)
        new = tv.map(lambda b: {"id": b["id"], "r": (b["id"] % 7).astype(np.int16)},
                     batch_size=batch_size, columns=["id"], num_proc=num_proc)
        nm = {"id": model["id"], "r": (model["id"] % 7).astype(np.int16)}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def drop_columns(self, v, data):
        STEPS["drop_columns"] += 1
        tv, model = v
        assume(len(model) > 1)
        names = data.draw(st.lists(st.sampled_from(list(model)), min_size=1, max_size=len(model) - 1,
                                   unique=True))
        new = tv.drop_columns(names)
        nm = {k: a for k, a in model.items() if k not in names}
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, data=st.data())
    def rename_columns(self, v, data):
        STEPS["rename_columns"] += 1
        tv, model = v
        names = data.draw(st.lists(st.sampled_from(list(model)), min_size=1, unique=True))
        # toggle a "~" suffix: a renamed view concatenates with the others again (through
        # its aliases) once renamed back
        mapping = {k: k[:-1] if k.endswith("~") else k + "~" for k in names}
        new = tv.rename_columns(mapping)
        nm = {mapping.get(k, k): a for k, a in model.items()}
        self.check_full(new, nm)
        assert new.schema == {mapping.get(k, k): d for k, d in tv.schema.items()}
        return (new, nm)

    @rule(target=views, v=views, seed=st.integers(0, 2**64 - 1), data=st.data())
    def zip_columns(self, v, seed, data):
        STEPS["zip"] += 1
        tv, model = v
        names = data.draw(st.permutations(list(model)))
        assume(len(names) >= 2)
        k = data.draw(st.integers(1, len(names) - 1))
        left, right = names[:k], names[k:]
        other = tv.shuffle(seed=seed)  # rows of its own: a second column group
        new = TableView.zip([tv.select_columns(left), other.select_columns(right)])
        perm = TableView({"p": np.arange(len(tv), dtype=np.int64)}).shuffle(seed=seed)[:]["p"]
        nm = {c: model[c] for c in left}
        nm.update({c: model[c][perm] for c in right})
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, append=st.booleans(), data=st.data())
    def with_columns(self, v, append, data):
        STEPS["with_columns"] += 1
        tv, model = v
        names = data.draw(st.lists(st.sampled_from(list(model)), min_size=1, unique=True))
        other = tv.new_view(slice(None, None, -1)).select_columns(names)
        nm = dict(model)
        if append:
            assume(not any(c + "+" in model for c in names))
            other = other.rename_columns({c: c + "+" for c in names})
            nm.update({c + "+": model[c][::-1] for c in names})
        else:
            nm.update({c: model[c][::-1] for c in names})
        new = tv.with_columns(other)
        self.check_full(new, nm)
        return (new, nm)

    @rule(target=views, v=views, overwrite=st.booleans())
    def save_and_load(self, v, overwrite):
        STEPS["save_and_load"] += 1
        tv, model = v
        self.saves += 1
        if overwrite:
            # Replacing "same" removes the data files only the replaced manifest named, and
            # a view still loaded from them keeps reading but can no longer be pickled (its
            # files are gone: README). So a view loaded from "same" is checked here and not
            # kept; the view kept comes from a name of its own.
            tv.save_to_disk(self.dir, "same", overwrite=True)
            self.check_full(TableView.load_from_disk(self.dir, "same"), model)
            gc.collect()
        name = f"v{self.saves}"
        tv.save_to_disk(self.dir, name)
        new = TableView.load_from_disk(self.dir, name)
        assert new.schema == tv.schema
        self.check_full(new, model)
        return (new, model)

    @rule(target=views, v=views)
    def pickle_roundtrip(self, v):
        STEPS["pickle"] += 1
        tv, model = v
        new = pickle.loads(pickle.dumps(tv))
        self.check_full(new, model)
        return (new, model)

    @rule(v=consumes(views))
    def drop(self, v):
        """Forget a view: the views made from it must not notice."""
        STEPS["drop"] += 1
        del v
        gc.collect()

    # ---- reads ----

    @rule(v=views, data=st.data())
    def read(self, v, data):
        STEPS["read"] += 1
        tv, model = v
        n = len(tv)
        kind = data.draw(st.sampled_from(["int", "slice", "array", "list", "mask", "2d", "bad"]))
        if kind == "int":
            assume(n > 0)
            i = data.draw(st.integers(-n, n - 1))
            key = data.draw(st.sampled_from([i, np.int64(i), np.int32(i)]))
            assert_same(tv[key], expected(model, int(i)))
        elif kind == "2d":
            assume(n > 0)
            idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=6, max_size=6)))
            key = idx.reshape(data.draw(st.sampled_from([(2, 3), (3, 2), (1, 6), (6, 1)])))
            assert_same(tv[key], expected(model, key))
        elif kind == "bad":
            with pytest.raises(IndexError):
                tv[data.draw(st.sampled_from([n, -n - 1, n + 7]))]
            with pytest.raises(IndexError):
                tv[np.zeros(n + 1, dtype=bool)]
        else:
            key = self.draw_key(data, n, kind)
            assert_same(tv[key], expected(model, key))

    @rule(v=views, batch_size=st.integers(1, 12), drop_last=st.booleans(),
          threads=st.sampled_from([1, 1, 2, 4]), readahead=st.sampled_from([0, 0, 1, 3, 50]))
    def batch_iter(self, v, batch_size, drop_last, threads, readahead):
        STEPS["batch_iter"] += 1
        tv, model = v
        n = len(tv)
        it = tv.batch_iter(batch_size, drop_last_batch=drop_last, threads=threads,
                           readahead=readahead)
        want = n // batch_size if drop_last else -(-n // batch_size)
        assert it.num_batches() == want
        got = 0
        for k, batch in enumerate(it):
            assert_same(batch, expected(model, slice(k * batch_size, (k + 1) * batch_size)))
            got += 1
        assert got == want

    @invariant()
    def count_steps(self):
        STEPS["steps"] += 1


TableModel.TestCase.settings = settings(
    max_examples=600 if SOAK else 30,
    stateful_step_count=60 if SOAK else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)
TestTableModel = TableModel.TestCase


def teardown_module():
    rules = {k: v for k, v in STEPS.items() if k != "steps"}
    print(f"\nmodel test: {STEPS['steps']} states checked, {sum(rules.values())} rule steps: "
          + ", ".join(f"{k} {v}" for k, v in sorted(rules.items())))

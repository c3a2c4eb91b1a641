"""Construction when Python code runs in the middle of it (issue 11 item 4): a column's
__array__, __len__/__getitem__ or a dtype's hooks that mutate, clear or rename the dict being
read, or reshape / retype / empty arrays already read. Names and data come from the dict as
it was at the call; the constructor never crashes. The old code crashed here, so the
crashing scenarios run in a subprocess."""

import textwrap

import numpy as np
import pytest

import infinidata
from conftest import HERE, assert_same, run_python

TableView = infinidata.TableView
N = 50


class Hook:
    """A column whose __array__ runs `fn` first and then returns `arr`."""

    def __init__(self, arr, fn):
        self.arr, self.fn = arr, fn

    def __array__(self, dtype=None, copy=None):
        self.fn()
        return self.arr


def base_cols():
    return {"a": np.arange(N, dtype=np.int64), "s": np.array([f"w{i}" for i in range(N)]),
            "f": np.linspace(0, 1, N, dtype=np.float32)}


def check_table(tv, want):
    assert list(tv[:].keys()) == list(want)
    assert_same(tv[:], {k: np.asarray(v) for k, v in want.items()})


def isolated(fn, *args):
    """Run fn(*args) of this module in a fresh interpreter (the old code crashed)."""
    p = run_python(f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
                   f"import test_table_hostile as t\n"
                   f"t.{fn.__name__}(*{args!r})\nprint('ok')", timeout=120)
    assert p.stdout.strip().endswith("ok"), p.stdout


def scenario_array_hook_mutating_the_dict(how):
    cols = base_cols()
    want = dict(cols)
    want["h"] = np.arange(N, dtype=np.int16) * 3

    def mutate():
        if how == "clear":
            cols.clear()
        elif how == "delete_self":
            del cols["h"]
        elif how == "delete_later":
            del cols["f"]
        elif how == "rename":
            cols["renamed"] = cols.pop("a")
        elif how == "insert":
            for k in range(100):  # forces the dict to grow (a resize under the reader)
                cols[f"new{k}"] = np.zeros(N)
        elif how == "replace_value":
            cols["f"] = np.zeros(3)  # a wrong length: must not be seen
        elif how == "rebind_all":
            for k in list(cols):
                cols[k] = "garbage"

    cols["h"] = Hook(want["h"], mutate)
    cols["z"] = np.ones(N, dtype=np.uint8)
    want["z"] = cols["z"]
    tv = TableView(cols)
    check_table(tv, want)


@pytest.mark.parametrize("how", ["clear", "delete_self", "delete_later", "rename", "insert",
                                 "replace_value", "rebind_all"])
def test_array_hook_mutating_the_dict(how):
    isolated(scenario_array_hook_mutating_the_dict, how)


def scenario_every_column_mutates_the_dict_in_turn():
    cols = {}
    want = {}
    for k in range(20):
        arr = np.arange(N) + k
        want[f"c{k}"] = arr
        cols[f"c{k}"] = Hook(arr, lambda k=k: cols.pop(f"c{(k + 7) % 20}", None))
    tv = TableView(cols)
    check_table(tv, want)


def test_every_column_mutates_the_dict_in_turn():
    isolated(scenario_every_column_mutates_the_dict_in_turn)


class SeqCol:
    """A sequence (no __array__) whose __len__ and __getitem__ mutate the dict."""

    def __init__(self, cols, n):
        self.cols, self.n = cols, n

    def __len__(self):
        self.cols.clear()
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.cols[f"k{i}"] = i
        return i * 2


def scenario_sequence_hooks_mutating_the_dict():
    cols = {"a": np.arange(10)}
    cols["q"] = SeqCol(cols, 10)
    tv = TableView(cols)
    check_table(tv, {"a": np.arange(10), "q": np.arange(10) * 2})


def test_sequence_hooks_mutating_the_dict():
    isolated(scenario_sequence_hooks_mutating_the_dict)


def scenario_str_subclass_names_with_hostile_hooks():
    cols = {}

    class Name(str):
        def __hash__(self):
            return str.__hash__(self)

        def __eq__(self, other):
            cols.clear()
            return str.__eq__(self, other)

        def __repr__(self):
            cols.clear()
            return "Name()"

    cols[Name("a")] = np.arange(5)
    cols["b"] = np.arange(6)  # a length mismatch: the error message reprs the names
    with pytest.raises(ValueError, match="differ in length"):
        TableView(cols)
    cols = {Name("a"): np.arange(5), "b": np.arange(5)}
    tv = TableView(cols)
    assert sorted(tv[:]) == ["a", "b"]


def test_str_subclass_names_with_hostile_hooks():
    isolated(scenario_str_subclass_names_with_hostile_hooks)


CHANGES = [
    "a.shape = (1, N)",                  # fewer rows than were checked
    "a.shape = (N // 2, 2)",             # a new row shape
    "a.dtype = np.int8",                 # 8x the rows, 1 byte each
    "u.dtype = 'U1'",                    # narrower strings, more of them
    "o[:] = 7",                          # object column now holds ints
    "o.shape = (1, N)",
]


def scenario_later_column_changes_an_earlier_array(change):
    n = 2000
    a = np.arange(n, dtype=np.int64)
    u = np.array(["x%d" % i for i in range(n)])
    o = np.array(["y%d" % i for i in range(n)], dtype=object)
    want_a, want_u, want_o = a.copy(), u.copy(), o.copy()
    cols = {"a": a, "u": u, "o": o,
            "z": Hook(np.arange(n, dtype=np.int8), lambda: exec(change, {"np": np, "N": n},
                                                                 {"a": a, "u": u, "o": o}))}
    try:
        tv = TableView(cols)
    except TypeError as e:
        assert change == "o[:] = 7", e  # ints are not strings: a clean TypeError
        assert "object columns must hold only str or only bytes" in str(e)
        return
    got = tv[:]
    assert list(got) == ["a", "u", "o", "z"]
    assert np.array_equal(got["z"], np.arange(n, dtype=np.int8))
    assert got["a"].dtype == want_a.dtype and np.array_equal(got["a"], want_a)
    assert got["u"].dtype == want_u.dtype and np.array_equal(got["u"], want_u)
    assert got["o"].tolist() == want_o.tolist()


@pytest.mark.parametrize("change", CHANGES)
def test_later_column_changes_an_earlier_array(change):
    # Column "z"'s __array__ runs after "a", "u" and "o" were read and checked; whatever it
    # does to those array objects, the table holds what they were when they were read, or
    # fails cleanly (ints written into the object column are not strings). NumPy's
    # resize(refcheck=False) frees memory others may hold, unsafe by NumPy's own
    # definition, so it is not tried.
    isolated(scenario_later_column_changes_an_earlier_array, change)


class Liar(np.ndarray):
    """An ndarray subclass whose __getitem__ returns garbage and whose __len__ lies."""

    def __getitem__(self, k):
        return np.zeros(3, dtype=self.dtype).view(np.ndarray)

    def __len__(self):
        return 7


def scenario_subclass_columns():
    base = np.arange(N, dtype=np.float64)
    tv = TableView({"l": base.view(Liar), "s": np.array(["q"] * N)})
    assert tv[:]["l"].dtype == np.float64 and np.array_equal(tv[:]["l"], base)
    strs = np.array(["abc", "de"] * (N // 2))
    tv = TableView({"s": strs.view(Liar)})
    assert tv[:]["s"].tolist() == strs.tolist()


def test_subclass_columns_are_read_as_plain_arrays():
    isolated(scenario_subclass_columns)

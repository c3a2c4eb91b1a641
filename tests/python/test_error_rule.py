"""The one rule from core error codes to Python exceptions (src/python/errors.c), and the
engine's decisions (mask length, index range, column lookup) reaching Python through it:
the exceptions users see are NumPy's where NumPy has one (tv[mask] of the wrong length is
an IndexError), the core's messages name the bad value."""

import errno
import pathlib
import re

import numpy as np
import pytest

import infinidata
from infinidata import _infinidata as _core

ERROR_H = pathlib.Path(__file__).resolve().parents[2] / "src" / "core" / "error.h"

# The rule as documented (README "Errors"): code name -> exception class.
EXPECTED = {
    "IDT_ENOMEM": MemoryError,
    "IDT_EIO": OSError,
    "IDT_EINDEX": IndexError,
    "IDT_EVALUE": ValueError,
    "IDT_ETYPE": TypeError,
    "IDT_EKEY": KeyError,
    "IDT_ECORRUPT": infinidata.CorruptDataError,
    "IDT_EEXIST": FileExistsError,
    "IDT_ECANCELLED": KeyboardInterrupt,
}


def _codes_in_error_h():
    text = ERROR_H.read_text()
    enum = re.search(r"enum\s*\{(.*?)\};", text, re.S).group(1)
    # the codes, not the range's bounds (IDT_E_BASE, IDT_E_FIRST, IDT_E_LAST)
    return sorted(set(re.findall(r"\b(IDT_E[A-Z0-9]+)\s*=", enum)))


def test_every_code_of_error_h_has_one_rule():
    names = _codes_in_error_h()
    assert "IDT_EINDEX" in names and len(names) >= 9
    rules = _core._error_rules()
    assert sorted(rules) == names, "errors.c's table and error.h's codes differ"
    codes = [code for code, _ in rules.values()]
    assert len(set(codes)) == len(codes) and all(c < 0 for c in codes)
    for name, (code, exc) in rules.items():
        assert exc is EXPECTED[name], name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_raising_follows_the_rule(name):
    code, exc = _core._error_rules()[name]
    with pytest.raises(exc) as ei:
        _core._raise_error(code, 0, f"bad value 7 for {name}")
    assert type(ei.value) is exc
    if exc is not KeyboardInterrupt:
        assert f"bad value 7 for {name}" in str(ei.value)


def test_os_errors_keep_errno_and_pick_the_subclass():
    code, _ = _core._error_rules()["IDT_EIO"]
    with pytest.raises(FileNotFoundError) as ei:
        _core._raise_error(code, errno.ENOENT, "open '/x': No such file")
    assert ei.value.errno == errno.ENOENT and ei.value.strerror == "open '/x': No such file"
    with pytest.raises(PermissionError):
        _core._raise_error(code, errno.EACCES, "denied")
    with pytest.raises(OSError) as ei:
        _core._raise_error(code, 0, "no errno")
    assert ei.value.errno == errno.EIO
    code, _ = _core._error_rules()["IDT_EEXIST"]
    with pytest.raises(FileExistsError) as ei:
        _core._raise_error(code, 0, "name taken")
    assert ei.value.errno == errno.EEXIST


def test_a_code_outside_the_rule_is_a_system_error():
    with pytest.raises(SystemError, match=r"core error code -999: what"):
        _core._raise_error(-999, 0, "what")


def test_messages_that_are_not_utf8_do_not_fail():
    code, _ = _core._error_rules()["IDT_EVALUE"]
    with pytest.raises(ValueError, match="caf"):
        _core._raise_error(code, 0, "café")


# ---- the engine decides, the rule maps ----

@pytest.fixture
def tv():
    return infinidata.TableView({"a": np.arange(5, dtype=np.int64), "b": np.arange(5.0)})


@pytest.mark.parametrize("n", [1, 4, 6])
def test_index_mask_of_wrong_length_is_indexerror_as_numpy(tv, n):
    mask = np.ones(n, dtype=bool)
    with pytest.raises(IndexError):
        np.arange(5)[mask]
    with pytest.raises(IndexError, match=f"boolean mask of length {n} does not match 5 rows"):
        tv[mask]
    with pytest.raises(IndexError, match=f"length {n}"):
        tv.new_view(mask)
    with pytest.raises(IndexError, match="1-dimensional"):
        tv[np.ones((5, 1), dtype=bool)]


def test_empty_bool_array_is_an_empty_index_as_numpy(tv):
    empty = np.zeros(0, dtype=bool)
    want = np.arange(5)[empty]  # NumPy takes it as an empty index list, not a mask
    got = tv[empty]
    assert got["a"].dtype == want.dtype and got["a"].shape == want.shape == (0,)
    assert got["b"].dtype == np.float64 and got["b"].shape == (0,)
    assert len(tv.new_view(empty)) == 0
    with pytest.raises(IndexError):
        tv[np.zeros((0, 0), dtype=bool)]
    with pytest.raises(ValueError, match="filter mask has 0 entries for 5 rows"):
        tv.filter(empty)  # an argument, not an index: one entry per row


def test_index_mask_selects_numpys_rows(tv):
    mask = np.array([True, False, True, True, False])
    assert np.array_equal(tv[mask]["a"], np.arange(5)[mask])
    assert tv[mask]["a"].dtype == np.int64
    assert np.array_equal(tv.new_view(mask)[:]["b"], np.arange(5.0)[mask])
    assert len(tv[np.zeros(5, dtype=bool)]["a"]) == 0


@pytest.mark.parametrize("n", [0, 4, 6])
def test_filter_mask_of_wrong_length_is_valueerror(tv, n):
    with pytest.raises(ValueError, match=f"filter mask has {n} entries for 5 rows"):
        tv.filter(np.ones(n, dtype=bool))
    with pytest.raises(ValueError, match="1-dimensional"):
        tv.filter(np.ones((5, 1), dtype=bool))


def test_index_out_of_range_message_is_the_cores(tv):
    with pytest.raises(IndexError, match="index 7 is out of range for 5 rows"):
        tv[np.array([0, 7])]
    with pytest.raises(IndexError, match="index -6 is out of range for 5 rows"):
        tv.new_view([-6])


def test_unknown_column_is_the_cores_keyerror(tv):
    want = r"no column named 'zz'; the columns are 'a', 'b'"
    for call in (lambda: tv.sort("zz"), lambda: tv.sort(["a", "zz"]), lambda: tv.drop_columns(["zz"]),
                 lambda: tv.select_columns(["zz"]), lambda: tv.filter(lambda b: b["a"] > 0, columns=["zz"]),
                 lambda: tv.train_test_split(2, stratify_by="zz"), lambda: tv.map(lambda b: b, columns="zz")):
        with pytest.raises(KeyError, match=want):
            call()
    with pytest.raises(ValueError, match="NUL"):
        tv.sort("a\0b")
    # known names still work, in any order and repeated where the operation allows it
    assert tv.drop_columns(["a", "a"]).column_names == ["b"]
    assert tv.drop_columns([]).column_names == ["a", "b"]
    assert np.array_equal(tv.sort("b", descending=True)[:]["a"], np.arange(5)[::-1])


def test_from_parts_errors_name_the_column_and_chunk():
    offs = np.array([0, 3, 2], dtype=np.int64)  # not ascending
    with pytest.raises(ValueError, match=r"^column 's': chunk 0: string offset 2 \(entry 2\) out of order"):
        _core._from_parts([("s", "S", "S", (), [(offs, b"abc")])], 2)

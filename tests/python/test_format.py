"""docs/format.md checked against the files the library writes, and the loader's messages.

A reader written here from docs/format.md alone parses every manifest and store image of a
saved table field by field (so the document and the code cannot drift apart); forged fields
then fail with a CorruptDataError that names the file, the field, the value found and the
bound it broke."""

import os
import struct

import numpy as np
import pytest

import infinidata
from infinidata import CorruptDataError, TableView
from test_persist import fix_manifest, fix_store_header


class Reader:
    def __init__(self, b, pos=0):
        self.b, self.pos = b, pos

    def u32(self):
        (v,) = struct.unpack_from("<I", self.b, self.pos)
        self.pos += 4
        return v

    def u64(self):
        (v,) = struct.unpack_from("<Q", self.b, self.pos)
        self.pos += 8
        return v

    def raw(self, n):
        v = bytes(self.b[self.pos:self.pos + n])
        assert len(v) == n
        self.pos += n
        return v

    def pad8(self):
        k = -self.pos % 8
        assert self.raw(k) == b"\0" * k


def read_desc(r):
    """A column description, with the offset of each field."""
    at = {}
    at["kind"] = r.pos
    kind = r.u32()
    at["ndim"] = r.pos
    ndim = r.u32()
    at["name length"] = r.pos
    nl = r.u32()
    at["dtype length"] = r.pos
    dl = r.u32()
    at["itemsize"] = r.pos
    itemsize = r.u64()
    at["shape"] = r.pos
    shape = tuple(r.u64() for _ in range(ndim))
    at["name"] = r.pos
    name = r.raw(nl).decode()
    dtype = r.raw(dl).decode("ascii")
    r.pad8()
    return dict(kind=kind, name=name, dtype=dtype, itemsize=itemsize, shape=shape, at=at)


def read_manifest(b):
    r = Reader(b)
    assert r.raw(8) == b"IDTVIEW\0"
    m = dict(version=r.u32(), mode=r.u32(), length=r.u64(), checksum=r.u64())
    assert m["length"] == len(b)
    m["cols_at"] = r.pos
    m["cols"], m["sel_at"], m["sel"] = read_columns(r)
    m["files_at"] = r.pos
    files = []
    for _ in range(r.u64()):
        f = dict(at=r.pos, kind=r.u32())
        pl = r.u32()
        f.update(off=r.u64(), size=r.u64(), uid=r.raw(16), path=r.raw(pl).decode())
        r.pad8()
        if f["kind"] == 1:
            f.update(n=r.u64(), hash=r.u64())
            f["slots"] = [r.u64() for _ in range(r.u64())]
        files.append(f)
    m["files"] = files
    m["segs_at"] = r.pos
    m["segs"] = read_segments(r)
    # the groups after the first of a grouped view (none for a plain one), then its column map
    m["groups_at"] = r.pos
    m["groups"] = []
    for _ in range(r.u64()):
        cols, _, sel = read_columns(r)
        m["groups"].append(dict(cols=cols, sel=sel, segs=read_segments(r)))
    if m["groups"]:
        m["column_map"] = [(r.u64(), r.u64()) for _ in range(r.u64())]
    assert r.pos == len(b), "trailing bytes"
    return m


def read_columns(r):
    """A schema and a selection: (descriptions, offset of the selection, selection)."""
    cols = [read_desc(r) for _ in range(r.u64())]
    sel_at = r.pos
    return cols, sel_at, [r.u64() for _ in range(r.u64())]


def read_segments(r):
    segs = []
    for _ in range(r.u64()):
        s = dict(at=r.pos, kind=r.u32())
        assert r.u32() == 0
        s.update(file=r.u64(), start=r.u64(), step=r.u64(), len=r.u64())
        segs.append(s)
    return segs


def read_store(b):
    r = Reader(b)
    assert r.raw(8) == b"IDTSTOR\0"
    h = dict(version=r.u32(), hdr_size=r.u32(), nrows=r.u64(), ncols=r.u64(), checksum=r.u64(),
             uid=r.raw(16), data_hash=r.u64())
    assert r.pos == 64
    cols = []
    for _ in range(h["ncols"]):
        c = read_desc(r)
        c["tail_at"] = r.pos
        c.update(buf_off=r.u64(), buf_len=r.u64(), off_off=r.u64(), off_len=r.u64(), ascii=r.u32())
        assert r.u32() == 0
        cols.append(c)
    assert r.pos == h["hdr_size"]
    h["cols"] = cols
    return h


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    tv = TableView({"a": np.arange(10, dtype=np.int32), "s": np.array([f"w{i}é" for i in range(10)]),
                    "t": rng.random((10, 2, 3)).astype(np.float32)})
    d = str(tmp_path / "d")
    tv.shuffle(seed=1).new_view(slice(2, None)).save_to_disk(d, "v")
    return d


def test_format_md_matches_the_files(saved):
    raw = open(os.path.join(saved, "v.idtview"), "rb").read()
    m = read_manifest(raw)
    assert m["version"] == infinidata.FORMAT_VERSION and m["mode"] == 0
    assert [c["name"] for c in m["cols"]] == ["a", "s", "t"]
    assert [(c["kind"], c["dtype"], c["itemsize"], c["shape"]) for c in m["cols"]] == [
        (0, np.dtype(np.int32).str, 4, ()), (1, "U", 0, ()), (0, np.dtype(np.float32).str, 4, (2, 3))]
    assert m["sel"] == [0, 1, 2]
    kinds = [f["kind"] for f in m["files"]]
    assert kinds == [0, 1]  # the store, then the ref array of the shuffle
    store, refs = m["files"]
    assert store["path"] == "s-" + store["uid"].hex() + ".idt" and store["off"] == 0
    assert refs["path"] == "r-" + refs["uid"].hex() + ".idt" and refs["slots"] == [0]
    assert refs["n"] == 10 and refs["size"] == 80
    assert [(s["kind"], s["file"], s["start"], s["step"], s["len"]) for s in m["segs"]] == [(1, 1, 2, 1, 8)]
    assert m["groups"] == [] and m["groups_at"] == len(raw) - 8

    sb = open(os.path.join(saved, store["path"]), "rb").read()
    h = read_store(sb)
    assert h["version"] == infinidata.FORMAT_VERSION and h["nrows"] == 10 and h["uid"] == store["uid"]
    assert len(sb) == store["size"]
    a, s, t = h["cols"]
    assert np.array_equal(np.frombuffer(sb, np.int32, 10, a["buf_off"]), np.arange(10))
    offs = np.frombuffer(sb, np.uint64, 11, s["off_off"])
    assert offs[0] == 0 and offs[-1] == s["buf_len"] and s["off_len"] == 88 and s["ascii"] == 0
    assert sb[s["buf_off"] + int(offs[3]):s["buf_off"] + int(offs[4])].decode() == "w3é"
    assert t["buf_len"] == 10 * 24 and t["buf_off"] % 64 == 0
    # the checksums: idt_hash64 with the field read as zeros (as the test helpers forge them)
    assert fix_manifest(raw) == raw and fix_store_header(sb) == sb
    rb = np.fromfile(os.path.join(saved, refs["path"]), np.uint64)
    assert sorted((rb & ((1 << 40) - 1)).tolist()) == list(range(10)) and not (rb >> 40).any()


def forge(path, at, fmt, value, fix):
    b = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, b, at, value)
    open(path, "wb").write(fix(bytes(b)))


def expect(saved, needle):
    with pytest.raises(CorruptDataError) as ei:
        TableView.load_from_disk(saved, "v")
    assert needle in str(ei.value), str(ei.value)
    return str(ei.value)


def test_manifest_messages_name_value_and_bound(saved):
    mp = os.path.join(saved, "v.idtview")
    good = open(mp, "rb").read()
    m = read_manifest(good)
    ncol = len(m["cols"])

    def case(at, fmt, value, needle):
        open(mp, "wb").write(good)
        forge(mp, at, fmt, value, fix_manifest)
        msg = expect(saved, needle)
        assert msg.startswith(mp + ": "), msg

    case(m["cols_at"], "<Q", 0, "column count is 0, outside [1, ")
    c1 = m["cols"][1]["at"]
    case(c1["kind"], "<I", 9, "column 1 kind is 9, outside [0, ")
    case(c1["ndim"], "<I", 64, "column 1 ndim is 64, outside [0, 63]")
    case(c1["dtype length"], "<I", 32, "column 1 dtype length is 32, outside [0, 31]")
    case(m["cols"][0]["at"]["itemsize"], "<Q", 1 << 41, "column 0 itemsize is 2199023255552, outside [0, 1099511627776]")
    case(m["sel_at"], "<Q", 4, f"selected column count is 4, outside [1, {ncol}]")
    case(m["sel_at"] + 16, "<Q", 7, f"selected column 1 is 7, outside [0, {ncol - 1}]")
    case(m["sel_at"] + 16, "<Q", 0, "column 'a' selected twice")
    f1 = m["files"][1]["at"]
    case(f1, "<I", 5, "file kind is 5, outside [0, ")
    case(f1 + 4, "<I", 5000, "path length is 5000, outside [1, 4096]")
    slots_at = f1 + 40 + 40 + 16  # entry, path (38 + pad), ref count and checksum
    case(slots_at, "<Q", 3, "store slot count is 3, outside [0, 2]")
    case(slots_at + 8, "<Q", 1, "slot 0 of file 1 names file 1, not an earlier store file")
    s0 = m["segs"][0]["at"]
    case(s0, "<I", 2, "segment kind is 2, outside [0, 1]")
    case(s0 + 8, "<Q", 2, "segment file is 2, outside [0, 1]")
    case(s0, "<I", 0, "bad segment 0: a run segment names file 1, a ref array file")
    case(s0 + 32, "<Q", 9, "segment 0 is out of bounds: start 2, step 1, length 9 over 10 rows")
    open(mp, "wb").write(fix_manifest(good + b"\0" * 8))
    expect(saved, "8 trailing bytes after the segments")
    case(m["groups_at"], "<Q", 1 << 40, "extra group count is 1099511627776, outside [0, 0]")
    # checksum and length: the stored and computed values
    b = bytearray(good)
    b[m["sel_at"] + 8] ^= 1
    open(mp, "wb").write(bytes(b))
    expect(saved, "checksum mismatch (damaged file): stored ")
    open(mp, "wb").write(good[:-8])
    expect(saved, f"length field says {len(good)} bytes, the file holds {len(good) - 8} (truncated?)")


def test_store_messages_name_value_and_bound(saved):
    m = read_manifest(open(os.path.join(saved, "v.idtview"), "rb").read())
    sp = os.path.join(saved, m["files"][0]["path"])
    good = open(sp, "rb").read()
    h = read_store(good)
    a, s, t = h["cols"]

    def case(at, fmt, value, needle):
        open(sp, "wb").write(good)
        forge(sp, at, fmt, value, fix_store_header)
        msg = expect(saved, needle)
        assert msg.startswith(sp + ": "), msg

    case(16, "<Q", 11, "buffers of column 'a' are out of bounds: data length 40, expected 44 (11 rows of 4 bytes)")
    case(24, "<Q", 99, "column count is 99, outside [1, ")
    case(12, "<I", len(good) + 8, f"header size is {len(good) + 8}, outside [64, {len(good)}]")
    case(s["at"]["ndim"], "<I", 70, "column 1 ndim is 70, outside [0, 63]")
    case(t["at"]["shape"] + 8, "<Q", 1 << 45, "column 2 dimension 1 is 35184372088832, outside [0, 1099511627776]")
    case(a["tail_at"], "<Q", a["buf_off"] + 4, f"data at {a['buf_off'] + 4} (40 bytes) outside [{h['hdr_size']}, {len(good)}] or not 8-aligned")
    case(s["tail_at"] + 24, "<Q", 80, "offsets length 80, expected 88 (10 strings + 1, 8 bytes each)")
    case(s["tail_at"] + 8, "<Q", s["buf_len"] + 1, f"offsets run from 0 to {s['buf_len']}, expected 0 to the data length {s['buf_len'] + 1}")
    # a string offset out of order (row data: no header checksum to fix)
    b = bytearray(good)
    struct.pack_into("<Q", b, s["off_off"] + 16, 1000)
    open(sp, "wb").write(bytes(b))
    expect(saved, "offset 2 is 1000, above offset 3 (")
    # another version: the policy's message
    for v, why in ((infinidata.FORMAT_VERSION + 1, "a newer infinidata wrote it"),
                   (0, "an older infinidata wrote it")):
        open(sp, "wb").write(good)
        forge(sp, 8, "<I", v, fix_store_header)
        expect(saved, f"written by store format version {v}; this build of infinidata reads version "
                      f"{infinidata.FORMAT_VERSION} only ({why}")

"""Write the hand-made regression inputs of fuzz_load.c into tests/fuzz/regressions/load.

    .venv/bin/python tests/fuzz/make_regressions.py

Each is a real saved table with a few manifest or store header fields edited (the harness
fixes the checksums: flags 1 and 2), reproducing a bug found while fuzzing the loader (see
tests/fuzz/README.md). Inputs that a fuzzer found are kept as they are; these are rebuilt
here so that they follow the on-disk format when it changes (it carries a version and is not
promised stable). Run after `make build`.
"""

import os
import struct
import sys
import tempfile

import numpy as np

os.environ.setdefault("INFINIDATA_TMPDIR", tempfile.mkdtemp(prefix="idt-regr-tmp-"))
import infinidata  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_seeds import DERIVE, FIX_MANIFEST, FIX_STORES, pack_load  # noqa: E402

TV = infinidata.TableView
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions", "load")


def segment_offsets(m):
    """Byte offsets of the segment records of a manifest (v1 layout, persist.c)."""
    off = 32

    def u32():
        nonlocal off
        off += 4
        return struct.unpack_from("<I", m, off - 4)[0]

    def u64():
        nonlocal off
        off += 8
        return struct.unpack_from("<Q", m, off - 8)[0]

    def pad():
        nonlocal off
        off = (off + 7) & ~7

    for _ in range(u64()):  # columns
        _kind, ndim, nl, dl = u32(), u32(), u32(), u32()
        off += 8 + 8 * ndim + nl + dl
        pad()
    nsel = u64()  # selected columns
    off += 8 * nsel
    for _ in range(u64()):  # files
        kind, pl = u32(), u32()
        off += 8 + 8 + 16 + pl
        pad()
        if kind == 1:  # ref array: n, hash, slot count, slots
            off += 16
            nslots = u64()
            off += 8 * nslots
    nseg = u64()
    return [off + 40 * k for k in range(nseg)]


def saved(tv):
    d = tempfile.mkdtemp(prefix="idt-regr-")
    tv.save_to_disk(d, "v")
    return d


def edit_segment(d, k, start=None, step=None, length=None):
    path = os.path.join(d, "v.idtview")
    m = bytearray(open(path, "rb").read())
    at = segment_offsets(m)[k]
    for field, value in ((16, start), (24, step), (32, length)):
        if value is not None:
            struct.pack_into("<q", m, at + field, value)
    open(path, "wb").write(m)  # length and checksum: fixed by the harness (flag 1)


def write(name, d, flags):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(pack_load(d, "v", flags))


def main():
    os.makedirs(OUT, exist_ok=True)
    t = TV({"x": np.arange(12, dtype=np.int64), "s": np.array([str(i) for i in range(12)])})
    # a one-row segment's step is never used to find its row, but reading backwards multiplied
    # it by -1 (INT64_MIN: signed overflow), reading with step 3 by 3
    d = saved(t)
    edit_segment(d, 0, start=3, step=-2**63, length=1)
    write("one_row_segment_step_int64_min", d, FIX_MANIFEST | FIX_STORES)
    d = saved(t)
    edit_segment(d, 0, start=3, step=2**62, length=1)
    write("one_row_segment_step_2_62", d, FIX_MANIFEST | FIX_STORES)
    # a store of 2^41 zero-width rows and a segment past row 2^40: composing an index
    # (take, shuffle, filter) packed the row into a ref's 40-bit row field, spilling into the
    # slot: the gather then read a store pointer out of bounds
    d = saved(TV({"e": np.zeros((3, 0), np.float32)}))
    store = [f for f in os.listdir(d) if f.startswith("s-")][0]
    img = bytearray(open(os.path.join(d, store), "rb").read())
    struct.pack_into("<Q", img, 16, 2**41)  # row count; header checksum fixed by the harness
    open(os.path.join(d, store), "wb").write(img)
    edit_segment(d, 0, start=2**40 + 3, step=1, length=5)
    write("store_rows_past_2_40", d, FIX_MANIFEST | FIX_STORES | DERIVE)
    print(f"wrote 3 inputs to {OUT}")


if __name__ == "__main__":
    main()

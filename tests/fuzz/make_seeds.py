"""Write the fuzz harnesses' seed corpora from real saved tables.

    .venv/bin/python tests/fuzz/make_seeds.py [--out tests/fuzz/corpus]

Saves a few small tables and views of them (several dtypes, row shapes, str and bytes
columns, non-ASCII text, zero rows; slices, shuffles, takes, filters, concatenations, column
selections) with the installed infinidata, each into its own directory, and packs them:

- corpus/load/<name>: the directory in fuzz_load.c's format (flags, the manifest, then each
  data file as a named record);
- corpus/store/<name>: each distinct store file in fuzz_store.c's format (flags, the image).

The flags ask the harness to fix checksums (so mutations get past them) and vary the batch
size, threads, derived views and content checks (see fuzz_common.h). Old seeds are removed first; files are named by content
hash (stores carry random identities, so every run writes new names). The corpus is kept
small (well under 1 MB): these seeds are committed.
"""

import argparse
import hashlib
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

os.environ.setdefault("INFINIDATA_TMPDIR", tempfile.mkdtemp(prefix="idt-seeds-tmp-"))
import infinidata  # noqa: E402

TV = infinidata.TableView

FIX_MANIFEST, FIX_STORES, THREADS, DERIVE, VERIFY = 1, 2, 4, 8, 128


def base_table(n, seed):
    rng = np.random.default_rng(seed)
    words = ["", "a", "bc", "déjà", "日本語", "x" * 12, "emoji 🙂", "tab\tnl\n"]
    return {
        "b": rng.integers(0, 2, n).astype(bool),
        "i8": rng.integers(-128, 128, n).astype(np.int8),
        "u64": rng.integers(0, 2**63, n, dtype=np.uint64),
        "f4": rng.standard_normal((n, 3, 2)).astype(np.float32),
        "f2": rng.standard_normal(n).astype(np.float16),
        "c16": (rng.standard_normal(n) + 1j).astype(np.complex128),
        "t": rng.integers(0, 10**6, n).astype("M8[s]"),
        "s": np.array([words[i % len(words)] + str(i) for i in range(n)]),
        "by": np.array([bytes([65 + i % 26]) * (i % 5) for i in range(n)], dtype="S"),
        "pair": np.array([[words[(i + k) % len(words)] for k in range(2)] for i in range(n)]),
        "tok": infinidata.Ragged(rng.integers(0, 50000, 3 * n).astype(np.int32),
                                 np.sort(np.r_[0, rng.integers(0, 3 * n, max(n - 1, 0)), 3 * n])),
    }


def list_table(n):
    """List columns of every value dtype a list column holds, empty rows among them."""
    names = ["?", "i1", "u2", "i4", "u8", "e", "f", "d", "F", "D"]
    offs = np.r_[0, np.cumsum(np.arange(n) % 4)].astype(np.int64)
    return {f"l{i}": infinidata.Ragged(np.arange(offs[-1]).astype(np.dtype(t)), offs) for i, t in enumerate(names)}


def all_dtypes(n):
    """One column of every fixed dtype a table can hold (the core's allow-list,
    idt_dtype_allowed), so the dtype field of each kind is in the corpus."""
    names = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "e", "f", "d", "g", "F", "D", "G",
             "M8", "m8", "M8[Y]", "M8[W]", "m8[h]", "M8[ms]", "m8[us]", "M8[ns]", "m8[ps]", "M8[as]",
             "M8[25s]", "m8[3us]"]
    return {f"d{i:02d}": np.arange(n).astype(np.dtype(t)) for i, t in enumerate(names)}


def views():
    t = TV(base_table(12, 0))
    u = TV(base_table(7, 1))
    small = TV({"x": np.arange(5, dtype=np.int64), "name": np.array(["a", "b", "", "dd", "e"])})
    ascii_only = TV({"k": np.array(["ab", "c", "def"]), "v": np.arange(3, dtype=np.int32)})
    wide = TV({"x": np.arange(4, dtype=np.int64), "name": np.array(["p", "q", "r", "s"]),
               "extra": np.arange(4.0)})
    out = {
        "table": t,
        "zero_rows": TV({"x": np.zeros(0, np.int64), "s": np.array([], dtype="U1")}),
        "zero_width": TV({"e": np.zeros((6, 0), np.float32), "x": np.arange(6, dtype=np.int16)}),
        "small": small,
        "ascii": ascii_only,
        "slice_step": t.new_view(slice(1, 11, 3)),
        "reversed": t.new_view(slice(None, None, -1)),
        "single_row": t.new_view(slice(4, 5)),
        "shuffled": t.shuffle(seed=3),
        "take_repeats": t.new_view(np.array([0, 5, 5, -1, 2])),
        "filtered": t.filter(np.arange(12) % 3 != 1),
        "concat": TV.concat([t, u.shuffle(seed=1), t.new_view(slice(0, 3))]),
        "concat_refs": TV.concat([t.shuffle(seed=4), u.new_view([6, 0, 3])]),
        "select": t.select_columns(["s", "i8"]),
        "removed": t.remove_matching_strings("s", ["a1", "bc2"]),
        "mixed_schemas": TV.concat([small, wide.select_columns(["x", "name"])]).shuffle(seed=2),
        "shuffle_of_concat": TV.concat([small, small.new_view([4, 4])]).shuffle(seed=9),
        "empty_view": t.new_view(slice(3, 3)),
        "empty_take": t.new_view(np.array([], dtype=np.int64)),
        "all_dtypes": TV(all_dtypes(5)),
        "lists": TV(list_table(6)),
        "lists_shuffled": TV.concat([TV(list_table(6)), TV(list_table(3))]).shuffle(seed=5),
        "lists_zero_rows": TV(list_table(0)),
        "renamed_concat": TV.concat([small.rename_columns({"name": "n"}).shuffle(seed=5),
                                     wide.select_columns(["x", "name"]).rename_columns({"name": "n"})]),
        "zipped": TV.zip([t.select_columns(["s", "i8"]),
                          t.shuffle(seed=6).rename_columns({"s": "s2", "i8": "k"}).select_columns(["s2", "k"])]),
    }
    return out


def pack_load(d, name, flags):
    with open(os.path.join(d, name + ".idtview"), "rb") as f:
        manifest = f.read()
    parts = [bytes([flags]), struct.pack("<I", len(manifest)), manifest]
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".idt"):
            with open(os.path.join(d, fn), "rb") as f:
                data = f.read()
            nb = fn.encode()
            parts += [bytes([len(nb)]), nb, struct.pack("<I", len(data)), data]
    return b"".join(parts)


def write_seed(folder, data):
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    return len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    args = ap.parse_args()
    load_dir, store_dir = os.path.join(args.out, "load"), os.path.join(args.out, "store")
    for d in (load_dir, store_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    work = tempfile.mkdtemp(prefix="idt-seeds-")
    total = n_load = n_store = 0
    stores = {}
    try:
        for i, (name, v) in enumerate(views().items()):
            d = os.path.join(work, name)
            v.save_to_disk(d, "v")
            # vary batch size (bits 4-6), threads, derived views and content checks across seeds
            flags = FIX_MANIFEST | FIX_STORES | ((i % 8) << 4) | (THREADS if i % 3 == 0 else 0) \
                | (DERIVE if i % 2 == 0 else 0) | (VERIFY if i % 4 == 1 else 0)
            total += write_seed(load_dir, pack_load(d, "v", flags))
            n_load += 1
            for fn in os.listdir(d):
                if fn.startswith("s-"):
                    with open(os.path.join(d, fn), "rb") as f:
                        stores[fn] = f.read()
        for i, (fn, data) in enumerate(sorted(stores.items())):
            flags = FIX_STORES | (DERIVE if i % 2 else 0) | (THREADS if i % 3 == 0 else 0) | ((i % 8) << 4) \
                | (VERIFY if i % 4 == 1 else 0)
            total += write_seed(store_dir, bytes([flags]) + data)
            n_store += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{n_load} load seeds, {n_store} store seeds, {total} bytes in {args.out}")
    if total > 1 << 20:
        sys.exit("seed corpus over 1 MB: make the tables smaller")


if __name__ == "__main__":
    main()

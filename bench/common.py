"""bench/common.py: what every benchmark process shares: the data set, timers, memory and disk probes.

This module runs under several interpreters (the project's .venv and the peers' venvs in
bench/.venvs/), so it needs only the standard library and NumPy (1.x or 2.x).
"""

import json
import os
import time

import numpy as np

EMB_DIM = 512  # the main table: embedding float32 (512,), label int64, text str
G_DIM = 128  # the goal table of issue 5: 2M rows x 128 float32 = 1 GiB
TEXT_WIDTH = 96  # widest text in the generated data (the .npy holds it as U96)

# A small vocabulary: texts are 1 to 16 of these words, so lengths vary from 3 to ~96 chars
# and some texts repeat (remove_matching_strings has something to match).
WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega red green blue cyan magenta yellow black white cat dog "
    "fox owl bee ant elk yak"
).split()
N_PHRASES = 20_000


def phrases(seed=0):
    """The distinct texts of the data set: N_PHRASES phrases of 1-16 words, at most TEXT_WIDTH chars."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_PHRASES):
        k = int(rng.integers(1, 17))
        s = " ".join(WORDS[j] for j in rng.integers(0, len(WORDS), k))
        out.append(s[:TEXT_WIDTH])
    return np.array(out, dtype=f"<U{TEXT_WIDTH}")


def generate(data_dir, rows, g_rows, seed=0, chunk=65536, progress=None):
    """Write the bench data to data_dir as .npy files that every process opens with np.load(mmap_mode='r'):
    embedding.npy (rows, 512) float32, label.npy (rows,) int64, text.npy (rows,) U96, and
    g.npy (g_rows, 128) float32. Bounded memory: written in chunks of rows. Deterministic for a seed."""
    os.makedirs(data_dir, exist_ok=True)
    fmt = np.lib.format
    emb = fmt.open_memmap(os.path.join(data_dir, "embedding.npy"), "w+", np.float32, (rows, EMB_DIM))
    lab = fmt.open_memmap(os.path.join(data_dir, "label.npy"), "w+", np.int64, (rows,))
    txt = fmt.open_memmap(os.path.join(data_dir, "text.npy"), "w+", f"<U{TEXT_WIDTH}", (rows,))
    g = fmt.open_memmap(os.path.join(data_dir, "g.npy"), "w+", np.float32, (g_rows, G_DIM))
    ph = phrases(seed)
    ph_len = np.char.str_len(ph)
    rng = np.random.default_rng(seed + 1)
    total, chars = rows + g_rows, 0
    for i in range(0, rows, chunk):
        n = min(chunk, rows - i)
        emb[i : i + n] = rng.random((n, EMB_DIM), dtype=np.float32)
        lab[i : i + n] = rng.integers(0, 1000, n)
        pick = rng.integers(0, len(ph), n)
        txt[i : i + n] = ph[pick]
        chars += int(ph_len[pick].sum())
        if progress:
            progress(i + n, total)
    for i in range(0, g_rows, 4 * chunk):
        n = min(4 * chunk, g_rows - i)
        g[i : i + n] = rng.random((n, G_DIM), dtype=np.float32)
        if progress:
            progress(rows + i + n, total)
    del emb, lab, txt, g  # no msync: the pages stay in the page cache for every library to read
    with open(os.path.join(data_dir, "meta.json"), "w") as f:
        json.dump({"rows": rows, "g_rows": g_rows, "seed": seed,
                   "text_mean_chars": chars / max(rows, 1)}, f)


def open_data(data_dir):
    """(main columns, goal array, meta): the arrays as read-only np.memmap."""
    cols = {c: np.load(os.path.join(data_dir, c + ".npy"), mmap_mode="r") for c in ("embedding", "label", "text")}
    g = np.load(os.path.join(data_dir, "g.npy"), mmap_mode="r")
    with open(os.path.join(data_dir, "meta.json")) as f:
        meta = json.load(f)
    return cols, g, meta


def main_row_bytes(meta):
    """Bytes of one row of the main table as the data set holds it: 2048 (embedding) + 8 (label)
    + the mean text length in UTF-8 (ASCII here). Throughputs of every library use this figure."""
    return EMB_DIM * 4 + 8 + meta["text_mean_chars"]


# ---- memory and disk probes ----


def rss_anon(pid="self"):
    """Anonymous resident bytes (RssAnon in /proc/PID/status) of a process, or None where unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def disk_used(path):
    """Bytes allocated on disk under path (st_blocks, so sparse files and hard links count once)."""
    seen, total = set(), 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


LAST_CPU = [None]  # CPU seconds (this process, all threads) of the fastest run of the last timed()


def timed(fn, repeat=1, budget=10.0):
    """Run fn up to `repeat` times, stopping early once `budget` seconds were spent; returns
    (best seconds, runs, last result). The same rule for every library. The CPU time of the
    fastest run is left in LAST_CPU[0]: on a shared machine, a single-threaded workload's CPU
    time shows what it costs without the waits that other processes cause."""
    best, spent, runs, out = float("inf"), 0.0, 0, None
    while runs < repeat and (runs == 0 or spent + best <= budget):
        out = None
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        if dt < best:
            LAST_CPU[0] = cpu
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, runs, out

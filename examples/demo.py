#!/usr/bin/env python3
"""infinidata demo: the main job, end to end, on a generated table of about 2 GB.

    make demo                      # 1,000,000 rows: embedding float32 (512,), label int64, text str
    make demo ROWS=200000          # any size; or: python examples/demo.py --rows 200000

Steps: construct (in chunks of rows, then TableView.concat, so RAM stays bounded), shuffle,
slice, concat, filter, remove_matching_strings, iterate the shuffled view with threads=2 and
readahead=4, random index reads, save and load. Each step prints its time and throughput. All
files go to one temp directory, removed at the end (the library's own temp files included,
unless INFINIDATA_TMPDIR is set, in which case the library cleans its files there itself).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

EMB = 512
WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
    "tau upsilon phi chi psi omega red green blue cyan magenta yellow black white cat dog fox owl"
).split()


class Progress:
    """A progress bar: tqdm when importable, else a plain one on stderr (a line per 10% when
    stderr is not a terminal)."""

    def __init__(self, total, desc, unit="rows"):
        self.total, self.desc, self.n, self.t0 = total, desc, 0, time.perf_counter()
        self.bar, self.tty, self.shown = None, sys.stderr.isatty(), 0
        try:
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="  " + desc, unit=unit, unit_scale=True, leave=False,
                                file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            pass
        if self.bar is None and not self.tty:
            sys.stderr.write(f"  {desc}: ")

    def update(self, k):
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
            return
        frac = self.n / self.total if self.total else 1.0
        if self.tty:
            w = 30
            rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
            sys.stderr.write(f"\r  {self.desc} [{'#' * int(w * frac):<{w}}] {frac:4.0%} {rate:,.0f} rows/s")
            sys.stderr.flush()
        else:  # not a terminal: one line, "25% 50% 75% 100%"
            while self.shown < 4 and frac >= (self.shown + 1) / 4:
                self.shown += 1
                sys.stderr.write(f"{self.shown * 25}% ")
                sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.tty:
            sys.stderr.write("\r" + " " * 78 + "\r")
        else:
            sys.stderr.write("\n")
        sys.stderr.flush()


def phrases(rng, count=5000):
    """Distinct texts of 1 to 16 words (3 to ~100 chars)."""
    return np.array([" ".join(rng.choice(WORDS, int(rng.integers(1, 17)))) for _ in range(count)])


class Report:
    def __init__(self, row_bytes):
        self.row_bytes = row_bytes
        print(f"{'step':<46}{'time':>9}{'rows/s':>14}{'GB/s':>9}")

    def step(self, name, seconds, rows=None, moved_rows=None, note=""):
        """rows: rows the step handled (rows/s); moved_rows: rows whose data it copied (GB/s)."""
        rps = f"{rows / seconds:>14,.0f}" if rows and seconds > 0 else f"{'':>14}"
        gbs = (f"{moved_rows * self.row_bytes / seconds / 1e9:>9.2f}" if moved_rows and seconds > 0
               else f"{'-':>9}")
        print(f"{name:<46}{seconds:>8.3f}s{rps}{gbs}" + (f"   {note}" if note else ""), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the table (default 1,000,000: ~2 GB)")
    ap.add_argument("--chunk", type=int, default=65_536, help="rows built per TableView before the concat")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    n = a.rows
    if n < 10:
        ap.error("--rows must be at least 10")

    tmp = tempfile.mkdtemp(prefix="infinidata-demo-")
    if "INFINIDATA_TMPDIR" not in os.environ:
        os.environ["INFINIDATA_TMPDIR"] = os.path.join(tmp, "tmp")
    import infinidata
    from infinidata import TableView

    t_all = time.perf_counter()
    try:
        rng = np.random.default_rng(a.seed)
        texts = phrases(rng)
        text_bytes = np.char.str_len(texts).astype(np.int64)
        row_bytes = EMB * 4 + 8 + float(text_bytes.mean())
        print(f"infinidata {infinidata.__version__} demo: {n:,} rows (embedding float32 (512,), label int64, "
              f"text str) = {n * row_bytes / 1e9:.2f} GB; temp files in {tmp}")
        print()
        R = Report(row_bytes)

        # 1. construct: a chunk of rows at a time (bounded RAM), then one concat of the chunks
        chunks, t_gen, t_make, bar = [], 0.0, 0.0, Progress(n, "construct")
        for i in range(0, n, a.chunk):
            k = min(a.chunk, n - i)
            t0 = time.perf_counter()
            cols = {"embedding": rng.random((k, EMB), dtype=np.float32),
                    "label": rng.integers(0, 1000, k),
                    "text": texts[rng.integers(0, len(texts), k)]}
            t1 = time.perf_counter()
            chunks.append(TableView(cols))
            t_make += time.perf_counter() - t1
            t_gen += t1 - t0
            del cols
            bar.update(k)
        t0 = time.perf_counter()
        tv = TableView.concat(chunks)
        t_concat = time.perf_counter() - t0
        bar.close()
        del chunks
        assert len(tv) == n
        R.step(f"construct: {-(-n // a.chunk)} TableViews of <= {a.chunk:,} rows", t_make, n, n,
               f"(generating the random data took {t_gen:.1f} s more)")
        R.step("  TableView.concat of the chunks", t_concat, note="no row data copied")

        # 2. shuffle
        t0 = time.perf_counter()
        sh = tv.shuffle(seed=a.seed)
        R.step("shuffle(seed)", time.perf_counter() - t0, n, note="a view: no row data copied")

        # 3. slice: a view, then a read of a contiguous run of rows
        t0 = time.perf_counter()
        mid = tv.new_view(slice(n // 4, 3 * n // 4))
        rev = sh.new_view(slice(None, None, -1))
        R.step("new_view(slice) x2 (a range, a reverse)", time.perf_counter() - t0, None, note=f"{len(mid):,} and {len(rev):,} rows")
        k = min(100_000, len(mid))
        t0 = time.perf_counter()
        block = mid[0:k]
        R.step(f"read tv[a:a+{k:,}] (contiguous)", time.perf_counter() - t0, k, k)
        assert block["embedding"].shape == (k, EMB)
        del block

        # 4. concat of views
        t0 = time.perf_counter()
        both = TableView.concat([mid, rev.new_view(slice(0, n // 4))])
        R.step("TableView.concat of two views", time.perf_counter() - t0, note=f"{len(both):,} rows")

        # 5. filter on a column's values
        t0 = time.perf_counter()
        labels = tv.select_columns(["label"])[:]["label"]
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        kept = tv.filter(labels % 10 != 0)
        t_filter = time.perf_counter() - t0
        R.step("read the label column (select_columns)", t_read, n, note=f"{labels.nbytes / t_read / 1e9:.2f} GB/s of labels")
        R.step("filter(label % 10 != 0)", t_filter, n, note=f"{len(kept):,} rows kept")
        assert len(kept) == int(np.count_nonzero(labels % 10))

        # 6. remove_matching_strings
        drop = list(texts[:50])
        t0 = time.perf_counter()
        clean = kept.remove_matching_strings("text", drop)
        R.step(f"remove_matching_strings(text, {len(drop)} strings)", time.perf_counter() - t0, len(kept),
               note=f"{len(kept) - len(clean):,} rows removed, {len(clean):,} left")
        sample = clean[np.random.default_rng(1).integers(0, len(clean), min(10_000, len(clean)))]["text"]
        assert not np.isin(sample, np.array(drop)).any()

        # 7. iterate the shuffled view on two threads, four batches ahead
        bs, rows, total = 4096, 0, 0
        bar = Progress(n, "iterate")
        t0 = time.perf_counter()
        for b in sh.batch_iter(bs, threads=2, readahead=4):
            m = len(b["label"])
            rows += m
            total += int(b["label"].sum())
            bar.update(m)
        dt = time.perf_counter() - t0
        bar.close()
        assert rows == n and total == int(labels.sum()), "iteration lost or changed rows"
        R.step(f"batch_iter({bs}, threads=2, readahead=4), shuffled", dt, n, n)

        # 8. random index reads
        idx = np.random.default_rng(2).integers(0, n, min(100_000, n))
        t0 = time.perf_counter()
        got = sh[idx]
        R.step(f"read {len(idx):,} random rows: sh[int array]", time.perf_counter() - t0, len(idx), len(idx))
        del got
        pts = [int(i) for i in idx[:10_000]]
        t0 = time.perf_counter()
        for i in pts:
            sh[i]
        dt = time.perf_counter() - t0
        R.step(f"{len(pts):,} single-row reads sh[i]", dt, len(pts), len(pts),
               f"{dt / len(pts) * 1e6:.1f} us a read")

        # 9. save and load
        saved = os.path.join(tmp, "saved")
        try:
            t0 = time.perf_counter()
            clean.save_to_disk(saved, "demo")
            t_save = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = TableView.load_from_disk(saved, "demo")
            t_load = time.perf_counter() - t0
        except NotImplementedError:
            print("save/load: not available yet")
        else:
            R.step("save_to_disk (the filtered view)", t_save, note=_du(saved))
            R.step("load_from_disk", t_load, note=f"{len(back):,} rows")
            q = np.random.default_rng(3).integers(0, len(clean), min(1000, len(clean)))
            t0 = time.perf_counter()
            x, y = clean[q], back[q]
            for c in x:
                np.testing.assert_array_equal(x[c], y[c])
            R.step("  check: the same rows before and after", time.perf_counter() - t0, note=f"{len(q)} random rows")
            del back
        del tv, sh, mid, rev, both, kept, clean
        print()
        print(f"done in {time.perf_counter() - t_all:.1f} s")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _du(path):
    b = 0
    for root, _d, files in os.walk(path):
        for f in files:
            b += os.lstat(os.path.join(root, f)).st_blocks * 512
    return f"{b / 1e9:.2f} GB in {path} (hard links to temp files count here)"


if __name__ == "__main__":
    sys.exit(main())

/* sort.h: stable sorting of a view's rows by key columns.
 *
 * Keys are turned into order-preserving 64-bit codes (integers: sign bit flipped; floats: the
 * IEEE trick, -0.0 equal to 0.0; datetimes and timedeltas; bools; strings: their first 7
 * bytes and a "longer than 7 bytes" flag, ties among long strings broken by comparing the
 * rest, UTF-8 byte order being code point order). NaN and NaT sort last whether ascending
 * or descending. Rows are sorted by an LSD radix sort of (code, row) pairs, one key at a
 * time from the last to the first, each pass stable, so ties keep the view's order.
 *
 * Memory: a chunk of rows whose keys fit the memory budget is sorted in RAM (32 bytes per
 * row, plus 8 per key with several keys). When the whole view does not fit, each chunk is
 * sorted and written as a run of (codes..., row) records to a file-backed blob of the temp
 * area, and the runs are merged with a heap (memory: one cursor per run).
 *
 * Long work may be cancelled between passes through the progress callback; worker threads
 * never call it. */
#ifndef IDT_SORT_H
#define IDT_SORT_H

#include <stdint.h>

#include "error.h"
#include "progress.h"
#include "view.h"

/* Default memory for keys: 1 GiB. */
#define IDT_SORT_DEFAULT_BUDGET ((int64_t)1 << 30)

typedef struct idt_sort_key {
    int64_t col;       /* a shown column of the view (0 .. ncols) */
    int descending;
} idt_sort_key;

typedef struct idt_sort_opts {
    int64_t threads;        /* worker threads (1 = the caller only); < 1 is taken as 1 */
    int64_t memory_budget;  /* bytes for keys; <= 0: IDT_SORT_DEFAULT_BUDGET */
    /* Reported to by the calling thread between passes (may be NULL; see progress.h): a
     * nonzero return stops the sort with IDT_ECANCELLED. Units: rows times passes. */
    const idt_progress *progress;
} idt_sort_opts;

/* Check that shown column `col` of `v` can be a sort key: a scalar (no row shape) bool,
 * integer, float16/32/64, datetime64, timedelta64, str or bytes column. Errors: IDT_EINDEX
 * (no such shown column), IDT_ETYPE naming the column and its dtype or shape. */
int idt_sort_check_key(const idt_view *v, int64_t col, idt_error *err);

/* Fill perm[0..len(v)) with the view rows in sorted order (stable). Errors: IDT_EVALUE
 * (nkeys < 1), those of idt_sort_check_key, IDT_ENOMEM, IDT_EIO (external runs),
 * IDT_ECANCELLED. perm's contents are unspecified on failure. */
int idt_view_sort_perm(idt_view *v, const idt_sort_key *keys, int64_t nkeys,
                       const idt_sort_opts *opts, int64_t *perm, idt_error *err);

/* The rows of `v` in sorted order, as a view (one composed ref array, as take makes): the
 * permutation is written straight into the index buffer of idt_view_take_fill (a
 * file-backed mapping when large). Errors: as idt_view_sort_perm. */
int idt_view_sort(idt_view *v, const idt_sort_key *keys, int64_t nkeys, const idt_sort_opts *opts,
                  idt_view **out, idt_error *err);

#endif

/* prefetch.h: asking the kernel for the pages of rows about to be read.
 *
 * Rows are read through shared file mappings. When a view's rows are not in memory (a table
 * larger than RAM, or a cold page cache), touching them costs one synchronous page fault per
 * page, one disk read in flight per reading thread, and on a fault the kernel reads around the
 * page (read_ahead_kb, often megabytes) whether the neighbours are wanted or not. Before a
 * batch is gathered, idt_view_prefetch hands the kernel the exact page ranges of its rows
 * (madvise MADV_WILLNEED, sorted by address, adjacent ranges merged): the reads are all
 * queued at once, so the disk works at a deep queue, only the pages needed are read, and the
 * gather's faults find the pages in the page cache (or wait for the read already under way).
 *
 * In memory this would be a syscall per row for nothing, so a batch is first sampled: when
 * the pages of PF_SAMPLES of its rows are all resident (mincore), nothing is advised, and the
 * next check is skipped for a growing number of batches (up to 64) while batches keep being
 * resident. Advice only: a failing madvise or mincore costs speed, never data or an error.
 * See docs/architecture.md ("Reading beyond memory") for the measurements behind this. */
#ifndef IDT_PREFETCH_H
#define IDT_PREFETCH_H

#include <stdint.h>

#include "view.h"

/* State shared by the threads prefetching for one iterator (zero-initialised is ready). */
typedef struct idt_prefetcher {
    _Atomic int64_t skip;      /* batches left before the next residency check */
    _Atomic int64_t streak;    /* consecutive checks that found the rows resident */
    _Atomic int64_t advised;   /* batches whose rows were advised */
    _Atomic int64_t resident;  /* batches found resident (or skipped as such) */
    _Atomic int64_t ranges;    /* madvise calls made */
} idt_prefetcher;

/* Prefetch modes (process-wide, for tests and benchmarks): AUTO samples residency first;
 * ALWAYS advises every batch (tests use it to run the advising path on small tables); OFF
 * advises nothing (the behaviour before prefetching, for comparisons). */
enum { IDT_PREFETCH_AUTO = 0, IDT_PREFETCH_ALWAYS = 1, IDT_PREFETCH_OFF = 2 };
/* Set the mode; returns the previous one. Values outside the enum are ignored. */
int idt_prefetch_mode(int mode);

/* While an iterator reads rows of `v` in random order (through ref arrays), the mappings of
 * the stores those rows come from (each one a file of its own, above 1 MiB) are advised
 * MADV_RANDOM: a page fault the prefetch did not prevent (a batch sampled as resident that
 * was not quite, a page evicted before its turn) then reads its page alone, not the
 * read_ahead_kb around it. Counted per mapping: the last end restores MADV_NORMAL. Call
 * end once for each begin, with the same view. Advice only; never fails. */
void idt_prefetch_random_begin(const idt_view *v);
void idt_prefetch_random_end(const idt_view *v);

/* Ask the kernel to start reading the pages of rows `sel` of `v` (fixed columns: the rows;
 * string columns: their offsets, then their bytes) unless they are found resident. Returns
 * the number of madvise calls made (0 when resident or off). Never fails; pf may be NULL. */
int64_t idt_view_prefetch(const idt_view *v, const idt_rowsel *sel, idt_prefetcher *pf);

#endif

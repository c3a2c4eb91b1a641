/* batch.h: the batch iterator: gathers consecutive batches of a view on worker threads.
 *
 * Batches are rows [k*B, (k+1)*B) of the view, in order; the last one is partial unless
 * drop_last. With threads <= 1 and readahead 0 each batch is gathered on demand in the
 * calling thread. Otherwise W worker threads gather batches ahead of the consumer, never
 * more than `window` batches produced but not yet taken, where
 *   W      = min(threads, 2 * online CPUs, 64, number of batches)
 *   window = max(W, min(readahead, IDT_BATCH_MAX_WINDOW, batches fitting in
 *                       the byte cap at fixed-width rows alone))
 * and, counting the bytes of every batch made but not yet taken (all its column buffers:
 * strings at 4 bytes per code point of the batch's longest string for UTF8), no worker starts
 * a batch while those bytes reach the byte cap (IDT_BATCH_MAX_BYTES unless set with
 * idt_batcher_set_max_bytes). So memory in flight stays below the cap plus one batch per
 * worker, whatever the arguments and string lengths; at least one batch is always allowed.
 *
 * A batch's column buffers are allocated by the iterator and handed to the caller, who owns
 * each one (give it back with idt_batch_buffer_release) once taken: the gather writes straight into the memory the
 * caller's arrays will own, with no second copy.
 *
 * The iterator holds a reference to its view. idt_batcher_free stops and joins every worker
 * before it returns, whatever state they are in. Worker threads touch nothing but the view
 * and the buffers.
 *
 * Threads: one thread at a time may call idt_batcher_next; idt_batcher_stop may be called
 * from any thread at any time, also while another thread is inside idt_batcher_next (which
 * then returns 0 promptly); idt_batcher_free must not overlap any other call on the same
 * iterator (the caller makes sure the last user has left, e.g. with an in-use count).
 *
 * Fork: a forked child never joins, signals or destroys the parent's workers or their
 * condition variables. An iterator inherited through fork keeps working in the child: it
 * yields the batches the parent's workers had finished, then gathers the rest on demand in
 * the calling thread. The parent's iterator is untouched. */
#ifndef IDT_BATCH_H
#define IDT_BATCH_H

#include <stdint.h>

#include "error.h"
#include "view.h"

#define IDT_BATCH_MAX_WINDOW 1024
#define IDT_BATCH_MAX_BYTES ((int64_t)256 << 20)
#define IDT_BATCH_MAX_WORKERS 64

typedef struct idt_batch {
    int64_t index;    /* batch number */
    int64_t nrows;
    int64_t ncols;
    void **bufs;      /* per column; set to NULL when the caller takes one. A list column:
                         its values (nrows + 1 offsets' worth), or padded rows (nrows x width) */
    void **aux;       /* per column, list columns only (else NULL): int64 offsets (nrows + 1,
                         from 0) or, padded, int64 lengths (nrows, clipped to the width) */
    int64_t *widths;  /* per column: string width (0 for fixed); list: total values, or the
                         padded length */
    int64_t bytes;    /* bytes of all its column buffers */
} idt_batch;

/* How a list column comes out of batches: length < 0 as offsets + values; else padded to
 * `length` values per row (longer rows cut) with copies of `value` (the column's itemsize
 * bytes of it, native order). */
typedef struct idt_list_pad {
    int64_t length;
    unsigned char value[16];
} idt_list_pad;

typedef struct idt_batcher idt_batcher;

/* Start iterating over `v` (a reference is taken). Errors: IDT_EVALUE (batch_size < 1,
 * threads < 1, readahead < 0), IDT_ENOMEM, IDT_EIO (threads could not start). */
int idt_batcher_new(idt_view *v, int64_t batch_size, int drop_last, int64_t threads,
                    int64_t readahead, idt_batcher **out, idt_error *err);
/* As idt_batcher_new, with pads[j] (v->ncols entries, copied; NULL: none) saying how list
 * column j comes out (ignored for other kinds). Errors: as idt_batcher_new. */
int idt_batcher_new_padded(idt_view *v, int64_t batch_size, int drop_last, int64_t threads,
                           int64_t readahead, const idt_list_pad *pads, idt_batcher **out,
                           idt_error *err);

/* What idt_batcher_next gives when it does not fail. */
typedef enum idt_next {
    IDT_NEXT_END = 0,     /* no more batches (the end, or the iterator was stopped) */
    IDT_NEXT_BATCH = 1,   /* *out holds the next batch */
    IDT_NEXT_TIMEOUT = 2, /* timeout_ms passed with no batch ready: call again */
} idt_next;

/* Next batch into *out. Returns an idt_next (IDT_NEXT_TIMEOUT only when timeout_ms >= 0;
 * -1 waits forever), or a negative IDT_E* code (the batch could not be made; the iterator
 * is finished). */
int idt_batcher_next(idt_batcher *it, idt_batch **out, int timeout_ms, idt_error *err);

/* Number of batches in total, and worker threads running (0 for an iterator inherited
 * through fork). */
int64_t idt_batcher_count(const idt_batcher *it);
int64_t idt_batcher_workers(const idt_batcher *it);
/* The view being iterated (borrowed; alive as long as the iterator). */
const idt_view *idt_batcher_view(const idt_batcher *it);

/* Stop the iterator: wake a thread waiting in idt_batcher_next (it returns 0), stop and
 * join the workers; from then on next() returns 0. Thread-safe (see above); frees nothing.
 * NULL is a no-op. */
void idt_batcher_stop(idt_batcher *it);
/* Stop and join the workers, free what was not taken, drop the view. NULL is a no-op. Not
 * concurrent with any other call on `it`. */
void idt_batcher_free(idt_batcher *it);
/* Stop and join the workers of every live iterator (for interpreter exit). The iterators
 * stay valid to free; next() on them returns 0. */
void idt_batcher_stop_all(void);
/* Set the byte cap of iterators made from now on (process-wide; <= 0 restores
 * IDT_BATCH_MAX_BYTES). For tests and tuning. */
void idt_batcher_set_max_bytes(int64_t bytes);

typedef struct idt_batcher_stats {
    int64_t inflight_bytes; /* bytes of batches made and not yet taken */
    int64_t peak_bytes;     /* the most inflight_bytes has been */
    int64_t max_bytes;      /* the iterator's byte cap */
    int64_t idle_workers;   /* workers waiting for room in the window, or finished */
} idt_batcher_stats;

/* Counters of `it` (thread-safe, as idt_batcher_stop). */
void idt_batcher_get_stats(idt_batcher *it, idt_batcher_stats *out);

/* Forks between the process that loaded the library and this one (0 in the original
 * process, incremented in each child): lets a caller tell that bookkeeping it made (threads
 * it counted as inside an iterator, say) belongs to a parent process. */
uint64_t idt_batcher_generation(void);

/* Worker threads of all iterators started and not yet joined, process-wide. */
int64_t idt_batcher_threads(void);

/* Free a batch and every buffer not taken. */
void idt_batch_free(idt_batch *b);
/* Give back a buffer taken from a batch (the caller owns it until then; never idt_free it).
 * It is recycled for a later batch of its iterator when it can be, else freed. Safe after
 * the iterator is gone, from any thread. NULL is a no-op. */
void idt_batch_buffer_release(void *buf);

#endif

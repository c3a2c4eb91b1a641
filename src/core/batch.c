/* batch.c: the threaded batch iterator with a bounded readahead window. */
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prefetch.h"
#include "sys.h"

typedef struct bufpool bufpool;

typedef struct slot {
    idt_batch *batch;  /* finished batch, or NULL */
    int rc;            /* error code when making it failed */
    idt_error err;
    int ready;
} slot;

struct idt_batcher {
    idt_view *view;
    bufpool *pool;
    int64_t batch_size, nbatches, nworkers, window;
    pthread_mutex_t mu;
    pthread_cond_t produced, consumed, joined;
    int64_t next_make;   /* next batch number a worker will take */
    int64_t next_take;   /* next batch number the consumer will take */
    slot *slots;         /* window entries, batch k in slots[k % window] */
    int64_t max_bytes;   /* cap on inflight */
    int64_t inflight;    /* bytes of batches made and not yet taken */
    int64_t peak;        /* the most inflight has been */
    int64_t idle;        /* workers waiting for room or finished */
    _Atomic int stop;    /* set (under mu) by idt_batcher_stop; read anywhere */
    int failed;          /* the consumer saw an error (consumer only) */
    int orphaned;        /* inherited through fork: its workers live in another process */
    int joining;         /* a stop is joining the workers (others wait on `joined`) */
    pthread_t *threads;
    int64_t started;     /* threads started (to join) */
    idt_batcher *prev, *next; /* registry of live iterators */
    idt_prefetcher pf;   /* reading ahead from disk (prefetch.h) */
    idt_list_pad *pads;  /* per column, or NULL: list columns as offsets + values */
};

/* The registry of live iterators (for idt_batcher_stop_all and fork). Lock order: reg_mu,
 * then an iterator's mu, then its pool's mu. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static idt_batcher *registry;
static _Atomic int64_t live_threads; /* started and not joined, all iterators */

int64_t idt_batcher_threads(void) { return atomic_load(&live_threads); }
static _Atomic uint64_t fork_generation;
static _Atomic int64_t max_bytes_setting; /* idt_batcher_set_max_bytes; 0: the default */

/* ---- batch buffers: recycled through a per-iterator pool ----
 * Each buffer carries a header naming its pool and size. A buffer the caller releases goes
 * back to the pool (while its iterator lives and the pool is not full), so a pass reuses a
 * window's worth of memory instead of asking the allocator, and through it the kernel, for
 * fresh pages (page faults, zeroing) on every batch. Every buffer, cached or handed out,
 * holds a reference to its pool, so releasing one after the iterator is gone is safe. */
enum { BUF_HDR = 64 };

struct bufpool {
    _Atomic int64_t refs;
    pthread_mutex_t mu;
    void **cache;   /* headers of free buffers */
    int64_t ncache, cap;
    _Atomic int open; /* written under mu; once 0, mu is never taken again but to close */
};

typedef struct bufhdr {
    bufpool *pool;
    size_t size;
} bufhdr;

static void pool_decref(bufpool *p) {
    if (atomic_fetch_sub(&p->refs, 1) != 1) return;
    pthread_mutex_destroy(&p->mu);
    idt_free(p->cache);
    idt_free(p);
}

static bufpool *pool_new(int64_t cap) {
    bufpool *p = idt_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->cache = idt_malloc((size_t)(cap ? cap : 1) * sizeof *p->cache);
    if (!p->cache) {
        idt_free(p);
        return NULL;
    }
    p->cap = cap;
    p->open = 1;
    pthread_mutex_init(&p->mu, NULL);
    atomic_store(&p->refs, 1);
    return p;
}

/* A buffer of at least n bytes: the smallest cached one of n .. 2n bytes (a list column's
 * values vary in size from batch to batch; a fixed column's match exactly), else a new one. */
static void *pool_get(bufpool *p, size_t n) {
    pthread_mutex_lock(&p->mu);
    int64_t best = -1;
    for (int64_t i = p->ncache - 1; i >= 0; i--) {
        const bufhdr *h = p->cache[i];
        if (h->size >= n && h->size / 2 <= n &&
            (best < 0 || h->size < ((const bufhdr *)p->cache[best])->size))
            best = i;
        if (best >= 0 && ((const bufhdr *)p->cache[best])->size == n) break;
    }
    if (best >= 0) {
        bufhdr *h = p->cache[best];
        p->cache[best] = p->cache[--p->ncache];
        pthread_mutex_unlock(&p->mu);
        return (char *)h + BUF_HDR;
    }
    pthread_mutex_unlock(&p->mu);
    if (n > SIZE_MAX - BUF_HDR) return NULL;
    bufhdr *h = idt_malloc(n + BUF_HDR);
    if (!h) return NULL;
    h->pool = p;
    h->size = n;
    atomic_fetch_add(&p->refs, 1);
    return (char *)h + BUF_HDR;
}

void idt_batch_buffer_release(void *buf) {
    if (!buf) return;
    bufhdr *h = (bufhdr *)((char *)buf - BUF_HDR);
    bufpool *p = h->pool;
    /* A closed pool's lock is never taken here: a buffer that outlives its iterator (in a
     * forked child, say, whose copy of the lock may be held by a thread that is not there)
     * is simply freed. */
    if (atomic_load(&p->open)) {
        pthread_mutex_lock(&p->mu);
        if (p->open && p->ncache < p->cap) {
            p->cache[p->ncache++] = h;
            pthread_mutex_unlock(&p->mu);
            return;
        }
        pthread_mutex_unlock(&p->mu);
    }
    idt_free(h);
    pool_decref(p);
}

/* Mark the pool closed: buffers released from now on are freed, not cached. */
static void pool_shut(bufpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->open, 0);
    pthread_mutex_unlock(&p->mu);
}

/* The iterator is done with the (shut) pool: free the cached buffers and drop its
 * reference. */
static void pool_close(bufpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    int64_t n = p->ncache;
    p->ncache = 0;
    pthread_mutex_unlock(&p->mu);
    for (int64_t i = 0; i < n; i++) idt_free(p->cache[i]);
    for (int64_t i = 0; i < n; i++) pool_decref(p);
    pool_decref(p);
}

void idt_batch_free(idt_batch *b) {
    if (!b) return;
    for (int64_t j = 0; b->bufs && j < b->ncols; j++) idt_batch_buffer_release(b->bufs[j]);
    for (int64_t j = 0; b->aux && j < b->ncols; j++) idt_batch_buffer_release(b->aux[j]);
    idt_free(b->bufs);
    idt_free(b->aux);
    idt_free(b->widths);
    idt_free(b);
}

/* Gather batch k of `v` into freshly allocated buffers. The disk reads of its rows not in
 * memory are queued first, and those of batch `ahead` too (-1: none), the one this thread
 * will likely make next, so the disk works while this batch is copied and consumed. */
/* Buffer sizes of list values vary from batch to batch: rounded up to one of 8 sizes per
 * doubling, so the pool can give a buffer back for a later batch. */
static size_t size_class(size_t n) {
    if (n <= 4096) return 4096;
    int top = 63 - __builtin_clzll((unsigned long long)n);
    size_t step = (size_t)1 << (top - 3);
    return (n + step - 1) / step * step;
}

static int make_batch(const idt_view *v, const idt_list_pad *pads, bufpool *pool, idt_prefetcher *pf,
                      int64_t bs, int64_t k, int64_t ahead, idt_batch **out, idt_error *err) {
    int64_t len = idt_view_len(v), start = k * bs;
    int64_t n = len - start < bs ? len - start : bs;
    idt_batch *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory making batch %lld", (long long)k);
    b->index = k;
    b->nrows = n;
    b->ncols = v->ncols;
    b->bufs = idt_calloc((size_t)v->ncols, sizeof *b->bufs);
    b->aux = idt_calloc((size_t)v->ncols, sizeof *b->aux);
    b->widths = idt_calloc((size_t)v->ncols, sizeof *b->widths);
    idt_rowsel sel = {start, 1, n, NULL};
    idt_view_prefetch(v, &sel, pf);
    if (ahead >= 0 && ahead * bs < len) {
        int64_t a0 = ahead * bs;
        idt_rowsel next = {a0, 1, len - a0 < bs ? len - a0 : bs, NULL};
        idt_view_prefetch(v, &next, pf);
    }
    int rc = 0;
    if (!b->bufs || !b->aux || !b->widths) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc) rc = idt_view_str_widths(v, &sel, b->widths, err);
    for (int64_t j = 0; !rc && j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        size_t size, aux = 0;
        if (idt_column_is_list(c) && pads && pads[j].length >= 0) {
            b->widths[j] = pads[j].length;
            size = (size_t)(n * idt_column_out_row_bytes(c, pads[j].length));
            aux = (size_t)n * 8;
        } else if (idt_column_is_list(c)) {
            b->widths[j] = idt_view_str_bytes(v, &sel, j);
            size = size_class((size_t)(b->widths[j] * c->itemsize));
            aux = (size_t)(n + 1) * 8;
        } else {
            size = (size_t)(n * idt_column_out_row_bytes(c, b->widths[j]));
        }
        b->bufs[j] = pool_get(pool, size);
        if (aux) b->aux[j] = pool_get(pool, aux);
        b->bytes += (int64_t)(size + aux);
        if (!b->bufs[j] || (aux && !b->aux[j]))
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory for a batch of %lld rows",
                               (long long)n);
    }
    if (rc) {
        idt_batch_free(b);
        return rc;
    }
    idt_view_gather(v, &sel, b->bufs, b->widths);
    for (int64_t j = 0; j < v->ncols; j++) {
        if (!idt_column_is_list(idt_view_column(v, j))) continue;
        if (pads && pads[j].length >= 0)
            idt_view_gather_padded(v, &sel, j, pads[j].length, pads[j].value, b->bufs[j], b->aux[j]);
        else
            idt_view_gather_packed(v, &sel, j, b->aux[j], b->bufs[j]);
    }
    *out = b;
    return 0;
}

/* A worker: takes the next batch number while the window has room (fewer than `window`
 * batches and fewer than max_bytes made but not taken), gathers it unlocked, files it. */
static void *worker(void *arg) {
    idt_batcher *it = arg;
    pthread_mutex_lock(&it->mu);
    for (;;) {
        it->idle++;
        while (!it->stop && it->next_make < it->nbatches &&
               (it->next_make >= it->next_take + it->window || it->inflight >= it->max_bytes))
            pthread_cond_wait(&it->consumed, &it->mu);
        if (it->stop || it->next_make >= it->nbatches) break;
        it->idle--;
        int64_t k = it->next_make++;
        pthread_mutex_unlock(&it->mu);
        idt_batch *b = NULL;
        idt_error err;
        idt_error_clear(&err);
        int rc = make_batch(it->view, it->pads, it->pool, &it->pf, it->batch_size, k,
                            k + it->nworkers < it->nbatches ? k + it->nworkers : -1, &b, &err);
        pthread_mutex_lock(&it->mu);
        slot *s = &it->slots[k % it->window];
        s->batch = b;
        s->rc = rc;
        s->err = err;
        s->ready = 1;
        if (b) {
            it->inflight += b->bytes;
            if (it->inflight > it->peak) it->peak = it->inflight;
        }
        pthread_cond_broadcast(&it->produced);
    }
    pthread_mutex_unlock(&it->mu);
    return NULL;
}

/* Take the filed batch out of slot s (caller holds mu). */
static int slot_take(idt_batcher *it, slot *s, idt_batch **out, idt_error *err) {
    int rc = s->rc;
    if (rc && err) *err = s->err;
    if (s->batch) it->inflight -= s->batch->bytes;
    if (!rc) *out = s->batch;
    s->batch = NULL;
    s->ready = 0;
    return rc;
}

/* Stop the workers and join them. Safe from any thread, at the same time as next() (which
 * then returns 0) and as another stop (which waits until the workers are joined). */
static void stop_join(idt_batcher *it) {
    pthread_mutex_lock(&it->mu);
    atomic_store(&it->stop, 1);
    if (it->orphaned) { /* no workers in this process; its condition variables are not ours */
        pthread_mutex_unlock(&it->mu);
        return;
    }
    pthread_cond_broadcast(&it->consumed);
    pthread_cond_broadcast(&it->produced);
    while (it->joining) pthread_cond_wait(&it->joined, &it->mu);
    int64_t n = it->started;
    it->started = 0;
    it->joining = n > 0;
    pthread_mutex_unlock(&it->mu);
    if (!n) return;
    for (int64_t i = 0; i < n; i++) pthread_join(it->threads[i], NULL);
    atomic_fetch_sub(&live_threads, n);
    pthread_mutex_lock(&it->mu);
    it->joining = 0;
    pthread_cond_broadcast(&it->joined);
    pthread_mutex_unlock(&it->mu);
}

void idt_batcher_stop(idt_batcher *it) {
    if (it) stop_join(it);
}

void idt_batcher_free(idt_batcher *it) {
    if (!it) return;
    /* Leave the registry and shut the pool in one step, so a fork sees either a registered
     * iterator (whose locks it takes) or a shut pool (whose lock nobody takes again). */
    pthread_mutex_lock(&reg_mu);
    if (it->prev) it->prev->next = it->next;
    else if (registry == it) registry = it->next;
    if (it->next) it->next->prev = it->prev;
    pool_shut(it->pool);
    pthread_mutex_unlock(&reg_mu);
    stop_join(it);
    if (it->slots)
        for (int64_t i = 0; i < it->window; i++) idt_batch_free(it->slots[i].batch);
    if (!it->orphaned) { /* a forked child's copies may still count the parent's waiters */
        pthread_mutex_destroy(&it->mu);
        pthread_cond_destroy(&it->produced);
        pthread_cond_destroy(&it->consumed);
        pthread_cond_destroy(&it->joined);
    }
    idt_free(it->slots);
    idt_free(it->threads);
    pool_close(it->pool);
    idt_prefetch_random_end(it->view);
    idt_view_decref(it->view);
    idt_free(it->pads);
    idt_free(it);
}

void idt_batcher_stop_all(void) {
    pthread_mutex_lock(&reg_mu);
    for (idt_batcher *it = registry; it; it = it->next) stop_join(it);
    pthread_mutex_unlock(&reg_mu);
}

/* ---- fork ----
 * Before a fork every lock of the registry, of each live iterator and of its pool is taken,
 * so the child inherits consistent state with every lock free. In the child the iterators'
 * workers do not exist: each iterator is marked orphaned and gathers on demand in the
 * calling thread from then on (taking first what the parent's workers had finished); its
 * threads are never joined and its condition variables (which may count the parent's
 * waiters) never waited on, signalled or destroyed. */
static void fork_prepare(void) {
    pthread_mutex_lock(&reg_mu);
    for (idt_batcher *it = registry; it; it = it->next) {
        pthread_mutex_lock(&it->mu);
        pthread_mutex_lock(&it->pool->mu);
    }
}

static void fork_parent(void) {
    for (idt_batcher *it = registry; it; it = it->next) {
        pthread_mutex_unlock(&it->pool->mu);
        pthread_mutex_unlock(&it->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

static void fork_child(void) {
    atomic_fetch_add(&fork_generation, 1);
    atomic_store(&live_threads, 0); /* the child has none of the parent's workers */
    for (idt_batcher *it = registry; it; it = it->next) {
        if (it->nworkers > 0) {
            it->orphaned = 1;
            it->started = 0;
            it->joining = 0;
        }
        pthread_mutex_unlock(&it->pool->mu);
        pthread_mutex_unlock(&it->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void idt_batcher_set_max_bytes(int64_t bytes) { atomic_store(&max_bytes_setting, bytes > 0 ? bytes : 0); }

void idt_batcher_get_stats(idt_batcher *it, idt_batcher_stats *out) {
    pthread_mutex_lock(&it->mu);
    out->inflight_bytes = it->inflight;
    out->peak_bytes = it->peak;
    out->max_bytes = it->max_bytes;
    out->idle_workers = it->orphaned ? 0 : it->idle;
    pthread_mutex_unlock(&it->mu);
}

uint64_t idt_batcher_generation(void) { return atomic_load(&fork_generation); }

int idt_batcher_new(idt_view *v, int64_t batch_size, int drop_last, int64_t threads,
                    int64_t readahead, idt_batcher **out, idt_error *err) {
    return idt_batcher_new_padded(v, batch_size, drop_last, threads, readahead, NULL, out, err);
}

int idt_batcher_new_padded(idt_view *v, int64_t batch_size, int drop_last, int64_t threads,
                           int64_t readahead, const idt_list_pad *pads, idt_batcher **out,
                           idt_error *err) {
    if (batch_size < 1)
        return idt_error_set(err, IDT_EVALUE, "batch_size must be at least 1, not %lld", (long long)batch_size);
    if (threads < 1)
        return idt_error_set(err, IDT_EVALUE, "threads must be at least 1, not %lld", (long long)threads);
    if (readahead < 0)
        return idt_error_set(err, IDT_EVALUE, "readahead must be 0 or more, not %lld", (long long)readahead);
    pthread_once(&fork_once, fork_init);
    idt_batcher *it = idt_calloc(1, sizeof *it);
    if (!it) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (pads) {
        it->pads = idt_malloc((size_t)(v->ncols ? v->ncols : 1) * sizeof *it->pads);
        if (!it->pads) {
            idt_free(it);
            return idt_error_set(err, IDT_ENOMEM, "out of memory");
        }
        memcpy(it->pads, pads, (size_t)v->ncols * sizeof *pads);
    }
    int64_t len = idt_view_len(v);
    it->batch_size = batch_size;
    int64_t mb = atomic_load(&max_bytes_setting);
    it->max_bytes = mb > 0 ? mb : IDT_BATCH_MAX_BYTES;
    it->nbatches = drop_last ? len / batch_size : len / batch_size + (len % batch_size != 0);
    idt_view_incref(v);
    it->view = v;
    idt_prefetch_random_begin(v); /* ended in idt_batcher_free */
    pthread_mutex_init(&it->mu, NULL);
    pthread_cond_init(&it->produced, NULL);
    pthread_cond_init(&it->consumed, NULL);
    pthread_cond_init(&it->joined, NULL);
    if (threads > 1 || readahead > 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int64_t w = threads;
        if (cpus > 0 && w > 2 * cpus) w = 2 * cpus;
        if (w > IDT_BATCH_MAX_WORKERS) w = IDT_BATCH_MAX_WORKERS;
        if (w > it->nbatches) w = it->nbatches;
        int64_t rowb = 0;
        for (int64_t j = 0; j < v->ncols; j++) { /* list rows: their offset or length at least */
            const idt_column *c = idt_view_column(v, j);
            rowb += c->row_bytes + (idt_column_is_list(c) ? 8 : 0);
            if (idt_column_is_list(c) && pads && pads[j].length > 0 &&
                pads[j].length < (INT64_MAX / 2 - rowb) / c->itemsize)
                rowb += pads[j].length * c->itemsize;
        }
        /* a batch never holds more rows than the view; and the product must not overflow */
        int64_t brows = batch_size < len ? batch_size : len;
        int64_t batch_bytes = rowb > 0 && brows > INT64_MAX / rowb ? INT64_MAX : rowb * brows;
        int64_t win = readahead;
        if (win > IDT_BATCH_MAX_WINDOW) win = IDT_BATCH_MAX_WINDOW;
        if (batch_bytes > 0 && win > it->max_bytes / batch_bytes) win = it->max_bytes / batch_bytes;
        if (win < w) win = w;
        it->nworkers = w;
        it->window = win;
    }
    /* buffers of a window of batches, the one the caller holds and the one it just let go */
    int64_t nbufs = v->ncols ? v->ncols : 1; /* a list column's offsets or lengths: one more */
    for (int64_t j = 0; j < v->ncols; j++) nbufs += idt_column_is_list(idt_view_column(v, j));
    int64_t pcap = (it->window + 2) * nbufs;
    it->pool = pool_new(pcap < 4096 ? pcap : 4096);
    if (!it->pool) {
        idt_batcher_free(it);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    if (it->nworkers > 0) {
        it->slots = idt_calloc((size_t)it->window, sizeof *it->slots);
        it->threads = idt_calloc((size_t)it->nworkers, sizeof *it->threads);
        if (!it->slots || !it->threads) {
            idt_batcher_free(it);
            return idt_error_set(err, IDT_ENOMEM, "out of memory");
        }
        for (int64_t i = 0; i < it->nworkers; i++) {
            int e = pthread_create(&it->threads[i], NULL, worker, it);
            if (e) {
                idt_batcher_free(it);
                return idt_error_sys(err, e, "cannot start batch worker thread");
            }
            it->started++;
            atomic_fetch_add(&live_threads, 1);
        }
    }
    pthread_mutex_lock(&reg_mu);
    it->next = registry;
    if (registry) registry->prev = it;
    registry = it;
    pthread_mutex_unlock(&reg_mu);
    *out = it;
    return 0;
}

int64_t idt_batcher_count(const idt_batcher *it) { return it->nbatches; }
int64_t idt_batcher_workers(const idt_batcher *it) { return it->orphaned ? 0 : it->nworkers; }

/* Batch next_take made in the calling thread (no workers, or none in this process): a batch
 * a worker finished before a fork is taken as it is. */
static int next_here(idt_batcher *it, idt_batch **out, idt_error *err) {
    int64_t k = it->next_take;
    int rc = 0, have = 0;
    if (it->slots) {
        pthread_mutex_lock(&it->mu);
        slot *s = &it->slots[k % it->window];
        if (s->ready) {
            have = 1;
            rc = slot_take(it, s, out, err);
        }
        pthread_mutex_unlock(&it->mu);
    }
    if (!have)
        rc = make_batch(it->view, it->pads, it->pool, &it->pf, it->batch_size, k, k + 1 < it->nbatches ? k + 1 : -1, out,
                        err);
    if (rc) {
        it->failed = 1;
        return rc;
    }
    it->next_take++;
    return IDT_NEXT_BATCH;
}

int idt_batcher_next(idt_batcher *it, idt_batch **out, int timeout_ms, idt_error *err) {
    if (it->failed || atomic_load(&it->stop) || it->next_take >= it->nbatches) return IDT_NEXT_END;
    if (it->nworkers == 0 || it->orphaned) return next_here(it, out, err);
    struct timespec dl;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&it->mu);
    slot *s = &it->slots[it->next_take % it->window];
    while (!s->ready && !it->stop) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&it->produced, &it->mu);
        } else if (pthread_cond_timedwait(&it->produced, &it->mu, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&it->mu);
            return IDT_NEXT_TIMEOUT;
        }
    }
    if (!s->ready || it->stop) { /* stopped (maybe by another thread) */
        pthread_mutex_unlock(&it->mu);
        return IDT_NEXT_END;
    }
    int rc = slot_take(it, s, out, err);
    if (rc) {
        it->failed = 1;
        atomic_store(&it->stop, 1);
    }
    it->next_take++;
    pthread_cond_broadcast(&it->consumed);
    pthread_mutex_unlock(&it->mu);
    return rc ? rc : IDT_NEXT_BATCH;
}

const idt_view *idt_batcher_view(const idt_batcher *it) { return it->view; }

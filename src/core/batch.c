/* batch.c: the threaded batch iterator with a bounded readahead window. */
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    pthread_cond_t produced, consumed;
    int64_t next_make;   /* next batch number a worker will take */
    int64_t next_take;   /* next batch number the consumer will take */
    slot *slots;         /* window entries, batch k in slots[k % window] */
    int stop, failed;
    pthread_t *threads;
    int64_t started;     /* threads started (to join) */
    idt_batcher *prev, *next; /* registry of live iterators */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static idt_batcher *registry;
static _Atomic int64_t live_threads; /* started and not joined, all iterators */

int64_t idt_batcher_threads(void) { return atomic_load(&live_threads); }

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
    int open;
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

static void *pool_get(bufpool *p, size_t n) {
    pthread_mutex_lock(&p->mu);
    for (int64_t i = p->ncache - 1; i >= 0; i--) {
        bufhdr *h = p->cache[i];
        if (h->size == n) {
            p->cache[i] = p->cache[--p->ncache];
            pthread_mutex_unlock(&p->mu);
            return (char *)h + BUF_HDR;
        }
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
    pthread_mutex_lock(&p->mu);
    if (p->open && p->ncache < p->cap) {
        p->cache[p->ncache++] = h;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    idt_free(h);
    pool_decref(p);
}

/* The iterator is done with the pool: free the cached buffers and drop its reference. */
static void pool_close(bufpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->open = 0;
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
    idt_free(b->bufs);
    idt_free(b->widths);
    idt_free(b);
}

/* Gather batch k of `v` into freshly allocated buffers. */
static int make_batch(const idt_view *v, bufpool *pool, int64_t bs, int64_t k, idt_batch **out,
                      idt_error *err) {
    int64_t len = idt_view_len(v), start = k * bs;
    int64_t n = len - start < bs ? len - start : bs;
    idt_batch *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory making batch %lld", (long long)k);
    b->index = k;
    b->nrows = n;
    b->ncols = v->ncols;
    b->bufs = idt_calloc((size_t)v->ncols, sizeof *b->bufs);
    b->widths = idt_calloc((size_t)v->ncols, sizeof *b->widths);
    idt_rowsel sel = {start, 1, n, NULL};
    int rc = 0;
    if (!b->bufs || !b->widths) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc) rc = idt_view_str_widths(v, &sel, b->widths, err);
    for (int64_t j = 0; !rc && j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        int64_t w = b->widths[j];
        int64_t rb = c->kind == IDT_COL_FIXED ? c->row_bytes
                   : c->row_elems * w * (c->kind == IDT_COL_UTF8 ? 4 : 1);
        b->bufs[j] = pool_get(pool, (size_t)(n * rb));
        if (!b->bufs[j])
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory for a batch of %lld rows",
                               (long long)n);
    }
    if (rc) {
        idt_batch_free(b);
        return rc;
    }
    idt_view_gather(v, &sel, b->bufs, b->widths);
    *out = b;
    return 0;
}

static void *worker(void *arg) {
    idt_batcher *it = arg;
    pthread_mutex_lock(&it->mu);
    for (;;) {
        while (!it->stop && it->next_make < it->nbatches && it->next_make >= it->next_take + it->window)
            pthread_cond_wait(&it->consumed, &it->mu);
        if (it->stop || it->next_make >= it->nbatches) break;
        int64_t k = it->next_make++;
        pthread_mutex_unlock(&it->mu);
        idt_batch *b = NULL;
        idt_error err;
        idt_error_clear(&err);
        int rc = make_batch(it->view, it->pool, it->batch_size, k, &b, &err);
        pthread_mutex_lock(&it->mu);
        slot *s = &it->slots[k % it->window];
        s->batch = b;
        s->rc = rc;
        s->err = err;
        s->ready = 1;
        pthread_cond_broadcast(&it->produced);
    }
    pthread_mutex_unlock(&it->mu);
    return NULL;
}

static void stop_join(idt_batcher *it) {
    pthread_mutex_lock(&it->mu);
    it->stop = 1;
    pthread_cond_broadcast(&it->consumed);
    pthread_cond_broadcast(&it->produced);
    int64_t n = it->started;
    it->started = 0;
    pthread_mutex_unlock(&it->mu);
    for (int64_t i = 0; i < n; i++) pthread_join(it->threads[i], NULL);
    atomic_fetch_sub(&live_threads, n);
}

void idt_batcher_free(idt_batcher *it) {
    if (!it) return;
    pthread_mutex_lock(&reg_mu);
    if (it->prev) it->prev->next = it->next;
    else if (registry == it) registry = it->next;
    if (it->next) it->next->prev = it->prev;
    pthread_mutex_unlock(&reg_mu);
    stop_join(it);
    if (it->slots)
        for (int64_t i = 0; i < it->window; i++) idt_batch_free(it->slots[i].batch);
    pthread_mutex_destroy(&it->mu);
    pthread_cond_destroy(&it->produced);
    pthread_cond_destroy(&it->consumed);
    idt_free(it->slots);
    idt_free(it->threads);
    pool_close(it->pool);
    idt_view_decref(it->view);
    idt_free(it);
}

void idt_batcher_stop_all(void) {
    pthread_mutex_lock(&reg_mu);
    for (idt_batcher *it = registry; it; it = it->next) stop_join(it);
    pthread_mutex_unlock(&reg_mu);
}

int idt_batcher_new(idt_view *v, int64_t batch_size, int drop_last, int64_t threads,
                    int64_t readahead, idt_batcher **out, idt_error *err) {
    if (batch_size < 1)
        return idt_error_set(err, IDT_EVALUE, "batch_size must be at least 1, not %lld", (long long)batch_size);
    if (threads < 1)
        return idt_error_set(err, IDT_EVALUE, "threads must be at least 1, not %lld", (long long)threads);
    if (readahead < 0)
        return idt_error_set(err, IDT_EVALUE, "readahead must be 0 or more, not %lld", (long long)readahead);
    idt_batcher *it = idt_calloc(1, sizeof *it);
    if (!it) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int64_t len = idt_view_len(v);
    it->batch_size = batch_size;
    it->nbatches = drop_last ? len / batch_size : len / batch_size + (len % batch_size != 0);
    idt_view_incref(v);
    it->view = v;
    pthread_mutex_init(&it->mu, NULL);
    pthread_cond_init(&it->produced, NULL);
    pthread_cond_init(&it->consumed, NULL);
    if (threads > 1 || readahead > 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int64_t w = threads;
        if (cpus > 0 && w > 2 * cpus) w = 2 * cpus;
        if (w > IDT_BATCH_MAX_WORKERS) w = IDT_BATCH_MAX_WORKERS;
        if (w > it->nbatches) w = it->nbatches;
        int64_t rowb = 0;
        for (int64_t j = 0; j < v->ncols; j++) rowb += idt_view_column(v, j)->row_bytes;
        /* a batch never holds more rows than the view; and the product must not overflow */
        int64_t brows = batch_size < len ? batch_size : len;
        int64_t batch_bytes = rowb > 0 && brows > INT64_MAX / rowb ? INT64_MAX : rowb * brows;
        int64_t win = readahead;
        if (win > IDT_BATCH_MAX_WINDOW) win = IDT_BATCH_MAX_WINDOW;
        if (batch_bytes > 0 && win > IDT_BATCH_MAX_BYTES / batch_bytes) win = IDT_BATCH_MAX_BYTES / batch_bytes;
        if (win < w) win = w;
        it->nworkers = w;
        it->window = win;
    }
    /* buffers of a window of batches, the one the caller holds and the one it just let go */
    int64_t pcap = (it->window + 2) * (v->ncols ? v->ncols : 1);
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
int64_t idt_batcher_workers(const idt_batcher *it) { return it->nworkers; }

int idt_batcher_next(idt_batcher *it, idt_batch **out, int timeout_ms, idt_error *err) {
    if (it->failed || it->stop || it->next_take >= it->nbatches) return 0;
    if (it->nworkers == 0) {
        int rc = make_batch(it->view, it->pool, it->batch_size, it->next_take, out, err);
        if (rc) {
            it->failed = 1;
            return rc;
        }
        it->next_take++;
        return 1;
    }
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
            return IDT_TIMEOUT;
        }
    }
    if (!s->ready) { /* stopped */
        pthread_mutex_unlock(&it->mu);
        return 0;
    }
    int rc = s->rc;
    if (rc) {
        if (err) *err = s->err;
        it->failed = 1;
        it->stop = 1;
        pthread_cond_broadcast(&it->consumed);
    } else {
        *out = s->batch;
    }
    s->batch = NULL;
    s->ready = 0;
    it->next_take++;
    pthread_cond_broadcast(&it->consumed);
    pthread_mutex_unlock(&it->mu);
    return rc ? rc : 1;
}

const idt_view *idt_batcher_view(const idt_batcher *it) { return it->view; }

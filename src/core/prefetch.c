/* prefetch.c: madvise(MADV_WILLNEED) over the page ranges of the rows of a batch. */
#include "prefetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys.h"

enum { PF_SAMPLES = 16, PF_CHUNK = 1024, PF_MAX_SKIP = 64 };

static _Atomic int pf_mode = IDT_PREFETCH_AUTO;

int idt_prefetch_mode(int mode) {
    if (mode < IDT_PREFETCH_AUTO || mode > IDT_PREFETCH_OFF) return atomic_load(&pf_mode);
    return atomic_exchange(&pf_mode, mode);
}

static uintptr_t page_size(void) {
    static _Atomic uintptr_t ps;
    uintptr_t p = atomic_load_explicit(&ps, memory_order_relaxed);
    if (!p) {
        long s = sysconf(_SC_PAGESIZE);
        p = s > 0 ? (uintptr_t)s : 4096;
        atomic_store_explicit(&ps, p, memory_order_relaxed);
    }
    return p;
}

/* Page-aligned address range [lo, hi). */
typedef struct span {
    uintptr_t lo, hi;
} span;

typedef struct spans {
    span s[PF_CHUNK];
    int64_t n;
    int64_t calls;
} spans;

static int cmp_span(const void *a, const void *b) {
    uintptr_t x = ((const span *)a)->lo, y = ((const span *)b)->lo;
    return (x > y) - (x < y);
}

/* Sort the collected ranges by address, merge the overlapping and adjacent ones, and advise
 * each: the kernel queues the reads in file order, and neighbours become one request. */
static void flush(spans *sp) {
    if (sp->n == 0) return;
    qsort(sp->s, (size_t)sp->n, sizeof sp->s[0], cmp_span);
    span cur = sp->s[0];
    for (int64_t i = 1; i <= sp->n; i++) {
        if (i < sp->n && sp->s[i].lo <= cur.hi) {
            if (sp->s[i].hi > cur.hi) cur.hi = sp->s[i].hi;
            continue;
        }
        idt_madvise((void *)cur.lo, cur.hi - cur.lo, MADV_WILLNEED); /* advice: errors ignored */
        sp->calls++;
        if (i < sp->n) cur = sp->s[i];
    }
    sp->n = 0;
}

/* Collect the pages of [p, p+n); a range touching the previous one extends it (rows in
 * order become one range without sorting). */
static void add(spans *sp, const char *p, uint64_t n) {
    if (n == 0) return;
    uintptr_t ps = page_size(), a = (uintptr_t)p;
    uintptr_t lo = a & ~(ps - 1), hi = (a + (uintptr_t)n + ps - 1) & ~(ps - 1);
    if (sp->n) {
        span *last = &sp->s[sp->n - 1];
        if (lo <= last->hi && hi >= last->lo) {
            if (lo < last->lo) last->lo = lo;
            if (hi > last->hi) last->hi = hi;
            return;
        }
    }
    if (sp->n == PF_CHUNK) flush(sp);
    sp->s[sp->n].lo = lo;
    sp->s[sp->n].hi = hi;
    sp->n++;
}

/* The first byte of store row `row` that a gather of view column j reads (fixed: the row;
 * strings: its first offset). */
static const char *row_addr(const idt_view *v, const idt_store *st, int64_t row, int64_t j) {
    const idt_column *c = idt_view_column(v, j);
    const idt_store_col *sc = &st->cols[idt_view_store_col(v, st, j)];
    if (!idt_column_is_var(c)) return c->row_bytes ? sc->data + row * c->row_bytes : NULL;
    return (const char *)(sc->offsets + row * c->row_elems);
}

static int page_resident(const char *p) {
    uintptr_t ps = page_size();
    unsigned char vec = 0;
    if (idt_mincore((void *)((uintptr_t)p & ~(ps - 1)), ps, &vec) != 0) return 0;
    return vec & 1;
}

/* 1 when the pages of PF_SAMPLES rows spread over the selection are all in memory. */
static int sample_resident(const idt_view *v, const idt_rowsel *sel) {
    int64_t n = sel->count < PF_SAMPLES ? sel->count : PF_SAMPLES;
    for (int64_t s = 0; s < n; s++) {
        int64_t i = s * sel->count / n;
        int64_t x = sel->idx ? sel->idx[i] : sel->start + i * sel->step;
        idt_store *st;
        int64_t row;
        idt_view_locate(v, x, &st, &row);
        for (int64_t j = 0; j < v->ncols; j++) {
            const char *p = row_addr(v, st, row, j);
            if (p && !page_resident(p)) return 0;
        }
    }
    return 1;
}

/* Advise the rows of one resolved chunk: fixed rows and string offsets first, then (once
 * the offsets can be read, which waits for their pages) the string bytes. */
static void advise_chunk(const idt_view *v, const idt_store *const *st, const int64_t *row, int64_t n,
                         spans *sp) {
    int strings = 0;
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (idt_column_is_var(c)) strings = 1;
        for (int64_t i = 0; i < n; i++) {
            const char *p = row_addr(v, st[i], row[i], j);
            if (p) add(sp, p, idt_column_is_var(c) ? (uint64_t)(c->row_elems + 1) * 8 : (uint64_t)c->row_bytes);
        }
    }
    if (!strings) return; /* the caller flushes what is left at the end */
    flush(sp);
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (!idt_column_is_var(c)) continue;
        for (int64_t i = 0; i < n; i++) {
            const idt_store_col *sc = &st[i]->cols[idt_view_store_col(v, st[i], j)];
            uint64_t a = sc->offsets[row[i] * c->row_elems], z = sc->offsets[(row[i] + 1) * c->row_elems];
            uint64_t unit = (uint64_t)idt_column_unit(c);
            if (z > a) add(sp, sc->data + a * unit, (z - a) * unit);
        }
    }
    flush(sp);
}

int64_t idt_view_prefetch(const idt_view *v, const idt_rowsel *sel, idt_prefetcher *pf) {
    int mode = atomic_load_explicit(&pf_mode, memory_order_relaxed);
    if (mode == IDT_PREFETCH_OFF || sel->count <= 0 || v->ncols == 0) return 0;
    if (v->ngroups) { /* each group's rows in turn */
        int64_t calls = 0;
        for (int64_t g = 0; g < v->ngroups; g++) calls += idt_view_prefetch(v->groups[g], sel, pf);
        return calls;
    }
    if (mode == IDT_PREFETCH_AUTO) {
        if (pf && atomic_load(&pf->skip) > 0) {
            atomic_fetch_sub(&pf->skip, 1);
            atomic_fetch_add(&pf->resident, 1);
            return 0;
        }
        if (sample_resident(v, sel)) {
            if (pf) {
                int64_t k = atomic_fetch_add(&pf->streak, 1) + 1;
                int64_t skip = k >= 7 ? PF_MAX_SKIP : ((int64_t)1 << k) - 1;
                atomic_store(&pf->skip, skip < PF_MAX_SKIP ? skip : PF_MAX_SKIP);
                atomic_fetch_add(&pf->resident, 1);
            }
            return 0;
        }
        if (pf) atomic_store(&pf->streak, 0);
    }
    static _Thread_local spans sp;          /* 16 KiB per thread, reused */
    static _Thread_local const idt_store *st[PF_CHUNK];
    static _Thread_local int64_t row[PF_CHUNK];
    sp.n = 0;
    sp.calls = 0;
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < sel->count; i0 += PF_CHUNK) {
        int64_t n = sel->count - i0 < PF_CHUNK ? sel->count - i0 : PF_CHUNK;
        idt_view_resolve(v, sel, i0, n, st, row, &k);
        advise_chunk(v, st, row, n, &sp);
    }
    flush(&sp);
    if (pf) {
        atomic_fetch_add(&pf->advised, 1);
        atomic_fetch_add(&pf->ranges, sp.calls);
    }
    return sp.calls;
}

static pthread_mutex_t random_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

/* Held across fork, so a child never inherits it locked by a thread it does not have. */
static void random_lock(void) { pthread_mutex_lock(&random_mu); }
static void random_unlock(void) { pthread_mutex_unlock(&random_mu); }
static void random_init(void) { pthread_atfork(random_lock, random_unlock, random_unlock); }

/* Count one random reader more (delta 1) or fewer (-1) on every large store that a ref array
 * of `v` points into, advising the mapping when the count leaves or reaches zero. */
static void random_readers(const idt_view *v, int delta) {
    for (int64_t g = 0; g < v->ngroups; g++) random_readers(v->groups[g], delta);
    pthread_once(&random_once, random_init);
    pthread_mutex_lock(&random_mu);
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        if (s->kind != IDT_SEG_REFS) continue;
        for (int64_t i = 0; i < s->refs->nstores; i++) {
            void *map;
            size_t len;
            int64_t *readers = idt_blob_advice_target(s->refs->stores[i]->blob, &map, &len);
            if (!readers) continue;
            *readers += delta;
            if (((delta > 0 && *readers == 1) || (delta < 0 && *readers == 0)) &&
                atomic_load_explicit(&pf_mode, memory_order_relaxed) != IDT_PREFETCH_OFF)
                idt_madvise(map, len, delta > 0 ? MADV_RANDOM : MADV_NORMAL);
        }
    }
    pthread_mutex_unlock(&random_mu);
}

void idt_prefetch_random_begin(const idt_view *v) { random_readers(v, 1); }

void idt_prefetch_random_end(const idt_view *v) { random_readers(v, -1); }

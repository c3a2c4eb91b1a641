/* test_batch.c: the batch iterator, single- and multi-threaded, against plain gathers. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "harness.h"

static int64_t nthreads(void) {
    h_names l;
    h_names_list("/proc/self/task", &l);
    int n = l.n;
    h_names_free(&l);
    return n;
}

/* Threads of the process once at most `want` remain (a joined thread may stay listed in
 * /proc for a moment after pthread_join returns); waits up to 5 s. */
static int64_t settled_threads(int64_t want) {
    for (int i = 0; i < 500 && nthreads() > want; i++) usleep(10000);
    return nthreads();
}

/* Threads of the process when no iterator runs, measured after one has run and gone (a
 * sanitizer's runtime may start a thread of its own on first use of threads). */
static int64_t baseline_threads(idt_view *v) {
    idt_batcher *it;
    idt_error err;
    if (idt_batcher_new(v, 1, 0, 2, 0, &it, &err) == 0) {
        idt_batch *b;
        if (idt_batcher_next(it, &b, -1, &err) == IDT_NEXT_BATCH) idt_batch_free(b);
        idt_batcher_free(it);
    }
    return nthreads();
}

/* A view of n rows from two stores (one through a shuffle): an int64 "id", a (3,) float32
 * "f", a UTF8 "s" and a BYTES "b" whose lengths vary by row. */
static idt_view *batch_view(int64_t n) {
    int64_t h = n / 2;
    idt_view *parts[2] = {NULL, NULL};
    idt_error err;
    for (int p = 0; p < 2; p++) {
        int64_t m = p ? n - h : h, first = p ? h : 0;
        int64_t *id = malloc((size_t)(m ? m : 1) * 8);
        float *f = malloc((size_t)(m ? m : 1) * 12);
        char **s = malloc((size_t)(m ? m : 1) * sizeof *s), **b = malloc((size_t)(m ? m : 1) * sizeof *b);
        for (int64_t i = 0; i < m; i++) {
            int64_t k = first + i;
            id[i] = k;
            for (int q = 0; q < 3; q++) f[3 * i + q] = (float)k + q * 0.25f;
            s[i] = malloc(64);
            b[i] = malloc(64);
            int ls = snprintf(s[i], 64, "row %lld", (long long)k);
            for (int q = 0; q < k % 5; q++) ls += snprintf(s[i] + ls, 64 - (size_t)ls, "\xC3\xBC");
            snprintf(b[i], 64, "%0*lld", (int)(k % 9) + 1, (long long)k);
        }
        int64_t three[1] = {3};
        h_col cols[4] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                         {"f", IDT_COL_FIXED, "<f4", 4, 1, three, f, 0, NULL},
                         {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, NULL},
                         {"b", IDT_COL_BYTES, NULL, 0, 0, NULL, b, 0, NULL}};
        if (h_view(cols, 4, m, &parts[p], &err)) h_fail(__FILE__, __LINE__, "view: %s", err.msg);
        for (int64_t i = 0; i < m; i++) {
            free(s[i]);
            free(b[i]);
        }
        free(id);
        free(f);
        free(s);
        free(b);
    }
    idt_view *sh = NULL, *v = NULL;
    if (parts[0] && parts[1] && idt_view_shuffle(parts[1], 3, &sh, &err) == 0 &&
        idt_view_concat((idt_view *[]){parts[0], sh}, 2, &v, &err) != 0)
        h_fail(__FILE__, __LINE__, "concat: %s", err.msg);
    idt_view_decref(sh);
    idt_view_decref(parts[0]);
    idt_view_decref(parts[1]);
    return v;
}

static int64_t expected_workers(int64_t threads, int64_t readahead, int64_t nbatches) {
    if (threads <= 1 && readahead == 0) return 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t w = threads;
    if (cpus > 0 && w > 2 * cpus) w = 2 * cpus;
    if (w > IDT_BATCH_MAX_WORKERS) w = IDT_BATCH_MAX_WORKERS;
    if (w > nbatches) w = nbatches;
    return w;
}

/* Check batch b against a plain gather of its rows. */
static int batch_matches(const idt_view *v, const idt_batch *b, int64_t bs, int64_t nrows_total) {
    int64_t start = b->index * bs;
    int64_t n = nrows_total - start < bs ? nrows_total - start : bs;
    if (b->nrows != n || b->ncols != v->ncols) return 0;
    idt_rowsel sel = {start, 1, n, NULL};
    void *outs[8];
    int64_t w[8];
    h_gather(v, &sel, outs, w);
    int ok = 1;
    for (int64_t j = 0; j < v->ncols && ok; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (b->widths[j] != w[j]) ok = 0;
        int64_t rb = c->kind == IDT_COL_FIXED ? c->row_bytes
                   : c->row_elems * w[j] * (c->kind == IDT_COL_UTF8 ? 4 : 1);
        if (ok && b->bufs[j] && memcmp(b->bufs[j], outs[j], (size_t)(n * rb))) ok = 0;
    }
    h_free_outs(outs, v->ncols);
    return ok;
}

/* Iterate v fully; returns batches seen, or -1 on a mismatch or error. */
static int64_t run_all(idt_view *v, int64_t bs, int drop_last, int64_t threads, int64_t readahead,
                       int timeout_ms) {
    idt_batcher *it;
    idt_error err;
    if (CHECK_OK(idt_batcher_new(v, bs, drop_last, threads, readahead, &it, &err), err)) return -1;
    int64_t len = idt_view_len(v);
    int64_t nb = drop_last ? len / bs : len / bs + (len % bs != 0);
    CHECK_EQ(idt_batcher_count(it), nb);
    CHECK_EQ(idt_batcher_workers(it), expected_workers(threads, readahead, nb));
    CHECK(idt_batcher_view(it) == v);
    int64_t seen = 0;
    for (;;) {
        idt_batch *b = NULL;
        int rc = idt_batcher_next(it, &b, timeout_ms, &err);
        if (rc == IDT_NEXT_TIMEOUT) continue;
        if (rc == IDT_NEXT_END) break;
        if (rc != IDT_NEXT_BATCH) {
            h_fail(__FILE__, __LINE__, "next: %d %s", rc, err.msg);
            seen = -1;
            break;
        }
        if (b->index != seen || !batch_matches(v, b, bs, len)) {
            h_fail(__FILE__, __LINE__,
                   "batch %lld (index %lld) differs: bs %lld drop_last %d threads %lld readahead %lld",
                   (long long)seen, (long long)b->index, (long long)bs, drop_last, (long long)threads,
                   (long long)readahead);
            idt_batch_free(b);
            seen = -1;
            break;
        }
        /* the caller may take a buffer: it owns it then */
        if (seen % 2 == 0) {
            void *mine = b->bufs[0];
            b->bufs[0] = NULL;
            idt_batch_buffer_release(mine);
        }
        idt_batch_free(b);
        seen++;
    }
    if (seen >= 0) {
        CHECK_EQ(seen, nb);
        idt_batch *b = NULL;
        CHECK_EQ(idt_batcher_next(it, &b, -1, &err), IDT_NEXT_END); /* stays at the end */
    }
    idt_batcher_free(it);
    return seen;
}

static void test_batch_content(void) {
    enum { N = 403 };
    idt_view *v = batch_view(N);
    REQUIRE(v != NULL);
    int64_t threads0 = baseline_threads(v);
    for (int64_t t = 1; t <= 4; t++)
        for (int64_t ra = 0; ra <= 8; ra++) {
            int64_t bs = (t * 9 + ra) % 3 == 0 ? 64 : 7;
            if (run_all(v, bs, (int)((t + ra) % 2), t, ra, ra % 3 == 0 ? 0 : -1) < 0) goto out;
        }
    /* one batch of everything; batches of one row; a batch larger than the view */
    CHECK_EQ(run_all(v, N, 0, 3, 2, -1), 1);
    CHECK_EQ(run_all(v, 1, 0, 4, 8, -1), N);
    CHECK_EQ(run_all(v, 1000, 0, 2, 0, -1), 1);
    CHECK_EQ(run_all(v, 1000, 1, 2, 0, -1), 0);
    CHECK_EQ(run_all(v, 10, 0, 64, 10000, -1), 41); /* threads and window capped */
    CHECK_EQ(run_all(v, INT64_MAX, 0, 1000, INT64_MAX, -1), 1); /* no overflow anywhere */
    CHECK_EQ(run_all(v, INT64_MAX, 1, 1000, INT64_MAX, -1), 0);
out:
    CHECK_EQ(settled_threads(threads0), threads0);
    idt_view_decref(v);
}

/* The iterator holds its own reference to the view. */
static void test_batch_holds_view(void) {
    idt_view *v = batch_view(100);
    REQUIRE(v != NULL);
    idt_batcher *it;
    idt_error err;
    REQUIRE(CHECK_OK(idt_batcher_new(v, 30, 0, 2, 2, &it, &err), err) == 0);
    int64_t *ids = h_col_i64(v, h_vcol(v, "id"));
    idt_view_decref(v);
    idt_batch *b;
    int64_t k = 0;
    int rc;
    while ((rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH) {
        for (int64_t i = 0; i < b->nrows; i++) CHECK_EQ(((int64_t *)b->bufs[2])[i], ids[k + i]); /* b, f, id, s */
        k += b->nrows;
        idt_batch_free(b);
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(k, 100);
    free(ids);
    idt_batcher_free(it);
}

/* Freeing with batches in flight joins every worker and frees every buffer. */
static void test_batch_early_free(void) {
    idt_view *v = batch_view(2000);
    REQUIRE(v != NULL);
    int64_t threads0 = baseline_threads(v);
    idt_error err;
    for (int rep = 0; rep < 40; rep++) {
        h_snap before;
        h_snap_take(&before);
        idt_batcher *it;
        int64_t t = 1 + rep % 4, ra = rep % 9;
        REQUIRE(CHECK_OK(idt_batcher_new(v, 16, 0, t, ra, &it, &err), err) == 0);
        int take = rep % 3; /* 0, 1 or 2 batches taken first */
        for (int k = 0; k < take; k++) {
            idt_batch *b;
            CHECK_EQ(idt_batcher_next(it, &b, -1, &err), IDT_NEXT_BATCH);
            idt_batch_free(b);
        }
        if (rep % 5 == 0) usleep(2000); /* let the workers fill the window */
        idt_batcher_free(it);
        CHECK_EQ(settled_threads(threads0), threads0);
        CHECK_SNAP(before);
    }
    idt_batcher_free(NULL);
    idt_batch_free(NULL);
    idt_view_decref(v);
}

static void test_batch_stop_all(void) {
    idt_view *v = batch_view(500);
    REQUIRE(v != NULL);
    int64_t threads0 = baseline_threads(v);
    idt_batcher *a, *b, *c;
    idt_error err;
    REQUIRE(CHECK_OK(idt_batcher_new(v, 10, 0, 3, 4, &a, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_batcher_new(v, 10, 0, 2, 0, &b, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_batcher_new(v, 10, 0, 1, 0, &c, &err), err) == 0);
    idt_batch *x;
    CHECK_EQ(idt_batcher_next(a, &x, -1, &err), IDT_NEXT_BATCH);
    idt_batch_free(x);
    idt_batcher_stop_all();
    CHECK_EQ(settled_threads(threads0), threads0);
    CHECK_EQ(idt_batcher_next(a, &x, -1, &err), IDT_NEXT_END);
    CHECK_EQ(idt_batcher_next(b, &x, 0, &err), IDT_NEXT_END);
    idt_batcher_free(b);
    idt_batcher_free(a);
    idt_batcher_free(c);
    idt_batcher_stop_all(); /* nothing live */
    idt_view_decref(v);
}

static void test_batch_bad_args(void) {
    idt_view *v = batch_view(10);
    REQUIRE(v != NULL);
    idt_batcher *it = NULL;
    idt_error err;
    CHECK_ERR(idt_batcher_new(v, 0, 0, 1, 0, &it, &err), IDT_EVALUE, err, "batch_size must be at least 1, not 0");
    CHECK_ERR(idt_batcher_new(v, -5, 0, 1, 0, &it, &err), IDT_EVALUE, err, "-5");
    CHECK_ERR(idt_batcher_new(v, 4, 0, 0, 0, &it, &err), IDT_EVALUE, err, "threads must be at least 1, not 0");
    CHECK_ERR(idt_batcher_new(v, 4, 0, 1, -1, &it, &err), IDT_EVALUE, err, "readahead must be 0 or more, not -1");
    CHECK(it == NULL);
    idt_view_decref(v);
}

static void test_batch_empty(void) {
    idt_view *v = batch_view(0);
    REQUIRE(v != NULL);
    CHECK_EQ(idt_view_len(v), 0);
    CHECK_EQ(run_all(v, 5, 0, 1, 0, -1), 0);
    CHECK_EQ(run_all(v, 5, 0, 4, 8, -1), 0);
    CHECK_EQ(run_all(v, 5, 1, 4, 8, 0), 0);
    idt_view_decref(v);
}

/* Wait (up to 10 s) until every worker of `it` waits for room or has finished, so that no
 * thread is inside malloc at a fork (the sanitizers' allocators are not fork-safe). */
static int wait_idle(idt_batcher *it) {
    for (int i = 0; i < 1000; i++) {
        idt_batcher_stats st;
        idt_batcher_get_stats(it, &st);
        if (st.idle_workers == idt_batcher_workers(it)) return 1;
        usleep(10000);
    }
    return 0;
}

/* ---- the byte cap counts decoded strings ---- */

/* n rows of one UTF8 column "t" whose row i holds (i % 7 == 0 ? long : 3) ASCII chars. */
static idt_view *text_view(int64_t n, int64_t longlen) {
    char **s = malloc((size_t)n * sizeof *s);
    for (int64_t i = 0; i < n; i++) {
        int64_t l = i % 7 == 0 ? longlen : 3;
        s[i] = malloc((size_t)l + 1);
        memset(s[i], 'a' + (int)(i % 26), (size_t)l);
        s[i][l] = 0;
    }
    h_col col = {"t", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, NULL};
    idt_view *v = NULL;
    idt_error err;
    if (h_view(&col, 1, n, &v, &err)) h_fail(__FILE__, __LINE__, "view: %s", err.msg);
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
    return v;
}

static void test_batch_byte_cap(void) {
    enum { N = 700, LONG = 5000, BS = 4 };
    idt_view *v = text_view(N, LONG);
    REQUIRE(v != NULL);
    /* a batch holding a long row decodes to BS x LONG x 4 = 80,000 bytes: 25 such batches
     * fill the 2 MB cap, which a readahead of 1000 (and no fixed-width bytes) would not */
    const int64_t cap = 2000000, big = (int64_t)BS * LONG * 4;
    idt_batcher_set_max_bytes(cap);
    idt_error err;
    for (int64_t t = 1; t <= 4; t++) {
        idt_batcher *it;
        REQUIRE(CHECK_OK(idt_batcher_new(v, BS, 0, t, 1000, &it, &err), err) == 0);
        idt_batch *b;
        int64_t k = 0, w = idt_batcher_workers(it);
        CHECK_EQ(w, expected_workers(t, 1000, N / BS));
        idt_batcher_stats st;
        for (int rc; (rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH; k++) {
            CHECK(b->index == k && batch_matches(v, b, BS, N));
            CHECK_EQ(b->bytes, (int64_t)BS * b->widths[0] * 4);
            idt_batch_free(b);
            if (k == 0) { /* a slow consumer: the workers stop at the cap */
                CHECK(wait_idle(it));
                idt_batcher_get_stats(it, &st);
                CHECK_EQ(st.max_bytes, cap);
                CHECK(st.inflight_bytes >= cap - big);
                CHECK(st.inflight_bytes < cap + w * big);
            }
        }
        CHECK_EQ(k, N / BS);
        idt_batcher_get_stats(it, &st);
        CHECK(st.peak_bytes < cap + w * big);
        CHECK_EQ(st.inflight_bytes, 0);
        idt_batcher_free(it);
    }
    /* one batch larger than the cap still goes through, one at a time */
    idt_batcher_set_max_bytes(1000);
    CHECK_EQ(run_all(v, 50, 0, 3, 8, -1), 14);
    idt_batcher_set_max_bytes(0);
    idt_batcher *it;
    REQUIRE(CHECK_OK(idt_batcher_new(v, BS, 0, 2, 0, &it, &err), err) == 0);
    idt_batcher_stats st;
    idt_batcher_get_stats(it, &st);
    CHECK_EQ(st.max_bytes, IDT_BATCH_MAX_BYTES);
    idt_batcher_free(it);
    idt_view_decref(v);
}

/* ---- stop from another thread while a consumer is inside next() ---- */

typedef struct consumer {
    idt_batcher *it;
    const idt_view *v;
    int64_t bs, len;
    int timeout_ms;
    _Atomic int started;
    int64_t seen;   /* batches taken */
    int bad;        /* a wrong batch or an unexpected return code */
} consumer;

static void *consume(void *arg) {
    consumer *c = arg;
    idt_error err;
    atomic_store(&c->started, 1);
    for (;;) {
        idt_batch *b = NULL;
        int rc = idt_batcher_next(c->it, &b, c->timeout_ms, &err);
        if (rc == IDT_NEXT_TIMEOUT) continue;
        if (rc == IDT_NEXT_END) break;
        if (rc != IDT_NEXT_BATCH) {
            c->bad = 1;
            break;
        }
        if (b->index != c->seen || !batch_matches(c->v, b, c->bs, c->len)) c->bad = 1;
        idt_batch_free(b);
        c->seen++;
    }
    /* stays stopped */
    idt_batch *b = NULL;
    if (idt_batcher_next(c->it, &b, c->timeout_ms, &err) != IDT_NEXT_END) c->bad = 1;
    return NULL;
}

static void *stopper(void *arg) {
    idt_batcher_stop(arg);
    return NULL;
}

static void test_batch_stop_while_next(void) {
    idt_view *v = batch_view(3000);
    REQUIRE(v != NULL);
    int64_t threads0 = baseline_threads(v);
    idt_error err;
    unsigned seed = 7;
    for (int rep = 0; rep < 240; rep++) {
        int64_t t = 1 + rep % 3, ra = (rep / 3) % 2 ? 0 : 1 + rep % 5;
        consumer c = {0};
        c.v = v;
        c.bs = rep % 4 == 0 ? 3000 : rep % 4 == 1 ? 1 : 97;
        c.len = idt_view_len(v);
        c.timeout_ms = rep % 2 ? -1 : 1;
        REQUIRE(CHECK_OK(idt_batcher_new(v, c.bs, 0, t, ra, &c.it, &err), err) == 0);
        pthread_t ct, st[2];
        REQUIRE(pthread_create(&ct, NULL, consume, &c) == 0);
        while (!atomic_load(&c.started)) sched_yield();
        seed = seed * 1103515245u + 12345u;
        if (rep % 4) usleep((seed >> 16) % 3000);
        /* one stop, or two at once from two threads */
        int nst = rep % 5 == 0 ? 2 : 1;
        for (int i = 0; i < nst; i++) CHECK(pthread_create(&st[i], NULL, stopper, c.it) == 0);
        for (int i = 0; i < nst; i++) pthread_join(st[i], NULL);
        pthread_join(ct, NULL);
        CHECK(!c.bad);
        CHECK(c.seen <= idt_batcher_count(c.it));
        idt_batcher_stop(c.it); /* again: a no-op */
        idt_batcher_free(c.it);
        CHECK_EQ(settled_threads(threads0), threads0); /* the consumer and stoppers too */
    }
    idt_batcher_stop(NULL);
    idt_view_decref(v);
}

/* ---- fork with live iterators ---- */

#if defined(__SANITIZE_THREAD__)
#define H_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define H_TSAN 1
#endif
#endif

/* Wait for child `pid` up to 60 s; its exit status, or -1 when it hung (then killed). */
static int wait_child(pid_t pid) {
    for (int i = 0; i < 6000; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* In a forked child: finish the inherited iterator (from batch `from`), run a new threaded
 * one, free both, stop everything, and exit with 0 when all was right. */
static void child_body(idt_view *v, idt_batcher *it, int64_t from, int64_t bs) {
    int64_t len = idt_view_len(v), nb = len / bs + (len % bs != 0), k = from;
    idt_error err;
    idt_batch *b;
    int rc, bad = idt_batcher_workers(it) == 0 ? 0 : 6;
    while ((rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH) {
        if (b->index != k || !batch_matches(v, b, bs, len)) bad = 1;
        idt_batch_free(b);
        k++;
    }
    if (rc != 0 || k != nb) bad = 2;
    idt_batcher *fresh;
    if (idt_batcher_new(v, bs, 0, 3, 4, &fresh, &err)) {
        bad = 3;
    } else {
        for (k = 0; (rc = idt_batcher_next(fresh, &b, -1, &err)) == IDT_NEXT_BATCH; k++) {
            if (b->index != k || !batch_matches(v, b, bs, len)) bad = 4;
            idt_batch_free(b);
        }
        if (rc != 0 || k != nb) bad = 5;
        idt_batcher_free(fresh);
    }
    idt_batcher_stop_all();
    idt_batcher_free(it);
    _exit(bad);
}

static void test_batch_fork(void) {
#ifdef H_TSAN
    printf("  (skipped under ThreadSanitizer, which does not support fork with threads)\n");
#else
    idt_view *v = batch_view(2000);
    REQUIRE(v != NULL);
    int64_t threads0 = baseline_threads(v);
    idt_error err;
    for (int rep = 0; rep < 12; rep++) {
        int64_t t = 1 + rep % 4, ra = rep % 3 == 0 ? 0 : 1 + rep, bs = 37;
        idt_batcher *it;
        REQUIRE(CHECK_OK(idt_batcher_new(v, bs, 0, t, ra, &it, &err), err) == 0);
        idt_batch *b;
        CHECK_EQ(idt_batcher_next(it, &b, -1, &err), IDT_NEXT_BATCH);
        idt_batch_free(b);
        /* a second iterator a child only frees (or leaves to stop_all at exit) */
        idt_batcher *other;
        REQUIRE(CHECK_OK(idt_batcher_new(v, 5, 0, 2, 3, &other, &err), err) == 0);
        CHECK(wait_idle(it) && wait_idle(other));
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            if (rep % 3 == 0) idt_batcher_free(other);
            child_body(v, it, 1, bs);
        }
        CHECK_EQ(wait_child(pid), 0);
        /* the parent's iterators are untouched */
        int64_t k = 1;
        int rc;
        while ((rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH) {
            CHECK(b->index == k && batch_matches(v, b, bs, idt_view_len(v)));
            idt_batch_free(b);
            k++;
        }
        CHECK_EQ(rc, 0);
        CHECK_EQ(k, idt_batcher_count(it));
        idt_batcher_free(it);
        idt_batcher_free(other);
        CHECK_EQ(settled_threads(threads0), threads0);
    }
    idt_view_decref(v);
#endif
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_batch_content),
        H_TEST(test_batch_holds_view),
        H_TEST(test_batch_early_free),
        H_TEST(test_batch_stop_all),
        H_TEST(test_batch_bad_args),
        H_TEST(test_batch_empty),
        H_TEST(test_batch_byte_cap),
        H_TEST(test_batch_stop_while_next),
        H_TEST(test_batch_fork),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

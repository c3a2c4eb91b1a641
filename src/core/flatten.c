/* flatten.c: copying a view's rows into one new contiguous store, on several threads.
 *
 * Fixed columns go first (they come first in a store's layout): tasks of ~4 MB of one
 * column's rows, in file order. Worker threads gather tasks ahead into a bounded window of
 * buffers; the calling thread writes them in order (one writer: buffered writes to one file
 * serialize on its inode lock anyway), which lets the store's content hash be computed as
 * the bytes go out, from cache. Rows that lie in one contiguous run of a store are written
 * straight from the source mapping, with no gather copy. String columns come after: a first
 * pass measures each chunk's string bytes (parallel), so a second pass can write any chunk
 * from any thread at its byte offset; strings are collected as (pointer, length) spans and
 * written through a small stage. The calling thread reports progress between its steps; a
 * cancel stops every thread and drops the half-made store (and its file). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys.h"
#include "view.h"

enum { CHUNK_BYTES = 4 << 20, STR_SUB = 8192, STAGE = 1 << 20, MAX_THREADS = 64 };

typedef struct flat_job {
    idt_view *v;            /* the source */
    idt_view *fv;           /* its fixed columns only (NULL if none) */
    int64_t *fv_col;        /* per fv column: store column in the new schema */
    int64_t nfix;
    int64_t *str_j;         /* view column of each string column */
    int64_t *str_col;       /* its store column in the new schema */
    int64_t nstr;
    int64_t n, rows_per_chunk, nchunks;
    int64_t total;          /* progress units: n per fixed column, n per string pass */
    int64_t *chunk_bytes;   /* nchunks * nstr: string bytes, then (pass 2) byte starts */
    idt_store_builder *b;
    int pass;
    /* the fixed-column pipeline */
    idt_view **fcol;        /* per fixed column: a view of it alone */
    int64_t *t_start;       /* nfix + 1 prefix sums of tasks per column */
    int64_t *t_rows;        /* rows per task of each fixed column */
    int64_t ntasks, window;
    int64_t take, consumed; /* next task for a worker; next task to write (under mu) */
    char **slot_buf;        /* window buffers */
    const char **slot_ptr;  /* where task t's bytes are (slot t % window) */
    int64_t *slot_ready;    /* task held by each slot, or -1 */
    pthread_cond_t cv_ready, cv_space;
    _Atomic int64_t next;   /* next chunk to take */
    _Atomic int64_t done;   /* rows finished */
    _Atomic int stop;
    pthread_mutex_t mu;
    int rc;                 /* first error */
    idt_error err;
} flat_job;

typedef struct flat_scratch {
    const char **ptrs;
    uint64_t *lens;
    char *stage;
} flat_scratch;

static void job_fail(flat_job *J, int rc, const idt_error *e) {
    pthread_mutex_lock(&J->mu);
    if (!J->rc) {
        J->rc = rc;
        J->err = *e;
    }
    pthread_mutex_unlock(&J->mu);
    atomic_store(&J->stop, 1);
}

static int64_t sub_rows(const flat_job *J, int64_t j) {
    int64_t per = idt_view_column(J->v, j)->row_elems;
    int64_t r = STR_SUB / (per > 0 ? per : 1);
    return r > 0 ? r : 1;
}

/* String pass 1: string bytes of chunk k per string column. */
static int measure_chunk(flat_job *J, flat_scratch *S, int64_t k, idt_error *err) {
    int64_t a = k * J->rows_per_chunk, e = a + J->rows_per_chunk < J->n ? a + J->rows_per_chunk : J->n;
    for (int64_t q = 0; q < J->nstr; q++) {
        int64_t j = J->str_j[q], step = sub_rows(J, j), per = idt_view_column(J->v, j)->row_elems;
        uint64_t total = 0;
        for (int64_t r = a; r < e; r += step) {
            int64_t m = e - r < step ? e - r : step;
            if (idt_view_str_spans(J->v, j, r, m, S->ptrs, S->lens) < 0)
                return idt_error_set(err, IDT_ENOMEM, "out of memory");
            for (int64_t i = 0; i < m * per; i++) total += S->lens[i];
        }
        J->chunk_bytes[k * J->nstr + q] = (int64_t)total;
    }
    return 0;
}

/* String pass 2: write chunk k's strings. */
static int write_chunk(flat_job *J, flat_scratch *S, int64_t k, idt_error *err) {
    int64_t a = k * J->rows_per_chunk, e = a + J->rows_per_chunk < J->n ? a + J->rows_per_chunk : J->n;
    for (int64_t q = 0; q < J->nstr; q++) {
        int64_t j = J->str_j[q], step = sub_rows(J, j), per = idt_view_column(J->v, j)->row_elems;
        int64_t at = J->chunk_bytes[k * J->nstr + q];
        for (int64_t r = a; r < e; r += step) {
            int64_t m = e - r < step ? e - r : step;
            int ascii = idt_view_str_spans(J->v, j, r, m, S->ptrs, S->lens);
            if (ascii < 0) return idt_error_set(err, IDT_ENOMEM, "out of memory");
            int rc = idt_store_builder_put_strings(J->b, J->str_col[q], r * per, m * per, at, S->ptrs,
                                                   S->lens, ascii, S->stage, STAGE, err);
            if (rc) return rc;
            for (int64_t i = 0; i < m * per; i++) at += (int64_t)S->lens[i];
        }
    }
    return 0;
}

static void scratch_free(flat_scratch *S) {
    idt_free(S->ptrs);
    idt_free(S->lens);
    idt_free(S->stage);
}

static int scratch_new(flat_scratch *S, idt_error *err) {
    memset(S, 0, sizeof *S);
    S->ptrs = idt_malloc(STR_SUB * sizeof *S->ptrs);
    S->lens = idt_malloc(STR_SUB * sizeof *S->lens);
    S->stage = idt_malloc(STAGE);
    if (S->ptrs && S->lens && S->stage) return 0;
    scratch_free(S);
    return idt_error_set(err, IDT_ENOMEM, "out of memory");
}

/* Take and do chunks until none is left or the job stops. With `prog` (the calling thread),
 * report progress after each chunk. */
static void run_chunks(flat_job *J, const idt_progress *prog) {
    flat_scratch S;
    idt_error e;
    int rc = scratch_new(&S, &e);
    if (rc) {
        job_fail(J, rc, &e);
        return;
    }
    while (!atomic_load(&J->stop)) {
        int64_t k = atomic_fetch_add(&J->next, 1);
        if (k >= J->nchunks) break;
        rc = J->pass == 1 ? measure_chunk(J, &S, k, &e) : write_chunk(J, &S, k, &e);
        if (rc) {
            job_fail(J, rc, &e);
            break;
        }
        int64_t a = k * J->rows_per_chunk;
        int64_t rows = J->n - a < J->rows_per_chunk ? J->n - a : J->rows_per_chunk;
        int64_t d = atomic_fetch_add(&J->done, rows) + rows;
        if (prog && (rc = idt_progress_report(prog, d, J->total, &e))) {
            job_fail(J, rc, &e);
            break;
        }
    }
    scratch_free(&S);
}

static void *worker_main(void *arg) {
    run_chunks(arg, NULL);
    return NULL;
}

/* One pass over every chunk on `nthreads` threads (the caller being one). */
static int run_pass(flat_job *J, int pass, int64_t nthreads, const idt_progress *prog) {
    J->pass = pass;
    if (nthreads > J->nchunks) nthreads = J->nchunks > 0 ? J->nchunks : 1;
    atomic_store(&J->next, 0);
    pthread_t th[MAX_THREADS];
    int64_t started = 0;
    for (int64_t t = 1; t < nthreads; t++) {
        if (pthread_create(&th[started], NULL, worker_main, J) != 0) break; /* fewer is fine */
        started++;
    }
    run_chunks(J, prog);
    if (!J->rc && prog) { /* the caller may finish first: keep reporting while others work */
        idt_error e;
        int rc = idt_progress_report(prog, atomic_load(&J->done), J->total, &e);
        if (rc) job_fail(J, rc, &e);
    }
    for (int64_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    return J->rc;
}

/* ---- fixed columns: an ordered pipeline ---- */

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void task_of(const flat_job *J, int64_t t, int64_t *q, int64_t *a, int64_t *e) {
    int64_t k = 0;
    while (t >= J->t_start[k + 1]) k++;
    *q = k;
    *a = (t - J->t_start[k]) * J->t_rows[k];
    *e = *a + J->t_rows[k] < J->n ? *a + J->t_rows[k] : J->n;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Bring the source bytes [p, p + n) into memory and into this process's page tables, so
 * that the writing thread neither waits for the disk nor takes a page fault per page on
 * them: MADV_POPULATE_READ (Linux 5.14), else a read of one byte per page. Advice only: a
 * failure costs speed, never data. */
static void populate(const char *p, size_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (!n || pg <= 0) return;
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(pg - 1), hi = (uintptr_t)p + n;
    if (idt_madvise((void *)lo, hi - lo, MADV_POPULATE_READ) == 0) return;
    volatile const char *q = (volatile const char *)lo;
    for (uintptr_t a = lo; a < hi; a += (uintptr_t)pg) (void)q[a - lo];
}

/* Make task t's bytes available in slot t % window: a pointer into the source when its rows
 * are one contiguous run of a store (its pages populated here, on a worker, ahead of the
 * writing thread: a cold source is read from disk in parallel with the writes, and a cached
 * one costs the writer no page faults), else a gather into the slot's buffer. */
static void fill_task(flat_job *J, int64_t t) {
    int64_t q, a, e, w = t % J->window;
    task_of(J, t, &q, &a, &e);
    const idt_view *cv = J->fcol[q];
    const idt_column *c = idt_view_column(cv, 0);
    int64_t k = idt_view_find_seg(cv, a);
    const idt_segment *sg = &cv->segs[k];
    if (sg->kind == IDT_SEG_RUN && sg->step == 1 && cv->cum[k + 1] >= e) {
        const idt_store *st = sg->store;
        J->slot_ptr[w] = st->cols[idt_view_store_col(cv, st, 0)].data +
                         (sg->start + (a - cv->cum[k])) * c->row_bytes;
        populate(J->slot_ptr[w], (size_t)((e - a) * c->row_bytes));
        return;
    }
    idt_rowsel sel = {a, 1, e - a, NULL};
    void *outs[1] = {J->slot_buf[w]};
    int64_t widths[1] = {0};
    idt_view_gather(cv, &sel, outs, widths);
    J->slot_ptr[w] = J->slot_buf[w];
}

static void *pipe_worker(void *arg) {
    flat_job *J = arg;
    pthread_mutex_lock(&J->mu);
    for (;;) {
        while (!atomic_load(&J->stop) && J->take < J->ntasks && J->take >= J->consumed + J->window)
            pthread_cond_wait(&J->cv_space, &J->mu);
        if (atomic_load(&J->stop) || J->take >= J->ntasks) break;
        int64_t t = J->take++;
        pthread_mutex_unlock(&J->mu);
        fill_task(J, t);
        pthread_mutex_lock(&J->mu);
        J->slot_ready[t % J->window] = t;
        pthread_cond_broadcast(&J->cv_ready);
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* Write every fixed column, in file order, with nthreads - 1 gathering workers. */
static int run_fixed(flat_job *J, int64_t nthreads, const idt_progress *prog, idt_error *err) {
    pthread_t th[MAX_THREADS];
    int64_t started = 0, done_rows = 0;
    if (nthreads > J->ntasks) nthreads = J->ntasks > 0 ? J->ntasks : 1;
    for (int64_t t = 1; t < nthreads; t++) {
        if (pthread_create(&th[started], NULL, pipe_worker, J) != 0) break; /* fewer is fine */
        started++;
    }
    int rc = 0;
    for (int64_t t = 0; t < J->ntasks && !rc; t++) {
        int64_t w = t % J->window;
        if (started == 0) {
            fill_task(J, t);
        } else {
            pthread_mutex_lock(&J->mu);
            while (J->slot_ready[w] != t) pthread_cond_wait(&J->cv_ready, &J->mu);
            pthread_mutex_unlock(&J->mu);
        }
        int64_t q, a, e;
        task_of(J, t, &q, &a, &e);
        rc = idt_store_builder_write_fixed(J->b, J->fv_col[q], a, e - a, J->slot_ptr[w], err);
        pthread_mutex_lock(&J->mu);
        J->slot_ready[w] = -1;
        J->consumed = t + 1;
        pthread_cond_broadcast(&J->cv_space);
        pthread_mutex_unlock(&J->mu);
        done_rows += e - a;
        if (!rc && prog) rc = idt_progress_report(prog, atomic_load(&J->done) + done_rows, J->total, err);
    }
    pthread_mutex_lock(&J->mu);
    atomic_store(&J->stop, 1);
    pthread_cond_broadcast(&J->cv_space);
    pthread_mutex_unlock(&J->mu);
    for (int64_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    atomic_store(&J->stop, 0);
    atomic_fetch_add(&J->done, done_rows);
    return rc;
}

static int fixed_setup(flat_job *J, int64_t threads, idt_error *err) {
    J->fcol = idt_calloc((size_t)J->nfix, sizeof *J->fcol);
    J->t_start = idt_calloc((size_t)J->nfix + 1, sizeof *J->t_start);
    J->t_rows = idt_calloc((size_t)J->nfix, sizeof *J->t_rows);
    if (!J->fcol || !J->t_start || !J->t_rows) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int64_t maxbytes = 1;
    for (int64_t q = 0; q < J->nfix; q++) {
        const idt_column *c = idt_view_column(J->fv, q);
        const char *name = c->name;
        int rc = idt_view_select(J->fv, &name, 1, &J->fcol[q], err);
        if (rc) return rc;
        int64_t rows = CHUNK_BYTES / (c->row_bytes > 0 ? c->row_bytes : 1);
        rows = rows < 1 ? 1 : rows > ((int64_t)1 << 20) ? ((int64_t)1 << 20) : rows;
        J->t_rows[q] = rows;
        J->t_start[q + 1] = J->t_start[q] + (J->n + rows - 1) / rows;
        if (rows * c->row_bytes > maxbytes) maxbytes = rows * c->row_bytes;
    }
    J->ntasks = J->t_start[J->nfix];
    J->window = threads > 1 ? 2 * threads : 1;
    if (J->window > J->ntasks) J->window = J->ntasks > 0 ? J->ntasks : 1;
    J->slot_buf = idt_calloc((size_t)J->window, sizeof *J->slot_buf);
    J->slot_ptr = idt_calloc((size_t)J->window, sizeof *J->slot_ptr);
    J->slot_ready = idt_calloc((size_t)J->window, sizeof *J->slot_ready);
    if (!J->slot_buf || !J->slot_ptr || !J->slot_ready) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t w = 0; w < J->window; w++) {
        J->slot_ready[w] = -1;
        if (!(J->slot_buf[w] = idt_malloc((size_t)maxbytes)))
            return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    return 0;
}

static void fixed_free(flat_job *J) {
    for (int64_t q = 0; J->fcol && q < J->nfix; q++)
        if (J->fcol[q]) idt_view_decref(J->fcol[q]);
    for (int64_t w = 0; J->slot_buf && w < J->window; w++) idt_free(J->slot_buf[w]);
    idt_free(J->fcol);
    idt_free(J->t_start);
    idt_free(J->t_rows);
    idt_free(J->slot_buf);
    idt_free((void *)J->slot_ptr);
    idt_free(J->slot_ready);
}

int idt_view_flatten_store(idt_view *v, int64_t threads, const idt_progress *prog,
                           idt_store **out, idt_error *err) {
    return idt_view_flatten_store_in(v, threads, prog, NULL, out, err);
}

int idt_view_flatten_store_in(idt_view *v, int64_t threads, const idt_progress *prog,
                              idt_blob_pool *pool, idt_store **out, idt_error *err) {
    int64_t nc = v->ncols, n = idt_view_len(v);
    flat_job J;
    memset(&J, 0, sizeof J);
    pthread_mutex_init(&J.mu, NULL);
    pthread_cond_init(&J.cv_ready, NULL);
    pthread_cond_init(&J.cv_space, NULL);
    J.v = v;
    J.n = n;
    idt_schema *schema = NULL;
    idt_column *cd = idt_calloc((size_t)nc, sizeof *cd);
    const char **fnames = idt_calloc((size_t)nc, sizeof *fnames);
    int64_t *sbytes = NULL;
    J.fv_col = idt_calloc((size_t)nc, sizeof *J.fv_col);
    J.str_j = idt_calloc((size_t)nc, sizeof *J.str_j);
    J.str_col = idt_calloc((size_t)nc, sizeof *J.str_col);
    int rc = 0;
    if (!cd || !fnames || !J.fv_col || !J.str_j || !J.str_col) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    int64_t str_elems = 0;
    for (int64_t j = 0; j < nc; j++) {
        cd[j] = *idt_view_column(v, j); /* copied by idt_schema_new */
        if (!idt_column_is_var(&cd[j])) {
            fnames[J.nfix++] = cd[j].name;
        } else {
            J.str_j[J.nstr++] = j;
            str_elems += cd[j].row_elems;
        }
    }
    rc = idt_schema_new(cd, nc, &schema, err);
    if (rc) goto done;
    /* fixed columns in the store's layout order (by name), so they are written in file order */
    qsort(fnames, (size_t)J.nfix, sizeof *fnames, cmp_name);
    if (J.nfix) {
        rc = idt_view_select(v, fnames, J.nfix, &J.fv, err);
        if (rc) goto done;
        for (int64_t q = 0; q < J.nfix; q++) J.fv_col[q] = idt_schema_find(schema, fnames[q]);
    }
    for (int64_t q = 0; q < J.nstr; q++)
        J.str_col[q] = idt_schema_find(schema, idt_view_column(v, J.str_j[q])->name);
    int64_t per_row = 16 * str_elems; /* string chunks: spans of ~4 MB */
    J.rows_per_chunk = CHUNK_BYTES / (per_row > 0 ? per_row : 1);
    if (J.rows_per_chunk < 1) J.rows_per_chunk = 1;
    if (J.rows_per_chunk > ((int64_t)1 << 20)) J.rows_per_chunk = (int64_t)1 << 20;
    J.nchunks = (n + J.rows_per_chunk - 1) / J.rows_per_chunk;
    if (threads < 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (cpus < 8 ? cpus : 8) : 1;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    J.total = n * J.nfix + (J.nstr ? 2 * n : 0);
    sbytes = idt_calloc((size_t)nc, sizeof *sbytes);
    if (!sbytes) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    if (J.nstr) {
        J.chunk_bytes = idt_calloc((size_t)(J.nchunks ? J.nchunks : 1) * (size_t)J.nstr, sizeof(int64_t));
        if (!J.chunk_bytes) {
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            goto done;
        }
        rc = run_pass(&J, 1, threads, prog);
        if (rc) {
            *err = J.err;
            goto done;
        }
        /* byte counts -> starts, per column; totals for the builder */
        for (int64_t q = 0; q < J.nstr; q++) {
            int64_t at = 0;
            for (int64_t k = 0; k < J.nchunks; k++) {
                int64_t c = J.chunk_bytes[k * J.nstr + q];
                J.chunk_bytes[k * J.nstr + q] = at;
                at += c;
            }
            sbytes[J.str_col[q]] = at;
        }
    }
    rc = idt_store_builder_new_in(schema, n, sbytes, pool, &J.b, err);
    if (rc) goto done;
    if (J.nfix) {
        rc = fixed_setup(&J, threads, err);
        if (!rc) rc = run_fixed(&J, threads, prog, err);
        if (rc) goto done;
    }
    if (J.nstr) {
        rc = run_pass(&J, 2, threads, prog);
        if (rc) {
            *err = J.err;
            goto done;
        }
    }
    idt_store_builder *b = J.b;
    J.b = NULL;
    rc = idt_store_builder_finish(b, out, err);
done:
    idt_store_builder_free(J.b);
    if (J.fv) idt_view_decref(J.fv);
    idt_schema_decref(schema);
    idt_free(cd);
    idt_free(fnames);
    idt_free(sbytes);
    idt_free(J.fv_col);
    idt_free(J.str_j);
    idt_free(J.str_col);
    idt_free(J.chunk_bytes);
    fixed_free(&J);
    pthread_cond_destroy(&J.cv_ready);
    pthread_cond_destroy(&J.cv_space);
    pthread_mutex_destroy(&J.mu);
    return rc;
}

int idt_view_flatten(idt_view *v, int64_t threads, const idt_progress *prog, idt_view **out,
                     idt_error *err) {
    idt_store *st;
    int rc = idt_view_flatten_store(v, threads, prog, &st, err);
    if (rc) return rc;
    int64_t *cols = idt_calloc((size_t)v->ncols, sizeof *cols);
    if (!cols) {
        idt_store_decref(st);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    for (int64_t j = 0; j < v->ncols; j++) cols[j] = idt_schema_find(st->schema, idt_view_column(v, j)->name);
    rc = idt_view_from_store(st, cols, v->ncols, out, err);
    idt_store_decref(st);
    idt_free(cols);
    return rc;
}

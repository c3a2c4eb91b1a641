/* flatten.c: copying a view's rows into one new contiguous store, on several threads.
 *
 * The rows are cut into chunks of a few MB. Pass 1 (only when there are string columns)
 * measures each chunk's string bytes, so that pass 2 knows where every chunk's strings go
 * and any thread can write any chunk: fixed columns are gathered into a chunk buffer and
 * written at their row offset, strings are collected as spans and written through a small
 * stage at their byte offset. The calling thread works too and reports progress between
 * its chunks; a cancel stops every thread and drops the half-made store (and its file). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
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
    int64_t *chunk_bytes;   /* nchunks * nstr: string bytes, then (pass 2) byte starts */
    idt_store_builder *b;
    int pass;
    _Atomic int64_t next;   /* next chunk to take */
    _Atomic int64_t done;   /* rows finished */
    _Atomic int stop;
    pthread_mutex_t mu;
    int rc;                 /* first error */
    idt_error err;
} flat_job;

typedef struct flat_scratch {
    void **outs;            /* per fv column */
    int64_t *widths;        /* zeros: fv has no string columns */
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

/* Pass 1: string bytes of chunk k per string column. */
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

/* Pass 2: write chunk k. */
static int write_chunk(flat_job *J, flat_scratch *S, int64_t k, idt_error *err) {
    int64_t a = k * J->rows_per_chunk, e = a + J->rows_per_chunk < J->n ? a + J->rows_per_chunk : J->n;
    if (J->fv) {
        idt_rowsel sel = {a, 1, e - a, NULL};
        idt_view_gather(J->fv, &sel, S->outs, S->widths);
        for (int64_t q = 0; q < J->nfix; q++) {
            int rc = idt_store_builder_write_fixed(J->b, J->fv_col[q], a, e - a, S->outs[q], err);
            if (rc) return rc;
        }
    }
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

static void scratch_free(flat_scratch *S, int64_t nfix) {
    if (S->outs)
        for (int64_t q = 0; q < nfix; q++) idt_free(S->outs[q]);
    idt_free(S->outs);
    idt_free(S->widths);
    idt_free(S->ptrs);
    idt_free(S->lens);
    idt_free(S->stage);
}

static int scratch_new(flat_job *J, flat_scratch *S, idt_error *err) {
    memset(S, 0, sizeof *S);
    S->outs = idt_calloc((size_t)(J->nfix ? J->nfix : 1), sizeof *S->outs);
    S->widths = idt_calloc((size_t)(J->nfix ? J->nfix : 1), sizeof *S->widths);
    S->ptrs = idt_malloc(STR_SUB * sizeof *S->ptrs);
    S->lens = idt_malloc(STR_SUB * sizeof *S->lens);
    S->stage = idt_malloc(STAGE);
    int ok = S->outs && S->widths && S->ptrs && S->lens && S->stage;
    for (int64_t q = 0; ok && q < J->nfix; q++) {
        int64_t rb = idt_view_column(J->fv, q)->row_bytes;
        S->outs[q] = idt_malloc((size_t)(rb * J->rows_per_chunk > 0 ? rb * J->rows_per_chunk : 1));
        ok = S->outs[q] != NULL;
    }
    if (ok) return 0;
    scratch_free(S, J->nfix);
    return idt_error_set(err, IDT_ENOMEM, "out of memory");
}

/* Take and do chunks until none is left or the job stops. With `prog` (the calling thread),
 * report progress after each chunk. */
static void run_chunks(flat_job *J, const idt_progress *prog) {
    flat_scratch S;
    idt_error e;
    int rc = scratch_new(J, &S, &e);
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
        if (prog && (rc = idt_progress_report(prog, d, 2 * J->n, &e))) {
            job_fail(J, rc, &e);
            break;
        }
    }
    scratch_free(&S, J->nfix);
}

static void *worker_main(void *arg) {
    run_chunks(arg, NULL);
    return NULL;
}

/* One pass over every chunk on `nthreads` threads (the caller being one). */
static int run_pass(flat_job *J, int pass, int64_t nthreads, const idt_progress *prog) {
    J->pass = pass;
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
        int rc = idt_progress_report(prog, atomic_load(&J->done), 2 * J->n, &e);
        if (rc) job_fail(J, rc, &e);
    }
    for (int64_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    return J->rc;
}

int idt_view_flatten_store(idt_view *v, int64_t threads, const idt_progress *prog,
                           idt_store **out, idt_error *err) {
    int64_t nc = v->ncols, n = idt_view_len(v);
    flat_job J;
    memset(&J, 0, sizeof J);
    pthread_mutex_init(&J.mu, NULL);
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
    int64_t fixed_bytes = 0, str_elems = 0;
    for (int64_t j = 0; j < nc; j++) {
        cd[j] = *idt_view_column(v, j); /* copied by idt_schema_new */
        if (cd[j].kind == IDT_COL_FIXED) {
            fnames[J.nfix++] = cd[j].name;
            fixed_bytes += cd[j].row_bytes;
        } else {
            J.str_j[J.nstr++] = j;
            str_elems += cd[j].row_elems;
        }
    }
    rc = idt_schema_new(cd, nc, &schema, err);
    if (rc) goto done;
    if (J.nfix) {
        rc = idt_view_select(v, fnames, J.nfix, &J.fv, err);
        if (rc) goto done;
        for (int64_t q = 0; q < J.nfix; q++) J.fv_col[q] = idt_schema_find(schema, fnames[q]);
    }
    for (int64_t q = 0; q < J.nstr; q++)
        J.str_col[q] = idt_schema_find(schema, idt_view_column(v, J.str_j[q])->name);
    int64_t per_row = fixed_bytes + 16 * str_elems;
    J.rows_per_chunk = CHUNK_BYTES / (per_row > 0 ? per_row : 1);
    if (J.rows_per_chunk < 1) J.rows_per_chunk = 1;
    if (J.rows_per_chunk > ((int64_t)1 << 20)) J.rows_per_chunk = (int64_t)1 << 20;
    J.nchunks = (n + J.rows_per_chunk - 1) / J.rows_per_chunk;
    if (threads < 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (cpus < 8 ? cpus : 8) : 1;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > J.nchunks) threads = J.nchunks > 0 ? J.nchunks : 1;
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
    } else {
        atomic_store(&J.done, n); /* no measuring pass: count it as done */
    }
    rc = idt_store_builder_new(schema, n, sbytes, &J.b, err);
    if (rc) goto done;
    if (threads > 1 || J.nstr) idt_store_builder_unordered(J.b); /* hash at finish */
    rc = run_pass(&J, 2, threads, prog);
    if (rc) {
        *err = J.err;
        goto done;
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

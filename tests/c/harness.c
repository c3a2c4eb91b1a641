/* harness.c: the test runner, checks and helpers of harness.h. */
#include "harness.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int h_test_failures;
static int skip_leak_check;
static const char *cur_test = "?";

void h_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: [%s] ", file, line, cur_test);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    h_test_failures++;
}

int h_check_ok(int rc, const idt_error *err, const char *file, int line, const char *expr) {
    if (rc != 0)
        h_fail(file, line, "%s returned %d (expected 0): %s", expr, rc, err->msg);
    return rc;
}

int h_check_err(int rc, int code, const idt_error *err, const char *needle, const char *file,
                int line, const char *expr) {
    if (rc != code)
        h_fail(file, line, "%s returned %d, expected %d (msg: %s)", expr, rc, code,
               rc ? err->msg : "");
    else if (err->code != code)
        h_fail(file, line, "%s: err.code is %d, expected %d", expr, err->code, code);
    else if (!err->msg[0])
        h_fail(file, line, "%s: empty error message", expr);
    else if (needle && !strstr(err->msg, needle))
        h_fail(file, line, "%s: message \"%s\" does not mention \"%s\"", expr, err->msg, needle);
    return rc;
}

/* ---- snapshots ---- */

void h_snap_take(h_snap *s) {
    idt_sys_stats_get(&s->sys);
    idt_tmp_stats_get(&s->tmp);
}

int h_snap_equal(const h_snap *a, const h_snap *b, char *buf, size_t n) {
    if (!memcmp(&a->sys, &b->sys, sizeof a->sys) && a->tmp.live_blobs == b->tmp.live_blobs &&
        a->tmp.arena_chunks == b->tmp.arena_chunks && a->tmp.file_blobs == b->tmp.file_blobs)
        return 1;
    if (buf)
        snprintf(buf, n,
                 "allocs %lld -> %lld, maps %lld -> %lld, fds %lld -> %lld, blobs %lld -> %lld, "
                 "chunks %lld -> %lld, file blobs %lld -> %lld",
                 (long long)a->sys.allocs, (long long)b->sys.allocs, (long long)a->sys.maps,
                 (long long)b->sys.maps, (long long)a->sys.fds, (long long)b->sys.fds,
                 (long long)a->tmp.live_blobs, (long long)b->tmp.live_blobs,
                 (long long)a->tmp.arena_chunks, (long long)b->tmp.arena_chunks,
                 (long long)a->tmp.file_blobs, (long long)b->tmp.file_blobs);
    return 0;
}

/* ---- directories ---- */

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void h_names_list(const char *dir, h_names *out) {
    out->n = 0;
    out->names = NULL;
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            out->names = realloc(out->names, (size_t)cap * sizeof *out->names);
        }
        out->names[out->n++] = strdup(e->d_name);
    }
    closedir(d);
    if (out->n) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_name);
}

void h_names_free(h_names *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

int h_names_equal(const h_names *a, const h_names *b, char *buf, size_t n) {
    int i = 0;
    for (; i < a->n && i < b->n; i++)
        if (strcmp(a->names[i], b->names[i])) break;
    if (i == a->n && i == b->n) return 1;
    if (buf)
        snprintf(buf, n, "%d entries -> %d; first difference: '%s' vs '%s'", a->n, b->n,
                 i < a->n ? a->names[i] : "(none)", i < b->n ? b->names[i] : "(none)");
    return 0;
}

int h_count_files(void) {
    const char *dir;
    idt_error err;
    if (idt_tmp_procdir(&dir, &err)) return -1;
    h_names l;
    h_names_list(dir, &l);
    int n = l.n;
    h_names_free(&l);
    return n;
}

int h_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- stores and views ---- */

static int64_t col_elems(const h_col *c) {
    int64_t e = 1;
    for (int32_t d = 0; d < c->ndim; d++) e *= c->shape[d];
    return e;
}

static int64_t piece_len(const h_col *c, int64_t i) {
    const char *const *p = c->data;
    return c->lens ? c->lens[i] : (int64_t)strlen(p[i]);
}

int h_store(const h_col *cols, int64_t ncols, int64_t nrows, idt_store **out, idt_error *err) {
    idt_column *desc = calloc((size_t)ncols, sizeof *desc);
    for (int64_t i = 0; i < ncols; i++) {
        desc[i].name = (char *)cols[i].name;
        desc[i].kind = cols[i].kind;
        snprintf(desc[i].dtype, sizeof desc[i].dtype, "%s",
                 cols[i].kind == IDT_COL_FIXED ? cols[i].dtype
                 : cols[i].kind == IDT_COL_UTF8 ? "U" : "S");
        desc[i].itemsize = cols[i].kind == IDT_COL_FIXED ? cols[i].itemsize : 0;
        desc[i].ndim = cols[i].ndim;
        desc[i].shape = (int64_t *)cols[i].shape;
    }
    idt_schema *schema = NULL;
    int rc = idt_schema_new(desc, ncols, &schema, err);
    free(desc);
    if (rc) return rc;
    int64_t nc = schema->ncols;
    int64_t *str_bytes = calloc((size_t)nc, sizeof *str_bytes);
    int64_t *src_of = calloc((size_t)nc, sizeof *src_of); /* schema column -> cols index */
    for (int64_t i = 0; i < ncols; i++) {
        int64_t c = idt_schema_find(schema, cols[i].name);
        src_of[c] = i;
        const h_col *hc = &cols[i];
        int64_t nstr = nrows * col_elems(hc);
        if (hc->kind == IDT_COL_FIXED) continue;
        if (hc->width > 0 && hc->kind == IDT_COL_UTF8)
            str_bytes[c] = idt_ucs4_utf8_len(hc->data, nstr, hc->width, NULL);
        else if (hc->width > 0)
            str_bytes[c] = idt_fixed_bytes_len(hc->data, nstr, hc->width);
        else
            for (int64_t k = 0; k < nstr; k++) str_bytes[c] += piece_len(hc, k);
    }
    idt_store_builder *b = NULL;
    rc = idt_store_builder_new(schema, nrows, str_bytes, &b, err);
    idt_schema_decref(schema);
    free(str_bytes);
    for (int64_t c = 0; !rc && c < nc; c++) {
        const h_col *hc = &cols[src_of[c]];
        int64_t per = col_elems(hc), nstr = nrows * per;
        if (hc->kind == IDT_COL_FIXED) {
            /* rows in two parts, the second half first: rows may come in any order */
            int64_t rb = hc->itemsize * per, half = nrows / 2;
            const char *d = hc->data;
            if (rb == 0 || nrows == 0) continue;
            rc = idt_store_builder_write_fixed(b, c, half, nrows - half, d + half * rb, err);
            if (!rc) rc = idt_store_builder_write_fixed(b, c, 0, half, d, err);
            continue;
        }
        for (int64_t k = 0; !rc && k < nstr; k += 3) {
            int64_t m = nstr - k < 3 ? nstr - k : 3;
            if (hc->width > 0 && hc->kind == IDT_COL_UTF8)
                rc = idt_store_builder_append_ucs4(b, c, m, (const uint32_t *)hc->data + k * hc->width,
                                                   hc->width, err);
            else if (hc->width > 0)
                rc = idt_store_builder_append_fixed_bytes(b, c, m, (const char *)hc->data + k * hc->width,
                                                          hc->width, err);
            else {
                int64_t lens[3];
                for (int64_t q = 0; q < m; q++) lens[q] = piece_len(hc, k + q);
                rc = idt_store_builder_append_pieces(b, c, m, (const char *const *)hc->data + k, lens,
                                                     err);
            }
        }
    }
    free(src_of);
    if (rc) {
        idt_store_builder_free(b);
        return rc;
    }
    return idt_store_builder_finish(b, out, err);
}

int h_view_of(idt_store *st, idt_view **out, idt_error *err) {
    int64_t nc = st->schema->ncols;
    int64_t *cols = malloc((size_t)nc * sizeof *cols);
    for (int64_t j = 0; j < nc; j++) cols[j] = j;
    int rc = idt_view_from_store(st, cols, nc, out, err);
    free(cols);
    return rc;
}

int h_view(const h_col *cols, int64_t ncols, int64_t nrows, idt_view **out, idt_error *err) {
    idt_store *st;
    int rc = h_store(cols, ncols, nrows, &st, err);
    if (rc) return rc;
    rc = h_view_of(st, out, err);
    idt_store_decref(st);
    return rc;
}

static int64_t out_row_bytes(const idt_column *c, int64_t w) {
    if (c->kind == IDT_COL_FIXED) return c->row_bytes;
    return c->row_elems * w * (c->kind == IDT_COL_UTF8 ? 4 : 1);
}

void h_gather(const idt_view *v, const idt_rowsel *sel, void **outs, int64_t *widths) {
    int64_t *w = widths ? widths : malloc((size_t)v->ncols * sizeof *w);
    idt_error err;
    idt_view_str_widths(v, sel, w, &err);
    for (int64_t j = 0; j < v->ncols; j++) {
        size_t n = (size_t)(sel->count * out_row_bytes(idt_view_column(v, j), w[j]));
        outs[j] = malloc(n ? n : 1);
        memset(outs[j], 0xAB, n); /* gather must overwrite every byte */
    }
    idt_view_gather(v, sel, outs, w);
    if (!widths) free(w);
}

void h_free_outs(void **outs, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        free(outs[j]);
        outs[j] = NULL;
    }
}

int64_t *h_col_i64(const idt_view *v, int64_t j) {
    int64_t n = idt_view_len(v);
    int64_t *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    int64_t w[64] = {0};
    void *outs[64] = {0};
    idt_rowsel sel = {0, 1, n, NULL};
    outs[j] = out;
    /* gather only column j: a one-column view sharing v's segments is not needed, the
     * other columns go to scratch buffers */
    idt_error err;
    idt_view_str_widths(v, &sel, w, &err);
    for (int64_t q = 0; q < v->ncols; q++)
        if (q != j) {
            size_t sz = (size_t)(n * out_row_bytes(idt_view_column(v, q), w[q]));
            outs[q] = malloc(sz ? sz : 1);
        }
    idt_view_gather(v, &sel, outs, w);
    for (int64_t q = 0; q < v->ncols; q++)
        if (q != j) free(outs[q]);
    return out;
}

int64_t h_vcol(const idt_view *v, const char *name) {
    for (int64_t j = 0; j < v->ncols; j++)
        if (!strcmp(idt_view_column(v, j)->name, name)) return j;
    return -1;
}

/* ---- randomness and time ---- */

static uint64_t rng_state = 0x1234567;

void h_seed(uint64_t s) { rng_state = s; }

uint64_t h_rand(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

int64_t h_range(int64_t lo, int64_t hi) {
    return lo + (int64_t)(h_rand() % (uint64_t)(hi - lo + 1));
}

double h_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- runner ---- */

void h_no_leak_check(void) { skip_leak_check = 1; }

static void procdir_names(h_names *l) {
    const char *dir;
    idt_error err;
    if (idt_tmp_procdir(&dir, &err)) {
        l->n = 0;
        l->names = NULL;
        return;
    }
    h_names_list(dir, l);
}

int h_main(const h_test *tests, int n, int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *filter = argc > 1 ? argv[1] : NULL;
    /* Warm up: the temp area, this process's directory and the current arena chunk live
     * for the whole process; make them before the first leak snapshot. */
    {
        idt_blob *b;
        idt_error err;
        if (idt_blob_new(1, &b, &err) != 0) {
            printf("cannot use the temp area: %s\n0 passed, 1 failed\n", err.msg);
            return 1;
        }
        idt_blob_decref(b);
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_test = tests[i].name;
        h_test_failures = 0;
        skip_leak_check = 0;
        h_snap before;
        h_names files_before;
        procdir_names(&files_before);
        h_snap_take(&before);
        double t0 = h_now();
        tests[i].fn();
        double dt = h_now() - t0;
        idt_fault_reset();
        if (!skip_leak_check) {
            h_snap after;
            char buf[256];
            h_snap_take(&after);
            if (!h_snap_equal(&before, &after, buf, sizeof buf))
                h_fail(__FILE__, __LINE__, "test leaked: %s", buf);
            h_names files_after;
            procdir_names(&files_after);
            if (!h_names_equal(&files_before, &files_after, buf, sizeof buf))
                h_fail(__FILE__, __LINE__, "temp files changed: %s", buf);
            h_names_free(&files_after);
        }
        h_names_free(&files_before);
        if (h_test_failures) {
            failed++;
            printf("FAIL %s (%d failed checks, %.2fs)\n", tests[i].name, h_test_failures, dt);
        } else {
            passed++;
            printf("ok   %s (%.2fs)\n", tests[i].name, dt);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

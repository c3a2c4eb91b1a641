/* test_view.c: views (slice, take, filter, concat, select, shuffle, remove_strings) and
 * gathering, each checked against a plain model: the list of row ids a view should show. */
#include <stdlib.h>

#include "harness.h"
#include "utf8.h"

/* ---- the model ----
 * Row id k of every test store holds:
 *   "id": int64 k;  "m": int32[2] {2k, -k};
 *   "s":  UTF8 "s<k>" followed by (k % 4) e-acutes, or "" when k % 7 == 3;
 *   "b":  BYTES "<3k>" followed by 0xFF when k % 5 == 0. */

static int model_s(int64_t k, uint32_t *out) {
    if (k % 7 == 3) return 0;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "s%lld", (long long)k);
    for (int i = 0; i < n; i++) out[i] = (unsigned char)buf[i];
    for (int i = 0; i < k % 4; i++) out[n++] = 0xE9;
    return n;
}

static int model_b(int64_t k, char *out) {
    int n = snprintf(out, 32, "%lld", (long long)(3 * k));
    if (k % 5 == 0) out[n++] = (char)0xFF;
    return n;
}

/* A store of ids first .. first+n-1 with the four model columns. */
static idt_store *model_store(int64_t first, int64_t n) {
    int64_t *id = malloc((size_t)(n ? n : 1) * 8);
    int32_t *m = malloc((size_t)(n ? n : 1) * 8);
    char **s = malloc((size_t)(n ? n : 1) * sizeof *s), **b = malloc((size_t)(n ? n : 1) * sizeof *b);
    int64_t *sl = malloc((size_t)(n ? n : 1) * 8), *bl = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = first + i;
        id[i] = k;
        m[2 * i] = (int32_t)(2 * k);
        m[2 * i + 1] = (int32_t)-k;
        uint32_t cp[32];
        int len = model_s(k, cp);
        s[i] = malloc(32 * 7);
        sl[i] = (int64_t)idt_utf8_encode(cp, (size_t)len, s[i]);
        b[i] = malloc(32);
        bl[i] = model_b(k, b[i]);
    }
    int64_t two[1] = {2};
    h_col cols[4] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, sl},
                     {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                     {"m", IDT_COL_FIXED, "<i4", 4, 1, two, m, 0, NULL},
                     {"b", IDT_COL_BYTES, NULL, 0, 0, NULL, b, 0, bl}};
    idt_store *st = NULL;
    idt_error err;
    if (h_store(cols, 4, n, &st, &err)) {
        h_fail(__FILE__, __LINE__, "cannot build a model store: %s", err.msg);
        st = NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        free(s[i]);
        free(b[i]);
    }
    free(id);
    free(m);
    free(s);
    free(b);
    free(sl);
    free(bl);
    return st;
}

static idt_view *model_view(int64_t first, int64_t n) {
    idt_store *st = model_store(first, n);
    if (!st) return NULL;
    idt_view *v = NULL;
    idt_error err;
    if (h_view_of(st, &v, &err)) h_fail(__FILE__, __LINE__, "view: %s", err.msg);
    idt_store_decref(st);
    return v;
}

/* A view of ids 0..n-1 made of several stores and segments: [0,a) from store 1,
 * then [a,a+1) from store 2, then the rest from store 3. */
static idt_view *multi_view(int64_t n) {
    int64_t a = n / 3;
    idt_view *p[3] = {model_view(0, a), model_view(a, 1), model_view(a + 1, n - a - 1)};
    idt_view *v = NULL;
    idt_error err;
    if (p[0] && p[1] && p[2] && idt_view_concat(p, 3, &v, &err))
        h_fail(__FILE__, __LINE__, "concat: %s", err.msg);
    for (int i = 0; i < 3; i++) idt_view_decref(p[i]);
    return v;
}

/* Check that selected rows of v show the model rows ids[0..count): every column present in
 * the view, and the string widths. Returns 1 when all match. */
static int check_rows_at(const idt_view *v, const idt_rowsel *sel, const int64_t *ids,
                         const char *file, int line) {
    void *outs[8];
    int64_t w[8];
    if (v->ncols > 8) return 0;
    h_gather(v, sel, outs, w);
    int64_t js = h_vcol(v, "s"), jid = h_vcol(v, "id"), jm = h_vcol(v, "m"), jb = h_vcol(v, "b");
    int64_t ws = 1, wb = 1;
    for (int64_t i = 0; i < sel->count; i++) {
        uint32_t cp[32];
        char by[32];
        int ls = model_s(ids[i], cp), lb = model_b(ids[i], by);
        if (ls > ws) ws = ls;
        if (lb > wb) wb = lb;
    }
    int ok = 1;
    if (js >= 0 && w[js] != ws) {
        h_fail(file, line, "width of s is %lld, model %lld", (long long)w[js], (long long)ws);
        ok = 0;
    }
    if (jb >= 0 && w[jb] != wb) {
        h_fail(file, line, "width of b is %lld, model %lld", (long long)w[jb], (long long)wb);
        ok = 0;
    }
    for (int64_t i = 0; ok && i < sel->count; i++) {
        int64_t k = ids[i];
        if (jid >= 0 && ((int64_t *)outs[jid])[i] != k) {
            h_fail(file, line, "row %lld: id %lld, model %lld", (long long)i,
                   (long long)((int64_t *)outs[jid])[i], (long long)k);
            ok = 0;
            break;
        }
        if (jm >= 0) {
            int32_t *m = (int32_t *)outs[jm] + 2 * i;
            if (m[0] != (int32_t)(2 * k) || m[1] != (int32_t)-k) {
                h_fail(file, line, "row %lld: m differs for id %lld", (long long)i, (long long)k);
                ok = 0;
            }
        }
        if (js >= 0) {
            uint32_t cp[32] = {0};
            model_s(k, cp);
            if (memcmp((uint32_t *)outs[js] + i * ws, cp, (size_t)ws * 4)) {
                h_fail(file, line, "row %lld: s differs for id %lld", (long long)i, (long long)k);
                ok = 0;
            }
        }
        if (jb >= 0) {
            char by[32] = {0};
            model_b(k, by);
            if (memcmp((char *)outs[jb] + i * wb, by, (size_t)wb)) {
                h_fail(file, line, "row %lld: b differs for id %lld", (long long)i, (long long)k);
                ok = 0;
            }
        }
    }
    h_free_outs(outs, v->ncols);
    return ok;
}
#define CHECK_ROWS_SEL(v, sel, ids) check_rows_at((v), (sel), (ids), __FILE__, __LINE__)

/* Every row of v. */
static int check_all_at(const idt_view *v, const int64_t *ids, int64_t n, const char *file, int line) {
    if (idt_view_len(v) != n) {
        h_fail(file, line, "view has %lld rows, model %lld", (long long)idt_view_len(v), (long long)n);
        return 0;
    }
    idt_rowsel sel = {0, 1, n, NULL};
    return check_rows_at(v, &sel, ids, file, line);
}
#define CHECK_ALL(v, ids, n) check_all_at((v), (ids), (n), __FILE__, __LINE__)

static int64_t *iota(int64_t n) {
    int64_t *a = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) a[i] = i;
    return a;
}

/* PySlice_AdjustIndices. */
static int64_t adjust(int64_t len, int64_t *start, int64_t *stop, int64_t step) {
    if (*start < 0) {
        *start += len;
        if (*start < 0) *start = step < 0 ? -1 : 0;
    } else if (*start >= len) {
        *start = step < 0 ? len - 1 : len;
    }
    if (*stop < 0) {
        *stop += len;
        if (*stop < 0) *stop = step < 0 ? -1 : 0;
    } else if (*stop >= len) {
        *stop = step < 0 ? len - 1 : len;
    }
    if (step < 0) {
        if (*stop < *start) return (*start - *stop - 1) / (-step) + 1;
    } else if (*start < *stop) {
        return (*stop - *start - 1) / step + 1;
    }
    return 0;
}

/* A random Python slice of len rows: (start, step, count) adjusted. */
static void random_slice(int64_t len, int64_t *start, int64_t *step, int64_t *count) {
    int64_t st = h_rand() % 4 == 0 && len > 7 ? h_range(10, len + 3) : h_range(1, 9);
    if (h_rand() & 1) st = -st;
    int64_t a = h_rand() % 5 == 0 ? (st > 0 ? 0 : len - 1) : h_range(-len - 5, len + 5);
    int64_t b = h_rand() % 5 == 0 ? (st > 0 ? len : -len - 1) : h_range(-len - 5, len + 5);
    *count = adjust(len, &a, &b, st);
    *start = a;
    *step = st;
}

/* ---- tests ---- */

static void test_from_store(void) {
    idt_store *st = model_store(0, 10);
    REQUIRE(st != NULL);
    idt_view *v, *w;
    idt_error err;
    int64_t cols[2] = {idt_schema_find(st->schema, "id"), idt_schema_find(st->schema, "s")};
    REQUIRE(CHECK_OK(idt_view_from_store(st, cols, 2, &v, &err), err) == 0);
    CHECK_EQ(v->ncols, 2);
    CHECK_STR(idt_view_column(v, 0)->name, "id");
    CHECK_EQ(v->nseg, 1);
    CHECK_EQ(v->uniform, 1);
    CHECK_EQ(strlen(v->uuid), 36);
    CHECK_EQ(v->uuid[14], '4');
    int64_t *ids = iota(10);
    CHECK_ALL(v, ids, 10);
    REQUIRE(CHECK_OK(idt_view_from_store(st, cols, 2, &w, &err), err) == 0);
    CHECK(strcmp(v->uuid, w->uuid) != 0);
    idt_store *s2;
    int64_t row;
    idt_view_locate(v, 7, &s2, &row);
    CHECK(s2 == st);
    CHECK_EQ(row, 7);
    idt_view_decref(w);
    idt_view_decref(v);
    int64_t bad[1] = {4};
    CHECK_ERR(idt_view_from_store(st, cols, 0, &v, &err), IDT_EVALUE, err, "at least one column");
    CHECK_ERR(idt_view_from_store(st, bad, 1, &v, &err), IDT_EVALUE, err, "column index 4");
    bad[0] = -1;
    CHECK_ERR(idt_view_from_store(st, bad, 1, &v, &err), IDT_EVALUE, err, "-1");
    /* assembling from parts: the message names the index and the bound */
    idt_segment seg = {IDT_SEG_RUN, st, NULL, 0, 1, 10};
    char want[80];
    bad[0] = st->schema->ncols;
    snprintf(want, sizeof want, "column index %lld out of range for %lld columns", (long long)bad[0],
             (long long)st->schema->ncols);
    CHECK_ERR(idt_view_assemble(st->schema, bad, 1, &seg, 1, &v, &err), IDT_ECORRUPT, err, want);
    bad[0] = -1;
    snprintf(want, sizeof want, "column index -1 out of range for %lld columns", (long long)st->schema->ncols);
    CHECK_ERR(idt_view_assemble(st->schema, bad, 1, &seg, 1, &v, &err), IDT_ECORRUPT, err, want);
    free(ids);
    idt_store_decref(st);
}

static void test_slices(void) {
    enum { N = 701 };
    idt_view *v = multi_view(N);
    REQUIRE(v != NULL);
    CHECK_EQ(v->nseg, 3);
    int64_t *ids = iota(N);
    REQUIRE(CHECK_ALL(v, ids, N));
    int64_t *model = malloc(N * 8), *model2 = malloc(N * 8);
    h_seed(1);
    idt_error err;
    for (int it = 0; it < 300; it++) {
        int64_t start, step, count;
        random_slice(N, &start, &step, &count);
        idt_view *s;
        if (CHECK_OK(idt_view_slice(v, start, step, count, &s, &err), err)) break;
        for (int64_t i = 0; i < count; i++) model[i] = start + i * step;
        if (!CHECK_ALL(s, model, count)) {
            h_fail(__FILE__, __LINE__, "slice start %lld step %lld count %lld", (long long)start,
                   (long long)step, (long long)count);
            idt_view_decref(s);
            break;
        }
        CHECK(s->nseg <= v->nseg);
        /* a slice of the slice */
        int64_t st2, sp2, c2;
        random_slice(count, &st2, &sp2, &c2);
        idt_view *s2;
        if (CHECK_OK(idt_view_slice(s, st2, sp2, c2, &s2, &err), err) == 0) {
            for (int64_t i = 0; i < c2; i++) model2[i] = model[st2 + i * sp2];
            CHECK_ALL(s2, model2, c2);
            idt_view_decref(s2);
        }
        idt_view_decref(s);
    }
    /* whole, reversed, single rows, empty */
    idt_view *s;
    REQUIRE(CHECK_OK(idt_view_slice(v, N - 1, -1, N, &s, &err), err) == 0);
    for (int64_t i = 0; i < N; i++) model[i] = N - 1 - i;
    CHECK_ALL(s, model, N);
    CHECK_EQ(s->nseg, 3);
    idt_view_decref(s);
    REQUIRE(CHECK_OK(idt_view_slice(v, 234, 1, 1, &s, &err), err) == 0);
    model[0] = 234;
    CHECK_ALL(s, model, 1);
    CHECK_EQ(s->nseg, 1);
    idt_view_decref(s);
    REQUIRE(CHECK_OK(idt_view_slice(v, N, 1, 0, &s, &err), err) == 0);
    CHECK_EQ(idt_view_len(s), 0);
    CHECK_EQ(s->nseg, 0);
    idt_view_decref(s);
    /* bad arguments */
    CHECK_ERR(idt_view_slice(v, 0, 0, 1, &s, &err), IDT_EVALUE, err, "zero");
    CHECK_ERR(idt_view_slice(v, N, 1, 1, &s, &err), IDT_EINDEX, err, "701 rows");
    CHECK_ERR(idt_view_slice(v, -1, 1, 1, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 0, 1, N + 1, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 5, -1, 7, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 0, 1, -1, &s, &err), IDT_EINDEX, err, NULL);
    /* arguments whose last row does not fit in 64 bits */
    CHECK_ERR(idt_view_slice(v, 0, INT64_MAX, 3, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 5, INT64_MAX - 2, 2, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 5, INT64_MIN, 2, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, N - 1, INT64_MIN, 3, &s, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_view_slice(v, 0, 2, INT64_MAX, &s, &err), IDT_EINDEX, err, NULL);
    free(model);
    free(model2);
    free(ids);
    idt_view_decref(v);
}

static void test_take(void) {
    enum { N = 500 };
    idt_view *v = multi_view(N);
    REQUIRE(v != NULL);
    h_seed(2);
    idt_error err;
    int64_t *idx = malloc(3000 * 8), *model = malloc(3000 * 8), *model2 = malloc(3000 * 8);
    for (int it = 0; it < 60; it++) {
        int64_t n = it == 0 ? 0 : it == 1 ? 1 : h_range(0, it % 10 == 0 ? 3000 : 200);
        for (int64_t i = 0; i < n; i++) {
            int64_t x = h_range(0, N - 1);
            if (h_rand() % 5 == 0 && i > 0) x = model[h_range(0, i - 1)]; /* repeat */
            model[i] = x;
            idx[i] = (h_rand() & 1) ? x - N : x; /* negative half the time */
        }
        idt_view *t;
        if (CHECK_OK(idt_view_take(v, idx, n, &t, &err), err)) break;
        CHECK_ALL(t, model, n);
        CHECK(t->nseg <= 1);
        /* take through the take (a REFS segment) */
        int64_t n2 = n ? h_range(0, 300) : 0;
        for (int64_t i = 0; i < n2; i++) {
            idx[i] = h_range(0, n - 1);
            model2[i] = model[idx[i]];
        }
        idt_view *t2;
        if (CHECK_OK(idt_view_take(t, idx, n2, &t2, &err), err) == 0) {
            CHECK_ALL(t2, model2, n2);
            idt_view_decref(t2);
        }
        idt_view_decref(t);
    }
    /* out of range, both ends; the message names the index and the length */
    idt_view *t = NULL;
    int64_t bad[3] = {0, N, 1};
    CHECK_ERR(idt_view_take(v, bad, 3, &t, &err), IDT_EINDEX, err, "index 500 is out of range for 500 rows");
    bad[1] = -N - 1;
    CHECK_ERR(idt_view_take(v, bad, 3, &t, &err), IDT_EINDEX, err, "index -501");
    bad[1] = INT64_MIN;
    CHECK_ERR(idt_view_take(v, bad, 3, &t, &err), IDT_EINDEX, err, NULL);
    bad[1] = INT64_MAX;
    CHECK_ERR(idt_view_take(v, bad, 3, &t, &err), IDT_EINDEX, err, NULL);
    CHECK(t == NULL);
    /* idt_index_normalize in place */
    int64_t ix[4] = {-1, 0, -N, 3};
    CHECK_OK(idt_index_normalize(ix, ix, 4, N, &err), err);
    CHECK_EQ(ix[0], N - 1);
    CHECK_EQ(ix[2], 0);
    CHECK_ERR(idt_index_normalize(ix, ix, 1, 0, &err), IDT_EINDEX, err, "0 rows");
    free(idx);
    free(model);
    free(model2);
    idt_view_decref(v);
}

static void test_filter(void) {
    enum { N = 640 };
    idt_view *v = multi_view(N);
    REQUIRE(v != NULL);
    uint8_t *mask = malloc(N);
    int64_t *model = malloc(N * 8);
    idt_error err;
    h_seed(3);
    for (int it = 0; it < 40; it++) {
        int dens = it == 0 ? 0 : it == 1 ? 100 : (int)h_range(0, 100);
        int64_t kept = 0;
        for (int64_t i = 0; i < N; i++) {
            mask[i] = h_range(1, 100) <= dens ? (uint8_t)h_range(1, 255) : 0;
            if (mask[i]) model[kept++] = i;
        }
        /* the mask as an index (tv[mask]): the same rows */
        int64_t cnt = -1, rows[N];
        if (CHECK_OK(idt_mask_count(mask, N, N, &cnt, &err), err)) break;
        CHECK_EQ(cnt, kept);
        idt_mask_rows(mask, N, rows);
        CHECK(memcmp(rows, model, (size_t)kept * sizeof *rows) == 0);
        idt_view *f;
        if (CHECK_OK(idt_view_filter(v, mask, N, &f, &err), err)) break;
        CHECK_ALL(f, model, kept);
        /* filter of a reversed slice */
        idt_view *r, *fr;
        REQUIRE(CHECK_OK(idt_view_slice(v, N - 1, -1, N, &r, &err), err) == 0);
        if (CHECK_OK(idt_view_filter(r, mask, N, &fr, &err), err) == 0) {
            int64_t k = 0;
            for (int64_t i = 0; i < N; i++)
                if (mask[i]) model[k++] = N - 1 - i;
            CHECK_ALL(fr, model, k);
            idt_view_decref(fr);
        }
        idt_view_decref(r);
        idt_view_decref(f);
    }
    idt_view *f = NULL;
    /* A wrong length: a bad argument to filter (ValueError in Python), an index error for a
     * mask used as an index (IndexError, as NumPy's). */
    CHECK_ERR(idt_view_filter(v, mask, N - 1, &f, &err), IDT_EVALUE, err, "639 entries for 640 rows");
    CHECK_ERR(idt_view_filter(v, mask, N + 1, &f, &err), IDT_EVALUE, err, "641 entries");
    int64_t cnt = -1;
    CHECK_ERR(idt_mask_count(mask, N - 1, N, &cnt, &err), IDT_EINDEX, err, "length 639 does not match 640 rows");
    CHECK_ERR(idt_mask_count(mask, N + 1, N, &cnt, &err), IDT_EINDEX, err, "length 641");
    CHECK_EQ(cnt, -1);
    CHECK(f == NULL);
    free(mask);
    free(model);
    idt_view_decref(v);
}

static void test_concat(void) {
    idt_view *a = model_view(0, 10), *b = model_view(10, 5), *c = model_view(15, 0), *d = model_view(15, 20);
    REQUIRE(a && b && c && d);
    idt_error err;
    idt_view *ab, *cd, *all, *flat;
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){a, b}, 2, &ab, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){c, d}, 2, &cd, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){ab, cd}, 2, &all, &err), err) == 0);
    CHECK_EQ(ab->nseg, 2);
    CHECK_EQ(cd->nseg, 1); /* the empty view has no segments */
    CHECK_EQ(all->nseg, 3); /* flat: not a tree */
    int64_t *ids = iota(35);
    CHECK_ALL(all, ids, 35);
    /* concat of concats with repeats: the same segments again */
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){all, ab, all}, 3, &flat, &err), err) == 0);
    CHECK_EQ(flat->nseg, 8);
    int64_t model[35 + 15 + 35];
    for (int i = 0; i < 35; i++) model[i] = model[50 + i] = i;
    for (int i = 0; i < 15; i++) model[35 + i] = i;
    CHECK_ALL(flat, model, 85);
    idt_view_decref(flat);
    /* one view; empties only */
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){c}, 1, &flat, &err), err) == 0);
    CHECK_EQ(idt_view_len(flat), 0);
    idt_view_decref(flat);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){c, c, c}, 3, &flat, &err), err) == 0);
    CHECK_EQ(flat->nseg, 0);
    idt_view_decref(flat);
    /* a concat of a take and a slice */
    idt_view *t, *s, *ts;
    int64_t idx[4] = {30, 2, 2, 17};
    REQUIRE(CHECK_OK(idt_view_take(all, idx, 4, &t, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_slice(all, 34, -3, 5, &s, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){t, s, t}, 3, &ts, &err), err) == 0);
    int64_t m2[13] = {30, 2, 2, 17, 34, 31, 28, 25, 22, 30, 2, 2, 17};
    CHECK_ALL(ts, m2, 13);
    idt_view_decref(ts);
    idt_view_decref(t);
    idt_view_decref(s);
    /* errors */
    idt_view *o = NULL;
    CHECK_ERR(idt_view_concat((idt_view *[]){a}, 0, &o, &err), IDT_EVALUE, err, "at least one");
    idt_view *sel;
    REQUIRE(CHECK_OK(idt_view_select(b, (const char *[]){"id", "s"}, 2, &sel, &err), err) == 0);
    CHECK_ERR(idt_view_concat((idt_view *[]){a, sel}, 2, &o, &err), IDT_EVALUE, err, "view 1 has 2 columns");
    idt_view *sel2;
    REQUIRE(CHECK_OK(idt_view_select(a, (const char *[]){"id", "b"}, 2, &sel2, &err), err) == 0);
    CHECK_ERR(idt_view_concat((idt_view *[]){sel2, sel}, 2, &o, &err), IDT_EVALUE, err, "view 1 has no column 'b'");
    idt_view_decref(sel2);
    /* a different dtype, shape and kind under the same name */
    int32_t i32[2] = {1, 2};
    int64_t i64[4] = {1, 2, 3, 4}, shp[1] = {2};
    const char *strs[2] = {"x", "y"};
    h_col k32[1] = {{"id", IDT_COL_FIXED, "<i4", 4, 0, NULL, i32, 0, NULL}};
    h_col k2[1] = {{"id", IDT_COL_FIXED, "<i8", 8, 1, shp, i64, 0, NULL}};
    h_col kb[1] = {{"id", IDT_COL_BYTES, NULL, 0, 0, NULL, strs, 0, NULL}};
    h_col ku[1] = {{"id", IDT_COL_UTF8, NULL, 0, 0, NULL, strs, 0, NULL}};
    idt_view *x32, *x2, *xb, *xu, *aid;
    REQUIRE(CHECK_OK(h_view(k32, 1, 2, &x32, &err), err) == 0);
    REQUIRE(CHECK_OK(h_view(k2, 1, 2, &x2, &err), err) == 0);
    REQUIRE(CHECK_OK(h_view(kb, 1, 2, &xb, &err), err) == 0);
    REQUIRE(CHECK_OK(h_view(ku, 1, 2, &xu, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_select(a, (const char *[]){"id"}, 1, &aid, &err), err) == 0);
    CHECK_ERR(idt_view_concat((idt_view *[]){aid, x32}, 2, &o, &err), IDT_EVALUE, err,
              "column 'id' differs: view 0 has fixed <i8 rows of shape (), view 1 has fixed <i4");
    CHECK_ERR(idt_view_concat((idt_view *[]){aid, aid, x2}, 3, &o, &err), IDT_EVALUE, err,
              "view 2 has fixed <i8 rows of shape (2,)");
    CHECK_ERR(idt_view_concat((idt_view *[]){xb, xu}, 2, &o, &err), IDT_EVALUE, err,
              "view 0 has bytes");
    CHECK(o == NULL);
    /* string columns concatenate whatever their widths */
    const char *strs2[2] = {"longer string", ""};
    h_col ku2[1] = {{"id", IDT_COL_UTF8, NULL, 0, 0, NULL, strs2, 0, NULL}};
    idt_view *xu2;
    REQUIRE(CHECK_OK(h_view(ku2, 1, 2, &xu2, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){xu, xu2}, 2, &o, &err), err) == 0);
    CHECK_EQ(idt_view_len(o), 4);
    idt_view_decref(o);
    idt_view_decref(xu2);
    idt_view_decref(x32);
    idt_view_decref(x2);
    idt_view_decref(xb);
    idt_view_decref(xu);
    idt_view_decref(aid);
    idt_view_decref(sel);
    free(ids);
    idt_view_decref(all);
    idt_view_decref(ab);
    idt_view_decref(cd);
    idt_view_decref(a);
    idt_view_decref(b);
    idt_view_decref(c);
    idt_view_decref(d);
}

/* Stores whose schemas differ in columns not shown concatenate by name. */
static void test_concat_nonuniform(void) {
    idt_view *a = model_view(0, 50);
    REQUIRE(a != NULL);
    int64_t id[20];
    const char *s[20];
    char sb[20][64];
    double extra[20];
    int64_t sl[20];
    for (int i = 0; i < 20; i++) {
        id[i] = 50 + i;
        uint32_t cp[32];
        int n = model_s(50 + i, cp);
        sl[i] = (int64_t)idt_utf8_encode(cp, (size_t)n, sb[i]);
        s[i] = sb[i];
        extra[i] = i;
    }
    /* columns aa < id < s: "s" and "id" sit at other indexes than in a's schema */
    h_col cols[3] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, sl},
                     {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                     {"aa", IDT_COL_FIXED, "<f8", 8, 0, NULL, extra, 0, NULL}};
    idt_view *bv, *bsel, *asel, *cat;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 3, 20, &bv, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_select(bv, (const char *[]){"s", "id"}, 2, &bsel, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_select(a, (const char *[]){"id", "s"}, 2, &asel, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){asel, bsel}, 2, &cat, &err), err) == 0);
    CHECK_EQ(cat->uniform, 0);
    CHECK_STR(idt_view_column(cat, 0)->name, "id");
    int64_t *ids = iota(70);
    CHECK_ALL(cat, ids, 70);
    /* composed through a shuffle, a take and a string removal */
    idt_view *sh, *rm;
    REQUIRE(CHECK_OK(idt_view_shuffle(cat, 5, &sh, &err), err) == 0);
    int64_t *p = h_col_i64(sh, 0);
    CHECK_ALL(sh, p, 70);
    const char *gone[2] = {"s51\xC3\xA9\xC3\xA9\xC3\xA9", "s4"};
    int64_t gl[2] = {9, 2};
    REQUIRE(CHECK_OK(idt_view_remove_strings(sh, "s", gone, gl, 2, &rm, &err), err) == 0);
    int64_t k = 0;
    for (int i = 0; i < 70; i++)
        if (p[i] != 51 && p[i] != 4) p[k++] = p[i];
    CHECK_ALL(rm, p, k);
    CHECK_EQ(k, 68);
    free(p);
    idt_view_decref(rm);
    idt_view_decref(sh);
    free(ids);
    idt_view_decref(cat);
    idt_view_decref(asel);
    idt_view_decref(bsel);
    idt_view_decref(bv);
    idt_view_decref(a);
}

static void test_select(void) {
    idt_view *v = multi_view(30);
    REQUIRE(v != NULL);
    idt_error err;
    idt_view *s, *s2, *o = NULL;
    REQUIRE(CHECK_OK(idt_view_select(v, (const char *[]){"s", "id"}, 2, &s, &err), err) == 0);
    CHECK_EQ(s->ncols, 2);
    CHECK_STR(idt_view_column(s, 0)->name, "s");
    CHECK_STR(idt_view_column(s, 1)->name, "id");
    CHECK_EQ(s->nseg, v->nseg);
    int64_t *ids = iota(30);
    CHECK_ALL(s, ids, 30);
    void *outs[2];
    h_gather(s, &(idt_rowsel){0, 1, 30, NULL}, outs, NULL);
    CHECK_EQ(((int64_t *)outs[1])[29], 29);
    h_free_outs(outs, 2);
    /* select within a selection */
    REQUIRE(CHECK_OK(idt_view_select(s, (const char *[]){"id"}, 1, &s2, &err), err) == 0);
    CHECK_ALL(s2, ids, 30);
    CHECK_ERR(idt_view_select(s2, (const char *[]){"s"}, 1, &o, &err), IDT_EKEY, err, "no column named 's'");
    idt_view_decref(s2);
    CHECK_ERR(idt_view_select(v, (const char *[]){"id", "nope"}, 2, &o, &err), IDT_EKEY, err, "'nope'");
    CHECK_ERR(idt_view_select(v, (const char *[]){"id", "b", "id"}, 3, &o, &err), IDT_EVALUE, err,
              "column 'id' selected twice");
    CHECK_ERR(idt_view_select(v, (const char *[]){"id"}, 0, &o, &err), IDT_EVALUE, err, "at least one");
    CHECK(o == NULL);
    free(ids);
    idt_view_decref(s);
    idt_view_decref(v);
}

static int is_permutation(const int64_t *p, int64_t n) {
    uint8_t *seen = calloc((size_t)(n ? n : 1), 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
        else seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

/* A one-column view of ids 0..n-1 (int64 "id"). */
static idt_view *id_view(int64_t n) {
    int64_t *id = iota(n);
    h_col c[1] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL}};
    idt_view *v = NULL;
    idt_error err;
    if (h_view(c, 1, n, &v, &err)) h_fail(__FILE__, __LINE__, "id view: %s", err.msg);
    free(id);
    return v;
}

static void test_shuffle(void) {
    idt_error err;
    idt_view *v = multi_view(1000);
    REQUIRE(v != NULL);
    idt_view *a, *b, *c;
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 42, &a, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 42, &b, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 43, &c, &err), err) == 0);
    int64_t *pa = h_col_i64(a, h_vcol(a, "id")), *pb = h_col_i64(b, h_vcol(b, "id"));
    int64_t *pc = h_col_i64(c, h_vcol(c, "id"));
    CHECK(is_permutation(pa, 1000));
    CHECK(is_permutation(pc, 1000));
    CHECK(!memcmp(pa, pb, 1000 * 8));
    CHECK(memcmp(pa, pc, 1000 * 8) != 0);
    int fixed = 0;
    for (int i = 0; i < 1000; i++) fixed += pa[i] == i;
    CHECK(fixed < 20);
    CHECK_ALL(a, pa, 1000);
    CHECK_EQ(a->nseg, 1);
    CHECK_EQ(a->segs[0].kind, IDT_SEG_REFS);
    CHECK_EQ(a->segs[0].refs->nstores, 3);
    /* the permutation depends only on (seed, n): a reversed view shuffles the same way */
    idt_view *r, *rs;
    REQUIRE(CHECK_OK(idt_view_slice(v, 999, -1, 1000, &r, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(r, 42, &rs, &err), err) == 0);
    int64_t *pr = h_col_i64(rs, h_vcol(rs, "id"));
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= pr[i] == 999 - pa[i];
    CHECK(same);
    free(pr);
    idt_view_decref(rs);
    idt_view_decref(r);
    /* shuffling a shuffle composes (one ref array, no chain) */
    idt_view *aa;
    REQUIRE(CHECK_OK(idt_view_shuffle(a, 7, &aa, &err), err) == 0);
    int64_t *paa = h_col_i64(aa, h_vcol(aa, "id"));
    CHECK(is_permutation(paa, 1000));
    CHECK_ALL(aa, paa, 1000);
    CHECK_EQ(aa->segs[0].refs->nstores, 3);
    free(paa);
    idt_view_decref(aa);
    free(pa);
    free(pb);
    free(pc);
    idt_view_decref(a);
    idt_view_decref(b);
    idt_view_decref(c);
    /* tiny and empty */
    for (int n = 0; n <= 3; n++) {
        idt_view *t = id_view(n), *ts;
        REQUIRE(t != NULL);
        REQUIRE(CHECK_OK(idt_view_shuffle(t, 1, &ts, &err), err) == 0);
        int64_t *p = h_col_i64(ts, 0);
        CHECK(is_permutation(p, n));
        free(p);
        idt_view_decref(ts);
        idt_view_decref(t);
    }
    idt_view_decref(v);
    /* large: the bucketed path (more than 65,536 rows) */
    enum { BIG = 200003 };
    idt_view *big = id_view(BIG), *bs, *bs2;
    REQUIRE(big != NULL);
    REQUIRE(CHECK_OK(idt_view_shuffle(big, 9, &bs, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(big, 9, &bs2, &err), err) == 0);
    int64_t *p1 = h_col_i64(bs, 0), *p2 = h_col_i64(bs2, 0);
    CHECK(is_permutation(p1, BIG));
    CHECK(!memcmp(p1, p2, BIG * 8));
    /* rough uniformity: the mean position of the first tenth of ids is near the middle */
    double mean = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < BIG; i++)
        if (p1[i] < BIG / 10) {
            mean += (double)i;
            cnt++;
        }
    mean /= (double)cnt;
    CHECK(mean > BIG * 0.47 && mean < BIG * 0.53);
    free(p1);
    free(p2);
    idt_view_decref(bs);
    idt_view_decref(bs2);
    idt_view_decref(big);
}

/* 300 steps of shuffle / reverse slice / concat of swapped halves, checked against the model
 * at each step; segments stay few. */
static void test_composed(void) {
    enum { N = 1000 };
    idt_view *v = multi_view(N), *ident = id_view(N);
    REQUIRE(v != NULL && ident != NULL);
    int64_t *model = iota(N), *next = malloc(N * 8);
    idt_error err;
    int64_t maxseg = 0;
    for (int it = 0; it < 300; it++) {
        idt_view *o = NULL;
        int op = it % 3;
        if (op == 0) {
            uint64_t seed = (uint64_t)it * 77 + 1;
            idt_view *p;
            if (CHECK_OK(idt_view_shuffle(ident, seed, &p, &err), err)) break;
            int64_t *perm = h_col_i64(p, 0);
            idt_view_decref(p);
            for (int64_t i = 0; i < N; i++) next[i] = model[perm[i]];
            free(perm);
            if (CHECK_OK(idt_view_shuffle(v, seed, &o, &err), err)) break;
        } else if (op == 1) {
            for (int64_t i = 0; i < N; i++) next[i] = model[N - 1 - i];
            if (CHECK_OK(idt_view_slice(v, N - 1, -1, N, &o, &err), err)) break;
        } else {
            int64_t h = N / 2 - 37 + it % 75;
            idt_view *lo, *hi;
            if (CHECK_OK(idt_view_slice(v, 0, 1, h, &lo, &err), err)) break;
            if (CHECK_OK(idt_view_slice(v, h, 1, N - h, &hi, &err), err)) {
                idt_view_decref(lo);
                break;
            }
            for (int64_t i = 0; i < N - h; i++) next[i] = model[h + i];
            for (int64_t i = 0; i < h; i++) next[N - h + i] = model[i];
            int rc = CHECK_OK(idt_view_concat((idt_view *[]){hi, lo}, 2, &o, &err), err);
            idt_view_decref(lo);
            idt_view_decref(hi);
            if (rc) break;
        }
        idt_view_decref(v);
        v = o;
        int64_t *t = model;
        model = next;
        next = t;
        if (v->nseg > maxseg) maxseg = v->nseg;
        /* ids every step; everything every 10th */
        int64_t *got = h_col_i64(v, h_vcol(v, "id"));
        int same = !memcmp(got, model, N * 8);
        free(got);
        if (!same) {
            h_fail(__FILE__, __LINE__, "step %d (op %d): ids differ from the model", it, op);
            break;
        }
        if (it % 10 == 9 && !CHECK_ALL(v, model, N)) break;
    }
    CHECK(maxseg <= 4);
    idt_tmp_stats ts;
    idt_tmp_stats_get(&ts);
    CHECK(ts.live_blobs <= 10); /* old ref arrays were released */
    free(model);
    free(next);
    idt_view_decref(ident);
    idt_view_decref(v);
}

/* Gathers of ranges and index lists over views mixing RUN and REFS segments, across
 * 1024-row chunk boundaries. */
static void test_gather(void) {
    enum { N = 3000 };
    idt_error err;
    idt_view *base = multi_view(N), *sh, *mix;
    REQUIRE(base != NULL);
    REQUIRE(CHECK_OK(idt_view_shuffle(base, 11, &sh, &err), err) == 0);
    int64_t *psh = h_col_i64(sh, h_vcol(sh, "id"));
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){base, sh, base}, 3, &mix, &err), err) == 0);
    int64_t M = 3 * N;
    int64_t *model = malloc((size_t)M * 8);
    for (int64_t i = 0; i < N; i++) {
        model[i] = model[2 * N + i] = i;
        model[N + i] = psh[i];
    }
    CHECK_ALL(mix, model, M);
    h_seed(4);
    int64_t *idx = malloc(5000 * 8), *want = malloc(5000 * 8);
    for (int it = 0; it < 80; it++) {
        idt_rowsel sel;
        if (it % 2 == 0) {
            int64_t start, step, count;
            random_slice(M, &start, &step, &count);
            if (count > 5000) count = 5000;
            sel = (idt_rowsel){start, step, count, NULL};
            for (int64_t i = 0; i < count; i++) want[i] = model[start + i * step];
        } else {
            int64_t n = h_range(0, 5000);
            for (int64_t i = 0; i < n; i++) {
                idx[i] = h_range(0, M - 1);
                want[i] = model[idx[i]];
            }
            sel = (idt_rowsel){0, 0, n, idx};
        }
        if (!CHECK_ROWS_SEL(mix, &sel, want)) {
            h_fail(__FILE__, __LINE__, "iteration %d: start %lld step %lld count %lld idx %s", it,
                   (long long)sel.start, (long long)sel.step, (long long)sel.count,
                   sel.idx ? "yes" : "no");
            break;
        }
    }
    /* a column subset in another order reads the same */
    idt_view *sel2;
    REQUIRE(CHECK_OK(idt_view_select(mix, (const char *[]){"b", "m", "id"}, 3, &sel2, &err), err) == 0);
    {
        int64_t *w2 = malloc(1200 * 8);
        for (int64_t i = 0; i < 1200; i++) w2[i] = model[M - 1 - 7 * i];
        CHECK_ROWS_SEL(sel2, &((idt_rowsel){M - 1, -7, 1200, NULL}), w2);
        free(w2);
    }
    idt_view_decref(sel2);
    free(idx);
    free(want);
    free(model);
    free(psh);
    idt_view_decref(mix);
    idt_view_decref(sh);
    idt_view_decref(base);
}

static void test_str_widths(void) {
    idt_view *v = multi_view(200);
    REQUIRE(v != NULL);
    idt_error err;
    int64_t w[4];
    int64_t js = h_vcol(v, "s"), jb = h_vcol(v, "b"), jid = h_vcol(v, "id");
    /* one row of id 3: "" -> width 1 */
    CHECK_OK(idt_view_str_widths(v, &(idt_rowsel){3, 1, 1, NULL}, w, &err), err);
    CHECK_EQ(w[js], 1);
    CHECK_EQ(w[jb], 1);
    CHECK_EQ(w[jid], 0);
    /* ids 0..9: longest "s7" + 3 e-acutes = 5 chars; "15\xff" 3 bytes */
    CHECK_OK(idt_view_str_widths(v, &(idt_rowsel){0, 1, 10, NULL}, w, &err), err);
    CHECK_EQ(w[js], 5);
    CHECK_EQ(w[jb], 3);
    int64_t idx[2] = {199, 155}; /* "" (199 % 7 == 3), "s155"+3 = 7 chars; "597", "465\xff" */
    CHECK_OK(idt_view_str_widths(v, &(idt_rowsel){0, 0, 2, idx}, w, &err), err);
    CHECK_EQ(w[js], 7);
    CHECK_EQ(w[jb], 4);
    CHECK_OK(idt_view_str_widths(v, &(idt_rowsel){0, 1, 0, NULL}, w, &err), err);
    CHECK_EQ(w[js], 1);
    CHECK_EQ(w[jid], 0);
    idt_view_decref(v);
}

static void test_remove_strings(void) {
    enum { N = 300 };
    idt_view *v = multi_view(N);
    REQUIRE(v != NULL);
    idt_error err;
    idt_view *o = NULL;
    /* remove by "s": three names (one with trailing NULs, one absent, one duplicate) */
    const char *gone[5] = {"s1\xC3\xA9", "s8\0\0", "nope", "s1\xC3\xA9", ""};
    int64_t gl[5] = {4, 4, 4, 4, 0};
    REQUIRE(CHECK_OK(idt_view_remove_strings(v, "s", gone, gl, 5, &o, &err), err) == 0);
    int64_t *model = malloc(N * 8), k = 0;
    for (int64_t i = 0; i < N; i++)
        if (i != 1 && i != 8 && i % 7 != 3) model[k++] = i;
    CHECK_ALL(o, model, k);
    idt_view_decref(o);
    /* by bytes, on a reversed slice */
    idt_view *r;
    REQUIRE(CHECK_OK(idt_view_slice(v, N - 1, -1, N, &r, &err), err) == 0);
    const char *bg[2] = {"0\xff", "30\xff"};
    int64_t bgl[2] = {2, 3};
    REQUIRE(CHECK_OK(idt_view_remove_strings(r, "b", bg, bgl, 2, &o, &err), err) == 0);
    k = 0;
    for (int64_t i = N - 1; i >= 0; i--)
        if (i != 0 && i != 10) model[k++] = i;
    CHECK_ALL(o, model, k);
    idt_view_decref(o);
    idt_view_decref(r);
    /* nothing to remove, and everything */
    REQUIRE(CHECK_OK(idt_view_remove_strings(v, "b", NULL, NULL, 0, &o, &err), err) == 0);
    int64_t *ids = iota(N);
    CHECK_ALL(o, ids, N);
    idt_view_decref(o);
    /* errors */
    o = NULL;
    CHECK_ERR(idt_view_remove_strings(v, "zz", gone, gl, 1, &o, &err), IDT_EKEY, err, "'zz'");
    CHECK_ERR(idt_view_remove_strings(v, "id", gone, gl, 1, &o, &err), IDT_ETYPE, err, "'id'");
    idt_view *sel;
    REQUIRE(CHECK_OK(idt_view_select(v, (const char *[]){"id"}, 1, &sel, &err), err) == 0);
    CHECK_ERR(idt_view_remove_strings(sel, "s", gone, gl, 1, &o, &err), IDT_EKEY, err, "'s'");
    idt_view_decref(sel);
    CHECK(o == NULL);
    /* a column with a row shape drops a row when any of its strings matches */
    int64_t two[1] = {2};
    const char *tags[8] = {"a", "b", "c", "a", "", "d", "b", "b"};
    int64_t id4[4] = {0, 1, 2, 3};
    h_col tc[2] = {{"tags", IDT_COL_BYTES, NULL, 0, 1, two, tags, 0, NULL},
                   {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id4, 0, NULL}};
    idt_view *tv;
    REQUIRE(CHECK_OK(h_view(tc, 2, 4, &tv, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_remove_strings(tv, "tags", (const char *[]){"a"}, (int64_t[]){1}, 1, &o, &err), err) == 0);
    int64_t *got = h_col_i64(o, h_vcol(o, "id"));
    CHECK_EQ(idt_view_len(o), 2);
    CHECK(got[0] == 2 && got[1] == 3);
    free(got);
    idt_view_decref(o);
    REQUIRE(CHECK_OK(idt_view_remove_strings(tv, "tags", (const char *[]){""}, (int64_t[]){0}, 1, &o, &err), err) == 0);
    CHECK_EQ(idt_view_len(o), 3);
    idt_view_decref(o);
    idt_view_decref(tv);
    free(ids);
    free(model);
    idt_view_decref(v);
}

/* zip and rename: groups made, merged back when they share segments, errors named. */
static void test_zip_rename(void) {
    idt_error err;
    idt_view *v = multi_view(30), *a, *b, *z, *o = NULL, *sh, *r, *r2;
    REQUIRE(v != NULL);
    int64_t *ids = iota(30);
    REQUIRE(CHECK_OK(idt_view_select(v, (const char *[]){"s"}, 1, &a, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_select(v, (const char *[]){"id"}, 1, &b, &err), err) == 0);
    /* columns of one view over the same segments: one plain view again */
    REQUIRE(CHECK_OK(idt_view_zip((idt_view *[]){a, b}, 2, &z, &err), err) == 0);
    CHECK_EQ(z->ngroups, 0);
    CHECK_STR(idt_view_column(z, 0)->name, "s");
    CHECK_ALL(z, ids, 30);
    idt_view_decref(z);
    /* rows of their own: two groups */
    REQUIRE(CHECK_OK(idt_view_shuffle(b, 3, &sh, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_rename(sh, (const char *[]){"id"}, (const char *[]){"k"}, 1, &r, &err), err) == 0);
    CHECK_STR(idt_view_column(r, 0)->name, "k");
    CHECK(r->segs[0].refs != sh->segs[0].refs && r->segs[0].refs->ref == sh->segs[0].refs->ref);
    CHECK(r->segs[0].refs->stores[0]->base != NULL);
    REQUIRE(CHECK_OK(idt_view_zip((idt_view *[]){v, r}, 2, &z, &err), err) == 0);
    CHECK_EQ(z->ngroups, 2);
    CHECK_EQ(z->ncols, v->ncols + 1);
    CHECK_ALL(z, ids, 30);
    /* a rename of a rename points at the first store, not at an alias */
    REQUIRE(CHECK_OK(idt_view_rename(z, (const char *[]){"k", "id"}, (const char *[]){"id", "k"}, 2, &r2, &err), err) == 0);
    CHECK(r2->ngroups == 2 && r2->groups[1]->segs[0].refs->stores[0]->base == r->segs[0].refs->stores[0]->base);
    int64_t *k = h_col_i64(r2, h_vcol(r2, "k")), *sid = h_col_i64(sh, 0);
    CHECK(!memcmp(k, ids, 30 * 8));
    int64_t *id2 = h_col_i64(r2, h_vcol(r2, "id"));
    CHECK(!memcmp(id2, sid, 30 * 8));
    free(k);
    free(id2);
    free(sid);
    /* errors */
    idt_view *shorter;
    REQUIRE(CHECK_OK(idt_view_slice(b, 0, 1, 29, &shorter, &err), err) == 0);
    CHECK_ERR(idt_view_zip((idt_view *[]){v, shorter}, 2, &o, &err), IDT_EVALUE, err, "view 0 has 30 rows, view 1 has 29");
    CHECK_ERR(idt_view_zip((idt_view *[]){v, b}, 2, &o, &err), IDT_EVALUE, err, "column 'id'");
    CHECK_ERR(idt_view_zip((idt_view *[]){v}, 0, &o, &err), IDT_EVALUE, err, "at least one");
    CHECK_ERR(idt_view_rename(v, (const char *[]){"nope"}, (const char *[]){"x"}, 1, &o, &err), IDT_EKEY, err, "'nope'");
    CHECK_ERR(idt_view_rename(v, (const char *[]){"id"}, (const char *[]){"s"}, 1, &o, &err), IDT_EVALUE, err,
              "two columns named 's'");
    CHECK_ERR(idt_view_rename(v, (const char *[]){"id", "id"}, (const char *[]){"x", "y"}, 2, &o, &err), IDT_EVALUE,
              err, "renamed twice");
    CHECK(o == NULL);
    idt_view_decref(shorter);
    idt_view_decref(r2);
    idt_view_decref(z);
    idt_view_decref(r);
    idt_view_decref(sh);
    idt_view_decref(a);
    idt_view_decref(b);
    idt_view_decref(v);
    free(ids);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_from_store),
        H_TEST(test_slices),
        H_TEST(test_take),
        H_TEST(test_filter),
        H_TEST(test_concat),
        H_TEST(test_concat_nonuniform),
        H_TEST(test_select),
        H_TEST(test_shuffle),
        H_TEST(test_composed),
        H_TEST(test_gather),
        H_TEST(test_str_widths),
        H_TEST(test_remove_strings),
        H_TEST(test_zip_rename),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

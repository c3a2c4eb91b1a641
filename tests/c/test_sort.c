/* test_sort.c: the stable multi-key sort (sort.c), checked against a model: a stable merge
 * sort of row ids by a plain comparison of the source values, for
 * every key kind, both directions, in RAM and external (tiny budgets), on composed views,
 * with threads, cancellation and injected faults. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "sort.h"

/* ---- the model: columns kept as plain arrays ---- */

enum { N_ROWS = 3000 };

typedef struct model {
    int64_t n;
    int64_t *k;        /* "k": int64 in a small range (many ties) */
    double *f;         /* "f": float64 with NaN, -0.0, +-inf */
    int64_t *t;        /* "t": datetime64[ns] with NaT */
    int8_t *i8;        /* "i8" */
    uint16_t *u16;     /* "u16" */
    float *f32;        /* "f32" with NaN */
    uint8_t *bl;       /* "bl": bool */
    char **s;          /* "s": UTF-8 strings sharing long prefixes, some empty */
    int64_t *sl;
} model;

static model M;

static void model_make(int64_t n) {
    M.n = n;
    M.k = malloc((size_t)n * 8);
    M.f = malloc((size_t)n * 8);
    M.t = malloc((size_t)n * 8);
    M.i8 = malloc((size_t)n);
    M.u16 = malloc((size_t)n * 2);
    M.f32 = malloc((size_t)n * 4);
    M.bl = malloc((size_t)n);
    M.s = malloc((size_t)n * sizeof *M.s);
    M.sl = malloc((size_t)n * 8);
    static const char *pre[] = {"", "a", "abcdefg", "abcdefgh", "abcdefghij", "\xc3\xa9t\xc3\xa9", "zz"};
    for (int64_t i = 0; i < n; i++) {
        M.k[i] = h_range(-20, 20);
        int64_t r = h_range(0, 12);
        M.f[i] = r == 0 ? NAN : r == 1 ? -0.0 : r == 2 ? 0.0 : r == 3 ? INFINITY : r == 4 ? -INFINITY
                                                                      : (double)h_range(-50, 50) / 4;
        int64_t tr = h_range(0, 9);
        M.t[i] = tr == 0 ? INT64_MIN : tr == 1 ? INT64_MAX : tr == 2 ? INT64_MIN + 1 : h_range(-5, 5);
        M.i8[i] = (int8_t)h_range(-128, 127);
        M.u16[i] = (uint16_t)h_range(0, 65535);
        M.f32[i] = h_range(0, 7) == 0 ? NAN : (float)h_range(-9, 9);
        M.bl[i] = (uint8_t)h_range(0, 1);
        char buf[64];
        const char *p = pre[h_range(0, 6)];
        int len = snprintf(buf, sizeof buf, "%s", p);
        int extra = (int)h_range(0, 3);
        for (int e = 0; e < extra; e++) buf[len++] = (char)('a' + h_range(0, 2));
        if (h_range(0, 9) == 0) buf[len++] = 0, buf[len++] = 'x'; /* an inner NUL */
        M.s[i] = malloc((size_t)len + 1);
        memcpy(M.s[i], buf, (size_t)len);
        M.s[i][len] = 0;
        M.sl[i] = len;
    }
}

static void model_free(void) {
    for (int64_t i = 0; i < M.n; i++) free(M.s[i]);
    free(M.k); free(M.f); free(M.t); free(M.i8); free(M.u16); free(M.f32); free(M.bl);
    free(M.s); free(M.sl);
}

static idt_view *model_view(void) {
    h_col cols[] = {
        {"k", IDT_COL_FIXED, "<i8", 8, 0, NULL, M.k, 0, NULL},
        {"f", IDT_COL_FIXED, "<f8", 8, 0, NULL, M.f, 0, NULL},
        {"t", IDT_COL_FIXED, "<M8[ns]", 8, 0, NULL, M.t, 0, NULL},
        {"i8", IDT_COL_FIXED, "|i1", 1, 0, NULL, M.i8, 0, NULL},
        {"u16", IDT_COL_FIXED, "<u2", 2, 0, NULL, M.u16, 0, NULL},
        {"f32", IDT_COL_FIXED, "<f4", 4, 0, NULL, M.f32, 0, NULL},
        {"bl", IDT_COL_FIXED, "|b1", 1, 0, NULL, M.bl, 0, NULL},
        {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, M.s, 0, M.sl},
    };
    idt_view *v = NULL;
    idt_error err;
    if (h_view(cols, 8, M.n, &v, &err)) h_fail(__FILE__, __LINE__, "view: %s", err.msg);
    return v;
}

/* Compare model rows a, b by one column (ascending; NaN and NaT are handled by the caller). */
static int cmp_col(const char *name, int64_t a, int64_t b, int desc) {
    int c = 0, na = 0, nb = 0;
    if (!strcmp(name, "k")) c = (M.k[a] > M.k[b]) - (M.k[a] < M.k[b]);
    else if (!strcmp(name, "f")) {
        na = isnan(M.f[a]), nb = isnan(M.f[b]);
        if (!na && !nb) c = (M.f[a] > M.f[b]) - (M.f[a] < M.f[b]);
    } else if (!strcmp(name, "t")) {
        na = M.t[a] == INT64_MIN, nb = M.t[b] == INT64_MIN;
        if (!na && !nb) c = (M.t[a] > M.t[b]) - (M.t[a] < M.t[b]);
    } else if (!strcmp(name, "i8")) c = (M.i8[a] > M.i8[b]) - (M.i8[a] < M.i8[b]);
    else if (!strcmp(name, "u16")) c = (M.u16[a] > M.u16[b]) - (M.u16[a] < M.u16[b]);
    else if (!strcmp(name, "f32")) {
        na = isnan(M.f32[a]), nb = isnan(M.f32[b]);
        if (!na && !nb) c = (M.f32[a] > M.f32[b]) - (M.f32[a] < M.f32[b]);
    } else if (!strcmp(name, "bl")) c = (M.bl[a] > M.bl[b]) - (M.bl[a] < M.bl[b]);
    else {
        int64_t la = M.sl[a], lb = M.sl[b], m = la < lb ? la : lb;
        c = memcmp(M.s[a], M.s[b], (size_t)m);
        if (!c) c = (la > lb) - (la < lb);
        c = (c > 0) - (c < 0);
    }
    if (na || nb) return na - nb; /* missing values last both ways */
    return desc ? -c : c;
}

static const char *const *g_names;
static const int *g_desc;
static int g_nk;

static int cmp_rows(int64_t a, int64_t b) {
    for (int q = 0; q < g_nk; q++) {
        int c = cmp_col(g_names[q], a, b, g_desc[q]);
        if (c) return c;
    }
    return 0;
}

/* Sort v (whose row r shows model row src[r]) by the named keys and compare with the model. */
static void check_sort(idt_view *v, const int64_t *src, const char *const *names, const int *desc,
                       int nk, int64_t threads, int64_t budget, const char *what) {
    int64_t n = idt_view_len(v);
    idt_sort_key keys[4];
    for (int q = 0; q < nk; q++) {
        keys[q].col = h_vcol(v, names[q]);
        keys[q].descending = desc[q];
    }
    idt_sort_opts o = {threads, budget, NULL};
    int64_t *perm = malloc((size_t)(n ? n : 1) * 8), *want = malloc((size_t)(n ? n : 1) * 8),
            *tmp = malloc((size_t)(n ? n : 1) * 8);
    idt_error err;
    if (!CHECK_OK(idt_view_sort_perm(v, keys, nk, &o, perm, &err), err)) {
        g_names = names;
        g_desc = desc;
        g_nk = nk;
        /* the model: a bottom-up stable merge sort of view rows, comparing the model rows
         * they show (src) */
        int64_t *ids = malloc((size_t)(n ? n : 1) * 8);
        for (int64_t i = 0; i < n; i++) ids[i] = i;
        for (int64_t width = 1; width < n; width *= 2) {
            for (int64_t lo = 0; lo < n; lo += 2 * width) {
                int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
                int64_t i = lo, j = mid, o2 = lo;
                while (i < mid && j < hi) tmp[o2++] = cmp_rows(src[ids[j]], src[ids[i]]) < 0 ? ids[j++] : ids[i++];
                while (i < mid) tmp[o2++] = ids[i++];
                while (j < hi) tmp[o2++] = ids[j++];
            }
            memcpy(ids, tmp, (size_t)n * 8);
        }
        memcpy(want, ids, (size_t)n * 8);
        free(ids);
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (perm[i] != want[i]) bad = i;
        if (bad >= 0)
            h_fail(__FILE__, __LINE__, "%s (threads %lld, budget %lld): position %lld holds row %lld, model %lld",
                   what, (long long)threads, (long long)budget, (long long)bad, (long long)perm[bad],
                   (long long)want[bad]);
    }
    free(perm);
    free(want);
    free(tmp);
}

static const int64_t *identity(int64_t n) {
    static int64_t *id;
    static int64_t cap;
    if (n > cap) {
        free(id);
        id = malloc((size_t)n * 8);
        cap = n;
    }
    for (int64_t i = 0; i < n; i++) id[i] = i;
    return id;
}

static void test_each_kind(void) {
    idt_view *v = model_view();
    REQUIRE(v);
    const char *cols[] = {"k", "f", "t", "i8", "u16", "f32", "bl", "s"};
    for (int c = 0; c < 8; c++)
        for (int d = 0; d < 2; d++) {
            const char *names[1] = {cols[c]};
            int desc[1] = {d};
            check_sort(v, identity(M.n), names, desc, 1, 1, 0, cols[c]);
        }
    idt_view_decref(v);
}

static void test_multi_key(void) {
    idt_view *v = model_view();
    REQUIRE(v);
    const char *n1[] = {"bl", "s", "k"};
    int d1[] = {0, 1, 0};
    check_sort(v, identity(M.n), n1, d1, 3, 1, 0, "bl, s desc, k");
    const char *n2[] = {"f32", "t"};
    int d2[] = {1, 0};
    check_sort(v, identity(M.n), n2, d2, 2, 1, 0, "f32 desc, t");
    idt_view_decref(v);
}

/* External runs (tiny budgets) and threads give the same order. */
static void test_external_and_threads(void) {
    idt_view *v = model_view();
    REQUIRE(v);
    const char *n1[] = {"s"};
    int d1[] = {1};
    const char *n2[] = {"k", "s", "f"};
    int d2[] = {1, 0, 1};
    int64_t budgets[] = {0, 1, 1000, 64 * 300};
    for (int b = 0; b < 4; b++)
        for (int64_t t = 1; t <= 4; t += 3) {
            check_sort(v, identity(M.n), n1, d1, 1, t, budgets[b], "s desc");
            check_sort(v, identity(M.n), n2, d2, 3, t, budgets[b], "k desc, s, f desc");
        }
    idt_view_decref(v);
}

/* A composed view (shuffle, slice, concat) sorts by the rows it shows. */
static void test_composed_view(void) {
    idt_view *v = model_view(), *sh = NULL, *sl = NULL, *cc = NULL;
    REQUIRE(v);
    idt_error err;
    CHECK_OK(idt_view_shuffle(v, 7, &sh, &err), err);
    CHECK_OK(idt_view_slice(v, M.n - 1, -3, M.n / 3, &sl, &err), err);
    idt_view *parts[2] = {sh, sl};
    if (sh && sl && !CHECK_OK(idt_view_concat(parts, 2, &cc, &err), err)) {
        int64_t n = idt_view_len(cc);
        int64_t *src = malloc((size_t)n * 8);
        /* the model row each view row shows: read back column "k"? ids are unknown, so
         * locate each row to its store row (one store: row == model row) */
        for (int64_t i = 0; i < n; i++) {
            idt_store *st;
            int64_t row;
            idt_view_locate(cc, i, &st, &row);
            src[i] = row;
        }
        const char *names[] = {"s", "t"};
        int desc[] = {0, 1};
        check_sort(cc, src, names, desc, 2, 2, 0, "composed");
        check_sort(cc, src, names, desc, 2, 1, 500, "composed external");
        /* and the sorted view reads the rows in that order */
        idt_sort_key keys[2] = {{h_vcol(cc, "s"), 0}, {h_vcol(cc, "t"), 1}};
        idt_view *sorted = NULL;
        int64_t *perm = malloc((size_t)n * 8);
        CHECK_OK(idt_view_sort_perm(cc, keys, 2, NULL, perm, &err), err);
        idt_sort_opts o = {1, 700, NULL}; /* the permutation goes to a blob */
        if (!CHECK_OK(idt_view_sort(cc, keys, 2, &o, &sorted, &err), err)) {
            CHECK_EQ(idt_view_len(sorted), n);
            for (int64_t i = 0; i < n; i++) {
                idt_store *a, *b;
                int64_t ra, rb;
                idt_view_locate(sorted, i, &a, &ra);
                idt_view_locate(cc, perm[i], &b, &rb);
                if (a != b || ra != rb) {
                    h_fail(__FILE__, __LINE__, "sorted view row %lld differs", (long long)i);
                    break;
                }
            }
            idt_view_decref(sorted);
        }
        free(perm);
        free(src);
    }
    idt_view_decref(cc);
    idt_view_decref(sl);
    idt_view_decref(sh);
    idt_view_decref(v);
}

/* Large random int64 keys over the whole range (every byte pass runs), threads and not. */
static void test_wide_ints(void) {
    int64_t n = 200000;
    int64_t *x = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) x[i] = (int64_t)h_rand();
    for (int64_t i = 0; i < n; i += 97) x[i] = x[i / 2]; /* some ties */
    h_col cols[] = {{"x", IDT_COL_FIXED, "<i8", 8, 0, NULL, x, 0, NULL}};
    idt_view *v = NULL;
    idt_error err;
    if (!CHECK_OK(h_view(cols, 1, n, &v, &err), err)) {
        idt_sort_key key = {0, 0};
        int64_t *p = malloc((size_t)n * 8);
        for (int64_t t = 1; t <= 3; t += 2)
            for (int d = 0; d < 2; d++) {
                key.descending = d;
                idt_sort_opts o = {t, 0, NULL};
                if (!CHECK_OK(idt_view_sort_perm(v, &key, 1, &o, p, &err), err))
                    for (int64_t i = 1; i < n; i++) {
                        int64_t a = x[p[i - 1]], b = x[p[i]];
                        if (d ? a < b : a > b || (a == b && p[i - 1] > p[i])) {
                            h_fail(__FILE__, __LINE__, "order broken at %lld", (long long)i);
                            break;
                        }
                        if (a == b && p[i - 1] > p[i]) {
                            h_fail(__FILE__, __LINE__, "not stable at %lld", (long long)i);
                            break;
                        }
                    }
            }
        free(p);
        idt_view_decref(v);
    }
    free(x);
}

static void test_errors(void) {
    int64_t two[1] = {2};
    int32_t m[8] = {0};
    double cplx[8] = {0};
    h_col cols[] = {{"m", IDT_COL_FIXED, "<i4", 4, 1, two, m, 0, NULL},
                    {"c", IDT_COL_FIXED, "<c16", 16, 0, NULL, cplx, 0, NULL}};
    idt_view *v = NULL;
    idt_error err;
    REQUIRE(!CHECK_OK(h_view(cols, 2, 4, &v, &err), err));
    idt_sort_key k = {h_vcol(v, "m"), 0};
    int64_t perm[4];
    CHECK_ERR(idt_view_sort_perm(v, &k, 1, NULL, perm, &err), IDT_ETYPE, err, "'m'");
    k.col = h_vcol(v, "c");
    CHECK_ERR(idt_view_sort_perm(v, &k, 1, NULL, perm, &err), IDT_ETYPE, err, "<c16");
    k.col = 5;
    CHECK_ERR(idt_view_sort_perm(v, &k, 1, NULL, perm, &err), IDT_EINDEX, err, "5");
    CHECK_ERR(idt_view_sort_perm(v, &k, 0, NULL, perm, &err), IDT_EVALUE, err, "key");
    idt_view_decref(v);
}

static int cancel_at_3(void *ctx, int64_t done, int64_t total) {
    int *calls = ctx;
    CHECK(done <= total);
    return ++*calls >= 3;
}

static void test_cancel(void) {
    idt_view *v = model_view();
    REQUIRE(v);
    idt_sort_key keys[2] = {{h_vcol(v, "u16"), 0}, {h_vcol(v, "s"), 1}};
    for (int64_t budget = 0; budget <= 2000; budget += 2000) {
        int calls = 0;
        idt_progress prog = {cancel_at_3, &calls};
        idt_sort_opts o = {2, budget, &prog};
        idt_view *out = NULL;
        idt_error err;
        CHECK_ERR(idt_view_sort(v, keys, 2, &o, &out, &err), IDT_ECANCELLED, err, "cancel");
        CHECK(out == NULL);
        CHECK_EQ(calls, 3);
    }
    idt_view_decref(v);
}

/* Every allocation, mapping or write failing in turn gives an error and leaks nothing. */
static void test_faults(void) {
    idt_view *v = model_view();
    REQUIRE(v);
    idt_sort_key keys[2] = {{h_vcol(v, "k"), 1}, {h_vcol(v, "s"), 0}};
    for (int64_t budget = 0; budget <= 3000; budget += 3000)
        for (int64_t nth = 1; nth < 60; nth++) {
            idt_sort_opts o = {1, budget, NULL};
            idt_view *out = NULL;
            idt_error err;
            idt_fault_arm(IDT_FAULT_ANY, nth, 0, 0);
            int rc = idt_view_sort(v, keys, 2, &o, &out, &err);
            int64_t fired = idt_fault_fired();
            idt_fault_reset();
            if (rc) {
                CHECK(rc == IDT_ENOMEM || rc == IDT_EIO);
                CHECK(err.msg[0] != 0);
            } else {
                CHECK(fired == 0 || out != NULL);
                idt_view_decref(out);
                if (!fired) break;
            }
        }
    idt_view_decref(v);
}

static void test_empty_and_one(void) {
    int64_t x[1] = {5};
    h_col cols[] = {{"x", IDT_COL_FIXED, "<i8", 8, 0, NULL, x, 0, NULL}};
    for (int64_t n = 0; n <= 1; n++) {
        idt_view *v = NULL, *out = NULL;
        idt_error err;
        if (CHECK_OK(h_view(cols, 1, n, &v, &err), err)) continue;
        idt_sort_key k = {0, 1};
        if (!CHECK_OK(idt_view_sort(v, &k, 1, NULL, &out, &err), err)) {
            CHECK_EQ(idt_view_len(out), n);
            idt_view_decref(out);
        }
        idt_view_decref(v);
    }
}

int main(int argc, char **argv) {
    h_seed(42);
    model_make(N_ROWS);
    static const h_test tests[] = {
        H_TEST(test_each_kind),
        H_TEST(test_multi_key),
        H_TEST(test_external_and_threads),
        H_TEST(test_composed_view),
        H_TEST(test_wide_ints),
        H_TEST(test_errors),
        H_TEST(test_cancel),
        H_TEST(test_faults),
        H_TEST(test_empty_and_one),
    };
    int rc = h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
    model_free();
    return rc;
}

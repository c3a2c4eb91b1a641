/* test_packed.c: strings in Arrow's layout (offsets + bytes) into stores
 * (idt_packed_check, idt_packed_len, idt_store_builder_append_packed) and out of views
 * (idt_view_str_bytes, idt_view_gather_packed); idt_view_no_column; idt_tmp_usage and
 * idt_batcher_threads (what memory_stats reports). */
#include <stdlib.h>

#include "batch.h"
#include "harness.h"

static idt_column str_col(const char *name, idt_col_kind kind, int32_t ndim, int64_t *shape) {
    idt_column c;
    memset(&c, 0, sizeof c);
    c.name = (char *)name;
    c.kind = kind;
    c.ndim = ndim;
    c.shape = shape;
    snprintf(c.dtype, sizeof c.dtype, "%s", kind == IDT_COL_UTF8 ? "U" : "S");
    return c;
}

/* A one-column store of strings given in Arrow's layout (32-bit offsets). */
static int packed_store(idt_col_kind kind, const int32_t *offs, int64_t n, const char *data,
                        idt_store **out, idt_error *err) {
    idt_column c = str_col("s", kind, 0, NULL);
    idt_schema *s;
    int rc = idt_schema_new(&c, 1, &s, err);
    if (rc) return rc;
    int64_t bytes = idt_packed_len(offs, 0, n, data);
    idt_store_builder *b;
    rc = idt_store_builder_new(s, n, &bytes, &b, err);
    idt_schema_decref(s);
    if (rc) return rc;
    rc = idt_store_builder_append_packed(b, 0, n, offs, 0, data, err);
    if (rc) {
        idt_store_builder_free(b);
        return rc;
    }
    return idt_store_builder_finish(b, out, err);
}

static int str_is(const idt_store *st, int64_t s, const char *want, int64_t wlen) {
    const idt_store_col *sc = &st->cols[0];
    uint64_t a = sc->offsets[s], z = sc->offsets[s + 1];
    return (int64_t)(z - a) == wlen && !memcmp(sc->data + a, want, (size_t)wlen);
}

static void test_packed_check(void) {
    idt_error err;
    int32_t ok[4] = {0, 2, 2, 5};
    int64_t ok64[3] = {1, 3, 5};
    CHECK_OK(idt_packed_check(ok, 0, 3, 5, &err), err);
    CHECK_OK(idt_packed_check(ok64, 1, 2, 5, &err), err);
    CHECK_OK(idt_packed_check(ok, 0, 0, 0, &err), err);
    int32_t down[3] = {0, 3, 2};
    CHECK_ERR(idt_packed_check(down, 0, 2, 5, &err), IDT_EVALUE, err, "entry 2");
    CHECK_ERR(idt_packed_check(ok, 0, 3, 4, &err), IDT_EVALUE, err, "past 4 data bytes");
    int32_t neg[2] = {-1, 0};
    CHECK_ERR(idt_packed_check(neg, 0, 1, 5, &err), IDT_EVALUE, err, "-1");
    CHECK_ERR(idt_packed_check(ok, 0, -1, 5, &err), IDT_EVALUE, err, NULL);
}

static void test_packed_len_strips_trailing_nuls(void) {
    const char data[] = "ab\0\0c\0d\0";
    int32_t offs[4] = {0, 4, 7, 8};          /* "ab\0\0", "c\0d", "\0" */
    CHECK_EQ(idt_packed_len(offs, 0, 3, data), 2 + 3 + 0);
    int64_t offs64[2] = {4, 7};
    CHECK_EQ(idt_packed_len(offs64, 1, 1, data), 3);
}

static void test_append_packed_utf8_and_bytes(void) {
    h_snap before;
    h_snap_take(&before);
    idt_error err;
    const char data[] = "x\xc3\xa9y\0z\0\0";   /* "xé", "y\0z", "", "\0" (after offset 1) */
    int32_t offs[5] = {1, 4, 7, 7, 8};
    idt_store *st;
    REQUIRE(CHECK_OK(packed_store(IDT_COL_UTF8, offs, 4, data, &st, &err), err) == 0);
    CHECK_EQ(st->nrows, 4);
    CHECK(str_is(st, 0, "\xc3\xa9y", 3));
    CHECK(str_is(st, 1, "\0z", 2));
    CHECK(str_is(st, 2, "", 0));
    CHECK(str_is(st, 3, "", 0));            /* a lone NUL is padding */
    CHECK(!st->cols[0].ascii);
    idt_store_decref(st);
    int32_t ascii_offs[3] = {0, 1, 1};
    REQUIRE(CHECK_OK(packed_store(IDT_COL_UTF8, ascii_offs, 2, "x", &st, &err), err) == 0);
    CHECK(st->cols[0].ascii);
    idt_store_decref(st);
    const char bin[] = "\xff\x00\xfe";
    int32_t boffs[2] = {0, 3};
    REQUIRE(CHECK_OK(packed_store(IDT_COL_BYTES, boffs, 1, bin, &st, &err), err) == 0);
    CHECK(str_is(st, 0, "\xff\x00\xfe", 3));
    idt_store_decref(st);
    CHECK_SNAP(before);
}

static void test_append_packed_rejects_bad_utf8_and_overflow(void) {
    h_snap before;
    h_snap_take(&before);
    idt_error err;
    int32_t offs[3] = {0, 1, 3};
    idt_store *st = NULL;
    CHECK_ERR(packed_store(IDT_COL_UTF8, offs, 2, "a\xc3(", &st, &err), IDT_EVALUE, err,
              "string 1 is not valid UTF-8");
    CHECK(st == NULL);
    CHECK_ERR(packed_store(IDT_COL_UTF8, offs, 2, "a\x80x", &st, &err), IDT_EVALUE, err, "UTF-8");
    /* more bytes than announced: the builder refuses, nothing leaks */
    idt_column c = str_col("s", IDT_COL_BYTES, 0, NULL);
    idt_schema *s;
    REQUIRE(CHECK_OK(idt_schema_new(&c, 1, &s, &err), err) == 0);
    int64_t bytes = 1;
    idt_store_builder *b;
    REQUIRE(CHECK_OK(idt_store_builder_new(s, 2, &bytes, &b, &err), err) == 0);
    CHECK_ERR(idt_store_builder_append_packed(b, 0, 2, offs, 0, "abc", &err), IDT_EVALUE, err,
              "more bytes");
    CHECK_ERR(idt_store_builder_append_packed(b, 0, 3, offs, 0, "abc", &err), IDT_EVALUE, err,
              "more strings");
    idt_store_builder_free(b);
    idt_schema_decref(s);
    CHECK_SNAP(before);
}

/* Expected packed output of a selection, built from tv reads of single rows. */
static void check_packed_matches(const idt_view *v, const idt_rowsel *sel, int64_t j) {
    int64_t per = idt_view_column(v, j)->row_elems;
    int64_t total = idt_view_str_bytes(v, sel, j);
    int64_t *offs = malloc((size_t)(sel->count * per + 1) * sizeof *offs);
    char *data = malloc((size_t)(total ? total : 1));
    idt_view_gather_packed(v, sel, j, offs, data);
    CHECK_EQ(offs[0], 0);
    CHECK_EQ(offs[sel->count * per], total);
    for (int64_t i = 0; i < sel->count; i++) {
        int64_t row = sel->idx ? sel->idx[i] : sel->start + i * sel->step;
        idt_store *st;
        int64_t srow;
        idt_view_locate(v, row, &st, &srow);
        const idt_store_col *sc = &st->cols[v->cols[j]];
        for (int64_t e = 0; e < per; e++) {
            uint64_t a = sc->offsets[srow * per + e], z = sc->offsets[srow * per + e + 1];
            int64_t o = i * per + e;
            CHECK_EQ(offs[o + 1] - offs[o], (int64_t)(z - a));
            CHECK(!memcmp(data + offs[o], sc->data + a, (size_t)(z - a)));
        }
    }
    free(offs);
    free(data);
}

static void test_gather_packed_every_view_shape(void) {
    h_snap before;
    h_snap_take(&before);
    idt_error err;
    enum { N = 3000 };
    static const char *words[] = {"", "a", "h\xc3\xa9llo", "x\0y", "longer string here"};
    static const char *ptrs[N * 2];
    static int64_t lens[N * 2];
    for (int i = 0; i < N * 2; i++) {
        ptrs[i] = words[i % 5];
        lens[i] = i % 5 == 3 ? 3 : (int64_t)strlen(words[i % 5]);
    }
    int64_t shape[1] = {2};
    h_col cols[2] = {
        {.name = "s", .kind = IDT_COL_UTF8, .data = ptrs, .lens = lens},
        {.name = "pair", .kind = IDT_COL_BYTES, .ndim = 1, .shape = shape, .data = ptrs,
         .lens = lens},
    };
    idt_view *v, *sh, *cat, *sl;
    REQUIRE(CHECK_OK(h_view(cols, 2, N, &v, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 5, &sh, &err), err) == 0);
    idt_view *parts[3] = {v, sh, v};
    REQUIRE(CHECK_OK(idt_view_concat(parts, 3, &cat, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_slice(cat, 3 * N - 1, -7, (3 * N - 1) / 7, &sl, &err), err) == 0);
    idt_view *views[4] = {v, sh, cat, sl};
    for (int k = 0; k < 4; k++) {
        int64_t len = idt_view_len(views[k]);
        for (int64_t j = 0; j < 2; j++) {
            idt_rowsel all = {0, 1, len, NULL}, mid = {len / 3, 1, len / 3, NULL},
                       none = {0, 1, 0, NULL};
            check_packed_matches(views[k], &all, j);
            check_packed_matches(views[k], &mid, j);
            check_packed_matches(views[k], &none, j);
            int64_t idx[5] = {len - 1, 0, 7, 7, len / 2};
            idt_rowsel pick = {0, 1, 5, idx};
            check_packed_matches(views[k], &pick, j);
        }
    }
    idt_rowsel empty = {0, 1, 0, NULL};
    int64_t off0 = -1;
    idt_view_gather_packed(v, &empty, 0, &off0, NULL);
    CHECK_EQ(off0, 0);
    idt_view_decref(sl);
    idt_view_decref(cat);
    idt_view_decref(sh);
    idt_view_decref(v);
    CHECK_SNAP(before);
}

static void test_no_column_lists_columns(void) {
    idt_error err;
    int64_t x[2] = {1, 2};
    h_col cols[2] = {{.name = "b", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = x},
                     {.name = "a", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = x}};
    idt_view *v;
    REQUIRE(CHECK_OK(h_view(cols, 2, 2, &v, &err), err) == 0);
    CHECK_ERR(idt_view_no_column(v, "zz", &err), IDT_EKEY, err, "no column named 'zz'; the columns are 'a', 'b'");
    idt_view *o = NULL;
    CHECK_ERR(idt_view_select(v, (const char *[]){"zz"}, 1, &o, &err), IDT_EKEY, err, "'a', 'b'");
    for (int64_t j = 0; j < 2; j++) CHECK_EQ(idt_view_find_column(v, idt_view_column(v, j)->name, &err), j);
    CHECK_ERR((int)idt_view_find_column(v, "zz", &err), IDT_EKEY, err, "no column named 'zz'; the columns are 'a', 'b'");
    CHECK_ERR((int)idt_view_find_column(v, "", &err), IDT_EKEY, err, "no column named ''");
    idt_view_decref(v);
}

static void test_usage_and_threads_counters(void) {
    idt_error err;
    int64_t f0, b0, f1, b1;
    idt_tmp_usage(&f0, &b0);
    int64_t n = 1 << 18; /* 2 MiB: a file of its own */
    int64_t *x = calloc((size_t)n, sizeof *x);
    h_col col = {.name = "x", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = x};
    idt_view *v;
    REQUIRE(CHECK_OK(h_view(&col, 1, n, &v, &err), err) == 0);
    idt_tmp_usage(&f1, &b1);
    CHECK_EQ(f1, f0 + 1);
    CHECK(b1 >= b0 + n * 8);
    int64_t t0 = idt_batcher_threads();
    idt_batcher *it;
    REQUIRE(CHECK_OK(idt_batcher_new(v, 1000, 0, 3, 4, &it, &err), err) == 0);
    CHECK_EQ(idt_batcher_threads(), t0 + idt_batcher_workers(it));
    CHECK_EQ(idt_batcher_workers(it), 3);
    idt_batcher_free(it);
    CHECK_EQ(idt_batcher_threads(), t0);
    idt_view_decref(v);
    idt_tmp_usage(&f1, &b1);
    CHECK_EQ(f1, f0);
    free(x);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_packed_check),
        H_TEST(test_packed_len_strips_trailing_nuls),
        H_TEST(test_append_packed_utf8_and_bytes),
        H_TEST(test_append_packed_rejects_bad_utf8_and_overflow),
        H_TEST(test_gather_packed_every_view_shape),
        H_TEST(test_no_column_lists_columns),
        H_TEST(test_usage_and_threads_counters),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

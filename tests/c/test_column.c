/* test_column.c: the per-kind rules of column.[ch]: validation of a column description,
 * the dtype allow-list, matching for concat, lookup by name, output sizes and the
 * trailing-NUL rule; idt_view_find; and the list kind through the core: built from Arrow-
 * layout offsets, gathered packed and padded over views of every shape, batched (both
 * ways, on threads), flattened. */
#include <stdlib.h>

#include "batch.h"
#include "column.h"
#include "harness.h"

static idt_column desc(const char *name, idt_col_kind kind, const char *dtype, int64_t itemsize,
                       int32_t ndim, int64_t *shape) {
    idt_column c;
    memset(&c, 0, sizeof c);
    c.name = (char *)name;
    c.kind = kind;
    c.ndim = ndim;
    c.shape = shape;
    c.itemsize = itemsize;
    snprintf(c.dtype, sizeof c.dtype, "%s", dtype);
    return c;
}

static void test_copy_computes_sizes(void) {
    int64_t shape[2] = {3, 4};
    idt_column src = desc("x", IDT_COL_FIXED, "<f4", 4, 2, shape), dst;
    idt_error err;
    REQUIRE(idt_column_copy(&dst, &src, &err) == 0);
    CHECK_EQ(dst.row_elems, 12);
    CHECK_EQ(dst.row_bytes, 48);
    CHECK(dst.name != src.name && dst.shape != src.shape);
    CHECK_EQ(idt_column_out_row_bytes(&dst, 99), 48);
    CHECK(!idt_column_is_var(&dst) && !idt_column_is_str(&dst));
    CHECK_EQ(idt_column_out_char(&dst), 0);
    idt_column_reset(&dst);
    CHECK(dst.name == NULL && dst.shape == NULL);

    idt_column u = desc("u", IDT_COL_UTF8, "", 0, 1, shape);
    REQUIRE(idt_column_copy(&dst, &u, &err) == 0);
    CHECK_STR(dst.dtype, "U");
    CHECK_EQ(dst.row_bytes, 0);
    CHECK(idt_column_is_var(&dst) && idt_column_is_str(&dst));
    CHECK_EQ(idt_column_out_char(&dst), 'U');
    CHECK_EQ(idt_column_out_row_bytes(&dst, 5), 3 * 5 * 4);
    CHECK_EQ(idt_column_unit(&dst), 1);
    idt_column_reset(&dst);
    idt_column b = desc("b", IDT_COL_BYTES, "", 0, 0, NULL);
    REQUIRE(idt_column_copy(&dst, &b, &err) == 0);
    CHECK_STR(dst.dtype, "S");
    CHECK_EQ(idt_column_out_char(&dst), 'S');
    CHECK_EQ(idt_column_out_row_bytes(&dst, 5), 5);
    idt_column_reset(&dst);
}

static void test_copy_refuses_bad_descriptions(void) {
    int64_t neg[1] = {-1};
    idt_error err;
    idt_column dst;
    idt_column bad[] = {
        desc("", IDT_COL_FIXED, "<f4", 4, 0, NULL),
        desc("x", IDT_COL_FIXED, "<f4", 4, 1, neg),
        desc("x", IDT_COL_FIXED, "<f4", 8, 0, NULL),
        desc("x", IDT_COL_FIXED, ">f4", 4, 0, NULL),
        desc("x", IDT_COL_FIXED, "|O8", 8, 0, NULL),
        desc("x", IDT_COL_UTF8, "S", 0, 0, NULL),
        desc("x", (idt_col_kind)77, "<f4", 4, 0, NULL),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(idt_column_copy(&dst, &bad[i], &err), IDT_EVALUE);
        CHECK(dst.name == NULL && dst.shape == NULL);
    }
    CHECK(strstr(err.msg, "unknown kind 77") != NULL);
}

static void test_same_and_kind_names(void) {
    idt_column a = desc("x", IDT_COL_FIXED, "<f4", 4, 0, NULL), b = a;
    CHECK(idt_column_same(&a, &b));
    snprintf(b.dtype, sizeof b.dtype, "<f8");
    CHECK(!idt_column_same(&a, &b));
    idt_column u = desc("x", IDT_COL_UTF8, "U", 0, 0, NULL), s = desc("x", IDT_COL_BYTES, "S", 0, 0, NULL);
    CHECK(!idt_column_same(&u, &s));
    CHECK_STR(idt_column_kind_name(IDT_COL_FIXED), "fixed");
    CHECK_STR(idt_column_kind_name(IDT_COL_UTF8), "str");
    CHECK_STR(idt_column_kind_name(IDT_COL_BYTES), "bytes");
}

static void test_find_and_strip(void) {
    idt_column cols[3] = {desc("a", IDT_COL_FIXED, "|b1", 1, 0, NULL), desc("bb", IDT_COL_FIXED, "|b1", 1, 0, NULL),
                          desc("c", IDT_COL_FIXED, "|b1", 1, 0, NULL)};
    CHECK_EQ(idt_columns_find(cols, 3, "a"), 0);
    CHECK_EQ(idt_columns_find(cols, 3, "bb"), 1);
    CHECK_EQ(idt_columns_find(cols, 3, "c"), 2);
    CHECK_EQ(idt_columns_find(cols, 3, "b"), -1);
    CHECK_EQ(idt_columns_find(cols, 0, "a"), -1);
    CHECK_EQ(idt_str_strip("ab\0\0", 4), 2);
    CHECK_EQ(idt_str_strip("a\0b", 3), 3);
    CHECK_EQ(idt_str_strip("\0\0", 2), 0);
    const uint32_t u[4] = {'x', 0, 'y', 0};
    CHECK_EQ(idt_ucs4_strip(u, 4), 3);
    CHECK_EQ(idt_ucs4_strip(u, 2), 1);
}

static void test_view_find(void) {
    idt_column cols[2] = {desc("a", IDT_COL_FIXED, "<i8", 8, 0, NULL), desc("b", IDT_COL_FIXED, "<i8", 8, 0, NULL)};
    idt_schema *s;
    idt_error err;
    REQUIRE(idt_schema_new(cols, 2, &s, &err) == 0);
    idt_store_builder *b;
    REQUIRE(idt_store_builder_new(s, 0, NULL, &b, &err) == 0);
    idt_store *st;
    REQUIRE(idt_store_builder_finish(b, &st, &err) == 0);
    int64_t show[1] = {1}; /* only "b" */
    idt_view *v;
    REQUIRE(idt_view_from_store(st, show, 1, &v, &err) == 0);
    CHECK_EQ(idt_view_find(v, "b"), 0);
    CHECK_EQ(idt_view_find(v, "a"), -1); /* in the schema, not shown */
    CHECK_EQ(idt_view_find(v, "zz"), -1);
    idt_view_decref(v);
    idt_store_decref(st);
    idt_schema_decref(s);
}

static void test_list_descriptions(void) {
    idt_error err;
    idt_column dst;
    int64_t shape[1] = {2};
    idt_column ok = desc("l", IDT_COL_LIST, "<i4", 4, 0, NULL);
    REQUIRE(idt_column_copy(&dst, &ok, &err) == 0);
    CHECK(idt_column_is_var(&dst) && idt_column_is_list(&dst) && !idt_column_is_str(&dst));
    CHECK_EQ(idt_column_unit(&dst), 4);
    CHECK_EQ(dst.row_bytes, 0);
    CHECK_EQ(dst.row_elems, 1);
    CHECK_EQ(idt_column_out_row_bytes(&dst, 10), 40); /* padded to 10 values */
    CHECK_EQ(idt_column_out_char(&dst), 0);
    char buf[64];
    idt_column_describe(&dst, buf, sizeof buf);
    CHECK_STR(buf, "lists of <i4 values");
    CHECK_STR(idt_column_kind_name(IDT_COL_LIST), "list");
    idt_column other = desc("l", IDT_COL_LIST, "<i8", 8, 0, NULL), fixed = desc("l", IDT_COL_FIXED, "<i4", 4, 0, NULL);
    CHECK(idt_column_same(&dst, &ok));
    CHECK(!idt_column_same(&dst, &other));
    CHECK(!idt_column_same(&dst, &fixed));
    idt_column_reset(&dst);
    const char *good[] = {"|b1", "|i1", "<i2", "<u8", "<f2", "<f4", "<f8", "<c8", "<c16"};
    const int64_t gsz[] = {1, 1, 2, 8, 2, 4, 8, 8, 16};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) CHECK(idt_dtype_allowed(IDT_COL_LIST, good[i], gsz[i]));
    CHECK(!idt_dtype_allowed(IDT_COL_LIST, "<M8[s]", 8));
    CHECK(!idt_dtype_allowed(IDT_COL_LIST, "<m8", 8));
    CHECK(!idt_dtype_allowed(IDT_COL_LIST, "U", 0));
    CHECK(!idt_dtype_allowed(IDT_COL_LIST, "<i4", 8));
    if (sizeof(long double) > 8) {
        char ld[8];
        snprintf(ld, sizeof ld, "<f%d", (int)sizeof(long double));
        CHECK(idt_dtype_allowed(IDT_COL_FIXED, ld, (int64_t)sizeof(long double)));
        CHECK(!idt_dtype_allowed(IDT_COL_LIST, ld, (int64_t)sizeof(long double)));
    }
    idt_column shaped = desc("l", IDT_COL_LIST, "<i4", 4, 1, shape);
    CHECK_EQ(idt_column_copy(&dst, &shaped, &err), IDT_EVALUE);
    CHECK(strstr(err.msg, "no row shape") != NULL);
    idt_column times = desc("l", IDT_COL_LIST, "<M8[s]", 8, 0, NULL);
    CHECK_EQ(idt_column_copy(&dst, &times, &err), IDT_EVALUE);
}

/* A store of one int32 list column "l" (row i: the values 100 * i + 0 .. len_i - 1, with
 * len_i = i % 5), and a fixed column "x" = i, n rows. */
static idt_store *list_store(int64_t n) {
    idt_column cols[2] = {desc("l", IDT_COL_LIST, "<i4", 4, 0, NULL), desc("x", IDT_COL_FIXED, "<i8", 8, 0, NULL)};
    idt_schema *s;
    idt_error err;
    if (idt_schema_new(cols, 2, &s, &err)) return NULL;
    int64_t *offs = malloc((size_t)(n + 1) * sizeof *offs), *xs = malloc((size_t)(n ? n : 1) * 8);
    offs[0] = 0;
    for (int64_t i = 0; i < n; i++) offs[i + 1] = offs[i] + i % 5;
    int32_t *vals = malloc((size_t)(offs[n] ? offs[n] : 1) * 4);
    for (int64_t i = 0; i < n; i++) {
        xs[i] = i;
        for (int64_t k = 0; k < i % 5; k++) vals[offs[i] + k] = (int32_t)(100 * i + k);
    }
    int64_t units[2] = {offs[n], 0};
    idt_store_builder *b = NULL;
    idt_store *st = NULL;
    if (!idt_store_builder_new(s, n, units, &b, &err) && !idt_store_builder_write_fixed(b, 1, 0, n, xs, &err) &&
        !idt_store_builder_append_packed(b, 0, n, offs, 1, (const char *)vals, &err)) {
        if (idt_store_builder_finish(b, &st, &err)) st = NULL;
        b = NULL;
    }
    idt_store_builder_free(b);
    idt_schema_decref(s);
    free(offs);
    free(xs);
    free(vals);
    return st;
}

/* Check a list column's rows gathered for view rows rows[0..n) (store row r = rows[i]). */
static void check_rows(const idt_view *v, const idt_rowsel *sel, const int64_t *src_rows) {
    int64_t n = sel->count, total = idt_view_str_bytes(v, sel, 0), want = 0;
    for (int64_t i = 0; i < n; i++) want += src_rows[i] % 5;
    CHECK_EQ(total, want);
    int64_t *offs = malloc((size_t)(n + 1) * 8), *lens = malloc((size_t)(n ? n : 1) * 8);
    int32_t *vals = malloc((size_t)(total ? total : 1) * 4), *pad = malloc((size_t)(n ? n : 1) * 3 * 4);
    idt_view_gather_packed(v, sel, 0, offs, (char *)vals);
    int32_t pv = -7;
    idt_view_gather_padded(v, sel, 0, 3, &pv, pad, lens);
    CHECK_EQ(offs[0], 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = src_rows[i], len = r % 5;
        CHECK_EQ(offs[i + 1] - offs[i], len);
        for (int64_t k = 0; k < len; k++) CHECK_EQ(vals[offs[i] + k], 100 * r + k);
        CHECK_EQ(lens[i], len < 3 ? len : 3);
        for (int64_t k = 0; k < 3; k++) CHECK_EQ(pad[i * 3 + k], k < len ? 100 * r + k : -7);
    }
    free(offs);
    free(lens);
    free(vals);
    free(pad);
}

static void test_list_store_views_and_gathers(void) {
    idt_store *st = list_store(200);
    REQUIRE(st != NULL);
    idt_view *v, *sh, *cat, *fl;
    idt_error err;
    int64_t show[2] = {0, 1};
    REQUIRE(idt_view_from_store(st, show, 2, &v, &err) == 0);
    int64_t rows[400];
    for (int64_t i = 0; i < 200; i++) rows[i] = i;
    check_rows(v, &(idt_rowsel){0, 1, 200, NULL}, rows);
    for (int64_t i = 0; i < 50; i++) rows[i] = 199 - 3 * i;
    check_rows(v, &(idt_rowsel){199, -3, 50, NULL}, rows);
    REQUIRE(idt_view_shuffle(v, 5, &sh, &err) == 0);
    int64_t *perm = malloc(200 * 8);
    void *outs[2];
    int64_t w[2];
    h_gather(sh, &(idt_rowsel){0, 1, 200, NULL}, outs, w);
    memcpy(perm, outs[1], 200 * 8); /* x tells the source row */
    h_free_outs(outs, 2);
    check_rows(sh, &(idt_rowsel){0, 1, 200, NULL}, perm);
    int64_t idx[4] = {5, 0, 5, 199};
    int64_t want[4] = {perm[5], perm[0], perm[5], perm[199]};
    check_rows(sh, &(idt_rowsel){0, 0, 4, idx}, want);
    idt_view *two[2] = {v, sh};
    REQUIRE(idt_view_concat(two, 2, &cat, &err) == 0);
    for (int64_t i = 0; i < 200; i++) rows[i] = i, rows[200 + i] = perm[i];
    check_rows(cat, &(idt_rowsel){0, 1, 400, NULL}, rows);
    REQUIRE(idt_view_flatten(cat, 3, NULL, &fl, &err) == 0);
    check_rows(fl, &(idt_rowsel){0, 1, 400, NULL}, rows);
    CHECK(fl->nseg == 1);
    /* batches: offsets + values, and padded, on threads */
    for (int padded = 0; padded < 2; padded++) {
        idt_list_pad pads[2] = {{padded ? 2 : -1, {0}}, {-1, {0}}};
        idt_batcher *it;
        REQUIRE(idt_batcher_new_padded(cat, 64, 0, 3, 4, pads, &it, &err) == 0);
        idt_batch *b;
        int64_t seen = 0;
        while (idt_batcher_next(it, &b, -1, &err) == IDT_NEXT_BATCH) {
            CHECK(b->aux[0] != NULL && b->aux[1] == NULL);
            const int64_t *xa = b->bufs[1];
            for (int64_t i = 0; i < b->nrows; i++) {
                int64_t r = xa[i], len = r % 5;
                CHECK_EQ(r, rows[seen + i]);
                if (padded) {
                    const int32_t *p = (const int32_t *)b->bufs[0] + 2 * i;
                    CHECK_EQ(((int64_t *)b->aux[0])[i], len < 2 ? len : 2);
                    CHECK_EQ(p[1], len > 1 ? 100 * r + 1 : 0);
                } else {
                    const int64_t *o = b->aux[0];
                    CHECK_EQ(o[i + 1] - o[i], len);
                    if (len) CHECK_EQ(((const int32_t *)b->bufs[0])[o[i]], 100 * r);
                }
            }
            CHECK_EQ(b->widths[0], padded ? 2 : ((int64_t *)b->aux[0])[b->nrows]);
            seen += b->nrows;
            idt_batch_free(b);
        }
        CHECK_EQ(seen, 400);
        idt_batcher_free(it);
    }
    free(perm);
    idt_view_decref(fl);
    idt_view_decref(cat);
    idt_view_decref(sh);
    idt_view_decref(v);
    idt_store_decref(st);
}

static void test_list_builder_refuses_string_appends(void) {
    idt_store *st = list_store(0);
    REQUIRE(st != NULL);
    CHECK_EQ(st->nrows, 0);
    idt_store_decref(st);
    idt_column c = desc("l", IDT_COL_LIST, "<i2", 2, 0, NULL);
    idt_schema *s;
    idt_error err;
    REQUIRE(idt_schema_new(&c, 1, &s, &err) == 0);
    idt_store_builder *b;
    int64_t units = 3;
    REQUIRE(idt_store_builder_new(s, 1, &units, &b, &err) == 0);
    CHECK_EQ(idt_store_builder_append_fixed_bytes(b, 0, 1, "ab", 2, &err), IDT_EVALUE);
    CHECK(strstr(err.msg, "not a string column") != NULL);
    int64_t offs[2] = {0, 4}; /* one more value than announced */
    int16_t vals[4] = {1, 2, 3, 4};
    CHECK_EQ(idt_store_builder_append_packed(b, 0, 1, offs, 1, (const char *)vals, &err), IDT_EVALUE);
    idt_store_builder_free(b);
    idt_schema_decref(s);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_copy_computes_sizes),
        H_TEST(test_copy_refuses_bad_descriptions),
        H_TEST(test_same_and_kind_names),
        H_TEST(test_find_and_strip),
        H_TEST(test_view_find),
        H_TEST(test_list_descriptions),
        H_TEST(test_list_store_views_and_gathers),
        H_TEST(test_list_builder_refuses_string_appends),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

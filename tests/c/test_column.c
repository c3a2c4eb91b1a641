/* test_column.c: the per-kind rules of column.[ch]: validation of a column description,
 * the dtype allow-list, matching for concat, lookup by name, output sizes and the
 * trailing-NUL rule; and idt_view_find. */
#include <stdlib.h>

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

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_copy_computes_sizes),
        H_TEST(test_copy_refuses_bad_descriptions),
        H_TEST(test_same_and_kind_names),
        H_TEST(test_find_and_strip),
        H_TEST(test_view_find),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

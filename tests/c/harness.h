/* harness.h: a tiny test framework for the engine's C tests, and helpers shared by them.
 *
 * A test file defines `static void test_x(void)` functions, lists them in an h_test array
 * and calls h_main. Each test runs in order; the runner prints one line per test and ends
 * with exactly "N passed, N failed", exiting non-zero when any test failed. An optional
 * argument runs only the tests whose name contains it.
 *
 * The runner checks every test for leaks: live heap blocks, mappings and descriptors of the
 * core's seam (idt_sys_stats) and live blobs (idt_tmp_stats) must be the same after a test
 * as before it. A test that changes process-wide temp state on purpose (shutting the temp
 * area down, say) calls h_no_leak_check().
 *
 * The harness allocates with plain malloc, never through the seam, so its own memory never
 * shows in the counters it checks. */
#ifndef IDT_TEST_HARNESS_H
#define IDT_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "store.h"
#include "sys.h"
#include "tmp.h"
#include "view.h"

/* ---- checks ---- */

extern int h_test_failures; /* failed checks in the running test */

void h_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record a failure (and go on) when expr is false. */
#define CHECK(expr)                                                                       \
    do {                                                                                  \
        if (!(expr)) h_fail(__FILE__, __LINE__, "CHECK(%s)", #expr);                      \
    } while (0)

/* As CHECK, but end the test (return from the test function) on failure. */
#define REQUIRE(expr)                                                                     \
    do {                                                                                  \
        if (!(expr)) {                                                                    \
            h_fail(__FILE__, __LINE__, "REQUIRE(%s)", #expr);                             \
            return;                                                                       \
        }                                                                                 \
    } while (0)

#define CHECK_EQ(a, b)                                                                    \
    do {                                                                                  \
        long long h_a_ = (long long)(a), h_b_ = (long long)(b);                           \
        if (h_a_ != h_b_)                                                                 \
            h_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, h_a_, h_b_); \
    } while (0)

#define CHECK_STR(a, b)                                                                   \
    do {                                                                                  \
        const char *h_a_ = (a), *h_b_ = (b);                                              \
        if (strcmp(h_a_, h_b_))                                                           \
            h_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s): \"%s\" != \"%s\"", #a, #b, h_a_, h_b_); \
    } while (0)

/* `call` returns 0; else report its code and err.msg. The value is the call's result. */
#define CHECK_OK(call, err)                                                               \
    h_check_ok((call), &(err), __FILE__, __LINE__, #call)

/* `call` fails with `code`, sets err.code to it and a non-empty message containing `needle`
 * (NULL: any message). */
#define CHECK_ERR(call, code, err, needle)                                                \
    h_check_err((call), (code), &(err), (needle), __FILE__, __LINE__, #call)

int h_check_ok(int rc, const idt_error *err, const char *file, int line, const char *expr);
int h_check_err(int rc, int code, const idt_error *err, const char *needle, const char *file,
                int line, const char *expr);

/* ---- runner ---- */

typedef struct h_test {
    const char *name;
    void (*fn)(void);
} h_test;

#define H_TEST(fn) {#fn, fn}

int h_main(const h_test *tests, int n, int argc, char **argv);
/* Skip the runner's leak check for the running test. */
void h_no_leak_check(void);

/* ---- snapshots of what is live ---- */

typedef struct h_snap {
    idt_sys_stats sys;
    idt_tmp_stats tmp;
} h_snap;

void h_snap_take(h_snap *s);
/* 1 when equal; else 0, describing the difference in buf (when non-NULL). */
int h_snap_equal(const h_snap *a, const h_snap *b, char *buf, size_t n);
#define CHECK_SNAP(before)                                                                \
    do {                                                                                  \
        h_snap h_now_;                                                                    \
        char h_buf_[256];                                                                 \
        h_snap_take(&h_now_);                                                             \
        if (!h_snap_equal(&(before), &h_now_, h_buf_, sizeof h_buf_))                    \
            h_fail(__FILE__, __LINE__, "live resources changed: %s", h_buf_);            \
    } while (0)

/* ---- the temp directory ---- */

/* Sorted names of the entries of a directory (without . and ..). */
typedef struct h_names {
    int n;
    char **names;
} h_names;

/* List `dir` into out (an empty list when it does not exist). Free with h_names_free. */
void h_names_list(const char *dir, h_names *out);
void h_names_free(h_names *l);
/* 1 when equal; else 0, naming the first difference in buf. */
int h_names_equal(const h_names *a, const h_names *b, char *buf, size_t n);
/* Number of entries in this process's temp directory (creating the temp area if needed),
 * the lock file included. */
int h_count_files(void);
/* Whether a path exists. */
int h_exists(const char *path);

/* ---- building stores and views from arrays ---- */

/* A column given as arrays, nrows rows:
 *  - IDT_COL_FIXED: data holds nrows * prod(shape) elements of itemsize bytes, dtype names it;
 *  - IDT_COL_UTF8 with width > 0: data holds NumPy 'U' elements (uint32, width code points);
 *  - IDT_COL_BYTES with width > 0: data holds NumPy 'S' elements (width bytes);
 *  - UTF8 or BYTES with width 0: data is a `const char *const *` of strings, given as
 *    pieces; lens gives their lengths (NULL: strlen).
 * A string column with a row shape holds prod(shape) elements per row, row-major. */
typedef struct h_col {
    const char *name;
    idt_col_kind kind;
    const char *dtype;      /* fixed columns: the NumPy dtype string */
    int64_t itemsize;       /* fixed columns */
    int32_t ndim;
    const int64_t *shape;
    const void *data;
    int64_t width;
    const int64_t *lens;
} h_col;

/* Build a store of nrows rows from the columns (in any order). Strings are appended in
 * slices of a few, to exercise appending in parts. Leaks nothing on failure. */
int h_store(const h_col *cols, int64_t ncols, int64_t nrows, idt_store **out, idt_error *err);
/* A view of every column of such a store (in schema order), the store reference dropped. */
int h_view(const h_col *cols, int64_t ncols, int64_t nrows, idt_view **out, idt_error *err);
/* A view of all columns of `st` in schema order. */
int h_view_of(idt_store *st, idt_view **out, idt_error *err);

/* Read selected rows of every column of v: widths filled (if non-NULL) and buffers malloc'd
 * into outs[j] (caller frees with h_free_outs). */
void h_gather(const idt_view *v, const idt_rowsel *sel, void **outs, int64_t *widths);
void h_free_outs(void **outs, int64_t n);
/* Every row of int64 column j of v, malloc'd. */
int64_t *h_col_i64(const idt_view *v, int64_t j);
/* View column index of the column named `name`, or -1. */
int64_t h_vcol(const idt_view *v, const char *name);

/* ---- randomness ---- */

void h_seed(uint64_t s);
uint64_t h_rand(void);
/* Uniform in [lo, hi]. */
int64_t h_range(int64_t lo, int64_t hi);

/* Seconds on a monotonic clock. */
double h_now(void);

#endif

/* test_writer.c: flatten, the writer, the builder's streaming hash and cancellation. */
#include <stdlib.h>

#include "harness.h"
#include "writer.h"

enum { N = 70000 }; /* several flatten tasks and string chunks */

/* A view of N rows: "id" int64, "v" float32 (3,), "s" UTF8 with some non-ASCII. */
static int make_table(idt_view **out, idt_error *err) {
    int64_t *id = malloc(N * 8);
    float *v = malloc(N * 12);
    char *buf = malloc((size_t)N * 24);
    const char **s = malloc(N * sizeof *s);
    for (int64_t i = 0; i < N; i++) {
        id[i] = i;
        for (int k = 0; k < 3; k++) v[3 * i + k] = (float)(i * 3 + k);
        s[i] = buf + 24 * i;
        snprintf(buf + 24 * i, 24, i % 11 ? "r%lld" : "\xC3\xA9%lld", (long long)i);
    }
    int64_t three[1] = {3};
    h_col cols[3] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                     {"v", IDT_COL_FIXED, "<f4", 4, 1, three, v, 0, NULL},
                     {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, NULL}};
    int rc = h_view(cols, 3, N, out, err);
    free(id);
    free(v);
    free(buf);
    free(s);
    return rc;
}

/* Every row of v and f hold the same values (all columns, strings byte for byte). */
static int same_rows(const idt_view *v, const idt_view *f) {
    if (idt_view_len(v) != idt_view_len(f) || v->ncols != f->ncols) return 0;
    int64_t n = idt_view_len(v);
    idt_rowsel sel = {0, 1, n, NULL};
    void *a[8], *b[8];
    int64_t wa[8], wb[8];
    h_gather(v, &sel, a, wa);
    h_gather(f, &sel, b, wb);
    int ok = 1;
    for (int64_t j = 0; j < v->ncols && ok; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (strcmp(c->name, idt_view_column(f, j)->name) || wa[j] != wb[j]) ok = 0;
        int64_t rb = c->kind == IDT_COL_FIXED ? c->row_bytes : c->row_elems * wa[j] * (c->kind == IDT_COL_UTF8 ? 4 : 1);
        if (ok && memcmp(a[j], b[j], (size_t)(rb * n))) ok = 0;
    }
    h_free_outs(a, v->ncols);
    h_free_outs(b, f->ncols);
    return ok;
}

static void test_flatten_every_kind_of_view(void) {
    idt_error err;
    idt_view *t, *views[6];
    REQUIRE(CHECK_OK(make_table(&t, &err), err) == 0);
    int64_t *idx = malloc(5000 * 8);
    h_seed(3);
    for (int i = 0; i < 5000; i++) idx[i] = h_range(-N, N - 1);
    CHECK_OK(idt_view_slice(t, N - 1, -3, N / 3, &views[0], &err), err);
    CHECK_OK(idt_view_take(t, idx, 5000, &views[1], &err), err);
    CHECK_OK(idt_view_shuffle(t, 9, &views[2], &err), err);
    CHECK_OK(idt_view_concat((idt_view *[]){views[0], t, views[2]}, 3, &views[3], &err), err);
    CHECK_OK(idt_view_select(views[3], (const char *[]){"s", "id"}, 2, &views[4], &err), err);
    CHECK_OK(idt_view_slice(t, 0, 1, 0, &views[5], &err), err);
    free(idx);
    for (int k = 0; k < 6; k++)
        for (int64_t th = 1; th <= 3; th += 2) {
            idt_view *f;
            if (CHECK_OK(idt_view_flatten(views[k], th, NULL, &f, &err), err)) continue;
            CHECK(same_rows(views[k], f));
            CHECK(f->nseg <= 1);
            if (f->nseg == 1) CHECK_OK(idt_store_verify(f->segs[0].store, "flattened", &err), err);
            idt_view_decref(f);
        }
    for (int k = 0; k < 6; k++) idt_view_decref(views[k]);
    idt_view_decref(t);
}

typedef struct counter {
    int64_t calls, stop_at;
} counter;

static int count_and_stop(void *ctx, int64_t done, int64_t total) {
    counter *c = ctx;
    (void)done;
    (void)total;
    return ++c->calls >= c->stop_at;
}

static void test_flatten_cancel_leaves_nothing(void) {
    idt_error err;
    idt_view *t, *sh;
    REQUIRE(CHECK_OK(make_table(&t, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(t, 4, &sh, &err), err) == 0);
    int files = h_count_files();
    h_snap before;
    h_snap_take(&before);
    int cancelled = 0;
    for (int64_t stop = 1; stop <= 40; stop += 3)
        for (int64_t th = 1; th <= 3; th += 2) {
            counter c = {0, stop};
            idt_progress p = {count_and_stop, &c};
            idt_view *f = NULL;
            int rc = idt_view_flatten(sh, th, &p, &f, &err);
            if (rc == 0) { /* fewer reports than stop: it finished */
                CHECK(c.calls < stop);
                idt_view_decref(f);
                continue;
            }
            CHECK_EQ(rc, IDT_ECANCELLED);
            CHECK_EQ(h_count_files(), files);
            cancelled++;
        }
    CHECK(cancelled >= 4);
    CHECK_SNAP(before);
    idt_view_decref(sh);
    idt_view_decref(t);
}

static void test_writer_pieces_merge_and_mismatch(void) {
    idt_error err;
    idt_view *t;
    REQUIRE(CHECK_OK(make_table(&t, &err), err) == 0);
    idt_store *st = t->segs[0].store;
    idt_writer *w;
    REQUIRE(CHECK_OK(idt_writer_new(st->schema, &w, &err), err) == 0);
    idt_writer_set_merge_count(w, 2);
    /* small pieces: slices flattened into stores of their own */
    int64_t rows = 0;
    for (int k = 0; k < 5; k++) {
        idt_view *part;
        idt_store *ps;
        CHECK_OK(idt_view_slice(t, k * 100, 1, 100, &part, &err), err);
        CHECK_OK(idt_view_flatten_store(part, 1, NULL, &ps, &err), err);
        CHECK_OK(idt_writer_add(w, ps, NULL, &err), err);
        rows += ps->nrows;
        idt_store_decref(ps);
        idt_view_decref(part);
    }
    CHECK_EQ(idt_writer_rows(w), rows);
    CHECK(idt_writer_pieces(w) < 5); /* merged */
    /* a piece of another schema is refused, naming the column; the writer is unchanged */
    idt_view *other;
    int64_t one = 1;
    h_col oc[1] = {{"id", IDT_COL_FIXED, "<i4", 4, 0, NULL, &one, 0, NULL}};
    REQUIRE(CHECK_OK(h_view(oc, 1, 1, &other, &err), err) == 0);
    CHECK_ERR(idt_writer_add(w, other->segs[0].store, NULL, &err), IDT_EVALUE, err, "columns");
    CHECK_EQ(idt_writer_rows(w), rows);
    idt_view *out;
    int64_t cols[3] = {idt_schema_find(st->schema, "id"), idt_schema_find(st->schema, "s"),
                       idt_schema_find(st->schema, "v")};
    REQUIRE(CHECK_OK(idt_writer_finish(w, cols, 3, &out, &err), err) == 0);
    idt_view *want;
    CHECK_OK(idt_view_slice(t, 0, 1, 500, &want, &err), err);
    idt_view *want3;
    CHECK_OK(idt_view_select(want, (const char *[]){"id", "s", "v"}, 3, &want3, &err), err);
    CHECK(same_rows(want3, out));
    idt_view_decref(want3);
    idt_view_decref(want);
    idt_view_decref(out);
    idt_view_decref(other);
    /* no pieces: an empty table */
    REQUIRE(CHECK_OK(idt_writer_new(st->schema, &w, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_writer_finish(w, cols, 3, &out, &err), err) == 0);
    CHECK_EQ(idt_view_len(out), 0);
    idt_view_decref(out);
    /* abandoned: its pieces go */
    int files = h_count_files();
    REQUIRE(CHECK_OK(idt_writer_new(st->schema, &w, &err), err) == 0);
    idt_store *big;
    CHECK_OK(idt_view_flatten_store(t, 2, NULL, &big, &err), err);
    CHECK_OK(idt_writer_add(w, big, NULL, &err), err);
    idt_store_decref(big);
    CHECK(h_count_files() > files);
    idt_writer_free(w);
    CHECK_EQ(h_count_files(), files);
    idt_view_decref(t);
}

/* The builder hashes fixed columns as they are written when the writes come in order, and
 * falls back to reading the rest back when they do not: either way the stored hash is the
 * content's. */
static void test_builder_hash_in_and_out_of_order(void) {
    idt_error err;
    idt_column cd[2] = {{"a", IDT_COL_FIXED, "<i8", 8, 0, NULL, 1, 8},
                        {"b", IDT_COL_FIXED, "|u1", 1, 0, NULL, 1, 1}};
    idt_schema *s;
    REQUIRE(CHECK_OK(idt_schema_new(cd, 2, &s, &err), err) == 0);
    enum { R = 300000 };
    int64_t *a = malloc(R * 8);
    uint8_t *b = malloc(R);
    for (int64_t i = 0; i < R; i++) {
        a[i] = i * 7;
        b[i] = (uint8_t)i;
    }
    for (int order = 0; order < 3; order++) {
        idt_store_builder *bl;
        REQUIRE(CHECK_OK(idt_store_builder_new(s, R, NULL, &bl, &err), err) == 0);
        if (order == 0) { /* in file order */
            CHECK_OK(idt_store_builder_write_fixed(bl, 0, 0, R, a, &err), err);
            CHECK_OK(idt_store_builder_write_fixed(bl, 1, 0, R, b, &err), err);
        } else if (order == 1) { /* second column first */
            CHECK_OK(idt_store_builder_write_fixed(bl, 1, 0, R, b, &err), err);
            CHECK_OK(idt_store_builder_write_fixed(bl, 0, 0, R, a, &err), err);
        } else { /* rows backwards, in two halves */
            CHECK_OK(idt_store_builder_write_fixed(bl, 0, R / 2, R - R / 2, a + R / 2, &err), err);
            CHECK_OK(idt_store_builder_write_fixed(bl, 0, 0, R / 2, a, &err), err);
            CHECK_OK(idt_store_builder_write_fixed(bl, 1, 0, R, b, &err), err);
        }
        idt_store *st;
        REQUIRE(CHECK_OK(idt_store_builder_finish(bl, &st, &err), err) == 0);
        CHECK_OK(idt_store_verify(st, "built", &err), err);
        idt_store_decref(st);
    }
    free(a);
    free(b);
    idt_schema_decref(s);
}

/* flatten() of a contiguous table: its rows are written straight from the source mapping,
 * whose pages a worker populates (MADV_POPULATE_READ) ahead of the writing thread, one
 * advice per ~4 MB task, so a cold source is read from disk while the previous task is
 * written (speed is bench/writes.py's; this checks that the advice is given, and that the
 * result is right whether or not the kernel takes it). */
static void test_flatten_contiguous_populates_the_source(void) {
    idt_error err;
    enum { R = 1 << 15, W = 128 }; /* 16 MiB of float32 rows of 512 bytes: four tasks */
    float *x = malloc((size_t)R * W * 4);
    REQUIRE(x != NULL);
    for (int64_t i = 0; i < (int64_t)R * W; i++) x[i] = (float)(i & 1023);
    int64_t shape[1] = {W};
    h_col col = {"x", IDT_COL_FIXED, "<f4", 4, 1, shape, x, 0, NULL};
    idt_view *v;
    int rc = h_view(&col, 1, R, &v, &err);
    free(x);
    REQUIRE(CHECK_OK(rc, err) == 0);
    for (int fail = 0; fail < 2; fail++) {
        if (fail) idt_fault_arm(IDT_FAULT_ADVISE, 1, 0, 1); /* refused: pages are touched */
        int64_t before = idt_sys_calls(IDT_FAULT_ADVISE);
        idt_view *f;
        rc = idt_view_flatten(v, 2, NULL, &f, &err);
        idt_fault_reset();
        REQUIRE(CHECK_OK(rc, err) == 0);
        CHECK(idt_sys_calls(IDT_FAULT_ADVISE) - before >= 4);
        CHECK(same_rows(v, f));
        idt_view_decref(f);
    }
    idt_view_decref(v);
}

/* Lines of /proc/self/maps: every mapping of the process. */
static int maps_lines(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* A writer fed many batches just over IDT_ARENA_MAX: past its own-file count they are carved
 * from its pool's shared extents, so files and mappings grow with the bytes, not the
 * batches (each such batch used to be a file and a mapping); the rows read back right; a
 * dropped table leaves no file. */
static void test_writer_many_large_pieces_share_extents(void) {
    idt_error err;
    idt_column cd = {"x", IDT_COL_FIXED, "<i8", 8, 0, NULL, 1, 8};
    idt_schema *s;
    REQUIRE(CHECK_OK(idt_schema_new(&cd, 1, &s, &err), err) == 0);
    enum { PIECES = 150, ROWS = (1 << 17) + 512 }; /* 1 MiB + 4 KiB each: 158 MB in all */
    int64_t *x = malloc(ROWS * 8);
    REQUIRE(x != NULL);
    idt_sys_stats st0, st1;
    idt_sys_stats_get(&st0);
    int files0 = h_count_files(), maps0 = maps_lines();
    idt_writer *w;
    REQUIRE(CHECK_OK(idt_writer_new(s, &w, &err), err) == 0);
    idt_writer_set_own_files(w, 2);
    for (int64_t k = 0; k < PIECES; k++) {
        for (int64_t i = 0; i < ROWS; i++) x[i] = k * ROWS + i;
        idt_store_builder *b;
        idt_store *st;
        REQUIRE(CHECK_OK(idt_store_builder_new_in(s, ROWS, NULL, idt_writer_pool(w), &b, &err), err) == 0);
        CHECK_OK(idt_store_builder_write_fixed(b, 0, 0, ROWS, x, &err), err);
        REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
        CHECK(st->blob->kind == (k < 2 ? IDT_BLOB_FILE : IDT_BLOB_ARENA));
        CHECK_OK(idt_writer_add(w, st, NULL, &err), err);
        idt_store_decref(st);
    }
    /* 2 own files + extents of 64, 128 MiB (the bytes taken so far, doubled); the process's
     * mappings (the allocator's included) grow by far fewer than one per piece */
    idt_sys_stats_get(&st1);
    int files = h_count_files() - files0, maps = maps_lines() - maps0;
    int64_t own_maps = st1.maps - st0.maps;
    if (files > 6 || own_maps > 6 || maps > PIECES / 4)
        h_fail(__FILE__, __LINE__, "%d files, %lld library mappings, %d in /proc/self/maps for %d pieces",
               files, (long long)own_maps, maps, PIECES);
    idt_view *v;
    int64_t col = 0;
    REQUIRE(CHECK_OK(idt_writer_finish(w, &col, 1, &v, &err), err) == 0);
    CHECK_EQ(idt_view_len(v), (int64_t)PIECES * ROWS);
    int64_t idx[4] = {0, ROWS - 1, ROWS * 77 + 5, (int64_t)PIECES * ROWS - 1}, got[4];
    void *outs[1] = {got};
    int64_t widths[1] = {0};
    idt_view_gather(v, &(idt_rowsel){0, 1, 4, idx}, outs, widths);
    for (int i = 0; i < 4; i++) CHECK_EQ(got[i], idx[i]);
    for (int64_t k = 0; k < v->nseg; k++)
        if (v->segs[k].kind == IDT_SEG_RUN) CHECK_OK(idt_store_verify(v->segs[k].store, "piece", &err), err);
    idt_view_decref(v);
    CHECK_EQ(h_count_files(), files0);
    free(x);
    idt_schema_decref(s);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_flatten_every_kind_of_view),
        H_TEST(test_flatten_cancel_leaves_nothing),
        H_TEST(test_writer_pieces_merge_and_mismatch),
        H_TEST(test_builder_hash_in_and_out_of_order),
        H_TEST(test_flatten_contiguous_populates_the_source),
        H_TEST(test_writer_many_large_pieces_share_extents),
    };
    return h_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}

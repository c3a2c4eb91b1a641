/* test_store.c: schemas, the store builder, store image validation and the UTF-8 codec. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "utf8.h"

/* ---- helpers ---- */

static idt_column fixed_col(const char *name, const char *dtype, int64_t itemsize, int32_t ndim,
                            int64_t *shape) {
    idt_column c;
    memset(&c, 0, sizeof c);
    c.name = (char *)name;
    c.kind = IDT_COL_FIXED;
    snprintf(c.dtype, sizeof c.dtype, "%s", dtype);
    c.itemsize = itemsize;
    c.ndim = ndim;
    c.shape = shape;
    return c;
}

static idt_column str_col(const char *name, idt_col_kind kind) {
    idt_column c;
    memset(&c, 0, sizeof c);
    c.name = (char *)name;
    c.kind = kind;
    snprintf(c.dtype, sizeof c.dtype, "%s", kind == IDT_COL_UTF8 ? "U" : "S");
    return c;
}

/* Read string s of store column c as bytes. */
static int str_is(const idt_store *st, int64_t c, int64_t s, const char *want, int64_t wlen) {
    const idt_store_col *sc = &st->cols[c];
    uint64_t a = sc->offsets[s], z = sc->offsets[s + 1];
    return (int64_t)(z - a) == wlen && !memcmp(sc->data + a, want, (size_t)wlen);
}

/* ---- schemas ---- */

static void test_schema_sorted(void) {
    int64_t shape[2] = {2, 3};
    idt_column in[4] = {fixed_col("zeta", "<i8", 8, 0, NULL), fixed_col("alpha", "<f4", 4, 2, shape),
                        str_col("mid", IDT_COL_UTF8), str_col("Mid", IDT_COL_BYTES)};
    idt_schema *s;
    idt_error err;
    REQUIRE(CHECK_OK(idt_schema_new(in, 4, &s, &err), err) == 0);
    CHECK_EQ(s->ncols, 4);
    CHECK_STR(s->cols[0].name, "Mid"); /* bytewise: uppercase first */
    CHECK_STR(s->cols[1].name, "alpha");
    CHECK_STR(s->cols[2].name, "mid");
    CHECK_STR(s->cols[3].name, "zeta");
    CHECK_EQ(s->cols[1].row_elems, 6);
    CHECK_EQ(s->cols[1].row_bytes, 24);
    CHECK_EQ(s->cols[1].shape[1], 3);
    CHECK(s->cols[1].shape != shape); /* copied */
    CHECK_EQ(s->cols[3].row_bytes, 8);
    CHECK_EQ(s->cols[2].row_bytes, 0);
    CHECK_EQ(s->cols[2].itemsize, 0);
    CHECK_EQ(s->cols[2].row_elems, 1);
    CHECK_EQ(idt_schema_find(s, "mid"), 2);
    CHECK_EQ(idt_schema_find(s, "zeta"), 3);
    CHECK_EQ(idt_schema_find(s, "Mid"), 0);
    CHECK_EQ(idt_schema_find(s, "nope"), -1);
    CHECK_EQ(idt_schema_find(s, ""), -1);
    CHECK(idt_column_same(&s->cols[2], &s->cols[2]));
    CHECK(!idt_column_same(&s->cols[0], &s->cols[2]));
    idt_schema_incref(s);
    idt_schema_decref(s);
    idt_schema_decref(s);
    idt_schema_decref(NULL);
}

static void test_schema_errors(void) {
    idt_schema *s = NULL;
    idt_error err;
    int64_t neg[1] = {-1}, big[2] = {(int64_t)1 << 40, (int64_t)1 << 40}, huge[1] = {(int64_t)1 << 61};
    idt_column ok = fixed_col("ok", "<i4", 4, 0, NULL);

    CHECK_ERR(idt_schema_new(&ok, 0, &s, &err), IDT_EVALUE, err, "at least one column");
    idt_column c[2] = {ok, fixed_col("", "<i4", 4, 0, NULL)};
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "empty");
    c[1].name = NULL;
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "empty");
    c[1] = fixed_col("ok", "<f8", 8, 0, NULL);
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "duplicate column name 'ok'");
    c[1] = fixed_col("neg", "<i4", 4, 1, neg);
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "'neg'");
    c[1] = fixed_col("deep", "<i4", 4, IDT_MAXDIMS, big);
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "'deep'");
    c[1] = fixed_col("negdim", "<i4", 4, -1, NULL);
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "'negdim'");
    c[1] = fixed_col("long", "<i4", 4, 0, NULL);
    memset(c[1].dtype, 'x', sizeof c[1].dtype); /* no NUL */
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "dtype string too long");
    c[1] = fixed_col("zero", "<i4", 0, 0, NULL);
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "itemsize");
    c[1] = fixed_col("kind", "<i4", 4, 0, NULL);
    c[1].kind = (idt_col_kind)9;
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "unknown kind 9");
    c[1] = fixed_col("wide", "<f8", 8, 2, big); /* 2^80 elements */
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "too large");
    c[1] = fixed_col("wide2", "<f8", 8, 1, huge); /* 2^61 elements of 8 bytes */
    CHECK_ERR(idt_schema_new(c, 2, &s, &err), IDT_EVALUE, err, "too large");
    CHECK(s == NULL);
    /* a zero dimension is fine: rows of no elements */
    int64_t zero[2] = {3, 0};
    c[1] = fixed_col("empty", "<f8", 8, 2, zero);
    REQUIRE(CHECK_OK(idt_schema_new(c, 2, &s, &err), err) == 0);
    CHECK_EQ(s->cols[0].row_bytes, 0);
    idt_schema_decref(s);
}

/* ---- the builder ---- */

static void test_builder_fixed(void) {
    enum { N = 37 };
    int64_t ids[N];
    double mat[N][2][3];
    int8_t flags[N];
    int64_t shape[2] = {2, 3}, zshape[1] = {0};
    for (int i = 0; i < N; i++) {
        ids[i] = 1000 + i;
        flags[i] = (int8_t)(i * 7);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 3; b++) mat[i][a][b] = i + a * 0.5 + b * 0.25;
    }
    h_col cols[4] = {
        {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, ids, 0, NULL},
        {"mat", IDT_COL_FIXED, "<f8", 8, 2, shape, mat, 0, NULL},
        {"flag", IDT_COL_FIXED, "|i1", 1, 0, NULL, flags, 0, NULL},
        {"none", IDT_COL_FIXED, "<f4", 4, 1, zshape, NULL, 0, NULL},
    };
    idt_store *st;
    idt_error err;
    REQUIRE(CHECK_OK(h_store(cols, 4, N, &st, &err), err) == 0);
    CHECK_EQ(st->nrows, N);
    CHECK_EQ(st->schema->ncols, 4);
    int64_t cid = idt_schema_find(st->schema, "id"), cm = idt_schema_find(st->schema, "mat");
    int64_t cf = idt_schema_find(st->schema, "flag");
    CHECK(!memcmp(st->cols[cid].data, ids, sizeof ids));
    CHECK(!memcmp(st->cols[cm].data, mat, sizeof mat));
    CHECK(!memcmp(st->cols[cf].data, flags, sizeof flags));
    for (int64_t c = 0; c < 4; c++) CHECK(((uintptr_t)st->cols[c].data & 63) == 0);
    CHECK_STR(st->schema->cols[cm].dtype, "<f8");
    /* stores get distinct ids */
    idt_store *st2;
    REQUIRE(CHECK_OK(h_store(cols, 4, N, &st2, &err), err) == 0);
    CHECK(st2->id != st->id);
    CHECK(memcmp(st2->uid, st->uid, sizeof st->uid) != 0);
    idt_store_decref(st2);
    /* read back through a view */
    idt_view *v;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    void *outs[4];
    int64_t w[4];
    idt_rowsel sel = {0, 1, N, NULL};
    h_gather(v, &sel, outs, w);
    CHECK(!memcmp(outs[h_vcol(v, "mat")], mat, sizeof mat));
    CHECK(!memcmp(outs[h_vcol(v, "id")], ids, sizeof ids));
    for (int j = 0; j < 4; j++) CHECK_EQ(w[j], 0);
    h_free_outs(outs, 4);
    idt_view_decref(v);
    idt_store_decref(st);
}

static void test_builder_errors(void) {
    idt_column in[2] = {fixed_col("x", "<i4", 4, 0, NULL), str_col("s", IDT_COL_UTF8)};
    idt_schema *s;
    idt_error err;
    REQUIRE(CHECK_OK(idt_schema_new(in, 2, &s, &err), err) == 0);
    int64_t cs = idt_schema_find(s, "s"), cx = idt_schema_find(s, "x");
    int64_t sb[2] = {0, 0};
    int files = h_count_files();
    idt_store_builder *b = NULL;
    CHECK_ERR(idt_store_builder_new(s, -1, sb, &b, &err), IDT_EVALUE, err, "-1");
    CHECK_ERR(idt_store_builder_new(s, 3, NULL, &b, &err), IDT_EVALUE, err, "'s'");
    sb[cs] = -5;
    CHECK_ERR(idt_store_builder_new(s, 3, sb, &b, &err), IDT_EVALUE, err, "'s'");
    CHECK_ERR(idt_store_builder_new(s, (int64_t)1 << 62, sb, &b, &err), IDT_EVALUE, err, NULL);
    sb[cs] = 4;
    CHECK_ERR(idt_store_builder_new(s, (int64_t)1 << 61, sb, &b, &err), IDT_EVALUE, err, "too large");
    CHECK(b == NULL);

    /* wrong column kinds and ranges */
    REQUIRE(CHECK_OK(idt_store_builder_new(s, 3, sb, &b, &err), err) == 0);
    int32_t xs[4] = {1, 2, 3, 4};
    CHECK_ERR(idt_store_builder_write_fixed(b, cs, 0, 1, xs, &err), IDT_EVALUE, err, "not a fixed");
    CHECK_ERR(idt_store_builder_write_fixed(b, 7, 0, 1, xs, &err), IDT_EVALUE, err, "7");
    CHECK_ERR(idt_store_builder_write_fixed(b, cx, 2, 2, xs, &err), IDT_EINDEX, err, "3 rows");
    CHECK_ERR(idt_store_builder_write_fixed(b, cx, -1, 1, xs, &err), IDT_EINDEX, err, NULL);
    CHECK_ERR(idt_store_builder_write_fixed(b, cx, 0, -1, xs, &err), IDT_EINDEX, err, NULL);
    const char *p[4] = {"ab", "c", "d", "e"};
    int64_t l[4] = {2, 1, 1, 1};
    CHECK_ERR(idt_store_builder_append_pieces(b, cx, 1, p, l, &err), IDT_EVALUE, err, "not a string");
    CHECK_ERR(idt_store_builder_append_pieces(b, cs, 4, p, l, &err), IDT_EVALUE, err, "more strings");
    CHECK_ERR(idt_store_builder_append_pieces(b, cs, -1, p, l, &err), IDT_EVALUE, err, NULL);
    /* announced 4 bytes: "ab" + "c" fit, then "ab" does not */
    CHECK_OK(idt_store_builder_append_pieces(b, cs, 2, p, l, &err), err);
    CHECK_ERR(idt_store_builder_append_pieces(b, cs, 1, p, l, &err), IDT_EVALUE, err, "more bytes");
    int64_t neg = -1;
    CHECK_ERR(idt_store_builder_append_pieces(b, cs, 1, p, &neg, &err), IDT_EVALUE, err, NULL);
    uint32_t u[2] = {'x', 'y'};
    CHECK_ERR(idt_store_builder_append_ucs4(b, cs, 1, u, 2, &err), IDT_EVALUE, err, "more bytes");
    /* finishing short: 2 of 3 strings */
    CHECK_ERR(idt_store_builder_finish(b, &(idt_store *){NULL}, &err), IDT_EVALUE, err,
              "2 of 3 strings");

    /* too few bytes: all strings but 1 of 4 bytes missing */
    REQUIRE(CHECK_OK(idt_store_builder_new(s, 3, sb, &b, &err), err) == 0);
    CHECK_OK(idt_store_builder_append_pieces(b, cs, 3, p + 1, l + 1, &err), err);
    CHECK_ERR(idt_store_builder_finish(b, &(idt_store *){NULL}, &err), IDT_EVALUE, err,
              "3 of 4 bytes");

    /* fixed bytes over the announced count */
    idt_column bin[1] = {str_col("b", IDT_COL_BYTES)};
    idt_schema *s2;
    REQUIRE(CHECK_OK(idt_schema_new(bin, 1, &s2, &err), err) == 0);
    int64_t two = 2;
    REQUIRE(CHECK_OK(idt_store_builder_new(s2, 1, &two, &b, &err), err) == 0);
    CHECK_ERR(idt_store_builder_append_fixed_bytes(b, 0, 1, "abc", 3, &err), IDT_EVALUE, err,
              "'b'");
    idt_store_builder_free(b); /* abandoned */
    idt_store_builder_free(NULL);
    CHECK_EQ(h_count_files(), files);
    idt_schema_decref(s2);
    idt_schema_decref(s);
}

static void test_builder_ucs4(void) {
    enum { W = 5 };
    /* NumPy 'U5' elements: trailing NULs are padding, inner NULs are kept */
    uint32_t u[6][W] = {
        {'a', 'b', 'c', 0, 0},
        {0, 0, 0, 0, 0},
        {0xE9, 'x', 0, 0, 0},        /* e-acute: 2 bytes */
        {0x20AC, 0x1F600, 'z', 'z', 'z'}, /* 3 + 4 bytes, full width */
        {'q', 0, 'r', 0, 0},         /* inner NUL */
        {0xD800, 0x110000, 0xFFFFFFFFu, 0, 0},
    };
    int ascii = 1;
    int64_t want_bytes = 3 + 0 + 3 + 10 + 3 + 3 + 4 + 7;
    CHECK_EQ(idt_ucs4_utf8_len(&u[0][0], 6, W, &ascii), want_bytes);
    CHECK_EQ(ascii, 0);
    ascii = 1;
    CHECK_EQ(idt_ucs4_utf8_len(&u[0][0], 2, W, &ascii), 3);
    CHECK_EQ(ascii, 1);
    CHECK_EQ(idt_ucs4_utf8_len(&u[0][0], 0, W, NULL), 0);
    h_col cols[1] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, u, W, NULL}};
    idt_store *st;
    idt_error err;
    REQUIRE(CHECK_OK(h_store(cols, 1, 6, &st, &err), err) == 0);
    CHECK_EQ(st->cols[0].offsets[6], want_bytes);
    CHECK_EQ(st->cols[0].ascii, 0);
    CHECK(str_is(st, 0, 0, "abc", 3));
    CHECK(str_is(st, 0, 1, "", 0));
    CHECK(str_is(st, 0, 2, "\xC3\xA9x", 3));
    CHECK(str_is(st, 0, 3, "\xE2\x82\xAC\xF0\x9F\x98\x80zzz", 10));
    CHECK(str_is(st, 0, 4, "q\0r", 3));
    CHECK(str_is(st, 0, 5, "\xED\xA0\x80\xF4\x90\x80\x80\xFE\x83\xBF\xBF\xBF\xBF\xBF", 14));
    /* read back: width is the longest in characters, values round-trip */
    idt_view *v;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    void *outs[1];
    int64_t w[1];
    idt_rowsel sel = {0, 1, 6, NULL};
    h_gather(v, &sel, outs, w);
    CHECK_EQ(w[0], 5);
    CHECK(!memcmp(outs[0], u, sizeof u));
    h_free_outs(outs, 1);
    /* a narrower selection gets a narrower width */
    idt_rowsel sel2 = {0, 2, 3, NULL}; /* rows 0, 2, 4 */
    h_gather(v, &sel2, outs, w);
    CHECK_EQ(w[0], 3);
    uint32_t want2[3][3] = {{'a', 'b', 'c'}, {0xE9, 'x', 0}, {'q', 0, 'r'}};
    CHECK(!memcmp(outs[0], want2, sizeof want2));
    h_free_outs(outs, 1);
    /* an all-empty selection has width 1 */
    int64_t one = 1;
    idt_rowsel sel3 = {0, 1, 1, &one};
    h_gather(v, &sel3, outs, w);
    CHECK_EQ(w[0], 1);
    CHECK_EQ(((uint32_t *)outs[0])[0], 0);
    h_free_outs(outs, 1);
    /* widths given larger than needed are zero padded; smaller ones cut */
    uint32_t wide[2][7];
    memset(wide, 0xFF, sizeof wide);
    int64_t w7 = 7, w2 = 2;
    void *o1[1] = {wide};
    idt_view_gather(v, &(idt_rowsel){3, 1, 2, NULL}, o1, &w7);
    CHECK_EQ(wide[0][1], 0x1F600);
    CHECK_EQ(wide[0][5], 0);
    CHECK_EQ(wide[1][2], 'r');
    CHECK_EQ(wide[1][6], 0);
    uint32_t narrow[2][2];
    void *o2[1] = {narrow};
    idt_view_gather(v, &(idt_rowsel){3, 1, 2, NULL}, o2, &w2);
    CHECK_EQ(narrow[0][0], 0x20AC);
    CHECK_EQ(narrow[0][1], 0x1F600);
    CHECK_EQ(narrow[1][0], 'q');
    CHECK_EQ(narrow[1][1], 0);
    idt_view_decref(v);
    idt_store_decref(st);

    /* ASCII-only columns are flagged so */
    uint32_t a[2][2] = {{'h', 'i'}, {'!', 0}};
    h_col ac[1] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, a, 2, NULL}};
    REQUIRE(CHECK_OK(h_store(ac, 1, 2, &st, &err), err) == 0);
    CHECK_EQ(st->cols[0].ascii, 1);
    idt_store_decref(st);
}

/* Large NumPy unicode inputs are measured and encoded on threads (in shares of ~4 MB, each
 * measured then encoded from cache): the same bytes, offsets and ASCII flag as the element
 * by element encoding, whatever mix of ASCII, multi-byte code points, trailing and inner
 * NULs and empty elements, and whether the column is appended in one call or several. */
static void test_builder_ucs4_large_on_threads(void) {
    enum { W = 40, N = 90000 }; /* 14 MB of UCS4: several shares */
    uint32_t *u = malloc((size_t)N * W * 4);
    char *want = malloc((size_t)N * W * 7);
    uint64_t *off = malloc((N + 1) * sizeof *off);
    REQUIRE(u && want && off);
    for (int all_ascii = 0; all_ascii < 2; all_ascii++) {
        h_seed(11 + all_ascii);
        off[0] = 0;
        for (int64_t i = 0; i < N; i++) {
            uint32_t *e = u + i * W;
            int64_t len = h_range(0, W);
            for (int64_t k = 0; k < W; k++) e[k] = k < len ? (uint32_t)h_range('a', 'z') : 0;
            if (len > 3 && i % 7 == 0) e[len / 2] = 0; /* an inner NUL is kept */
            if (!all_ascii && len > 0 && i % 97 == 0) e[0] = 0xE9;
            if (!all_ascii && len > 1 && i % 1001 == 0) e[len - 1] = 0x1F600;
            int64_t keep = W;
            while (keep > 0 && e[keep - 1] == 0) keep--;
            off[i + 1] = off[i] + idt_utf8_encode(e, (size_t)keep, want + off[i]);
        }
        int ascii = 1;
        CHECK_EQ(idt_ucs4_utf8_len(u, N, W, &ascii), (int64_t)off[N]);
        CHECK_EQ(ascii, all_ascii);
        idt_column cd = {"s", IDT_COL_UTF8, "U", 0, 0, NULL, 1, 0};
        idt_schema *sc;
        idt_error err;
        REQUIRE(CHECK_OK(idt_schema_new(&cd, 1, &sc, &err), err) == 0);
        for (int calls = 1; calls <= 3; calls += 2) {
            idt_store_builder *b;
            int64_t total = (int64_t)off[N];
            REQUIRE(CHECK_OK(idt_store_builder_new(sc, N, &total, &b, &err), err) == 0);
            for (int q = 0; q < calls; q++) {
                int64_t lo = N * q / calls, hi = N * (q + 1) / calls;
                CHECK_OK(idt_store_builder_append_ucs4(b, 0, hi - lo, u + lo * W, W, &err), err);
            }
            idt_store *st;
            REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
            CHECK(!memcmp(st->cols[0].offsets, off, (N + 1) * sizeof *off));
            CHECK(!memcmp(st->cols[0].data, want, off[N]));
            CHECK_EQ(st->cols[0].ascii, all_ascii);
            CHECK_OK(idt_store_verify(st, "built", &err), err);
            idt_store_decref(st);
        }
        /* fewer bytes announced than the strings hold: refused before anything is written */
        idt_store_builder *b;
        int64_t fewer = (int64_t)off[N] - 1;
        REQUIRE(CHECK_OK(idt_store_builder_new(sc, N, &fewer, &b, &err), err) == 0);
        CHECK_ERR(idt_store_builder_append_ucs4(b, 0, N, u, W, &err), IDT_EVALUE, err, "more bytes");
        idt_store_builder_free(b);
        idt_schema_decref(sc);
    }
    free(u);
    free(want);
    free(off);
}

/* Open columns (idt_store_builder_new_open): NumPy unicode read once, the column's size found
 * as it comes. The same strings, ASCII flags and a valid checksummed image as announced
 * columns, laid out compactly (the room left over is given back), for one open column or
 * several, next to fixed and announced columns, through the threaded pipeline and the
 * element-by-element path; errors for strings after the column's run, for more bytes than
 * the bound (flagged, so the caller can measure and build again) and for put_strings. */
static uint64_t image_end(const idt_store *st, int64_t c) {
    const idt_store_col *sc = &st->cols[c];
    uint64_t nstr = (uint64_t)st->nrows * (uint64_t)st->schema->cols[c].row_elems;
    return ((uint64_t)((const char *)(sc->offsets + nstr + 1) - st->blob->data) + 63) / 64 * 64;
}

static void test_builder_open(void) {
    enum { W = 40, N = 90000 }; /* 14 MB of UCS4: the pipeline */
    uint32_t *u = malloc((size_t)N * W * 4);
    char *want = malloc((size_t)N * W * 7);
    uint64_t *off = malloc((N + 1) * sizeof *off);
    int64_t *x = malloc(N * sizeof *x);
    REQUIRE(u && want && off && x);
    h_seed(21);
    off[0] = 0;
    for (int64_t i = 0; i < N; i++) {
        uint32_t *e = u + i * W;
        int64_t len = h_range(0, W);
        for (int64_t k = 0; k < W; k++) e[k] = k < len ? (uint32_t)h_range('a', 'z') : 0;
        if (len > 3 && i % 7 == 0) e[len / 2] = 0;
        if (len > 0 && i % 3001 == 0) e[0] = 0xE9;          /* a few parts not ASCII */
        if (len > 1 && i % 5003 == 0) e[len - 1] = 0x10FFFF; /* 4 bytes: still within 4 per cp */
        int64_t keep = W;
        while (keep > 0 && e[keep - 1] == 0) keep--;
        off[i + 1] = off[i] + idt_utf8_encode(e, (size_t)keep, want + off[i]);
        x[i] = i * 3;
    }
    idt_column cd[4] = {str_col("a", IDT_COL_UTF8), str_col("b", IDT_COL_BYTES),
                        str_col("c", IDT_COL_UTF8), fixed_col("x", "<i8", 8, 0, NULL)};
    cd[0].row_elems = cd[1].row_elems = cd[2].row_elems = 1;
    idt_schema *sc;
    idt_error err;
    REQUIRE(CHECK_OK(idt_schema_new(cd, 4, &sc, &err), err) == 0);
    int64_t ca = idt_schema_find(sc, "a"), cb = idt_schema_find(sc, "b"), cc = idt_schema_find(sc, "c"),
            cx = idt_schema_find(sc, "x");
    const int64_t bound = (int64_t)N * W * 4;
    const int64_t small = 1000; /* c: its first 1000 elements' worth, element by element */
    for (int calls = 1; calls <= 3; calls += 2) {
        /* a and c open, b announced (bytes of the first 1000 strings of `want`) */
        int64_t sbytes[4] = {0}, smax[4] = {-1, -1, -1, -1};
        smax[ca] = bound;
        smax[cc] = bound;
        sbytes[cb] = (int64_t)off[N];
        idt_store_builder *b;
        REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, sbytes, smax, NULL, &b, &err), err) == 0);
        CHECK_OK(idt_store_builder_write_fixed(b, cx, 0, N, x, &err), err);
        for (int q = 0; q < calls; q++) {
            int64_t lo = N * q / calls, hi = N * (q + 1) / calls;
            CHECK_OK(idt_store_builder_append_ucs4(b, ca, hi - lo, u + lo * W, W, &err), err);
        }
        const char **ptrs = malloc(N * sizeof *ptrs);
        int64_t *lens = malloc(N * sizeof *lens);
        REQUIRE(ptrs && lens);
        for (int64_t i = 0; i < N; i++) {
            ptrs[i] = want + off[i];
            lens[i] = (int64_t)(off[i + 1] - off[i]);
        }
        CHECK_OK(idt_store_builder_append_pieces(b, cb, N, ptrs, lens, &err), err);
        /* c element by element (small appends), in several calls */
        for (int64_t lo = 0; lo < N; lo += small) {
            int64_t m = N - lo < small ? N - lo : small;
            CHECK_OK(idt_store_builder_append_ucs4(b, cc, m, u + lo * W, W, &err), err);
        }
        CHECK(!idt_store_builder_overflowed(b));
        idt_store *st;
        REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
        for (int k = 0; k < 3; k++) {
            int64_t c = k == 0 ? ca : k == 1 ? cb : cc;
            CHECK(!memcmp(st->cols[c].offsets, off, (N + 1) * sizeof *off));
            CHECK(!memcmp(st->cols[c].data, want, off[N]));
            CHECK_EQ(st->cols[c].ascii, 0);
        }
        CHECK(!memcmp(st->cols[cx].data, x, N * sizeof *x));
        CHECK_OK(idt_store_verify(st, "built", &err), err);
        /* compact: the open column laid out last ends the image, far below the bound; the
         * file is exactly the image (a save links it; its checksum runs to its end) */
        CHECK_EQ(image_end(st, cc), (uint64_t)st->blob->size);
        CHECK(st->blob->size < (size_t)bound);
        struct stat fs;
        REQUIRE(stat(st->blob->path, &fs) == 0);
        CHECK_EQ((uint64_t)fs.st_size, (uint64_t)st->blob->size);
        CHECK((uint64_t)fs.st_blocks * 512 < (uint64_t)st->blob->size + (1 << 20));
        idt_store_decref(st);
        free(ptrs);
        free(lens);
    }
    idt_schema_decref(sc);

    /* one open column alone; strings for it after another open column began; put_strings */
    idt_column two[2] = {str_col("p", IDT_COL_UTF8), str_col("q", IDT_COL_UTF8)};
    two[0].row_elems = two[1].row_elems = 1;
    REQUIRE(CHECK_OK(idt_schema_new(two, 2, &sc, &err), err) == 0);
    int64_t smax2[2] = {bound, bound};
    idt_store_builder *b;
    REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, NULL, smax2, NULL, &b, &err), err) == 0);
    CHECK_OK(idt_store_builder_append_ucs4(b, 0, 10, u, W, &err), err);
    CHECK_OK(idt_store_builder_append_ucs4(b, 1, 10, u, W, &err), err);
    CHECK_ERR(idt_store_builder_append_ucs4(b, 0, 10, u + 10 * W, W, &err), IDT_EVALUE, err, "one run");
    const char *one = "z";
    uint64_t onelen = 1;
    char stage[64];
    CHECK_ERR(idt_store_builder_put_strings(b, 1, 10, 1, 0, &one, &onelen, 1, stage, sizeof stage, &err),
              IDT_EVALUE, err, "open");
    CHECK(!idt_store_builder_overflowed(b));
    idt_store_builder_free(b);

    /* more bytes than the bound: refused and flagged, on both paths */
    for (int big = 0; big < 2; big++) { /* the pipeline, then element by element */
        int64_t n = big ? N : 10, tight[2] = {big ? (int64_t)off[N] - 1 : 0, bound};
        REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, NULL, tight, NULL, &b, &err), err) == 0);
        CHECK_ERR(idt_store_builder_append_ucs4(b, 0, n, u, W, &err), IDT_EVALUE, err, "reserved");
        CHECK(idt_store_builder_overflowed(b));
        idt_store_builder_free(b);
    }
    /* from a writer's pool: each store is carved from the pool's extent with its bound as
     * room, and what it did not use goes back, so the next one starts right after it (on the
     * next page) */
    idt_blob_pool *pool;
    REQUIRE(CHECK_OK(idt_blob_pool_new(&pool, &err), err) == 0);
    idt_store *ps[3];
    for (int k = 0; k < 3; k++) {
        REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, NULL, smax2, pool, &b, &err), err) == 0);
        CHECK_OK(idt_store_builder_append_ucs4(b, 0, N, u, W, &err), err);
        CHECK_OK(idt_store_builder_append_ucs4(b, 1, N, u, W, &err), err);
        REQUIRE(CHECK_OK(idt_store_builder_finish(b, &ps[k], &err), err) == 0);
        CHECK_EQ(ps[k]->blob->kind, IDT_BLOB_ARENA);
        for (int c = 0; c < 2; c++) {
            CHECK(!memcmp(ps[k]->cols[c].offsets, off, (N + 1) * sizeof *off));
            CHECK(!memcmp(ps[k]->cols[c].data, want, off[N]));
        }
        CHECK_OK(idt_store_verify(ps[k], "pooled", &err), err);
        if (k) {
            CHECK(!strcmp(ps[k]->blob->path, ps[k - 1]->blob->path));
            CHECK_EQ((uint64_t)ps[k]->blob->offset, /* pool blobs start on a page */
                     ((uint64_t)ps[k - 1]->blob->offset + ps[k - 1]->blob->size + 4095) / 4096 * 4096);
        }
    }
    /* the room each store did not use went back holding no disk blocks */
    struct stat es;
    REQUIRE(stat(ps[2]->blob->path, &es) == 0);
    uint64_t live = (uint64_t)ps[2]->blob->offset + ps[2]->blob->size;
    CHECK((uint64_t)es.st_blocks * 512 <= live + (1 << 20));
    for (int k = 0; k < 3; k++) idt_store_decref(ps[k]);
    idt_blob_pool_free(pool);
    /* code points past U+1FFFFF take more than 4 bytes: the input-size bound is too small */
    for (int64_t k = 0; k < (int64_t)N * W; k++) u[k] = 0x7FFFFFFFu;
    REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, NULL, smax2, NULL, &b, &err), err) == 0);
    CHECK_ERR(idt_store_builder_append_ucs4(b, 0, N, u, W, &err), IDT_EVALUE, err, "reserved");
    CHECK(idt_store_builder_overflowed(b));
    idt_store_builder_free(b);
    /* never appended: fewer strings than rows; no rows: an empty open column */
    REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, N, NULL, smax2, NULL, &b, &err), err) == 0);
    idt_store *st;
    CHECK_ERR(idt_store_builder_finish(b, &st, &err), IDT_EVALUE, err, "0 of 90000 strings");
    int64_t zero[2] = {0, 0};
    REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, 0, NULL, zero, NULL, &b, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
    CHECK_EQ(st->nrows, 0);
    CHECK_EQ(st->cols[1].offsets[0], 0);
    CHECK_OK(idt_store_verify(st, "empty", &err), err);
    idt_store_decref(st);

    /* a string larger than the stage goes through a grown stage (no disk reserved there) */
    size_t huge = (size_t)3 << 20;
    char *hs = malloc(huge);
    REQUIRE(hs);
    memset(hs, 'h', huge);
    const char *hp[2] = {"small", hs};
    int64_t hl[2] = {5, (int64_t)huge};
    int64_t hmax[2] = {(int64_t)huge + 5, (int64_t)huge + 5};
    REQUIRE(CHECK_OK(idt_store_builder_new_open(sc, 2, NULL, hmax, NULL, &b, &err), err) == 0);
    CHECK_OK(idt_store_builder_append_pieces(b, 0, 2, hp, hl, &err), err);
    CHECK_OK(idt_store_builder_append_pieces(b, 1, 2, hp + 0, hl + 0, &err), err);
    REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
    CHECK(str_is(st, 0, 0, "small", 5));
    CHECK(str_is(st, 0, 1, hs, (int64_t)huge));
    CHECK(str_is(st, 1, 1, hs, (int64_t)huge));
    CHECK_OK(idt_store_verify(st, "huge", &err), err);
    idt_store_decref(st);
    free(hs);
    idt_schema_decref(sc);
    free(u);
    free(want);
    free(off);
    free(x);
}

/* idt_ucs4_narrow: the OR of every code point, and the bytes when all are ASCII, for every
 * length around the vector width and values anywhere in 32 bits. */
static void test_ucs4_narrow(void) {
    uint32_t src[300];
    char dst[300], want[300];
    h_seed(5);
    for (size_t n = 0; n <= 300; n += (n < 70 ? 1 : 23)) {
        for (int mode = 0; mode < 3; mode++) {
            uint32_t any = 0;
            for (size_t k = 0; k < n; k++) {
                src[k] = (uint32_t)h_range(0, 0x7F);
                if (mode == 1 && k == n / 2) src[k] = 0x80;
                if (mode == 2 && k == n - 1) src[k] = 0x80000000u | (uint32_t)h_range(0, 0x7F);
                any |= src[k];
                want[k] = (char)src[k];
            }
            CHECK_EQ(idt_ucs4_narrow(src, n, dst), any);
            if (any < 0x80) CHECK(!memcmp(dst, want, n));
        }
    }
}

static void test_builder_fixed_bytes(void) {
    const char s[4][4] = {{'a', 'b', 0, 0}, {0, 0, 0, 0}, {'x', 0, 'y', 0}, {'\xff', 'w', 'x', 'y'}};
    CHECK_EQ(idt_fixed_bytes_len(&s[0][0], 4, 4), 2 + 0 + 3 + 4);
    CHECK_EQ(idt_fixed_bytes_len(&s[0][0], 0, 4), 0);
    h_col cols[1] = {{"b", IDT_COL_BYTES, NULL, 0, 0, NULL, s, 4, NULL}};
    idt_store *st;
    idt_error err;
    REQUIRE(CHECK_OK(h_store(cols, 1, 4, &st, &err), err) == 0);
    CHECK_EQ(st->cols[0].ascii, 0);
    CHECK(str_is(st, 0, 0, "ab", 2));
    CHECK(str_is(st, 0, 1, "", 0));
    CHECK(str_is(st, 0, 2, "x\0y", 3));
    CHECK(str_is(st, 0, 3, "\xffwxy", 4));
    idt_view *v;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    void *outs[1];
    int64_t w[1];
    h_gather(v, &(idt_rowsel){0, 1, 4, NULL}, outs, w);
    CHECK_EQ(w[0], 4);
    CHECK(!memcmp(outs[0], s, sizeof s));
    h_free_outs(outs, 1);
    h_gather(v, &(idt_rowsel){2, -2, 2, NULL}, outs, w); /* rows 2, 0 */
    CHECK_EQ(w[0], 3);
    CHECK(!memcmp(outs[0], "x\0yab\0", 6));
    h_free_outs(outs, 1);
    idt_view_decref(v);
    idt_store_decref(st);
}

static void test_builder_pieces(void) {
    const char *u[5] = {"plain", "", "caf\xC3\xA9", "a\0b", "\xF0\x9F\x98\x80"};
    int64_t ul[5] = {5, 0, 5, 3, 4};
    const char *b[5] = {"\x00\x01", "bytes", "", "zz\0", "\xC3"};
    int64_t bl[5] = {2, 5, 0, 3, 1};
    h_col cols[2] = {{"u", IDT_COL_UTF8, NULL, 0, 0, NULL, u, 0, ul},
                     {"b", IDT_COL_BYTES, NULL, 0, 0, NULL, b, 0, bl}};
    idt_store *st;
    idt_error err;
    REQUIRE(CHECK_OK(h_store(cols, 2, 5, &st, &err), err) == 0);
    int64_t cu = idt_schema_find(st->schema, "u"), cb = idt_schema_find(st->schema, "b");
    CHECK_EQ(st->cols[cu].ascii, 0);
    CHECK_EQ(st->cols[cb].ascii, 0);
    for (int i = 0; i < 5; i++) {
        CHECK(str_is(st, cu, i, u[i], ul[i]));
        CHECK(str_is(st, cb, i, b[i], bl[i])); /* pieces are stored as given */
    }
    idt_view *v;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    void *outs[2];
    int64_t w[2];
    h_gather(v, &(idt_rowsel){0, 1, 5, NULL}, outs, w);
    int64_t ju = h_vcol(v, "u"), jb = h_vcol(v, "b");
    CHECK_EQ(w[ju], 5); /* "plain" and "cafe" are 5 and 4 characters */
    CHECK_EQ(w[jb], 5);
    uint32_t *ou = outs[ju];
    CHECK_EQ(ou[2 * 5 + 3], 0xE9);
    CHECK_EQ(ou[2 * 5 + 4], 0);
    CHECK_EQ(ou[4 * 5 + 0], 0x1F600);
    CHECK_EQ(ou[3 * 5 + 2], 'b');
    char *ob = outs[jb];
    CHECK(!memcmp(ob + 5, "bytes", 5));
    CHECK(!memcmp(ob, "\x00\x01\0\0\0", 5));
    h_free_outs(outs, 2);
    idt_view_decref(v);
    idt_store_decref(st);
    /* pieces into an ASCII UTF8 column keep the flag */
    const char *a[2] = {"ab", "c"};
    h_col ac[1] = {{"u", IDT_COL_UTF8, NULL, 0, 0, NULL, a, 0, NULL}};
    REQUIRE(CHECK_OK(h_store(ac, 1, 2, &st, &err), err) == 0);
    CHECK_EQ(st->cols[0].ascii, 1);
    idt_store_decref(st);
}

static void test_builder_string_shapes(void) {
    /* a (2,) U column and a (3,) S column; 4 rows */
    int64_t two[1] = {2}, three[1] = {3};
    uint32_t u[4][2][2] = {{{'a', 0}, {'b', 'c'}}, {{0, 0}, {0xE9, 0}}, {{'d', 'd'}, {0, 0}},
                           {{'e', 0}, {'f', 0}}};
    const char *b[12] = {"1", "22", "", "333", "4", "55", "", "", "", "x", "yy", "zzz"};
    int64_t vals[4] = {10, 11, 12, 13};
    h_col cols[3] = {{"u", IDT_COL_UTF8, NULL, 0, 1, two, u, 2, NULL},
                     {"b", IDT_COL_BYTES, NULL, 0, 1, three, b, 0, NULL},
                     {"v", IDT_COL_FIXED, "<i8", 8, 0, NULL, vals, 0, NULL}};
    idt_view *v;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 3, 4, &v, &err), err) == 0);
    void *outs[3];
    int64_t w[3];
    int64_t idx[3] = {3, 0, 1};
    h_gather(v, &(idt_rowsel){0, 0, 3, idx}, outs, w);
    int64_t ju = h_vcol(v, "u"), jb = h_vcol(v, "b"), jv = h_vcol(v, "v");
    CHECK_EQ(w[ju], 2);
    CHECK_EQ(w[jb], 3);
    CHECK_EQ(w[jv], 0);
    uint32_t want_u[3][2][2] = {{{'e', 0}, {'f', 0}}, {{'a', 0}, {'b', 'c'}}, {{0, 0}, {0xE9, 0}}};
    CHECK(!memcmp(outs[ju], want_u, sizeof want_u));
    CHECK(!memcmp(outs[jb], "x\0\0" "yy\0" "zzz" "1\0\0" "22\0" "\0\0\0" "333" "4\0\0" "55\0", 27));
    int64_t want_v[3] = {13, 10, 11};
    CHECK(!memcmp(outs[jv], want_v, sizeof want_v));
    h_free_outs(outs, 3);
    idt_view_decref(v);
}

/* Rows of no elements: a (0,) string column and a (2, 0) fixed one. */
static void test_empty_row_shapes(void) {
    int64_t z[1] = {0}, z2[2] = {2, 0};
    int64_t ids[3] = {7, 8, 9};
    h_col cols[3] = {{"s", IDT_COL_UTF8, NULL, 0, 1, z, NULL, 0, NULL},
                     {"f", IDT_COL_FIXED, "<f8", 8, 2, z2, NULL, 0, NULL},
                     {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, ids, 0, NULL}};
    idt_view *v;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 3, 3, &v, &err), err) == 0);
    void *outs[3];
    int64_t w[3];
    int64_t idx[2] = {2, 0};
    h_gather(v, &(idt_rowsel){0, 0, 2, idx}, outs, w);
    CHECK_EQ(((int64_t *)outs[h_vcol(v, "id")])[0], 9);
    CHECK_EQ(w[h_vcol(v, "s")], 1);
    h_free_outs(outs, 3);
    h_gather(v, &(idt_rowsel){2, -1, 3, NULL}, outs, w);
    CHECK_EQ(((int64_t *)outs[h_vcol(v, "id")])[2], 7);
    h_free_outs(outs, 3);
    idt_view *r;
    REQUIRE(CHECK_OK(idt_view_remove_strings(v, "s", (const char *[]){""}, (int64_t[]){0}, 1, &r, &err), err) == 0);
    CHECK_EQ(idt_view_len(r), 3); /* no strings: nothing matches */
    idt_view_decref(r);
    idt_view_decref(v);
}

static void test_zero_rows(void) {
    h_col cols[2] = {{"x", IDT_COL_FIXED, "<i8", 8, 0, NULL, NULL, 0, NULL},
                     {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, NULL, 0, NULL}};
    idt_view *v;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 2, 0, &v, &err), err) == 0);
    CHECK_EQ(idt_view_len(v), 0);
    CHECK_EQ(v->nseg, 0);
    int64_t w[2] = {-1, -1};
    CHECK_OK(idt_view_str_widths(v, &(idt_rowsel){0, 1, 0, NULL}, w, &err), err);
    CHECK_EQ(w[h_vcol(v, "s")], 1);
    CHECK_EQ(w[h_vcol(v, "x")], 0);
    idt_view_gather(v, &(idt_rowsel){0, 1, 0, NULL}, (void *[]){NULL, NULL}, w);
    idt_view_decref(v);
}

/* ---- store images ---- */

static char img_dir[256];

static void img_dir_init(void) {
    if (img_dir[0]) return;
    snprintf(img_dir, sizeof img_dir, "/tmp/idt-test-store-XXXXXX");
    if (!mkdtemp(img_dir)) img_dir[0] = 0;
}

static void img_dir_cleanup(void) {
    if (!img_dir[0]) return;
    h_names l;
    h_names_list(img_dir, &l);
    for (int i = 0; i < l.n; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", img_dir, l.names[i]);
        unlink(p);
    }
    h_names_free(&l);
    rmdir(img_dir);
    img_dir[0] = 0;
}

/* Write an image to a file, map it as a LOADED blob and open it. */
static int open_image(const void *img, size_t n, idt_store **out, idt_error *err) {
    img_dir_init();
    char path[512];
    snprintf(path, sizeof path, "%s/img", img_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n && write(fd, img, n) != (ssize_t)n)) {
        if (fd >= 0) close(fd);
        return idt_error_set(err, IDT_EIO, "test: cannot write %s", path);
    }
    close(fd);
    idt_blob *b;
    int rc = idt_blob_map_file(path, &b, err);
    unlink(path);
    if (rc) return rc;
    CHECK_EQ(b->kind, IDT_BLOB_LOADED);
    return idt_store_open_blob(b, "image", out, err); /* takes b */
}

static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Recompute the header checksum (when the header size is sane). */
static void fix_sum(unsigned char *img, size_t n) {
    uint32_t hs = rd32(img + 12);
    if (hs < 40 || hs > n) return;
    memset(img + 32, 0, 8);
    uint64_t h = idt_hash64(img, hs, 0);
    wr64(img + 32, h);
}

/* Offset of column i's description, and of its layout fields (buf_off, buf_len, off_off,
 * off_len, ascii). */
static size_t col_desc(const unsigned char *img, int64_t i) {
    size_t p = 64;
    for (int64_t k = 0; k < i; k++) {
        uint32_t ndim = rd32(img + p + 4), nl = rd32(img + p + 8), dl = rd32(img + p + 12);
        size_t s = (24 + 8 * (size_t)ndim + nl + dl + 7) & ~(size_t)7;
        p += s + 40;
    }
    return p;
}

static size_t col_layout(const unsigned char *img, int64_t i) {
    size_t p = col_desc(img, i);
    uint32_t ndim = rd32(img + p + 4), nl = rd32(img + p + 8), dl = rd32(img + p + 12);
    return p + ((24 + 8 * (size_t)ndim + nl + dl + 7) & ~(size_t)7);
}

/* A store image with a fixed column "a" (int32), a UTF8 column "s" and a (2,) float column
 * "t", 5 rows. */
static unsigned char *make_image(size_t *n) {
    int32_t a[5] = {1, 2, 3, 4, 5};
    const char *s[5] = {"zero", "one", "", "thr\xC3\xA9\xC3\xA9", "four"};
    double t[5][2] = {{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}};
    int64_t two[1] = {2};
    h_col cols[3] = {{"a", IDT_COL_FIXED, "<i4", 4, 0, NULL, a, 0, NULL},
                     {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, NULL},
                     {"t", IDT_COL_FIXED, "<f8", 8, 1, two, t, 0, NULL}};
    idt_store *st;
    idt_error err;
    if (h_store(cols, 3, 5, &st, &err)) return NULL;
    *n = st->blob->size;
    unsigned char *img = malloc(*n);
    memcpy(img, st->blob->data, *n);
    idt_store_decref(st);
    return img;
}

/* Every row of every column of a store, read through a view (to prove reads stay in bounds). */
static void read_all(idt_store *st) {
    idt_view *v;
    idt_error err;
    if (h_view_of(st, &v, &err)) return;
    void *outs[64];
    if (v->ncols > 64) {
        idt_view_decref(v);
        return;
    }
    int64_t n = idt_view_len(v);
    if (n > 1000) n = 1000;
    h_gather(v, &(idt_rowsel){0, 1, n, NULL}, outs, NULL);
    h_free_outs(outs, v->ncols);
    idt_view_decref(v);
}

static void test_open_valid_image(void) {
    size_t n;
    unsigned char *img = make_image(&n);
    REQUIRE(img != NULL);
    idt_store *st;
    idt_error err;
    REQUIRE(CHECK_OK(open_image(img, n, &st, &err), err) == 0);
    CHECK_EQ(st->nrows, 5);
    CHECK_EQ(st->schema->ncols, 3);
    CHECK_STR(st->schema->cols[2].name, "t");
    CHECK_EQ(st->schema->cols[2].shape[0], 2);
    CHECK_EQ(((const int32_t *)st->cols[0].data)[4], 5);
    CHECK(str_is(st, 1, 3, "thr\xC3\xA9\xC3\xA9", 7));
    CHECK_EQ(((const double *)st->cols[2].data)[9], 9.0);
    CHECK(!memcmp(st->uid, img + 40, 16));
    idt_view *v;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    void *outs[3];
    int64_t w[3];
    h_gather(v, &(idt_rowsel){0, 1, 5, NULL}, outs, w);
    CHECK_EQ(w[1], 5); /* "thr" + two e-acute */
    CHECK_EQ(((uint32_t *)outs[1])[3 * 5 + 4], 0xE9);
    h_free_outs(outs, 3);
    idt_view_decref(v);
    idt_store_decref(st);
    free(img);
}

/* Open a corrupted copy; expect IDT_ECORRUPT mentioning needle. */
#define EXPECT_CORRUPT(buf, len, needle)                                                  \
    do {                                                                                  \
        idt_store *st_ = NULL;                                                            \
        idt_error e_;                                                                     \
        idt_error_clear(&e_);                                                             \
        int rc_ = open_image((buf), (len), &st_, &e_);                                    \
        CHECK_ERR(rc_, IDT_ECORRUPT, e_, (needle));                                       \
        if (rc_ == 0) idt_store_decref(st_);                                              \
        else CHECK(strstr(e_.msg, "image") != NULL);                                      \
    } while (0)

static void test_open_corrupt(void) {
    size_t n;
    unsigned char *img = make_image(&n);
    REQUIRE(img != NULL);
    unsigned char *c = malloc(n);
    size_t la = col_layout(img, 0), ls = col_layout(img, 1), lt = col_layout(img, 2);
    size_t ds = col_desc(img, 1);
    CHECK_EQ(rd64(img + la + 8), 20); /* buf_len of "a": 5 int32 */
    CHECK_EQ(rd64(img + ls + 24), 48); /* off_len of "s": 6 offsets */

#define FRESH() memcpy(c, img, n)
    FRESH(); c[0] ^= 1;
    EXPECT_CORRUPT(c, n, "bad magic");
    EXPECT_CORRUPT(img, 30, "bad magic");              /* shorter than a header */
    EXPECT_CORRUPT(img, 0, "bad magic");               /* empty file */
    FRESH(); wr32(c + 8, IDT_FORMAT_VERSION + 1); fix_sum(c, n);
    {
        char want[32];
        snprintf(want, sizeof want, "version %d", IDT_FORMAT_VERSION + 1);
        EXPECT_CORRUPT(c, n, want);
    }
    FRESH(); wr32(c + 12, (uint32_t)n + 1);
    {
        char want[80];
        snprintf(want, sizeof want, "image: header size is %zu, outside [64, %zu]", n + 1, n);
        EXPECT_CORRUPT(c, n, want);
    }
    FRESH(); wr32(c + 12, 12);
    EXPECT_CORRUPT(c, n, "header size is 12, outside [64, ");
    EXPECT_CORRUPT(img, rd32(img + 12) - 1, "header size"); /* cut inside the header */
    FRESH(); c[ds + 24] ^= 0x20; /* the name "s" -> "S", checksum not updated */
    EXPECT_CORRUPT(c, n, "checksum");
    FRESH(); c[n - 1] ^= 1; /* data is not covered by the checksum: opens fine */
    {
        idt_store *st;
        idt_error err;
        if (CHECK_OK(open_image(c, n, &st, &err), err) == 0) idt_store_decref(st);
    }
    FRESH(); wr64(c + 24, 0); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "image: column count is 0, outside [1, ");
    FRESH(); wr64(c + 24, 1000); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "image: column count is 1000, outside [1, ");
    FRESH(); wr64(c + 16, (uint64_t)1 << 63); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "image: row count is 9223372036854775808, outside [0, 4611686018427387904]");
    FRESH(); wr64(c + 16, 6); fix_sum(c, n); /* one row more than the buffers hold */
    EXPECT_CORRUPT(c, n, "image: buffers of column 'a' are out of bounds: data length 20, expected 24 "
                         "(6 rows of 4 bytes)");
    FRESH(); wr64(c + 16, 4); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "out of bounds");
    /* column descriptions: each message names the field, the value and the bound */
    FRESH(); wr32(c + ds, 7); fix_sum(c, n);          /* kind */
    EXPECT_CORRUPT(c, n, "image: column 1 kind is 7, outside [0, ");
    FRESH(); wr32(c + ds + 4, 100); fix_sum(c, n);    /* ndim */
    EXPECT_CORRUPT(c, n, "image: column 1 ndim is 100, outside [0, 63]");
    FRESH(); wr32(c + ds + 8, 0); fix_sum(c, n);      /* empty name */
    EXPECT_CORRUPT(c, n, "image: column 1 name length is 0, outside [1, ");
    FRESH(); wr32(c + ds + 8, 0x7FFFFFFF); fix_sum(c, n); /* name past the header */
    EXPECT_CORRUPT(c, n, "image: column 1 name length is 2147483647, outside [1, ");
    FRESH(); wr32(c + ds + 12, 40); fix_sum(c, n);    /* dtype too long */
    EXPECT_CORRUPT(c, n, "image: column 1 dtype length is 40, outside [0, 31]");
    FRESH(); wr64(c + ds + 16, (uint64_t)1 << 50); fix_sum(c, n); /* itemsize */
    EXPECT_CORRUPT(c, n, "image: column 1 itemsize is 1125899906842624, outside [0, 1099511627776]");
    FRESH(); c[ds + 24] = 'a'; fix_sum(c, n);         /* "a", "a", "t": not sorted */
    EXPECT_CORRUPT(c, n, "image: column 1 'a' does not sort after column 0 'a'");
    FRESH(); c[ds + 24] = 0; fix_sum(c, n);           /* NUL inside the name */
    EXPECT_CORRUPT(c, n, "image: column 1 name is not UTF-8 text without NUL");
    FRESH(); c[ds + 24] = (char)0xC3; fix_sum(c, n);  /* a cut UTF-8 sequence */
    EXPECT_CORRUPT(c, n, "image: column 1 name is not UTF-8 text without NUL");
    {
        size_t dt = col_desc(img, 2);
        FRESH(); wr64(c + dt + 24, (uint64_t)1 << 41); fix_sum(c, n); /* shape of "t" */
        EXPECT_CORRUPT(c, n, "image: column 2 dimension 0 is 2199023255552, outside [0, 1099511627776]");
    }
    /* a description the schema rejects: itemsize 0 of fixed column "a" */
    FRESH(); wr64(c + col_desc(img, 0) + 16, 0); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "itemsize must be positive");
    {
        idt_store *st;
        idt_error err;
        open_image(c, n, &st, &err);
        CHECK(strstr(err.msg, "image: bad column description (column 'a'") == err.msg);
    }
    /* buffers out of bounds */
    FRESH(); wr64(c + la, n); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "column 'a'");
    FRESH(); wr64(c + la, (uint64_t)-8); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "column 'a'");
    FRESH(); wr64(c + la, rd64(img + la) + 4); fix_sum(c, n); /* misaligned */
    EXPECT_CORRUPT(c, n, "column 'a'");
    FRESH(); wr64(c + la + 8, 24); fix_sum(c, n);      /* length != rows * row bytes */
    EXPECT_CORRUPT(c, n, "column 'a'");
    FRESH(); wr64(c + lt + 8, (uint64_t)-1); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "column 't'");
    FRESH(); wr64(c + ls + 16, n - 8); fix_sum(c, n);  /* offsets past the end */
    EXPECT_CORRUPT(c, n, "column 's'");
    FRESH(); wr64(c + ls + 16, rd64(img + ls + 16) + 1); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "column 's'");
    FRESH(); wr64(c + ls + 24, 40); fix_sum(c, n);
    EXPECT_CORRUPT(c, n, "column 's'");
    FRESH(); wr64(c + ls + 8, rd64(img + ls + 8) - 1); fix_sum(c, n); /* data length */
    EXPECT_CORRUPT(c, n, "column 's'");
    {
        uint64_t off = rd64(img + ls + 16);
        FRESH(); wr64(c + off, 1); /* first offset not 0 (data, no checksum) */
        EXPECT_CORRUPT(c, n, "column 's'");
        FRESH(); wr64(c + off + 40, 999); /* last offset */
        EXPECT_CORRUPT(c, n, "column 's'");
        FRESH(); wr64(c + off + 16, 100); /* not monotonic */
        EXPECT_CORRUPT(c, n, "column 's'");
        FRESH(); wr64(c + off + 8, rd64(img + off + 16)); wr64(c + off + 16, rd64(img + off + 8));
        EXPECT_CORRUPT(c, n, "column 's'");
    }
    /* the file cut short of its buffers */
    EXPECT_CORRUPT(img, n - 64, "out of bounds");
    EXPECT_CORRUPT(img, rd32(img + 12), "out of bounds");
#undef FRESH
    free(c);
    free(img);
    img_dir_cleanup();
}

/* Random damage to the header (checksum fixed up so validation goes deep) and random cuts:
 * each image opens (and then reads in bounds) or fails with IDT_ECORRUPT. */
static void test_open_fuzz(void) {
    size_t n;
    unsigned char *img = make_image(&n);
    REQUIRE(img != NULL);
    unsigned char *c = malloc(n);
    uint32_t hs = rd32(img + 12);
    h_seed(42);
    int opened = 0, bad = 0;
    for (int it = 0; it < 1500; it++) {
        memcpy(c, img, n);
        int flips = (int)h_range(1, 4);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)h_range(8, (int64_t)hs - 1);
            if (h_rand() & 1) c[at] ^= (unsigned char)(1u << h_range(0, 7));
            else c[at] = (unsigned char)h_rand();
        }
        if (h_rand() % 4) fix_sum(c, n);
        size_t len = h_rand() % 8 == 0 ? (size_t)h_range(0, (int64_t)n) : n;
        idt_store *st;
        idt_error err;
        idt_error_clear(&err);
        int rc = open_image(c, len, &st, &err);
        if (rc == 0) {
            opened++;
            read_all(st);
            idt_store_decref(st);
        } else {
            bad++;
            if (rc != IDT_ECORRUPT || !err.msg[0]) {
                h_fail(__FILE__, __LINE__, "iteration %d: rc %d (%s)", it, rc, err.msg);
                break;
            }
        }
    }
    CHECK(opened > 0);
    CHECK(bad > 0);
    free(c);
    free(img);
    img_dir_cleanup();
}

/* ---- UTF-8 ---- */

static void test_utf8_codec(void) {
    static const uint32_t cps[] = {0,       0x7F,       0x80,      0x7FF,      0x800,     0xD7FF,
                                   0xD800,  0xDBFF,     0xDC00,    0xDFFF,     0xE000,    0xFFFD,
                                   0xFFFF,  0x10000,    0x10FFFF,  0x110000,   0x1FFFFF,  0x200000,
                                   0x3FFFFFF, 0x4000000, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFEu,
                                   0xFFFFFFFFu};
    static const int lens[] = {1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 7, 7, 7};
    enum { N = sizeof cps / sizeof cps[0] };
    char buf[8 * N];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(idt_utf8_cp_len(cps[i]), lens[i]);
        size_t k = idt_utf8_encode(&cps[i], 1, buf);
        CHECK_EQ(k, (size_t)lens[i]);
        uint32_t back[2] = {7, 7};
        idt_utf8_decode(buf, k, back, 2);
        if (back[0] != cps[i]) h_fail(__FILE__, __LINE__, "code point 0x%X decodes to 0x%X", cps[i], back[0]);
        CHECK_EQ(back[1], 0);
        CHECK_EQ(idt_utf8_count(buf, k), 1);
        total += k;
    }
    /* all at once */
    size_t k = idt_utf8_encode(cps, N, buf);
    CHECK_EQ(k, total);
    CHECK_EQ(idt_utf8_count(buf, k), N);
    uint32_t back[N + 3];
    idt_utf8_decode(buf, k, back, N + 3);
    CHECK(!memcmp(back, cps, sizeof cps));
    CHECK_EQ(back[N], 0);
    CHECK_EQ(back[N + 2], 0);
    /* standard forms where they exist */
    uint32_t e[3] = {0xE9, 0x20AC, 0x1F600};
    CHECK_EQ(idt_utf8_encode(e, 3, buf), 9);
    CHECK(!memcmp(buf, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
    uint32_t sur = 0xD83D;
    idt_utf8_encode(&sur, 1, buf);
    CHECK(!memcmp(buf, "\xED\xA0\xBD", 3)); /* WTF-8 */
    /* decoding is bounded by the width and by the input */
    uint32_t w2[2];
    idt_utf8_decode("abc", 3, w2, 2);
    CHECK_EQ(w2[0], 'a');
    CHECK_EQ(w2[1], 'b');
    uint32_t guard[4] = {1, 1, 1, 0xDEAD};
    idt_utf8_decode("\xF0\x9F", 2, guard, 3); /* truncated sequence */
    CHECK_EQ(guard[1], 0);
    CHECK_EQ(guard[2], 0);
    CHECK_EQ(guard[3], 0xDEAD);
    idt_utf8_decode("\x80\xBF", 2, guard, 3); /* stray continuation bytes */
    CHECK_EQ(guard[0], 0x80);
    CHECK_EQ(guard[1], 0xBF);
    CHECK_EQ(guard[3], 0xDEAD);
    idt_utf8_decode("\xFF\xFF\xFF", 3, guard, 3);
    CHECK_EQ(guard[3], 0xDEAD);
    idt_utf8_decode("", 0, guard, 3);
    CHECK_EQ(guard[0], 0);
    CHECK_EQ(guard[3], 0xDEAD);
    idt_utf8_decode("xyz", 3, guard, 0);
    CHECK_EQ(guard[0], 0);
    /* random round trips over the whole 32-bit range */
    h_seed(7);
    for (int it = 0; it < 2000; it++) {
        uint32_t s[16], d[17];
        int m = (int)h_range(0, 16);
        for (int i = 0; i < m; i++) {
            uint64_t r = h_rand();
            int bits = (int)(r % 33);
            s[i] = bits == 32 ? (uint32_t)(r >> 8) : (uint32_t)((r >> 8) & ((1ull << bits) - 1));
        }
        char enc[16 * 7];
        size_t el = idt_utf8_encode(s, (size_t)m, enc);
        CHECK_EQ(idt_utf8_count(enc, el), m);
        idt_utf8_decode(enc, el, d, 17);
        if (memcmp(d, s, (size_t)m * 4) || d[m] != 0) {
            h_fail(__FILE__, __LINE__, "random round trip %d differs", it);
            break;
        }
    }
}

/* Surrogates and values beyond U+10FFFF go through a store and come back. */
static void test_utf8_store_roundtrip(void) {
    enum { N = 64, W = 6 };
    uint32_t u[N][W];
    h_seed(99);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < W; k++) {
            uint32_t pick[] = {0xD800, 0xDFFF, 0x110000, 0x7FFFFFFF, 0xFFFFFFFFu, 'a', 0xE9,
                               0x10FFFF, 0x80000000u, 0x3FFFFFF, 0};
            u[i][k] = k < (i % (W + 1)) ? pick[h_rand() % 10] : 0;
        }
    h_col cols[1] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, u, W, NULL}};
    idt_view *v;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 1, N, &v, &err), err) == 0);
    void *outs[1];
    int64_t w[1];
    h_gather(v, &(idt_rowsel){0, 1, N, NULL}, outs, w);
    CHECK_EQ(w[0], W);
    CHECK(!memcmp(outs[0], u, sizeof u));
    h_free_outs(outs, 1);
    idt_view_decref(v);
}

/* The dtype allow-list: exactly what construction writes, nothing that holds references. */
static void test_dtype_allowed(void) {
    static const struct { const char *dtype; int64_t itemsize; } ok[] = {
        {"|b1", 1}, {"|i1", 1}, {"|u1", 1}, {"<i2", 2}, {"<u2", 2}, {"<i4", 4}, {"<u4", 4},
        {"<i8", 8}, {"<u8", 8}, {"<f2", 2}, {"<f4", 4}, {"<f8", 8}, {"<c8", 8}, {"<c16", 16},
        {"<M8", 8}, {"<m8", 8}, {"<M8[Y]", 8}, {"<M8[M]", 8}, {"<M8[W]", 8}, {"<M8[D]", 8},
        {"<m8[h]", 8}, {"<m8[m]", 8}, {"<M8[s]", 8}, {"<M8[ms]", 8}, {"<m8[us]", 8},
        {"<M8[ns]", 8}, {"<m8[ps]", 8}, {"<M8[fs]", 8}, {"<m8[as]", 8}, {"<M8[25s]", 8},
        {"<m8[2147483647as]", 8}};
    static const struct { const char *dtype; int64_t itemsize; } bad[] = {
        {"T", 16}, {"|T16", 16}, {"O", 8}, {"|O", 8}, {"|O8", 8}, {"O,O", 16}, {"(2,)O", 16},
        {"|V16", 16}, {"V8", 8}, {"<U4", 16}, {"|S8", 8}, {">f8", 8}, {"=f8", 8}, {"f8", 8},
        {"<f8", 4}, {"<f8 ", 8}, {"<f08", 8}, {"<i16", 16}, {"<f3", 3}, {"|b2", 2}, {"<b1", 1},
        {"|i2", 2}, {"<i1", 1}, {"<M8[0s]", 8}, {"<M8[1s]", 8}, {"<M8[01s]", 8}, {"<M8[B]", 8},
        {"<M8[ns", 8}, {"<M8[ns]x", 8}, {"<M8[2147483648s]", 8}, {"<M8[ns]", 4}, {"<M4", 8},
        {"", 8}, {"<", 8}, {"U", 0}, {"[('a','O')]", 8}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!idt_dtype_allowed(IDT_COL_FIXED, ok[i].dtype, ok[i].itemsize))
            h_fail(__FILE__, __LINE__, "'%s' (%lld) refused", ok[i].dtype, (long long)ok[i].itemsize);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (idt_dtype_allowed(IDT_COL_FIXED, bad[i].dtype, bad[i].itemsize))
            h_fail(__FILE__, __LINE__, "'%s' (%lld) allowed", bad[i].dtype, (long long)bad[i].itemsize);
    const int64_t ld = (int64_t)sizeof(long double);
    char buf[16];
    snprintf(buf, sizeof buf, "<f%lld", (long long)ld);
    CHECK(idt_dtype_allowed(IDT_COL_FIXED, buf, ld));
    snprintf(buf, sizeof buf, "<c%lld", (long long)(2 * ld));
    CHECK(idt_dtype_allowed(IDT_COL_FIXED, buf, 2 * ld));
    CHECK(idt_dtype_allowed(IDT_COL_UTF8, "U", 0));
    CHECK(idt_dtype_allowed(IDT_COL_BYTES, "S", 0));
    CHECK(!idt_dtype_allowed(IDT_COL_UTF8, "S", 0));
    CHECK(!idt_dtype_allowed(IDT_COL_UTF8, "T", 0));
    CHECK(!idt_dtype_allowed(IDT_COL_UTF8, "<U4", 0));
    CHECK(!idt_dtype_allowed(IDT_COL_BYTES, "|S8", 0));
    CHECK(!idt_dtype_allowed((idt_col_kind)3, "U", 0));
    /* a schema refuses what the list refuses, and fills in a string column's marker */
    idt_column c = fixed_col("x", "O", 8, 0, NULL);
    idt_schema *s;
    idt_error err;
    CHECK_ERR(idt_schema_new(&c, 1, &s, &err), IDT_EVALUE, err, "not one infinidata stores");
    idt_column u;
    memset(&u, 0, sizeof u);
    u.name = "s";
    u.kind = IDT_COL_UTF8;
    REQUIRE(CHECK_OK(idt_schema_new(&u, 1, &s, &err), err) == 0);
    CHECK_STR(s->cols[0].dtype, "U");
    idt_schema_decref(s);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_schema_sorted),
        H_TEST(test_dtype_allowed),
        H_TEST(test_schema_errors),
        H_TEST(test_builder_fixed),
        H_TEST(test_builder_errors),
        H_TEST(test_builder_ucs4),
        H_TEST(test_builder_ucs4_large_on_threads),
        H_TEST(test_builder_open),
        H_TEST(test_ucs4_narrow),
        H_TEST(test_builder_fixed_bytes),
        H_TEST(test_builder_pieces),
        H_TEST(test_builder_string_shapes),
        H_TEST(test_zero_rows),
        H_TEST(test_empty_row_shapes),
        H_TEST(test_open_valid_image),
        H_TEST(test_open_corrupt),
        H_TEST(test_open_fuzz),
        H_TEST(test_utf8_codec),
        H_TEST(test_utf8_store_roundtrip),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

/* test_pack.c: sequence packing (pack.c) against a model: the documents' tokens laid end to
 * end in one array, every packed row read from it by index, segments found by comparing
 * neighbouring tokens' documents. From arrays (idt_pack_fill with a cursor carried batch to
 * batch, every itemsize), straight from views (idt_pack_view over shuffled, concatenated
 * and sliced views, at any starting row), idt_pack_seek, idt_pack_cu_bound,
 * idt_pack_cumlen and the errors; list columns of int32 tokens and string columns (bytes as
 * tokens) both. */
#include <stdlib.h>

#include "harness.h"
#include "pack.h"

/* ---- the model ---- */

typedef struct stream {
    int64_t n;        /* documents */
    int64_t *offs;    /* n + 1 cumulative lengths */
    int64_t total;
    int64_t *doc;     /* document of each token */
} stream;

static void stream_make(stream *s, const int64_t *lens, int64_t n) {
    s->n = n;
    s->offs = malloc((size_t)(n + 1) * sizeof *s->offs);
    s->offs[0] = 0;
    for (int64_t d = 0; d < n; d++) s->offs[d + 1] = s->offs[d] + lens[d];
    s->total = s->offs[n];
    s->doc = malloc((size_t)(s->total ? s->total : 1) * sizeof *s->doc);
    for (int64_t d = 0; d < n; d++)
        for (int64_t t = s->offs[d]; t < s->offs[d + 1]; t++) s->doc[t] = d;
}

static void stream_free(stream *s) {
    free(s->offs);
    free(s->doc);
}

/* Element t of `values` (itemsize bytes) as an integer, for comparison. */
static uint64_t elem(const void *values, int64_t isz, int64_t t) {
    uint64_t x = 0;
    memcpy(&x, (const char *)values + t * isz, (size_t)isz);
    return x;
}

/* Check out (rows of seq_len from packed row row0) against the model over `values`. */
static void check_batch(const stream *s, const void *values, int64_t isz, uint64_t pad,
                        int64_t row0, int64_t rows, int64_t seq_len, const idt_pack_out *out) {
    int64_t ncu = 0, taken = 0, seg_start = 0;
    int bad = 0;
    CHECK_EQ(out->cu_seqlens[ncu++], 0);
    for (int64_t r = 0; r < rows && !bad; r++) {
        for (int64_t c = 0; c < seq_len; c++) {
            int64_t t = (row0 + r) * seq_len + c, k = r * seq_len + c;
            int real = t < s->total;
            uint64_t want = real ? elem(values, isz, s->offs[0] + t) : pad;
            if (c == 0 || (real && s->doc[t] != s->doc[t - 1]) || t == s->total) {
                if (k > 0) { /* the previous segment ends here */
                    if (ncu >= out->ncu || out->cu_seqlens[ncu] != k) bad = 1;
                    ncu++;
                }
                seg_start = k;
            }
            if (elem(out->tokens, isz, k) != want || out->position_ids[k] != k - seg_start) bad = 1;
            taken += real;
        }
    }
    if (rows > 0) {
        if (ncu >= out->ncu || out->cu_seqlens[ncu] != rows * seq_len) bad = 1;
        ncu++;
    }
    if (bad) h_fail(__FILE__, __LINE__, "batch at row %lld (%lld rows of %lld) differs from the model",
                    (long long)row0, (long long)rows, (long long)seq_len);
    CHECK_EQ(out->ncu, ncu);
    CHECK_EQ(out->ntokens, taken);
}

static void out_alloc(idt_pack_out *o, int64_t rows, int64_t seq_len, int64_t isz, int64_t cu_cap) {
    size_t n = (size_t)(rows * seq_len);
    o->tokens = malloc(n * (size_t)isz + 1);
    o->position_ids = malloc(n * sizeof(int64_t) + 1);
    o->cu_seqlens = malloc((size_t)cu_cap * sizeof(int32_t));
    memset(o->tokens, 0xAB, n * (size_t)isz); /* every element must be written */
    memset(o->position_ids, 0xAB, n * sizeof(int64_t));
    o->cu_cap = cu_cap;
    o->ncu = o->ntokens = -1;
}

static void out_free(idt_pack_out *o) {
    free(o->tokens);
    free(o->position_ids);
    free(o->cu_seqlens);
}

/* Random document lengths: many short, some empty, some longer than a row. */
static void random_lens(int64_t *lens, int64_t n, int64_t seq_len) {
    for (int64_t d = 0; d < n; d++) {
        int64_t r = h_range(0, 9);
        lens[d] = r == 0 ? 0 : r == 1 ? h_range(seq_len, 3 * seq_len + 1) : r == 2 ? seq_len
                                                                              : h_range(1, seq_len);
    }
}

/* ---- from arrays ---- */

static void test_fill_matches_model_batch_after_batch(void) {
    h_snap before;
    h_snap_take(&before);
    h_seed(1);
    idt_error err;
    static const int64_t sizes[4] = {1, 2, 4, 8};
    for (int trial = 0; trial < 40; trial++) {
        int64_t isz = sizes[trial % 4], seq_len = h_range(1, 40), n = h_range(0, 60);
        int64_t rows = h_range(1, 5), lens[60];
        random_lens(lens, n, seq_len);
        stream s;
        stream_make(&s, lens, n);
        char *values = malloc((size_t)((s.total + 3) * isz));
        for (int64_t t = 0; t < (s.total + 3) * isz; t++) values[t] = (char)h_rand();
        /* offsets may start anywhere in values: shift them by 3 elements */
        int64_t *offs = malloc((size_t)(n + 1) * sizeof *offs);
        for (int64_t d = 0; d <= n; d++) offs[d] = s.offs[d] + 3;
        uint64_t pad = 0;
        memcpy(&pad, "\x11\x22\x33\x44\x55\x66\x77\x88", (size_t)isz);
        idt_pack_cursor cur = {0, 0}; /* document 0 may be empty: skipped */
        int64_t total_rows = (s.total + seq_len - 1) / seq_len, got = 0;
        for (int64_t row0 = 0; row0 < total_rows; row0 += rows) {
            idt_pack_out o;
            out_alloc(&o, rows, seq_len, isz, rows * seq_len + 1);
            REQUIRE(CHECK_OK(idt_pack_fill(values, isz, offs, n, &cur, rows, seq_len, &pad, &o, &err), err) == 0);
            check_batch(&s, values + 3 * isz, isz, pad, row0, rows, seq_len, &o);
            got += o.ntokens;
            /* the cursor is where the model says the next batch starts */
            idt_pack_cursor want = idt_pack_seek(s.offs, n, (row0 + rows) * seq_len);
            CHECK_EQ(cur.doc, want.doc);
            CHECK_EQ(cur.off, want.off);
            out_free(&o);
        }
        CHECK_EQ(got, s.total); /* every token once */
        CHECK_EQ(cur.doc, n);
        free(offs);
        free(values);
        stream_free(&s);
    }
    CHECK_SNAP(before);
}

static void test_fill_edges(void) {
    idt_error err;
    /* one document exactly one row: no padding, one segment */
    int32_t vals[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t offs[3] = {0, 4, 4};
    int32_t pad = -1;
    idt_pack_cursor cur = {0, 0};
    idt_pack_out o;
    out_alloc(&o, 2, 4, 4, 9);
    REQUIRE(CHECK_OK(idt_pack_fill(vals, 4, offs, 2, &cur, 1, 4, &pad, &o, &err), err) == 0);
    CHECK_EQ(o.ncu, 2);
    CHECK_EQ(o.cu_seqlens[1], 4);
    CHECK_EQ(cur.doc, 2); /* the empty document after it is skipped */
    /* past the end: whole rows of padding, one segment each */
    REQUIRE(CHECK_OK(idt_pack_fill(vals, 4, offs, 2, &cur, 2, 4, &pad, &o, &err), err) == 0);
    CHECK_EQ(o.ncu, 3);
    CHECK_EQ(o.cu_seqlens[1], 4);
    CHECK_EQ(o.cu_seqlens[2], 8);
    CHECK_EQ(o.ntokens, 0);
    CHECK_EQ(((int32_t *)o.tokens)[7], -1);
    CHECK_EQ(o.position_ids[7], 3);
    /* zero rows: cu_seqlens is just [0] */
    cur.doc = 0;
    REQUIRE(CHECK_OK(idt_pack_fill(vals, 4, offs, 2, &cur, 0, 4, &pad, &o, &err), err) == 0);
    CHECK_EQ(o.ncu, 1);
    CHECK_EQ(o.cu_seqlens[0], 0);
    CHECK_EQ(cur.doc, 0);
    /* no documents at all */
    idt_pack_cursor c0 = {0, 0};
    int64_t none[1] = {0};
    REQUIRE(CHECK_OK(idt_pack_fill(vals, 4, none, 0, &c0, 1, 4, &pad, &o, &err), err) == 0);
    CHECK_EQ(o.ncu, 2);
    CHECK_EQ(o.ntokens, 0);
    out_free(&o);
}

static void test_fill_errors(void) {
    idt_error err;
    int8_t vals[6] = {1, 2, 3, 4, 5, 6};
    int64_t offs[3] = {0, 2, 6};
    int8_t pad = 0;
    idt_pack_out o;
    out_alloc(&o, 2, 3, 1, 7);
    idt_pack_cursor cur = {0, 2}; /* offset == the document's length */
    int64_t eoffs[3] = {0, 0, 6};
    idt_pack_cursor at_empty = {0, 0}; /* offset 0 of an empty document is fine */
    CHECK_OK(idt_pack_fill(vals, 1, eoffs, 2, &at_empty, 1, 3, &pad, &o, &err), err);
    CHECK_EQ(at_empty.doc, 1);
    CHECK_EQ(at_empty.off, 3);
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "cursor (document 0, offset 2)");
    cur = (idt_pack_cursor){3, 0};
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "outside the 2 documents");
    cur = (idt_pack_cursor){2, 1};
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "cursor");
    cur = (idt_pack_cursor){-1, 0};
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "cursor");
    cur = (idt_pack_cursor){0, 0};
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 0, &pad, &o, &err), IDT_EVALUE, err, "seq_len must be >= 1, got 0");
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, -1, 3, &pad, &o, &err), IDT_EVALUE, err, "rows must be >= 0");
    CHECK_ERR(idt_pack_fill(vals, 0, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "itemsize");
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 65536, 32768, &pad, &o, &err), IDT_EVALUE, err, "int32");
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, INT64_MAX, 2, &pad, &o, &err), IDT_EVALUE, err, "int32");
    /* too little room for cu_seqlens: an error, not an overrun */
    o.cu_cap = 2;
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 2, 3, &pad, &o, &err), IDT_EVALUE, err, "cu_seqlens has room for 2");
    o.cu_cap = 0;
    CHECK_ERR(idt_pack_fill(vals, 1, offs, 2, &cur, 1, 3, &pad, &o, &err), IDT_EVALUE, err, "cu_seqlens");
    out_free(&o);
}

static void test_seek_and_bound(void) {
    h_seed(2);
    for (int trial = 0; trial < 30; trial++) {
        int64_t n = h_range(0, 50), seq_len = h_range(1, 9), lens[50];
        random_lens(lens, n, seq_len);
        stream s;
        stream_make(&s, lens, n);
        for (int64_t t = -2; t <= s.total + 2; t++) {
            idt_pack_cursor c = idt_pack_seek(s.offs, n, t);
            if (t >= s.total) {
                CHECK_EQ(c.doc, n);
                CHECK_EQ(c.off, 0);
            } else {
                int64_t tt = t < 0 ? 0 : t;
                CHECK_EQ(c.doc, s.doc[tt]);
                CHECK_EQ(c.off, tt - s.offs[s.doc[tt]]);
            }
        }
        /* the bound covers the real segment count of every batch */
        int64_t total_rows = (s.total + seq_len - 1) / seq_len;
        for (int64_t row0 = 0; row0 <= total_rows; row0++) {
            for (int64_t rows = 0; rows <= 4; rows++) {
                int64_t bound = idt_pack_cu_bound(s.offs, n, row0, rows, seq_len);
                CHECK(bound <= rows * seq_len + 1);
                idt_pack_cursor cur = idt_pack_seek(s.offs, n, row0 * seq_len);
                idt_pack_out o;
                out_alloc(&o, rows ? rows : 1, seq_len, 8, bound);
                int64_t dummy[1] = {0};
                idt_error err;
                int64_t *values = malloc((size_t)(s.total + 1) * 8);
                CHECK_OK(idt_pack_fill(values, 8, s.offs, n, &cur, rows, seq_len, dummy, &o, &err), err);
                free(values);
                out_free(&o);
            }
        }
        stream_free(&s);
    }
}

/* ---- from views (a string column packs as bytes; list columns share the same path) ---- */

typedef struct docs {
    int64_t n;
    char **ptrs;
    int64_t *lens;
} docs;

static void docs_make(docs *D, int64_t n, int64_t seq_len) {
    D->n = n;
    D->ptrs = malloc((size_t)n * sizeof *D->ptrs);
    D->lens = malloc((size_t)n * sizeof *D->lens);
    random_lens(D->lens, n, seq_len);
    for (int64_t d = 0; d < n; d++) {
        D->ptrs[d] = malloc((size_t)D->lens[d] + 1);
        for (int64_t k = 0; k < D->lens[d]; k++) D->ptrs[d][k] = (char)('a' + h_range(0, 25));
    }
}

static void docs_free(docs *D) {
    for (int64_t d = 0; d < D->n; d++) free(D->ptrs[d]);
    free(D->ptrs);
    free(D->lens);
}

/* The documents of view v (column j) in view order, laid end to end: values + lens. */
static char *view_stream(const idt_view *v, int64_t j, int64_t **lens_out) {
    int64_t n = idt_view_len(v);
    idt_rowsel all = {0, 1, n, NULL};
    int64_t total = idt_view_str_bytes(v, &all, j);
    int64_t *offs = malloc((size_t)(n + 1) * sizeof *offs);
    char *data = malloc((size_t)total + 1);
    idt_view_gather_packed(v, &all, j, offs, data);
    int64_t *lens = malloc((size_t)(n ? n : 1) * sizeof *lens);
    for (int64_t i = 0; i < n; i++) lens[i] = offs[i + 1] - offs[i];
    free(offs);
    *lens_out = lens;
    return data;
}

static void check_view_packing(idt_view *v, int64_t seq_len) {
    idt_error err;
    int64_t n = idt_view_len(v), *lens;
    char *data = view_stream(v, 1, &lens);
    stream s;
    stream_make(&s, lens, n);
    int64_t *cum = malloc((size_t)(n + 1) * sizeof *cum);
    REQUIRE(CHECK_OK(idt_pack_cumlen(v, 1, cum, &err), err) == 0);
    for (int64_t i = 0; i <= n; i++)
        if (cum[i] != s.offs[i]) {
            h_fail(__FILE__, __LINE__, "cum[%lld] = %lld, the model has %lld", (long long)i,
                   (long long)cum[i], (long long)s.offs[i]);
            break;
        }
    int64_t total_rows = (s.total + seq_len - 1) / seq_len;
    char pad = '#';
    for (int64_t row0 = 0; row0 < total_rows + 1; row0 += h_range(1, 3)) {
        int64_t rows = h_range(0, 4);
        int64_t bound = idt_pack_cu_bound(cum, n, row0, rows, seq_len);
        idt_pack_out o;
        out_alloc(&o, rows ? rows : 1, seq_len, 1, bound);
        REQUIRE(CHECK_OK(idt_pack_view(v, 1, cum, row0, rows, seq_len, &pad, 1, &o, &err), err) == 0);
        check_batch(&s, data, 1, (uint8_t)pad, row0, rows, seq_len, &o);
        out_free(&o);
    }
    /* several blocks in one call: each exactly as packed on its own, one after another */
    int64_t blocks[6] = {h_range(0, total_rows), h_range(0, 3), 0, h_range(1, 2), h_range(0, total_rows + 2), 2};
    int64_t bound = idt_pack_blocks_cu_bound(cum, n, blocks, 3, seq_len), starts[4];
    int64_t allrows = blocks[1] + blocks[3] + blocks[5];
    idt_pack_out all;
    out_alloc(&all, allrows, seq_len, 1, bound);
    REQUIRE(CHECK_OK(idt_pack_view_blocks(v, 1, cum, blocks, 3, seq_len, &pad, 1, &all, starts, &err), err) == 0);
    CHECK_EQ(starts[0], 0);
    CHECK_EQ(starts[3], all.ncu);
    for (int64_t k = 0, row = 0, tok = 0; k < 3; row += blocks[2 * k + 1], k++) {
        idt_pack_out one;
        out_alloc(&one, blocks[2 * k + 1] ? blocks[2 * k + 1] : 1, seq_len, 1,
                  idt_pack_cu_bound(cum, n, blocks[2 * k], blocks[2 * k + 1], seq_len));
        REQUIRE(CHECK_OK(idt_pack_view(v, 1, cum, blocks[2 * k], blocks[2 * k + 1], seq_len, &pad, 1, &one, &err), err) == 0);
        size_t cells = (size_t)(blocks[2 * k + 1] * seq_len);
        CHECK(!memcmp((char *)all.tokens + row * seq_len, one.tokens, cells));
        CHECK(!memcmp(all.position_ids + row * seq_len, one.position_ids, cells * 8));
        CHECK_EQ(starts[k + 1] - starts[k], one.ncu);
        CHECK(!memcmp(all.cu_seqlens + starts[k], one.cu_seqlens, (size_t)one.ncu * 4));
        tok += one.ntokens;
        if (k == 2) CHECK_EQ(all.ntokens, tok);
        out_free(&one);
    }
    out_free(&all);
    free(cum);
    stream_free(&s);
    free(lens);
    free(data);
}

static void test_view_packing_every_view_shape(void) {
    h_snap before;
    h_snap_take(&before);
    h_seed(3);
    idt_error err;
    enum { N = 400 };
    int64_t seq_len = 16;
    docs D;
    docs_make(&D, N, seq_len);
    int64_t ids[N];
    for (int64_t i = 0; i < N; i++) ids[i] = i;
    h_col cols[2] = {
        {.name = "id", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = ids},
        {.name = "text", .kind = IDT_COL_BYTES, .data = D.ptrs, .lens = D.lens},
    };
    idt_view *v, *sh, *cat, *sl, *tk;
    REQUIRE(CHECK_OK(h_view(cols, 2, N, &v, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 9, &sh, &err), err) == 0);
    idt_view *parts[3] = {v, sh, v};
    REQUIRE(CHECK_OK(idt_view_concat(parts, 3, &cat, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_slice(cat, 3 * N - 1, -3, (3 * N - 1) / 3, &sl, &err), err) == 0);
    int64_t idx[6] = {5, 5, 0, N - 1, 17, 3};
    REQUIRE(CHECK_OK(idt_view_take(sh, idx, 6, &tk, &err), err) == 0);
    idt_view *views[5] = {v, sh, cat, sl, tk};
    for (int k = 0; k < 5; k++) {
        check_view_packing(views[k], seq_len);
        check_view_packing(views[k], 1);
        check_view_packing(views[k], 100);
    }
    idt_view_decref(tk);
    idt_view_decref(sl);
    idt_view_decref(cat);
    idt_view_decref(sh);
    idt_view_decref(v);
    docs_free(&D);
    CHECK_SNAP(before);
}

static void test_view_packing_errors(void) {
    h_snap before;
    h_snap_take(&before);
    idt_error err;
    int64_t ids[2] = {1, 2}, shape[1] = {2};
    static const char *strs[4] = {"ab", "c", "d", "e"};
    h_col cols[3] = {
        {.name = "id", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = ids},
        {.name = "pair", .kind = IDT_COL_UTF8, .ndim = 1, .shape = shape, .data = strs},
        {.name = "t", .kind = IDT_COL_UTF8, .data = strs},
    };
    idt_view *v;
    REQUIRE(CHECK_OK(h_view(cols, 3, 2, &v, &err), err) == 0);
    int64_t cum[3];
    CHECK_ERR(idt_pack_cumlen(v, 0, cum, &err), IDT_ETYPE, err, "column 'id' is not a list column");
    CHECK_ERR(idt_pack_cumlen(v, 1, cum, &err), IDT_ETYPE, err, "'pair'");
    CHECK_ERR(idt_pack_cumlen(v, 3, cum, &err), IDT_EINDEX, err, "column 3 out of range");
    REQUIRE(CHECK_OK(idt_pack_cumlen(v, 2, cum, &err), err) == 0);
    CHECK_EQ(cum[2], 3);
    idt_pack_out o;
    out_alloc(&o, 1, 4, 1, 5);
    char pad = 0;
    int64_t wide = 0;
    CHECK_ERR(idt_pack_view(v, 0, cum, 0, 1, 4, &pad, 1, &o, &err), IDT_ETYPE, err, "not a list column");
    CHECK_ERR(idt_pack_view(v, 2, cum, 0, 1, 4, &wide, 8, &o, &err), IDT_EVALUE, err,
              "pad value has 8 bytes, the column's values 1");
    CHECK_ERR(idt_pack_view(v, 2, cum, -1, 1, 4, &pad, 1, &o, &err), IDT_EVALUE, err, "row0");
    CHECK_ERR(idt_pack_view(v, 2, cum, 0, 1, 0, &pad, 1, &o, &err), IDT_EVALUE, err, "seq_len");
    REQUIRE(CHECK_OK(idt_pack_view(v, 2, cum, 0, 1, 4, &pad, 1, &o, &err), err) == 0);
    CHECK(!memcmp(o.tokens, "abc\0", 4));
    CHECK_EQ(o.ncu, 4); /* "ab", "c", padding */
    /* cumulative lengths that are not the view's: refused, never a read past a row */
    int64_t lying[3] = {0, 7, 8};
    CHECK_ERR(idt_pack_view(v, 2, lying, 0, 1, 4, &pad, 1, &o, &err), IDT_EVALUE, err,
              "document 0 has not 7 tokens");
    /* a row far past the end: all padding, never a read out of range */
    REQUIRE(CHECK_OK(idt_pack_view(v, 2, cum, INT64_MAX / 2, 1, 4, &pad, 1, &o, &err), err) == 0);
    CHECK_EQ(o.ntokens, 0);
    out_free(&o);
    idt_view_decref(v);
    CHECK_SNAP(before);
}

/* ---- list columns: int32 tokens, unique ids ---- */

/* A store of n documents: "id" (int64 row number) and "tok" (a list column of int32, doc d's
 * tokens being offs[d]..offs[d+1] of a running count from 1). */
static int list_store(int64_t n, const int64_t *offs, idt_store **out, idt_error *err) {
    idt_column cs[2];
    memset(cs, 0, sizeof cs);
    cs[0].name = "id";
    cs[0].kind = IDT_COL_FIXED;
    snprintf(cs[0].dtype, sizeof cs[0].dtype, "<i8");
    cs[0].itemsize = 8;
    cs[1].name = "tok";
    cs[1].kind = IDT_COL_LIST;
    snprintf(cs[1].dtype, sizeof cs[1].dtype, "<i4");
    cs[1].itemsize = 4;
    idt_schema *schema;
    int rc = idt_schema_new(cs, 2, &schema, err);
    if (rc) return rc;
    int64_t sizes[2] = {0, offs[n]}; /* schema order: id, tok */
    idt_store_builder *b;
    rc = idt_store_builder_new(schema, n, sizes, &b, err);
    idt_schema_decref(schema);
    if (rc) return rc;
    int64_t *ids = malloc((size_t)(n ? n : 1) * 8);
    int32_t *vals = malloc((size_t)(offs[n] ? offs[n] : 1) * 4);
    for (int64_t i = 0; i < n; i++) ids[i] = i;
    for (int64_t t = 0; t < offs[n]; t++) vals[t] = (int32_t)(t + 1);
    rc = idt_store_builder_write_fixed(b, 0, 0, n, ids, err);
    if (!rc) rc = idt_store_builder_append_packed(b, 1, n, offs, 1, (const char *)vals, err);
    free(ids);
    free(vals);
    if (rc) {
        idt_store_builder_free(b);
        return rc;
    }
    return idt_store_builder_finish(b, out, err);
}

/* The documents of view v in view order (by its "id" column) as values + lengths. */
static int32_t *list_stream(const idt_view *v, const int64_t *offs, int64_t **lens_out) {
    int64_t n = idt_view_len(v), *ids = h_col_i64(v, h_vcol(v, "id")), total = 0;
    int64_t *lens = malloc((size_t)(n ? n : 1) * sizeof *lens);
    for (int64_t i = 0; i < n; i++) total += lens[i] = offs[ids[i] + 1] - offs[ids[i]];
    int32_t *vals = malloc((size_t)(total ? total : 1) * 4), *p = vals;
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = offs[ids[i]]; t < offs[ids[i] + 1]; t++) *p++ = (int32_t)(t + 1);
    free(ids);
    *lens_out = lens;
    return vals;
}

static void test_list_column_packing_every_view_shape(void) {
    h_snap before;
    h_snap_take(&before);
    h_seed(4);
    idt_error err;
    enum { N = 300 };
    int64_t lens[N], offs[N + 1];
    random_lens(lens, N, 12);
    offs[0] = 0;
    for (int64_t d = 0; d < N; d++) offs[d + 1] = offs[d] + lens[d];
    idt_store *st;
    REQUIRE(CHECK_OK(list_store(N, offs, &st, &err), err) == 0);
    idt_view *v, *sh, *cat, *sl;
    REQUIRE(CHECK_OK(h_view_of(st, &v, &err), err) == 0);
    idt_store_decref(st);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 3, &sh, &err), err) == 0);
    idt_view *parts[2] = {sh, v};
    REQUIRE(CHECK_OK(idt_view_concat(parts, 2, &cat, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_slice(cat, 2 * N - 2, -2, N - 1, &sl, &err), err) == 0);
    idt_view *views[4] = {v, sh, cat, sl};
    int64_t j = h_vcol(v, "tok");
    for (int k = 0; k < 4; k++) {
        int64_t n = idt_view_len(views[k]), *vl;
        int32_t *vals = list_stream(views[k], offs, &vl);
        stream s;
        stream_make(&s, vl, n);
        int64_t *cum = malloc((size_t)(n + 1) * sizeof *cum);
        REQUIRE(CHECK_OK(idt_pack_cumlen(views[k], j, cum, &err), err) == 0);
        CHECK(!memcmp(cum, s.offs, (size_t)(n + 1) * sizeof *cum));
        int32_t pad = -7;
        for (int64_t seq_len = 1; seq_len <= 40; seq_len += 13) {
            int64_t total_rows = (s.total + seq_len - 1) / seq_len;
            for (int64_t row0 = 0; row0 <= total_rows; row0 += h_range(1, 4)) {
                int64_t rows = h_range(0, 3), bound = idt_pack_cu_bound(cum, n, row0, rows, seq_len);
                idt_pack_out o;
                out_alloc(&o, rows ? rows : 1, seq_len, 4, bound);
                REQUIRE(CHECK_OK(idt_pack_view(views[k], j, cum, row0, rows, seq_len, &pad, 4, &o, &err), err) == 0);
                check_batch(&s, vals, 4, (uint32_t)pad, row0, rows, seq_len, &o);
                out_free(&o);
            }
        }
        /* the id column is not a list column */
        CHECK_ERR(idt_pack_cumlen(views[k], h_vcol(views[k], "id"), cum, &err), IDT_ETYPE, err, "'id' is not a list column");
        free(cum);
        stream_free(&s);
        free(vl);
        free(vals);
    }
    idt_view_decref(sl);
    idt_view_decref(cat);
    idt_view_decref(sh);
    idt_view_decref(v);
    CHECK_SNAP(before);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_fill_matches_model_batch_after_batch),
        H_TEST(test_fill_edges),
        H_TEST(test_fill_errors),
        H_TEST(test_seek_and_bound),
        H_TEST(test_view_packing_every_view_shape),
        H_TEST(test_view_packing_errors),
        H_TEST(test_list_column_packing_every_view_shape),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

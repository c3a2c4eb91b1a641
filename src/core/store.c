/* store.c: schemas, the store image (header + buffers), the builder and validation. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "progress.h"
#include "sys.h"
#include "utf8.h"

enum { BUF_ALIGN = 64, IDT_PAGE = 4096 };
/* Fixed columns of at least this many bytes are page aligned in their store. */
#define IDT_PAGE_ALIGN_MIN ((uint64_t)1 << 20)
static _Atomic int64_t store_serial;

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static const uint64_t HP1 = 0x9E3779B185EBCA87u, HP2 = 0xC2B2AE3D27D4EB4Fu, HP3 = 0x165667B19E3779F9u;

void idt_hasher_init(idt_hasher *h, uint64_t seed) {
    h->a = seed + HP1 + HP2;
    h->b = seed + HP2;
    h->c = seed;
    h->d = seed - HP1;
    h->n = 0;
    h->fill = 0;
}

/* The four lanes over whole 32-byte blocks. */
static void hash_blocks(idt_hasher *h, const unsigned char *s, size_t nblocks) {
    uint64_t a = h->a, b = h->b, c = h->c, d = h->d;
    for (size_t i = 0; i < nblocks; i++, s += 32) {
        uint64_t w[4];
        memcpy(w, s, 32);
        a = rotl64(a + w[0] * HP2, 31) * HP1;
        b = rotl64(b + w[1] * HP2, 31) * HP1;
        c = rotl64(c + w[2] * HP2, 31) * HP1;
        d = rotl64(d + w[3] * HP2, 31) * HP1;
    }
    h->a = a;
    h->b = b;
    h->c = c;
    h->d = d;
}

void idt_hasher_update(idt_hasher *h, const void *p, size_t n) {
    const unsigned char *s = p;
    h->n += n;
    if (h->fill) {
        size_t take = 32 - h->fill < n ? 32 - h->fill : n;
        memcpy(h->buf + h->fill, s, take);
        h->fill += take;
        s += take;
        n -= take;
        if (h->fill < 32) return;
        hash_blocks(h, h->buf, 1);
        h->fill = 0;
    }
    hash_blocks(h, s, n / 32);
    s += n / 32 * 32;
    n %= 32;
    memcpy(h->buf, s, n);
    h->fill = n;
}

void idt_hasher_zeros(idt_hasher *h, size_t n) {
    static const unsigned char zero[4096];
    while (n) {
        size_t k = n < sizeof zero ? n : sizeof zero;
        idt_hasher_update(h, zero, k);
        n -= k;
    }
}

uint64_t idt_hasher_final(const idt_hasher *h) {
    const unsigned char *s = h->buf, *end = s + h->fill;
    uint64_t x = rotl64(h->a, 1) + rotl64(h->b, 7) + rotl64(h->c, 12) + rotl64(h->d, 18) + h->n;
    while (end - s >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        x = rotl64(x ^ (rotl64(w * HP2, 31) * HP1), 27) * HP1 + HP3;
        s += 8;
    }
    while (s < end) x = rotl64(x ^ (*s++ * HP3), 11) * HP1;
    x ^= x >> 33;
    x *= HP2;
    x ^= x >> 29;
    x *= HP3;
    return x ^ (x >> 32);
}

uint64_t idt_hash_fast(const void *p, size_t n, uint64_t seed) {
    idt_hasher h;
    idt_hasher_init(&h, seed);
    idt_hasher_update(&h, p, n);
    return idt_hasher_final(&h);
}

int idt_hash_fast_progress(const void *p, size_t n, uint64_t seed, uint64_t *out, idt_error *err) {
    enum { STEP = 64 << 20 };
    idt_hasher h;
    idt_hasher_init(&h, seed);
    const char *s = p;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < STEP ? n - done : STEP;
        idt_hasher_update(&h, s + done, k);
        done += k;
        int rc = idt_progress_step((int64_t)k, err);
        if (rc) return rc;
    }
    *out = idt_hasher_final(&h);
    return 0;
}

/* FNV-1a over p[0..n), bytes [hole, hole + 8) read as zeros. */
static uint64_t fnv_hole(const unsigned char *s, size_t n, size_t hole, uint64_t seed) {
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    size_t a = hole < n ? hole : n, z = a + 8 < n ? a + 8 : n;
    for (size_t i = 0; i < a; i++) h = (h ^ s[i]) * 0x100000001b3u;
    for (size_t i = a; i < z; i++) h = h * 0x100000001b3u;
    for (size_t i = z; i < n; i++) h = (h ^ s[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

uint64_t idt_hash64(const void *p, size_t n, uint64_t seed) { return fnv_hole(p, n, SIZE_MAX, seed); }

uint64_t idt_hash64_hole(const void *p, size_t n, size_t hole) { return fnv_hole(p, n, hole, 0); }

/* ---- schema ---- */

static int cmp_col(const void *a, const void *b) {
    return strcmp(((const idt_column *)a)->name, ((const idt_column *)b)->name);
}

int idt_schema_new(const idt_column *cols, int64_t n, idt_schema **out, idt_error *err) {
    if (n < 1) return idt_error_set(err, IDT_EVALUE, "a table needs at least one column");
    idt_schema *s = idt_calloc(1, sizeof *s);
    idt_column *cc = idt_calloc((size_t)n, sizeof *cc);
    if (!s || !cc) {
        idt_free(s);
        idt_free(cc);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    s->cols = cc;
    atomic_store(&s->refs, 1);
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        rc = idt_column_copy(&cc[i], &cols[i], err);
        if (!rc) s->ncols = i + 1;
    }
    if (!rc) {
        qsort(cc, (size_t)n, sizeof *cc, cmp_col);
        for (int64_t i = 1; i < n; i++)
            if (!strcmp(cc[i].name, cc[i - 1].name)) {
                rc = idt_error_set(err, IDT_EVALUE, "duplicate column name '%s'", cc[i].name);
                break;
            }
    }
    if (rc) {
        idt_schema_decref(s);
        return rc;
    }
    *out = s;
    return 0;
}

void idt_schema_incref(idt_schema *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void idt_schema_decref(idt_schema *s) {
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (int64_t i = 0; i < s->ncols; i++) idt_column_reset(&s->cols[i]);
    idt_free(s->cols);
    idt_free(s);
}

int64_t idt_schema_find(const idt_schema *s, const char *name) {
    return idt_columns_find(s->cols, s->ncols, name);
}

/* ---- store image layout (codec.h names every offset; docs/format.md describes them) ---- */

typedef struct col_layout {
    uint64_t buf_off, buf_len, off_off, off_len;
} col_layout;

static size_t col_hdr_size(const idt_column *c) { return idt_col_desc_size(c) + IDT_STORE_COL_TAIL; }

static uint64_t align64(uint64_t x) { return (x + BUF_ALIGN - 1) & ~(uint64_t)(BUF_ALIGN - 1); }

/* Write the header for `s` into `dst` (hdr_size bytes), checksum included. */
static void write_header(char *dst, size_t hdr_size, const idt_schema *s, int64_t nrows,
                         const col_layout *lay, const int *ascii, const uint8_t *uid,
                         uint64_t data_hash) {
    memset(dst, 0, hdr_size);
    idt_writer w;
    idt_writer_init_fixed(&w, dst, hdr_size);
    idt_put_bytes(&w, IDT_STORE_MAGIC, 8);
    idt_put_u32(&w, IDT_FORMAT_VERSION);
    idt_put_u32(&w, (uint32_t)hdr_size);
    idt_put_u64(&w, (uint64_t)nrows);
    idt_put_u64(&w, (uint64_t)s->ncols);
    idt_put_u64(&w, 0); /* the checksum, patched below */
    idt_put_bytes(&w, uid, 16);
    idt_put_u64(&w, data_hash);
    for (int64_t i = 0; i < s->ncols; i++) {
        idt_col_desc_put(&w, &s->cols[i]);
        idt_put_u64(&w, lay[i].buf_off);
        idt_put_u64(&w, lay[i].buf_len);
        idt_put_u64(&w, lay[i].off_off);
        idt_put_u64(&w, lay[i].off_len);
        idt_put_u32(&w, (uint32_t)(ascii ? ascii[i] : 0));
        idt_put_u32(&w, 0);
    }
    idt_writer_patch_u64(&w, IDT_STORE_OFF_CHECKSUM, idt_hash64_hole(dst, hdr_size, IDT_STORE_OFF_CHECKSUM));
}

/* ---- builder ---- */

typedef struct build_col {
    char *data;
    int64_t nstr, nstr_max;     /* strings appended / expected */
    int64_t bytes, bytes_max;   /* data units used / announced (open: at most) */
    int ascii;
    int positional;             /* filled by idt_store_builder_put_strings */
    /* Appends go through heap stages written with idt_blob_write (pwrite), which beats
     * stores through a fresh shared mapping: data bytes [flushed, bytes) and offsets
     * [ostart, ostart + ofill) are staged. */
    char *stage;
    size_t fill, stage_cap;
    int64_t flushed;
    uint64_t *ostage;
    int64_t ostart, ofill;
    /* An open column (idt_store_builder_new_open): laid out at the builder's tail when its
     * first strings come, data first, its offsets (kept in oheap until then) right after
     * the data once it is sealed. */
    int open, started, sealed;
    uint64_t *oheap;
} build_col;

enum { STAGE_BYTES = 1 << 20, OSTAGE_N = 1 << 14 };

struct idt_store_builder {
    idt_schema *schema;
    int64_t nrows;
    idt_blob *blob;
    size_t hdr_size;
    col_layout *lay;
    build_col *bc;
    /* The content hash, computed as bytes are written when they come in file order (the
     * constructor writes columns in store order), so finishing need not read them back:
     * hs covers [data_off, hashed_to); finish hashes the rest from the mapping. */
    idt_hasher hs;
    uint64_t hashed_to;
    int streaming;             /* 0 once a write came out of order */
    /* Open columns: where the next one starts (the blob's bytes past it are unwritten),
     * the one taking strings now (-1: none), and whether one outgrew its reservation. */
    uint64_t tail;
    int64_t open_col;
    int overflowed, has_open;
};

/* 1 when no column buffer overlaps [from, to): the bytes there are padding (zeros). */
static int is_padding(const idt_store_builder *b, uint64_t from, uint64_t to) {
    for (int64_t i = 0; i < b->schema->ncols; i++) {
        const col_layout *l = &b->lay[i];
        if (l->buf_len && l->buf_off < to && from < l->buf_off + l->buf_len) return 0;
        if (l->off_len && l->off_off < to && from < l->off_off + l->off_len) return 0;
    }
    return 1;
}

/* Feed bytes about to be written at blob offset `off` to the streaming hash. */
static void stream_hash(idt_store_builder *b, uint64_t off, const void *src, size_t n) {
    if (!b->streaming || !n) return;
    if (off > b->hashed_to && is_padding(b, b->hashed_to, off)) {
        idt_hasher_zeros(&b->hs, (size_t)(off - b->hashed_to));
        b->hashed_to = off;
    }
    if (off != b->hashed_to) {
        b->streaming = 0;
        return;
    }
    idt_hasher_update(&b->hs, src, n);
    b->hashed_to += n;
}

void idt_store_builder_unordered(idt_store_builder *b) { b->streaming = 0; }

int idt_store_builder_overflowed(const idt_store_builder *b) { return b->overflowed; }

/* Write n bytes at blob offset off, hashing them on the way in steps small enough to stay
 * in cache between the hash and the copy. */
static int builder_write(idt_store_builder *b, uint64_t off, const char *src, size_t n, idt_error *err) {
    enum { STEP = 1 << 20 };
    for (size_t done = 0; done < n;) {
        size_t k = n - done < STEP ? n - done : STEP;
        stream_hash(b, off + done, src + done, k);
        int rc = idt_blob_write(b->blob, off + done, src + done, k, err);
        if (rc) return rc;
        done += k;
    }
    return 0;
}

void idt_store_builder_free(idt_store_builder *b) {
    if (!b) return;
    for (int64_t i = 0; b->bc && i < b->schema->ncols; i++) {
        idt_free(b->bc[i].stage);
        idt_free(b->bc[i].ostage);
        idt_free(b->bc[i].oheap);
    }
    idt_blob_decref(b->blob);
    idt_schema_decref(b->schema);
    idt_free(b->lay);
    idt_free(b->bc);
    idt_free(b);
}

int idt_store_builder_new(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                          idt_store_builder **out, idt_error *err) {
    return idt_store_builder_new_in(schema, nrows, str_bytes, NULL, out, err);
}

int idt_store_builder_new_in(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                             idt_blob_pool *pool, idt_store_builder **out, idt_error *err) {
    return idt_store_builder_new_open(schema, nrows, str_bytes, NULL, pool, out, err);
}

int idt_store_builder_new_open(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                               const int64_t *str_max, idt_blob_pool *pool,
                               idt_store_builder **out, idt_error *err) {
    if (nrows < 0) return idt_error_set(err, IDT_EVALUE, "negative row count %lld", (long long)nrows);
    idt_store_builder *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    idt_schema_incref(schema);
    b->schema = schema;
    b->nrows = nrows;
    b->open_col = -1;
    int64_t nc = schema->ncols;
    b->lay = idt_calloc((size_t)nc, sizeof *b->lay);
    b->bc = idt_calloc((size_t)nc, sizeof *b->bc);
    if (!b->lay || !b->bc) {
        idt_store_builder_free(b);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    size_t hdr = IDT_STORE_FIXED;
    for (int64_t i = 0; i < nc; i++) hdr += col_hdr_size(&schema->cols[i]);
    b->hdr_size = hdr;
    uint64_t pos = align64(hdr), open_room = 0; /* open columns' room past the layout */
    const uint64_t lim = (uint64_t)1 << 62;
    /* Fixed columns first, strings after (the header records every offset; the order is
     * the builder's choice): the constructor writes fixed columns in this order, so their
     * bytes reach the streaming hash in file order even when a string column sorts first. */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < nc; i++) {
            const idt_column *c = &schema->cols[i];
            col_layout *l = &b->lay[i];
            if (idt_column_is_var(c) != (pass == 1)) continue;
            if (!idt_column_is_var(c)) {
                if (c->row_bytes && (uint64_t)nrows > lim / (uint64_t)c->row_bytes) goto too_big;
                l->buf_len = (uint64_t)nrows * (uint64_t)c->row_bytes;
                /* A large fixed column starts on a page boundary (its store is a file of its
                 * own, mapped from offset 0), so a row of a page's size, or a divisor or
                 * multiple of it, touches as few pages as it can: read from disk, a 4 KiB row
                 * is one page, not two. The gap is padding (zeros, hashed as such). */
                if (l->buf_len >= IDT_PAGE_ALIGN_MIN) pos = (pos + IDT_PAGE - 1) & ~(uint64_t)(IDT_PAGE - 1);
                l->buf_off = pos;
                pos = align64(pos + l->buf_len);
            } else {
                int open = str_max && str_max[i] >= 0;
                int64_t sb = open ? str_max[i] : str_bytes ? str_bytes[i] : -1, unit = idt_column_unit(c);
                if (sb < 0 || (uint64_t)sb > lim / (uint64_t)unit) {
                    idt_store_builder_free(b);
                    return idt_error_set(err, IDT_EVALUE, "column '%s': bad %s count %lld", c->name,
                                         idt_column_is_list(c) ? "value" : "string byte", (long long)sb);
                }
                if (c->row_elems && (uint64_t)nrows > lim / 8 / (uint64_t)c->row_elems) goto too_big;
                uint64_t nstr = (uint64_t)nrows * (uint64_t)c->row_elems;
                b->bc[i].nstr_max = (int64_t)nstr;
                b->bc[i].bytes_max = sb;
                b->bc[i].ascii = !idt_column_is_list(c); /* lists: no text */
                if (open) { /* laid out when its strings come: room for data, offsets, padding */
                    b->bc[i].open = b->has_open = 1;
                    open_room += (uint64_t)sb * (uint64_t)unit + (nstr + 1) * 8 + 2 * BUF_ALIGN;
                    if (open_room > lim) goto too_big;
                    continue;
                }
                l->off_off = pos;
                l->off_len = (nstr + 1) * 8;
                pos = align64(pos + l->off_len);
                l->buf_off = pos;
                l->buf_len = (uint64_t)sb * (uint64_t)unit;
                pos = align64(pos + l->buf_len);
            }
            if (pos > lim) goto too_big;
        }
    if (pos + open_room > lim) goto too_big;
    /* Disk is reserved for the layout known now; open columns' room is a hole until written. */
    int rc = idt_blob_pool_take_open(pool, (size_t)(pos + open_room), (size_t)pos, &b->blob, err);
    if (rc) {
        idt_store_builder_free(b);
        return rc;
    }
    b->hashed_to = align64(hdr);
    b->tail = pos;
    b->streaming = 1;
    idt_hasher_init(&b->hs, 0);
    for (int64_t i = 0; i < nc; i++) b->bc[i].data = b->blob->data + b->lay[i].buf_off;
    *out = b;
    return 0;
too_big:
    idt_store_builder_free(b);
    return idt_error_set(err, IDT_EVALUE, "table too large (%lld rows)", (long long)nrows);
}

int idt_store_builder_write_fixed(idt_store_builder *b, int64_t c, int64_t row0, int64_t n,
                                  const void *src, idt_error *err) {
    if (c < 0 || c >= b->schema->ncols || idt_column_is_var(&b->schema->cols[c]))
        return idt_error_set(err, IDT_EVALUE, "column %lld is not a fixed-width column", (long long)c);
    if (row0 < 0 || n < 0 || row0 > b->nrows - n)
        return idt_error_set(err, IDT_EINDEX, "rows %lld..%lld out of range for %lld rows",
                             (long long)row0, (long long)(row0 + n), (long long)b->nrows);
    int64_t rb = b->schema->cols[c].row_bytes;
    if (!n || !rb) return 0;
    return builder_write(b, (uint64_t)(b->bc[c].data - b->blob->data) + (uint64_t)(row0 * rb), src,
                         (size_t)(n * rb), err);
}

/* Write n data bytes of column c at its end in the file (after what was flushed). An open
 * column's bytes come in file order: they go through the streaming hash. */
static int col_write(idt_store_builder *b, int64_t c, const char *src, size_t n, idt_error *err) {
    build_col *bc = &b->bc[c];
    uint64_t at = b->lay[c].buf_off + (uint64_t)bc->flushed;
    int rc = bc->open ? builder_write(b, at, src, n, err) : idt_blob_write(b->blob, at, src, n, err);
    if (!rc) bc->flushed += (int64_t)n;
    return rc;
}

/* Write what column c's stages hold. */
static int flush_col(idt_store_builder *b, int64_t c, idt_error *err) {
    build_col *bc = &b->bc[c];
    const col_layout *l = &b->lay[c];
    if (bc->fill) {
        int rc = col_write(b, c, bc->stage, bc->fill, err);
        if (rc) return rc;
        bc->fill = 0;
    }
    if (bc->ofill) {
        int rc = idt_blob_write(b->blob, l->off_off + 8 * (uint64_t)bc->ostart, bc->ostage,
                                8 * (size_t)bc->ofill, err);
        if (rc) return rc;
        bc->ostart += bc->ofill;
        bc->ofill = 0;
    }
    return 0;
}

/* Seal open column c: its data is complete; its offsets go right after it, and the tail
 * moves past them. */
static int open_seal(idt_store_builder *b, int64_t c, idt_error *err) {
    build_col *bc = &b->bc[c];
    col_layout *l = &b->lay[c];
    int rc = flush_col(b, c, err);
    if (rc) return rc;
    l->buf_len = (uint64_t)bc->flushed;
    l->off_off = align64(l->buf_off + l->buf_len);
    l->off_len = ((uint64_t)bc->nstr_max + 1) * 8;
    rc = builder_write(b, l->off_off, (const char *)bc->oheap, l->off_len, err);
    if (rc) return rc;
    idt_free(bc->oheap);
    bc->oheap = NULL;
    bc->sealed = 1;
    b->tail = align64(l->off_off + l->off_len);
    if (b->open_col == c) b->open_col = -1;
    return 0;
}

/* Lay open column c out at the tail (sealing the open column before it): its strings come
 * now. An open column takes all its strings in one run. */
static int open_start(idt_store_builder *b, int64_t c, idt_error *err) {
    build_col *bc = &b->bc[c];
    if (bc->sealed)
        return idt_error_set(err, IDT_EVALUE, "column '%s': strings appended after another column's "
                             "began (an open column takes its strings in one run)",
                             b->schema->cols[c].name);
    if (bc->started) return 0;
    if (b->open_col >= 0) {
        int rc = open_seal(b, b->open_col, err);
        if (rc) return rc;
    }
    bc->oheap = idt_calloc((size_t)bc->nstr_max + 1, sizeof *bc->oheap);
    if (!bc->oheap) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    b->lay[c].buf_off = b->tail;
    bc->data = b->blob->data + b->tail;
    bc->started = 1;
    b->open_col = c;
    return 0;
}

/* `strings_only`: the appender encodes strings (NumPy 'U'/'S' elements), which a list column
 * cannot take; the others take strings or lists (units of idt_column_unit bytes). */
static int check_append(idt_store_builder *b, int64_t c, int64_t n, int strings_only, idt_error *err) {
    if (c < 0 || c >= b->schema->ncols || !idt_column_is_var(&b->schema->cols[c]) ||
        (strings_only && !idt_column_is_str(&b->schema->cols[c])))
        return idt_error_set(err, IDT_EVALUE, "column %lld is not a %s column", (long long)c,
                             strings_only ? "string" : "string or list");
    if (n < 0 || b->bc[c].nstr > b->bc[c].nstr_max - n)
        return idt_error_set(err, IDT_EVALUE, "column '%s': more strings than rows",
                             b->schema->cols[c].name);
    return b->bc[c].open ? open_start(b, c, err) : 0;
}

/* Room for `need` more data bytes of column c: a pointer into the stage (flushing it when
 * full), or, for a string larger than the stage, straight into the mapping (an open
 * column's stage grows instead: its room in the file has no disk reserved). NULL with err
 * set on failure. */
static char *stage_room(idt_store_builder *b, int64_t c, int64_t need, idt_error *err) {
    build_col *bc = &b->bc[c];
    if (!bc->stage) {
        bc->stage = idt_malloc(STAGE_BYTES);
        bc->ostage = idt_malloc(OSTAGE_N * 8);
        if (!bc->stage || !bc->ostage) {
            idt_error_set(err, IDT_ENOMEM, "out of memory");
            return NULL;
        }
        bc->stage_cap = STAGE_BYTES;
        bc->ostart = 1; /* offsets[0] = 0 is there already (the blob starts zeroed) */
    }
    if (bc->fill + (size_t)need > STAGE_BYTES && flush_col(b, c, err)) return NULL;
    if (need > STAGE_BYTES && bc->open && (size_t)need > bc->stage_cap) { /* the stage is empty */
        char *ns = idt_realloc(bc->stage, (size_t)need);
        if (!ns) {
            idt_error_set(err, IDT_ENOMEM, "out of memory");
            return NULL;
        }
        bc->stage = ns;
        bc->stage_cap = (size_t)need;
    }
    if (need > STAGE_BYTES && !bc->open) { /* the stage is empty now: go straight to the file's mapping */
        char *p = bc->data + bc->flushed;
        bc->flushed += need;
        return p;
    }
    char *p = bc->stage + bc->fill;
    bc->fill += (size_t)need;
    return p;
}

/* Record the end offset of the string just staged. */
static int stage_offset(idt_store_builder *b, int64_t c, idt_error *err) {
    build_col *bc = &b->bc[c];
    if (bc->oheap) {
        bc->oheap[++bc->nstr] = (uint64_t)bc->bytes;
        return 0;
    }
    if (bc->ofill == OSTAGE_N && flush_col(b, c, err)) return -1;
    bc->ostage[bc->ofill++] = (uint64_t)bc->bytes;
    bc->nstr++;
    return 0;
}

/* ---- NumPy unicode (UCS4) to UTF-8: word-at-a-time scans, threads for large inputs ---- */

/* Code points of a NumPy unicode element of `w` code points without its trailing NULs; the
 * OR of all its code points goes into *any (>= 0x80: not ASCII). Four lanes, so the OR
 * vectorizes; the trailing NULs are skipped four at a time. */
static inline int64_t ucs4_scan(const uint32_t *s, int64_t w, uint32_t *any) {
    uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t k = 0;
    for (; k + 4 <= w; k += 4) {
        a0 |= s[k];
        a1 |= s[k + 1];
        a2 |= s[k + 2];
        a3 |= s[k + 3];
    }
    for (; k < w; k++) a0 |= s[k];
    *any = a0 | a1 | a2 | a3;
    while (w >= 4 && !(s[w - 1] | s[w - 2] | s[w - 3] | s[w - 4])) w -= 4;
    while (w > 0 && s[w - 1] == 0) w--;
    return w;
}

/* UTF-8 bytes of an element of `len` code points (after ucs4_scan) whose OR is `any`. */
static inline int64_t ucs4_bytes(const uint32_t *s, int64_t len, uint32_t any) {
    if (any < 0x80) return len;
    int64_t need = 0;
    for (int64_t k = 0; k < len; k++) need += idt_utf8_cp_len(s[k]);
    return need;
}

/* Encode element s (len code points, `bytes` UTF-8 bytes) at dst: a narrowing copy when
 * ASCII (bytes == len), else the general encoder. */
static inline void ucs4_put(const uint32_t *s, int64_t len, int64_t bytes, char *dst) {
    if (bytes == len)
        for (int64_t k = 0; k < len; k++) dst[k] = (char)s[k];
    else
        idt_utf8_encode(s, (size_t)len, dst);
}

enum {
    UCS4_PAR_MIN = 8 << 20,  /* input bytes from which measuring and encoding use threads */
    UCS4_PART = 4 << 20,     /* input bytes per thread and round */
    UCS4_SUB = 256 << 10,    /* input bytes measured then encoded while in cache */
    UCS4_PIPE_PART = 4 << 20, /* input bytes per part of an append's pipeline */
    UCS4_MAX_THREADS = 8
};

/* Whether n elements of `width` code points are appended as a pipeline (and read once as
 * an open column): large inputs of wide elements (narrow ones cost a length per 64 bytes). */
static int ucs4_pipelined(int64_t n, int64_t width) {
    return n >= 0 && width >= 16 && n <= INT64_MAX / 4 / width && n * width * 4 >= UCS4_PAR_MIN;
}

/* Threads worth using for n elements of `width` code points: one below UCS4_PAR_MIN bytes,
 * else up to the CPU count (at most UCS4_MAX_THREADS), at least UCS4_PART bytes each. */
static int ucs4_threads(int64_t n, int64_t width) {
    int64_t bytes = n * width * 4;
    if (bytes < UCS4_PAR_MIN) return 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t t = cpus > 1 ? cpus : 1;
    if (t > UCS4_MAX_THREADS) t = UCS4_MAX_THREADS;
    if (t > bytes / UCS4_PART) t = bytes / UCS4_PART;
    return t < 1 ? 1 : (int)t;
}

/* Run fn on parts[0..t) (each `size` bytes apart), parts 1.. on new threads and part 0 on
 * this one; a part whose thread cannot be started runs here too. */
static void ucs4_run(void *(*fn)(void *), char *parts, size_t size, int t) {
    pthread_t th[UCS4_MAX_THREADS];
    int started[UCS4_MAX_THREADS] = {0};
    for (int i = 1; i < t; i++) started[i] = pthread_create(&th[i], NULL, fn, parts + (size_t)i * size) == 0;
    fn(parts);
    for (int i = 1; i < t; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(parts + (size_t)i * size);
    }
}

typedef struct ucs4_len_part {
    const uint32_t *src;
    int64_t n, width, total;
    int ascii;
} ucs4_len_part;

static void *ucs4_len_main(void *arg) {
    ucs4_len_part *p = arg;
    int64_t total = 0;
    int ascii = 1;
    for (int64_t i = 0; i < p->n; i++) {
        const uint32_t *s = p->src + i * p->width;
        uint32_t any;
        int64_t len = ucs4_scan(s, p->width, &any);
        if (any >= 0x80) ascii = 0;
        total += ucs4_bytes(s, len, any);
    }
    p->total = total;
    p->ascii = ascii;
    return NULL;
}

static int too_many_bytes(idt_store_builder *b, int64_t c, idt_error *err) {
    if (b->bc[c].open) {
        b->overflowed = 1;
        return idt_error_set(err, IDT_EVALUE, "column '%s': more string bytes than the %lld "
                             "reserved for it", b->schema->cols[c].name, (long long)b->bc[c].bytes_max);
    }
    return idt_error_set(err, IDT_EVALUE,
                         "column '%s': strings changed while the table was built "
                         "(more bytes than measured)", b->schema->cols[c].name);
}

/* One thread's share of an append: elements src[0..n) measured (lens) and encoded into buf,
 * UCS4_SUB bytes of input at a time, so each piece is read from memory once and encoded
 * from cache. */
#define UCS4_NON_ASCII ((uint64_t)1 << 63) /* flag on an element's length while encoding */

typedef struct ucs4_enc_part {
    const uint32_t *src;
    int64_t n, width;
    uint64_t *lens;   /* UTF-8 bytes of each element (room for n), UCS4_NON_ASCII marking
                         those to encode in general while encoding */
    char *buf;        /* their encoding, len bytes (capacity cap) */
    size_t len, cap;
    int ascii, oom;
} ucs4_enc_part;

/* Grow p's buffer to hold `need` more bytes; 0, or -1 (p->oom set). */
static int enc_room(ucs4_enc_part *p, size_t need) {
    if (p->len + need <= p->cap) return 0;
    size_t cap = p->cap ? p->cap : 1 << 20;
    while (cap < p->len + need) cap *= 2;
    char *nb = idt_realloc(p->buf, cap);
    if (!nb) {
        p->oom = 1;
        return -1;
    }
    p->buf = nb;
    p->cap = cap;
    return 0;
}

/* Elements [a, a + m) of part p in general (some code point is not ASCII): measured, then
 * encoded from cache. */
static int enc_general(ucs4_enc_part *p, int64_t a, int64_t m) {
    int64_t w = p->width;
    size_t need = 0;
    for (int64_t i = a; i < a + m; i++) {
        const uint32_t *s = p->src + i * w;
        uint32_t any;
        int64_t len = ucs4_scan(s, w, &any);
        uint64_t bytes = (uint64_t)ucs4_bytes(s, len, any);
        need += bytes;
        p->lens[i] = bytes | (any >= 0x80 ? UCS4_NON_ASCII : 0);
    }
    if (enc_room(p, need)) return -1;
    char *out = p->buf + p->len; /* locals: a char store may alias p's fields */
    uint64_t *lens = p->lens;
    for (int64_t i = a; i < a + m; i++) {
        const uint32_t *s = p->src + i * w;
        uint64_t bytes = lens[i] & ~UCS4_NON_ASCII;
        if (lens[i] & UCS4_NON_ASCII) {
            uint32_t any;
            p->ascii = 0;
            idt_utf8_encode(s, (size_t)ucs4_scan(s, w, &any), out);
            lens[i] = bytes;
        } else {
            for (uint64_t k = 0; k < bytes; k++) out[k] = (char)s[k];
        }
        out += bytes;
    }
    p->len = (size_t)(out - p->buf);
    return 0;
}

/* Encode part p: UCS4_SUB bytes of input at a time, narrowed in one vectorized sweep that
 * also tells whether they are all ASCII (then each element's trailing NULs are dropped and
 * the elements closed up, in cache), else encoded in general. */
static void *ucs4_enc_main(void *arg) {
    ucs4_enc_part *p = arg;
    int64_t w = p->width, step = UCS4_SUB / (w * 4) > 0 ? UCS4_SUB / (w * 4) : 1;
    p->len = 0;
    p->ascii = 1;
    p->oom = 0;
    for (int64_t a = 0; a < p->n; a += step) {
        int64_t m = p->n - a < step ? p->n - a : step;
        if (enc_room(p, (size_t)(m * w))) return NULL;
        char *out = p->buf + p->len;
        if (idt_ucs4_narrow(p->src + a * w, (size_t)(m * w), out) >= 0x80) {
            if (enc_general(p, a, m)) return NULL;
            continue;
        }
        uint64_t *lens = p->lens;
        int64_t o = 0;
        for (int64_t i = 0; i < m; i++) {
            const char *e = out + i * w;
            int64_t len = idt_str_strip(e, w);
            if (o != i * w) memmove(out + o, e, (size_t)len);
            lens[a + i] = (uint64_t)len;
            o += len;
        }
        p->len += (size_t)o;
    }
    return NULL;
}

/* Append n elements as a pipeline: the input is cut into parts of UCS4_PIPE_PART bytes; t - 1
 * helper threads and this one claim parts in order and encode each into a slot of its own
 * (ucs4_enc_main); this thread writes the encoded parts in order (the data to the file, its
 * bytes hashed on the way when they come in file order, the offsets through the stage), and
 * encodes a part itself when the next one to write is not ready. At most 2 parts per thread
 * are encoded ahead of the writing: memory is a few MB whatever n (a part is at least one
 * element, so an element wider than UCS4_PIPE_PART takes up to 7/4 of its size per slot). */
enum { UCS4_SLOTS = 2 * UCS4_MAX_THREADS };

typedef struct ucs4_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const uint32_t *src;
    int64_t n, width, per, nparts;
    int64_t claimed, written;   /* parts claimed for encoding / written, in order */
    int slots, stop;
    int ready[UCS4_SLOTS];
    ucs4_enc_part part[UCS4_SLOTS];
} ucs4_pipe;

/* Encode part i into its slot (called without the lock). */
static void ucs4_pipe_encode(ucs4_pipe *q, int64_t i) {
    ucs4_enc_part *p = &q->part[i % q->slots];
    int64_t a = i * q->per;
    p->src = q->src + a * q->width;
    p->n = q->n - a < q->per ? q->n - a : q->per;
    p->width = q->width;
    ucs4_enc_main(p);
    pthread_mutex_lock(&q->mu);
    q->ready[i % q->slots] = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The next part to encode, or -1 when there is none (caller holds the lock). */
static int64_t ucs4_pipe_claim(ucs4_pipe *q) {
    if (q->stop || q->claimed >= q->nparts || q->claimed >= q->written + q->slots) return -1;
    return q->claimed++;
}

static void *ucs4_pipe_helper(void *arg) {
    ucs4_pipe *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop && q->claimed < q->nparts) {
        int64_t i = ucs4_pipe_claim(q);
        if (i < 0) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        pthread_mutex_unlock(&q->mu);
        ucs4_pipe_encode(q, i);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Write encoded part p of column c. */
static int ucs4_pipe_write(idt_store_builder *b, int64_t c, const ucs4_enc_part *p, idt_error *err) {
    build_col *bc = &b->bc[c];
    if (p->oom) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (p->len > (uint64_t)(bc->bytes_max - bc->bytes)) return too_many_bytes(b, c, err);
    if (!p->ascii) bc->ascii = 0;
    int rc = col_write(b, c, p->buf, p->len, err);
    for (int64_t j = 0; j < p->n && !rc; j++) {
        bc->bytes += (int64_t)p->lens[j];
        if (stage_offset(b, c, err)) rc = err ? err->code : IDT_EIO;
    }
    return rc;
}

static int append_ucs4_pipe(idt_store_builder *b, int64_t c, int64_t n, const uint32_t *src,
                            int64_t width, int t, idt_error *err) {
    ucs4_pipe q;
    memset(&q, 0, sizeof q);
    q.src = src;
    q.n = n;
    q.width = width;
    q.per = UCS4_PIPE_PART / (width * 4) > 0 ? UCS4_PIPE_PART / (width * 4) : 1;
    q.nparts = (n + q.per - 1) / q.per;
    q.slots = 2 * t < UCS4_SLOTS ? 2 * t : UCS4_SLOTS;
    int rc = 0;
    for (int i = 0; i < q.slots && !rc; i++)
        if (!(q.part[i].lens = idt_malloc((size_t)q.per * sizeof *q.part[i].lens)))
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    /* data goes straight to the file: nothing may wait in the stage before it */
    if (!rc && (!stage_room(b, c, 0, err) || flush_col(b, c, err))) rc = err ? err->code : IDT_EIO;
    pthread_t th[UCS4_MAX_THREADS];
    int nth = 0;
    if (!rc) {
        pthread_mutex_init(&q.mu, NULL);
        pthread_cond_init(&q.cv, NULL);
        for (int i = 1; i < t && i < q.nparts; i++) /* one that cannot start is not needed */
            if (pthread_create(&th[nth], NULL, ucs4_pipe_helper, &q) == 0) nth++;
        pthread_mutex_lock(&q.mu);
        while (!rc && q.written < q.nparts) {
            int s = (int)(q.written % q.slots);
            int64_t i;
            if (q.ready[s]) {
                pthread_mutex_unlock(&q.mu);
                rc = ucs4_pipe_write(b, c, &q.part[s], err);
                if (!rc) rc = idt_progress_step(q.part[s].n * width * 4, err); /* Ctrl-C too */
                pthread_mutex_lock(&q.mu);
                q.ready[s] = 0;
                q.written++;
                pthread_cond_broadcast(&q.cv);
            } else if ((i = ucs4_pipe_claim(&q)) >= 0) {
                pthread_mutex_unlock(&q.mu);
                ucs4_pipe_encode(&q, i);
                pthread_mutex_lock(&q.mu);
            } else {
                pthread_cond_wait(&q.cv, &q.mu);
            }
        }
        q.stop = 1;
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.mu);
        for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
        pthread_cond_destroy(&q.cv);
        pthread_mutex_destroy(&q.mu);
    }
    for (int i = 0; i < q.slots; i++) {
        idt_free(q.part[i].lens);
        idt_free(q.part[i].buf);
    }
    return rc;
}

int idt_store_builder_append_ucs4(idt_store_builder *b, int64_t c, int64_t n,
                                  const uint32_t *src, int64_t width, idt_error *err) {
    int rc = check_append(b, c, n, 1, err);
    if (rc) return rc;
    if (ucs4_pipelined(n, width))
        return append_ucs4_pipe(b, c, n, src, width, ucs4_threads(n, width), err);
    build_col *bc = &b->bc[c];
    for (int64_t i = 0; i < n; i++) {
        const uint32_t *s = src + i * width;
        uint32_t any;
        int64_t len = ucs4_scan(s, width, &any), need = ucs4_bytes(s, len, any);
        if (any >= 0x80) bc->ascii = 0;
        if (need > bc->bytes_max - bc->bytes) return too_many_bytes(b, c, err);
        char *dst = stage_room(b, c, need, err);
        if (!dst) return err ? err->code : IDT_ENOMEM;
        ucs4_put(s, len, need, dst);
        bc->bytes += need;
        if (stage_offset(b, c, err)) return err ? err->code : IDT_EIO;
    }
    return 0;
}

int idt_store_builder_append_fixed_bytes(idt_store_builder *b, int64_t c, int64_t n,
                                         const char *src, int64_t width, idt_error *err) {
    int rc = check_append(b, c, n, 1, err);
    if (rc) return rc;
    build_col *bc = &b->bc[c];
    for (int64_t i = 0; i < n; i++) {
        const char *s = src + i * width;
        int64_t len = idt_str_strip(s, width);
        if (len > bc->bytes_max - bc->bytes) return too_many_bytes(b, c, err);
        char *dst = stage_room(b, c, len, err);
        if (!dst) return err ? err->code : IDT_ENOMEM;
        memcpy(dst, s, (size_t)len);
        bc->bytes += len;
        if (stage_offset(b, c, err)) return err ? err->code : IDT_EIO;
    }
    bc->ascii = 0;
    return 0;
}

int idt_store_builder_append_pieces(idt_store_builder *b, int64_t c, int64_t n,
                                    const char *const *ptrs, const int64_t *lens, idt_error *err) {
    int rc = check_append(b, c, n, 0, err);
    if (rc) return rc;
    build_col *bc = &b->bc[c];
    int utf8 = b->schema->cols[c].kind == IDT_COL_UTF8;
    int64_t unit = idt_column_unit(&b->schema->cols[c]);
    for (int64_t i = 0; i < n; i++) {
        int64_t len = lens[i];
        if (len < 0 || len > bc->bytes_max - bc->bytes) return too_many_bytes(b, c, err);
        char *dst = stage_room(b, c, len * unit, err);
        if (!dst) return err ? err->code : IDT_ENOMEM;
        memcpy(dst, ptrs[i], (size_t)(len * unit));
        if (utf8 && bc->ascii)
            for (int64_t k = 0; k < len; k++)
                if ((unsigned char)ptrs[i][k] >= 0x80) {
                    bc->ascii = 0;
                    break;
                }
        bc->bytes += len;
        if (stage_offset(b, c, err)) return err ? err->code : IDT_EIO;
    }
    if (!utf8) bc->ascii = 0;
    return 0;
}

int idt_store_builder_put_strings(idt_store_builder *b, int64_t c, int64_t s0, int64_t n,
                                  int64_t b0, const char *const *ptrs, const uint64_t *lens,
                                  int ascii, char *stage, size_t stage_size, idt_error *err) {
    if (c < 0 || c >= b->schema->ncols || !idt_column_is_var(&b->schema->cols[c]))
        return idt_error_set(err, IDT_EVALUE, "column %lld is not a string or list column", (long long)c);
    build_col *bc = &b->bc[c];
    uint64_t unit = (uint64_t)idt_column_unit(&b->schema->cols[c]);
    if (bc->open)
        return idt_error_set(err, IDT_EVALUE, "column '%s' is open: its strings are appended in order",
                             b->schema->cols[c].name);
    if (s0 < 0 || n < 0 || s0 > bc->nstr_max - n || b0 < 0 || b0 > bc->bytes_max)
        return idt_error_set(err, IDT_EVALUE, "strings %lld..%lld out of range", (long long)s0,
                             (long long)(s0 + n));
    if (stage_size < 64) return idt_error_set(err, IDT_EVALUE, "staging buffer too small");
    __atomic_store_n(&bc->positional, 1, __ATOMIC_RELAXED);
    if (!ascii && b->schema->cols[c].kind == IDT_COL_UTF8)
        __atomic_store_n(&bc->ascii, 0, __ATOMIC_RELAXED);
    const col_layout *l = &b->lay[c];
    /* offsets first (they are known from the lengths), through the stage in pieces */
    uint64_t *ostage = (uint64_t *)stage;
    size_t per = stage_size / 8;
    uint64_t pos = (uint64_t)b0;
    for (int64_t i = 0; i < n;) {
        size_t m = 0;
        for (; i < n && m < per; i++, m++) {
            pos += lens[i];
            ostage[m] = pos;
        }
        if (pos > (uint64_t)bc->bytes_max)
            return idt_error_set(err, IDT_EVALUE, "column '%s': more string bytes than announced",
                                 b->schema->cols[c].name);
        int rc = idt_blob_write(b->blob, l->off_off + (uint64_t)(s0 + i - (int64_t)m + 1) * 8, ostage,
                                m * 8, err);
        if (rc) return rc;
    }
    /* then the bytes: small strings through the stage, large ones straight */
    size_t fill = 0;
    uint64_t at = l->buf_off + (uint64_t)b0 * unit;
    for (int64_t i = 0; i <= n; i++) {
        size_t len = i < n ? (size_t)(lens[i] * unit) : 0;
        if (i == n || fill + len > stage_size) {
            int rc = idt_blob_write(b->blob, at, stage, fill, err);
            if (rc) return rc;
            at += fill;
            fill = 0;
        }
        if (i == n) break;
        if (len > stage_size) {
            int rc = idt_blob_write(b->blob, at, ptrs[i], len, err);
            if (rc) return rc;
            at += len;
        } else {
            memcpy(stage + fill, ptrs[i], len);
            fill += len;
        }
    }
    return 0;
}

/* Offset i of an Arrow offsets array of 32- or 64-bit entries. */
static inline int64_t packed_off(const void *offsets, int off64, int64_t i) {
    return off64 ? ((const int64_t *)offsets)[i] : ((const int32_t *)offsets)[i];
}

int idt_packed_check(const void *offsets, int off64, int64_t n, int64_t data_len, idt_error *err) {
    int64_t prev = n >= 0 ? packed_off(offsets, off64, 0) : 0;
    if (n < 0 || prev < 0 || prev > data_len)
        return idt_error_set(err, IDT_EVALUE, "string offset %lld out of range for %lld data bytes",
                             (long long)prev, (long long)data_len);
    for (int64_t i = 1; i <= n; i++) {
        int64_t z = packed_off(offsets, off64, i);
        if (z < prev || z > data_len)
            return idt_error_set(err, IDT_EVALUE,
                                 "string offset %lld (entry %lld) out of order or past %lld data bytes",
                                 (long long)z, (long long)i, (long long)data_len);
        prev = z;
    }
    return 0;
}

int64_t idt_packed_len(const void *offsets, int off64, int64_t n, const char *data) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t a = packed_off(offsets, off64, i), z = packed_off(offsets, off64, i + 1);
        total += idt_str_strip(data + a, z - a);
    }
    return total;
}

/* 1 if bytes [a, z) of data are all < 0x80 (eight at a time). */
static int bytes_ascii(const char *data, int64_t a, int64_t z) {
    uint64_t any = 0;
    int64_t k = a;
    for (; k + 8 <= z; k += 8) {
        uint64_t w;
        memcpy(&w, data + k, 8);
        any |= w;
    }
    for (; k < z; k++) any |= (unsigned char)data[k];
    return (any & 0x8080808080808080u) == 0;
}

int idt_store_builder_append_packed(idt_store_builder *b, int64_t c, int64_t n, const void *offsets,
                                    int off64, const char *data, idt_error *err) {
    int rc = check_append(b, c, n, 0, err);
    if (rc) return rc;
    build_col *bc = &b->bc[c];
    int utf8 = b->schema->cols[c].kind == IDT_COL_UTF8, list = idt_column_is_list(&b->schema->cols[c]);
    int64_t unit = idt_column_unit(&b->schema->cols[c]);
    int64_t a0 = packed_off(offsets, off64, 0), zn = packed_off(offsets, off64, n);
    int ascii = utf8 && bytes_ascii(data, a0, zn);
    /* No string ends in NUL (nothing to strip) and the bytes are valid, or a list: the data
     * range is written in one piece and only the offsets go one by one. */
    int bulk = 1;
    for (int64_t i = 0; i < n && bulk && !list; i++) {
        int64_t a = packed_off(offsets, off64, i), z = packed_off(offsets, off64, i + 1);
        bulk = z == a || data[z - 1] != 0;
        if (bulk && utf8 && !ascii && !idt_utf8_valid(data + a, (size_t)(z - a), 0)) bulk = 0;
    }
    if (bulk) {
        if (zn - a0 > bc->bytes_max - bc->bytes) return too_many_bytes(b, c, err);
        if (!stage_room(b, c, 0, err) || flush_col(b, c, err)) return err ? err->code : IDT_EIO;
        rc = col_write(b, c, data + a0 * unit, (size_t)((zn - a0) * unit), err);
        if (rc) return rc;
        int64_t base = bc->bytes - a0;
        for (int64_t i = 1; i <= n; i++) {
            bc->bytes = base + packed_off(offsets, off64, i);
            if (stage_offset(b, c, err)) return err ? err->code : IDT_EIO;
        }
        if (!ascii) bc->ascii = 0;
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t a = packed_off(offsets, off64, i), z = packed_off(offsets, off64, i + 1);
        int64_t len = idt_str_strip(data + a, z - a);
        if (len > bc->bytes_max - bc->bytes) return too_many_bytes(b, c, err);
        if (utf8 && !ascii && !idt_utf8_valid(data + a, (size_t)len, 0))
            return idt_error_set(err, IDT_EVALUE, "column '%s': string %lld is not valid UTF-8",
                                 b->schema->cols[c].name, (long long)(bc->nstr));
        char *dst = stage_room(b, c, len, err);
        if (!dst) return err ? err->code : IDT_ENOMEM;
        memcpy(dst, data + a, (size_t)len);
        bc->bytes += len;
        if (stage_offset(b, c, err)) return err ? err->code : IDT_EIO;
    }
    if (!ascii) bc->ascii = 0;
    return 0;
}

int idt_store_builder_finish(idt_store_builder *b, idt_store **out, idt_error *err) {
    int64_t nc = b->schema->ncols;
    int *ascii = idt_calloc((size_t)nc, sizeof *ascii);
    if (!ascii) {
        idt_store_builder_free(b);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int64_t i = 0; i < nc && !rc; i++) {
        build_col *bc = &b->bc[i];
        if (!idt_column_is_var(&b->schema->cols[i])) continue;
        if (!bc->open && (rc = flush_col(b, i, err)) != 0) break;
        if (!bc->positional && (bc->nstr != bc->nstr_max || (!bc->open && bc->bytes != bc->bytes_max)))
            rc = idt_error_set(err, IDT_EVALUE,
                               "column '%s': strings changed while the table was built "
                               "(%lld of %lld strings, %lld of %lld bytes)",
                               b->schema->cols[i].name, (long long)bc->nstr,
                               (long long)bc->nstr_max, (long long)bc->bytes,
                               (long long)bc->bytes_max);
        ascii[i] = bc->ascii;
    }
    if (!rc && b->has_open) { /* seal the open columns (in the order they came), then drop the room left */
        rc = b->open_col >= 0 ? open_seal(b, b->open_col, err) : 0;
        for (int64_t i = 0; i < nc && !rc; i++)
            if (b->bc[i].open && !b->bc[i].sealed && !(rc = open_start(b, i, err)))
                rc = open_seal(b, i, err);
        if (!rc) idt_blob_shrink_unwritten(b->blob, (size_t)b->tail);
        if (!rc && b->blob->size != (size_t)b->tail) /* its file is not the image's length */
            rc = idt_error_sys(err, errno, "cannot set temp file '%s' to %llu bytes",
                               b->blob->path, (unsigned long long)b->tail);
    }
    if (rc) {
        idt_free(ascii);
        idt_store_builder_free(b);
        return rc;
    }
    uint8_t uid[16];
    idt_random_bytes(uid, sizeof uid);
    size_t data_off = (size_t)align64(b->hdr_size);
    if (!b->streaming) { /* start again from the mapping */
        idt_hasher_init(&b->hs, 0);
        b->hashed_to = data_off;
    }
    idt_hasher_update(&b->hs, b->blob->data + b->hashed_to, b->blob->size - b->hashed_to);
    uint64_t data_hash = idt_hasher_final(&b->hs);
    write_header(b->blob->data, b->hdr_size, b->schema, b->nrows, b->lay, ascii, uid, data_hash);
    idt_free(ascii);
    idt_blob *blob = b->blob;
    idt_blob_seal(blob);
    idt_blob_incref(blob);
    idt_store_builder_free(b);
    return idt_store_open_blob(blob, "new store", out, err);
}

/* ---- opening and validating a store image ----
 *
 * The trust boundary for stores, in three named steps: the header (open_header), the column
 * descriptions and their buffer layout (open_columns), and each column's buffers against the
 * image (check_fixed, check_strings). Every message names the image, the value found and the
 * bound it broke. */

typedef struct store_hdr {
    uint32_t hdr_size;
    uint64_t nrows, ncols, data_hash;
    uint8_t uid[16];
} store_hdr;

/* Fewest bytes a column entry takes: a description with a one-byte name, and the tail. */
enum { COL_ENTRY_MIN = 32 + IDT_STORE_COL_TAIL };

/* Step 1: magic, version, header size against the image, header checksum, counts. */
static int open_header(const char *base, size_t size, const char *what, store_hdr *h, idt_error *err) {
    if (size < IDT_STORE_FIXED || memcmp(base, IDT_STORE_MAGIC, 8) != 0)
        return idt_error_set(err, IDT_ECORRUPT, "%s: not an infinidata store (bad magic)", what);
    idt_reader r;
    idt_reader_init(&r, base, IDT_STORE_FIXED, what, err);
    uint32_t version;
    uint64_t sum;
    idt_get_span(&r, "magic", 8);
    idt_get_u32(&r, "version", &version);
    idt_get_u32(&r, "header size", &h->hdr_size);
    idt_get_u64(&r, "row count", &h->nrows);
    idt_get_u64(&r, "column count", &h->ncols);
    idt_get_u64(&r, "header checksum", &sum);
    idt_get_bytes(&r, "identity", h->uid, 16);
    idt_get_u64(&r, "data checksum", &h->data_hash);
    if (r.rc || idt_check_version(&r, "store", version)) return r.rc;
    uint64_t hmax = size < IDT_STORE_HDR_MAX ? size : IDT_STORE_HDR_MAX;
    if (idt_check_range(&r, "header size", h->hdr_size, IDT_STORE_FIXED, hmax)) return r.rc;
    uint64_t got = idt_hash64_hole(base, h->hdr_size, IDT_STORE_OFF_CHECKSUM);
    if (got != sum)
        return idt_reader_fail(&r, "header checksum mismatch (stored %016llx, computed %016llx)",
                               (unsigned long long)sum, (unsigned long long)got);
    idt_check_range(&r, "column count", h->ncols, 1, (h->hdr_size - IDT_STORE_FIXED) / COL_ENTRY_MIN);
    idt_check_range(&r, "row count", h->nrows, 0, (uint64_t)1 << 62);
    return r.rc;
}

/* Step 2: the column entries of the header (descriptions sorted by name, then buffer layout
 * and ascii flag), into cols, lay and ascii (ncols entries each, zeroed by the caller). */
static int open_columns(const char *base, const store_hdr *h, const char *what, idt_column *cols,
                        col_layout *lay, int *ascii, idt_error *err) {
    idt_reader r;
    idt_reader_init(&r, base, h->hdr_size, what, err);
    idt_get_span(&r, "fixed header", IDT_STORE_FIXED);
    for (uint64_t i = 0; i < h->ncols; i++) {
        int rc = idt_col_desc_get(&r, i, &cols[i]);
        if (rc) return rc;
        uint32_t a, pad;
        idt_get_u64(&r, "buffer offset", &lay[i].buf_off);
        idt_get_u64(&r, "buffer length", &lay[i].buf_len);
        idt_get_u64(&r, "offsets offset", &lay[i].off_off);
        idt_get_u64(&r, "offsets length", &lay[i].off_len);
        idt_get_u32(&r, "ascii flag", &a);
        idt_get_u32(&r, "entry padding", &pad);
        if (r.rc) return r.rc;
        ascii[i] = a != 0;
        if (i > 0 && strcmp(cols[i - 1].name, cols[i].name) >= 0)
            return idt_reader_fail(&r, "column %llu '%s' does not sort after column %llu '%s'",
                                   (unsigned long long)i, cols[i].name,
                                   (unsigned long long)i - 1, cols[i - 1].name);
    }
    return 0;
}

/* Whether [off, off + len) lies in the image's buffers [hdr_size, size), 8-byte aligned. */
static int span_ok(uint64_t off, uint64_t len, uint64_t hdr_size, uint64_t size) {
    return off >= hdr_size && off <= size && len <= size - off && off % 8 == 0;
}

#define BAD_BUF(fmt, ...)                                                                          \
    idt_error_set(err, IDT_ECORRUPT, "%s: buffers of column '%s' are out of bounds: " fmt, what,   \
                  c->name, __VA_ARGS__)

/* Step 3 for a fixed column: its rows exactly fill its buffer. */
static int check_fixed(const idt_column *c, const col_layout *l, uint64_t nrows, const char *what,
                       idt_error *err) {
    if (c->row_bytes && nrows > UINT64_MAX / (uint64_t)c->row_bytes)
        return BAD_BUF("%llu rows of %lld bytes overflow", (unsigned long long)nrows, (long long)c->row_bytes);
    if (l->buf_len != nrows * (uint64_t)c->row_bytes)
        return BAD_BUF("data length %llu, expected %llu (%llu rows of %lld bytes)",
                       (unsigned long long)l->buf_len, (unsigned long long)(nrows * (uint64_t)c->row_bytes),
                       (unsigned long long)nrows, (long long)c->row_bytes);
    return 0;
}

/* Step 3 for a string or list column: n + 1 offsets in the image, from 0 to the data length
 * (in values for a list); with deep (a file we did not write), ascending and every string
 * valid in its encoding. */
static int check_strings(const char *base, uint64_t size, uint64_t hdr_size, const idt_column *c,
                         const col_layout *l, int ascii, uint64_t nrows, int deep, const char *what,
                         idt_error *err) {
    if (c->row_elems && nrows > ((uint64_t)1 << 60) / (uint64_t)c->row_elems)
        return BAD_BUF("%llu rows of %lld strings overflow", (unsigned long long)nrows, (long long)c->row_elems);
    uint64_t nstr = nrows * (uint64_t)c->row_elems;
    if (l->off_len != (nstr + 1) * 8)
        return BAD_BUF("offsets length %llu, expected %llu (%llu strings + 1, 8 bytes each)",
                       (unsigned long long)l->off_len, (unsigned long long)(nstr + 1) * 8,
                       (unsigned long long)nstr);
    if (!span_ok(l->off_off, l->off_len, hdr_size, size))
        return BAD_BUF("offsets at %llu (%llu bytes) outside [%llu, %llu] or not 8-aligned",
                       (unsigned long long)l->off_off, (unsigned long long)l->off_len,
                       (unsigned long long)hdr_size, (unsigned long long)size);
    const uint64_t *off = (const uint64_t *)(base + l->off_off);
    uint64_t unit = (uint64_t)idt_column_unit(c); /* offsets count values in a list */
    if (l->buf_len % unit)
        return BAD_BUF("data length %llu is not a whole number of %llu-byte values",
                       (unsigned long long)l->buf_len, (unsigned long long)unit);
    if (off[0] != 0 || off[nstr] != l->buf_len / unit)
        return BAD_BUF("offsets run from %llu to %llu, expected 0 to the data length %llu",
                       (unsigned long long)off[0], (unsigned long long)off[nstr],
                       (unsigned long long)(l->buf_len / unit));
    if (!deep) return 0;
    for (uint64_t k = 0; k < nstr; k++)
        if (off[k] > off[k + 1])
            return BAD_BUF("offset %llu is %llu, above offset %llu (%llu)", (unsigned long long)k,
                           (unsigned long long)off[k], (unsigned long long)k + 1,
                           (unsigned long long)off[k + 1]);
    /* every read path must see the same strings: check the encoding too */
    if (c->kind == IDT_COL_UTF8)
        for (uint64_t k = 0; k < nstr; k++)
            if (!idt_utf8_valid(base + l->buf_off + off[k], (size_t)(off[k + 1] - off[k]), ascii))
                return BAD_BUF("string %llu is not %s", (unsigned long long)k,
                               ascii ? "ASCII (the column is marked ASCII)" : "valid UTF-8");
    return 0;
}

/* Step 3: every column's buffers against the image; fills sc. */
static int check_buffers(const char *base, size_t size, const store_hdr *h, const idt_schema *schema,
                         const col_layout *lay, const int *ascii, int deep, idt_store_col *sc,
                         const char *what, idt_error *err) {
    for (int64_t i = 0; i < schema->ncols; i++) {
        const idt_column *c = &schema->cols[i];
        const col_layout *l = &lay[i];
        if (!span_ok(l->buf_off, l->buf_len, h->hdr_size, size))
            return BAD_BUF("data at %llu (%llu bytes) outside [%llu, %llu] or not 8-aligned",
                           (unsigned long long)l->buf_off, (unsigned long long)l->buf_len,
                           (unsigned long long)h->hdr_size, (unsigned long long)size);
        sc[i].data = base + l->buf_off;
        int rc = !idt_column_is_var(c)
                     ? check_fixed(c, l, h->nrows, what, err)
                     : check_strings(base, size, h->hdr_size, c, l, ascii[i], h->nrows, deep, what, err);
        if (rc) return rc;
        if (idt_column_is_var(c)) {
            sc[i].offsets = (const uint64_t *)(base + l->off_off);
            sc[i].ascii = ascii[i];
        }
    }
    return 0;
}
#undef BAD_BUF

int idt_store_open_blob(idt_blob *blob, const char *what, idt_store **out, idt_error *err) {
    const char *base = blob->data;
    size_t size = blob->size;
    store_hdr h;
    int rc = open_header(base, size, what, &h, err);
    if (rc) {
        idt_blob_decref(blob);
        return rc;
    }
    idt_column *cols = idt_calloc(h.ncols, sizeof *cols);
    col_layout *lay = idt_calloc(h.ncols, sizeof *lay);
    int *ascii = idt_calloc(h.ncols, sizeof *ascii);
    idt_store *st = idt_calloc(1, sizeof *st);
    idt_store_col *sc = idt_calloc(h.ncols, sizeof *sc);
    if (!cols || !lay || !ascii || !st || !sc) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc) rc = open_columns(base, &h, what, cols, lay, ascii, err);
    if (!rc && (rc = idt_schema_new(cols, (int64_t)h.ncols, &st->schema, err)) && rc != IDT_ENOMEM) {
        char why[sizeof err->msg]; /* the reason is err->msg itself: copy it before rewriting */
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        rc = idt_error_set(err, IDT_ECORRUPT, "%s: bad column description (%s)", what, why);
    }
    /* data we did not write is checked fully */
    if (!rc) rc = check_buffers(base, size, &h, st->schema, lay, ascii, blob->kind == IDT_BLOB_LOADED, sc, what, err);
    if (!rc) {
        atomic_store(&st->refs, 1);
        st->nrows = (int64_t)h.nrows;
        st->cols = sc;
        st->blob = blob;
        st->id = atomic_fetch_add(&store_serial, 1);
        memcpy(st->uid, h.uid, 16);
        st->data_hash = h.data_hash;
        st->data_off = (size_t)align64(h.hdr_size);
        *out = st;
        sc = NULL;
        st = NULL;
    }
    for (uint64_t i = 0; cols && i < h.ncols; i++) idt_column_reset(&cols[i]);
    idt_free(cols);
    idt_free(lay);
    idt_free(ascii);
    idt_free(sc);
    if (st) {
        idt_schema_decref(st->schema);
        idt_free(st);
    }
    if (rc) idt_blob_decref(blob);
    return rc;
}

void idt_store_incref(idt_store *s) { atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); }

void idt_store_decref(idt_store *s) {
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    idt_blob_decref(s->blob);
    idt_schema_decref(s->schema);
    idt_free(s->cols);
    idt_store_decref(s->base);
    idt_free(s->base_col);
    idt_free(s);
}

int64_t idt_ucs4_utf8_len(const uint32_t *src, int64_t n, int64_t width, int *ascii) {
    ucs4_len_part parts[UCS4_MAX_THREADS];
    int t = ucs4_threads(n, width);
    for (int i = 0; i < t; i++) {
        int64_t lo = n * i / t, hi = n * (i + 1) / t;
        parts[i] = (ucs4_len_part){src + lo * width, hi - lo, width, 0, 1};
    }
    ucs4_run(ucs4_len_main, (char *)parts, sizeof parts[0], t);
    int64_t total = 0;
    for (int i = 0; i < t; i++) {
        total += parts[i].total;
        if (!parts[i].ascii && ascii) *ascii = 0;
    }
    return total;
}

int64_t idt_ucs4_open_bound(int64_t n, int64_t width) {
    return ucs4_pipelined(n, width) ? n * width * 4 : -1;
}

int64_t idt_fixed_bytes_len(const char *src, int64_t n, int64_t width) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s = src + i * width;
        total += idt_str_strip(s, width);
    }
    return total;
}

int idt_store_verify(const idt_store *s, const char *what, idt_error *err) {
    const idt_blob *b = s->blob;
    if (s->data_off > b->size) return idt_error_set(err, IDT_ECORRUPT, "%s: truncated", what);
    uint64_t h;
    int rc = idt_hash_fast_progress(b->data + s->data_off, b->size - s->data_off, 0, &h, err);
    if (rc) return rc;
    if (h != s->data_hash)
        return idt_error_set(err, IDT_ECORRUPT, "%s: row data checksum mismatch (damaged file)", what);
    return 0;
}

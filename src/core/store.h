/* store.h: schemas and stores, the immutable tables that hold row data.
 *
 * A store is one blob: a header (magic, format version, row count, a random 128-bit
 * identity, the columns, buffer offsets, a checksum of the header) followed by one 64-byte aligned buffer per column (page aligned for a fixed column of 1 MiB
 * or more, so that rows of a page size read from disk touch one page each).
 * Fixed-width columns are raw rows, memcpy-able. String columns (UTF8 from NumPy 'U' or
 * Python str; BYTES from NumPy 'S' or Python bytes) are an offsets array of n+1 uint64 and a
 * data buffer, as Arrow lays them out; a column with a row shape holds prod(shape) strings
 * per row, row-major. Trailing NULs are not stored (NumPy treats them as padding).
 *
 * Columns are kept sorted by name (bytewise), so stores with the same column set have the
 * same column order.
 *
 * A store is built by a builder that is given the row count and, for string columns, the
 * total encoded bytes up front (or, for an open column, a bound: see
 * idt_store_builder_new_open); rows are written in any order (fixed) or in order
 * (strings); finishing seals it. A store is immutable after that and safe to read from any
 * number of threads. References are atomic. */
#ifndef IDT_STORE_H
#define IDT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "column.h"
#include "error.h"
#include "tmp.h"

#define IDT_FORMAT_VERSION 2 /* 2: the list column kind; column groups and
                               renamed columns in manifests */

/* A schema: columns sorted by name. Immutable once made; reference counted. */
typedef struct idt_schema {
    _Atomic int64_t refs;
    int64_t ncols;
    idt_column *cols;
} idt_schema;

/* Make a schema from `n` column descriptions (copied; order does not matter, the result is
 * sorted by name). Errors: IDT_EVALUE (duplicate or empty name, bad shape, dtype string too
 * long or not allowed (idt_dtype_allowed), n < 1), IDT_ENOMEM. */
int idt_schema_new(const idt_column *cols, int64_t n, idt_schema **out, idt_error *err);
void idt_schema_incref(idt_schema *s);
void idt_schema_decref(idt_schema *s);
/* Index of the column named `name`, or -1. */
int64_t idt_schema_find(const idt_schema *s, const char *name);

/* Column buffers of a finished store. */
typedef struct idt_store_col {
    const char *data;           /* fixed rows, or string bytes */
    const uint64_t *offsets;    /* strings: n * row_elems + 1 offsets into data */
    int ascii;                  /* strings: every byte < 0x80 (chars == bytes) */
} idt_store_col;

typedef struct idt_store {
    _Atomic int64_t refs;
    idt_schema *schema;
    int64_t nrows;
    idt_store_col *cols;        /* schema->ncols entries */
    idt_blob *blob;
    int64_t id;                 /* process-unique serial */
    uint8_t uid[16];            /* random identity, kept in the header: names the saved file */
    uint64_t data_hash;         /* idt_hash_fast of the bytes after the header (in the header) */
    size_t data_off;            /* where those bytes start */
    /* An alias (made by idt_view_rename): the store whose buffers this one shows under other
     * column names (a reference; never itself an alias), and for each of this store's
     * columns the column of base it shows. NULL for a store of its own. */
    struct idt_store *base;
    int64_t *base_col;
} idt_store;

void idt_store_incref(idt_store *s);
void idt_store_decref(idt_store *s);

typedef struct idt_store_builder idt_store_builder;

/* Begin a store of `nrows` rows for `schema` (a reference is taken). str_bytes[c] gives the
 * total encoded bytes of string column c (ignored for fixed columns; may be NULL if there
 * are none). Errors: IDT_EVALUE (negative sizes, overflow), IDT_ENOMEM, IDT_EIO. */
int idt_store_builder_new(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                          idt_store_builder **out, idt_error *err);
/* The same, its blob taken from `pool` (idt_blob_pool_take; NULL: as idt_store_builder_new). */
int idt_store_builder_new_in(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                             idt_blob_pool *pool, idt_store_builder **out, idt_error *err);
/* The same, where string or list column c with str_max[c] >= 0 is *open*: its byte (value)
 * count is found as its strings come instead of announced, at most str_max[c] (str_bytes[c]
 * is then ignored; str_max may be NULL). An open column is laid out after the columns whose
 * sizes are known, its data first and its offsets after the data, in the order the open
 * columns get their first strings, so its strings come in one run (strings for it after
 * another open column began are an IDT_EVALUE error) and are read once: no measuring pass.
 * The blob takes room for str_max bytes but disk only for what is written; finish gives the
 * rest back. More bytes than str_max: IDT_EVALUE, and idt_store_builder_overflowed says so
 * (the caller can measure and build again). Open columns take no put_strings. */
int idt_store_builder_new_open(idt_schema *schema, int64_t nrows, const int64_t *str_bytes,
                               const int64_t *str_max, idt_blob_pool *pool,
                               idt_store_builder **out, idt_error *err);
/* 1 when an append failed because an open column outgrew its str_max. */
int idt_store_builder_overflowed(const idt_store_builder *b);
/* Copy rows [row0, row0+n) of fixed column c from contiguous native-order `src`. */
int idt_store_builder_write_fixed(idt_store_builder *b, int64_t c, int64_t row0, int64_t n,
                                  const void *src, idt_error *err);
/* Append `n` strings to string column c, in order. Each string i is given as:
 *  - ucs4 (UTF8 column from NumPy 'U'): src holds n elements of `width` code points each;
 *  - fixed bytes (BYTES column from 'S'): src holds n elements of `width` bytes each;
 *  - pieces: ptrs[i], lens[i] already encoded (UTF-8 or raw bytes), when src is NULL.
 * Errors: IDT_EVALUE when more strings or bytes arrive than announced. */
int idt_store_builder_append_ucs4(idt_store_builder *b, int64_t c, int64_t n,
                                  const uint32_t *src, int64_t width, idt_error *err);
int idt_store_builder_append_fixed_bytes(idt_store_builder *b, int64_t c, int64_t n,
                                         const char *src, int64_t width, idt_error *err);
int idt_store_builder_append_pieces(idt_store_builder *b, int64_t c, int64_t n,
                                    const char *const *ptrs, const int64_t *lens, idt_error *err);
/* Writes will come from several threads (or out of order): compute the content hash at
 * finish instead of as bytes come. Call before the first write. */
void idt_store_builder_unordered(idt_store_builder *b);
/* Write strings [s0, s0+n) of string column c, whose bytes start at byte b0 of the column's
 * data, from spans ptrs[i], lens[i] (already encoded), in any order and from several
 * threads at once for disjoint ranges (used by flatten, which measured every range first).
 * `ascii` 0 marks the column as not all ASCII. `stage` (stage_size >= 64 bytes) is the
 * caller's scratch. The caller must fill every string of the column exactly once: finish
 * does not recount a column filled this way. Errors: IDT_EVALUE (out of range), IDT_EIO. */
int idt_store_builder_put_strings(idt_store_builder *b, int64_t c, int64_t s0, int64_t n,
                                  int64_t b0, const char *const *ptrs, const uint64_t *lens,
                                  int ascii, char *stage, size_t stage_size, idt_error *err);
/* Strings in Arrow's layout: n strings, string i being data[offsets[i]..offsets[i+1]), the
 * offsets 32-bit (off64 == 0) or 64-bit. idt_packed_check verifies the n + 1 offsets are
 * ascending and within data_len bytes (IDT_EVALUE naming the bad entry otherwise); the other
 * two trust them. idt_packed_len gives their bytes with trailing NULs stripped (what a
 * store keeps); idt_store_builder_append_packed appends them to string column c, checking
 * that a UTF8 column receives well-formed UTF-8 (IDT_EVALUE naming the string otherwise). */
int idt_packed_check(const void *offsets, int off64, int64_t n, int64_t data_len, idt_error *err);
int64_t idt_packed_len(const void *offsets, int off64, int64_t n, const char *data);
int idt_store_builder_append_packed(idt_store_builder *b, int64_t c, int64_t n, const void *offsets,
                                    int off64, const char *data, idt_error *err);
/* Seal the store. Errors: IDT_EVALUE when a string column got fewer strings or bytes than
 * announced. The builder is consumed either way (do not free it after). */
int idt_store_builder_finish(idt_store_builder *b, idt_store **out, idt_error *err);
/* Abandon a builder: its blob (and file) go. NULL is a no-op. */
void idt_store_builder_free(idt_store_builder *b);

/* Bytes needed to encode `n` NumPy unicode elements of `width` code points as UTF-8 (trailing
 * NULs stripped); *ascii is cleared when any code point is >= 0x80. */
int64_t idt_ucs4_utf8_len(const uint32_t *src, int64_t n, int64_t width, int *ascii);
/* The bound to give idt_store_builder_new_open for a string column of `n` NumPy unicode
 * elements of `width` code points, when reading them once as an open column pays (large
 * inputs of wide elements: the offsets it keeps in memory until the column ends are at most
 * an eighth of the input); else -1 (measure them with idt_ucs4_utf8_len). The bound is 4
 * bytes per code point, the input's size: only code points past U+1FFFFF, which no Unicode
 * text has, encode longer. */
int64_t idt_ucs4_open_bound(int64_t n, int64_t width);
/* Bytes of `n` fixed `width`-byte elements with trailing NULs stripped. */
int64_t idt_fixed_bytes_len(const char *src, int64_t n, int64_t width);

/* Open a store from a blob holding a store image (as written by a builder, or loaded from
 * disk), validating the header and every offset. Takes `blob` (the caller's reference) in
 * every case: the store holds it, or it is released on failure. Errors: IDT_ECORRUPT naming
 * `what` and the problem, IDT_ENOMEM. */
int idt_store_open_blob(idt_blob *blob, const char *what, idt_store **out, idt_error *err);

/* FNV-1a style 64-bit hash used for header checksums. */
uint64_t idt_hash64(const void *p, size_t n, uint64_t seed);
/* idt_hash64 (seed 0) of p[0..n) with the 8 bytes at `hole` read as zeros: the checksum of a
 * header or manifest that holds it at `hole` (hole + 8 <= n). */
uint64_t idt_hash64_hole(const void *p, size_t n, size_t hole);
/* A fast 64-bit hash (four 64-bit lanes, xxHash64 style) for content checksums of row data
 * and ref arrays: several GB/s, so a load can afford to check every byte. */
uint64_t idt_hash_fast(const void *p, size_t n, uint64_t seed);

/* The same hash fed in pieces: init, update any number of times, final (any split of the
 * bytes gives the hash of their concatenation). */
typedef struct idt_hasher {
    uint64_t a, b, c, d, n;
    unsigned char buf[32];
    size_t fill;
} idt_hasher;
void idt_hasher_init(idt_hasher *h, uint64_t seed);
void idt_hasher_update(idt_hasher *h, const void *p, size_t n);
void idt_hasher_zeros(idt_hasher *h, size_t n); /* as update with n zero bytes */
uint64_t idt_hasher_final(const idt_hasher *h);
/* idt_hash_fast in 64 MiB steps, reporting bytes to the thread's progress (progress.h),
 * which may cancel (IDT_ECANCELLED). */
int idt_hash_fast_progress(const void *p, size_t n, uint64_t seed, uint64_t *out, idt_error *err);

/* Check a store's row data against the checksum in its header. Errors: IDT_ECORRUPT naming
 * `what`, IDT_ECANCELLED (the thread's progress asked to stop). */
int idt_store_verify(const idt_store *s, const char *what, idt_error *err);

#endif

/* column.h: column kinds: every per-kind rule in one place.
 *
 * A column is a name, a kind, a dtype and a row shape. Kinds:
 *   FIXED  raw rows of row_bytes = itemsize * prod(shape) bytes (memcpy-able);
 *   UTF8   strings from NumPy 'U' or Python str, stored as generalized UTF-8;
 *   BYTES  strings from NumPy 'S' or Python bytes, stored raw;
 *   LIST   each row a 1-D array of any length of one numeric or bool dtype (token ids):
 *          dtype and itemsize are those of the values, ndim is 0 (no row shape).
 * Variable-length kinds (strings, lists) are stored as an offsets array of count + 1 uint64
 * and a data buffer (Arrow's layout), one element per row element (a list row is one
 * element); the offsets count units of idt_column_unit bytes (1 for strings, the value size
 * for lists), so the same code sizes, copies and checks both. Every layer (store, view, gather, batch, flatten, writer, sort,
 * persist, the extension) asks this module what a kind means instead of testing `kind`
 * itself: adding a kind means adding it here and in the code that reads and writes it. */
#ifndef IDT_COLUMN_H
#define IDT_COLUMN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "error.h"

#define IDT_MAXDIMS 64
#define IDT_DTYPE_MAX 32

/* Column kinds, as stored in a column description (codec.h): a new kind takes the next code
 * and moves IDT_COL_NKINDS up. */
typedef enum {
    IDT_COL_FIXED = 0,
    IDT_COL_UTF8 = 1,
    IDT_COL_BYTES = 2,
    IDT_COL_LIST = 3,
    IDT_COL_NKINDS
} idt_col_kind;

typedef struct idt_column {
    char *name;                  /* UTF-8, NUL-terminated */
    idt_col_kind kind;
    char dtype[IDT_DTYPE_MAX];   /* NumPy dtype.str in native order ("<f4", "<M8[ns]");
                                    "U" or "S" for string columns (a schema sets it when
                                    given ""); lists: the values' dtype ("<i4"); only
                                    idt_dtype_allowed ones */
    int64_t itemsize;            /* fixed and lists: bytes per element (value); strings: 0 */
    int32_t ndim;                /* row dimensions (lists: 0) */
    int64_t *shape;              /* ndim entries (may be NULL when ndim == 0) */
    int64_t row_elems;           /* prod(shape) */
    int64_t row_bytes;           /* fixed: itemsize * row_elems; strings and lists: 0 */
} idt_column;

/* 1 when (kind, dtype, itemsize) is a column a table can hold, else 0: the allow-list every
 * schema passes, built or loaded. Fixed columns: NumPy dtype.str in native byte order of bool
 * ("|b1"), ints and uints of 1, 2, 4, 8 bytes, floats of 2, 4, 8 bytes and long double, complex
 * of 8, 16 bytes and two long doubles, datetime64/timedelta64 ("<M8", "<m8[ns]", "<M8[25s]"),
 * with itemsize the size the string names. UTF8 columns: "U", BYTES: "S", itemsize 0. LIST
 * columns: the values' dtype, one of bool, ints, uints, float16/32/64, complex64/128. Anything
 * else (object or StringDType references, structured, void, other byte orders) is refused:
 * a saved file's dtype string reaches NumPy only after passing this. */
int idt_dtype_allowed(idt_col_kind kind, const char *dtype, int64_t itemsize);

/* Validate the column description `src` and copy it into *dst (name and shape duplicated;
 * row_elems and row_bytes computed; a string column's empty dtype set to "U"/"S"). Errors:
 * IDT_EVALUE naming the column and what is wrong with it (empty name, too many dimensions,
 * negative dimension, row too large, dtype not allowed, unknown kind), IDT_ENOMEM; *dst then
 * owns nothing. */
int idt_column_copy(idt_column *dst, const idt_column *src, idt_error *err);
/* Free what idt_column_copy allocated; leaves an empty description. */
void idt_column_reset(idt_column *c);
/* 1 if two column descriptions match for concatenation (name, kind, dtype where the kind's
 * values have one, shape). */
int idt_column_same(const idt_column *a, const idt_column *b);
/* A short word for the kind, for messages: "fixed", "str", "bytes", "list". */
const char *idt_column_kind_name(idt_col_kind k);

/* A description of c's kind, dtype and row shape for messages, into buf (n bytes):
 * "fixed <f4 rows of shape (3,)", "str rows of shape ()", "lists of <i4 values". */
void idt_column_describe(const idt_column *c, char *buf, size_t n);

/* Index of the column named `name` in cols[0..n), sorted by name (a schema's), or -1. */
int64_t idt_columns_find(const idt_column *cols, int64_t n, const char *name);

/* 1 for kinds stored as offsets + data (strings, lists), 0 for fixed rows. */
static inline int idt_column_is_var(const idt_column *c) { return c->kind != IDT_COL_FIXED; }
/* 1 for the string kinds (UTF8, BYTES). */
static inline int idt_column_is_str(const idt_column *c) {
    return c->kind == IDT_COL_UTF8 || c->kind == IDT_COL_BYTES;
}
/* 1 for list columns. */
static inline int idt_column_is_list(const idt_column *c) { return c->kind == IDT_COL_LIST; }
/* Bytes per unit counted by a variable-length column's offsets (strings 1, lists the value
 * size). */
static inline int64_t idt_column_unit(const idt_column *c) {
    return c->kind == IDT_COL_LIST ? c->itemsize : 1;
}
/* Variable-length elements (offsets entries less one) per row. */
static inline int64_t idt_column_var_per_row(const idt_column *c) { return c->row_elems; }

/* Read back, a string column is a NumPy array of fixed-width strings as wide as the widest in
 * the result: 'U' (4 bytes per code point) for UTF8, 'S' (1 byte each) for BYTES; 0 for
 * other kinds. */
static inline char idt_column_out_char(const idt_column *c) {
    return c->kind == IDT_COL_UTF8 ? 'U' : c->kind == IDT_COL_BYTES ? 'S' : 0;
}
/* Output bytes per character of a string column (UTF8: 4, BYTES: 1). */
static inline int64_t idt_column_char_bytes(const idt_column *c) {
    return c->kind == IDT_COL_UTF8 ? 4 : 1;
}
/* Bytes of one output row of column c: fixed columns their row_bytes, string columns
 * row_elems strings of `width` characters, list columns padded to `width` values. (A list
 * column read as offsets + values has no fixed output row.) */
static inline int64_t idt_column_out_row_bytes(const idt_column *c, int64_t width) {
    if (c->kind == IDT_COL_FIXED) return c->row_bytes;
    if (c->kind == IDT_COL_LIST) return width * c->itemsize;
    return c->row_elems * width * idt_column_char_bytes(c);
}

/* Trailing NULs are padding (NumPy's rule for 'S' and 'U'): a store never keeps them, and
 * string comparisons ignore them. These give the length without them. */
static inline int64_t idt_str_strip(const char *p, int64_t len) {
    uint64_t x;
    while (len >= 8 && (memcpy(&x, p + len - 8, 8), x == 0)) len -= 8; /* long padding */
    while (len > 0 && p[len - 1] == 0) len--;
    return len;
}
static inline int64_t idt_ucs4_strip(const uint32_t *p, int64_t len) {
    while (len > 0 && p[len - 1] == 0) len--;
    return len;
}

#endif

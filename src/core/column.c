/* column.c: column kinds: the allow-list of dtypes, validation of a column description,
 * and the rules column.h declares. */
#include "column.h"

#include <stdio.h>
#include <string.h>

#include "sys.h"

void idt_column_reset(idt_column *c) {
    idt_free(c->name);
    idt_free(c->shape);
    c->name = NULL;
    c->shape = NULL;
}

/* A datetime64/timedelta64 unit suffix as NumPy writes it in dtype.str: "" (generic), or
 * "[<unit>]" or "[<multiplier><unit>]" with a multiplier of 2..2^31-1 written without leading
 * zeros (NumPy leaves out a multiplier of 1). */
static int time_unit_ok(const char *s) {
    if (!*s) return 1;
    if (*s++ != '[') return 0;
    if (*s >= '1' && *s <= '9') {
        int64_t m = 0;
        while (*s >= '0' && *s <= '9') {
            m = m * 10 + (*s++ - '0');
            if (m > INT32_MAX) return 0;
        }
        if (m < 2) return 0;
    }
    static const char *const units[] = {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i]);
        if (!strncmp(s, units[i], n) && s[n] == ']' && s[n + 1] == 0) return 1;
    }
    return 0;
}

int idt_dtype_allowed(idt_col_kind kind, const char *dtype, int64_t itemsize) {
    if (kind == IDT_COL_UTF8) return !strcmp(dtype, "U") && itemsize == 0;
    if (kind == IDT_COL_BYTES) return !strcmp(dtype, "S") && itemsize == 0;
    if (kind == IDT_COL_LIST) { /* numbers and bools: no times, no long double */
        char t = dtype[0] ? dtype[1] : 0;
        int ok = (t == 'b' || t == 'i' || t == 'u') || (t == 'f' && itemsize <= 8) ||
                 (t == 'c' && itemsize <= 16);
        return ok && idt_dtype_allowed(IDT_COL_FIXED, dtype, itemsize);
    }
    if (kind != IDT_COL_FIXED) return 0;
    const uint16_t one = 1;
    const char native = *(const char *)&one ? '<' : '>';
    char order = dtype[0], type = order ? dtype[1] : 0;
    if (!type) return 0;
    const char *rest = dtype + 2;
    if (type == 'M' || type == 'm')
        return order == native && rest[0] == '8' && time_unit_ok(rest + 1) && itemsize == 8;
    /* the rest is the itemsize in decimal, as NumPy writes it */
    if (!(rest[0] >= '1' && rest[0] <= '9') || strlen(rest) > 2) return 0;
    int64_t size = 0;
    for (const char *p = rest; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        size = size * 10 + (*p - '0');
    }
    if (size != itemsize) return 0;
    if (order != (size == 1 ? '|' : native)) return 0;
    const int64_t ld = (int64_t)sizeof(long double);
    switch (type) {
    case 'b': return size == 1;
    case 'i':
    case 'u': return size == 1 || size == 2 || size == 4 || size == 8;
    case 'f': return size == 2 || size == 4 || size == 8 || size == ld;
    case 'c': return size == 8 || size == 16 || size == 2 * ld;
    default: return 0;
    }
}

int idt_column_copy(idt_column *dst, const idt_column *src, idt_error *err) {
    *dst = *src;
    dst->name = NULL;
    dst->shape = NULL;
    if (!src->name || !src->name[0])
        return idt_error_set(err, IDT_EVALUE, "column names must not be empty");
    if (src->ndim < 0 || src->ndim > IDT_MAXDIMS - 1)
        return idt_error_set(err, IDT_EVALUE, "column '%s': %d row dimensions (at most %d)",
                             src->name, (int)src->ndim, IDT_MAXDIMS - 1);
    if (memchr(src->dtype, 0, IDT_DTYPE_MAX) == NULL)
        return idt_error_set(err, IDT_EVALUE, "column '%s': dtype string too long", src->name);
    int64_t elems = 1;
    for (int32_t d = 0; d < src->ndim; d++) {
        if (src->shape[d] < 0)
            return idt_error_set(err, IDT_EVALUE, "column '%s': negative dimension", src->name);
        if (src->shape[d] && elems > INT64_MAX / src->shape[d])
            return idt_error_set(err, IDT_EVALUE, "column '%s': row too large", src->name);
        elems *= src->shape[d];
    }
    if (src->kind == IDT_COL_FIXED) {
        if (src->itemsize <= 0)
            return idt_error_set(err, IDT_EVALUE, "column '%s': itemsize must be positive",
                                 src->name);
        if (elems && src->itemsize > INT64_MAX / elems)
            return idt_error_set(err, IDT_EVALUE, "column '%s': row too large", src->name);
        dst->row_bytes = elems * src->itemsize;
    } else if (src->kind == IDT_COL_UTF8 || src->kind == IDT_COL_BYTES) {
        dst->itemsize = 0;
        dst->row_bytes = 0;
    } else if (src->kind == IDT_COL_LIST) {
        if (src->ndim != 0)
            return idt_error_set(err, IDT_EVALUE,
                                 "column '%s': a list column has no row shape (%d dimensions given)",
                                 src->name, (int)src->ndim);
        dst->row_bytes = 0;
    } else {
        return idt_error_set(err, IDT_EVALUE, "column '%s': unknown kind %d", src->name,
                             (int)src->kind);
    }
    if (idt_column_is_str(src) && !src->dtype[0]) /* a string column may leave it unset */
        strcpy(dst->dtype, src->kind == IDT_COL_UTF8 ? "U" : "S");
    if (!idt_dtype_allowed(src->kind, dst->dtype, dst->itemsize))
        return idt_error_set(err, IDT_EVALUE,
                             "column '%s': dtype '%s' with itemsize %lld is not one infinidata stores",
                             src->name, src->dtype, (long long)src->itemsize);
    dst->row_elems = elems;
    dst->name = idt_strdup(src->name);
    if (src->ndim) {
        dst->shape = idt_malloc((size_t)src->ndim * sizeof(int64_t));
        if (dst->shape) memcpy(dst->shape, src->shape, (size_t)src->ndim * sizeof(int64_t));
    }
    if (!dst->name || (src->ndim && !dst->shape)) {
        idt_column_reset(dst);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    return 0;
}

int idt_column_same(const idt_column *a, const idt_column *b) {
    if (strcmp(a->name, b->name) || a->kind != b->kind || a->ndim != b->ndim) return 0;
    if (!idt_column_is_str(a) && strcmp(a->dtype, b->dtype)) return 0; /* strings: "U"/"S" by kind */
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

const char *idt_column_kind_name(idt_col_kind k) {
    return k == IDT_COL_UTF8 ? "str" : k == IDT_COL_BYTES ? "bytes" : k == IDT_COL_LIST ? "list" : "fixed";
}

void idt_column_describe(const idt_column *c, char *buf, size_t n) {
    if (!n) return;
    if (idt_column_is_list(c)) {
        snprintf(buf, n, "lists of %s values", c->dtype);
        return;
    }
    size_t o = (size_t)snprintf(buf, n, "%s %s rows of shape (", idt_column_kind_name(c->kind),
                                c->dtype);
    for (int32_t d = 0; d < c->ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)c->shape[d]);
    if (o < n) snprintf(buf + o, n - o, c->ndim == 1 ? ",)" : ")");
}

int64_t idt_columns_find(const idt_column *cols, int64_t n, const char *name) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cols[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

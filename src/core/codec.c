/* codec.c: the bounded little-endian writer and reader, and column descriptions. */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sys.h"
#include "utf8.h"

const char IDT_STORE_MAGIC[8] = {'I', 'D', 'T', 'S', 'T', 'O', 'R', 0};
const char IDT_MANIFEST_MAGIC[8] = {'I', 'D', 'T', 'V', 'I', 'E', 'W', 0};

/* ---- writer ---- */

void idt_writer_init(idt_writer *w) { memset(w, 0, sizeof *w); }

void idt_writer_init_fixed(idt_writer *w, char *buf, size_t cap) {
    memset(w, 0, sizeof *w);
    w->p = buf;
    w->cap = cap;
    w->fixed = 1;
}

/* Room for n more bytes; 0 (and `failed` set) when there is none. */
static int room(idt_writer *w, size_t n) {
    if (w->failed) return 0;
    if (n <= w->cap - w->n) return 1;
    if (w->fixed || n > SIZE_MAX / 2 - w->n) {
        w->failed = 1;
        return 0;
    }
    size_t c = w->cap ? w->cap : 256;
    while (c < w->n + n) c *= 2;
    char *q = idt_realloc(w->p, c);
    if (!q) {
        w->failed = 1;
        return 0;
    }
    w->p = q;
    w->cap = c;
    return 1;
}

void idt_put_bytes(idt_writer *w, const void *src, size_t n) {
    if (!n || !room(w, n)) return;
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void le_store(unsigned char *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_load(const unsigned char *b, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

void idt_put_u32(idt_writer *w, uint32_t v) {
    unsigned char b[4];
    le_store(b, v, 4);
    idt_put_bytes(w, b, 4);
}

void idt_put_u64(idt_writer *w, uint64_t v) {
    unsigned char b[8];
    le_store(b, v, 8);
    idt_put_bytes(w, b, 8);
}

void idt_put_pad8(idt_writer *w) {
    static const char z[8] = {0};
    if (w->n % 8) idt_put_bytes(w, z, 8 - w->n % 8);
}

void idt_writer_patch_u64(idt_writer *w, size_t off, uint64_t v) {
    if (!w->failed && off <= w->n && w->n - off >= 8) le_store((unsigned char *)w->p + off, v, 8);
}

/* ---- reader ---- */

void idt_reader_init(idt_reader *r, const void *base, size_t len, const char *what, idt_error *err) {
    r->base = r->p = base;
    r->end = r->base + len;
    r->what = what;
    r->err = err;
    r->rc = 0;
}

int idt_reader_fail(idt_reader *r, const char *fmt, ...) {
    if (r->rc) return r->rc;
    r->rc = IDT_ECORRUPT;
    if (r->err) {
        char why[sizeof r->err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        idt_error_set(r->err, IDT_ECORRUPT, "%s: %s", r->what, why);
    }
    return r->rc;
}

const char *idt_get_span(idt_reader *r, const char *field, size_t n) {
    if (r->rc) return NULL;
    if (idt_reader_left(r) < n) {
        idt_reader_fail(r, "%s is cut off (needs %zu bytes at offset %zu, %zu left)", field, n,
                        (size_t)(r->p - r->base), idt_reader_left(r));
        return NULL;
    }
    const char *s = r->p;
    r->p += n;
    return s;
}

int idt_get_bytes(idt_reader *r, const char *field, void *dst, size_t n) {
    const char *s = idt_get_span(r, field, n);
    if (s) memcpy(dst, s, n);
    else memset(dst, 0, n);
    return r->rc;
}

int idt_get_u32(idt_reader *r, const char *field, uint32_t *v) {
    const char *s = idt_get_span(r, field, 4);
    *v = s ? (uint32_t)le_load((const unsigned char *)s, 4) : 0;
    return r->rc;
}

int idt_get_u64(idt_reader *r, const char *field, uint64_t *v) {
    const char *s = idt_get_span(r, field, 8);
    *v = s ? le_load((const unsigned char *)s, 8) : 0;
    return r->rc;
}

int idt_get_pad8(idt_reader *r, const char *field) {
    size_t off = (size_t)(r->p - r->base);
    if (off % 8) idt_get_span(r, field, 8 - off % 8);
    return r->rc;
}

int idt_check_range(idt_reader *r, const char *field, uint64_t v, uint64_t lo, uint64_t hi) {
    if (!r->rc && (v < lo || v > hi))
        idt_reader_fail(r, "%s is %llu, outside [%llu, %llu]", field, (unsigned long long)v,
                        (unsigned long long)lo, (unsigned long long)hi);
    return r->rc;
}

int idt_check_version(idt_reader *r, const char *kind, uint32_t version) {
    if (!r->rc && version != IDT_FORMAT_VERSION)
        idt_reader_fail(r, "written by %s format version %u; this build of infinidata reads version %d only "
                        "(%s)", kind, version, IDT_FORMAT_VERSION,
                        version > IDT_FORMAT_VERSION ? "a newer infinidata wrote it: upgrade to load it"
                                                     : "an older infinidata wrote it: load it with that "
                                                       "version and save it again with this one");
    return r->rc;
}

/* ---- column descriptions ---- */

size_t idt_col_desc_size(const idt_column *c) {
    size_t s = 24 + 8 * (size_t)c->ndim + strlen(c->name) + strlen(c->dtype);
    return (s + 7) & ~(size_t)7;
}

void idt_col_desc_put(idt_writer *w, const idt_column *c) {
    size_t nl = strlen(c->name), dl = strlen(c->dtype);
    idt_put_u32(w, (uint32_t)c->kind);
    idt_put_u32(w, (uint32_t)c->ndim);
    idt_put_u32(w, (uint32_t)nl);
    idt_put_u32(w, (uint32_t)dl);
    idt_put_u64(w, (uint64_t)c->itemsize);
    for (int32_t d = 0; d < c->ndim; d++) idt_put_u64(w, (uint64_t)c->shape[d]);
    idt_put_bytes(w, c->name, nl);
    idt_put_bytes(w, c->dtype, dl);
    idt_put_pad8(w);
}

static int printable_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7E) return 0;
    return 1;
}

int idt_col_desc_get(idt_reader *r, uint64_t index, idt_column *c) {
    memset(c, 0, sizeof *c);
    uint32_t kind, ndim, nl, dl;
    uint64_t itemsize;
    char field[64];
#define FIELD(name) (snprintf(field, sizeof field, "column %llu " name, (unsigned long long)index), field)
    if (idt_get_u32(r, FIELD("kind"), &kind) ||
        idt_check_range(r, field, kind, 0, IDT_COL_NKINDS - 1) ||
        idt_get_u32(r, FIELD("ndim"), &ndim) || idt_check_range(r, field, ndim, 0, IDT_MAXDIMS - 1) ||
        idt_get_u32(r, FIELD("name length"), &nl) ||
        idt_check_range(r, field, nl, 1, idt_reader_left(r)) ||
        idt_get_u32(r, FIELD("dtype length"), &dl) ||
        idt_check_range(r, field, dl, 0, IDT_DTYPE_MAX - 1) ||
        idt_get_u64(r, FIELD("itemsize"), &itemsize) ||
        idt_check_range(r, field, itemsize, 0, IDT_DESC_DIM_MAX) ||
        idt_check_range(r, FIELD("shape"), 8 * (uint64_t)ndim, 0, idt_reader_left(r)))
        return r->rc;
    c->kind = (idt_col_kind)kind;
    c->ndim = (int32_t)ndim;
    c->itemsize = (int64_t)itemsize;
    c->shape = ndim ? idt_malloc(8 * (size_t)ndim) : NULL;
    c->name = idt_malloc((size_t)nl + 1);
    if ((ndim && !c->shape) || !c->name) {
        idt_column_reset(c);
        return idt_error_set(r->err, IDT_ENOMEM, "out of memory reading %s", r->what);
    }
    for (uint32_t d = 0; d < ndim; d++) {
        uint64_t v;
        snprintf(field, sizeof field, "column %llu dimension %u", (unsigned long long)index, d);
        if (idt_get_u64(r, field, &v) || idt_check_range(r, field, v, 0, IDT_DESC_DIM_MAX)) return r->rc;
        c->shape[d] = (int64_t)v;
    }
    idt_get_bytes(r, FIELD("name"), c->name, nl);
    c->name[nl] = 0;
    idt_get_bytes(r, FIELD("dtype"), c->dtype, dl);
    c->dtype[dl] = 0;
    if (idt_get_pad8(r, FIELD("padding"))) return r->rc;
    if (strlen(c->name) != nl || !idt_utf8_strict(c->name))
        return idt_reader_fail(r, "column %llu name is not UTF-8 text without NUL (%u bytes)",
                               (unsigned long long)index, nl);
    if (strlen(c->dtype) != dl || !printable_ascii(c->dtype))
        return idt_reader_fail(r, "column %llu dtype is not printable ASCII (%u bytes)",
                               (unsigned long long)index, dl);
    return 0;
#undef FIELD
}

/* codec.h: the byte layout of the files the library writes, and the one codec that reads and
 * writes them (docs/format.md describes every field).
 *
 * Every integer of a header, manifest or column description is little-endian; the writer and
 * the reader below encode and decode them byte by byte. (Row data, string offsets and ref
 * arrays are read in place as native integers, so the files are little-endian only on
 * little-endian hosts, the only ones this build supports.)
 *
 * The reader is bounded: it never reads past its end, and its first failure becomes an
 * IDT_ECORRUPT error naming the file and the field, after which every further read fails
 * the same way (so a sequence of reads may be checked once, at the end). */
#ifndef IDT_CODEC_H
#define IDT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

/* ---- the store image header (s-<uid>.idt, and stores in the temp area) ---- */
extern const char IDT_STORE_MAGIC[8]; /* "IDTSTOR\0" */
enum {
    IDT_STORE_OFF_MAGIC = 0,      /* 8 bytes */
    IDT_STORE_OFF_VERSION = 8,    /* u32 IDT_FORMAT_VERSION */
    IDT_STORE_OFF_HDR_SIZE = 12,  /* u32 bytes of the header, column entries included */
    IDT_STORE_OFF_NROWS = 16,     /* u64 */
    IDT_STORE_OFF_NCOLS = 24,     /* u64 */
    IDT_STORE_OFF_CHECKSUM = 32,  /* u64 idt_hash64_hole (store.h) of the header, this field the hole */
    IDT_STORE_OFF_UID = 40,       /* 16 random bytes: the store's identity */
    IDT_STORE_OFF_DATA_HASH = 56, /* u64 idt_hash_fast of the bytes after the header */
    IDT_STORE_FIXED = 64,         /* column entries start here */
    /* each column entry: a column description, then its buffers (buf_off, buf_len, off_off,
     * off_len: u64 each), ascii (u32) and a zero u32 */
    IDT_STORE_COL_TAIL = 40,
    IDT_STORE_HDR_MAX = 1 << 30,  /* a header larger than this is refused */
};

/* ---- the manifest (<name>.idtview) and the view description (pickles) ---- */
extern const char IDT_MANIFEST_MAGIC[8]; /* "IDTVIEW\0" */
enum {
    IDT_MAN_OFF_MAGIC = 0,     /* 8 bytes */
    IDT_MAN_OFF_VERSION = 8,   /* u32 IDT_FORMAT_VERSION */
    IDT_MAN_OFF_MODE = 12,     /* u32 IDT_MAN_SAVED or IDT_MAN_DESCR */
    IDT_MAN_OFF_LENGTH = 16,   /* u64 bytes of the whole manifest */
    IDT_MAN_OFF_CHECKSUM = 24, /* u64 idt_hash64_hole of the manifest, this field the hole */
    IDT_MAN_FIXED = 32,        /* the body starts here */
    IDT_MAN_SAVED = 0,         /* files named by relative name in the saved directory */
    IDT_MAN_DESCR = 1,         /* files named by absolute path and offset (a live process's) */
    IDT_MAN_OBJ_STORE = 0,     /* file table entry kinds */
    IDT_MAN_OBJ_REFS = 1,
    IDT_MAN_OBJ_ALIAS = 2,     /* not a file: a store file's columns under other names */
    IDT_MAN_PATH_MAX = 4096,   /* longest path a file table entry may hold */
};

/* Bounds of a column description: a dimension or an itemsize larger than this is refused. */
#define IDT_DESC_DIM_MAX ((uint64_t)1 << 40)

/* ---- writer ---- */

/* A writer appends to a heap buffer it grows (idt_writer_init), or to a caller's buffer of
 * fixed capacity (idt_writer_init_fixed). A failure (out of memory, or past a fixed buffer's
 * end) sets `failed` and makes every later put a no-op; check it once at the end. The heap
 * buffer belongs to the caller after the writes (release it with idt_free). */
typedef struct idt_writer {
    char *p;
    size_t n, cap;
    int fixed;
    int failed;
} idt_writer;

void idt_writer_init(idt_writer *w);
void idt_writer_init_fixed(idt_writer *w, char *buf, size_t cap);
void idt_put_bytes(idt_writer *w, const void *src, size_t n);
void idt_put_u32(idt_writer *w, uint32_t v);
void idt_put_u64(idt_writer *w, uint64_t v);
/* Zero bytes up to the next multiple of 8 from the start of the buffer. */
void idt_put_pad8(idt_writer *w);
/* Overwrite the u64 at byte `off` (already written). */
void idt_writer_patch_u64(idt_writer *w, size_t off, uint64_t v);

/* ---- reader ---- */

typedef struct idt_reader {
    const char *base, *p, *end;
    const char *what; /* names the file in messages */
    idt_error *err;
    int rc;           /* 0, or the code of the first failure */
} idt_reader;

/* Read base[0..len); messages start with "<what>: ". */
void idt_reader_init(idt_reader *r, const void *base, size_t len, const char *what, idt_error *err);
/* Read a little-endian integer named `field` into *v. On a short read (or after an earlier
 * failure) *v is 0 and the result is the failure's code: IDT_ECORRUPT "<what>: <field> is cut
 * off (needs 8 bytes at offset 120, 4 left)". */
int idt_get_u32(idt_reader *r, const char *field, uint32_t *v);
int idt_get_u64(idt_reader *r, const char *field, uint64_t *v);
/* Copy n bytes into dst (zeros on failure). */
int idt_get_bytes(idt_reader *r, const char *field, void *dst, size_t n);
/* The next n bytes in place, or NULL on failure. */
const char *idt_get_span(idt_reader *r, const char *field, size_t n);
/* Skip to the next multiple of 8 from base. */
int idt_get_pad8(idt_reader *r, const char *field);
/* Bytes not read yet. */
static inline size_t idt_reader_left(const idt_reader *r) { return (size_t)(r->end - r->p); }
/* Record a failure (the first one wins): IDT_ECORRUPT "<what>: <message>". Returns r->rc. */
int idt_reader_fail(idt_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Check lo <= v <= hi for the value just read as `field`; otherwise fail with "<field> is
 * <v>, outside [<lo>, <hi>]". Returns r->rc. */
int idt_check_range(idt_reader *r, const char *field, uint64_t v, uint64_t lo, uint64_t hi);

/* The version policy (docs/format.md): a reader accepts only IDT_FORMAT_VERSION. Another
 * version fails with "<what>: written by <kind> format version <v>; this build of infinidata
 * reads version <V> only" and whether a newer or an older infinidata wrote it. */
int idt_check_version(idt_reader *r, const char *kind, uint32_t version);

/* ---- column descriptions (in store headers and manifests alike) ----
 *
 * kind u32, ndim u32, name length u32, dtype length u32, itemsize u64, shape (ndim u64),
 * name bytes, dtype bytes, zeros up to a multiple of 8 from the buffer's start. */

/* Bytes idt_col_desc_put writes for c when it starts at a multiple of 8. */
size_t idt_col_desc_size(const idt_column *c);
void idt_col_desc_put(idt_writer *w, const idt_column *c);
/* Decode one description into *c (zeroed first; name and shape allocated, release them with
 * idt_column_reset (column.h) whatever the result). Every field is checked against its bound: kind
 * < IDT_COL_NKINDS, ndim < IDT_MAXDIMS, name of 1 or more bytes, valid UTF-8 without NUL,
 * dtype shorter than IDT_DTYPE_MAX of printable ASCII, itemsize and dimensions at most
 * IDT_DESC_DIM_MAX. Messages name column `index`, the field, the value and the bound.
 * (Whether the kind, dtype and itemsize make an allowed column is idt_schema_new's check.)
 * Errors: IDT_ECORRUPT, IDT_ENOMEM. */
int idt_col_desc_get(idt_reader *r, uint64_t index, idt_column *c);

#endif

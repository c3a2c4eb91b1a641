/* view.h: views, the flat description of which rows of which stores a table shows.
 *
 * Every view has the same flat shape, whatever produced it:
 *   view    = schema + selected columns + segments (+ cumulative row counts)
 *   segment = RUN  (store, start, step, len)   rows start + i*step of one store
 *           | REFS (refs, start, step, len)    entries start + i*step of a ref array
 *   ref     = (slot << 40) | row, slot indexing the ref array's own store table.
 * Slicing is segment arithmetic, concat joins segment lists, and take / shuffle / filter
 * compose the new indexes through the existing segments once (O(n)) into one new ref
 * array, so reading a row never costs more than a segment lookup and one ref lookup.
 *
 * A view is immutable once made and may be read from any number of threads. Every
 * idt_view_* constructor returns a new reference in *out (untouched on failure); release it
 * with idt_view_decref. A view holds references to exactly the stores and ref arrays its
 * rows come from. Ref arrays live in the temp area (file-backed), never on the heap. */
#ifndef IDT_VIEW_H
#define IDT_VIEW_H

#include <stdint.h>

#include "error.h"
#include "progress.h"
#include "store.h"

#define IDT_REF_ROW_BITS 40
#define IDT_REF_ROW_MASK (((uint64_t)1 << IDT_REF_ROW_BITS) - 1)
#define IDT_MAX_STORE_ROWS ((int64_t)1 << IDT_REF_ROW_BITS)
#define IDT_MAX_SLOTS ((int64_t)1 << (64 - IDT_REF_ROW_BITS))

typedef struct idt_refs {
    _Atomic int64_t refs;
    idt_blob *blob;
    const uint64_t *ref;   /* n packed refs */
    int64_t n;
    int64_t nstores;
    idt_store **stores;    /* the slot table; one reference each */
    uint8_t uid[16];       /* random identity: names the saved file */
    uint64_t hash;         /* idt_hash_fast of the n refs: checked when loaded from disk */
} idt_refs;

typedef enum { IDT_SEG_RUN = 0, IDT_SEG_REFS = 1 } idt_seg_kind;

typedef struct idt_segment {
    idt_seg_kind kind;
    idt_store *store;      /* RUN */
    idt_refs *refs;        /* REFS */
    int64_t start, step, len;
} idt_segment;

typedef struct idt_view {
    _Atomic int64_t refs;
    idt_schema *schema;    /* descriptions of the columns (of the first store) */
    int64_t ncols;         /* selected columns, in display order */
    int64_t *cols;         /* indexes into schema->cols */
    int uniform;           /* every store has exactly schema's column names */
    int64_t nseg;
    idt_segment *segs;
    int64_t *cum;          /* nseg + 1 cumulative row counts; cum[nseg] = rows */
    char uuid[37];
    /* Column groups (group.c). ngroups 0: a plain view, as described above. ngroups >= 2: a
     * grouped view (views put side by side by idt_view_zip): shown column j is column gcol[j]
     * of groups[grp[j]]; each group is a plain view of the view's length showing its columns
     * (each shown once by the grouped view), at most IDT_GROUP_MAX_COLS of them. A grouped
     * view has no segments of its own (nseg 0, cum[0] its length); its schema describes the
     * shown columns (cols[j] indexes it). */
    int64_t ngroups;
    struct idt_view **groups;
    int64_t *grp, *gcol;
} idt_view;

#define IDT_GROUP_MAX_COLS 64

/* Make a view of all rows of `store`, showing columns cols[0..ncols) (indexes into the
 * store's schema, in display order). Errors: IDT_EVALUE, IDT_ENOMEM. */
int idt_view_from_store(idt_store *store, const int64_t *cols, int64_t ncols, idt_view **out,
                        idt_error *err);
void idt_view_incref(idt_view *v);
void idt_view_decref(idt_view *v);
static inline int64_t idt_view_len(const idt_view *v) { return v->cum[v->nseg]; }
static inline const idt_column *idt_view_column(const idt_view *v, int64_t j) {
    return &v->schema->cols[v->cols[j]];
}

/* Column index in store `st` (one of the view's stores) of the view's shown column j. */
static inline int64_t idt_view_store_col(const idt_view *v, const idt_store *st, int64_t j) {
    return v->uniform ? v->cols[j] : idt_schema_find(st->schema, idt_view_column(v, j)->name);
}

/* The store and store row of position `pos` of segment s (a run row or a ref entry). */
static inline void idt_seg_resolve(const idt_segment *s, int64_t pos, idt_store **st, int64_t *row) {
    if (s->kind == IDT_SEG_RUN) {
        *st = s->store;
        *row = pos;
    } else {
        uint64_t r = s->refs->ref[pos];
        *st = s->refs->stores[r >> IDT_REF_ROW_BITS];
        *row = (int64_t)(r & IDT_REF_ROW_MASK);
    }
}

/* Index of the segment holding view row i (0 <= i < len): binary search over cum. */
static inline int64_t idt_view_find_seg(const idt_view *v, int64_t i) {
    int64_t lo = 0, hi = v->nseg - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (v->cum[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Rows start, start+step, ... (count of them) as a view. The arguments must be valid for the
 * view (as PySlice_AdjustIndices gives them): step != 0 and every row in range. O(segments
 * touched), zero copy. Errors: IDT_EVALUE, IDT_ENOMEM. */
int idt_view_slice(idt_view *v, int64_t start, int64_t step, int64_t count, idt_view **out,
                   idt_error *err);

/* Check `n` indexes against `len` rows, writing them with negatives resolved to dst (dst may
 * equal src). Errors: IDT_EINDEX naming the first bad index. */
int idt_index_normalize(const int64_t *src, int64_t *dst, int64_t n, int64_t len, idt_error *err);

/* Rows idx[0..n) (negative counts from the end; repeats allowed). Errors: IDT_EINDEX. */
int idt_view_take(idt_view *v, const int64_t *idx, int64_t n, idt_view **out, idt_error *err);
/* Rows dst[0..n) as written by fill(ctx, dst, err), which must fill all n with rows in
 * [0, len(v)) or return a negative code (returned as is). dst is the index buffer the new
 * view's ref array is composed in (a file-backed mapping when large), so no copy is made.
 * Errors: fill's, IDT_ENOMEM, IDT_EIO. */
int idt_view_take_fill(idt_view *v, int64_t n, int (*fill)(void *ctx, int64_t *dst, idt_error *err),
                       void *ctx, idt_view **out, idt_error *err);
/* A bool mask used as a row index (tv[mask]): *count is how many of mask[0..n) are nonzero.
 * n must equal len, the rows it indexes. Errors: IDT_EINDEX naming both lengths (NumPy's
 * IndexError for a mask of the wrong length). */
int idt_mask_count(const uint8_t *mask, int64_t n, int64_t len, int64_t *count, idt_error *err);
/* The rows i with mask[i] != 0, in order, into rows[0..count) (count from idt_mask_count). */
void idt_mask_rows(const uint8_t *mask, int64_t n, int64_t *rows);
/* Rows where mask[i] != 0; n must equal the view's length. Errors: IDT_EVALUE on length (the
 * mask is an argument here, as filter(mask) takes it; as an index it is idt_mask_count's
 * IDT_EINDEX), IDT_ENOMEM. */
int idt_view_filter(idt_view *v, const uint8_t *mask, int64_t n, idt_view **out, idt_error *err);
/* A uniformly random permutation of the rows, determined by `seed` (see shuffle.c). */
int idt_view_shuffle(idt_view *v, uint64_t seed, idt_view **out, idt_error *err);
/* Rows of views[0], then views[1], ... Column names, kinds, dtypes and row shapes must match
 * (string widths do not matter). Errors: IDT_EVALUE (n < 1, mismatch: which column, how). */
int idt_view_concat(idt_view *const *views, int64_t n, idt_view **out, idt_error *err);
/* The columns named names[0..n), in that order. Errors: IDT_EKEY (unknown name), IDT_EVALUE
 * (n < 1, a name twice). */
int idt_view_select(idt_view *v, const char *const *names, int64_t n, idt_view **out,
                    idt_error *err);
/* Index among the view's shown columns of the column named `name`, or -1. */
int64_t idt_view_find(const idt_view *v, const char *name);
/* Set err to IDT_EKEY for an unknown column `name`, listing the view's columns (as many as
 * fit in the message). Returns IDT_EKEY. */
int idt_view_no_column(const idt_view *v, const char *name, idt_error *err);
/* idt_view_find, failing with idt_view_no_column's IDT_EKEY (listing the columns) for an
 * unknown name: the lookup every caller that reports the miss uses. */
int64_t idt_view_find_column(const idt_view *v, const char *name, idt_error *err);
/* Drop rows whose value in string column `name` equals one of strs[0..n) (UTF-8 for UTF8
 * columns, raw bytes for BYTES; trailing NULs ignored). A column with a row shape drops a row
 * when any of its strings matches. Errors: IDT_EKEY, IDT_ETYPE (not a string column). */
int idt_view_remove_strings(idt_view *v, const char *name, const char *const *strs,
                            const int64_t *lens, int64_t n, idt_view **out, idt_error *err);

/* A selection of rows of a view: a range (idx == NULL: start, start+step, ... count rows,
 * all in range) or an index list (idx[0..count), normalized and in range). */
typedef struct idt_rowsel {
    int64_t start, step, count;
    const int64_t *idx;
} idt_rowsel;

/* For each selected column j that holds strings, the longest string (in characters for
 * UTF8, bytes for BYTES) among the selected rows, at least 1; 0 for fixed columns. */
int idt_view_str_widths(const idt_view *v, const idt_rowsel *sel, int64_t *widths, idt_error *err);
/* Fill outs[j] for each selected column j with the selected rows: fixed columns as raw rows
 * (count * row_bytes bytes), UTF8 as UCS4 of widths[j] code points per string, BYTES as
 * widths[j] bytes per string, zero padded. LIST columns are left alone (outs[j] unused):
 * read them with idt_view_gather_packed or idt_view_gather_padded. widths[j] must be at least what
 * idt_view_str_widths gives (longer strings are cut). Never fails for a valid selection. */
void idt_view_gather(const idt_view *v, const idt_rowsel *sel, void *const *outs,
                     const int64_t *widths);

/* Spans of the strings of string column j for view rows [start, start+count) (in range):
 * ptrs[i], lens[i] for the count * row_elems strings in row-major order (pointers into the
 * stores, valid while the view lives). Returns 1 if every source column is all ASCII, 0 if
 * not, or -1 when out of memory. */
int idt_view_str_spans(const idt_view *v, int64_t j, int64_t start, int64_t count,
                       const char **ptrs, uint64_t *lens);

/* A new table holding the rows of `v` contiguously, in view order, with the view's columns
 * (in its order): one store, written by `threads` threads (< 1: a default from the CPU
 * count) in chunks of a few MB each, so memory stays bounded whatever the size. Reports
 * rows done to `prog`, which may cancel (IDT_ECANCELLED; nothing is left behind).
 * Errors: IDT_ENOMEM, IDT_EIO, IDT_EVALUE, IDT_ECANCELLED. */
int idt_view_flatten(idt_view *v, int64_t threads, const idt_progress *prog, idt_view **out,
                     idt_error *err);
/* As idt_view_flatten, giving the store (its columns sorted by name, as every store's). */
int idt_view_flatten_store(idt_view *v, int64_t threads, const idt_progress *prog,
                           idt_store **out, idt_error *err);
/* The same, the store's blob taken from `pool` (tmp.h; NULL: as idt_view_flatten_store). */
int idt_view_flatten_store_in(idt_view *v, int64_t threads, const idt_progress *prog,
                              idt_blob_pool *pool, idt_store **out, idt_error *err);

/* Strings of view column j (a UTF8 or BYTES column) over the selected rows in Arrow's
 * layout, as stored (UTF-8 or raw bytes, trailing NULs not stored), or the rows of a LIST
 * column as offsets + values: idt_view_str_bytes gives their total units (string bytes, list
 * values); idt_view_gather_packed writes count * row_elems + 1 int64 offsets (in those
 * units) starting at 0 and that many units (units * itemsize bytes for a list) of data.
 * Never fails for a valid selection. */
int64_t idt_view_str_bytes(const idt_view *v, const idt_rowsel *sel, int64_t j);
void idt_view_gather_packed(const idt_view *v, const idt_rowsel *sel, int64_t j, int64_t *offsets,
                            char *data);
/* Rows of LIST column j over the selection, padded: out holds count rows of `length` values
 * (the column's itemsize each), a row's first min(len, length) values then copies of the
 * `pad` value (itemsize bytes); lengths[i] (when not NULL) gets min(len, length). Never
 * fails for a valid selection. */
void idt_view_gather_padded(const idt_view *v, const idt_rowsel *sel, int64_t j, int64_t length,
                            const void *pad, void *out, int64_t *lengths);

/* Resolve selected rows [i0, i0+n) of `sel` (of a plain view) to their stores and store rows: st[i], row[i]
 * for i < n. *segcur is a segment hint (start with 0; it is updated for the next call).
 * Returns 1 when every row is in st[0]. */
int idt_view_resolve(const idt_view *v, const idt_rowsel *sel, int64_t i0, int64_t n,
                     const idt_store **st, int64_t *row, int64_t *segcur);

/* Make a ref array over `blob` (takes the caller's reference in every case) holding n refs into the slot
 * table stores[0..nstores) (references taken). The caller vouches that every ref is in range
 * (loaders check first). Errors: IDT_ENOMEM. */
int idt_refs_new(idt_blob *blob, int64_t n, idt_store *const *stores, int64_t nstores,
                 const uint8_t *uid, idt_refs **out, idt_error *err);
void idt_refs_decref(idt_refs *r);

/* Make a view from parts: `schema` with columns cols[0..ncols) shown, and segments (their
 * stores and refs get a reference each). Checks each segment against its store or ref array
 * bounds, and every store's columns against the schema (a store missing a shown column or
 * holding it with another kind, dtype or shape, or holding IDT_MAX_STORE_ROWS rows or more, is
 * refused). Errors: IDT_ECORRUPT, IDT_ENOMEM. */
int idt_view_assemble(idt_schema *schema, const int64_t *cols, int64_t ncols,
                      const idt_segment *segs, int64_t nseg, idt_view **out, idt_error *err);

/* Adopt (idt_blob_adopt) every loaded store and ref array file of `v` that lies in this
 * process's temp directory: a view loaded from parts other processes saved there becomes
 * this process's own, its files removed when the last view using them goes. Blobs of other
 * kinds or places are left alone. Call only on a view no other thread uses yet.
 * Errors: IDT_EIO, IDT_ENOMEM (the files adopted so far stay adopted). */
int idt_view_adopt_files(idt_view *v, idt_error *err);

/* Resolve view row `i` (in range) of a plain view to its store and store row. */
void idt_view_locate(const idt_view *v, int64_t i, idt_store **store, int64_t *row);

/* ---- column groups and renames (group.c) ---- */

/* The columns of views[0], views[1], ... side by side: every view must have the same length
 * and no column name may appear twice. No row is copied: each input's column groups become
 * groups of the result (groups over the same segments are merged into one). n == 1 gives
 * views[0]. Errors: IDT_EVALUE (n < 1; lengths differ, naming both; a repeated name), IDT_ENOMEM. */
int idt_view_zip(idt_view *const *views, int64_t n, idt_view **out, idt_error *err);

/* The view with shown column olds[i] renamed to news[i] (i < n); other columns, the column
 * order and the rows are unchanged. No row is copied: the stores the view reads are shown
 * through alias stores (idt_store.base) whose schemas carry the new names, and ref arrays
 * through ref arrays over the same file naming those aliases. Errors: IDT_EKEY (an old name
 * not shown), IDT_EVALUE (an old name twice, an empty new name, two columns of the result
 * with one name), IDT_ENOMEM. */
int idt_view_rename(idt_view *v, const char *const *olds, const char *const *news, int64_t n,
                    idt_view **out, idt_error *err);

/* 1 when v is grouped or reads a store through an alias (a rename), else 0. */
int idt_view_has_aliases(const idt_view *v);

/* The plain view showing the group of shown column j of v, and j's column in it (v itself
 * and j when v is plain). */
static inline const idt_view *idt_view_group_of(const idt_view *v, int64_t j, int64_t *gj) {
    if (!v->ngroups) {
        *gj = j;
        return v;
    }
    *gj = v->gcol[j];
    return v->groups[v->grp[j]];
}

#endif

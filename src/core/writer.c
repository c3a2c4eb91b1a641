/* writer.c: a table built from batches of unknown number: finished stores ("pieces") in
 * order, small ones merged as they accumulate, one view at the end. */
#include "writer.h"

#include <string.h>

#include "sys.h"

struct idt_writer {
    idt_schema *schema;
    idt_store **pieces;
    int64_t npieces, cap;
    int64_t tail;          /* trailing pieces below IDT_ARENA_MAX bytes, not yet merged */
    int64_t rows;
    int64_t merge_count;
    int64_t big;           /* pieces over IDT_ARENA_MAX bytes so far */
    int64_t own_files;     /* how many of those get files of their own */
    idt_blob_pool *pool;   /* where later ones go */
};

int idt_writer_new(idt_schema *schema, idt_writer **out, idt_error *err) {
    idt_writer *w = idt_calloc(1, sizeof *w);
    if (!w) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int rc = idt_blob_pool_new(&w->pool, err);
    if (rc) {
        idt_free(w);
        return rc;
    }
    idt_schema_incref(schema);
    w->schema = schema;
    w->merge_count = IDT_WRITER_MERGE_COUNT;
    w->own_files = IDT_WRITER_OWN_FILES;
    *out = w;
    return 0;
}

void idt_writer_set_own_files(idt_writer *w, int64_t count) { w->own_files = count < 0 ? 0 : count; }

idt_blob_pool *idt_writer_pool(idt_writer *w) { return w->big >= w->own_files ? w->pool : NULL; }

idt_schema *idt_writer_schema(const idt_writer *w) { return w->schema; }
int64_t idt_writer_rows(const idt_writer *w) { return w->rows; }
int64_t idt_writer_pieces(const idt_writer *w) { return w->npieces; }

void idt_writer_set_merge_count(idt_writer *w, int64_t count) {
    w->merge_count = count < 2 ? 2 : count;
}

void idt_writer_free(idt_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->npieces; i++) idt_store_decref(w->pieces[i]);
    idt_free(w->pieces);
    idt_schema_decref(w->schema);
    idt_blob_pool_free(w->pool);
    idt_free(w);
}

/* A view of pieces [from, npieces), all columns in store order. */
static int pieces_view(idt_writer *w, int64_t from, const int64_t *cols, int64_t ncols,
                       idt_view **out, idt_error *err) {
    int64_t n = w->npieces - from, nseg = 0;
    idt_segment *segs = idt_calloc((size_t)(n ? n : 1), sizeof *segs);
    if (!segs) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t i = from; i < w->npieces; i++)
        if (w->pieces[i]->nrows > 0)
            segs[nseg++] = (idt_segment){IDT_SEG_RUN, w->pieces[i], NULL, 0, 1, w->pieces[i]->nrows};
    int rc = idt_view_assemble(w->schema, cols, ncols, segs, nseg, out, err);
    idt_free(segs);
    return rc;
}

/* Merge the tail of small pieces into one store. */
static int merge_tail(idt_writer *w, const idt_progress *prog, idt_error *err) {
    int64_t nc = w->schema->ncols, from = w->npieces - w->tail;
    int64_t *cols = idt_malloc((size_t)nc * sizeof *cols);
    if (!cols) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t j = 0; j < nc; j++) cols[j] = j;
    idt_view *v = NULL;
    idt_store *merged = NULL;
    int rc = pieces_view(w, from, cols, nc, &v, err);
    if (!rc) rc = idt_view_flatten_store_in(v, 1, prog, idt_writer_pool(w), &merged, err);
    if (v) idt_view_decref(v);
    idt_free(cols);
    if (rc) return rc;
    for (int64_t i = from; i < w->npieces; i++) idt_store_decref(w->pieces[i]);
    w->pieces[from] = merged;
    w->npieces = from + 1;
    w->tail = 0; /* a merged piece is never merged again: each byte is copied at most once */
    return 0;
}

int idt_writer_add(idt_writer *w, idt_store *piece, const idt_progress *prog, idt_error *err) {
    const idt_schema *a = w->schema, *b = piece->schema;
    if (a->ncols != b->ncols)
        return idt_error_set(err, IDT_EVALUE, "a piece has %lld columns, the writer's schema %lld",
                             (long long)b->ncols, (long long)a->ncols);
    for (int64_t i = 0; i < a->ncols; i++)
        if (!idt_column_same(&a->cols[i], &b->cols[i]))
            return idt_error_set(err, IDT_EVALUE, "column '%s' does not match the writer's schema",
                                 b->cols[i].name);
    if (piece->nrows > ((int64_t)1 << 62) - w->rows)
        return idt_error_set(err, IDT_EVALUE, "too many rows");
    if (w->npieces == w->cap) {
        int64_t cap = w->cap ? 2 * w->cap : 16;
        idt_store **p = idt_realloc(w->pieces, (size_t)cap * sizeof *p);
        if (!p) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        w->pieces = p;
        w->cap = cap;
    }
    idt_store_incref(piece);
    w->pieces[w->npieces++] = piece;
    w->rows += piece->nrows;
    if (piece->blob->size <= IDT_ARENA_MAX) w->tail++;
    else {
        w->tail = 0;
        w->big++;
    }
    if (w->tail >= w->merge_count) {
        int rc = merge_tail(w, prog, err);
        if (rc) { /* leave the writer as it was before this piece (a small one) */
            w->npieces--;
            w->rows -= piece->nrows;
            w->tail--;
            idt_store_decref(piece);
            return rc;
        }
    }
    return 0;
}

int idt_writer_finish(idt_writer *w, const int64_t *cols, int64_t ncols, idt_view **out,
                      idt_error *err) {
    int rc = pieces_view(w, 0, cols, ncols, out, err);
    idt_writer_free(w);
    return rc;
}

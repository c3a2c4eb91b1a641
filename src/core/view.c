/* view.c: making views (from stores, slices, takes, filters, concat, column selection)
 * and composing index arrays through existing views into one flat ref array. */
#include "view.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "ptrmap.h"
#include "sys.h"

/* ---- ref arrays ---- */

void idt_refs_decref(idt_refs *r) {
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
    for (int64_t i = 0; i < r->nstores; i++) idt_store_decref(r->stores[i]);
    idt_free(r->stores);
    idt_blob_decref(r->blob);
    idt_free(r);
}

static void refs_incref(idt_refs *r) { atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed); }

/* ---- views ---- */

static void make_uuid(char out[37]) {
    unsigned char b[16];
    idt_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* A new view with room for nseg segments and the columns of `like` (schema, cols, uniform),
 * or of (schema, cols, ncols) when like is NULL. Segments are to be filled by the caller,
 * which then calls finish_view. */
static idt_view *alloc_view(idt_schema *schema, const int64_t *cols, int64_t ncols, int uniform,
                            int64_t nseg) {
    idt_view *v = idt_calloc(1, sizeof *v);
    if (!v) return NULL;
    v->cols = idt_malloc((size_t)ncols * sizeof *v->cols);
    v->segs = idt_calloc((size_t)(nseg ? nseg : 1), sizeof *v->segs);
    v->cum = idt_malloc((size_t)(nseg + 1) * sizeof *v->cum);
    if (!v->cols || !v->segs || !v->cum) {
        idt_free(v->cols);
        idt_free(v->segs);
        idt_free(v->cum);
        idt_free(v);
        return NULL;
    }
    memcpy(v->cols, cols, (size_t)ncols * sizeof *v->cols);
    v->ncols = ncols;
    idt_schema_incref(schema);
    v->schema = schema;
    v->uniform = uniform;
    atomic_store(&v->refs, 1);
    make_uuid(v->uuid);
    return v;
}

static idt_view *alloc_like(const idt_view *like, int64_t nseg) {
    return alloc_view(like->schema, like->cols, like->ncols, like->uniform, nseg);
}

/* Set segment k, taking a reference to its store or refs. */
static void set_seg(idt_view *v, int64_t k, const idt_segment *s) {
    v->segs[k] = *s;
    if (s->kind == IDT_SEG_RUN) idt_store_incref(s->store);
    else refs_incref(s->refs);
}

static void finish_view(idt_view *v, int64_t nseg) {
    v->nseg = nseg;
    v->cum[0] = 0;
    for (int64_t k = 0; k < nseg; k++) v->cum[k + 1] = v->cum[k] + v->segs[k].len;
}

void idt_view_incref(idt_view *v) { atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed); }

void idt_view_decref(idt_view *v) {
    if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
    for (int64_t k = 0; k < v->nseg; k++) {
        if (v->segs[k].kind == IDT_SEG_RUN) idt_store_decref(v->segs[k].store);
        else idt_refs_decref(v->segs[k].refs);
    }
    idt_group_release(v);
    idt_schema_decref(v->schema);
    idt_free(v->cols);
    idt_free(v->segs);
    idt_free(v->cum);
    idt_free(v);
}

int idt_view_from_store(idt_store *store, const int64_t *cols, int64_t ncols, idt_view **out,
                        idt_error *err) {
    if (ncols < 1) return idt_error_set(err, IDT_EVALUE, "a view needs at least one column");
    for (int64_t j = 0; j < ncols; j++)
        if (cols[j] < 0 || cols[j] >= store->schema->ncols)
            return idt_error_set(err, IDT_EVALUE, "column index %lld out of range", (long long)cols[j]);
    if (store->nrows >= IDT_MAX_STORE_ROWS)
        return idt_error_set(err, IDT_EVALUE, "a table holds at most 2^40 rows");
    idt_view *v = alloc_view(store->schema, cols, ncols, 1, 1);
    if (!v) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int64_t nseg = 0;
    if (store->nrows > 0) {
        idt_segment s = {IDT_SEG_RUN, store, NULL, 0, 1, store->nrows};
        set_seg(v, 0, &s);
        nseg = 1;
    }
    finish_view(v, nseg);
    *out = v;
    return 0;
}

void idt_view_locate(const idt_view *v, int64_t i, idt_store **store, int64_t *row) {
    const idt_segment *s = &v->segs[idt_view_find_seg(v, i)];
    idt_seg_resolve(s, s->start + (i - v->cum[s - v->segs]) * s->step, store, row);
}

int idt_view_slice(idt_view *v, int64_t start, int64_t step, int64_t count, idt_view **out,
                   idt_error *err) {
    int64_t len = idt_view_len(v);
    if (step == 0) return idt_error_set(err, IDT_EVALUE, "slice step cannot be zero");
    int64_t span; /* (count - 1) * step, which must not overflow for bad arguments */
    if (count < 0 || (count > 0 && (start < 0 || start >= len ||
                                    __builtin_mul_overflow(count - 1, step, &span) ||
                                    span < -start || span >= len - start)))
        return idt_error_set(err, IDT_EINDEX, "slice out of range for %lld rows", (long long)len);
    if (v->ngroups) return idt_group_slice(v, start, step, count, out, err);
    /* Count output segments first: one per segment touched. */
    int64_t nout = 0;
    for (int64_t j = 0, pos = start; j < count; nout++) {
        int64_t k = idt_view_find_seg(v, pos);
        int64_t take = step > 0 ? (v->cum[k + 1] - 1 - pos) / step + 1 : (pos - v->cum[k]) / -step + 1;
        if (take > count - j) take = count - j;
        j += take;
        if (j < count) pos += take * step; /* past the end it could overflow */
    }
    idt_view *o = alloc_like(v, nout);
    if (!o) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int64_t n = 0;
    for (int64_t j = 0, pos = start; j < count; n++) {
        int64_t k = idt_view_find_seg(v, pos);
        const idt_segment *s = &v->segs[k];
        int64_t take = step > 0 ? (v->cum[k + 1] - 1 - pos) / step + 1 : (pos - v->cum[k]) / -step + 1;
        if (take > count - j) take = count - j;
        idt_segment ns = *s;
        ns.start = s->start + (pos - v->cum[k]) * s->step;
        ns.step = take > 1 ? s->step * step : 1;
        ns.len = take;
        set_seg(o, n, &ns);
        j += take;
        if (j < count) pos += take * step; /* past the end it could overflow */
    }
    finish_view(o, nout);
    *out = o;
    return 0;
}

int idt_index_normalize(const int64_t *src, int64_t *dst, int64_t n, int64_t len, idt_error *err) {
    for (int64_t i = 0; i < n; i++) {
        int64_t x = src[i];
        int64_t y = x < 0 ? x + len : x;
        if (y < 0 || y >= len)
            return idt_error_set(err, IDT_EINDEX, "index %lld is out of range for %lld rows",
                                 (long long)x, (long long)len);
        dst[i] = y;
    }
    return 0;
}

/* ---- composing indexes into a ref array ---- */

typedef struct composer {
    const idt_view *v;
    ptrmap slots;          /* store -> new slot */
    idt_store **table;     /* new slot table */
    int64_t ntable, captable;
    int64_t *seg_slot;     /* RUN segment k -> slot, -1 unknown */
    int64_t **seg_trans;   /* REFS segment k -> old slot -> new slot table (shared per refs) */
    ptrmap trans;          /* refs object -> index into trans_list */
    int64_t **trans_list;
    int64_t ntrans;
} composer;

static void composer_free(composer *c) {
    ptrmap_free(&c->slots);
    ptrmap_free(&c->trans);
    for (int64_t i = 0; i < c->ntrans; i++) idt_free(c->trans_list[i]);
    idt_free(c->trans_list);
    idt_free(c->seg_slot);
    idt_free(c->seg_trans);
    idt_free(c->table); /* references were not taken yet */
}

static int composer_init(composer *c, const idt_view *v) {
    memset(c, 0, sizeof *c);
    c->v = v;
    int64_t ns = v->nseg ? v->nseg : 1;
    c->seg_slot = idt_malloc((size_t)ns * sizeof *c->seg_slot);
    c->seg_trans = idt_calloc((size_t)ns, sizeof *c->seg_trans);
    c->trans_list = idt_calloc((size_t)ns, sizeof *c->trans_list);
    c->captable = 8;
    c->table = idt_malloc((size_t)c->captable * sizeof *c->table);
    int rc = ptrmap_init(&c->slots, 8) | ptrmap_init(&c->trans, 8);
    if (rc || !c->seg_slot || !c->seg_trans || !c->trans_list || !c->table) return -1;
    for (int64_t k = 0; k < ns; k++) c->seg_slot[k] = -1;
    return 0;
}

/* Slot of `store` in the new table, adding it on first use; -1 on failure. */
static int64_t slot_of(composer *c, idt_store *store) {
    int64_t s = ptrmap_get(&c->slots, store);
    if (s >= 0) return s;
    if (c->ntable >= IDT_MAX_SLOTS) return -1;
    if (c->ntable == c->captable) {
        idt_store **t = idt_realloc(c->table, (size_t)c->captable * 2 * sizeof *t);
        if (!t) return -1;
        c->table = t;
        c->captable *= 2;
    }
    if (ptrmap_put(&c->slots, store, c->ntable) != 0) return -1;
    c->table[c->ntable] = store;
    return c->ntable++;
}

/* Translation table (old slot -> new slot, -1 unknown) for REFS segment k. */
static int64_t *trans_of(composer *c, int64_t k) {
    if (c->seg_trans[k]) return c->seg_trans[k];
    idt_refs *r = c->v->segs[k].refs;
    int64_t t = ptrmap_get(&c->trans, r);
    if (t < 0) {
        int64_t *tr = idt_malloc((size_t)(r->nstores ? r->nstores : 1) * sizeof *tr);
        if (!tr || ptrmap_put(&c->trans, r, c->ntrans) != 0) {
            idt_free(tr);
            return NULL;
        }
        for (int64_t i = 0; i < r->nstores; i++) tr[i] = -1;
        t = c->ntrans;
        c->trans_list[c->ntrans++] = tr;
    }
    return c->seg_trans[k] = c->trans_list[t];
}

/* Replace buf[0..n) (normalized view rows) by packed refs into the composer's table.
 * Returns 0, or (in err) IDT_ENOMEM, or IDT_ECANCELLED when the thread's progress asks to
 * stop (it is told every COMPOSE_BLOCK rows). */
enum { COMPOSE_BLOCK = 1 << 20 };
static int compose(composer *c, uint64_t *buf, int64_t n, idt_error *err) {
    const idt_view *v = c->v;
    if (v->nseg == 1 && v->segs[0].kind == IDT_SEG_RUN && v->segs[0].start == 0 &&
        v->segs[0].step == 1) { /* a whole table: row x is ref (slot 0, x) already */
        if (slot_of(c, v->segs[0].store) != 0) goto oom;
        return 0;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = (int64_t)buf[i];
        if (x < v->cum[k] || x >= v->cum[k + 1]) k = idt_view_find_seg(v, x);
        const idt_segment *s = &v->segs[k];
        int64_t pos = s->start + (x - v->cum[k]) * s->step;
        uint64_t slot, row;
        if (s->kind == IDT_SEG_RUN) {
            if (c->seg_slot[k] < 0 && (c->seg_slot[k] = slot_of(c, s->store)) < 0) goto oom;
            slot = (uint64_t)c->seg_slot[k];
            row = (uint64_t)pos;
        } else {
            uint64_t r = s->refs->ref[pos];
            uint64_t old = r >> IDT_REF_ROW_BITS;
            int64_t *tr = c->seg_trans[k] ? c->seg_trans[k] : trans_of(c, k);
            if (!tr) goto oom;
            if (tr[old] < 0 && (tr[old] = slot_of(c, s->refs->stores[old])) < 0) goto oom;
            slot = (uint64_t)tr[old];
            row = r & IDT_REF_ROW_MASK;
        }
        buf[i] = (slot << IDT_REF_ROW_BITS) | row;
        if ((i + 1) % COMPOSE_BLOCK == 0) {
            int rc = idt_progress_step(COMPOSE_BLOCK, err);
            if (rc) return rc;
        }
    }
    return 0;
oom:
    return idt_error_set(err, IDT_ENOMEM, "out of memory composing %lld rows", (long long)n);
}

/* Where index work happens: a heap buffer written to the blob in one go when the blob is a
 * file being written and the array is not huge (pwrite beats stores through a fresh shared
 * mapping several times over), else the blob's mapping itself (bounded RAM at any size). */
enum { HEAP_INDEX_MAX = 256 << 20 };

typedef struct ixbuf {
    idt_blob *blob;
    uint64_t *p;
    int heap;
} ixbuf;

static int ixbuf_new(int64_t n, ixbuf *x, idt_error *err) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / 8)
        return idt_error_set(err, IDT_EVALUE, "bad row count %lld", (long long)n);
    int rc = idt_blob_new((size_t)n * 8, &x->blob, err);
    if (rc) return rc;
    x->heap = x->blob->fd >= 0 && (uint64_t)n * 8 <= HEAP_INDEX_MAX;
    x->p = x->heap ? idt_malloc((size_t)n * 8) : (uint64_t *)x->blob->data;
    if (!x->p) {
        idt_blob_decref(x->blob);
        return idt_error_set(err, IDT_ENOMEM, "out of memory for %lld indexes", (long long)n);
    }
    return 0;
}

static void ixbuf_free(ixbuf *x) {
    if (x->heap) idt_free(x->p);
    idt_blob_decref(x->blob);
}

/* Turn x, holding n normalized view rows of v (as int64), into a view of those rows.
 * Consumes x in all cases. */
static int grouped_from_index(idt_view *v, ixbuf *x, int64_t n, idt_view **out, idt_error *err);

static int view_from_index(idt_view *v, ixbuf *x, int64_t n, idt_view **out, idt_error *err) {
    if (v->ngroups) return grouped_from_index(v, x, n, out, err);
    if (n == 0) {
        ixbuf_free(x);
        idt_view *o = alloc_like(v, 0);
        if (!o) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        finish_view(o, 0);
        *out = o;
        return 0;
    }
    composer c;
    idt_refs *r = NULL;
    idt_view *o = NULL;
    int rc = 0;
    if (composer_init(&c, v) != 0) goto oom;
    rc = compose(&c, x->p, n, err);
    if (rc) goto fail;
    uint64_t hash;
    rc = idt_hash_fast_progress(x->p, (size_t)n * 8, 0, &hash, err);
    if (rc) goto fail;
    if (x->heap) {
        rc = idt_blob_write(x->blob, 0, x->p, (size_t)n * 8, err);
        if (rc) goto fail;
    }
    idt_blob_seal(x->blob);
    r = idt_calloc(1, sizeof *r);
    o = alloc_like(v, 1);
    if (!r || !o) goto oom;
    r->stores = c.table;
    c.table = NULL;
    r->nstores = c.ntable;
    for (int64_t i = 0; i < r->nstores; i++) idt_store_incref(r->stores[i]);
    r->blob = x->blob;
    r->ref = (const uint64_t *)x->blob->data;
    r->n = n;
    idt_random_bytes(r->uid, sizeof r->uid);
    r->hash = hash;
    atomic_store(&r->refs, 1);
    if (x->heap) idt_free(x->p);
    idt_segment s = {IDT_SEG_REFS, NULL, r, 0, 1, n};
    set_seg(o, 0, &s);
    idt_refs_decref(r); /* the segment holds it now */
    finish_view(o, 1);
    composer_free(&c);
    *out = o;
    return 0;
oom:
    rc = idt_error_set(err, IDT_ENOMEM, "out of memory composing %lld rows", (long long)n);
fail:
    composer_free(&c);
    idt_free(r);
    idt_view_decref(o);
    ixbuf_free(x);
    return rc;
}

/* view_from_index for a grouped view: the same rows of every group (each composing its own
 * copy of the index; the last one consumes x), put back together. Consumes x. */
static int grouped_from_index(idt_view *v, ixbuf *x, int64_t n, idt_view **out, idt_error *err) {
    idt_view **gs = idt_calloc((size_t)v->ngroups, sizeof *gs);
    int rc = 0;
    if (!gs) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t g = 0; g < v->ngroups && !rc; g++) {
        if (g == v->ngroups - 1) {
            rc = view_from_index(v->groups[g], x, n, &gs[g], err);
            x = NULL; /* consumed */
            break;
        }
        ixbuf y;
        rc = ixbuf_new(n, &y, err);
        if (rc) break;
        memcpy(y.p, x->p, (size_t)n * 8);
        rc = view_from_index(v->groups[g], &y, n, &gs[g], err);
    }
    if (x) ixbuf_free(x);
    if (!rc) rc = idt_group_make(gs, v->ngroups, v->grp, v->gcol, v->ncols, out, err);
    for (int64_t g = 0; gs && g < v->ngroups; g++) idt_view_decref(gs[g]);
    idt_free(gs);
    return rc;
}

int idt_view_take(idt_view *v, const int64_t *idx, int64_t n, idt_view **out, idt_error *err) {
    ixbuf x;
    int rc = ixbuf_new(n, &x, err);
    if (rc) return rc;
    rc = idt_index_normalize(idx, (int64_t *)x.p, n, idt_view_len(v), err);
    if (rc) {
        ixbuf_free(&x);
        return rc;
    }
    return view_from_index(v, &x, n, out, err);
}

int idt_view_take_fill(idt_view *v, int64_t n, int (*fill)(void *ctx, int64_t *dst, idt_error *err),
                      void *ctx, idt_view **out, idt_error *err) {
    ixbuf x;
    int rc = ixbuf_new(n, &x, err);
    if (rc) return rc;
    rc = fill(ctx, (int64_t *)x.p, err);
    if (rc) {
        ixbuf_free(&x);
        return rc;
    }
    return view_from_index(v, &x, n, out, err);
}

int idt_mask_count(const uint8_t *mask, int64_t n, int64_t len, int64_t *count, idt_error *err) {
    if (n != len)
        return idt_error_set(err, IDT_EINDEX, "boolean mask of length %lld does not match %lld rows",
                             (long long)n, (long long)len);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += mask[i] != 0;
    *count = kept;
    return 0;
}

void idt_mask_rows(const uint8_t *mask, int64_t n, int64_t *rows) {
    for (int64_t i = 0, o = 0; i < n; i++)
        if (mask[i]) rows[o++] = i;
}

int idt_view_filter(idt_view *v, const uint8_t *mask, int64_t n, idt_view **out, idt_error *err) {
    int64_t len = idt_view_len(v), kept;
    if (n != len)
        return idt_error_set(err, IDT_EVALUE, "filter mask has %lld entries for %lld rows; it needs "
                             "one per row", (long long)n, (long long)len);
    int rc = idt_mask_count(mask, n, len, &kept, err);
    ixbuf x;
    if (!rc) rc = ixbuf_new(kept, &x, err);
    if (rc) return rc;
    idt_mask_rows(mask, n, (int64_t *)x.p);
    return view_from_index(v, &x, kept, out, err);
}

/* Defined in shuffle.c: fill a[0..n) with a seeded uniform permutation of 0..n-1. */
int idt_permutation(int64_t *a, int64_t n, uint64_t seed, idt_error *err);

int idt_view_shuffle(idt_view *v, uint64_t seed, idt_view **out, idt_error *err) {
    int64_t n = idt_view_len(v);
    ixbuf x;
    int rc = ixbuf_new(n, &x, err);
    if (rc) return rc;
    rc = idt_permutation((int64_t *)x.p, n, seed, err);
    if (rc) {
        ixbuf_free(&x);
        return rc;
    }
    return view_from_index(v, &x, n, out, err);
}

static int same_names(const idt_schema *a, const idt_schema *b) {
    if (a == b) return 1;
    if (a->ncols != b->ncols) return 0;
    for (int64_t i = 0; i < a->ncols; i++)
        if (strcmp(a->cols[i].name, b->cols[i].name)) return 0;
    return 1;
}

int idt_view_concat(idt_view *const *views, int64_t n, idt_view **out, idt_error *err) {
    if (n < 1) return idt_error_set(err, IDT_EVALUE, "concat needs at least one view");
    const idt_view *f = views[0];
    int64_t nseg = 0, grouped = 0;
    int uniform = f->uniform;
    for (int64_t i = 0; i < n; i++) {
        const idt_view *w = views[i];
        if (w->ncols != f->ncols)
            return idt_error_set(err, IDT_EVALUE,
                                 "view %lld has %lld columns, view 0 has %lld", (long long)i,
                                 (long long)w->ncols, (long long)f->ncols);
        for (int64_t j = 0; j < f->ncols; j++) {
            const idt_column *a = idt_view_column(f, j);
            int64_t q = idt_view_find(w, a->name);
            const idt_column *b = q >= 0 ? idt_view_column(w, q) : NULL;
            if (!b)
                return idt_error_set(err, IDT_EVALUE, "view %lld has no column '%s'",
                                     (long long)i, a->name);
            if (!idt_column_same(a, b)) {
                char sa[256], sb[256];
                idt_column_describe(a, sa, sizeof sa);
                idt_column_describe(b, sb, sizeof sb);
                return idt_error_set(err, IDT_EVALUE, "column '%s' differs: view 0 has %s, view %lld has %s",
                                     a->name, sa, (long long)i, sb);
            }
        }
        if (!w->uniform || !same_names(w->schema, f->schema)) uniform = 0;
        nseg += w->nseg;
        grouped |= w->ngroups != 0;
    }
    if (grouped) return idt_group_concat(views, n, out, err);
    idt_view *o = alloc_view(f->schema, f->cols, f->ncols, uniform, nseg);
    if (!o) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t s = 0; s < views[i]->nseg; s++) set_seg(o, k++, &views[i]->segs[s]);
    finish_view(o, nseg);
    *out = o;
    return 0;
}

int64_t idt_view_find(const idt_view *v, const char *name) {
    int64_t ci = idt_schema_find(v->schema, name);
    for (int64_t j = 0; ci >= 0 && j < v->ncols; j++)
        if (v->cols[j] == ci) return j;
    return -1;
}

int idt_view_no_column(const idt_view *v, const char *name, idt_error *err) {
    char list[360];
    size_t k = 0;
    list[0] = 0;
    for (int64_t j = 0; j < v->ncols; j++) {
        const char *c = idt_view_column(v, j)->name;
        int w = snprintf(list + k, sizeof list - k, "%s'%s'", j ? ", " : "", c);
        if (w < 0 || (size_t)w >= sizeof list - k) {
            snprintf(list + (k < sizeof list - 8 ? k : sizeof list - 8), 8, ", ...");
            break;
        }
        k += (size_t)w;
    }
    return idt_error_set(err, IDT_EKEY, "no column named '%.80s'; the columns are %s", name, list);
}

int64_t idt_view_find_column(const idt_view *v, const char *name, idt_error *err) {
    int64_t j = idt_view_find(v, name);
    return j >= 0 ? j : idt_view_no_column(v, name, err);
}

int idt_view_select(idt_view *v, const char *const *names, int64_t n, idt_view **out,
                    idt_error *err) {
    if (n < 1) return idt_error_set(err, IDT_EVALUE, "select at least one column");
    int64_t *cols = idt_malloc((size_t)n * sizeof *cols);
    if (!cols) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        int64_t j = idt_view_find(v, names[i]), ci = j >= 0 ? v->cols[j] : -1;
        if (j < 0) rc = idt_view_no_column(v, names[i], err);
        for (int64_t q = 0; q < i && !rc; q++)
            if (cols[q] == ci) rc = idt_error_set(err, IDT_EVALUE, "column '%s' selected twice", names[i]);
        cols[i] = ci;
    }
    idt_view *o = NULL;
    if (!rc && v->ngroups) {
        rc = idt_group_select(v, cols, n, out, err);
        idt_free(cols);
        return rc;
    }
    if (!rc && !(o = alloc_view(v->schema, cols, n, v->uniform, v->nseg)))
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    idt_free(cols);
    if (rc) return rc;
    for (int64_t k = 0; k < v->nseg; k++) set_seg(o, k, &v->segs[k]);
    finish_view(o, v->nseg);
    *out = o;
    return 0;
}

/* ---- remove_matching_strings ---- */

typedef struct strset {
    const char *const *strs;
    const int64_t *lens;
    int64_t *slots;   /* open addressing: index into strs, -1 empty */
    int64_t cap;
} strset;

static uint64_t str_hash(const char *s, int64_t n) { return idt_hash64(s, (size_t)n, 7); }

static int strset_has(const strset *t, const char *s, int64_t n) {
    for (uint64_t h = str_hash(s, n) & (uint64_t)(t->cap - 1);; h = (h + 1) & (uint64_t)(t->cap - 1)) {
        int64_t i = t->slots[h];
        if (i < 0) return 0;
        if (t->lens[i] == n && !memcmp(t->strs[i], s, (size_t)n)) return 1;
    }
}

int idt_view_remove_strings(idt_view *v, const char *name, const char *const *strs,
                            const int64_t *lens, int64_t n, idt_view **out, idt_error *err) {
    int64_t j = idt_view_find(v, name);
    if (j < 0) return idt_view_no_column(v, name, err);
    int64_t ci = v->cols[j];
    const idt_column *col = &v->schema->cols[ci];
    int64_t gj;
    const idt_view *src = idt_view_group_of(v, j, &gj); /* the rows are walked in its segments */
    ci = src->cols[gj];
    if (!idt_column_is_str(col))
        return idt_error_set(err, IDT_ETYPE, "column '%s' holds %s, not strings", name, col->dtype);
    strset t = {strs, NULL, NULL, 16};
    while (t.cap < n * 2) t.cap *= 2;
    int64_t *tl = idt_malloc((size_t)(n ? n : 1) * sizeof *tl);
    t.slots = idt_malloc((size_t)t.cap * sizeof *t.slots);
    if (!tl || !t.slots) {
        idt_free(tl);
        idt_free(t.slots);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < t.cap; i++) t.slots[i] = -1;
    for (int64_t i = 0; i < n; i++) { /* trailing NULs are padding, as when stored */
        int64_t l = lens[i];
        if (l >= 0) l = idt_str_strip(strs[i], l);
        if (l < 0) {
            idt_free(tl);
            idt_free(t.slots);
            return idt_error_set(err, IDT_EVALUE, "string %lld has negative length", (long long)i);
        }
        tl[i] = l;
    }
    t.lens = tl;
    for (int64_t i = 0; i < n; i++) {
        if (strset_has(&t, strs[i], tl[i])) continue;
        uint64_t h = str_hash(strs[i], tl[i]) & (uint64_t)(t.cap - 1);
        while (t.slots[h] >= 0) h = (h + 1) & (uint64_t)(t.cap - 1);
        t.slots[h] = i;
    }
    int64_t len = idt_view_len(v);
    ixbuf x;
    int rc = ixbuf_new(len, &x, err);
    if (rc) {
        idt_free(tl);
        idt_free(t.slots);
        return rc;
    }
    int64_t *d = (int64_t *)x.p, kept = 0, k = 0, per = col->row_elems;
    int unif = src->uniform;
    for (int64_t i = 0; i < len; i++) {
        if (i >= src->cum[k + 1]) k = idt_view_find_seg(src, i);
        const idt_segment *s = &src->segs[k];
        int64_t pos = s->start + (i - src->cum[k]) * s->step;
        idt_store *st;
        int64_t row;
        idt_seg_resolve(s, pos, &st, &row);
        const idt_store_col *sc = &st->cols[unif ? ci : idt_schema_find(st->schema, name)];
        int hit = 0;
        for (int64_t e = 0; e < per && !hit; e++) {
            uint64_t a = sc->offsets[row * per + e], z = sc->offsets[row * per + e + 1];
            int64_t l = idt_str_strip(sc->data + a, (int64_t)(z - a)); /* object strings may keep them */
            hit = n > 0 && strset_has(&t, sc->data + a, l);
        }
        if (!hit) d[kept++] = i;
    }
    idt_free(tl);
    idt_free(t.slots);
    idt_blob_shrink(x.blob, (size_t)kept * 8);
    return view_from_index(v, &x, kept, out, err);
}

/* ---- assembling views from parts (loading) ---- */

int idt_refs_new(idt_blob *blob, int64_t n, idt_store *const *stores, int64_t nstores,
                 const uint8_t *uid, idt_refs **out, idt_error *err) {
    idt_refs *r = idt_calloc(1, sizeof *r);
    idt_store **t = idt_malloc((size_t)(nstores ? nstores : 1) * sizeof *t);
    if (!r || !t) {
        idt_free(r);
        idt_free(t);
        idt_blob_decref(blob);
        return idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < nstores; i++) {
        t[i] = stores[i];
        idt_store_incref(t[i]);
    }
    r->stores = t;
    r->nstores = nstores;
    r->blob = blob;
    r->ref = (const uint64_t *)blob->data;
    r->n = n;
    memcpy(r->uid, uid, sizeof r->uid);
    atomic_store(&r->refs, 1);
    *out = r;
    return 0;
}

/* Check that `st` holds every shown column of the view as the schema describes it. */
static int store_fits(const idt_schema *schema, const int64_t *cols, int64_t ncols,
                      const idt_store *st, idt_error *err) {
    if (st->nrows >= IDT_MAX_STORE_ROWS) /* rows past 2^40 cannot be refs (see idt_view_from_store) */
        return idt_error_set(err, IDT_ECORRUPT, "a store holds %lld rows (at most 2^40)",
                             (long long)st->nrows);
    for (int64_t j = 0; j < ncols; j++) {
        const idt_column *c = &schema->cols[cols[j]];
        int64_t k = idt_schema_find(st->schema, c->name);
        if (k < 0 || !idt_column_same(c, &st->schema->cols[k]) ||
            (!idt_column_is_var(c) && c->row_bytes != st->schema->cols[k].row_bytes))
            return idt_error_set(err, IDT_ECORRUPT, "a store does not hold column '%s' as the view describes it",
                                 c->name);
    }
    return 0;
}

int idt_view_assemble(idt_schema *schema, const int64_t *cols, int64_t ncols,
                      const idt_segment *segs, int64_t nseg, idt_view **out, idt_error *err) {
    if (ncols < 1) return idt_error_set(err, IDT_ECORRUPT, "a view needs at least one column");
    for (int64_t j = 0; j < ncols; j++)
        if (cols[j] < 0 || cols[j] >= schema->ncols)
            return idt_error_set(err, IDT_ECORRUPT, "column index %lld out of range for %lld columns",
                                 (long long)cols[j], (long long)schema->ncols);
    int uniform = 1;
    int64_t total = 0;
    for (int64_t k = 0; k < nseg; k++) {
        const idt_segment *s = &segs[k];
        int64_t bound;
        if (s->kind == IDT_SEG_RUN) {
            bound = s->store->nrows;
            int rc = store_fits(schema, cols, ncols, s->store, err);
            if (rc) return rc;
            if (!same_names(schema, s->store->schema)) uniform = 0;
        } else if (s->kind == IDT_SEG_REFS) {
            bound = s->refs->n;
            for (int64_t i = 0; i < s->refs->nstores; i++) {
                int rc = store_fits(schema, cols, ncols, s->refs->stores[i], err);
                if (rc) return rc;
                if (!same_names(schema, s->refs->stores[i]->schema)) uniform = 0;
            }
        } else {
            return idt_error_set(err, IDT_ECORRUPT, "segment %lld has unknown kind", (long long)k);
        }
        int ok = s->len >= 1 && s->start >= 0 && s->start < bound;
        if (ok && s->len > 1) {
            ok = s->step != 0 && s->step != INT64_MIN;
            if (ok) {
                int64_t room = s->step > 0 ? (bound - 1 - s->start) / s->step : s->start / -s->step;
                ok = room >= s->len - 1;
            }
        }
        if (ok) {
            total += s->len;
            ok = total <= ((int64_t)1 << 62);
        }
        if (!ok)
            return idt_error_set(err, IDT_ECORRUPT,
                                 "segment %lld is out of bounds: start %lld, step %lld, length %lld over "
                                 "%lld rows (a view holds at most 2^62)", (long long)k, (long long)s->start,
                                 (long long)s->step, (long long)s->len, (long long)bound);
    }
    idt_view *v = alloc_view(schema, cols, ncols, uniform, nseg);
    if (!v) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t k = 0; k < nseg; k++) set_seg(v, k, &segs[k]);
    finish_view(v, nseg);
    *out = v;
    return 0;
}

/* ---- adopting loaded files ---- */

/* Adopt b when it is a loaded file in this process's temp directory; anything else stays. */
static int adopt_one(idt_blob *b, idt_error *err) {
    if (b->kind != IDT_BLOB_LOADED || b->offset != 0) return 0;
    int rc = idt_blob_adopt(b, err);
    return rc == IDT_EVALUE ? 0 : rc; /* saved elsewhere: not ours to take */
}

int idt_view_adopt_files(idt_view *v, idt_error *err) {
    int rc = 0;
    for (int64_t g = 0; g < v->ngroups && !rc; g++) rc = idt_view_adopt_files(v->groups[g], err);
    for (int64_t k = 0; k < v->nseg && !rc; k++) {
        const idt_segment *s = &v->segs[k];
        if (s->kind == IDT_SEG_RUN) {
            rc = adopt_one(s->store->blob, err);
        } else {
            rc = adopt_one(s->refs->blob, err);
            for (int64_t i = 0; i < s->refs->nstores && !rc; i++) rc = adopt_one(s->refs->stores[i]->blob, err);
        }
    }
    return rc;
}

/* ---- parts for group.c ---- */

idt_view *idt_view_parts_alloc(idt_schema *schema, const int64_t *cols, int64_t ncols, int uniform,
                               int64_t nseg) {
    return alloc_view(schema, cols, ncols, uniform, nseg);
}

void idt_view_parts_set_seg(idt_view *v, int64_t k, const idt_segment *s) { set_seg(v, k, s); }

void idt_view_parts_finish(idt_view *v, int64_t nseg) { finish_view(v, nseg); }

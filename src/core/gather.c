/* gather.c: reading selected rows of a view into caller buffers: the hot path.
 *
 * Ranges over RUN segments copy with one memcpy per column (step 1) or a strided loop.
 * Everything else is resolved in chunks of CHUNK rows to (store, row) pairs and gathered
 * column by column with software prefetch, so the resolve cost is paid once per row. */
#include <string.h>

#include "group.h"
#include "sys.h"
#include "utf8.h"
#include "view.h"

enum { CHUNK = 1024, PREFETCH = 8 };


/* Copy one row of rb bytes. Small power-of-two sizes compile to single moves. */
static inline void copy_row(char *dst, const char *src, int64_t rb) {
    switch (rb) {
    case 1: memcpy(dst, src, 1); break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, (size_t)rb);
    }
}

/* Resolved rows of one chunk. */
typedef struct resolved {
    const idt_store *st[CHUNK];
    int64_t row[CHUNK];
    int64_t n;
    int single;        /* every row is in st[0] */
} resolved;

int idt_view_resolve(const idt_view *v, const idt_rowsel *sel, int64_t i0, int64_t n,
                     const idt_store **st, int64_t *row, int64_t *segcur) {
    int64_t k = *segcur;
    int single = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t x = sel->idx ? sel->idx[i0 + i] : sel->start + (i0 + i) * sel->step;
        if (x < v->cum[k] || x >= v->cum[k + 1]) k = idt_view_find_seg(v, x);
        const idt_segment *s = &v->segs[k];
        int64_t pos = s->start + (x - v->cum[k]) * s->step;
        if (s->kind == IDT_SEG_RUN) {
            st[i] = s->store;
            row[i] = pos;
        } else {
            uint64_t ref = s->refs->ref[pos];
            st[i] = s->refs->stores[ref >> IDT_REF_ROW_BITS];
            row[i] = (int64_t)(ref & IDT_REF_ROW_MASK);
        }
        single &= st[i] == st[0];
    }
    *segcur = k;
    return single;
}

/* Resolve selected rows [i0, i0+n) of sel (n <= CHUNK). */
static void resolve(const idt_view *v, const idt_rowsel *sel, int64_t i0, int64_t n,
                    resolved *r, int64_t *segcur) {
    r->single = idt_view_resolve(v, sel, i0, n, r->st, r->row, segcur);
    r->n = n;
}

static int64_t str_chars(const idt_store_col *sc, const idt_column *c, int64_t s) {
    uint64_t a = sc->offsets[s], z = sc->offsets[s + 1];
    if (c->kind == IDT_COL_BYTES || sc->ascii) return (int64_t)(z - a);
    return idt_utf8_count(sc->data + a, (size_t)(z - a));
}

/* Longest string of view column j over the resolved rows, folded into *w. */
static void widths_chunk(const idt_view *v, const resolved *r, int64_t j, int64_t *w) {
    const idt_column *c = idt_view_column(v, j);
    int64_t per = c->row_elems, best = *w;
    for (int64_t i = 0; i < r->n; i++) {
        const idt_store_col *sc = &r->st[i]->cols[idt_view_store_col(v, r->st[i], j)];
        for (int64_t e = 0; e < per; e++) {
            int64_t l = str_chars(sc, c, r->row[i] * per + e);
            if (l > best) best = l;
        }
    }
    *w = best;
}

int idt_view_str_widths(const idt_view *v, const idt_rowsel *sel, int64_t *widths, idt_error *err) {
    if (v->ngroups) return idt_group_str_widths(v, sel, widths, err);
    int any = 0;
    for (int64_t j = 0; j < v->ncols; j++) {
        widths[j] = idt_column_is_str(idt_view_column(v, j)) ? 1 : 0;
        any |= widths[j];
    }
    if (!any || sel->count == 0) return 0;
    resolved r;
    int64_t k = 0;
    for (int64_t i0 = 0; i0 < sel->count; i0 += CHUNK) {
        int64_t n = sel->count - i0 < CHUNK ? sel->count - i0 : CHUNK;
        resolve(v, sel, i0, n, &r, &k);
        for (int64_t j = 0; j < v->ncols; j++)
            if (widths[j]) widths_chunk(v, &r, j, &widths[j]);
    }
    return 0;
}

/* Write string s of sc into dst (w code points or bytes, zero padded). */
static inline void put_str(const idt_store_col *sc, const idt_column *c, int64_t s, char *dst,
                           int64_t w) {
    uint64_t a = sc->offsets[s], z = sc->offsets[s + 1];
    size_t len = (size_t)(z - a);
    if (c->kind == IDT_COL_BYTES) {
        size_t m = len < (size_t)w ? len : (size_t)w;
        memcpy(dst, sc->data + a, m);
        memset(dst + m, 0, (size_t)w - m);
    } else if (sc->ascii) {
        uint32_t *o = (uint32_t *)dst;
        const unsigned char *p = (const unsigned char *)sc->data + a;
        size_t m = len < (size_t)w ? len : (size_t)w;
        for (size_t i = 0; i < m; i++) o[i] = p[i];
        memset(o + m, 0, ((size_t)w - m) * 4);
    } else {
        idt_utf8_decode(sc->data + a, len, (uint32_t *)dst, w);
    }
}

/* Gather resolved rows into output rows [o0, o0+n). */
static void gather_chunk(const idt_view *v, const resolved *r, int64_t o0, void *const *outs,
                         const int64_t *widths) {
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (idt_column_is_list(c)) continue; /* idt_view_gather_packed / _padded */
        int64_t w = widths[j], orb = idt_column_out_row_bytes(c, w);
        char *out = (char *)outs[j] + o0 * orb;
        if (!idt_column_is_str(c)) {
            int64_t rb = c->row_bytes;
            if (r->single) {
                const char *base = r->st[0]->cols[idt_view_store_col(v, r->st[0], j)].data;
                for (int64_t i = 0; i < r->n; i++) {
                    if (i + PREFETCH < r->n) __builtin_prefetch(base + r->row[i + PREFETCH] * rb);
                    copy_row(out + i * rb, base + r->row[i] * rb, rb);
                }
            } else if (v->uniform) {
                int64_t ci = v->cols[j];
                for (int64_t i = 0; i < r->n; i++) {
                    if (i + PREFETCH < r->n)
                        __builtin_prefetch(r->st[i + PREFETCH]->cols[ci].data + r->row[i + PREFETCH] * rb);
                    copy_row(out + i * rb, r->st[i]->cols[ci].data + r->row[i] * rb, rb);
                }
            } else {
                for (int64_t i = 0; i < r->n; i++)
                    copy_row(out + i * rb, r->st[i]->cols[idt_view_store_col(v, r->st[i], j)].data + r->row[i] * rb, rb);
            }
        } else {
            int64_t per = c->row_elems, esz = orb / (per ? per : 1);
            for (int64_t i = 0; i < r->n; i++) {
                const idt_store_col *sc = &r->st[i]->cols[idt_view_store_col(v, r->st[i], j)];
                for (int64_t e = 0; e < per; e++)
                    put_str(sc, c, r->row[i] * per + e, out + i * orb + e * esz, w);
            }
        }
    }
}

/* Copy n rows of RUN segment s starting at segment position pos with stride step (in
 * store rows) into output rows [o0, o0+n). */
static void gather_run(const idt_view *v, const idt_segment *s, int64_t pos, int64_t step,
                       int64_t n, int64_t o0, void *const *outs, const int64_t *widths) {
    const idt_store *st = s->store;
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (idt_column_is_list(c)) continue; /* idt_view_gather_packed / _padded */
        const idt_store_col *sc = &st->cols[idt_view_store_col(v, st, j)];
        int64_t w = widths[j], orb = idt_column_out_row_bytes(c, w);
        char *out = (char *)outs[j] + o0 * orb;
        if (!idt_column_is_str(c)) {
            int64_t rb = c->row_bytes;
            if (step == 1) {
                memcpy(out, sc->data + pos * rb, (size_t)(n * rb));
            } else {
                const char *src = sc->data + pos * rb;
                for (int64_t i = 0; i < n; i++) copy_row(out + i * rb, src + i * step * rb, rb);
            }
        } else {
            int64_t per = c->row_elems, esz = orb / (per ? per : 1);
            for (int64_t i = 0; i < n; i++)
                for (int64_t e = 0; e < per; e++)
                    put_str(sc, c, (pos + i * step) * per + e, out + i * orb + e * esz, w);
        }
    }
}

/* A range selection at view row x, `left` rows to go: moves *k to the segment holding x and
 * returns how many of the remaining rows (stride `step`) fall in it. */
static inline int64_t range_take(const idt_view *v, int64_t x, int64_t step, int64_t left,
                                 int64_t *k) {
    if (x < v->cum[*k] || x >= v->cum[*k + 1]) *k = idt_view_find_seg(v, x);
    int64_t take = step > 0 ? (v->cum[*k + 1] - 1 - x) / step + 1 : (x - v->cum[*k]) / -step + 1;
    return take < left ? take : left;
}

/* Store stride of `take` rows of RUN segment s read at view stride `step`. One row: any
 * stride will do (a loaded one-row segment's step may be anything). */
static inline int64_t run_stride(const idt_segment *s, int64_t step, int64_t take) {
    return take > 1 ? s->step * step : 1;
}

/* The one walk over a selection: `run` gets the pieces of a range selection that lie in a
 * RUN segment (store rows pos, pos + stride, ... n of them, for output rows o0...); `rows`
 * gets everything else (REFS pieces and index lists) resolved in chunks of at most CHUNK
 * rows, for output rows o0... With `run` NULL, RUN pieces are resolved too. */
typedef void (*walk_run_fn)(void *ctx, const idt_segment *s, int64_t pos, int64_t stride, int64_t n,
                            int64_t o0);
typedef void (*walk_rows_fn)(void *ctx, const resolved *r, int64_t o0);

static void walk(const idt_view *v, const idt_rowsel *sel, resolved *r, walk_run_fn run,
                 walk_rows_fn rows, void *ctx) {
    int64_t k = 0;
    if (sel->count == 0) return;
    if (!sel->idx) {
        for (int64_t j = 0, x = sel->start; j < sel->count;) {
            int64_t step = sel->step, take = range_take(v, x, step, sel->count - j, &k);
            const idt_segment *s = &v->segs[k];
            if (run && s->kind == IDT_SEG_RUN) {
                run(ctx, s, s->start + (x - v->cum[k]) * s->step, run_stride(s, step, take), take, j);
            } else {
                for (int64_t d = 0; d < take; d += CHUNK) {
                    int64_t n = take - d < CHUNK ? take - d : CHUNK;
                    idt_rowsel sub = {x + d * step, step, n, NULL};
                    int64_t kk = k;
                    resolve(v, &sub, 0, n, r, &kk);
                    rows(ctx, r, j + d);
                }
            }
            j += take;
            if (j < sel->count) x += take * step; /* past the end it could overflow */
        }
        return;
    }
    for (int64_t i0 = 0; i0 < sel->count; i0 += CHUNK) {
        int64_t n = sel->count - i0 < CHUNK ? sel->count - i0 : CHUNK;
        resolve(v, sel, i0, n, r, &k);
        rows(ctx, r, i0);
    }
}

typedef struct gather_ctx {
    const idt_view *v;
    void *const *outs;
    const int64_t *widths;
} gather_ctx;

static void gather_run_cb(void *ctx, const idt_segment *s, int64_t pos, int64_t stride, int64_t n,
                          int64_t o0) {
    const gather_ctx *g = ctx;
    gather_run(g->v, s, pos, stride, n, o0, g->outs, g->widths);
}

static void gather_rows_cb(void *ctx, const resolved *r, int64_t o0) {
    const gather_ctx *g = ctx;
    gather_chunk(g->v, r, o0, g->outs, g->widths);
}

void idt_view_gather(const idt_view *v, const idt_rowsel *sel, void *const *outs,
                     const int64_t *widths) {
    if (v->ngroups) {
        if (sel->count > 0) idt_group_gather(v, sel, outs, widths);
        return;
    }
    static _Thread_local resolved r; /* 16 KiB per thread, reused */
    gather_ctx g = {v, outs, widths};
    walk(v, sel, &r, gather_run_cb, gather_rows_cb, &g);
}

/* ---- packed (Arrow layout) string output ---- */

/* Append the strings of store rows row0, row0+step, ... (n rows) of sc to the packed
 * output at *o (offsets index) / *pos (data bytes). step 1 copies the data in one memcpy. */
static void pack_run(const idt_store_col *sc, int64_t per, int64_t unit, int64_t row0, int64_t step,
                     int64_t n, int64_t *offsets, char *data, int64_t *o, int64_t *pos) {
    if (step == 1 && n > 0) {
        uint64_t a = sc->offsets[row0 * per], z = sc->offsets[(row0 + n) * per];
        if (data) memcpy(data + *pos * unit, sc->data + a * unit, (size_t)(z - a) * (size_t)unit);
        if (offsets)
            for (int64_t s = 1; s <= n * per; s++)
                offsets[*o + s] = *pos + (int64_t)(sc->offsets[row0 * per + s] - a);
        *o += n * per;
        *pos += (int64_t)(z - a);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t e = 0; e < per; e++) {
            int64_t s = (row0 + i * step) * per + e;
            uint64_t a = sc->offsets[s], z = sc->offsets[s + 1];
            if (data) memcpy(data + *pos * unit, sc->data + a * unit, (size_t)(z - a) * (size_t)unit);
            *pos += (int64_t)(z - a);
            if (offsets) offsets[*o + 1] = *pos;
            *o += 1;
        }
}

typedef struct pack_ctx {
    const idt_view *v;
    int64_t j, per, unit;
    int64_t *offsets;
    char *data;
    int64_t o, pos;
} pack_ctx;

static void pack_run_cb(void *ctx, const idt_segment *s, int64_t pos, int64_t stride, int64_t n,
                        int64_t o0) {
    pack_ctx *p = ctx;
    (void)o0;
    const idt_store_col *sc = &s->store->cols[idt_view_store_col(p->v, s->store, p->j)];
    pack_run(sc, p->per, p->unit, pos, stride, n, p->offsets, p->data, &p->o, &p->pos);
}

static void pack_rows_cb(void *ctx, const resolved *r, int64_t o0) {
    pack_ctx *p = ctx;
    (void)o0;
    if (p->per == 1 && (r->single || p->v->uniform)) { /* one element per row (lists): tight */
        int64_t ci = idt_view_store_col(p->v, r->st[0], p->j), unit = p->unit, pos = p->pos, o = p->o;
        for (int64_t q = 0; q < r->n; q++) {
            const idt_store_col *sc = &r->st[q]->cols[ci];
            const uint64_t *off = sc->offsets + r->row[q];
            uint64_t a = off[0], z = off[1];
            if (p->data) {
                if (q + PREFETCH < r->n) {
                    const idt_store_col *nc = &r->st[q + PREFETCH]->cols[ci];
                    __builtin_prefetch(nc->offsets + r->row[q + PREFETCH]);
                }
                memcpy(p->data + pos * unit, sc->data + a * unit, (size_t)(z - a) * (size_t)unit);
            }
            pos += (int64_t)(z - a);
            if (p->offsets) p->offsets[++o] = pos;
            else o++;
        }
        p->pos = pos;
        p->o = o;
        return;
    }
    for (int64_t q = 0; q < r->n; q++)
        pack_run(&r->st[q]->cols[idt_view_store_col(p->v, r->st[q], p->j)], p->per, p->unit, r->row[q], 1,
                 1, p->offsets, p->data, &p->o, &p->pos);
}

/* The walk behind idt_view_str_bytes (offsets and data NULL) and idt_view_gather_packed. */
static int64_t pack_walk(const idt_view *v, const idt_rowsel *sel, int64_t j, int64_t *offsets,
                         char *data) {
    static _Thread_local resolved r;
    const idt_column *c = idt_view_column(v, j);
    pack_ctx p = {v, j, idt_column_var_per_row(c), idt_column_unit(c), offsets, data, 0, 0};
    if (offsets) offsets[0] = 0;
    walk(v, sel, &r, pack_run_cb, pack_rows_cb, &p);
    return p.pos;
}

int64_t idt_view_str_bytes(const idt_view *v, const idt_rowsel *sel, int64_t j) {
    v = idt_view_group_of(v, j, &j);
    return pack_walk(v, sel, j, NULL, NULL);
}

void idt_view_gather_packed(const idt_view *v, const idt_rowsel *sel, int64_t j, int64_t *offsets,
                            char *data) {
    v = idt_view_group_of(v, j, &j);
    pack_walk(v, sel, j, offsets, data);
}

/* ---- padded list output ---- */

/* Fill n values of `unit` bytes at dst with the pad value. */
static void fill_pad(char *dst, int64_t n, const unsigned char *pad, int64_t unit, int zero) {
    if (n <= 0) return;
    if (zero) {
        memset(dst, 0, (size_t)(n * unit));
        return;
    }
    switch (unit) {
    case 1: memset(dst, pad[0], (size_t)n); break;
    case 2: for (int64_t i = 0; i < n; i++) memcpy(dst + 2 * i, pad, 2); break;
    case 4: for (int64_t i = 0; i < n; i++) memcpy(dst + 4 * i, pad, 4); break;
    case 8: for (int64_t i = 0; i < n; i++) memcpy(dst + 8 * i, pad, 8); break;
    default: for (int64_t i = 0; i < n; i++) memcpy(dst + unit * i, pad, (size_t)unit);
    }
}

typedef struct pad_ctx {
    const idt_view *v;
    int64_t j, unit, length;
    const unsigned char *pad;
    int zero;
    char *out;
    int64_t *lengths;
} pad_ctx;

/* One row: values [a, z) of sc into output row o. */
static inline void pad_row(const pad_ctx *p, const idt_store_col *sc, uint64_t a, uint64_t z, int64_t o) {
    int64_t len = (int64_t)(z - a), m = len < p->length ? len : p->length, rb = p->length * p->unit;
    char *dst = p->out + o * rb;
    memcpy(dst, sc->data + a * p->unit, (size_t)(m * p->unit));
    fill_pad(dst + m * p->unit, p->length - m, p->pad, p->unit, p->zero);
    if (p->lengths) p->lengths[o] = m;
}

static void pad_run_cb(void *ctx, const idt_segment *s, int64_t pos, int64_t stride, int64_t n,
                       int64_t o0) {
    const pad_ctx *p = ctx;
    const idt_store_col *sc = &s->store->cols[idt_view_store_col(p->v, s->store, p->j)];
    for (int64_t i = 0; i < n; i++) {
        int64_t row = pos + i * stride;
        pad_row(p, sc, sc->offsets[row], sc->offsets[row + 1], o0 + i);
    }
}

static void pad_rows_cb(void *ctx, const resolved *r, int64_t o0) {
    const pad_ctx *p = ctx;
    for (int64_t q = 0; q < r->n; q++) {
        const idt_store_col *sc = &r->st[q]->cols[idt_view_store_col(p->v, r->st[q], p->j)];
        if (q + PREFETCH < r->n) {
            const idt_store_col *nc = &r->st[q + PREFETCH]->cols[idt_view_store_col(p->v, r->st[q + PREFETCH], p->j)];
            __builtin_prefetch(nc->offsets + r->row[q + PREFETCH]);
        }
        pad_row(p, sc, sc->offsets[r->row[q]], sc->offsets[r->row[q] + 1], o0 + q);
    }
}

void idt_view_gather_padded(const idt_view *v, const idt_rowsel *sel, int64_t j, int64_t length,
                            const void *pad, void *out, int64_t *lengths) {
    static _Thread_local resolved r;
    v = idt_view_group_of(v, j, &j);
    const idt_column *c = idt_view_column(v, j);
    pad_ctx p = {v, j, idt_column_unit(c), length < 0 ? 0 : length, pad, 1, out, lengths};
    for (int64_t b = 0; b < p.unit; b++) p.zero &= ((const unsigned char *)pad)[b] == 0;
    walk(v, sel, &r, pad_run_cb, pad_rows_cb, &p);
}

typedef struct spans_ctx {
    const idt_view *v;
    int64_t j, per, unit;
    const char **ptrs;
    uint64_t *lens;
    int ascii;
} spans_ctx;

static void spans_rows_cb(void *ctx, const resolved *r, int64_t o0) {
    spans_ctx *p = ctx;
    int64_t o = o0 * p->per;
    for (int64_t i = 0; i < r->n; i++) {
        const idt_store_col *sc = &r->st[i]->cols[idt_view_store_col(p->v, r->st[i], p->j)];
        p->ascii &= sc->ascii;
        for (int64_t e = 0; e < p->per; e++, o++) {
            int64_t s = r->row[i] * p->per + e;
            p->ptrs[o] = sc->data + sc->offsets[s] * p->unit;
            p->lens[o] = sc->offsets[s + 1] - sc->offsets[s];
        }
    }
}

int idt_view_str_spans(const idt_view *v, int64_t j, int64_t start, int64_t count,
                       const char **ptrs, uint64_t *lens) {
    v = idt_view_group_of(v, j, &j);
    const idt_column *c = idt_view_column(v, j);
    spans_ctx p = {v, j, idt_column_var_per_row(c), idt_column_unit(c), ptrs, lens, 1};
    idt_rowsel sel = {start, 1, count, NULL};
    resolved *r = idt_malloc(sizeof *r);
    if (!r) return -1;
    walk(v, &sel, r, NULL, spans_rows_cb, &p);
    idt_free(r);
    return p.ascii;
}

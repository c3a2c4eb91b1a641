/* pack.c: sequence packing (see pack.h): documents' tokens cut into rows of seq_len, with
 * position ids and cu_seqlens, from arrays or straight from a view's list column.
 *
 * One loop (pack_rows) does the cutting for both sources; a source only says where a
 * document's tokens start. Nothing here allocates, so nothing here can leak. */
#include <string.h>

#include "pack.h"

/* Where document d's tokens start: from values + offsets, or from the view's stores. */
typedef struct pack_src {
    const char *values;     /* arrays: the values buffer */
    const int64_t *offsets; /* arrays: offsets (cum-like, n + 1); view: cum */
    int64_t n;
    int64_t itemsize;
    const idt_view *v;      /* view: the view and its column */
    int64_t j;
} pack_src;

/* Where document d's tokens start, or NULL when the view's stored length of row d is not
 * `len` (a cum array that does not belong to the view: refused, never read past a row). */
static const char *src_doc(const pack_src *s, int64_t d, int64_t len) {
    if (!s->v) return s->values + (size_t)s->offsets[d] * (size_t)s->itemsize;
    idt_store *st;
    int64_t row;
    idt_view_locate(s->v, d, &st, &row);
    const idt_store_col *sc = &st->cols[idt_view_store_col(s->v, st, s->j)];
    if ((int64_t)(sc->offsets[row + 1] - sc->offsets[row]) != len) return NULL;
    return sc->data + (size_t)sc->offsets[row] * (size_t)s->itemsize;
}

/* Fill `pad` (itemsize bytes) into n elements at dst. */
static void fill_pad(char *dst, const void *pad, int64_t itemsize, int64_t n) {
    if (n <= 0) return;
    memcpy(dst, pad, (size_t)itemsize);
    /* doubling copies: log2(n) memcpy calls */
    for (int64_t have = 1; have < n;) {
        int64_t k = have < n - have ? have : n - have;
        memcpy(dst + have * itemsize, dst, (size_t)(k * itemsize));
        have += k;
    }
}

static int check_shape(int64_t rows, int64_t seq_len, int64_t itemsize, idt_error *err) {
    if (rows < 0) return idt_error_set(err, IDT_EVALUE, "rows must be >= 0, got %lld", (long long)rows);
    if (seq_len < 1)
        return idt_error_set(err, IDT_EVALUE, "seq_len must be >= 1, got %lld", (long long)seq_len);
    if (itemsize < 1)
        return idt_error_set(err, IDT_EVALUE, "itemsize must be >= 1, got %lld", (long long)itemsize);
    int64_t total;
    if (__builtin_mul_overflow(rows, seq_len, &total) || total > INT32_MAX)
        return idt_error_set(err, IDT_EVALUE,
                             "a batch of %lld rows x seq_len %lld holds more tokens than int32 "
                             "cu_seqlens can count (%d)",
                             (long long)rows, (long long)seq_len, INT32_MAX);
    return 0;
}

/* The loop behind both fills: cut rows from *cur (checked by the caller), write out. */
static int pack_rows(const pack_src *s, idt_pack_cursor *cur, int64_t rows, int64_t seq_len,
                     const void *pad, idt_pack_out *out, idt_error *err) {
    int64_t d = cur->doc, off = cur->off, ncu = 0, taken = 0;
    int64_t isz = s->itemsize;
    char *tok = out->tokens;
    if (out->cu_cap < 1)
        return idt_error_set(err, IDT_EVALUE, "cu_seqlens has room for %lld entries, needs at least 1",
                             (long long)out->cu_cap);
    out->cu_seqlens[ncu++] = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = r * seq_len, filled = 0;
        while (filled < seq_len) {
            int64_t take;
            if (d >= s->n) { /* past the last document: the rest of the row is padding */
                take = seq_len - filled;
                fill_pad(tok + (base + filled) * isz, pad, isz, take);
            } else {
                int64_t len = s->offsets[d + 1] - s->offsets[d], rem = len - off;
                if (rem <= 0) { /* an empty document (or one used up): no segment */
                    d++;
                    off = 0;
                    continue;
                }
                take = rem < seq_len - filled ? rem : seq_len - filled;
                const char *p = src_doc(s, d, len);
                if (!p)
                    return idt_error_set(err, IDT_EVALUE,
                                         "cumulative lengths do not match the view: document %lld "
                                         "has not %lld tokens (use idt_pack_cumlen's)",
                                         (long long)d, (long long)len);
                memcpy(tok + (base + filled) * isz, p + off * isz, (size_t)(take * isz));
                taken += take;
                if (take == rem) { /* document finished */
                    d++;
                    off = 0;
                } else {
                    off += take;
                }
            }
            int64_t *pos = out->position_ids + base + filled;
            for (int64_t i = 0; i < take; i++) pos[i] = i;
            filled += take;
            if (ncu >= out->cu_cap)
                return idt_error_set(err, IDT_EVALUE,
                                     "cu_seqlens has room for %lld entries, the batch has more segments",
                                     (long long)out->cu_cap);
            out->cu_seqlens[ncu++] = (int32_t)(base + filled);
        }
    }
    /* skip empty documents after the last token taken, so the cursor never rests on one */
    while (d < s->n && s->offsets[d + 1] - s->offsets[d] == 0) d++;
    cur->doc = d;
    cur->off = off;
    out->ncu = ncu;
    out->ntokens = taken;
    return 0;
}

int idt_pack_fill(const void *values, int64_t itemsize, const int64_t *offsets, int64_t n,
                  idt_pack_cursor *cur, int64_t rows, int64_t seq_len, const void *pad,
                  idt_pack_out *out, idt_error *err) {
    int rc = check_shape(rows, seq_len, itemsize, err);
    if (rc) return rc;
    if (n < 0) return idt_error_set(err, IDT_EVALUE, "document count must be >= 0, got %lld", (long long)n);
    if (cur->doc < 0 || cur->doc > n || cur->off < 0 ||
        (cur->off > 0 && (cur->doc == n || cur->off >= offsets[cur->doc + 1] - offsets[cur->doc])))
        return idt_error_set(err, IDT_EVALUE, "cursor (document %lld, offset %lld) is outside the %lld documents",
                             (long long)cur->doc, (long long)cur->off, (long long)n);
    pack_src s = {values, offsets, n, itemsize, NULL, 0};
    return pack_rows(&s, cur, rows, seq_len, pad, out, err);
}

idt_pack_cursor idt_pack_seek(const int64_t *cum, int64_t n, int64_t token) {
    idt_pack_cursor c = {n, 0};
    if (token < 0) token = 0;
    if (n <= 0 || token >= cum[n]) return c;
    /* the last d with cum[d] <= token: then token < cum[d + 1], so document d is not empty */
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (cum[mid] <= token) lo = mid;
        else hi = mid - 1;
    }
    c.doc = lo;
    c.off = token - cum[lo];
    return c;
}

/* Token index of packed row `row` (saturating). */
static int64_t row_token(int64_t row, int64_t seq_len) {
    int64_t t;
    return __builtin_mul_overflow(row, seq_len, &t) ? INT64_MAX : t;
}

int64_t idt_pack_cu_bound(const int64_t *cum, int64_t n, int64_t row0, int64_t rows,
                          int64_t seq_len) {
    if (rows <= 0 || seq_len < 1) return 1;
    idt_pack_cursor a = idt_pack_seek(cum, n, row_token(row0, seq_len));
    idt_pack_cursor z = idt_pack_seek(cum, n, row_token(row0 + rows, seq_len));
    int64_t docs = z.doc - a.doc + 1, most;
    int64_t bound = docs + rows + 1;
    if (!__builtin_mul_overflow(rows, seq_len, &most) && most + 1 < bound) bound = most + 1;
    return bound;
}

/* The token itemsize of column c for packing, or 0 when it cannot be packed: the unit of a
 * variable-length column with one element per row (a list column's value size; 1 for a
 * string column without a row shape). */
static int64_t pack_itemsize(const idt_column *c) {
    if (!idt_column_is_var(c) || idt_column_var_per_row(c) != 1) return 0;
    return idt_column_unit(c);
}

/* Check shown column j of *v and make (*v, *j) the plain view of its group and its column
 * there (grouped views: each group is read on its own). */
static int check_col(const idt_view **v, int64_t *j, idt_error *err) {
    if (*j < 0 || *j >= (*v)->ncols)
        return idt_error_set(err, IDT_EINDEX, "column %lld out of range for %lld columns", (long long)*j,
                             (long long)(*v)->ncols);
    *v = idt_view_group_of(*v, *j, j);
    const idt_column *c = idt_view_column(*v, *j);
    if (!pack_itemsize(c)) {
        char what[96];
        idt_column_describe(c, what, sizeof what);
        return idt_error_set(err, IDT_ETYPE, "column '%s' is not a list column (%s): only list "
                             "columns can be packed", c->name, what);
    }
    return 0;
}

int idt_pack_cumlen(const idt_view *v, int64_t j, int64_t *cum, idt_error *err) {
    int rc = check_col(&v, &j, err);
    if (rc) return rc;
    v = idt_view_group_of(v, j, &j); /* a zipped view: the group holding the column */
    int64_t i = 0, total = 0;
    const idt_store *last = NULL;
    const uint64_t *offs = NULL;
    cum[0] = 0;
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        for (int64_t q = 0; q < s->len; q++, i++) {
            idt_store *st;
            int64_t row;
            idt_seg_resolve(s, s->start + q * s->step, &st, &row);
            if (st != last) {
                offs = st->cols[idt_view_store_col(v, st, j)].offsets;
                last = st;
            }
            total += (int64_t)(offs[row + 1] - offs[row]);
            cum[i + 1] = total;
        }
    }
    return 0;
}

int idt_pack_view(const idt_view *v, int64_t j, const int64_t *cum, int64_t row0, int64_t rows,
                  int64_t seq_len, const void *pad, int64_t pad_size, idt_pack_out *out,
                  idt_error *err) {
    int rc = check_col(&v, &j, err);
    if (rc) return rc;
    int64_t isz = pack_itemsize(idt_view_column(v, j));
    if ((rc = check_shape(rows, seq_len, isz, err))) return rc;
    if (pad_size != isz)
        return idt_error_set(err, IDT_EVALUE, "pad value has %lld bytes, the column's values %lld",
                             (long long)pad_size, (long long)isz);
    if (row0 < 0) return idt_error_set(err, IDT_EVALUE, "row0 must be >= 0, got %lld", (long long)row0);
    v = idt_view_group_of(v, j, &j); /* a zipped view: the group holding the column */
    int64_t n = idt_view_len(v);
    idt_pack_cursor cur = idt_pack_seek(cum, n, row_token(row0, seq_len));
    pack_src s = {NULL, cum, n, isz, v, j};
    return pack_rows(&s, &cur, rows, seq_len, pad, out, err);
}

int64_t idt_pack_blocks_cu_bound(const int64_t *cum, int64_t n, const int64_t *blocks,
                                 int64_t nblocks, int64_t seq_len) {
    int64_t total = 0;
    for (int64_t k = 0; k < nblocks; k++)
        if (__builtin_add_overflow(total, idt_pack_cu_bound(cum, n, blocks[2 * k], blocks[2 * k + 1], seq_len),
                                   &total))
            return INT64_MAX;
    return total;
}

int idt_pack_view_blocks(const idt_view *v, int64_t j, const int64_t *cum, const int64_t *blocks,
                         int64_t nblocks, int64_t seq_len, const void *pad, int64_t pad_size,
                         idt_pack_out *out, int64_t *cu_start, idt_error *err) {
    int rc = check_col(&v, &j, err);
    if (rc) return rc;
    int64_t isz = pack_itemsize(idt_view_column(v, j));
    if (seq_len < 1)
        return idt_error_set(err, IDT_EVALUE, "seq_len must be >= 1, got %lld", (long long)seq_len);
    int64_t row = 0, ncu = 0, ntok = 0;
    cu_start[0] = 0;
    for (int64_t k = 0; k < nblocks; k++) {
        idt_pack_out o = {(char *)out->tokens + row * seq_len * isz, out->position_ids + row * seq_len,
                          out->cu_seqlens + ncu, out->cu_cap - ncu, 0, 0};
        rc = idt_pack_view(v, j, cum, blocks[2 * k], blocks[2 * k + 1], seq_len, pad, pad_size, &o, err);
        if (rc) return rc;
        row += blocks[2 * k + 1];
        ncu += o.ncu;
        ntok += o.ntokens;
        cu_start[k + 1] = ncu;
    }
    out->ncu = ncu;
    out->ntokens = ntok;
    return 0;
}

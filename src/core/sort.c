/* sort.c: stable multi-key sort of a view's rows: order-preserving key codes, a parallel
 * LSD radix sort of (code, row) pairs, and an external merge of sorted runs when the keys do
 * not fit the memory budget. See sort.h for the encodings and the memory rule. */
#include "sort.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sys.h"

enum { K_BOOL, K_UINT, K_INT, K_FLOAT, K_TIME, K_STR };

/* Parallel work is split into blocks of at least this many rows. */
enum { MIN_BLOCK = 1 << 16, MAX_THREADS = 64, MIN_CHUNK_ROWS = 16, WRITE_BUF = 1 << 14 };

/* Radix digits: 11 bits, so 6 passes cover 64-bit codes (fewer than 8 byte passes; 2048
 * counters per digit still sit in L1/L2). */
enum { DBITS = 11, NDIG = (64 + DBITS - 1) / DBITS, NBUCK = 1 << DBITS };
#define DMASK ((uint64_t)NBUCK - 1)

typedef struct keyspec {
    int code;          /* K_* */
    int width;         /* bytes per value (fixed kinds) */
    int desc;
    int64_t j;         /* shown column of gv */
    const idt_view *gv; /* the view's group holding the key (the view itself when plain) */
} keyspec;

typedef struct rec {
    uint64_t key, idx;
} rec;

typedef struct sorter {
    const idt_view *v;
    keyspec *ks;
    int64_t nkeys;
    int64_t threads;
    const idt_sort_opts *o;
    int64_t done, total;   /* progress units */
} sorter;

/* ---- keys ---- */

int idt_sort_check_key(const idt_view *v, int64_t col, idt_error *err) {
    if (col < 0 || col >= v->ncols)
        return idt_error_set(err, IDT_EINDEX, "sort key column %lld out of range for %lld columns",
                             (long long)col, (long long)v->ncols);
    const idt_column *c = idt_view_column(v, col);
    if (idt_column_is_list(c))
        return idt_error_set(err, IDT_ETYPE,
                             "cannot sort by column '%s': it is a list column (%s values); "
                             "sort keys must be scalars", c->name, c->dtype);
    if (c->ndim != 0)
        return idt_error_set(err, IDT_ETYPE,
                             "cannot sort by column '%s': its rows have a shape (%d dimensions); "
                             "sort keys must be scalars", c->name, (int)c->ndim);
    if (idt_column_is_str(c)) return 0;
    char t = c->dtype[0] ? c->dtype[1] : 0;
    int64_t w = c->itemsize;
    int ok = (t == 'b' && w == 1) || ((t == 'i' || t == 'u') && (w == 1 || w == 2 || w == 4 || w == 8)) ||
             (t == 'f' && (w == 2 || w == 4 || w == 8)) || ((t == 'M' || t == 'm') && w == 8);
    if (!ok || c->dtype[0] == '>')
        return idt_error_set(err, IDT_ETYPE,
                             "cannot sort by column '%s' of dtype %s: sort keys must be bools, "
                             "integers, floats, datetimes, timedeltas or strings", c->name, c->dtype);
    return 0;
}

static void spec_of(const idt_view *v, const idt_sort_key *k, keyspec *s) {
    const idt_column *c = idt_view_column(v, k->col);
    s->gv = idt_view_group_of(v, k->col, &s->j);
    s->desc = k->descending != 0;
    s->width = (int)c->itemsize;
    if (idt_column_is_str(c)) {
        s->code = K_STR;
        return;
    }
    switch (c->dtype[1]) {
    case 'b': s->code = K_BOOL; break;
    case 'u': s->code = K_UINT; break;
    case 'i': s->code = K_INT; break;
    case 'f': s->code = K_FLOAT; break;
    default: s->code = K_TIME; break;
    }
}

#define SIGN64 ((uint64_t)1 << 63)

/* The code of one fixed-width value: ascending order of codes is the key order, NaN and NaT
 * take UINT64_MAX (last) both ways, and no other value takes it. */
static inline uint64_t encode_fixed(const keyspec *s, const char *p) {
    uint64_t k;
    switch (s->code) {
    case K_BOOL: k = *(const uint8_t *)p != 0; break;
    case K_UINT:
        switch (s->width) {
        case 1: k = *(const uint8_t *)p; break;
        case 2: { uint16_t x; memcpy(&x, p, 2); k = x; } break;
        case 4: { uint32_t x; memcpy(&x, p, 4); k = x; } break;
        default: memcpy(&k, p, 8);
        }
        break;
    case K_INT: {
        int64_t x;
        switch (s->width) {
        case 1: x = *(const int8_t *)p; break;
        case 2: { int16_t y; memcpy(&y, p, 2); x = y; } break;
        case 4: { int32_t y; memcpy(&y, p, 4); x = y; } break;
        default: memcpy(&x, p, 8);
        }
        k = (uint64_t)x ^ SIGN64;
    } break;
    case K_FLOAT: {
        uint64_t b, sign, absmask, inf;
        if (s->width == 2) {
            uint16_t y; memcpy(&y, p, 2); b = y; sign = 0x8000; absmask = 0x7FFF; inf = 0x7C00;
        } else if (s->width == 4) {
            uint32_t y; memcpy(&y, p, 4); b = y; sign = 0x80000000u; absmask = 0x7FFFFFFFu; inf = 0x7F800000u;
        } else {
            memcpy(&b, p, 8); sign = SIGN64; absmask = ~SIGN64; inf = 0x7FF0000000000000ull;
        }
        if ((b & absmask) > inf) return UINT64_MAX;  /* NaN, any sign or payload */
        if ((b & absmask) == 0) b = 0;                /* -0.0 equals 0.0 */
        /* negative: flip all bits of the width; positive: set the sign bit. >= 1, so ~k
         * (descending) stays below UINT64_MAX. */
        k = (b & sign) ? (~b & (sign | absmask)) : (b | sign);
        return s->desc ? ~k : k;
    }
    default: { /* datetime64 / timedelta64: NaT is INT64_MIN */
        int64_t x;
        memcpy(&x, p, 8);
        if (x == INT64_MIN) return UINT64_MAX;
        k = ((uint64_t)x ^ SIGN64) - 1; /* 0 .. 2^64-2 */
        return s->desc ? (UINT64_MAX - 1) - k : k;
    }
    }
    return s->desc ? ~k : k;
}

/* A string's bytes without trailing NULs (object strings may keep them; NumPy ignores them). */
static inline void str_trim(const char *p, uint64_t *len) {
    *len = (uint64_t)idt_str_strip(p, (int64_t)*len);
}

/* Code of a string: its first 7 bytes, big-endian, zero padded, then 1 when it is longer than
 * 7 bytes. Equal codes without the flag mean equal strings; with it, compare the rest. */
static inline uint64_t encode_str(const keyspec *s, const char *p, uint64_t len) {
    uint64_t k = 0;
    uint64_t m = len < 7 ? len : 7;
    for (uint64_t i = 0; i < m; i++) k |= (uint64_t)(uint8_t)p[i] << (56 - 8 * i);
    k |= len > 7;
    return s->desc ? ~k : k;
}

static inline int code_is_long(const keyspec *s, uint64_t k) {
    return (s->desc ? ~k : k) & 1;
}

/* Column buffer of shown column j in store st. */
static inline const idt_store_col *store_col(const idt_view *v, const idt_store *st, int64_t j) {
    return &st->cols[idt_view_store_col(v, st, j)];
}

/* The bytes of view row r of string key s. */
static void str_of(const sorter *S, const keyspec *s, uint64_t r, const char **p, uint64_t *len) {
    idt_store *st;
    int64_t row;
    (void)S;
    idt_view_locate(s->gv, (int64_t)r, &st, &row);
    const idt_store_col *c = store_col(s->gv, st, s->j);
    uint64_t a = c->offsets[row], z = c->offsets[row + 1];
    *p = c->data + a;
    *len = z - a;
    str_trim(*p, len);
}

/* Codes of key s for view rows [lo, hi), in order, into out[0..hi-lo) with stride `stride`
 * (in uint64s). Walks the segments once. */
static void extract(const sorter *S, const keyspec *s, int64_t lo, int64_t hi, uint64_t *out,
                    int64_t stride) {
    const idt_view *v = s->gv;
    (void)S;
    if (hi <= lo) return;
    int64_t k = idt_view_find_seg(v, lo);
    const idt_store *last = NULL;
    const idt_store_col *c = NULL;
    int64_t rb = s->width;
    for (int64_t i = lo; i < hi; i++) {
        while (i >= v->cum[k + 1]) k++;
        const idt_segment *sg = &v->segs[k];
        int64_t pos = sg->start + (i - v->cum[k]) * sg->step;
        idt_store *st;
        int64_t row;
        idt_seg_resolve(sg, pos, &st, &row);
        if (st != last) {
            last = st;
            c = store_col(v, st, s->j);
        }
        uint64_t code;
        if (s->code == K_STR) {
            uint64_t a = c->offsets[row], len = c->offsets[row + 1] - a;
            str_trim(c->data + a, &len);
            code = encode_str(s, c->data + a, len);
        } else {
            code = encode_fixed(s, c->data + row * rb);
        }
        out[(i - lo) * stride] = code;
    }
}

/* ---- threads ---- */

typedef struct pjob {
    void (*fn)(void *ctx, int64_t t, int64_t nt);
    void *ctx;
    int64_t t, nt;
} pjob;

static void *pjob_run(void *a) {
    pjob *j = a;
    j->fn(j->ctx, j->t, j->nt);
    return NULL;
}

/* Run fn(ctx, t, nt) for t = 0..nt-1, t = 0 on the caller; a thread that cannot start has its
 * share run on the caller too (never fails). */
static void parallel(int64_t nt, void (*fn)(void *, int64_t, int64_t), void *ctx) {
    if (nt <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_t th[MAX_THREADS];
    pjob jobs[MAX_THREADS];
    int started[MAX_THREADS];
    for (int64_t t = 1; t < nt; t++) {
        jobs[t] = (pjob){fn, ctx, t, nt};
        started[t] = pthread_create(&th[t], NULL, pjob_run, &jobs[t]) == 0;
    }
    fn(ctx, 0, nt);
    for (int64_t t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn(ctx, t, nt);
    }
}

static int64_t threads_for(const sorter *S, int64_t n) {
    int64_t t = S->threads;
    if (t > n / MIN_BLOCK) t = n / MIN_BLOCK;
    if (t > MAX_THREADS) t = MAX_THREADS;
    return t < 1 ? 1 : t;
}

static int tick(sorter *S, int64_t units, idt_error *err) {
    S->done += units;
    if (S->done > S->total) S->done = S->total;
    return idt_progress_report(S->o ? S->o->progress : NULL, S->done, S->total, err);
}

/* ---- extraction in parallel ---- */

typedef struct xjob {
    const sorter *S;
    const keyspec *s;
    int64_t lo, n;
    uint64_t *out;
    int64_t stride;
} xjob;

static void xjob_fn(void *a, int64_t t, int64_t nt) {
    xjob *x = a;
    int64_t b = x->n * t / nt, e = x->n * (t + 1) / nt;
    extract(x->S, x->s, x->lo + b, x->lo + e, x->out + b * x->stride, x->stride);
}

static void extract_par(const sorter *S, const keyspec *s, int64_t lo, int64_t n, uint64_t *out,
                        int64_t stride) {
    xjob x = {S, s, lo, n, out, stride};
    parallel(threads_for(S, n), xjob_fn, &x);
}

/* ---- LSD radix sort of (key, idx) records ---- */

typedef struct rjob {
    rec *src, *dst;
    int64_t n;
    int digit;                      /* digit being sorted (0 = least significant) */
    int64_t (*cnt)[NBUCK];          /* per thread block */
    int64_t (*allcnt)[NDIG][NBUCK]; /* per thread block, every digit (first count) */
} rjob;

static void rjob_count_all(void *a, int64_t t, int64_t nt) {
    rjob *r = a;
    int64_t b = r->n * t / nt, e = r->n * (t + 1) / nt;
    int64_t(*c)[NBUCK] = r->allcnt[t];
    memset(c, 0, sizeof(int64_t) * NDIG * NBUCK);
    for (int64_t i = b; i < e; i++) {
        uint64_t k = r->src[i].key;
        for (int d = 0; d < NDIG; d++) c[d][(k >> (DBITS * d)) & DMASK]++;
    }
}

static void rjob_count(void *a, int64_t t, int64_t nt) {
    rjob *r = a;
    int64_t b = r->n * t / nt, e = r->n * (t + 1) / nt;
    int64_t *c = r->cnt[t];
    memset(c, 0, sizeof(int64_t) * NBUCK);
    int sh = DBITS * r->digit;
    for (int64_t i = b; i < e; i++) c[(r->src[i].key >> sh) & DMASK]++;
}

/* cnt[t] holds starting offsets (made by the caller); scatter block t. */
static void rjob_scatter(void *a, int64_t t, int64_t nt) {
    rjob *r = a;
    int64_t b = r->n * t / nt, e = r->n * (t + 1) / nt;
    int64_t *off = r->cnt[t];
    int sh = DBITS * r->digit;
    const rec *src = r->src;
    rec *dst = r->dst;
    for (int64_t i = b; i < e; i++) {
        rec x = src[i];
        dst[off[(x.key >> sh) & DMASK]++] = x;
    }
}

/* Sort a[0..n) stably by key using b as scratch; returns the array holding the result (a or
 * b). Cancellation is checked between passes. */
static int radix_sort(sorter *S, rec *a, rec *b, int64_t n, rec **res, idt_error *err) {
    *res = a;
    if (n < 2) return 0;
    int64_t nt = threads_for(S, n);
    int64_t(*all)[NDIG][NBUCK] = idt_malloc((size_t)nt * sizeof *all);
    int64_t(*cnt)[NBUCK] = idt_malloc((size_t)nt * sizeof *cnt);
    if (!all || !cnt) {
        idt_free(all);
        idt_free(cnt);
        return idt_error_set(err, IDT_ENOMEM, "out of memory for sort counters");
    }
    rjob r = {a, b, n, 0, cnt, all};
    parallel(nt, rjob_count_all, &r);
    int rc = 0, first = 1;
    for (int d = 0; d < NDIG && !rc; d++) {
        /* a digit where every record falls in one bucket needs no pass */
        int trivial = 0;
        for (int q = 0; q < NBUCK && !trivial; q++) {
            int64_t tot = 0;
            for (int64_t t = 0; t < nt; t++) tot += all[t][d][q];
            trivial = tot == n;
        }
        if (trivial) continue;
        r.digit = d;
        if (first || nt == 1) {
            for (int64_t t = 0; t < nt; t++) memcpy(cnt[t], all[t][d], sizeof cnt[t]);
        } else {
            parallel(nt, rjob_count, &r);
        }
        first = 0;
        int64_t pos = 0; /* bucket-major, thread-minor offsets keep the pass stable */
        for (int q = 0; q < NBUCK; q++)
            for (int64_t t = 0; t < nt; t++) {
                int64_t c = cnt[t][q];
                cnt[t][q] = pos;
                pos += c;
            }
        parallel(nt, rjob_scatter, &r);
        rec *tmp = r.src;
        r.src = r.dst;
        r.dst = tmp;
        rc = tick(S, n, err);
    }
    *res = r.src;
    idt_free(all);
    idt_free(cnt);
    return rc;
}

/* ---- ties among long strings ---- */

typedef struct sitem {
    const char *p;
    uint64_t len;
    uint64_t idx;
} sitem;

/* Compare two strings sharing their first `skip` bytes (both longer than skip). */
static inline int str_cmp_from(const sitem *x, const sitem *y, uint64_t skip) {
    uint64_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p + skip, y->p + skip, (size_t)(m - skip));
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Stable merge sort of it[0..n) by string (descending when desc), scratch tmp[0..n); every
 * string is longer than `skip` bytes and they share their first `skip` bytes. */
static void sitem_sort(sitem *it, sitem *tmp, int64_t n, int desc, uint64_t skip) {
    if (n < 16) {
        for (int64_t i = 1; i < n; i++) {
            sitem x = it[i];
            int64_t j = i;
            while (j > 0) {
                int c = str_cmp_from(&it[j - 1], &x, skip);
                if (desc ? c >= 0 : c <= 0) break;
                it[j] = it[j - 1];
                j--;
            }
            it[j] = x;
        }
        return;
    }
    int64_t h = n / 2;
    sitem_sort(it, tmp, h, desc, skip);
    sitem_sort(it + h, tmp, n - h, desc, skip);
    memcpy(tmp, it, (size_t)h * sizeof *tmp);
    int64_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        int c = str_cmp_from(&it[j], &tmp[i], skip);
        /* take the right one only when strictly before the left one: stability */
        if (desc ? c > 0 : c < 0) it[o++] = it[j++];
        else it[o++] = tmp[i++];
    }
    while (i < h) it[o++] = tmp[i++];
}

/* Runs below this many strings are merge sorted; longer ones are radix sorted by the next 7
 * bytes (and so on, at most REFINE_LEVELS deep, then merge sorted). */
enum { REFINE_MIN = 64, REFINE_LEVELS = 16 };

/* Order it[0..m) (strings longer than `depth` bytes sharing their first `depth`) stably. */
static int str_refine(sorter *S, sitem *it, sitem *tmp, int64_t m, uint64_t depth, int desc, int level,
                      idt_error *err) {
    if (m < REFINE_MIN || level >= REFINE_LEVELS) {
        sitem_sort(it, tmp, m, desc, depth);
        return 0;
    }
    rec *a = idt_malloc((size_t)m * sizeof *a), *b = idt_malloc((size_t)m * sizeof *b);
    if (!a || !b) {
        idt_free(a);
        idt_free(b);
        return idt_error_set(err, IDT_ENOMEM, "out of memory sorting %lld tied strings", (long long)m);
    }
    keyspec ks = {K_STR, 0, desc, 0, NULL};
    for (int64_t q = 0; q < m; q++) {
        a[q].key = encode_str(&ks, it[q].p + depth, it[q].len - depth);
        a[q].idx = (uint64_t)q;
    }
    rec *res;
    int rc = radix_sort(S, a, b, m, &res, err);
    if (!rc) {
        for (int64_t q = 0; q < m; q++) tmp[q] = it[res[q].idx];
        memcpy(it, tmp, (size_t)m * sizeof *it);
        for (int64_t i = 0; i < m && !rc;) {
            int64_t e = i + 1;
            while (e < m && res[e].key == res[i].key) e++;
            if (e - i > 1 && code_is_long(&ks, res[i].key))
                rc = str_refine(S, it + i, tmp + i, e - i, depth + 7, desc, level + 1, err);
            i = e;
        }
    }
    idt_free(a);
    idt_free(b);
    return rc;
}

/* After sorting a[0..n) by string codes of key s, order each run of equal "long" codes by the
 * full strings (stable). */
static int fix_long_ties(sorter *S, const keyspec *s, rec *a, int64_t n, idt_error *err) {
    sitem *it = NULL, *tmp = NULL;
    int64_t cap = 0;
    for (int64_t i = 0; i < n;) {
        int64_t e = i + 1;
        while (e < n && a[e].key == a[i].key) e++;
        int64_t m = e - i;
        if (m > 1 && code_is_long(s, a[i].key)) {
            if (m > cap) {
                idt_free(it);
                idt_free(tmp);
                cap = m;
                it = idt_malloc((size_t)m * sizeof *it);
                tmp = idt_malloc((size_t)m * sizeof *tmp);
                if (!it || !tmp) {
                    idt_free(it);
                    idt_free(tmp);
                    return idt_error_set(err, IDT_ENOMEM, "out of memory sorting %lld tied strings",
                                         (long long)m);
                }
            }
            for (int64_t q = 0; q < m; q++) {
                it[q].idx = a[i + q].idx;
                str_of(S, s, it[q].idx, &it[q].p, &it[q].len);
            }
            int rc = str_refine(S, it, tmp, m, 7, s->desc, 0, err);
            if (rc) {
                idt_free(it);
                idt_free(tmp);
                return rc;
            }
            for (int64_t q = 0; q < m; q++) a[i + q].idx = it[q].idx;
        }
        i = e;
    }
    idt_free(it);
    idt_free(tmp);
    return 0;
}

/* ---- one chunk in RAM ---- */

typedef struct gjob {
    rec *a;
    const uint64_t *codes;
    int64_t lo, n;
} gjob;

static void gjob_fn(void *p, int64_t t, int64_t nt) {
    gjob *g = p;
    int64_t b = g->n * t / nt, e = g->n * (t + 1) / nt;
    for (int64_t i = b; i < e; i++) g->a[i].key = g->codes[g->a[i].idx - (uint64_t)g->lo];
}

/* Sort view rows [lo, lo+n) by every key: on return (*res)[i].idx are the rows in order.
 * a, b hold n records; codes (nkeys > 1 only) holds nkeys * n codes, key c at codes + c*n. */
static int sort_chunk(sorter *S, int64_t lo, int64_t n, rec *a, rec *b, uint64_t *codes,
                      rec **res, idt_error *err) {
    int rc = 0;
    *res = a;
    if (S->nkeys == 1) {
        extract_par(S, &S->ks[0], lo, n, &a[0].key, 2);
        for (int64_t i = 0; i < n; i++) a[i].idx = (uint64_t)(lo + i);
        if ((rc = tick(S, n, err))) return rc;
        if ((rc = radix_sort(S, a, b, n, res, err))) return rc;
        if (S->ks[0].code == K_STR) rc = fix_long_ties(S, &S->ks[0], *res, n, err);
        return rc;
    }
    for (int64_t c = 0; c < S->nkeys && !rc; c++) {
        extract_par(S, &S->ks[c], lo, n, codes + c * n, 1);
        rc = tick(S, n, err);
    }
    for (int64_t i = 0; i < n; i++) a[i].idx = (uint64_t)(lo + i);
    rec *cur = a, *other = b;
    for (int64_t c = S->nkeys - 1; c >= 0 && !rc; c--) {
        gjob g = {cur, codes + c * n, lo, n};
        parallel(threads_for(S, n), gjob_fn, &g);
        rec *out;
        rc = radix_sort(S, cur, other, n, &out, err);
        if (!rc && S->ks[c].code == K_STR) rc = fix_long_ties(S, &S->ks[c], out, n, err);
        if (out != cur) {
            other = cur;
            cur = out;
        }
    }
    *res = cur;
    return rc;
}

/* ---- external merge ---- */

typedef struct mcur {
    const uint64_t *p, *end;  /* records of nkeys + 1 uint64s */
} mcur;

/* Order of two run records (codes..., row); ties are impossible (rows differ). */
static int rec_less(const sorter *S, const uint64_t *x, const uint64_t *y) {
    int64_t nk = S->nkeys;
    for (int64_t c = 0; c < nk; c++) {
        if (x[c] != y[c]) return x[c] < y[c];
        const keyspec *s = &S->ks[c];
        if (s->code == K_STR && code_is_long(s, x[c])) {
            sitem a, b;
            str_of(S, s, x[nk], &a.p, &a.len);
            str_of(S, s, y[nk], &b.p, &b.len);
            int r = str_cmp_from(&a, &b, 7);
            if (r) return s->desc ? r > 0 : r < 0;
        }
    }
    return x[nk] < y[nk];
}

static void heap_down(const sorter *S, mcur *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, m = i;
        if (l < n && rec_less(S, h[l].p, h[m].p)) m = l;
        if (l + 1 < n && rec_less(S, h[l + 1].p, h[m].p)) m = l + 1;
        if (m == i) return;
        mcur t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int sort_external(sorter *S, int64_t n, int64_t chunk, int64_t *perm, idt_error *err) {
    int64_t nk = S->nkeys, rw = nk + 1; /* uint64s per run record */
    int64_t nruns = (n + chunk - 1) / chunk;
    rec *a = idt_malloc((size_t)chunk * sizeof *a), *b = idt_malloc((size_t)chunk * sizeof *b);
    uint64_t *codes = nk > 1 ? idt_malloc((size_t)(chunk * nk) * 8) : NULL;
    uint64_t *wbuf = idt_malloc((size_t)WRITE_BUF * (size_t)rw * 8);
    mcur *heap = idt_malloc((size_t)nruns * sizeof *heap);
    idt_blob *runs = NULL;
    int rc = 0;
    if (!a || !b || (nk > 1 && !codes) || !wbuf || !heap) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory for an external sort of %lld rows",
                           (long long)n);
        goto done;
    }
    if ((uint64_t)n > SIZE_MAX / 8 / (uint64_t)rw) {
        rc = idt_error_set(err, IDT_EVALUE, "too many rows to sort: %lld", (long long)n);
        goto done;
    }
    if ((rc = idt_blob_new((size_t)n * (size_t)rw * 8, &runs, err))) goto done;
    for (int64_t r = 0; r < nruns && !rc; r++) {
        int64_t lo = r * chunk, m = n - lo < chunk ? n - lo : chunk;
        rec *res;
        if ((rc = sort_chunk(S, lo, m, a, b, codes, &res, err))) break;
        for (int64_t i = 0; i < m && !rc; i += WRITE_BUF) {
            int64_t q = m - i < WRITE_BUF ? m - i : WRITE_BUF;
            for (int64_t t = 0; t < q; t++) {
                uint64_t *w = wbuf + t * rw;
                uint64_t row = res[i + t].idx;
                if (nk == 1) w[0] = res[i + t].key;
                else
                    for (int64_t c = 0; c < nk; c++) w[c] = codes[c * m + (int64_t)(row - (uint64_t)lo)];
                w[nk] = row;
            }
            rc = idt_blob_write(runs, (size_t)((lo + i) * rw) * 8, wbuf, (size_t)(q * rw) * 8, err);
        }
    }
    idt_free(a);
    idt_free(b);
    idt_free(codes);
    a = b = NULL;
    codes = NULL;
    if (rc) goto done;
    idt_blob_seal(runs);
    const uint64_t *base = (const uint64_t *)runs->data;
    for (int64_t r = 0; r < nruns; r++) {
        int64_t lo = r * chunk, m = n - lo < chunk ? n - lo : chunk;
        heap[r].p = base + lo * rw;
        heap[r].end = base + (lo + m) * rw;
    }
    for (int64_t i = nruns / 2 - 1; i >= 0; i--) heap_down(S, heap, nruns, i);
    int64_t live = nruns;
    for (int64_t i = 0; i < n && !rc; i++) {
        perm[i] = (int64_t)heap[0].p[nk];
        heap[0].p += rw;
        if (heap[0].p == heap[0].end) heap[0] = heap[--live];
        if (live > 0) heap_down(S, heap, live, 0);
        if (!rc && (i + 1) % (1 << 20) == 0) rc = tick(S, 1 << 20, err);
    }
done:
    idt_free(a);
    idt_free(b);
    idt_free(codes);
    idt_free(wbuf);
    idt_free(heap);
    idt_blob_decref(runs);
    return rc;
}

/* ---- entry points ---- */

static int64_t per_row_bytes(int64_t nkeys) { return 2 * (int64_t)sizeof(rec) + (nkeys > 1 ? 8 * nkeys : 0); }

int idt_view_sort_perm(idt_view *v, const idt_sort_key *keys, int64_t nkeys,
                       const idt_sort_opts *opts, int64_t *perm, idt_error *err) {
    if (nkeys < 1) return idt_error_set(err, IDT_EVALUE, "sort needs at least one key column");
    for (int64_t c = 0; c < nkeys; c++) {
        int rc = idt_sort_check_key(v, keys[c].col, err);
        if (rc) return rc;
    }
    keyspec *ks = idt_malloc((size_t)nkeys * sizeof *ks);
    if (!ks) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    for (int64_t c = 0; c < nkeys; c++) spec_of(v, &keys[c], &ks[c]);
    int64_t n = idt_view_len(v);
    int64_t budget = opts && opts->memory_budget > 0 ? opts->memory_budget : IDT_SORT_DEFAULT_BUDGET;
    int64_t chunk = budget / per_row_bytes(nkeys);
    if (chunk < MIN_CHUNK_ROWS) chunk = MIN_CHUNK_ROWS;
    sorter S = {v, ks, nkeys, opts && opts->threads > 1 ? opts->threads : 1, opts, 0, 0};
    S.total = n * (nkeys * (NDIG + 1) + 1);
    int rc = 0;
    if (n <= chunk) {
        rec *a = idt_malloc((size_t)(n ? n : 1) * sizeof *a), *b = idt_malloc((size_t)(n ? n : 1) * sizeof *b);
        uint64_t *codes = nkeys > 1 ? idt_malloc((size_t)(n ? n : 1) * (size_t)nkeys * 8) : NULL;
        if (!a || !b || (nkeys > 1 && !codes)) {
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory sorting %lld rows", (long long)n);
        } else {
            rec *res;
            rc = sort_chunk(&S, 0, n, a, b, codes, &res, err);
            for (int64_t i = 0; i < n && !rc; i++) perm[i] = (int64_t)res[i].idx;
        }
        idt_free(a);
        idt_free(b);
        idt_free(codes);
    } else {
        rc = sort_external(&S, n, chunk, perm, err);
    }
    idt_free(ks);
    return rc;
}

typedef struct fillctx {
    idt_view *v;
    const idt_sort_key *keys;
    int64_t nkeys;
    const idt_sort_opts *opts;
} fillctx;

static int sort_fill(void *ctx, int64_t *dst, idt_error *err) {
    fillctx *f = ctx;
    return idt_view_sort_perm(f->v, f->keys, f->nkeys, f->opts, dst, err);
}

int idt_view_sort(idt_view *v, const idt_sort_key *keys, int64_t nkeys, const idt_sort_opts *opts,
                  idt_view **out, idt_error *err) {
    fillctx f = {v, keys, nkeys, opts};
    return idt_view_take_fill(v, idt_view_len(v), sort_fill, &f, out, err);
}

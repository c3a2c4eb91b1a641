/* test_fault.c: fault injection through the sys seam.
 *
 * Each operation runs again and again with its Nth seam call failing (N = 1, 2, ...), for
 * every call of any kind and per kind, until a run completes with no fault fired. For each
 * N the operation either succeeds (and its result is right) or returns a negative IDT_E
 * code with a message; either way, once its results are released, the live allocations,
 * mappings and descriptors are what they were before, the temp directory holds the same
 * files, and the inputs (their contents and reference counts) are unchanged.
 *
 * Passes: one per kind (any, alloc, open, fallocate, mmap, write, rename, link, mkdir, punch:
 * the hole punching that returns freed arena space; sync, truncate, stat, lock: fsync,
 * ftruncate, fstat/stat/lstat, flock), a sticky pass (every call
 * from the Nth on fails, so cleanup paths run with the seam failing too), and a cold pass
 * in which the temp area is shut down before each run, so the first blob also makes the
 * process directory (mkdir, lock file and its flock, rename, the reaper's stats) and a fresh
 * arena chunk (ftruncate). */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "prefetch.h"
#include "harness.h"
#include "persist.h"
#include "utf8.h"
#include "writer.h"

/* ---- the model (as in test_view) ---- */

static int model_s(int64_t k, char *out) {
    if (k % 7 == 3) return 0;
    int n = snprintf(out, 32, "s%lld", (long long)k);
    for (int i = 0; i < k % 4; i++) n += snprintf(out + n, 8, "\xC3\xA9");
    return n;
}

static int model_b(int64_t k, char *out) {
    int n = snprintf(out, 32, "%lld", (long long)(3 * k));
    if (k % 5 == 0) out[n++] = (char)0xFF;
    return n;
}

/* A store of ids first..first+n-1: "id" int64, "m" int32[2], "s" UTF8, "b" BYTES. */
static int model_store(int64_t first, int64_t n, idt_store **out, idt_error *err) {
    int64_t *id = malloc((size_t)(n ? n : 1) * 8);
    int32_t *m = malloc((size_t)(n ? n : 1) * 8);
    char *sbuf = malloc((size_t)(n ? n : 1) * 32), *bbuf = malloc((size_t)(n ? n : 1) * 32);
    const char **s = malloc((size_t)(n ? n : 1) * sizeof *s), **b = malloc((size_t)(n ? n : 1) * sizeof *b);
    int64_t *sl = malloc((size_t)(n ? n : 1) * 8), *bl = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = first + i;
        id[i] = k;
        m[2 * i] = (int32_t)(2 * k);
        m[2 * i + 1] = (int32_t)-k;
        s[i] = sbuf + 32 * i;
        sl[i] = model_s(k, sbuf + 32 * i);
        b[i] = bbuf + 32 * i;
        bl[i] = model_b(k, bbuf + 32 * i);
    }
    int64_t two[1] = {2};
    h_col cols[4] = {{"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, sl},
                     {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                     {"m", IDT_COL_FIXED, "<i4", 4, 1, two, m, 0, NULL},
                     {"b", IDT_COL_BYTES, NULL, 0, 0, NULL, b, 0, bl}};
    int rc = h_store(cols, 4, n, out, err);
    free(id);
    free(m);
    free(sbuf);
    free(bbuf);
    free(s);
    free(b);
    free(sl);
    free(bl);
    return rc;
}

/* ---- fixtures: inputs made before any fault is armed ---- */

enum { NA = 300, NB = 300, N = NA + NB, NBIG = 150000, NIDX = 500 };

static struct {
    idt_view *v;          /* ids 0..NA-1 (RUN), then a shuffle of NA..N-1 (REFS) */
    int64_t ids[N];
    idt_view *w;          /* a second view for concat: ids 0..NA-1 reversed, then v */
    int64_t wids[NA + N];
    idt_view *big;        /* NBIG rows of "id" only (its store is a dedicated file) */
    int64_t idx[NIDX];    /* indexes for take, with negatives and repeats */
    uint8_t mask[N];
    uint64_t seed;
    int64_t *shuf;        /* ids of shuffle(v, seed) */
    int64_t *bigshuf;     /* ids of shuffle(big, seed) */
    int64_t fingerprint;  /* reference counts of everything the inputs hold */
    char save_root[PATH_MAX];  /* next to the temp root: the same file system */
    char save_new[PATH_MAX];   /* a save goes here, made anew by each run */
    char save_over[PATH_MAX];  /* holds "x" (F.v); a run saves F.w over it */
    char save_load[PATH_MAX];  /* holds "w" (F.w), for loading */
    char save_dmg[PATH_MAX];   /* holds "x" (F.w) with a damaged store file; a run saves "y" */
    char save_gc[PATH_MAX];    /* holds "w" (F.w), a dead save's temp file, orphan data files */
    h_names over_files;        /* what save_over holds */
    idt_store *pieces[4];      /* writer pieces: ids 1000+50k .. 1000+50k+49 */
    char *descr;               /* idt_view_describe(F.w) */
    size_t descr_len;
} F;

/* Remove the plain files of dir, then dir. */
static void rm_flat(const char *dir) {
    h_names l;
    h_names_list(dir, &l);
    for (int i = 0; i < l.n; i++) {
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", dir, l.names[i]);
        unlink(p);
    }
    h_names_free(&l);
    rmdir(dir);
}

static int saves_new(void) {
    idt_error err;
    const char *root = idt_tmp_root();
    if (!root) return -1;
    snprintf(F.save_root, sizeof F.save_root, "%.3000s-save", root);
    snprintf(F.save_new, sizeof F.save_new, "%.3000s/new", F.save_root);
    snprintf(F.save_over, sizeof F.save_over, "%.3000s/over", F.save_root);
    snprintf(F.save_load, sizeof F.save_load, "%.3000s/load", F.save_root);
    snprintf(F.save_dmg, sizeof F.save_dmg, "%.3000s/dmg", F.save_root);
    snprintf(F.save_gc, sizeof F.save_gc, "%.3000s/gc", F.save_root);
    rm_flat(F.save_dmg);
    rm_flat(F.save_gc);
    rm_flat(F.save_new);
    rm_flat(F.save_over);
    rm_flat(F.save_load);
    mkdir(F.save_root, 0700);
    if (idt_view_save(F.v, F.save_over, "x", 0, &err) || idt_view_save(F.w, F.save_load, "w", 0, &err)) {
        h_fail(__FILE__, __LINE__, "save: %s", err.msg);
        return -1;
    }
    h_names_list(F.save_over, &F.over_files);
    if (idt_view_describe(F.w, &F.descr, &F.descr_len, &err)) {
        h_fail(__FILE__, __LINE__, "describe: %s", err.msg);
        return -1;
    }
    return 0;
}

static h_names dmg_files;
static void saves_free(void) {
    h_names_free(&dmg_files);
    rm_flat(F.save_dmg);
    rm_flat(F.save_gc);
    rm_flat(F.save_new);
    rm_flat(F.save_over);
    rm_flat(F.save_load);
    rmdir(F.save_root);
    h_names_free(&F.over_files);
    idt_free(F.descr);
    F.descr = NULL;
}

static int64_t view_refs(const idt_view *v) {
    int64_t s = atomic_load(&v->refs) + atomic_load(&v->schema->refs);
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *g = &v->segs[k];
        if (g->kind == IDT_SEG_RUN) {
            s += atomic_load(&g->store->refs) + atomic_load(&g->store->blob->refs);
        } else {
            s += atomic_load(&g->refs->refs) + atomic_load(&g->refs->blob->refs);
            for (int64_t i = 0; i < g->refs->nstores; i++)
                s += atomic_load(&g->refs->stores[i]->refs) +
                     atomic_load(&g->refs->stores[i]->blob->refs);
        }
    }
    return s;
}

static int64_t fingerprint(void) {
    int64_t p = 0;
    for (int k = 0; k < 4; k++) p += F.pieces[k] ? atomic_load(&F.pieces[k]->refs) : 0;
    return view_refs(F.v) * 3 + view_refs(F.w) * 5 + view_refs(F.big) * 7 + p * 11;
}

static int64_t *ids_of(const idt_view *v) { return h_col_i64(v, h_vcol(v, "id")); }

static int same_ids(const idt_view *v, const int64_t *want, int64_t n) {
    if (idt_view_len(v) != n) return 0;
    int64_t *got = ids_of(v);
    int ok = !memcmp(got, want, (size_t)n * 8);
    free(got);
    return ok;
}

static int fixture_new(void) {
    idt_error err;
    idt_store *a, *b;
    idt_view *va, *vb, *sb, *ra;
    memset(&F, 0, sizeof F);
    if (model_store(0, NA, &a, &err) || model_store(NA, NB, &b, &err)) return -1;
    if (h_view_of(a, &va, &err) || h_view_of(b, &vb, &err)) return -1;
    idt_store_decref(a);
    idt_store_decref(b);
    if (idt_view_shuffle(vb, 77, &sb, &err)) return -1;
    if (idt_view_concat((idt_view *[]){va, sb}, 2, &F.v, &err)) return -1;
    if (idt_view_slice(va, NA - 1, -1, NA, &ra, &err)) return -1;
    if (idt_view_concat((idt_view *[]){ra, F.v}, 2, &F.w, &err)) return -1;
    idt_view_decref(va);
    idt_view_decref(vb);
    idt_view_decref(sb);
    idt_view_decref(ra);
    int64_t *ids = ids_of(F.v);
    memcpy(F.ids, ids, sizeof F.ids);
    free(ids);
    ids = ids_of(F.w);
    memcpy(F.wids, ids, sizeof F.wids);
    free(ids);
    int64_t *bid = malloc(NBIG * 8);
    for (int64_t i = 0; i < NBIG; i++) bid[i] = i;
    h_col bc[1] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, bid, 0, NULL}};
    int rc = h_view(bc, 1, NBIG, &F.big, &err);
    free(bid);
    if (rc) return -1;
    h_seed(5);
    for (int i = 0; i < NIDX; i++) {
        int64_t x = h_range(0, N - 1);
        F.idx[i] = i % 3 == 0 ? x - N : i % 7 == 0 && i ? F.idx[i - 1] : x;
    }
    for (int i = 0; i < N; i++) F.mask[i] = (uint8_t)(h_rand() % 3 == 0);
    F.seed = 1234;
    idt_view *s;
    if (idt_view_shuffle(F.v, F.seed, &s, &err)) return -1;
    F.shuf = ids_of(s);
    idt_view_decref(s);
    if (idt_view_shuffle(F.big, F.seed, &s, &err)) return -1;
    F.bigshuf = ids_of(s);
    idt_view_decref(s);
    for (int k = 0; k < 4; k++)
        if (model_store(1000 + 50 * k, 50, &F.pieces[k], &err)) return -1;
    if (saves_new()) return -1;
    F.fingerprint = fingerprint();
    return 0;
}

static void fixture_free(void) {
    saves_free();
    idt_view_decref(F.v);
    idt_view_decref(F.w);
    idt_view_decref(F.big);
    free(F.shuf);
    free(F.bigshuf);
    for (int k = 0; k < 4; k++) idt_store_decref(F.pieces[k]);
    memset(F.pieces, 0, sizeof F.pieces);
    F.v = F.w = F.big = NULL;
}

static int inputs_unchanged(void) {
    return fingerprint() == F.fingerprint && same_ids(F.v, F.ids, N) && same_ids(F.w, F.wids, NA + N);
}

/* ---- the operations: run (under the fault), then check and release (disarmed) ---- */

typedef struct op {
    const char *name;
    int (*run)(void **out, idt_error *err);
    int (*check)(void *out); /* 1 when the result is right */
    void (*release)(void *out);
    void (*prepare)(void);   /* before each run (may be NULL) */
    int (*check_fail)(void); /* after a failed run: 1 when all is as before (may be NULL) */
    int warm_only;           /* reads temp files by name: not after a shutdown */
} op;

static void release_view(void *p) { idt_view_decref(p); }
static void release_store(void *p) { idt_store_decref(p); }
static void release_none(void *p) { (void)p; }
static int check_none(void *p) { (void)p; return 1; }

static int run_build(void **out, idt_error *err) { return model_store(100, 50, (idt_store **)out, err); }
static int check_build(void *p) {
    idt_store *st = p;
    idt_view *v;
    idt_error err;
    if (st->nrows != 50 || h_view_of(st, &v, &err)) return 0;
    int64_t want[50];
    for (int i = 0; i < 50; i++) want[i] = 100 + i;
    int ok = same_ids(v, want, 50);
    /* the strings too */
    void *outs[4];
    int64_t w[4];
    h_gather(v, &(idt_rowsel){0, 1, 50, NULL}, outs, w);
    int64_t js = h_vcol(v, "s");
    uint32_t *s = outs[js];
    char enc[32];
    int l = model_s(149, enc);
    uint32_t dec[32];
    idt_utf8_decode(enc, (size_t)l, dec, w[js]);
    ok &= !memcmp(s + 49 * w[js], dec, (size_t)w[js] * 4);
    h_free_outs(outs, 4);
    idt_view_decref(v);
    return ok;
}

/* Arena churn: stores made and dropped inside the run, so their ranges are given back (hole
 * punching, zeroing where punching fails) under faults; a blob then made in the freed space
 * must read as zeros, and the result (a store) lands in reused space. */
static int churn_zero_ok;
static int run_churn(void **out, idt_error *err) {
    size_t old_slack = idt_tmp_slack_set(0); /* give freed space back at once: punch now */
    idt_store *tmp[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) rc = model_store(1000 * (k + 1), 20 + 70 * k, &tmp[k], err);
    for (int k = 0; k < 3; k++) idt_store_decref(tmp[k]);
    idt_tmp_slack_set(old_slack);
    if (rc) return rc;
    idt_blob *b;
    if ((rc = idt_blob_new(9000, &b, err)) != 0) return rc;
    churn_zero_ok = 1;
    for (size_t i = 0; i < b->size; i++)
        if (b->data[i]) churn_zero_ok = 0;
    idt_blob_decref(b);
    return model_store(100, 50, (idt_store **)out, err);
}
static int check_churn(void *p) { return churn_zero_ok && check_build(p); }

/* A store big enough for a dedicated file, written by pwrite. */
static int run_build_big(void **out, idt_error *err) {
    enum { NB2 = 140000 };
    static int64_t *id;
    static const char **s;
    static int64_t *sl;
    if (!id) {
        id = malloc(NB2 * 8);
        s = malloc(NB2 * sizeof *s);
        sl = malloc(NB2 * 8);
        for (int64_t i = 0; i < NB2; i++) {
            id[i] = i;
            s[i] = i % 2 ? "odd" : "ev\xC3\xA9n";
            sl[i] = i % 2 ? 3 : 5;
        }
    }
    h_col c[2] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                  {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, sl}};
    return h_store(c, 2, NB2, (idt_store **)out, err);
}
static int check_build_big(void *p) {
    idt_store *st = p;
    const int64_t *id = (const int64_t *)st->cols[0].data;
    return st->nrows == 140000 && st->blob->kind == IDT_BLOB_FILE && id[139999] == 139999 &&
           st->cols[1].offsets[140000] == 70000 * 8;
}

static int run_from_store(void **out, idt_error *err) {
    idt_store *st = F.v->segs[0].store;
    int64_t cols[2] = {2, 0};
    return idt_view_from_store(st, cols, 2, (idt_view **)out, err);
}
static int check_from_store(void *p) { return idt_view_len((idt_view *)p) == NA; }

static int run_slice(void **out, idt_error *err) {
    return idt_view_slice(F.w, NA + N - 1, -3, (NA + N) / 3, (idt_view **)out, err);
}
static int check_slice(void *p) {
    int64_t want[(NA + N) / 3];
    for (int i = 0; i < (NA + N) / 3; i++) want[i] = F.wids[NA + N - 1 - 3 * i];
    return same_ids(p, want, (NA + N) / 3);
}

static int run_take(void **out, idt_error *err) { return idt_view_take(F.w, F.idx, NIDX, (idt_view **)out, err); }
static int check_take(void *p) {
    int64_t want[NIDX];
    for (int i = 0; i < NIDX; i++) want[i] = F.wids[F.idx[i] < 0 ? F.idx[i] + NA + N : F.idx[i]];
    return same_ids(p, want, NIDX);
}

static int run_filter(void **out, idt_error *err) { return idt_view_filter(F.v, F.mask, N, (idt_view **)out, err); }
static int check_filter(void *p) {
    int64_t want[N], k = 0;
    for (int i = 0; i < N; i++)
        if (F.mask[i]) want[k++] = F.ids[i];
    return same_ids(p, want, k);
}

static int run_concat(void **out, idt_error *err) {
    return idt_view_concat((idt_view *[]){F.v, F.w, F.v}, 3, (idt_view **)out, err);
}
static int check_concat(void *p) {
    static int64_t want[N + NA + N + N];
    memcpy(want, F.ids, N * 8);
    memcpy(want + N, F.wids, (NA + N) * 8);
    memcpy(want + N + NA + N, F.ids, N * 8);
    return same_ids(p, want, N + NA + N + N);
}

static int run_shuffle(void **out, idt_error *err) { return idt_view_shuffle(F.v, F.seed, (idt_view **)out, err); }
static int check_shuffle(void *p) { return same_ids(p, F.shuf, N); }

static int run_shuffle_big(void **out, idt_error *err) {
    return idt_view_shuffle(F.big, F.seed, (idt_view **)out, err);
}
static int check_shuffle_big(void *p) { return same_ids(p, F.bigshuf, NBIG); }

static int run_select(void **out, idt_error *err) {
    return idt_view_select(F.w, (const char *[]){"b", "id", "s"}, 3, (idt_view **)out, err);
}
static int check_select(void *p) { return ((idt_view *)p)->ncols == 3 && same_ids(p, F.wids, NA + N); }

/* Column groups and renames: rename F.w's "id" to "k", shuffle it, zip its "k" beside F.w's
 * own "id", "s" and take rows of the result (the take composes each group). */
static int run_groups(void **out, idt_error *err) {
    idt_view *r = NULL, *sh = NULL, *a = NULL, *b = NULL, *z = NULL;
    int rc = idt_view_rename(F.w, (const char *[]){"id"}, (const char *[]){"k"}, 1, &r, err);
    if (!rc) rc = idt_view_shuffle(r, F.seed, &sh, err);
    if (!rc) rc = idt_view_select(sh, (const char *[]){"k"}, 1, &b, err);
    if (!rc) rc = idt_view_select(F.w, (const char *[]){"id", "s"}, 2, &a, err);
    if (!rc) rc = idt_view_zip((idt_view *[]){a, b}, 2, &z, err);
    if (!rc) rc = idt_view_take(z, F.idx, NIDX, (idt_view **)out, err);
    idt_view_decref(r);
    idt_view_decref(sh);
    idt_view_decref(a);
    idt_view_decref(b);
    idt_view_decref(z);
    return rc;
}
static int check_groups(void *p) {
    idt_view *v = p;
    if (!check_take(p) || v->ngroups != 2 || v->ncols != 3) return 0;
    idt_view *s;
    idt_error err;
    if (idt_view_shuffle(F.w, F.seed, &s, &err)) return 0;
    int64_t *shuf = ids_of(s), *k = h_col_i64(v, h_vcol(v, "k")), ok = 1;
    for (int i = 0; i < NIDX; i++) ok &= k[i] == shuf[F.idx[i] < 0 ? F.idx[i] + NA + N : F.idx[i]];
    free(shuf);
    free(k);
    idt_view_decref(s);
    return (int)ok;
}

static int run_remove(void **out, idt_error *err) {
    const char *gone[3] = {"s1\xC3\xA9", "", "s400"};
    int64_t gl[3] = {4, 0, 4};
    return idt_view_remove_strings(F.v, "s", gone, gl, 3, (idt_view **)out, err);
}
static int check_remove(void *p) {
    int64_t want[N], k = 0;
    for (int i = 0; i < N; i++) {
        int64_t x = F.ids[i];
        if (x != 1 && x != 400 && x % 7 != 3) want[k++] = x;
    }
    return same_ids(p, want, k);
}

/* Iterate F.w in batches; the result is checked as it goes. */
static int batch_run(int64_t threads, int64_t readahead, idt_error *err) {
    idt_batcher *it;
    int rc = idt_batcher_new(F.w, 64, 0, threads, readahead, &it, err);
    if (rc) return rc;
    int64_t seen = 0;
    for (;;) {
        idt_batch *b;
        rc = idt_batcher_next(it, &b, -1, err);
        if (rc != IDT_NEXT_BATCH) break;
        const idt_view *v = idt_batcher_view(it);
        int64_t jid = h_vcol(v, "id");
        if (b->index * 64 != seen || memcmp(b->bufs[jid], F.wids + seen, (size_t)b->nrows * 8)) {
            h_fail(__FILE__, __LINE__, "batch %lld differs", (long long)b->index);
            rc = IDT_EVALUE;
            idt_error_set(err, rc, "batch differs");
            idt_batch_free(b);
            break;
        }
        seen += b->nrows;
        idt_batch_free(b);
    }
    if (rc == 0 && seen != NA + N) {
        h_fail(__FILE__, __LINE__, "batches ended after %lld rows", (long long)seen);
        rc = idt_error_set(err, IDT_EVALUE, "short");
    }
    idt_batcher_free(it);
    return rc;
}
static int run_batch_sync(void **out, idt_error *err) {
    *out = NULL;
    return batch_run(1, 0, err);
}
static int run_batch_threads(void **out, idt_error *err) {
    *out = NULL;
    return batch_run(3, 4, err);
}

static int run_flatten(void **out, idt_error *err) { return idt_view_flatten(F.w, 1, NULL, (idt_view **)out, err); }
static int run_flatten_threads(void **out, idt_error *err) {
    return idt_view_flatten(F.w, 3, NULL, (idt_view **)out, err);
}
static int check_flatten(void *p) {
    const idt_view *v = p;
    return v->nseg == 1 && v->segs[0].kind == IDT_SEG_RUN && same_ids(p, F.wids, NA + N);
}

/* A writer given the four pieces, merging every 3 small ones. */
static int run_writer(void **out, idt_error *err) {
    idt_writer *w;
    int rc = idt_writer_new(F.pieces[0]->schema, &w, err);
    if (rc) return rc;
    idt_writer_set_merge_count(w, 3);
    for (int k = 0; k < 4 && !rc; k++) rc = idt_writer_add(w, F.pieces[k], NULL, err);
    if (rc) {
        idt_writer_free(w);
        return rc;
    }
    int64_t cols[4] = {0, 1, 2, 3};
    return idt_writer_finish(w, cols, 4, (idt_view **)out, err);
}
static int check_writer(void *p) {
    int64_t want[200];
    for (int i = 0; i < 200; i++) want[i] = 1000 + i;
    return same_ids(p, want, 200) && ((idt_view *)p)->nseg == 2;
}

/* A writer whose pieces over 1 MiB go to its pool (no own files): three pieces carved from
 * the pool's first extent (made by the first piece). */
enum { POOL_ROWS = (1 << 17) + 64 };
static int run_writer_pool(void **out, idt_error *err) {
    idt_column cd = {"x", IDT_COL_FIXED, "<i8", 8, 0, NULL, 1, 8};
    idt_schema *s;
    int rc = idt_schema_new(&cd, 1, &s, err);
    if (rc) return rc;
    idt_writer *w = NULL;
    int64_t *x = idt_malloc(POOL_ROWS * 8);
    if (!x) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc) rc = idt_writer_new(s, &w, err);
    if (!rc) idt_writer_set_own_files(w, 0);
    for (int k = 0; k < 3 && !rc; k++) {
        for (int64_t i = 0; i < POOL_ROWS; i++) x[i] = k * POOL_ROWS + i;
        idt_store_builder *b;
        idt_store *st;
        rc = idt_store_builder_new_in(s, POOL_ROWS, NULL, idt_writer_pool(w), &b, err);
        if (rc) break;
        rc = idt_store_builder_write_fixed(b, 0, 0, POOL_ROWS, x, err);
        if (rc) {
            idt_store_builder_free(b);
            break;
        }
        rc = idt_store_builder_finish(b, &st, err);
        if (!rc) {
            rc = idt_writer_add(w, st, NULL, err);
            idt_store_decref(st);
        }
    }
    idt_free(x);
    idt_schema_decref(s);
    if (rc) {
        idt_writer_free(w);
        return rc;
    }
    int64_t col = 0;
    return idt_writer_finish(w, &col, 1, (idt_view **)out, err);
}
static int check_writer_pool(void *p) {
    const idt_view *v = p;
    if (idt_view_len(v) != 3 * POOL_ROWS) return 0;
    int64_t idx[3] = {0, POOL_ROWS + 7, 3 * POOL_ROWS - 1}, got[3], widths[1] = {0};
    void *outs[1] = {got};
    idt_view_gather(v, &(idt_rowsel){0, 1, 3, idx}, outs, widths);
    return got[0] == idx[0] && got[1] == idx[1] && got[2] == idx[2];
}

/* Saving into a directory that does not exist yet: a failed save leaves no directory. */
static void prepare_save_new(void) { rm_flat(F.save_new); }
static int run_save_new(void **out, idt_error *err) {
    *out = NULL;
    return idt_view_save(F.w, F.save_new, "w", 0, err);
}
static int load_is(const char *dir, const char *name, const int64_t *ids, int64_t n) {
    idt_view *v;
    idt_error err;
    if (idt_view_load(dir, name, &v, &err)) {
        h_fail(__FILE__, __LINE__, "load %s/%s: %s", dir, name, err.msg);
        return 0;
    }
    int ok = same_ids(v, ids, n);
    idt_view_decref(v);
    return ok;
}
static int check_save_new(void *p) {
    (void)p;
    return load_is(F.save_new, "w", F.wids, NA + N);
}
static int check_fail_save_new(void) {
    if (!h_exists(F.save_new)) return 1;
    h_names l;
    h_names_list(F.save_new, &l);
    h_fail(__FILE__, __LINE__, "a failed save left '%s' with %d entries (first '%s')", F.save_new,
           l.n, l.n ? l.names[0] : "");
    h_names_free(&l);
    return 0;
}

/* Saving over a saved name: a failed save leaves the old view and files as they were. */
static int run_save_over(void **out, idt_error *err) {
    *out = NULL;
    return idt_view_save(F.w, F.save_over, "x", 1, err);
}
static int check_save_over(void *p) {
    (void)p;
    return load_is(F.save_over, "x", F.wids, NA + N);
}
static void release_save_over(void *p) {
    (void)p;
    idt_error err;
    rm_flat(F.save_over);
    if (idt_view_save(F.v, F.save_over, "x", 0, &err)) h_fail(__FILE__, __LINE__, "save: %s", err.msg);
}
static int check_fail_save_over(void) {
    h_names l;
    char buf[256];
    h_names_list(F.save_over, &l);
    int same = h_names_equal(&F.over_files, &l, buf, sizeof buf);
    h_names_free(&l);
    if (!same) h_fail(__FILE__, __LINE__, "a failed save changed '%s': %s", F.save_over, buf);
    return same && load_is(F.save_over, "x", F.ids, N);
}

static int run_load(void **out, idt_error *err) { return idt_view_load(F.save_load, "w", (idt_view **)out, err); }
static int check_load(void *p) { return same_ids(p, F.wids, NA + N); }

static int run_from_descr(void **out, idt_error *err) {
    return idt_view_from_description(F.descr, F.descr_len, (idt_view **)out, err);
}

/* Put n bytes of data at dir/name as a new file (never through a link into the temp area). */
static void plant(const char *dir, const char *name, const char *data, size_t n) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Saving next to a damaged file under a content name: the save checks what it finds and
 * replaces it. A failed save leaves the names as they were and "x" unchanged. */
static void prepare_save_dmg(void) {
    idt_error err;
    rm_flat(F.save_dmg);
    if (idt_view_save(F.w, F.save_dmg, "x", 0, &err)) h_fail(__FILE__, __LINE__, "save: %s", err.msg);
    h_names_free(&dmg_files);
    h_names_list(F.save_dmg, &dmg_files);
    for (int i = 0; i < dmg_files.n; i++) {
        if (dmg_files.names[i][0] != 's') continue;
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", F.save_dmg, dmg_files.names[i]);
        FILE *f = fopen(p, "rb");
        static char buf[1 << 20];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        if (n) buf[n - 1] ^= 0x55; /* the last row byte: only the content checksum sees it */
        plant(F.save_dmg, dmg_files.names[i], buf, n);
        break;
    }
}
static int run_save_dmg(void **out, idt_error *err) {
    *out = NULL;
    return idt_view_save(F.w, F.save_dmg, "y", 0, err);
}
static int check_save_dmg(void *p) {
    (void)p;
    return load_is(F.save_dmg, "y", F.wids, NA + N) && load_is(F.save_dmg, "x", F.wids, NA + N);
}
static int check_fail_save_dmg(void) {
    h_names l;
    char buf[256];
    h_names_list(F.save_dmg, &l);
    int same = h_names_equal(&dmg_files, &l, buf, sizeof buf);
    h_names_free(&l);
    if (!same) h_fail(__FILE__, __LINE__, "a failed save changed '%s': %s", F.save_dmg, buf);
    return same;
}

/* Sweeping a saved directory: the dead save's temp file and the orphans go, "w" stays. */
static const char *GC_TMP = ".tmp-0123456789abcdef-s-00000000000000000000000000000000.idt";
static const char *GC_ORPHAN = "r-11111111111111111111111111111111.idt";
static const char *GC_FOREIGN = "notes.txt";
static void prepare_gc(void) {
    idt_error err;
    rm_flat(F.save_gc);
    if (idt_view_save(F.w, F.save_gc, "w", 0, &err)) h_fail(__FILE__, __LINE__, "save: %s", err.msg);
    plant(F.save_gc, GC_TMP, "tmp", 3);
    plant(F.save_gc, GC_ORPHAN, "orphan", 6);
    plant(F.save_gc, GC_FOREIGN, "mine", 4);
}
static int run_gc(void **out, idt_error *err) {
    *out = NULL;
    idt_saved_gc_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = idt_saved_gc(F.save_gc, 0, &rep, err);
    if (!rc && (rep.tmp_files != 1 || rep.data_files != 1 || rep.bytes != 9 || rep.manifests_unreadable))
        h_fail(__FILE__, __LINE__, "gc report: %lld tmp, %lld data, %lld bytes, unreadable %d",
               (long long)rep.tmp_files, (long long)rep.data_files, (long long)rep.bytes,
               rep.manifests_unreadable);
    return rc;
}
static int gc_left(const char *name) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", F.save_gc, name);
    return h_exists(p);
}
static int check_gc(void *p) {
    (void)p;
    return !gc_left(GC_TMP) && !gc_left(GC_ORPHAN) && gc_left(GC_FOREIGN) &&
           load_is(F.save_gc, "w", F.wids, NA + N);
}
static int check_fail_gc(void) { return gc_left(GC_FOREIGN) && load_is(F.save_gc, "w", F.wids, NA + N); }

static const op OPS[] = {
    {"build store", run_build, check_build, release_store, NULL, NULL, 0},
    {"build big store", run_build_big, check_build_big, release_store, NULL, NULL, 0},
    {"arena churn", run_churn, check_churn, release_store, NULL, NULL, 0},
    {"view from store", run_from_store, check_from_store, release_view, NULL, NULL, 0},
    {"slice", run_slice, check_slice, release_view, NULL, NULL, 0},
    {"take", run_take, check_take, release_view, NULL, NULL, 0},
    {"filter", run_filter, check_filter, release_view, NULL, NULL, 0},
    {"concat", run_concat, check_concat, release_view, NULL, NULL, 0},
    {"shuffle", run_shuffle, check_shuffle, release_view, NULL, NULL, 0},
    {"shuffle big", run_shuffle_big, check_shuffle_big, release_view, NULL, NULL, 0},
    {"select", run_select, check_select, release_view, NULL, NULL, 0},
    {"remove_strings", run_remove, check_remove, release_view, NULL, NULL, 0},
    {"zip, rename, take", run_groups, check_groups, release_view, NULL, NULL, 0},
    {"batches (sync)", run_batch_sync, check_none, release_none, NULL, NULL, 0},
    {"batches (3 threads)", run_batch_threads, check_none, release_none, NULL, NULL, 0},
    {"save (new dir)", run_save_new, check_save_new, release_none, prepare_save_new, check_fail_save_new, 0},
    {"save (overwrite)", run_save_over, check_save_over, release_save_over, NULL, check_fail_save_over, 0},
    {"save (damaged file)", run_save_dmg, check_save_dmg, release_none, prepare_save_dmg, check_fail_save_dmg, 0},
    {"saved gc", run_gc, check_gc, release_none, prepare_gc, check_fail_gc, 0},
    {"load", run_load, check_load, release_view, NULL, NULL, 0},
    {"from description", run_from_descr, check_load, release_view, NULL, NULL, 1},
    {"flatten", run_flatten, check_flatten, release_view, NULL, NULL, 0},
    {"flatten (3 threads)", run_flatten_threads, check_flatten, release_view, NULL, NULL, 0},
    {"writer", run_writer, check_writer, release_view, NULL, NULL, 0},
    {"writer (pool)", run_writer_pool, check_writer_pool, release_view, NULL, NULL, 0},
};
enum { NOPS = sizeof OPS / sizeof OPS[0] };

/* ---- the loop ---- */

enum { P_ANY, P_ALLOC, P_OPEN, P_FALLOCATE, P_MMAP, P_WRITE, P_RENAME, P_LINK, P_MKDIR, P_ADVISE,
       P_PUNCH, P_SYNC, P_TRUNCATE, P_STAT, P_LOCK, P_STICKY, P_COLD, P_COLD_MKDIR, P_COLD_RENAME,
       P_COLD_STAT, P_COLD_LOCK, P_COLD_TRUNCATE, NPASS };
static const char *PASS_NAME[NPASS] = {"any", "alloc", "open", "fallocate", "mmap", "write",
                                       "rename", "link", "mkdir", "advise", "punch", "sync",
                                       "truncate", "stat", "lock", "sticky", "cold", "cold-mkdir",
                                       "cold-rename", "cold-stat", "cold-lock", "cold-truncate"};
static const idt_fault_kind PASS_KIND[NPASS] = {
    IDT_FAULT_ANY, IDT_FAULT_ALLOC, IDT_FAULT_OPEN, IDT_FAULT_FALLOCATE, IDT_FAULT_MMAP,
    IDT_FAULT_WRITE, IDT_FAULT_RENAME, IDT_FAULT_LINK, IDT_FAULT_MKDIR, IDT_FAULT_ADVISE,
    IDT_FAULT_PUNCH, IDT_FAULT_SYNC, IDT_FAULT_TRUNCATE, IDT_FAULT_STAT, IDT_FAULT_LOCK,
    IDT_FAULT_ANY, IDT_FAULT_ANY, IDT_FAULT_MKDIR, IDT_FAULT_RENAME, IDT_FAULT_STAT,
    IDT_FAULT_LOCK, IDT_FAULT_TRUNCATE};

typedef struct tally {
    int64_t injected[NPASS];  /* runs in which a fault fired */
    int64_t errors, succeeded_with_fault;
    int nmsg;
    char msgs[64][96];        /* distinct failure messages, numbers and quoted text elided */
} tally;

static tally T[NOPS];

static void note_msg(tally *t, const char *msg) {
    char norm[96];
    size_t o = 0;
    int quoted = 0;
    for (const char *p = msg; *p && o + 1 < sizeof norm; p++) {
        if (*p == '\'') {
            quoted = !quoted;
            if (quoted) norm[o++] = '*';
            continue;
        }
        if (quoted) continue;
        if (*p >= '0' && *p <= '9') {
            if (o == 0 || norm[o - 1] != '#') norm[o++] = '#';
            continue;
        }
        norm[o++] = *p;
    }
    norm[o] = 0;
    for (int i = 0; i < t->nmsg; i++)
        if (!strcmp(t->msgs[i], norm)) return;
    if (t->nmsg < 64) snprintf(t->msgs[t->nmsg++], sizeof t->msgs[0], "%s", norm);
}

/* The entries of the temp root and, in it, of this process's directory. */
static void temp_listing(int cold, h_names *out) {
    if (cold) {
        h_names_list(idt_tmp_root(), out);
        return;
    }
    const char *d;
    idt_error err;
    if (idt_tmp_procdir(&d, &err)) {
        out->n = 0;
        out->names = NULL;
        return;
    }
    h_names_list(d, out);
}

/* One run of op with the nth call of the pass's kind failing. Returns 1 when the run
 * completed with no fault fired (the loop is done), 0 to go on, -1 on a test failure. */
static int one_run(int o, int pass, int64_t nth, int retry) {
    const op *p = &OPS[o];
    int cold = pass >= P_COLD;
    if (cold) idt_tmp_shutdown();
    if (p->prepare) p->prepare();
    h_snap before;
    h_names files_before;
    temp_listing(cold, &files_before);
    h_snap_take(&before);
    idt_error err;
    idt_error_clear(&err);
    void *out = NULL;
    idt_fault_arm(PASS_KIND[pass], nth, 0, pass == P_STICKY);
    int rc = p->run(&out, &err);
    int64_t fired = idt_fault_fired();
    idt_fault_reset();
    int result = 0;
    char where[160];
    snprintf(where, sizeof where, "%s, pass %s, fault at call %lld", p->name, PASS_NAME[pass],
             (long long)nth);
    if (rc == 0) {
        if (!p->check(out)) {
            h_fail(__FILE__, __LINE__, "%s: succeeded (%lld faults fired) with a wrong result", where,
                   (long long)fired);
            result = -1;
        }
        p->release(out);
        if (fired == 0) result = result ? result : 1;
        else T[o].succeeded_with_fault++;
    } else {
        if (rc != IDT_ENOMEM && rc != IDT_EIO) {
            h_fail(__FILE__, __LINE__, "%s: unexpected code %d (%s)", where, rc, err.msg);
            result = -1;
        } else if (err.code != rc || !err.msg[0]) {
            h_fail(__FILE__, __LINE__, "%s: code %d but err.code %d, message '%s'", where, rc,
                   err.code, err.msg);
            result = -1;
        } else if (fired == 0) {
            h_fail(__FILE__, __LINE__, "%s: failed with no fault fired: %s", where, err.msg);
            result = -1;
        }
        T[o].errors++;
        note_msg(&T[o], err.msg);
        if (p->check_fail && !p->check_fail()) {
            h_fail(__FILE__, __LINE__, "%s: the failure (%s) left things changed", where, err.msg);
            result = -1;
        }
    }
    if (fired) T[o].injected[pass]++;
    if (cold) idt_tmp_shutdown();
    /* nothing leaked, no file left, inputs as they were */
    h_snap after;
    char buf[256], buf2[256];
    h_snap_take(&after);
    h_names files_after;
    temp_listing(cold, &files_after);
    int same_snap = h_snap_equal(&before, &after, buf, sizeof buf);
    int same_files = h_names_equal(&files_before, &files_after, buf2, sizeof buf2);
    h_names_free(&files_before);
    h_names_free(&files_after);
    if (!same_snap || !same_files) {
        /* The arena's current chunk may have filled up and been replaced during this run
         * (a new chunk file, a mapping held by the inputs' blobs): run the same N again. */
        if (!retry) {
            if (T[o].injected[pass] && fired) T[o].injected[pass]--;
            return one_run(o, pass, nth, 1);
        }
        if (!same_snap) h_fail(__FILE__, __LINE__, "%s: leaked (%s); rc %d %s", where, buf, rc, err.msg);
        if (!same_files) h_fail(__FILE__, __LINE__, "%s: temp files changed (%s); rc %d %s", where, buf2, rc, err.msg);
        result = -1;
    }
    if (!inputs_unchanged()) {
        h_fail(__FILE__, __LINE__, "%s: inputs changed (refs %lld, were %lld)", where,
               (long long)fingerprint(), (long long)F.fingerprint);
        result = -1;
    }
    return result;
}

static void fault_loop(int o, int pass) {
    for (int64_t nth = 1;; nth++) {
        int r = one_run(o, pass, nth, 0);
        if (r == 1) break;
        if (r < 0) break;
        if (nth > 20000) {
            h_fail(__FILE__, __LINE__, "%s: pass %s never completes", OPS[o].name, PASS_NAME[pass]);
            break;
        }
    }
}

static void run_passes(int first_pass, int last_pass) {
    for (int o = 0; o < NOPS; o++) {
        int fails = h_test_failures;
        for (int pass = first_pass; pass <= last_pass && h_test_failures == fails; pass++)
            if (!(OPS[o].warm_only && pass >= P_COLD)) fault_loop(o, pass);
    }
}

static void report(int first_pass, int last_pass) {
    int64_t total = 0;
    for (int o = 0; o < NOPS; o++) {
        char line[512];
        int n = snprintf(line, sizeof line, "  %-20s", OPS[o].name);
        int64_t sum = 0;
        for (int pass = first_pass; pass <= last_pass; pass++) {
            n += snprintf(line + n, sizeof line - (size_t)n, " %s %lld", PASS_NAME[pass],
                          (long long)T[o].injected[pass]);
            sum += T[o].injected[pass];
        }
        total += sum;
        printf("%s | %lld injected, %d distinct errors\n", line, (long long)sum, T[o].nmsg);
    }
    printf("  fault sites exercised (runs with an injected failure): %lld\n", (long long)total);
}

static void test_fault_warm(void) {
    REQUIRE(fixture_new() == 0);
    double t0 = h_now();
    run_passes(P_ANY, P_STICKY);
    fixture_free();
    printf("  warm passes (%.1fs):\n", h_now() - t0);
    report(P_ANY, P_STICKY);
}

/* With the temp area shut down before each run. */
static void test_fault_cold(void) {
    h_no_leak_check(); /* the process directory is made anew; counts are checked below */
    h_snap before;
    h_snap_take(&before);
    REQUIRE(fixture_new() == 0);
    double t0 = h_now();
    run_passes(P_COLD, P_COLD_TRUNCATE);
    fixture_free();
    /* back to a warm temp area: everything is as it was */
    idt_blob *b;
    idt_error err;
    REQUIRE(CHECK_OK(idt_blob_new(1, &b, &err), err) == 0);
    idt_blob_decref(b);
    CHECK_SNAP(before);
    printf("  cold passes (%.1fs):\n", h_now() - t0);
    report(P_COLD, P_COLD_TRUNCATE);
}

/* Every distinct failure message seen, per operation (after the passes above ran). */
static void test_fault_messages(void) {
    for (int o = 0; o < NOPS; o++) {
        if (!T[o].errors) continue; /* its passes were not run (a filter) */
        printf("  %s: %lld errors, %lld runs succeeded despite a fault\n", OPS[o].name,
               (long long)T[o].errors, (long long)T[o].succeeded_with_fault);
        for (int i = 0; i < T[o].nmsg; i++) printf("    %s\n", T[o].msgs[i]);
    }
}

/* The seam itself: counting, nth, sticky, disarm. */
static void test_seam(void) {
    int64_t c0 = idt_sys_calls(IDT_FAULT_ALLOC), any0 = idt_sys_calls(IDT_FAULT_ANY);
    idt_fault_arm(IDT_FAULT_ALLOC, 2, 0, 0);
    void *a = idt_malloc(8), *b = idt_malloc(8), *c = idt_malloc(8);
    CHECK(a != NULL);
    CHECK(b == NULL);
    CHECK(c != NULL);
    CHECK_EQ(idt_fault_fired(), 1);
    CHECK_EQ(idt_sys_calls(IDT_FAULT_ALLOC), c0 + 3);
    CHECK_EQ(idt_sys_calls(IDT_FAULT_ANY), any0 + 3);
    idt_fault_arm(IDT_FAULT_ALLOC, 1, 0, 1);
    CHECK(idt_calloc(1, 1) == NULL);
    CHECK(idt_strdup("x") == NULL);
    CHECK(idt_realloc(NULL, 4) == NULL);
    CHECK_EQ(idt_fault_fired(), 3);
    idt_fault_reset();
    CHECK_EQ(idt_fault_fired(), 0);
    void *d = idt_realloc(NULL, 4);
    CHECK(d != NULL);
    idt_fault_arm(IDT_FAULT_OPEN, 1, 0, 0);
    CHECK(idt_open("/dev/null", 0, 0) < 0);
    CHECK(idt_fault_fired() == 1);
    idt_fault_arm(IDT_FAULT_ANY, 1, 12345, 0);
    CHECK(idt_mkdir("/nonexistent-dir-x", 0700) < 0);
    idt_fault_arm(IDT_FAULT_ALLOC, 0, 0, 0); /* nth 0 disarms */
    void *e = idt_malloc(1);
    CHECK(e != NULL);
    idt_free(a);
    idt_free(c);
    idt_free(d);
    idt_free(e);
    idt_error err;
    CHECK_EQ(idt_error_sys(&err, 28, "writing '%s'", "x"), IDT_EIO);
    CHECK(strstr(err.msg, "writing 'x': ") == err.msg);
    CHECK_EQ(err.sys_errno, 28);
    CHECK_EQ(idt_error_sys(&err, 12, "alloc"), IDT_ENOMEM);
    idt_error_clear(&err);
    CHECK_EQ(err.code, 0);
    CHECK_EQ(err.msg[0], 0);
    CHECK_EQ(idt_error_set(NULL, IDT_EKEY, "x"), IDT_EKEY);
    /* the codes' reserved range: none is -1 / -2 (internal helpers) or an errno value */
    const int codes[] = {IDT_ENOMEM, IDT_EIO, IDT_EINDEX, IDT_EVALUE, IDT_ETYPE, IDT_EKEY,
                         IDT_ECORRUPT, IDT_EEXIST, IDT_ECANCELLED};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK(idt_error_known(codes[i]));
        CHECK(codes[i] <= -1000);
        for (size_t j = 0; j < i; j++) CHECK(codes[i] != codes[j]);
    }
    CHECK(!idt_error_known(0) && !idt_error_known(-1) && !idt_error_known(-2) && !idt_error_known(-ENOMEM));
    CHECK(!idt_error_known(-1000) && !idt_error_known(IDT_E_LAST - 1));
}

/* The first blob of a process under every fault: no half-made directory or file. */
static void test_first_blob(void) {
    h_no_leak_check();
    h_snap before;
    h_snap_take(&before);
    int64_t injected = 0;
    size_t sizes[2] = {100, IDT_ARENA_MAX + 1};
    for (int s = 0; s < 2; s++)
        for (int64_t nth = 1; nth < 1000; nth++) {
            idt_tmp_shutdown();
            h_snap b0;
            h_snap_take(&b0);
            idt_blob *b = NULL;
            idt_error err;
            idt_fault_arm(IDT_FAULT_ANY, nth, 0, 0);
            int rc = idt_blob_new(sizes[s], &b, &err);
            int64_t fired = idt_fault_fired();
            idt_fault_reset();
            injected += fired > 0;
            h_names root, proc;
            h_names_list(idt_tmp_root(), &root);
            const char *d = NULL;
            proc.n = 0;
            proc.names = NULL;
            for (int i = 0; i < root.n; i++)
                if (!strncmp(root.names[i], ".new-", 5))
                    h_fail(__FILE__, __LINE__, "size %zu, fault %lld: half-made directory %s left", sizes[s],
                           (long long)nth, root.names[i]);
            if (rc == 0) {
                idt_blob_decref(b);
            } else {
                CHECK(err.msg[0] != 0);
                CHECK(rc == IDT_ENOMEM || rc == IDT_EIO);
                /* what remains of the process directory, if made: the lock only */
                idt_error e2;
                if (root.n && idt_tmp_procdir(&d, &e2) == 0) {
                    h_names_list(d, &proc);
                    if (proc.n != 1 || strcmp(proc.names[0], "lock")) {
                        h_fail(__FILE__, __LINE__,
                               "size %zu, fault %lld (%s): %d entries left in the process directory, first '%s'",
                               sizes[s], (long long)nth, err.msg, proc.n, proc.n ? proc.names[0] : "");
                    }
                }
            }
            h_names_free(&root);
            h_names_free(&proc);
            idt_tmp_shutdown();
            CHECK_SNAP(b0);
            if (rc == 0 && fired == 0) break;
            if (h_test_failures) break;
        }
    idt_blob *b;
    idt_error err;
    REQUIRE(CHECK_OK(idt_blob_new(1, &b, &err), err) == 0);
    idt_blob_decref(b);
    CHECK_SNAP(before);
    printf("  first blob: %lld runs with an injected failure\n", (long long)injected);
}

int main(int argc, char **argv) {
    /* batches advise the kernel (prefetch.c) even though the sweep's tables are in memory, so
     * the sweep covers that path: its madvise and mincore calls fail like any other */
    idt_prefetch_mode(IDT_PREFETCH_ALWAYS);
    static const h_test tests[] = {
        H_TEST(test_seam),
        H_TEST(test_first_blob),
        H_TEST(test_fault_warm),
        H_TEST(test_fault_cold),
        H_TEST(test_fault_messages),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

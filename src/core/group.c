/* group.c: column groups (views of one length side by side: idt_view_zip) and renamed
 * columns (idt_view_rename), without copying rows.
 *
 * A grouped view holds plain views, its groups, each over some of its columns with its own
 * segments; every view operation is applied to each group (the same rows of each) and the
 * results put back together by idt_group_make, which keeps the shape canonical: groups over
 * identical segments merge, one group left is a plain view, so the code paths of plain
 * views never see a group. Reads dispatch per group.
 *
 * A rename shows each store the view reads through an alias store: the same buffers (and
 * blob) under a schema with the new names. Every read path looks columns up in stores by
 * name or by the index of the view's schema, so aliases need nothing from them; ref arrays
 * are re-made over the same file with a slot table of aliases. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "ptrmap.h"
#include "sys.h"

static int oom(idt_error *err) { return idt_error_set(err, IDT_ENOMEM, "out of memory"); }

void idt_group_release(idt_view *v) {
    for (int64_t g = 0; g < v->ngroups; g++) idt_view_decref(v->groups[g]);
    idt_free(v->groups);
    idt_free(v->grp);
    idt_free(v->gcol);
    v->ngroups = 0;
}

/* ---- making grouped views ---- */

static int same_segments(const idt_view *a, const idt_view *b) {
    if (a->schema != b->schema || a->uniform != b->uniform || a->nseg != b->nseg) return 0;
    for (int64_t k = 0; k < a->nseg; k++) {
        const idt_segment *x = &a->segs[k], *y = &b->segs[k];
        if (x->kind != y->kind || x->store != y->store || x->refs != y->refs || x->start != y->start ||
            x->len != y->len || (x->len > 1 && x->step != y->step))
            return 0;
    }
    return 1;
}

/* A plain view showing the columns of a and then those of b (same segments). */
static idt_view *merged(const idt_view *a, const idt_view *b) {
    int64_t n = a->ncols + b->ncols;
    int64_t *cols = idt_malloc((size_t)n * sizeof *cols);
    if (!cols) return NULL;
    memcpy(cols, a->cols, (size_t)a->ncols * sizeof *cols);
    memcpy(cols + a->ncols, b->cols, (size_t)b->ncols * sizeof *cols);
    idt_view *m = idt_view_parts_alloc(a->schema, cols, n, a->uniform, a->nseg);
    idt_free(cols);
    if (!m) return NULL;
    for (int64_t k = 0; k < a->nseg; k++) idt_view_parts_set_seg(m, k, &a->segs[k]);
    idt_view_parts_finish(m, a->nseg);
    return m;
}

/* Shown columns [from, to) of plain view g, as a view. */
static int columns_of(idt_view *g, int64_t from, int64_t to, idt_view **out, idt_error *err) {
    const char **names = idt_malloc((size_t)(to - from) * sizeof *names);
    if (!names) return oom(err);
    for (int64_t c = from; c < to; c++) names[c - from] = idt_view_column(g, c)->name;
    int rc = idt_view_select(g, names, to - from, out, err);
    idt_free(names);
    return rc;
}

int idt_group_make(idt_view *const *gs, int64_t ng, const int64_t *grp, const int64_t *gcol,
                   int64_t ncols, idt_view **out, idt_error *err) {
    int64_t nw = ng, cap = ng;
    for (int64_t g = 0; g < ng; g++) cap += gs[g]->ncols / IDT_GROUP_MAX_COLS;
    idt_view **w = idt_calloc((size_t)cap, sizeof *w);
    int64_t *gp = idt_malloc((size_t)ncols * sizeof *gp), *gc = idt_malloc((size_t)ncols * sizeof *gc);
    idt_column *cd = NULL;
    int64_t *cols = NULL;
    idt_schema *schema = NULL;
    int rc = 0;
    if (!w || !gp || !gc) {
        rc = oom(err);
        goto done;
    }
    for (int64_t g = 0; g < ng; g++) {
        w[g] = gs[g];
        idt_view_incref(w[g]);
    }
    memcpy(gp, grp, (size_t)ncols * sizeof *gp);
    memcpy(gc, gcol, (size_t)ncols * sizeof *gc);
    /* merge groups over the same segments */
    for (int64_t a = 0; a < nw; a++)
        for (int64_t b = a + 1; b < nw; b++) {
            if (!same_segments(w[a], w[b]) || w[a]->ncols + w[b]->ncols > IDT_GROUP_MAX_COLS) continue;
            idt_view *m = merged(w[a], w[b]);
            if (!m) {
                rc = oom(err);
                goto done;
            }
            for (int64_t j = 0; j < ncols; j++) {
                if (gp[j] == b) {
                    gp[j] = a;
                    gc[j] += w[a]->ncols;
                } else if (gp[j] > b) {
                    gp[j]--;
                }
            }
            idt_view_decref(w[a]);
            idt_view_decref(w[b]);
            w[a] = m;
            memmove(w + b, w + b + 1, (size_t)(nw - b - 1) * sizeof *w);
            w[--nw] = NULL;
            b = a; /* the merged group may match one already passed */
        }
    if (nw == 1) {
        int inorder = w[0]->ncols == ncols;
        for (int64_t j = 0; j < ncols && inorder; j++) inorder = gc[j] == j;
        if (inorder) {
            *out = w[0];
            w[0] = NULL;
        } else {
            const char **names = idt_malloc((size_t)ncols * sizeof *names);
            if (!names) {
                rc = oom(err);
                goto done;
            }
            for (int64_t j = 0; j < ncols; j++) names[j] = idt_view_column(w[0], gc[j])->name;
            rc = idt_view_select(w[0], names, ncols, out, err);
            idt_free(names);
        }
        goto done;
    }
    /* split groups wider than IDT_GROUP_MAX_COLS (the gather dispatch keeps per-group
     * arrays of that size on the stack) */
    for (int64_t g = 0; g < nw; g++) {
        int64_t nc = w[g]->ncols, pieces = (nc + IDT_GROUP_MAX_COLS - 1) / IDT_GROUP_MAX_COLS;
        if (pieces <= 1) continue;
        memmove(w + g + pieces, w + g + 1, (size_t)(nw - g - 1) * sizeof *w);
        idt_view *whole = w[g];
        for (int64_t p = 0; p < pieces; p++) w[g + p] = NULL;
        nw += pieces - 1;
        for (int64_t p = 0; p < pieces && !rc; p++) {
            int64_t to = (p + 1) * IDT_GROUP_MAX_COLS;
            rc = columns_of(whole, p * IDT_GROUP_MAX_COLS, to < nc ? to : nc, &w[g + p], err);
        }
        idt_view_decref(whole);
        if (rc) goto done;
        for (int64_t j = 0; j < ncols; j++) {
            if (gp[j] == g) {
                gp[j] = g + gc[j] / IDT_GROUP_MAX_COLS;
                gc[j] %= IDT_GROUP_MAX_COLS;
            } else if (gp[j] > g) {
                gp[j] += pieces - 1;
            }
        }
        g += pieces - 1;
    }
    cd = idt_calloc((size_t)ncols, sizeof *cd);
    cols = idt_malloc((size_t)ncols * sizeof *cols);
    if (!cd || !cols) {
        rc = oom(err);
        goto done;
    }
    for (int64_t j = 0; j < ncols; j++) cd[j] = *idt_view_column(w[gp[j]], gc[j]); /* copied */
    rc = idt_schema_new(cd, ncols, &schema, err);
    if (rc) goto done;
    for (int64_t j = 0; j < ncols; j++) cols[j] = idt_schema_find(schema, cd[j].name);
    idt_view *o = idt_view_parts_alloc(schema, cols, ncols, 1, 0);
    if (!o) {
        rc = oom(err);
        goto done;
    }
    idt_view_parts_finish(o, 0);
    o->cum[0] = idt_view_len(w[0]);
    o->ngroups = nw;
    o->groups = w;
    o->grp = gp;
    o->gcol = gc;
    w = NULL;
    gp = gc = NULL;
    *out = o;
done:
    for (int64_t g = 0; w && g < nw; g++) idt_view_decref(w[g]);
    idt_free(w);
    idt_free(gp);
    idt_free(gc);
    idt_free(cd);
    idt_free(cols);
    idt_schema_decref(schema);
    return rc;
}

/* ---- view operations on grouped views ---- */

int idt_group_slice(idt_view *v, int64_t start, int64_t step, int64_t count, idt_view **out,
                    idt_error *err) {
    idt_view **gs = idt_calloc((size_t)v->ngroups, sizeof *gs);
    if (!gs) return oom(err);
    int rc = 0;
    for (int64_t g = 0; g < v->ngroups && !rc; g++)
        rc = idt_view_slice(v->groups[g], start, step, count, &gs[g], err);
    if (!rc) rc = idt_group_make(gs, v->ngroups, v->grp, v->gcol, v->ncols, out, err);
    for (int64_t g = 0; g < v->ngroups; g++) idt_view_decref(gs[g]);
    idt_free(gs);
    return rc;
}

int idt_group_select(idt_view *v, const int64_t *cols, int64_t n, idt_view **out, idt_error *err) {
    int64_t ng = v->ngroups;
    int64_t *at = idt_malloc((size_t)n * sizeof *at);          /* shown column of each pick */
    int64_t *newg = idt_malloc((size_t)ng * sizeof *newg);     /* group -> new group or -1 */
    int64_t *cnt = idt_calloc((size_t)ng, sizeof *cnt);
    int64_t *gp = idt_malloc((size_t)n * sizeof *gp), *gc = idt_malloc((size_t)n * sizeof *gc);
    const char **names = idt_malloc((size_t)n * sizeof *names);
    idt_view **gs = idt_calloc((size_t)ng, sizeof *gs);
    int rc = 0;
    int64_t nn = 0;
    if (!at || !newg || !cnt || !gp || !gc || !names || !gs) {
        rc = oom(err);
        goto done;
    }
    for (int64_t g = 0; g < ng; g++) newg[g] = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = 0;
        while (v->cols[j] != cols[i]) j++; /* checked by idt_view_select */
        at[i] = j;
        int64_t g = v->grp[j];
        if (newg[g] < 0) newg[g] = nn++;
        gp[i] = newg[g];
        gc[i] = cnt[g]++;
    }
    for (int64_t g = 0; g < ng && !rc; g++) {
        if (newg[g] < 0) continue;
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (v->grp[at[i]] == g) names[m++] = idt_view_column(v, at[i])->name;
        rc = idt_view_select(v->groups[g], names, m, &gs[newg[g]], err);
    }
    if (!rc) rc = idt_group_make(gs, nn, gp, gc, n, out, err);
done:
    for (int64_t g = 0; gs && g < nn; g++) idt_view_decref(gs[g]);
    idt_free(gs);
    idt_free(at);
    idt_free(newg);
    idt_free(cnt);
    idt_free(gp);
    idt_free(gc);
    idt_free((void *)names);
    return rc;
}

/* Shown column of `v` named `name` (present: checked by idt_view_concat). */
static int64_t shown_named(const idt_view *v, const char *name) {
    int64_t j = 0;
    while (strcmp(idt_view_column(v, j)->name, name)) j++;
    return j;
}

int idt_group_concat(idt_view *const *views, int64_t n, idt_view **out, idt_error *err) {
    /* Columns go to one result group when every view holds them in one group: the common
     * refinement of the views' groupings. Each result group is the concat of, per view, the
     * plain view of those columns. */
    const idt_view *f = views[0];
    int64_t nc = f->ncols;
    int64_t *key = idt_malloc((size_t)nc * (size_t)n * sizeof *key);
    int64_t *gp = idt_malloc((size_t)nc * sizeof *gp), *gc = idt_calloc((size_t)nc, sizeof *gc);
    idt_view **gs = idt_calloc((size_t)nc, sizeof *gs), **parts = idt_calloc((size_t)n, sizeof *parts);
    const char **names = idt_malloc((size_t)nc * sizeof *names);
    int64_t ng = 0;
    int rc = 0;
    if (!key || !gp || !gc || !gs || !parts || !names) {
        rc = oom(err);
        goto done;
    }
    for (int64_t j = 0; j < nc; j++) {
        const char *name = idt_view_column(f, j)->name;
        for (int64_t i = 0; i < n; i++) {
            const idt_view *w = views[i];
            key[j * n + i] = w->ngroups ? w->grp[shown_named(w, name)] : 0;
        }
        gp[j] = -1;
        for (int64_t q = 0; q < j && gp[j] < 0; q++)
            if (!memcmp(key + q * n, key + j * n, (size_t)n * sizeof *key)) gp[j] = gp[q];
        if (gp[j] < 0) gp[j] = ng++;
        for (int64_t q = 0; q < j; q++) gc[j] += gp[q] == gp[j];
    }
    for (int64_t r = 0; r < ng && !rc; r++) {
        int64_t m = 0, j0 = -1;
        for (int64_t j = 0; j < nc; j++)
            if (gp[j] == r) {
                if (j0 < 0) j0 = j;
                names[m++] = idt_view_column(f, j)->name;
            }
        for (int64_t i = 0; i < n && !rc; i++) {
            idt_view *w = views[i];
            idt_view *src = w->ngroups ? w->groups[key[j0 * n + i]] : w;
            rc = idt_view_select(src, names, m, &parts[i], err);
        }
        if (!rc) rc = idt_view_concat(parts, n, &gs[r], err);
        for (int64_t i = 0; i < n; i++) {
            idt_view_decref(parts[i]);
            parts[i] = NULL;
        }
    }
    if (!rc) rc = idt_group_make(gs, ng, gp, gc, nc, out, err);
done:
    for (int64_t r = 0; gs && r < ng; r++) idt_view_decref(gs[r]);
    idt_free(gs);
    idt_free(parts);
    idt_free(key);
    idt_free(gp);
    idt_free(gc);
    idt_free((void *)names);
    return rc;
}

/* ---- zip ---- */

int idt_view_zip(idt_view *const *views, int64_t n, idt_view **out, idt_error *err) {
    if (n < 1) return idt_error_set(err, IDT_EVALUE, "zip needs at least one view");
    int64_t len = idt_view_len(views[0]), nc = 0, ng = 0;
    for (int64_t i = 0; i < n; i++) {
        if (idt_view_len(views[i]) != len)
            return idt_error_set(err, IDT_EVALUE,
                                 "cannot zip views of different lengths: view 0 has %lld rows, "
                                 "view %lld has %lld", (long long)len, (long long)i,
                                 (long long)idt_view_len(views[i]));
        nc += views[i]->ncols;
        ng += views[i]->ngroups ? views[i]->ngroups : 1;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < views[i]->ncols; j++) {
            const char *name = idt_view_column(views[i], j)->name;
            for (int64_t p = 0; p <= i; p++)
                for (int64_t q = 0; q < (p == i ? j : views[p]->ncols); q++)
                    if (!strcmp(idt_view_column(views[p], q)->name, name))
                        return idt_error_set(err, IDT_EVALUE,
                                             "column '%.200s' is in view %lld and in view %lld: "
                                             "zipped views need distinct column names",
                                             name, (long long)p, (long long)i);
        }
    if (n == 1) {
        idt_view_incref(views[0]);
        *out = views[0];
        return 0;
    }
    idt_view **gs = idt_malloc((size_t)ng * sizeof *gs);
    int64_t *gp = idt_malloc((size_t)nc * sizeof *gp), *gc = idt_malloc((size_t)nc * sizeof *gc);
    int rc = 0;
    if (!gs || !gp || !gc) {
        rc = oom(err);
    } else {
        int64_t g0 = 0, j0 = 0;
        for (int64_t i = 0; i < n; i++) {
            idt_view *w = views[i];
            for (int64_t j = 0; j < w->ncols; j++) {
                gp[j0 + j] = g0 + (w->ngroups ? w->grp[j] : 0);
                gc[j0 + j] = w->ngroups ? w->gcol[j] : j;
            }
            if (w->ngroups) {
                for (int64_t g = 0; g < w->ngroups; g++) gs[g0 + g] = w->groups[g];
                g0 += w->ngroups;
            } else {
                gs[g0++] = w;
            }
            j0 += w->ncols;
        }
        rc = idt_group_make(gs, ng, gp, gc, nc, out, err);
    }
    idt_free(gs);
    idt_free(gp);
    idt_free(gc);
    return rc;
}

/* ---- rename ---- */

typedef struct aliaser {
    const idt_view *v;        /* the plain view being renamed */
    const char *const *names; /* new name of each of its shown columns */
    ptrmap stores, refs;      /* original -> index into made */
    void **made;              /* aliases made (references held) */
    int *is_refs;
    int64_t nmade, cap;
} aliaser;

static int remember(aliaser *a, const void *orig, void *made, int is_refs) {
    if (a->nmade == a->cap) {
        int64_t c = a->cap ? a->cap * 2 : 16;
        void **m = idt_realloc(a->made, (size_t)c * sizeof *m);
        if (!m) return -1;
        a->made = m;
        int *k = idt_realloc(a->is_refs, (size_t)c * sizeof *k);
        if (!k) return -1;
        a->is_refs = k;
        a->cap = c;
    }
    if (ptrmap_put(is_refs ? &a->refs : &a->stores, orig, a->nmade) != 0) return -1;
    a->made[a->nmade] = made;
    a->is_refs[a->nmade++] = is_refs;
    return 0;
}

int idt_store_alias(idt_store *st, const int64_t *cols, const char *const *names, int64_t n,
                    idt_store **out, idt_error *err) {
    idt_store *base = st->base ? st->base : st;
    idt_column *cd = idt_calloc((size_t)n, sizeof *cd);
    idt_store *s = idt_calloc(1, sizeof *s);
    if (s) {
        s->cols = idt_calloc((size_t)n, sizeof *s->cols);
        s->base_col = idt_calloc((size_t)n, sizeof *s->base_col);
    }
    int rc = 0;
    if (!cd || !s || !s->cols || !s->base_col) {
        rc = oom(err);
        goto fail;
    }
    for (int64_t j = 0; j < n; j++) {
        if (cols[j] < 0 || cols[j] >= st->schema->ncols) {
            rc = idt_error_set(err, IDT_EVALUE, "column index %lld out of range", (long long)cols[j]);
            goto fail;
        }
        cd[j] = st->schema->cols[cols[j]];
        cd[j].name = (char *)names[j]; /* copied by idt_schema_new */
    }
    if ((rc = idt_schema_new(cd, n, &s->schema, err)) != 0) goto fail;
    for (int64_t j = 0; j < n; j++) {
        int64_t k = idt_schema_find(s->schema, names[j]);
        s->cols[k] = st->cols[cols[j]];
        s->base_col[k] = st->base ? st->base_col[cols[j]] : cols[j];
    }
    atomic_store(&s->refs, 1);
    s->nrows = st->nrows;
    s->blob = st->blob;
    idt_blob_incref(s->blob);
    s->id = st->id;
    memcpy(s->uid, st->uid, sizeof s->uid);
    s->data_hash = st->data_hash;
    s->data_off = st->data_off;
    s->base = base;
    idt_store_incref(base);
    idt_free(cd);
    *out = s;
    return 0;
fail:
    idt_free(cd);
    if (s) {
        idt_free(s->cols);
        idt_free(s->base_col);
        idt_schema_decref(s->schema);
        idt_free(s);
    }
    return rc;
}

/* The alias of store st: the view's shown columns under their new names. NULL when out of
 * memory (err set). */
static idt_store *alias_store(aliaser *a, idt_store *st, idt_error *err) {
    int64_t i = ptrmap_get(&a->stores, st);
    if (i >= 0) return a->made[i];
    const idt_view *v = a->v;
    int64_t *src = idt_malloc((size_t)v->ncols * sizeof *src);
    if (!src) {
        oom(err);
        return NULL;
    }
    for (int64_t j = 0; j < v->ncols; j++) src[j] = idt_view_store_col(v, st, j);
    idt_store *s = NULL;
    int rc = idt_store_alias(st, src, a->names, v->ncols, &s, err);
    idt_free(src);
    if (rc) return NULL;
    if (remember(a, st, s, 0) != 0) {
        idt_store_decref(s);
        oom(err);
        return NULL;
    }
    return s;
}

/* Ref array r over the same file with a slot table of aliases (its own identity, so a save
 * writes it under a name of its own). NULL when out of memory (err set). */
static idt_refs *alias_refs(aliaser *a, idt_refs *r, idt_error *err) {
    int64_t i = ptrmap_get(&a->refs, r);
    if (i >= 0) return a->made[i];
    idt_store **t = idt_malloc((size_t)(r->nstores ? r->nstores : 1) * sizeof *t);
    if (!t) {
        oom(err);
        return NULL;
    }
    for (int64_t s = 0; s < r->nstores; s++)
        if (!(t[s] = alias_store(a, r->stores[s], err))) {
            idt_free(t);
            return NULL;
        }
    uint8_t uid[16];
    idt_random_bytes(uid, sizeof uid);
    idt_refs *n = NULL;
    idt_blob_incref(r->blob); /* idt_refs_new takes this reference, whatever happens */
    if (idt_refs_new(r->blob, r->n, t, r->nstores, uid, &n, err) != 0) {
        idt_free(t);
        return NULL;
    }
    idt_free(t);
    n->ref = r->ref;
    n->hash = r->hash;
    if (remember(a, r, n, 1) != 0) {
        idt_refs_decref(n);
        oom(err);
        return NULL;
    }
    return n;
}

/* Plain view v with its shown columns named names[0..ncols). */
static int rename_plain(idt_view *v, const char *const *names, idt_view **out, idt_error *err) {
    int same = 1;
    for (int64_t j = 0; j < v->ncols && same; j++) same = !strcmp(names[j], idt_view_column(v, j)->name);
    if (same) {
        idt_view_incref(v);
        *out = v;
        return 0;
    }
    aliaser a;
    memset(&a, 0, sizeof a);
    a.v = v;
    a.names = names;
    idt_column *cd = idt_calloc((size_t)v->ncols, sizeof *cd);
    int64_t *cols = idt_malloc((size_t)v->ncols * sizeof *cols);
    idt_schema *schema = NULL;
    idt_view *o = NULL;
    int rc = 0;
    if (!cd || !cols || ptrmap_init(&a.stores, 16) != 0 || ptrmap_init(&a.refs, 16) != 0) {
        rc = oom(err);
        goto done;
    }
    for (int64_t j = 0; j < v->ncols; j++) {
        cd[j] = *idt_view_column(v, j);
        cd[j].name = (char *)names[j];
    }
    rc = idt_schema_new(cd, v->ncols, &schema, err);
    if (rc) goto done;
    for (int64_t j = 0; j < v->ncols; j++) cols[j] = idt_schema_find(schema, names[j]);
    o = idt_view_parts_alloc(schema, cols, v->ncols, 1, v->nseg);
    if (!o) {
        rc = oom(err);
        goto done;
    }
    for (int64_t k = 0; k < v->nseg; k++) {
        idt_segment s = v->segs[k];
        if (s.kind == IDT_SEG_RUN) s.store = alias_store(&a, s.store, err);
        else s.refs = alias_refs(&a, s.refs, err);
        if (!s.store && !s.refs) {
            rc = err && err->code ? err->code : IDT_ENOMEM;
            idt_view_parts_finish(o, k);
            goto done;
        }
        idt_view_parts_set_seg(o, k, &s);
    }
    idt_view_parts_finish(o, v->nseg);
    *out = o;
    o = NULL;
done:
    if (o) idt_view_decref(o);
    for (int64_t i = 0; i < a.nmade; i++) {
        if (a.is_refs[i]) idt_refs_decref(a.made[i]);
        else idt_store_decref(a.made[i]);
    }
    idt_free(a.made);
    idt_free(a.is_refs);
    ptrmap_free(&a.stores);
    ptrmap_free(&a.refs);
    idt_free(cd);
    idt_free(cols);
    idt_schema_decref(schema);
    return rc;
}

int idt_view_rename(idt_view *v, const char *const *olds, const char *const *news, int64_t n,
                    idt_view **out, idt_error *err) {
    int64_t nc = v->ncols;
    const char **names = idt_malloc((size_t)nc * sizeof *names);
    if (!names) return oom(err);
    int rc = 0;
    for (int64_t j = 0; j < nc; j++) names[j] = idt_view_column(v, j)->name;
    for (int64_t i = 0; i < n && !rc; i++) {
        int64_t j = 0;
        while (j < nc && strcmp(idt_view_column(v, j)->name, olds[i])) j++;
        if (j == nc) rc = idt_view_no_column(v, olds[i], err);
        else if (!news[i][0]) rc = idt_error_set(err, IDT_EVALUE, "cannot rename '%.200s' to an empty name", olds[i]);
        for (int64_t q = 0; q < i && !rc; q++)
            if (!strcmp(olds[q], olds[i]))
                rc = idt_error_set(err, IDT_EVALUE, "column '%.200s' is renamed twice", olds[i]);
        if (!rc) names[j] = news[i];
    }
    for (int64_t j = 0; j < nc && !rc; j++)
        for (int64_t q = 0; q < j && !rc; q++)
            if (!strcmp(names[q], names[j]))
                rc = idt_error_set(err, IDT_EVALUE, "renaming gives two columns named '%.200s'", names[j]);
    if (rc || !v->ngroups) {
        if (!rc) rc = rename_plain(v, names, out, err);
        idt_free((void *)names);
        return rc;
    }
    idt_view **gs = idt_calloc((size_t)v->ngroups, sizeof *gs);
    const char **gn = idt_malloc((size_t)IDT_GROUP_MAX_COLS * sizeof *gn);
    if (!gs || !gn) rc = oom(err);
    for (int64_t g = 0; g < v->ngroups && !rc; g++) {
        for (int64_t j = 0; j < nc; j++)
            if (v->grp[j] == g) gn[v->gcol[j]] = names[j];
        rc = rename_plain(v->groups[g], gn, &gs[g], err);
    }
    if (!rc) rc = idt_group_make(gs, v->ngroups, v->grp, v->gcol, nc, out, err);
    for (int64_t g = 0; gs && g < v->ngroups; g++) idt_view_decref(gs[g]);
    idt_free(gs);
    idt_free((void *)gn);
    idt_free((void *)names);
    return rc;
}

int idt_view_has_aliases(const idt_view *v) {
    if (v->ngroups) return 1;
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        if (s->kind == IDT_SEG_RUN && s->store->base) return 1;
        for (int64_t i = 0; s->kind == IDT_SEG_REFS && i < s->refs->nstores; i++)
            if (s->refs->stores[i]->base) return 1;
    }
    return 0;
}

/* ---- reads ---- */

int idt_group_str_widths(const idt_view *v, const idt_rowsel *sel, int64_t *widths, idt_error *err) {
    int64_t w[IDT_GROUP_MAX_COLS];
    for (int64_t g = 0; g < v->ngroups; g++) {
        int rc = idt_view_str_widths(v->groups[g], sel, w, err);
        if (rc) return rc;
        for (int64_t j = 0; j < v->ncols; j++)
            if (v->grp[j] == g) widths[j] = w[v->gcol[j]];
    }
    return 0;
}

void idt_group_gather(const idt_view *v, const idt_rowsel *sel, void *const *outs,
                      const int64_t *widths) {
    void *o[IDT_GROUP_MAX_COLS];
    int64_t w[IDT_GROUP_MAX_COLS];
    for (int64_t g = 0; g < v->ngroups; g++) {
        for (int64_t j = 0; j < v->ncols; j++)
            if (v->grp[j] == g) {
                o[v->gcol[j]] = outs[j];
                w[v->gcol[j]] = widths ? widths[j] : 0;
            }
        idt_view_gather(v->groups[g], sel, o, w);
    }
}

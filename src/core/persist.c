/* persist.c: the manifest format, atomic saves with hard links, validated loads. */
#include "persist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "group.h"
#include "ptrmap.h"
#include "sys.h"
#include "tmp.h"
#include "utf8.h"

enum {
    MODE_SAVED = IDT_MAN_SAVED,
    MODE_DESCR = IDT_MAN_DESCR,
    OBJ_STORE = IDT_MAN_OBJ_STORE,
    OBJ_REFS = IDT_MAN_OBJ_REFS,
    OBJ_ALIAS = IDT_MAN_OBJ_ALIAS,
};

static void hex(const uint8_t *uid, char *out) {
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", uid[i]);
}

/* ---- collecting what a view reads ---- */

typedef struct objects {
    ptrmap map;              /* store or refs pointer -> index in objs */
    const void **objs;
    int *kinds;
    int64_t n, cap;
} objects;

static int64_t obj_add(objects *o, const void *p, int kind) {
    int64_t i = ptrmap_get(&o->map, p);
    if (i >= 0) return i;
    if (o->n == o->cap) {
        int64_t c = o->cap ? o->cap * 2 : 16;
        const void **a = idt_realloc(o->objs, (size_t)c * sizeof *a);
        if (!a) return -1;
        o->objs = a;
        int *k = idt_realloc(o->kinds, (size_t)c * sizeof *k);
        if (!k) return -1;
        o->kinds = k;
        o->cap = c;
    }
    if (ptrmap_put(&o->map, p, o->n) != 0) return -1;
    o->objs[o->n] = p;
    o->kinds[o->n] = kind;
    return o->n++;
}

static void objects_free(objects *o) {
    ptrmap_free(&o->map);
    idt_free(o->objs);
    idt_free(o->kinds);
}

/* A store, after its base when it is an alias (a renamed view's). -1 when out of memory. */
static int64_t add_store(objects *o, const idt_store *st) {
    if (st->base && obj_add(o, st->base, OBJ_STORE) < 0) return -1;
    return obj_add(o, st, st->base ? OBJ_ALIAS : OBJ_STORE);
}

/* Stores and refs of v (each group of a grouped view), stores of ref tables included.
 * Returns -1 when out of memory. */
static int collect(const idt_view *v, objects *o) {
    memset(o, 0, sizeof *o);
    if (ptrmap_init(&o->map, 16) != 0) return -1;
    for (int64_t g = 0; g < (v->ngroups ? v->ngroups : 1); g++) {
        const idt_view *gv = v->ngroups ? v->groups[g] : v;
        for (int64_t k = 0; k < gv->nseg; k++) {
            const idt_segment *s = &gv->segs[k];
            if (s->kind == IDT_SEG_RUN) {
                if (add_store(o, s->store) < 0) return -1;
            } else {
                for (int64_t i = 0; i < s->refs->nstores; i++)
                    if (add_store(o, s->refs->stores[i]) < 0) return -1;
                if (obj_add(o, s->refs, OBJ_REFS) < 0) return -1;
            }
        }
    }
    return 0;
}

static const idt_blob *obj_blob(const objects *o, int64_t i) {
    return o->kinds[i] != OBJ_REFS ? ((const idt_store *)o->objs[i])->blob
                                    : ((const idt_refs *)o->objs[i])->blob;
}

static const uint8_t *obj_uid(const objects *o, int64_t i) {
    return o->kinds[i] != OBJ_REFS ? ((const idt_store *)o->objs[i])->uid
                                    : ((const idt_refs *)o->objs[i])->uid;
}

/* Bytes of the object's content (a ref array's blob may be longer than its refs). */
static uint64_t obj_size(const objects *o, int64_t i) {
    if (o->kinds[i] == OBJ_STORE) return obj_blob(o, i)->size;
    return (uint64_t)((const idt_refs *)o->objs[i])->n * 8;
}

static void file_name(const objects *o, int64_t i, char out[64]) {
    char h[33];
    hex(obj_uid(o, i), h);
    snprintf(out, 64, "%c-%s.idt", o->kinds[i] == OBJ_STORE ? 's' : 'r', h);
}

/* ---- manifest (codec.h names the header fields; docs/format.md describes the body) ---- */

/* The schema and selection of plain view v. */
static void put_columns(idt_writer *w, const idt_view *v) {
    idt_put_u64(w, (uint64_t)v->schema->ncols);
    for (int64_t i = 0; i < v->schema->ncols; i++) idt_col_desc_put(w, &v->schema->cols[i]);
    idt_put_u64(w, (uint64_t)v->ncols);
    for (int64_t j = 0; j < v->ncols; j++) idt_put_u64(w, (uint64_t)v->cols[j]);
}

/* The segments of plain view v. */
static void put_segments(idt_writer *w, const idt_view *v, const objects *o) {
    idt_put_u64(w, (uint64_t)v->nseg);
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        idt_put_u32(w, (uint32_t)s->kind);
        idt_put_u32(w, 0);
        idt_put_u64(w, (uint64_t)ptrmap_get(&o->map, s->kind == IDT_SEG_RUN ? (const void *)s->store
                                                                              : (const void *)s->refs));
        idt_put_u64(w, (uint64_t)s->start);
        idt_put_u64(w, (uint64_t)s->step);
        idt_put_u64(w, (uint64_t)s->len);
    }
}

/* An alias entry: its base store's file index, then per column (in its schema's order) the
 * base column it shows and its name. */
static void put_alias(idt_writer *w, const idt_store *a, const objects *o) {
    idt_put_u32(w, (uint32_t)OBJ_ALIAS);
    idt_put_u32(w, (uint32_t)a->schema->ncols);
    idt_put_u64(w, (uint64_t)ptrmap_get(&o->map, a->base));
    for (int64_t c = 0; c < a->schema->ncols; c++) {
        const char *name = a->schema->cols[c].name;
        idt_put_u64(w, (uint64_t)a->base_col[c]);
        idt_put_u32(w, (uint32_t)strlen(name));
        idt_put_u32(w, 0);
        idt_put_bytes(w, name, strlen(name));
        idt_put_pad8(w);
    }
}

/* Serialize v into w (a fresh heap writer). mode SAVED names files by relative name; DESCR by
 * absolute path + offset. Returns -1 when out of memory (w's buffer is the caller's anyway). */
static int build_manifest(const idt_view *v, const objects *o, int mode, idt_writer *w) {
    const idt_view *g0 = v->ngroups ? v->groups[0] : v;
    idt_writer_init(w);
    idt_put_bytes(w, IDT_MANIFEST_MAGIC, 8);
    idt_put_u32(w, IDT_FORMAT_VERSION);
    idt_put_u32(w, (uint32_t)mode);
    idt_put_u64(w, 0); /* total length, patched below */
    idt_put_u64(w, 0); /* checksum, patched below */
    /* schema and selection (of the first group of a grouped view) */
    put_columns(w, g0);
    /* files: stores, aliases of them, ref arrays */
    idt_put_u64(w, (uint64_t)o->n);
    for (int64_t i = 0; i < o->n; i++) {
        if (o->kinds[i] == OBJ_ALIAS) {
            put_alias(w, o->objs[i], o);
            continue;
        }
        const idt_blob *b = obj_blob(o, i);
        char name[64];
        const char *path = name;
        uint64_t off = 0;
        if (mode == MODE_SAVED) {
            file_name(o, i, name);
        } else {
            path = b->path;
            off = (uint64_t)b->offset;
        }
        idt_put_u32(w, (uint32_t)o->kinds[i]);
        idt_put_u32(w, (uint32_t)strlen(path));
        idt_put_u64(w, off);
        idt_put_u64(w, obj_size(o, i));
        idt_put_bytes(w, obj_uid(o, i), 16);
        idt_put_bytes(w, path, strlen(path));
        idt_put_pad8(w);
        if (o->kinds[i] == OBJ_REFS) {
            const idt_refs *r = o->objs[i];
            idt_put_u64(w, (uint64_t)r->n);
            idt_put_u64(w, r->hash);
            idt_put_u64(w, (uint64_t)r->nstores);
            for (int64_t s = 0; s < r->nstores; s++)
                idt_put_u64(w, (uint64_t)ptrmap_get(&o->map, r->stores[s]));
        }
    }
    put_segments(w, g0, o);
    /* the other groups, and which group column each shown column is */
    idt_put_u64(w, (uint64_t)(v->ngroups ? v->ngroups - 1 : 0));
    for (int64_t g = 1; g < v->ngroups; g++) {
        put_columns(w, v->groups[g]);
        put_segments(w, v->groups[g], o);
    }
    if (v->ngroups) {
        idt_put_u64(w, (uint64_t)v->ncols);
        for (int64_t j = 0; j < v->ncols; j++) {
            idt_put_u64(w, (uint64_t)v->grp[j]);
            idt_put_u64(w, (uint64_t)v->gcol[j]);
        }
    }
    if (w->failed) return -1;
    idt_writer_patch_u64(w, IDT_MAN_OFF_LENGTH, w->n);
    idt_writer_patch_u64(w, IDT_MAN_OFF_CHECKSUM, idt_hash64_hole(w->p, w->n, IDT_MAN_OFF_CHECKSUM));
    return 0;
}

/* Step 1 of reading a manifest (buf, len), shared by loads and the sweep: magic, version,
 * length, checksum; *mode gets the mode. Errors: IDT_ECORRUPT (in r). */
static int read_manifest_header(idt_reader *r, size_t len, uint32_t *mode) {
    uint32_t version;
    uint64_t total, sum;
    if (idt_reader_left(r) < IDT_MAN_FIXED || memcmp(r->p, IDT_MANIFEST_MAGIC, 8) != 0)
        return idt_reader_fail(r, "not an infinidata view manifest");
    idt_get_span(r, "magic", 8);
    idt_get_u32(r, "version", &version);
    idt_get_u32(r, "mode", mode);
    idt_get_u64(r, "length", &total);
    idt_get_u64(r, "checksum", &sum);
    if (r->rc || idt_check_version(r, "manifest", version)) return r->rc;
    if (total != len)
        return idt_reader_fail(r, "length field says %llu bytes, the file holds %zu (truncated?)",
                               (unsigned long long)total, len);
    uint64_t got = idt_hash64_hole(r->base, len, IDT_MAN_OFF_CHECKSUM);
    if (got != sum)
        return idt_reader_fail(r, "checksum mismatch (damaged file): stored %016llx, computed %016llx",
                               (unsigned long long)sum, (unsigned long long)got);
    return idt_check_range(r, "mode", *mode, MODE_SAVED, MODE_DESCR);
}

/* ---- names the library generates in a saved directory ---- */

static int valid_name(const char *name) {
    return name[0] && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/') &&
           name[0] != '.' && strlen(name) < 200;
}

static int is_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

enum { DATA_NAME_LEN = 38 }; /* "s-" or "r-", 32 hex digits, ".idt" */

static int is_data_name(const char *s) {
    return strlen(s) == DATA_NAME_LEN && (s[0] == 's' || s[0] == 'r') && s[1] == '-' &&
           is_hex(s + 2, 32) && !strcmp(s + 34, ".idt");
}

/* "<name>.idtview" for a valid view name */
static int is_manifest_name(const char *s) {
    size_t n = strlen(s);
    if (n <= 8 || strcmp(s + n - 8, ".idtview")) return 0;
    char base[256];
    if (n - 8 >= sizeof base) return 0;
    memcpy(base, s, n - 8);
    base[n - 8] = 0;
    return valid_name(base);
}

/* ".tmp-<16 hex>-" followed by a data file or manifest name: what a save writes before
 * renaming it into place. */
static int is_tmp_name(const char *s) {
    if (strncmp(s, ".tmp-", 5) || strlen(s) < 22 || !is_hex(s + 5, 16) || s[21] != '-') return 0;
    return is_data_name(s + 22) || is_manifest_name(s + 22);
}

/* A sorted set of data file names. */
typedef struct nameset {
    char (*v)[DATA_NAME_LEN + 1];
    int64_t n, cap;
    int sorted;
} nameset;

static int nameset_add(nameset *s, const char *name) {
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 16;
        void *p = idt_realloc(s->v, (size_t)cap * sizeof *s->v);
        if (!p) return -1;
        s->v = p;
        s->cap = cap;
    }
    memcpy(s->v[s->n++], name, DATA_NAME_LEN + 1);
    s->sorted = 0;
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

static int nameset_has(nameset *s, const char *name) {
    if (!s->n) return 0;
    if (!s->sorted) {
        qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_name);
        s->sorted = 1;
    }
    return bsearch(name, s->v, (size_t)s->n, sizeof *s->v, cmp_name) != NULL;
}

static void nameset_free(nameset *s) {
    idt_free(s->v);
    memset(s, 0, sizeof *s);
}

/* Add to *set the data files a saved manifest (buf, len) names. Returns 0, 1 when it is not
 * a saved manifest this build reads (what it references is then unknown), or -1 when out of
 * memory. Only the header, checksum and the file table are looked at. */
static int manifest_refs(const char *buf, size_t len, nameset *set) {
    idt_reader r;
    idt_reader_init(&r, buf, len, "manifest", NULL);
    uint32_t mode;
    uint64_t n;
    if (read_manifest_header(&r, len, &mode) || mode != MODE_SAVED) return 1;
    idt_get_u64(&r, "column count", &n);
    for (uint64_t i = 0; i < n && !r.rc; i++) {
        idt_column c;
        int rc = idt_col_desc_get(&r, i, &c);
        idt_column_reset(&c);
        if (rc == IDT_ENOMEM) return -1;
    }
    idt_get_u64(&r, "selected column count", &n);
    if (idt_check_range(&r, "selected column count", n, 0, idt_reader_left(&r) / 8)) return 1;
    idt_get_span(&r, "selection", 8 * n);
    idt_get_u64(&r, "file count", &n);
    for (uint64_t i = 0; i < n && !r.rc; i++) {
        uint32_t kind, pl;
        uint64_t skip;
        idt_get_u32(&r, "file kind", &kind);
        idt_get_u32(&r, "path length", &pl);
        if (kind == OBJ_ALIAS) { /* no file: skip its base and columns (pl counts them) */
            idt_get_span(&r, "alias base", 8);
            for (uint32_t c = 0; c < pl && !r.rc; c++) {
                uint32_t nl;
                idt_get_span(&r, "alias column", 8);
                idt_get_u32(&r, "alias name length", &nl);
                idt_get_span(&r, "alias padding", 4);
                idt_get_span(&r, "alias name", nl);
                idt_get_pad8(&r, "alias name padding");
            }
            continue;
        }
        idt_get_span(&r, "offset, size and identity", 32);
        if (r.rc || pl != DATA_NAME_LEN) return 1;
        char name[DATA_NAME_LEN + 1];
        idt_get_bytes(&r, "path", name, pl);
        name[pl] = 0;
        idt_get_pad8(&r, "path padding");
        if (r.rc || !is_data_name(name)) return 1;
        if (nameset_add(set, name) != 0) return -1;
        if (kind == OBJ_REFS) {
            idt_get_span(&r, "ref count and checksum", 16);
            idt_get_u64(&r, "store slot count", &skip);
            if (idt_check_range(&r, "store slot count", skip, 0, idt_reader_left(&r) / 8)) return 1;
            idt_get_span(&r, "store slots", 8 * skip);
        } else if (kind != OBJ_STORE) {
            return 1;
        }
    }
    return r.rc ? 1 : 0;
}

/* Add the data files the manifest file `path` names. Returns as manifest_refs, or -2 when
 * the file cannot be opened or mapped (errno kept). */
static int manifest_file_refs(const char *path, nameset *set) {
    idt_blob *b;
    idt_error e;
    int rc = idt_blob_map_file(path, &b, &e);
    if (rc == IDT_EIO) errno = e.sys_errno;
    if (rc) return rc == IDT_ENOMEM ? -1 : rc == IDT_EIO ? -2 : 1;
    rc = manifest_refs(b->data, b->size, set);
    idt_blob_decref(b);
    return rc;
}

/* Add the data files every manifest in dir (but `skip`, when non-NULL) names. Returns 0, 1 when some manifest (a file
 * named <name>.idtview) is not one this build reads, -1 when out of memory, -2 when dir or
 * a manifest cannot be read (errno kept). */
static int dir_refs(const char *dir, const char *skip, nameset *set) {
    DIR *d = idt_opendir(dir);
    if (!d) return -2;
    int rc = 0;
    struct dirent *e;
    while (rc >= 0 && (e = readdir(d))) {
        if (!is_manifest_name(e->d_name) || (skip && !strcmp(e->d_name, skip))) continue;
        char *path = idt_path_join(dir, e->d_name);
        if (!path) {
            rc = -1;
            break;
        }
        int r = manifest_file_refs(path, set);
        idt_free(path);
        if (r < 0) rc = r;
        else if (r > 0) rc = 1;
    }
    idt_closedir(d);
    return rc;
}

/* Remove (or with dry_run only count) dir's entry `name`, reporting it in rep. Returns 0, -1
 * when out of memory, -2 when it cannot be looked at (errno kept; gone already is fine). */
static int remove_entry(const char *dir, const char *name, int dry_run, idt_saved_gc_report *rep,
                        int data) {
    char *path = idt_path_join(dir, name);
    if (!path) return -1;
    struct stat st;
    int rc = 0;
    if (idt_lstat(path, &st) != 0) {
        rc = errno == ENOENT ? 0 : -2;
    } else if (S_ISREG(st.st_mode) && (dry_run || unlink(path) == 0) && rep) {
        if (data) rep->data_files++;
        else rep->tmp_files++;
        rep->bytes += (int64_t)st.st_size;
        if (rep->each) rep->each(rep->ctx, name, (int64_t)st.st_size);
    }
    int e = errno;
    idt_free(path);
    errno = e;
    return rc;
}

/* Remove the temporary files of dead saves in dir. The caller holds the directory's
 * exclusive lock: every live save holds it shared, so none is running. Returns 0, -1 when
 * out of memory, -2 when dir cannot be listed or an entry looked at (errno kept). */
static int sweep_tmp(const char *dir, int dry_run, idt_saved_gc_report *rep) {
    DIR *d = idt_opendir(dir);
    if (!d) return -2;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)))
        if (is_tmp_name(e->d_name)) rc = remove_entry(dir, e->d_name, dry_run, rep, 0);
    int err = errno;
    idt_closedir(d);
    errno = err;
    return rc;
}

/* Remove the data files of dir that no manifest names (the caller holds the exclusive lock).
 * Returns 0, 1 when some manifest could not be read (nothing is removed then), -1 when out of
 * memory, -2 when dir cannot be listed or an entry looked at (errno kept). */
static int sweep_data(const char *dir, int dry_run, idt_saved_gc_report *rep) {
    nameset live = {NULL, 0, 0, 0};
    int rc = dir_refs(dir, NULL, &live);
    if (rc == 0) {
        DIR *d = idt_opendir(dir);
        if (!d) rc = -2;
        struct dirent *e;
        while (d && rc == 0 && (e = readdir(d)))
            if (is_data_name(e->d_name) && !nameset_has(&live, e->d_name))
                rc = remove_entry(dir, e->d_name, dry_run, rep, 1);
        int err = errno;
        idt_closedir(d);
        errno = err;
    }
    nameset_free(&live);
    return rc;
}

int idt_saved_gc(const char *dir, int dry_run, idt_saved_gc_report *rep, idt_error *err) {
    rep->tmp_files = rep->data_files = rep->bytes = 0;
    rep->manifests_unreadable = 0;
    int dfd = idt_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0) return idt_error_sys(err, errno, "cannot open saved directory '%s'", dir);
    int rc = 0;
    if (idt_flock(dfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            rc = idt_error_set(err, IDT_EIO, "a save into '%s' is in progress; try again", dir);
            if (err) err->sys_errno = EBUSY;
        } else {
            rc = idt_error_sys(err, errno, "cannot lock '%s'", dir);
        }
    } else {
        int r = sweep_tmp(dir, dry_run, rep);
        if (r == 0) r = sweep_data(dir, dry_run, rep);
        if (r == -1) rc = idt_error_set(err, IDT_ENOMEM, "out of memory sweeping '%s'", dir);
        else if (r < 0) rc = idt_error_sys(err, errno, "cannot read the saved directory '%s'", dir);
        rep->manifests_unreadable = r > 0;
    }
    idt_close(dfd); /* releases the lock */
    return rc;
}

/* ---- saving ---- */

/* Write n bytes of src into a new file `path` (which must not exist), fsynced. Its mode is
 * 0644 less the umask, as for any file a program creates; *mode gets it when non-NULL. */
static int write_file(const char *path, const char *src, size_t n, mode_t *mode, idt_error *err) {
    int fd = idt_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return idt_error_sys(err, errno, "cannot create '%s'", path);
    int rc = 0;
    struct stat st;
    if (n && idt_fallocate(fd, 0, (off_t)n) != 0)
        rc = idt_error_sys(err, errno, "cannot reserve %zu bytes for '%s'", n, path);
    else
        for (size_t done = 0; !rc && done < n;) { /* in steps, so Ctrl-C can stop a big copy */
            size_t k = n - done < ((size_t)64 << 20) ? n - done : ((size_t)64 << 20);
            if (idt_pwrite_all(fd, src + done, k, (off_t)done) < 0)
                rc = idt_error_sys(err, errno, "cannot write '%s'", path);
            else
                rc = idt_progress_step((int64_t)k, err);
            done += k;
        }
    if (!rc && idt_fsync(fd) != 0)
        rc = idt_error_sys(err, errno, "cannot sync '%s'", path);
    else if (!rc && mode && idt_fstat(fd, &st) != 0)
        rc = idt_error_sys(err, errno, "cannot stat '%s'", path);
    if (!rc && mode) *mode = st.st_mode & 07777;
    idt_close(fd);
    if (rc) unlink(path);
    return rc;
}

/* Created files, to remove if the save fails. */
typedef struct created {
    char **paths;
    int64_t n, cap;
} created;

static int note_created(created *c, char *path) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 16;
        char **p = idt_realloc(c->paths, (size_t)cap * sizeof *p);
        if (!p) return -1;
        c->paths = p;
        c->cap = cap;
    }
    c->paths[c->n++] = path;
    return 0;
}

/* Whether the file already at `final` holds object i exactly, so the save can keep it: the
 * very file the object is mapped from, or a file whose header, size and content checksum
 * match. Returns 1 to keep it, 0 to replace it (missing, damaged, planted, not a regular
 * file), or IDT_ENOMEM. */
static int present_ok(const char *final, const objects *o, int64_t i, idt_error *err) {
    struct stat st;
    const idt_blob *src = obj_blob(o, i);
    uint64_t size = obj_size(o, i), slack = o->kinds[i] == OBJ_STORE ? 1 : 65536;
    if (idt_stat(final, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < size ||
        (uint64_t)st.st_size - size >= slack)
        return 0;
    if (src->kind != IDT_BLOB_ARENA && src->offset == 0 && (uint64_t)st.st_ino == src->ino &&
        (uint64_t)st.st_dev == src->dev)
        return 1; /* the same inode: the same bytes */
    idt_blob *b;
    idt_error e;
    int rc = idt_blob_map_file(final, &b, &e);
    if (rc) return rc == IDT_ENOMEM ? idt_error_set(err, IDT_ENOMEM, "out of memory") : 0;
    int ok = 0;
    if (b->size < size) {
        idt_blob_decref(b);
        return 0;
    }
    if (o->kinds[i] == OBJ_STORE) {
        const idt_store *want = o->objs[i];
        idt_store *have;
        rc = idt_store_open_blob(b, final, &have, &e); /* takes b */
        if (rc) return rc == IDT_ENOMEM ? idt_error_set(err, IDT_ENOMEM, "out of memory") : 0;
        ok = !memcmp(have->uid, want->uid, 16) && have->data_hash == want->data_hash &&
             have->nrows == want->nrows && have->data_off == want->data_off &&
             have->blob->size == size && idt_store_verify(have, final, &e) == 0;
        idt_store_decref(have);
    } else {
        const idt_refs *want = o->objs[i];
        ok = !memcmp(b->data, want->ref, (size_t)size);
        idt_blob_decref(b);
    }
    return ok;
}

/* 1 when every data file of o is in dir. */
static int files_present(const char *dir, const objects *o) {
    for (int64_t i = 0; i < o->n; i++) {
        if (o->kinds[i] == OBJ_ALIAS) continue;
        char fname[64];
        file_name(o, i, fname);
        char *path = idt_path_join(dir, fname);
        struct stat st;
        int ok = path && idt_lstat(path, &st) == 0;
        idt_free(path);
        if (!ok) return 0;
    }
    return 1;
}

int idt_view_save(const idt_view *v, const char *dir, const char *name, int overwrite,
                  idt_error *err) {
    if (!valid_name(name))
        return idt_error_set(err, IDT_EVALUE,
                             "bad name '%s': use a plain file name (no '/', not starting with '.')", name);
    char mname[256];
    snprintf(mname, sizeof mname, "%s.idtview", name);
    char *mpath = idt_path_join(dir, mname);
    if (!mpath) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    int made_dir = idt_mkdir(dir, 0777) == 0; /* removed again if the save fails */
    if (!made_dir && errno != EEXIST) {
        int rc = idt_error_sys(err, errno, "cannot create directory '%s'", dir);
        idt_free(mpath);
        return rc;
    }
    struct stat st;
    if (!overwrite && idt_stat(mpath, &st) == 0) {
        int rc = idt_error_set(err, IDT_EEXIST, "a view named '%s' is already saved in '%s'", name, dir);
        idt_free(mpath);
        return rc;
    }
    objects o;
    created made = {NULL, 0, 0};
    idt_writer w;
    idt_writer_init(&w);
    nameset old = {NULL, 0, 0, 0};
    created drop = {NULL, 0, 0}; /* data files to remove once the manifest is replaced */
    char *tmp = NULL, *mtmp = NULL;
    int rc = 0, old_known = 0;
    mode_t mode = 0644;
    /* Every save holds the directory's lock shared; whoever gets it exclusive knows no save
     * is running and may remove what dead saves left (and, after an overwrite, files only the
     * replaced manifest named). A directory that cannot be locked is saved into unswept. */
    int dfd = idt_open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (dfd >= 0 && idt_flock(dfd, LOCK_EX | LOCK_NB) == 0) (void)sweep_tmp(dir, 0, NULL); /* best effort */
    if (dfd >= 0 && idt_flock(dfd, LOCK_SH) != 0) {
        idt_close(dfd);
        dfd = -1;
    }
    if (collect(v, &o) != 0 || build_manifest(v, &o, MODE_SAVED, &w) != 0) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    if (overwrite) {
        int r = manifest_file_refs(mpath, &old); /* -2: none there (or unreadable) */
        if (r == -1) {
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            goto done;
        }
        old_known = r == 0;
    }
    uint64_t rnd;
    idt_random_bytes(&rnd, sizeof rnd);
    /* the manifest first, under its temporary name: it also tells the mode new files get */
    char tname[300];
    snprintf(tname, sizeof tname, ".tmp-%016llx-%s", (unsigned long long)rnd, mname);
    mtmp = idt_path_join(dir, tname);
    if (!mtmp) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    rc = write_file(mtmp, w.p, w.n, &mode, err);
    if (rc) {
        idt_free(mtmp);
        mtmp = NULL;
        goto done;
    }
    for (int64_t i = 0; i < o.n && !rc; i++) {
        if (o.kinds[i] == OBJ_ALIAS) continue; /* its base's file is saved */
        char fname[64];
        file_name(&o, i, fname);
        char *final = idt_path_join(dir, fname);
        if (!final) {
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            break;
        }
        uint64_t size = obj_size(&o, i);
        int keep = present_ok(final, &o, i, err); /* saved before: share it if it is sound */
        if (keep != 0) {
            idt_free(final);
            if (keep < 0) rc = keep;
            continue;
        }
        int existed = idt_lstat(final, &st) == 0; /* a damaged file, replaced below */
        if (!existed && errno != ENOENT) { /* unknown: a failed save could not tell what to remove */
            rc = idt_error_sys(err, errno, "cannot stat '%s'", final);
            idt_free(final);
            break;
        }
        snprintf(tname, sizeof tname, ".tmp-%016llx-%s", (unsigned long long)rnd, fname);
        tmp = idt_path_join(dir, tname);
        if (!tmp) {
            idt_free(final);
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            break;
        }
        const idt_blob *b = obj_blob(&o, i);
        int linked = 0;
        /* Link only a file that holds just this object (a blob mapped from the start of a
         * shared arena file, as a view unpickled from another process may have, is copied):
         * a ref array's file may be a page longer than its refs, a store's must be exact.
         * A linked file gets the mode a copy would have (or is copied when it cannot). */
        if (b->kind != IDT_BLOB_ARENA && b->offset == 0 && idt_stat(b->path, &st) == 0 &&
            (uint64_t)st.st_ino == b->ino && (uint64_t)st.st_dev == b->dev &&
            (uint64_t)st.st_size >= size &&
            (uint64_t)st.st_size - size < (o.kinds[i] == OBJ_STORE ? 1 : 65536) &&
            idt_link(b->path, tmp) == 0) {
            linked = (st.st_mode & 07777) == mode || chmod(tmp, mode) == 0;
            if (!linked) unlink(tmp);
        }
        if (!linked) rc = write_file(tmp, b->data, (size_t)size, NULL, err);
        if (!rc && idt_rename(tmp, final) != 0)
            rc = idt_error_sys(err, errno, "cannot rename '%s' to '%s'", tmp, final);
        unlink(tmp); /* gone after a rename, unless both names were links of one file */
        idt_free(tmp);
        tmp = NULL;
        if (!rc && !existed && note_created(&made, final) != 0) {
            unlink(final);
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        }
        if (rc || existed) idt_free(final);
    }
    if (rc) goto done;
    if (old_known && dfd >= 0) {
        /* Files only the replaced manifest names go once it is replaced, if no other save is
         * running (one might be about to name them). Decided before the commit, so that
         * nothing can fail after it. */
        if (idt_flock(dfd, LOCK_EX | LOCK_NB) == 0) {
            nameset live = {NULL, 0, 0, 0};
            int r = dir_refs(dir, mname, &live);
            for (int64_t i = 0; r == 0 && i < o.n; i++) {
                if (o.kinds[i] == OBJ_ALIAS) continue;
                char fname[64];
                file_name(&o, i, fname);
                if (nameset_add(&live, fname) != 0) r = -1;
            }
            for (int64_t i = 0; r == 0 && i < old.n; i++) {
                if (nameset_has(&live, old.v[i])) continue;
                char *path = idt_path_join(dir, old.v[i]);
                if (!path || note_created(&drop, path) != 0) {
                    idt_free(path);
                    r = -1;
                }
            }
            nameset_free(&live);
            if (r == -1) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            if (r) { /* what the others name is unknown: remove nothing */
                for (int64_t i = 0; i < drop.n; i++) idt_free(drop.paths[i]);
                drop.n = 0;
            }
        } else if (idt_flock(dfd, LOCK_SH) != 0 || !files_present(dir, &o)) {
            /* the failed upgrade gave up the shared lock for a moment: a sweep may have
             * run in it and taken this save's files for garbage */
            rc = idt_error_set(err, IDT_EIO, "a concurrent sweep of '%s' removed files of this save; "
                               "save again", dir);
        }
        if (rc) goto done;
    }
    if (overwrite) {
        if (idt_rename(mtmp, mpath) != 0) rc = idt_error_sys(err, errno, "cannot rename to '%s'", mpath);
    } else if (idt_link(mtmp, mpath) != 0) { /* link fails atomically if the name appeared */
        if (errno == EEXIST || idt_stat(mpath, &st) == 0) /* no hard links here: check, rename */
            rc = idt_error_set(err, IDT_EEXIST, "a view named '%s' is already saved in '%s'", name, dir);
        else if (idt_rename(mtmp, mpath) != 0)
            rc = idt_error_sys(err, errno, "cannot create '%s'", mpath);
    }
    if (!rc) {
        /* The names are durable once the directory is synced. The save is committed (the
         * manifest is in place) whatever this gives, and a failure can be neither undone nor
         * reported without calling a done save failed: so it bypasses the seam, whose
         * injected failures must each fail the save or take a fallback. */
        int sfd = dfd >= 0 ? dfd : idt_open(dir, O_RDONLY | O_DIRECTORY, 0);
        if (sfd >= 0) (void)fsync(sfd);
        if (sfd != dfd) idt_close(sfd);
        for (int64_t i = 0; i < drop.n; i++) unlink(drop.paths[i]);
    }
done:
    if (mtmp) unlink(mtmp);
    if (rc) {
        for (int64_t i = 0; i < made.n; i++) unlink(made.paths[i]);
        if (made_dir) rmdir(dir);
    }
    idt_close(dfd); /* releases the lock */
    for (int64_t i = 0; i < made.n; i++) idt_free(made.paths[i]);
    idt_free(made.paths);
    idt_free(tmp);
    idt_free(mtmp);
    idt_free(w.p);
    nameset_free(&old);
    for (int64_t i = 0; i < drop.n; i++) idt_free(drop.paths[i]);
    idt_free(drop.paths);
    objects_free(&o);
    idt_free(mpath);
    return rc;
}

/* ---- loading ---- */

/* ---- loading ----
 *
 * The trust boundary for manifests, in named steps over one bounded reader: the header
 * (read_manifest_header), the schema, the selection, the files (stores, then ref arrays,
 * whose refs are checked against the stores), the segments. Each step fails with a message
 * naming the manifest (or file), the value found and the bound it broke. */

typedef struct loaded {
    int kind;
    idt_store *store;
    idt_refs *refs;
} loaded;

/* A manifest being loaded: the reader and what the steps made so far. */
typedef struct mload {
    idt_reader r;
    const char *dir;    /* the saved directory (SAVED mode), or NULL */
    int verify;
    const char *what;
    idt_error *err;
    idt_schema *schema;
    int64_t *sel;
    uint64_t nsel;
    loaded *objs;
    uint64_t nobj;
    idt_segment *segs;
    uint64_t nseg;
} mload;

static int oom(mload *m) { return idt_error_set(m->err, IDT_ENOMEM, "out of memory loading %s", m->what); }

/* Prefix err's message (from a call the step made) with the manifest's name, as corrupt. */
static int blame(mload *m, int rc, const char *how) {
    if (rc == IDT_ENOMEM || !m->err) return rc;
    char why[sizeof m->err->msg];
    snprintf(why, sizeof why, "%s", m->err->msg);
    return idt_error_set(m->err, IDT_ECORRUPT, "%s: %s%s", m->what, how, why);
}

/* Step 2: the schema, its columns in sorted order. */
static int load_schema(mload *m) {
    uint64_t n;
    /* a description takes at least 32 bytes */
    if (idt_get_u64(&m->r, "column count", &n) ||
        idt_check_range(&m->r, "column count", n, 1, idt_reader_left(&m->r) / 32))
        return m->r.rc;
    idt_column *cols = idt_calloc(n, sizeof *cols);
    if (!cols) return oom(m);
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) rc = idt_col_desc_get(&m->r, i, &cols[i]);
    if (!rc && (rc = idt_schema_new(cols, (int64_t)n, &m->schema, m->err))) rc = blame(m, rc, "bad schema: ");
    for (uint64_t i = 0; !rc && i < n; i++) /* the schema sorts; a sorted manifest keeps indexes */
        if (strcmp(m->schema->cols[i].name, cols[i].name))
            rc = idt_reader_fail(&m->r, "columns out of order: column %llu is '%s', sorted it would be '%s'",
                                 (unsigned long long)i, cols[i].name, m->schema->cols[i].name);
    for (uint64_t i = 0; i < n; i++) idt_column_reset(&cols[i]);
    idt_free(cols);
    return rc;
}

/* Step 3: the selected columns, each once. */
static int load_selection(mload *m) {
    uint64_t ncols = (uint64_t)m->schema->ncols;
    if (idt_get_u64(&m->r, "selected column count", &m->nsel) ||
        idt_check_range(&m->r, "selected column count", m->nsel, 1, ncols))
        return m->r.rc;
    m->sel = idt_malloc(m->nsel * 8);
    char *seen = idt_calloc(ncols, 1);
    int rc = m->sel && seen ? 0 : oom(m);
    for (uint64_t j = 0; j < m->nsel && !rc; j++) {
        uint64_t c;
        char field[48];
        snprintf(field, sizeof field, "selected column %llu", (unsigned long long)j);
        if ((rc = idt_get_u64(&m->r, field, &c)) || (rc = idt_check_range(&m->r, field, c, 0, ncols - 1)))
            break;
        m->sel[j] = (int64_t)c;
        if (seen[c]++) /* a view selects each column once (idt_view_select) */
            rc = idt_reader_fail(&m->r, "column '%s' selected twice", m->schema->cols[c].name);
    }
    idt_free(seen);
    return rc;
}

/* A file table entry as read. */
typedef struct file_entry {
    uint32_t kind;
    uint64_t off, size;
    uint8_t uid[16];
    char path[IDT_MAN_PATH_MAX + 1];
    char *full;         /* the path to open */
} file_entry;

/* Step 4a: file entry i's fields, its name checked (SAVED: the name its kind and identity
 * give; DESCR: an absolute path, offset 8-aligned), and the file mapped into *b. */
static int read_file_entry(mload *m, uint64_t i, uint32_t kind, file_entry *f, idt_blob **b) {
    idt_reader *r = &m->r;
    uint32_t pl;
    f->kind = kind;
    idt_get_u32(r, "path length", &pl);
    if (idt_check_range(r, "path length", pl, 1, IDT_MAN_PATH_MAX)) return r->rc;
    idt_get_u64(r, "file offset", &f->off);
    idt_get_u64(r, "file size", &f->size);
    idt_get_bytes(r, "file identity", f->uid, 16);
    idt_get_bytes(r, "path", f->path, pl);
    f->path[pl] = 0;
    if (idt_get_pad8(r, "path padding")) return r->rc;
    if (strlen(f->path) != pl) return idt_reader_fail(r, "file %llu path holds a NUL", (unsigned long long)i);
    if (m->dir) { /* a saved directory's files are named by their kind and identity */
        char want[64], h[33];
        hex(f->uid, h);
        snprintf(want, sizeof want, "%c-%s.idt", f->kind == OBJ_STORE ? 's' : 'r', h);
        if (strcmp(f->path, want))
            return idt_reader_fail(r, "bad file name in manifest: file %llu should be named '%s'",
                                   (unsigned long long)i, want);
    } else if (f->off % 8) { /* blobs start 64-byte aligned: offsets and refs are read as uint64 */
        return idt_reader_fail(r, "file %llu offset %llu is not a multiple of 8", (unsigned long long)i,
                               (unsigned long long)f->off);
    }
    f->full = m->dir ? idt_path_join(m->dir, f->path) : idt_strdup(f->path);
    if (!f->full) return oom(m);
    int rc = m->dir ? idt_blob_map_file(f->full, b, m->err) : idt_blob_map_range(f->full, f->off, f->size, b, m->err);
    if (!rc && (*b)->size < f->size) {
        rc = idt_error_set(m->err, IDT_ECORRUPT, "%s: holds %zu bytes, %llu expected (truncated?)", f->full,
                           (*b)->size, (unsigned long long)f->size);
        idt_blob_decref(*b);
    }
    return rc;
}

/* Step 4b: a store file, opened (idt_store_open_blob validates it) and matched to its entry.
 * Takes b in every case. */
static int load_store(mload *m, const file_entry *f, idt_blob *b, loaded *L) {
    int rc = idt_store_open_blob(b, f->full, &L->store, m->err);
    if (rc) return rc;
    if (memcmp(L->store->uid, f->uid, 16))
        return idt_reader_fail(&m->r, "a store file does not match its entry (%s has another identity)", f->full);
    return m->verify ? idt_store_verify(L->store, f->full, m->err) : 0;
}

/* Step 4c: a ref array file: its entry's count, checksum and store table (each slot an
 * earlier store file), then every ref against the rows of its slot's store. Takes b in
 * every case. */
static int load_refs(mload *m, uint64_t i, const file_entry *f, idt_blob *b, loaded *L) {
    idt_reader *r = &m->r;
    uint64_t n, hash, nslots;
    idt_get_u64(r, "ref count", &n);
    idt_get_u64(r, "ref array checksum", &hash);
    idt_get_u64(r, "store slot count", &nslots);
    if (idt_check_range(r, "ref count", n, 0, f->size / 8) ||
        idt_check_range(r, "store slot count", nslots, 0,
                        m->nobj < (uint64_t)IDT_MAX_SLOTS ? m->nobj : (uint64_t)IDT_MAX_SLOTS)) {
        idt_blob_decref(b);
        return r->rc;
    }
    int rc = 0;
    uint64_t got = hash;
    if (m->verify) rc = idt_hash_fast_progress(b->data, (size_t)n * 8, 0, &got, m->err);
    if (!rc && got != hash)
        rc = idt_error_set(m->err, IDT_ECORRUPT, "%s: ref array checksum mismatch (damaged file): "
                           "stored %016llx, computed %016llx", f->full, (unsigned long long)hash,
                           (unsigned long long)got);
    idt_store **t = rc ? NULL : idt_malloc((nslots ? nslots : 1) * sizeof *t);
    if (!rc && !t) rc = oom(m);
    for (uint64_t s = 0; !rc && s < nslots; s++) {
        uint64_t slot;
        if ((rc = idt_get_u64(r, "store slot", &slot))) break;
        if (slot >= i || m->objs[slot].kind == OBJ_REFS)
            rc = idt_reader_fail(r, "bad ref array store table: slot %llu of file %llu names file %llu, "
                                 "not an earlier store file", (unsigned long long)s, (unsigned long long)i,
                                 (unsigned long long)slot);
        else
            t[s] = m->objs[slot].store;
    }
    /* every ref must name a slot and a row of that slot's store */
    const uint64_t *ref = (const uint64_t *)b->data;
    for (uint64_t k = 0; !rc && k < n; k++) {
        uint64_t slot = ref[k] >> IDT_REF_ROW_BITS, row = ref[k] & IDT_REF_ROW_MASK;
        if (slot >= nslots || (int64_t)row >= t[slot]->nrows)
            rc = idt_error_set(m->err, IDT_ECORRUPT, "%s: ref %llu is out of range (slot %llu of %llu, row %llu of %lld)",
                               f->full, (unsigned long long)k, (unsigned long long)slot,
                               (unsigned long long)nslots, (unsigned long long)row,
                               slot < nslots ? (long long)t[slot]->nrows : 0LL);
    }
    if (rc) idt_blob_decref(b);
    else if (!(rc = idt_refs_new(b, (int64_t)n, t, (int64_t)nslots, f->uid, &L->refs, m->err))) /* takes b */
        L->refs->hash = hash;
    idt_free(t);
    return rc;
}

/* Step 4d: an alias entry (a renamed view's store): an earlier store file, its columns
 * cols[c] (each once) shown under names[c] (UTF-8, no NUL, each once). */
static int load_alias(mload *m, uint64_t i, loaded *L) {
    idt_reader *r = &m->r;
    uint32_t n;
    uint64_t base;
    idt_get_u32(r, "alias column count", &n);
    if (idt_get_u64(r, "alias base", &base)) return r->rc;
    if (base >= i || m->objs[base].kind != OBJ_STORE)
        return idt_reader_fail(r, "bad alias: file %llu names file %llu as its base, not an earlier store file",
                               (unsigned long long)i, (unsigned long long)base);
    idt_store *st = m->objs[base].store;
    if (idt_check_range(r, "alias column count", n, 1, (uint64_t)st->schema->ncols)) return r->rc;
    int64_t *cols = idt_malloc((size_t)n * sizeof *cols);
    char **names = idt_calloc(n, sizeof *names);
    char *seen = idt_calloc((size_t)st->schema->ncols, 1);
    int rc = cols && names && seen ? 0 : oom(m);
    for (uint32_t c = 0; c < n && !rc; c++) {
        uint64_t bc;
        uint32_t nl, pad;
        if ((rc = idt_get_u64(r, "alias column", &bc)) ||
            (rc = idt_check_range(r, "alias column", bc, 0, (uint64_t)st->schema->ncols - 1)))
            break;
        if (seen[bc]++) {
            rc = idt_reader_fail(r, "bad alias: file %llu shows column '%s' twice", (unsigned long long)i,
                                 st->schema->cols[bc].name);
            break;
        }
        cols[c] = (int64_t)bc;
        idt_get_u32(r, "alias name length", &nl);
        idt_get_u32(r, "alias padding", &pad);
        if ((rc = idt_check_range(r, "alias name length", nl, 1, idt_reader_left(r))) ||
            (rc = idt_check_range(r, "alias padding", pad, 0, 0)))
            break;
        if (!(names[c] = idt_malloc((size_t)nl + 1))) {
            rc = oom(m);
            break;
        }
        idt_get_bytes(r, "alias name", names[c], nl);
        names[c][nl] = 0;
        if ((rc = idt_get_pad8(r, "alias name padding"))) break;
        if (strlen(names[c]) != nl || !idt_utf8_strict(names[c]))
            rc = idt_reader_fail(r, "bad alias: file %llu column %u name is not UTF-8 text without NUL",
                                 (unsigned long long)i, c);
    }
    if (!rc && (rc = idt_store_alias(st, cols, (const char *const *)names, n, &L->store, m->err)))
        rc = blame(m, rc, "bad alias: ");
    for (uint32_t c = 0; names && c < n; c++) idt_free(names[c]);
    idt_free(names);
    idt_free(cols);
    idt_free(seen);
    return rc;
}

/* Step 4: the file table. */
static int load_files(mload *m) {
    if (idt_get_u64(&m->r, "file count", &m->nobj) ||
        idt_check_range(&m->r, "file count", m->nobj, 0, idt_reader_left(&m->r) / 40))
        return m->r.rc;
    m->objs = idt_calloc(m->nobj ? m->nobj : 1, sizeof *m->objs);
    if (!m->objs) return oom(m);
    file_entry *f = idt_malloc(sizeof *f);
    int rc = f ? 0 : oom(m);
    for (uint64_t i = 0; i < m->nobj && !rc; i++) {
        idt_blob *b = NULL;
        uint32_t kind;
        if (idt_get_u32(&m->r, "file kind", &kind) ||
            idt_check_range(&m->r, "file kind", kind, OBJ_STORE, OBJ_ALIAS)) {
            rc = m->r.rc;
            break;
        }
        m->objs[i].kind = (int)kind;
        if (kind == OBJ_ALIAS) {
            rc = load_alias(m, i, &m->objs[i]);
            continue;
        }
        f->full = NULL;
        rc = read_file_entry(m, i, kind, f, &b);
        if (!rc) rc = f->kind == OBJ_STORE ? load_store(m, f, b, &m->objs[i]) : load_refs(m, i, f, b, &m->objs[i]);
        idt_free(f->full);
    }
    idt_free(f);
    return rc;
}

/* Step 5: the segments, each naming a file of its kind, and nothing after them. */
static int load_segments(mload *m) {
    idt_reader *r = &m->r;
    if (idt_get_u64(r, "segment count", &m->nseg) ||
        idt_check_range(r, "segment count", m->nseg, 0, idt_reader_left(r) / 40))
        return r->rc;
    m->segs = idt_calloc(m->nseg ? m->nseg : 1, sizeof *m->segs);
    if (!m->segs) return oom(m);
    for (uint64_t k = 0; k < m->nseg; k++) {
        idt_segment *s = &m->segs[k];
        uint32_t kind, pad;
        uint64_t obj, start, step, len;
        idt_get_u32(r, "segment kind", &kind);
        idt_get_u32(r, "segment padding", &pad);
        idt_get_u64(r, "segment file", &obj);
        idt_get_u64(r, "segment start", &start);
        idt_get_u64(r, "segment step", &step);
        idt_get_u64(r, "segment length", &len);
        if (idt_check_range(r, "segment kind", kind, IDT_SEG_RUN, IDT_SEG_REFS) ||
            idt_check_range(r, "segment file", obj, 0, m->nobj ? m->nobj - 1 : 0) ||
            (!m->nobj && idt_reader_fail(r, "bad segment %llu: the manifest names no file", (unsigned long long)k)))
            return r->rc;
        int want = kind == IDT_SEG_RUN ? OBJ_STORE : OBJ_REFS;
        if ((m->objs[obj].kind == OBJ_REFS) != (want == OBJ_REFS)) /* a run reads a store or an alias */
            return idt_reader_fail(r, "bad segment %llu: a %s segment names file %llu, a %s file",
                                   (unsigned long long)k, kind == IDT_SEG_RUN ? "run" : "refs",
                                   (unsigned long long)obj, want == OBJ_STORE ? "ref array" : "store");
        s->kind = (idt_seg_kind)kind;
        s->start = (int64_t)start;
        s->step = (int64_t)step;
        s->len = (int64_t)len;
        s->store = kind == IDT_SEG_RUN ? m->objs[obj].store : NULL;
        s->refs = kind == IDT_SEG_REFS ? m->objs[obj].refs : NULL;
    }
    return 0;
}

/* The view of the schema, selection and segments just read (then released). */
static int assemble_group(mload *m, idt_view **out) {
    int rc = idt_view_assemble(m->schema, m->sel, (int64_t)m->nsel, m->segs, (int64_t)m->nseg, out, m->err);
    idt_schema_decref(m->schema);
    idt_free(m->sel);
    idt_free(m->segs);
    m->schema = NULL;
    m->sel = NULL;
    m->segs = NULL;
    return rc ? blame(m, rc, "") : 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Step 6: the groups after the first (schema, selection and segments each) and the column
 * map of a grouped view: every column of every group shown once, groups of one length, no
 * name in two groups; then nothing. *out is the first group, replaced by the grouped view. */
static int load_groups(mload *m, idt_view **out) {
    idt_reader *r = &m->r;
    uint64_t extra;
    /* a group takes at least 64 bytes (a column description, a selection, the counts) */
    if (idt_get_u64(r, "extra group count", &extra) ||
        idt_check_range(r, "extra group count", extra, 0, idt_reader_left(r) / 64))
        return r->rc;
    if (extra == 0) {
        if (idt_reader_left(r))
            return idt_reader_fail(r, "%zu trailing bytes after the segments", idt_reader_left(r));
        return 0;
    }
    uint64_t ng = extra + 1, ncols;
    idt_view **gs = idt_calloc(ng, sizeof *gs);
    int64_t *grp = NULL, *gcol = NULL;
    char **seen = idt_calloc(ng, sizeof *seen);
    int rc = gs && seen ? 0 : oom(m);
    if (!rc) {
        gs[0] = *out;
        *out = NULL;
    }
    uint64_t total = 0;
    for (uint64_t g = 0; g < ng && !rc; g++) {
        if (g > 0 && !(rc = load_schema(m)) && !(rc = load_selection(m)) && !(rc = load_segments(m)))
            rc = assemble_group(m, &gs[g]);
        if (rc) break;
        if (idt_view_len(gs[g]) != idt_view_len(gs[0]))
            rc = idt_reader_fail(r, "bad groups: group %llu has %lld rows, group 0 has %lld", (unsigned long long)g,
                                 (long long)idt_view_len(gs[g]), (long long)idt_view_len(gs[0]));
        else if (!(seen[g] = idt_calloc((size_t)gs[g]->ncols, 1)))
            rc = oom(m);
        total += (uint64_t)(gs[g] ? gs[g]->ncols : 0);
    }
    if (!rc && (idt_get_u64(r, "grouped column count", &ncols) ||
                idt_check_range(r, "grouped column count", ncols, total, total)))
        rc = r->rc;
    if (!rc && (!(grp = idt_malloc(ncols * 8)) || !(gcol = idt_malloc(ncols * 8)))) rc = oom(m);
    for (uint64_t j = 0; j < ncols && !rc; j++) {
        uint64_t g, c;
        if ((rc = idt_get_u64(r, "column group", &g)) || (rc = idt_check_range(r, "column group", g, 0, ng - 1)) ||
            (rc = idt_get_u64(r, "group column", &c)) ||
            (rc = idt_check_range(r, "group column", c, 0, (uint64_t)gs[g]->ncols - 1)))
            break;
        if (seen[g][c]++)
            rc = idt_reader_fail(r, "bad groups: column '%s' of group %llu is shown twice",
                                 idt_view_column(gs[g], (int64_t)c)->name, (unsigned long long)g);
        grp[j] = (int64_t)g;
        gcol[j] = (int64_t)c;
    }
    if (!rc) { /* no name in two groups */
        const char **names = idt_malloc(ncols * sizeof *names);
        if (!names) rc = oom(m);
        for (uint64_t j = 0; j < ncols && !rc; j++) names[j] = idt_view_column(gs[grp[j]], gcol[j])->name;
        if (!rc) qsort(names, ncols, sizeof *names, cmp_str);
        for (uint64_t j = 1; j < ncols && !rc; j++)
            if (!strcmp(names[j], names[j - 1]))
                rc = idt_reader_fail(r, "bad groups: column '%s' is in two groups", names[j]);
        idt_free((void *)names);
    }
    if (!rc && idt_reader_left(r))
        rc = idt_reader_fail(r, "%zu trailing bytes after the column map", idt_reader_left(r));
    if (!rc) rc = idt_group_make(gs, (int64_t)ng, grp, gcol, (int64_t)ncols, out, m->err);
    for (uint64_t g = 0; gs && g < ng; g++) idt_view_decref(gs[g]);
    for (uint64_t g = 0; seen && g < ng; g++) idt_free(seen[g]);
    idt_free(seen);
    idt_free(gs);
    idt_free(grp);
    idt_free(gcol);
    return rc;
}

/* Parse and load a manifest held in buf. dir is the saved directory (SAVED mode), or NULL. */
static int load_manifest(const char *buf, size_t len, const char *dir, int verify, const char *what,
                         idt_view **out, idt_error *err) {
    mload m;
    memset(&m, 0, sizeof m);
    idt_reader_init(&m.r, buf, len, what, err);
    m.dir = dir;
    m.verify = verify;
    m.what = what;
    m.err = err;
    uint32_t mode;
    int rc = read_manifest_header(&m.r, len, &mode);
    if (!rc && (mode == MODE_SAVED) != (dir != NULL))
        rc = idt_reader_fail(&m.r, "wrong kind of manifest: mode %u where %s is expected", mode,
                             dir ? "a saved view (0)" : "a view description (1)");
    if (!rc) rc = load_schema(&m);
    if (!rc) rc = load_selection(&m);
    if (!rc) rc = load_files(&m);
    if (!rc) rc = load_segments(&m);
    idt_view *v = NULL;
    if (!rc) rc = assemble_group(&m, &v);
    if (!rc) rc = load_groups(&m, &v);
    if (!rc) *out = v;
    else idt_view_decref(v);
    for (uint64_t i = 0; m.objs && i < m.nobj; i++) {
        idt_store_decref(m.objs[i].store);
        idt_refs_decref(m.objs[i].refs);
    }
    idt_free(m.objs);
    idt_free(m.segs);
    idt_free(m.sel);
    idt_schema_decref(m.schema);
    return rc;
}

int idt_view_load(const char *dir, const char *name, idt_view **out, idt_error *err) {
    return idt_view_load_ex(dir, name, 1, out, err);
}

int idt_view_load_ex(const char *dir, const char *name, int verify, idt_view **out, idt_error *err) {
    if (!valid_name(name)) return idt_error_set(err, IDT_EVALUE, "bad name '%s'", name);
    char mname[256];
    snprintf(mname, sizeof mname, "%s.idtview", name);
    char *mpath = idt_path_join(dir, mname);
    if (!mpath) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    idt_blob *b;
    int rc = idt_blob_map_file(mpath, &b, err);
    if (rc) {
        if (err && err->sys_errno == ENOENT)
            idt_error_sys(err, ENOENT, "no view named '%s' saved in '%s'", name, dir);
        idt_free(mpath);
        return rc;
    }
    rc = load_manifest(b->data, b->size, dir, verify, mpath, out, err);
    idt_blob_decref(b);
    idt_free(mpath);
    return rc;
}

int idt_view_describe(const idt_view *v, char **out, size_t *len, idt_error *err) {
    objects o;
    idt_writer w;
    idt_writer_init(&w);
    int rc = 0;
    if (collect(v, &o) != 0 || build_manifest(v, &o, MODE_DESCR, &w) != 0) {
        idt_free(w.p);
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    } else {
        *out = w.p;
        *len = w.n;
        /* other processes (and later unpicklings) may map these ranges: never reuse them */
        for (int64_t i = 0; i < o.n; i++) idt_blob_pin(obj_blob(&o, i));
    }
    objects_free(&o);
    return rc;
}

int idt_view_from_description(const char *buf, size_t len, idt_view **out, idt_error *err) {
    /* a description names live files of a running process: no content pass needed */
    return load_manifest(buf, len, NULL, 0, "view description", out, err);
}

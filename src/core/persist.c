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

#include "ptrmap.h"
#include "sys.h"
#include "tmp.h"

static const char VMAGIC[8] = {'I', 'D', 'T', 'V', 'I', 'E', 'W', 0};
enum { VHDR = 32, MODE_SAVED = 0, MODE_DESCR = 1, OBJ_STORE = 0, OBJ_REFS = 1 };

/* ---- growable byte buffer ---- */

typedef struct wbuf {
    char *p;
    size_t n, cap;
    int oom;
} wbuf;

static void wput(wbuf *w, const void *src, size_t n) {
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t c = w->cap ? w->cap : 256;
        while (c < w->n + n) c *= 2;
        char *q = idt_realloc(w->p, c);
        if (!q) {
            w->oom = 1;
            return;
        }
        w->p = q;
        w->cap = c;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void w32(wbuf *w, uint32_t v) { wput(w, &v, 4); }
static void w64(wbuf *w, uint64_t v) { wput(w, &v, 8); }
static void wpad(wbuf *w) {
    static const char z[8] = {0};
    if (w->n % 8) wput(w, z, 8 - w->n % 8);
}

typedef struct rbuf {
    const char *p, *end;
    int bad;
} rbuf;

static void rget(rbuf *r, void *dst, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}
static uint32_t r32(rbuf *r) { uint32_t v; rget(r, &v, 4); return v; }
static uint64_t r64(rbuf *r) { uint64_t v; rget(r, &v, 8); return v; }
static void rpad(rbuf *r, const char *base) {
    size_t off = (size_t)(r->p - base);
    if (off % 8) {
        size_t k = 8 - off % 8;
        if ((size_t)(r->end - r->p) < k) r->bad = 1;
        else r->p += k;
    }
}

/* Standard UTF-8 as Python decodes it strictly (no overlongs, surrogates or values past
 * 0x10FFFF): names from a manifest end up in Python strings and in error messages. */
static int valid_utf8(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0) return 0;
        uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1F : k == 2 ? c & 0x0F : c & 0x07;
        for (int i = 1; i <= k; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        s += k + 1;
    }
    return 1;
}

static int printable_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7E) return 0;
    return 1;
}

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

/* Stores and refs of v, stores of ref tables included. Returns -1 when out of memory. */
static int collect(const idt_view *v, objects *o) {
    memset(o, 0, sizeof *o);
    if (ptrmap_init(&o->map, 16) != 0) return -1;
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        if (s->kind == IDT_SEG_RUN) {
            if (obj_add(o, s->store, OBJ_STORE) < 0) return -1;
        } else {
            for (int64_t i = 0; i < s->refs->nstores; i++)
                if (obj_add(o, s->refs->stores[i], OBJ_STORE) < 0) return -1;
            if (obj_add(o, s->refs, OBJ_REFS) < 0) return -1;
        }
    }
    return 0;
}

static const idt_blob *obj_blob(const objects *o, int64_t i) {
    return o->kinds[i] == OBJ_STORE ? ((const idt_store *)o->objs[i])->blob
                                    : ((const idt_refs *)o->objs[i])->blob;
}

static const uint8_t *obj_uid(const objects *o, int64_t i) {
    return o->kinds[i] == OBJ_STORE ? ((const idt_store *)o->objs[i])->uid
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

/* ---- manifest ---- */

static void put_column(wbuf *w, const idt_column *c) {
    size_t start = w->n;
    w32(w, (uint32_t)c->kind);
    w32(w, (uint32_t)c->ndim);
    w32(w, (uint32_t)strlen(c->name));
    w32(w, (uint32_t)strlen(c->dtype));
    w64(w, (uint64_t)c->itemsize);
    for (int32_t d = 0; d < c->ndim; d++) w64(w, (uint64_t)c->shape[d]);
    wput(w, c->name, strlen(c->name));
    wput(w, c->dtype, strlen(c->dtype));
    (void)start;
    wpad(w);
}

/* Serialize v. mode SAVED names files by relative name; DESCR by absolute path + offset. */
static int build_manifest(const idt_view *v, const objects *o, int mode, wbuf *w) {
    memset(w, 0, sizeof *w);
    wput(w, VMAGIC, 8);
    w32(w, IDT_FORMAT_VERSION);
    w32(w, (uint32_t)mode);
    w64(w, 0); /* total length, set below */
    w64(w, 0); /* checksum, set below */
    w64(w, (uint64_t)v->schema->ncols);
    for (int64_t i = 0; i < v->schema->ncols; i++) put_column(w, &v->schema->cols[i]);
    w64(w, (uint64_t)v->ncols);
    for (int64_t j = 0; j < v->ncols; j++) w64(w, (uint64_t)v->cols[j]);
    w64(w, (uint64_t)o->n);
    for (int64_t i = 0; i < o->n; i++) {
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
        w32(w, (uint32_t)o->kinds[i]);
        w32(w, (uint32_t)strlen(path));
        w64(w, off);
        w64(w, obj_size(o, i));
        wput(w, obj_uid(o, i), 16);
        wput(w, path, strlen(path));
        wpad(w);
        if (o->kinds[i] == OBJ_REFS) {
            const idt_refs *r = o->objs[i];
            w64(w, (uint64_t)r->n);
            w64(w, r->hash);
            w64(w, (uint64_t)r->nstores);
            for (int64_t s = 0; s < r->nstores; s++)
                w64(w, (uint64_t)ptrmap_get(&o->map, r->stores[s]));
        }
    }
    w64(w, (uint64_t)v->nseg);
    for (int64_t k = 0; k < v->nseg; k++) {
        const idt_segment *s = &v->segs[k];
        w32(w, (uint32_t)s->kind);
        w32(w, 0);
        w64(w, (uint64_t)ptrmap_get(&o->map, s->kind == IDT_SEG_RUN ? (const void *)s->store
                                                                      : (const void *)s->refs));
        w64(w, (uint64_t)s->start);
        w64(w, (uint64_t)s->step);
        w64(w, (uint64_t)s->len);
    }
    if (w->oom) return -1;
    uint64_t total = w->n;
    memcpy(w->p + 16, &total, 8);
    uint64_t h = idt_hash64(w->p, w->n, 0);
    memcpy(w->p + 24, &h, 8);
    return 0;
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
    uint32_t version, mode;
    uint64_t total, sum;
    if (len < VHDR || memcmp(buf, VMAGIC, 8) != 0) return 1;
    memcpy(&version, buf + 8, 4);
    memcpy(&mode, buf + 12, 4);
    memcpy(&total, buf + 16, 8);
    memcpy(&sum, buf + 24, 8);
    if (version != IDT_FORMAT_VERSION || mode != MODE_SAVED || total != len) return 1;
    char *tmp = idt_malloc(len);
    if (!tmp) return -1;
    memcpy(tmp, buf, len);
    memset(tmp + 24, 0, 8);
    uint64_t h = idt_hash64(tmp, len, 0);
    idt_free(tmp);
    if (h != sum) return 1;
    rbuf r = {buf + VHDR, buf + len, 0};
    uint64_t ncols = r64(&r);
    for (uint64_t i = 0; i < ncols && !r.bad; i++) {
        r32(&r);
        uint32_t ndim = r32(&r), nl = r32(&r), dl = r32(&r);
        r64(&r);
        if (ndim >= IDT_MAXDIMS || nl > len || dl > len) return 1;
        for (uint32_t d = 0; d < ndim; d++) r64(&r);
        if (r.bad || (size_t)(r.end - r.p) < (size_t)nl + dl) return 1;
        r.p += nl + dl;
        rpad(&r, buf);
    }
    uint64_t nsel = r64(&r);
    if (r.bad || nsel > len / 8) return 1;
    for (uint64_t j = 0; j < nsel; j++) r64(&r);
    uint64_t nobj = r64(&r);
    if (r.bad || nobj > len / 40) return 1;
    for (uint64_t i = 0; i < nobj; i++) {
        uint32_t kind = r32(&r), pl = r32(&r);
        r64(&r);
        r64(&r);
        uint8_t uid[16];
        rget(&r, uid, 16);
        if (r.bad || pl != DATA_NAME_LEN || (size_t)(r.end - r.p) < pl) return 1;
        char name[DATA_NAME_LEN + 1];
        memcpy(name, r.p, pl);
        name[pl] = 0;
        r.p += pl;
        rpad(&r, buf);
        if (!is_data_name(name)) return 1;
        if (nameset_add(set, name) != 0) return -1;
        if (kind == OBJ_REFS) {
            r64(&r);
            r64(&r);
            uint64_t nslots = r64(&r);
            if (r.bad || nslots > len / 8) return 1;
            for (uint64_t k = 0; k < nslots; k++) r64(&r);
        } else if (kind != OBJ_STORE) {
            return 1;
        }
    }
    return r.bad ? 1 : 0;
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
    DIR *d = opendir(dir);
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
    closedir(d);
    return rc;
}

/* Remove (or with dry_run only count) dir's entry `name`, reporting it in rep. Returns 0, or
 * -1 when out of memory. */
static int remove_entry(const char *dir, const char *name, int dry_run, idt_saved_gc_report *rep,
                        int data) {
    char *path = idt_path_join(dir, name);
    if (!path) return -1;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (dry_run || unlink(path) == 0) && rep) {
        if (data) rep->data_files++;
        else rep->tmp_files++;
        rep->bytes += (int64_t)st.st_size;
        if (rep->each) rep->each(rep->ctx, name, (int64_t)st.st_size);
    }
    idt_free(path);
    return 0;
}

/* Remove the temporary files of dead saves in dir. The caller holds the directory's
 * exclusive lock: every live save holds it shared, so none is running. Returns 0, -1 when
 * out of memory, -2 when dir cannot be listed (errno kept). */
static int sweep_tmp(const char *dir, int dry_run, idt_saved_gc_report *rep) {
    DIR *d = opendir(dir);
    if (!d) return -2;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)))
        if (is_tmp_name(e->d_name)) rc = remove_entry(dir, e->d_name, dry_run, rep, 0);
    closedir(d);
    return rc;
}

/* Remove the data files of dir that no manifest names (the caller holds the exclusive lock).
 * Returns 0, 1 when some manifest could not be read (nothing is removed then), -1 when out of
 * memory, -2 when dir cannot be listed (errno kept). */
static int sweep_data(const char *dir, int dry_run, idt_saved_gc_report *rep) {
    nameset live = {NULL, 0, 0, 0};
    int rc = dir_refs(dir, NULL, &live);
    if (rc == 0) {
        DIR *d = opendir(dir);
        if (!d) rc = -2;
        struct dirent *e;
        while (d && rc == 0 && (e = readdir(d)))
            if (is_data_name(e->d_name) && !nameset_has(&live, e->d_name))
                rc = remove_entry(dir, e->d_name, dry_run, rep, 1);
        if (d) closedir(d);
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
    if (!rc && fsync(fd) != 0)
        rc = idt_error_sys(err, errno, "cannot sync '%s'", path);
    else if (mode && fstat(fd, &st) != 0)
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
    if (stat(final, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < size ||
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
        rc = idt_store_open_blob(b, final, &have, &e);
        if (rc) {
            idt_blob_decref(b);
            return rc == IDT_ENOMEM ? idt_error_set(err, IDT_ENOMEM, "out of memory") : 0;
        }
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
        char fname[64];
        file_name(o, i, fname);
        char *path = idt_path_join(dir, fname);
        struct stat st;
        int ok = path && lstat(path, &st) == 0;
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
    if (!overwrite && stat(mpath, &st) == 0) {
        int rc = idt_error_set(err, IDT_EEXIST, "a view named '%s' is already saved in '%s'", name, dir);
        idt_free(mpath);
        return rc;
    }
    objects o;
    created made = {NULL, 0, 0};
    wbuf w = {NULL, 0, 0, 0};
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
        int existed = lstat(final, &st) == 0; /* a damaged file, replaced below */
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
        if (b->kind != IDT_BLOB_ARENA && b->offset == 0 && stat(b->path, &st) == 0 &&
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
        if (errno == EEXIST || stat(mpath, &st) == 0) /* no hard links here: check, rename */
            rc = idt_error_set(err, IDT_EEXIST, "a view named '%s' is already saved in '%s'", name, dir);
        else if (idt_rename(mtmp, mpath) != 0)
            rc = idt_error_sys(err, errno, "cannot create '%s'", mpath);
    }
    if (!rc) {
        int sfd = dfd >= 0 ? dfd : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd >= 0) fsync(sfd);
        if (sfd >= 0 && sfd != dfd) close(sfd);
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

typedef struct loaded {
    int kind;
    idt_store *store;
    idt_refs *refs;
    idt_blob *blob;      /* refs: the mapped blob before idt_refs_new takes it */
    uint64_t n, nslots;
    uint64_t *slots;
} loaded;

static int corrupt(idt_error *err, const char *what, const char *why) {
    return idt_error_set(err, IDT_ECORRUPT, "%s: %s", what, why);
}

/* Parse and load a manifest held in buf. dir is the saved directory (SAVED mode), or NULL. */
static int load_manifest(const char *buf, size_t len, const char *dir, int verify, const char *what,
                         idt_view **out, idt_error *err) {
    if (len < VHDR || memcmp(buf, VMAGIC, 8) != 0) return corrupt(err, what, "not an infinidata view manifest");
    uint32_t version, mode;
    uint64_t total, sum;
    memcpy(&version, buf + 8, 4);
    memcpy(&mode, buf + 12, 4);
    memcpy(&total, buf + 16, 8);
    memcpy(&sum, buf + 24, 8);
    if (version != IDT_FORMAT_VERSION)
        return idt_error_set(err, IDT_ECORRUPT,
                             "%s: written by format version %u; this build of infinidata reads version %d",
                             what, version, IDT_FORMAT_VERSION);
    if (total != len) return corrupt(err, what, "length does not match its header (truncated?)");
    {
        char *tmp = idt_malloc(len);
        if (!tmp) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        memcpy(tmp, buf, len);
        memset(tmp + 24, 0, 8);
        uint64_t h = idt_hash64(tmp, len, 0);
        idt_free(tmp);
        if (h != sum) return corrupt(err, what, "checksum mismatch (damaged file)");
    }
    if ((mode == MODE_SAVED) != (dir != NULL)) return corrupt(err, what, "wrong kind of manifest");
    rbuf r = {buf + VHDR, buf + len, 0};
    int rc = 0;
    idt_schema *schema = NULL;
    idt_column *cols = NULL;
    int64_t *sel = NULL;
    char *seen = NULL;
    loaded *objs = NULL;
    idt_segment *segs = NULL;
    uint64_t nschema = r64(&r), nobj = 0, nseg = 0, nsel = 0;
    if (r.bad || nschema < 1 || nschema > len / 24) {
        rc = corrupt(err, what, "bad column count");
        goto done;
    }
    cols = idt_calloc(nschema, sizeof *cols);
    if (!cols) goto oom;
    for (uint64_t i = 0; i < nschema; i++) {
        idt_column *c = &cols[i];
        c->kind = (idt_col_kind)r32(&r);
        c->ndim = (int32_t)r32(&r);
        uint32_t nl = r32(&r), dl = r32(&r);
        c->itemsize = (int64_t)r64(&r);
        if (r.bad || c->ndim < 0 || c->ndim >= IDT_MAXDIMS || dl >= IDT_DTYPE_MAX || nl > len) {
            rc = corrupt(err, what, "bad column description");
            goto done;
        }
        if (c->ndim) {
            c->shape = idt_malloc((size_t)c->ndim * 8);
            if (!c->shape) goto oom;
            for (int32_t d = 0; d < c->ndim; d++) c->shape[d] = (int64_t)r64(&r);
        }
        c->name = idt_malloc(nl + 1);
        if (!c->name) goto oom;
        rget(&r, c->name, nl);
        c->name[nl] = 0;
        rget(&r, c->dtype, dl);
        c->dtype[dl] = 0;
        rpad(&r, buf);
        if (r.bad || strlen(c->name) != nl || strlen(c->dtype) != dl || !valid_utf8(c->name) ||
            !printable_ascii(c->dtype)) {
            rc = corrupt(err, what, "bad column description");
            goto done;
        }
    }
    rc = idt_schema_new(cols, (int64_t)nschema, &schema, err);
    if (rc) {
        if (rc != IDT_ENOMEM) { /* the reason is err->msg itself: copy it before rewriting */
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err ? err->msg : "");
            rc = idt_error_set(err, IDT_ECORRUPT, "%s: bad schema (%s)", what, why);
        }
        goto done;
    }
    for (uint64_t i = 0; i < nschema; i++) /* the schema sorts; a sorted manifest keeps indexes */
        if (strcmp(schema->cols[i].name, cols[i].name)) {
            rc = corrupt(err, what, "columns out of order");
            goto done;
        }
    nsel = r64(&r);
    if (r.bad || nsel < 1 || nsel > nschema) {
        rc = corrupt(err, what, "bad column selection");
        goto done;
    }
    sel = idt_malloc(nsel * 8);
    seen = idt_calloc(nschema, 1);
    if (!sel || !seen) goto oom;
    for (uint64_t j = 0; j < nsel; j++) {
        sel[j] = (int64_t)r64(&r);
        if (r.bad || sel[j] < 0 || (uint64_t)sel[j] >= nschema) {
            rc = corrupt(err, what, "bad column selection");
            goto done;
        }
        if (seen[sel[j]]++) { /* a view selects each column once (idt_view_select) */
            rc = idt_error_set(err, IDT_ECORRUPT, "%s: column '%s' selected twice", what,
                               schema->cols[sel[j]].name);
            goto done;
        }
    }
    nobj = r64(&r);
    if (r.bad || nobj > len / 40) {
        rc = corrupt(err, what, "bad object count");
        goto done;
    }
    objs = idt_calloc(nobj ? nobj : 1, sizeof *objs);
    if (!objs) goto oom;
    for (uint64_t i = 0; i < nobj; i++) {
        loaded *L = &objs[i];
        L->kind = (int)r32(&r);
        uint32_t pl = r32(&r);
        uint64_t off = r64(&r), size = r64(&r);
        uint8_t uid[16];
        rget(&r, uid, 16);
        if (r.bad || pl == 0 || pl > 4096 || (size_t)(r.end - r.p) < pl ||
            (L->kind != OBJ_STORE && L->kind != OBJ_REFS) ||
            (!dir && off % 8)) { /* blobs start 64-byte aligned: offsets and refs are read as uint64 */
            rc = corrupt(err, what, "bad file entry");
            goto done;
        }
        char path[4097];
        memcpy(path, r.p, pl);
        path[pl] = 0;
        r.p += pl;
        rpad(&r, buf);
        char want[64] = "";
        if (dir) { /* a saved directory's files are named by their kind and identity */
            char h[33];
            hex(uid, h);
            snprintf(want, sizeof want, "%c-%s.idt", L->kind == OBJ_STORE ? 's' : 'r', h);
        }
        if (strlen(path) != pl || (dir && strcmp(path, want))) {
            rc = corrupt(err, what, "bad file name in manifest");
            goto done;
        }
        char *full = dir ? idt_path_join(dir, path) : idt_strdup(path);
        if (!full) goto oom;
        idt_blob *b = NULL;
        rc = dir ? idt_blob_map_file(full, &b, err) : idt_blob_map_range(full, off, size, &b, err);
        if (!rc && b->size < size) {
            rc = idt_error_set(err, IDT_ECORRUPT, "%s: holds %zu bytes, %llu expected (truncated?)", full,
                               b->size, (unsigned long long)size);
            idt_blob_decref(b);
        }
        if (rc) {
            idt_free(full);
            goto done;
        }
        if (L->kind == OBJ_STORE) {
            rc = idt_store_open_blob(b, full, &L->store, err);
            if (rc) {
                idt_blob_decref(b);
                idt_free(full);
                goto done;
            }
            if (memcmp(L->store->uid, uid, 16)) {
                idt_free(full);
                rc = corrupt(err, what, "a store file does not match its entry");
                goto done;
            }
            if (verify && (rc = idt_store_verify(L->store, full, err))) {
                idt_free(full);
                goto done;
            }
        } else {
            L->blob = b;
            L->n = r64(&r);
            uint64_t hash = r64(&r);
            L->nslots = r64(&r);
            if (r.bad || L->n > size / 8 || L->nslots > nobj || L->nslots > (uint64_t)IDT_MAX_SLOTS) {
                idt_free(full);
                rc = corrupt(err, what, "bad ref array entry");
                goto done;
            }
            uint64_t got = hash;
            if (verify && (rc = idt_hash_fast_progress(b->data, (size_t)L->n * 8, 0, &got, err))) {
                idt_free(full);
                goto done;
            }
            if (got != hash) {
                rc = idt_error_set(err, IDT_ECORRUPT, "%s: ref array checksum mismatch (damaged file)", full);
                idt_free(full);
                goto done;
            }
            L->slots = idt_malloc((L->nslots ? L->nslots : 1) * 8);
            if (!L->slots) {
                idt_free(full);
                goto oom;
            }
            for (uint64_t s = 0; s < L->nslots; s++) {
                L->slots[s] = r64(&r);
                if (r.bad || L->slots[s] >= i || objs[L->slots[s]].kind != OBJ_STORE) {
                    idt_free(full);
                    rc = corrupt(err, what, "bad ref array store table");
                    goto done;
                }
            }
            /* every ref must name a slot and a row of that slot's store */
            const uint64_t *ref = (const uint64_t *)b->data;
            for (uint64_t k = 0; k < L->n; k++) {
                uint64_t slot = ref[k] >> IDT_REF_ROW_BITS, row = ref[k] & IDT_REF_ROW_MASK;
                if (slot >= L->nslots || (int64_t)row >= objs[L->slots[slot]].store->nrows) {
                    rc = idt_error_set(err, IDT_ECORRUPT, "%s: ref %llu is out of range", full,
                                       (unsigned long long)k);
                    break;
                }
            }
            if (!rc) {
                idt_store **t = idt_malloc((L->nslots ? L->nslots : 1) * sizeof *t);
                if (!t) {
                    idt_free(full);
                    goto oom;
                }
                for (uint64_t s = 0; s < L->nslots; s++) t[s] = objs[L->slots[s]].store;
                rc = idt_refs_new(b, (int64_t)L->n, t, (int64_t)L->nslots, uid, &L->refs, err);
                idt_free(t);
                if (!rc) {
                    L->blob = NULL; /* the refs own it */
                    L->refs->hash = hash;
                }
            }
            if (rc) {
                idt_free(full);
                goto done;
            }
        }
        idt_free(full);
    }
    nseg = r64(&r);
    if (r.bad || nseg > len / 40) {
        rc = corrupt(err, what, "bad segment count");
        goto done;
    }
    segs = idt_calloc(nseg ? nseg : 1, sizeof *segs);
    if (!segs) goto oom;
    for (uint64_t k = 0; k < nseg; k++) {
        uint32_t kind = r32(&r);
        r32(&r);
        uint64_t obj = r64(&r);
        segs[k].start = (int64_t)r64(&r);
        segs[k].step = (int64_t)r64(&r);
        segs[k].len = (int64_t)r64(&r);
        if (r.bad || obj >= nobj || (kind == IDT_SEG_RUN && objs[obj].kind != OBJ_STORE) ||
            (kind == IDT_SEG_REFS && objs[obj].kind != OBJ_REFS) || kind > IDT_SEG_REFS) {
            rc = corrupt(err, what, "bad segment");
            goto done;
        }
        segs[k].kind = (idt_seg_kind)kind;
        segs[k].store = kind == IDT_SEG_RUN ? objs[obj].store : NULL;
        segs[k].refs = kind == IDT_SEG_REFS ? objs[obj].refs : NULL;
    }
    if (r.p != r.end) {
        rc = corrupt(err, what, "trailing bytes");
        goto done;
    }
    rc = idt_view_assemble(schema, sel, (int64_t)nsel, segs, (int64_t)nseg, out, err);
    if (rc && rc != IDT_ENOMEM && err) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        rc = idt_error_set(err, IDT_ECORRUPT, "%s: %s", what, m);
    }
    goto done;
oom:
    rc = idt_error_set(err, IDT_ENOMEM, "out of memory loading %s", what);
done:
    if (objs)
        for (uint64_t i = 0; i < nobj; i++) {
            idt_store_decref(objs[i].store);
            idt_refs_decref(objs[i].refs);
            idt_blob_decref(objs[i].blob);
            idt_free(objs[i].slots);
        }
    idt_free(objs);
    idt_free(segs);
    idt_free(sel);
    idt_free(seen);
    if (cols)
        for (uint64_t i = 0; i < nschema; i++) {
            idt_free(cols[i].name);
            idt_free(cols[i].shape);
        }
    idt_free(cols);
    idt_schema_decref(schema);
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
    wbuf w = {NULL, 0, 0, 0};
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

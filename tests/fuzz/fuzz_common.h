/* fuzz_common.h: what the fuzz harnesses share: a per-process scratch directory, reading
 * every row of a view (widths, gathers, a batch iterator), derived views, and a check after
 * each input that nothing the core counts (heap blocks, mappings, descriptors, blobs) leaked.
 *
 * Included by fuzz_load.c and fuzz_store.c, which tests/c/test_fuzz_replay.c includes too, so
 * the fuzzer and the replay run the same code. Everything here is static; the harness uses
 * plain libc (never the core's seam) for its own files and memory.
 *
 * Bounds: a view is read up to FZ_MAX_ROWS rows from each end, and a selection whose output
 * would pass FZ_MAX_BYTES is measured (widths) but not gathered. A few hundred bytes of input
 * can describe 2^62 rows of zero-width columns, or one string as wide as the file repeated in
 * every row; reading those whole would measure the fuzzer's patience, not the loader. */
#ifndef IDT_FUZZ_COMMON_H
#define IDT_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "error.h"
#include "persist.h"
#include "store.h"
#include "sys.h"
#include "tmp.h"
#include "view.h"

enum { FZ_MAX_ROWS = 256, FZ_MAX_BYTES = 8 << 20, FZ_MAX_FILES = 32 };

/* Flags in the first byte of every input. */
enum {
    FZ_FIX_MANIFEST = 1, /* load: set the manifest's length and checksum fields */
    FZ_FIX_STORES = 2,   /* set the header checksum of every store image */
    FZ_THREADS = 4,      /* the batch iterator runs worker threads */
    FZ_DERIVE = 8,       /* also take, filter, shuffle, concat, slice, select, describe */
    /* bits 4-6: batch size - 1 (an even batch size drops the last partial batch) */
    FZ_VERIFY = 128,     /* check content checksums (row data, ref arrays) too */
};

static char fz_dir[1024];
static long fz_opened; /* inputs that loaded (opened): the replay requires it of every seed */

static void fz_die(const char *what, const char *detail) {
    fprintf(stderr, "fuzz harness: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}


static int fz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Remove the scratch directories of dead processes under base: a crash (or a kill) skips
 * the exit handlers, and on /dev/shm a leftover temp area holds its 64 MiB arena in RAM. */
static void fz_reap(const char *base) {
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "idt-fuzz-", 9)) continue;
        long pid = strtol(e->d_name + 9, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        nftw(path, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

/* Remove fz_dir and everything in it (the core's exit handler has removed its own temp
 * directory by then: it was registered later, so it runs first). */
static void fz_cleanup(void) { nftw(fz_dir, fz_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* The per-process scratch directory, made on first use under $IDT_FUZZ_TMP, else /dev/shm
 * (files there cost no disk I/O), else $TMPDIR or /tmp. The core's temp area goes inside it
 * unless INFINIDATA_TMPDIR is set. The first call reaps dead processes' scratch directories
 * and warms the temp area up (its directory and first arena chunk) so that the per-input
 * leak check sees only what an input did. */
static const char *fz_scratch(void) {
    if (fz_dir[0]) return fz_dir;
    const char *base = getenv("IDT_FUZZ_TMP");
    if (!base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base) base = "/tmp";
    fz_reap(base);
    snprintf(fz_dir, sizeof fz_dir, "%s/idt-fuzz-%ld", base, (long)getpid());
    if (mkdir(fz_dir, 0700) != 0 && errno != EEXIST) fz_die("cannot create the scratch directory", fz_dir);
    atexit(fz_cleanup); /* registered before the core's handler, so it runs after it */
    if (!getenv("INFINIDATA_TMPDIR")) {
        char t[1100];
        snprintf(t, sizeof t, "%s/tmp", fz_dir);
        setenv("INFINIDATA_TMPDIR", t, 1);
    }
    idt_blob *b;
    idt_error err;
    if (idt_blob_new(64, &b, &err) != 0) fz_die("cannot make a temp blob", err.msg);
    idt_blob_decref(b);
    return fz_dir;
}

/* Write `name` in the scratch directory (replacing it). */
static void fz_write_file(const char *name, const uint8_t *p, size_t n) {
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", fz_scratch(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fz_die("cannot create a scratch file", path);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) fz_die("cannot write a scratch file", path);
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

/* Set the row data checksum and then the header checksum of a store image in place, when
 * its header size is plausible (else leave it: the loader must refuse it either way). */
static void fz_fix_store(uint8_t *p, size_t n) {
    static const char magic[8] = {'I', 'D', 'T', 'S', 'T', 'O', 'R', 0};
    uint32_t hdr;
    if (n < 64 || memcmp(p, magic, 8)) return;
    memcpy(&hdr, p + 12, 4);
    if (hdr < 64 || hdr > n) return;
    size_t data = ((size_t)hdr + 63) & ~(size_t)63;
    if (data <= n) {
        uint64_t h = idt_hash_fast(p + data, n - data, 0);
        memcpy(p + 56, &h, 8);
    }
    memset(p + 32, 0, 8);
    uint64_t h = idt_hash64(p, hdr, 0);
    memcpy(p + 32, &h, 8);
}

/* ---- what is live ---- */

typedef struct fz_snap {
    idt_sys_stats sys;
    idt_tmp_stats tmp;
} fz_snap;

static void fz_snap_take(fz_snap *s) {
    idt_sys_stats_get(&s->sys);
    idt_tmp_stats_get(&s->tmp);
}

/* Abort unless everything counted at `a` is as it was. A new arena chunk (one per 64 MiB of
 * temp blobs) legitimately changes the heap, mapping and descriptor counts; blobs never. */
static void fz_snap_check(const fz_snap *a) {
    fz_snap b;
    fz_snap_take(&b);
    int same = a->tmp.live_blobs == b.tmp.live_blobs && a->tmp.file_blobs == b.tmp.file_blobs;
    if (same && a->tmp.arena_chunks == b.tmp.arena_chunks)
        same = !memcmp(&a->sys, &b.sys, sizeof a->sys);
    if (!same) {
        char buf[300];
        snprintf(buf, sizeof buf, "allocs %lld -> %lld, maps %lld -> %lld, fds %lld -> %lld, blobs %lld -> %lld",
                 (long long)a->sys.allocs, (long long)b.sys.allocs, (long long)a->sys.maps,
                 (long long)b.sys.maps, (long long)a->sys.fds, (long long)b.sys.fds,
                 (long long)a->tmp.live_blobs, (long long)b.tmp.live_blobs);
        fz_die("the input leaked", buf);
    }
}

/* A failed call must return the code it sets, with a message. */
static void fz_check_err(int rc, const idt_error *err) {
    if (rc >= 0 || err->code != rc || !err->msg[0]) fz_die("an error without its code or message", err->msg);
}

/* ---- reading views ---- */

/* Output bytes of one row of view column j at string width w, or -1 past FZ_MAX_BYTES. */
static int64_t fz_row_bytes(const idt_view *v, int64_t j, int64_t w) {
    const idt_column *c = idt_view_column(v, j);
    if (idt_column_is_list(c)) return 0; /* gathered by fz_lists */
    if (c->kind == IDT_COL_FIXED) return c->row_bytes <= FZ_MAX_BYTES ? c->row_bytes : -1;
    int64_t per = c->row_elems, esz = c->kind == IDT_COL_UTF8 ? 4 : 1;
    if (w > FZ_MAX_BYTES || (per && w * esz > FZ_MAX_BYTES / per)) return -1;
    return per * w * esz;
}

/* The list columns of the selection: measured, gathered as offsets + values when at most
 * FZ_MAX_BYTES, and padded to 8 values (pad 0x5A bytes); offsets and lengths checked. */
static void fz_lists(const idt_view *v, const idt_rowsel *sel) {
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        if (!idt_column_is_list(c)) continue;
        int64_t total = idt_view_str_bytes(v, sel, j);
        if (total < 0) fz_die("a negative list total", NULL);
        int64_t *offs = malloc((size_t)(sel->count + 1) * sizeof *offs);
        int64_t *lens = malloc((size_t)(sel->count ? sel->count : 1) * sizeof *lens);
        char *pad = malloc((size_t)(sel->count ? sel->count : 1) * 8 * (size_t)c->itemsize);
        if (!offs || !lens || !pad) fz_die("out of memory", NULL);
        if (total <= FZ_MAX_BYTES / c->itemsize) {
            char *vals = malloc((size_t)(total * c->itemsize) + 1);
            if (!vals) fz_die("out of memory", NULL);
            idt_view_gather_packed(v, sel, j, offs, vals);
            if (offs[0] != 0 || offs[sel->count] != total) fz_die("list offsets do not span the total", NULL);
            for (int64_t i = 0; i < sel->count; i++)
                if (offs[i] > offs[i + 1]) fz_die("list offsets out of order", NULL);
            free(vals);
        }
        unsigned char pv[16];
        memset(pv, 0x5A, sizeof pv);
        idt_view_gather_padded(v, sel, j, 8, pv, pad, lens);
        for (int64_t i = 0; i < sel->count; i++)
            if (lens[i] < 0 || lens[i] > 8) fz_die("a padded length out of range", NULL);
        free(offs);
        free(lens);
        free(pad);
    }
}

/* Measure and gather the selected rows of every column into malloc'd buffers. Returns the
 * bytes of one output row (-1 when too large to gather). */
static int64_t fz_gather(const idt_view *v, const idt_rowsel *sel) {
    int64_t nc = v->ncols, total = 0;
    int64_t *w = malloc((size_t)nc * sizeof *w);
    void **outs = calloc((size_t)nc, sizeof *outs);
    if (!w || !outs) fz_die("out of memory", NULL);
    idt_error err;
    int rc = idt_view_str_widths(v, sel, w, &err);
    if (rc) fz_die("idt_view_str_widths failed", err.msg);
    for (int64_t j = 0; j < nc && total >= 0; j++) {
        if (idt_column_is_str(idt_view_column(v, j)) && w[j] < 1) fz_die("a string width below 1", NULL);
        int64_t rb = fz_row_bytes(v, j, w[j]);
        total = rb < 0 || total > FZ_MAX_BYTES - rb ? -1 : total + rb;
    }
    if (total >= 0 && (total == 0 || sel->count <= FZ_MAX_BYTES / total)) {
        for (int64_t j = 0; j < nc; j++) {
            size_t n = (size_t)(sel->count * fz_row_bytes(v, j, w[j]));
            outs[j] = malloc(n ? n : 1);
            if (!outs[j]) fz_die("out of memory", NULL);
        }
        idt_view_gather(v, sel, outs, w);
    } else {
        total = -1;
    }
    fz_lists(v, sel);
    for (int64_t j = 0; j < nc; j++) free(outs[j]);
    free(outs);
    free(w);
    return total;
}

/* Every batch of v (at most FZ_MAX_ROWS rows). */
static void fz_batches(idt_view *v, unsigned flags) {
    idt_batcher *it;
    idt_error err;
    int64_t bs = 1 + ((flags >> 4) & 7), threads = flags & FZ_THREADS ? 3 : 1;
    idt_list_pad *pads = calloc((size_t)v->ncols, sizeof *pads); /* odd batch sizes pad lists to 5 */
    if (!pads) fz_die("out of memory", NULL);
    for (int64_t j = 0; j < v->ncols; j++) pads[j].length = bs % 2 ? 5 : -1;
    int rc = idt_batcher_new_padded(v, bs, bs % 2 == 0, threads, flags & FZ_THREADS ? 2 : 0, pads, &it, &err);
    free(pads);
    if (rc) {
        fz_check_err(rc, &err);
        return;
    }
    int64_t got = 0;
    idt_batch *b;
    while ((rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH) {
        if (b->index != got++ || b->nrows < 1 || b->nrows > bs) fz_die("a batch out of order or size", NULL);
        idt_batch_free(b);
    }
    if (rc < 0) fz_check_err(rc, &err);
    else if (got != idt_batcher_count(it)) fz_die("batches missing", NULL);
    idt_batcher_free(it);
}

/* Read v: the first rows, and with `full` also the last rows backwards, a strided range, an
 * index list and every batch of the first rows. */
static void fz_read(idt_view *v, unsigned flags, int full) {
    int64_t n = idt_view_len(v), m = n < FZ_MAX_ROWS ? n : FZ_MAX_ROWS;
    if (n < 0 || v->ncols < 1) fz_die("a view of negative length or no columns", NULL);
    for (int64_t j = 0; j < v->schema->ncols; j++) { /* what loads must be constructible */
        const idt_column *c = &v->schema->cols[j];
        if (!idt_dtype_allowed(c->kind, c->dtype, c->itemsize))
            fz_die("a column outside the dtype allow-list loaded", c->dtype);
    }
    idt_rowsel head = {0, 1, m, NULL};
    int small = fz_gather(v, &head) >= 0;
    if (n == 0 || !full) return;
    idt_rowsel tail = {n - 1, -1, m, NULL};
    fz_gather(v, &tail);
    int64_t cnt = (n - 1) / 3 + 1;
    idt_rowsel strided = {0, 3, cnt < m ? cnt : m, NULL};
    fz_gather(v, &strided);
    int64_t idx[32];
    uint64_t x = flags * 0x9E3779B97F4A7C15u + (uint64_t)n;
    for (int i = 0; i < 32; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        idx[i] = i == 0 ? n - 1 : i == 1 ? 0 : (int64_t)((x >> 11) % (uint64_t)n);
    }
    idt_rowsel list = {0, 0, 32, idx};
    fz_gather(v, &list);
    if (!small) return;
    idt_view *head_v = v;
    idt_error err;
    if (m < n) {
        int rc = idt_view_slice(v, 0, 1, m, &head_v, &err);
        if (rc) {
            fz_check_err(rc, &err);
            return;
        }
    }
    fz_batches(head_v, flags);
    if (head_v != v) idt_view_decref(head_v);
}

/* Read a derived view (made by `rc`/`d`) and drop it. */
static void fz_take_result(int rc, idt_view *d, const idt_error *err, unsigned flags) {
    if (rc) {
        fz_check_err(rc, err);
        return;
    }
    fz_read(d, flags, 0);
    idt_view_decref(d);
}

/* Views derived from v, each read: what a user does with a loaded table. */
static void fz_derive(idt_view *v, unsigned flags) {
    int64_t n = idt_view_len(v);
    idt_view *d;
    idt_error err;
    int rc;
    if (n > FZ_MAX_ROWS) { /* compose only what is cheap: the first rows */
        rc = idt_view_slice(v, n - 1, -2, FZ_MAX_ROWS / 2, &d, &err);
        fz_take_result(rc, d, &err, flags);
        rc = idt_view_slice(v, 0, 1, FZ_MAX_ROWS, &d, &err);
        if (rc) {
            fz_check_err(rc, &err);
            return;
        }
        fz_derive(d, flags);
        idt_view_decref(d);
        return;
    }
    if (n > 0) {
        int64_t idx[32];
        for (int i = 0; i < 32; i++) idx[i] = (i * 7919) % n - (i & 1 ? n : 0);
        rc = idt_view_take(v, idx, 32, &d, &err);
        fz_take_result(rc, d, &err, flags);
        uint8_t mask[FZ_MAX_ROWS];
        for (int64_t i = 0; i < n; i++) mask[i] = (uint8_t)((i * 5 + flags) % 3 != 0);
        rc = idt_view_filter(v, mask, n, &d, &err);
        fz_take_result(rc, d, &err, flags);
        rc = idt_view_slice(v, n - 1, -1, n, &d, &err);
        fz_take_result(rc, d, &err, flags);
    }
    rc = idt_view_shuffle(v, flags, &d, &err);
    fz_take_result(rc, d, &err, flags);
    idt_view *two[2] = {v, v};
    rc = idt_view_concat(two, 2, &d, &err);
    fz_take_result(rc, d, &err, flags);
    for (int64_t j = 0; j < v->ncols; j++) {
        const idt_column *c = idt_view_column(v, j);
        const char *name = c->name;
        rc = idt_view_select(v, &name, 1, &d, &err);
        fz_take_result(rc, d, &err, flags);
        if (c->kind != IDT_COL_FIXED) {
            const char *strs[3] = {"", "a", "\xc3\xa9"};
            int64_t lens[3] = {0, 1, 2};
            rc = idt_view_remove_strings(v, name, strs, lens, 3, &d, &err);
            fz_take_result(rc, d, &err, flags);
        }
    }
    char *desc;
    size_t len;
    rc = idt_view_describe(v, &desc, &len, &err);
    if (rc) {
        fz_check_err(rc, &err);
        return;
    }
    rc = idt_view_from_description(desc, len, &d, &err);
    idt_free(desc);
    fz_take_result(rc, d, &err, flags);
}

#endif

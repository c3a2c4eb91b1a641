/* tmp.c: the temp area (per-process directories, crash reaping) and blob allocation. */
#include "tmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

struct idt_chunk {
    _Atomic int64_t refs; /* live blobs, plus one while it is the current chunk */
    char *path;
    char *map;
    size_t size, used;
    int fd;               /* open while current, for fallocate; -1 after */
    pid_t owner;
    uint64_t dev, ino;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *root_path;     /* absolute temp root, set at first use */
static char *proc_path;     /* this process's directory */
static int lock_fd = -1;
static pid_t proc_owner;
static idt_chunk *cur_chunk;
static _Atomic uint64_t name_counter;
static _Atomic int64_t n_live_blobs, n_chunks, n_file_blobs;

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

void idt_random_bytes(void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        p += r;
        n -= (size_t)r;
    }
    if (n > 0) { /* no getrandom: mix the clock, pid and addresses (unpredictable enough) */
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        uint64_t x = (uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 32) ^ (uint64_t)getpid() ^
                     (uint64_t)(uintptr_t)&t;
        for (size_t i = 0; i < n; i++) {
            x += 0x9E3779B97F4A7C15u;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
            p[i] = (char)(z ^ (z >> 31));
        }
    }
}

static void chunk_release(idt_chunk *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->fd >= 0) idt_close(c->fd);
    idt_munmap(c->map, c->size);
    if (c->owner == getpid()) unlink(c->path);
    idt_free(c->path);
    idt_free(c);
    atomic_fetch_sub(&n_chunks, 1);
}

/* Retire the current chunk (caller holds mu). */
static void chunk_retire(void) {
    idt_chunk *c = cur_chunk;
    if (!c) return;
    cur_chunk = NULL;
    if (c->fd >= 0) {
        idt_close(c->fd);
        c->fd = -1;
    }
    chunk_release(c);
}

static void at_fork_prepare(void) { pthread_mutex_lock(&mu); }
static void at_fork_parent(void) { pthread_mutex_unlock(&mu); }
static void at_fork_child(void) {
    /* The child shares the parent's files but owns none of them: it forgets the parent's
     * directory and chunk (never unlinking them) and makes its own on first need. */
    if (lock_fd >= 0) idt_close(lock_fd);
    lock_fd = -1;
    if (proc_path) idt_free(proc_path);
    proc_path = NULL;
    if (cur_chunk) {
        if (cur_chunk->fd >= 0) idt_close(cur_chunk->fd);
        cur_chunk->fd = -1;
        idt_chunk *c = cur_chunk;
        cur_chunk = NULL;
        chunk_release(c);
    }
    pthread_mutex_unlock(&mu);
}

static void init_once(void) {
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
    atexit(idt_tmp_shutdown); /* temp files go at exit even with views still alive */
}

char *idt_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = idt_malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

/* Remove every plain file in `dir` (not recursing), then the directory. Counts into rep. */
static void remove_dir_files(const char *dir, idt_gc_report *rep, int dry_run) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && rep) {
            rep->files++;
            rep->bytes += (int64_t)st.st_blocks * 512;
        }
        if (!dry_run) unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    if (!dry_run) rmdir(dir);
}

/* Reap under root, skipping the directory named `own` (may be NULL). */
static int gc_dir(const char *root, const char *own, int dry_run, idt_gc_report *rep, idt_error *err) {
    DIR *d = opendir(root);
    if (!d) {
        if (errno == ENOENT) return 0;
        return idt_error_sys(err, errno, "cannot read temp directory '%s'", root);
    }
    struct dirent *e;
    time_t now = time(NULL);
    while ((e = readdir(d))) {
        int is_new = !strncmp(e->d_name, ".new-", 5);
        if (e->d_name[0] != 'p' && !is_new) continue;
        if (own && !strcmp(own, e->d_name)) continue;
        char *dir = idt_path_join(root, e->d_name);
        if (!dir) break;
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || (is_new && now - st.st_mtime < 60)) {
            idt_free(dir);
            continue;
        }
        char *lock = idt_path_join(dir, "lock");
        int fd = lock ? open(lock, O_RDWR | O_CLOEXEC) : -1;
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            rep->dirs++;
            remove_dir_files(dir, rep, dry_run);
        }
        if (fd >= 0) close(fd); /* also drops the lock */
        idt_free(lock);
        idt_free(dir);
    }
    closedir(d);
    return 0;
}

int idt_tmp_gc(const char *root, int dry_run, idt_gc_report *rep, idt_error *err) {
    idt_gc_report local = {0, 0, 0};
    if (!rep) rep = &local;
    *rep = local;
    if (!root) {
        const char *env = getenv("INFINIDATA_TMPDIR");
        root = (env && *env) ? env : ".infinidata_tmp";
    }
    char *own = NULL;
    pthread_mutex_lock(&mu);
    if (proc_path && proc_owner == getpid()) {
        const char *slash = strrchr(proc_path, '/');
        own = idt_strdup(slash ? slash + 1 : proc_path);
    }
    pthread_mutex_unlock(&mu);
    int rc = gc_dir(root, own, dry_run, rep, err);
    idt_free(own);
    return rc;
}

/* Make the temp root and this process's directory (caller holds mu). */
static int make_procdir(idt_error *err) {
    if (proc_path && proc_owner == getpid()) return 0;
    if (!root_path) {
        const char *env = getenv("INFINIDATA_TMPDIR");
        const char *r = (env && *env) ? env : ".infinidata_tmp";
        if (idt_mkdir(r, 0777) != 0 && errno != EEXIST)
            return idt_error_sys(err, errno, "cannot create temp directory '%s'", r);
        char buf[PATH_MAX];
        if (!realpath(r, buf)) return idt_error_sys(err, errno, "cannot resolve temp directory '%s'", r);
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return idt_error_set(err, IDT_EIO, "temp directory '%s' is not a directory", r);
        if (access(buf, W_OK | X_OK) != 0)
            return idt_error_sys(err, errno, "temp directory '%s' is not writable", buf);
        root_path = idt_strdup(buf);
        if (!root_path) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        idt_gc_report rep;
        gc_dir(root_path, NULL, 0, &rep, NULL); /* reap dead processes' leftovers */
    } else if (idt_mkdir(root_path, 0777) != 0 && errno != EEXIST) {
        /* idt_tmp_shutdown removes an empty root: blobs made after it need it again */
        return idt_error_sys(err, errno, "cannot create temp directory '%s'", root_path);
    }
    uint64_t rnd;
    idt_random_bytes(&rnd, sizeof rnd);
    char name[64], fin[64];
    pid_t pid = getpid();
    snprintf(name, sizeof name, ".new-%d-%016llx", (int)pid, (unsigned long long)rnd);
    snprintf(fin, sizeof fin, "p%d-%016llx", (int)pid, (unsigned long long)rnd);
    char *tmpdir = idt_path_join(root_path, name), *findir = idt_path_join(root_path, fin);
    char *lock = tmpdir ? idt_path_join(tmpdir, "lock") : NULL;
    int rc = 0, fd = -1;
    if (!tmpdir || !findir || !lock) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    if (idt_mkdir(tmpdir, 0700) != 0) {
        rc = idt_error_sys(err, errno, "cannot create directory '%s'", tmpdir);
        goto done;
    }
    fd = idt_open(lock, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        rc = idt_error_sys(err, errno, "cannot create '%s'", lock);
        rmdir(tmpdir);
        goto done;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || idt_rename(tmpdir, findir) != 0) {
        rc = idt_error_sys(err, errno, "cannot set up temp directory '%s'", findir);
        idt_close(fd);
        fd = -1;
        unlink(lock);
        rmdir(tmpdir);
        goto done;
    }
    lock_fd = fd;
    proc_path = findir;
    findir = NULL;
    proc_owner = pid;
done:
    idt_free(tmpdir);
    idt_free(findir);
    idt_free(lock);
    return rc;
}

const char *idt_tmp_root(void) { return root_path; }

int idt_tmp_procdir(const char **out, idt_error *err) {
    pthread_once(&once, init_once);
    pthread_mutex_lock(&mu);
    int rc = make_procdir(err);
    if (!rc) *out = proc_path;
    pthread_mutex_unlock(&mu);
    return rc;
}

/* New unique path in the process directory (caller holds mu and made the directory). */
static char *new_path_locked(const char *prefix) {
    char name[64];
    snprintf(name, sizeof name, "%s%llu.idt", prefix,
             (unsigned long long)atomic_fetch_add(&name_counter, 1));
    return idt_path_join(proc_path, name);
}

int idt_tmp_newpath(const char *suffix, char **out, idt_error *err) {
    pthread_once(&once, init_once);
    pthread_mutex_lock(&mu);
    int rc = make_procdir(err);
    if (!rc) {
        *out = new_path_locked(suffix);
        if (!*out) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

static int new_chunk(size_t need, idt_error *err) {
    idt_chunk *c = idt_calloc(1, sizeof *c);
    if (!c) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    c->fd = -1;
    c->size = need > IDT_ARENA_CHUNK ? need : IDT_ARENA_CHUNK;
    c->path = new_path_locked("a");
    int rc = 0;
    if (!c->path) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto fail;
    }
    c->fd = idt_open(c->path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (c->fd < 0) {
        rc = idt_error_sys(err, errno, "cannot create temp file '%s'", c->path);
        goto fail;
    }
    struct stat st;
    if (ftruncate(c->fd, (off_t)c->size) != 0 || fstat(c->fd, &st) != 0) {
        rc = idt_error_sys(err, errno, "cannot size temp file '%s'", c->path);
        goto fail_unlink;
    }
    c->dev = (uint64_t)st.st_dev;
    c->ino = (uint64_t)st.st_ino;
    c->map = idt_mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (c->map == MAP_FAILED) {
        rc = idt_error_sys(err, errno, "cannot map temp file '%s'", c->path);
        goto fail_unlink;
    }
    c->owner = getpid();
    atomic_store(&c->refs, 1);
    atomic_fetch_add(&n_chunks, 1);
    chunk_retire();
    cur_chunk = c;
    return 0;
fail_unlink:
    unlink(c->path);
fail:
    if (c->fd >= 0) idt_close(c->fd);
    idt_free(c->path);
    idt_free(c);
    return rc;
}

static int blob_new_arena(idt_blob *b, size_t size, idt_error *err) {
    size_t need = align_up(size ? size : 1, IDT_BLOB_ALIGN);
    pthread_mutex_lock(&mu);
    int rc = make_procdir(err);
    if (!rc && (!cur_chunk || cur_chunk->size - cur_chunk->used < need)) rc = new_chunk(need, err);
    if (!rc) {
        idt_chunk *c = cur_chunk;
        if (idt_fallocate(c->fd, (off_t)c->used, (off_t)need) != 0) {
            rc = idt_error_sys(err, errno, "cannot reserve %zu bytes in temp file '%s'", need,
                               c->path);
        } else {
            b->path = idt_strdup(c->path);
            if (!b->path) {
                rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
            } else {
                b->kind = IDT_BLOB_ARENA;
                b->chunk = c;
                b->data = c->map + c->used;
                b->offset = (off_t)c->used;
                b->owner = c->owner;
                b->dev = c->dev;
                b->ino = c->ino;
                c->used += need;
                atomic_fetch_add(&c->refs, 1);
            }
        }
    }
    /* A chunk made for this blob that never held one would be a file left behind by the
     * failure: drop it (an unused chunk has used == 0; shrinking never gets back to 0). */
    if (rc && cur_chunk && cur_chunk->used == 0) chunk_retire();
    pthread_mutex_unlock(&mu);
    return rc;
}

static int blob_new_file(idt_blob *b, size_t size, idt_error *err) {
    int rc = idt_tmp_newpath("b", &b->path, err);
    if (rc) return rc;
    int fd = idt_open(b->path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        rc = idt_error_sys(err, errno, "cannot create temp file '%s'", b->path);
        goto fail;
    }
    struct stat st;
    if (idt_fallocate(fd, 0, (off_t)size) != 0) {
        rc = idt_error_sys(err, errno, "cannot reserve %zu bytes for temp file '%s'", size, b->path);
        goto fail_unlink;
    }
    if (fstat(fd, &st) != 0) {
        rc = idt_error_sys(err, errno, "cannot stat temp file '%s'", b->path);
        goto fail_unlink;
    }
    b->map = idt_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b->map == MAP_FAILED) {
        b->map = NULL;
        rc = idt_error_sys(err, errno, "cannot map %zu bytes of temp file '%s'", size, b->path);
        goto fail_unlink;
    }
    b->fd = fd; /* kept for idt_blob_write until idt_blob_seal */
    b->kind = IDT_BLOB_FILE;
    b->map_len = size;
    b->data = b->map;
    b->owner = getpid();
    b->dev = (uint64_t)st.st_dev;
    b->ino = (uint64_t)st.st_ino;
    atomic_fetch_add(&n_file_blobs, 1);
    return 0;
fail_unlink:
    unlink(b->path);
fail:
    if (fd >= 0) idt_close(fd);
    idt_free(b->path);
    b->path = NULL;
    return rc;
}

int idt_blob_new(size_t size, idt_blob **out, idt_error *err) {
    pthread_once(&once, init_once);
    idt_blob *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory allocating a blob");
    b->fd = -1;
    int rc = size <= IDT_ARENA_MAX ? blob_new_arena(b, size, err) : blob_new_file(b, size, err);
    if (rc) {
        idt_free(b);
        return rc;
    }
    b->size = size;
    atomic_store(&b->refs, 1);
    atomic_fetch_add(&n_live_blobs, 1);
    *out = b;
    return 0;
}

void idt_blob_shrink(idt_blob *b, size_t size) {
    if (size >= b->size) return;
    if (b->kind == IDT_BLOB_ARENA) {
        pthread_mutex_lock(&mu);
        idt_chunk *c = b->chunk;
        size_t old = align_up(b->size ? b->size : 1, IDT_BLOB_ALIGN);
        if (c == cur_chunk && (size_t)b->offset + old == c->used)
            c->used = (size_t)b->offset + align_up(size ? size : 1, IDT_BLOB_ALIGN);
        pthread_mutex_unlock(&mu);
        b->size = size;
        return;
    }
    if (b->kind != IDT_BLOB_FILE) return;
    long page = sysconf(_SC_PAGESIZE);
    size_t keep = align_up(size ? size : 1, (size_t)page);
    if (keep < b->map_len && truncate(b->path, (off_t)keep) == 0) {
        munmap(b->map + keep, b->map_len - keep); /* the mapping shrinks; still one mapping */
        b->map_len = keep;
    }
    b->size = size;
}

/* Map [off, off+size) of path, or the whole file when whole is set. */
static int map_path(const char *path, uint64_t off, uint64_t size, int whole, idt_blob **out,
                    idt_error *err) {
    pthread_once(&once, init_once);
    /* O_NONBLOCK: a FIFO planted under the name must not block the open; anything but a
     * regular file (FIFO, device, directory, socket) is then refused before it is read */
    int fd = idt_open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) return idt_error_sys(err, errno, "cannot open '%s'", path);
    struct stat st;
    int rc = 0;
    idt_blob *b = NULL;
    if (fstat(fd, &st) != 0) {
        rc = idt_error_sys(err, errno, "cannot stat '%s'", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = idt_error_set(err, IDT_ECORRUPT, "'%s' is not a regular file (%s)", path,
                           S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a socket");
        goto done;
    }
    if (whole) {
        off = 0;
        size = (uint64_t)st.st_size;
    } else if (off > (uint64_t)st.st_size || size > (uint64_t)st.st_size - off) {
        rc = idt_error_set(err, IDT_ECORRUPT, "'%s' holds %lld bytes, fewer than the %llu expected",
                           path, (long long)st.st_size, (unsigned long long)(off + size));
        goto done;
    }
    b = idt_calloc(1, sizeof *b);
    if (b) b->fd = -1;
    if (!b || !(b->path = idt_strdup(path))) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start = off / page * page;
    b->size = (size_t)size;
    b->map_len = (size_t)(size + (off - start));
    if (b->map_len == 0) b->map_len = 1;
    b->map = idt_mmap(NULL, b->map_len, PROT_READ, MAP_SHARED, fd, (off_t)start);
    if (b->map == MAP_FAILED) {
        b->map = NULL;
        rc = idt_error_sys(err, errno, "cannot map '%s'", path);
        goto done;
    }
    b->kind = IDT_BLOB_LOADED;
    b->data = (char *)b->map + (off - start);
    b->offset = (off_t)off;
    b->dev = (uint64_t)st.st_dev;
    b->ino = (uint64_t)st.st_ino;
    atomic_store(&b->refs, 1);
    atomic_fetch_add(&n_live_blobs, 1);
    *out = b;
done:
    idt_close(fd);
    if (rc && b) {
        idt_free(b->path);
        idt_free(b);
    }
    return rc;
}

int idt_blob_map_file(const char *path, idt_blob **out, idt_error *err) {
    return map_path(path, 0, 0, 1, out, err);
}

int idt_blob_map_range(const char *path, uint64_t off, uint64_t size, idt_blob **out, idt_error *err) {
    return map_path(path, off, size, 0, out, err);
}

int idt_blob_write(idt_blob *b, size_t off, const void *src, size_t n, idt_error *err) {
    if (n == 0) return 0;
    if (b->fd >= 0 && n >= 65536) {
        if (idt_pwrite_all(b->fd, src, n, (off_t)off) < 0)
            return idt_error_sys(err, errno, "cannot write %zu bytes to temp file '%s'", n, b->path);
        return 0;
    }
    memcpy(b->data + off, src, n);
    return 0;
}

void idt_blob_seal(idt_blob *b) {
    if (b->fd >= 0) {
        idt_close(b->fd);
        b->fd = -1;
    }
}

void idt_blob_incref(idt_blob *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void idt_blob_decref(idt_blob *b) {
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    idt_blob_seal(b);
    switch (b->kind) {
    case IDT_BLOB_ARENA: chunk_release(b->chunk); break;
    case IDT_BLOB_FILE:
        idt_munmap(b->map, b->map_len);
        if (b->owner == getpid()) unlink(b->path);
        atomic_fetch_sub(&n_file_blobs, 1);
        break;
    case IDT_BLOB_LOADED: idt_munmap(b->map, b->map_len); break;
    }
    atomic_fetch_sub(&n_live_blobs, 1);
    idt_free(b->path);
    idt_free(b);
}

void idt_tmp_shutdown(void) {
    pthread_mutex_lock(&mu);
    if (proc_path && proc_owner == getpid()) {
        chunk_retire();
        remove_dir_files(proc_path, NULL, 0);
        idt_close(lock_fd);
        lock_fd = -1;
        idt_free(proc_path);
        proc_path = NULL;
        if (root_path) rmdir(root_path); /* only succeeds when no other process uses it */
    }
    pthread_mutex_unlock(&mu);
}

void idt_tmp_stats_get(idt_tmp_stats *out) {
    out->live_blobs = atomic_load(&n_live_blobs);
    out->arena_chunks = atomic_load(&n_chunks);
    out->file_blobs = atomic_load(&n_file_blobs);
}

int idt_tmp_usage(int64_t *files, int64_t *bytes) {
    *files = 0;
    *bytes = 0;
    pthread_mutex_lock(&mu);
    DIR *d = proc_path && proc_owner == getpid() ? opendir(proc_path) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            struct stat st;
            if (e->d_name[0] == '.' || !strcmp(e->d_name, "lock")) continue;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
            *files += 1;
            *bytes += (int64_t)st.st_blocks * 512;
        }
        closedir(d);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

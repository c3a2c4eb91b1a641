/* tmp.c: the temp area (per-process directories, safe reaping) and blob allocation (arena
 * chunks with free lists and hole punching; dedicated files). */
#include "tmp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

/* A free range of a chunk. `dirty` bounds the bytes of its pages that may still hold old
 * data and blocks (freed since the last sweep, page-rounded): 0 means it reads as zeros and
 * holds no block of its own. */
typedef struct idt_extent {
    size_t off, len, dirty;
} idt_extent;

/* An arena chunk. Every field is guarded by `mu`. */
struct idt_chunk {
    idt_chunk *next;   /* this process's chunk list, while listed */
    char *path;
    char *map;
    size_t size;       /* bytes mapped: the file's size (sparse) */
    int fd;            /* open for the chunk's life: reservations and hole punching */
    pid_t owner;       /* the process that made the file: only it reuses, punches, unlinks */
    uint64_t dev, ino;
    int listed;        /* in this process's list: new blobs may go here */
    int pooled;        /* an extent of a blob pool (idt_blob_pool), on the pool_chunks list */
    idt_chunk *pnext;  /* that list */
    int64_t occupants; /* live blobs + held-back ranges: the chunk lives while > 0 or listed */
    int64_t nranges;   /* ranges taken (live, held back, pinned): nfree <= nranges + 1 */
    size_t held;       /* bytes of those ranges */
    idt_extent *free;  /* free ranges sorted by offset, coalesced */
    size_t nfree, capfree;
    /* pool extents: iterators reading its blobs in random order (prefetch.c's lock, not mu;
     * idt_blob_advice_target) */
    int64_t random_readers;
};

/* A fork whose children may still map this process's chunks: the read end of a pipe whose
 * write end only the children (and their descendants) hold, close-on-exec. */
typedef struct fork_gen {
    int rfd;
    uint64_t seq;
} fork_gen;

/* A freed range held back until no child that may map it is left. */
typedef struct held_range {
    idt_chunk *c;
    size_t off, len;
    uint64_t alloc_seq, free_seq;
} held_range;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char root_cfg[PATH_MAX]; /* the configured root, absolute, fixed at first use ("": not yet) */
static int root_default;    /* root_cfg is the default ./.infinidata_tmp */
static char *root_path;     /* its real path, once made */
static int root_made;       /* this process created the root */

/* A root the library created carries this extended attribute (where the file system keeps
 * user attributes), so that any process of the library may remove it once empty. */
#define ROOT_XATTR "user.infinidata"
#define ROOT_XATTR_VALUE "temp root v1"
static char *proc_path;     /* this process's directory */
static int lock_fd = -1;
static pid_t proc_owner;
static idt_chunk *chunks;   /* chunks new blobs may go to, oldest first */
static idt_chunk *pool_chunks; /* this process's blob pools' extents (unlisted chunks) */
static size_t page_size = 4096;
static _Atomic uint64_t name_counter;
static _Atomic int64_t n_live_blobs, n_chunks, n_file_blobs, n_arena_bytes;

static uint64_t fork_seq;                 /* forks made with arena blobs alive */
static fork_gen *gens;                    /* forks whose children may be alive */
static size_t ngens, capgens;
static uint64_t stuck_lo = UINT64_MAX, stuck_hi; /* forks that could not be tracked */
static held_range *helds;
static size_t nhelds, caphelds;
static int fork_pipe[2] = {-1, -1};
static size_t dirty_total;                /* sum of the chunks' extents' dirty bytes */
static int no_punch;                      /* the file system cannot punch holes */
static size_t slack = IDT_ARENA_SLACK;     /* dirty bytes allowed before a sweep */

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
static size_t align_down(size_t n, size_t a) { return n / a * a; }

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

char *idt_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = idt_malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

/* ---- recognising the library's own directories and files ---- */

/* If `name` is "p<pid>-<16 hex>" (or ".new-<pid>-<16 hex>", setting *is_new), copy the
 * "<pid>-<hex>" part to id (64 bytes) and return 1; else 0. */
static int parse_dir_name(const char *name, int *is_new, char id[64]) {
    const char *p;
    if (name[0] == 'p') {
        p = name + 1;
        *is_new = 0;
    } else if (!strncmp(name, ".new-", 5)) {
        p = name + 5;
        *is_new = 1;
    } else {
        return 0;
    }
    const char *s = p;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (digits < 1 || digits > 10 || *s++ != '-') return 0;
    for (int i = 0; i < 16; i++, s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    if (*s) return 0;
    snprintf(id, 64, "%s", p);
    return 1;
}

static int is_hex(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Is `name` one of the file names the library makes in a process directory: "a<digits>.idt"
 * and "b<digits>.idt" (blobs), or a saved data file "s-<32 hex>.idt" / "r-<32 hex>.idt" (a
 * view saved there, as parallel map does)? */
static int is_data_name(const char *name) {
    if ((name[0] == 's' || name[0] == 'r') && name[1] == '-')
        return strlen(name) == 38 && is_hex(name + 2, 32) && !strcmp(name + 34, ".idt");
    if (name[0] != 'a' && name[0] != 'b') return 0;
    const char *s = name + 1;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    return digits >= 1 && digits <= 20 && !strcmp(s, ".idt");
}

/* Open `dfd`/lock for locking if it is a regular file of ours holding the marker for `id`;
 * -1 otherwise. Never blocks (a FIFO is refused before it is opened). */
static int open_marked_lock(int dfd, const char *id) {
    struct stat st;
    if (idt_fstatat(dfd, "lock", &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid())
        return -1;
    int fd = idt_openat(dfd, "lock", O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) return -1;
    char want[128], got[128];
    int n = snprintf(want, sizeof want, "%s%s\n", IDT_TMP_MARKER, id);
    struct stat st2;
    ssize_t r = -1;
    if (idt_fstat(fd, &st2) == 0 && st2.st_ino == st.st_ino && st2.st_dev == st.st_dev &&
        S_ISREG(st2.st_mode) && st2.st_size == n)
        r = pread(fd, got, sizeof got, 0);
    if (r != n || memcmp(got, want, (size_t)n) != 0) {
        idt_close(fd);
        return -1;
    }
    return fd;
}

/* Remove (or with dry_run only count) the library's data files in directory `dfd`: regular
 * files named a<N>.idt / b<N>.idt. Returns how many other entries there are, "lock"
 * excepted (those are left alone). */
static int64_t remove_data_files(int dfd, idt_gc_report *rep, int dry_run) {
    DIR *d = idt_opendir_dup(dfd);
    if (!d) return 1;
    int64_t foreign = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "lock"))
            continue;
        struct stat st;
        if (!is_data_name(e->d_name) || idt_fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode)) {
            foreign++;
            continue;
        }
        if (!dry_run && unlinkat(dfd, e->d_name, 0) != 0) {
            foreign++;
            continue;
        }
        if (rep) {
            rep->files++;
            rep->bytes += (int64_t)st.st_blocks * 512;
        }
    }
    idt_closedir(d);
    return foreign;
}

/* Reap under root, skipping the directory named `own` (may be NULL). */
static int gc_root(const char *root, const char *own, int dry_run, idt_gc_report *rep,
                   idt_error *err) {
    int rfd = idt_open(root, O_RDONLY | O_DIRECTORY, 0);
    if (rfd < 0) {
        if (errno == ENOENT) return 0;
        return idt_error_sys(err, errno, "cannot read temp directory '%s'", root);
    }
    DIR *d = idt_opendir_dup(rfd);
    if (!d) {
        int e = errno;
        idt_close(rfd);
        return idt_error_sys(err, e, "cannot read temp directory '%s'", root);
    }
    uid_t me = geteuid();
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        char id[64];
        int is_new;
        if (!parse_dir_name(e->d_name, &is_new, id)) continue;
        if (own && !strcmp(own, e->d_name)) continue;
        struct stat st;
        if (idt_fstatat(rfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
            st.st_uid != me || (is_new && now - st.st_mtime < 60))
            continue; /* a .new- directory younger than a minute may still be being made */
        int dfd = idt_openat(rfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (dfd < 0) continue;
        int lfd = open_marked_lock(dfd, id);
        if (lfd >= 0 && idt_flock(lfd, LOCK_EX | LOCK_NB) == 0) { /* its owner is dead */
            rep->dirs++;
            int64_t foreign = remove_data_files(dfd, rep, dry_run);
            struct stat ls;
            if (idt_fstat(lfd, &ls) == 0) {
                rep->files++;
                rep->bytes += (int64_t)ls.st_blocks * 512;
            }
            if (!dry_run && foreign == 0 && unlinkat(dfd, "lock", 0) == 0)
                unlinkat(rfd, e->d_name, AT_REMOVEDIR);
        }
        idt_close(lfd); /* also drops the lock */
        idt_close(dfd);
    }
    idt_closedir(d);
    idt_close(rfd);
    return 0;
}

/* Fix the configured root (caller holds mu): INFINIDATA_TMPDIR, else ./.infinidata_tmp,
 * made absolute against the current directory. Read once per process. */
static int root_config(idt_error *err) {
    if (root_cfg[0]) return 0;
    const char *env = getenv("INFINIDATA_TMPDIR");
    const char *r = (env && *env) ? env : ".infinidata_tmp";
    char cwd[PATH_MAX];
    if (r[0] != '/' && !getcwd(cwd, sizeof cwd))
        return idt_error_sys(err, errno, "cannot resolve temp directory '%s'", r);
    int n = r[0] == '/' ? snprintf(root_cfg, sizeof root_cfg, "%s", r)
                        : snprintf(root_cfg, sizeof root_cfg, "%s/%s", cwd, r);
    if (n < 0 || (size_t)n >= sizeof root_cfg) {
        root_cfg[0] = 0;
        return idt_error_sys(err, ENAMETOOLONG, "cannot use temp directory '%s'", r);
    }
    root_default = !(env && *env);
    return 0;
}

int idt_tmp_gc(const char *root, int dry_run, idt_gc_report *rep, idt_error *err) {
    idt_gc_report local = {0, 0, 0};
    if (!rep) rep = &local;
    *rep = local;
    char *own = NULL, *r = NULL;
    pthread_mutex_lock(&mu);
    int rc = root ? 0 : root_config(err);
    if (!rc && !root && !(r = idt_strdup(root_path ? root_path : root_cfg)))
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc && proc_path && proc_owner == getpid()) {
        const char *slash = strrchr(proc_path, '/');
        own = idt_strdup(slash ? slash + 1 : proc_path);
    }
    pthread_mutex_unlock(&mu);
    if (!rc) rc = gc_root(root ? root : r, own, dry_run, rep, err);
    idt_free(own);
    idt_free(r);
    return rc;
}

/* Forget this process's directory (caller holds mu), e.g. when it was deleted under us. */
static void procdir_forget(void) {
    idt_close(lock_fd);
    lock_fd = -1;
    idt_free(proc_path);
    proc_path = NULL;
}

/* Make the temp root and this process's directory (caller holds mu). */
static int make_procdir(idt_error *err) {
    if (proc_path && proc_owner == getpid()) return 0;
    int rc = root_config(err);
    if (rc) return rc;
    const char *mk = root_path ? root_path : root_cfg; /* again if it was removed since */
    if (idt_mkdir(mk, 0777) == 0) {
        root_made = 1;
        setxattr(mk, ROOT_XATTR, ROOT_XATTR_VALUE, strlen(ROOT_XATTR_VALUE), 0); /* best effort */
    } else if (errno != EEXIST) return idt_error_sys(err, errno, "cannot create temp directory '%s'", mk);
    if (!root_path) {
        char buf[PATH_MAX];
        if (!realpath(root_cfg, buf))
            return idt_error_sys(err, errno, "cannot resolve temp directory '%s'", root_cfg);
        struct stat st;
        if (idt_stat(buf, &st) != 0)
            return idt_error_sys(err, errno, "cannot stat temp directory '%s'", buf);
        if (!S_ISDIR(st.st_mode))
            return idt_error_set(err, IDT_EIO, "temp directory '%s' is not a directory", root_cfg);
        if (access(buf, W_OK | X_OK) != 0)
            return idt_error_sys(err, errno, "temp directory '%s' is not writable", buf);
        root_path = idt_strdup(buf);
        if (!root_path) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        idt_gc_report rep;
        gc_root(root_path, NULL, 0, &rep, NULL); /* reap dead processes' leftovers */
    }
    uint64_t rnd;
    idt_random_bytes(&rnd, sizeof rnd);
    char id[64], name[80], fin[80], marker[128];
    pid_t pid = getpid();
    snprintf(id, sizeof id, "%d-%016llx", (int)pid, (unsigned long long)rnd);
    snprintf(name, sizeof name, ".new-%s", id);
    snprintf(fin, sizeof fin, "p%s", id);
    int mlen = snprintf(marker, sizeof marker, "%s%s\n", IDT_TMP_MARKER, id);
    char *tmpdir = idt_path_join(root_path, name), *findir = idt_path_join(root_path, fin);
    char *lock = tmpdir ? idt_path_join(tmpdir, "lock") : NULL;
    int fd = -1;
    if (!tmpdir || !findir || !lock) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto done;
    }
    if (idt_mkdir(tmpdir, 0700) != 0) {
        rc = idt_error_sys(err, errno, "cannot create directory '%s'", tmpdir);
        goto done;
    }
    fd = idt_open(lock, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = idt_error_sys(err, errno, "cannot create '%s'", lock);
        rmdir(tmpdir);
        goto done;
    }
    /* the marker goes in before the rename publishes the directory */
    if (idt_pwrite_all(fd, marker, (size_t)mlen, 0) < 0 || idt_flock(fd, LOCK_EX | LOCK_NB) != 0 ||
        idt_rename(tmpdir, findir) != 0) {
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

static void init_once(void);

int idt_tmp_procdir(const char **out, idt_error *err) {
    pthread_once(&once, init_once);
    pthread_mutex_lock(&mu);
    struct stat st; /* deleted under us: make it again */
    if (proc_path && proc_owner == getpid() && idt_lstat(proc_path, &st) != 0 && errno == ENOENT)
        procdir_forget();
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

/* Create a new file named <prefix><N>.idt in this process's directory (caller holds mu),
 * making the directory (and the root) again if it was deleted under the process. Returns
 * the descriptor and the path in *path, or a negative IDT_E code. */
static int create_file_locked(const char *prefix, char **path, idt_error *err) {
    for (int attempt = 0;; attempt++) {
        int rc = make_procdir(err);
        if (rc) return rc;
        *path = new_path_locked(prefix);
        if (!*path) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        int fd = idt_open(*path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (fd >= 0) return fd;
        int e = errno;
        if (e == ENOENT && attempt == 0) { /* our directory is gone */
            idt_free(*path);
            *path = NULL;
            procdir_forget();
            continue;
        }
        rc = idt_error_sys(err, e, "cannot create temp file '%s'", *path);
        idt_free(*path);
        *path = NULL;
        return rc;
    }
}

/* ---- arena chunks ---- */

static void chunk_sweep(idt_chunk *c);

/* Take c off the singly linked list at *head whose link is the idt_chunk * field `link` bytes
 * into a chunk (offsetof(idt_chunk, next) or pnext) and clear c's link (only that, when c is
 * not on the list). */
static void list_unlink(idt_chunk **head, idt_chunk *c, size_t link) {
#define LINK(x) ((idt_chunk **)(void *)((char *)(x) + link))
    for (idt_chunk **p = head; *p; p = LINK(*p))
        if (*p == c) {
            *p = *LINK(c);
            break;
        }
    *LINK(c) = NULL;
#undef LINK
}

static void pool_unlist(idt_chunk *c) {
    list_unlink(&pool_chunks, c, offsetof(idt_chunk, pnext));
    c->pooled = 0;
}

static void chunk_destroy(idt_chunk *c) {
    if (c->pooled) pool_unlist(c);
    if (c->owner == getpid()) {
        unlink(c->path);
        atomic_fetch_sub(&n_arena_bytes, (int64_t)c->held);
        for (size_t i = 0; i < c->nfree; i++) dirty_total -= c->free[i].dirty;
    }
    idt_close(c->fd);
    idt_munmap(c->map, c->size);
    idt_free(c->path);
    idt_free(c->free);
    idt_free(c);
    atomic_fetch_sub(&n_chunks, 1);
}

static void chunk_unlist(idt_chunk *c) {
    list_unlink(&chunks, c, offsetof(idt_chunk, next));
    c->listed = 0;
}

/* One occupant (live blob or held-back range) of c is gone (caller holds mu). An empty
 * chunk goes, unless it is this process's only one and its blocks can be given back
 * (punched) at once. */
static void chunk_leave(idt_chunk *c) {
    if (--c->occupants > 0) return;
    if (c->listed) {
        if (c->owner == getpid() && chunks == c && !c->next && !no_punch) {
            chunk_sweep(c);
            if (!no_punch) return;
        }
        chunk_unlist(c);
    }
    chunk_destroy(c);
}

/* Put [off, off+len) on c's free list, merging with neighbours, counting `dirty` bytes of
 * it as dirty. Returns -1 (nothing changed) when the list has no room. */
static int free_insert(idt_chunk *c, size_t off, size_t len, size_t dirty) {
    size_t lo = 0, hi = c->nfree;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (c->free[m].off < off) lo = m + 1;
        else hi = m;
    }
    size_t i = lo; /* the first free range after off */
    int prev = i > 0 && c->free[i - 1].off + c->free[i - 1].len == off;
    int next = i < c->nfree && off + len == c->free[i].off;
    if (prev && next) {
        c->free[i - 1].len += len + c->free[i].len;
        c->free[i - 1].dirty += dirty + c->free[i].dirty;
        memmove(&c->free[i], &c->free[i + 1], (c->nfree - i - 1) * sizeof *c->free);
        c->nfree--;
    } else if (prev) {
        c->free[i - 1].len += len;
        c->free[i - 1].dirty += dirty;
    } else if (next) {
        c->free[i].off = off;
        c->free[i].len += len;
        c->free[i].dirty += dirty;
    } else {
        if (c->nfree == c->capfree) return -1;
        memmove(&c->free[i + 1], &c->free[i], (c->nfree - i) * sizeof *c->free);
        c->free[i] = (idt_extent){off, len, dirty};
        c->nfree++;
    }
    dirty_total += dirty;
    return 0;
}

/* Make free range e of c read as zeros and hold no blocks: punch the pages wholly inside it,
 * zero the bytes of the pages it shares with taken ranges (those pages keep their blocks,
 * which were reserved whole, so zeroing them needs no new block). If punching fails the
 * range stays dirty (it is zeroed when taken); a file system that cannot punch at all
 * (EOPNOTSUPP) stops the sweeps. Caller holds mu and owns c. */
static void extent_clean(idt_chunk *c, idt_extent *e) {
    if (!e->dirty) return;
    size_t fs = e->off, fe = e->off + e->len;
    size_t ps = align_up(fs, page_size), pe = align_down(fe, page_size);
    if (pe > ps) {
        if (idt_punch_hole(c->fd, (off_t)ps, (off_t)(pe - ps)) != 0) {
            if (errno == EOPNOTSUPP) no_punch = 1;
            return;
        }
        memset(c->map + fs, 0, ps - fs);
        memset(c->map + pe, 0, fe - pe);
    } else {
        memset(c->map + fs, 0, fe - fs);
    }
    dirty_total -= e->dirty;
    e->dirty = 0;
}

static void chunk_sweep(idt_chunk *c) {
    for (size_t i = 0; i < c->nfree; i++) extent_clean(c, &c->free[i]);
}

/* Give back the blocks of freed space once more than IDT_ARENA_SLACK bytes of it may hold
 * blocks (caller holds mu): punching costs a synchronous write-back of the range's dirty
 * pages on some file systems (milliseconds on ext4), so it is done in batches. */
static void sweep_if_needed(void) {
    if (dirty_total <= slack || no_punch) return;
    for (idt_chunk *c = chunks; c; c = c->next) chunk_sweep(c);
    for (idt_chunk *c = pool_chunks; c; c = c->pnext)
        if (c->owner == getpid()) chunk_sweep(c);
}

/* Give [off, off+len) of c back (caller holds mu, owns c, and no mapping of another blob or
 * process can use the range): onto the free list, dirty until the next sweep. Returns -1
 * when the free list had no room (the range stays taken). */
static int range_release(idt_chunk *c, size_t off, size_t len) {
    size_t span = align_up(off + len, page_size) - align_down(off, page_size);
    return free_insert(c, off, len, span);
}

/* Is a range taken after `alloc_seq` forks and freed after `free_seq` possibly mapped by
 * a child still alive (caller holds mu)? */
static int range_in_children(uint64_t alloc_seq, uint64_t free_seq) {
    for (size_t i = 0; i < ngens; i++)
        if (alloc_seq < gens[i].seq && gens[i].seq <= free_seq) return 1;
    return 0;
}

static int range_in_untracked_children(uint64_t alloc_seq, uint64_t free_seq) {
    return alloc_seq < stuck_hi && free_seq >= stuck_lo;
}

/* Forget forks whose children have all exited or exec'd (caller holds mu). */
static void gens_reap(void) {
    size_t k = 0;
    for (size_t i = 0; i < ngens; i++) {
        struct pollfd p = {gens[i].rfd, POLLIN, 0};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
            close(gens[i].rfd);
            continue;
        }
        gens[k++] = gens[i];
    }
    ngens = k;
    if (!ngens) {
        idt_free(gens);
        gens = NULL;
        capgens = 0;
    }
}

/* Release the held-back ranges no live child can map any more (caller holds mu). */
static void helds_release(void) {
    if (!nhelds) return;
    gens_reap();
    size_t k = 0;
    for (size_t i = 0; i < nhelds; i++) {
        held_range h = helds[i];
        if (range_in_children(h.alloc_seq, h.free_seq)) {
            helds[k++] = h;
            continue;
        }
        if (range_release(h.c, h.off, h.len) == 0) {
            h.c->nranges--;
            h.c->held -= h.len;
            atomic_fetch_sub(&n_arena_bytes, (int64_t)h.len);
        } /* else no room on the list: the range stays taken */
        chunk_leave(h.c);
    }
    nhelds = k;
    if (!nhelds) {
        idt_free(helds);
        helds = NULL;
        caphelds = 0;
    }
    sweep_if_needed();
}

/* The arena blob b (made by this process) is dropped (caller holds mu). */
static void arena_free_locked(idt_blob *b) {
    idt_chunk *c = b->chunk;
    size_t off = (size_t)b->offset, len = b->map_len;
    if (c->owner != getpid()) { /* a forked child: the parent's file is not ours to touch */
        chunk_leave(c);
        return;
    }
    if (ngens) gens_reap();
    uint64_t a = b->fork_seq, f = fork_seq;
    if (atomic_load(&b->pinned) || range_in_untracked_children(a, f)) {
        chunk_leave(c); /* others may map it: the range stays taken while the chunk lives */
    } else if (range_in_children(a, f)) {
        if (nhelds == caphelds) {
            size_t cap = caphelds ? 2 * caphelds : 16;
            held_range *n = idt_realloc(helds, cap * sizeof *n);
            if (!n) { /* cannot hold it back: it stays taken */
                chunk_leave(c);
                return;
            }
            helds = n;
            caphelds = cap;
        }
        helds[nhelds++] = (held_range){c, off, len, a, f}; /* keeps the occupant */
    } else {
        if (range_release(c, off, len) == 0) {
            c->nranges--;
            c->held -= len;
            atomic_fetch_sub(&n_arena_bytes, (int64_t)len);
        } /* else no room on the list: the range stays taken */
        chunk_leave(c);
    }
    helds_release();
    sweep_if_needed();
}

/* Make a chunk of `size` bytes (IDT_ARENA_CHUNK for the shared arena) that can hold `need`
 * bytes, and put it at the end of the arena's list, or with `pooled` on the pool list
 * (caller holds mu). Its file is sparse: blocks are reserved range by range. Under a file
 * size limit (RLIMIT_FSIZE) below `size` the chunk is made as large as the limit allows. */
static int new_chunk(size_t need, size_t size, int pooled, idt_chunk **out, idt_error *err) {
    idt_chunk *c = idt_calloc(1, sizeof *c);
    if (!c) return idt_error_set(err, IDT_ENOMEM, "out of memory");
    c->fd = -1;
    c->capfree = 8;
    c->free = idt_malloc(c->capfree * sizeof *c->free);
    int rc = 0;
    if (!c->free) {
        rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
        goto fail;
    }
    c->fd = create_file_locked("a", &c->path, err);
    if (c->fd < 0) {
        rc = c->fd;
        c->fd = -1;
        goto fail;
    }
    c->size = size;
    struct rlimit fl;
    if (getrlimit(RLIMIT_FSIZE, &fl) == 0 && fl.rlim_cur != RLIM_INFINITY &&
        fl.rlim_cur < (rlim_t)c->size) {
        c->size = align_down((size_t)fl.rlim_cur, page_size);
        if (c->size < align_up(need, page_size)) c->size = align_up(need, page_size);
    }
    struct stat st;
    if (idt_ftruncate(c->fd, (off_t)c->size) != 0 || idt_fstat(c->fd, &st) != 0) {
        rc = idt_error_sys(err, errno, "cannot size temp file '%s' to %zu bytes", c->path, c->size);
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
    c->free[0] = (idt_extent){0, c->size, 0};
    c->nfree = 1;
    if (pooled) {
        c->pooled = 1;
        c->pnext = pool_chunks;
        pool_chunks = c;
    } else {
        c->listed = 1;
        idt_chunk **p = &chunks;
        while (*p) p = &(*p)->next;
        *p = c;
    }
    atomic_fetch_add(&n_chunks, 1);
    *out = c;
    return 0;
fail_unlink:
    unlink(c->path);
fail:
    idt_close(c->fd);
    idt_free(c->path);
    idt_free(c->free);
    idt_free(c);
    return rc;
}

/* Take `need` bytes (a multiple of IDT_BLOB_ALIGN) from free range i of c, reserving the
 * disk blocks of the pages it touches (caller holds mu). */
static int chunk_take(idt_chunk *c, size_t i, size_t need, size_t *off, idt_error *err) {
    if (c->capfree < (size_t)c->nranges + 3) { /* room for every split a free can make */
        size_t cap = (size_t)c->nranges + 3 > 2 * c->capfree ? (size_t)c->nranges + 3 : 2 * c->capfree;
        idt_extent *n = idt_realloc(c->free, cap * sizeof *n);
        if (!n) return idt_error_set(err, IDT_ENOMEM, "out of memory");
        c->free = n;
        c->capfree = cap;
    }
    idt_extent *e = &c->free[i];
    size_t o = e->off, p0 = align_down(o, page_size), p1 = align_up(o + need, page_size);
    if (idt_fallocate(c->fd, (off_t)p0, (off_t)(p1 - p0)) != 0)
        return idt_error_sys(err, errno, "cannot reserve %zu bytes in temp file '%s'", need, c->path);
    if (e->dirty) memset(c->map + o, 0, need); /* freed space not yet swept: old bytes */
    e->off += need;
    e->len -= need;
    size_t span = e->len ? align_up(e->off + e->len, page_size) - align_down(e->off, page_size) : 0;
    if (e->dirty > span) {
        dirty_total -= e->dirty - span;
        e->dirty = span;
    }
    if (!e->len) {
        memmove(&c->free[i], &c->free[i + 1], (c->nfree - i - 1) * sizeof *c->free);
        c->nfree--;
    }
    c->nranges++;
    c->occupants++;
    c->held += need;
    atomic_fetch_add(&n_arena_bytes, (int64_t)need);
    *off = o;
    return 0;
}

/* Make b the arena blob of bytes [off, off + need) of chunk c (caller holds mu). */
static void arena_blob_set(idt_blob *b, idt_chunk *c, size_t off, size_t need) {
    b->kind = IDT_BLOB_ARENA;
    b->chunk = c;
    b->data = c->map + off;
    b->offset = (off_t)off;
    b->map_len = need;
    b->owner = c->owner;
    b->dev = c->dev;
    b->ino = c->ino;
    b->fork_seq = fork_seq;
}

static int blob_new_arena(idt_blob *b, size_t size, idt_error *err) {
    size_t need = align_up(size ? size : 1, IDT_BLOB_ALIGN);
    pthread_mutex_lock(&mu);
    helds_release();
    int rc = make_procdir(err);
    idt_chunk *c = NULL, *made = NULL;
    size_t i = 0, off = 0;
    for (c = rc ? NULL : chunks; c; c = c->next) {
        for (i = 0; i < c->nfree && c->free[i].len < need; i++) {}
        if (i < c->nfree) break;
    }
    if (!rc && !c) {
        rc = new_chunk(need, IDT_ARENA_CHUNK, 0, &made, err);
        c = made;
        i = 0;
    }
    if (!rc && !(b->path = idt_strdup(c->path))) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc && (rc = chunk_take(c, i, need, &off, err)) != 0) {
        idt_free(b->path);
        b->path = NULL;
    }
    if (!rc) arena_blob_set(b, c, off, need);
    else if (made && made->occupants == 0) { /* a chunk made for this blob leaves no file */
        chunk_unlist(made);
        chunk_destroy(made);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

/* ---- blob pools: a writer's extents ---- */

struct idt_blob_pool {
    idt_chunk *cur; /* the extent blobs are carved from now (the pool is one occupant), or NULL */
    size_t taken;   /* bytes carved so far: the next extent's size follows it */
};

int idt_blob_pool_new(idt_blob_pool **out, idt_error *err) {
    pthread_once(&once, init_once);
    *out = idt_calloc(1, sizeof **out);
    return *out ? 0 : idt_error_set(err, IDT_ENOMEM, "out of memory");
}

void idt_blob_pool_free(idt_blob_pool *p) {
    if (!p) return;
    if (p->cur) {
        pthread_mutex_lock(&mu);
        chunk_leave(p->cur);
        pthread_mutex_unlock(&mu);
    }
    idt_free(p);
}

int idt_blob_pool_take(idt_blob_pool *p, size_t size, idt_blob **out, idt_error *err) {
    return idt_blob_pool_take_open(p, size, size, out, err);
}

int idt_blob_pool_take_open(idt_blob_pool *p, size_t size, size_t reserve, idt_blob **out,
                            idt_error *err) {
    if (!p || size <= IDT_ARENA_MAX || size > IDT_POOL_EXTENT_MAX)
        return idt_blob_new_open(size, reserve, out, err);
    pthread_once(&once, init_once);
    idt_blob *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory allocating a blob");
    b->fd = -1;
    /* whole pages: an extent's blobs start on a page, as a file's do, so that a store's
     * page-aligned column keeps 4 KiB rows on one page each */
    size_t need = align_up(size, page_size), i = 0, off = 0;
    pthread_mutex_lock(&mu);
    helds_release();
    int rc = make_procdir(err);
    idt_chunk *c = p->cur;
    if (c && c->owner != getpid()) c = NULL; /* a forked child carves its own extents */
    if (c) {
        while (i < c->nfree && c->free[i].len < need) i++;
        if (i == c->nfree) c = NULL;
    }
    idt_chunk *made = NULL;
    if (!rc && !c) {
        size_t ext = p->taken < IDT_POOL_EXTENT_MIN / 2 ? IDT_POOL_EXTENT_MIN : 2 * p->taken;
        if (ext > IDT_POOL_EXTENT_MAX) ext = IDT_POOL_EXTENT_MAX;
        if (ext < need) ext = align_up(need, page_size);
        rc = new_chunk(need, ext, 1, &made, err);
        c = made;
        i = 0;
    }
    if (!rc && !(b->path = idt_strdup(c->path))) rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    if (!rc && (rc = chunk_take(c, i, need, &off, err)) != 0) {
        idt_free(b->path);
        b->path = NULL;
    }
    if (!rc) {
        arena_blob_set(b, c, off, need);
        p->taken += need;
        if (made) { /* the new extent is the pool's: the previous one lives on its blobs */
            made->occupants++;
            if (p->cur) chunk_leave(p->cur);
            p->cur = made;
        }
    } else if (made && made->occupants == 0) {
        chunk_destroy(made);
    }
    pthread_mutex_unlock(&mu);
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

/* ---- dedicated files ---- */

/* A file mapped for `size` bytes, its first `reserve` bytes there with disk space reserved;
 * the rest, if any, lies past the end of the file until written (idt_blob_write then takes
 * every byte there by pwrite; idt_blob_shrink_unwritten sets the file's final length). */
static int blob_new_file(idt_blob *b, size_t size, size_t reserve, idt_error *err) {
    pthread_mutex_lock(&mu);
    int fd = create_file_locked("b", &b->path, err);
    pthread_mutex_unlock(&mu);
    if (fd < 0) return fd;
    int rc;
    struct stat st;
    if (idt_fallocate(fd, 0, (off_t)reserve) != 0) {
        rc = idt_error_sys(err, errno, "cannot reserve %zu bytes for temp file '%s'", reserve, b->path);
        goto fail_unlink;
    }
    /* the mapping may run past the end of the file: what lies there is written by pwrite
     * before it is read, and the file grows with it (so RLIMIT_FSIZE and the disk see the
     * bytes written, not the room) */
    b->sparse_from = reserve < size ? reserve : 0;
    if (idt_fstat(fd, &st) != 0) {
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
    idt_close(fd);
    idt_free(b->path);
    b->path = NULL;
    return rc;
}

int idt_blob_new(size_t size, idt_blob **out, idt_error *err) {
    return idt_blob_new_open(size, size, out, err);
}

int idt_blob_new_open(size_t size, size_t reserve, idt_blob **out, idt_error *err) {
    pthread_once(&once, init_once);
    idt_blob *b = idt_calloc(1, sizeof *b);
    if (!b) return idt_error_set(err, IDT_ENOMEM, "out of memory allocating a blob");
    b->fd = -1;
    if (reserve > size) reserve = size;
    int rc = size <= IDT_ARENA_MAX ? blob_new_arena(b, size, err) : blob_new_file(b, size, reserve, err);
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

static void blob_shrink(idt_blob *b, size_t size, int unwritten);

void idt_blob_shrink(idt_blob *b, size_t size) { blob_shrink(b, size, 0); }

void idt_blob_shrink_unwritten(idt_blob *b, size_t size) { blob_shrink(b, size, 1); }

/* Free [off, off + len) of c, a range never written since it was taken (zeros, but its
 * blocks were reserved): its whole pages are punched now, so it goes back holding no blocks
 * and needs no zeroing when taken again; if punching fails it goes back dirty, for the
 * sweep. Caller holds mu. */
static int release_unwritten(idt_chunk *c, size_t off, size_t len) {
    size_t ps = align_up(off, page_size), pe = align_down(off + len, page_size);
    if (pe > ps && idt_punch_hole(c->fd, (off_t)ps, (off_t)(pe - ps)) != 0) return range_release(c, off, len);
    return free_insert(c, off, len, 0);
}

/* unwritten: the bytes past `size` were never written (release_unwritten). */
static void blob_shrink(idt_blob *b, size_t size, int unwritten) {
    /* (a file mapped past its end is cut or grown to its size even when that is all of it) */
    if (size > b->size || (size == b->size && !b->sparse_from)) return;
    if (b->kind == IDT_BLOB_ARENA) {
        size_t keep = align_up(size ? size : 1, b->chunk->pooled ? page_size : IDT_BLOB_ALIGN);
        pthread_mutex_lock(&mu);
        idt_chunk *c = b->chunk;
        if (keep < b->map_len && c->owner == getpid() && !atomic_load(&b->pinned)) {
            if (ngens) gens_reap();
            if (!range_in_children(b->fork_seq, fork_seq) &&
                !range_in_untracked_children(b->fork_seq, fork_seq) &&
                (unwritten ? release_unwritten(c, (size_t)b->offset + keep, b->map_len - keep)
                           : range_release(c, (size_t)b->offset + keep, b->map_len - keep)) == 0) {
                c->held -= b->map_len - keep;
                atomic_fetch_sub(&n_arena_bytes, (int64_t)(b->map_len - keep));
                b->map_len = keep;
                sweep_if_needed();
            }
        }
        pthread_mutex_unlock(&mu);
        b->size = size;
        return;
    }
    if (b->kind != IDT_BLOB_FILE) return;
    /* the file is exactly the blob (a saved store is its file, checksummed to its end): one
     * that cannot be cut keeps its size */
    if (truncate(b->path, (off_t)size) != 0) return;
    size_t keep = align_up(size ? size : 1, page_size);
    if (keep < b->map_len) {
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
    if (idt_fstat(fd, &st) != 0) {
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
    uint64_t page = (uint64_t)page_size, start = off / page * page;
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
    /* a pool extent's descriptor is open for the extent's life (and never changes) */
    int fd = b->fd >= 0 ? b->fd : b->kind == IDT_BLOB_ARENA && b->chunk->pooled ? b->chunk->fd : -1;
    if (fd >= 0 && (n >= 65536 || (b->sparse_from && off + n > b->sparse_from))) {
        if (idt_pwrite_all(fd, src, n, (off_t)off + (b->fd >= 0 ? 0 : b->offset)) < 0)
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

int64_t *idt_blob_advice_target(idt_blob *b, void **map, size_t *len) {
    if (b->kind != IDT_BLOB_ARENA) {
        if (!b->map) return NULL;
        *map = b->map;
        *len = b->map_len;
        return &b->random_readers;
    }
    if (!b->chunk->pooled) return NULL; /* map, size and pooled never change after creation */
    *map = b->chunk->map;
    *len = b->chunk->size;
    return &b->chunk->random_readers;
}

void idt_blob_pin(const idt_blob *b) { atomic_store(&((idt_blob *)b)->pinned, 1); }

int idt_blob_adopt(idt_blob *b, idt_error *err) {
    if (b->kind != IDT_BLOB_LOADED || b->offset != 0)
        return idt_error_set(err, IDT_EVALUE, "'%s' is not a whole loaded file", b->path);
    pthread_once(&once, init_once);
    pthread_mutex_lock(&mu);
    int rc = make_procdir(err);
    char *np = NULL;
    if (!rc) {
        const char *slash = strrchr(b->path, '/');
        size_t dl = slash ? (size_t)(slash - b->path) : 0;
        if (!slash || strlen(proc_path) != dl || strncmp(b->path, proc_path, dl))
            rc = idt_error_set(err, IDT_EVALUE, "'%s' is not in this process's temp directory '%s'",
                               b->path, proc_path);
        else if (!(np = new_path_locked("b")))
            rc = idt_error_set(err, IDT_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&mu);
    if (rc) return rc;
    if (idt_rename(b->path, np) != 0) {
        rc = idt_error_sys(err, errno, "cannot rename '%s' to '%s'", b->path, np);
        idt_free(np);
        return rc;
    }
    idt_free(b->path);
    b->path = np;
    b->kind = IDT_BLOB_FILE;
    b->owner = getpid();
    atomic_fetch_add(&n_file_blobs, 1);
    return 0;
}

void idt_blob_incref(idt_blob *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }

void idt_blob_decref(idt_blob *b) {
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    idt_blob_seal(b);
    switch (b->kind) {
    case IDT_BLOB_ARENA:
        pthread_mutex_lock(&mu);
        arena_free_locked(b);
        pthread_mutex_unlock(&mu);
        break;
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

/* ---- fork ---- */

static int owned_ranges_live(void) {
    for (idt_chunk *c = chunks; c; c = c->next)
        if (c->owner == getpid() && c->nranges > 0) return 1;
    for (idt_chunk *c = pool_chunks; c; c = c->pnext)
        if (c->owner == getpid() && c->nranges > 0) return 1;
    return 0;
}

static void at_fork_prepare(void) {
    pthread_mutex_lock(&mu);
    fork_pipe[0] = fork_pipe[1] = -1;
    if (!owned_ranges_live()) return;
    fork_seq++; /* blobs made from now on are not the child's */
    if (ngens == capgens) {
        size_t cap = capgens ? 2 * capgens : 8;
        fork_gen *n = idt_realloc(gens, cap * sizeof *n);
        if (n) {
            gens = n;
            capgens = cap;
        }
    }
    if (ngens < capgens && pipe2(fork_pipe, O_CLOEXEC) == 0) return;
    fork_pipe[0] = fork_pipe[1] = -1;
    /* this fork's children cannot be tracked: what they may map is never given back */
    if (fork_seq < stuck_lo) stuck_lo = fork_seq;
    stuck_hi = fork_seq;
}

static void at_fork_parent(void) {
    if (fork_pipe[0] >= 0) {
        close(fork_pipe[1]); /* only the child holds the write end now */
        gens[ngens++] = (fork_gen){fork_pipe[0], fork_seq};
    }
    fork_pipe[0] = fork_pipe[1] = -1;
    pthread_mutex_unlock(&mu);
}

static void at_fork_child(void) {
    /* The child shares the parent's files but owns none of them: it forgets the parent's
     * directory, chunks, held-back ranges and forks (never unlinking or punching), keeps
     * the write end of this fork's pipe open for its life (and its own children's), and
     * makes its own directory and chunks on first need. */
    if (fork_pipe[0] >= 0) close(fork_pipe[0]);
    fork_pipe[0] = fork_pipe[1] = -1;
    if (lock_fd >= 0) idt_close(lock_fd);
    lock_fd = -1;
    if (proc_path) idt_free(proc_path);
    proc_path = NULL;
    for (size_t i = 0; i < ngens; i++) close(gens[i].rfd);
    ngens = 0;
    idt_free(gens);
    gens = NULL;
    capgens = 0;
    stuck_lo = UINT64_MAX;
    stuck_hi = 0;
    fork_seq = 0;
    while (chunks) {
        idt_chunk *c = chunks;
        chunk_unlist(c);
        if (c->occupants == 0) chunk_destroy(c);
    }
    while (pool_chunks) pool_unlist(pool_chunks); /* the parent's: live on their blobs */
    size_t n = nhelds;
    nhelds = 0;
    for (size_t i = 0; i < n; i++) chunk_leave(helds[i].c);
    idt_free(helds);
    helds = NULL;
    caphelds = 0;
    atomic_store(&n_arena_bytes, 0);
    dirty_total = 0;
    pthread_mutex_unlock(&mu);
}

static void init_once(void) {
    long p = sysconf(_SC_PAGESIZE);
    if (p > 0) page_size = (size_t)p;
    pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
    atexit(idt_tmp_shutdown); /* temp files go at exit even with views still alive */
}

/* ---- exit ---- */

void idt_tmp_shutdown(void) {
    pthread_mutex_lock(&mu);
    if (proc_path && proc_owner == getpid()) {
        /* chunks stop taking blobs; those still holding live blobs go with their last one */
        while (chunks) {
            idt_chunk *c = chunks;
            chunk_unlist(c);
            if (c->occupants == 0) chunk_destroy(c);
        }
        int dfd = idt_open(proc_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
        if (dfd >= 0) {
            if (remove_data_files(dfd, NULL, 0) == 0 && unlinkat(dfd, "lock", 0) == 0) rmdir(proc_path);
            idt_close(dfd);
        }
        procdir_forget();
        /* only a root the library created (or the default one) goes, and only if empty */
        char v[sizeof ROOT_XATTR_VALUE];
        if (root_path && (root_made || root_default ||
                          (lgetxattr(root_path, ROOT_XATTR, v, sizeof v) == (ssize_t)strlen(ROOT_XATTR_VALUE) &&
                           !memcmp(v, ROOT_XATTR_VALUE, strlen(ROOT_XATTR_VALUE)))))
            rmdir(root_path);
    }
    pthread_mutex_unlock(&mu);
}

size_t idt_tmp_slack_set(size_t bytes) {
    pthread_mutex_lock(&mu);
    size_t old = slack;
    slack = bytes;
    sweep_if_needed();
    pthread_mutex_unlock(&mu);
    return old;
}

void idt_tmp_stats_get(idt_tmp_stats *out) {
    out->live_blobs = atomic_load(&n_live_blobs);
    out->arena_chunks = atomic_load(&n_chunks);
    out->file_blobs = atomic_load(&n_file_blobs);
    out->arena_bytes = atomic_load(&n_arena_bytes);
}

int idt_tmp_usage(int64_t *files, int64_t *bytes) {
    *files = 0;
    *bytes = 0;
    pthread_mutex_lock(&mu);
    DIR *d = proc_path && proc_owner == getpid() ? idt_opendir(proc_path) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            struct stat st;
            if (e->d_name[0] == '.' || !strcmp(e->d_name, "lock")) continue;
            if (idt_fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
            *files += 1;
            *bytes += (int64_t)st.st_blocks * 512;
        }
        idt_closedir(d);
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

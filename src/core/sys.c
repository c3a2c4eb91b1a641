/* sys.c: the allocation and file-system seam, with fault injection and live counters. */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static _Atomic int64_t calls[IDT_FAULT_NKINDS];
static _Atomic int64_t live_allocs, live_maps, live_fds;

static struct {
    _Atomic int armed;
    _Atomic int64_t countdown; /* calls left before the failing one */
    int kind, errnum, sticky;
    _Atomic int64_t fired;
} fault;

void idt_fault_arm(idt_fault_kind kind, int64_t nth, int errnum, int sticky) {
    atomic_store(&fault.armed, 0);
    fault.kind = (int)kind;
    fault.errnum = errnum;
    fault.sticky = sticky;
    atomic_store(&fault.fired, 0);
    atomic_store(&fault.countdown, nth);
    if (nth > 0) atomic_store(&fault.armed, 1);
}

void idt_fault_reset(void) {
    atomic_store(&fault.armed, 0);
    atomic_store(&fault.fired, 0);
}

int64_t idt_fault_fired(void) { return atomic_load(&fault.fired); }

int64_t idt_sys_calls(idt_fault_kind kind) {
    if (kind == IDT_FAULT_ANY) {
        int64_t s = 0;
        for (int k = 0; k < IDT_FAULT_NKINDS; k++) s += atomic_load(&calls[k]);
        return s;
    }
    return atomic_load(&calls[kind]);
}

void idt_sys_stats_get(idt_sys_stats *out) {
    out->allocs = atomic_load(&live_allocs);
    out->maps = atomic_load(&live_maps);
    out->fds = atomic_load(&live_fds);
}

static int natural_errno(int kind) {
    switch (kind) {
    case IDT_FAULT_ALLOC:
    case IDT_FAULT_MMAP:
    case IDT_FAULT_ADVISE: return ENOMEM;
    case IDT_FAULT_FALLOCATE:
    case IDT_FAULT_WRITE: return ENOSPC;
    case IDT_FAULT_OPEN: return EMFILE;
    case IDT_FAULT_LOCK: return EWOULDBLOCK;
    case IDT_FAULT_TRUNCATE: return EFBIG;
    default: return EIO;
    }
}

/* Count a call of `kind`; return 0 to go on, or an errno to fail with. */
static int hit(int kind) {
    atomic_fetch_add_explicit(&calls[kind], 1, memory_order_relaxed);
    if (!atomic_load_explicit(&fault.armed, memory_order_relaxed)) return 0;
    if (fault.kind != IDT_FAULT_ANY && fault.kind != kind) return 0;
    int64_t left = atomic_fetch_sub(&fault.countdown, 1) - 1;
    if (left > 0) return 0;
    if (left < 0 && !fault.sticky) return 0;
    atomic_fetch_add(&fault.fired, 1);
    int e = fault.errnum ? fault.errnum : natural_errno(kind);
    return e;
}

void *idt_malloc(size_t n) {
    if (hit(IDT_FAULT_ALLOC)) return NULL;
    void *p = malloc(n ? n : 1);
    if (p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *idt_calloc(size_t n, size_t size) {
    if (hit(IDT_FAULT_ALLOC)) return NULL;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return p;
}

void *idt_realloc(void *p, size_t n) {
    if (hit(IDT_FAULT_ALLOC)) return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p) atomic_fetch_add_explicit(&live_allocs, 1, memory_order_relaxed);
    return q;
}

void idt_free(void *p) {
    if (!p) return;
    atomic_fetch_sub_explicit(&live_allocs, 1, memory_order_relaxed);
    free(p);
}

char *idt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = idt_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int idt_open(const char *path, int flags, mode_t mode) {
    return idt_openat(AT_FDCWD, path, flags, mode);
}

int idt_openat(int dirfd, const char *path, int flags, mode_t mode) {
    int e = hit(IDT_FAULT_OPEN);
    if (e) { errno = e; return -1; }
    int fd;
    do fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0) atomic_fetch_add_explicit(&live_fds, 1, memory_order_relaxed);
    return fd;
}

int idt_close(int fd) {
    if (fd < 0) return 0;
    atomic_fetch_sub_explicit(&live_fds, 1, memory_order_relaxed);
    return close(fd);
}

int idt_fallocate(int fd, off_t off, off_t len) {
    int e = hit(IDT_FAULT_FALLOCATE);
    if (e) { errno = e; return -1; }
    if (len <= 0) return 0;
    int r = posix_fallocate(fd, off, len);
    if (r) { errno = r; return -1; }
    return 0;
}

int idt_punch_hole(int fd, off_t off, off_t len) {
    int e = hit(IDT_FAULT_PUNCH);
    if (e) { errno = e; return -1; }
    if (len <= 0) return 0;
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

void *idt_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    int e = hit(IDT_FAULT_MMAP);
    if (e) { errno = e; return MAP_FAILED; }
    void *p = mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) atomic_fetch_add_explicit(&live_maps, 1, memory_order_relaxed);
    return p;
}

int idt_munmap(void *addr, size_t len) {
    atomic_fetch_sub_explicit(&live_maps, 1, memory_order_relaxed);
    return munmap(addr, len);
}

ssize_t idt_pwrite_all(int fd, const void *buf, size_t n, off_t off) {
    int e = hit(IDT_FAULT_WRITE);
    if (e) { errno = e; return -1; }
    const char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, p + done, n - done, off + (off_t)done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) { errno = ENOSPC; return -1; }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

int idt_rename(const char *from, const char *to) {
    int e = hit(IDT_FAULT_RENAME);
    if (e) { errno = e; return -1; }
    return rename(from, to);
}

int idt_link(const char *from, const char *to) {
    int e = hit(IDT_FAULT_LINK);
    if (e) { errno = e; return -1; }
    return link(from, to);
}

int idt_mkdir(const char *path, mode_t mode) {
    int e = hit(IDT_FAULT_MKDIR);
    if (e) { errno = e; return -1; }
    return mkdir(path, mode);
}

int idt_flock(int fd, int op) {
    int e = hit(IDT_FAULT_LOCK);
    if (e) { errno = e; return -1; }
    int r;
    do r = flock(fd, op);
    while (r != 0 && errno == EINTR);
    return r;
}

int idt_madvise(void *addr, size_t len, int advice) {
    int e = hit(IDT_FAULT_ADVISE);
    if (e) { errno = e; return -1; }
    return madvise(addr, len, advice);
}

int idt_mincore(void *addr, size_t len, unsigned char *vec) {
    int e = hit(IDT_FAULT_ADVISE);
    if (e) { errno = e; return -1; }
    return mincore(addr, len, vec);
}

int idt_fsync(int fd) {
    int e = hit(IDT_FAULT_SYNC);
    if (e) { errno = e; return -1; }
    int r;
    do r = fsync(fd);
    while (r != 0 && errno == EINTR);
    return r;
}

int idt_ftruncate(int fd, off_t len) {
    int e = hit(IDT_FAULT_TRUNCATE);
    if (e) { errno = e; return -1; }
    return ftruncate(fd, len);
}

int idt_fstat(int fd, struct stat *st) {
    int e = hit(IDT_FAULT_STAT);
    if (e) { errno = e; return -1; }
    return fstat(fd, st);
}

int idt_fstatat(int dirfd, const char *path, struct stat *st, int flags) {
    int e = hit(IDT_FAULT_STAT);
    if (e) { errno = e; return -1; }
    return fstatat(dirfd, path, st, flags);
}

int idt_stat(const char *path, struct stat *st) { return idt_fstatat(AT_FDCWD, path, st, 0); }

int idt_lstat(const char *path, struct stat *st) {
    return idt_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

DIR *idt_opendir(const char *path) {
    int fd = idt_open(path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        idt_close(fd);
        errno = e;
    }
    return d;
}

DIR *idt_opendir_dup(int dirfd) {
    int e = hit(IDT_FAULT_OPEN);
    if (e) { errno = e; return NULL; }
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return NULL;
    atomic_fetch_add_explicit(&live_fds, 1, memory_order_relaxed);
    DIR *d = fdopendir(fd);
    if (!d) {
        e = errno;
        idt_close(fd);
        errno = e;
    }
    return d;
}

int idt_closedir(DIR *d) {
    if (!d) return 0;
    atomic_fetch_sub_explicit(&live_fds, 1, memory_order_relaxed);
    return closedir(d);
}

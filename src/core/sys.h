/* sys.h: the one seam through which the core allocates memory and touches the file system.
 *
 * Every allocation, open (files, directories, lock files), fallocate, mmap, write, fsync,
 * ftruncate, stat, flock, rename, link and mkdir of the core goes through these wrappers, so that tests can make the Nth call of a kind fail (fault
 * injection) and count what is live (allocations, mappings, descriptors) to prove that
 * nothing leaks. The wrappers behave as the libc calls they wrap, except that posix-style
 * calls return -1 and set errno (posix_fallocate's errno is put in errno too).
 *
 * Counters and fault settings are process-wide and atomic; arming a fault is meant for
 * single-threaded tests. */
#ifndef IDT_SYS_H
#define IDT_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

typedef enum idt_fault_kind {
    IDT_FAULT_ALLOC = 0,
    IDT_FAULT_OPEN,
    IDT_FAULT_FALLOCATE,
    IDT_FAULT_MMAP,
    IDT_FAULT_WRITE,
    IDT_FAULT_RENAME,
    IDT_FAULT_LINK,
    IDT_FAULT_MKDIR,
    IDT_FAULT_ADVISE,  /* madvise and mincore: advice only, a failure costs speed, never data */
    IDT_FAULT_PUNCH, /* returning a file range's blocks (idt_punch_hole) */
    IDT_FAULT_SYNC,     /* fsync */
    IDT_FAULT_TRUNCATE, /* ftruncate */
    IDT_FAULT_STAT,     /* fstat, fstatat, stat, lstat */
    IDT_FAULT_LOCK,     /* flock */
    IDT_FAULT_NKINDS,
    IDT_FAULT_ANY = IDT_FAULT_NKINDS /* arm on the Nth call of any kind */
} idt_fault_kind;

/* Make the `nth` (1-based) call of `kind` from now on fail with `errnum` (0 chooses the
 * natural errno: ENOMEM for alloc, mmap and advise, ENOSPC for fallocate and write, EMFILE for
 * open, EWOULDBLOCK (held elsewhere) for lock, EFBIG for truncate, EIO otherwise). If `sticky`, every later call of that kind fails too. nth 0 disarms. */
void idt_fault_arm(idt_fault_kind kind, int64_t nth, int errnum, int sticky);
/* Disarm every fault. */
void idt_fault_reset(void);
/* How many injected failures have fired since the last arm or reset. */
int64_t idt_fault_fired(void);
/* Number of calls of `kind` made so far (IDT_FAULT_ANY: all kinds). */
int64_t idt_sys_calls(idt_fault_kind kind);

typedef struct idt_sys_stats {
    int64_t allocs;   /* live heap blocks */
    int64_t maps;     /* live mappings */
    int64_t fds;      /* open descriptors */
} idt_sys_stats;
void idt_sys_stats_get(idt_sys_stats *out);

void *idt_malloc(size_t n);
void *idt_calloc(size_t n, size_t size);
void *idt_realloc(void *p, size_t n);
void idt_free(void *p);
char *idt_strdup(const char *s);

int idt_open(const char *path, int flags, mode_t mode);
int idt_openat(int dirfd, const char *path, int flags, mode_t mode);
int idt_close(int fd);
int idt_fallocate(int fd, off_t off, off_t len);
/* Give back the blocks of [off, off+len) of fd, keeping the file's size (the range then reads
 * as zeros): fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). -1 with errno (EOPNOTSUPP
 * on a file system that cannot) on failure. */
int idt_punch_hole(int fd, off_t off, off_t len);
void *idt_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int idt_munmap(void *addr, size_t len);
ssize_t idt_pwrite_all(int fd, const void *buf, size_t n, off_t off); /* loops; -1 on error */
int idt_rename(const char *from, const char *to);
int idt_link(const char *from, const char *to);
int idt_mkdir(const char *path, mode_t mode);
/* flock(2), retried on EINTR (fault kind IDT_FAULT_LOCK). */
int idt_flock(int fd, int op);
/* fsync(2), ftruncate(2) (kinds IDT_FAULT_SYNC, IDT_FAULT_TRUNCATE). */
int idt_fsync(int fd);
int idt_ftruncate(int fd, off_t len);
/* fstat(2), fstatat(2), stat(2), lstat(2) (kind IDT_FAULT_STAT). */
int idt_fstat(int fd, struct stat *st);
int idt_fstatat(int dirfd, const char *path, struct stat *st, int flags);
int idt_stat(const char *path, struct stat *st);
int idt_lstat(const char *path, struct stat *st);
/* Directory streams (kind IDT_FAULT_OPEN; each holds a descriptor, counted as one):
 * opendir(3), a stream over a duplicate of dirfd (which stays the caller's), closedir(3). */
DIR *idt_opendir(const char *path);
DIR *idt_opendir_dup(int dirfd);
int idt_closedir(DIR *d);
/* madvise(2) and mincore(2) (fault kind IDT_FAULT_ADVISE). */
int idt_madvise(void *addr, size_t len, int advice);
int idt_mincore(void *addr, size_t len, unsigned char *vec);

#endif

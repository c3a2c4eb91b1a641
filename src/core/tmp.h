/* tmp.h: the temp area and blobs, the reference-counted byte ranges that hold all row data.
 *
 * The temp area is INFINIDATA_TMPDIR, else ./.infinidata_tmp (made absolute at first use and
 * created then, never before). Each process works in its own subdirectory p<pid>-<random>
 * holding a file `lock` on which it keeps an exclusive flock for its lifetime. A directory
 * whose lock can be taken belongs to a dead process: the first blob a process makes reaps
 * such directories (idt_tmp_gc does the same on demand). A live process's files are never
 * touched, since its lock is held.
 *
 * A blob is a byte range in a file of the temp area, mapped shared. Blobs up to
 * IDT_ARENA_MAX bytes are carved out of shared arena files (so 100,000 small tables need a
 * handful of files and mappings); larger blobs get a file of their own. Disk space is
 * reserved (fallocate) before a blob is handed out, so writing through its mapping cannot
 * SIGBUS on a full disk. A blob's file range is released when its last reference goes
 * (a dedicated file is unlinked; an arena file when its last blob goes). Only the process
 * that made a file ever unlinks it: a forked child that drops an inherited blob only unmaps.
 *
 * Blobs loaded from a saved directory (idt_blob_map_file) are read-only and never unlinked.
 *
 * Thread safety: blob references are atomic; making blobs from several threads is safe. */
#ifndef IDT_TMP_H
#define IDT_TMP_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define IDT_ARENA_MAX ((size_t)1 << 20)
#define IDT_ARENA_CHUNK ((size_t)64 << 20)
#define IDT_BLOB_ALIGN 64

typedef struct idt_chunk idt_chunk;

typedef enum { IDT_BLOB_FILE = 1, IDT_BLOB_ARENA = 2, IDT_BLOB_LOADED = 3 } idt_blob_kind;

typedef struct idt_blob {
    _Atomic int64_t refs;
    idt_blob_kind kind;
    char *data;        /* the bytes; writable until the blob is shared, read-only if LOADED */
    size_t size;       /* usable bytes */
    off_t offset;      /* where data starts in `path` */
    char *path;        /* the file holding the bytes (arena: the chunk's file) */
    idt_chunk *chunk;  /* arena chunk, or NULL */
    void *map;         /* mapping to unmap (FILE, LOADED) */
    size_t map_len;
    pid_t owner;       /* process that made the file */
    uint64_t dev, ino; /* identity of the file, for dedup when saving */
    int fd;            /* FILE blobs while being written: open for idt_blob_write, else -1 */
    int64_t random_readers; /* iterators reading it in random order (prefetch.c; its lock) */
} idt_blob;

/* Make a writable zero-filled blob of `size` bytes (size may be 0) in the temp area.
 * On failure returns IDT_ENOMEM or IDT_EIO (temp area not creatable, disk full) and leaves
 * no file behind. The caller owns one reference. */
int idt_blob_new(size_t size, idt_blob **out, idt_error *err);

/* Copy n bytes of src to offset off of a blob being written. Large blobs take the bytes by
 * pwrite, which on most file systems is several times faster than stores through a fresh
 * shared mapping; small ones by memcpy. Errors: IDT_EIO (errno kept; ENOSPC cannot happen
 * since space was reserved, but a failing disk can). */
int idt_blob_write(idt_blob *b, size_t off, const void *src, size_t n, idt_error *err);
/* Done writing: release what writing needed (a descriptor). Idempotent; decref does it too. */
void idt_blob_seal(idt_blob *b);

/* Shrink a blob to `size` bytes (<= its size), returning disk space when it can. Only for a
 * blob nobody else references yet. Never fails (a blob that cannot shrink keeps its space). */
void idt_blob_shrink(idt_blob *b, size_t size);

/* Map `path` read-only as a LOADED blob of the whole file. Errors: IDT_EIO. */
int idt_blob_map_file(const char *path, idt_blob **out, idt_error *err);
/* Map bytes [off, off+size) of `path` read-only as a LOADED blob. Errors: IDT_EIO, and
 * IDT_ECORRUPT when the file is shorter than off+size. */
int idt_blob_map_range(const char *path, uint64_t off, uint64_t size, idt_blob **out, idt_error *err);

void idt_blob_incref(idt_blob *b);
/* Drop a reference; the last one unmaps and releases the file range. NULL is a no-op. */
void idt_blob_decref(idt_blob *b);

/* "a/b" in a new string (caller frees with idt_free), or NULL when out of memory. */
char *idt_path_join(const char *a, const char *b);

/* Path of the temp root (after first use), or NULL if never used. */
const char *idt_tmp_root(void);
/* Path of this process's directory, creating the temp area if needed. */
int idt_tmp_procdir(const char **out, idt_error *err);
/* Make a unique new file name in this process's directory (caller frees). */
int idt_tmp_newpath(const char *suffix, char **out, idt_error *err);

/* Remove this process's directory and everything in it. Live blobs keep their mappings
 * (the data stays readable) but their files are gone. Safe to call more than once; a
 * forked child never removes its parent's directory. */
void idt_tmp_shutdown(void);

/* Reap dead processes' directories under `root` (NULL: the configured temp root). With
 * dry_run nothing is removed. Counts what was (or would be) removed. Never touches a
 * directory whose lock is held. Errors: IDT_EIO when root cannot be read. */
typedef struct idt_gc_report {
    int64_t dirs, files, bytes;
} idt_gc_report;
int idt_tmp_gc(const char *root, int dry_run, idt_gc_report *rep, idt_error *err);

/* Statistics of this process's temp usage (for tests and the CLI). */
typedef struct idt_tmp_stats {
    int64_t live_blobs, arena_chunks, file_blobs;
} idt_tmp_stats;
void idt_tmp_stats_get(idt_tmp_stats *out);

/* The files this process holds in its temp directory (arena files and single-blob files) and
 * the disk blocks they occupy, in bytes (st_blocks * 512). Zero when the directory was never
 * made. Never fails (an unreadable directory counts as empty). */
int idt_tmp_usage(int64_t *files, int64_t *bytes);

/* Fill `buf` with `n` random bytes from the kernel (getrandom), falling back to a
 * time-and-address mix if it is unavailable. */
void idt_random_bytes(void *buf, size_t n);

#endif

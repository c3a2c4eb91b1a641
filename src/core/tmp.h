/* tmp.h: the temp area and blobs, the reference-counted byte ranges that hold all row data.
 *
 * The temp root is INFINIDATA_TMPDIR, else ./.infinidata_tmp, read once, at first use (by a
 * blob or by idt_tmp_gc) and made absolute then; it is created on the first blob, never
 * before. Each process works in its own subdirectory p<pid>-<16 hex> holding a file `lock`
 * on which it keeps an exclusive flock for its lifetime; the lock file holds the marker
 * IDT_TMP_MARKER followed by the directory's <pid>-<hex> and a newline, written before the
 * directory is published by a rename from .new-<pid>-<hex>. Reaping (at a process's first
 * blob, and idt_tmp_gc) recognises a dead process's directory by all of: the exact name
 * pattern, a real directory (never a symlink) owned by this user, a regular `lock` file
 * holding the marker for that name, and a lock that can be taken. In such a directory it
 * removes only regular files named like the library's (a<N>.idt, b<N>.idt, s-/r-<32 hex>.idt of
 * views saved there, lock); anything
 * else is left, and then the directory too. Nothing is followed through a symlink: every
 * step is relative to a directory descriptor opened with O_NOFOLLOW. The root itself is
 * removed at exit only if empty and either this process created it or it is the default
 * ./.infinidata_tmp; a root (or this process's directory) deleted while the process runs is
 * made again on the next blob.
 *
 * A blob is a byte range in a file of the temp area, mapped shared. Blobs up to
 * IDT_ARENA_MAX bytes are carved out of shared arena chunks (sparse files of up to
 * IDT_ARENA_CHUNK bytes, so 100,000 small tables need a handful of files and mappings);
 * larger blobs get a file of their own. Disk space is reserved (fallocate, whole pages)
 * before a blob is handed out, so writing through its mapping cannot SIGBUS on a full disk.
 *
 * Arena space follows live data: each chunk keeps a free list (sorted, coalesced, first
 * fit) and a freed range goes back to it at once, to be reused. Its blocks are given back
 * in batches (hole punching costs a synchronous write-back on some file systems): once more
 * than IDT_ARENA_SLACK bytes of freed space may hold blocks, every free range's wholly free
 * pages are punched and its partial pages zeroed; reused space not yet swept is zeroed when
 * taken. Blocks held by arena chunks are therefore at most the live arena bytes, plus one
 * page at each end of each live range, plus IDT_ARENA_SLACK. A chunk that becomes empty is
 * removed unless it is the process's only one, which then gives back all its blocks. A file
 * blob's file is unlinked with its last reference.
 *
 * Ranges other processes may map are never reused under them: a blob whose description
 * was written (idt_blob_pin: pickling) keeps its range until its chunk goes; a range freed
 * while a child forked after its allocation may still live is held back until every such
 * child (and its descendants) has exited or exec'd, tracked by a close-on-exec pipe each
 * fork leaves in the child. Only the process that made a file ever unlinks or punches it: a
 * forked child that drops an inherited blob only unmaps.
 *
 * Blobs loaded from a saved directory (idt_blob_map_file) are read-only and never unlinked.
 *
 * Thread safety: blob references are atomic; making, shrinking and dropping blobs from
 * several threads is safe (arena bookkeeping is under one mutex). */
#ifndef IDT_TMP_H
#define IDT_TMP_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define IDT_ARENA_MAX ((size_t)1 << 20)
#define IDT_ARENA_CHUNK ((size_t)64 << 20)
#define IDT_BLOB_ALIGN 64
/* Freed arena space that may still hold disk blocks before they are given back in one sweep. */
#define IDT_ARENA_SLACK ((size_t)16 << 20)
/* What a process directory's lock file starts with (then "<pid>-<hex>\n"). */
#define IDT_TMP_MARKER "infinidata temp area v1 "

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
    size_t map_len;    /* bytes mapped (FILE, LOADED); ARENA: bytes of the chunk it holds */
    pid_t owner;       /* process that made the file */
    uint64_t dev, ino; /* identity of the file, for dedup when saving */
    int fd;            /* FILE blobs while being written: open for idt_blob_write, else -1 */
    size_t sparse_from; /* FILE: disk is reserved only below this offset (0: all of it) */
    int64_t random_readers; /* iterators reading it in random order (prefetch.c; its lock;
                                pool blobs count on their extent: idt_blob_advice_target) */
    uint64_t fork_seq; /* ARENA: forks of this process before the blob was made */
    _Atomic int pinned; /* other mappings of its bytes may exist: never reuse its range */
} idt_blob;

/* A blob pool: where one writer's many large blobs go, so that their files and mappings
 * grow with the bytes written, not with the blob count. Blobs of more than IDT_ARENA_MAX
 * (and at most IDT_POOL_EXTENT_MAX) bytes are carved in order out of the pool's current
 * extent: an arena chunk of the pool's own (a sparse file mapped once, not shared with the
 * arena's small blobs), IDT_POOL_EXTENT_MIN bytes at first, then twice the bytes taken so
 * far, at most IDT_POOL_EXTENT_MAX; others are made as by idt_blob_new. Pool blobs are
 * ARENA blobs in every other respect (reserved, reference counted, their range freed with
 * them, an extent removed with its last blob; a save copies their bytes, as for any arena
 * blob, instead of linking a file). The pool is used from one thread at a time; freeing it
 * leaves its blobs valid. */
#define IDT_POOL_EXTENT_MIN ((size_t)64 << 20)
#define IDT_POOL_EXTENT_MAX ((size_t)1 << 30)
typedef struct idt_blob_pool idt_blob_pool;
/* Errors: IDT_ENOMEM. */
int idt_blob_pool_new(idt_blob_pool **out, idt_error *err);
/* As idt_blob_new, from pool p (NULL: idt_blob_new itself). */
int idt_blob_pool_take(idt_blob_pool *p, size_t size, idt_blob **out, idt_error *err);
/* As idt_blob_pool_take, for a blob of which only [0, reserve) is sure to be written (a
 * store whose string columns' sizes are found as they come, idt_blob_shrink_unwritten giving
 * back the rest): a FILE blob's file holds that prefix only, with its disk space reserved,
 * and is mapped for `size` bytes; the rest lies past the file's end until written
 * (idt_blob_write takes every byte there by pwrite, so a full disk or RLIMIT_FSIZE is an
 * IDT_EIO error for the bytes written, never a SIGBUS on the mapping), and
 * idt_blob_shrink_unwritten must then set the file's length. An arena or pool blob reserves
 * all of it (its unused part goes back at the shrink, its pages punched). */
int idt_blob_pool_take_open(idt_blob_pool *p, size_t size, size_t reserve, idt_blob **out,
                            idt_error *err);
/* NULL is a no-op. */
void idt_blob_pool_free(idt_blob_pool *p);

/* Make a writable zero-filled blob of `size` bytes (size may be 0) in the temp area.
 * On failure returns IDT_ENOMEM or IDT_EIO (temp area not creatable, disk full) and leaves
 * no file behind. The caller owns one reference. */
int idt_blob_new(size_t size, idt_blob **out, idt_error *err);
/* idt_blob_pool_take_open without a pool. */
int idt_blob_new_open(size_t size, size_t reserve, idt_blob **out, idt_error *err);

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
/* The same for a blob whose bytes past `size` were never written (the tail of an
 * idt_blob_pool_take_open reservation): an arena range goes back with its pages punched (no
 * zeroing needed when taken again); a file is cut, or grown, to exactly `size` bytes, which
 * its blob's size then says (it keeps its old size if the file cannot be set). */
void idt_blob_shrink_unwritten(idt_blob *b, size_t size);

/* Where read-ahead advice for blob b's bytes goes (prefetch.c marks the mappings of blobs
 * read in random order MADV_RANDOM): a file's or a loaded blob's own mapping, or a pool
 * extent's, which its blobs share; sets *map and *len and returns that mapping's count of
 * random-order readers, which the caller keeps under its own lock. NULL for a small arena
 * blob (its chunk holds unrelated small blobs: left alone). */
int64_t *idt_blob_advice_target(idt_blob *b, void **map, size_t *len);

/* Map `path` read-only as a LOADED blob of the whole file. Errors: IDT_EIO. */
int idt_blob_map_file(const char *path, idt_blob **out, idt_error *err);
/* Map bytes [off, off+size) of `path` read-only as a LOADED blob. Errors: IDT_EIO, and
 * IDT_ECORRUPT when the file is shorter than off+size. */
int idt_blob_map_range(const char *path, uint64_t off, uint64_t size, idt_blob **out, idt_error *err);

/* Note that the blob's bytes may be mapped elsewhere by path and offset (its description was
 * written for another process or a later unpickling): its arena range is then never reused
 * or punched while its chunk lives. Thread-safe, idempotent. */
void idt_blob_pin(const idt_blob *b);

/* Take over a LOADED blob mapping a whole file that lies directly in this process's temp
 * directory (saved there by another process, for this one): the file is renamed to a temp
 * area name and the blob becomes this process's FILE blob, unlinked when its last reference
 * goes (and at exit). Only for a blob no other thread is using. Errors: IDT_EVALUE (not such
 * a blob; nothing changed), IDT_EIO (the rename), IDT_ENOMEM. */
int idt_blob_adopt(idt_blob *b, idt_error *err);

void idt_blob_incref(idt_blob *b);
/* Drop a reference; the last one unmaps and releases the file range. NULL is a no-op. */
void idt_blob_decref(idt_blob *b);

/* "a/b" in a new string (caller frees with idt_free), or NULL when out of memory. */
char *idt_path_join(const char *a, const char *b);

/* Real path of the temp root (after the first blob), or NULL before. */
const char *idt_tmp_root(void);
/* Path of this process's directory, creating the temp area if needed. */
int idt_tmp_procdir(const char **out, idt_error *err);
/* Make a unique new file name in this process's directory (caller frees). */
int idt_tmp_newpath(const char *suffix, char **out, idt_error *err);

/* Remove this process's directory and the library's files in it, then the temp root if it
 * is empty and this process created it (or it is the default ./.infinidata_tmp). Live
 * blobs keep their mappings (the data stays readable) but their files are gone. Safe to
 * call more than once; a forked child never removes its parent's directory. */
void idt_tmp_shutdown(void);

/* Reap dead processes' directories under `root` (NULL: this process's temp root, the same
 * one its blobs use: INFINIDATA_TMPDIR as read at first use). With dry_run nothing is
 * removed. Counts what was (or would be) removed: directories recognised as a dead
 * process's, and the library's files in them (bytes as allocated blocks). Never touches a
 * directory whose lock is held or that is not recognised as the library's (see above), and
 * never creates the root. Errors: IDT_EIO when root exists but cannot be read. */
typedef struct idt_gc_report {
    int64_t dirs, files, bytes;
} idt_gc_report;
int idt_tmp_gc(const char *root, int dry_run, idt_gc_report *rep, idt_error *err);

/* Statistics of this process's temp usage (for tests and the CLI). */
typedef struct idt_tmp_stats {
    int64_t live_blobs, arena_chunks, file_blobs;
    int64_t arena_bytes; /* bytes of this process's arena chunks taken by blobs (live, or
                            freed but held back for a child or a pinned description) */
} idt_tmp_stats;
void idt_tmp_stats_get(idt_tmp_stats *out);

/* The files this process holds in its temp directory (arena files and single-blob files) and
 * the disk blocks they occupy, in bytes (st_blocks * 512). Zero when the directory was never
 * made. Never fails (an unreadable directory counts as empty). */
int idt_tmp_usage(int64_t *files, int64_t *bytes);

/* Set how many bytes of freed arena space may hold disk blocks before a sweep gives them back
 * (IDT_ARENA_SLACK by default; 0 gives back at every free, as tests of the punching want).
 * Returns the previous value. */
size_t idt_tmp_slack_set(size_t bytes);

/* Fill `buf` with `n` random bytes from the kernel (getrandom), falling back to a
 * time-and-address mix if it is unavailable. */
void idt_random_bytes(void *buf, size_t n);

#endif

/* limits.c: the probe. What this machine can do at best, for comparing infinidata against the
 * hardware. Nothing here is part of the library; it is a standalone program (C11 + POSIX +
 * Linux raw syscalls, no liburing) built by `make probe` into build/limits.
 *
 *   build/limits TEST [options]      prints one JSON object on stdout
 *
 * Tests:
 *   memcpy   [--mib M]                copy of contiguous 2 MiB batches out of a read-only mapping
 *                                     of an M MiB temp file in the page cache (GB/s)
 *   gather   [--mib M] [--threads N]  gather of 512-byte rows in a random permutation, batches
 *                                     of 4096 rows, N threads, software prefetch (GB/s, rows/s)
 *   shuffle  [--rows R]               shuffle of R int64 (default 20M): Fisher-Yates and a
 *                                     bucketed two-pass (Rao-Sandelius) shuffle (seconds)
 *   pwrite   --bytes B [--dir D]      sequential write of B bytes (1 MiB pwrite calls) into a fresh
 *                                     file in D, fsync included; the file is removed (MB/s)
 *   randread --file F [--depth 1,2,..] [--seconds S] [--engine uring|threads]
 *                                     random 4 KiB-aligned 4 KiB O_DIRECT reads over F, at each
 *                                     queue depth for S seconds (default 2): reads/s per depth
 *   seqread  --file F [--depth 1,4,..] [--block KiB] [--max-mib M]
 *                                     O_DIRECT sequential read of F in blocks (default 1024 KiB),
 *                                     at each depth (blocks in flight, in file order): MB/s
 *   all      [--dir D] [--mib M] [--disk-mib M2]
 *                                     every test above: memcpy/gather on M MiB (default 1024),
 *                                     gather on 1 and nproc threads, pwrite of M2 MiB (default
 *                                     4096) into D (default $TMPDIR or /tmp), randread and seqread
 *                                     on that file while it exists (then it is removed).
 *
 * randread/seqread bypass the page cache (O_DIRECT), so their file may be cached or not: they
 * measure the device. Without --file, randread and seqread write a temp file of --disk-mib MiB
 * first. io_uring is used through raw syscalls when the kernel allows it, else one thread per
 * request in flight doing pread (the JSON says which). Each in-memory figure is the best of 3. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { ROW = 512, BATCH = 4096, BUCKETS = 512, BLK = 4096, MAXD = 256 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char cleanup_path[4096]; /* a scratch file to remove if we die */

static void die(const char *what) {
    fprintf(stderr, "limits: %s: %s\n", what, strerror(errno));
    if (*cleanup_path) unlink(cleanup_path);
    exit(1);
}

/* ---------------------------------------------------------------- random numbers */
static uint64_t rs[4] = {0x9E3779B97F4A7C15u, 2, 3, 4};
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t next_r(uint64_t *s) { /* xoshiro256** */
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}
static uint64_t below(uint64_t *s, uint64_t n) {
    return (uint64_t)(((__uint128_t)next_r(s) * n) >> 64);
}
static void fisher_yates(int64_t *a, size_t n) {
    for (size_t i = n - 1; i > 0; i--) {
        size_t k = below(rs, i + 1);
        int64_t t = a[i]; a[i] = a[k]; a[k] = t;
    }
}
static double best3(double a, double b, double c) {
    double m = a < b ? a : b;
    return m < c ? m : c;
}

/* ---------------------------------------------------------------- options */
typedef struct opts {
    const char *test, *file, *dir, *engine;
    size_t mib, disk_mib, bytes, rows, block_kib, max_mib;
    int threads;
    double seconds;
    int depths[32], ndepths;
} opts;

static void parse_depths(opts *o, const char *s) {
    o->ndepths = 0;
    while (*s && o->ndepths < 32) {
        char *end;
        long d = strtol(s, &end, 10);
        if (end == s || d < 1 || d > MAXD) {
            fprintf(stderr, "limits: bad --depth list at '%s' (1..%d, comma-separated)\n", s, MAXD);
            exit(2);
        }
        o->depths[o->ndepths++] = (int)d;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') break;
    }
}

/* ---------------------------------------------------------------- in-memory tests */
static const char *base;
static size_t nrows;
static int64_t *perm;
static volatile char sink; /* keeps copies from being optimised away */

/* A temp file of `bytes` filled with ones, mapped read-only and resident (page cache). */
static void map_temp(size_t bytes, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/limits-memXXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) die("temp file");
    unlink(path);
    if (posix_fallocate(fd, 0, (off_t)bytes) != 0) die("fallocate");
    char *w = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w == MAP_FAILED) die("mmap");
    memset(w, 1, bytes);
    munmap(w, bytes);
    base = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap");
    close(fd);
    nrows = bytes / ROW;
    perm = malloc(nrows * sizeof *perm);
    if (!perm) die("malloc");
    for (size_t i = 0; i < nrows; i++) perm[i] = (int64_t)i;
    fisher_yates(perm, nrows);
}

static double run_copy(void) {
    char *out = malloc((size_t)BATCH * ROW);
    double t0 = now();
    for (size_t lo = 0; lo < nrows; lo += BATCH) {
        size_t n = lo + BATCH < nrows ? BATCH : nrows - lo;
        memcpy(out, base + lo * ROW, n * ROW);
        sink ^= out[n * ROW - 1];
    }
    double dt = now() - t0;
    free(out);
    return dt;
}

typedef struct { size_t b0, b1; } span;

static void *gather_main(void *arg) {
    span *s = arg;
    char *out = malloc((size_t)BATCH * ROW);
    for (size_t b = s->b0; b < s->b1; b++) {
        size_t lo = b * BATCH, hi = lo + BATCH < nrows ? lo + BATCH : nrows;
        for (size_t i = lo; i < hi; i++) {
            if (i + 8 < hi) __builtin_prefetch(base + perm[i + 8] * ROW);
            memcpy(out + (i - lo) * ROW, base + perm[i] * ROW, ROW);
        }
        sink ^= out[0];
    }
    free(out);
    return NULL;
}

static double run_gather(int threads) {
    size_t nb = (nrows + BATCH - 1) / BATCH;
    pthread_t th[MAXD];
    span sp[MAXD];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        sp[t] = (span){nb * (size_t)t / (size_t)threads, nb * (size_t)(t + 1) / (size_t)threads};
        if (pthread_create(&th[t], NULL, gather_main, &sp[t])) die("pthread_create");
    }
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return now() - t0;
}

static void print_memcpy(size_t bytes) {
    double c = best3(run_copy(), run_copy(), run_copy());
    printf("{\"test\": \"memcpy\", \"bytes\": %zu, \"batch_bytes\": %d, \"seconds\": %.6f, \"gb_per_s\": %.3f}",
           bytes, BATCH * ROW, c, (double)bytes / c / 1e9);
}

static void print_gather(size_t bytes, int threads) {
    double g = best3(run_gather(threads), run_gather(threads), run_gather(threads));
    printf("{\"test\": \"gather\", \"threads\": %d, \"row_bytes\": %d, \"rows\": %zu, \"seconds\": %.6f, "
           "\"gb_per_s\": %.3f, \"rows_per_s\": %.0f}",
           threads, ROW, nrows, g, (double)bytes / g / 1e9, (double)nrows / g);
}

static double run_bucketed(int64_t *out, uint16_t *bucket, size_t n) {
    double t0 = now();
    static size_t count[BUCKETS], start[BUCKETS], pos[BUCKETS];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) count[bucket[i] = next_r(rs) & (BUCKETS - 1)]++;
    for (size_t k = 0, o = 0; k < BUCKETS; o += count[k++]) start[k] = pos[k] = o;
    for (size_t i = 0; i < n; i++) out[pos[bucket[i]]++] = (int64_t)i;
    for (size_t k = 0; k < BUCKETS; k++)
        if (count[k] > 1) fisher_yates(out + start[k], count[k]);
    return now() - t0;
}

static void print_shuffle(size_t n) {
    int64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint16_t *bk = malloc(n * sizeof *bk);
    if (!a || !b || !bk) die("malloc");
    double fy[3], bu[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (size_t i = 0; i < n; i++) a[i] = (int64_t)i;
        fisher_yates(a, n);
        fy[r] = now() - t0;
        bu[r] = run_bucketed(b, bk, n);
    }
    printf("{\"test\": \"shuffle\", \"rows\": %zu, \"fisher_yates_s\": %.4f, \"bucketed_s\": %.4f}", n,
           best3(fy[0], fy[1], fy[2]), best3(bu[0], bu[1], bu[2]));
    free(a); free(b); free(bk);
}

/* ---------------------------------------------------------------- file write */
/* Writes `bytes` sequentially (1 MiB pwrite calls of non-zero bytes) into a fresh file in dir,
 * fsyncs it. If keep_path is not NULL the file is kept and its path stored there (for the disk
 * read tests); else it is removed. Prints the JSON object. */
static void do_pwrite(size_t bytes, const char *dir, char *keep_path, size_t keep_len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/limits-writeXXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) die("temp file");
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    if (!buf) die("malloc");
    for (size_t i = 0; i < chunk; i++) buf[i] = (char)(i * 131 + 7);
    double t0 = now();
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        buf[0] = (char)off; /* every chunk differs a little */
        size_t done = 0;
        while (done < n) {
            ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
            if (w < 0) {
                if (errno == EINTR) continue;
                int e = errno;
                unlink(path);
                errno = e;
                die("pwrite");
            }
            done += (size_t)w;
        }
    }
    double t_write = now() - t0;
    if (fsync(fd) != 0) die("fsync");
    double t_all = now() - t0;
    close(fd);
    free(buf);
    if (keep_path) {
        snprintf(keep_path, keep_len, "%s", path);
        snprintf(cleanup_path, sizeof cleanup_path, "%s", path);
    }
    else
        unlink(path);
    printf("{\"test\": \"pwrite\", \"bytes\": %zu, \"call_bytes\": %zu, \"dir\": \"%s\", \"seconds\": %.4f, "
           "\"seconds_before_fsync\": %.4f, \"mb_per_s\": %.1f}",
           bytes, chunk, dir, t_all, t_write, (double)bytes / t_all / 1e6);
}

/* ---------------------------------------------------------------- io_uring, raw syscalls */
typedef struct ring {
    int fd;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_ptr, *cq_ptr;
    size_t sq_sz, cq_sz, sqe_sz;
    unsigned pending; /* sqes queued, not yet submitted */
} ring;

static int ring_init(ring *r, unsigned entries) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    memset(r, 0, sizeof *r);
    r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (r->fd < 0) return -1;
    r->sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->sq_ptr = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_SQ_RING);
    r->cq_ptr = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_CQ_RING);
    r->sqe_sz = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqe_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sq_ptr == MAP_FAILED || r->cq_ptr == MAP_FAILED || r->sqes == MAP_FAILED) {
        close(r->fd);
        return -1;
    }
    char *sq = r->sq_ptr, *cq = r->cq_ptr;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

static void ring_free(ring *r) {
    munmap(r->sqes, r->sqe_sz);
    munmap(r->cq_ptr, r->cq_sz);
    munmap(r->sq_ptr, r->sq_sz);
    close(r->fd);
}

static void ring_queue_read(ring *r, int fd, void *buf, unsigned len, uint64_t off, uint64_t tag) {
    unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
    struct io_uring_sqe *e = &r->sqes[idx];
    memset(e, 0, sizeof *e);
    e->opcode = IORING_OP_READ;
    e->fd = fd;
    e->addr = (uint64_t)(uintptr_t)buf;
    e->len = len;
    e->off = off;
    e->user_data = tag;
    r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    r->pending++;
}

/* Submits what is queued and waits for at least `wait` completions. */
static int ring_enter(ring *r, unsigned wait) {
    unsigned n = r->pending;
    for (;;) {
        long rc = syscall(__NR_io_uring_enter, r->fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
        if (rc >= 0) {
            r->pending -= (unsigned)rc < n ? (unsigned)rc : n;
            return 0;
        }
        if (errno != EINTR) return -1;
    }
}

/* Pops one completion if there is one: returns 1 and fills tag/res. */
static int ring_pop(ring *r, uint64_t *tag, int *res) {
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) return 0;
    struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
    *tag = c->user_data;
    *res = c->res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

/* ---------------------------------------------------------------- disk reads */
typedef struct disk_job {
    int fd;
    uint64_t nblocks;        /* file size / block */
    size_t block;
    int sequential;          /* seqread: next block in order; randread: random block */
    _Atomic uint64_t cursor; /* seqread: next block to read */
    uint64_t limit_blocks;   /* seqread: stop after this many */
    double deadline;
    _Atomic uint64_t done;
    _Atomic int failed;
    int err;
} disk_job;

typedef struct thr_arg { disk_job *j; uint64_t seed; } thr_arg;

static void *disk_thread(void *arg) {
    thr_arg *a = arg;
    disk_job *j = a->j;
    uint64_t s[4] = {a->seed, a->seed * 3 + 1, a->seed * 7 + 2, a->seed * 11 + 3};
    void *buf;
    if (posix_memalign(&buf, 4096, j->block)) return NULL;
    for (uint64_t k = 0;; k++) {
        uint64_t b;
        if (j->sequential) {
            b = atomic_fetch_add(&j->cursor, 1);
            if (b >= j->limit_blocks) break;
        } else {
            if ((k & 15) == 0 && now() > j->deadline) break;
            b = below(s, j->nblocks);
        }
        ssize_t r = pread(j->fd, buf, j->block, (off_t)(b * j->block));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            j->err = r < 0 ? errno : EIO;
            atomic_store(&j->failed, 1);
            break;
        }
        atomic_fetch_add(&j->done, 1);
    }
    free(buf);
    return NULL;
}

/* Runs `depth` requests in flight until the deadline (random) or the limit (sequential).
 * Returns completed reads and the seconds it took, or -1 on error. */
static int disk_run(disk_job *j, int depth, int uring, uint64_t *reads, double *secs) {
    double t0 = now();
    atomic_store(&j->done, 0);
    atomic_store(&j->cursor, 0);
    if (!uring) {
        pthread_t th[MAXD];
        thr_arg ta[MAXD];
        for (int t = 0; t < depth; t++) {
            ta[t] = (thr_arg){j, (uint64_t)t * 0x9E3779B97F4A7C15u + 12345};
            if (pthread_create(&th[t], NULL, disk_thread, &ta[t])) die("pthread_create");
        }
        for (int t = 0; t < depth; t++) pthread_join(th[t], NULL);
    } else {
        ring r;
        if (ring_init(&r, (unsigned)depth) != 0) return -1;
        void *bufs;
        if (posix_memalign(&bufs, 4096, j->block * (size_t)depth)) die("posix_memalign");
        uint64_t s[4] = {0x1234567u, 99, 7, 3};
        int freeslot[MAXD], nfree = depth, inflight = 0, stop = 0;
        for (int k = 0; k < depth; k++) freeslot[k] = k;
        uint64_t done = 0;
        while (!stop || inflight) {
            if (!stop && !j->sequential && now() > j->deadline) stop = 1;
            while (!stop && nfree > 0) {
                uint64_t b;
                if (j->sequential) {
                    b = atomic_fetch_add(&j->cursor, 1);
                    if (b >= j->limit_blocks) { stop = 1; break; }
                } else {
                    b = below(s, j->nblocks);
                }
                int slot = freeslot[--nfree]; /* a request's tag names its buffer */
                ring_queue_read(&r, j->fd, (char *)bufs + (size_t)slot * j->block, (unsigned)j->block,
                                b * j->block, (uint64_t)slot);
                inflight++;
            }
            if (ring_enter(&r, inflight ? 1 : 0) != 0) {
                j->err = errno;
                atomic_store(&j->failed, 1);
                break;
            }
            uint64_t tag;
            int res;
            while (ring_pop(&r, &tag, &res)) {
                inflight--;
                freeslot[nfree++] = (int)tag;
                if (res <= 0) {
                    j->err = res < 0 ? -res : EIO;
                    atomic_store(&j->failed, 1);
                    stop = 1;
                } else {
                    done++;
                }
            }
        }
        atomic_store(&j->done, done);
        free(bufs);
        ring_free(&r);
    }
    *secs = now() - t0;
    *reads = atomic_load(&j->done);
    return atomic_load(&j->failed) ? -1 : 0;
}

static int uring_works(void) {
    ring r;
    if (ring_init(&r, 4) != 0) return 0;
    ring_free(&r);
    return 1;
}

static int open_direct(const char *file, uint64_t *size) {
    int fd = open(file, O_RDONLY | O_DIRECT);
    if (fd < 0) die(file);
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    *size = (uint64_t)st.st_size;
    return fd;
}

static int pick_uring(const opts *o) {
    if (o->engine && strcmp(o->engine, "threads") == 0) return 0;
    int ok = uring_works();
    if (o->engine && strcmp(o->engine, "uring") == 0 && !ok) {
        fprintf(stderr, "limits: io_uring is not available here (--engine threads works)\n");
        exit(2);
    }
    return ok;
}

static void print_randread(const opts *o, const char *file) {
    uint64_t size;
    int fd = open_direct(file, &size);
    if (size < BLK) { fprintf(stderr, "limits: %s is smaller than 4 KiB\n", file); exit(2); }
    int uring = pick_uring(o);
    printf("{\"test\": \"randread\", \"file\": \"%s\", \"file_bytes\": %llu, \"block\": %d, \"engine\": \"%s\", "
           "\"seconds_per_depth\": %.2f, \"depths\": [", file, (unsigned long long)size, BLK,
           uring ? "io_uring" : "threads+pread", o->seconds);
    double best = 0;
    int best_d = 0;
    for (int k = 0; k < o->ndepths; k++) {
        disk_job j = {.fd = fd, .nblocks = size / BLK, .block = BLK, .sequential = 0};
        j.deadline = now() + o->seconds;
        uint64_t n;
        double dt;
        if (disk_run(&j, o->depths[k], uring, &n, &dt) != 0) {
            errno = j.err;
            die("randread");
        }
        double rate = (double)n / dt;
        if (rate > best) best = rate, best_d = o->depths[k];
        printf("%s{\"depth\": %d, \"reads\": %llu, \"seconds\": %.3f, \"reads_per_s\": %.0f, \"mb_per_s\": %.1f}",
               k ? ", " : "", o->depths[k], (unsigned long long)n, dt, rate, rate * BLK / 1e6);
        fflush(stdout);
    }
    printf("], \"best_reads_per_s\": %.0f, \"best_depth\": %d}", best, best_d);
    close(fd);
}

static void print_seqread(const opts *o, const char *file) {
    uint64_t size;
    int fd = open_direct(file, &size);
    size_t block = o->block_kib * 1024;
    uint64_t nblocks = size / block;
    if (o->max_mib && nblocks > (uint64_t)o->max_mib * 1024 * 1024 / block)
        nblocks = (uint64_t)o->max_mib * 1024 * 1024 / block;
    if (nblocks == 0) { fprintf(stderr, "limits: %s is smaller than one block\n", file); exit(2); }
    int uring = pick_uring(o);
    printf("{\"test\": \"seqread\", \"file\": \"%s\", \"bytes_read\": %llu, \"block\": %zu, \"engine\": \"%s\", "
           "\"depths\": [", file, (unsigned long long)(nblocks * block), block, uring ? "io_uring" : "threads+pread");
    double best = 0;
    int best_d = 0;
    for (int k = 0; k < o->ndepths; k++) {
        disk_job j = {.fd = fd, .nblocks = nblocks, .block = block, .sequential = 1, .limit_blocks = nblocks};
        j.deadline = now() + 1e9;
        uint64_t n;
        double dt;
        if (disk_run(&j, o->depths[k], uring, &n, &dt) != 0) {
            errno = j.err;
            die("seqread");
        }
        double mbs = (double)n * (double)block / dt / 1e6;
        if (mbs > best) best = mbs, best_d = o->depths[k];
        printf("%s{\"depth\": %d, \"seconds\": %.3f, \"mb_per_s\": %.1f}", k ? ", " : "", o->depths[k], dt, mbs);
        fflush(stdout);
    }
    printf("], \"best_mb_per_s\": %.1f, \"best_depth\": %d}", best, best_d);
    close(fd);
}

static void usage(void) {
    fprintf(stderr,
            "usage: limits TEST [options]   (prints one JSON object)\n"
            "  memcpy   [--mib M]\n"
            "  gather   [--mib M] [--threads N]\n"
            "  shuffle  [--rows R]\n"
            "  pwrite   --bytes B [--dir D]\n"
            "  randread [--file F] [--depth 1,2,4,...,64] [--seconds S] [--engine uring|threads]\n"
            "  seqread  [--file F] [--depth 1,4,16] [--block KiB] [--max-mib M] [--engine uring|threads]\n"
            "  all      [--dir D] [--mib M] [--disk-mib M2] [--threads N]\n"
            "randread/seqread without --file write a temp file of --disk-mib MiB (default 4096) in --dir.\n");
    exit(2);
}

static size_t num(const char *s, const char *name) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) { fprintf(stderr, "limits: %s wants a number, got '%s'\n", name, s); exit(2); }
    if (*end == 'K' || *end == 'k') v <<= 10;
    else if (*end == 'M' || *end == 'm') v <<= 20;
    else if (*end == 'G' || *end == 'g') v <<= 30;
    return (size_t)v;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    opts o = {.test = argv[1], .mib = 1024, .disk_mib = 4096, .rows = 20000000, .block_kib = 1024,
              .seconds = 2.0, .threads = 0};
    const char *td = getenv("TMPDIR");
    o.dir = td && *td ? td : "/tmp";
    int depth_set = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--mib")) o.mib = num(v, a);
        else if (!strcmp(a, "--disk-mib")) o.disk_mib = num(v, a);
        else if (!strcmp(a, "--bytes")) o.bytes = num(v, a);
        else if (!strcmp(a, "--rows")) o.rows = num(v, a);
        else if (!strcmp(a, "--threads")) o.threads = (int)num(v, a);
        else if (!strcmp(a, "--block")) o.block_kib = num(v, a);
        else if (!strcmp(a, "--max-mib")) o.max_mib = num(v, a);
        else if (!strcmp(a, "--seconds")) o.seconds = atof(v);
        else if (!strcmp(a, "--file")) o.file = v;
        else if (!strcmp(a, "--dir")) o.dir = v;
        else if (!strcmp(a, "--engine")) o.engine = v;
        else if (!strcmp(a, "--depth")) parse_depths(&o, v), depth_set = 1;
        else usage();
        i++;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (o.threads < 1) o.threads = ncpu > 0 ? (int)ncpu : 1;
    if (o.threads > MAXD) o.threads = MAXD;
    if (o.seconds <= 0) o.seconds = 2.0;
    if (o.block_kib < 4 || o.block_kib % 4) { fprintf(stderr, "limits: --block must be a multiple of 4 KiB\n"); exit(2); }
    int rand_depths[] = {1, 2, 4, 8, 16, 32, 64}, seq_depths[] = {1, 4, 16};
    char tmpfile[4096] = "";
    if (!strcmp(o.test, "memcpy")) {
        map_temp(o.mib << 20, o.dir);
        print_memcpy(o.mib << 20);
    } else if (!strcmp(o.test, "gather")) {
        map_temp(o.mib << 20, o.dir);
        print_gather(o.mib << 20, o.threads);
    } else if (!strcmp(o.test, "shuffle")) {
        print_shuffle(o.rows);
    } else if (!strcmp(o.test, "pwrite")) {
        if (!o.bytes) { fprintf(stderr, "limits: pwrite needs --bytes B\n"); exit(2); }
        do_pwrite(o.bytes, o.dir, NULL, 0);
    } else if (!strcmp(o.test, "randread") || !strcmp(o.test, "seqread")) {
        int rnd = o.test[0] == 'r';
        if (!depth_set) {
            int *d = rnd ? rand_depths : seq_depths, n = rnd ? 7 : 3;
            for (int k = 0; k < n; k++) o.depths[k] = d[k];
            o.ndepths = n;
        }
        const char *f = o.file;
        if (!f) { /* write the file first; its pwrite figure goes to stderr */
            int so = dup(1);
            dup2(2, 1);
            do_pwrite(o.disk_mib << 20, o.dir, tmpfile, sizeof tmpfile);
            printf("\n");
            fflush(stdout);
            dup2(so, 1);
            close(so);
            f = tmpfile;
        }
        if (rnd) print_randread(&o, f); else print_seqread(&o, f);
        if (*tmpfile) unlink(tmpfile);
    } else if (!strcmp(o.test, "all")) {
        char host[256] = "?";
        gethostname(host, sizeof host);
        double la[3] = {0};
        getloadavg(la, 3);
        printf("{\"test\": \"all\", \"ncpu\": %ld, \"loadavg_start\": %.2f, \"memcpy\": ", ncpu, la[0]);
        fflush(stdout);
        map_temp(o.mib << 20, o.dir);
        print_memcpy(o.mib << 20);
        printf(", \"gather\": [");
        print_gather(o.mib << 20, 1);
        if (o.threads > 1) printf(", "), print_gather(o.mib << 20, o.threads);
        printf("], \"shuffle\": ");
        fflush(stdout);
        munmap((void *)base, o.mib << 20);
        free(perm);
        print_shuffle(o.rows);
        printf(", \"pwrite\": ");
        fflush(stdout);
        do_pwrite(o.disk_mib << 20, o.dir, tmpfile, sizeof tmpfile);
        printf(", \"randread\": ");
        fflush(stdout);
        for (int k = 0; k < 7; k++) o.depths[k] = rand_depths[k];
        o.ndepths = 7;
        print_randread(&o, tmpfile);
        printf(", \"seqread\": ");
        fflush(stdout);
        for (int k = 0; k < 3; k++) o.depths[k] = seq_depths[k];
        o.ndepths = 3;
        print_seqread(&o, tmpfile);
        unlink(tmpfile);
        getloadavg(la, 3);
        printf(", \"loadavg_end\": %.2f}", la[0]);
    } else {
        usage();
    }
    printf("\n");
    return 0;
}

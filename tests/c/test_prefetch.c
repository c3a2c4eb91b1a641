/* test_prefetch.c: reading ahead of batches (prefetch.c) and page-aligned large columns. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "batch.h"
#include "harness.h"
#include "prefetch.h"

/* A view of n int64 rows "id" = i (one store; a file of its own when n * 8 >= 1 MiB). */
static idt_view *ids_view(int64_t n) {
    int64_t *id = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) id[i] = i;
    h_col col = {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL};
    idt_view *v = NULL;
    idt_error err;
    if (h_view(&col, 1, n, &v, &err)) h_fail(__FILE__, __LINE__, "view: %s", err.msg);
    free(id);
    return v;
}

/* Drop the pages of the store's file from the page cache (written back first). */
static void evict(idt_view *v) {
    idt_store *st;
    int64_t row;
    idt_view_locate(v, 0, &st, &row);
    int fd = open(st->blob->path, O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK_EQ(msync(st->blob->map, st->blob->map_len, MS_SYNC), 0);
    CHECK_EQ(fdatasync(fd), 0);
    /* unmap our page table entries (the file keeps the bytes), so the pages can go */
    CHECK_EQ(madvise(st->blob->map, st->blob->map_len, MADV_DONTNEED), 0);
    CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
}

static int resident(const void *p) {
    unsigned char vec = 0;
    long ps = sysconf(_SC_PAGESIZE);
    mincore((void *)((uintptr_t)p & ~(uintptr_t)(ps - 1)), (size_t)ps, &vec);
    return vec & 1;
}

/* A fixed column of 1 MiB or more starts on a page boundary; a small one stays 64-aligned. */
static void test_large_columns_are_page_aligned(void) {
    idt_view *big = ids_view(1 << 17), *small = ids_view(100);
    REQUIRE(big && small);
    idt_store *st;
    int64_t row;
    idt_view_locate(big, 0, &st, &row);
    CHECK_EQ((uintptr_t)st->cols[0].data % 4096, 0);
    CHECK_EQ(st->blob->kind, IDT_BLOB_FILE);
    idt_view_locate(small, 0, &st, &row);
    CHECK_EQ((uintptr_t)st->cols[0].data % 64, 0);
    CHECK(st->blob->size < 4096); /* no page of padding for a small table */
    idt_view_decref(big);
    idt_view_decref(small);
}

/* In memory: auto mode only samples (mincore), advises nothing, and skips later checks. */
static void test_resident_rows_are_not_advised(void) {
    idt_view *v = ids_view(1 << 17);
    REQUIRE(v);
    idt_prefetcher pf = {0};
    idt_rowsel sel = {0, 1, 4096, NULL};
    int64_t c0 = idt_sys_calls(IDT_FAULT_ADVISE);
    CHECK_EQ(idt_view_prefetch(v, &sel, &pf), 0);
    int64_t c1 = idt_sys_calls(IDT_FAULT_ADVISE);
    CHECK(c1 - c0 >= 1 && c1 - c0 <= 16);
    CHECK_EQ(pf.resident, 1);
    CHECK_EQ(pf.advised, 0);
    CHECK_EQ(idt_view_prefetch(v, &sel, &pf), 0); /* streak: this check is skipped */
    CHECK_EQ(idt_sys_calls(IDT_FAULT_ADVISE), c1);
    CHECK_EQ(pf.resident, 2);
    idt_view_decref(v);
}

/* Cold pages (evicted): auto mode advises them, and they come back into memory. */
static void test_cold_rows_are_advised_and_read(void) {
    idt_view *v = ids_view(1 << 18); /* 2 MiB: 512 pages */
    REQUIRE(v);
    evict(v);
    idt_store *st;
    int64_t row;
    idt_view_locate(v, 0, &st, &row);
    const char *d = st->cols[0].data;
    int cold = !resident(d) && !resident(d + 8 * 100000);
    if (!cold) { /* a file system that keeps the pages: nothing to check here */
        printf("  (pages stayed resident after POSIX_FADV_DONTNEED; skipped)\n");
        idt_view_decref(v);
        return;
    }
    idt_prefetcher pf = {0};
    /* rows 100000.. and 0.. in reverse order: sorted and merged into one range per run */
    int64_t idx[2048];
    for (int i = 0; i < 1024; i++) idx[i] = 100000 + 1023 - i;
    for (int i = 0; i < 1024; i++) idx[1024 + i] = 1023 - i;
    idt_rowsel sel = {0, 0, 2048, idx};
    CHECK_EQ(idt_view_prefetch(v, &sel, &pf), 2); /* two runs of 8 KiB: two madvise calls */
    CHECK_EQ(pf.advised, 1);
    CHECK_EQ(pf.resident, 0);
    /* WILLNEED starts the reads; a read of the page waits for it and then finds it there */
    int64_t sum = 0, expect = 0;
    for (int i = 0; i < 2048; i++) sum += ((const int64_t *)d)[idx[i]], expect += idx[i];
    CHECK(resident(d) && resident(d + 8 * 100000));
    CHECK_EQ(sum, expect);
    idt_view_decref(v);
}

/* The VmFlags of the mapping holding address p, from /proc/self/smaps ("" if not found). */
static void vmflags(const void *p, char *out, size_t n) {
    FILE *f = fopen("/proc/self/smaps", "r");
    out[0] = 0;
    if (!f) return;
    char line[512];
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && !strncmp(line, "VmFlags:", 8)) {
            size_t l = strlen(line + 8);
            if (l >= n) l = n - 1;
            memcpy(out, line + 8, l);
            out[l] = 0;
            break;
        }
    }
    fclose(f);
}

/* 1 when the mapping holding p is marked MADV_RANDOM ("rr" in its VmFlags), 0 when not, -1
 * when no mapping holds p. */
static int marked_random(const void *p) {
    char fl[256];
    vmflags(p, fl, sizeof fl);
    return fl[0] ? strstr(fl, " rr") != NULL : -1;
}

/* An iterator over a shuffled large store marks its mapping MADV_RANDOM ("rr") while it lives,
 * counted: two iterators, the flag goes with the last; a contiguous view never sets it. */
static void test_random_iterators_advise_random(void) {
    idt_view *v = ids_view(1 << 18), *sh = NULL;
    idt_error err;
    REQUIRE(v && CHECK_OK(idt_view_shuffle(v, 1, &sh, &err), err) == 0);
    idt_store *st;
    int64_t row;
    idt_view_locate(v, 0, &st, &row);
    const char *d = st->cols[0].data;
    CHECK_EQ(marked_random(d), 0);
    idt_batcher *a, *b, *c;
    REQUIRE(CHECK_OK(idt_batcher_new(v, 1000, 0, 1, 0, &c, &err), err) == 0);
    CHECK_EQ(marked_random(d), 0); /* contiguous */
    REQUIRE(CHECK_OK(idt_batcher_new(sh, 1000, 0, 2, 2, &a, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_batcher_new(sh, 1000, 0, 1, 0, &b, &err), err) == 0);
    CHECK_EQ(marked_random(d), 1);
    CHECK_EQ(st->blob->random_readers, 2);
    idt_batcher_free(a);
    CHECK_EQ(marked_random(d), 1);
    idt_batcher_free(b);
    CHECK_EQ(marked_random(d), 0);
    CHECK_EQ(st->blob->random_readers, 0);
    idt_batcher_free(c);
    idt_view_decref(sh);
    idt_view_decref(v);
}

/* The same for stores carved from a writer's pool: the extent's mapping (which its stores
 * share) is marked while any random-order iterator reads one of them, and each store starts
 * on a page, so a 4 KiB row is one page. */
static void test_pool_stores_advise_random(void) {
    enum { N = 1 << 18 }; /* 2 MiB a store: over IDT_ARENA_MAX, so from the pool */
    idt_column cd = {"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, 1, 8};
    idt_schema *sc;
    idt_error err;
    REQUIRE(CHECK_OK(idt_schema_new(&cd, 1, &sc, &err), err) == 0);
    idt_blob_pool *pool;
    REQUIRE(CHECK_OK(idt_blob_pool_new(&pool, &err), err) == 0);
    int64_t *id = malloc((size_t)N * 8);
    REQUIRE(id);
    for (int64_t i = 0; i < N; i++) id[i] = i;
    idt_view *parts[2];
    for (int k = 0; k < 2; k++) {
        idt_store_builder *b;
        idt_store *st;
        REQUIRE(CHECK_OK(idt_store_builder_new_in(sc, N - k * 3, NULL, pool, &b, &err), err) == 0);
        CHECK_OK(idt_store_builder_write_fixed(b, 0, 0, N - k * 3, id, &err), err);
        REQUIRE(CHECK_OK(idt_store_builder_finish(b, &st, &err), err) == 0);
        CHECK_EQ(st->blob->kind, IDT_BLOB_ARENA);
        CHECK_EQ(((uintptr_t)st->cols[0].data) % 4096, 0);
        REQUIRE(CHECK_OK(h_view_of(st, &parts[k], &err), err) == 0);
        idt_store_decref(st);
    }
    idt_view *v, *sh;
    REQUIRE(CHECK_OK(idt_view_concat(parts, 2, &v, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(v, 1, &sh, &err), err) == 0);
    idt_store *st;
    int64_t row;
    idt_view_locate(v, 0, &st, &row);
    const char *d = st->cols[0].data;
    CHECK_EQ(marked_random(d), 0);
    idt_batcher *a;
    REQUIRE(CHECK_OK(idt_batcher_new(sh, 1000, 0, 2, 2, &a, &err), err) == 0);
    CHECK_EQ(marked_random(d), 1);
    idt_batcher_free(a);
    CHECK_EQ(marked_random(d), 0);
    idt_view_decref(sh);
    idt_view_decref(v);
    for (int k = 0; k < 2; k++) idt_view_decref(parts[k]);
    idt_blob_pool_free(pool);
    idt_schema_decref(sc);
    free(id);
}

/* Mode OFF advises nothing even when cold; ALWAYS advises even when resident. */
static void test_modes(void) {
    idt_view *v = ids_view(1 << 17);
    REQUIRE(v);
    idt_rowsel sel = {0, 1, 1 << 17, NULL};
    int old = idt_prefetch_mode(IDT_PREFETCH_OFF);
    CHECK_EQ(old, IDT_PREFETCH_AUTO);
    int64_t c0 = idt_sys_calls(IDT_FAULT_ADVISE);
    CHECK_EQ(idt_view_prefetch(v, &sel, NULL), 0);
    CHECK_EQ(idt_sys_calls(IDT_FAULT_ADVISE), c0);
    CHECK_EQ(idt_prefetch_mode(IDT_PREFETCH_ALWAYS), IDT_PREFETCH_OFF);
    CHECK_EQ(idt_view_prefetch(v, &sel, NULL), 1); /* one contiguous range: one call */
    CHECK_EQ(idt_prefetch_mode(42), IDT_PREFETCH_ALWAYS); /* ignored */
    CHECK_EQ(idt_prefetch_mode(IDT_PREFETCH_AUTO), IDT_PREFETCH_ALWAYS);
    idt_view_decref(v);
}

/* Batches come out the same with every mode, over stores of fixed and string columns, a
 * shuffle and a concat, on one thread and on several; a failing madvise or mincore (every
 * call, injected) changes nothing either. */
static void test_batches_same_in_every_mode(void) {
    int64_t n = 5000;
    int64_t *id = malloc((size_t)n * 8);
    char **s = malloc((size_t)n * sizeof *s);
    for (int64_t i = 0; i < n; i++) {
        id[i] = i;
        s[i] = malloc(32);
        snprintf(s[i], 32, "r%lld%s", (long long)i, i % 3 ? "\xC3\xBC" : "");
    }
    h_col cols[2] = {{"id", IDT_COL_FIXED, "<i8", 8, 0, NULL, id, 0, NULL},
                     {"s", IDT_COL_UTF8, NULL, 0, 0, NULL, s, 0, NULL}};
    idt_view *a = NULL, *sh = NULL, *v = NULL;
    idt_error err;
    REQUIRE(CHECK_OK(h_view(cols, 2, n, &a, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_shuffle(a, 9, &sh, &err), err) == 0);
    REQUIRE(CHECK_OK(idt_view_concat((idt_view *[]){sh, a}, 2, &v, &err), err) == 0);
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
    free(id);
    int64_t len = idt_view_len(v);
    int64_t *want = malloc((size_t)len * 8);
    for (int64_t i = 0; i < len; i++) {
        idt_store *st;
        int64_t row;
        idt_view_locate(v, i, &st, &row);
        want[i] = ((const int64_t *)st->cols[idt_schema_find(st->schema, "id")].data)[row];
    }
    int modes[3] = {IDT_PREFETCH_ALWAYS, IDT_PREFETCH_OFF, IDT_PREFETCH_AUTO};
    for (int m = 0; m < 4; m++) {
        idt_prefetch_mode(modes[m % 3]);
        if (m == 3) { /* ALWAYS, every madvise and mincore failing */
            idt_prefetch_mode(IDT_PREFETCH_ALWAYS);
            idt_fault_arm(IDT_FAULT_ADVISE, 1, 0, 1);
        }
        for (int64_t threads = 1; threads <= 3; threads += 2) {
            idt_batcher *it;
            REQUIRE(CHECK_OK(idt_batcher_new(v, 333, 0, threads, threads > 1 ? 4 : 0, &it, &err), err) == 0);
            int64_t seen = 0;
            idt_batch *b;
            int rc;
            while ((rc = idt_batcher_next(it, &b, -1, &err)) == IDT_NEXT_BATCH) {
                int64_t jid = -1, js = -1;
                for (int64_t j = 0; j < b->ncols; j++) {
                    if (!strcmp(idt_view_column(v, j)->name, "id")) jid = j;
                    else js = j;
                }
                const int64_t *got = b->bufs[jid];
                const uint32_t *str = b->bufs[js];
                for (int64_t i = 0; i < b->nrows; i++) {
                    if (got[i] != want[seen + i]) {
                        h_fail(__FILE__, __LINE__, "mode %d threads %lld: row %lld is %lld, not %lld", m,
                               (long long)threads, (long long)(seen + i), (long long)got[i],
                               (long long)want[seen + i]);
                        break;
                    }
                    CHECK_EQ(str[i * b->widths[js]], 'r');
                }
                seen += b->nrows;
                idt_batch_free(b);
            }
            CHECK_EQ(rc, 0);
            CHECK_EQ(seen, len);
            idt_batcher_free(it);
        }
        if (m == 3) {
            CHECK(idt_fault_fired() > 0);
            idt_fault_reset();
        }
    }
    idt_prefetch_mode(IDT_PREFETCH_AUTO);
    free(want);
    idt_view_decref(v);
    idt_view_decref(sh);
    idt_view_decref(a);
}

int main(int argc, char **argv) {
    static const h_test tests[] = {
        H_TEST(test_large_columns_are_page_aligned),
        H_TEST(test_resident_rows_are_not_advised),
        H_TEST(test_cold_rows_are_advised_and_read),
        H_TEST(test_random_iterators_advise_random),
        H_TEST(test_pool_stores_advise_random),
        H_TEST(test_modes),
        H_TEST(test_batches_same_in_every_mode),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

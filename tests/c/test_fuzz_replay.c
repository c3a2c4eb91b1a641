/* test_fuzz_replay.c: runs the fuzz harnesses (tests/fuzz/fuzz_load.c, fuzz_store.c) over
 * every input of their seed corpora (tests/fuzz/corpus/<harness>/) and of the regression
 * corpora (tests/fuzz/regressions/<harness>/: inputs that once crashed), so that `make test`
 * keeps the loader honest without clang or libFuzzer. The harness bodies are included here
 * with LLVMFuzzerTestOneInput renamed: the replay runs exactly what the fuzzer runs, under
 * the C tests' ASan+UBSan build, and each harness aborts on a leak or a broken contract.
 * One loader check the harnesses cannot reach (descriptions name absolute paths) is tested
 * directly: a store image at a misaligned offset.
 *
 * The fuzz folder is $IDT_FUZZ_DIR, else found from this file's path (meson compiles it from
 * the build root) relative to the working directory or to the build root above the test
 * binary. */
#define LLVMFuzzerTestOneInput fuzz_load_one
#include "../fuzz/fuzz_load.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_store_one
#include "../fuzz/fuzz_store.c"
#undef LLVMFuzzerTestOneInput

#include <limits.h>

#include "harness.h"

static char fuzz_root[PATH_MAX];

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Find tests/fuzz: it holds corpus/. */
static int find_fuzz_root(void) {
    char cand[3][PATH_MAX], here[PATH_MAX];
    int n = 0;
    const char *env = getenv("IDT_FUZZ_DIR");
    if (env) snprintf(cand[n++], PATH_MAX, "%s", env);
    snprintf(here, sizeof here, "%s", __FILE__);
    char *slash = strrchr(here, '/');
    if (slash) *slash = 0;
    else snprintf(here, sizeof here, ".");
    snprintf(cand[n++], PATH_MAX, "%.4000s/../fuzz", here);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0 && here[0] != '/') { /* the binary is <build>/tests/c/test_fuzz_replay */
        exe[len] = 0;
        for (int up = 0; up < 3 && (slash = strrchr(exe, '/')); up++) *slash = 0;
        snprintf(cand[n++], PATH_MAX, "%.2000s/%.1000s/../fuzz", exe, here);
    }
    for (int i = 0; i < n; i++) {
        char c[PATH_MAX + 16];
        snprintf(c, sizeof c, "%s/corpus", cand[i]);
        if (is_dir(c) && realpath(cand[i], fuzz_root)) return 0;
    }
    return -1;
}

typedef int (*entry_fn)(const uint8_t *, size_t);

/* Whether a corpus file is a seed make_seeds.py wrote (named by 16 hex digits), not a fuzzer
 * unit merged into the corpus (named by the 40 hex digits of its SHA-1). */
static int is_seed_name(const char *name) {
    size_t n = strlen(name);
    return n == 16 && strspn(name, "0123456789abcdef") == n;
}

/* Run `fn` on every file of fuzz_root/sub/harness. Returns the count (-1: no such folder).
 * With must_open, every seed must load: they are real saved tables, so one that no longer
 * loads means the format changed and make_seeds.py must be run again. */
static int replay_dir(const char *sub, const char *harness, entry_fn fn, int must_open) {
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/%s/%s", fuzz_root, sub, harness);
    h_names names;
    if (!is_dir(dir)) return -1;
    h_names_list(dir, &names);
    int count = 0;
    for (int i = 0; i < names.n; i++) {
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, names.names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            h_fail(__FILE__, __LINE__, "cannot open %s", path);
            continue;
        }
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
            if (n == cap) {
                cap = cap ? cap * 2 : 65536;
                uint8_t *q = realloc(buf, cap);
                if (!q) break;
                buf = q;
            }
            size_t r = fread(buf + n, 1, cap - n, f);
            if (r == 0) break;
            n += r;
        }
        fclose(f);
        long opened = fz_opened;
        fn(buf, n); /* aborts, with the sanitizers' report, on a failure */
        free(buf);
        if (must_open && is_seed_name(names.names[i]) && fz_opened != opened + 1)
            h_fail(__FILE__, __LINE__, "%s does not load (run tests/fuzz/make_seeds.py)", path);
        count++;
    }
    h_names_free(&names);
    printf("    %s/%s: %d inputs\n", sub, harness, count);
    return count;
}

static void test_corpus_load(void) { CHECK(replay_dir("corpus", "load", fuzz_load_one, 1) > 0); }
static void test_corpus_store(void) { CHECK(replay_dir("corpus", "store", fuzz_store_one, 1) > 0); }

static void test_regressions(void) {
    /* the folders exist once a fuzzer found something; empty or absent is fine */
    replay_dir("regressions", "load", fuzz_load_one, 0);
    replay_dir("regressions", "store", fuzz_store_one, 0);
}

/* An input that loads must load the same after the harness rewrote it (all files of the
 * previous input removed): a seed is replayed twice in a row, then a store input in between. */
static void test_replay_is_stable(void) {
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/corpus/load", fuzz_root);
    h_names names;
    h_names_list(dir, &names);
    REQUIRE(names.n > 0);
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", dir, names.names[0]);
    h_names_free(&names);
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fuzz_load_one(buf, n);
    fuzz_load_one(buf, n);
    uint8_t junk[8] = {FZ_FIX_STORES, 'I', 'D', 'T'};
    fuzz_store_one(junk, sizeof junk);
    fuzz_load_one(buf, n);
    fuzz_load_one(junk, sizeof junk); /* a manifest of 0 bytes, no files: refused */
}

/* A view description (a pickle) naming a store image at an offset that is not a multiple
 * of 8 is refused: offsets and refs are read in place as uint64 (UBSan reported misaligned
 * loads before the loader checked). The same image 64 bytes in loads. */
static void describe_at(const idt_view *v, const char *path, uint64_t off, char **out, size_t *len) {
    idt_error err;
    *out = NULL;
    if (CHECK_OK(idt_view_describe(v, out, len, &err), err)) return;
    const idt_blob *b = v->segs[0].store->blob;
    size_t pl = strlen(b->path);
    char *at = memmem(*out, *len, b->path, pl);
    REQUIRE(at != NULL && strlen(path) == pl);
    memcpy(at, path, pl);
    memcpy(at - 32, &off, 8); /* kind u32, path length u32, offset u64, size u64, uid[16], path */
    memset(*out + 24, 0, 8);
    uint64_t h = idt_hash64(*out, *len, 0);
    memcpy(*out + 24, &h, 8);
}

static void test_description_offset_alignment(void) {
    static const char *words[] = {"a", "bb", "c\xc3\xa9"};
    const int64_t xs[] = {1, 2, 3};
    h_col cols[] = {{.name = "s", .kind = IDT_COL_UTF8, .data = words},
                    {.name = "x", .kind = IDT_COL_FIXED, .dtype = "<i8", .itemsize = 8, .data = xs}};
    idt_view *v;
    idt_error err;
    if (CHECK_OK(h_view(cols, 2, 3, &v, &err), err)) return;
    const idt_blob *b = v->segs[0].store->blob;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", b->path);
    path[strlen(path) - 1] ^= 1; /* a file of the same name length beside it */
    for (uint64_t off = 4; off <= 64; off += 60) {
        uint8_t *img = calloc(1, off + b->size);
        memcpy(img + off, b->data, b->size);
        FILE *f = fopen(path, "wb");
        REQUIRE(f != NULL);
        fwrite(img, 1, off + b->size, f);
        fclose(f);
        free(img);
        char *desc;
        size_t len;
        describe_at(v, path, off, &desc, &len);
        idt_view *u = NULL;
        if (desc && off % 8) {
            CHECK_ERR(idt_view_from_description(desc, len, &u, &err), IDT_ECORRUPT, err, "view description: file 0 offset 4 is not a multiple of 8");
        } else if (desc && !CHECK_OK(idt_view_from_description(desc, len, &u, &err), err)) {
            CHECK_EQ(idt_view_len(u), 3);
            CHECK(fz_gather(u, &(idt_rowsel){0, 1, 3, NULL}) > 0);
            idt_view_decref(u);
        }
        idt_free(desc);
        unlink(path);
    }
    idt_view_decref(v);
}

int main(int argc, char **argv) {
    if (find_fuzz_root() != 0) {
        fprintf(stderr, "cannot find tests/fuzz (set IDT_FUZZ_DIR)\n");
        return 1;
    }
    printf("fuzz inputs from %s\n", fuzz_root);
    fz_scratch(); /* makes the temp area's directory and first arena chunk: not a leak */
    static const h_test tests[] = {
        H_TEST(test_corpus_load),
        H_TEST(test_corpus_store),
        H_TEST(test_regressions),
        H_TEST(test_replay_is_stable),
        H_TEST(test_description_offset_alignment),
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

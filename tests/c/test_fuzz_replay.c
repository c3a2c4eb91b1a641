/* test_fuzz_replay.c: runs the fuzz harnesses (tests/fuzz/fuzz_load.c, fuzz_store.c) over
 * every input of their seed corpora (tests/fuzz/corpus/<harness>/) and of the regression
 * corpora (tests/fuzz/regressions/<harness>/: inputs that once crashed), so that `make test`
 * keeps the loader honest without clang or libFuzzer. The harness bodies are included here
 * with LLVMFuzzerTestOneInput renamed: the replay runs exactly what the fuzzer runs, under
 * the C tests' ASan+UBSan build, and each harness aborts on a leak or a broken contract.
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
    snprintf(cand[n++], PATH_MAX, "%s/../fuzz", here);
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

/* Run `fn` on every file of fuzz_root/sub/harness. Returns the count (-1: no such folder). */
static int replay_dir(const char *sub, const char *harness, entry_fn fn) {
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
        fn(buf, n); /* aborts, with the sanitizers' report, on a failure */
        free(buf);
        count++;
    }
    h_names_free(&names);
    printf("    %s/%s: %d inputs\n", sub, harness, count);
    return count;
}

static void test_corpus_load(void) { CHECK(replay_dir("corpus", "load", fuzz_load_one) > 0); }
static void test_corpus_store(void) { CHECK(replay_dir("corpus", "store", fuzz_store_one) > 0); }

static void test_regressions(void) {
    /* the folders exist once a fuzzer found something; empty or absent is fine */
    replay_dir("regressions", "load", fuzz_load_one);
    replay_dir("regressions", "store", fuzz_store_one);
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
    };
    return h_main(tests, (int)(sizeof tests / sizeof tests[0]), argc, argv);
}

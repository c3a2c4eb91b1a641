/* fuzz_load.c: libFuzzer harness over the loader (idt_view_load): the manifest, store
 * headers, string offsets, ref arrays and segments of a saved directory.
 *
 * An input is a saved directory packed into one byte string:
 *
 *   flags:u8  manifest_len:u32le  manifest[manifest_len]
 *   then records, to the end:  name_len:u8  name[name_len]  len:u32le  bytes[len]
 *
 * The manifest is written as v.idtview and each record as the file `name` (s-<uid>.idt,
 * r-<uid>.idt, ...; a name that is not a plain file name is skipped) in a per-process scratch
 * directory, reused across inputs (each input replaces the files of the one before); a
 * length past the end means "the rest". Flags (see fuzz_common.h) ask the harness to set the
 * manifest's length and checksum fields and the store images' row data and header checksums
 * first, so that mutations reach the checks behind them; inputs without those bits exercise
 * the checksums themselves. Content checksums (row data, ref arrays) are checked only with
 * FZ_VERIFY: without it the load skips them, as load_from_disk(verify=False) does, and must
 * be exactly as memory safe. A view that loads is read (bounded), batched, and with
 * FZ_DERIVE taken, filtered, shuffled, concatenated, sliced, selected and described. After
 * each input nothing the core counts may have leaked.
 *
 * tests/fuzz/make_seeds.py writes real saved tables in this format into tests/fuzz/corpus/load.
 * The same file is compiled into tests/c/test_fuzz_replay.c with LLVMFuzzerTestOneInput
 * renamed, so every corpus and regression input is replayed by `make test`. */
#include "fuzz_common.h"

/* As fz_write_file for a name taken from an input: returns -1 (writing nothing) unless it is
 * a plain file name not starting with '.' (names the harness keeps for itself do). */
static int fz_write(const char *name, const uint8_t *p, size_t n) {
    if (!name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) > 200) return -1;
    fz_write_file(name, p, n);
    return 0;
}

static void fz_unlink(const char *name) {
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", fz_scratch(), name);
    unlink(path);
}

/* The files of the previous input. Each input leaves its files in place (rewriting a file
 * is cheaper than removing and creating it) and removes those of the previous input it did
 * not write, so that the directory holds exactly the current input's files. */
static char fz_prev[FZ_MAX_FILES][256];
static int fz_nprev;

static void fz_keep_only(char (*names)[256], int n) {
    for (int i = 0; i < fz_nprev; i++) {
        int kept = 0;
        for (int k = 0; k < n && !kept; k++) kept = !strcmp(fz_prev[i], names[k]);
        if (!kept) fz_unlink(fz_prev[i]);
    }
    memcpy(fz_prev, names, (size_t)n * sizeof *names);
    fz_nprev = n;
}

static uint32_t fz_load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    const char *dir = fz_scratch();
    fz_snap before;
    fz_snap_take(&before);
    unsigned flags = data[0];
    const uint8_t *p = data + 5, *end = data + size;
    size_t mlen = fz_load_u32(data + 1);
    if (mlen > (size_t)(end - p)) mlen = (size_t)(end - p);
    uint8_t *buf = malloc(size);
    if (!buf) fz_die("out of memory", NULL);
    memcpy(buf, p, mlen);
    if ((flags & FZ_FIX_MANIFEST) && mlen >= 32) {
        uint64_t total = mlen, zero = 0;
        memcpy(buf + 16, &total, 8);
        memcpy(buf + 24, &zero, 8);
        uint64_t h = idt_hash64(buf, mlen, 0);
        memcpy(buf + 24, &h, 8);
    }
    fz_write("v.idtview", buf, mlen);
    p += mlen;
    char names[FZ_MAX_FILES][256];
    int nfiles = 0;
    while (nfiles < FZ_MAX_FILES && end - p >= 1) {
        size_t nl = *p++;
        if ((size_t)(end - p) < nl + 4) break;
        memcpy(names[nfiles], p, nl);
        names[nfiles][nl] = 0;
        p += nl;
        size_t len = fz_load_u32(p);
        p += 4;
        if (len > (size_t)(end - p)) len = (size_t)(end - p);
        memcpy(buf, p, len);
        p += len;
        if (flags & FZ_FIX_STORES) fz_fix_store(buf, len);
        if (strlen(names[nfiles]) != nl || !strcmp(names[nfiles], "v.idtview")) continue;
        if (fz_write(names[nfiles], buf, len) == 0) nfiles++;
    }
    fz_keep_only(names, nfiles);
    free(buf);

    idt_view *v;
    idt_error err;
    int rc = idt_view_load_ex(dir, "v", (flags & FZ_VERIFY) != 0, &v, &err);
    if (rc == 0) {
        fz_opened++;
        fz_read(v, flags, 1);
        if (flags & FZ_DERIVE) fz_derive(v, flags);
        idt_view_decref(v);
    } else {
        fz_check_err(rc, &err);
        if (rc != IDT_ECORRUPT && rc != IDT_EIO && rc != IDT_ENOMEM) fz_die("idt_view_load failed with a code it does not promise", err.msg);
    }
    fz_snap_check(&before);
    return 0;
}

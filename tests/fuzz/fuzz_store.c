/* fuzz_store.c: libFuzzer harness over one store image: idt_store_open_blob's header, column
 * descriptions, buffer bounds and string offsets, then reading every row of every column.
 *
 * An input is  flags:u8  image[...]. The image is written to a file of the per-process
 * scratch directory and mapped with idt_blob_map_file, so the blob is LOADED (deeply checked)
 * and goes through the loader's real map and unmap path. With FZ_FIX_STORES the harness sets
 * the row data and header checksums first, so mutations reach the checks behind them; with
 * FZ_VERIFY the row data checksum is checked too. A store that opens is viewed whole, read
 * (bounded, see fuzz_common.h), batched, and with FZ_DERIVE taken, filtered, shuffled and so
 * on. Nothing the core counts may leak.
 *
 * tests/fuzz/make_seeds.py writes real store files in this format into
 * tests/fuzz/corpus/store. tests/c/test_fuzz_replay.c includes this file (with
 * LLVMFuzzerTestOneInput renamed) to replay the corpus and regressions in `make test`. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    fz_scratch();
    fz_snap before;
    fz_snap_take(&before);
    unsigned flags = data[0];
    uint8_t *img = malloc(size);
    if (!img) fz_die("out of memory", NULL);
    memcpy(img, data + 1, size - 1);
    if (flags & FZ_FIX_STORES) fz_fix_store(img, size - 1);
    fz_write_file(".store.idt", img, size - 1); /* a name no manifest can use */
    free(img);

    char path[1300];
    snprintf(path, sizeof path, "%s/.store.idt", fz_scratch());
    idt_blob *b;
    idt_store *st;
    idt_error err;
    int rc = idt_blob_map_file(path, &b, &err);
    if (rc) fz_die("cannot map the scratch file", err.msg);
    rc = idt_store_open_blob(b, "fuzz store", &st, &err);
    if (rc) {
        fz_check_err(rc, &err);
        if (rc != IDT_ECORRUPT && rc != IDT_ENOMEM) fz_die("idt_store_open_blob failed with a code it does not promise", err.msg);
    } else {
        fz_opened++;
        if (flags & FZ_VERIFY) {
            rc = idt_store_verify(st, "fuzz store", &err);
            if (rc) fz_check_err(rc, &err);
        }
        int64_t nc = st->schema->ncols;
        int64_t *cols = malloc((size_t)nc * sizeof *cols);
        if (!cols) fz_die("out of memory", NULL);
        for (int64_t j = 0; j < nc; j++) cols[j] = nc - 1 - j; /* display order differs from schema order */
        idt_view *v;
        rc = idt_view_from_store(st, cols, nc, &v, &err);
        free(cols);
        idt_store_decref(st);
        if (rc) {
            fz_check_err(rc, &err);
        } else {
            fz_read(v, flags, 1);
            if (flags & FZ_DERIVE) fz_derive(v, flags);
            idt_view_decref(v);
        }
    }
    fz_snap_check(&before);
    return 0;
}

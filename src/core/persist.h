/* persist.h: saving views to a directory, loading them back, and describing a view so that
 * another process can map the same files (pickling).
 *
 * A saved directory holds one manifest per saved name (<name>.idtview) and the data files
 * the views read: s-<uid>.idt (a store image, as in the temp area) and r-<uid>.idt (a ref
 * array). Files are named by the random 128-bit identity of what they hold, so each is
 * saved once however many views use it; a file of the temp area is hard-linked when the
 * directory is on the same file system and copied otherwise. Saving is atomic per name:
 * data files are written under temporary names and renamed, and the manifest goes last; on
 * any failure everything this save created is removed. Loading validates all it maps
 * (magic, version, checksums, sizes against file lengths, offsets, every ref) before use.
 * Saved files are never deleted by reference counting: an overwrite removes the data files
 * only the replaced manifest named, and idt_saved_gc sweeps what no manifest names.
 *
 * A saved directory is untrusted input: a load accepts only regular files (a FIFO, device or
 * directory under a file's name fails at once) and only the column kinds and dtypes a table
 * can be built with (idt_dtype_allowed); a loaded file truncated by another process while
 * mapped raises SIGBUS on the next read of the lost pages, which no check can prevent.
 *
 * The format is versioned (IDT_FORMAT_VERSION) and not promised stable across versions: a
 * file of another version is refused with a message naming the version that wrote it. */
#ifndef IDT_PERSIST_H
#define IDT_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "view.h"

/* Save `v` under `name` in `dir` (created if missing). A data file already present under
 * its content name is kept only when its header, size and content checksum match (else it
 * is replaced atomically). Files written or linked get mode 0644 less the umask. When no
 * other save into `dir` is running, the save first removes temporary files dead saves left,
 * and an overwrite then removes the data files only the replaced manifest named.
 * Errors: IDT_EEXIST (name taken and !overwrite), IDT_EVALUE (bad name), IDT_EIO (the disk;
 * errno kept), IDT_ENOMEM. */
int idt_view_save(const idt_view *v, const char *dir, const char *name, int overwrite,
                  idt_error *err);

/* Load the view saved as `name` in `dir`. Errors: IDT_EIO (missing files: errno ENOENT),
 * IDT_ECORRUPT (naming the file and the problem), IDT_ENOMEM. */
int idt_view_load(const char *dir, const char *name, idt_view **out, idt_error *err);
/* As idt_view_load; with verify 0 the content checksums of row data and ref arrays are not
 * checked (a load then touches only headers and refs, not every byte). Everything that
 * memory safety depends on is validated either way. */
int idt_view_load_ex(const char *dir, const char *name, int verify, idt_view **out, idt_error *err);

/* Sweep a saved directory: remove the temporary files of saves that died (".tmp-<hex>-"
 * followed by a name the library writes) and the data files (s-<hex>.idt, r-<hex>.idt) that no
 * manifest in `dir` names. Never touches a file whose name the library does not generate.
 * With dry_run nothing is removed; what would be is reported the same way. When some
 * manifest cannot be read, no data file is removed (manifests_unreadable is set). Every save
 * holds the directory's lock (flock) shared for its duration; the sweep takes it exclusive
 * and fails at once, removing nothing, while a save is running.
 * Errors: IDT_EIO (dir cannot be opened or locked, a save is running), IDT_ENOMEM. */
typedef struct idt_saved_gc_report {
    int64_t tmp_files, data_files, bytes; /* removed (or, with dry_run, would be) */
    int manifests_unreadable;
    void (*each)(void *ctx, const char *name, int64_t bytes); /* each removal, when non-NULL */
    void *ctx;
} idt_saved_gc_report;
int idt_saved_gc(const char *dir, int dry_run, idt_saved_gc_report *rep, idt_error *err);

/* A self-contained description of `v` naming its files by absolute path and offset (the
 * caller frees *out with idt_free). Another process can map the same files with
 * idt_view_from_description while this process keeps the view alive. */
int idt_view_describe(const idt_view *v, char **out, size_t *len, idt_error *err);
int idt_view_from_description(const char *buf, size_t len, idt_view **out, idt_error *err);

#endif

/* error.h: error codes, the error struct every fallible core call fills, and the engine's
 * rules of ownership (written here once; every header follows them).
 *
 * ERRORS. A fallible function returns 0 or a negative IDT_E* code and fills its idt_error
 * (last parameter, may be NULL) with a message naming the bad value ("index 120 out of range
 * for 100 rows"); a system failure keeps its errno in err->sys_errno. The codes live in a
 * reserved range, IDT_E_FIRST down to IDT_E_LAST (-1001 ... -1009), so they collide neither
 * with errno values nor with the -1 / -2 that internal helpers return: a helper's -1 that
 * leaked out unmapped is an unknown code, caught by idt_error_known (the fault sweep fails
 * on it) instead of passing for IDT_ENOMEM. The extension maps codes to Python exceptions in
 * one function (src/python/errors.c, idt_py_raise); an unknown code becomes SystemError.
 *
 * OWNERSHIP. A function that takes ownership of an argument (a reference, a builder, a
 * blob) takes it in every case, success or failure: the caller never releases it after the
 * call. Headers say "takes `x`" for such a parameter. Everything else is borrowed for the
 * call. A function that makes an object (idt_*_new, *_open*, *_load, *_finish) hands the
 * caller one reference or sole ownership through an out-parameter, set only on success.
 *
 * RELEASE VERBS. One verb per kind of ownership, and every release accepts NULL:
 *  - idt_<noun>_decref: drop one reference to a shared, reference-counted object (schema,
 *    store, refs, view, blob); the object goes with its last reference. Paired with _incref.
 *  - idt_<noun>_free: destroy an object the caller owns alone (builder, writer, batcher,
 *    batch), with whatever it still holds. (One exception kept for now: a buffer taken
 *    from a batch goes back with idt_batch_buffer_release, which returns it to its
 *    iterator's pool rather than destroying it.)
 *  - idt_<noun>_reset: release what a caller-owned struct holds and leave it empty and safe
 *    to reset again (the struct itself is the caller's: idt_col_desc_reset).
 *  - idt_close: a descriptor from the seam (sys.h); idt_free: memory from the seam. */
#ifndef IDT_ERROR_H
#define IDT_ERROR_H

#include <stdarg.h>

enum {
    IDT_OK = 0,
    IDT_ENOMEM = -1001,     /* an allocation failed */
    IDT_EIO = -1002,        /* a system call failed; sys_errno holds errno */
    IDT_EINDEX = -1003,     /* an index out of range */
    IDT_EVALUE = -1004,     /* a bad argument value */
    IDT_ETYPE = -1005,      /* an argument of the wrong kind */
    IDT_EKEY = -1006,       /* an unknown column name */
    IDT_ECORRUPT = -1007,   /* a damaged or foreign file */
    IDT_EEXIST = -1008,     /* the target already exists */
    IDT_ECANCELLED = -1009, /* a progress callback asked to stop (e.g. Ctrl-C); nothing is left behind */
};
/* The reserved range, first and last code (a new code takes -1010 and becomes IDT_E_LAST). */
#define IDT_E_FIRST IDT_ENOMEM
#define IDT_E_LAST IDT_ECANCELLED

/* 1 when `code` is one of the IDT_E* codes above. */
static inline int idt_error_known(int code) { return code <= IDT_E_FIRST && code >= IDT_E_LAST; }

typedef struct idt_error {
    int code;        /* the IDT_E... code, 0 when no error */
    int sys_errno;   /* errno for IDT_EIO and IDT_ENOMEM from the system, else 0 */
    char msg[480];   /* NUL-terminated description */
} idt_error;

/* Set err (when non-NULL) to `code` with a printf-style message. Returns `code`. */
int idt_error_set(idt_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a failed system call: errnum ENOMEM gives IDT_ENOMEM, anything else IDT_EIO. The
 * message is the formatted text followed by ": " and strerror(errnum). Returns the code. */
int idt_error_sys(idt_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset err to "no error". */
void idt_error_clear(idt_error *err);

#endif

/* error.h: error codes and the error struct every fallible core call fills.
 *
 * Codes are negative and never collide with errno values; a system failure keeps its errno
 * in err->sys_errno. The message names the bad value ("index 120 out of range for 100 rows"). */
#ifndef IDT_ERROR_H
#define IDT_ERROR_H

#include <stdarg.h>

enum {
    IDT_OK = 0,
    IDT_ENOMEM = -1,   /* an allocation failed */
    IDT_EIO = -2,      /* a system call failed; sys_errno holds errno */
    IDT_EINDEX = -3,   /* an index out of range */
    IDT_EVALUE = -4,   /* a bad argument value */
    IDT_ETYPE = -5,    /* an argument of the wrong kind */
    IDT_EKEY = -6,     /* an unknown column name */
    IDT_ECORRUPT = -7, /* a damaged or foreign file */
    IDT_EEXIST = -8,   /* the target already exists */
    IDT_ECANCELLED = -9, /* a progress callback asked to stop (e.g. Ctrl-C); nothing is left behind */
};

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

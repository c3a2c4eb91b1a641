/* error.c: formatting of idt_error. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int idt_error_set(idt_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->sys_errno = 0;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int idt_error_sys(idt_error *err, int errnum, const char *fmt, ...) {
    int code = errnum == ENOMEM ? IDT_ENOMEM : IDT_EIO;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->sys_errno = errnum;
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg) {
            char buf[128];
            /* strerror_r (XSI or GNU) differs; strerror is enough for a message copy */
            snprintf(buf, sizeof buf, "%s", strerror(errnum));
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", buf);
        }
    }
    return code;
}

void idt_error_clear(idt_error *err) {
    if (err) {
        err->code = 0;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
}

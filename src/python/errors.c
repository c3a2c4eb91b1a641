/* errors.c: the one rule mapping core error codes (IDT_E*) to Python exceptions. Every core
 * failure the extension reports goes through idt_py_raise (or idt_py_raise_in, which adds
 * context to the message); no other file turns an idt_error into an exception. */
#include "module.h"

#include <errno.h>
#include <string.h>

/* What each code raises. `exc` points at the exception class (NULL: the module's
 * CorruptDataError); with `os_errno` the argument is (errno, message), so that Python picks
 * the OSError subclass (FileNotFoundError, PermissionError, ...): the code's own errno when
 * os_errno < 0, else err->sys_errno or, when that is 0, os_errno. */
typedef struct err_rule {
    int code;
    const char *name;
    PyObject **exc;
    int os_errno;
} err_rule;

#define RULE(code, exc, os_errno) {code, #code, exc, os_errno}
static const err_rule rules[] = {
    RULE(IDT_ENOMEM, &PyExc_MemoryError, 0),
    RULE(IDT_EIO, &PyExc_OSError, EIO),
    RULE(IDT_EINDEX, &PyExc_IndexError, 0),
    RULE(IDT_EVALUE, &PyExc_ValueError, 0),
    RULE(IDT_ETYPE, &PyExc_TypeError, 0),
    RULE(IDT_EKEY, &PyExc_KeyError, 0),
    RULE(IDT_ECORRUPT, NULL, 0),
    RULE(IDT_EEXIST, &PyExc_FileExistsError, -EEXIST),
    RULE(IDT_ECANCELLED, &PyExc_KeyboardInterrupt, 0),
};
#undef RULE
enum { NRULES = sizeof rules / sizeof rules[0] };
_Static_assert(NRULES == IDT_E_FIRST - IDT_E_LAST + 1, "every code of error.h's range needs a rule");

static const err_rule *rule_of(int code) {
    for (int i = 0; i < NRULES; i++)
        if (rules[i].code == code) return &rules[i];
    return NULL;
}

static PyObject *exc_of(idt_module_state *st, const err_rule *r) {
    if (!r) return PyExc_SystemError; /* a code the table lacks is a bug in the engine */
    return r->exc ? *r->exc : st->CorruptDataError;
}

/* Raise for `code` with message `msg` (a str). */
static PyObject *raise_msg(idt_module_state *st, int code, int sys_errno, PyObject *msg) {
    const err_rule *r = rule_of(code);
    PyObject *arg = msg;
    if (r && r->os_errno) {
        int e = r->os_errno < 0 ? -r->os_errno : sys_errno ? sys_errno : r->os_errno;
        arg = Py_BuildValue("(iO)", e, msg);
        if (!arg) return NULL;
    } else if (!r) {
        arg = PyUnicode_FromFormat("core error code %d: %U", code, msg);
        if (!arg) return NULL;
    }
    if (code == IDT_ECANCELLED) PyErr_SetNone(PyExc_KeyboardInterrupt);
    else PyErr_SetObject(exc_of(st, r), arg); /* an (errno, msg) tuple picks the OSError subclass */
    if (arg != msg) Py_DECREF(arg);
    return NULL;
}

PyObject *idt_py_raise(idt_module_state *st, const idt_error *e) {
    /* A cancelled operation: the progress callback left the reason (KeyboardInterrupt, or
     * an exception from the bar) set; keep it. */
    if (e->code == IDT_ECANCELLED && PyErr_Occurred()) return NULL;
    /* Messages may hold paths or names that are not UTF-8: decode leniently. */
    PyObject *msg = PyUnicode_DecodeUTF8(e->msg, (Py_ssize_t)strlen(e->msg), "backslashreplace");
    if (!msg) return NULL;
    raise_msg(st, e->code, e->sys_errno, msg);
    Py_DECREF(msg);
    return NULL;
}

PyObject *idt_py_raise_in(idt_module_state *st, const idt_error *e, const char *fmt, ...) {
    if (e->code == IDT_ECANCELLED && PyErr_Occurred()) return NULL;
    va_list ap;
    va_start(ap, fmt);
    PyObject *ctx = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    PyObject *m = ctx ? PyUnicode_DecodeUTF8(e->msg, (Py_ssize_t)strlen(e->msg), "backslashreplace") : NULL;
    PyObject *msg = m ? PyUnicode_Concat(ctx, m) : NULL;
    Py_XDECREF(ctx);
    Py_XDECREF(m);
    if (!msg) return NULL;
    raise_msg(st, e->code, e->sys_errno, msg);
    Py_DECREF(msg);
    return NULL;
}

PyObject *idt_py_error_rules(idt_module_state *st) {
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < NRULES; i++) {
        PyObject *v = Py_BuildValue("(iO)", rules[i].code, exc_of(st, &rules[i]));
        if (!v || PyDict_SetItemString(d, rules[i].name, v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

PyObject *idt_py_raise_code(idt_module_state *st, int code, int sys_errno, const char *msg) {
    idt_error e;
    e.code = code;
    e.sys_errno = sys_errno;
    snprintf(e.msg, sizeof e.msg, "%s", msg);
    return idt_py_raise(st, &e);
}

/* errors.c: the mapping of core error codes (IDT_E*) to Python exceptions. */
#include "module.h"

#include <errno.h>
#include <string.h>

PyObject *idt_py_raise(idt_module_state *st, const idt_error *e) {
    /* A cancelled operation: the progress callback left the reason (KeyboardInterrupt, or
     * an exception from the bar) set; keep it. */
    if (e->code == IDT_ECANCELLED) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    }
    /* Messages may hold paths or names that are not UTF-8: decode leniently. */
    PyObject *msg = PyUnicode_DecodeUTF8(e->msg, (Py_ssize_t)strlen(e->msg), "backslashreplace");
    if (!msg) return NULL;
    PyObject *type = PyExc_ValueError, *arg = msg;
    switch (e->code) {
    case IDT_ENOMEM: type = PyExc_MemoryError; break;
    case IDT_EIO:
        type = PyExc_OSError;
        arg = Py_BuildValue("(iO)", e->sys_errno ? e->sys_errno : EIO, msg);
        break;
    case IDT_EINDEX: type = PyExc_IndexError; break;
    case IDT_ETYPE: type = PyExc_TypeError; break;
    case IDT_EKEY: type = PyExc_KeyError; break;
    case IDT_ECORRUPT: type = st->CorruptDataError; break;
    case IDT_EEXIST:
        type = PyExc_FileExistsError;
        arg = Py_BuildValue("(iO)", EEXIST, msg);
        break;
    default: break;
    }
    if (arg) {
        PyErr_SetObject(type, arg); /* an (errno, msg) tuple picks the OSError subclass */
        if (arg != msg) Py_DECREF(arg);
    }
    Py_DECREF(msg);
    return NULL;
}

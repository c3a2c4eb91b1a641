/* persist.c: save_to_disk, load_from_disk and pickling (placeholder while being written). */
#include "module.h"

PyObject *idt_tv_save_to_disk(PyObject *self, PyObject *args, PyObject *kwds) {
    (void)self; (void)args; (void)kwds;
    PyErr_SetString(PyExc_NotImplementedError, "save_to_disk is not written yet");
    return NULL;
}
PyObject *idt_tv_load_from_disk(PyObject *cls, PyObject *args, PyObject *kwds) {
    (void)cls; (void)args; (void)kwds;
    PyErr_SetString(PyExc_NotImplementedError, "load_from_disk is not written yet");
    return NULL;
}
PyObject *idt_tv_reduce(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    PyErr_SetString(PyExc_TypeError, "TableView cannot be pickled yet");
    return NULL;
}

/* ragged.c: the binding's side of infinidata.Ragged (a Python class, infinidata/_ragged.py):
 * the class imported once into module state, and Raggeds made over gathered buffers. Used by
 * read.c (multi-row reads), batchiter.c (batches) and build.c (list columns in). */
#include "module.h"

int idt_py_ragged_load(idt_module_state *st) {
    if (st->Ragged) return 0;
    PyObject *mod = PyImport_ImportModule("infinidata._ragged");
    if (!mod) return -1;
    PyObject *r = PyObject_GetAttrString(mod, "Ragged");
    PyObject *a = r ? PyObject_GetAttrString(mod, "_as_list_column") : NULL;
    Py_DECREF(mod);
    if (!a) {
        Py_XDECREF(r);
        return -1;
    }
    if (st->Ragged) { /* imported meanwhile (the import may run Python code) */
        Py_DECREF(r);
        Py_DECREF(a);
        return 0;
    }
    st->Ragged = r;
    st->as_list_column = a;
    return 0;
}

PyObject *idt_py_ragged_new(idt_module_state *st, PyObject *values, PyObject *offsets) {
    PyObject *r = NULL;
    if (values && offsets && idt_py_ragged_load(st) == 0)
        r = PyObject_CallMethod(st->Ragged, "_trusted", "OO", values, offsets);
    Py_XDECREF(values);
    Py_XDECREF(offsets);
    return r;
}

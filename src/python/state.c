/* state.c: finding the module state from a type or an object (PEP 573: the module is
 * found by its def along the type's MRO, so subclasses work). module.c registers its def
 * once, before any type exists; nothing here calls back into module.c. */
#include "module.h"

static PyModuleDef *module_def; /* process-wide, as the def itself is */

void idt_py_state_set_def(PyModuleDef *def) { module_def = def; }

idt_module_state *idt_py_state_of_type(PyTypeObject *tp) {
    PyObject *m = PyType_GetModuleByDef(tp, module_def);
    return m ? PyModule_GetState(m) : NULL;
}

idt_module_state *idt_py_state_of(PyObject *self) { return idt_py_state_of_type(Py_TYPE(self)); }

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

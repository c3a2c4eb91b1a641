/* module.h: what the parts of the extension share: module state, the TableView object,
 * key parsing, reads and error mapping. */
#ifndef IDT_PY_MODULE_H
#define IDT_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL idt_ARRAY_API
#ifndef IDT_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <numpy/npy_2_compat.h>

#include "../core/error.h"
#include "../core/view.h"

typedef struct idt_module_state {
    PyObject *TableView_Type;
    PyObject *BatchIter_Type;
    PyObject *CorruptDataError;
} idt_module_state;

typedef struct TableViewObject {
    PyObject_HEAD
    idt_view *v;
    PyObject *descrs;      /* tuple: NumPy dtype per fixed column, None for strings */
    PyObject *names;       /* tuple: column names (str), the keys of every read's dict */
    PyObject *weakreflist;
} TableViewObject;

enum { KEY_INT = 1, KEY_RANGE = 2, KEY_INDEX = 3 };

typedef struct idt_key {
    int kind;
    idt_rowsel sel;        /* normalized selection */
    int64_t *owned;        /* index buffer owned by the key */
    const int64_t *idx;
    PyObject *shape_src;   /* index array whose shape leads the output, or NULL */
} idt_key;

PyObject *idt_py_raise(idt_module_state *st, const idt_error *e);
PyObject *idt_py_wrap_view(idt_module_state *st, idt_view *v);
idt_module_state *idt_py_state_of(PyObject *self);
idt_module_state *idt_py_state_of_type(PyTypeObject *tp);
idt_view **idt_py_views_of(PyObject *tvtype, PyObject *seq, Py_ssize_t *n);
int idt_parse_key(PyObject *key, int64_t len, idt_key *k, int allow_int);
void idt_key_clear(idt_key *k);
PyObject *idt_py_read(TableViewObject *self, const idt_rowsel *sel, const npy_intp *lead,
                      int nlead, int scalarize);

/* Defined in _infinidata.c, used by the type spec in module.c. */
PyObject *idt_tv_new(PyTypeObject *type, PyObject *args, PyObject *kwds);
int idt_tv_traverse(PyObject *self, visitproc visit, void *arg);
void idt_tv_dealloc(PyObject *self);
Py_ssize_t idt_tv_len(PyObject *self);
PyObject *idt_tv_getitem(PyObject *self, PyObject *key);
extern PyMethodDef idt_tv_methods[];
extern PyGetSetDef idt_tv_getset[];
PyObject *idt_tv_repr(PyObject *self);

#endif

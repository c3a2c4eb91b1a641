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

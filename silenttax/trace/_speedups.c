/* silenttax.trace._speedups: the tracer's per-span hot path in C.
 *
 * The same recorder as silenttax/trace/_spans.py's _span_class, compiled:
 * entering a span reads the monotonic clock and sets the tracer's context
 * variable; leaving it restores the variable and appends five int64 (key,
 * start, end, seq, parent seq) to the recorder's buffer, which the tracer
 * takes as bytes for NumPy when it aggregates a batch. Span objects are not
 * tracked by the garbage collector and are freed when their with block ends.
 * Everything else stays in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#if PY_VERSION_HEX >= 0x030D0000
static inline int64_t now_ns(void) {
    PyTime_t t;
    if (PyTime_PerfCounterRaw(&t) < 0) { return 0; }
    return (int64_t)t;
}
#else
static inline int64_t now_ns(void) { return (int64_t)_PyTime_GetPerfCounter(); }
#endif

typedef struct {
    PyObject_HEAD
    PyObject *tracer;   /* for tracer._fold_quietly() and tracer._new_key() */
    PyObject *var;      /* the tracer's ContextVar */
    PyObject *table;    /* {stage: {name: key}} */
    PyObject *attrs;    /* {seq: {attribute: value}} */
    PyObject *errors;   /* {seq: exception type name} */
    PyObject *root;     /* the context value outside any span */
    Py_ssize_t fold_at;  /* in values (five per span) */
    Py_ssize_t hard_at;
    long long next_seq;
    long long *data;     /* finished spans, five values each */
    Py_ssize_t len;      /* values in data */
    Py_ssize_t cap;
} Recorder;

typedef struct {
    PyObject_HEAD
    Recorder *rec;
    PyObject *parent;
    long long key;
    long long seq;
    long long start;
} Span;

static PyTypeObject SpanType;

static PyObject *str_fold_quietly, *str_new_key, *str_name;

/* ------------------------------------------------------------------ Span */

static void Span_dealloc(Span *self) {
    Py_XDECREF(self->rec);
    Py_XDECREF(self->parent);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Span_enter(Span *self, PyObject *Py_UNUSED(ignored)) {
    Recorder *rec = self->rec;
    PyObject *parent = NULL;
    if (PyContextVar_Get(rec->var, NULL, &parent) < 0) {
        return NULL;
    }
    if (parent == NULL) { /* no default and never set: a request */
        parent = Py_NewRef(rec->root);
    }
    if (parent == (PyObject *)self) { /* entered again inside itself: keep the first parent */
        Py_DECREF(parent);           /* (a span is not GC-tracked: never let it own itself) */
    }
    else {
        Py_XSETREF(self->parent, parent);
    }
    PyObject *token = PyContextVar_Set(rec->var, (PyObject *)self);
    if (token == NULL) {
        return NULL;
    }
    Py_DECREF(token);
    self->start = now_ns();
    return Py_NewRef(self);
}

static int record(Recorder *rec, long long key, long long start, long long end, long long seq,
                  long long parent_seq) {
    if (rec->len + 5 > rec->cap) {
        Py_ssize_t cap = rec->cap ? 2 * rec->cap : 5 * 1024;
        long long *data = PyMem_Realloc(rec->data, (size_t)cap * sizeof(long long));
        if (data == NULL) { return -1; }
        rec->data = data;
        rec->cap = cap;
    }
    long long *out = rec->data + rec->len;
    out[0] = key;
    out[1] = start;
    out[2] = end;
    out[3] = seq;
    out[4] = parent_seq;
    rec->len += 5;
    return 0;
}

static PyObject *Span_exit(Span *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t end = now_ns();
    Recorder *rec = self->rec;
    PyObject *parent = self->parent ? self->parent : rec->root;
    PyObject *token = PyContextVar_Set(rec->var, parent);
    if (token == NULL) {
        PyErr_Clear(); /* never raise into the traced request */
        Py_RETURN_NONE;
    }
    Py_DECREF(token);
    long long parent_seq = Py_IS_TYPE(parent, &SpanType) ? ((Span *)parent)->seq : -1;
    if (record(rec, self->key, self->start, end, self->seq, parent_seq) < 0) {
        Py_RETURN_NONE; /* out of memory: the span is lost, the request goes on */
    }
    if (nargs > 0 && args[0] != Py_None) {
        PyObject *name = PyObject_GetAttr(args[0], str_name);
        PyObject *seq = PyLong_FromLongLong(self->seq);
        if (name == NULL || seq == NULL || PyDict_SetItem(rec->errors, seq, name) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(name);
        Py_XDECREF(seq);
    }
    Py_ssize_t n = rec->len;
    if (n >= rec->fold_at && (parent == rec->root || n >= rec->hard_at)) {
        PyObject *r = PyObject_CallMethodNoArgs(rec->tracer, str_fold_quietly);
        if (r == NULL) { PyErr_Clear(); }
        Py_XDECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *Span_set_attribute(Span *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_attribute(key, value)");
        return NULL;
    }
    PyObject *current = NULL;
    if (PyContextVar_Get(self->rec->var, NULL, &current) < 0) { return NULL; }
    /* only while open in this context or an enclosing one: walk the open spans */
    PyObject *span = current;
    while (span != NULL && span != (PyObject *)self) {
        span = Py_IS_TYPE(span, &SpanType) ? ((Span *)span)->parent : NULL;
    }
    Py_XDECREF(current);
    if (span == NULL) { Py_RETURN_NONE; }
    PyObject *seq = PyLong_FromLongLong(self->seq);
    if (seq == NULL) { return NULL; }
    PyObject *own = PyDict_GetItemWithError(self->rec->attrs, seq); /* borrowed */
    if (own == NULL) {
        if (PyErr_Occurred()) { Py_DECREF(seq); return NULL; }
        own = PyDict_New();
        if (own == NULL || PyDict_SetItem(self->rec->attrs, seq, own) < 0) {
            Py_XDECREF(own); Py_DECREF(seq); return NULL;
        }
        Py_DECREF(own); /* the dict holds it */
    }
    Py_DECREF(seq);
    if (PyDict_SetItem(own, args[0], args[1]) < 0) { return NULL; }
    Py_RETURN_NONE;
}

static PyMethodDef Span_methods[] = {
    {"__enter__", (PyCFunction)Span_enter, METH_NOARGS, "Open the span."},
    {"__exit__", (PyCFunction)(void (*)(void))Span_exit, METH_FASTCALL, "Close the span."},
    {"set_attribute", (PyCFunction)(void (*)(void))Span_set_attribute, METH_FASTCALL,
     "Attach an attribute while the span is open (ignored once it ended)."},
    {NULL},
};

static PyMemberDef Span_members[] = {
    {"key", T_LONGLONG, offsetof(Span, key), READONLY, "name/stage key"},
    {"seq", T_LONGLONG, offsetof(Span, seq), READONLY, "sequence number"},
    {"start", T_LONGLONG, offsetof(Span, start), READONLY, "perf_counter_ns at enter"},
    {"parent", T_OBJECT, offsetof(Span, parent), READONLY, "enclosing span"},
    {NULL},
};

static PyTypeObject SpanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "silenttax.trace._speedups.Span",
    .tp_basicsize = sizeof(Span),
    .tp_dealloc = (destructor)Span_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A span being recorded (use it as a context manager).",
    .tp_methods = Span_methods,
    .tp_members = Span_members,
};

/* -------------------------------------------------------------- Recorder */

static int Recorder_traverse(Recorder *self, visitproc visit, void *arg) {
    Py_VISIT(self->tracer);
    Py_VISIT(self->var);
    Py_VISIT(self->table);
    Py_VISIT(self->attrs);
    Py_VISIT(self->errors);
    Py_VISIT(self->root);
    return 0;
}

static int Recorder_clear(Recorder *self) {
    Py_CLEAR(self->tracer);
    Py_CLEAR(self->var);
    Py_CLEAR(self->table);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->errors);
    Py_CLEAR(self->root);
    return 0;
}

static void Recorder_dealloc(Recorder *self) {
    PyObject_GC_UnTrack(self);
    Recorder_clear(self);
    PyMem_Free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Recorder_init(Recorder *self, PyObject *args, PyObject *kwds) {
    PyObject *tracer, *var, *table, *attrs, *errors, *root;
    Py_ssize_t fold_at, hard_at;
    if (!PyArg_ParseTuple(args, "OOO!O!O!Onn", &tracer, &var, &PyDict_Type, &table,
                          &PyDict_Type, &attrs, &PyDict_Type, &errors, &root, &fold_at,
                          &hard_at)) {
        return -1;
    }
    if (!PyContextVar_CheckExact(var)) {
        PyErr_SetString(PyExc_TypeError, "var must be a ContextVar");
        return -1;
    }
    Py_XSETREF(self->tracer, Py_NewRef(tracer));
    Py_XSETREF(self->var, Py_NewRef(var));
    Py_XSETREF(self->table, Py_NewRef(table));
    Py_XSETREF(self->attrs, Py_NewRef(attrs));
    Py_XSETREF(self->errors, Py_NewRef(errors));
    Py_XSETREF(self->root, Py_NewRef(root));
    self->fold_at = fold_at;
    self->hard_at = hard_at;
    self->next_seq = 0;
    return 0;
}

static long long lookup_key(Recorder *rec, PyObject *name, PyObject *stage) {
    /* table[stage][name], or tracer._new_key(name, stage); -1 with an error set on failure */
    PyObject *inner = PyDict_GetItemWithError(rec->table, stage);
    if (inner != NULL && PyDict_Check(inner)) {
        PyObject *key = PyDict_GetItemWithError(inner, name);
        if (key != NULL) { return PyLong_AsLongLong(key); }
    }
    PyErr_Clear(); /* missing, or unhashable: the slow path sorts it out */
    PyObject *key = PyObject_CallMethodObjArgs(rec->tracer, str_new_key, name, stage, NULL);
    if (key == NULL) { return -1; }
    long long value = PyLong_AsLongLong(key);
    Py_DECREF(key);
    return value;
}

static PyObject *Recorder_span(Recorder *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "span() takes the name as its one positional argument");
        return NULL;
    }
    PyObject *name = args[0];
    PyObject *stage = Py_None;
    PyObject *attributes = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *kw = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(kw, "stage") == 0) {
            stage = value;
            continue;
        }
        if (attributes == NULL && (attributes = PyDict_New()) == NULL) { return NULL; }
        if (PyDict_SetItem(attributes, kw, value) < 0) { Py_DECREF(attributes); return NULL; }
    }
    long long key = lookup_key(self, name, stage);
    if (key == -1 && PyErr_Occurred()) { Py_XDECREF(attributes); return NULL; }
    Span *span = PyObject_New(Span, &SpanType);
    if (span == NULL) { Py_XDECREF(attributes); return NULL; }
    span->rec = (Recorder *)Py_NewRef(self);
    span->parent = NULL;
    span->key = key;
    span->seq = self->next_seq++;
    span->start = 0;
    if (attributes != NULL) {
        PyObject *seq = PyLong_FromLongLong(span->seq);
        int rc = seq ? PyDict_SetItem(self->attrs, seq, attributes) : -1;
        Py_XDECREF(seq);
        Py_DECREF(attributes);
        if (rc < 0) { Py_DECREF(span); return NULL; }
    }
    return (PyObject *)span;
}

static PyObject *Recorder_take(Recorder *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyBytes_FromStringAndSize((const char *)self->data,
                                              self->len * (Py_ssize_t)sizeof(long long));
    if (out != NULL) { self->len = 0; }
    return out;
}

static PyObject *Recorder_clear_buffer(Recorder *self, PyObject *Py_UNUSED(ignored)) {
    self->len = 0;
    Py_RETURN_NONE;
}

static PyObject *Recorder_len(Recorder *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(self->len);
}

static PyMethodDef Recorder_methods[] = {
    {"span", (PyCFunction)(void (*)(void))Recorder_span, METH_FASTCALL | METH_KEYWORDS,
     "span(name, *, stage=None, **attributes): a new span."},
    {"take", (PyCFunction)Recorder_take, METH_NOARGS,
     "The finished spans as bytes (int64, five per span); empties the buffer."},
    {"clear", (PyCFunction)Recorder_clear_buffer, METH_NOARGS, "Drop the finished spans."},
    {"values", (PyCFunction)Recorder_len, METH_NOARGS, "Values buffered (five per span)."},
    {NULL},
};

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "silenttax.trace._speedups.Recorder",
    .tp_basicsize = sizeof(Recorder),
    .tp_dealloc = (destructor)Recorder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Recorder(tracer, var, table, attrs, errors, root, fold_at, hard_at)",
    .tp_traverse = (traverseproc)Recorder_traverse,
    .tp_clear = (inquiry)Recorder_clear,
    .tp_methods = Recorder_methods,
    .tp_init = (initproc)Recorder_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The tracer's per-span hot path in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&SpanType) < 0 || PyType_Ready(&RecorderType) < 0) { return NULL; }
    str_fold_quietly = PyUnicode_InternFromString("_fold_quietly");
    str_new_key = PyUnicode_InternFromString("_new_key");
    str_name = PyUnicode_InternFromString("__name__");
    if (!str_fold_quietly || !str_new_key || !str_name) { return NULL; }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) { return NULL; }
    if (PyModule_AddObjectRef(m, "Span", (PyObject *)&SpanType) < 0 ||
        PyModule_AddObjectRef(m, "Recorder", (PyObject *)&RecorderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

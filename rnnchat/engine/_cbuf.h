/* Checked views of Python buffers for rnnchat's C extensions (_int8.c, _dense.c, _sample.c): every
 * array they are given is untrusted, so each is asked for by format, dimensions and layout, and a
 * mismatch is a TypeError that names the argument. Static functions: each extension has its own. */
#ifndef RNNCHAT_CBUF_H
#define RNNCHAT_CBUF_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_INPUT_ROWS 4096 /* rows (streams) one call may carry */

/* a C-contiguous float32 (or other `fmt`) array of 1 or 2 dimensions, seen as k rows of n values */
static inline int get(PyObject *obj, Py_buffer *view, const char *fmt, int ndim, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    int same = strcmp(view->format, fmt) == 0 || /* int64: "l" where long is 64 bits */
               (fmt[0] == 'q' && strcmp(view->format, "l") == 0 && view->itemsize == 8);
    if ((ndim ? view->ndim != ndim : (view->ndim != 1 && view->ndim != 2)) || !same) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous array of format %s and %s dimension(s)", what, fmt,
                     ndim == 1 ? "1" : ndim == 2 ? "2" : "1 or 2");
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

/* float32 rows that may lie apart in memory (a view of some columns of a 2-D array): each row's
   values contiguous, the rows a whole number of floats apart, in order */
static inline int get_rows(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return -1;
    int ok = (view->ndim == 1 || view->ndim == 2) && strcmp(view->format, "f") == 0 &&
             view->strides[view->ndim - 1] == (Py_ssize_t)sizeof(float) &&
             (view->ndim == 1 || (view->strides[0] % (Py_ssize_t)sizeof(float) == 0 &&
                                  view->strides[0] >= view->shape[1] * (Py_ssize_t)sizeof(float)));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected float32 rows, each contiguous, in order", what);
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static inline Py_ssize_t nrows(const Py_buffer *v) { return v->ndim == 2 ? v->shape[0] : 1; }
static inline Py_ssize_t ncols(const Py_buffer *v) { return v->shape[v->ndim - 1]; }

static inline void release(Py_buffer *views, int n) {
    for (int i = 0; i < n; i++)
        if (views[i].obj)
            PyBuffer_Release(&views[i]);
}

#ifdef NPY_NO_DEPRECATED_API /* (defined by the extensions that include NumPy's ufunc header before this one) */
/* NumPy's own float32 -> float32 inner loop of a one-input ufunc (np.tanh, np.exp), so that a C
   extension computes each value exactly as the ufunc does: 1 found (*loop, *data set), 0 none,
   -1 with a TypeError set when `u` is not a one-input NumPy ufunc */
static inline int float_loop(PyObject *u, PyUFuncGenericFunction *loop, void **data) {
    if (strcmp(Py_TYPE(u)->tp_name, "numpy.ufunc") != 0)
        return PyErr_SetString(PyExc_TypeError, "expected a NumPy ufunc such as numpy.tanh"), -1;
    PyUFuncObject *uf = (PyUFuncObject *)u;
    if (uf->nin != 1 || uf->nout != 1 || !uf->types || !uf->functions)
        return PyErr_SetString(PyExc_TypeError, "expected a one-input ufunc"), -1;
    for (int i = 0; i < uf->ntypes; i++)
        if (uf->types[2 * i] == NPY_FLOAT && uf->types[2 * i + 1] == NPY_FLOAT && uf->functions[i]) {
            *loop = uf->functions[i];
            *data = uf->data ? uf->data[i] : NULL;
            return 1;
        }
    return 0;
}
#endif

#endif

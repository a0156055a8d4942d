/* A small fp32 matrix product whose sums are in one fixed order at any number of rows: Dense.
 *
 * rnnchat's batched path (rnnchat/engine/batched.py) promises that on bf16/int8 weights a stream's
 * numbers do not depend on the other streams stepped with it; BLAS's matrix-vector and
 * matrix-matrix kernels sum in different orders, so the head of those models (vocabulary x
 * hidden, fp32) is computed here. Built as an optional extension (setup.py); AVX-512F is checked
 * at run time (`available()`), and where it is missing or the module was not built the head stays
 * on BLAS (quant.Linear names the kernel).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "_cbuf.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static int cpu_ok(void) {
#if HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* A model's head (vocabulary x hidden, 133 KB for 65 characters) at any number of rows: output
   o of row r is fma(x[r][D-1], w[o][D-1], ... fma(x[r][0], w[o][0], 0)), one fused multiply-add
   after another, then + add[o]: the same bits at any row count, which BLAS does not promise
   (its matrix-vector and matrix-matrix kernels sum in different orders). The weights are stored
   transposed in blocks of 16 outputs: one vfmadd231ps adds one input value's products to 16
   outputs. */
typedef struct {
    PyObject_HEAD
    float *wt; /* [blocks][D][16] */
    Py_ssize_t n, d, blocks;
} Dense;

#if HAVE_X86
/* up to 4 rows x 4 blocks at a time: 16 independent sums (an FMA waits 4 cycles for the last) */
__attribute__((target("avx512f")))
static void dense_tile(const Dense *m, const float *x, Py_ssize_t xs, int R, Py_ssize_t b, int OB, const float *add,
                       Py_ssize_t as, float *out, Py_ssize_t os) {
    __m512 acc[4][4];
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm512_setzero_ps();
    const float *w = m->wt + b * m->d * 16;
    for (Py_ssize_t i = 0; i < m->d; i++) {
        for (int t = 0; t < 4; t++) {
            if (t >= OB)
                break;
            __m512 wv = _mm512_load_ps(w + (t * m->d + i) * 16);
            for (int r = 0; r < 4; r++)
                if (r < R)
                    acc[t][r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * xs + i]), wv, acc[t][r]);
        }
    }
    for (int t = 0; t < OB; t++) {
        Py_ssize_t o = (b + t) * 16;
        __mmask16 mk = o + 16 <= m->n ? (__mmask16)0xFFFF : (__mmask16)((1u << (m->n - o)) - 1);
        for (int r = 0; r < R; r++)
            _mm512_mask_storeu_ps(out + r * os + o, mk,
                                  _mm512_add_ps(acc[t][r], _mm512_maskz_loadu_ps(mk, add + r * as + o)));
    }
}

__attribute__((target("avx512f")))
static void dense_rows(const Dense *m, const float *x, Py_ssize_t xs, Py_ssize_t k, const float *add, Py_ssize_t as,
                       float *out, Py_ssize_t os) {
    for (Py_ssize_t r0 = 0; r0 < k; r0 += 4)
        for (Py_ssize_t b = 0; b < m->blocks; b += 4)
            dense_tile(m, x + r0 * xs, xs, k - r0 < 4 ? (int)(k - r0) : 4, b, m->blocks - b < 4 ? (int)(m->blocks - b) : 4,
                       add + r0 * as, as, out + r0 * os, os);
}
#else
static void dense_rows(const Dense *m, const float *x, Py_ssize_t xs, Py_ssize_t k, const float *add, Py_ssize_t as,
                       float *out, Py_ssize_t os) {}
#endif

static void Dense_dealloc(Dense *self) {
    free(self->wt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Dense(w float32 [N, D]) */
static int Dense_init(Dense *self, PyObject *args, PyObject *kw) {
    PyObject *wo;
    if (!PyArg_ParseTuple(args, "O", &wo))
        return -1;
    if (!cpu_ok())
        return PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX-512"), -1;
    if (self->wt)
        return PyErr_SetString(PyExc_RuntimeError, "already initialised"), -1;
    Py_buffer w = {0};
    if (get(wo, &w, "f", 2, 0, "w") < 0)
        return -1;
    Py_ssize_t n = w.shape[0], d = w.shape[1], nb = (n + 15) / 16;
    int rc = -1;
    void *p = NULL;
    if (n < 1 || d < 1 || n > 1 << 20 || d > 32768) {
        PyErr_SetString(PyExc_ValueError, "w must be [N, D] with N up to 2^20 and D up to 32768");
    } else if (posix_memalign(&p, 64, (size_t)(nb * d * 16) * sizeof(float))) {
        PyErr_NoMemory();
    } else {
        float *wt = p;
        const float *src = w.buf;
        for (Py_ssize_t b = 0; b < nb; b++)
            for (Py_ssize_t i = 0; i < d; i++)
                for (Py_ssize_t o = 0; o < 16; o++)
                    wt[(b * d + i) * 16 + o] = b * 16 + o < n ? src[(b * 16 + o) * d + i] : 0.0f;
        self->wt = wt, self->n = n, self->d = d, self->blocks = nb;
        rc = 0;
    }
    PyBuffer_Release(&w);
    return rc;
}

/* m(x, add, out): out[r] = x[r] . w^T + add (add N or [k, N]); x k rows of D values, each row
   contiguous (rows may lie apart) */
static PyObject *Dense_call(Dense *self, PyObject *args, PyObject *kw) {
    PyObject *xo, *ao, *oo;
    if (!self->wt)
        return PyErr_SetString(PyExc_RuntimeError, "not initialised"), NULL;
    if (!PyArg_ParseTuple(args, "OOO", &xo, &ao, &oo))
        return NULL;
    Py_buffer v[3] = {{0}};
    PyObject *result = NULL;
    if (get_rows(xo, &v[0], "x") < 0 || get(ao, &v[1], "f", 0, 0, "add") < 0 || get(oo, &v[2], "f", 0, 1, "out") < 0)
        goto done;
    Py_ssize_t k = nrows(&v[0]);
    if (k < 1 || k > MAX_INPUT_ROWS || ncols(&v[0]) != self->d || ncols(&v[1]) != self->n || ncols(&v[2]) != self->n ||
        nrows(&v[2]) != k || v[2].ndim != v[0].ndim || (v[1].ndim == 2 && nrows(&v[1]) != k)) {
        PyErr_SetString(PyExc_ValueError, "x must be k rows of D values (k <= 4096), add N or k x N, out k x N");
        goto done;
    }
    Py_ssize_t xs = v[0].ndim == 2 ? v[0].strides[0] / (Py_ssize_t)sizeof(float) : 0;
    Py_BEGIN_ALLOW_THREADS
    dense_rows(self, v[0].buf, xs, k, v[1].buf, v[1].ndim == 2 ? self->n : 0, v[2].buf, self->n);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(oo);
done:
    release(v, 3);
    return result;
}

static PyTypeObject DenseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rnnchat.engine._dense.Dense",
    .tp_doc = "Dense(w float32 [N, D]): call (x, add, out), sums in a fixed order at any row count",
    .tp_basicsize = sizeof(Dense),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Dense_init,
    .tp_dealloc = (destructor)Dense_dealloc,
    .tp_call = (ternaryfunc)Dense_call,
};

static PyObject *available(PyObject *self, PyObject *unused) { return PyBool_FromLong(cpu_ok()); }

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "Whether this CPU runs Dense (AVX-512F)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dense", "fp32 products summed in a fixed order", -1,
                                    methods};

PyMODINIT_FUNC PyInit__dense(void) {
    if (PyType_Ready(&DenseType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Dense", (PyObject *)&DenseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

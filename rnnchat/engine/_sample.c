/* Plain temperature sampling of several rows of logits in one call.
 *
 * rnnchat/engine/batch_sampling.py samples the rows whose sampler has no filter or penalty in
 * effect with a handful of NumPy calls over the [K, V] logits; at a character vocabulary those
 * calls cost more than their arithmetic. This module does the same arithmetic per row in one
 * call, element for element in float32 as the single sampler (rnnchat/engine/sampling.py) does
 * it: a banned id's logit set to -1e30, d = (x - max x) x (1 / temperature) (one rounding each;
 * the build turns off FMA contraction), exp by NumPy's own float32 loop (taken from np.exp by
 * set_exp), the cumulative sum in order, the target u x total in float32, and the choice the
 * number of cumulative values <= the target (at most V - 1); temperature 0: the first largest
 * logit. So a row's choice equals its sampler's (tests/speed/test_batch_sampling.py).
 *
 * Plain C, no vector extensions: built everywhere a C compiler is (setup.py, optional).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h> /* types only: no NumPy C-API call is made, so no import_array */
#include <numpy/ufuncobject.h>
#include <math.h>
#include <string.h>

#include "_cbuf.h"

#define BANNED (-1e30f)
#define MAX_VOCAB (1 << 24)

static PyUFuncGenericFunction exp_loop = NULL;
static void *exp_data = NULL;

/* set_exp(numpy.exp): the float32 loop used for exp; True if the ufunc has one */
static PyObject *set_exp(PyObject *self, PyObject *u) {
    int found = float_loop(u, &exp_loop, &exp_data);
    return found < 0 ? NULL : PyBool_FromLong(found);
}

/* one row: returns the chosen id, or -1 when a logit is not finite */
static Py_ssize_t row(const float *x, Py_ssize_t v, double temperature, double u, long long banned, float *d) {
    for (Py_ssize_t i = 0; i < v; i++)
        if (!isfinite(x[i]))
            return -1;
    memcpy(d, x, (size_t)v * sizeof(float));
    if (banned >= 0 && banned < v)
        d[banned] = BANNED;
    Py_ssize_t best = 0;
    for (Py_ssize_t i = 1; i < v; i++)
        if (d[i] > d[best])
            best = i;
    if (temperature == 0.0)
        return best;
    const float top = d[best], inv = 1.0f / (float)temperature;
    for (Py_ssize_t i = 0; i < v; i++) {
        volatile float diff = d[i] - top; /* rounded before the multiply, as NumPy's two calls */
        d[i] = diff * inv;
    }
    char *ptrs[2] = {(char *)d, (char *)d};
    npy_intp n = v, steps[2] = {sizeof(float), sizeof(float)};
    exp_loop(ptrs, &n, steps, exp_data);
    float total = 0.0f;
    for (Py_ssize_t i = 0; i < v; i++) {
        total += d[i];
        d[i] = total;
    }
    const float target = (float)u * total;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < v; i++)
        count += d[i] <= target;
    return count < v ? count : v - 1;
}

/* rows(logits float32 [K, V], temperatures float64 [K], us float64 [K], banned int64 [K] (-1: none),
   ids int64 [K] written): -1, or the first row whose logits are not all finite (ids then partly
   written) */
static PyObject *rows(PyObject *self, PyObject *args) {
    PyObject *o[5];
    if (!exp_loop)
        return PyErr_SetString(PyExc_RuntimeError, "set_exp(numpy.exp) first"), NULL;
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &o[4]))
        return NULL;
    static const char *fmts[5] = {"f", "d", "d", "q", "q"}, *names[5] = {"logits", "temperatures", "us", "banned", "ids"};
    Py_buffer b[5] = {{0}};
    PyObject *result = NULL;
    for (int i = 0; i < 5; i++)
        if (get(o[i], &b[i], fmts[i], i == 0 ? 2 : 1, i == 4, names[i]) < 0)
            goto done;
    Py_ssize_t k = b[0].shape[0], v = b[0].shape[1];
    if (k < 1 || v < 1 || v > MAX_VOCAB || b[1].shape[0] != k || b[2].shape[0] != k || b[3].shape[0] != k ||
        b[4].shape[0] != k) {
        PyErr_SetString(PyExc_ValueError, "logits must be [K, V] (V <= 2^24), the others [K]");
        goto done;
    }
    const double *t = b[1].buf, *u = b[2].buf;
    for (Py_ssize_t r = 0; r < k; r++)
        if (!(t[r] >= 0.0 && t[r] <= 1e6) || !(u[r] >= 0.0 && u[r] < 1.0)) {
            PyErr_SetString(PyExc_ValueError, "temperatures must be in [0, 1e6] and us in [0, 1)");
            goto done;
        }
    float *d = PyMem_RawMalloc((size_t)v * sizeof(float));
    if (!d) {
        result = PyErr_NoMemory();
        goto done;
    }
    const float *x = b[0].buf;
    const long long *banned = b[3].buf;
    long long *ids = b[4].buf;
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < k; r++) {
        Py_ssize_t c = row(x + r * v, v, t[r], u[r], banned[r], d);
        if (c < 0) {
            bad = r;
            break;
        }
        ids[r] = c;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(d);
    result = PyLong_FromSsize_t(bad);
done:
    for (int i = 0; i < 5; i++)
        if (b[i].obj)
            PyBuffer_Release(&b[i]);
    return result;
}

/* one(x float32 [V], temperature, u, banned) -> (id, probability at temperature 1): a single
   sampler's plain draw (rnnchat/engine/sampling.py); id -1 when a logit is not finite. The
   probability is raw[id] / sum(raw), raw = exp(x - max x) with the banned id's logit at -1e30, the
   sum taken in double (NumPy's pairwise float32 sum may differ in its last bit: the probability is
   reported, never used to choose). */
static PyObject *one(PyObject *self, PyObject *args) {
    PyObject *xo;
    double t, u;
    long long banned;
    if (!exp_loop)
        return PyErr_SetString(PyExc_RuntimeError, "set_exp(numpy.exp) first"), NULL;
    if (!PyArg_ParseTuple(args, "OddL", &xo, &t, &u, &banned))
        return NULL;
    if (!(t >= 0.0 && t <= 1e6) || !(u >= 0.0 && u < 1.0))
        return PyErr_SetString(PyExc_ValueError, "the temperature must be in [0, 1e6] and u in [0, 1)"), NULL;
    Py_buffer b = {0};
    if (get(xo, &b, "f", 1, 0, "logits") < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t v = b.shape[0];
    float *d = v >= 1 && v <= MAX_VOCAB ? PyMem_RawMalloc((size_t)v * sizeof(float)) : NULL;
    if (v < 1 || v > MAX_VOCAB) {
        PyErr_SetString(PyExc_ValueError, "logits must hold 1 to 2^24 values");
    } else if (!d) {
        PyErr_NoMemory();
    } else {
        const float *x = b.buf;
        Py_ssize_t c = row(x, v, t, u, banned, d);
        double prob = 0.0;
        if (c >= 0) { /* the model's probability of c at temperature 1 */
            memcpy(d, x, (size_t)v * sizeof(float));
            if (banned >= 0 && banned < v)
                d[banned] = BANNED;
            float top = d[0];
            for (Py_ssize_t i = 1; i < v; i++)
                top = d[i] > top ? d[i] : top;
            for (Py_ssize_t i = 0; i < v; i++)
                d[i] = d[i] - top;
            char *ptrs[2] = {(char *)d, (char *)d};
            npy_intp n = v, steps[2] = {sizeof(float), sizeof(float)};
            exp_loop(ptrs, &n, steps, exp_data);
            double total = 0.0;
            for (Py_ssize_t i = 0; i < v; i++)
                total += d[i];
            prob = (double)d[c] / total;
        }
        result = Py_BuildValue("(nd)", c, prob);
    }
    PyMem_RawFree(d);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef methods[] = {
    {"one", one, METH_VARARGS, "one(x, temperature, u, banned): (id, probability at temperature 1), id -1: bad logits"},
    {"set_exp", set_exp, METH_O, "set_exp(numpy.exp): the float32 loop rows() uses; True if found"},
    {"rows", rows, METH_VARARGS, "rows(logits, temperatures, us, banned, ids): one plain draw per row"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sample", "plain temperature sampling of several rows", -1,
                                    methods};

PyMODINIT_FUNC PyInit__sample(void) { return PyModule_Create(&module); }

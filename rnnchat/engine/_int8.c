/* One int8 matrix-vector product per call, the whole product on the CPU's VNNI dot products.
 *
 * rnnchat's int8 weights (rnnchat/engine/quant.py) are computed at several rows by fbgemm's
 * quantised linear op. At one row (a single stream) that op costs more in its fixed work than in
 * its arithmetic, and it runs on one core. This module computes the very same numbers for one
 * row: the input quantised exactly as fbgemm quantises it (fma(x, 1/scale, 128), rounded to
 * nearest even, clamped to [0, 255]), the products summed exactly in int32 (vpdpbusd), the sum
 * less 128 x the row's weight sum, converted to float and multiplied by the row's combined scale,
 * and the addend added: bit for bit fbgemm's result plus NumPy's add (tests/speed/test_int8_kernel.py).
 *
 * The rows are shared between the calling thread and up to MAX_THREADS - 1 worker threads that
 * this module starts itself (pthreads, no OpenMP runtime next to torch's), in pieces that each
 * thread claims as it goes. A worker spins for a short while after each product (the next
 * character's product follows within microseconds) and then sleeps on a condition variable. Each output row is computed by one thread alone from
 * the same integers, so the thread count never changes a result. The GIL is released while the
 * product runs.
 *
 * Built as an optional extension (setup.py): where it does not compile or the CPU lacks
 * AVX-512 VNNI, `available()` is False or the module is missing, and rnnchat uses fbgemm's op
 * (`rnnchat generate --stats` names the kernel).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h> /* types only: no NumPy C-API call is made, so no import_array */
#include <numpy/ufuncobject.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define MAX_THREADS 8
#define SPIN_ROUNDS 200000 /* pause instructions a worker spins before it sleeps (~1-5 ms) */

typedef struct {
    PyObject_HEAD
    Py_buffer w, wsum, mult; /* int8 [N, C], int32 [N], float32 [N] */
    Py_ssize_t rows, cols;   /* C: a multiple of 64 */
    uint8_t *xu;             /* the quantised input, C bytes */
    float inv;               /* 1 / the input scale, as fbgemm computes it (in float) */
} Matrix;

/* ---- the kernel -------------------------------------------------------------------------- */
#if HAVE_X86
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void quantise(const float *x, Py_ssize_t n, Py_ssize_t padded, float inv, uint8_t *xu) {
    const __m512 vinv = _mm512_set1_ps(inv), zp = _mm512_set1_ps(128.0f);
    const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
    Py_ssize_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 t = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), vinv, zp);
        t = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
        _mm_storeu_si128((__m128i *)(xu + j), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t)));
    }
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + j), vinv, zp);
        t = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
        uint8_t tail[16];
        _mm_storeu_si128((__m128i *)tail, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t)));
        memcpy(xu + j, tail, (size_t)(n - j));
        j = n;
    }
    if (padded > n)
        memset(xu + n, 128, (size_t)(padded - n)); /* the padding weights are zero: any value does */
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void rows(const Matrix *m, const float *add, float *out, Py_ssize_t r0, Py_ssize_t r1) {
    const int8_t *w = (const int8_t *)m->w.buf;
    const int32_t *wsum = (const int32_t *)m->wsum.buf;
    const float *mult = (const float *)m->mult.buf;
    const uint8_t *xu = m->xu;
    const Py_ssize_t cols = m->cols;
    Py_ssize_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        const int8_t *p = w + r * cols;
        for (Py_ssize_t c = 0; c < cols; c += 64) {
            __m512i xv = _mm512_loadu_si512(xu + c);
            a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_loadu_si512(p + c));
            a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_loadu_si512(p + cols + c));
            a2 = _mm512_dpbusd_epi32(a2, xv, _mm512_loadu_si512(p + 2 * cols + c));
            a3 = _mm512_dpbusd_epi32(a3, xv, _mm512_loadu_si512(p + 3 * cols + c));
        }
        int32_t s[4] = {_mm512_reduce_add_epi32(a0), _mm512_reduce_add_epi32(a1),
                        _mm512_reduce_add_epi32(a2), _mm512_reduce_add_epi32(a3)};
        for (int k = 0; k < 4; k++) {
            volatile float y = (float)(s[k] - 128 * wsum[r + k]) * mult[r + k]; /* rounded, then added */
            out[r + k] = y + add[r + k];
        }
    }
    for (; r < r1; r++) {
        __m512i a0 = _mm512_setzero_si512();
        const int8_t *p = w + r * cols;
        for (Py_ssize_t c = 0; c < cols; c += 64)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xu + c), _mm512_loadu_si512(p + c));
        volatile float y = (float)(_mm512_reduce_add_epi32(a0) - 128 * wsum[r]) * mult[r];
        out[r] = y + add[r];
    }
}

static int cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
#else
static int cpu_ok(void) { return 0; }
static void quantise(const float *x, Py_ssize_t n, Py_ssize_t padded, float inv, uint8_t *xu) {}
static void rows(const Matrix *m, const float *add, float *out, Py_ssize_t r0, Py_ssize_t r1) {}
#endif

/* ---- the worker threads ------------------------------------------------------------------ */
/* A product is cut into CHUNKS pieces of rows. The caller and the workers claim pieces one at a
 * time from one 64-bit word (the job's number in the high half, the next piece in the low half)
 * with a compare-and-swap, so a worker that the scheduler has not run yet (another process on
 * the other core) never holds the caller up: the caller takes the pieces no one claimed. A
 * claim only succeeds while its job is unfinished, so the job's fields it read cannot change
 * under it. */
#define CHUNKS 8

static struct {
    pthread_mutex_t busy; /* held by the one caller that uses the workers */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int started; /* workers running */
    pid_t pid;   /* the process that started them (a fork child starts its own) */
    int sleeping;
    /* the job: written by the caller before it publishes `state` */
    const Matrix *m;
    const float *add;
    float *out;
    int allowed; /* workers 1 .. allowed-1 take part */
    uint64_t state;    /* (job << 32) | next piece */
    uint32_t finished; /* pieces computed */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void piece(const Matrix *m, const float *add, float *out, uint32_t i) {
    Py_ssize_t r0 = m->rows * i / CHUNKS / 4 * 4, r1 = i + 1 == CHUNKS ? m->rows : m->rows * (i + 1) / CHUNKS / 4 * 4;
    if (r1 > r0)
        rows(m, add, out, r0, r1);
}

/* claim and compute pieces of the current job until none is left; `who` 0 is the caller */
static void take_pieces(int who) {
    for (;;) {
        uint64_t s = __atomic_load_n(&pool.state, __ATOMIC_ACQUIRE);
        uint32_t i = (uint32_t)s;
        if (i >= CHUNKS)
            return;
        const Matrix *m = pool.m;
        const float *add = pool.add;
        float *out = pool.out;
        if (who >= pool.allowed)
            return;
        if (!__atomic_compare_exchange_n(&pool.state, &s, s + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        piece(m, add, out, i);
        __atomic_fetch_add(&pool.finished, 1, __ATOMIC_RELEASE);
    }
}

static int no_work(void) { return (uint32_t)__atomic_load_n(&pool.state, __ATOMIC_ACQUIRE) >= CHUNKS; }

static void *worker(void *arg) {
    int who = (int)(intptr_t)arg;
    for (;;) {
        int spins = 0;
        while (no_work()) {
            if (++spins < SPIN_ROUNDS) {
#if HAVE_X86
                _mm_pause();
#endif
                continue;
            }
            pthread_mutex_lock(&pool.lock);
            pool.sleeping++;
            while (no_work())
                pthread_cond_wait(&pool.wake, &pool.lock);
            pool.sleeping--;
            pthread_mutex_unlock(&pool.lock);
        }
        take_pieces(who);
        if (who >= pool.allowed) /* work this worker may not take: wait for the next job */
            while (!no_work() && who >= pool.allowed) {
#if HAVE_X86
                _mm_pause();
#endif
            }
    }
    return NULL;
}

static void after_fork(void) {
    if (pool.pid != getpid()) { /* first use, or a forked child: its parent's workers are not here */
        pool.started = 0;
        pool.sleeping = 0;
        pool.pid = getpid();
        pool.state = CHUNKS; /* job 0, nothing left to claim */
        pthread_mutex_init(&pool.busy, NULL);
        pthread_mutex_init(&pool.lock, NULL);
        pthread_cond_init(&pool.wake, NULL);
    }
}

/* called with pool.busy held */
static int ensure_workers(int n) {
    while (pool.started < n) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0)
            return -1;
        pool.started++;
    }
    return 0;
}

/* one product over up to `threads` threads (the caller takes part) */
static int product(const Matrix *m, const float *x, Py_ssize_t n, const float *add, float *out, int threads) {
    quantise(x, n, m->cols, m->inv, m->xu);
    if (threads == 1 || m->rows < 64) {
        rows(m, add, out, 0, m->rows);
        return 0;
    }
    after_fork();
    /* another thread (another model's engine) has the workers, or none can be started: the
       caller computes every row alone, which gives the same result */
    if (pthread_mutex_trylock(&pool.busy) != 0) {
        rows(m, add, out, 0, m->rows);
        return 0;
    }
    if (ensure_workers(threads - 1) != 0) {
        pthread_mutex_unlock(&pool.busy);
        rows(m, add, out, 0, m->rows);
        return 0;
    }
    pool.m = m;
    pool.add = add;
    pool.out = out;
    pool.allowed = threads;
    __atomic_store_n(&pool.finished, 0, __ATOMIC_RELAXED);
    uint64_t job = (__atomic_load_n(&pool.state, __ATOMIC_RELAXED) >> 32) + 1;
    __atomic_store_n(&pool.state, job << 32, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool.lock);
    if (pool.sleeping)
        pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    take_pieces(0);
    while (__atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) != CHUNKS) {
#if HAVE_X86
        _mm_pause();
#endif
    }
    pthread_mutex_unlock(&pool.busy);
    return 0;
}

/* ---- Python ------------------------------------------------------------------------------ */
static int get(PyObject *obj, Py_buffer *view, const char *fmt, int ndim, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->ndim != ndim || strcmp(view->format, fmt) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %d-D C-contiguous array of format %s", what, ndim, fmt);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void Matrix_dealloc(Matrix *self) {
    if (self->w.obj) PyBuffer_Release(&self->w);
    if (self->wsum.obj) PyBuffer_Release(&self->wsum);
    if (self->mult.obj) PyBuffer_Release(&self->mult);
    PyMem_Free(self->xu);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Matrix_init(Matrix *self, PyObject *args, PyObject *kw) {
    PyObject *w, *wsum, *mult;
    float scale;
    if (!PyArg_ParseTuple(args, "OOOf", &w, &wsum, &mult, &scale))
        return -1;
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX-512 VNNI");
        return -1;
    }
    if (self->w.obj) /* __init__ called again */
        return PyErr_SetString(PyExc_RuntimeError, "already initialised"), -1;
    if (get(w, &self->w, "b", 2, 0, "w") < 0)
        return -1;
    if (get(wsum, &self->wsum, "i", 1, 0, "wsum") < 0 || get(mult, &self->mult, "f", 1, 0, "mult") < 0)
        return -1;
    self->rows = self->w.shape[0];
    self->cols = self->w.shape[1];
    if (self->cols % 64 != 0 || self->cols <= 0 || self->cols > 32768 || self->rows <= 0 || self->wsum.shape[0] != self->rows ||
        self->mult.shape[0] != self->rows) {
        PyErr_SetString(PyExc_ValueError, "w must be [N, C] with C a multiple of 64 up to 32768; wsum and mult [N]");
        return -1;
    }
    if (!(scale > 0.0f)) {
        PyErr_SetString(PyExc_ValueError, "the input scale must be positive");
        return -1;
    }
    self->inv = 1.0f / scale;
    self->xu = PyMem_Malloc((size_t)self->cols);
    if (!self->xu) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* m(x, add, out, threads): out[N] = the product of x (float32, at most C values) plus add[N] */
static PyObject *Matrix_call(Matrix *self, PyObject *args, PyObject *kw) {
    PyObject *xo, *ao, *oo;
    int threads;
    if (!self->xu)
        return PyErr_SetString(PyExc_RuntimeError, "not initialised"), NULL;
    if (!PyArg_ParseTuple(args, "OOOi", &xo, &ao, &oo, &threads))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "threads must be in [1, %d]", MAX_THREADS), NULL;
    Py_buffer x, a, o;
    if (get(xo, &x, "f", 1, 0, "x") < 0)
        return NULL;
    if (get(ao, &a, "f", 1, 0, "add") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    if (get(oo, &o, "f", 1, 1, "out") < 0) {
        PyBuffer_Release(&x);
        PyBuffer_Release(&a);
        return NULL;
    }
    PyObject *result = NULL;
    if (x.shape[0] > self->cols || a.shape[0] != self->rows || o.shape[0] != self->rows) {
        PyErr_SetString(PyExc_ValueError, "x must have at most C values; add and out N");
    } else {
        Py_BEGIN_ALLOW_THREADS
        product(self, (const float *)x.buf, x.shape[0], (const float *)a.buf, (float *)o.buf, threads);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(oo);
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&a);
    PyBuffer_Release(&o);
    return result;
}

/* ---- one LSTM layer at one row: the product, then the cell's element-wise work ------------- */
/* NumPy's own float32 tanh loop (taken from np.tanh by set_tanh), so that every value is the one
   NumPy's ufunc computes in the several-row path; the rest is IEEE multiplies and adds in
   NumPy's order, each rounded (no FMA contraction). */
static PyUFuncGenericFunction tanh_loop = NULL;
static void *tanh_data = NULL;

static void tanh_f32(float *x, float *y, npy_intp n) {
    char *ptrs[2] = {(char *)x, (char *)y};
    npy_intp steps[2] = {sizeof(float), sizeof(float)};
    tanh_loop(ptrs, &n, steps, tanh_data);
}

static PyObject *set_tanh(PyObject *self, PyObject *u) {
    if (strcmp(Py_TYPE(u)->tp_name, "numpy.ufunc") != 0)
        return PyErr_SetString(PyExc_TypeError, "expected numpy.tanh"), NULL;
    PyUFuncObject *uf = (PyUFuncObject *)u;
    if (uf->nin != 1 || uf->nout != 1 || !uf->types || !uf->functions)
        return PyErr_SetString(PyExc_TypeError, "expected a one-input ufunc"), NULL;
    for (int i = 0; i < uf->ntypes; i++)
        if (uf->types[2 * i] == NPY_FLOAT && uf->types[2 * i + 1] == NPY_FLOAT && uf->functions[i]) {
            tanh_loop = uf->functions[i];
            tanh_data = uf->data ? uf->data[i] : NULL;
            Py_RETURN_TRUE;
        }
    Py_RETURN_FALSE;
}

/* m.lstm(below, v, add, g, c, tmp, threads): below (the lower layer's h, or None for the first
   layer) is copied to v[:I]; g = product(v) + add; then the cell with gates (i, f, o, g) whose
   sigmoid rows were halved: h = v[I:I+H] */
static PyObject *Matrix_lstm(Matrix *self, PyObject *args) {
    PyObject *bo, *vo, *ao, *go, *co, *to;
    int threads;
    if (!self->xu)
        return PyErr_SetString(PyExc_RuntimeError, "not initialised"), NULL;
    if (!tanh_loop)
        return PyErr_SetString(PyExc_RuntimeError, "set_tanh(numpy.tanh) first"), NULL;
    if (!PyArg_ParseTuple(args, "OOOOOOi", &bo, &vo, &ao, &go, &co, &to, &threads))
        return NULL;
    if (threads < 1 || threads > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "threads must be in [1, %d]", MAX_THREADS), NULL;
    Py_buffer b = {0}, v = {0}, a = {0}, g = {0}, c = {0}, t = {0};
    PyObject *result = NULL;
    if ((bo != Py_None && get(bo, &b, "f", 1, 0, "below") < 0) || get(vo, &v, "f", 1, 1, "v") < 0 ||
        get(ao, &a, "f", 1, 0, "add") < 0 || get(go, &g, "f", 1, 1, "g") < 0 || get(co, &c, "f", 1, 1, "c") < 0 ||
        get(to, &t, "f", 1, 1, "tmp") < 0)
        goto done;
    Py_ssize_t H = self->rows / 4, below = b.obj ? b.shape[0] : 0;
    if (self->rows % 4 != 0 || v.shape[0] > self->cols || below + H > v.shape[0] || a.shape[0] != self->rows ||
        g.shape[0] != self->rows || c.shape[0] != H || t.shape[0] != H) {
        PyErr_SetString(PyExc_ValueError, "lstm: v must hold [below | h] (at most C values), add and g 4H, c and tmp H");
        goto done;
    }
    float *vp = v.buf, *gp = g.buf, *cp = c.buf, *tp = t.buf;
    Py_BEGIN_ALLOW_THREADS
    if (below)
        memcpy(vp, b.buf, (size_t)below * sizeof(float));
    product(self, vp, v.shape[0], a.buf, gp, threads);
    tanh_f32(gp, gp, 4 * H);
    for (Py_ssize_t j = 0; j < 3 * H; j++) {
        volatile float half = gp[j] * 0.5f;
        gp[j] = half + 0.5f;
    }
    const float *ig = gp, *fg = gp + H, *og = gp + 2 * H, *gg = gp + 3 * H;
    for (Py_ssize_t j = 0; j < H; j++) {
        volatile float cf = cp[j] * fg[j], ij = ig[j] * gg[j];
        cp[j] = cf + ij;
    }
    tanh_f32(cp, tp, H);
    float *h = vp + below;
    for (Py_ssize_t j = 0; j < H; j++)
        h[j] = og[j] * tp[j];
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    if (b.obj) PyBuffer_Release(&b);
    if (v.obj) PyBuffer_Release(&v);
    if (a.obj) PyBuffer_Release(&a);
    if (g.obj) PyBuffer_Release(&g);
    if (c.obj) PyBuffer_Release(&c);
    if (t.obj) PyBuffer_Release(&t);
    return result;
}

static PyMethodDef matrix_methods[] = {
    {"lstm", (PyCFunction)Matrix_lstm, METH_VARARGS, "lstm(below, v, add, g, c, tmp, threads): one LSTM layer at one row"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MatrixType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rnnchat.engine._int8.Matrix",
    .tp_doc = "Matrix(w int8 [N, C], wsum int32 [N], mult float32 [N], input_scale): call (x, add, out, threads)",
    .tp_basicsize = sizeof(Matrix),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Matrix_init,
    .tp_dealloc = (destructor)Matrix_dealloc,
    .tp_call = (ternaryfunc)Matrix_call,
    .tp_methods = matrix_methods,
};

static PyObject *available(PyObject *self, PyObject *unused) { return PyBool_FromLong(cpu_ok()); }

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "Whether this CPU runs the kernel (AVX-512 F, BW and VNNI)."},
    {"set_tanh", set_tanh, METH_O, "set_tanh(numpy.tanh): the float32 loop Matrix.lstm uses; True if found"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_int8", "int8 matrix-vector products on VNNI", -1, methods};

PyMODINIT_FUNC PyInit__int8(void) {
    if (PyType_Ready(&MatrixType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Matrix", (PyObject *)&MatrixType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* rnnchat's int8 matrix products on the CPU's VNNI dot products, and the LSTM cell after them.
 *
 * rnnchat's int8 weights (rnnchat/engine/quant.py) can be computed by fbgemm's quantised linear
 * op. At one row (a single stream) that op costs more in its fixed work than in its arithmetic,
 * and it runs on one core; at several rows (streams) it reads each weight once for all of them,
 * which this module's packed copy of the weights does 2-3x faster. This module computes the very
 * same numbers at any number of rows: the input quantised exactly as fbgemm quantises it
 * (fma(x, 1/scale, 128), rounded to nearest even, clamped to [0, 255]), the products summed
 * exactly in int32 (vpdpbusd), the sum less 128 x the row's weight sum, converted to float and
 * multiplied by the row's combined scale, and the addend added: bit for bit fbgemm's result plus
 * NumPy's add (tests/speed/test_int8_kernel.py). One input row reads the row-major weights (each
 * output a horizontal sum); several read the packed copy, blocks of 16 outputs x 4 bytes, so that
 * one vpdpbusd adds 4 products to 16 outputs of one input row, for up to 8 rows per read.
 *
 * The work is shared between the calling thread and up to MAX_THREADS - 1 worker threads that
 * this module starts itself (pthreads, no OpenMP runtime next to torch's), in pieces that each
 * thread claims as it goes. A worker spins for a short while after each product (the next
 * character's product follows within microseconds) and then sleeps on a condition variable. Each
 * output is computed by one thread alone from the same integers, so the thread count never
 * changes a result. The GIL is released while the product runs.
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
#include <stdlib.h>
#include <string.h>

#include "_cbuf.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define MAX_THREADS 8
/* pause instructions a worker spins before it sleeps: ~130 us on Zen 4 (26 ns each), longer than a
   step's gaps between products; the 5 ms spun before kept a core busy for nothing while a server's
   event loop or the chat's screen wanted it (single-stream speed unchanged: medians of 5 interleaved,
   17,900 chars/s against 16,200) */
#define SPIN_ROUNDS 5000

typedef struct {
    PyObject_HEAD
    Py_buffer w, wsum, mult; /* int8 [N, C], int32 [N], float32 [N] */
    Py_ssize_t rows, cols;   /* C: a multiple of 64 */
    float inv;               /* 1 / the input scale, as fbgemm computes it (in float); 0: not initialised */
    /* the same weights for several input rows: blocks of 16 output rows, each stored as C/4 groups
       of 16 x 4 bytes (output o's 4 consecutive weights), so one vpdpbusd adds 4 products to 16
       outputs with no horizontal sum; wsum16 and mult16 padded to 16 x blocks (zeros) */
    int8_t *packed;
    int32_t *wsum16;
    float *mult16;
    Py_ssize_t blocks;
} Matrix;

/* one product: k input rows (quantised, `cols` bytes each), an addend per input row (add_stride
   floats apart; 0: the same for every row) */
typedef struct {
    const Matrix *m;
    const uint8_t *xu;
    Py_ssize_t k;
    const float *add;
    Py_ssize_t add_stride;
    const int64_t *add_ids; /* NULL, or input row r's addend is add row add_ids[r] (a table's rows) */
    float *out;
    Py_ssize_t out_stride;
    int mode; /* ROWS: the product, row-major weights (one input row); BLOCKS: the product, packed
                 weights (several); CELL: no product, the LSTM cell of the rows (see cell_rows) */
    float *g, *c, *tmp, *v; /* CELL: gates [k, 4H], c and tmp [k, H], v rows of vn values (h at below) */
    Py_ssize_t H, vn, below;
} Job;

enum { ROWS, BLOCKS, CELL };

#define ADD_ROW(j, r) ((j)->add + ((j)->add_ids ? (j)->add_ids[r] : (r)) * (j)->add_stride)

/* NumPy's own float32 tanh loop (taken from np.tanh by set_tanh), so that every value is the one
   NumPy's ufunc computes in the plain NumPy step; the rest of the LSTM cell is IEEE multiplies and
   adds in NumPy's order, each rounded (no FMA contraction). The loop is pure arithmetic: any
   thread may call it without the GIL. */
static PyUFuncGenericFunction tanh_loop = NULL;
static void *tanh_data = NULL;

static void tanh_f32(float *x, float *y, npy_intp n) {
    char *ptrs[2] = {(char *)x, (char *)y};
    npy_intp steps[2] = {sizeof(float), sizeof(float)};
    tanh_loop(ptrs, &n, steps, tanh_data);
}

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

#define EPILOGUE(sum, r, kk)                                                                        \
    do {                                                                                            \
        volatile float y_ = (float)((sum) - 128 * wsum[r]) * mult[r]; /* rounded, then added */     \
        j->out[(kk) * j->out_stride + (r)] = y_ + ADD_ROW(j, kk)[r];                                 \
    } while (0)

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void rows(const Job *j, Py_ssize_t r0, Py_ssize_t r1) {
    const Matrix *m = j->m;
    const int8_t *w = (const int8_t *)m->w.buf;
    const int32_t *wsum = (const int32_t *)m->wsum.buf;
    const float *mult = (const float *)m->mult.buf;
    const Py_ssize_t cols = m->cols;
    /* four weight rows at a time (called for one input row: several use blocks()) */
    for (Py_ssize_t kk = 0; kk < j->k; kk++) {
        const uint8_t *xu = j->xu + kk * cols;
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
            EPILOGUE(_mm512_reduce_add_epi32(a0), r, kk);
            EPILOGUE(_mm512_reduce_add_epi32(a1), r + 1, kk);
            EPILOGUE(_mm512_reduce_add_epi32(a2), r + 2, kk);
            EPILOGUE(_mm512_reduce_add_epi32(a3), r + 3, kk);
        }
        for (; r < r1; r++) {
            __m512i a0 = _mm512_setzero_si512();
            const int8_t *p = w + r * cols;
            for (Py_ssize_t c = 0; c < cols; c += 64)
                a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(xu + c), _mm512_loadu_si512(p + c));
            EPILOGUE(_mm512_reduce_add_epi32(a0), r, kk);
        }
    }
}


/* Several input rows over the packed weights: output blocks [b, b + OB) for input rows
   [r0, r0 + R), every weight of the blocks read once for the R rows. Each output is the same
   exact integer sum as in rows(), and the same epilogue, vectorised (int32 to float rounds to
   nearest even, one IEEE multiply, one add): the same bits as at one row. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
static inline void emit(const Job *j, __m512i acc, Py_ssize_t o, Py_ssize_t r) {
    const Matrix *m = j->m;
    __mmask16 mk = o + 16 <= m->rows ? (__mmask16)0xFFFF : (__mmask16)((1u << (m->rows - o)) - 1);
    __m512i ws = _mm512_slli_epi32(_mm512_load_si512(m->wsum16 + o), 7);
    __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, ws)), _mm512_load_ps(m->mult16 + o));
    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, ADD_ROW(j, r) + o));
    _mm512_mask_storeu_ps(j->out + r * j->out_stride + o, mk, y);
}

/* acc += the dot products of x's and w's bytes, in place: GCC's intrinsic copied every
   accumulator around each vpdpbusd (two extra moves each, and spills at eight rows) */
#define DPBUSD(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))
#define ACC(r) __m512i a0##r = _mm512_setzero_si512(), a1##r = a0##r;
#define DOT(r)                                                                                      \
    if (R > r) {                                                                                    \
        int32_t four;                                                                               \
        memcpy(&four, xu + r * cols + 4 * s, 4);                                                    \
        const __m512i xb = _mm512_set1_epi32(four);                                                 \
        DPBUSD(a0##r, xb, w0);                                                                      \
        if (OB > 1)                                                                                 \
            DPBUSD(a1##r, xb, w1);                                                                  \
    }
#define EMIT(r)                                                                                     \
    if (R > r) {                                                                                    \
        emit(j, a0##r, b * 16, r0 + r);                                                             \
        if (OB > 1)                                                                                 \
            emit(j, a1##r, b * 16 + 16, r0 + r);                                                    \
    }

__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
static inline void tile(const Job *j, Py_ssize_t b, Py_ssize_t r0, const int R, const int OB) {
    const Py_ssize_t cols = j->m->cols, steps = cols / 4;
    const int8_t *pk = j->m->packed + b * cols * 16;
    const uint8_t *xu = j->xu + r0 * cols;
    ACC(0) ACC(1) ACC(2) ACC(3) ACC(4) ACC(5) ACC(6) ACC(7)
    for (Py_ssize_t s = 0; s < steps; s++) {
        const __m512i w0 = _mm512_load_si512(pk + s * 64);
        const __m512i w1 = OB > 1 ? _mm512_load_si512(pk + cols * 16 + s * 64) : w0;
        DOT(0) DOT(1) DOT(2) DOT(3) DOT(4) DOT(5) DOT(6) DOT(7)
    }
    EMIT(0) EMIT(1) EMIT(2) EMIT(3) EMIT(4) EMIT(5) EMIT(6) EMIT(7)
}

#define TILES(OB)                                                                                   \
    switch (R) {                                                                                    \
    case 1: tile(j, b, r0, 1, OB); break;                                                           \
    case 2: tile(j, b, r0, 2, OB); break;                                                           \
    case 3: tile(j, b, r0, 3, OB); break;                                                           \
    case 4: tile(j, b, r0, 4, OB); break;                                                           \
    case 5: tile(j, b, r0, 5, OB); break;                                                           \
    case 6: tile(j, b, r0, 6, OB); break;                                                           \
    case 7: tile(j, b, r0, 7, OB); break;                                                           \
    default: tile(j, b, r0, 8, OB); break;                                                          \
    }

/* output blocks [b0, b1) for every input row, eight rows at a time */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void blocks(const Job *j, Py_ssize_t b0, Py_ssize_t b1) {
    for (Py_ssize_t r0 = 0; r0 < j->k; r0 += 8) {
        const int R = j->k - r0 < 8 ? (int)(j->k - r0) : 8;
        Py_ssize_t b = b0;
        for (; b + 2 <= b1; b += 2)
            TILES(2)
        if (b < b1)
            TILES(1)
    }
}

/* The LSTM cell of rows [r0, r1) once g holds the gates' pre-activations (i, f, o, g; the sigmoid
   rows halved, so sigmoid(x) = tanh(x/2)/2 + 1/2): tanh over the row's gates and over its new c
   by NumPy's loop; IEEE multiplies and adds in the NumPy step's order, each rounded once. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void cell_rows(const Job *j, Py_ssize_t r0, Py_ssize_t r1) {
    const Py_ssize_t H = j->H;
    const __m512 half = _mm512_set1_ps(0.5f);
    for (Py_ssize_t r = r0; r < r1; r++) {
        float *g = j->g + r * 4 * H, *c = j->c + r * H, *t = j->tmp + r * H, *h = j->v + r * j->vn + j->below;
        tanh_f32(g, g, 4 * H);
        for (Py_ssize_t i = 0; i < H; i += 16) {
            __mmask16 mk = i + 16 <= H ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - i)) - 1);
            __m512 ig = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + i), half), half);
            __m512 fg = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + H + i), half), half);
            __m512 og = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + 2 * H + i), half), half);
            _mm512_mask_storeu_ps(g + i, mk, ig);
            _mm512_mask_storeu_ps(g + H + i, mk, fg);
            _mm512_mask_storeu_ps(g + 2 * H + i, mk, og);
            __m512 cf = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, c + i), fg);
            __m512 ij = _mm512_mul_ps(ig, _mm512_maskz_loadu_ps(mk, g + 3 * H + i));
            _mm512_mask_storeu_ps(c + i, mk, _mm512_add_ps(cf, ij));
        }
        tanh_f32(c, t, H);
        for (Py_ssize_t i = 0; i < H; i += 16) {
            __mmask16 mk = i + 16 <= H ? (__mmask16)0xFFFF : (__mmask16)((1u << (H - i)) - 1);
            _mm512_mask_storeu_ps(h + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + 2 * H + i),
                                                           _mm512_maskz_loadu_ps(mk, t + i)));
        }
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
static void rows(const Job *j, Py_ssize_t r0, Py_ssize_t r1) {}
static void blocks(const Job *j, Py_ssize_t b0, Py_ssize_t b1) {}
static void cell_rows(const Job *j, Py_ssize_t r0, Py_ssize_t r1) {}
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
    int sleeping;
    /* the job: written by the caller before it publishes `state` */
    Job job;
    int allowed; /* workers 1 .. allowed-1 take part */
    uint64_t state;    /* (job << 32) | next piece */
    uint32_t finished; /* pieces computed */
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
        .state = CHUNKS};

static void piece(const Job *j, uint32_t i) {
    if (j->mode == ROWS) {
        Py_ssize_t n = j->m->rows;
        Py_ssize_t r0 = n * i / CHUNKS / 4 * 4, r1 = i + 1 == CHUNKS ? n : n * (i + 1) / CHUNKS / 4 * 4;
        if (r1 > r0)
            rows(j, r0, r1);
    } else if (j->mode == BLOCKS) {
        Py_ssize_t n = j->m->blocks;
        if (n * (i + 1) / CHUNKS > n * i / CHUNKS)
            blocks(j, n * i / CHUNKS, n * (i + 1) / CHUNKS);
    } else {
        Py_ssize_t n = j->k;
        if (n * (i + 1) / CHUNKS > n * i / CHUNKS)
            cell_rows(j, n * i / CHUNKS, n * (i + 1) / CHUNKS);
    }
}

/* claim and compute pieces of the current job until none is left; `who` 0 is the caller */
static void take_pieces(int who) {
    for (;;) {
        uint64_t s = __atomic_load_n(&pool.state, __ATOMIC_ACQUIRE);
        uint32_t i = (uint32_t)s;
        if (i >= CHUNKS)
            return;
        Job j = pool.job;
        if (who >= pool.allowed)
            return;
        if (!__atomic_compare_exchange_n(&pool.state, &s, s + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        piece(&j, i);
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

/* a forked child has none of its parent's workers, and its mutexes may have been held at the
   fork: it starts afresh (registered once with pthread_atfork) */
static void after_fork(void) {
    pool.started = 0;
    pool.sleeping = 0;
    pool.state = CHUNKS; /* job 0, nothing left to claim */
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
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

/* one product over up to `threads` threads (the caller takes part); the input already quantised */
static void alone(const Job *j) {
    for (uint32_t i = 0; i < CHUNKS; i++)
        piece(j, i);
}

static void product(const Job *j, int threads) {
    if (threads == 1 || (j->mode == CELL ? j->k < 2 : j->m->rows < 64)) {
        alone(j);
        return;
    }
    /* another thread (another model's engine) has the workers, or none can be started: the
       caller computes every piece alone, which gives the same result */
    if (pthread_mutex_trylock(&pool.busy) != 0) {
        alone(j);
        return;
    }
    if (ensure_workers(threads - 1) != 0) {
        pthread_mutex_unlock(&pool.busy);
        alone(j);
        return;
    }
    pool.job = *j;
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
}

/* the quantised input rows of a call: k rows of m->cols bytes */
static uint8_t *quantised(const Matrix *m, const float *x, Py_ssize_t k, Py_ssize_t x_stride, Py_ssize_t n) {
    uint8_t *xu = PyMem_RawMalloc((size_t)(k * m->cols));
    if (!xu)
        return NULL;
    for (Py_ssize_t r = 0; r < k; r++)
        quantise(x + r * x_stride, n, m->cols, m->inv, xu + r * m->cols);
    return xu;
}

/* quantise k input rows (x_stride floats apart, n values each) and run the job on them; 0 when the
   scratch could not be allocated (called without the GIL) */
static int run(Job *j, const float *x, Py_ssize_t x_stride, Py_ssize_t n, int threads) {
    uint8_t *xu = quantised(j->m, x, j->k, x_stride, n);
    if (!xu)
        return 0;
    j->xu = xu;
    product(j, threads);
    PyMem_RawFree(xu);
    j->xu = NULL;
    return 1;
}

/* ---- Python ------------------------------------------------------------------------------ */
static void Matrix_dealloc(Matrix *self) {
    free(self->packed);
    free(self->wsum16);
    free(self->mult16);
    release(&self->w, 1);
    release(&self->wsum, 1);
    release(&self->mult, 1);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* the packed copy of the weights for several input rows (see Matrix) */
static int pack(Matrix *self) {
    const Py_ssize_t n = self->rows, cols = self->cols, nb = (n + 15) / 16;
    const int8_t *w = self->w.buf;
    void *p = NULL, *ws = NULL, *mu = NULL;
    if (posix_memalign(&p, 64, (size_t)(nb * 16 * cols)) || posix_memalign(&ws, 64, (size_t)nb * 16 * 4) ||
        posix_memalign(&mu, 64, (size_t)nb * 16 * 4)) {
        free(p), free(ws), free(mu);
        PyErr_NoMemory();
        return -1;
    }
    int8_t *pk = p;
    for (Py_ssize_t b = 0; b < nb; b++)
        for (Py_ssize_t s = 0; s < cols / 4; s++)
            for (Py_ssize_t o = 0; o < 16; o++) {
                int8_t *dst = pk + ((b * (cols / 4) + s) * 16 + o) * 4;
                if (b * 16 + o < n)
                    memcpy(dst, w + (b * 16 + o) * cols + 4 * s, 4);
                else
                    memset(dst, 0, 4);
            }
    memset(ws, 0, (size_t)nb * 16 * 4);
    memset(mu, 0, (size_t)nb * 16 * 4);
    memcpy(ws, self->wsum.buf, (size_t)n * 4);
    memcpy(mu, self->mult.buf, (size_t)n * 4);
    self->packed = pk, self->wsum16 = ws, self->mult16 = mu, self->blocks = nb;
    return 0;
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
    if (self->cols % 64 != 0 || self->cols <= 0 || self->cols > 32768 || self->rows <= 0 ||
        self->wsum.shape[0] != self->rows || self->mult.shape[0] != self->rows) {
        PyErr_SetString(PyExc_ValueError, "w must be [N, C] with C a multiple of 64 up to 32768; wsum and mult [N]");
        return -1;
    }
    if (!(scale > 0.0f)) {
        PyErr_SetString(PyExc_ValueError, "the input scale must be positive");
        return -1;
    }
    if (pack(self) < 0)
        return -1;
    self->inv = 1.0f / scale;
    return 0;
}

/* 1 when the matrix was initialised and the thread count is in range; else 0 with an error set */
static int usable(const Matrix *self, int threads) {
    if (!(self->inv > 0.0f))
        return PyErr_SetString(PyExc_RuntimeError, "not initialised"), 0;
    if (threads < 1 || threads > MAX_THREADS)
        return PyErr_Format(PyExc_ValueError, "threads must be in [1, %d]", MAX_THREADS), 0;
    return 1;
}

/* checks x (k rows of at most C values), add (N, or k rows of N) and out (k rows of N, 1-D when
   x is) and fills a job; the caller quantises */
static int job_for(Matrix *self, Py_buffer *x, Py_buffer *a, Py_buffer *o, Py_buffer *ids, Job *j) {
    Py_ssize_t k = nrows(x);
    if (k < 1 || k > MAX_INPUT_ROWS || ncols(x) > self->cols || ncols(a) != self->rows || ncols(o) != self->rows ||
        nrows(o) != k || o->ndim != x->ndim || (a->ndim == 2 && !ids && nrows(a) != k)) {
        PyErr_SetString(PyExc_ValueError, "x must be k rows of at most C values (k <= 4096), add N or k x N, out k x N");
        return -1;
    }
    if (ids) { /* add is a table [V, N] and row r adds its row ids[r] */
        const int64_t *id = ids->buf;
        int ok = a->ndim == 2 && ids->ndim == 1 && ids->shape[0] == k;
        for (Py_ssize_t r = 0; ok && r < k; r++)
            ok = id[r] >= 0 && id[r] < nrows(a);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "ids must be k row numbers of the table add");
            return -1;
        }
    }
    *j = (Job){self, NULL, k, a->buf, a->ndim == 2 ? self->rows : 0, ids ? ids->buf : NULL, o->buf, self->rows,
               k > 1 ? BLOCKS : ROWS};
    return 0;
}

/* m(x, add, out, threads): out = the product of x plus add, x [C'] or [k, C'] with C' <= C */
static PyObject *Matrix_call(Matrix *self, PyObject *args, PyObject *kw) {
    PyObject *xo, *ao, *oo;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOi", &xo, &ao, &oo, &threads) || !usable(self, threads))
        return NULL;
    Py_buffer v[3] = {{0}};
    PyObject *result = NULL;
    Job j;
    if (get(xo, &v[0], "f", 0, 0, "x") < 0 || get(ao, &v[1], "f", 0, 0, "add") < 0 ||
        get(oo, &v[2], "f", 0, 1, "out") < 0 || job_for(self, &v[0], &v[1], &v[2], NULL, &j) < 0)
        goto done;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = run(&j, v[0].buf, ncols(&v[0]), ncols(&v[0]), threads);
    Py_END_ALLOW_THREADS
    result = ok ? Py_NewRef(oo) : PyErr_NoMemory();
done:
    release(v, 3);
    return result;
}

/* ---- one LSTM layer: the product, then the cell's element-wise work ------------------------ */

static PyObject *set_tanh(PyObject *self, PyObject *u) {
    int found = float_loop(u, &tanh_loop, &tanh_data);
    return found < 0 ? NULL : PyBool_FromLong(found);
}

/* the LSTM cell over k rows on up to `threads` threads (a job of its own: every gate must be
   computed before any row's cell starts) */
static void cell(float *gp, float *cp, float *tp, float *vp, Py_ssize_t k, Py_ssize_t H, Py_ssize_t vn,
                 Py_ssize_t below, int threads) {
    Job j = {.k = k, .mode = CELL, .g = gp, .c = cp, .tmp = tp, .v = vp, .H = H, .vn = vn, .below = below};
    product(&j, threads);
}

/* lstm_cell(g, c, tmp, v, below): the cell alone, for gates some other product computed (k rows) */
static PyObject *lstm_cell(PyObject *self, PyObject *args) {
    PyObject *go, *co, *to, *vo;
    Py_ssize_t below;
    if (!tanh_loop)
        return PyErr_SetString(PyExc_RuntimeError, "set_tanh(numpy.tanh) first"), NULL;
    if (!cpu_ok())
        return PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX-512"), NULL;
    if (!PyArg_ParseTuple(args, "OOOOn", &go, &co, &to, &vo, &below))
        return NULL;
    Py_buffer b[4] = {{0}};
    PyObject *result = NULL;
    if (get(go, &b[0], "f", 2, 1, "g") < 0 || get(co, &b[1], "f", 2, 1, "c") < 0 ||
        get(to, &b[2], "f", 2, 1, "tmp") < 0 || get(vo, &b[3], "f", 2, 1, "v") < 0)
        goto done;
    Py_ssize_t k = nrows(&b[1]), H = ncols(&b[1]), vn = ncols(&b[3]);
    if (k < 1 || H < 1 || nrows(&b[0]) != k || ncols(&b[0]) != 4 * H || nrows(&b[2]) != k || ncols(&b[2]) != H ||
        nrows(&b[3]) != k || below < 0 || below > vn - H) {
        PyErr_SetString(PyExc_ValueError, "lstm_cell: g [k, 4H], c and tmp [k, H], v [k, >= below + H]");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    cell(b[0].buf, b[1].buf, b[2].buf, b[3].buf, k, H, vn, below, 1);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(b, 4);
    return result;
}

/* m.lstm(below, v, add, g, c, tmp, threads[, ids]), for k rows (2-D arrays) or one (1-D): below (the
   lower layer's h, or None for the first layer) is copied to v[:, :I]; g = product(v) + add; then
   the cell with gates (i, f, o, g) whose sigmoid rows were halved; h = v[:, I:I+H] */
static PyObject *Matrix_lstm(Matrix *self, PyObject *args) {
    PyObject *bo, *vo, *ao, *go, *co, *to, *io = Py_None;
    int threads;
    if (!tanh_loop)
        return PyErr_SetString(PyExc_RuntimeError, "set_tanh(numpy.tanh) first"), NULL;
    if (!PyArg_ParseTuple(args, "OOOOOOi|O", &bo, &vo, &ao, &go, &co, &to, &threads, &io) || !usable(self, threads))
        return NULL;
    Py_buffer b[7] = {{0}}; /* below, v, add, g, c, tmp, ids */
    PyObject *result = NULL;
    Job j;
    if ((bo != Py_None && get_rows(bo, &b[0], "below") < 0) || get(vo, &b[1], "f", 0, 1, "v") < 0 ||
        get(ao, &b[2], "f", 0, 0, "add") < 0 || get(go, &b[3], "f", 0, 1, "g") < 0 ||
        get(co, &b[4], "f", 0, 1, "c") < 0 || get(to, &b[5], "f", 0, 1, "tmp") < 0 ||
        (io != Py_None && get(io, &b[6], "q", 1, 0, "ids") < 0) ||
        job_for(self, &b[1], &b[2], &b[3], b[6].obj ? &b[6] : NULL, &j) < 0)
        goto done;
    Py_ssize_t k = j.k, H = self->rows / 4, below = b[0].obj ? ncols(&b[0]) : 0, vn = ncols(&b[1]);
    if (self->rows % 4 != 0 || below + H > vn || (b[0].obj && (nrows(&b[0]) != k || b[0].ndim != b[1].ndim)) ||
        ncols(&b[4]) != H || ncols(&b[5]) != H || nrows(&b[4]) != k || nrows(&b[5]) != k ||
        b[4].ndim != b[1].ndim || b[5].ndim != b[1].ndim) {
        PyErr_SetString(PyExc_ValueError, "lstm: v must hold [below | h] per row, add and g 4H, c and tmp H, all k rows");
        goto done;
    }
    float *vp = b[1].buf, *gp = b[3].buf, *cp = b[4].buf, *tp = b[5].buf;
    const float *bp = b[0].obj ? b[0].buf : NULL;
    const Py_ssize_t bstride = b[0].obj && b[0].ndim == 2 ? b[0].strides[0] / (Py_ssize_t)sizeof(float) : below;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < k && below; r++)
        memcpy(vp + r * vn, bp + r * bstride, (size_t)below * sizeof(float));
    ok = run(&j, vp, vn, vn, threads);
    if (ok)
        cell(gp, cp, tp, vp, k, H, vn, below, threads);
    Py_END_ALLOW_THREADS
    result = ok ? Py_NewRef(Py_None) : PyErr_NoMemory();
done:
    release(b, 7);
    return result;
}

static PyMethodDef matrix_methods[] = {
    {"lstm", (PyCFunction)Matrix_lstm, METH_VARARGS,
     "lstm(below, v, add, g, c, tmp, threads[, ids]): one LSTM layer, k rows or one (ids: add is a table, row r adds "
     "its row ids[r])"},
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
    {"lstm_cell", lstm_cell, METH_VARARGS, "lstm_cell(g, c, tmp, v, below): the LSTM cell over k rows of gates"},
    {"set_tanh", set_tanh, METH_O, "set_tanh(numpy.tanh): the float32 loop Matrix.lstm uses; True if found"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_int8", "int8 matrix-vector products on VNNI", -1, methods};

PyMODINIT_FUNC PyInit__int8(void) {
    if (PyType_Ready(&MatrixType) < 0)
        return NULL;
    static int forks_watched = 0;
    if (!forks_watched && pthread_atfork(NULL, NULL, after_fork) == 0)
        forks_watched = 1;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Matrix", (PyObject *)&MatrixType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

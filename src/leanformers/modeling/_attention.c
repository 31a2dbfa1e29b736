/* Self-attention over packed rows of short sequences, float32, AVX-512.
 *
 * A packed batch (modeling/attention.py) keeps each sequence's tokens in consecutive slots of
 * (slots, heads * head_dim) query, key and value matrices. Per sequence and head this computes
 * softmax(q k^T * scale) v over the sequence's real keys, for every query slot of the sequence,
 * and writes the result straight into the output matrix. torch's SDPA takes one call per group of
 * equal-length sequences and spends most of its time, at these sizes (tens of tokens, head_dim
 * 64), in per-call and per-block overhead; here one call covers a whole layer, split between
 * threads by estimated cost.
 *
 * Threads: the work runs on torch's own OpenMP team (the libgomp it loaded, found among the
 * process's libraries and called through its GOMP_parallel entry point, which is what an
 * `omp parallel` region compiles to). Threads of our own would compete with that team's
 * threads, which spin for a while after each torch op; measured in BERT-base, that contention
 * took away all of the kernel's gain. Where no such runtime is loaded, the calling thread does
 * all the work.
 *
 * Numbers: the products are summed in float32 with fused multiply-adds, the exponential is a
 * polynomial accurate to about 2 ulp, and the softmax is normalised after the weighted sum. The
 * result differs from SDPA's by rounding only (about 1e-7 relative).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

typedef struct {
    const float *q, *k, *v;
    float *out;
    const int64_t *start, *span, *length;
    Py_ssize_t width; /* heads * head_dim: the stride between slots */
    int heads, head_dim;
    float scale;
    int64_t first, last; /* the (sequence * heads + head) items of one thread */
    int failed;
} Work;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_KERNEL 1
#define QUERIES 4 /* query rows computed together, sharing each key and value load */
#endif

#include "_native.h"

#ifdef HAVE_KERNEL

/* One (sequence, head): `span` query slots attend over the first `length` key slots. `kt` holds
 * room for head_dim x padded-length floats, `scores` for QUERIES x padded-length. `blocks` is
 * head_dim / 16, a constant in each caller below, so that the accumulators stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
attend_one(const Work *w, int64_t item, float *kt, float *scores, const int blocks) {
    const int64_t sequence = item / w->heads, head = item % w->heads;
    const int64_t span = w->span[sequence], length = w->length[sequence];
    const Py_ssize_t base = w->start[sequence] * w->width + head * w->head_dim;
    const Py_ssize_t width = w->width;
    const float *q = w->q + base, *k = w->k + base, *v = w->v + base;
    float *out = w->out + base;
    const int dim = 16 * blocks;
    const int64_t padded = (length + 15) / 16 * 16;

    /* keys transposed: kt[d * padded + j] = k[j][d]; keys past `length` are zero */
    for (int64_t j = 0; j < padded; j++) {
        const float *key = k + j * width;
        for (int d = 0; d < dim; d++) {
            kt[d * padded + j] = j < length ? key[d] : 0.0f;
        }
    }
    const __m512 scale = _mm512_set1_ps(w->scale), lowest = _mm512_set1_ps(-INFINITY);
    for (int64_t i0 = 0; i0 < span; i0 += QUERIES) {
        const int rows = span - i0 < QUERIES ? (int)(span - i0) : QUERIES;
        /* Always QUERIES rows, the last repeated where the sequence has fewer: fixed-size loops. */
        const float *query[QUERIES];
        for (int r = 0; r < QUERIES; r++) {
            query[r] = q + (i0 + (r < rows ? r : rows - 1)) * width;
        }
        for (int64_t j0 = 0; j0 < padded; j0 += 16) {
            __m512 acc[QUERIES];
            for (int r = 0; r < QUERIES; r++) {
                acc[r] = _mm512_setzero_ps();
            }
            for (int d = 0; d < dim; d++) {
                const __m512 keys = _mm512_loadu_ps(kt + d * padded + j0);
                for (int r = 0; r < QUERIES; r++) {
                    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(query[r][d]), keys, acc[r]);
                }
            }
            /* keys past `length` never count: their score is -inf, their weight 0 */
            const __mmask16 real = length - j0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (length - j0)) - 1);
            for (int r = 0; r < QUERIES; r++) {
                _mm512_storeu_ps(scores + r * padded + j0, _mm512_mask_mov_ps(lowest, real, _mm512_mul_ps(acc[r], scale)));
            }
        }
        /* softmax numerators in place, and their sums */
        float total[QUERIES];
        for (int r = 0; r < QUERIES; r++) {
            float *s = scores + r * padded;
            __m512 top = lowest;
            for (int64_t j = 0; j < padded; j += 16) {
                top = _mm512_max_ps(top, _mm512_loadu_ps(s + j));
            }
            const __m512 peak = _mm512_set1_ps(_mm512_reduce_max_ps(top));
            __m512 sum = _mm512_setzero_ps();
            for (int64_t j = 0; j < padded; j += 16) {
                const __mmask16 real = length - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (length - j)) - 1);
                const __m512 e = _mm512_maskz_mov_ps(real, exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(s + j), peak)));
                _mm512_storeu_ps(s + j, e);
                sum = _mm512_add_ps(sum, e);
            }
            total[r] = _mm512_reduce_add_ps(sum);
        }
        /* weighted sum of the values, then normalised */
        __m512 acc[QUERIES][8];
        for (int r = 0; r < QUERIES; r++) {
            for (int b = 0; b < blocks; b++) {
                acc[r][b] = _mm512_setzero_ps();
            }
        }
        for (int64_t j = 0; j < length; j++) {
            const float *value = v + j * width;
            for (int b = 0; b < blocks; b++) {
                const __m512 x = _mm512_loadu_ps(value + 16 * b);
                for (int r = 0; r < QUERIES; r++) {
                    acc[r][b] = _mm512_fmadd_ps(_mm512_set1_ps(scores[r * padded + j]), x, acc[r][b]);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            const __m512 inverse = _mm512_set1_ps(1.0f / total[r]);
            for (int b = 0; b < blocks; b++) {
                _mm512_storeu_ps(out + (i0 + r) * width + 16 * b, _mm512_mul_ps(acc[r][b], inverse));
            }
        }
    }
}

/* attend_one with head_dim fixed at compile time. */
#define SPECIALISED(BLOCKS)                                                                         \
    __attribute__((target("avx512f"))) static void attend_##BLOCKS(                                 \
        const Work *w, int64_t item, float *kt, float *scores) {                                     \
        attend_one(w, item, kt, scores, BLOCKS);                                                    \
    }
SPECIALISED(2)
SPECIALISED(4)
SPECIALISED(8)

static void *
run(void *arg) {
    Work *w = arg;
    int64_t longest = 16;
    for (int64_t item = w->first; item < w->last; item++) {
        const int64_t sequence = item / w->heads;
        if (w->length[sequence] > longest) {
            longest = w->length[sequence];
        }
    }
    const int64_t padded = (longest + 15) / 16 * 16;
    float *kt = malloc(sizeof(float) * (size_t)(padded * w->head_dim + QUERIES * padded));
    if (kt == NULL) {
        w->failed = 1;
        return NULL;
    }
    void (*one)(const Work *, int64_t, float *, float *) =
        w->head_dim == 32 ? attend_2 : w->head_dim == 64 ? attend_4 : attend_8;
    for (int64_t item = w->first; item < w->last; item++) {
        one(w, item, kt, kt + padded * w->head_dim);
    }
    free(kt);
    return NULL;
}
#endif

static int
available(void) {
#ifdef HAVE_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#ifdef HAVE_KERNEL
typedef struct {
    Work *parts;
    int count;
} Team;

/* Each team member takes parts member, member + team size, ... (the team may be smaller than
 * asked for). */
static void
team_member(void *arg) {
    const Team *team = arg;
    const int member = omp_thread(), size = omp_threads();
    for (int part = member; part < team->count; part += size) {
        run(&team->parts[part]);
    }
}
#endif

/* The work of one (row, head) item, for splitting a call between threads: queries x keys as the
 * kernel pads them, plus a per-query share for the softmax and the output. */
static inline double
row_cost(int64_t span, int64_t length) {
    return (double)span * (double)((length + 15) / 16 * 16 + 16);
}

/* attend(q, k, v, out, start, span, length, heads, head_dim, scale, threads) */
static PyObject *
py_attend(PyObject *self, PyObject *args) {
    Py_buffer q, k, v, out, start, span, length;
    int heads, head_dim, threads;
    float scale;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(
            args, "y*y*y*w*y*y*y*iifi", &q, &k, &v, &out, &start, &span, &length, &heads, &head_dim, &scale,
            &threads
        )) {
        return NULL;
    }
    if (threads > MAX_THREADS) {
        threads = MAX_THREADS; /* a bigger machine still gets the kernel, on its first 64 threads */
    }
    const Py_ssize_t width = (Py_ssize_t)heads * head_dim;
    const Py_ssize_t sequences = start.len / 8;
    const Py_ssize_t slots = width > 0 ? q.len / 4 / width : 0;
    int ok = available() && heads > 0 && (head_dim == 32 || head_dim == 64 || head_dim == 128) &&
             threads >= 1 && threads <= MAX_THREADS && q.len == slots * width * 4 && k.len == q.len &&
             v.len == q.len && out.len == q.len && span.len == start.len && length.len == start.len;
    const int64_t *first = start.buf, *spans = span.buf, *lengths = length.buf;
    double cost = 0;
    for (Py_ssize_t s = 0; ok && s < sequences; s++) {
        ok = first[s] >= 0 && spans[s] >= 1 && lengths[s] >= 1 && lengths[s] <= spans[s] &&
             first[s] + spans[s] <= slots;
        cost += row_cost(spans[s], lengths[s]);
    }
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "attention: shapes, rows or CPU not supported by the native kernel");
        goto done;
    }
#ifdef HAVE_KERNEL
    if (!looked_up) {
        look_up_openmp();
    }
    Work work[MAX_THREADS];
    const int64_t items = (int64_t)sequences * heads;
    if (threads > items) {
        threads = (int)items; /* no idle team members */
    }
    /* Contiguous runs of items of about equal cost, one per thread. */
    int64_t item = 0;
    double done_cost = 0;
    for (int t = 0; t < threads; t++) {
        work[t] = (Work){q.buf, k.buf, v.buf, out.buf, first, spans, lengths, width, heads, head_dim, scale,
                         item, item, 0};
        const double goal = cost * heads * (t + 1) / threads;
        while (item < items && (t == threads - 1 || done_cost < goal)) {
            const int64_t s = item / heads;
            done_cost += row_cost(spans[s], lengths[s]);
            item++;
        }
        work[t].last = item;
    }
    Team team = {work, threads};
    Py_BEGIN_ALLOW_THREADS
    if (gomp_parallel != NULL && threads > 1) {
        gomp_parallel(team_member, &team, (unsigned)threads, 0);
    } else {
        for (int t = 0; t < threads; t++) {
            run(&work[t]);
        }
    }
    Py_END_ALLOW_THREADS
    for (int t = 0; t < threads; t++) {
        if (work[t].failed) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = Py_NewRef(Py_None);
#endif
done:
    PyBuffer_Release(&q);
    PyBuffer_Release(&k);
    PyBuffer_Release(&v);
    PyBuffer_Release(&out);
    PyBuffer_Release(&start);
    PyBuffer_Release(&span);
    PyBuffer_Release(&length);
    return result;
}

/* Whether the work is shared with torch's OpenMP team (else the calling thread does it all). */
static PyObject *
py_shares_torch_threads(PyObject *self, PyObject *args) {
    if (!looked_up) {
        look_up_openmp();
    }
    return PyBool_FromLong(gomp_parallel != NULL);
}

static PyObject *
py_available(PyObject *self, PyObject *args) {
    return PyBool_FromLong(available());
}

static PyMethodDef methods[] = {
    {"attend", py_attend, METH_VARARGS,
     "attend(q, k, v, out, start, span, length, heads, head_dim, scale, threads)"},
    {"available", py_available, METH_NOARGS, "Whether this CPU runs the kernel (AVX-512)."},
    {"shares_torch_threads", py_shares_torch_threads, METH_NOARGS,
     "Whether the work runs on torch's OpenMP team (found among the loaded libraries)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_attention",
    .m_doc = "Self-attention over packed short sequences, float32.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__attention(void) {
    return PyModule_Create(&module);
}

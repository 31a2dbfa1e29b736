/* The two one-axis passes of Pillow's 8-bit convolution resize, vectorised.
 *
 * Pillow turns each output sample's filter weights into integers scaled by 2**22, sums
 * pixel x weight in 32-bit integers from a bias of 2**21, shifts right by 22 and clamps to
 * 0..255. Everything here is that same integer arithmetic, so any order of summation gives
 * the same bytes; the weights themselves are computed in Python (resample.py), where the
 * double arithmetic can follow Pillow's step for step.
 *
 * Pillow loops over output samples and, inside, over filter taps one sample at a time. Here
 * the innermost loop runs across independent samples, in vector registers: along a row for
 * the vertical pass (vectorised by the compiler), and across a block of 16 rows for the
 * horizontal pass (with intrinsics; its input and output are transposed block by block so
 * that those rows sit side by side in memory).
 *
 * No Python objects are touched while the passes run, so the GIL is released around them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHIFT 22
#define BIAS (1u << (SHIFT - 1))
/* Rows handled side by side by the horizontal pass: one 512-bit register of int32. */
#define LANES 16
/* Bytes of a row accumulated at a time by the vertical pass (the int32 sums stay in L1). */
#define CHUNK 2048

/* Compiled once per instruction set level and chosen when the module loads (x86-64 only). */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

static inline uint8_t
clamp8(uint32_t sum) {
    /* The sum wraps like Pillow's int accumulator; shift it as a signed value. */
    int32_t value = ((int32_t)sum) >> SHIFT;
    return (uint8_t)(value < 0 ? 0 : value > 255 ? 255 : value);
}

/* out[y][x] = clamp(sum over t of in[first[y] + t][x] * weights[y][t]) for every byte x of
 * a row; rows of `in` are `in_stride` bytes apart. */
VECTOR_CLONES static void
vertical(
    const uint8_t *in, Py_ssize_t in_stride, Py_ssize_t row_bytes, const int32_t *bounds,
    const int32_t *weights, int taps, int out_rows, uint8_t *out, Py_ssize_t out_stride
) {
    uint32_t sums[CHUNK];
    for (int y = 0; y < out_rows; y++) {
        const int32_t first = bounds[2 * y], count = bounds[2 * y + 1];
        const int32_t *w = weights + (Py_ssize_t)y * taps;
        for (Py_ssize_t x0 = 0; x0 < row_bytes; x0 += CHUNK) {
            const int n = (int)(row_bytes - x0 < CHUNK ? row_bytes - x0 : CHUNK);
            for (int x = 0; x < n; x++) {
                sums[x] = BIAS;
            }
            for (int t = 0; t < count; t++) {
                const uint8_t *row = in + (first + t) * in_stride + x0;
                const uint32_t weight = (uint32_t)w[t];
                for (int x = 0; x < n; x++) {
                    sums[x] += row[x] * weight;
                }
            }
            uint8_t *dst = out + y * out_stride + x0;
            for (int x = 0; x < n; x++) {
                dst[x] = clamp8(sums[x]);
            }
        }
    }
}

/* One block of LANES rows of the horizontal pass. `block` holds the input transposed: byte
 * b of row r at block[b * LANES + r], `pixel` bytes per pixel of which the first `channels`
 * are resampled (Pillow stores RGB as 4 bytes); `result` receives the output the same way,
 * `channels` bytes per pixel. gcc does not vectorise the 16-lane loop by itself (it unrolls
 * it into scalar code), so the x86 versions spell it out with intrinsics; the plain one
 * serves everything else. */
typedef void (*block_pass)(const uint8_t *, int, int, const int32_t *, const int32_t *, int, int, uint8_t *);

#define FOR_EACH_SAMPLE(...)                                                                    \
    const Py_ssize_t step = (Py_ssize_t)pixel * LANES;                                          \
    for (int xx = 0; xx < out_width; xx++) {                                                    \
        const int32_t first = bounds[2 * xx], count = bounds[2 * xx + 1];                       \
        const int32_t *w = weights + (Py_ssize_t)xx * taps;                                     \
        for (int c = 0; c < channels; c++) {                                                    \
            const uint8_t *column = block + ((Py_ssize_t)first * pixel + c) * LANES;            \
            uint8_t *dst = result + ((Py_ssize_t)xx * channels + c) * LANES;                    \
            __VA_ARGS__                                                                         \
        }                                                                                       \
    }

static void
horizontal_block_plain(
    const uint8_t *block, int pixel, int channels, const int32_t *bounds, const int32_t *weights,
    int taps, int out_width, uint8_t *result
) {
    FOR_EACH_SAMPLE({
        uint32_t sums[LANES];
        for (int r = 0; r < LANES; r++) {
            sums[r] = BIAS;
        }
        for (int t = 0; t < count; t++) {
            for (int r = 0; r < LANES; r++) {
                sums[r] += column[t * step + r] * (uint32_t)w[t];
            }
        }
        for (int r = 0; r < LANES; r++) {
            dst[r] = clamp8(sums[r]);
        }
    })
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DISPATCH 1

__attribute__((target("avx512f"))) static void
horizontal_block_avx512(
    const uint8_t *block, int pixel, int channels, const int32_t *bounds, const int32_t *weights,
    int taps, int out_width, uint8_t *result
) {
    const __m512i bias = _mm512_set1_epi32((int)BIAS), zero = _mm512_setzero_si512();
    const __m512i top = _mm512_set1_epi32(255);
    FOR_EACH_SAMPLE({
        __m512i sums = bias;
        for (int t = 0; t < count; t++) {
            const __m512i pixels = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(column + t * step)));
            sums = _mm512_add_epi32(sums, _mm512_mullo_epi32(pixels, _mm512_set1_epi32(w[t])));
        }
        const __m512i value = _mm512_min_epi32(_mm512_max_epi32(_mm512_srai_epi32(sums, SHIFT), zero), top);
        _mm_storeu_si128((__m128i *)dst, _mm512_cvtepi32_epi8(value));
    })
}

__attribute__((target("avx2"))) static void
horizontal_block_avx2(
    const uint8_t *block, int pixel, int channels, const int32_t *bounds, const int32_t *weights,
    int taps, int out_width, uint8_t *result
) {
    const __m256i bias = _mm256_set1_epi32((int)BIAS);
    FOR_EACH_SAMPLE({
        __m256i low = bias, high = bias;
        for (int t = 0; t < count; t++) {
            const uint8_t *lanes = column + t * step;
            const __m256i weight = _mm256_set1_epi32(w[t]);
            const __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)lanes));
            const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(lanes + 8)));
            low = _mm256_add_epi32(low, _mm256_mullo_epi32(a, weight));
            high = _mm256_add_epi32(high, _mm256_mullo_epi32(b, weight));
        }
        /* Saturating packs clamp to 0..255; the 256-bit pack interleaves its two halves, which
         * the permute puts back in order. */
        __m256i words = _mm256_packus_epi32(_mm256_srai_epi32(low, SHIFT), _mm256_srai_epi32(high, SHIFT));
        words = _mm256_permute4x64_epi64(words, 0xD8);
        const __m128i packed = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128((__m128i *)dst, packed);
    })
}
#endif

static block_pass horizontal_block = horizontal_block_plain;

static const char *
kernel_name(block_pass kernel) {
#ifdef DISPATCH
    if (kernel == horizontal_block_avx512) {
        return "avx512";
    }
    if (kernel == horizontal_block_avx2) {
        return "avx2";
    }
#endif
    return "plain";
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Transpose a 16 x 16 byte tile held in m[0..15], in place. */
static inline void
transpose16(__m128i m[16]) {
    __m128i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[i] = _mm_unpacklo_epi8(m[2 * i], m[2 * i + 1]);
        t[i + 8] = _mm_unpackhi_epi8(m[2 * i], m[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[i] = _mm_unpacklo_epi16(t[2 * i], t[2 * i + 1]);
        u[i + 4] = _mm_unpackhi_epi16(t[2 * i], t[2 * i + 1]);
        u[i + 8] = _mm_unpacklo_epi16(t[8 + 2 * i], t[9 + 2 * i]);
        u[i + 12] = _mm_unpackhi_epi16(t[8 + 2 * i], t[9 + 2 * i]);
    }
    for (int g = 0; g < 16; g += 4) {
        __m128i low01 = _mm_unpacklo_epi32(u[g], u[g + 1]), high01 = _mm_unpackhi_epi32(u[g], u[g + 1]);
        __m128i low23 = _mm_unpacklo_epi32(u[g + 2], u[g + 3]), high23 = _mm_unpackhi_epi32(u[g + 2], u[g + 3]);
        m[g] = _mm_unpacklo_epi64(low01, low23);
        m[g + 1] = _mm_unpackhi_epi64(low01, low23);
        m[g + 2] = _mm_unpacklo_epi64(high01, high23);
        m[g + 3] = _mm_unpackhi_epi64(high01, high23);
    }
}
#define TILED 16
#else
#define TILED 0
#endif

/* Gather `rows` (<= LANES) rows of `bytes` bytes into block[b * LANES + r]; lanes from `rows`
 * on keep whatever they held (their sums are computed and never stored). */
static void
to_lanes(const uint8_t *in, Py_ssize_t stride, int rows, Py_ssize_t bytes, uint8_t *block) {
    Py_ssize_t b0 = 0;
#if TILED
    __m128i m[16];
    for (; b0 + 16 <= bytes; b0 += 16) {
        for (int r = 0; r < 16; r++) {
            m[r] = r < rows ? _mm_loadu_si128((const __m128i *)(in + r * stride + b0)) : _mm_setzero_si128();
        }
        transpose16(m);
        for (int j = 0; j < 16; j++) {
            _mm_storeu_si128((__m128i *)(block + (b0 + j) * LANES), m[j]);
        }
    }
#endif
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = in + r * stride;
        for (Py_ssize_t b = b0; b < bytes; b++) {
            block[b * LANES + r] = row[b];
        }
    }
}

static void
from_lanes(const uint8_t *block, int rows, Py_ssize_t bytes, uint8_t *out, Py_ssize_t stride) {
    Py_ssize_t b0 = 0;
#if TILED
    __m128i m[16];
    for (; b0 + 16 <= bytes; b0 += 16) {
        for (int j = 0; j < 16; j++) {
            m[j] = _mm_loadu_si128((const __m128i *)(block + (b0 + j) * LANES));
        }
        transpose16(m);
        for (int r = 0; r < rows; r++) {
            _mm_storeu_si128((__m128i *)(out + r * stride + b0), m[r]);
        }
    }
#endif
    for (int r = 0; r < rows; r++) {
        uint8_t *row = out + r * stride;
        for (Py_ssize_t b = b0; b < bytes; b++) {
            row[b] = block[b * LANES + r];
        }
    }
}

static int
horizontal(
    const uint8_t *in, Py_ssize_t in_stride, int rows, int in_width, int pixel, int channels,
    const int32_t *bounds, const int32_t *weights, int taps, int out_width, uint8_t *out,
    Py_ssize_t out_stride
) {
    const Py_ssize_t in_bytes = (Py_ssize_t)in_width * pixel;
    const Py_ssize_t out_bytes = (Py_ssize_t)out_width * channels;
    /* calloc: lanes past the last row read zeros, not uninitialised memory. */
    uint8_t *block = calloc((size_t)in_bytes, LANES);
    uint8_t *result = malloc((size_t)out_bytes * LANES);
    if (block == NULL || result == NULL) {
        free(block);
        free(result);
        return -1;
    }
    for (int r0 = 0; r0 < rows; r0 += LANES) {
        const int n = rows - r0 < LANES ? rows - r0 : LANES;
        to_lanes(in + r0 * in_stride, in_stride, n, in_bytes, block);
        horizontal_block(block, pixel, channels, bounds, weights, taps, out_width, result);
        from_lanes(result, n, out_bytes, out + r0 * out_stride, out_stride);
    }
    free(block);
    free(result);
    return 0;
}

/* Checks shared by both passes: the weights table's shape, and that every output sample
 * reads input samples 0..extent-1 only. */
static int
check_table(const Py_buffer *bounds, const Py_buffer *weights, int outputs, int taps, int extent) {
    if (outputs < 0 || taps < 1 || bounds->len != (Py_ssize_t)outputs * 2 * 4 ||
        weights->len != (Py_ssize_t)outputs * taps * 4) {
        PyErr_SetString(PyExc_ValueError, "resample: weights table does not match the output size");
        return -1;
    }
    const int32_t *b = bounds->buf;
    for (int i = 0; i < outputs; i++) {
        if (b[2 * i] < 0 || b[2 * i + 1] < 0 || b[2 * i + 1] > taps || b[2 * i] + b[2 * i + 1] > extent) {
            PyErr_SetString(PyExc_ValueError, "resample: a filter window falls outside the input");
            return -1;
        }
    }
    return 0;
}

/* The last byte touched by `rows` rows of `bytes` bytes, `stride` apart, must lie in the buffer. */
static int
check_plane(const Py_buffer *view, Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t rows, Py_ssize_t bytes) {
    if (offset < 0 || stride < bytes || bytes < 0 || rows < 0 ||
        (rows > 0 && bytes > 0 && offset + (rows - 1) * stride + bytes > view->len)) {
        PyErr_SetString(PyExc_ValueError, "resample: image buffer too small for its shape");
        return -1;
    }
    return 0;
}

static PyObject *
py_vertical(PyObject *self, PyObject *args) {
    Py_buffer in, bounds, weights, out;
    Py_ssize_t in_offset, in_stride, row_bytes, in_rows, out_stride;
    int taps, out_rows;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(
            args, "y*nnnny*y*iiw*n", &in, &in_offset, &in_stride, &in_rows, &row_bytes, &bounds,
            &weights, &taps, &out_rows, &out, &out_stride
        )) {
        return NULL;
    }
    if (check_plane(&in, in_offset, in_stride, in_rows, row_bytes) == 0 &&
        check_plane(&out, 0, out_stride, out_rows, row_bytes) == 0 &&
        check_table(&bounds, &weights, out_rows, taps, (int)in_rows) == 0) {
        Py_BEGIN_ALLOW_THREADS
        vertical(
            (const uint8_t *)in.buf + in_offset, in_stride, row_bytes, bounds.buf, weights.buf, taps,
            out_rows, out.buf, out_stride
        );
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&in);
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *
py_horizontal(PyObject *self, PyObject *args) {
    Py_buffer in, bounds, weights, out;
    Py_ssize_t in_offset, in_stride, out_stride;
    int rows, in_width, pixel, channels, taps, out_width, status = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(
            args, "y*nniiiiy*y*iiw*n", &in, &in_offset, &in_stride, &rows, &in_width, &pixel,
            &channels, &bounds, &weights, &taps, &out_width, &out, &out_stride
        )) {
        return NULL;
    }
    if (channels < 1 || pixel < channels || pixel > 4 || in_width < 0 || out_width < 0) {
        PyErr_SetString(PyExc_ValueError, "resample: bad image shape");
    } else if (check_plane(&in, in_offset, in_stride, rows, (Py_ssize_t)in_width * pixel) == 0 &&
               check_plane(&out, 0, out_stride, rows, (Py_ssize_t)out_width * channels) == 0 &&
               check_table(&bounds, &weights, out_width, taps, in_width) == 0) {
        Py_BEGIN_ALLOW_THREADS
        status = horizontal(
            (const uint8_t *)in.buf + in_offset, in_stride, rows, in_width, pixel, channels,
            bounds.buf, weights.buf, taps, out_width, out.buf, out_stride
        );
        Py_END_ALLOW_THREADS
        result = status == 0 ? Py_NewRef(Py_None) : PyErr_NoMemory();
    }
    PyBuffer_Release(&in);
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&out);
    return result;
}

/* Pillow's pixels without a copy, through the Arrow C data interface it exports (Pillow 11.2+):
 * an 8-bit grey image is one uint8 array, an RGB image a fixed-size list of 4 uint8 per pixel.
 * `Pixels` exposes that memory as a read-only buffer and holds the array capsule, whose
 * release (when the capsule is freed) lets Pillow free the image. */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

typedef struct {
    PyObject_HEAD
    PyObject *capsule;
    const void *data;
    Py_ssize_t size;
} Pixels;

static int
pixels_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    Pixels *pixels = (Pixels *)self;
    return PyBuffer_FillInfo(view, self, (void *)pixels->data, pixels->size, 1, flags);
}

static void
pixels_dealloc(PyObject *self) {
    Py_XDECREF(((Pixels *)self)->capsule);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs pixels_buffer = {.bf_getbuffer = pixels_getbuffer};

static PyTypeObject PixelsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leanformers.processing._resample.Pixels",
    .tp_basicsize = sizeof(Pixels),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only view of a Pillow image's pixel memory.",
    .tp_dealloc = pixels_dealloc,
    .tp_as_buffer = &pixels_buffer,
};

static PyObject *
py_pillow_pixels(PyObject *self, PyObject *args) {
    PyObject *schema_capsule, *array_capsule;
    if (!PyArg_ParseTuple(args, "OO", &schema_capsule, &array_capsule)) {
        return NULL;
    }
    const struct ArrowSchema *schema = PyCapsule_GetPointer(schema_capsule, "arrow_schema");
    const struct ArrowArray *array = schema ? PyCapsule_GetPointer(array_capsule, "arrow_array") : NULL;
    if (array == NULL) {
        return NULL;
    }
    const struct ArrowArray *values = array;
    int64_t width = 1;
    if (array->release == NULL || schema->format == NULL || array->offset != 0) {
        values = NULL;
    } else if (strcmp(schema->format, "+w:4") == 0) {
        /* fixed-size list of 4: the bytes are the single child's */
        width = 4;
        if (schema->n_children != 1 || strcmp(schema->children[0]->format, "C") != 0 || array->n_children != 1 ||
            array->children[0]->offset != 0) {
            values = NULL;
        } else {
            values = array->children[0];
        }
    } else if (strcmp(schema->format, "C") != 0) {
        values = NULL;
    }
    if (values == NULL || values->n_buffers != 2 || values->buffers[1] == NULL || values->length != array->length * width) {
        PyErr_SetString(PyExc_ValueError, "resample: not an image of 8-bit samples");
        return NULL;
    }
    Pixels *pixels = PyObject_New(Pixels, &PixelsType);
    if (pixels == NULL) {
        return NULL;
    }
    pixels->capsule = Py_NewRef(array_capsule);
    pixels->data = values->buffers[1];
    pixels->size = (Py_ssize_t)values->length;
    return (PyObject *)pixels;
}

/* use(name) -> previous name: pick the horizontal kernel ("avx512", "avx2" or "plain"), so
 * that tests can hold each one to the same bytes; ValueError where the CPU lacks it. */
static PyObject *
py_use(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) {
        return NULL;
    }
    block_pass chosen = NULL;
    if (strcmp(name, "plain") == 0) {
        chosen = horizontal_block_plain;
    }
#ifdef DISPATCH
    else if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f")) {
        chosen = horizontal_block_avx512;
    } else if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2")) {
        chosen = horizontal_block_avx2;
    }
#endif
    if (chosen == NULL) {
        return PyErr_Format(PyExc_ValueError, "resample: no %s kernel on this machine", name);
    }
    const char *previous = kernel_name(horizontal_block);
    horizontal_block = chosen;
    return PyUnicode_FromString(previous);
}

static PyMethodDef methods[] = {
    {"use", py_use, METH_VARARGS, "use(kernel) -> previous kernel: 'avx512', 'avx2' or 'plain'"},
    {"vertical", py_vertical, METH_VARARGS,
     "vertical(src, offset, stride, rows, row_bytes, bounds, weights, taps, out_rows, dst, dst_stride)"},
    {"horizontal", py_horizontal, METH_VARARGS,
     "horizontal(src, offset, stride, rows, width, pixel, channels, bounds, weights, taps, out_width, "
     "dst, dst_stride)"},
    {"pillow_pixels", py_pillow_pixels, METH_VARARGS,
     "pillow_pixels(schema_capsule, array_capsule) -> read-only buffer over a Pillow image's pixels"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_resample",
    .m_doc = "Pillow's 8-bit resampling passes, vectorised.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__resample(void) {
#ifdef DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        horizontal_block = horizontal_block_avx512;
    } else if (__builtin_cpu_supports("avx2")) {
        horizontal_block = horizontal_block_avx2;
    }
#endif
    if (PyType_Ready(&PixelsType) < 0) {
        return NULL;
    }
    return PyModule_Create(&module);
}

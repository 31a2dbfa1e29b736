/* Pieces shared by the modeling extensions (_attention.c, _linear.c): torch's OpenMP runtime,
 * found among the loaded libraries, and a vectorised exponential. Included once per extension, so
 * everything here is static. */
#ifndef LEANFORMERS_NATIVE_H
#define LEANFORMERS_NATIVE_H

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#ifdef HAVE_KERNEL
/* exp(x) for x <= 0 (softmax scores minus their maximum, -x^2 in GELU): 2^k * p(r), x = k ln2 + r, |r| <= ln2 / 2. */
__attribute__((target("avx512f"))) static inline __m512
exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f)); /* below this the result underflows to ~0 */
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), 0);
    /* r = x - k ln2, with ln2 split in two so that k * ln2_high is exact */
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, k);
}
#endif

/* torch's OpenMP runtime, looked up once. */
typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*count_fn)(void);
static parallel_fn gomp_parallel;
static count_fn omp_thread, omp_threads;
static int looked_up;

/* The first OpenMP runtime loaded, or torch's own where several are (other packages bundle
 * theirs, and their teams would compete with torch's as threads of our own would). */
static int
find_openmp(struct dl_phdr_info *info, size_t size, void *found) {
    const char *name = info->dlpi_name;
    if (name != NULL && (strstr(name, "libgomp") || strstr(name, "libiomp5") || strstr(name, "/libomp"))) {
        const char **best = found;
        if (*best == NULL || strstr(name, "/torch/lib/") != NULL) {
            *best = name;
        }
        return strstr(name, "/torch/lib/") != NULL;
    }
    return 0;
}

static void
look_up_openmp(void) {
    looked_up = 1;
    const char *path = NULL;
    dl_iterate_phdr(find_openmp, &path);
    void *library = path != NULL ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
    if (library == NULL) {
        return;
    }
    parallel_fn parallel = (parallel_fn)dlsym(library, "GOMP_parallel");
    count_fn thread = (count_fn)dlsym(library, "omp_get_thread_num");
    count_fn threads = (count_fn)dlsym(library, "omp_get_num_threads");
    if (parallel != NULL && thread != NULL && threads != NULL) {
        gomp_parallel = parallel;
        omp_thread = thread;
        omp_threads = threads;
    }
    /* The handle stays open: the runtime is torch's and outlives this module anyway. */
}

#endif

/* CSR x dense product fused with Horner's "+ base":  out = alpha A x + beta * base  (float32, row-major).
 *
 * Built by gnnrec/native.py with the system C compiler (-O3 -march=native -fopenmp) and loaded with
 * ctypes. It links against libgomp.so.1, which torch has already loaded, so it shares torch's OpenMP threads
 * (without OpenMP it runs on one thread).
 * Rows are split into pieces of equal numbers of non-zeros, taken by threads as they finish. Each output row is accumulated in vector
 * registers, up to 64 columns at a time (eight 8-float AVX registers), the input row of a later non-zero is
 * prefetched, and the row is written once: one pass over the matrix per 64 columns, no temporaries.
 * Without AVX2/FMA the same loops are left to the compiler's vectoriser.
 */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CHUNK 64   /* columns per register block */
#define AHEAD 4    /* non-zeros ahead whose input row is prefetched */

/* Index arrays are int32 or int64 (torch's CSR uses one type for both); `wide` says which. Functions that
 * take `wide` are inlined with it constant, so the choice costs nothing in the loops. */
#define AT(arr, i) (wide ? ((const int64_t *)(arr))[i] : (int64_t)((const int32_t *)(arr))[i])

/* first row whose pointer is >= target (crow is non-decreasing) */
static int64_t row_at(const void *crow, const int wide, int64_t nrows, int64_t target) {
    int64_t lo = 0, hi = nrows;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (AT(crow, mid) < target) lo = mid + 1; else hi = mid;
    }
    return lo;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* Columns [c0, c0 + w) of rows [r0, r1), w <= 64, in nv = ceil(w / 8) registers; the last register is masked
 * when w is not a multiple of 8. Always inlined with constant nv and masked, so the accumulators stay in
 * registers. */
static inline __attribute__((always_inline)) void rows_block(
        const int nv, const int masked, const int wide, int64_t r0, int64_t r1, int64_t d, int64_t c0,
        int64_t w, const void *crow, const void *col, const float *val, const float *x, const float *base,
        float alpha, float beta, float *out) {
    int32_t lanes[8];
    for (int j = 0; j < 8; ++j) lanes[j] = j < w - 8 * (nv - 1) ? -1 : 0;
    const __m256i mask = _mm256_loadu_si256((const __m256i *)lanes);
#define LOAD(ptr, k) ((masked && (k) == nv - 1) ? _mm256_maskload_ps((ptr) + 8 * (k), mask) \
                                                 : _mm256_loadu_ps((ptr) + 8 * (k)))
    for (int64_t r = r0; r < r1; ++r) {
        __m256 a[8];
        if (base) {
            const float *b = base + r * d + c0;
            const __m256 bt = _mm256_set1_ps(beta);
#pragma GCC unroll 8
            for (int k = 0; k < nv; ++k) a[k] = _mm256_mul_ps(bt, LOAD(b, k));
        } else {
#pragma GCC unroll 8
            for (int k = 0; k < nv; ++k) a[k] = _mm256_setzero_ps();
        }
        const int64_t end = AT(crow, r + 1);
        for (int64_t p = AT(crow, r); p < end; ++p) {
            if (p + AHEAD < end) {
                const char *nx = (const char *)(x + AT(col, p + AHEAD) * d + c0);
#pragma GCC unroll 8
                for (int k = 0; k < nv; k += 2) _mm_prefetch(nx + 32 * k, _MM_HINT_T0);
            }
            const __m256 v = _mm256_set1_ps(alpha * val[p]);
            const float *xr = x + AT(col, p) * d + c0;
#pragma GCC unroll 8
            for (int k = 0; k < nv; ++k) a[k] = _mm256_fmadd_ps(v, LOAD(xr, k), a[k]);
        }
        float *o = out + r * d + c0;
#pragma GCC unroll 8
        for (int k = 0; k < nv; ++k) {
            if (masked && k == nv - 1) _mm256_maskstore_ps(o + 8 * k, mask, a[k]);
            else _mm256_storeu_ps(o + 8 * k, a[k]);
        }
    }
#undef LOAD
}

static inline __attribute__((always_inline)) void rows_columns(const int wide, int64_t r0, int64_t r1, int64_t d, int64_t c0, int64_t w,
                         const void *crow, const void *col, const float *val, const float *x, const float *base,
                         float alpha, float beta, float *out) {
    const int nv = (int)((w + 7) / 8);
    const int masked = (w % 8) != 0;
#define CASE(n) case n: \
        if (masked) rows_block(n, 1, wide, r0, r1, d, c0, w, crow, col, val, x, base, alpha, beta, out); \
        else rows_block(n, 0, wide, r0, r1, d, c0, w, crow, col, val, x, base, alpha, beta, out); \
        break;
    switch (nv) { CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8) }
#undef CASE
}

#else  /* portable: the compiler's vectoriser */

static inline __attribute__((always_inline)) void rows_columns(const int wide, int64_t r0, int64_t r1, int64_t d, int64_t c0, int64_t w,
                         const void *crow, const void *col, const float *val, const float *x, const float *base,
                         float alpha, float beta, float *out) {
    for (int64_t r = r0; r < r1; ++r) {
        float acc[CHUNK];
        for (int64_t j = 0; j < w; ++j) acc[j] = base ? beta * base[r * d + c0 + j] : 0.0f;
        const int64_t end = AT(crow, r + 1);
        for (int64_t p = AT(crow, r); p < end; ++p) {
            const float v = alpha * val[p];
            const float *xr = x + AT(col, p) * d + c0;
            for (int64_t j = 0; j < w; ++j) acc[j] += v * xr[j];
        }
        memcpy(out + r * d + c0, acc, (size_t)w * sizeof(float));
    }
}
#endif

/* out (nrows x d) = alpha A x + beta * base, base may be NULL; x is (ncols x d); out must not alias x or base.
 * crow and col are int64 when wide is non-zero, else int32.
 * Rows are cut into PIECES_PER_THREAD x nthreads pieces of equal non-zeros, handed out to threads as they finish
 * (dynamic): a non-zero does not cost the same everywhere (in a user-item graph the item rows gather from the
 * larger user table and miss the cache more), and one contiguous range per thread left one thread idle while
 * the other finished the slower half (quarter Amazon-Elec graph: 4.3 ms against 3.3 ms for the halves run one
 * after the other). */
#define PIECES_PER_THREAD 16
void gnnrec_csr_spmm_add(int wide, int64_t nrows, int64_t d, const void *crow, const void *col, const float *val,
                         const float *x, const float *base, float alpha, float beta, float *out, int nthreads) {
    const int64_t first = AT(crow, 0), nnz = AT(crow, nrows) - first;
    if (nthreads < 1) nthreads = 1;
    if (nnz < 4096 || nrows < 2 * nthreads) nthreads = 1;
    const int64_t pieces = nthreads == 1 ? 1 : (int64_t)nthreads * PIECES_PER_THREAD;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
    for (int64_t p = 0; p < pieces; ++p) {
        const int64_t r0 = p == 0 ? 0 : row_at(crow, wide, nrows, first + nnz * p / pieces);
        const int64_t r1 = p == pieces - 1 ? nrows : row_at(crow, wide, nrows, first + nnz * (p + 1) / pieces);
        for (int64_t c0 = 0; c0 < d; c0 += CHUNK) {
            const int64_t w = d - c0 < CHUNK ? d - c0 : CHUNK;
            if (wide) rows_columns(1, r0, r1, d, c0, w, crow, col, val, x, base, alpha, beta, out);
            else rows_columns(0, r0, r1, d, c0, w, crow, col, val, x, base, alpha, beta, out);
        }
    }
}

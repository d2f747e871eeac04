/* Row gathers and scatter-adds of embedding tables (float32, row-major, int64 row ids), for the BPR score
 * differences every model trains on and the backward of row lookups (gnnrec/models/rows.py).
 *
 * Why: torch runs a BPR batch's scores as three row gathers, two products and two sums, and their backward as
 * three products, zero-filled tables and three index_add_ passes; index_add_ on CPU moves 1 MB of rows in
 * ~70 us, 4x its memory traffic, and 14x that with alpha != 1. Here the scores are one pass over the batch's
 * rows, and the gradient one pass that adds each triple's rows into the tables (docs/performance.md).
 *
 * Scatter-adds are split between threads by column chunks (multiples of 16 floats, one 64-byte cache line):
 * each thread adds every row's own columns in the batch's order, so duplicate ids need no atomics, no two
 * threads write the same cache line, and the result does not depend on the number of threads.
 */
#include <stdint.h>

static int column_chunks(int64_t width, int64_t work, int nthreads) {
    int64_t chunks = width / 16;
    if (nthreads < 1 || work < 65536) nthreads = 1;
    if (chunks > nthreads) chunks = nthreads;
    return chunks < 1 ? 1 : (int)chunks;
}

static void chunk_range(int64_t width, int chunks, int c, int64_t *lo, int64_t *hi) {
    int64_t lines = (width + 15) / 16;
    *lo = (lines * c / chunks) * 16;
    *hi = (lines * (c + 1) / chunks) * 16;
    if (*hi > width) *hi = width;
}

/* out[out_ids[i]] += alpha * src[src_ids ? src_ids[i] : i] for i < n (rows of `width` floats). */
void gnnrec_rows_add(int64_t n, int64_t width, const int64_t *out_ids, const int64_t *src_ids, const float *src,
                     float alpha, float *out, int nthreads) {
    int chunks = column_chunks(width, n * width, nthreads);
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
    for (int c = 0; c < chunks; ++c) {
        int64_t lo, hi;
        chunk_range(width, chunks, c, &lo, &hi);
        for (int64_t i = 0; i < n; ++i) {
            const float *s = src + (src_ids ? src_ids[i] : i) * width;
            float *o = out + out_ids[i] * width;
#pragma omp simd
            for (int64_t j = lo; j < hi; ++j) o[j] += alpha * s[j];
        }
    }
}

/* diff[i] = <U[users[i]], I[pos[i]] - I[neg[i]]>: the BPR score differences of a batch. */
void gnnrec_bpr_differences(int64_t n, int64_t width, const int64_t *users, const int64_t *pos, const int64_t *neg,
                            const float *U, const float *I, float *diff, int nthreads) {
    if (nthreads < 1 || n * width < 65536) nthreads = 1;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const float *u = U + users[i] * width, *p = I + pos[i] * width, *q = I + neg[i] * width;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t j = 0; j < width; ++j) acc += u[j] * (p[j] - q[j]);
        diff[i] = acc;
    }
}

/* The backward of gnnrec_bpr_differences with coefficients coef[i] (the loss's gradient per difference):
 * gU[users[i]] += coef[i] (I[pos[i]] - I[neg[i]]),  gI[pos[i]] += coef[i] U[users[i]],
 * gI[neg[i]] -= coef[i] U[users[i]].  gU and gI may be one table (then U and I are its row blocks).
 * Ids are checked by the caller (gnnrec/models/rows.py): every id indexes its table. */
void gnnrec_bpr_backward(int64_t n, int64_t width, const int64_t *users, const int64_t *pos, const int64_t *neg,
                         const float *U, const float *I, const float *coef, float *gU, float *gI, int nthreads) {
    int chunks = column_chunks(width, 3 * n * width, nthreads);
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
    for (int c = 0; c < chunks; ++c) {
        int64_t lo, hi;
        chunk_range(width, chunks, c, &lo, &hi);
        for (int64_t i = 0; i < n; ++i) {
            const float w = coef[i];
            const float *u = U + users[i] * width, *p = I + pos[i] * width, *q = I + neg[i] * width;
            float *gu = gU + users[i] * width, *gp = gI + pos[i] * width, *gq = gI + neg[i] * width;
            if (pos[i] != neg[i]) {
#pragma omp simd
                for (int64_t j = lo; j < hi; ++j) {
                    const float uj = u[j];
                    gu[j] += w * (p[j] - q[j]);
                    gp[j] += w * uj;
                    gq[j] -= w * uj;
                }
            } else {  /* gp and gq are one row: plain loop, in the formula's order (NaN stays NaN) */
                for (int64_t j = lo; j < hi; ++j) {
                    const float uj = u[j];
                    gu[j] += w * (p[j] - q[j]);
                    gp[j] += w * uj;
                    gq[j] -= w * uj;
                }
            }
        }
    }
}

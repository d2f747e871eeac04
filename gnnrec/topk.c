/* Top-k of each row under gnnrec's tie rule: score descending, equal scores by lower column first (float32,
 * rows `ld` floats apart). Writes each row's k column ids (and their scores) in that order. NaN ranks last.
 *
 * Why: torch.topk on CPU takes 24 ms for 2048 x 8192 scores (k = 11) and ranks ties arbitrarily, so gnnrec
 * followed it with a fix-up and a sort (gnnrec/topk.py). One scan keeps the k best in a small sorted array: a
 * score enters only when it beats the k-th best, and since columns are scanned in ascending order an equal
 * score (a higher column) never does, which is the tie rule itself. Eight scores are compared with the k-th
 * best at a time (AVX2) and only lanes that beat it take the slow path. Built by gnnrec/native.py; rows are
 * split between torch's OpenMP threads.
 */
#include <math.h>
#include <stdint.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

/* insert (v, j) into val/idx, sorted descending, holding *cnt <= k entries; an equal score goes after (its
 * column is higher: columns arrive in ascending order) */
static inline void insert(float v, int64_t j, float *val, int64_t *idx, int64_t *cnt, int64_t k) {
    int64_t p = *cnt < k ? (*cnt)++ : k - 1;
    while (p > 0 && val[p - 1] < v) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
        --p;
    }
    val[p] = v;
    idx[p] = j;
}

static void row_topk(const float *row, int64_t n, int64_t k, float *val, int64_t *idx) {
    int64_t cnt = 0, j = 0;
    for (; j < n && cnt < k; ++j) insert(isnan(row[j]) ? -INFINITY : row[j], j, val, idx, &cnt, k);
    if (cnt < k) return;
#if defined(__AVX2__)
    for (; j + 8 <= n; j += 8) {
        const __m256 v = _mm256_loadu_ps(row + j);
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(val[k - 1]), _CMP_GT_OQ));
        while (mask) {  /* lanes in ascending column order, each checked against the updated k-th best */
            const int lane = __builtin_ctz(mask);
            mask &= mask - 1;
            if (row[j + lane] > val[k - 1]) insert(row[j + lane], j + lane, val, idx, &cnt, k);
        }
    }
#endif
    for (; j < n; ++j)
        if (row[j] > val[k - 1]) insert(row[j], j, val, idx, &cnt, k);  /* NaN > x is false: never enters */
}

/* scores: nrows rows of ncols floats, row r at scores + r * ld; 1 <= k <= ncols. out_idx, out_val: nrows x k. */
void gnnrec_row_topk(int64_t nrows, int64_t ncols, int64_t ld, const float *scores, int64_t k, int64_t *out_idx,
                     float *out_val, int nthreads) {
    if (nthreads < 1 || nrows < 2 || nrows * ncols < 65536) nthreads = 1;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t r = 0; r < nrows; ++r)
        row_topk(scores + r * ld, ncols, k, out_val + r * k, out_idx + r * k);
}

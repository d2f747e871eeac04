/* Adam's update of the listed rows of a table, in one pass (float32, row-major):
 *   m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2;  p -= step_size * m / (sqrt(v) + eps)
 * for each row rows[i] of p, m, v (n_table x width) with that row's gradient grad[i] (n x width). The caller
 * folds Adam's bias corrections into step_size and eps (gnnrec/models/sparse_adam.py), and passes 1 - beta1
 * and 1 - beta2 computed in double (1 - beta2 from a float32 beta2 is 1.3e-5 off, relatively). Rows must be distinct.
 *
 * Why: torch runs the same update as gather, five elementwise passes and three scatters over the rows' moments
 * (about 6x slower for FREEDOM's 4096-d image table, docs/performance.md); here each value of p, m, v and the
 * gradient is read once and p, m, v written once. Built by gnnrec/native.py (-O3 -march=native -fno-math-errno
 * -fopenmp, so that sqrtf vectorises); rows are split between torch's OpenMP threads.
 */
#include <math.h>
#include <stdint.h>

void gnnrec_row_adam(int64_t n, int64_t width, const int64_t *rows, const float *grad, float *param,
                     float *exp_avg, float *exp_avg_sq, float one_minus_beta1, float beta2, float one_minus_beta2,
                     float eps, float step_size, int nthreads) {
    if (nthreads < 1 || n * width < 65536) nthreads = 1;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const float *g = grad + i * width;
        float *p = param + rows[i] * width, *m = exp_avg + rows[i] * width, *v = exp_avg_sq + rows[i] * width;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
            const float gj = g[j];
            const float mj = m[j] + one_minus_beta1 * (gj - m[j]);
            const float vj = beta2 * v[j] + one_minus_beta2 * gj * gj;
            m[j] = mj;
            v[j] = vj;
            p[j] -= step_size * mj / (sqrtf(vj) + eps);
        }
    }
}

/*
 * attention/utility.cl -- the kernels that are never tuned: the input check and the materialized baseline's
 * softmax kernels. Built with the problem's defines alone. Compiled as common.cl + attention/shared.cl + this file.
 */

/* attn_check_finite: one row (b, h, i) of a [B, H, ROWS, D] tensor per work-item: the smallest row index
   (b * H + h) * ROWS + i holding NaN or infinity goes to first[0] (which the host sets to INT_MAX).
   NDRange: global roundup(COUNT, 64), any local size. */
__kernel void attn_check_finite(const int COUNT, const int ROWS, const int H, const __global real* X, const long4 xa,
                                volatile __global int* first)
{
  const int row = get_global_id(0);
  if (row >= COUNT)
    return;
  const int bh = row / ROWS, i = row - bh * ROWS;
  const int b = bh / H, h = bh - b * H;
  const long x = at_row(xa, b, h, i);
  int bad = 0;
  for (int k = 0; k < D; ++k) bad |= !isfinite(LOAD1(X, x + k));
  if (bad) atomic_min(first, row);
}

/* the scores of keys [j, j + 16) of a materialized row (scaled, capped, -inf where masked); lanes past LK are -inf */
inline float16 at_mat_scores(const __global real* s, const int j, const int LK, const int lo, const int hi, const int selected) {
  float16 x;
  if (j + 16 <= LK) {
    x = LOADF(16, s, j);
  } else {
    float t[16];
    for (int c = 0; c < 16; ++c) t[c] = j + c < LK ? LOADF1(s, j + c) : 0.0f;
    x = PLOAD16(t, 0);
  }
  const int16 key = (int16)(j) + AT_LANES;
  return select((float16)(-INFINITY), at_cap(x * SCALE), (key >= (int16)(lo)) & (key <= (int16)(hi)) & (int16)(selected ? -1 : 0));
}

/* stores 16 values at keys [j, j + 16) of a row, those below LK */
inline void at_mat_store(__global real* s, const int j, const int LK, const float16 v) {
  if (j + 16 <= LK) {
    STOREF(16, s, j, v);
  } else {
    float t[16];
    PSTORE16(t, 0, v)
    for (int c = 0; c < 16 && j + c < LK; ++c) STOREF1(s, j + c, t[c]);
  }
}

/*
 * attn_mat_softmax: the materialized baseline's softmax, one row of S per work-item: S [B * HQ, LQ, LK] (raw dot
 * products, in the storage precision) becomes P in place, and LSE[row] its log-sum-exp (-inf and P = 0 for a row
 * without a visible key). NDRange: global roundup(NROWS, 64), any local size.
 */
__kernel void attn_mat_softmax(const int NROWS, const int LQ, const int LK, __global real* S, __global float* LSE,
                               const __global uchar* map, const int NQB, const int NKB)
{
  const int row = get_global_id(0);
  if (row >= NROWS)
    return;
  const int bh = row / LQ, i = row - bh * LQ, OFF = LK - LQ;
  const int lo = at_lo(i, OFF), hi = at_hi(i, OFF, LK);
  __global real* s = S + (long)row * LK;
  float16 mv = (float16)(-INFINITY);
  for (int j = 0; j < LK; j += 16) mv = fmax(mv, at_mat_scores(s, j, LK, lo, hi, at_selected(map, bh, i, j, NQB, NKB)));
  float t[16];
  PSTORE16(t, 0, mv)
  float m = t[0];
  for (int c = 1; c < 16; ++c) m = fmax(m, t[c]);
  const float ms = m == -INFINITY ? 0.0f : m;
  float16 sv = (float16)(0.0f);
  for (int j = 0; j < LK; j += 16) sv += exp(at_mat_scores(s, j, LK, lo, hi, at_selected(map, bh, i, j, NQB, NKB)) - ms);
  PSTORE16(t, 0, sv)
  float sum = 0.0f;
  for (int c = 0; c < 16; ++c) sum += t[c];
  const float f = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = 0; j < LK; j += 16)
    at_mat_store(s, j, LK, exp(at_mat_scores(s, j, LK, lo, hi, at_selected(map, bh, i, j, NQB, NKB)) - ms) * f);
  LSE[row] = sum > 0.0f ? m + log(sum) : -INFINITY;
}

/*
 * attn_mat_dsoftmax: the materialized backward's softmax gradient, one row per work-item: dP [B * HQ, LQ, LK] becomes
 * dS = P (dP - sum_j P dP) c'(s) SCALE in place (c' the softcap's derivative, from s = log P + LSE).
 * NDRange: global roundup(NROWS, 64), any local size.
 */
__kernel void attn_mat_dsoftmax(const int NROWS, const int LK, const __global real* P, __global real* dP, const __global float* LSE)
{
  const int row = get_global_id(0);
  if (row >= NROWS)
    return;
  const __global real* p = P + (long)row * LK;
  __global real* g = dP + (long)row * LK;
  float delta = 0.0f;
  for (int j = 0; j < LK; ++j) delta += LOAD1(p, j) * LOAD1(g, j);
  const float lse = LSE[row];
  (void)lse;
  for (int j = 0; j < LK; ++j) {
    const float pj = LOAD1(p, j);
    float d = SCALE;
#if USE_SOFTCAP
    if (pj > 0.0f) {
      const float t = (log(pj) + lse) / SOFTCAP;
      d = (1.0f - t * t) * SCALE;
    }
#endif
    STORE1(g, j, pj * (LOAD1(g, j) - delta) * d);
  }
}

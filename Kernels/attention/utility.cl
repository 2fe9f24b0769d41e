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

/* ------------------------------------------------------------------------------------------------ */
/* Block maps: the index form, and the mask builders                                                */
/* ------------------------------------------------------------------------------------------------ */
/*
 * Maps are uchar [ROWS][NKB] (ROWS = B * HQ * NQB, one row per query block); the index form (FlexAttention's
 * kv_num_blocks and kv_indices) is counts int [ROWS] and indices int [ROWS][NKB], each row's first counts[row]
 * entries the selected key blocks in increasing order, the rest -1.
 */

/* attn_map_to_indices: one row per work-item. NDRange: global roundup(ROWS, 64), any local size. */
__kernel void attn_map_to_indices(const int ROWS, const int NKB, const __global uchar* map, __global int* counts, __global int* indices)
{
  const int row = get_global_id(0);
  if (row >= ROWS)
    return;
  int count = 0;
  for (int j = 0; j < NKB; ++j)
    if (map[(long)row * NKB + j]) indices[(long)row * NKB + count++] = j;
  counts[row] = count;
  for (int c = count; c < NKB; ++c) indices[(long)row * NKB + c] = -1;
}

/* attn_indices_to_map: one row per work-item; a count outside [0, NKB] or an index outside [0, NKB) among a row's
   first count entries sets bad[0] to the smallest such row (the host sets it to INT_MAX) and selects nothing for
   the index. NDRange: global roundup(ROWS, 64), any local size. */
__kernel void attn_indices_to_map(const int ROWS, const int NKB, const __global int* counts, const __global int* indices,
                                  __global uchar* map, volatile __global int* bad)
{
  const int row = get_global_id(0);
  if (row >= ROWS)
    return;
  for (int j = 0; j < NKB; ++j) map[(long)row * NKB + j] = 0;
  const int count = counts[row];
  int wrong = count < 0 || count > NKB;
  for (int c = 0; c < min(max(count, 0), NKB); ++c) {
    const int j = indices[(long)row * NKB + c];
    if (j >= 0 && j < NKB)
      map[(long)row * NKB + j] = 1;
    else
      wrong = 1;
  }
  if (wrong) atomic_min(bad, row);
}

/*
 * attn_pattern_map: one map entry per work-item, (row, j) with row = (b * HQ + h) * NQB + i. Head h's pattern is
 * patterns[h * 6 ...] = (kind, width, lag, count, first stripe, stripes), kinds:
 *   0 empty; 1 dense; 2 diagonal band: |j - i| < width; 3 multi-diagonal: |j - i - m lag| < width for some
 *   m in [-count, count]; 4 vertical stripes: j is one of stripes[first .. first + stripes).
 * The entry is kept where the pattern selects it and the block holds a visible (row, key) pair of the problem's
 * causal and window masks (the MASKED argument 1), else 0.
 * NDRange: global (roundup(NKB, 16), ROWS), any local size.
 */
__kernel void attn_pattern_map(const int ROWS, const int NQB, const int NKB, const int HQ, const int LQ, const int LK, const int BLOCK,
                               const int MASKED, const __global int* patterns, const __global int* stripes, __global uchar* map)
{
  const int j = get_global_id(0), row = get_global_id(1);
  if (j >= NKB || row >= ROWS)
    return;
  const int bhq = row / NQB, i = row - bhq * NQB;
  const int h = bhq - (bhq / HQ) * HQ;
  const __global int* p = patterns + h * 6;
  int keep = 0;
  switch (p[0]) {
  case 1: keep = 1; break;
  case 2: keep = abs(j - i) < p[1]; break;
  case 3:
    for (int m = -p[3]; m <= p[3]; ++m) keep |= abs(j - i - m * p[2]) < p[1];
    break;
  case 4:
    for (int s = 0; s < p[5]; ++s) keep |= stripes[p[4] + s] == j;
    break;
  default: break;
  }
  if (keep && MASKED) {
    /* the block's rows [i0, i1] see keys [at_lo(i0), at_hi(i1)] at most: is any of the block's keys among them? */
    const int OFF = LK - LQ;
    const int i0 = i * BLOCK, i1 = min(LQ, i0 + BLOCK) - 1, j0 = j * BLOCK, j1 = min(LK, j0 + BLOCK) - 1;
    keep = at_lo(i0, OFF) <= j1 && at_hi(i1, OFF, LK) >= j0 && at_lo(i0, OFF) <= at_hi(i1, OFF, LK);
  }
  map[(long)row * NKB + j] = keep ? 1 : 0;
}

/* attn_pool: the mean of each block of BLOCK rows of a [B, H, ROWS, D] tensor (the last block: of its rows), fp32
   [B * H * NB][D]; one (block, column) per work-item. NDRange: global (roundup(D, 16), B * H * NB), any local size. */
__kernel void attn_pool(const int NB, const int H, const int ROWS, const int BLOCK, const __global real* X, const long4 xa, __global float* pooled)
{
  const int k = get_global_id(0), r = get_global_id(1);
  if (k >= D)
    return;
  const int bh = r / NB, n = r - bh * NB;
  const int b = bh / H, h = bh - b * H;
  const int first = n * BLOCK, last = min(ROWS, first + BLOCK);
  float sum = 0.0f;
  for (int i = first; i < last; ++i) sum += LOAD1(X, at_row(xa, b, h, i) + k);
  pooled[(long)r * D + k] = sum / (float)(last - first);
}

/*
 * attn_predict_map: SpargeAttn's prediction, one query block per work-item (row = (b * HQ + h) * NQB + i): block
 * scores s_j = SCALE q̄_i . k̄_j of the pooled Q and K (key/value head h / GROUP), over the key blocks the causal and
 * window masks leave (MASKED 1), softmax over them; kept: the TOPK blocks of largest score (TOPK > 0), or the
 * fewest blocks, by decreasing score, whose probabilities reach TAU (TOPK 0). Ties go to the lower index.
 * `scores` is fp32 scratch [ROWS][NKB]. NDRange: global roundup(ROWS, 64), any local size.
 */
__kernel void attn_predict_map(const int ROWS, const int NQB, const int NKB, const int HQ, const int GROUP, const int LQ, const int LK,
                               const int BLOCK, const int MASKED, const int TOPK, const float TAU, const __global float* pq,
                               const __global float* pk, __global float* scores, __global uchar* map)
{
  const int row = get_global_id(0);
  if (row >= ROWS)
    return;
  const int bhq = row / NQB, i = row - bhq * NQB;
  const int b = bhq / HQ, h = bhq - b * HQ;
  const long keys = (long)(b * (HQ / GROUP) + h / GROUP) * NKB;
  const int OFF = LK - LQ;
  const int i0 = i * BLOCK, i1 = min(LQ, i0 + BLOCK) - 1;
  __global float* s = scores + (long)row * NKB;
  float m = -INFINITY;
  for (int j = 0; j < NKB; ++j) {
    const int j0 = j * BLOCK, j1 = min(LK, j0 + BLOCK) - 1;
    const int visible = !MASKED || (at_lo(i0, OFF) <= j1 && at_hi(i1, OFF, LK) >= j0 && at_lo(i0, OFF) <= at_hi(i1, OFF, LK));
    float dot = 0.0f;
    for (int k = 0; k < D; ++k) dot += pq[(long)row * D + k] * pk[(keys + j) * D + k];
    s[j] = visible ? SCALE * dot : -INFINITY;
    m = fmax(m, s[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < NKB; ++j) {
    s[j] = m == -INFINITY ? 0.0f : exp(s[j] - m);
    sum += s[j];
  }
  for (int j = 0; j < NKB; ++j) {
    const float pj = sum > 0.0f ? s[j] / sum : 0.0f;
    /* the blocks ranked before j (larger probability, or equal and a lower index) and their mass */
    int rank = 0;
    float before = 0.0f;
    for (int c = 0; c < NKB; ++c) {
      const float pc = sum > 0.0f ? s[c] / sum : 0.0f;
      if (pc > pj || (pc == pj && c < j)) {
        ++rank;
        before += pc;
      }
    }
    map[(long)row * NKB + j] = pj > 0.0f && (TOPK > 0 ? rank < TOPK : before < TAU);
  }
}

/*
 * attention/backward.cl -- the backward role's tuned kernels (FlashAttention-2's backward, deterministic: no
 * atomics); built with its configuration's defines. Compiled as common.cl + attention/shared.cl + attention/backward.cl.
 *
 * From the saved O and LSE and the incoming dO:
 *   delta_i = dO_i . O_i;  p_ij = exp(s_ij - LSE_i);  dP = dO V^T;  dS_ij = p_ij (dP_ij - delta_i) c'(s_ij) SCALE
 *   (c' the softcap's derivative, 1 - tanh^2, or 1);  dV = P^T dO;  dK = dS^T Q;  dQ = dS K.
 * dK and dV of key/value head hk sum over its GROUP query heads.
 */

/* attn_backward_delta: one row per work-item, row = (b * HQ + h) * LQ + i: delta[row] = dO_i . O_i (fp32).
   NDRange: global roundup(NROWS, 64), any local size. */
__kernel void attn_backward_delta(const int NROWS, const int LQ, const int HQ, const __global real* O, const long4 oa,
                                  const __global real* dO, const long4 ga, __global float* delta)
{
  const int row = get_global_id(0);
  if (row >= NROWS)
    return;
  const int bh = row / LQ, i = row - bh * LQ;
  const int b = bh / HQ, h = bh - b * HQ;
  const long o = at_row(oa, b, h, i), g = at_row(ga, b, h, i);
  float sum = 0.0f;
  for (int k = 0; k < D; ++k) sum += LOAD1(O, o + k) * LOAD1(dO, g + k);
  delta[row] = sum;
}

/*
 * attn_backward: work-group (s, y), y = b * HKV + hk: key tiles s, s + KS, s + 2 KS... of key/value head hk. Per key
 * tile: K (transposed and row-major) and V (transposed) staged once; for every query head of the group and every
 * query tile that sees the tile (causal and window bounds, the block map): the scores and dP recomputed, P and dS,
 * dV and dK accumulated in local memory, and dQ's share added to split s's fp32 partial sums dQp (rows
 * (s * BATCH * HQ + b * HQ + h) * LQP + i of stride DP, LQP = LQ rounded up to BQ; zeroed by the host and summed by
 * attn_backward_dq). A work-group alone writes its dK and dV rows and its split's dQ partial sums.
 * NDRange: global (KS * WG, BATCH * HQ / GROUP), local (WG, 1).
 * Local: Kt DP*BK, Vt DP*BK, Ks BK*DP, Qs BQ*DP, Gs BQ*DP (dO), Z BQ*BK (scores, then P), Zd BQ*BK (dP, then dS),
 * dKa BK*DP, dVa BK*DP, Rs 2*BQ (LSE, delta).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_backward(const int BATCH, const int LQ, const int LK, const int HQ, const int GROUP, const int LQP,
                   const __global real* Q, const long4 qa, const __global real* K, const long4 ka,
                   const __global real* V, const long4 va, const __global real* dO, const long4 ga,
                   const __global float* LSE, const __global float* delta, __global float* dQp,
                   __global real* dK, const long4 dka, __global real* dV, const long4 dva,
                   const __global uchar* map, const int NQB, const int NKB,
                   __local float* Kt, __local float* Vt, __local float* Ks, __local float* Qs, __local float* Gs,
                   __local float* Z, __local float* Zd, __local float* dKa, __local float* dVa, __local float* Rs)
{
  const int OFF = LK - LQ;
  const int split = get_group_id(0), y = get_group_id(1);
  const int hkv = HQ / GROUP;
  const int b = y / hkv, hk = y - b * hkv;
  const int tiles = (LK + BK - 1) / BK;
  for (int kt = split; kt < tiles; kt += KS) {
    const int k0 = kt * BK, kvalid = min(BK, LK - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    at_stage(Kt, K, at_row(ka, b, hk, k0), ka.s3, BK, kvalid, 1);
    at_stage(Vt, V, at_row(va, b, hk, k0), va.s3, BK, kvalid, 1);
    at_stage(Ks, K, at_row(ka, b, hk, k0), ka.s3, BK, kvalid, 0);
    at_zero(dKa, BK * DP);
    at_zero(dVa, BK * DP);
    /* the query rows that see some key of the tile */
    const int iLo = AT_HI ? max(0, k0 - OFF - HI_OFF) : 0;
    const int iHi = AT_LO ? min(LQ - 1, k0 + kvalid - 1 - OFF + LO_OFF) : LQ - 1;
    for (int g = 0; g < GROUP; ++g) {
      const int h = hk * GROUP + g, bh = b * HQ + h;
      const int qtEnd = iLo <= iHi ? iHi / BQ + 1 : 0;
      for (int qt = at_next_query_tile(map, bh, iLo / BQ, qtEnd, k0, NQB, NKB); qt < qtEnd; qt = at_next_query_tile(map, bh, qt + 1, qtEnd, k0, NQB, NKB)) {
        const int q0 = qt * BQ, qvalid = min(BQ, LQ - q0);
        barrier(CLK_LOCAL_MEM_FENCE);
        at_stage(Qs, Q, at_row(qa, b, h, q0), qa.s3, BQ, qvalid, 0);
        at_stage(Gs, dO, at_row(ga, b, h, q0), ga.s3, BQ, qvalid, 0);
        for (int r = get_local_id(0); r < BQ; r += WG) {
          Rs[r] = r < qvalid ? LSE[(long)bh * LQ + q0 + r] : -INFINITY;
          Rs[BQ + r] = r < qvalid ? delta[(long)bh * LQ + q0 + r] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        at_dot(Z, Kt, BK, Qs, BQ);
        at_dot(Zd, Vt, BK, Gs, BQ);
        barrier(CLK_LOCAL_MEM_FENCE);
        /* P and dS, 16 keys of a row per step; a row without a visible key (LSE -inf) gets none */
        for (int q = 0, jb = get_local_id(0); at_carry(&q, &jb, BK / 16), q < BQ; jb += WG) {
          const int j = jb * 16, i = q0 + q;
          const int16 key = (int16)(k0 + j) + AT_LANES;
          const float lse = Rs[q], dl = Rs[BQ + q];
          const int16 visible = (key >= (int16)(at_lo(i, OFF))) & (key <= (int16)(at_hi(i, OFF, LK))) & (int16)(lse > -INFINITY ? -1 : 0);
          float16 s = vload16(0, Z + q * BK + j) * SCALE;
          float16 deriv = (float16)(SCALE);
#if USE_SOFTCAP
          const float16 t = tanh(s / SOFTCAP);
          s = SOFTCAP * t;
          deriv = (1.0f - t * t) * SCALE;
#endif
          const float16 p = select((float16)(0.0f), exp(s - lse), visible);
          vstore16(p, 0, Z + q * BK + j);
          vstore16(p * (vload16(0, Zd + q * BK + j) - dl) * deriv, 0, Zd + q * BK + j);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        at_accumulate(dVa, Z, 1, BK, Gs, BK, BQ);
        at_accumulate(dKa, Zd, 1, BK, Qs, BK, BQ);
        at_accumulate_global(dQp + (((long)split * BATCH * HQ + bh) * LQP + q0) * DP, Zd, BK, 1, Ks, BQ, BK);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = get_local_id(0); r < kvalid; r += WG) {
      at_store_row(dK, at_row(dka, b, hk, k0 + r), dKa + r * DP, 1.0f);
      at_store_row(dV, at_row(dva, b, hk, k0 + r), dVa + r * DP, 1.0f);
    }
  }
}

/* attn_backward_dq: dQ = the sum of the KS splits' partial sums, in order (deterministic); one element per
   work-item. NDRange: global (roundup(D, 16), NROWS), local (16, 1). */
__kernel void attn_backward_dq(const int NROWS, const int LQ, const int LQP, const int HQ, const __global float* dQp,
                               __global real* dQ, const long4 qa)
{
  const int k = get_global_id(0), row = get_global_id(1);
  if (k >= D || row >= NROWS)
    return;
  const int bh = row / LQ, i = row - bh * LQ;
  const int b = bh / HQ, h = bh - b * HQ;
  const long rowsPerSplit = (long)(NROWS / LQ) * LQP;
  float sum = 0.0f;
  for (int s = 0; s < KS; ++s) sum += dQp[(s * rowsPerSplit + (long)bh * LQP + i) * DP + k];
  STORE1(dQ, at_row(qa, b, h, i) + k, sum);
}

/* attn_zero: X[0, N) = 0, 16 floats per work-item. NDRange: global roundup(ceil(N / 16), 64), any local size. */
__kernel void attn_zero(const long N, __global float* X)
{
  const long e = get_global_id(0) * 16L;
  for (int c = 0; c < 16 && e + c < N; ++c) X[e + c] = 0.0f;
}

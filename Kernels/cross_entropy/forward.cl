/*
 * cross_entropy/forward.cl -- the forward role's tuned kernels (the loss); built with its configuration's defines.
 * Compiled as common.cl + cross_entropy/shared.cl + cross_entropy/forward.cl.
 */
/* ------------------------------------------------------------------------------------------------ */
/* Forward                                                                                          */
/* ------------------------------------------------------------------------------------------------ */
/*
 * cce_forward: group (x, s) owns rows [x*TB, x*TB + TB) and the vocabulary chunks s, s + VS, ...
 * It writes, per row, a partial state (max, sum of exp relative to max, target logit, sum of logits)
 * to part[(s * ROWS + i) * 4 ...], and the largest logit of each (row tile, chunk) over rows with a target
 * to tmax[tile * chunks + chunk]. Local: Es TB*KCH, Cs NB*KCH, Z TB*NB, St TB*5.
 * NDRange: global (ceil(ROWS/TB) * WG, VS), local (WG, 1).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void cce_forward(const int ROWS, const int V, const int D, const int DP,
                 const __global real* E, const __global real* C, const __global real* bias, const __global int* order,
                 const __global int* targets, __global float* part, __global float* tmax,
                 __local float* Es, __local float* Cs, __local float* Z, __local float* St)
{
  const int row0 = get_group_id(0) * TB;
  const int split = get_group_id(1);
  const int rows = min(TB, ROWS - row0);
  const int KCH = ce_chunk(DP), whole = KCH == DP;
  if (whole) ce_stage(Es, E, order, 0, row0, TB, rows, D, 0, DP, 1);
  for (int r = get_local_id(0); r < TB; r += WG) {
    St[r * 5 + 0] = -INFINITY;
    St[r * 5 + 1] = 0.0f;
    St[r * 5 + 2] = 0.0f;
    St[r * 5 + 3] = 0.0f;
  }
  const int chunks = (V + NB - 1) / NB;
  for (int chunk = split; chunk < chunks; chunk += VS) {
    const int v0 = chunk * NB;
    const int cols = min(NB, V - v0);
    barrier(CLK_LOCAL_MEM_FENCE);
    ce_tile(Z, Es, Cs, E, row0, rows, C, order, v0, cols, 0, whole, D, DP, KCH);
    for (int r = get_local_id(0); r < rows; r += WG) {
      const int t = CE_TARGET(targets, row0 + r);
      float16 mv = (float16)(-INFINITY), zs = (float16)(0.0f);
      int16 bad = (int16)(0);
      for (int n = 0; n < NB; n += 16) {
        bad |= ce_lanes(cols - n) & ~isfinite(vload16(0, Z + r * NB + n));
        const float16 z = ce_logits16(Z + r * NB + n, v0 + n, cols - n, bias, order);
        vstore16(z, 0, Z + r * NB + n);
        mv = fmax(mv, z);
        zs += select((float16)(0.0f), z, ce_lanes(cols - n));
      }
      const float m = ce_hmax16(mv);
      float16 sv = (float16)(0.0f);
      for (int n = 0; n < NB; n += 16) sv += exp(vload16(0, Z + r * NB + n) - m);
      const float s = CE_HSUM(16, sv);
      const float m0 = St[r * 5 + 0], s0 = St[r * 5 + 1];
      const float mn = fmax(m0, m);
      St[r * 5 + 0] = mn;
      St[r * 5 + 1] = s0 * exp(m0 - mn) + s * exp(m - mn);
      if (t >= v0 && t < v0 + cols) St[r * 5 + 2] = Z[r * NB + t - v0];
      St[r * 5 + 3] += CE_HSUM(16, zs);
      /* a non-finite dot product (NaN or infinity in this row of E or a row of C; not a -inf bias, which masks an
         entry) marks the tile +inf: the backward keeps it, so the non-finite input reaches the gradients */
      St[r * 5 + 4] = any(bad) ? INFINITY : t == CE_IGNORED ? -INFINITY : m;
    }
    /* the tile's largest logit over rows with a target: the backward's bound on its softmax values (+inf: keep) */
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
      float m = -INFINITY;
      for (int r = 0; r < rows; ++r) m = fmax(m, St[r * 5 + 4]);
      tmax[(long)get_group_id(0) * chunks + chunk] = m;
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int r = get_local_id(0); r < rows; r += WG) {
    __global float* p = part + ((long)split * ROWS + row0 + r) * 4;
    p[0] = St[r * 5 + 0];
    p[1] = St[r * 5 + 1];
    p[2] = St[r * 5 + 2];
    p[3] = St[r * 5 + 3];
  }
}

/*
 * cce_forward_finish: one row per work-item: combines the VS partial states into LSE[i] and loss[i].
 * NDRange: global (roundup(ROWS, 64)), any local size.
 */
__kernel void cce_forward_finish(const int ROWS, const int V, const __global float* part, const __global int* targets,
                                 __global float* lse, __global float* loss)
{
  const int i = get_global_id(0);
  if (i >= ROWS)
    return;
  float m = -INFINITY;
  for (int s = 0; s < VS; ++s) m = fmax(m, part[((long)s * ROWS + i) * 4]);
  float sum = 0.0f, zt = 0.0f, zsum = 0.0f;
  for (int s = 0; s < VS; ++s) {
    const __global float* p = part + ((long)s * ROWS + i) * 4;
    if (p[0] > -INFINITY) sum += p[1] * exp(p[0] - m);
    zt += p[2];
    zsum += p[3];
  }
  const float l = m + log(sum);
  lse[i] = l;
  const int t = CE_TARGET(targets, i);
  /* (1-eps)(m - z_t) + eps (m - mean z) + log(sum): no cancellation of LSE against z_t. Without smoothing the
     mean is left out (an entry masked by a -inf bias makes it -inf, and 0 * inf would be NaN); with it, a masked
     entry makes the loss +inf, as PyTorch's label_smoothing does. */
  const float smooth = SMOOTH != 0.0f ? SMOOTH * (m - zsum / (float)V) : 0.0f;
  loss[i] = t == CE_IGNORED ? 0.0f : (1.0f - SMOOTH) * (m - zt) + smooth + log(sum) + ZLOSS * l * l;
}

/*
 * cross_entropy/utility.cl -- the kernels that are never tuned (reduction, target check, vocabulary order, the
 * materialized baseline's): built once per device and problem options, with no configuration's defines.
 * Compiled as common.cl + cross_entropy/shared.cl + cross_entropy/utility.cl.
 */
/*
 * cce_reduce: one work-group of RG work-items: total[0] = sum (or mean over valid rows) of loss,
 * count[0] = valid rows. Deterministic (fixed order). NDRange: global (RG), local (RG); RG = 64.
 */
#define RG 64
__kernel __attribute__((reqd_work_group_size(RG, 1, 1)))
void cce_reduce(const int ROWS, const int mean, const __global float* loss, const __global int* targets,
                __global float* total, __global int* count)
{
  __local float sums[RG];
  __local int valid[RG];
  const int l = get_local_id(0);
  float s = 0.0f;
  int c = 0;
  for (int i = l; i < ROWS; i += RG) {
    s += loss[i];
    c += CE_TARGET(targets, i) != CE_IGNORED;
  }
  sums[l] = s;
  valid[l] = c;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int width = RG / 2; width > 0; width /= 2) {
    if (l < width) {
      sums[l] += sums[l + width];
      valid[l] += valid[l + width];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) {
    total[0] = mean ? (valid[0] > 0 ? sums[0] / (float)valid[0] : 0.0f) : sums[0];
    count[0] = valid[0];
  }
}

/*
 * cce_check_targets: bad[0] = the smallest position whose target is outside [0, V) and not IGNORE
 * (bad[0] must start at N). NDRange: global (roundup(N, 64)).
 */
__kernel void cce_check_targets(const int N, const int V, const __global int* targets, volatile __global int* bad)
{
  const int i = get_global_id(0);
  if (i >= N)
    return;
  const int t = targets[i];
  if (t != IGNORE && (t < 0 || t >= V))
    atomic_min(bad, i);
}

/* ------------------------------------------------------------------------------------------------ */
/* Vocabulary ordering by average logit (ORDERED): the host sorts `avg`, uploads the order and maps   */
/* the targets to positions.                                                                         */
/* ------------------------------------------------------------------------------------------------ */
/* meanE[d] = the mean over the ROWS rows of E[i][d]. NDRange: global (roundup(D, 64)). */
__kernel void cce_mean_rows(const int ROWS, const int D, const __global real* E, __global float* meanE)
{
  const int d = get_global_id(0);
  if (d >= D)
    return;
  float s = 0.0f;
  for (int i = 0; i < ROWS; ++i) s += LOADF1(E, (long)i * D + d);
  meanE[d] = s / (float)ROWS;
}

/* avg[j] = C[j] . meanE + b[j]: the logit of the average row. NDRange: global (roundup(V, 64)). */
__kernel void cce_average_logit(const int V, const int D, const __global real* C, const __global real* bias,
                                const __global float* meanE, __global float* avg)
{
  const int j = get_global_id(0);
  if (j >= V)
    return;
  float s = 0.0f;
  for (int d = 0; d < D; ++d) s += LOADF1(C, (long)j * D + d) * meanE[d];
#if HAS_BIAS
  s += LOADF1(bias, j);
#endif
  avg[j] = s;
}

/* ------------------------------------------------------------------------------------------------ */
/* The materialized path (a baseline): the ROWS x V logits Z in global memory (`real`), from a GEMM.  */
/* ------------------------------------------------------------------------------------------------ */
#define MG 64
/* Work-item l of a row's group owns the contiguous columns [l*seg, l*seg + seg), seg a multiple of 16:
   vectors of 16, the tail masked. */
#define CE_MSEG(V) ((((V) + MG - 1) / MG + 15) / 16 * 16)
inline float16 ce_mload16(const __global real* z, const int j, const int V) {
  if (j + 16 <= V)
    return LOADF(16, z, j);
  float t[16];
  for (int c = 0; c < 16; ++c) t[c] = j + c < V ? LOADF1(z, j + c) : 0.0f;
  return PLOAD(16, t, 0);
}
inline void ce_mstore16(__global real* z, const int j, const int V, const float16 v) {
  if (j + 16 <= V) {
    STOREF(16, z, j, v);
  } else {
    float t[16];
    PSTORE(16, t, 0, v)
    for (int c = 0; c < 16 && j + c < V; ++c) STOREF1(z, j + c, t[c]);
  }
}

/* per-row LSE and loss of the materialized logits Z (bias and softcap applied and written back), reduced
   over the MG work-items of the row's group */
__kernel __attribute__((reqd_work_group_size(MG, 1, 1)))
void cce_mat_forward(const int ROWS, const int V, __global real* Z, const __global real* bias,
                     const __global int* targets, __global float* lse, __global float* loss)
{
  __local float red[MG * 2];
  const int i = get_group_id(0), l = get_local_id(0);
  const int t = CE_TARGET(targets, i);
  __global real* z = Z + (long)i * V;
  const int seg = CE_MSEG(V), j0 = min(V, l * seg), j1 = min(V, j0 + seg);
  float16 mv = (float16)(-INFINITY), sv = (float16)(0.0f);
  for (int j = j0; j < j1; j += 16) {
#if HAS_BIAS
    float16 x = ce_mload16(z, j, j1) + ce_mload16(bias, j, j1);
#else
    float16 x = ce_mload16(z, j, j1);
#endif
#if USE_SOFTCAP
    x = SOFTCAP * tanh(x / SOFTCAP);
#endif
    ce_mstore16(z, j, j1, x);
    const int16 lanes = ce_lanes(j1 - j);
    mv = fmax(mv, select((float16)(-INFINITY), x, lanes));
    sv += select((float16)(0.0f), x, lanes);
  }
  red[l] = ce_hmax16(mv);
  red[MG + l] = CE_HSUM(16, sv);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = MG / 2; w > 0; w /= 2) {
    if (l < w) {
      red[l] = fmax(red[l], red[l + w]);
      red[MG + l] += red[MG + l + w];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float mx = red[0], total = red[MG];
  barrier(CLK_LOCAL_MEM_FENCE);
  float16 ev = (float16)(0.0f);
  for (int j = j0; j < j1; j += 16)
    ev += select((float16)(0.0f), exp(ce_mload16(z, j, j1) - mx), ce_lanes(j1 - j));
  red[l] = CE_HSUM(16, ev);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = MG / 2; w > 0; w /= 2) {
    if (l < w) red[l] += red[l + w];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) {
    const float lg = log(red[0]);
    lse[i] = mx + lg;
    const float zt = (t >= 0 && t < V) ? LOADF1(z, t) : 0.0f;
    const float smooth = SMOOTH != 0.0f ? SMOOTH * (mx - total / (float)V) : 0.0f;
    loss[i] = t == CE_IGNORED ? 0.0f : (1.0f - SMOOTH) * (mx - zt) + smooth + lg + ZLOSS * (mx + lg) * (mx + lg);
  }
}

/* Z (the capped logits) becomes G in place, row by row. */
__kernel __attribute__((reqd_work_group_size(MG, 1, 1)))
void cce_mat_backward(const int ROWS, const int V, __global real* Z, const __global int* targets, const __global float* lse,
                      const __global float* grad, const int mode, const __global int* count)
{
  const int i = get_group_id(0), l = get_local_id(0);
  const int t = CE_TARGET(targets, i);
  __global real* z = Z + (long)i * V;
  const int valid = count[0];
  const float g = t == CE_IGNORED ? 0.0f : mode == 2 ? grad[i] : mode == 1 ? grad[0] : (valid > 0 ? grad[0] / (float)valid : 0.0f);
  const float lg = lse[i], zs = 1.0f + 2.0f * ZLOSS * lg;
  const int seg = CE_MSEG(V), j0 = min(V, l * seg), j1 = min(V, j0 + seg);
  for (int j = j0; j < j1; j += 16) {
    const float16 x = ce_mload16(z, j, j1);
    const int16 hit = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) == (int16)(t - j);
    float16 d = exp(x - lg) * zs - SMOOTH / (float)V - select((float16)(0.0f), (float16)(1.0f - SMOOTH), hit);
#if USE_SOFTCAP
    const float16 u = x / SOFTCAP;
    d *= 1.0f - u * u;
#endif
    ce_mstore16(z, j, j1, g * d);
  }
}

/* db[j] = sum_i G[i][j]. NDRange: global (roundup(V, 64)). */
__kernel void cce_mat_colsum(const int ROWS, const int V, const __global real* G, __global real* db)
{
  const int j = get_global_id(0);
  if (j >= V)
    return;
  float s = 0.0f;
  for (int i = 0; i < ROWS; ++i) s += LOADF1(G, (long)i * V + j);
  STOREF1(db, j, s);
}

/*
 * cross_entropy/backward.cl -- the backward role's tuned kernels (the gradients); built with its configuration's defines,
 * whose TB and NB are the forward's.
 * Compiled as common.cl + cross_entropy/shared.cl + cross_entropy/backward.cl.
 */
/* ------------------------------------------------------------------------------------------------ */
/* Backward                                                                                         */
/* ------------------------------------------------------------------------------------------------ */
/*
 * The gradient tile: Z (logits E.C of rows row0.., columns v0..) becomes
 *   G = g_i (p (1 + 2 w LSE_i) - eps/V - (1 - eps) [j == t_i]) * (1 - (z/cap)^2),  p = exp(z - LSE_i),
 * and 0 for ignored rows, rows >= `rows` and columns >= `cols`. g_i is the incoming gradient (grad[0],
 * over count[0] for a mean, or grad[i] for none: MODE 0 mean, 1 sum, 2 none).
 * Returns (through *keep, a local int set with atomic_or) whether any |G / g_i| >= FILTER.
 */
inline void ce_gradient_tile(__local float* Z, const int row0, const int rows, const int v0, const int cols,
                             const __global real* bias, const __global int* order, const __global int* targets, const __global float* lse,
                             const __global float* grad, const int mode, const int valid, const int V,
                             volatile __local int* keep)
{
  int big = 0;
  for (int r = get_local_id(0); r < TB; r += WG) {
    const int i = row0 + r;
    const int t = r < rows ? CE_TARGET(targets, i) : CE_IGNORED;
    if (t == CE_IGNORED) {
      for (int n = 0; n < NB; ++n) Z[r * NB + n] = 0.0f;
      continue;
    }
    const float l = lse[i];
    const float g = mode == 2 ? grad[i] : mode == 1 ? grad[0] : (valid > 0 ? grad[0] / (float)valid : 0.0f);
    const float zs = 1.0f + 2.0f * ZLOSS * l;
    big |= !isfinite(g);
    for (int n = 0; n < NB; n += 16) {
      const float16 z = ce_logits16(Z + r * NB + n, v0 + n, cols - n, bias, order);
      const int16 lanes = ce_lanes(cols - n);
      const int16 hit = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) == (int16)(t - v0 - n);
      float16 d = exp(z - l) * zs - SMOOTH / (float)V - select((float16)(0.0f), (float16)(1.0f - SMOOTH), hit);
#if USE_SOFTCAP
      const float16 u = z / SOFTCAP;
      d *= 1.0f - u * u;
#endif
      d = select((float16)(0.0f), d, lanes);
      /* a NaN counts as large: non-finite inputs must reach the gradients */
      big |= any(!(fabs(d) < (float16)(FILTER)));
      vstore16(g * d, 0, Z + r * NB + n);
    }
  }
#if USE_FILTER
  if (big)
    atomic_or(keep, 1);
#else
  if (get_local_id(0) == 0)
    atomic_or(keep, 1);
#endif
}

/* The gradient products: Out[r][k0 + d] += sum_n W[r][n] Bs[n][d] for the outRows x W slice of columns
   [k0, k0 + W) (Out rows of stride DP; Bs rows of stride W), n < inner; W is TB x NB or NB x TB through its
   strides. Register blocks of PMR rows x PNV vectors of VW; a work-item owns the same blocks in every call
   of one kernel. */
inline void ce_product(ACC_SPACE float* Out, const int outRows, __local const float* W, const int wRowStride,
                       const int wColStride, const int inner, __local const float* Bs, const int k0, const int Wd,
                       const int DP)
{
  const int dvec = Wd / VW;
  const int dblocks = (dvec + PNV - 1) / PNV;
  const int rblocks = (outRows + PMR - 1) / PMR;
  for (int rb = 0, db = get_local_id(0); ce_carry(&rb, &db, dblocks), rb < rblocks; db += WG) {
    const int r0 = rb * PMR, d0 = db * PNV;
    CE_VT acc[PMR][PNV];
    for (int r = 0; r < PMR; ++r)
      for (int v = 0; v < PNV; ++v) acc[r][v] = (CE_VT)(0.0f);
    for (int n = 0; n < inner; ++n) {
      CE_VT bv[PNV];
      _Pragma("unroll")
      for (int v = 0; v < PNV; ++v) bv[v] = FLOAD(VW, Bs, n * Wd + min(d0 + v, dvec - 1) * VW);
      _Pragma("unroll")
      for (int r = 0; r < PMR; ++r) {
        const CE_VT w = (CE_VT)(W[min(r0 + r, outRows - 1) * wRowStride + n * wColStride]);
        _Pragma("unroll")
        for (int v = 0; v < PNV; ++v) acc[r][v] = MADD(w, bv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < PMR; ++r) {
      if (r0 + r >= outRows)
        break;
      for (int v = 0; v < PNV; ++v) {
        if (d0 + v >= dvec)
          break;
        const int o = (r0 + r) * DP + k0 + (d0 + v) * VW;
        FSTORE(VW, Out, o, FLOAD(VW, Out, o) + acc[r][v]);
      }
    }
  }
}

/* The work-group's `count` accumulator rows of stride DP, zeroed: its local memory, or its rows from `first` of
   the global scratch. */
inline ACC_SPACE float* ce_accumulators(ACC_SPACE float* base, const long first, const int count, const int DP) {
#if ACC
  ACC_SPACE float* acc = base;
#else
  ACC_SPACE float* acc = base + first * DP;
#endif
  for (int idx = get_local_id(0); idx < count * DP; idx += WG) acc[idx] = 0.0f;
  return acc;
}

/* Out += W . B over every D chunk: B's rows (TB rows of E from e0, or NB classifier rows at positions c0) are
   already staged whole in Bs when KCH == DP, else staged chunk by chunk. Call after a barrier; ends with one. */
inline void ce_products(ACC_SPACE float* Out, const int outRows, __local const float* W, const int wRowStride, const int wColStride,
                        const int inner, __local float* Bs, const int staged, const __global real* X, const __global int* order,
                        const int mapped, const long b0, const int bvalid, const int D, const int DP, const int KCH)
{
  for (int k0 = 0; k0 < DP; k0 += KCH) {
    const int w = min(KCH, DP - k0);
    if (!staged) {
      ce_stage(Bs, X, order, mapped, b0, inner, bvalid, D, k0, w, 0);
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    ce_product(Out, outRows, W, wRowStride, wColStride, inner, Bs, k0, w, DP);
    barrier(CE_FENCE);
  }
}

/*
 * cce_backward_e: group x owns rows [x*TB, x*TB + TB) of dE (over all N rows: rows >= ROWS get 0).
 * For every vocabulary chunk whose bound from the forward (tmax) reaches FILTER: the logits tile, its
 * gradient tile, and -- unless every entry is below FILTER -- dE += G . C_chunk. keep[x * chunks + chunk]
 * records the decision for cce_backward_c.
 * Local: Es TB*KCH, Cs NB*KCH, Z TB*NB, and AccBase TB*DP (ACC 1; with ACC 0, AccBase is a global scratch
 * of ceil(N/TB)*TB*DP floats). NDRange: global (ceil(N/TB) * WG), local (WG).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void cce_backward_e(const int N, const int ROWS, const int V, const int D, const int DP,
                    const __global real* E, const __global real* C, const __global real* bias, const __global int* order,
                    const __global int* targets, const __global float* lse, const __global float* grad,
                    const int mode, const __global int* count, const __global float* tmax,
                    __global uchar* keep, __global real* dE,
                    __local float* Es, __local float* Cs, __local float* Z, ACC_SPACE float* AccBase)
{
  __local int kept, lfinite;
  __local float lmin, lscale;
  const int tile = get_group_id(0);
  const int row0 = tile * TB;
  const int rows = max(0, min(TB, ROWS - row0));
  const int valid = count[0];
  const int KCH = ce_chunk(DP), whole = KCH == DP;
  /* A tile's softmax values are at most exp(tmax - min LSE) (rows with a target); times the z-loss factor,
     plus the smoothing term, that bounds |G / g| before any logit is recomputed. A non-finite LSE or incoming
     gradient (NaN or inf in E, C, the bias or gradOutput) keeps every tile of the rows: it must reach dE and dC. */
  if (get_local_id(0) == 0) {
    float lo = INFINITY, hi = 0.0f;
    int finite = 1;
    for (int r = 0; r < rows; ++r) {
      const int i = row0 + r;
      if (CE_TARGET(targets, i) == CE_IGNORED)
        continue;
      const float g = mode == 2 ? grad[i] : grad[0];
      finite &= isfinite(lse[i]) && isfinite(g);
      lo = fmin(lo, lse[i]);
      hi = fmax(hi, fabs(lse[i]));
    }
    lmin = lo;
    lscale = 1.0f + 2.0f * ZLOSS * hi;
    lfinite = finite;
  }
  if (whole) ce_stage(Es, E, order, 0, row0, TB, rows, D, 0, DP, 1);
  ACC_SPACE float* Acc = ce_accumulators(AccBase, row0, TB, DP);
  const int chunks = (V + NB - 1) / NB;
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const int v0 = chunk * NB;
    const int cols = min(NB, V - v0);
    barrier(CE_FENCE);
#if USE_FILTER
    /* a tile of rows past ROWS (with shift, N may hold one more tile than ROWS) has no bound: tmax holds none */
    const float tm = rows > 0 ? tmax[(long)tile * chunks + chunk] : -INFINITY;
    /* forced: a non-finite input in the tile or its rows; computed whole, products included */
    const int forced = !lfinite || tm == INFINITY;
    const float bound = rows == 0 ? 0.0f : forced ? INFINITY : exp(tm - lmin) * lscale + SMOOTH / (float)V;
#else
    const int forced = 1;
    const float bound = rows == 0 ? 0.0f : 1.0f;
#endif
    if (!(bound >= FILTER) || rows == 0) {
      if (get_local_id(0) == 0) keep[(long)tile * chunks + chunk] = 0;
      continue;
    }
    if (get_local_id(0) == 0) kept = forced;
    ce_tile(Z, Es, Cs, E, row0, rows, C, order, v0, cols, 0, whole, D, DP, KCH);
    ce_gradient_tile(Z, row0, rows, v0, cols, bias, order, targets, lse, grad, mode, valid, V, &kept);
    barrier(CLK_LOCAL_MEM_FENCE);
    const int k = kept;
    if (get_local_id(0) == 0) keep[(long)tile * chunks + chunk] = (uchar)k;
    if (k)
      ce_products(Acc, TB, Z, NB, 1, NB, Cs, whole, C, order, ORDERED, v0, cols, D, DP, KCH);
  }
  barrier(CE_FENCE);
  const int out = min(TB, N - row0);
  for (int r = 0, d = get_local_id(0); ce_carry(&r, &d, D), r < out; d += WG) {
    STOREF1(dE, (long)(row0 + r) * D + d, Acc[r * DP + d]);
  }
}

/*
 * cce_backward_c: group x owns vocabulary rows [x*NB, x*NB + NB) of dC (and db). For every row tile
 * that cce_backward_e kept: the logits tile, its gradient tile, dC += G^T . E_tile, db += column sums.
 * Local: Es TB*KCH, Cs NB*KCH, Z TB*NB, and AccBase NB*DP (ACC 1; with ACC 0, a global scratch of
 * ceil(V/NB)*NB*DP floats). NDRange: global (ceil(V/NB) * WG), local (WG).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void cce_backward_c(const int ROWS, const int V, const int D, const int DP,
                    const __global real* E, const __global real* C, const __global real* bias, const __global int* order,
                    const __global int* targets, const __global float* lse, const __global float* grad,
                    const int mode, const __global int* count, const __global uchar* keep,
                    __global real* dC, __global real* db,
                    __local float* Es, __local float* Cs, __local float* Z, ACC_SPACE float* AccBase)
{
  __local int kept;
  __local float dbias[NB];
  const int chunk = get_group_id(0);
  const int chunks = (V + NB - 1) / NB;
  const int v0 = chunk * NB;
  const int cols = min(NB, V - v0);
  const int valid = count[0];
  const int KCH = ce_chunk(DP), whole = KCH == DP;
  if (whole) ce_stage(Cs, C, order, ORDERED, v0, NB, cols, D, 0, DP, 1);
  ACC_SPACE float* Acc = ce_accumulators(AccBase, v0, NB, DP);
  for (int n = get_local_id(0); n < NB; n += WG) dbias[n] = 0.0f;
  /* the keep map decided which tiles to compute; `kept` only receives the gradient tiles' flags */
  if (get_local_id(0) == 0) kept = 0;
  const int tiles = (ROWS + TB - 1) / TB;
  for (int tile = 0; tile < tiles; ++tile) {
    if (!keep[(long)tile * chunks + chunk])
      continue;
    const int row0 = tile * TB;
    const int rows = min(TB, ROWS - row0);
    barrier(CE_FENCE);
    ce_tile(Z, Es, Cs, E, row0, rows, C, order, v0, cols, 1, whole, D, DP, KCH);
    ce_gradient_tile(Z, row0, rows, v0, cols, bias, order, targets, lse, grad, mode, valid, V, &kept);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int n = get_local_id(0); n < NB; n += WG) {
      float s = 0.0f;
      for (int r = 0; r < TB; ++r) s += Z[r * NB + n];
      dbias[n] += s;
    }
    ce_products(Acc, NB, Z, 1, NB, TB, Es, whole, E, order, 0, row0, rows, D, DP, KCH);
  }
  barrier(CE_FENCE);
  for (int n = 0, d = get_local_id(0); ce_carry(&n, &d, D), n < cols; d += WG) {
    STOREF1(dC, (long)CE_CROW(v0 + n) * D + d, Acc[n * DP + d]);
  }
#if HAS_BIAS
  for (int n = get_local_id(0); n < cols; n += WG) STOREF1(db, CE_CROW(v0 + n), dbias[n]);
#endif
}

/*
 * cross_entropy.cl -- cut cross-entropy. Compiled as common.cl + "\n" + cross_entropy.cl.
 *
 * E is N x D (embeddings), C is V x D (classifier), b has V entries (optional), targets N ints.
 * All row-major and contiguous; storage `real` (PRECISION 16, 32 or 0xBF16); all arithmetic fp32.
 * ROWS = N (or N - 1 with shift: row i is E's row i and predicts targets[i + 1]).
 * z[i][j] = softcap(E[i] . C[j] + b[j]);  LSE[i] = log sum_j exp(z[i][j]);
 * loss[i] = LSE - (1-eps) z[i][t] - eps/V sum_j z[i][j] + w LSE^2   (0 for an ignored target).
 * The ROWS x V logits never exist in global memory: a work-group computes a TB x NB tile of them
 * in local memory from fp32 copies of its E rows and C rows (zero-padded to DP, a multiple of VW): the
 * rows the work-group owns (staged once) transposed, the rows it streams row-major.
 *
 * Programs: a role's tuned kernels alone (-DCCE_FORWARD with the forward role's configuration, -DCCE_BACKWARD
 * with the backward's), or the kernels that are never tuned (-DCCE_UTILITY, the problem's options alone: one
 * build serves every candidate); none of the three builds everything.
 *
 * Defines (the kernels of one role's configuration share them; the backward's TB and NB are the forward's,
 * whose per-tile bounds it reads):
 *   TB  tokens per tile, NB vocabulary entries per tile (a multiple of 16),
 *   MR x NR the logits' register block (MR vectors of VW rows of the owner side -- E in the forward and
 *   dE kernels, C in the dC kernel -- by NR rows of the other; MR*VW and NR divide TB and NB),
 *   VW the vector width (1, 2, 4, 8, 16), WG work-items per work-group (1-D), VS vocabulary splits of the forward,
 *   PMR x PNV the gradient products' register block (PMR rows x PNV vectors of VW along D),
 *   KC the D chunk (0: whole rows; else a multiple of VW: rows of E and C are staged KC columns at a time),
 *   ACC where the backward's accumulators live (1: local memory; 0: an fp32 scratch in global memory whose
 *   TB or NB rows of stride DP per work-group that group alone reads and writes),
 *   USE_SOFTCAP (0/1) and SOFTCAP (the cap, a float literal), HAS_BIAS, SHIFT, ZLOSS (weight),
 *   SMOOTH (eps), IGNORE (the ignored target), USE_FILTER (0 = exact) and FILTER (the threshold),
 *   ORDERED (1: the vocabulary is processed in the order order[position] = class, and `targets` holds
 *   each row's target position; see cce_positions).
 * Local memory arguments (sizes in floats): Es TB*KCH, Cs NB*KCH, Z TB*NB, and per kernel below, where KCH is
 * the D chunk (ce_chunk: KC, or DP for whole rows).
 * No kernel requires any size to be a multiple of anything: edge rows and columns are zero-filled
 * when staged and masked when reduced or stored.
 */
#if !defined(CCE_FORWARD) && !defined(CCE_BACKWARD) && !defined(CCE_UTILITY)
#define CCE_FORWARD
#define CCE_BACKWARD
#define CCE_UTILITY
#endif

#ifndef TB
#define TB 32
#endif
#ifndef NB
#define NB 32
#endif
#ifndef MR
#define MR 4
#endif
#ifndef NR
#define NR 4
#endif
#ifndef VW
#define VW 16
#endif
#ifndef WG
#define WG 1
#endif
#ifndef VS
#define VS 1
#endif
#ifndef PMR
#define PMR 4
#endif
#ifndef PNV
#define PNV 2
#endif
#ifndef KC
#define KC 0
#endif
#ifndef ACC
#define ACC 1
#endif
#ifndef USE_SOFTCAP
#define USE_SOFTCAP 0
#endif
#ifndef SOFTCAP
#define SOFTCAP 1.0f
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 0
#endif
#ifndef SHIFT
#define SHIFT 0
#endif
#ifndef ZLOSS
#define ZLOSS 0.0f
#endif
#ifndef SMOOTH
#define SMOOTH 0.0f
#endif
#ifndef IGNORE
#define IGNORE (-100)
#endif
#ifndef ORDERED
#define ORDERED 0
#endif
#ifndef USE_FILTER
#define USE_FILTER 0
#endif
#ifndef FILTER
#define FILTER 0.0f
#endif

#define CE_VT FLOATV(VW)

/* the backward's accumulators: local memory, or the work-group's own rows of a global scratch (then its
   barriers also order those global writes) */
#if ACC
  #define ACC_SPACE __local
  #define CE_FENCE CLK_LOCAL_MEM_FENCE
#else
  #define ACC_SPACE __global
  #define CE_FENCE (CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#endif

/* the D chunk: KC columns, or the whole padded row */
inline int ce_chunk(const int DP) { return (KC == 0 || KC >= DP) ? DP : KC; }

/* horizontal sums and max by components (oclgrind's uninitialized-value shadow loses track of .lo/.hi halves
   of wide vectors); pairwise, for accuracy */
inline float ce_hsum1(float v) { return v; }
inline float ce_hsum2(float2 v) { return v.s0 + v.s1; }
inline float ce_hsum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }
inline float ce_hsum8(float8 v) { return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7)); }
inline float ce_hsum16(float16 v) {
  return (((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7)))
       + (((v.s8 + v.s9) + (v.sa + v.sb)) + ((v.sc + v.sd) + (v.se + v.sf)));
}
#define CE_HSUM(W, v) CL_CAT(ce_hsum, W)(v)

/* the class (row of C, entry of the bias, dC, db) at vocabulary position j */
#if ORDERED
  #define CE_CROW(j) (order[(j)])
#else
  #define CE_CROW(j) (j)
#endif

/* the target of row i (or CE_IGNORED) */
#define CE_TARGET(targets, i) ((targets)[(i) + SHIFT])

/* An ignored row's target as the kernels read it: IGNORE in the targets as given; -1 among the positions of
   ORDERED (the host maps ignored targets there, so that an ignore index that is a real class id never equals
   another target's position). cce_check_targets reads the targets as given. */
#if ORDERED
  #define CE_IGNORED (-1)
#else
  #define CE_IGNORED IGNORE
#endif

/* The logit of an E.C dot product: bias, then softcap. */
inline float ce_logit(float dot, float bias) {
  float z = dot + bias;
#if USE_SOFTCAP
  z = SOFTCAP * tanh(z / SOFTCAP);
#endif
  return z;
}

/* The work-group's strided walk over an A x B grid (row-major), without dividing (oclgrind cannot check
   the `freeze` that LLVM adds to a division paired with a remainder):
   for (int a = 0, b = get_local_id(0); ce_carry(&a, &b, B), a < A; b += WG) { ... } */
inline void ce_carry(int* a, int* b, const int B) {
  while (*b >= B) {
    *b -= B;
    ++*a;
  }
}

/* lanes 0..15 below `count` (as a select mask) */
inline int16 ce_lanes(const int count) {
  return (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) < (int16)(count);
}

inline float ce_hmax16(float16 v) {
  const float a = fmax(fmax(fmax(v.s0, v.s1), fmax(v.s2, v.s3)), fmax(fmax(v.s4, v.s5), fmax(v.s6, v.s7)));
  const float b = fmax(fmax(fmax(v.s8, v.s9), fmax(v.sa, v.sb)), fmax(fmax(v.sc, v.sd), fmax(v.se, v.sf)));
  return fmax(a, b);
}

/* 16 logits of a row of the tile from their dot products at z (bias at column j0, softcap); lanes at or
   beyond `count` valid columns are -INFINITY */
inline float16 ce_logits16(__local const float* z, const int j0, const int count, const __global real* bias,
                           const __global int* order) {
  float16 x = vload16(0, z);
#if HAS_BIAS
  if (count >= 16 && !ORDERED) {
    x += LOADF(16, bias, j0);
  } else {
    float t[16];
    for (int c = 0; c < 16; ++c) t[c] = c < count ? LOADF1(bias, CE_CROW(j0 + c)) : 0.0f;
    x += PLOAD(16, t, 0);
  }
#endif
#if USE_SOFTCAP
  x = SOFTCAP * tanh(x / SOFTCAP);
#endif
  return select((float16)(-INFINITY), x, ce_lanes(count));
}

/* VW values of row `row` of X (row stride D) from column k: zeros beyond D, or everywhere if the row does not exist */
inline CE_VT ce_load_row(const __global real* X, const long row, const int exists, const int k, const int D) {
  if (exists && k + VW <= D)
    return LOADF(VW, X, row * D + k);
  float t[VW];
  for (int c = 0; c < VW; ++c)
    t[c] = (exists && k + c < D) ? LOADF1(X, row * D + k + c) : 0.0f;
  return PLOAD(VW, t, 0);
}

/*
 * Stage columns [k0, k0 + W) of `count` rows of X (row stride D) starting at row `row0` (or, when `mapped`,
 * rows map[row0 + r]), of which `valid` exist, as fp32 in local memory: rows of stride W (dst[r * W + k]),
 * or transposed (dst[k * count + r]); zeros beyond D and beyond the valid rows; W a multiple of VW.
 * Cooperative over the work-group.
 */
inline void ce_stage(__local float* dst, const __global real* X, const __global int* map, const int mapped,
                     const long row0, const int count, const int valid, const int D, const int k0, const int W,
                     const int transposed) {
  const int vectors = W / VW;
  for (int r = 0, kv = get_local_id(0); ce_carry(&r, &kv, vectors), r < count; kv += WG) {
    const long row = (mapped && r < valid) ? (long)map[row0 + r] : row0 + r;
    const CE_VT v = ce_load_row(X, row, r < valid, k0 + kv * VW, D);
    if (transposed) {
      float t[VW];
      PSTORE(VW, t, 0, v)
      for (int c = 0; c < VW; ++c) dst[(kv * VW + c) * count + r] = t[c];
    } else {
      FSTORE(VW, dst, r * W + kv * VW, v);
    }
  }
}

/*
 * The logits tile as outer products over W columns of D: the owner's A rows staged transposed (At[k * A + a])
 * against the streaming side's B rows staged row-major (Bs[b * W + k]). A step holds MR vectors of VW owner
 * rows x NR streaming rows (MR*VW divides A, NR divides B): MR vector loads and NR broadcasts feed MR*NR
 * fused multiply-adds. The dot product of (a, b) goes to (or, when `add`, is added to) Z[a * za + b * zb].
 */
inline void ce_logits(__local float* Z, const int za, const int zb, __local const float* At, const int A,
                      __local const float* Bs, const int B, const int W, const int add) {
  for (int ab = 0, bb = get_local_id(0); ce_carry(&ab, &bb, B / NR), ab < A / (MR * VW); bb += WG) {
    const int a0 = ab * MR * VW, b0 = bb * NR;
    CE_VT acc[MR][NR];
    for (int v = 0; v < MR; ++v)
      for (int n = 0; n < NR; ++n) acc[v][n] = (CE_VT)(0.0f);
    for (int k = 0; k < W; ++k) {
      CE_VT av[MR];
      _Pragma("unroll")
      for (int v = 0; v < MR; ++v) av[v] = FLOAD(VW, At, k * A + a0 + v * VW);
      _Pragma("unroll")
      for (int n = 0; n < NR; ++n) {
        const CE_VT bv = (CE_VT)(Bs[(b0 + n) * W + k]);
        _Pragma("unroll")
        for (int v = 0; v < MR; ++v) acc[v][n] = MADD(av[v], bv, acc[v][n]);
      }
    }
    for (int v = 0; v < MR; ++v)
      for (int n = 0; n < NR; ++n) {
        float t[VW];
        PSTORE(VW, t, 0, acc[v][n])
        for (int c = 0; c < VW; ++c) {
          const int o = (a0 + v * VW + c) * za + (b0 + n) * zb;
          Z[o] = add ? Z[o] + t[c] : t[c];
        }
      }
  }
}

/* The logits tile Z (TB x NB, row-major) of E rows [e0, e0 + erows) and C rows at positions [c0, c0 + ccols),
   over D in chunks of KCH. The owner side (E when `ownerC` is 0, else C) is staged transposed, the other
   row-major (Es, Cs); each chunk stages the streaming side, and the owner's unless it is already staged whole
   (`ownerStaged`, only with KCH == DP). Call after a barrier; ends with one. */
inline void ce_tile(__local float* Z, __local float* Es, __local float* Cs, const __global real* E, const long e0, const int erows,
                    const __global real* C, const __global int* order, const long c0, const int ccols,
                    const int ownerC, const int ownerStaged, const int D, const int DP, const int KCH) {
  for (int k0 = 0; k0 < DP; k0 += KCH) {
    const int w = min(KCH, DP - k0);
    if (ownerC) {
      if (!ownerStaged) ce_stage(Cs, C, order, ORDERED, c0, NB, ccols, D, k0, w, 1);
      ce_stage(Es, E, order, 0, e0, TB, erows, D, k0, w, 0);
    } else {
      if (!ownerStaged) ce_stage(Es, E, order, 0, e0, TB, erows, D, k0, w, 1);
      ce_stage(Cs, C, order, ORDERED, c0, NB, ccols, D, k0, w, 0);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (ownerC)
      ce_logits(Z, 1, NB, Cs, NB, Es, TB, w, k0 > 0);
    else
      ce_logits(Z, NB, 1, Es, TB, Cs, NB, w, k0 > 0);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}

#ifdef CCE_FORWARD /* the forward role's tuned kernels: a forward candidate's build compiles these alone */
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

#endif /* CCE_FORWARD */

#ifdef CCE_UTILITY /* kernels never tuned: built once per device and problem options */
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

#endif /* CCE_UTILITY */

#ifdef CCE_BACKWARD /* the backward role's tuned kernels */
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
    const float tm = tmax[(long)tile * chunks + chunk];
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

#endif /* CCE_BACKWARD */

#ifdef CCE_UTILITY
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
#endif /* CCE_UTILITY */

/*
 * cross_entropy/shared.cl -- cut cross-entropy: what every program of the family shares (definitions, defines
 * and helpers). A program is common.cl, this file, and one of forward.cl (the forward role's tuned kernels),
 * backward.cl (the backward role's) or utility.cl (the kernels that are never tuned).
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

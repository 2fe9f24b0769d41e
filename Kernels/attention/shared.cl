/*
 * attention/shared.cl -- flash attention: what every program of the family shares. A program is common.cl,
 * this file, and one of forward.cl (the forward role's tuned kernels), backward.cl (the backward role's) or
 * utility.cl (the kernels that are never tuned: map conversions, mask builders, the materialized baseline).
 *
 * Q [B, HQ, LQ, D]; K and V [B, HKV, LK, D]; O like Q; LSE [B, HQ, LQ] fp32 (natural log), contiguous.
 * A tensor's rows are contiguous along D; its place is a long4 (offset, batch stride, head stride, row stride),
 * in elements. HQ = GROUP * HKV: query head h reads key/value head h / GROUP (GQA; HKV = 1 is MQA).
 *   s[i][j] = SCALE q_i . k_j, then with USE_SOFTCAP  s = SOFTCAP tanh(s / SOFTCAP)   (Gemma 2's softcap);
 *   masked to -inf outside  AT_LO ? i + OFF - LO_OFF : 0  <=  j  <=  AT_HI ? i + OFF + HI_OFF : LK - 1,
 *   where OFF = LK - LQ (causal and window masks aligned bottom-right, as FlashAttention-2), and, with SPARSE,
 *   where the block map is 0: map[b][h][i / MAP_BQ][j / MAP_BK] (uchar, [B, HQ, NQB, NKB]).
 *   p = softmax_j(s), o_i = sum_j p_ij v_j, LSE_i = log sum_j exp(s_ij); a row that sees no key: o = 0, LSE = -inf.
 *
 * Tuned defines (a role's configuration): BQ queries and BK keys per tile (multiples of 16), VW the vector
 * width, MR x NR the dot products' register block (MR vectors of VW owner-side rows by NR streamed rows), PMR x PNV
 * the accumulations' register block (PMR rows by PNV vectors of VW along D), WG work-items per work-group;
 * the forward's KVS (key splits, combined through the LSE) and PACK (a tile's rows run over the query heads of a
 * group: GROUP * LQ rows per key/value head, for decoding); the backward's KS (key splits); the decode kernel's RB (rows per register block).
 * Problem defines: D, DP (D rounded up to VW * PNV), SCALE, USE_SOFTCAP, SOFTCAP, AT_LO, LO_OFF, AT_HI, HI_OFF,
 * SPARSE, MAP_BQ, MAP_BK.
 * Tiles hold fp32 copies of rows in local memory (zero beyond D and beyond the last row): nothing needs a size to
 * be a multiple of anything.
 */

#ifndef BQ
#define BQ 32
#endif
#ifndef BK
#define BK 32
#endif
#ifndef VW
#define VW 16
#endif
#ifndef MR
#define MR 1
#endif
#ifndef NR
#define NR 4
#endif
#ifndef PMR
#define PMR 4
#endif
#ifndef PNV
#define PNV 1
#endif
#ifndef WG
#define WG 1
#endif
#ifndef KVS
#define KVS 1
#endif
#ifndef PACK
#define PACK 0
#endif
#ifndef RB
#define RB 1
#endif
#ifndef KS
#define KS 1
#endif
#ifndef D
#define D 64
#endif
#ifndef DP
#define DP 64
#endif
#ifndef SCALE
#define SCALE 0.125f
#endif
#ifndef USE_SOFTCAP
#define USE_SOFTCAP 0
#endif
#ifndef SOFTCAP
#define SOFTCAP 1.0f
#endif
#ifndef AT_LO
#define AT_LO 0
#endif
#ifndef LO_OFF
#define LO_OFF 0
#endif
#ifndef AT_HI
#define AT_HI 0
#endif
#ifndef HI_OFF
#define HI_OFF 0
#endif
#ifndef SPARSE
#define SPARSE 0
#endif
#ifndef MAP_BQ
#define MAP_BQ 64
#endif
#ifndef MAP_BK
#define MAP_BK 64
#endif

#define AT_VT FLOATV(VW)

#define AT_LOG2E 1.44269504088896341f
#define AT_LN2 0.693147180559945309f

/* the element of row i of head h of batch b of a tensor placed at `at` */
inline long at_row(const long4 at, const int b, const int h, const long i) { return at.s0 + b * at.s1 + h * at.s2 + i * at.s3; }

/* The work-group's strided walk over an A x B grid without dividing (oclgrind cannot check the `freeze` LLVM
   adds to a division paired with a remainder):
   for (int a = 0, b = get_local_id(0); at_carry(&a, &b, B), a < A; b += WG) { ... } */
inline void at_carry(int* a, int* b, const int B) {
  while (*b >= B) {
    *b -= B;
    ++*a;
  }
}

/* the visible keys of query row i: [lo, hi] (empty when lo > hi) */
inline int at_lo(const int i, const int OFF) { return AT_LO ? max(0, i + OFF - LO_OFF) : 0; }
inline int at_hi(const int i, const int OFF, const int LK) { return AT_HI ? min(LK - 1, i + OFF + HI_OFF) : LK - 1; }

/* horizontal sums and maximum, by components (pairwise; oclgrind's shadow memory loses track of the .lo/.hi halves
   of wide vectors) */
inline float at_hsum1(float v) { return v; }
inline float at_hsum2(float2 v) { return v.s0 + v.s1; }
inline float at_hsum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }
inline float at_hsum8(float8 v) { return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7)); }
inline float at_hsum16(float16 v) {
  return (((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7)))
       + (((v.s8 + v.s9) + (v.sa + v.sb)) + ((v.sc + v.sd) + (v.se + v.sf)));
}
#define AT_HSUM(v) CL_CAT(at_hsum, VW)(v)
#define AT_HSUM16(v) at_hsum16(v)
inline float at_hmax16(float16 v) {
  const float a = fmax(fmax(fmax(v.s0, v.s1), fmax(v.s2, v.s3)), fmax(fmax(v.s4, v.s5), fmax(v.s6, v.s7)));
  const float c = fmax(fmax(fmax(v.s8, v.s9), fmax(v.sa, v.sb)), fmax(fmax(v.sc, v.sd), fmax(v.se, v.sf)));
  return fmax(a, c);
}
#define AT_HMAX16(v) at_hmax16(v)

/* The 16 horizontal sums of v[0..15] as one vector (lane j: the sum of v[j]'s lanes): four rounds of pairing halves
   with shuffle2, 30 shuffles and 15 additions for 16 sums instead of 15 additions each. */
inline float16 at_hsum16x16(float16* v) {
  const uint16 lo8 = (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const uint16 hi8 = (uint16)(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const uint16 lo4 = (uint16)(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
  const uint16 hi4 = (uint16)(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const uint16 lo2 = (uint16)(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
  const uint16 hi2 = (uint16)(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  const uint16 lo1 = (uint16)(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const uint16 hi1 = (uint16)(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  float16 a[8], c[4], e[2];
  /* a[p]: lanes 0-7 partial sums of v[2p], 8-15 of v[2p+1] (8 each); c[p]: 4 lanes each of v[4p..4p+3]; ... */
  for (int p = 0; p < 8; ++p) a[p] = shuffle2(v[2 * p], v[2 * p + 1], lo8) + shuffle2(v[2 * p], v[2 * p + 1], hi8);
  for (int p = 0; p < 4; ++p) c[p] = shuffle2(a[2 * p], a[2 * p + 1], lo4) + shuffle2(a[2 * p], a[2 * p + 1], hi4);
  for (int p = 0; p < 2; ++p) e[p] = shuffle2(c[2 * p], c[2 * p + 1], lo2) + shuffle2(c[2 * p], c[2 * p + 1], hi2);
  return shuffle2(e[0], e[1], lo1) + shuffle2(e[0], e[1], hi1);
}

/* lanes 0..15 */
#define AT_LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))

/* the softcap of a score (identity without it) */
inline float16 at_cap(const float16 s) {
#if USE_SOFTCAP
  return SOFTCAP * tanh(s / SOFTCAP);
#else
  return s;
#endif
}

/* VW values of a row from column k: zeros beyond D, or everywhere when the row does not exist */
inline AT_VT at_load(const __global real* X, const long row, const int exists, const int k) {
  if (exists && k + VW <= D)
    return LOADF(VW, X, row + k);
  float t[VW];
  for (int c = 0; c < VW; ++c)
    t[c] = (exists && k + c < D) ? LOADF1(X, row + k + c) : 0.0f;
  return PLOAD(VW, t, 0);
}

/*
 * Stages `count` rows as fp32: row r is at element rows[r] of X when r < valid (else zeros), zeros beyond D;
 * row-major with stride DP (dst[r * DP + k]) or transposed (dst[k * count + r]). `first` and `stride` give row
 * r's element as first + r * stride. Cooperative over the work-group.
 */
inline void at_stage(__local float* dst, const __global real* X, const long first, const long stride, const int count,
                     const int valid, const int transposed) {
  for (int r = 0, kv = get_local_id(0); at_carry(&r, &kv, DP / VW), r < count; kv += WG) {
    if (transposed) {
      /* element by element (a vector split into a private array loses oclgrind's track of initialized lanes) */
      for (int c = 0; c < VW; ++c) {
        const int k = kv * VW + c;
        dst[k * count + r] = (r < valid && k < D) ? LOADF1(X, first + r * stride + k) : 0.0f;
      }
    } else {
      FSTORE(VW, dst, r * DP + kv * VW, at_load(X, first + r * stride, r < valid, kv * VW));
    }
  }
}

/*
 * Dot products of a tile: Z[r * N + o] = sum_k Bs[r * DP + k] * At[k * N + o] for r < R, o < N: the owner side
 * At staged transposed (its N rows are the vector lanes), the other side Bs row-major (broadcast). A step holds MR
 * vectors of VW owner rows by NR streamed rows: MR vector loads and NR broadcasts feed MR * NR fused multiply-adds.
 * N % (MR * VW) == 0, R % NR == 0.
 */
inline void at_dot(__local float* Z, __local const float* At, const int N, __local const float* Bs, const int R) {
  for (int rb = 0, ob = get_local_id(0); at_carry(&rb, &ob, N / (MR * VW)), rb < R / NR; ob += WG) {
    const int o0 = ob * MR * VW, r0 = rb * NR;
    AT_VT acc[NR][MR];
    for (int n = 0; n < NR; ++n)
      for (int v = 0; v < MR; ++v) acc[n][v] = (AT_VT)(0.0f);
    for (int k = 0; k < DP; ++k) {
      AT_VT a[MR];
      _Pragma("unroll")
      for (int v = 0; v < MR; ++v) a[v] = FLOAD(VW, At, k * N + o0 + v * VW);
      _Pragma("unroll")
      for (int n = 0; n < NR; ++n) {
        const AT_VT b = (AT_VT)(Bs[(r0 + n) * DP + k]);
        _Pragma("unroll")
        for (int v = 0; v < MR; ++v) acc[n][v] = MADD(a[v], b, acc[n][v]);
      }
    }
    for (int n = 0; n < NR; ++n)
      for (int v = 0; v < MR; ++v) FSTORE(VW, Z, (r0 + n) * N + o0 + v * VW, acc[n][v]);
  }
}

/*
 * Accumulation of a product: Acc[r * DP + d] += sum_{j < J} P[r * pr + j * pj] * X[j * DP + d] for r < R, d < DP
 * (P a tile of probabilities or score gradients read either way round, X rows staged row-major). A step holds
 * PMR rows by PNV vectors of VW along D. R % PMR == 0, DP % (PNV * VW) == 0. One for local and one for global
 * accumulators (a work-group's own rows).
 */
#define AT_ACCUMULATE(NAME, SPACE)                                                                            \
  inline void NAME(SPACE float* Acc, __local const float* P, const int pr, const int pj, __local const float* X, \
                   const int R, const int J) {                                                                 \
    for (int rb = 0, db = get_local_id(0); at_carry(&rb, &db, DP / (PNV * VW)), rb < R / PMR; db += WG) {     \
      const int r0 = rb * PMR, d0 = db * PNV * VW;                                                           \
      AT_VT acc[PMR][PNV];                                                                                    \
      for (int m = 0; m < PMR; ++m)                                                                           \
        for (int u = 0; u < PNV; ++u) acc[m][u] = (AT_VT)(0.0f);                                              \
      for (int j = 0; j < J; ++j) {                                                                           \
        AT_VT x[PNV];                                                                                         \
        _Pragma("unroll")                                                                                     \
        for (int u = 0; u < PNV; ++u) x[u] = FLOAD(VW, X, j * DP + d0 + u * VW);                              \
        _Pragma("unroll")                                                                                     \
        for (int m = 0; m < PMR; ++m) {                                                                       \
          const AT_VT p = (AT_VT)(P[(r0 + m) * pr + j * pj]);                                                 \
          _Pragma("unroll")                                                                                   \
          for (int u = 0; u < PNV; ++u) acc[m][u] = MADD(p, x[u], acc[m][u]);                                 \
        }                                                                                                     \
      }                                                                                                       \
      for (int m = 0; m < PMR; ++m)                                                                           \
        for (int u = 0; u < PNV; ++u) {                                                                       \
          const int o = (r0 + m) * DP + d0 + u * VW;                                                          \
          FSTORE(VW, Acc, o, FLOAD(VW, Acc, o) + acc[m][u]);                                                  \
        }                                                                                                     \
    }                                                                                                         \
  }
AT_ACCUMULATE(at_accumulate, __local)
AT_ACCUMULATE(at_accumulate_global, __global)

/* zeroes `count` floats of local memory (cooperative) */
inline void at_zero(__local float* X, const int count) {
  for (int e = get_local_id(0); e < count; e += WG) X[e] = 0.0f;
}

/* stores row r of an fp32 tile (stride DP) times `factor` to element `row` of Y (storage precision), D values */
inline void at_store_row(__global real* Y, const long row, __local const float* X, const float factor) {
  for (int k = 0; k < DP; k += VW) {
    const AT_VT v = FLOAD(VW, X, k) * factor;
    if (k + VW <= D) {
      STOREF(VW, Y, row + k, v);
    } else {
      float t[VW];
      PSTORE(VW, t, 0, v)
      for (int c = 0; c < VW && k + c < D; ++c) STOREF1(Y, row + k + c, t[c]);
    }
  }
}

/* whether the block map selects the tile of query row i (of head bh = b * HQ + h) and key j */
inline int at_selected(const __global uchar* map, const int bh, const int i, const int j, const int NQB, const int NKB) {
#if SPARSE
  return map[((long)bh * NQB + i / MAP_BQ) * NKB + j / MAP_BK] != 0;
#else
  return 1;
#endif
}

/* The first key tile from kt (below end) that the block map selects for the query tile at row q0 of head bh, or
   end; the first query tile from qt (below end) that selects the key tile at key k0. The tile loops step through
   these (no `continue` past a barrier: every work-item of the group takes the same path, and PoCL's barrier
   handling prefers loops without early exits around them). */
inline int at_next_key_tile(const __global uchar* map, const int bh, const int q0, int kt, const int end, const int NQB, const int NKB) {
#if SPARSE
  while (kt < end && !at_selected(map, bh, q0, kt * BK, NQB, NKB)) ++kt;
#endif
  return kt;
}
inline int at_next_query_tile(const __global uchar* map, const int bh, int qt, const int end, const int k0, const int NQB, const int NKB) {
#if SPARSE
  while (qt < end && !at_selected(map, bh, qt * BQ, k0, NQB, NKB)) ++qt;
#endif
  return qt;
}

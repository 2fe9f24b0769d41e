/*
 * gemm.cl -- GEMM kernel family. Compiled as common.cl + "\n" + gemm.cl.
 *
 *   C = alpha * op(A) * op(B) + beta * C      (all matrices row-major)
 *
 * op(A) is M x K:  TRANSA=0: (m,k) at A[m*lda + k];  TRANSA=1: (m,k) at A[k*lda + m]
 * op(B) is K x N:  TRANSB=0: (k,n) at B[k*ldb + n];  TRANSB=1: (k,n) at B[n*ldb + k]
 * C is M x N, (m,n) at C[m*ldc + n].
 * Batch b: matrix starts at X + offX + b*strideX (X = A, B, C).
 * beta == 0: C is never read (NaN in C does not propagate).
 * Every M, N, K >= 1 is supported by every kernel for every valid
 * configuration; no out-of-bounds access is ever made (edge tiles use
 * clamped, always-valid load addresses and guarded stores).
 * Storage is `real` (PRECISION=32: float, 16: half); all arithmetic and
 * all intermediate buffers (local tiles, panels, split-K partials) are float.
 *
 * Common defines: TRANSA, TRANSB in {0,1} (default 0).
 * Each build compiles only its variant's kernels: the host passes -DGEMM_ONLY
 * and one of -DGEMM_XGEMM (xgemm, gemm_splitk_reduce), -DGEMM_DIRECT,
 * -DGEMM_PACKED (pack_a, pack_b, gemm_packed), -DGEMM_PACKB (pack_b,
 * gemm_packb), -DGEMM_GEMV (gemv, gemv_stream, gemm_splitk_reduce). Without
 * GEMM_ONLY every kernel is compiled.
 *
 * ---------------------------------------------------------------------------
 * 1. xgemm  (local-memory tiled kernel on the user's layout)
 *   Defines (default): MWG(64) NWG(64) KWG(16) MDIMC(16) NDIMC(16) MDIMA(16)
 *     NDIMB(16) KWI(2) VWM(2) VWN(2) STRM(0) STRN(0) SA(1) SB(1) KSPLIT(1)
 *     VWM, VWN in {1,2,4,8,16}; STRM, STRN, SA, SB in {0,1}; KSPLIT >= 1.
 *   Derived: MWI = MWG/MDIMC, NWI = NWG/NDIMC (outputs per thread),
 *     NT = MDIMC*NDIMC, KDIMA = NT/MDIMA, KDIMB = NT/NDIMB.
 *   Host must enforce:
 *     KWG % KWI == 0; MWG % (MDIMC*VWM) == 0; NWG % (NDIMC*VWN) == 0;
 *     NT % MDIMA == 0; NT % NDIMB == 0;
 *     if SA: MWG % (MDIMA*VWM) == 0 and KWG % KDIMA == 0;
 *     if SB: NWG % (NDIMB*VWN) == 0 and KWG % KDIMB == 0;
 *     NT <= device max work-group size;
 *     local memory bytes = 4 * (SA*KWG*MWG + SB*KWG*NWG)   (always float,
 *       also for PRECISION=16) <= device local memory size.
 *   NDRange: global = (ceil(N/NWG)*NDIMC, ceil(M/MWG)*MDIMC, batch*KSPLIT),
 *            local  = (NDIMC, MDIMC, 1).   get_group_id(2) = b*KSPLIT + kz.
 *   KSPLIT == 1: C written with alpha/beta, `partial` unused (any valid buffer).
 *   KSPLIT  > 1: slice kz covers k in [kz*kc, min(K,(kz+1)*kc)),
 *     kc = ceil(ceil(K/KSPLIT)/KWG)*KWG (an empty slice writes zeros); writes
 *     alpha*acc to partial[(b*KSPLIT+kz)*M*N + m*N + n]; C untouched.
 *     partial must hold batch*KSPLIT*M*N floats. Then run gemm_splitk_reduce.
 *
 * 2. gemm_splitk_reduce   (define KSPLIT, same value as for xgemm)
 *   C[m,n] = sum_kz partial[(b*KSPLIT+kz)*M*N + m*N + n] + beta*C[m,n]
 *   NDRange: global = (roundup(N,16), M, batch), local = (16,1,1) or NULL.
 *   (Any global >= (N, M, batch) works: out-of-range items return.)
 *
 * 3. gemm_direct   (small matrices: no local memory, no packing)
 *   Defines (default): WPTM(2) WPTN(4) DLOCALM(8) DLOCALN(8) DKU(4), all >= 1.
 *   NDRange: global = (roundup(ceil(N/WPTN), DLOCALN),
 *                      roundup(ceil(M/WPTM), DLOCALM), batch),
 *            local  = (DLOCALN, DLOCALM, 1).
 *
 * 4. Packed (BLIS-like) path: pack_a, pack_b, gemm_packed.
 *   Defines (default): MR(4) NR(24) VW(8) KC(0) TM(16) TN(1) PLM(1) PLN(1)
 *     PKU(4)
 *     MR >= 1; NR >= 1 with NR % VW == 0; VW in {1,2,4,8,16};
 *     KC >= 0 (0 = no K blocking; >0: the work-item loops over K in blocks
 *       of KC and keeps its TM*TN C tiles in a private float buffer of
 *       TM*TN*MR*NR floats between blocks); TM, TN >= 1; PLM, PLN >= 1;
 *     PKU >= 1: k unroll of the micro-kernel.
 *   Panels (float, zero padded), npm = ceil(M/MR), npn = ceil(N/NR),
 *     Mp = npm*MR, Np = npn*NR:
 *     Ap[b][m/MR][k][m%MR]: index b*Mp*K + (m/MR)*K*MR + k*MR + m%MR
 *     Bp[b][n/NR][k][n%NR]: index b*Np*K + (n/NR)*K*NR + k*NR + n%NR
 *     sizes: batch*Mp*K and batch*Np*K floats.
 *   NDRanges (PKL = 64 recommended; any PKL >= 1 works):
 *     pack_a:      global = (roundup(K, PKL), npm, batch), local = (PKL, 1, 1)
 *     pack_b:      global = (roundup(K, PKL), npn, batch), local = (PKL, 1, 1)
 *     gemm_packed: global = (roundup(ceil(npn/TN), PLN),
 *                            roundup(ceil(npm/TM), PLM), batch),
 *                  local  = (PLN, PLM, 1)
 *   pack_a / pack_b must be compiled with the same MR / NR as gemm_packed.
 *   (Any larger global also works: out-of-range items return.)
 * ---------------------------------------------------------------------------
 */

#ifndef TRANSA
#define TRANSA 0
#endif
#ifndef TRANSB
#define TRANSB 0
#endif
#ifndef KSPLIT
#define KSPLIT 1
#endif

#if TRANSA == 0
  #define A_IDX(m, k) ((m) * lda + (k))
#else
  #define A_IDX(m, k) ((k) * lda + (m))
#endif
#if TRANSB == 0
  #define B_IDX(k, n) ((k) * ldb + (n))
#else
  #define B_IDX(k, n) ((n) * ldb + (k))
#endif

#if !defined(GEMM_ONLY) || defined(GEMM_XGEMM)
/* ========================================================================= */
/* 1. xgemm                                                                  */
/* ========================================================================= */
#ifndef MWG
#define MWG 64
#endif
#ifndef NWG
#define NWG 64
#endif
#ifndef KWG
#define KWG 16
#endif
#ifndef MDIMC
#define MDIMC 16
#endif
#ifndef NDIMC
#define NDIMC 16
#endif
#ifndef MDIMA
#define MDIMA 16
#endif
#ifndef NDIMB
#define NDIMB 16
#endif
#ifndef KWI
#define KWI 2
#endif
#ifndef VWM
#define VWM 2
#endif
#ifndef VWN
#define VWN 2
#endif
#ifndef STRM
#define STRM 0
#endif
#ifndef STRN
#define STRN 0
#endif
#ifndef SA
#define SA 1
#endif
#ifndef SB
#define SB 1
#endif

#define XG_MWI (MWG / MDIMC)
#define XG_NWI (NWG / NDIMC)
#define XG_MVI (XG_MWI / VWM)
#define XG_NVI (XG_NWI / VWN)
#define XG_NT (MDIMC * NDIMC)
#define XG_KDIMA (XG_NT / MDIMA)
#define XG_KDIMB (XG_NT / NDIMB)

/* tile-local first row / column of the thread's vector number v */
#if STRM == 0
  #define XG_MLOC(v) (tm * XG_MWI + (v) * VWM)
#else
  #define XG_MLOC(v) (((v) * MDIMC + tm) * VWM)
#endif
#if STRN == 0
  #define XG_NLOC(v) (tn * XG_NWI + (v) * VWN)
#else
  #define XG_NLOC(v) (((v) * NDIMC + tn) * VWN)
#endif

/* One k step (tile-local index kl, global index kg) of the thread's
   MWI x NWI outer product. */
#if SA
  #define XG_GET_A(kl, kg)                                                   \
    _Pragma("unroll")                                                        \
    for (int v = 0; v < XG_MVI; ++v)                                         \
      PSTORE(VWM, av, v * VWM, FLOAD(VWM, Alm, (kl) * MWG + XG_MLOC(v)))
#else
  #define XG_GET_A(kl, kg)                                                   \
    _Pragma("unroll")                                                        \
    for (int v = 0; v < XG_MVI; ++v) {                                       \
      const int mg = m0 + XG_MLOC(v);                                        \
      if (TRANSA == 1 && mg + VWM <= M) {                                    \
        PSTORE(VWM, av, v * VWM, LOADF(VWM, A, A_IDX(mg, (kg))))            \
      } else {                                                               \
        _Pragma("unroll")                                                    \
        for (int e = 0; e < VWM; ++e)                                        \
          av[v * VWM + e] = LOADF1(A, A_IDX(min(mg + e, M - 1), (kg)));      \
      }                                                                      \
    }
#endif
#if SB
  #define XG_GET_B(kl, kg)                                                   \
    _Pragma("unroll")                                                        \
    for (int v = 0; v < XG_NVI; ++v)                                         \
      bv[v] = FLOAD(VWN, Blm, (kl) * NWG + XG_NLOC(v));
#else
  #define XG_GET_B(kl, kg)                                                   \
    _Pragma("unroll")                                                        \
    for (int v = 0; v < XG_NVI; ++v) {                                       \
      const int ng = n0 + XG_NLOC(v);                                        \
      if (TRANSB == 0 && ng + VWN <= N) {                                    \
        bv[v] = LOADF(VWN, B, B_IDX((kg), ng));                              \
      } else {                                                               \
        float tb[VWN];                                                       \
        _Pragma("unroll")                                                    \
        for (int e = 0; e < VWN; ++e)                                        \
          tb[e] = LOADF1(B, B_IDX((kg), min(ng + e, N - 1)));                \
        bv[v] = PLOAD(VWN, tb, 0);                                           \
      }                                                                      \
    }
#endif
#define XG_STEP(kl, kg)                                                      \
  {                                                                          \
    float av[XG_MWI];                                                        \
    FLOATV(VWN) bv[XG_NVI];                                                  \
    XG_GET_A(kl, kg)                                                         \
    XG_GET_B(kl, kg)                                                         \
    _Pragma("unroll")                                                        \
    for (int i = 0; i < XG_MWI; ++i) {                                       \
      const FLOATV(VWN) a = (FLOATV(VWN))(av[i]);                            \
      _Pragma("unroll")                                                      \
      for (int j = 0; j < XG_NVI; ++j)                                       \
        acc[i][j] = MADD(a, bv[j], acc[i][j]);                               \
    }                                                                        \
  }

__kernel void xgemm(const int M, const int N, const int K,
                    const float alpha, const float beta,
                    const __global real* A, const long offA, const int lda, const long strideA,
                    const __global real* B, const long offB, const int ldb, const long strideB,
                    __global real* C, const long offC, const int ldc, const long strideC,
                    __global float* partial)
{
#if SA
  __local float Alm[KWG * MWG];
#endif
#if SB
  __local float Blm[KWG * NWG];
#endif
  const int tn = get_local_id(0);
  const int tm = get_local_id(1);
  const int n0 = get_group_id(0) * NWG;
  const int m0 = get_group_id(1) * MWG;
  const int z = get_group_id(2);
  const int b = z / KSPLIT;
  A += offA + b * strideA;
  B += offB + b * strideB;
  C += offC + b * strideC;
#if KSPLIT > 1
  const int kz = z - b * KSPLIT;
  const int kc = (((K + KSPLIT - 1) / KSPLIT + KWG - 1) / KWG) * KWG;
  const int kbeg = min(K, kz * kc);
  const int kend = min(K, kbeg + kc);
#else
  const int kbeg = 0;
  const int kend = K;
#endif
#if SA || SB
  const int tid = tm * NDIMC + tn;
#endif

  FLOATV(VWN) acc[XG_MWI][XG_NVI];
  for (int i = 0; i < XG_MWI; ++i)
    for (int j = 0; j < XG_NVI; ++j)
      acc[i][j] = (FLOATV(VWN))(0.0f);

  for (int kt = kbeg; kt < kend; kt += KWG) {
#if SA || SB
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
#if SA
    {
      /* A tile -> Alm[kl*MWG + ml]; clamped addresses, never out of bounds */
  #if TRANSA == 1
      const int lm = tid % MDIMA, lk = tid / MDIMA;
  #else
      const int lk = tid % XG_KDIMA, lm = tid / XG_KDIMA;
  #endif
      for (int j = 0; j < KWG / XG_KDIMA; ++j) {
        const int kl = j * XG_KDIMA + lk;
        const int kg = min(kt + kl, K - 1);
        for (int i = 0; i < MWG / (MDIMA * VWM); ++i) {
          const int ml = (i * MDIMA + lm) * VWM;
          const int mg = m0 + ml;
          if (TRANSA == 1 && mg + VWM <= M) {
            FSTORE(VWM, Alm, kl * MWG + ml, LOADF(VWM, A, A_IDX(mg, kg)));
          } else {
            for (int e = 0; e < VWM; ++e)
              Alm[kl * MWG + ml + e] = LOADF1(A, A_IDX(min(mg + e, M - 1), kg));
          }
        }
      }
    }
#endif
#if SB
    {
  #if TRANSB == 0
      const int ln = tid % NDIMB, lk = tid / NDIMB;
  #else
      const int lk = tid % XG_KDIMB, ln = tid / XG_KDIMB;
  #endif
      for (int j = 0; j < KWG / XG_KDIMB; ++j) {
        const int kl = j * XG_KDIMB + lk;
        const int kg = min(kt + kl, K - 1);
        for (int i = 0; i < NWG / (NDIMB * VWN); ++i) {
          const int nl = (i * NDIMB + ln) * VWN;
          const int ng = n0 + nl;
          if (TRANSB == 0 && ng + VWN <= N) {
            FSTORE(VWN, Blm, kl * NWG + nl, LOADF(VWN, B, B_IDX(kg, ng)));
          } else {
            for (int e = 0; e < VWN; ++e)
              Blm[kl * NWG + nl + e] = LOADF1(B, B_IDX(kg, min(ng + e, N - 1)));
          }
        }
      }
    }
#endif
#if SA || SB
    barrier(CLK_LOCAL_MEM_FENCE);
#endif
    const int klen = min(KWG, kend - kt);
    if (klen == KWG) {
      for (int kk = 0; kk < KWG; kk += KWI) {
#pragma unroll
        for (int u = 0; u < KWI; ++u) {
          XG_STEP(kk + u, kt + kk + u)
        }
      }
    } else {
      for (int kk = 0; kk < klen; ++kk) {
        XG_STEP(kk, kt + kk)
      }
    }
  }

  /* store */
  for (int v = 0; v < XG_MVI; ++v) {
    for (int e = 0; e < VWM; ++e) {
      const int i = v * VWM + e;
      const int m = m0 + XG_MLOC(v) + e;
      if (m < M) {
        for (int j = 0; j < XG_NVI; ++j) {
          const int n = n0 + XG_NLOC(j);
          FLOATV(VWN) r = alpha * acc[i][j];
#if KSPLIT > 1
          __global float* P = partial + (long)z * M * N + (long)m * N;
          if (n + VWN <= N) {
            FSTORE(VWN, P, n, r);
          } else {
            float t[VWN];
            PSTORE(VWN, t, 0, r)
            for (int f = 0; f < VWN; ++f)
              if (n + f < N) P[n + f] = t[f];
          }
#else
          if (n + VWN <= N) {
            if (beta != 0.0f)
              r += beta * LOADF(VWN, C, m * ldc + n);
            STOREF(VWN, C, m * ldc + n, r);
          } else {
            float t[VWN];
            PSTORE(VWN, t, 0, r)
            for (int f = 0; f < VWN; ++f) {
              if (n + f < N) {
                float o = t[f];
                if (beta != 0.0f)
                  o += beta * LOADF1(C, m * ldc + n + f);
                STOREF1(C, m * ldc + n + f, o);
              }
            }
          }
#endif
        }
      }
    }
  }
}

#endif /* xgemm */
#if !defined(GEMM_ONLY) || defined(GEMM_XGEMM) || defined(GEMM_GEMV)
/* ========================================================================= */
/* 2. gemm_splitk_reduce  (xgemm and gemv)                                   */
/* ========================================================================= */
__kernel void gemm_splitk_reduce(const int M, const int N, const float beta,
                                 const __global float* partial,
                                 __global real* C, const long offC, const int ldc, const long strideC)
{
  const int n = get_global_id(0);
  const int m = get_global_id(1);
  const int b = get_global_id(2);
  if (n >= N || m >= M)
    return;
  const long mn = (long)M * N;
  const __global float* p = partial + (long)b * KSPLIT * mn + (long)m * N + n;
  float s = 0.0f;
  for (int kz = 0; kz < KSPLIT; ++kz)
    s += p[kz * mn];
  C += offC + b * strideC;
  if (beta != 0.0f)
    s += beta * LOADF1(C, m * ldc + n);
  STOREF1(C, m * ldc + n, s);
}

#endif /* split-K reduce: xgemm, gemv */

#if !defined(GEMM_ONLY) || defined(GEMM_DIRECT)
/* ========================================================================= */
/* 3. gemm_direct                                                            */
/* ========================================================================= */
#ifndef WPTM
#define WPTM 2
#endif
#ifndef WPTN
#define WPTN 4
#endif
#ifndef DLOCALM
#define DLOCALM 8
#endif
#ifndef DLOCALN
#define DLOCALN 8
#endif
#ifndef DKU
#define DKU 4
#endif

#define GD_STEP(k)                                                           \
  {                                                                          \
    float a[WPTM], bb[WPTN];                                                 \
    for (int i = 0; i < WPTM; ++i) a[i] = LOADF1(A, A_IDX(mi[i], (k)));      \
    for (int j = 0; j < WPTN; ++j) bb[j] = LOADF1(B, B_IDX((k), nj[j]));     \
    for (int i = 0; i < WPTM; ++i)                                           \
      for (int j = 0; j < WPTN; ++j)                                         \
        acc[i][j] = MADD(a[i], bb[j], acc[i][j]);                            \
  }

__kernel __attribute__((reqd_work_group_size(DLOCALN, DLOCALM, 1)))
void gemm_direct(const int M, const int N, const int K,
                          const float alpha, const float beta,
                          const __global real* A, const long offA, const int lda, const long strideA,
                          const __global real* B, const long offB, const int ldb, const long strideB,
                          __global real* C, const long offC, const int ldc, const long strideC)
{
  const int n0 = get_global_id(0) * WPTN;
  const int m0 = get_global_id(1) * WPTM;
  const int b = get_global_id(2);
  if (m0 >= M || n0 >= N)
    return;
  A += offA + b * strideA;
  B += offB + b * strideB;
  C += offC + b * strideC;
  int mi[WPTM], nj[WPTN];
  for (int i = 0; i < WPTM; ++i) mi[i] = min(m0 + i, M - 1);
  for (int j = 0; j < WPTN; ++j) nj[j] = min(n0 + j, N - 1);
  float acc[WPTM][WPTN];
  for (int i = 0; i < WPTM; ++i)
    for (int j = 0; j < WPTN; ++j)
      acc[i][j] = 0.0f;
  int k = 0;
  for (; k + DKU <= K; k += DKU) {
#pragma unroll
    for (int u = 0; u < DKU; ++u) GD_STEP(k + u)
  }
  for (; k < K; ++k) GD_STEP(k)
  for (int i = 0; i < WPTM; ++i) {
    const int m = m0 + i;
    if (m < M) {
      for (int j = 0; j < WPTN; ++j) {
        const int n = n0 + j;
        if (n < N) {
          float r = alpha * acc[i][j];
          if (beta != 0.0f)
            r += beta * LOADF1(C, m * ldc + n);
          STOREF1(C, m * ldc + n, r);
        }
      }
    }
  }
}

#endif /* direct */

#if !defined(GEMM_ONLY) || defined(GEMM_PACKED) || defined(GEMM_PACKB)
/* ========================================================================= */
/* 4. Packed path                                                            */
/* ========================================================================= */
#ifndef MR
#define MR 4
#endif
#ifndef NR
#define NR 24
#endif
#ifndef VW
#define VW 8
#endif
#ifndef KC
#define KC 0
#endif
#ifndef TM
#define TM 16
#endif
#ifndef TN
#define TN 1
#endif
#ifndef PLM
#define PLM 1
#endif
#ifndef PLN
#define PLN 1
#endif
#ifndef PKU
#define PKU 4
#endif
#define PK_NV (NR / VW)
#define PK_VT FLOATV(VW)

#if !defined(GEMM_ONLY) || defined(GEMM_PACKED)
__kernel void pack_a(const int M, const int K,
                     const __global real* A, const long offA, const int lda, const long strideA,
                     __global float* Ap)
{
  const int k = get_global_id(0);
  const int p = get_global_id(1);
  const int b = get_global_id(2);
  const int npm = (M + MR - 1) / MR;
  if (k >= K || p >= npm)
    return;
  A += offA + b * strideA;
  __global float* dst = Ap + (long)b * npm * MR * K + ((long)p * K + k) * MR;
  const int m0 = p * MR;
  if (m0 + MR <= M) {
    for (int r = 0; r < MR; ++r)
      dst[r] = LOADF1(A, A_IDX(m0 + r, k));
  } else {
    for (int r = 0; r < MR; ++r) {
      const float v = LOADF1(A, A_IDX(min(m0 + r, M - 1), k));
      dst[r] = (m0 + r < M) ? v : 0.0f;
    }
  }
}

#endif /* pack_a */

__kernel void pack_b(const int N, const int K,
                     const __global real* B, const long offB, const int ldb, const long strideB,
                     __global float* Bp)
{
  const int k = get_global_id(0);
  const int p = get_global_id(1);
  const int b = get_global_id(2);
  const int npn = (N + NR - 1) / NR;
  if (k >= K || p >= npn)
    return;
  B += offB + b * strideB;
  __global float* dst = Bp + (long)b * npn * NR * K + ((long)p * K + k) * NR;
  const int n0 = p * NR;
  if (n0 + NR <= N) {
#if TRANSB == 0
    for (int v = 0; v < NR / VW; ++v)
      FSTORE(VW, dst, v * VW, LOADF(VW, B, B_IDX(k, n0 + v * VW)));
#else
    for (int c = 0; c < NR; ++c)
      dst[c] = LOADF1(B, B_IDX(k, n0 + c));
#endif
  } else {
    for (int c = 0; c < NR; ++c) {
      const float v = LOADF1(B, B_IDX(k, min(n0 + c, N - 1)));
      dst[c] = (n0 + c < N) ? v : 0.0f;
    }
  }
}

/* micro-kernel: acc[MR][PK_NV] += A(r, k) * Bpanel[k][..] for k in [0, kn) of the current K block.
   AV(r, k) is the tile's A element (row r of the tile, k relative to the block); bp0 is the B panel at the
   block's first k. */
#define PK_KSTEP(AV, k, bp)                                                  \
  {                                                                          \
    PK_VT bv[PK_NV];                                                         \
    _Pragma("unroll")                                                        \
    for (int v = 0; v < PK_NV; ++v) bv[v] = FLOAD(VW, (bp), v * VW);         \
    _Pragma("unroll")                                                        \
    for (int r = 0; r < MR; ++r) {                                           \
      const PK_VT a = (PK_VT)(AV(r, k));                                     \
      _Pragma("unroll")                                                      \
      for (int v = 0; v < PK_NV; ++v) acc[r][v] = MADD(a, bv[v], acc[r][v]); \
    }                                                                        \
  }
#define PK_KLOOP(AV, bp0, kn)                                                \
  {                                                                          \
    const __global float* bp = (bp0);                                        \
    int kk = 0;                                                              \
    for (; kk + PKU <= (kn); kk += PKU) {                                    \
      _Pragma("unroll")                                                      \
      for (int u = 0; u < PKU; ++u) {                                        \
        PK_KSTEP(AV, kk + u, bp + u * NR)                                    \
      }                                                                      \
      bp += PKU * NR;                                                        \
    }                                                                        \
    for (; kk < (kn); ++kk) {                                                \
      PK_KSTEP(AV, kk, bp)                                                   \
      bp += NR;                                                              \
    }                                                                        \
  }
/* The work-item's tiles: panel rows pm0..pm0+tmn, panel columns pn0..pn0+tnn of batch b (returns when
   it has none); B's panels and C moved to batch b. */
#define PK_TILES                                                             \
  const int npm = (M + MR - 1) / MR;                                         \
  const int npn = (N + NR - 1) / NR;                                         \
  const int pm0 = get_global_id(1) * TM;                                     \
  const int pn0 = get_global_id(0) * TN;                                     \
  const int b = get_global_id(2);                                            \
  if (pm0 >= npm || pn0 >= npn)                                              \
    return;                                                                  \
  Bp += (long)b * npn * NR * K;                                              \
  C += offC + b * strideC;                                                   \
  const int tmn = min(TM, npm - pm0);                                        \
  const int tnn = min(TN, npn - pn0);

/* C tile (panel row pm, panel column pn) = alpha*acc + beta*C */
#define PK_STORE(pm, pn)                                                     \
  {                                                                          \
    const int mb = (pm) * MR, nb = (pn) * NR;                                \
    const int full_n = (nb + NR <= N);                                       \
    for (int r = 0; r < MR; ++r) {                                           \
      const int m = mb + r;                                                  \
      if (m < M) {                                                           \
        if (full_n) {                                                        \
          for (int v = 0; v < PK_NV; ++v) {                                  \
            PK_VT o = alpha * acc[r][v];                                     \
            if (beta != 0.0f)                                                \
              o += beta * LOADF(VW, C, m * ldc + nb + v * VW);               \
            STOREF(VW, C, m * ldc + nb + v * VW, o);                         \
          }                                                                  \
        } else {                                                             \
          float t[NR];                                                       \
          for (int v = 0; v < PK_NV; ++v) PSTORE(VW, t, v * VW, acc[r][v])  \
          for (int c = 0; c < NR; ++c) {                                     \
            if (nb + c < N) {                                                \
              float o = alpha * t[c];                                        \
              if (beta != 0.0f)                                              \
                o += beta * LOADF1(C, m * ldc + nb + c);                     \
              STOREF1(C, m * ldc + nb + c, o);                               \
            }                                                                \
          }                                                                  \
        }                                                                    \
      }                                                                      \
    }                                                                        \
  }

#if KC > 0 && (TM * TN > 1)
  #define PK_BLOCKED 1
#else
  #define PK_BLOCKED 0
#endif

/* Every C tile of the work-item over all of K. TILE_A(i) declares, for tile row pm0 + i and the K block
   starting at kb, what AV(r, k) reads. With K blocking (KC > 0, several tiles), each KC x NR block of B is
   used by all the work-item's tiles while it is in cache, and the C tiles wait in a private float buffer
   between blocks. */
#if PK_BLOCKED
#define PK_BODY(TILE_A, AV)                                                  \
  float cb[TM * TN * MR * NR];                                               \
  for (int kb = 0; kb < K; kb += KC) {                                       \
    const int kn = min(KC, K - kb);                                          \
    for (int j = 0; j < tnn; ++j) {                                          \
      for (int i = 0; i < tmn; ++i) {                                        \
        float* cbt = cb + (j * TM + i) * (MR * NR);                          \
        TILE_A(i)                                                            \
        PK_VT acc[MR][PK_NV];                                                \
        for (int r = 0; r < MR; ++r)                                         \
          for (int v = 0; v < PK_NV; ++v)                                    \
            acc[r][v] = kb == 0 ? (PK_VT)(0.0f) : PLOAD(VW, cbt, r * NR + v * VW); \
        PK_KLOOP(AV, Bp + ((long)(pn0 + j) * K + kb) * NR, kn)               \
        if (kb + KC >= K) {                                                  \
          PK_STORE(pm0 + i, pn0 + j)                                         \
        } else {                                                             \
          for (int r = 0; r < MR; ++r)                                       \
            for (int v = 0; v < PK_NV; ++v)                                  \
              PSTORE(VW, cbt, r * NR + v * VW, acc[r][v])                    \
        }                                                                    \
      }                                                                      \
    }                                                                        \
  }
#else
#define PK_BODY(TILE_A, AV)                                                  \
  const int kb = 0;                                                          \
  for (int j = 0; j < tnn; ++j) {                                            \
    for (int i = 0; i < tmn; ++i) {                                          \
      TILE_A(i)                                                              \
      PK_VT acc[MR][PK_NV];                                                  \
      for (int r = 0; r < MR; ++r)                                           \
        for (int v = 0; v < PK_NV; ++v)                                      \
          acc[r][v] = (PK_VT)(0.0f);                                         \
      PK_KLOOP(AV, Bp + (long)(pn0 + j) * K * NR, K)                         \
      PK_STORE(pm0 + i, pn0 + j)                                             \
    }                                                                        \
  }
#endif

#if !defined(GEMM_ONLY) || defined(GEMM_PACKED)
/* A's panel of tile row pm0 + i at block kb */
#define PK_TILE_PACKED(i) const __global float* apan = Ap + ((long)(pm0 + (i)) * K + kb) * MR;
#define PK_AV_PACKED(r, k) apan[(k) * MR + (r)]

__kernel __attribute__((reqd_work_group_size(PLN, PLM, 1)))
void gemm_packed(const int M, const int N, const int K,
                          const float alpha, const float beta,
                          const __global float* Ap, const __global float* Bp,
                          __global real* C, const long offC, const int ldc, const long strideC)
{
  PK_TILES
  Ap += (long)b * npm * MR * K;
  PK_BODY(PK_TILE_PACKED, PK_AV_PACKED)
}
#endif /* gemm_packed */

/*
 * 4b. gemm_packb: the packed micro-kernel on B's panels and A as stored (not packed): for a
 *   small N, packing A would cost about as much as the arithmetic. Defines as for gemm_packed
 *   but no KC (K blocking across tiles breaks the streaming of A's rows), and
 *   PAC(0): 0 = the micro-kernel reads A as stored; > 0 (a multiple of 16) = each tile converts
 *   its MR rows of A to fp32, PAC values of k at a time, into a private buffer that the
 *   micro-kernel broadcasts from (on a CPU: vector loads and conversions of A, and broadcasts
 *   from memory that leave the FMA pipes to the FMAs).
 *   A's rows beyond M are read clamped and not stored.
 *   NDRanges: pack_b as above; gemm_packb as gemm_packed.
 */
#if !defined(GEMM_ONLY) || defined(GEMM_PACKB)
#ifndef PAC
#define PAC 0
#endif
/* the rows of A of tile row pm0 + i, clamped to M - 1 */
#define PK_TILE_STORED(i)                                                    \
  int arow[MR];                                                              \
  for (int r = 0; r < MR; ++r) arow[r] = min((pm0 + (i)) * MR + r, M - 1);
#define PK_AV_STORED(r, k) LOADF1(A, A_IDX(arow[r], kb + (k)))
#if TRANSA == 0
  #define PK_AV_STAGED(r, k) abuf[(r) * PAC + (k)]
#else
  #define PK_AV_STAGED(r, k) abuf[(k) * MR + (r)]
#endif
#if MR == 2 || MR == 4 || MR == 8 || MR == 16
  #define PK_STAGE_MR_VECTOR 1
#else
  #define PK_STAGE_MR_VECTOR 0
#endif

__kernel __attribute__((reqd_work_group_size(PLN, PLM, 1)))
void gemm_packb(const int M, const int N, const int K,
                const float alpha, const float beta,
                const __global real* A, const long offA, const int lda, const long strideA,
                const __global float* Bp,
                __global real* C, const long offC, const int ldc, const long strideC)
{
  PK_TILES
  A += offA + b * strideA;
#if PAC > 0
  float abuf[MR * PAC];
  for (int j = 0; j < tnn; ++j) {
    for (int i = 0; i < tmn; ++i) {
      PK_TILE_STORED(i)
      PK_VT acc[MR][PK_NV];
      for (int r = 0; r < MR; ++r)
        for (int v = 0; v < PK_NV; ++v)
          acc[r][v] = (PK_VT)(0.0f);
      for (int kb = 0; kb < K; kb += PAC) {
        const int kn = min(PAC, K - kb);
        /* stage A(tile rows, kb..kb+kn) as fp32: vectors along A's contiguous dimension where they fit */
#if TRANSA == 0
        if (kn == PAC) {
          for (int r = 0; r < MR; ++r)
            _Pragma("unroll")
            for (int c = 0; c < PAC; c += 16)
              FSTORE(16, abuf, r * PAC + c, LOADF(16, A, A_IDX(arow[r], kb + c)));
        } else {
          for (int r = 0; r < MR; ++r)
            for (int c = 0; c < kn; ++c)
              abuf[r * PAC + c] = LOADF1(A, A_IDX(arow[r], kb + c));
        }
#else
#if PK_STAGE_MR_VECTOR
        if (arow[MR - 1] == arow[0] + MR - 1) {
          for (int c = 0; c < kn; ++c)
            FSTORE(MR, abuf, c * MR, LOADF(MR, A, A_IDX(arow[0], kb + c)));
        } else
#endif
        {
          for (int c = 0; c < kn; ++c)
            for (int r = 0; r < MR; ++r)
              abuf[c * MR + r] = LOADF1(A, A_IDX(arow[r], kb + c));
        }
#endif
        PK_KLOOP(PK_AV_STAGED, Bp + ((long)(pn0 + j) * K + kb) * NR, kn)
      }
      PK_STORE(pm0 + i, pn0 + j)
    }
  }
#else
  PK_BODY(PK_TILE_STORED, PK_AV_STORED)
#endif
}
#endif /* gemm_packb */
#endif /* packed, packb */

/* ========================================================================= */
/* 5. gemv: few rows of C (decoding), memory-bound                           */
/* ========================================================================= */
/*
 * Defines (default): GVW(8) vector width, GNV(2) vectors or columns per work-item,
 *   GMR(1) rows of C per pass over B, GLN(64) work-group size, KSPLIT(1) K slices.
 * TRANSB == 0 (B is K x N, rows contiguous along n): a work-item owns NB = GVW*GNV
 *   consecutive columns of C; per pass, acc[r][v] += A(m0+r, k) * B(k, n0+v*GVW...)
 *   over its K slice (vector loads along n).
 * TRANSB == 1 (B is N x K, rows contiguous along k): a work-item owns GNV
 *   consecutive columns; acc[r][c] (GVW wide along k) += A(m0+r, k...) * B(n0+c, k...),
 *   summed across the vector at the end.
 * Rows are handled GMR at a time (M > GMR: several passes). Out-of-range rows and
 * columns use clamped, always-valid loads and are not stored.
 * K slice z of KSPLIT covers [z*kc, min(K, (z+1)*kc)), kc = ceil(K/KSPLIT).
 * KSPLIT == 1: C = alpha*acc + beta*C (C not read when beta == 0).
 * KSPLIT  > 1: partial[(b*KSPLIT+z)*M*N + m*N + n] = alpha*acc, then gemm_splitk_reduce.
 * NDRange: global = (roundup(ceil(N / per_item), GLN), KSPLIT, batch), local = (GLN, 1, 1),
 *   per_item = GVW*GNV (TRANSB == 0) or GNV (TRANSB == 1).
 */
#if !defined(GEMM_ONLY) || defined(GEMM_GEMV)
#ifndef GSTREAM
#define GSTREAM 0
#endif
#ifndef GCR
#define GCR 1
#endif
#ifndef GRB
#define GRB 1
#endif
#ifndef GVW
#define GVW 8
#endif
#ifndef GNV
#define GNV 2
#endif
#ifndef GMR
#define GMR 1
#endif
#ifndef GLN
#define GLN 64
#endif
#define GV_VT FLOATV(GVW)
#if TRANSB == 0
  #define GV_PER_ITEM (GVW * GNV)
#else
  #define GV_PER_ITEM GNV
#endif

#if !GSTREAM
__kernel __attribute__((reqd_work_group_size(GLN, 1, 1)))
void gemv(const int M, const int N, const int K, const float alpha, const float beta,
          const __global real* A, const long offA, const int lda, const long strideA,
          const __global real* B, const long offB, const int ldb, const long strideB,
          __global real* C, const long offC, const int ldc, const long strideC,
          __global float* partial)
{
  const int n0 = get_global_id(0) * GV_PER_ITEM;
  const int z = get_global_id(1);
  const int b = get_global_id(2);
  if (n0 >= N)
    return;
  A += offA + b * strideA;
  B += offB + b * strideB;
  C += offC + b * strideC;
  const int kc = (K + KSPLIT - 1) / KSPLIT;
  const int kbegin = min(K, z * kc);
  const int kend = min(K, kbegin + kc);

  for (int m0 = 0; m0 < M; m0 += GMR) {
    int mi[GMR];
    for (int r = 0; r < GMR; ++r) mi[r] = min(m0 + r, M - 1);
#if TRANSB == 0
    GV_VT acc[GMR][GNV];
    for (int r = 0; r < GMR; ++r)
      for (int v = 0; v < GNV; ++v) acc[r][v] = (GV_VT)(0.0f);
    const int full = (n0 + GVW * GNV <= N);
    for (int k = kbegin; k < kend; ++k) {
      GV_VT bv[GNV];
      if (full) {
        #pragma unroll
        for (int v = 0; v < GNV; ++v) bv[v] = LOADF(GVW, B, B_IDX(k, n0 + v * GVW));
      } else {
        float t[GVW * GNV];
        for (int c = 0; c < GVW * GNV; ++c) t[c] = LOADF1(B, B_IDX(k, min(n0 + c, N - 1)));
        for (int v = 0; v < GNV; ++v) bv[v] = PLOAD(GVW, t, v * GVW);
      }
      #pragma unroll
      for (int r = 0; r < GMR; ++r) {
        const GV_VT a = (GV_VT)(LOADF1(A, A_IDX(mi[r], k)));
        #pragma unroll
        for (int v = 0; v < GNV; ++v) acc[r][v] = MADD(a, bv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < GMR; ++r) {
      const int m = m0 + r;
      if (m >= M) break;
      float t[GVW * GNV];
      for (int v = 0; v < GNV; ++v) PSTORE(GVW, t, v * GVW, acc[r][v])
      for (int c = 0; c < GVW * GNV; ++c) {
        const int n = n0 + c;
        if (n < N) {
#if KSPLIT > 1
          partial[((long)b * KSPLIT + z) * M * N + (long)m * N + n] = alpha * t[c];
#else
          float o = alpha * t[c];
          if (beta != 0.0f) o += beta * LOADF1(C, m * ldc + n);
          STOREF1(C, m * ldc + n, o);
#endif
        }
      }
    }
#else /* TRANSB == 1 */
    GV_VT acc[GMR][GNV];
    for (int r = 0; r < GMR; ++r)
      for (int c = 0; c < GNV; ++c) acc[r][c] = (GV_VT)(0.0f);
    int nj[GNV];
    for (int c = 0; c < GNV; ++c) nj[c] = min(n0 + c, N - 1);
    int k = kbegin;
    for (; k + GVW <= kend; k += GVW) {
      GV_VT av[GMR];
      #pragma unroll
      for (int r = 0; r < GMR; ++r) {
#if TRANSA == 0
        av[r] = LOADF(GVW, A, A_IDX(mi[r], k));
#else
        float t[GVW];
        for (int u = 0; u < GVW; ++u) t[u] = LOADF1(A, A_IDX(mi[r], k + u));
        av[r] = PLOAD(GVW, t, 0);
#endif
      }
      #pragma unroll
      for (int c = 0; c < GNV; ++c) {
        const GV_VT bv = LOADF(GVW, B, B_IDX(k, nj[c]));
        #pragma unroll
        for (int r = 0; r < GMR; ++r) acc[r][c] = MADD(av[r], bv, acc[r][c]);
      }
    }
    float sums[GMR][GNV];
    for (int r = 0; r < GMR; ++r)
      for (int c = 0; c < GNV; ++c) {
        float t[GVW];
        PSTORE(GVW, t, 0, acc[r][c])
        float s = 0.0f;
        for (int u = 0; u < GVW; ++u) s += t[u];
        sums[r][c] = s;
      }
    for (; k < kend; ++k) {
      for (int c = 0; c < GNV; ++c) {
        const float bk = LOADF1(B, B_IDX(k, nj[c]));
        for (int r = 0; r < GMR; ++r) sums[r][c] = MADD(LOADF1(A, A_IDX(mi[r], k)), bk, sums[r][c]);
      }
    }
    for (int r = 0; r < GMR; ++r) {
      const int m = m0 + r;
      if (m >= M) break;
      for (int c = 0; c < GNV; ++c) {
        const int n = n0 + c;
        if (n < N) {
#if KSPLIT > 1
          partial[((long)b * KSPLIT + z) * M * N + (long)m * N + n] = alpha * sums[r][c];
#else
          float o = alpha * sums[r][c];
          if (beta != 0.0f) o += beta * LOADF1(C, m * ldc + n);
          STOREF1(C, m * ldc + n, o);
#endif
        }
      }
    }
#endif
  }
}
#endif /* !GSTREAM */

/*
 * gemv_stream (GSTREAM=1, TRANSB == 0 only): each work-item streams whole runs of B's rows.
 * Work-item (range j of GCR column ranges, K slice z): for k in its slice, for its columns in
 * order, partial[(b*KSPLIT+z)*M*N + m*N + n] (+)= alpha*A(m, k) * B(k, n) for GMR rows at a
 * time (GNV vectors per step, GRB rows of B summed in registers per read and write of the
 * partial row): B is read in memory order, and the partial row (in cache) holds the sums.
 * Then gemm_splitk_reduce (KSPLIT slices; KSPLIT == 1 too) adds beta*C and stores C.
 * NDRange: global = (GCR, KSPLIT, batch), local = (1, 1, 1).
 */
#if GSTREAM
#if TRANSB != 0
#error "GSTREAM needs TRANSB == 0"
#endif
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemv_stream(const int M, const int N, const int K, const float alpha,
                 const __global real* A, const long offA, const int lda, const long strideA,
                 const __global real* B, const long offB, const int ldb, const long strideB,
                 __global float* partial)
{
  const int j = get_global_id(0);
  const int z = get_global_id(1);
  const int b = get_global_id(2);
  A += offA + b * strideA;
  B += offB + b * strideB;
  __global float* P = partial + ((long)b * KSPLIT + z) * M * N;
  const int kc = (K + KSPLIT - 1) / KSPLIT;
  const int kbegin = min(K, z * kc);
  const int kend = min(K, kbegin + kc);
  /* column range j: a multiple of GVW wide (the last one takes the rest) */
  const int width = ((N + GCR - 1) / GCR + GVW - 1) / GVW * GVW;
  const int nbegin = min(N, j * width);
  const int nend = min(N, nbegin + width);
  const int nvec = nbegin + (nend - nbegin) / GVW * GVW;   /* vector part [nbegin, nvec) */
  for (int m0 = 0; m0 < M; m0 += GMR) {
    const int rows = min(GMR, M - m0);
    if (kbegin >= kend) {
      /* an empty slice contributes zeros */
      for (int r = 0; r < rows; ++r)
        for (int n = nbegin; n < nend; ++n) P[(long)(m0 + r) * N + n] = 0.0f;
      continue;
    }
    /* GRB rows of B per step: their products are summed in registers, so the partial row is read
       and written once per GRB rows of B (rows past the slice are read clamped and weighted 0) */
    for (int k = kbegin; k < kend; k += GRB) {
      const int kn = min(GRB, kend - k);
      float a[GMR][GRB];
      const __global real* brow[GRB];
      for (int q = 0; q < GRB; ++q) {
        brow[q] = B + (long)(k + min(q, kn - 1)) * ldb;
        for (int r = 0; r < GMR; ++r)
          a[r][q] = q < kn ? alpha * LOADF1(A, A_IDX(min(m0 + r, M - 1), k + q)) : 0.0f;
      }
      const int first = (k == kbegin);
      #pragma unroll
      for (int r = 0; r < GMR; ++r) {
        if (r < rows) {
          __global float* prow = P + (long)(m0 + r) * N;
          int n = nbegin;
          for (; n + GNV * GVW <= nvec; n += GNV * GVW) {
            #pragma unroll
            for (int v = 0; v < GNV; ++v) {
              GV_VT acc = first ? (GV_VT)(0.0f) : FLOAD(GVW, prow, n + v * GVW);
              #pragma unroll
              for (int q = 0; q < GRB; ++q) acc = MADD((GV_VT)(a[r][q]), LOADF(GVW, brow[q], n + v * GVW), acc);
              FSTORE(GVW, prow, n + v * GVW, acc);
            }
          }
          for (; n < nvec; n += GVW) {
            GV_VT acc = first ? (GV_VT)(0.0f) : FLOAD(GVW, prow, n);
            for (int q = 0; q < GRB; ++q) acc = MADD((GV_VT)(a[r][q]), LOADF(GVW, brow[q], n), acc);
            FSTORE(GVW, prow, n, acc);
          }
          for (; n < nend; ++n) {
            float acc = first ? 0.0f : prow[n];
            for (int q = 0; q < GRB; ++q) acc = MADD(a[r][q], LOADF1(brow[q], n), acc);
            prow[n] = acc;
          }
        }
      }
    }
  }
}
#endif
#endif /* gemv */

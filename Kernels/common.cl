/*
 * common.cl -- precision / vector helpers shared by every kernel family.
 * This file is concatenated (followed by a newline) in front of the kernel
 * family source (e.g. gemm.cl) and compiled as one OpenCL C 1.2 program.
 *
 * Defines (all optional):
 *   PRECISION  32 (default): storage type `real` is float.
 *              16          : storage type `real` is half. Only the
 *                            vload_half* / vstore_half*_rte built-ins touch
 *                            the data, so cl_khr_fp16 is NOT required.
 *              0xBF16      : bfloat16 storage: `real` is ushort, the upper
 *                            16 bits of an fp32 (loads shift left by 16;
 *                            stores round to nearest even, NaN stays NaN).
 *
 * Provided:
 *   real                     storage element type (float, half or ushort)
 *   FLOATV(W)                float vector type of width W (1 -> float)
 *   LOADF(W, p, i)           W storage elements at p + i  -> FLOATV(W)
 *   STOREF(W, p, i, v)       FLOATV(W) v -> W storage elements at p + i
 *                            (half, bfloat16: round to nearest even; with
 *                            bfloat16 it is a statement, not an expression)
 *   LOAD1(p, i), STORE1(p, i, v)   scalar shorthands of the above
 *   FLOAD(W, p, i), FSTORE(W, p, i, v)   same for plain float pointers
 *                            (global/local)
 *   PLOAD(W, p, i), PSTORE(W, p, i, v)   same for private float arrays
 *                            (PSTORE is a statement, not an expression)
 *   MADD(a, b, c)            a*b + c (fma by default; -DUSE_MAD=1 -> mad())
 * No alignment beyond the element size is required by any helper.
 * W is one of 1, 2, 4, 8, 16 and may be a macro.
 */
#ifndef PRECISION
#define PRECISION 32
#endif
#ifndef USE_MAD
#define USE_MAD 0
#endif

#define CL_CAT_(a, b) a##b
#define CL_CAT(a, b) CL_CAT_(a, b)

#define FLOATV1 float
#define FLOATV2 float2
#define FLOATV4 float4
#define FLOATV8 float8
#define FLOATV16 float16
#define FLOATV(W) CL_CAT(FLOATV, W)

#if PRECISION == 16
  typedef half real;
  #define LOADF1(p, i)  vload_half(0, (p) + (i))
  #define LOADF2(p, i)  vload_half2(0, (p) + (i))
  #define LOADF4(p, i)  vload_half4(0, (p) + (i))
  #define LOADF8(p, i)  vload_half8(0, (p) + (i))
  #define LOADF16(p, i) vload_half16(0, (p) + (i))
  #define STOREF1(p, i, v)  vstore_half_rte((v), 0, (p) + (i))
  #define STOREF2(p, i, v)  vstore_half2_rte((v), 0, (p) + (i))
  #define STOREF4(p, i, v)  vstore_half4_rte((v), 0, (p) + (i))
  #define STOREF8(p, i, v)  vstore_half8_rte((v), 0, (p) + (i))
  #define STOREF16(p, i, v) vstore_half16_rte((v), 0, (p) + (i))
#elif PRECISION == 32
  typedef float real;
  #define LOADF1(p, i)  ((p)[(i)])
  #define LOADF2(p, i)  vload2(0, (p) + (i))
  #define LOADF4(p, i)  vload4(0, (p) + (i))
  #define LOADF8(p, i)  vload8(0, (p) + (i))
  #define LOADF16(p, i) vload16(0, (p) + (i))
  #define STOREF1(p, i, v)  ((p)[(i)] = (v))
  #define STOREF2(p, i, v)  vstore2((v), 0, (p) + (i))
  #define STOREF4(p, i, v)  vstore4((v), 0, (p) + (i))
  #define STOREF8(p, i, v)  vstore8((v), 0, (p) + (i))
  #define STOREF16(p, i, v) vstore16((v), 0, (p) + (i))
#elif PRECISION == 0xBF16
  typedef ushort real;
  #define USHORTV1 ushort
  #define USHORTV2 ushort2
  #define USHORTV4 ushort4
  #define USHORTV8 ushort8
  #define USHORTV16 ushort16
  #define UINTV1 uint
  #define UINTV2 uint2
  #define UINTV4 uint4
  #define UINTV8 uint8
  #define UINTV16 uint16
  #define BF16_VLOAD1(p, i) ((p)[(i)])
  #define BF16_VLOAD2(p, i) vload2(0, (p) + (i))
  #define BF16_VLOAD4(p, i) vload4(0, (p) + (i))
  #define BF16_VLOAD8(p, i) vload8(0, (p) + (i))
  #define BF16_VLOAD16(p, i) vload16(0, (p) + (i))
  #define BF16_VSTORE1(p, i, v) ((p)[(i)] = (v))
  #define BF16_VSTORE2(p, i, v) vstore2((v), 0, (p) + (i))
  #define BF16_VSTORE4(p, i, v) vstore4((v), 0, (p) + (i))
  #define BF16_VSTORE8(p, i, v) vstore8((v), 0, (p) + (i))
  #define BF16_VSTORE16(p, i, v) vstore16((v), 0, (p) + (i))
  /* bits << 16, reinterpreted as float */
  #define BF16_LOAD(W, p, i) \
    CL_CAT(as_, FLOATV(W))(CL_CAT(convert_, CL_CAT(UINTV, W))(CL_CAT(BF16_VLOAD, W)(p, i)) << 16)
  /* round to nearest even on the upper 16 bits; a NaN keeps its upper bits with the quiet bit set */
  #define BF16_STORE(W, p, i, v) { \
    const CL_CAT(UINTV, W) bu_ = CL_CAT(as_, CL_CAT(UINTV, W))(v); \
    const CL_CAT(UINTV, W) br_ = select((bu_ + (CL_CAT(UINTV, W))(0x7fffu) + ((bu_ >> 16) & (CL_CAT(UINTV, W))(1u))) >> 16, \
                                        (bu_ >> 16) | (CL_CAT(UINTV, W))(0x40u), \
                                        (bu_ & (CL_CAT(UINTV, W))(0x7fffffffu)) > (CL_CAT(UINTV, W))(0x7f800000u)); \
    CL_CAT(BF16_VSTORE, W)(p, i, CL_CAT(convert_, CL_CAT(USHORTV, W))(br_)); }
  #define LOADF1(p, i)  BF16_LOAD(1, p, i)
  #define LOADF2(p, i)  BF16_LOAD(2, p, i)
  #define LOADF4(p, i)  BF16_LOAD(4, p, i)
  #define LOADF8(p, i)  BF16_LOAD(8, p, i)
  #define LOADF16(p, i) BF16_LOAD(16, p, i)
  #define STOREF1(p, i, v)  BF16_STORE(1, p, i, v)
  #define STOREF2(p, i, v)  BF16_STORE(2, p, i, v)
  #define STOREF4(p, i, v)  BF16_STORE(4, p, i, v)
  #define STOREF8(p, i, v)  BF16_STORE(8, p, i, v)
  #define STOREF16(p, i, v) BF16_STORE(16, p, i, v)
#else
  #error "PRECISION must be 32, 16 or 0xBF16"
#endif

#define LOADF(W, p, i)     CL_CAT(LOADF, W)(p, i)
#define STOREF(W, p, i, v) CL_CAT(STOREF, W)(p, i, v)
#define LOAD1(p, i)        LOADF1(p, i)
#define STORE1(p, i, v)    STOREF1(p, i, v)

/* plain float memory (panels, local tiles, private arrays) */
#define FLOAD1(p, i)  ((p)[(i)])
#define FLOAD2(p, i)  vload2(0, (p) + (i))
#define FLOAD4(p, i)  vload4(0, (p) + (i))
#define FLOAD8(p, i)  vload8(0, (p) + (i))
#define FLOAD16(p, i) vload16(0, (p) + (i))
#define FSTORE1(p, i, v)  ((p)[(i)] = (v))
#define FSTORE2(p, i, v)  vstore2((v), 0, (p) + (i))
#define FSTORE4(p, i, v)  vstore4((v), 0, (p) + (i))
#define FSTORE8(p, i, v)  vstore8((v), 0, (p) + (i))
#define FSTORE16(p, i, v) vstore16((v), 0, (p) + (i))
#define FLOAD(W, p, i)     CL_CAT(FLOAD, W)(p, i)
#define FSTORE(W, p, i, v) CL_CAT(FSTORE, W)(p, i, v)

/* private float arrays <-> vectors, element by element (the vload/vstore
   built-ins on __private pointers confuse some tools' shadow memory, e.g.
   oclgrind --uninitialized, and so does building a vector from smaller
   vectors; compilers generate the same code for these) */
#define PLOAD1(p, i)  ((p)[(i)])
#define PLOAD2(p, i)  ((float2)((p)[(i)], (p)[(i) + 1]))
#define PLOAD4(p, i)  ((float4)((p)[(i)], (p)[(i) + 1], (p)[(i) + 2], (p)[(i) + 3]))
#define PLOAD8(p, i)  ((float8)((p)[(i)], (p)[(i) + 1], (p)[(i) + 2], (p)[(i) + 3], \
                                (p)[(i) + 4], (p)[(i) + 5], (p)[(i) + 6], (p)[(i) + 7]))
#define PLOAD16(p, i) ((float16)((p)[(i)], (p)[(i) + 1], (p)[(i) + 2], (p)[(i) + 3], \
                                 (p)[(i) + 4], (p)[(i) + 5], (p)[(i) + 6], (p)[(i) + 7], \
                                 (p)[(i) + 8], (p)[(i) + 9], (p)[(i) + 10], (p)[(i) + 11], \
                                 (p)[(i) + 12], (p)[(i) + 13], (p)[(i) + 14], (p)[(i) + 15]))
#define PSTORE1(p, i, v)  { (p)[(i)] = (v); }
#define PSTORE2(p, i, v)  { const float2 pv2_ = (v); (p)[(i)] = pv2_.s0; (p)[(i) + 1] = pv2_.s1; }
#define PSTORE4(p, i, v)  { const float4 pv4_ = (v); PSTORE2(p, i, pv4_.lo) PSTORE2(p, (i) + 2, pv4_.hi) }
#define PSTORE8(p, i, v)  { const float8 pv8_ = (v); PSTORE4(p, i, pv8_.lo) PSTORE4(p, (i) + 4, pv8_.hi) }
#define PSTORE16(p, i, v) { const float16 pv16_ = (v); PSTORE8(p, i, pv16_.lo) PSTORE8(p, (i) + 8, pv16_.hi) }
#define PLOAD(W, p, i)     CL_CAT(PLOAD, W)(p, i)
#define PSTORE(W, p, i, v) CL_CAT(PSTORE, W)(p, i, v)

#if USE_MAD
  #define MADD(a, b, c) mad((a), (b), (c))
#else
  #define MADD(a, b, c) fma((a), (b), (c))
#endif

/*
 * reference.cl -- the in-run yardstick of compute-bound benchmarks (the performance
 * suite, scripts/perf-check.sh): a kernel that does nothing but independent FMAs.
 * Compiled as common.cl + "\n" + reference.cl; no tuned parameters, so a change of a
 * tuning database or of a family's kernels cannot move it.
 *
 * Each work-item runs CHAINS independent chains of float vectors of width VW, ITERATIONS
 * FMAs each (enough chains to cover the FMA pipes' latency), and writes their sum, so the
 * compiler cannot drop the work: 2 * VW * CHAINS * iterations FLOPs per work-item.
 * Defines: VW in {4, 8, 16}; CHAINS = 8 (fixed: the unrolled body names eight chains).
 */
#ifndef VW
#define VW 8
#endif

#define REF_VT FLOATV(VW)

__kernel void fma_peak(__global float* out, const int iterations, const float scale)
{
  const int gid = get_global_id(0);
  const REF_VT m = (REF_VT)(scale);
  const REF_VT c = (REF_VT)(1.0f - scale);
  REF_VT a0 = (REF_VT)(gid * 1e-9f), a1 = a0 + 0.125f, a2 = a0 + 0.25f, a3 = a0 + 0.375f;
  REF_VT a4 = a0 + 0.5f, a5 = a0 + 0.625f, a6 = a0 + 0.75f, a7 = a0 + 0.875f;
  for (int i = 0; i < iterations; ++i) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  const REF_VT s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
#if VW == 4
  out[gid] = (s.s0 + s.s1) + (s.s2 + s.s3);
#elif VW == 8
  out[gid] = ((s.s0 + s.s1) + (s.s2 + s.s3)) + ((s.s4 + s.s5) + (s.s6 + s.s7));
#else
  out[gid] = (((s.s0 + s.s1) + (s.s2 + s.s3)) + ((s.s4 + s.s5) + (s.s6 + s.s7)))
           + (((s.s8 + s.s9) + (s.sa + s.sb)) + ((s.sc + s.sd) + (s.se + s.sf)));
#endif
}

/*
 * The yardstick of memory-bound benchmarks: a streaming read with fixed parameters, so that neither
 * a tuning database nor a change of the bandwidth family's kernel can move it. Each work-item sums
 * per_item float4s: its own contiguous run (CONTIGUOUS 1, a CPU core streaming its range) or every
 * global-size-th one (CONTIGUOUS 0, neighbouring work-items reading neighbouring vectors, as GPUs
 * coalesce). The host sizes x to global size * per_item float4s and checks the sum of out.
 */
#ifndef CONTIGUOUS
#define CONTIGUOUS 1
#endif

__kernel void stream_read(const __global float4* x, const int per_item, __global float* out)
{
  const int gid = get_global_id(0);
  float4 acc = (float4)(0.0f);
#if CONTIGUOUS
  const __global float4* p = x + (long)gid * per_item;
  for (int i = 0; i < per_item; ++i) acc += p[i];
#else
  const long stride = get_global_size(0);
  for (int i = 0; i < per_item; ++i) acc += x[gid + i * stride];
#endif
  out[gid] = (acc.x + acc.y) + (acc.z + acc.w);
}

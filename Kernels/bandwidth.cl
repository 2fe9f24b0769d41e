/*
 * bandwidth.cl -- the device's streaming read bandwidth: every work-item reads WPT
 * vectors of VW floats and the work-group sums them into one float.
 * Compiled as common.cl + "\n" + bandwidth.cl.
 *
 * Defines: VW in {1,2,4,8,16} (vector width), WPT >= 1 (vectors per work-item),
 *   LOCAL (work-group size, a power of two), CONTIGUOUS in {0,1}:
 *   1: each work-item reads WPT consecutive vectors (a CPU core streams its own range);
 *   0: vector i of a work-item is at i * (global size) + its id (neighbouring work-items
 *      read neighbouring vectors, as GPUs coalesce).
 * NDRange: global = n / (VW * WPT), a multiple of LOCAL; local = LOCAL.
 * The host guarantees n % (VW * WPT * LOCAL) == 0, so every read is in bounds.
 * partial[get_group_id(0)] = the sum of the group's values.
 */
#ifndef VW
#define VW 4
#endif
#ifndef WPT
#define WPT 16
#endif
#ifndef LOCAL
#define LOCAL 64
#endif
#ifndef CONTIGUOUS
#define CONTIGUOUS 1
#endif

#define BW_VT FLOATV(VW)

#define BW_SUM1(v) (v)
#define BW_SUM2(v) ((v).s0 + (v).s1)
#define BW_SUM4(v) (BW_SUM2((v).lo) + BW_SUM2((v).hi))
#define BW_SUM8(v) (BW_SUM4((v).lo) + BW_SUM4((v).hi))
#define BW_SUM16(v) (BW_SUM8((v).lo) + BW_SUM8((v).hi))
#define BW_SUM(v) CL_CAT(BW_SUM, VW)(v)

__kernel __attribute__((reqd_work_group_size(LOCAL, 1, 1)))
void read_sum(const __global float* x, __global float* partial)
{
  const int gid = get_global_id(0);
  const int lid = get_local_id(0);
  BW_VT acc = (BW_VT)(0.0f);
#if CONTIGUOUS
  const __global float* p = x + (long)gid * (WPT * VW);
  #pragma unroll
  for (int i = 0; i < WPT; ++i) acc += FLOAD(VW, p, i * VW);
#else
  const long stride = (long)get_global_size(0) * VW;
  const __global float* p = x + (long)gid * VW;
  #pragma unroll
  for (int i = 0; i < WPT; ++i) acc += FLOAD(VW, p, i * stride);
#endif
  __local float sums[LOCAL];
  sums[lid] = BW_SUM(acc);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int half_size = LOCAL / 2; half_size > 0; half_size /= 2) {
    if (lid < half_size) sums[lid] += sums[lid + half_size];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) partial[get_group_id(0)] = sums[0];
}

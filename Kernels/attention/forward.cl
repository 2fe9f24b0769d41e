/*
 * attention/forward.cl -- the forward role's tuned kernels; built with its configuration's defines.
 * Compiled as common.cl + attention/shared.cl + attention/forward.cl.
 */

/*
 * attn_forward: work-group (x, y, s). Without PACK, y = b * HQ + h and the tile's rows are query rows
 * [x * BQ, x * BQ + BQ) of head h; with PACK, y = b * HKV + hk and the tile's rows are [x * BQ, x * BQ + BQ) of the
 * GROUP * LQ rows of the query heads of key/value head hk (row t: head hk * GROUP + t / LQ, position t % LQ), so a
 * decoding step's few rows per head share the staged keys. Split s of KVS takes a contiguous share of the key
 * tiles the rows see; with KVS > 1 it writes its normalized rows and their LSE to Opart and Lpart (fp32, rows
 * (b * HQ + h) * LQ + i of stride DP), which attn_forward_combine merges.
 * The scores are kept transposed (Zt[key * BQ + row]): the online softmax runs 16 rows per step.
 * NDRange: global (ceil(rows / BQ) * WG, BATCH * (PACK ? HQ / GROUP : HQ), KVS), local (WG, 1, 1).
 * Local: Qt DP*BQ, Ks BK*DP, Vs BK*DP, Zt BK*BQ, Oa BQ*DP, St 3*BQ floats (max, sum, rescale); Ri 4*BQ ints (position,
 * head, first and last visible key).
 */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void attn_forward(const int BATCH, const int LQ, const int LK, const int HQ, const int GROUP,
                  const __global real* Q, const long4 qa, const __global real* K, const long4 ka,
                  const __global real* V, const long4 va, __global real* O, const long4 oa, __global float* LSE,
                  __global float* Opart, __global float* Lpart, const __global uchar* map, const int NQB, const int NKB,
                  __local float* Qt, __local float* Ks, __local float* Vs, __local float* Zt, __local float* Oa,
                  __local float* St, __local int* Ri)
{
  const int OFF = LK - LQ;
  const int y = get_group_id(1), split = get_group_id(2);
  const int heads = PACK ? HQ / GROUP : HQ;
  const int b = y / heads, hy = y - b * heads;
  const int hk = PACK ? hy : hy / GROUP;
  const int total = PACK ? GROUP * LQ : LQ;
  const int t0 = get_group_id(0) * BQ;
  const int rows = min(BQ, total - t0);

  /* each row's position, head and visible keys; rows past the last see nothing */
  if (get_local_id(0) == 0) {
    int g = PACK ? t0 / LQ : 0;
    int i = t0 - g * LQ;
    for (int r = 0; r < BQ; ++r) {
      Ri[r] = i;
      Ri[BQ + r] = PACK ? hk * GROUP + g : hy;
      Ri[2 * BQ + r] = r < rows ? at_lo(i, OFF) : LK;
      Ri[3 * BQ + r] = r < rows ? at_hi(i, OFF, LK) : -1;
      St[r] = -INFINITY;
      St[BQ + r] = 0.0f;
      if (++i == LQ && PACK) {
        i = 0;
        ++g;
      }
    }
  }
  at_zero(Oa, BQ * DP);
  barrier(CLK_LOCAL_MEM_FENCE);

  /* the rows' queries times the scale (and log2 e without a softcap: the softmax runs in base 2), transposed
     (Qt[k * BQ + r]) */
  for (int r = 0, kv = get_local_id(0); at_carry(&r, &kv, DP / VW), r < BQ; kv += WG) {
    const long row = at_row(qa, b, Ri[BQ + r], Ri[r]);
    for (int c = 0; c < VW; ++c) {
      const int k = kv * VW + c;
      Qt[k * BQ + r] = (r < rows && k < D) ? LOADF1(Q, row + k) * (USE_SOFTCAP ? SCALE : SCALE * AT_LOG2E) : 0.0f;
    }
  }

  /* the key tiles some row sees, and this split's share of them */
  int jlo = LK, jhi = -1, loMax = -1, hiMin = LK;
  for (int r = 0; r < rows; ++r) {
    jlo = min(jlo, Ri[2 * BQ + r]);
    jhi = max(jhi, Ri[3 * BQ + r]);
    loMax = max(loMax, Ri[2 * BQ + r]);
    hiMin = min(hiMin, Ri[3 * BQ + r]);
  }
  const int first = jlo <= jhi ? jlo / BK : 0, count = jlo <= jhi ? jhi / BK - first + 1 : 0;
  const int share = (count + KVS - 1) / KVS;
  const int begin = first + split * share, end = min(first + count, begin + share);

  const int bh = b * HQ + hy;  /* the query head's map (block-sparse tiles never PACK, so hy is a query head) */
  for (int kt = at_next_key_tile(map, bh, t0, begin, end, NQB, NKB); kt < end; kt = at_next_key_tile(map, bh, t0, kt + 1, end, NQB, NKB)) {
    const int k0 = kt * BK, kvalid = min(BK, LK - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    at_stage(Ks, K, at_row(ka, b, hk, k0), ka.s3, BK, kvalid, 0);
    at_stage(Vs, V, at_row(va, b, hk, k0), va.s3, BK, kvalid, 0);
    barrier(CLK_LOCAL_MEM_FENCE);
    at_dot(Zt, Qt, BQ, Ks, BK);
    barrier(CLK_LOCAL_MEM_FENCE);
    /* online softmax in base 2, 16 rows per step: masked scores, the new maximum, the probabilities, the rescaled
       sums. A tile every row sees whole needs no mask (rows past the last are never stored). */
    const int whole = kvalid == BK && loMax <= k0 && hiMin >= k0 + BK - 1;
    for (int q = get_local_id(0) * 16; q < BQ; q += WG * 16) {
      const int16 lo = vload16(0, Ri + 2 * BQ + q), hi = vload16(0, Ri + 3 * BQ + q);
      const float16 m0 = vload16(0, St + q);
      float16 mx = (float16)(-INFINITY);
      if (whole && !USE_SOFTCAP) {
        for (int j = 0; j < BK; ++j) mx = fmax(mx, vload16(0, Zt + j * BQ + q));
      } else {
        for (int j = 0; j < kvalid; ++j) {
          const int key = k0 + j;
          const float16 s = select((float16)(-INFINITY), at_cap(vload16(0, Zt + j * BQ + q)) * (USE_SOFTCAP ? AT_LOG2E : 1.0f),
                                   (lo <= (int16)(key)) & (hi >= (int16)(key)));
          vstore16(s, 0, Zt + j * BQ + q);
          mx = fmax(mx, s);
        }
      }
      const float16 mn = fmax(m0, mx);
      const float16 ms = select(mn, (float16)(0.0f), isinf(mn));
      const float16 alpha = exp2(m0 - ms);
      float16 l = vload16(0, St + BQ + q) * alpha;
      for (int j = 0; j < kvalid; ++j) {
        const float16 p = exp2(vload16(0, Zt + j * BQ + q) - ms);
        vstore16(p, 0, Zt + j * BQ + q);
        l += p;
      }
      for (int j = kvalid; j < BK; ++j) vstore16((float16)(0.0f), 0, Zt + j * BQ + q);
      vstore16(mn, 0, St + q);
      vstore16(l, 0, St + BQ + q);
      /* rescale the rows whose maximum grew (after the first tiles, seldom any) */
      if (any(alpha != (float16)(1.0f))) {
        vstore16(alpha, 0, St + 2 * BQ + q);
        for (int c = 0; c < 16; ++c) {
          const float a = St[2 * BQ + q + c];
          for (int k = 0; k < DP; k += VW) FSTORE(VW, Oa, (q + c) * DP + k, FLOAD(VW, Oa, (q + c) * DP + k) * a);
        }
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    at_accumulate(Oa, Zt, 1, BQ, Vs, BQ, BK);
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int r = get_local_id(0); r < rows; r += WG) {
    const int i = Ri[r], h = Ri[BQ + r];
    const float m = St[r], l = St[BQ + r];
    const float lse = l > 0.0f ? (m + log2(l)) * AT_LN2 : -INFINITY, f = l > 0.0f ? 1.0f / l : 0.0f;
    const long row = (long)(b * HQ + h) * LQ + i;
    if (KVS == 1) {
      at_store_row(O, at_row(oa, b, h, i), Oa + r * DP, f);
      LSE[row] = lse;
    } else {
      const long part = (long)split * BATCH * HQ * LQ + row;
      for (int k = 0; k < DP; ++k) Opart[part * DP + k] = Oa[r * DP + k] * f;
      Lpart[part] = lse;
    }
  }
}

/*
 * attn_forward_combine: one row per work-item: the KVS splits' rows merged through their LSE (flash-decoding):
 * LSE = log sum_s exp(LSE_s), O = sum_s exp(LSE_s - LSE) O_s. NDRange: global roundup(NROWS, 64), any local size.
 */
__kernel void attn_forward_combine(const int NROWS, const int LQ, const int HQ, const __global float* Opart,
                                   const __global float* Lpart, __global real* O, const long4 oa, __global float* LSE)
{
  const int row = get_global_id(0);
  if (row >= NROWS)
    return;
  const int bh = row / LQ, i = row - bh * LQ;
  const int b = bh / HQ, h = bh - b * HQ;
  float m = -INFINITY;
  for (int s = 0; s < KVS; ++s) m = fmax(m, Lpart[(long)s * NROWS + row]);
  float sum = 0.0f;
  float acc[DP];
  for (int k = 0; k < DP; ++k) acc[k] = 0.0f;
  if (m > -INFINITY) {
    for (int s = 0; s < KVS; ++s) {
      const float w = exp(Lpart[(long)s * NROWS + row] - m);
      sum += w;
      for (int k = 0; k < DP; ++k) acc[k] += w * Opart[((long)s * NROWS + row) * DP + k];
    }
  }
  const float f = sum > 0.0f ? 1.0f / sum : 0.0f;
  const long o = at_row(oa, b, h, i);
  for (int k = 0; k < D; ++k) STORE1(O, o + k, acc[k] * f);
  LSE[row] = sum > 0.0f ? m + log(sum) : -INFINITY;
}

/*
 * attn_decode (the forward role's `decode` variant): decoding, one work-item per work-group (s, y), y = b * HKV + hk:
 * the R = GROUP * LQ rows (at most 16) of the query heads of key/value head hk against split s of the keys they
 * see (a contiguous share of the BK-key tiles). Nothing is staged: a key's row is read from memory as DP / VW vectors and
 * dotted with RB rows' queries at a time (kept in local memory, fp32, times the scale and log2 e), 16 dot products
 * summed across lanes together; the probabilities then weight V's rows the same way, RB rows of O at a time in
 * registers. Memory-bound by design: K and V are read once per split.
 * Rows as attn_forward's PACK: row t is query head hk * GROUP + t / LQ at position t % LQ. Output as attn_forward
 * (KVS > 1: normalized partial rows and their LSE for attn_forward_combine).
 * NDRange: global (KVS, BATCH * HQ / GROUP), local (1, 1).
 * Local: Qs 16*DP, Oa 16*DP, S 16*BK, St 4*16 floats; Ri 4*16 ints.
 */
/* VW values of an existing row from column k: a plain load when D is a multiple of VW, else zeros beyond D */
#if DP == D
  #define AT_LOAD_ROW(X, row, k) LOADF(VW, X, (row) + (k))
#else
  #define AT_LOAD_ROW(X, row, k) at_load(X, row, 1, k)
#endif

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void attn_decode(const int BATCH, const int LQ, const int LK, const int HQ, const int GROUP,
                 const __global real* Q, const long4 qa, const __global real* K, const long4 ka,
                 const __global real* V, const long4 va, __global real* O, const long4 oa, __global float* LSE,
                 __global float* Opart, __global float* Lpart,
                 __local float* Qs, __local float* Oa, __local float* S, __local float* St, __local int* Ri)
{
  const int OFF = LK - LQ;
  const int split = get_group_id(0), y = get_group_id(1);
  const int hkv = HQ / GROUP;
  const int b = y / hkv, hk = y - b * hkv;
  const int R = GROUP * LQ;
  int jlo = LK, jhi = -1;
  for (int r = 0, g = 0, i = 0; r < R; ++r) {
    Ri[r] = i;
    Ri[16 + r] = hk * GROUP + g;
    Ri[32 + r] = at_lo(i, OFF);
    Ri[48 + r] = at_hi(i, OFF, LK);
    jlo = min(jlo, Ri[32 + r]);
    jhi = max(jhi, Ri[48 + r]);
    St[r] = -INFINITY;
    St[16 + r] = 0.0f;
    const long row = at_row(qa, b, Ri[16 + r], i);
    for (int k = 0; k < DP; ++k) {
      Qs[r * DP + k] = k < D ? LOADF1(Q, row + k) * (USE_SOFTCAP ? SCALE : SCALE * AT_LOG2E) : 0.0f;
      Oa[r * DP + k] = 0.0f;
    }
    if (++i == LQ) {
      i = 0;
      ++g;
    }
  }
  const int first = jlo <= jhi ? jlo / BK : 0, count = jlo <= jhi ? jhi / BK - first + 1 : 0;
  const int share = (count + KVS - 1) / KVS;
  const int begin = first + split * share, end = min(first + count, begin + share);
  for (int kt = begin; kt < end; ++kt) {
    const int k0 = kt * BK, kvalid = min(BK, LK - k0);
    /* the scores, RB rows' queries in registers against each key of the tile (a key's row is loaded once for the RB
       rows; rows past the last repeat it and are not stored) */
    for (int r0 = 0; r0 < R; r0 += RB) {
      AT_VT qv[RB][DP / VW];
      _Pragma("unroll")
      for (int rr = 0; rr < RB; ++rr) {
        const int source = min(r0 + rr, R - 1);
        _Pragma("unroll")
        for (int v = 0; v < DP / VW; ++v) qv[rr][v] = FLOAD(VW, Qs, source * DP + v * VW);
      }
#if VW == 16
      /* 16 / RB keys at a time, the 16 dot products summed across lanes together (lane j * RB + rr); a key past the
         tile's last reads the last one (its score is masked) */
      for (int j0 = 0; j0 < BK; j0 += 16 / RB) {
        float16 acc[16];
        _Pragma("unroll")
        for (int j = 0; j < 16 / RB; ++j) {
          const long row = at_row(ka, b, hk, k0 + min(j0 + j, kvalid - 1));
          _Pragma("unroll")
          for (int rr = 0; rr < RB; ++rr) acc[j * RB + rr] = (float16)(0.0f);
          _Pragma("unroll")
          for (int v = 0; v < DP / VW; ++v) {
            const float16 kv = AT_LOAD_ROW(K, row, v * VW);
            _Pragma("unroll")
            for (int rr = 0; rr < RB; ++rr) acc[j * RB + rr] = MADD(qv[rr][v], kv, acc[j * RB + rr]);
          }
        }
        const float16 sums = at_hsum16x16(acc);
        if (RB == 1) {
          vstore16(sums, 0, S + r0 * BK + j0);
        } else {
          vstore16(sums, 0, St + 48);
          for (int e = 0; e < 16; ++e)
            if (r0 + e % RB < R) S[(r0 + e % RB) * BK + j0 + e / RB] = St[48 + e];
        }
      }
#else
      for (int j = 0; j < BK; ++j) {
        const long row = at_row(ka, b, hk, k0 + min(j, kvalid - 1));
        AT_VT acc[RB];
        for (int rr = 0; rr < RB; ++rr) acc[rr] = (AT_VT)(0.0f);
        _Pragma("unroll")
        for (int v = 0; v < DP / VW; ++v) {
          const AT_VT kv = AT_LOAD_ROW(K, row, v * VW);
          for (int rr = 0; rr < RB; ++rr) acc[rr] = MADD(qv[rr][v], kv, acc[rr]);
        }
        for (int rr = 0; rr < RB && r0 + rr < R; ++rr) S[(r0 + rr) * BK + j] = AT_HSUM(acc[rr]);
      }
#endif
    }
    /* online softmax per row, 16 keys at a time */
    for (int r = 0; r < R; ++r) {
      const int lo = Ri[32 + r], hi = Ri[48 + r];
      float16 mx = (float16)(-INFINITY);
      for (int j = 0; j < BK; j += 16) {
        const int16 key = (int16)(k0 + j) + AT_LANES;
        const float16 s = select((float16)(-INFINITY), at_cap(vload16(0, S + r * BK + j)) * (USE_SOFTCAP ? AT_LOG2E : 1.0f),
                                 (key >= (int16)(lo)) & (key <= (int16)(hi)) & (key < (int16)(k0 + kvalid)));
        vstore16(s, 0, S + r * BK + j);
        mx = fmax(mx, s);
      }
      const float m0 = St[r], mn = fmax(m0, AT_HMAX16(mx));
      const float ms = mn == -INFINITY ? 0.0f : mn;
      const float alpha = exp2(m0 - ms);
      float16 l = (float16)(0.0f);
      for (int j = 0; j < BK; j += 16) {
        const float16 p = exp2(vload16(0, S + r * BK + j) - ms);
        vstore16(p, 0, S + r * BK + j);
        l += p;
      }
      St[r] = mn;
      St[16 + r] = St[16 + r] * alpha + AT_HSUM16(l);
      St[32 + r] = alpha;
    }
    /* O += P V, RB rows of O at a time in registers (a value row loaded once for them; RB 4 at D 128 spills some,
       still faster here than splitting D) */
    for (int r0 = 0; r0 < R; r0 += RB) {
      AT_VT acc[RB][DP / VW];
      _Pragma("unroll")
      for (int rr = 0; rr < RB; ++rr) {
        const int source = min(r0 + rr, R - 1);
        const float alpha = St[32 + source];
        _Pragma("unroll")
        for (int v = 0; v < DP / VW; ++v) acc[rr][v] = FLOAD(VW, Oa, source * DP + v * VW) * alpha;
      }
      for (int j = 0; j < kvalid; ++j) {
        const long row = at_row(va, b, hk, k0 + j);
        AT_VT p[RB];
        _Pragma("unroll")
        for (int rr = 0; rr < RB; ++rr) p[rr] = (AT_VT)(S[min(r0 + rr, R - 1) * BK + j]);
        _Pragma("unroll")
        for (int v = 0; v < DP / VW; ++v) {
          const AT_VT vv = AT_LOAD_ROW(V, row, v * VW);
          _Pragma("unroll")
          for (int rr = 0; rr < RB; ++rr) acc[rr][v] = MADD(p[rr], vv, acc[rr][v]);
        }
      }
      for (int rr = 0; rr < RB && r0 + rr < R; ++rr)
        for (int v = 0; v < DP / VW; ++v) FSTORE(VW, Oa, (r0 + rr) * DP + v * VW, acc[rr][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int i = Ri[r], h = Ri[16 + r];
    const float m = St[r], l = St[16 + r];
    const float lse = l > 0.0f ? (m + log2(l)) * AT_LN2 : -INFINITY, f = l > 0.0f ? 1.0f / l : 0.0f;
    const long row = (long)(b * HQ + h) * LQ + i;
    if (KVS == 1) {
      at_store_row(O, at_row(oa, b, h, i), Oa + r * DP, f);
      LSE[row] = lse;
    } else {
      const long part = (long)split * BATCH * HQ * LQ + row;
      for (int k = 0; k < DP; ++k) Opart[part * DP + k] = Oa[r * DP + k] * f;
      Lpart[part] = lse;
    }
  }
}

import Dispatch
import Foundation

/// The CPU reference of attention in fp64: masked dense attention (causal, window, block map, softcap) and its
/// gradients, straight from the definitions (FlashAttention-2's semantics), on the inputs as stored.
public enum AttentionReference {
    public struct Inputs: Sendable {
        /// Q `[B, Hq, Lq, D]`, K and V `[B, Hkv, Lk, D]`, dO like Q, contiguous.
        public var q: [Double], k: [Double], v: [Double], dO: [Double]
        /// The block map (block-sparse), `[B, Hq, ceil(Lq/block), ceil(Lk/block)]`.
        public var map: [UInt8]?
        public init(q: [Double], k: [Double], v: [Double], dO: [Double], map: [UInt8]?) {
            self.q = q
            self.k = k
            self.v = v
            self.dO = dO
            self.map = map
        }
    }

    public struct Forward: Sendable {
        /// O like Q; the LSE per row (-inf for a row that sees no key, whose O is 0).
        public var o: [Double], lse: [Double]
    }

    public struct Gradients: Sendable {
        public var dQ: [Double], dK: [Double], dV: [Double]
    }

    /// Whether query row `i` of head `bh` (= b * Hq + h) sees key `j`: the causal and window bounds and the map.
    static func visible(_ problem: AttentionProblem, _ map: [UInt8]?, bh: Int, i: Int, j: Int) -> Bool {
        let (lo, hi) = problem.bounds
        let diagonal = i + problem.keys - problem.seq
        if let lo, j < diagonal - lo { return false }
        if let hi, j > diagonal + hi { return false }
        if problem.mode == .blockSparse, let map {
            let (nqb, nkb) = problem.mapBlocks
            return map[(bh * nqb + i / problem.block) * nkb + j / problem.block] != 0
        }
        return true
    }

    /// The scores of row i against every key (the softcapped scaled dot products; nil where hidden) and the
    /// softcap's derivative, for the rows of one head.
    private static func scores(_ problem: AttentionProblem, _ inputs: Inputs, kt: [Double], b: Int, h: Int, i: Int,
                               into s: inout [Double], derivative: inout [Double], visible seen: inout [Bool]) {
        let (lk, d) = (problem.keys, problem.dim)
        let scale = problem.effectiveScale, cap = problem.softcap
        let bh = b * problem.heads + h
        let qRow = (bh * problem.seq + i) * d
        for j in 0..<lk { s[j] = 0 }
        inputs.q.withUnsafeBufferPointer { q in
            kt.withUnsafeBufferPointer { kt in
                s.withUnsafeMutableBufferPointer { s in
                    for c in 0..<d {
                        let x = q[qRow + c]
                        let column = c * lk
                        for j in 0..<lk { s[j] += x * kt[column + j] }
                    }
                }
            }
        }
        for j in 0..<lk {
            seen[j] = visible(problem, inputs.map, bh: bh, i: i, j: j)
            var x = s[j] * scale
            derivative[j] = scale
            if cap > 0 {
                let t = tanh(x / cap)
                x = cap * t
                derivative[j] = (1 - t * t) * scale
            }
            s[j] = x
        }
    }

    /// K (or V) of key/value head (b, hk), transposed: `[D][Lk]`.
    private static func transposed(_ x: [Double], _ problem: AttentionProblem, b: Int, hk: Int) -> [Double] {
        let (lk, d) = (problem.keys, problem.dim)
        let base = (b * problem.keyHeads + hk) * lk * d
        var t = [Double](repeating: 0, count: lk * d)
        for j in 0..<lk { for c in 0..<d { t[c * lk + j] = x[base + j * d + c] } }
        return t
    }

    /// Runs `body(b, hk)` for every key/value head, on every core (each writes only its own rows).
    private static func forEachKeyHead(_ problem: AttentionProblem, _ body: @Sendable (Int, Int) -> Void) {
        let heads = problem.batch * problem.keyHeads
        DispatchQueue.concurrentPerform(iterations: heads) { index in body(index / problem.keyHeads, index % problem.keyHeads) }
    }

    public static func forward(_ problem: AttentionProblem, _ inputs: Inputs) -> Forward {
        let (lq, lk, d) = (problem.seq, problem.keys, problem.dim)
        let o = UnsafeMutableBufferPointer<Double>.allocate(capacity: problem.queryRows * d)
        let lse = UnsafeMutableBufferPointer<Double>.allocate(capacity: problem.queryRows)
        defer { o.deallocate(); lse.deallocate() }
        o.initialize(repeating: 0)
        lse.initialize(repeating: -.infinity)
        nonisolated(unsafe) let out = o
        nonisolated(unsafe) let sums = lse
        forEachKeyHead(problem) { b, hk in
            let kt = transposed(inputs.k, problem, b: b, hk: hk)
            let vBase = (b * problem.keyHeads + hk) * lk * d
            var s = [Double](repeating: 0, count: lk), derivative = s, seen = [Bool](repeating: false, count: lk)
            for g in 0..<problem.group {
                let h = hk * problem.group + g
                for i in 0..<lq {
                    scores(problem, inputs, kt: kt, b: b, h: h, i: i, into: &s, derivative: &derivative, visible: &seen)
                    var m = -Double.infinity
                    for j in 0..<lk where seen[j] { m = max(m, s[j]) }
                    let row = (b * problem.heads + h) * lq + i
                    guard m > -.infinity else { continue }
                    var sum = 0.0
                    for j in 0..<lk where seen[j] {
                        let p = exp(s[j] - m)
                        sum += p
                        let v = vBase + j * d
                        for c in 0..<d { out[row * d + c] += p * inputs.v[v + c] }
                    }
                    for c in 0..<d { out[row * d + c] /= sum }
                    sums[row] = m + log(sum)
                }
            }
        }
        return Forward(o: Array(o), lse: Array(lse))
    }

    public static func backward(_ problem: AttentionProblem, _ inputs: Inputs, forward: Forward) -> Gradients {
        let (lq, lk, d) = (problem.seq, problem.keys, problem.dim)
        let keyRows = problem.batch * problem.keyHeads * lk
        let dq = UnsafeMutableBufferPointer<Double>.allocate(capacity: problem.queryRows * d)
        let dk = UnsafeMutableBufferPointer<Double>.allocate(capacity: keyRows * d)
        let dv = UnsafeMutableBufferPointer<Double>.allocate(capacity: keyRows * d)
        defer { dq.deallocate(); dk.deallocate(); dv.deallocate() }
        for buffer in [dq, dk, dv] { buffer.initialize(repeating: 0) }
        nonisolated(unsafe) let gq = dq
        nonisolated(unsafe) let gk = dk
        nonisolated(unsafe) let gv = dv
        forEachKeyHead(problem) { b, hk in
            let kt = transposed(inputs.k, problem, b: b, hk: hk), vt = transposed(inputs.v, problem, b: b, hk: hk)
            let kvBase = (b * problem.keyHeads + hk) * lk * d
            var s = [Double](repeating: 0, count: lk), derivative = s, seen = [Bool](repeating: false, count: lk)
            var dp = [Double](repeating: 0, count: lk)
            for g in 0..<problem.group {
                let h = hk * problem.group + g
                for i in 0..<lq {
                    let row = (b * problem.heads + h) * lq + i
                    let lse = forward.lse[row]
                    guard lse > -.infinity else { continue }
                    scores(problem, inputs, kt: kt, b: b, h: h, i: i, into: &s, derivative: &derivative, visible: &seen)
                    for j in 0..<lk { dp[j] = 0 }
                    for c in 0..<d {
                        let x = inputs.dO[row * d + c]
                        for j in 0..<lk { dp[j] += x * vt[c * lk + j] }
                    }
                    var delta = 0.0
                    for j in 0..<lk where seen[j] { delta += exp(s[j] - lse) * dp[j] }
                    for j in 0..<lk where seen[j] {
                        let p = exp(s[j] - lse)
                        let ds = p * (dp[j] - delta) * derivative[j]
                        let key = kvBase + j * d
                        for c in 0..<d {
                            gq[row * d + c] += ds * inputs.k[key + c]
                            gk[key + c] += ds * inputs.q[row * d + c]
                            gv[key + c] += p * inputs.dO[row * d + c]
                        }
                    }
                }
            }
        }
        return Gradients(dQ: Array(dq), dK: Array(dk), dV: Array(dv))
    }
}

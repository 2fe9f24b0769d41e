import CBLAS
import Foundation

/// The CPU reference of cut cross-entropy, in fp64: logits of a block of tokens at a time (OpenBLAS DGEMM), so
/// the reference of a large problem needs no N x V buffer either.
///
/// The inputs are the stored values (after rounding to the storage precision), so the reference sees exactly
/// the device's data.
public enum CCEReference {
    public struct Inputs: Sendable {
        /// tokens x dim, row-major.
        public var embeddings: [Double]
        /// vocab x dim, row-major.
        public var classifier: [Double]
        /// vocab entries, or empty.
        public var bias: [Double]
        /// tokens entries.
        public var targets: [Int32]

        public init(embeddings: [Double], classifier: [Double], bias: [Double], targets: [Int32]) {
            self.embeddings = embeddings
            self.classifier = classifier
            self.bias = bias
            self.targets = targets
        }
    }

    public struct Forward: Sendable {
        /// Per row (`problem.rows`): log-sum-exp of the row's logits (also for ignored rows).
        public var lse: [Double]
        /// Per row: the loss (0 where ignored).
        public var loss: [Double]
        /// The reduced loss (`mean`, `sum`); for `none`, the sum.
        public var total: Double
        /// Rows whose target is not ignored.
        public var valid: Int
    }

    public struct Gradients: Sendable {
        /// tokens x dim (with `shift`, the last row is 0).
        public var embeddings: [Double]
        /// vocab x dim.
        public var classifier: [Double]
        /// vocab entries (empty without a bias).
        public var bias: [Double]
    }

    static let block = 128

    /// The target of row `i`, or nil when ignored. Throws for a target outside [0, V).
    static func target(_ problem: CCEProblem, _ inputs: Inputs, row i: Int) -> Int? {
        let t = Int(inputs.targets[problem.shift ? i + 1 : i])
        return t == problem.ignoreIndex ? nil : t
    }

    /// `z = softcap(E Cᵀ + b)` for rows `start..<start + count`, row-major `count x vocab`.
    static func logits(_ problem: CCEProblem, _ inputs: Inputs, start: Int, count: Int) -> [Double] {
        let (v, d) = (problem.vocab, problem.dim)
        var z = [Double](repeating: 0, count: count * v)
        inputs.embeddings.withUnsafeBufferPointer { e in
            inputs.classifier.withUnsafeBufferPointer { c in
                z.withUnsafeMutableBufferPointer { out in
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(v), Int32(d), 1,
                                e.baseAddress! + start * d, Int32(d), c.baseAddress!, Int32(d), 0, out.baseAddress!, Int32(v))
                }
            }
        }
        for r in 0..<count {
            for j in 0..<v {
                var value = z[r * v + j] + (inputs.bias.isEmpty ? 0 : inputs.bias[j])
                if problem.softcap > 0 { value = problem.softcap * tanh(value / problem.softcap) }
                z[r * v + j] = value
            }
        }
        return z
    }

    static func logSumExp(_ z: UnsafeBufferPointer<Double>) -> Double {
        let m = z.max() ?? 0
        var s = 0.0
        for value in z { s += exp(value - m) }
        return m + log(s)
    }

    public static func forward(_ problem: CCEProblem, _ inputs: Inputs) -> Forward {
        let (n, v) = (problem.rows, problem.vocab)
        let eps = problem.labelSmoothing
        var lse = [Double](repeating: 0, count: n), loss = [Double](repeating: 0, count: n)
        var valid = 0
        for start in stride(from: 0, to: n, by: block) {
            let count = min(block, n - start)
            let z = logits(problem, inputs, start: start, count: count)
            z.withUnsafeBufferPointer { all in
                for r in 0..<count {
                    let row = UnsafeBufferPointer(rebasing: all[(r * v)..<(r * v + v)])
                    let i = start + r
                    lse[i] = logSumExp(row)
                    guard let t = target(problem, inputs, row: i) else { continue }
                    valid += 1
                    let mean = eps != 0 ? row.reduce(0, +) / Double(v) : 0
                    loss[i] = lse[i] - (1 - eps) * row[t] - eps * mean + problem.zLoss * lse[i] * lse[i]
                }
            }
        }
        let sum = loss.reduce(0, +)
        let total = problem.reduction == .mean ? (valid > 0 ? sum / Double(valid) : 0) : sum
        return Forward(lse: lse, loss: loss, total: total, valid: valid)
    }

    /// The scale of row i's gradient: the incoming gradient (one value, or one per row for `none`), divided by
    /// the valid rows for `mean`.
    static func rowScale(_ problem: CCEProblem, gradOutput: [Double], valid: Int, row i: Int) -> Double {
        switch problem.reduction {
        case .mean: valid > 0 ? gradOutput[0] / Double(valid) : 0
        case .sum: gradOutput[0]
        case .none: gradOutput[i]
        }
    }

    /// `dL/d(E Cᵀ + b)` of one row, in place over its logits `z`: `g (p (1 + 2 w LSE) - (1-ε) onehot - ε/V)`, times
    /// the softcap's derivative `1 - (z/cap)^2`.
    static func rowGradient(_ problem: CCEProblem, _ z: UnsafeMutableBufferPointer<Double>, lse: Double, target t: Int, scale g: Double) {
        let v = Double(problem.vocab), eps = problem.labelSmoothing
        let zscale = 1 + 2 * problem.zLoss * lse
        for j in 0..<z.count {
            let p = exp(z[j] - lse)
            var dz = p * zscale - eps / v - (j == t ? 1 - eps : 0)
            if problem.softcap > 0 {
                let u = z[j] / problem.softcap
                dz *= 1 - u * u
            }
            z[j] = g * dz
        }
    }

    /// The exact gradients (no filtering) for the incoming gradient `gradOutput` (one value, or one per row for
    /// `none`), from the forward's LSE.
    public static func backward(_ problem: CCEProblem, _ inputs: Inputs, forward: Forward, gradOutput: [Double]) -> Gradients {
        let (n, v, d) = (problem.rows, problem.vocab, problem.dim)
        var de = [Double](repeating: 0, count: problem.tokens * d), dc = [Double](repeating: 0, count: v * d)
        var db = [Double](repeating: 0, count: inputs.bias.isEmpty ? 0 : v)
        for start in stride(from: 0, to: n, by: block) {
            let count = min(block, n - start)
            var g = logits(problem, inputs, start: start, count: count)
            g.withUnsafeMutableBufferPointer { all in
                for r in 0..<count {
                    let i = start + r
                    let row = UnsafeMutableBufferPointer(rebasing: all[(r * v)..<(r * v + v)])
                    guard let t = target(problem, inputs, row: i) else {
                        for j in 0..<v { row[j] = 0 }
                        continue
                    }
                    rowGradient(problem, row, lse: forward.lse[i], target: t,
                                scale: rowScale(problem, gradOutput: gradOutput, valid: forward.valid, row: i))
                }
            }
            g.withUnsafeBufferPointer { gp in
                inputs.classifier.withUnsafeBufferPointer { c in
                    de.withUnsafeMutableBufferPointer { out in
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(count), Int32(d), Int32(v), 1,
                                    gp.baseAddress!, Int32(v), c.baseAddress!, Int32(d), 0, out.baseAddress! + start * d, Int32(d))
                    }
                }
                inputs.embeddings.withUnsafeBufferPointer { e in
                    dc.withUnsafeMutableBufferPointer { out in
                        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(v), Int32(d), Int32(count), 1,
                                    gp.baseAddress!, Int32(v), e.baseAddress! + start * d, Int32(d), 1, out.baseAddress!, Int32(d))
                    }
                }
            }
            if !db.isEmpty {
                for r in 0..<count { for j in 0..<v { db[j] += g[r * v + j] } }
            }
        }
        return Gradients(embeddings: de, classifier: dc, bias: db)
    }

    /// The family's tolerances, one rule for tuning, benchmarks and tests.
    public struct Tolerances: Sendable {
        /// Of the reduced loss, relative: 1e-5 with fp32 storage, 1e-3 with fp16 or bfloat16.
        public var lossRelative: Double
        /// Of each row's LSE and loss, absolute: 2e-5 of the largest |LSE| (at least 1): fp32 dot products of
        /// length D and an fp32 log-sum-exp.
        public var lse: Double
        public var dE: Double
        public var dC: Double
        public var db: Double
    }

    /// Gradients: the storage's rounding of the largest reference value (2^-8 bfloat16, 2^-11 fp16, and 2^-25 for
    /// fp16's subnormals) plus 1e-4 of it (fp32 accumulation). With `filtered` and a filter threshold eps, plus what the skipped entries
    /// (|G| < eps g) can add: 3 sqrt(V) eps g max|C| to a row of dE and 3 sqrt(rows) eps g max|E| to a row of dC
    /// (terms of random sign), rows eps g to an entry of db (terms of one sign); g is the largest row scale.
    public static func tolerances(_ problem: CCEProblem, inputs: Inputs, reference: Forward, gradients: Gradients, filtered: Bool) -> Tolerances {
        func largest(_ values: [Double]) -> Double { values.reduce(0) { max($0, abs($1)) } }
        let rounding: Double = problem.precision == .bfloat16 ? 0x1p-8 : problem.precision == .half ? 0x1p-11 : 0
        // fp16 stores values below 2^-14 as subnormals, 2^-24 apart: half of that is the least rounding error.
        let floor: Double = problem.precision == .half ? 0x1p-25 : 0
        func tight(_ values: [Double]) -> Double { (rounding + 1e-4) * largest(values) + floor + 1e-12 }
        var tolerance = Tolerances(lossRelative: problem.precision == .single ? 1e-5 : 1e-3,
                                   lse: 2e-5 * max(1, largest(reference.lse)),
                                   dE: tight(gradients.embeddings), dC: tight(gradients.classifier), db: tight(gradients.bias))
        if filtered, let eps = problem.threshold {
            // The largest row scale: 1/valid for a mean, 1 for a sum, the largest incoming value for none (at most 1.5).
            let g = problem.reduction == .mean ? 1 / Double(max(reference.valid, 1)) : problem.reduction == .sum ? 1 : 1.5
            let filter = Double(eps) * g
            let rows = Double(problem.rows)
            tolerance.dE += 3 * Double(problem.vocab).squareRoot() * filter * largest(inputs.classifier)
            tolerance.dC += 3 * rows.squareRoot() * filter * largest(inputs.embeddings)
            tolerance.db += rows * filter
        }
        return tolerance
    }
}

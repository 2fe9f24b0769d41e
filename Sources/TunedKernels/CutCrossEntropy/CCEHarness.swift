import Autotuning
import Foundation
import OpenCLRuntime

/// Seeded inputs of one cut cross-entropy problem on the device and the host, the fp64 reference (loss and
/// gradients), and launches of a forward and backward (a training step) with a configuration.
///
/// Data (``CCEData``):
/// - `trained`: C's rows uniform with variance 1/D per element (norm about 1); targets Zipf-distributed over the
///   vocabulary (id j with weight 1/(j+1), as token ids ordered by frequency); each embedding is 14 times the sum of
///   its target's classifier row and three other Zipf-drawn rows (plausible alternatives), plus noise of C's
///   scale. Those four logits are about 14, the others about N(0, 0.9) at D = 1024: a softmax concentrated on a
///   few entries, a loss of about 1.4 nats per token, and entries outside them below 1e-5. The bias, when
///   present, is Zipf-shaped: `-0.5 ln(j + 1)`.
/// - `uniform`: E uniform in [-1, 1], C uniform in [-1, 1] / sqrt(D) (logits of standard deviation 1/3: a flat
///   softmax, nothing to skip), bias uniform in [-0.1, 0.1], targets uniform.
/// - `shuffled`: `trained` with the vocabulary ids permuted at random.
/// In all, a fraction of the targets (10% by default) is the ignore index.
public final class CCEHarness: KernelHarness {
    public let family: CutCrossEntropy
    public let problem: CCEProblem
    public let inputs: CCEReference.Inputs
    public let reference: CCEReference.Forward
    public let referenceGradients: CCEReference.Gradients
    /// The incoming gradient: 1 for `mean` and `sum`, one value in [0.5, 1.5] per row for `none`.
    public let gradOutput: [Float]

    let e: DeviceTensor, c: DeviceTensor, bias: DeviceTensor?
    let targets: DeviceBuffer<Int32>, grad: DeviceBuffer<Float>
    let dE: DeviceTensor, dC: DeviceTensor, dBias: DeviceTensor?
    /// The last launch's saved loss.
    var lastLoss: CutCrossEntropy.Loss?
    /// The role the last launch ran (nil: the whole call).
    private(set) var lastRole: String?
    /// The forward configuration whose result the workspace holds since the last reset (a backward-role launch
    /// reuses it).
    private var prepared: Configuration?
    /// The buffers of the saved loss, reused by every launch that fits them (no allocation in the timed region).
    private var workspace: CutCrossEntropy.Loss?

    public var context: Context { family.context }
    public var work: Work { CutCrossEntropy.work(problem) }

    public convenience init(family: CutCrossEntropy, problem: CCEProblem, seed: UInt64) throws {
        try self.init(family: family, problem: problem, seed: seed, ignoredFraction: 0.1)
    }

    /// - Parameter ignoredFraction: the share of targets set to the ignore index.
    public init(family: CutCrossEntropy, problem: CCEProblem, seed: UInt64, ignoredFraction: Double) throws {
        try family.check(problem)
        self.family = family
        self.problem = problem
        let data = Self.data(problem, seed: seed, ignoredFraction: ignoredFraction)
        inputs = CCEReference.Inputs(embeddings: data.e.map(Double.init), classifier: data.c.map(Double.init),
                                     bias: data.bias.map(Double.init), targets: data.targets)
        var generator = SplitMix64(seed: seed &+ 7)
        gradOutput = problem.reduction == .none ? (0..<problem.rows).map { _ in Float.random(in: 0.5...1.5, using: &generator) } : [1]
        reference = CCEReference.forward(problem, inputs)
        referenceGradients = CCEReference.backward(problem, inputs, forward: reference, gradOutput: gradOutput.map(Double.init))
        let context = family.context
        let (n, v, d, format) = (problem.tokens, problem.vocab, problem.dim, problem.precision)
        e = try DeviceTensor(context, data.e, format: format, shape: [n, d])
        c = try DeviceTensor(context, data.c, format: format, shape: [v, d])
        bias = problem.bias ? try DeviceTensor(context, data.bias, format: format, shape: [v]) : nil
        targets = try DeviceBuffer<Int32>(context, data.targets)
        grad = try DeviceBuffer<Float>(context, gradOutput)
        dE = try DeviceTensor(context, format: format, shape: [n, d])
        dC = try DeviceTensor(context, format: format, shape: [v, d])
        dBias = problem.bias ? try DeviceTensor(context, format: format, shape: [v]) : nil
    }

    /// The inputs as stored (rounded to the storage precision), as Float.
    static func data(_ problem: CCEProblem, seed: UInt64, ignoredFraction: Double)
        -> (e: [Float], c: [Float], bias: [Float], targets: [Int32]) {
        var generator = SplitMix64(seed: seed)
        let (n, v, d) = (problem.tokens, problem.vocab, problem.dim)
        let precision = problem.precision
        func uniform(_ scale: Float) -> Float { Float.random(in: -1...1, using: &generator) * scale }
        var targets = [Int32](repeating: 0, count: n)
        var e = [Float](repeating: 0, count: n * d), c = [Float](repeating: 0, count: v * d), bias: [Float] = []
        switch problem.data {
        case .trained, .shuffled:
            let scale = (3 / Float(d)).squareRoot()
            for index in c.indices { c[index] = uniform(scale) }
            // Zipf: P(j) proportional to 1 / (j + 1), sampled through the cumulative weights.
            var cumulative = [Double](repeating: 0, count: v)
            var sum = 0.0
            for j in 0..<v {
                sum += 1 / Double(j + 1)
                cumulative[j] = sum
            }
            func zipf() -> Int {
                let u = Double.random(in: 0..<sum, using: &generator)
                var lo = 0, hi = v - 1
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
                }
                return lo
            }
            if problem.bias { bias = (0..<v).map { -0.5 * Float(log(Double($0 + 1))) } }
            for i in 0..<n {
                // The target and three plausible alternatives share the softmax.
                let rows = [zipf(), zipf(), zipf(), zipf()]
                targets[i] = Int32(rows[0])
                let (r0, r1, r2, r3) = (rows[0] * d, rows[1] * d, rows[2] * d, rows[3] * d)
                for k in 0..<d { e[i * d + k] = 14 * (c[r0 + k] + c[r1 + k] + c[r2 + k] + c[r3 + k]) + uniform(scale) }
            }
        case .uniform:
            let scale = 1 / Float(d).squareRoot()
            for index in e.indices { e[index] = uniform(1) }
            for index in c.indices { c[index] = uniform(scale) }
            if problem.bias { bias = (0..<v).map { _ in uniform(0.1) } }
            for i in 0..<n { targets[i] = Int32(Int.random(in: 0..<v, using: &generator)) }
        }
        if problem.data == .shuffled {
            // Class j of the trained data becomes id permutation[j].
            let permutation = (0..<v).shuffled(using: &generator)
            var shuffled = c
            for j in 0..<v { for k in 0..<d { shuffled[permutation[j] * d + k] = c[j * d + k] } }
            c = shuffled
            if !bias.isEmpty {
                var b = bias
                for j in 0..<v { b[permutation[j]] = bias[j] }
                bias = b
            }
            targets = targets.map { Int32(permutation[Int($0)]) }
        }
        for i in 0..<n where Double.random(in: 0..<1, using: &generator) < ignoredFraction { targets[i] = Int32(problem.ignoreIndex) }
        return (e.map { precision.rounded($0) }, c.map { precision.rounded($0) },
                bias.map { precision.rounded($0) }, targets)
    }

    /// What the roles do: the forward a third of the FLOPs and half of the bytes (``CutCrossEntropy/work(_:role:)``).
    public func work(role: String?) -> Work {
        role.flatMap(CutCrossEntropy.role(named:)).map { CutCrossEntropy.work(problem, role: $0) } ?? work
    }

    /// Before a backward alone is timed: the forward of its configuration, once (its build and run are not the
    /// backward's).
    public func prepare(_ configurations: [Configuration], role: String?) throws {
        guard role == "backward" else { return }
        _ = try launch(configurations, role: "forward")
        try context.queue.finish()
    }

    /// Poisons the gradients and the saved loss (NaN): an output a launch leaves unwritten fails ``check()``.
    public func reset() throws {
        lastLoss = nil
        prepared = nil
        for tensor in [dE, dC] + (dBias.map { [$0] } ?? []) { try tensor.poison() }
        if let workspace { for buffer in [workspace.lse, workspace.losses, workspace.total] { try buffer.fill(.nan) } }
    }

    /// The forward (loss) then the backward (gradients); with `role` "forward" the loss alone, with "backward" the
    /// gradients alone, from the loss of the forward configuration computed once since the last reset.
    public func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch {
        guard role == nil || CutCrossEntropy.role(named: role!) != nil else { throw ProblemError("cce has no role \(role!)") }
        let choices = try family.resolve(configurations, for: problem)
        let (forward, backward) = (choices[0], choices[1])
        lastRole = role
        var events: [Event] = []
        let loss: CutCrossEntropy.Loss
        if role == "backward", prepared == forward.config, let workspace {
            loss = workspace
        } else {
            prepared = nil  // until this forward has completed into the workspace
            loss = try family.loss(problem, embeddings: e, classifier: c, bias: bias, targets: targets, configuration: forward.config,
                                   checkTargets: false, reusing: workspace.flatMap { $0.fits(problem, forward.config) ? $0 : nil })
            workspace = loss
            prepared = forward.config
            if role != "backward" { events += loss.launch.events }
        }
        lastLoss = loss
        if role == "forward" { return KernelLaunch(choices: [forward], events: events) }
        let gradients = try family.gradients(problem, embeddings: e, classifier: c, bias: bias, targets: targets, loss: loss,
                                             gradOutput: grad, dEmbeddings: dE, dClassifier: dC, dBias: dBias, configuration: backward.config)
        return KernelLaunch(choices: [forward, backward], events: events + gradients.events)
    }

    /// The result against the reference, part by part, each an absolute error against its own tolerance: the
    /// reduced loss (`loss`, within a relative tolerance of the reference's), the per-row LSE and losses, and each
    /// gradient (``CCEReference/tolerances(_:inputs:reference:gradients:filtered:)``). The check's own error is the
    /// largest of them (`max_abs_error` of a `bench` row).
    public func check() throws -> Check {
        guard let loss = lastLoss else { return Check(maxAbsError: .infinity, tolerance: 0) }
        let total = try loss.total.download(count: 1)[0]
        let lse = try loss.lse.download(count: problem.rows), losses = try loss.losses.download(count: problem.rows)
        let (de, dc, db) = (try dE.download(), try dC.download(), try dBias?.download())
        let all = check(total: total, lse: lse, losses: losses, dE: de, dC: dc, dBias: db, filtered: true)
        // A forward alone is checked on its outputs (the gradients are not its).
        return lastRole == "forward" ? Check(parts: all.parts.filter { ["loss", "lse", "losses"].contains($0.key) }) : all
    }

    /// The tolerances of a filtered and an exact result (they depend on the problem and the reference alone).
    private var tolerances: [Bool: CCEReference.Tolerances] = [:]

    /// The checks of a result against the reference (shared by every path: ours, the materialized, OpenBLAS).
    func check(total: Float, lse: [Float], losses: [Float], dE: [Float], dC: [Float], dBias: [Float]?, filtered: Bool) -> Check {
        let gradients = referenceGradients
        let tolerance = tolerances[filtered] ?? CCEReference.tolerances(problem, inputs: inputs, reference: reference, gradients: gradients,
                                                                         filtered: filtered)
        tolerances[filtered] = tolerance
        /// The largest |got - want| (infinity for NaN or infinity, or another count), over raw buffers: a check of
        /// millions of gradients stays fast in a debug build.
        func error(_ got: [Float], _ want: [Double]) -> Double {
            guard got.count == want.count else { return .infinity }
            return got.withUnsafeBufferPointer { g in
                want.withUnsafeBufferPointer { w in
                    var worst = 0.0
                    for index in 0..<g.count {
                        let difference = abs(Double(g[index]) - w[index])
                        if !difference.isFinite { return .infinity }
                        if difference > worst { worst = difference }
                    }
                    return worst
                }
            }
        }
        let lossError = abs(Double(total) - reference.total)
        var parts: [String: Check] = [
            "loss": Check(maxAbsError: lossError.isFinite ? lossError : .infinity,
                          tolerance: tolerance.lossRelative * max(abs(reference.total), 1e-30)),
            "lse": Check(maxAbsError: error(lse, reference.lse), tolerance: tolerance.lse),
            "losses": Check(maxAbsError: error(losses, reference.loss), tolerance: tolerance.lse),
            "dE": Check(maxAbsError: error(dE, gradients.embeddings), tolerance: tolerance.dE),
            "dC": Check(maxAbsError: error(dC, gradients.classifier), tolerance: tolerance.dC),
        ]
        if let dBias { parts["db"] = Check(maxAbsError: error(dBias, gradients.bias), tolerance: tolerance.db) }
        return Check(parts: parts)
    }
}

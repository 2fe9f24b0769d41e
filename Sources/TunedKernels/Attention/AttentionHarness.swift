import Autotuning
import Foundation
import OpenCLRuntime

/// Seeded inputs of one attention problem on the device and the host, the fp64 reference (O, LSE and, when a
/// backward is checked, the gradients), and launches: a forward then a backward (a training step), or one role.
///
/// Data: Q, K, V and dO uniform with unit variance (uniform in ±√3), rounded to the storage precision; block-sparse
/// problems get a map where each query block selects a seeded random `1 - sparsity` of the key blocks (at least one),
/// unless a map is given.
public final class AttentionHarness: KernelHarness {
    public let family: Attention
    public let problem: AttentionProblem
    public let inputs: AttentionReference.Inputs
    public let reference: AttentionReference.Forward
    /// The gradients' reference, computed the first time a backward is checked.
    public private(set) lazy var referenceGradients = AttentionReference.backward(problem, inputs, forward: reference)

    let q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, o: DeviceTensor, dO: DeviceTensor
    let dQ: DeviceTensor, dK: DeviceTensor, dV: DeviceTensor
    let lse: DeviceBuffer<Float>
    let map: DeviceBuffer<UInt8>?
    /// The saved forward of the last launch.
    private(set) var saved: Attention.Saved?
    /// The role the last launch ran (nil: the whole call); nothing to check before a launch.
    private var lastRole: String??
    /// The forward configuration whose result O and the LSE hold since the last reset (a backward-role launch reuses it).
    private var prepared: Configuration?

    public var context: Context { family.context }
    public var work: Work { Attention.work(problem) }

    /// - Parameter map: the block map to use (block-sparse), instead of the seeded one.
    public init(family: Attention, problem: AttentionProblem, seed: UInt64, map: [UInt8]? = nil) throws {
        try family.check(problem)
        self.family = family
        self.problem = problem
        var generator = SplitMix64(seed: seed)
        let d = problem.dim, format = problem.precision
        let keyRows = problem.batch * problem.keyHeads * problem.keys
        func values(_ count: Int) -> [Float] {
            (0..<count).map { _ in format.rounded(Float.random(in: -1...1, using: &generator) * 1.7320508) }
        }
        let (hq, hk, lq, lk, b) = (problem.heads, problem.keyHeads, problem.seq, problem.keys, problem.batch)
        let (qv, kv, vv, gv) = (values(problem.queryRows * d), values(keyRows * d), values(keyRows * d), values(problem.queryRows * d))
        var blocks: [UInt8]?
        if problem.mode == .blockSparse {
            blocks = map ?? Self.randomMap(problem, seed: seed &+ 11)
            guard blocks!.count == b * hq * problem.mapBlocks.queries * problem.mapBlocks.keys else {
                throw ProblemError("attention: the given map has \(blocks!.count) entries, not B x Hq x \(problem.mapBlocks.queries) x \(problem.mapBlocks.keys)")
            }
        }
        inputs = AttentionReference.Inputs(q: qv.map(Double.init), k: kv.map(Double.init), v: vv.map(Double.init), dO: gv.map(Double.init), map: blocks)
        reference = AttentionReference.forward(problem, inputs)
        let context = family.context
        q = try DeviceTensor(context, qv, format: format, shape: [b, hq, lq, d])
        k = try DeviceTensor(context, kv, format: format, shape: [b, hk, lk, d])
        v = try DeviceTensor(context, vv, format: format, shape: [b, hk, lk, d])
        dO = try DeviceTensor(context, gv, format: format, shape: [b, hq, lq, d])
        o = try DeviceTensor(context, format: format, shape: [b, hq, lq, d])
        dQ = try DeviceTensor(context, format: format, shape: [b, hq, lq, d])
        dK = try DeviceTensor(context, format: format, shape: [b, hk, lk, d])
        dV = try DeviceTensor(context, format: format, shape: [b, hk, lk, d])
        lse = try DeviceBuffer<Float>(context, count: problem.queryRows)
        self.map = try blocks.map { try DeviceBuffer<UInt8>(context, $0) }
    }

    /// Each query block selects a seeded random `1 - sparsity` of the key blocks (at least one).
    public static func randomMap(_ problem: AttentionProblem, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        let (nqb, nkb) = problem.mapBlocks
        let selected = max(1, Int((Double(nkb) * (1 - problem.sparsity)).rounded()))
        var map = [UInt8](repeating: 0, count: problem.batch * problem.heads * nqb * nkb)
        for row in 0..<(problem.batch * problem.heads * nqb) {
            for j in Array(0..<nkb).shuffled(using: &generator).prefix(selected) { map[row * nkb + j] = 1 }
        }
        return map
    }

    public func work(role: String?) -> Work {
        if let role = role.flatMap(Attention.role(named:)) { return Attention.work(problem, role: role) }
        let (forward, backward) = (Attention.work(problem), Attention.work(problem, role: Attention.roles[1]))
        return Work(flops: forward.flops + backward.flops, bytes: forward.bytes + backward.bytes)
    }

    public func prepare(_ configurations: [Configuration], role: String?) throws {
        guard role == "backward" else { return }
        _ = try launch(configurations, role: "forward")
        try context.queue.finish()
    }

    /// Poisons the outputs (O, the LSE, the gradients).
    public func reset() throws {
        saved = nil
        prepared = nil
        lastRole = .none
        for tensor in [o, dQ, dK, dV] { try tensor.poison() }
        try lse.fill(.nan)
    }

    func operand(_ tensor: DeviceTensor) -> AttentionOperand { AttentionOperand(tensor) }

    /// The forward then the backward; with `role` "forward" the forward alone, with "backward" the backward alone,
    /// from the forward computed once since the last reset.
    public func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch {
        guard role == nil || Attention.role(named: role!) != nil else { throw ProblemError("attention has no role \(role!)") }
        let choices = try family.resolve(configurations, for: problem)
        let (forward, backward) = (choices[0], choices[1])
        var events: [Event] = []
        lastRole = role
        if role != "backward" || saved == nil || prepared != forward.config {
            prepared = nil
            saved = try family.forward(problem, q: operand(q), k: operand(k), v: operand(v), o: operand(o), map: map, lse: lse,
                                       configuration: forward.config, checkInputs: false)
            prepared = forward.config
            if role != "backward" { events += saved!.launch.events }
        }
        if role == "forward" { return KernelLaunch(choices: [forward], events: events) }
        let gradients = try family.backward(problem, q: operand(q), k: operand(k), v: operand(v), forward: saved!, dO: operand(dO),
                                            dQ: operand(dQ), dK: operand(dK), dV: operand(dV), configuration: backward.config, checkInputs: false)
        return KernelLaunch(choices: role == "backward" ? [backward] : [forward, backward], events: events + gradients.events)
    }

    /// The outputs of the last launch's roles against the reference (a backward alone: the gradients).
    public func check() throws -> Check {
        guard case .some(let role) = lastRole else { return Check(maxAbsError: .infinity, tolerance: 0) }
        var parts: [String: Check] = [:]
        if role != "backward" {
            parts["o"] = Self.check(try o.download(), reference.o, precision: problem.precision)
            parts["lse"] = Self.checkLSE(try lse.download(count: problem.queryRows), reference.lse)
        }
        if role != "forward" {
            let gradients = referenceGradients
            parts["dQ"] = Self.check(try dQ.download(), gradients.dQ, precision: problem.precision)
            parts["dK"] = Self.check(try dK.download(), gradients.dK, precision: problem.precision)
            parts["dV"] = Self.check(try dV.download(), gradients.dV, precision: problem.precision)
        }
        return Check(parts: parts)
    }

    /// An output against its reference: the largest |got - want| (infinity for NaN, infinity or another count),
    /// within 4 units of the storage's precision of the largest reference value plus 1e-4 of it (fp32
    /// accumulation over long rows), and 1e-6.
    static func check(_ got: [Float], _ want: [Double], precision: ElementFormat) -> Check {
        let largest = want.reduce(0) { max($0, abs($1)) }
        let unit: Double = switch precision {
        case .bfloat16: 0x1p-8
        case .float16: 0x1p-11
        default: 0x1p-24
        }
        return Check(maxAbsError: error(got, want), tolerance: largest * (4 * unit + 1e-4) + 1e-6)
    }

    /// The LSE: 1e-4 of its magnitude (at least 1); a -inf row must be -inf.
    static func checkLSE(_ got: [Float], _ want: [Double]) -> Check {
        guard got.count == want.count else { return Check(maxAbsError: .infinity, tolerance: 0) }
        var worst = 0.0, largest = 1.0
        for (g, w) in zip(got, want) {
            if w == -.infinity {
                if Double(g) != -.infinity { return Check(maxAbsError: .infinity, tolerance: 0) }
                continue
            }
            let difference = abs(Double(g) - w)
            if !difference.isFinite { return Check(maxAbsError: .infinity, tolerance: 0) }
            worst = max(worst, difference)
            largest = max(largest, abs(w))
        }
        return Check(maxAbsError: worst, tolerance: 1e-4 * largest)
    }

    static func error(_ got: [Float], _ want: [Double]) -> Double {
        guard got.count == want.count else { return .infinity }
        var worst = 0.0
        for index in got.indices {
            let difference = abs(Double(got[index]) - want[index])
            if !difference.isFinite { return .infinity }
            worst = max(worst, difference)
        }
        return worst
    }
}

import Autotuning
import OpenCLRuntime

extension Attention {
    /// What the forward saves for the backward: the LSE of every query row (fp32, `[B, Hq, Lq]`), and what it was
    /// computed for (the problem, the family, the input and output buffers, the block map): ``backward`` refuses a
    /// `Saved` of another call.
    public final class Saved: @unchecked Sendable {
        public let lse: DeviceBuffer<Float>
        public let problem: AttentionProblem
        public let o: AttentionOperand
        public let map: DeviceBuffer<UInt8>?
        /// The configuration and the kernels' events.
        public let launch: KernelLaunch
        let family: Attention
        let inputs: [AnyObject]

        init(lse: DeviceBuffer<Float>, problem: AttentionProblem, o: AttentionOperand, map: DeviceBuffer<UInt8>?, launch: KernelLaunch,
             family: Attention, inputs: [AnyObject]) {
            self.lse = lse
            self.problem = problem
            self.o = o
            self.map = map
            self.launch = launch
            self.family = family
            self.inputs = inputs
        }
    }

    /// O = attention(Q, K, V) and each row's LSE, with `configuration` (a forward configuration) or the dispatcher's
    /// choice. `map` (block-sparse only): uint8 `[B, Hq, ceil(Lq / block), ceil(Lk / block)]`, nonzero where a
    /// (query block, key block) pair is computed. `lse`: where to write the LSE (B x Hq x Lq floats; by default a
    /// new buffer). With `checkInputs`, Q, K and V are first scanned on the device for NaN and infinity (one read of
    /// each: it costs a decoding step about as much as the step).
    ///
    /// - Throws: ``AttentionError`` for a tensor of another format, shape, layout or context, an output that is an
    ///   input or another output, a missing or short map, or (with `checkInputs`) a non-finite input;
    ///   ``ProblemError`` for a problem the kernels do not take; ``InvalidConfiguration``.
    @discardableResult
    public func forward(_ problem: AttentionProblem, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, o: AttentionOperand,
                        map: DeviceBuffer<UInt8>? = nil, lse: DeviceBuffer<Float>? = nil, configuration: Configuration? = nil,
                        checkInputs: Bool = true) throws -> Saved {
        try checkCall(problem)
        try validate(problem, q: q, k: k, v: v, map: map)
        try checkOperand(o, "o", problem, queries: true, output: true)
        if let lse {
            guard lse.count >= problem.queryRows else { throw AttentionError.buffer("lse holds \(lse.count) floats; the problem needs \(problem.queryRows)") }
            guard lse.context === context else { throw AttentionError.buffer("lse belongs to another context") }
        }
        try checkAliasing(inputs: [("q", q.buffer), ("k", k.buffer), ("v", v.buffer), ("map", map)], outputs: [("o", o.buffer), ("lse", lse)])
        if checkInputs { try checkFinite(problem, [("q", q, true), ("k", k, false), ("v", v, false)]) }
        let (config, source) = try resolve(configuration, role: Self.roles[0], for: problem, given: [:])
        let output = try lse ?? DeviceBuffer<Float>(context, count: problem.queryRows)
        let events = try core.serialized { try forwardKernels(problem, config, q: q, k: k, v: v, o: o, lse: output, map: map) }
        return Saved(lse: output, problem: problem, o: o, map: map, launch: KernelLaunch(role: "forward", configuration: config, source: source, events: events),
                     family: self, inputs: [q.buffer, k.buffer, v.buffer, o.buffer] + (map.map { [$0] } ?? []))
    }

    /// dQ, dK and dV of the loss whose gradient with respect to O is `dO`, from the forward `saved` (of the same problem
    /// on the same Q, K, V), with `configuration` (a backward configuration) or the dispatcher's choice. dK and dV of a
    /// key/value head sum over its query heads; a query row that saw no key gets zero gradients.
    ///
    /// - Throws: ``AttentionError`` when `saved` was computed for another problem, family or buffers, for a bad tensor
    ///   or an output that is an input or another output, or (with `checkInputs`) a non-finite dO.
    @discardableResult
    public func backward(_ problem: AttentionProblem, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, forward saved: Saved,
                         dO: AttentionOperand, dQ: AttentionOperand, dK: AttentionOperand, dV: AttentionOperand,
                         configuration: Configuration? = nil, checkInputs: Bool = true) throws -> KernelLaunch {
        try checkCall(problem)
        try validate(problem, q: q, k: k, v: v, map: saved.map)
        try checkOperand(dO, "dO", problem, queries: true, output: false)
        try checkOperand(dQ, "dQ", problem, queries: true, output: true)
        try checkOperand(dK, "dK", problem, queries: false, output: true)
        try checkOperand(dV, "dV", problem, queries: false, output: true)
        guard saved.family === self else { throw AttentionError.mismatch("the saved forward was computed by another Attention (or context)") }
        var given = problem, computed = saved.problem
        given.sparsity = 0
        computed.sparsity = 0
        guard given == computed else { throw AttentionError.mismatch("the saved forward was computed for \(saved.problem), not for \(problem)") }
        for (index, name) in ["q", "k", "v"].enumerated() where saved.inputs[index] !== [q.buffer, k.buffer, v.buffer][index] as AnyObject {
            throw AttentionError.mismatch("the saved forward was computed from another \(name) buffer than the one given")
        }
        try checkAliasing(inputs: [("q", q.buffer), ("k", k.buffer), ("v", v.buffer), ("o", saved.o.buffer), ("the saved lse", saved.lse),
                                   ("dO", dO.buffer), ("map", saved.map)],
                          outputs: [("dQ", dQ.buffer), ("dK", dK.buffer), ("dV", dV.buffer)])
        if checkInputs { try checkFinite(problem, [("dO", dO, true)]) }
        let (config, source) = try resolve(configuration, role: Self.roles[1], for: problem, given: [:])
        let events = try core.serialized {
            try backwardKernels(problem, config, q: q, k: k, v: v, o: saved.o, lse: saved.lse, map: saved.map, dO: dO, dQ: dQ, dK: dK, dV: dV)
        }
        return KernelLaunch(role: "backward", configuration: config, source: source, events: events)
    }

    // MARK: Checks

    func validate(_ problem: AttentionProblem, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, map: DeviceBuffer<UInt8>?) throws {
        try checkOperand(q, "q", problem, queries: true, output: false)
        try checkOperand(k, "k", problem, queries: false, output: false)
        try checkOperand(v, "v", problem, queries: false, output: false)
        switch (problem.mode, map) {
        case (.blockSparse, nil): throw AttentionError.buffer("block-sparse attention needs a block map (uint8 [B, Hq, ceil(Lq/block), ceil(Lk/block)])")
        case (.dense, .some): throw AttentionError.buffer("a block map was given to dense attention (set mode: .blockSparse)")
        case (.blockSparse, .some(let map)):
            let (nqb, nkb) = problem.mapBlocks
            let count = problem.batch * problem.heads * nqb * nkb
            guard map.count >= count else {
                throw AttentionError.buffer("the block map holds \(map.count) bytes; [\(problem.batch), \(problem.heads), \(nqb), \(nkb)] needs \(count)")
            }
            guard map.context === context else { throw AttentionError.buffer("the block map belongs to another context") }
        case (.dense, nil): break
        }
    }

    /// A Q-shaped (`queries`) or K-shaped operand of the problem's storage format.
    func checkOperand(_ operand: AttentionOperand, _ name: String, _ problem: AttentionProblem, queries: Bool, output: Bool) throws {
        if let message = operand.refusal(named: name, batch: problem.batch, heads: queries ? problem.heads : problem.keyHeads,
                                         rows: queries ? problem.seq : problem.keys, dim: problem.dim, format: problem.precision,
                                         context: context, output: output) {
            throw AttentionError.buffer(message)
        }
    }

    /// Throws when an output is one of the inputs or another output.
    func checkAliasing(inputs: [(String, (any AnyDeviceBuffer)?)], outputs: [(String, (any AnyDeviceBuffer)?)]) throws {
        if let message = BufferAliasing.conflict(inputs: inputs, outputs: outputs) { throw AttentionError.aliasing(message) }
    }

    /// Scans operands on the device for NaN and infinity; throws naming the first one that holds any.
    func checkFinite(_ problem: AttentionProblem, _ operands: [(String, AttentionOperand, Bool)]) throws {
        let options = utilityOptions(problem)
        for (name, operand, queries) in operands {
            let (heads, rows) = queries ? (problem.heads, problem.seq) : (problem.keyHeads, problem.keys)
            let count = problem.batch * heads * rows
            let found = try core.serialized {
                let flag = try core.scratch("finite-flag", count: 1, of: Int32.self)
                try flag.upload([Int32.max])
                _ = try core.kernel("attn_check_finite", options: options).launch(
                    on: context.queue, global: [roundUp(count, 64)], local: [64],
                    arguments: [Int32(count), Int32(rows), Int32(heads), try argument(operand.buffer),
                                operand.placement(heads: heads, rows: rows, dim: problem.dim), flag])
                return Int(try flag.download(count: 1)[0])
            }
            if found != Int(Int32.max) {
                let (bh, i) = found.quotientAndRemainder(dividingBy: rows)
                let (b, h) = bh.quotientAndRemainder(dividingBy: heads)
                throw AttentionError.nonFinite("\(name) holds NaN or infinity (first in row [\(b), \(h), \(i)])")
            }
        }
    }
}

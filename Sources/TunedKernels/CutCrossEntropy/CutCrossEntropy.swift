import Autotuning
import Foundation
import OpenCLRuntime

/// Cut cross-entropy on an OpenCL device: the loss of a linear classifier over a large vocabulary,
/// `cross_entropy(softcap(E Cᵀ + b), t)`, and its gradients, without the N x V logits in device memory.
///
/// A work-group computes a tile of logits in local memory from fp32 copies of its rows of E and C, and folds it
/// into an online log-sum-exp; the backward recomputes the tiles from the saved LSE and skips the gradient
/// products of a tile whose every softmax term is below the filter threshold (``CCEProblem/filter``).
///
/// ```swift
/// let cce = try CutCrossEntropy(context: context)
/// let problem = CCEProblem(tokens: n, vocab: v, dim: d, precision: .half, shift: true)
/// let e = try DeviceTensor(context, hostE, format: .half, shape: [n, d])           // rounded to fp16
/// let c = try DeviceTensor(context, hostC, format: .half, shape: [v, d])
/// let de = try DeviceTensor(context, format: .half, shape: [n, d]), dc = try DeviceTensor(context, format: .half, shape: [v, d])
/// let loss = try cce.loss(problem, embeddings: e, classifier: c, targets: t)      // t: DeviceBuffer<Int32>
/// print(try loss.value())
/// try cce.gradients(problem, embeddings: e, classifier: c, targets: t, loss: loss,
///                   gradOutput: one, dEmbeddings: de, dClassifier: dc)
/// ```
///
/// **Edge cases:** a `mean` over no valid row is 0 (and so are its gradients); with `shift`, E's last row gets a
/// zero gradient; a target outside [0, V) that is not the ignore index throws ``CCEError/targetOutOfRange``.
public final class CutCrossEntropy: KernelFamily, @unchecked Sendable {
    public typealias Problem = CCEProblem
    public let core: FamilyCore
    public init(core: FamilyCore) { self.core = core }

    // MARK: The family

    public static let name = "cce"
    public static let summary = "cut cross-entropy: loss and gradients of a large-vocabulary classifier without the logits in memory"
    /// The loss (forward) and the gradients (backward), tuned apart; the backward's tiles are the forward's (it
    /// reads the forward's per-tile bounds), its register blocks, D chunk, work-group and accumulators its own.
    /// The storage formats of E, C, the bias and the gradients.
    public static let formats: [ElementFormat] = [.half, .single, .bfloat16]

    public static let roles = [
        KernelRole("forward", variants: ["forward"], sources: ["cross_entropy/shared.cl", "cross_entropy/forward.cl"], summary: "the loss: logits tiles folded into an online log-sum-exp, per-tile bounds saved"),
        KernelRole("backward", variants: ["backward"], dependsOn: ["forward"], sources: ["cross_entropy/shared.cl", "cross_entropy/backward.cl"],
                   summary: "the gradients: tiles recomputed from the saved LSE, skipped where the forward's bound is below the filter"),
    ]
    public static let conformanceProblems = [
        CCEProblem(tokens: 19, vocab: 37, dim: 13, precision: .half, bias: true, softcap: 5, shift: true, zLoss: 1e-3, labelSmoothing: 0.1),
        CCEProblem(tokens: 9, vocab: 20, dim: 5, precision: .bfloat16, reduction: .none, ignoreIndex: 3, sortVocabulary: true),
    ]
    /// A mid-size problem (1024 tokens, a 8192-entry vocabulary, 512 dimensions, fp16), with the gradient filter
    /// (the default) and exact; each role timed alone.
    public static let performanceCases: [PerformanceCase<CCEProblem>] = {
        let filtered = CCEProblem(tokens: 1024, vocab: 8192, dim: 512, precision: .half)
        var exact = filtered
        exact.filter = "off"
        return roles.flatMap { role in
            [PerformanceCase("mid-filtered", filtered, role: role.name, bound: .compute),
             PerformanceCase("mid-exact", exact, role: role.name, bound: .compute)]
        }
    }()

    /// The kernels that are never tuned: `Kernels/common.cl` + `cross_entropy/shared.cl` + `cross_entropy/utility.cl`
    /// (each role names its own files).
    public static func kernelSource() throws -> String { try KernelSources.program(files: ["cross_entropy/shared.cl", "cross_entropy/utility.cl"]) }

    public static func key(_ problem: CCEProblem) -> TuningKey {
        var tags = ["precision": problem.precision.tag, "filter": problem.threshold != nil ? "on" : "off"]
        if problem.sortVocabulary { tags["order"] = "logit" }
        return TuningKey(kernel: name, tags: tags, sizes: [problem.tokens, problem.vocab, problem.dim])
    }

    /// The materialized path's FLOPs (logits, then the two gradient products) and the bytes of the inputs and
    /// gradients.
    public static func work(_ problem: CCEProblem) -> Work {
        let (n, v, d) = (Double(problem.tokens), Double(problem.vocab), Double(problem.dim))
        return Work(flops: problem.flops, bytes: 2 * (n + v) * d * Double(problem.precision.bytes))
    }

    /// The forward: the logits (2 N V D) reading E and C; the backward: the two gradient products (4 N V D) reading
    /// E and C and writing their gradients.
    public static func work(_ problem: CCEProblem, role: KernelRole) -> Work {
        let whole = work(problem)
        return role.name == "forward" ? Work(flops: whole.flops / 3, bytes: whole.bytes / 2) : Work(flops: whole.flops * 2 / 3, bytes: whole.bytes)
    }

    public static func needs(_ problem: CCEProblem) throws -> ResourceNeeds {
        try Checked.sizes(["tokens": problem.tokens, "vocab": problem.vocab], maximum: Int(Int32.max) / 2, family: name)
        try Checked.sizes(["dim": problem.dim], maximum: 1 << 16, family: name)
        guard formats.contains(problem.precision) else {
            throw ProblemError("cce: precision \(problem.precision) is not one of \(formats.map(\.tag).joined(separator: ", "))")
        }
        if problem.shift && problem.tokens < 2 { throw ProblemError("cce: shift needs at least 2 tokens, got \(problem.tokens)") }
        guard problem.softcap >= 0, problem.softcap.isFinite else { throw ProblemError("cce: softcap must be 0 (none) or positive, got \(problem.softcap)") }
        guard problem.zLoss >= 0, problem.zLoss.isFinite else { throw ProblemError("cce: z-loss must be at least 0, got \(problem.zLoss)") }
        guard problem.labelSmoothing >= 0, problem.labelSmoothing < 1 else {
            throw ProblemError("cce: label-smoothing must be in [0, 1), got \(problem.labelSmoothing)")
        }
        guard Int32(exactly: problem.ignoreIndex) != nil else { throw ProblemError("cce: ignore-index must fit in 32 bits") }
        if case .failure(let error) = problem.filterThreshold { throw error }
        let (n, v, d, bytes) = (problem.tokens, problem.vocab, problem.dim, problem.precision.bytes)
        let e = try Checked.product(n, d, bytes, what: "E"), c = try Checked.product(v, d, bytes, what: "C")
        let rows = try Checked.product(n, 4 * 8, what: "the per-row buffers")
        // Host: fp64 copies of E, C, their gradients, one block of reference logits, and the downloads.
        let host = try Checked.sum([try Checked.product(n, d, 8 * 3, what: "E on the host"),
                                    try Checked.product(v, d, 8 * 3, what: "C on the host"),
                                    try Checked.product(CCEReference.block, v, 8 * 2, what: "the reference logits")], what: "the host memory")
        return ResourceNeeds(deviceBuffers: [e, c, e, c, rows], hostBytes: host)
    }

    /// The forward's space: the tile of logits (TB tokens x NB vocabulary entries x KC columns of D; KC 0 for whole
    /// rows), the logits' register block (MR vectors of VW rows of the side a work-group owns, by NR rows of the
    /// other), the work-group (WG work-items) and the vocabulary splits (VS). The backward's: the forward's TB and NB
    /// (`given`), its own KC, MR, NR, VW and WG, the gradient products' register block (PMR rows x PNV vectors) and
    /// where it accumulates (ACC 1: local memory; 0: an fp32 scratch in global memory of max(N, V) x D floats,
    /// allowed only where the local accumulators do not fit, so that the extra memory stays O(tiles) whenever it
    /// can). Local memory holds fp32 copies of a D chunk of the tile's rows of E and C, the tile, and the backward's
    /// local accumulators (whole rows, D rounded up to VW).
    public func spaces(for problem: CCEProblem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace] {
        Self.spaces(for: problem, role: role, given: given, limits: limits)
    }

    /// The spaces of `problem`'s `role` on a device of `limits`; the backward's without a forward `given` spans every tile.
    public static func spaces(for problem: CCEProblem, role: KernelRole, given: [String: Configuration], limits: DeviceLimits) -> [SearchSpace] {
        let backward = role.name == "backward"
        let forward = backward ? given["forward"] : nil
        let note = "the forward's: the backward reads the forward's per-tile bounds"
        let tiles = [Parameter("TB", forward?["TB"].map { [$0] } ?? [8, 16, 32, 64, 128], note: forward != nil ? note : nil),
                     Parameter("NB", forward?["NB"].map { [$0] } ?? [16, 32, 64, 128], note: forward != nil ? note : nil)]
        let block = [Parameter("KC", [0, 32, 64, 128, 256, 512]), Parameter("MR", [1, 2, 4, 8]), Parameter("NR", [1, 2, 4, 8]),
                     Parameter("VW", [1, 4, 8, 16]), Parameter("WG", [1, 4, 16, 64, 256])]
        let own = backward ? [Parameter("PMR", [1, 2, 4, 8]), Parameter("PNV", [1, 2, 4]), Parameter("ACC", [1, 0])] : [Parameter("VS", [1, 2, 4, 8])]
        let d = problem.dim, localBytes = limits.localMemoryBytes
        var constraints = [
            .divides("TB % (MR*VW) == 0", ["TB", "MR", "VW"], { $0["TB"]! }, { $0["MR"]! * $0["VW"]! }),
            .divides("NB % (MR*VW) == 0", ["NB", "MR", "VW"], { $0["NB"]! }, { $0["MR"]! * $0["VW"]! }),
            .divides("TB % NR == 0", ["TB", "NR"], { $0["TB"]! }, { $0["NR"]! }),
            .divides("NB % NR == 0", ["NB", "NR"], { $0["NB"]! }, { $0["NR"]! }),
            Constraint("dot accumulators MR*NR*VW <= 1024 floats", ["MR", "NR", "VW"]) { $0["MR"]! * $0["NR"]! * $0["VW"]! <= 1024 },
            Constraint("KC == 0 or KC < D = \(d) (a chunk of the whole row is the whole row)", ["KC"]) { $0["KC"]! < d },
            Constraint("KC % VW == 0", ["KC", "VW"]) { $0["KC"]! % $0["VW"]! == 0 },
        ] + limits.workGroupConstraints(["WG"]) { ($0["WG"]!, 1) }
        if backward {
            constraints += [
                Constraint("product accumulators PMR*PNV*VW <= 1024 floats", ["PMR", "PNV", "VW"]) { $0["PMR"]! * $0["PNV"]! * $0["VW"]! <= 1024 },
                Constraint("local memory of D = \(d) <= \(localBytes) bytes", ["TB", "NB", "VW", "KC", "ACC"]) { v in
                    Self.localFloats(tb: v["TB"]!, nb: v["NB"]!, vw: v["VW"]!, kc: v["KC"]!, localAccumulators: v["ACC"]! == 1, dim: d) * 4 <= localBytes
                },
                Constraint("ACC == 0 only where the local accumulators do not fit", ["TB", "NB", "VW", "KC", "ACC"]) { v in
                    v["ACC"]! == 1 || Self.localFloats(tb: v["TB"]!, nb: v["NB"]!, vw: v["VW"]!, kc: v["KC"]!, localAccumulators: true, dim: d) * 4 > localBytes
                },
            ]
        } else {
            constraints.append(Constraint("local memory of D = \(d) <= \(localBytes) bytes", ["TB", "NB", "VW", "KC"]) { v in
                Self.localFloats(tb: v["TB"]!, nb: v["NB"]!, vw: v["VW"]!, kc: v["KC"]!, localAccumulators: false, dim: d) * 4 <= localBytes
            })
        }
        return [SearchSpace(variant: role.name, parameters: tiles + block + own, constraints: constraints)]
    }

    /// The most local memory any kernel of a configuration takes, in floats: a D chunk of the tile's rows of E and
    /// C, the tile, a few per-row values, and the backward's accumulators when they are local (whole rows of the
    /// owner's side).
    static func localFloats(tb: Int, nb: Int, vw: Int, kc: Int, localAccumulators: Bool, dim: Int) -> Int {
        let dp = (dim + vw - 1) / vw * vw
        let chunk = kc == 0 ? dp : min(kc, dp)
        return (tb + nb) * chunk + tb * nb + 5 * max(tb, nb) + 16 + (localAccumulators ? max(tb, nb) * dp : 0)
    }

    /// CPU: one work-item per work-group working through a tile of whole rows, its logits in blocks of MR vectors of
    /// 16 owned rows by NR streamed rows, the gradient products in 4 rows x 4 vectors. Exact: 64 x 64 tiles in 4 x 4
    /// blocks (2048x8192x1024 half: 168, 172 and 166 GFLOP/s per pass in the forward, dE and dC kernels, against 137,
    /// 149 and 149 for the 64 x 32 tiles of 4 x 2 dot products this replaced). Filtered: 64 x 16 tiles in 1 x 8 blocks,
    /// which skip more. Then smaller tiles, D chunks, and global accumulators when D leaves too little local memory.
    /// GPU: 64 work-items on smaller tiles, the same fallbacks.
    ///
    /// The backward's defaults are those, on the forward's tiles, then the forward's own block with its D chunk and
    /// the accumulators that fit (always valid where the forward's configuration is: the same local memory).
    public func defaults(for problem: CCEProblem, role: KernelRole, given: [String: Configuration]) -> [Configuration] {
        Self.defaults(for: problem, role: role, given: given, limits: limits)
    }

    /// The defaults of `problem`'s `role` on a device of `limits`, in order of preference (the first valid one is used).
    public static func defaults(for problem: CCEProblem, role: KernelRole, given: [String: Configuration], limits: DeviceLimits) -> [Configuration] {
        let both = defaultPairs(for: problem, limits: limits)
        guard role.name == "backward" else { return unique(both.map(\.forward)) }
        guard let forward = given["forward"], let tb = forward["TB"], let nb = forward["NB"] else { return both.map { $0.backward } }
        func onForwardTiles(_ configuration: Configuration) -> Configuration {
            var values = configuration.values
            values["TB"] = tb
            values["NB"] = nb
            return Configuration(variant: "backward", values)
        }
        // Last, the forward's own block and chunk with the accumulators that fit: valid wherever the forward is.
        let (kc, vw) = (forward["KC"] ?? 0, forward["VW"] ?? 1)
        let fits = localFloats(tb: tb, nb: nb, vw: vw, kc: kc, localAccumulators: true, dim: problem.dim) * 4 <= limits.localMemoryBytes
        let own = [Configuration(variant: "backward", ["TB": tb, "NB": nb, "KC": kc, "MR": forward["MR"] ?? 1, "NR": forward["NR"] ?? 1,
                                                       "VW": vw, "WG": forward["WG"] ?? 1, "PMR": 1, "PNV": 1, "ACC": fits ? 1 : 0])]
        return unique(both.filter { $0.backward["TB"] == tb && $0.backward["NB"] == nb }.map(\.backward) + both.map { onForwardTiles($0.backward) })
            .filter { $0 != own[0] } + own
    }

    private static func unique(_ configurations: [Configuration]) -> [Configuration] {
        var seen = Set<Configuration>()
        return configurations.filter { seen.insert($0).inserted }
    }

    /// Each default as a forward and a backward configuration, in order of preference.
    static func defaultPairs(for problem: CCEProblem, limits: DeviceLimits) -> [(forward: Configuration, backward: Configuration)] {
        func tiled(_ tb: Int, _ nb: Int, mr: Int = 2, nr: Int = 4, vw: Int = 16, wg: Int = 1, kc: Int = 0, acc: Int = 1)
            -> (forward: Configuration, backward: Configuration) {
            let shared = ["TB": tb, "NB": nb, "KC": kc, "MR": mr, "NR": nr, "VW": vw, "WG": wg]
            return (Configuration(variant: "forward", shared.merging(["VS": 1]) { a, _ in a }),
                    Configuration(variant: "backward", shared.merging(["PMR": 4, "PNV": 4, "ACC": acc]) { a, _ in a }))
        }
        // Filtering skips whole tiles: narrower ones skip more (95% of 64 x 16 tiles of the trained-like bench data,
        // 91% of 64 x 32, 85% of 64 x 64), which outweighs the wider tiles' faster arithmetic: 2.30 s against 2.47
        // and 2.84 s there.
        let widest = problem.threshold != nil ? [tiled(64, 16, mr: 1, nr: 8), tiled(64, 32, nr: 8), tiled(64, 64, mr: 4)]
                              : [tiled(64, 64, mr: 4), tiled(64, 32, nr: 8)]
        let cpu = widest + [tiled(32, 32), tiled(16, 16, mr: 1), tiled(64, 32, kc: 256), tiled(32, 32, kc: 256), tiled(16, 16, mr: 1, kc: 128),
                   tiled(64, 32, kc: 256, acc: 0), tiled(16, 16, mr: 1, nr: 2, kc: 64, acc: 0)]
        let gpu = [tiled(32, 32, mr: 2, nr: 2, vw: 4, wg: 64), tiled(16, 16, mr: 2, nr: 2, vw: 4, wg: 64), tiled(8, 16, mr: 2, nr: 2, vw: 4, wg: 16),
                   tiled(32, 32, mr: 2, nr: 2, vw: 4, wg: 64, kc: 64), tiled(16, 16, mr: 2, nr: 2, vw: 4, wg: 64, kc: 64),
                   tiled(32, 32, mr: 2, nr: 2, vw: 4, wg: 64, kc: 64, acc: 0), tiled(16, 16, mr: 2, nr: 2, vw: 4, wg: 64, kc: 32, acc: 0)]
        return (limits.kind == .cpu ? cpu + gpu : gpu + cpu)
            // Last, the smallest tile in D chunks of 32 (whole rows where D is at most 32, which a chunk may not be): valid
            // on any device with a few KiB of local memory.
            + (problem.dim > 32 ? [tiled(8, 16, mr: 1, nr: 1, vw: 1), tiled(8, 16, mr: 1, nr: 1, vw: 1, kc: 32, acc: 0)]
                                : [tiled(8, 16, mr: 1, nr: 1, vw: 1, kc: 32, acc: 0), tiled(8, 16, mr: 1, nr: 1, vw: 1)])
    }

    public func buildOptions(_ configuration: Configuration, for problem: CCEProblem) -> String { options(problem, configuration) }

    /// The forward and backward configurations of one setting of the parameters (`TB`, `NB`... as one dictionary,
    /// each role taking its own): how a test or a user gives both roles at once.
    public static func configurations(_ values: [String: Int]) -> [Configuration] {
        roles.map { role in
            let any = DeviceLimits(kind: .cpu, maxWorkGroupSize: 1, maxWorkItemSizes: [1], localMemoryBytes: 0, supportsHalf: false)
            let names = spaces(for: CCEProblem(tokens: 1, vocab: 1, dim: 1), role: role, given: [:], limits: any).flatMap(\.parameters).map(\.name)
            return Configuration(variant: role.name, values.filter { names.contains($0.key) })
        }
    }

    public func harness(_ problem: CCEProblem, seed: UInt64) throws -> CCEHarness {
        try CCEHarness(family: self, problem: problem, seed: seed)
    }

    // MARK: Calls

    /// What the loss saves for the gradients, and the loss itself (device buffers, fp32). It knows what it was
    /// computed for (the problem, the family, the input buffers and the configuration): ``gradients`` refuses a
    /// `Loss` of another call. Pass it back to ``loss`` as `reusing` to compute the next loss into its buffers
    /// (no allocation).
    public final class Loss: @unchecked Sendable {
        /// Per row: the log-sum-exp of its logits.
        public let lse: DeviceBuffer<Float>
        /// Per row: its loss (0 where the target is ignored).
        public let losses: DeviceBuffer<Float>
        /// One value: the reduced loss (for `none`, the sum).
        public let total: DeviceBuffer<Float>
        /// One value: the rows whose target is not ignored.
        public let valid: DeviceBuffer<Int32>
        /// Per tile of the configuration (rows x vocabulary chunk): its largest logit over rows with a target, from
        /// which the gradients bound the tile's softmax values before recomputing it.
        let tileMax: DeviceBuffer<Float>
        /// With ``CCEProblem/sortVocabulary``: the class at each vocabulary position, and each row's target position.
        private(set) var order: DeviceBuffer<Int32>?, positions: DeviceBuffer<Int32>?
        /// The problem, family and inputs of the last loss computed into these buffers.
        public private(set) var problem: CCEProblem
        let family: CutCrossEntropy
        private(set) var inputs: [AnyObject] = []
        /// The configuration and the kernels' events.
        public private(set) var launch: KernelLaunch

        init(family: CutCrossEntropy, problem: CCEProblem, configuration: Configuration, source: ConfigurationSource) throws {
            let context = family.context, rows = problem.rows
            let (tb, nb, _, _, _, _) = family.geometry(problem, configuration)
            lse = try DeviceBuffer<Float>(context, count: rows)
            losses = try DeviceBuffer<Float>(context, count: rows)
            total = try DeviceBuffer<Float>(context, count: 1)
            valid = try DeviceBuffer<Int32>(context, count: 1)
            tileMax = try DeviceBuffer<Float>(context, count: ceilDiv(rows, tb) * ceilDiv(problem.vocab, nb))
            self.family = family
            self.problem = problem
            launch = KernelLaunch(role: "forward", configuration: configuration, source: source, events: [])
        }

        /// Whether these buffers hold the saved values of `problem` with `configuration` (the per-tile bounds
        /// depend on the tiles).
        func fits(_ problem: CCEProblem, _ configuration: Configuration) -> Bool {
            let (tb, nb, _, _, _, _) = family.geometry(problem, configuration)
            return lse.count >= problem.rows && tileMax.count >= ceilDiv(problem.rows, tb) * ceilDiv(problem.vocab, nb)
        }

        /// Marks the buffers as holding no complete result (a call computing into them has started).
        func invalidate() { inputs = [] }

        /// A call's input buffers in the order a `Loss` records them: embeddings, classifier, targets, bias.
        static func inputs(_ embeddings: DeviceTensor, _ classifier: DeviceTensor, _ targets: DeviceBuffer<Int32>,
                           _ bias: DeviceTensor?) -> [AnyObject] {
            [embeddings.buffer, classifier.buffer, targets] + (bias.map { [$0.buffer] } ?? [])
        }

        func record(_ problem: CCEProblem, inputs: [AnyObject], order: DeviceBuffer<Int32>?, positions: DeviceBuffer<Int32>?,
                    launch: KernelLaunch) {
            self.problem = problem
            self.inputs = inputs
            self.order = order
            self.positions = positions
            self.launch = launch
        }

        /// The reduced loss (waits for the kernels).
        public func value() throws -> Float { try total.download(count: 1)[0] }
    }

    /// The loss of `problem` on device tensors: E (`tokens x dim`), C (`vocab x dim`), the bias (`vocab`, when
    /// `problem.bias`) in the problem's storage format (``DeviceTensor``: `Float16`, `Float`, or `UInt16` words for
    /// bfloat16), and Int32 targets (`tokens`).
    ///
    /// - Parameters:
    ///   - configuration: a configuration to use instead of the dispatcher's choice.
    ///   - checkTargets: checks every target on the device first (one small kernel and a 4-byte read, which waits
    ///     for the queue); a target outside [0, V) that is not the ignore index throws ``CCEError``. Unchecked, such
    ///     a target gives a meaningless loss for its row (never an access outside the buffers).
    ///   - reusing: the `Loss` of an earlier call to compute this one into (its buffers, no allocation); it must be
    ///     of this family and large enough for `problem` and the configuration. That earlier loss is overwritten.
    /// - Returns: the saved LSE and the losses; the kernels may still be running.
    ///
    /// **Edge cases:** a `-inf` bias entry masks its class (it adds nothing to any row's softmax; with label
    /// smoothing the loss is `+inf`, as PyTorch's); NaN or infinity in E, C or the bias gives a non-finite loss and
    /// non-finite gradients, with or without the gradient filter.
    public func loss(_ problem: CCEProblem, embeddings: DeviceTensor, classifier: DeviceTensor,
                     bias: DeviceTensor? = nil, targets: DeviceBuffer<Int32>, configuration: Configuration? = nil,
                     checkTargets: Bool = true, reusing: Loss? = nil) throws -> Loss {
        try checkCall(problem)
        try validate(problem, embeddings: embeddings, classifier: classifier, bias: bias, targets: targets)
        let (config, source) = try resolve(configuration, role: Self.roles[0], for: problem, given: [:])
        let output: Loss
        if let reusing {
            guard reusing.family === self else { throw CCEError.mismatch("the Loss to reuse belongs to another CutCrossEntropy (or context)") }
            guard reusing.fits(problem, config) else {
                throw CCEError.mismatch("the Loss to reuse is too small for \(problem) with \(config) (it was made for \(reusing.problem))")
            }
            output = reusing
            output.invalidate()  // until this call has recorded its result
        } else {
            output = try Loss(family: self, problem: problem, configuration: config, source: source)
        }
        if checkTargets { try self.checkTargets(problem, targets) }
        let vs = config["VS"]!
        // The forward's scratch first: allocated after the ordering's temporary buffers are released, it made
        // oclgrind report the forward's partial sums as uninitialized (the results were right).
        _ = try core.scratch("part", count: vs * problem.rows * 4, of: Float.self)
        let (order, positions) = problem.sortVocabulary
            ? try vocabularyOrder(problem, embeddings: embeddings, classifier: classifier, bias: bias, targets: targets,
                                  into: (output.order, output.positions))
            : (nil, nil)
        let events = try core.serialized {
            try forwardKernels(problem, config, embeddings: embeddings, classifier: classifier, bias: bias, targets: positions ?? targets,
                               order: order, loss: output)
        }
        output.record(problem, inputs: Loss.inputs(embeddings, classifier, targets, bias), order: order, positions: positions,
                      launch: KernelLaunch(role: "forward", configuration: config, source: source, events: events))
        return output
    }

    /// The gradients of the loss `loss` (from ``loss(_:embeddings:classifier:bias:targets:configuration:checkTargets:reusing:)``
    /// of the same problem on the same buffers) scaled by `gradOutput` (one value; for `none`, one per row), written to
    /// `dEmbeddings` (`tokens x dim`), `dClassifier` (`vocab x dim`) and `dBias` (`vocab`, when `problem.bias`), in the
    /// storage precision, accumulated in fp32, with `configuration` (a backward configuration on the tiles of the
    /// loss call's, whose per-tile bounds it reads) or the dispatcher's choice given the loss call's configuration.
    ///
    /// - Throws: ``CCEError`` when `loss` was computed for another problem, family or input buffers, when an output
    ///   is an input or another output, or when a buffer is of another context, type or size.
    @discardableResult
    public func gradients(_ problem: CCEProblem, embeddings: DeviceTensor, classifier: DeviceTensor,
                          bias: DeviceTensor? = nil, targets: DeviceBuffer<Int32>, loss: Loss, gradOutput: DeviceBuffer<Float>,
                          dEmbeddings: DeviceTensor, dClassifier: DeviceTensor, dBias: DeviceTensor? = nil,
                          configuration: Configuration? = nil) throws -> KernelLaunch {
        try checkCall(problem)
        try validate(problem, embeddings: embeddings, classifier: classifier, bias: bias, targets: targets)
        try validate(problem, gradients: dEmbeddings, dClassifier, dBias)
        let outputs = problem.reduction == .none ? problem.rows : 1
        guard gradOutput.count >= outputs else {
            throw CCEError.buffer("gradOutput holds \(gradOutput.count) floats; \(problem.reduction.rawValue) needs \(outputs)")
        }
        guard gradOutput.context === context else { throw CCEError.buffer("gradOutput belongs to another context") }
        try checkAliasing(inputs: [("embeddings", embeddings.buffer), ("classifier", classifier.buffer), ("bias", bias?.buffer), ("targets", targets),
                                   ("gradOutput", gradOutput), ("the saved loss", loss.lse)],
                          outputs: [("dEmbeddings", dEmbeddings.buffer), ("dClassifier", dClassifier.buffer), ("dBias", dBias?.buffer)])
        try checkMatch(loss, problem, inputs: Loss.inputs(embeddings, classifier, targets, bias))
        let (config, source) = try resolve(configuration, role: Self.roles[1], for: problem, given: ["forward": loss.launch.configuration])
        let events = try core.serialized {
            try backwardKernels(problem, config, embeddings: embeddings, classifier: classifier, bias: bias,
                                targets: loss.positions ?? targets, loss: loss, gradOutput: gradOutput, dEmbeddings: dEmbeddings, dClassifier: dClassifier, dBias: dBias)
        }
        return KernelLaunch(role: "backward", configuration: config, source: source, events: events)
    }

    /// The fraction of gradient tiles the last ``gradients`` call skipped (reads the decisions; waits).
    public func lastSkippedFraction() throws -> Double? {
        guard let (keep, count) = try core.serialized({ lastKeep }), count > 0 else { return nil }
        let flags = try keep.download(count: count)
        return Double(flags.filter { $0 == 0 }.count) / Double(flags.count)
    }

    /// The last backward's skip decisions and their count (set and read while serialized).
    private var lastKeep: (DeviceBuffer<UInt8>, Int)?

    // MARK: Kernels

    /// The build options of a role's tuned kernels for a problem: the configuration's parameters and the
    /// problem's options (the role's own files hold its kernels alone).
    func options(_ problem: CCEProblem, _ config: Configuration) -> String {
        config.defines + problemDefines(problem)
    }

    /// The files of the role whose configuration `config` is.
    func files(_ config: Configuration) -> [String]? { Self.role(of: config)?.sources }

    /// The build options of the kernels that are never tuned (the reduction, the target check, the vocabulary
    /// order, the materialized baseline): the problem's options alone, so one build serves every candidate.
    func utilityOptions(_ problem: CCEProblem) -> String {
        String(problemDefines(problem).dropFirst())
    }

    /// The defines of the problem's options (storage, bias, shift, ignore index, softcap, z-loss, smoothing,
    /// filter, order).
    private func problemDefines(_ problem: CCEProblem) -> String {
        func literal(_ value: Double) -> String { String(format: "%.9ef", value) }
        let filter = problem.threshold
        var options = " -DPRECISION=\(problem.precision.define)"
        options += " -DHAS_BIAS=\(problem.bias ? 1 : 0) -DSHIFT=\(problem.shift ? 1 : 0) -DIGNORE=(\(problem.ignoreIndex))"
        options += " -DUSE_SOFTCAP=\(problem.softcap > 0 ? 1 : 0) -DSOFTCAP=\(literal(problem.softcap > 0 ? problem.softcap : 1))"
        options += " -DZLOSS=\(literal(problem.zLoss)) -DSMOOTH=\(literal(problem.labelSmoothing))"
        options += " -DUSE_FILTER=\(filter != nil ? 1 : 0) -DFILTER=\(literal(Double(filter ?? 0)))"
        options += " -DORDERED=\(problem.sortVocabulary ? 1 : 0)"
        return options
    }

    /// A configuration's tile, work-group, splits, padded row (D rounded up to VW) and D chunk (KCH in the kernels).
    func geometry(_ problem: CCEProblem, _ config: Configuration) -> (tb: Int, nb: Int, wg: Int, vs: Int, dp: Int, kc: Int) {
        let v = config.values
        let vw = v["VW"]!, kc = v["KC"]!
        let dp = (problem.dim + vw - 1) / vw * vw
        return (v["TB"]!, v["NB"]!, v["WG"]!, v["VS"] ?? 1, dp, kc == 0 ? dp : min(kc, dp))
    }

    private func forwardKernels(_ problem: CCEProblem, _ config: Configuration, embeddings: DeviceTensor,
                                classifier: DeviceTensor, bias: DeviceTensor?, targets: DeviceBuffer<Int32>,
                                order: DeviceBuffer<Int32>?, loss: Loss) throws -> [Event] {
        let options = self.options(problem, config)
        let (tb, nb, wg, vs, dp, kc) = geometry(problem, config)
        let rows = problem.rows
        let (r, v, d) = (Int32(rows), Int32(problem.vocab), Int32(problem.dim))
        let part = try core.scratch("part", count: vs * rows * 4, of: Float.self)
        let queue = context.queue
        let (e, c) = (try argument(embeddings), try argument(classifier))
        let b = try bias.map(argument) ?? e
        let (lse, losses, total, valid, tileMax) = (loss.lse, loss.losses, loss.total, loss.valid, loss.tileMax)
        var events: [Event] = []
        events.append(try core.kernel("cce_forward", options: options, files: files(config)).launch(
            on: queue, global: [ceilDiv(rows, tb) * wg, vs], local: [wg, 1],
            arguments: [r, v, d, Int32(dp), e, c, b, order ?? targets, targets, part, tileMax,
                        LocalMemory(bytes: tb * kc * 4), LocalMemory(bytes: nb * kc * 4), LocalMemory(bytes: tb * nb * 4),
                        LocalMemory(bytes: tb * 20)]))
        events.append(try core.kernel("cce_forward_finish", options: options, files: files(config)).launch(
            on: queue, global: [roundUp(rows, 64)], local: [64], arguments: [r, v, part, targets, lse, losses]))
        events.append(try core.kernel("cce_reduce", options: utilityOptions(problem)).launch(
            on: queue, global: [64], local: [64],
            arguments: [r, Int32(problem.reduction == .mean ? 1 : 0), losses, targets, total, valid]))
        return events
    }

    private func backwardKernels(_ problem: CCEProblem, _ config: Configuration, embeddings: DeviceTensor,
                                 classifier: DeviceTensor, bias: DeviceTensor?, targets: DeviceBuffer<Int32>,
                                 loss: Loss, gradOutput: DeviceBuffer<Float>, dEmbeddings: DeviceTensor,
                                 dClassifier: DeviceTensor, dBias: DeviceTensor?) throws -> [Event] {
        let options = self.options(problem, config)
        let (tb, nb, wg, _, dp, kc) = geometry(problem, config)
        let (n, rows) = (problem.tokens, problem.rows)
        let tiles = ceilDiv(n, tb), chunks = ceilDiv(problem.vocab, nb)
        let keep = try core.scratch("keep", count: tiles * chunks, of: UInt8.self)
        lastKeep = (keep, tiles * chunks)
        let mode = Int32(problem.reduction == .mean ? 0 : problem.reduction == .sum ? 1 : 2)
        let (e, c) = (try argument(embeddings), try argument(classifier))
        let b = try bias.map(argument) ?? e
        let (de, dc) = (try argument(dEmbeddings), try argument(dClassifier))
        let db = try dBias.map(argument) ?? dc
        let common: [any KernelArgument] = [e, c, b, loss.order ?? targets, targets, loss.lse, gradOutput, mode, loss.valid]
        let (nn, r, v, d, dpp) = (Int32(n), Int32(rows), Int32(problem.vocab), Int32(problem.dim), Int32(dp))
        let queue = context.queue
        let local = [LocalMemory(bytes: tb * kc * 4), LocalMemory(bytes: nb * kc * 4), LocalMemory(bytes: tb * nb * 4)]
        // The accumulators: local memory, or one fp32 scratch whose rows each work-group owns (dE's, then dC's).
        let accumulators: (any KernelArgument, any KernelArgument)
        if config["ACC"] == 1 {
            accumulators = (LocalMemory(bytes: tb * dp * 4), LocalMemory(bytes: nb * dp * 4))
        } else {
            let scratch = try core.scratch("accumulators", count: max(tiles * tb, chunks * nb) * dp, of: Float.self)
            accumulators = (scratch, scratch)
        }
        var events: [Event] = []
        events.append(try core.kernel("cce_backward_e", options: options, files: files(config)).launch(
            on: queue, global: [tiles * wg], local: [wg],
            arguments: [nn, r, v, d, dpp] + common + [loss.tileMax, keep, de] + local + [accumulators.0]))
        events.append(try core.kernel("cce_backward_c", options: options, files: files(config)).launch(
            on: queue, global: [chunks * wg], local: [wg],
            arguments: [r, v, d, dpp] + common + [keep, dc, db] + local + [accumulators.1]))
        return events
    }

    /// The vocabulary by decreasing logit of the mean embedding: `order[position]` = class, and each row's target
    /// position. Reads V floats and the targets, sorts on the host, uploads both.
    /// - Parameter into: buffers of an earlier call to upload into when large enough (no allocation).
    func vocabularyOrder(_ problem: CCEProblem, embeddings: DeviceTensor, classifier: DeviceTensor,
                         bias: DeviceTensor?, targets: DeviceBuffer<Int32>,
                         into: (DeviceBuffer<Int32>?, DeviceBuffer<Int32>?) = (nil, nil)) throws -> (DeviceBuffer<Int32>, DeviceBuffer<Int32>) {
        let options = utilityOptions(problem)
        let (v, d) = (problem.vocab, problem.dim)
        let (e, c) = (try argument(embeddings), try argument(classifier))
        let b = try bias.map(argument) ?? e
        // The scratch is shared by the family's calls: used and read under one lock.
        let logits = try core.serialized {
            let meanE = try core.scratch("mean-embedding", count: d, of: Float.self), average = try core.scratch("average-logit", count: v, of: Float.self)
            _ = try core.kernel("cce_mean_rows", options: options).launch(
                on: context.queue, global: [roundUp(d, 64)], local: [64], arguments: [Int32(problem.rows), Int32(d), e, meanE])
            _ = try core.kernel("cce_average_logit", options: options).launch(
                on: context.queue, global: [roundUp(v, 64)], local: [64], arguments: [Int32(v), Int32(d), c, b, meanE, average])
            return try average.download(count: v)
        }
        let order = (0..<v).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        var rank = [Int32](repeating: 0, count: v)
        for (position, id) in order.enumerated() { rank[id] = Int32(position) }
        // Ignored targets become -1 (the kernels' CE_IGNORED under ORDERED), so an ignore index that is a real class
        // id cannot equal another target's position; a target outside [0, V) (unchecked) becomes V, a position no
        // tile holds.
        let ignore = Int32(problem.ignoreIndex), vocab = Int32(v)
        let positions = try targets.download(count: problem.tokens).map { t in
            t == ignore ? -1 : (t >= 0 && t < vocab) ? rank[Int(t)] : vocab
        }
        func upload(_ values: [Int32], _ earlier: DeviceBuffer<Int32>?) throws -> DeviceBuffer<Int32> {
            guard let earlier, earlier.count >= values.count else { return try DeviceBuffer<Int32>(context, values) }
            try earlier.upload(values)
            return earlier
        }
        return (try upload(order.map { Int32($0) }, into.0), try upload(positions, into.1))
    }

    /// Checks the targets on the device; throws for the first one outside [0, V) that is not the ignore index.
    /// (Built with the problem's utility options: one build serves every configuration.)
    func checkTargets(_ problem: CCEProblem, _ targets: DeviceBuffer<Int32>) throws {
        let options = utilityOptions(problem)
        // The scratch is shared by the family's calls: set, used and read under one lock.
        let position = try core.serialized {
            let bad = try core.scratch("bad-target", count: 1, of: Int32.self)
            try bad.upload([Int32(problem.tokens)])
            _ = try core.kernel("cce_check_targets", options: options).launch(
                on: context.queue, global: [roundUp(problem.tokens, 64)], local: [64],
                arguments: [Int32(problem.tokens), Int32(problem.vocab), targets, bad])
            return Int(try bad.download(count: 1)[0])
        }
        if position < problem.tokens {
            let value = try targets.download(offset: position, count: 1)[0]
            throw CCEError.targetOutOfRange(position: position, target: Int(value), vocab: problem.vocab, ignoreIndex: problem.ignoreIndex)
        }
    }

    /// The tensor's buffer as a kernel argument.
    func argument(_ tensor: DeviceTensor) throws -> any KernelArgument { try argument(tensor.buffer) }

    /// The buffer as a kernel argument (every ``DeviceBuffer`` is one).
    func argument(_ buffer: any AnyDeviceBuffer) throws -> any KernelArgument {
        guard let argument = buffer as? any KernelArgument else { throw CCEError.buffer("\(buffer.elementTypeName) buffer is not a kernel argument") }
        return argument
    }
}

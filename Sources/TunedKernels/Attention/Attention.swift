import Autotuning
import Foundation
import OpenCLRuntime

/// Flash attention on an OpenCL device: dense and block-sparse, forward and backward, with GQA, causal and
/// sliding-window masks, softcap and flash-decoding, on any OpenCL 1.2 device (no fp16 extension needed).
///
/// The forward runs FlashAttention-2's online softmax over key tiles held in local memory and saves each row's
/// log-sum-exp; the N x N scores never exist in device memory. The backward recomputes the scores from the LSE:
/// a work-group owns a key tile (its dK and dV) and adds its share of dQ to partial sums of its key split, which a
/// last kernel adds up in order, so the gradients are deterministic (no atomics).
///
/// ```swift
/// let attention = try Attention(context: context)
/// let problem = AttentionProblem(heads: 8, kvHeads: 2, seq: 4096, dim: 64, causal: true)
/// let saved = try attention.forward(problem, q: q, k: k, v: v, o: o)
/// try attention.backward(problem, q: q, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dK, dV: dV)
/// ```
public final class Attention: KernelFamily, @unchecked Sendable {
    public typealias Problem = AttentionProblem
    public let core: FamilyCore
    public init(core: FamilyCore) { self.core = core }

    public static let name = "attention"
    public static let summary = "flash attention, dense and block-sparse, forward and backward, GQA, causal/window masks, decoding"
    public static let formats: [ElementFormat] = [.half, .single, .bfloat16]

    public static let roles = [
        KernelRole("forward", variants: ["forward", "decode"], sources: ["attention/shared.cl", "attention/forward.cl"],
                   summary: "O and the LSE: online softmax over key tiles, split along the keys and combined through the LSE for decoding"),
        KernelRole("backward", variants: ["backward"], sources: ["attention/shared.cl", "attention/backward.cl"],
                   summary: "dQ, dK, dV from the saved O and LSE: key tiles own dK and dV, dQ summed over key splits in order"),
    ]

    public static let conformanceProblems = [
        AttentionProblem(batch: 2, heads: 4, kvHeads: 2, seq: 19, kvSeq: 37, dim: 13, precision: .half, causal: true, softcap: 5),
        AttentionProblem(batch: 1, heads: 2, seq: 40, kvSeq: 23, dim: 8, precision: .bfloat16, window: "9,3", mode: .blockSparse, block: 16, sparsity: 0.5),
    ]

    /// The bench shape (B 1, H 8, L 4096, D 64, fp16) is too slow for a regression check on 2 cores; these
    /// are a quarter of it: dense forward and backward, causal forward, block-sparse at 90%, and a decoding step.
    public static let performanceCases: [PerformanceCase<AttentionProblem>] = {
        let dense = AttentionProblem(heads: 8, seq: 1024, dim: 64)
        var causal = dense
        causal.causal = true
        var sparse = dense
        sparse.mode = .blockSparse
        sparse.sparsity = 0.9
        let decode = AttentionProblem(heads: 32, kvHeads: 8, seq: 1, kvSeq: 16384, dim: 128)
        return [PerformanceCase("dense-1024", dense, role: "forward", bound: .compute),
                PerformanceCase("causal-1024", causal, role: "forward", bound: .compute),
                PerformanceCase("sparse90-1024", sparse, role: "forward", bound: .compute),
                PerformanceCase("decode-16384", decode, role: "forward", bound: .memory),
                PerformanceCase("dense-1024", dense, role: "backward", bound: .compute)]
    }()

    /// The kernels that are never tuned: `common.cl` + `attention/shared.cl` + `attention/utility.cl`.
    public static func kernelSource() throws -> String { try KernelSources.program(files: ["attention/shared.cl", "attention/utility.cl"]) }

    public static func key(_ problem: AttentionProblem) -> TuningKey {
        let (lo, hi) = problem.bounds
        var tags = ["precision": problem.precision.tag, "mode": problem.mode.rawValue,
                    "mask": problem.causal ? "causal" : (lo != nil || hi != nil) ? "window" : "none"]
        if problem.mode == .blockSparse { tags["block"] = String(problem.block) }
        return TuningKey(kernel: name, tags: tags, sizes: [problem.seq, problem.keys, problem.dim, problem.batch * problem.heads, problem.group])
    }

    /// Pairs (query row, key) a call computes: the visible ones of each row (causal, window), times the selected
    /// fraction of the block map in block-sparse mode.
    public static func visiblePairs(_ problem: AttentionProblem) -> Double {
        let (lo, hi) = problem.bounds
        let off = problem.keys - problem.seq
        var pairs = 0.0
        for i in 0..<problem.seq {
            let first = lo.map { max(0, i + off - $0) } ?? 0
            let last = hi.map { min(problem.keys - 1, i + off + $0) } ?? problem.keys - 1
            pairs += Double(max(0, last - first + 1))
        }
        let selected = problem.mode == .blockSparse ? max(1 - problem.sparsity, 1 / Double(problem.mapBlocks.keys)) : 1
        return pairs * selected * Double(problem.batch * problem.heads)
    }

    /// The forward's FLOPs (4 per visible pair and dimension: the scores and P V) and the bytes of Q, K, V and O.
    public static func work(_ problem: AttentionProblem) -> Work {
        let d = Double(problem.dim), bytes = Double(problem.precision.bytes)
        let q = Double(problem.queryRows) * d, kv = Double(problem.batch * problem.keyHeads * problem.keys) * d
        return Work(flops: 4 * visiblePairs(problem) * d, bytes: (2 * q + 2 * kv) * bytes)
    }

    /// The backward: 10 FLOPs per visible pair and dimension (FlashAttention-2's count: the scores, dP, dV, dK, dQ),
    /// reading Q, K, V, O, dO and writing dQ, dK, dV.
    public static func work(_ problem: AttentionProblem, role: KernelRole) -> Work {
        guard role.name == "backward" else { return work(problem) }
        let d = Double(problem.dim), bytes = Double(problem.precision.bytes)
        let q = Double(problem.queryRows) * d, kv = Double(problem.batch * problem.keyHeads * problem.keys) * d
        return Work(flops: 10 * visiblePairs(problem) * d, bytes: (4 * q + 4 * kv) * bytes)
    }

    public static func needs(_ problem: AttentionProblem) throws -> ResourceNeeds {
        try Checked.sizes(["batch": problem.batch, "heads": problem.heads, "seq": problem.seq], maximum: Int(Int32.max) / 4, family: name)
        try Checked.sizes(["dim": problem.dim], maximum: 256, family: name)
        guard problem.kvHeads >= 0, problem.kvSeq >= 0 else { throw ProblemError("attention: kv-heads and kv-seq must be at least 0 (0: as the queries)") }
        try Checked.sizes(["kv-seq": problem.keys], maximum: Int(Int32.max) / 4, family: name)
        guard problem.heads % problem.keyHeads == 0 else {
            throw ProblemError("attention: heads (\(problem.heads)) must be a multiple of kv-heads (\(problem.keyHeads))")
        }
        guard formats.contains(problem.precision) else {
            throw ProblemError("attention: precision \(problem.precision) is not one of \(formats.map(\.tag).joined(separator: ", "))")
        }
        if case .failure(let error) = problem.windowBounds { throw error }
        guard problem.softcap >= 0, problem.softcap.isFinite else { throw ProblemError("attention: softcap must be 0 (none) or positive, got \(problem.softcap)") }
        guard problem.scale >= 0, problem.scale.isFinite else { throw ProblemError("attention: scale must be 0 (1/sqrt(D)) or positive, got \(problem.scale)") }
        guard problem.block % 16 == 0, (16...128).contains(problem.block) else {
            throw ProblemError("attention: block must be a multiple of 16 from 16 to 128, got \(problem.block)")
        }
        guard (0...1).contains(problem.sparsity) else { throw ProblemError("attention: sparsity must be in [0, 1], got \(problem.sparsity)") }
        let keyRows0 = try Checked.product(problem.batch, problem.keyHeads, problem.keys, what: "K")
        guard try Checked.product(problem.batch, problem.heads, problem.seq, what: "Q") <= Int(Int32.max) / 2, keyRows0 <= Int(Int32.max) / 2 else {
            throw ProblemError("attention: B x Hq x Lq and B x Hkv x Lk must be at most \(Int(Int32.max) / 2), the most the kernels index")
        }
        let (rows, d, bytes) = (problem.queryRows, problem.dim, problem.precision.bytes)
        let keyRows = keyRows0
        let q = try Checked.product(rows, d, bytes, what: "Q"), kv = try Checked.product(keyRows, d, bytes, what: "K")
        // fp32 per row (LSE, delta), the dQ partial sums of up to 16 key splits with rows rounded up to 128.
        let perRow = try Checked.product(rows, 8, what: "the per-row buffers")
        let partials = try Checked.product(16, problem.batch, problem.heads, roundUp(problem.seq, 128), roundUp(d, 64), 4, what: "dQ's partial sums")
        let map = problem.mode == .blockSparse ? try Checked.product(problem.batch, problem.heads, problem.mapBlocks.queries, problem.mapBlocks.keys, what: "the map") : 0
        // Host: fp64 copies of Q, K, V, O, dO and the gradients, the reference's scores of one row per head.
        let host = try Checked.sum([try Checked.product(rows, d, 8 * 5, what: "Q on the host"), try Checked.product(keyRows, d, 8 * 4, what: "K on the host"),
                                    try Checked.product(problem.keys, 8 * 4 * 4, what: "the reference's rows"), map], what: "the host memory")
        return ResourceNeeds(deviceBuffers: [q, kv, kv, q, q, q, kv, kv, perRow, partials, max(map, 1)], hostBytes: host)
    }

    // MARK: Spaces and defaults

    /// The forward's space: the tile (BQ query rows x BK keys), the scores' register block (MR vectors of VW query
    /// rows x NR keys), P V's (PMR rows x PNV vectors of VW along D), the work-group (WG), the key splits (KVS) and
    /// PACK (a tile's rows over the query heads of a group). The backward's: its tile, the blocks (the scores' MR
    /// vectors of VW keys x NR query rows), WG and the key splits (KS). Local memory holds fp32 copies of the tile's
    /// rows, the scores and the accumulators (D rounded up to VW x PNV).
    public func spaces(for problem: AttentionProblem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace] {
        Self.spaces(for: problem, role: role, limits: limits)
    }

    public static func spaces(for problem: AttentionProblem, role: KernelRole, limits: DeviceLimits) -> [SearchSpace] {
        let backward = role.name == "backward"
        let d = problem.dim, localBytes = limits.localMemoryBytes
        var parameters = [Parameter("BQ", [16, 32, 64, 128]), Parameter("BK", [16, 32, 64, 128]), Parameter("VW", [1, 4, 8, 16]),
                          Parameter("MR", [1, 2, 4]), Parameter("NR", [1, 2, 4, 8]), Parameter("PMR", [1, 2, 4, 8]), Parameter("PNV", [1, 2, 4]),
                          Parameter("WG", [1, 4, 16, 64])]
        parameters += backward ? [Parameter("KS", [1, 2, 4, 8, 16])] : [Parameter("KVS", [1, 2, 4, 8, 16]), Parameter("PACK", [0, 1])]
        // The scores' owner side (the vector lanes): the query rows in the forward, the keys in the backward.
        let (owner, streamed) = backward ? ("BK", "BQ") : ("BQ", "BK")
        var constraints = [
            .divides("\(owner) % (MR*VW) == 0", [owner, "MR", "VW"], { $0[owner]! }, { $0["MR"]! * $0["VW"]! }),
            .divides("\(streamed) % NR == 0", [streamed, "NR"], { $0[streamed]! }, { $0["NR"]! }),
            .divides("BQ % PMR == 0", ["BQ", "PMR"], { $0["BQ"]! }, { $0["PMR"]! }),
            Constraint("score accumulators MR*NR*VW <= 1024 floats", ["MR", "NR", "VW"]) { $0["MR"]! * $0["NR"]! * $0["VW"]! <= 1024 },
            Constraint("product accumulators PMR*PNV*VW <= 1024 floats", ["PMR", "PNV", "VW"]) { $0["PMR"]! * $0["PNV"]! * $0["VW"]! <= 1024 },
            Constraint("PNV*VW <= D rounded up to VW = \(d) (no vector of padding alone)", ["PNV", "VW"]) { v in
                v["PNV"]! == 1 || v["PNV"]! * v["VW"]! <= roundUp(d, v["VW"]!)
            },
            Constraint("local memory of D = \(d) <= \(localBytes) bytes", ["BQ", "BK", "VW", "PNV"]) { v in
                Self.localFloats(problem, role: role.name, v) * 4 <= localBytes
            },
        ] + limits.workGroupConstraints(["WG"]) { ($0["WG"]!, 1) }
        if backward {
            constraints.append(.divides("BK % PMR == 0", ["BK", "PMR"], { $0["BK"]! }, { $0["PMR"]! }))
            constraints.append(Constraint("KS <= key tiles", ["KS", "BK"]) { v in v["KS"]! == 1 || v["KS"]! <= ceilDiv(problem.keys, v["BK"]!) })
        } else {
            constraints.append(Constraint("KVS <= key tiles", ["KVS", "BK"]) { v in v["KVS"]! == 1 || v["KVS"]! <= ceilDiv(problem.keys, v["BK"]!) })
            let group = problem.group, sparse = problem.mode == .blockSparse
            constraints.append(Constraint(sparse ? "PACK == 0 (block-sparse: a tile stays within a head)" : "PACK == 0 when heads = kv-heads", ["PACK"]) { v in
                v["PACK"]! == 0 || (group > 1 && !sparse)
            })
        }
        if problem.mode == .blockSparse {
            let block = problem.block
            constraints.append(Constraint("BQ and BK divide the map's block \(block)", ["BQ", "BK"]) { v in block % v["BQ"]! == 0 && block % v["BK"]! == 0 })
        }
        let tiled = SearchSpace(variant: role.name, parameters: parameters, constraints: constraints)
        guard !backward, problem.seq * problem.group <= 16 else { return [tiled] }
        return [tiled, decodeSpace(for: problem, limits: limits)]
    }

    /// The forward's `decode` space (decoding: at most 16 rows per key/value head, one work-item per work-group, no
    /// staging): keys per tile (BK), vector width along D (VW), key splits (KVS), rows per register block (RB).
    static func decodeSpace(for problem: AttentionProblem, limits: DeviceLimits) -> SearchSpace {
        let localBytes = limits.localMemoryBytes, d = problem.dim
        return SearchSpace(variant: "decode", parameters: [Parameter("BK", [16, 32, 64, 128, 256]), Parameter("VW", [1, 4, 8, 16]),
                                                           Parameter("KVS", [1, 2, 4, 8, 16, 32, 64]), Parameter("RB", [1, 2, 4])], constraints: [
            Constraint("KVS <= key tiles", ["KVS", "BK"]) { v in v["KVS"]! == 1 || v["KVS"]! <= ceilDiv(problem.keys, v["BK"]!) },
            Constraint("local memory of D = \(d) <= \(localBytes) bytes", ["BK", "VW"]) { v in
                (32 * paddedDim(d, vw: v["VW"]!, pnv: 1) + 16 * v["BK"]! + 64 + 64) * 4 <= localBytes
            },
        ])
    }

    /// D as the kernels pad it: rounded up to VW x PNV.
    static func paddedDim(_ dim: Int, vw: Int, pnv: Int) -> Int { roundUp(dim, vw * pnv) }

    /// The local memory of a configuration's tuned kernel, in floats.
    static func localFloats(_ problem: AttentionProblem, role: String, _ v: [String: Int]) -> Int {
        let (bq, bk) = (v["BQ"]!, v["BK"]!)
        let dp = paddedDim(problem.dim, vw: v["VW"]!, pnv: v["PNV"]!)
        return role == "backward" ? 5 * bk * dp + 2 * bq * dp + 2 * bq * bk + 2 * bq
                                  : 2 * bq * dp + 2 * bk * dp + bk * bq + 7 * bq
    }

    public func defaults(for problem: AttentionProblem, role: KernelRole, given: [String: Configuration]) -> [Configuration] {
        Self.defaults(for: problem, role: role, limits: limits)
    }

    /// CPU: one work-item per work-group in 16-wide vectors (the scores 4 vectors x 4 rows, P V 4 rows x up to 4 vectors
    /// along D), on 128 x 128 tiles in the forward and 64 x 128 (queries x keys) in the backward (B 1, H 8, D 64, fp16:
    /// 4% faster than 64 x 64 in both, at L 4096 and 2048), else 64 x 64 (a block map of 64 needs tiles dividing it); decoding (few query rows): 16-row tiles packing the query heads of a group, split
    /// along the keys until the device has work-groups to spare. GPU: 64 work-items on 32 x 32 tiles. Then smaller
    /// tiles and vectors: the last one fits any device with a few KiB of local memory.
    public static func defaults(for problem: AttentionProblem, role: KernelRole, limits: DeviceLimits) -> [Configuration] {
        let backward = role.name == "backward"
        let d = problem.dim
        // Work-groups to aim for: a few per core of a CPU, many per GPU.
        let target = limits.kind == .cpu ? 16 : 256
        func configuration(_ bq: Int, _ bk: Int, vw: Int, wg: Int) -> Configuration {
            let vectors = ceilDiv(d, vw)
            let pnv = [4, 2, 1].first { vectors % $0 == 0 && $0 <= vectors }!
            let owner = backward ? bk : bq
            let mr = [4, 2, 1].first { owner % ($0 * vw) == 0 } ?? 1
            let nr = min(4, backward ? bq : bk)
            var values = ["BQ": bq, "BK": bk, "VW": vw, "MR": mr, "NR": nr, "PMR": min(4, bq, bk), "PNV": pnv, "WG": wg]
            let groups: Int
            if backward {
                groups = problem.batch * problem.keyHeads
                let tiles = ceilDiv(problem.keys, bk)
                let wanted = max(1, ceilDiv(target, groups))
                values["KS"] = [16, 8, 4, 2, 1].first { $0 <= min(wanted, tiles) }!
            } else {
                let pack = problem.group > 1 && problem.mode == .dense && problem.seq * problem.group <= bq
                values["PACK"] = pack ? 1 : 0
                let rows = pack ? problem.group * problem.seq : problem.seq
                groups = ceilDiv(rows, bq) * problem.batch * (pack ? problem.keyHeads : problem.heads)
                let tiles = ceilDiv(problem.keys, bk)
                let wanted = max(1, ceilDiv(target, groups))
                values["KVS"] = [16, 8, 4, 2, 1].first { $0 <= min(wanted, tiles) }!
            }
            return Configuration(variant: role.name, values)
        }
        let decoding = !backward && problem.seq * problem.group <= 16
        // Decoding on a CPU: the decode kernel on 256-key tiles, split into 8 times the work-groups of a tiled kernel
        // (a one-item group's share of the keys is its whole work). At Lk 32768, Hq 32, Hkv 8, D 128, fp16, --cold:
        // 5.6 ms for 16 splits of 256-key tiles, 6.0 for 8 of them, 8.5 for 8 of 64-key tiles.
        let splits = [64, 32, 16, 8, 4, 2, 1].first { $0 <= min(max(1, ceilDiv(8 * target, problem.batch * problem.keyHeads)), ceilDiv(problem.keys, 256)) }!
        let decode = Configuration(variant: "decode", ["BK": 256, "VW": 16, "KVS": splits, "RB": [4, 2, 1].first { $0 <= problem.seq * problem.group }!])
        let cpu = decoding ? [decode, configuration(16, 64, vw: 16, wg: 1), configuration(16, 32, vw: 16, wg: 1)]
                           : [backward ? configuration(64, 128, vw: 16, wg: 1) : configuration(128, 128, vw: 16, wg: 1),
                              configuration(64, 64, vw: 16, wg: 1), configuration(32, 32, vw: 16, wg: 1), configuration(16, 16, vw: 16, wg: 1)]
        let gpu = [configuration(32, 32, vw: 4, wg: 64), configuration(16, 16, vw: 4, wg: 16)]
        let last = [configuration(16, 16, vw: 1, wg: 1)]
        return (limits.kind == .cpu ? cpu + gpu : gpu + cpu) + last
    }

    public func buildOptions(_ configuration: Configuration, for problem: AttentionProblem) -> String { options(problem, configuration) }

    public func harness(_ problem: AttentionProblem, seed: UInt64) throws -> AttentionHarness {
        try AttentionHarness(family: self, problem: problem, seed: seed)
    }

    // MARK: Kernels

    /// A tuned kernel's build options: the configuration, D padded, and the problem's defines.
    func options(_ problem: AttentionProblem, _ config: Configuration) -> String {
        let dp = Self.paddedDim(problem.dim, vw: config["VW"] ?? 1, pnv: config["PNV"] ?? 1)
        return config.defines + " -DDP=\(dp)" + problemDefines(problem)
    }

    /// The utility kernels' options: the problem's defines alone (one build serves every configuration).
    func utilityOptions(_ problem: AttentionProblem) -> String { String(problemDefines(problem).dropFirst()) }

    private func problemDefines(_ problem: AttentionProblem) -> String {
        func literal(_ value: Double) -> String { String(format: "%.9ef", value) }
        let (lo, hi) = problem.bounds
        var options = " -DPRECISION=\(problem.precision.define) -DD=\(problem.dim) -DSCALE=\(literal(problem.effectiveScale))"
        options += " -DUSE_SOFTCAP=\(problem.softcap > 0 ? 1 : 0) -DSOFTCAP=\(literal(problem.softcap > 0 ? problem.softcap : 1))"
        options += " -DAT_LO=\(lo != nil ? 1 : 0) -DLO_OFF=\(lo ?? 0) -DAT_HI=\(hi != nil ? 1 : 0) -DHI_OFF=\(hi ?? 0)"
        options += " -DSPARSE=\(problem.mode == .blockSparse ? 1 : 0) -DMAP_BQ=\(problem.block) -DMAP_BK=\(problem.block)"
        return options
    }

    func files(_ config: Configuration) -> [String]? { Self.role(of: config)?.sources }

    /// The buffer as a kernel argument.
    func argument(_ buffer: any AnyDeviceBuffer) throws -> any KernelArgument {
        guard let argument = buffer as? any KernelArgument else { throw AttentionError.buffer("\(buffer.elementTypeName) buffer is not a kernel argument") }
        return argument
    }

    /// Enqueues the forward: O and the LSE (fp32, [B, Hq, Lq]).
    func forwardKernels(_ problem: AttentionProblem, _ config: Configuration, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                        o: AttentionOperand, lse: DeviceBuffer<Float>, map: DeviceBuffer<UInt8>?) throws -> [Event] {
        let options = self.options(problem, config), files = self.files(config)
        let dp = Self.paddedDim(problem.dim, vw: config["VW"]!, pnv: config["PNV"] ?? 1)
        let kvs = config["KVS"]!
        let (b, hq, hkv, lq, lk, d) = (problem.batch, problem.heads, problem.keyHeads, problem.seq, problem.keys, problem.dim)
        let nrows = problem.queryRows
        let opart = try kvs > 1 ? core.scratch("opart", count: kvs * nrows * dp, of: Float.self) : lse
        let lpart = try kvs > 1 ? core.scratch("lpart", count: kvs * nrows, of: Float.self) : lse
        let (nqb, nkb) = problem.mapBlocks
        let mapArgument: any KernelArgument = map ?? lse
        let placements: [any KernelArgument] = [
            try argument(q.buffer), q.placement(heads: hq, rows: lq, dim: d), try argument(k.buffer), k.placement(heads: hkv, rows: lk, dim: d),
            try argument(v.buffer), v.placement(heads: hkv, rows: lk, dim: d), try argument(o.buffer), o.placement(heads: hq, rows: lq, dim: d),
            lse, opart, lpart]
        let sizes: [any KernelArgument] = [Int32(b), Int32(lq), Int32(lk), Int32(hq), Int32(problem.group)]
        var events: [Event] = []
        if config.variant == "decode" {
            let bk = config["BK"]!
            events.append(try core.kernel("attn_decode", options: options, files: files).launch(
                on: context.queue, global: [kvs, b * hkv], local: [1, 1],
                arguments: sizes + placements + [LocalMemory(bytes: 16 * dp * 4), LocalMemory(bytes: 16 * dp * 4), LocalMemory(bytes: 16 * bk * 4),
                                                 LocalMemory(bytes: 64 * 4), LocalMemory(bytes: 64 * 4)]))
        } else {
            let (bq, bk, wg, pack) = (config["BQ"]!, config["BK"]!, config["WG"]!, config["PACK"]! == 1)
            let rows = pack ? problem.group * lq : lq
            events.append(try core.kernel("attn_forward", options: options, files: files).launch(
                on: context.queue, global: [ceilDiv(rows, bq) * wg, b * (pack ? hkv : hq), kvs], local: [wg, 1, 1],
                arguments: sizes + placements + [mapArgument, Int32(nqb), Int32(nkb),
                            LocalMemory(bytes: dp * bq * 4), LocalMemory(bytes: bk * dp * 4), LocalMemory(bytes: bk * dp * 4),
                            LocalMemory(bytes: bk * bq * 4), LocalMemory(bytes: bq * dp * 4), LocalMemory(bytes: 3 * bq * 4), LocalMemory(bytes: 4 * bq * 4)]))
        }
        if kvs > 1 {
            events.append(try core.kernel("attn_forward_combine", options: options, files: files).launch(
                on: context.queue, global: [roundUp(nrows, 64)], local: [64],
                arguments: [Int32(nrows), Int32(lq), Int32(hq), opart, lpart, try argument(o.buffer), o.placement(heads: hq, rows: lq, dim: d), lse]))
        }
        return events
    }

    /// Enqueues the backward: delta, the zeroed dQ partial sums, the key tiles' kernel, dQ's sum.
    func backwardKernels(_ problem: AttentionProblem, _ config: Configuration, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand,
                         o: AttentionOperand, lse: DeviceBuffer<Float>, map: DeviceBuffer<UInt8>?, dO: AttentionOperand,
                         dQ: AttentionOperand, dK: AttentionOperand, dV: AttentionOperand) throws -> [Event] {
        let options = self.options(problem, config), files = self.files(config)
        let (bq, bk, wg, ks) = (config["BQ"]!, config["BK"]!, config["WG"]!, config["KS"]!)
        let dp = Self.paddedDim(problem.dim, vw: config["VW"]!, pnv: config["PNV"]!)
        let (b, hq, hkv, lq, lk, d) = (problem.batch, problem.heads, problem.keyHeads, problem.seq, problem.keys, problem.dim)
        let nrows = problem.queryRows, lqp = roundUp(lq, bq)
        let delta = try core.scratch("delta", count: nrows, of: Float.self)
        let partials = ks * b * hq * lqp * dp
        let dqp = try core.scratch("dq-partials", count: partials, of: Float.self)
        let (nqb, nkb) = problem.mapBlocks
        let mapArgument: any KernelArgument = map ?? lse
        let queue = context.queue
        let (qp, kp, vp) = (q.placement(heads: hq, rows: lq, dim: d), k.placement(heads: hkv, rows: lk, dim: d), v.placement(heads: hkv, rows: lk, dim: d))
        var events: [Event] = []
        events.append(try core.kernel("attn_backward_delta", options: options, files: files).launch(
            on: queue, global: [roundUp(nrows, 64)], local: [64],
            arguments: [Int32(nrows), Int32(lq), Int32(hq), try argument(o.buffer), o.placement(heads: hq, rows: lq, dim: d),
                        try argument(dO.buffer), dO.placement(heads: hq, rows: lq, dim: d), delta]))
        events.append(try core.kernel("attn_zero", options: options, files: files).launch(
            on: queue, global: [roundUp(ceilDiv(partials, 16), 64)], local: [64], arguments: [Int64(partials), dqp]))
        events.append(try core.kernel("attn_backward", options: options, files: files).launch(
            on: queue, global: [ks * wg, b * hkv], local: [wg, 1],
            arguments: [Int32(b), Int32(lq), Int32(lk), Int32(hq), Int32(problem.group), Int32(lqp),
                        try argument(q.buffer), qp, try argument(k.buffer), kp, try argument(v.buffer), vp,
                        try argument(dO.buffer), dO.placement(heads: hq, rows: lq, dim: d), lse, delta, dqp,
                        try argument(dK.buffer), dK.placement(heads: hkv, rows: lk, dim: d), try argument(dV.buffer), dV.placement(heads: hkv, rows: lk, dim: d),
                        mapArgument, Int32(nqb), Int32(nkb),
                        LocalMemory(bytes: dp * bk * 4), LocalMemory(bytes: dp * bk * 4), LocalMemory(bytes: bk * dp * 4),
                        LocalMemory(bytes: bq * dp * 4), LocalMemory(bytes: bq * dp * 4), LocalMemory(bytes: bq * bk * 4), LocalMemory(bytes: bq * bk * 4),
                        LocalMemory(bytes: bk * dp * 4), LocalMemory(bytes: bk * dp * 4), LocalMemory(bytes: 2 * bq * 4)]))
        events.append(try core.kernel("attn_backward_dq", options: options, files: files).launch(
            on: queue, global: [roundUp(d, 16), nrows], local: [16, 1],
            arguments: [Int32(nrows), Int32(lq), Int32(lqp), Int32(hq), dqp, try argument(dQ.buffer), dQ.placement(heads: hq, rows: lq, dim: d)]))
        return events
    }
}

/// An attention call refused before anything is enqueued.
public enum AttentionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A buffer of the wrong format, size, layout or context.
    case buffer(String)
    /// An output buffer that is an input or another output.
    case aliasing(String)
    /// A saved forward given to a call it was not computed for.
    case mismatch(String)
    /// An input holding NaN or infinity.
    case nonFinite(String)

    public var description: String {
        switch self {
        case let .buffer(message), let .aliasing(message), let .mismatch(message), let .nonFinite(message): "attention: \(message)"
        }
    }
}

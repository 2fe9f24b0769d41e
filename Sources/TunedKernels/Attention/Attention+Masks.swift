import Autotuning
import OpenCLRuntime

/// A block map in its index form, FlexAttention's `kv_num_blocks` and `kv_indices`: per query block
/// (`[B, Hq, ceil(Lq/block)]`) the count of selected key blocks, and their indices in increasing order
/// (`[B, Hq, ceil(Lq/block), ceil(Lk/block)]`, the entries past the count -1).
public struct BlockIndices: Sendable {
    public let counts: DeviceBuffer<Int32>
    public let indices: DeviceBuffer<Int32>
    public init(counts: DeviceBuffer<Int32>, indices: DeviceBuffer<Int32>) {
        self.counts = counts
        self.indices = indices
    }
}

/// A static per-head pattern of block-sparse attention (Sparse-vDiT's observation: a video diffusion model's heads
/// attend in fixed shapes), on block indices (query block i, key block j).
public enum HeadPattern: Sendable, Equatable {
    /// Nothing selected: the head costs nothing (its rows output 0).
    case empty
    /// Every block.
    case dense
    /// A diagonal band: |j - i| < width.
    case diagonal(width: Int)
    /// Diagonals `lag` blocks apart: |j - i - m lag| < width for some m in [-count, count].
    case multiDiagonal(width: Int, lag: Int, count: Int)
    /// Vertical stripes: the key blocks listed, for every query block.
    case vertical(stripes: [Int])
}

/// How a map is predicted from pooled scores: keep per query block the top fraction of its key blocks, or the fewest
/// reaching a cumulative probability mass.
public enum BlockPrediction: Sendable, Equatable {
    /// The ceil(fraction x key blocks) blocks of largest score (at least one), fraction in (0, 1].
    case topFraction(Double)
    /// The fewest blocks, by decreasing score, whose softmax probabilities add up to at least tau, in (0, 1].
    case cumulativeMass(Double)
}

extension Attention {
    /// The rows of `problem`'s block map (one per query block) and its key blocks.
    private func mapShape(_ problem: AttentionProblem) -> (rows: Int, keys: Int) {
        let (nqb, nkb) = problem.mapBlocks
        return (problem.batch * problem.heads * nqb, nkb)
    }

    /// The index form of `map` (a uint8 block map of `problem`), computed on the device.
    public func blockIndices(fromMap map: DeviceBuffer<UInt8>, for problem: AttentionProblem) throws -> BlockIndices {
        try checkCall(problem)
        let (rows, nkb) = mapShape(problem)
        guard map.count >= rows * nkb, map.context === context else {
            throw AttentionError.buffer("the block map holds \(map.count) bytes (or belongs to another context); the problem's needs \(rows * nkb)")
        }
        let result = BlockIndices(counts: try DeviceBuffer<Int32>(context, count: rows), indices: try DeviceBuffer<Int32>(context, count: rows * nkb))
        try core.serialized {
            _ = try core.kernel("attn_map_to_indices", options: utilityOptions(problem)).launch(
                on: context.queue, global: [roundUp(rows, 64)], local: [64], arguments: [Int32(rows), Int32(nkb), map, result.counts, result.indices])
        }
        return result
    }

    /// The block map of an index form, computed on the device.
    /// - Throws: ``AttentionError`` for buffers of the wrong size or context, a count outside [0, key blocks] or an
    ///   index outside [0, key blocks) among a query block's counted entries (naming the first such query block).
    public func blockMap(fromIndices blocks: BlockIndices, for problem: AttentionProblem) throws -> DeviceBuffer<UInt8> {
        try checkCall(problem)
        let (rows, nkb) = mapShape(problem)
        guard blocks.counts.count >= rows, blocks.indices.count >= rows * nkb else {
            throw AttentionError.buffer("the index form holds \(blocks.counts.count) counts and \(blocks.indices.count) indices; the problem needs "
                                        + "\(rows) and \(rows * nkb)")
        }
        guard blocks.counts.context === context, blocks.indices.context === context else { throw AttentionError.buffer("the index form belongs to another context") }
        let map = try DeviceBuffer<UInt8>(context, count: rows * nkb)
        let bad = try core.serialized {
            let flag = try core.scratch("bad-indices", count: 1, of: Int32.self)
            try flag.upload([Int32.max])
            _ = try core.kernel("attn_indices_to_map", options: utilityOptions(problem)).launch(
                on: context.queue, global: [roundUp(rows, 64)], local: [64], arguments: [Int32(rows), Int32(nkb), blocks.counts, blocks.indices, map, flag])
            return Int(try flag.download(count: 1)[0])
        }
        if bad != Int(Int32.max) {
            let (nqb, _) = problem.mapBlocks
            let (bh, i) = bad.quotientAndRemainder(dividingBy: nqb)
            throw AttentionError.buffer("the index form of query block [\(bh / problem.heads), \(bh % problem.heads), \(i)] has a count outside "
                                        + "[0, \(nkb)] or a key block outside [0, \(nkb))")
        }
        return map
    }

    /// A block map of per-head patterns (one per query head, or one for every head), the same for every batch; with
    /// `masked`, only blocks holding a pair the problem's causal and window masks leave visible.
    /// - Throws: ``AttentionError`` for a pattern count other than 1 or Hq, a width or lag below 1, a negative count,
    ///   a stripe outside the key blocks.
    public func patternMap(_ problem: AttentionProblem, patterns: [HeadPattern], masked: Bool = true) throws -> DeviceBuffer<UInt8> {
        try checkCall(problem)
        let (rows, nkb) = mapShape(problem)
        guard patterns.count == 1 || patterns.count == problem.heads else {
            throw AttentionError.buffer("give one pattern, or one per query head (\(problem.heads)), not \(patterns.count)")
        }
        var table: [Int32] = [], stripes: [Int32] = []
        for head in 0..<problem.heads {
            let pattern = patterns.count == 1 ? patterns[0] : patterns[head]
            var row: [Int] = [0, 0, 0, 0, stripes.count, 0]
            switch pattern {
            case .empty: break
            case .dense: row[0] = 1
            case .diagonal(let width):
                guard width >= 1 else { throw AttentionError.buffer("a diagonal's width must be at least 1, got \(width)") }
                row[0] = 2
                row[1] = width
            case let .multiDiagonal(width, lag, count):
                guard width >= 1, lag >= 1, count >= 0 else {
                    throw AttentionError.buffer("a multi-diagonal needs width and lag of at least 1 and a count of at least 0, got \(width), \(lag), \(count)")
                }
                row[0] = 3
                row[1] = min(width, nkb + problem.mapBlocks.queries)
                row[2] = min(lag, nkb + problem.mapBlocks.queries)
                row[3] = min(count, nkb + problem.mapBlocks.queries)
            case .vertical(let list):
                if let bad = list.first(where: { !(0..<nkb).contains($0) }) {
                    throw AttentionError.buffer("the stripe at key block \(bad) is outside the \(nkb) key blocks")
                }
                row[0] = 4
                row[5] = list.count
                stripes += list.map(Int32.init)
            }
            table += row.map(Int32.init)
        }
        let map = try DeviceBuffer<UInt8>(context, count: rows * nkb)
        let patternBuffer = try DeviceBuffer<Int32>(context, table), stripeBuffer = try DeviceBuffer<Int32>(context, stripes.isEmpty ? [0] : stripes)
        try core.serialized {
            _ = try core.kernel("attn_pattern_map", options: utilityOptions(problem)).launch(
                on: context.queue, global: [roundUp(nkb, 16), rows], local: [16, 1],
                arguments: [Int32(rows), Int32(problem.mapBlocks.queries), Int32(nkb), Int32(problem.heads), Int32(problem.seq), Int32(problem.keys),
                            Int32(problem.block), Int32(masked ? 1 : 0), patternBuffer, stripeBuffer, map])
        }
        return map
    }

    /// The block map of the problem's causal and window masks: every block holding a visible pair.
    public func maskMap(_ problem: AttentionProblem) throws -> DeviceBuffer<UInt8> {
        try patternMap(problem, patterns: [.dense], masked: true)
    }

    /// A block map predicted from pooled scores, as SpargeAttn predicts it: Q and K mean-pooled per block, block
    /// scores `softmax(scale q̄ k̄ᵀ)` over the key blocks (with `masked`, those holding a visible pair), and per query
    /// block the blocks `keep` selects.
    /// - Throws: ``AttentionError`` for a fraction or mass outside (0, 1] or a bad Q or K.
    public func predictedMap(_ problem: AttentionProblem, q: AttentionOperand, k: AttentionOperand, keep: BlockPrediction,
                             masked: Bool = true) throws -> DeviceBuffer<UInt8> {
        try checkCall(problem)
        try checkOperand(q, "q", problem, queries: true, output: false)
        try checkOperand(k, "k", problem, queries: false, output: false)
        let (rows, nkb) = mapShape(problem)
        let (nqb, d) = (problem.mapBlocks.queries, problem.dim)
        var topk = 0, tau = 1.0
        switch keep {
        case .topFraction(let fraction):
            guard fraction > 0, fraction <= 1 else { throw AttentionError.buffer("the top fraction must be in (0, 1], got \(fraction)") }
            topk = max(1, Int((fraction * Double(nkb)).rounded(.up)))
        case .cumulativeMass(let mass):
            guard mass > 0, mass <= 1 else { throw AttentionError.buffer("the cumulative mass must be in (0, 1], got \(mass)") }
            tau = mass
        }
        let options = utilityOptions(problem)
        let map = try DeviceBuffer<UInt8>(context, count: rows * nkb)
        try core.serialized {
            let keyRows = problem.batch * problem.keyHeads * nkb
            let pq = try core.scratch("pooled-q", count: rows * d, of: Float.self), pk = try core.scratch("pooled-k", count: keyRows * d, of: Float.self)
            let scores = try core.scratch("block-scores", count: rows * nkb, of: Float.self)
            let pool = try core.kernel("attn_pool", options: options)
            _ = try pool.launch(on: context.queue, global: [roundUp(d, 16), rows], local: [16, 1],
                                arguments: [Int32(nqb), Int32(problem.heads), Int32(problem.seq), Int32(problem.block), try argument(q.buffer),
                                            q.placement(heads: problem.heads, rows: problem.seq, dim: d), pq])
            _ = try pool.launch(on: context.queue, global: [roundUp(d, 16), keyRows], local: [16, 1],
                                arguments: [Int32(nkb), Int32(problem.keyHeads), Int32(problem.keys), Int32(problem.block), try argument(k.buffer),
                                            k.placement(heads: problem.keyHeads, rows: problem.keys, dim: d), pk])
            _ = try core.kernel("attn_predict_map", options: options).launch(
                on: context.queue, global: [roundUp(rows, 64)], local: [64],
                arguments: [Int32(rows), Int32(nqb), Int32(nkb), Int32(problem.heads), Int32(problem.group), Int32(problem.seq), Int32(problem.keys),
                            Int32(problem.block), Int32(masked ? 1 : 0), Int32(topk), Float(tau), pq, pk, scores, map])
        }
        return map
    }

    /// ``forward(_:q:k:v:o:map:lse:configuration:checkInputs:)`` with the block map given in its index form (converted
    /// on the device first).
    @discardableResult
    public func forward(_ problem: AttentionProblem, q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, o: AttentionOperand,
                        blocks: BlockIndices, lse: DeviceBuffer<Float>? = nil, configuration: Configuration? = nil,
                        checkInputs: Bool = true) throws -> Saved {
        try forward(problem, q: q, k: k, v: v, o: o, map: try blockMap(fromIndices: blocks, for: problem), lse: lse,
                    configuration: configuration, checkInputs: checkInputs)
    }
}

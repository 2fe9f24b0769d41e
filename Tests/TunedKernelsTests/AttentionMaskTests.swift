import Autotuning
import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// The block map's index form and the device mask builders against CPU references: the map/indices round trip,
/// Sparse-vDiT's per-head patterns with and without the causal and window masks, SpargeAttn-style prediction from
/// pooled scores (top fraction, cumulative mass), and attention run on the maps they build.
@Suite(.serialized) struct AttentionMaskTests {
    static var attention: Attention? { AttentionTests.attention }

    static func randomMap(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Double.random(in: 0..<1, using: &generator) < 0.4 ? 1 : 0 }
    }

    @Test func mapAndIndexFormRoundTrip() throws {
        let attention = try #require(Self.attention)
        let context = attention.context
        let problem = AttentionProblem(batch: 2, heads: 3, seq: 100, kvSeq: 150, dim: 8, mode: .blockSparse, block: 16)
        let (nqb, nkb) = problem.mapBlocks
        let rows = 2 * 3 * nqb
        var host = Self.randomMap(rows * nkb, seed: 3)
        for j in 0..<nkb { host[5 * nkb + j] = 0 }  // a query block with nothing selected
        let blocks = try attention.blockIndices(fromMap: try DeviceBuffer<UInt8>(context, host), for: problem)
        let (counts, indices) = (try blocks.counts.download(), try blocks.indices.download())
        for row in 0..<rows {
            let selected = (0..<nkb).filter { host[row * nkb + $0] != 0 }
            #expect(Int(counts[row]) == selected.count)
            #expect(indices[(row * nkb)..<((row + 1) * nkb)].map(Int.init) == selected + Array(repeating: -1, count: nkb - selected.count))
        }
        #expect(try attention.blockMap(fromIndices: blocks, for: problem).download() == host)
        // A bad index in row 7 (among its counted entries) is refused, naming the query block.
        var bad = indices
        bad[7 * nkb] = Int32(nkb)
        var badCounts = counts
        badCounts[7] = max(badCounts[7], 1)
        let wrong = BlockIndices(counts: try DeviceBuffer<Int32>(context, badCounts), indices: try DeviceBuffer<Int32>(context, bad))
        #expect(throws: AttentionError.self) { try attention.blockMap(fromIndices: wrong, for: problem) }
        do { _ = try attention.blockMap(fromIndices: wrong, for: problem) } catch { #expect("\(error)".contains("query block [0, 1, 0]"), "\(error)") }
    }

    /// The CPU reference of a pattern map.
    static func patternMap(_ problem: AttentionProblem, _ patterns: [HeadPattern], masked: Bool) -> [UInt8] {
        let (nqb, nkb) = problem.mapBlocks
        var map = [UInt8](repeating: 0, count: problem.batch * problem.heads * nqb * nkb)
        for b in 0..<problem.batch { for h in 0..<problem.heads { for i in 0..<nqb { for j in 0..<nkb {
            var keep: Bool
            switch patterns.count == 1 ? patterns[0] : patterns[h] {
            case .empty: keep = false
            case .dense: keep = true
            case .diagonal(let w): keep = abs(j - i) < w
            case let .multiDiagonal(w, lag, count): keep = (-count...count).contains { abs(j - i - $0 * lag) < w }
            case .vertical(let stripes): keep = stripes.contains(j)
            }
            if keep && masked {
                // Some visible (row, key) pair in the block.
                keep = false
                for row in (i * problem.block)..<min(problem.seq, (i + 1) * problem.block) where !keep {
                    for key in (j * problem.block)..<min(problem.keys, (j + 1) * problem.block) where
                        AttentionReference.visible(problem, nil, bh: 0, i: row, j: key) {
                        keep = true
                        break
                    }
                }
            }
            map[(((b * problem.heads) + h) * nqb + i) * nkb + j] = keep ? 1 : 0
        } } } }
        return map
    }

    @Test func headPatternsMatchTheReference() throws {
        let attention = try #require(Self.attention)
        var problem = AttentionProblem(batch: 2, heads: 5, seq: 200, kvSeq: 230, dim: 8, causal: true, window: "90,-1", mode: .blockSparse, block: 16)
        let patterns: [HeadPattern] = [.empty, .dense, .diagonal(width: 2), .multiDiagonal(width: 1, lag: 4, count: 2), .vertical(stripes: [0, 3, 14])]
        for masked in [true, false] {
            #expect(try attention.patternMap(problem, patterns: patterns, masked: masked).download() == Self.patternMap(problem, patterns, masked: masked))
        }
        problem.causal = false
        problem.window = ""
        #expect(try attention.maskMap(problem).download() == Self.patternMap(problem, [.dense], masked: true))
        problem.causal = true
        #expect(try attention.maskMap(problem).download() == Self.patternMap(problem, [.dense], masked: true))
        for (pattern, words) in [(HeadPattern.diagonal(width: 0), "width must be at least 1"), (.vertical(stripes: [15]), "outside the 15 key blocks"),
                                 (.multiDiagonal(width: 1, lag: 0, count: 1), "lag of at least 1")] {
            do {
                _ = try attention.patternMap(problem, patterns: [pattern])
                Issue.record("\(pattern) was accepted")
            } catch { #expect("\(error)".contains(words), "\(error)") }
        }
        #expect(throws: AttentionError.self) { try attention.patternMap(problem, patterns: [.dense, .dense]) }
    }

    /// Attention on a pattern map (an empty head, a diagonal, stripes) and on its index form against the reference.
    @Test func attentionOnBuiltMaps() throws {
        let attention = try #require(Self.attention)
        let problem = AttentionProblem(heads: 3, seq: 90, kvSeq: 110, dim: 16, precision: .single, causal: true, mode: .blockSparse, block: 16)
        let map = try attention.patternMap(problem, patterns: [.empty, .diagonal(width: 2), .vertical(stripes: [0, 5])])
        try AttentionTests.expectCorrect(problem, map: try map.download())
        // The index form gives the same O.
        let harness = try AttentionHarness(family: attention, problem: problem, seed: 2, map: try map.download())
        let saved = try attention.forward(problem, q: AttentionOperand(harness.q), k: AttentionOperand(harness.k), v: AttentionOperand(harness.v),
                                          o: AttentionOperand(harness.o), blocks: try attention.blockIndices(fromMap: map, for: problem))
        let check = AttentionHarness.check(try saved.o.tensor.download(), harness.reference.o, precision: .single)
        #expect(check.passed, "\(check.maxAbsError) > \(check.tolerance)")
    }

    /// Prediction from pooled scores against an fp64 reference: every entry agrees, except where the block sits on
    /// the selection's edge within fp32 rounding (a score tied with the last kept, a mass within 1e-4 of tau).
    @Test(arguments: [BlockPrediction.topFraction(0.3), .cumulativeMass(0.8), .topFraction(1)])
    func predictionMatchesTheReference(keep: BlockPrediction) throws {
        let attention = try #require(Self.attention)
        let problem = AttentionProblem(batch: 1, heads: 4, kvHeads: 2, seq: 150, kvSeq: 180, dim: 24, precision: .single, causal: true,
                                       mode: .blockSparse, block: 16)
        let harness = try AttentionHarness(family: attention, problem: problem, seed: 6)
        let map = try attention.predictedMap(problem, q: AttentionOperand(harness.q), k: AttentionOperand(harness.k), keep: keep).download()
        let (nqb, nkb) = problem.mapBlocks
        let (d, block) = (problem.dim, problem.block)
        func pooled(_ x: [Double], heads: Int, rows: Int, blocks: Int) -> [[Double]] {
            (0..<(heads * blocks)).map { r in
                let (h, n) = r.quotientAndRemainder(dividingBy: blocks)
                let range = (n * block)..<min(rows, (n + 1) * block)
                return (0..<d).map { c in range.reduce(0.0) { $0 + x[(h * rows + $1) * d + c] } / Double(range.count) }
            }
        }
        let pq = pooled(harness.inputs.q, heads: problem.heads, rows: problem.seq, blocks: nqb)
        let pk = pooled(harness.inputs.k, heads: problem.keyHeads, rows: problem.keys, blocks: nkb)
        let visible = Self.patternMap(problem, [.dense], masked: true)
        var disagreements: [String] = []
        for h in 0..<problem.heads {
            for i in 0..<nqb {
                let row = h * nqb + i
                let scores = (0..<nkb).map { j -> Double in
                    guard visible[row * nkb + j] != 0 else { return -.infinity }
                    return problem.effectiveScale * zip(pq[row], pk[(h / problem.group) * nkb + j]).reduce(0) { $0 + $1.0 * $1.1 }
                }
                let m = scores.max()!
                let e = scores.map { m == -.infinity ? 0 : exp($0 - m) }
                let sum = e.reduce(0, +)
                let p = e.map { sum > 0 ? $0 / sum : 0 }
                let order = (0..<nkb).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
                for (rank, j) in order.enumerated() {
                    let before = order.prefix(rank).reduce(0.0) { $0 + p[$1] }
                    let want: Bool, edge: Bool
                    switch keep {
                    case .topFraction(let fraction):
                        let k = max(1, Int((fraction * Double(nkb)).rounded(.up)))
                        want = p[j] > 0 && rank < k
                        edge = rank == k - 1 || rank == k || abs(p[j] - p[order[min(k, nkb - 1)]]) < 1e-5
                    case .cumulativeMass(let tau):
                        want = p[j] > 0 && before < tau
                        edge = abs(before - tau) < 1e-4
                    }
                    if (map[row * nkb + j] != 0) != want && !edge { disagreements.append("head \(h) block \(i): key block \(j)") }
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
        #expect(throws: AttentionError.self) {
            try attention.predictedMap(problem, q: AttentionOperand(harness.q), k: AttentionOperand(harness.k), keep: .topFraction(0))
        }
    }
}

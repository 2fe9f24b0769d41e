import Autotuning
import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// Attention against the fp64 CPU reference (forward and gradients): odd lengths, Lq != Lk, GQA and MQA, head
/// dimensions from 1 to 256, every mask kind, empty rows and heads, every precision, random configurations of both
/// roles' spaces; the reference's gradients against finite differences; every bad input refused with its message.
@Suite(.serialized) struct AttentionTests {
    static let attention: Attention? = Shared.context.flatMap { try? Attention(context: $0, database: .init()) }

    /// Runs the forward and backward once (with `configurations`) and checks O, the LSE and the gradients.
    static func expectCorrect(_ problem: AttentionProblem, configurations: [Configuration] = [], map: [UInt8]? = nil, seed: UInt64 = 5,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let attention = try #require(attention)
        let harness = try AttentionHarness(family: attention, problem: problem, seed: seed, map: map)
        try harness.reset()
        _ = try harness.launch(configurations, role: nil)
        try attention.context.queue.finish()
        let check = try harness.check()
        let failing = check.parts.filter { !$0.value.passed }.map { "\($0.key) \($0.value.maxAbsError) > \($0.value.tolerance)" }
        #expect(check.passed, "\(problem) \(configurations): \(failing)", sourceLocation: sourceLocation)
    }

    /// (Lq, Lk, D, Hq, Hkv, causal): lengths of 1, 63, 64, 65 and 1000, Lq != Lk both ways, GQA 8/2 and MQA.
    static let shapes: [(Int, Int, Int, Int, Int, Bool)] = [
        (1, 1, 1, 1, 1, false), (63, 65, 40, 8, 2, true), (64, 64, 64, 2, 2, false), (65, 63, 80, 4, 1, true),
        (1, 65, 128, 8, 2, false), (65, 1, 256, 2, 1, true), (1000, 1000, 40, 1, 1, true),
    ]

    @Test(arguments: Attention.formats)
    func oddShapesGQAAndCausal(precision: ElementFormat) throws {
        // Every shape in fp16; in fp32 and bfloat16 (whose storage paths the shapes share) the smallest, a GQA one and
        // D = 256. The 1000-row case at batch 1 (the fp64 reference of a debug build is slow).
        for (lq, lk, d, hq, hkv, causal) in Self.shapes where precision == .half || [1, 40, 256].contains(d) {
            try Self.expectCorrect(AttentionProblem(batch: lq < 1000 ? 2 : 1, heads: hq, kvHeads: hkv, seq: lq, kvSeq: lk, dim: d, precision: precision, causal: causal))
        }
    }

    /// Sliding windows (both sides, one side unbounded, with causal), softcap, a given scale, and causal with Lq > Lk
    /// (the first rows see no key: O 0, LSE -inf, zero gradients).
    @Test func masksSoftcapAndScale() throws {
        let cases = [
            AttentionProblem(heads: 2, seq: 70, kvSeq: 90, dim: 24, window: "10,5"),
            AttentionProblem(heads: 2, seq: 70, kvSeq: 90, dim: 24, causal: true, window: "16,-1"),
            AttentionProblem(heads: 2, seq: 70, dim: 24, window: "-1,0", softcap: 2, scale: 0.5),
            AttentionProblem(heads: 4, kvHeads: 2, seq: 100, kvSeq: 30, dim: 16, precision: .single, causal: true, softcap: 30),
            AttentionProblem(heads: 1, seq: 33, kvSeq: 33, dim: 7, window: "0,0"),
        ]
        for problem in cases { try Self.expectCorrect(problem) }
    }

    /// Block maps of 16, 32, 64 and 128, with causal and window masks; a map with an empty query block and an empty head.
    @Test func blockSparseMaps() throws {
        for (block, causal) in [(16, false), (32, true), (64, false), (128, true)] {
            try Self.expectCorrect(AttentionProblem(batch: 2, heads: 2, seq: 150, kvSeq: 170, dim: 32, causal: causal, mode: .blockSparse,
                                                    block: block, sparsity: 0.6))
        }
        var problem = AttentionProblem(heads: 3, seq: 80, kvSeq: 96, dim: 16, window: "40,8", mode: .blockSparse, block: 16)
        var map = AttentionHarness.randomMap(problem, seed: 9)
        let (nqb, nkb) = problem.mapBlocks
        for j in 0..<nkb { map[(0 * nqb + 2) * nkb + j] = 0 }  // head 0, query block 2: nothing selected
        for index in (1 * nqb * nkb)..<(2 * nqb * nkb) { map[index] = 0 }  // head 1: an empty map
        try Self.expectCorrect(problem, map: map)
        problem.precision = .single
        try Self.expectCorrect(problem, map: map)
    }

    /// Random valid configurations of each role's spaces (forward: key splits, packed heads, work-groups, vector widths,
    /// the decode variant; backward: key splits...), dense and block-sparse, on odd sizes.
    @Test func randomConfigurationsOfBothSpaces() throws {
        let attention = try #require(Self.attention)
        let problems = [AttentionProblem(batch: 1, heads: 4, kvHeads: 2, seq: 37, kvSeq: 141, dim: 20, causal: true),
                        AttentionProblem(heads: 2, seq: 3, kvSeq: 300, dim: 48, precision: .single),
                        AttentionProblem(heads: 2, seq: 96, kvSeq: 100, dim: 8, mode: .blockSparse, block: 32, sparsity: 0.5)]
        var generator = SplitMix64(seed: 21)
        for problem in problems {
            for _ in 0..<2 {
                let chosen = Attention.roles.map { role in
                    let spaces = attention.spaces(for: problem, role: role, given: [:])
                    return spaces[Int(generator.next() % UInt64(spaces.count))].randomConfiguration(using: &generator)!
                }
                try Self.expectCorrect(problem, configurations: chosen)
            }
        }
    }

    /// The reference's gradients against central finite differences of its loss sum(O * dO) (fp64), on a tiny
    /// problem with GQA, causal, window and softcap.
    @Test func referenceGradientsMatchFiniteDifferences() {
        let problem = AttentionProblem(heads: 2, kvHeads: 1, seq: 5, kvSeq: 6, dim: 3, precision: .single, causal: true, window: "3,-1", softcap: 1.5)
        var generator = SplitMix64(seed: 4)
        func values(_ count: Int) -> [Double] { (0..<count).map { _ in Double.random(in: -1...1, using: &generator) } }
        let inputs = AttentionReference.Inputs(q: values(2 * 5 * 3), k: values(6 * 3), v: values(6 * 3), dO: values(2 * 5 * 3), map: nil)
        let forward = AttentionReference.forward(problem, inputs)
        let gradients = AttentionReference.backward(problem, inputs, forward: forward)
        func loss(_ inputs: AttentionReference.Inputs) -> Double {
            zip(AttentionReference.forward(problem, inputs).o, inputs.dO).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let h = 1e-6
        for (name, path, analytic) in [("q", \AttentionReference.Inputs.q, gradients.dQ), ("k", \.k, gradients.dK), ("v", \.v, gradients.dV)] {
            for index in inputs[keyPath: path].indices {
                var plus = inputs, minus = inputs
                plus[keyPath: path][index] += h
                minus[keyPath: path][index] -= h
                let numeric = (loss(plus) - loss(minus)) / (2 * h)
                #expect(abs(numeric - analytic[index]) < 1e-6, "d\(name)[\(index)]: \(numeric) by differences, \(analytic[index]) by the reference")
            }
        }
    }

    /// Q, K, V, O and the gradients in PyTorch's [B, L, H, D] layout through strides give the contiguous result.
    @Test func stridedOperandsMatchContiguous() throws {
        let attention = try #require(Self.attention)
        let context = attention.context
        let problem = AttentionProblem(batch: 2, heads: 4, kvHeads: 2, seq: 33, kvSeq: 45, dim: 24, precision: .single, causal: true)
        let harness = try AttentionHarness(family: attention, problem: problem, seed: 8)
        // [B, H, L, D] -> [B, L, H, D] on the host.
        func relayout(_ x: [Double], heads: Int, rows: Int) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            let d = problem.dim
            for b in 0..<problem.batch { for h in 0..<heads { for i in 0..<rows { for c in 0..<d {
                out[((b * rows + i) * heads + h) * d + c] = Float(x[((b * heads + h) * rows + i) * d + c])
            } } } }
            return out
        }
        func operand(_ values: [Float], heads: Int, rows: Int) throws -> AttentionOperand {
            let d = problem.dim
            return AttentionOperand(try DeviceTensor(context, values, format: .single), strides: (rows * heads * d, d, heads * d))
        }
        let (hq, hk, lq, lk) = (problem.heads, problem.keyHeads, problem.seq, problem.keys)
        let q = try operand(relayout(harness.inputs.q, heads: hq, rows: lq), heads: hq, rows: lq)
        let k = try operand(relayout(harness.inputs.k, heads: hk, rows: lk), heads: hk, rows: lk)
        let v = try operand(relayout(harness.inputs.v, heads: hk, rows: lk), heads: hk, rows: lk)
        let dO = try operand(relayout(harness.inputs.dO, heads: hq, rows: lq), heads: hq, rows: lq)
        let o = try operand([Float](repeating: .nan, count: problem.queryRows * problem.dim), heads: hq, rows: lq)
        let dQ = try operand([Float](repeating: .nan, count: problem.queryRows * problem.dim), heads: hq, rows: lq)
        let dK = try operand([Float](repeating: .nan, count: problem.batch * hk * lk * problem.dim), heads: hk, rows: lk)
        let dV = try operand([Float](repeating: .nan, count: problem.batch * hk * lk * problem.dim), heads: hk, rows: lk)
        let saved = try attention.forward(problem, q: q, k: k, v: v, o: o)
        try attention.backward(problem, q: q, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dK, dV: dV)
        let gradients = harness.referenceGradients
        for (name, got, want, heads, rows) in [("o", o, harness.reference.o, hq, lq), ("dQ", dQ, gradients.dQ, hq, lq),
                                               ("dK", dK, gradients.dK, hk, lk), ("dV", dV, gradients.dV, hk, lk)] {
            let check = AttentionHarness.check(try got.tensor.download(), relayout(want, heads: heads, rows: rows).map(Double.init), precision: .single)
            #expect(check.passed, "\(name): \(check.maxAbsError) > \(check.tolerance)")
        }
    }

    /// The CPU's kinds of configuration (one work-item, 16-wide vectors, key splits, packed query heads of a group; the
    /// decode kernel) and a multi-work-item one under oclgrind: no invalid access, race or uninitialized value.
    @Test func cpuConfigurationsRunCleanUnderOclgrind() throws {
        let forward = #"{"variant":"forward","BQ":16,"BK":16,"VW":16,"MR":1,"NR":4,"PMR":4,"PNV":1,"WG":1,"KVS":2,"PACK":1}"#
        let backward = #"{"variant":"backward","BQ":16,"BK":32,"VW":16,"MR":2,"NR":4,"PMR":4,"PNV":1,"WG":1,"KS":2}"#
        try OclgrindTests.expectClean(["verify", "attention", "--heads", "4", "--kv-heads", "2", "--seq", "3", "--kv-seq", "45", "--dim", "9",
                                       "--causal", "--softcap", "4", "--config", forward, "--config", backward])
        let decode = #"{"variant":"decode","BK":32,"VW":16,"KVS":2,"RB":2}"#
        try OclgrindTests.expectClean(["verify", "attention", "--heads", "6", "--kv-heads", "2", "--seq", "2", "--kv-seq", "70", "--dim", "20",
                                       "--window", "40,0", "--config", decode])
        let sparse = #"{"variant":"forward","BQ":16,"BK":16,"VW":4,"MR":2,"NR":8,"PMR":8,"PNV":2,"WG":4,"KVS":1,"PACK":0}"#
        try OclgrindTests.expectClean(["verify", "attention", "--heads", "2", "--seq", "40", "--kv-seq", "35", "--dim", "8", "--mode", "block-sparse",
                                       "--block", "32", "--config", sparse])
    }

    /// Bad problems and bad calls are thrown with a message naming what is wrong.
    @Test func badInputsAreRefused() throws {
        let attention = try #require(Self.attention)
        let context = attention.context
        for (problem, words) in [(AttentionProblem(heads: 6, kvHeads: 4, seq: 8, dim: 8), "multiple of kv-heads"),
                                 (AttentionProblem(heads: 1, seq: 8, dim: 0), "dim must be at least 1"),
                                 (AttentionProblem(heads: 1, seq: 8, dim: 257), "exceeds 256"),
                                 (AttentionProblem(heads: 1, seq: 8, dim: 8, mode: .blockSparse, block: 40), "multiple of 16"),
                                 (AttentionProblem(heads: 1, seq: 8, dim: 8, window: "3"), "--window must be L,R"),
                                 (AttentionProblem(heads: 1, seq: 8, dim: 8, softcap: -1), "softcap")] {
            #expect(throws: ProblemError.self) { try attention.check(problem) }
            do { try attention.check(problem) } catch { #expect("\(error)".contains(words), "\(error)") }
        }
        let problem = AttentionProblem(heads: 2, seq: 16, dim: 8, precision: .single)
        func tensor(_ count: Int, format: ElementFormat = .single) throws -> AttentionOperand {
            AttentionOperand(try DeviceTensor(context, [Float](repeating: 0.5, count: count), format: format))
        }
        let (q, k, v, o) = (try tensor(256), try tensor(256), try tensor(256), try tensor(256))
        func refusal(_ words: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("no error; expected one saying \(words)")
            } catch {
                #expect("\(error)".contains(words), "\(error)")
            }
        }
        refusal("half tensor") { try attention.forward(problem, q: try tensor(256, format: .half), k: k, v: v, o: o) }
        refusal("holds 200 elements") { try attention.forward(problem, q: try tensor(200), k: k, v: v, o: o) }
        refusal("two elements at one place") { try attention.forward(problem, q: q, k: k, v: v, o: AttentionOperand(o.tensor, strides: (0, 8, 8))) }
        refusal("o is the same buffer as q") { try attention.forward(problem, q: q, k: k, v: v, o: q) }
        refusal("needs a block map") {
            var sparse = problem
            sparse.mode = .blockSparse
            try attention.forward(sparse, q: q, k: k, v: v, o: o)
        }
        refusal("given to dense attention") { try attention.forward(problem, q: q, k: k, v: v, o: o, map: try DeviceBuffer<UInt8>(context, [1])) }
        let bad = try tensor(256)
        try bad.tensor.buffer.asFloat().upload([.nan], at: 77)
        refusal("q holds NaN or infinity (first in row [0, 0, 9])") { try attention.forward(problem, q: bad, k: k, v: v, o: o) }
        let saved = try attention.forward(problem, q: q, k: k, v: v, o: o)
        let (dO, dQ, dK, dV) = (try tensor(256), try tensor(256), try tensor(256), try tensor(256))
        refusal("another q buffer") { try attention.backward(problem, q: bad, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dK, dV: dV) }
        refusal("computed for") {
            var other = problem
            other.causal = true
            try attention.backward(other, q: q, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dK, dV: dV)
        }
        refusal("dQ is the same buffer as dK") { try attention.backward(problem, q: q, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dQ, dV: dV) }
        refusal("dV is the same buffer as dO") { try attention.backward(problem, q: q, k: k, v: v, forward: saved, dO: dO, dQ: dQ, dK: dK, dV: dO) }
    }
}

extension AnyDeviceBuffer {
    /// The buffer as a Float buffer (tests poke single values).
    func asFloat() throws -> DeviceBuffer<Float> { try #require(self as? DeviceBuffer<Float>) }
}

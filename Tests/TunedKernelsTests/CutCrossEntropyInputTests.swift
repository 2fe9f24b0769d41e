import Autotuning
import Foundation
import OpenCLRuntime
import Synchronization
import Testing
@testable import TunedKernels

/// Cut cross-entropy through its Swift API under the inputs real training code produces: masked vocabulary
/// entries, non-finite values, an ignore index that is a real class, saved losses of other calls, aliased
/// outputs, unchecked targets. Each result is a correct value (against the fp64 reference) or a thrown error.
@Suite(.serialized) struct CutCrossEntropyInputTests {
    static var cce: CutCrossEntropy? { CutCrossEntropyTests.cce }

    /// Host inputs of one problem, run through the API and the reference.
    struct Case {
        var problem: CCEProblem
        var e: [Float], c: [Float], bias: [Float], targets: [Int32]
        var gradOutput: [Float]

        init(_ problem: CCEProblem, seed: UInt64 = 11, ignoredFraction: Double = 0.1) {
            self.problem = problem
            (e, c, bias, targets) = CCEHarness.data(problem, seed: seed, ignoredFraction: ignoredFraction)
            gradOutput = problem.reduction == .none ? [Float](repeating: 1, count: problem.rows) : [1]
        }

        struct Result {
            var total: Float, valid: Int32, dE: [Float], dC: [Float], dB: [Float]?
        }

        /// The loss and gradients through the API.
        func run(_ cce: CutCrossEntropy, checkTargets: Bool = true) throws -> Result {
            let context = cce.context, precision = problem.precision
            let (n, v, d) = (problem.tokens, problem.vocab, problem.dim)
            let e = try DeviceTensor(context, self.e, format: precision, shape: [n, d]), c = try DeviceTensor(context, self.c, format: precision, shape: [v, d])
            let bias = problem.bias ? try DeviceTensor(context, self.bias, format: precision) : nil
            let targets = try DeviceBuffer<Int32>(context, self.targets), grad = try DeviceBuffer<Float>(context, gradOutput)
            let de = try DeviceTensor(context, format: precision, shape: [n, d]), dc = try DeviceTensor(context, format: precision, shape: [v, d])
            let db = problem.bias ? try DeviceTensor(context, format: precision, shape: [v]) : nil
            let loss = try cce.loss(problem, embeddings: e, classifier: c, bias: bias, targets: targets, checkTargets: checkTargets)
            try cce.gradients(problem, embeddings: e, classifier: c, bias: bias, targets: targets, loss: loss, gradOutput: grad,
                              dEmbeddings: de, dClassifier: dc, dBias: db)
            return Result(total: try loss.value(), valid: try loss.valid.download(count: 1)[0],
                          dE: try de.download(), dC: try dc.download(), dB: try db?.download())
        }

        var inputs: CCEReference.Inputs {
            CCEReference.Inputs(embeddings: e.map(Double.init), classifier: c.map(Double.init), bias: bias.map(Double.init), targets: targets)
        }
    }

    /// Largest |got - want| over entries where both are finite, and whether got is finite exactly where want is.
    static func compare(_ got: [Float], _ want: [Double]) -> (error: Double, sameFiniteness: Bool) {
        var worst = 0.0, same = got.count == want.count
        for (g, w) in zip(got, want) {
            if g.isFinite != w.isFinite { same = false } else if w.isFinite { worst = max(worst, abs(Double(g) - w)) }
        }
        return (worst, same)
    }

    /// Checks `result` against the fp64 reference of `test` (filtered tolerances where the problem filters).
    static func expectMatchesReference(_ test: Case, _ result: Case.Result, sourceLocation: SourceLocation = #_sourceLocation) {
        let forward = CCEReference.forward(test.problem, test.inputs)
        let gradients = CCEReference.backward(test.problem, test.inputs, forward: forward, gradOutput: test.gradOutput.map(Double.init))
        let tolerance = CCEReference.tolerances(test.problem, inputs: test.inputs, reference: forward, gradients: gradients, filtered: true)
        #expect(Int(result.valid) == forward.valid, "valid rows", sourceLocation: sourceLocation)
        if forward.total.isFinite {
            #expect(abs(Double(result.total) - forward.total) <= tolerance.lossRelative * abs(forward.total),
                    "loss \(result.total) against \(forward.total)", sourceLocation: sourceLocation)
        } else {
            #expect(Double(result.total) == forward.total, "loss \(result.total) against \(forward.total)", sourceLocation: sourceLocation)
        }
        for (name, got, want, limit) in [("dE", result.dE, gradients.embeddings, tolerance.dE), ("dC", result.dC, gradients.classifier, tolerance.dC),
                                         ("db", result.dB ?? [], gradients.bias, tolerance.db)] {
            let (error, same) = compare(got, want)
            #expect(same && error <= limit, "\(name): error \(error) (tolerance \(limit)), finite where the reference is: \(same)",
                    sourceLocation: sourceLocation)
        }
    }

    /// An ignore index that is a real class id (a pad token) with the sorted vocabulary: the targets equal to it
    /// are ignored, and no other target is (before, the target whose sorted position equalled it was dropped).
    @Test func sortedVocabularyWithAnIgnoreIndexThatIsAClass() throws {
        let cce = try #require(Self.cce)
        for seed: UInt64 in [1, 3, 4] {
            let problem = CCEProblem(tokens: 200, vocab: 257, dim: 33, precision: .single, ignoreIndex: 5, sortVocabulary: true, data: .uniform)
            let harness = try CCEHarness(family: cce, problem: problem, seed: seed, ignoredFraction: 0.1)
            try harness.reset()
            _ = try harness.launch(nil)
            let check = try harness.check()
            #expect(check.passed, "seed \(seed): \(check.parts.filter { !$0.value.passed })")
            #expect(try harness.lastLoss!.valid.download(count: 1)[0] == Int32(harness.reference.valid))
        }
        // The same through the API on the data of the report (11 valid rows of 12).
        var test = Case(CCEProblem(tokens: 12, vocab: 9, dim: 4, precision: .single, ignoreIndex: 5, filter: "off", sortVocabulary: true, data: .uniform))
        test.targets = [5, 0, 1, 2, 3, 4, 6, 7, 8, 0, 1, 2]
        let result = try test.run(cce)
        #expect(result.valid == 11)
        Self.expectMatchesReference(test, result)
    }

    /// A -inf bias masks its entry: without smoothing the loss and gradients are those of the other entries
    /// (finite), with smoothing the loss is +inf (PyTorch's definition) and the gradients stay finite; in every
    /// precision, filtered and exact, in id order and sorted.
    @Test(arguments: CutCrossEntropy.formats)
    func negativeInfinityBiasMasksAnEntry(precision: ElementFormat) throws {
        let cce = try #require(Self.cce)
        for (smoothing, filter, sorted) in [(0.0, "auto", false), (0.1, "off", true)] {
            var test = Case(CCEProblem(tokens: 130, vocab: 70, dim: 20, precision: precision, bias: true, labelSmoothing: smoothing,
                                       filter: filter, sortVocabulary: sorted, data: .uniform))
            test.bias[3] = -.infinity
            test.bias[40] = -.infinity
            test.targets = test.targets.map { $0 == 3 || $0 == 40 ? 4 : $0 }
            let result = try test.run(cce)
            #expect(smoothing == 0 ? result.total.isFinite : result.total == .infinity, "smoothing \(smoothing): loss \(result.total)")
            #expect(result.dE.allSatisfy(\.isFinite) && result.dC.allSatisfy(\.isFinite) && result.dB!.allSatisfy(\.isFinite))
            #expect(smoothing != 0 || (result.dB![3] == 0 && result.dC[3 * 20..<4 * 20].allSatisfy { $0 == 0 }))
            Self.expectMatchesReference(test, result)
        }
    }

    /// NaN or infinity in E, C, the bias or the incoming gradient reaches the gradients with the default filter
    /// exactly where it does with the filter off (before, every tile was skipped as small and dE, dC were 0).
    @Test(arguments: [ElementFormat.half, .bfloat16])
    func nonFiniteInputsReachTheGradients(precision: ElementFormat) throws {
        let cce = try #require(Self.cce)
        let (n, v, d) = (256, 512, 64)
        let poisons: [(String, (inout Case) -> Void)] = [
            ("NaN in E", { $0.e[37 * d + 5] = .nan; $0.targets[37] = 1 }),
            ("inf in an ignored row of E", { $0.e[40 * d + 1] = .infinity; $0.targets[40] = -100 }),
            ("inf in C", { $0.c[300 * d + 2] = .infinity }),
            ("NaN in the bias", { $0.bias[77] = .nan }),
            ("NaN in gradOutput", { $0.gradOutput = [.nan] }),
        ]
        for (name, poison) in poisons {
            var masks: [String: [[Bool]]] = [:]
            for filter in ["auto", "off"] {
                var test = Case(CCEProblem(tokens: n, vocab: v, dim: d, precision: precision, bias: true, filter: filter, data: .trained))
                poison(&test)
                let result = try test.run(cce)
                if name != "NaN in gradOutput" && !name.contains("ignored") { #expect(!result.total.isFinite, "\(name): loss \(result.total)") }
                masks[filter] = [result.dE.map(\.isFinite), result.dC.map(\.isFinite)]
            }
            #expect(masks["off"]![0].contains(false) || masks["off"]![1].contains(false), "\(name): the exact gradients hold a non-finite value")
            let differing = zip(masks["auto"]!.joined(), masks["off"]!.joined()).filter { $0 != $1 }.count
            #expect(differing == 0, "\(name): \(differing) gradient entries are finite in one of the filtered and exact results only")
        }
    }

    /// A saved loss refuses every call it does not match: another vocabulary, shift, order, reduction, family
    /// (context) or input buffer.
    @Test func lossOfAnotherCallIsRefused() throws {
        let cce = try #require(Self.cce)
        let context = cce.context
        let problem = CCEProblem(tokens: 6, vocab: 10, dim: 4, precision: .single)
        func buffer(_ count: Int) throws -> DeviceTensor { try DeviceTensor(context, (0..<count).map { Float($0 % 7) / 7 }, format: .single) }
        let (e, c, bigC) = (try buffer(24), try buffer(40), try buffer(80))
        let targets = try DeviceBuffer<Int32>(context, [0, 1, 2, 3, 4, 5]), one = try DeviceBuffer<Float>(context, [1])
        let (de, dc, bigDC) = (try buffer(24), try buffer(40), try buffer(80))
        let loss = try cce.loss(problem, embeddings: e, classifier: c, targets: targets)
        var other = problem
        other.vocab = 20
        #expect { try cce.gradients(other, embeddings: e, classifier: bigC, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: bigDC) }
            throws: { "\($0)".contains("the Loss was computed for 6x10x4 single, not for 6x20x4 single") }
        for change in [{ (p: inout CCEProblem) in p.shift = true }, { $0.sortVocabulary = true }, { $0.reduction = .sum }, { $0.zLoss = 0.1 },
                       { $0.ignoreIndex = 3 }] {
            var changed = problem
            change(&changed)
            #expect { try cce.gradients(changed, embeddings: e, classifier: c, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc) }
                throws: { "\($0)".contains("the Loss was computed for") }
        }
        var ignoring = problem
        ignoring.ignoreIndex = 3
        #expect(ignoring.description == "6x10x4 single ignore-index 3", "a problem's description names every option that is not its default")
        let otherE = try buffer(24)
        #expect { try cce.gradients(problem, embeddings: otherE, classifier: c, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc) }
            throws: { "\($0)".contains("another embeddings buffer") }
        // Another family on the same context, then another context.
        let second = try CutCrossEntropy(context: context, database: .init())
        #expect { try second.gradients(problem, embeddings: e, classifier: c, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc) }
            throws: { "\($0)".contains("another CutCrossEntropy") }
        let elsewhere = try Context()
        let foreignOne = try DeviceBuffer<Float>(elsewhere, [1])
        #expect { try cce.gradients(problem, embeddings: e, classifier: c, targets: targets, loss: loss, gradOutput: foreignOne, dEmbeddings: de, dClassifier: dc) }
            throws: { "\($0)".contains("gradOutput belongs to another context") }
        try cce.gradients(problem, embeddings: e, classifier: c, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc)
        try context.queue.finish()
    }

    /// An output that is an input or another output is refused (before, dC came out wrong).
    @Test func aliasedOutputsAreRefused() throws {
        let cce = try #require(Self.cce)
        let context = cce.context
        let problem = CCEProblem(tokens: 8, vocab: 8, dim: 4, precision: .single, bias: true)
        func buffer(_ count: Int) throws -> DeviceTensor { try DeviceTensor(context, (0..<count).map { Float($0 % 5) / 5 }, format: .single) }
        let (e, c, b) = (try buffer(32), try buffer(32), try buffer(8))
        let targets = try DeviceBuffer<Int32>(context, [0, 1, 2, 3, 4, 5, 6, 7]), oneTensor = try buffer(8)
        let one = try #require(oneTensor.buffer as? DeviceBuffer<Float>)
        let (de, dc, db) = (try buffer(32), try buffer(32), try buffer(8))
        let loss = try cce.loss(problem, embeddings: e, classifier: c, bias: b, targets: targets)
        let cases: [(DeviceTensor, DeviceTensor, DeviceTensor, String)] = [
            (e, dc, db, "dEmbeddings is the same buffer as embeddings"), (de, c, db, "dClassifier is the same buffer as classifier"),
            (de, e, db, "dClassifier is the same buffer as embeddings"), (de, de, db, "dEmbeddings is the same buffer as dClassifier"),
            (de, dc, b, "dBias is the same buffer as bias"), (de, dc, oneTensor, "dBias is the same buffer as gradOutput"),
        ]
        for (dE, dC, dB, message) in cases {
            #expect { try cce.gradients(problem, embeddings: e, classifier: c, bias: b, targets: targets, loss: loss, gradOutput: one,
                                        dEmbeddings: dE, dClassifier: dC, dBias: dB) } throws: { "\($0)".contains(message) }
        }
        try cce.gradients(problem, embeddings: e, classifier: c, bias: b, targets: targets, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc, dBias: db)
        try context.queue.finish()
    }

    /// Unchecked targets outside [0, V) give a meaningless loss for their rows, never a trap or an access outside
    /// the buffers (sorted or not); the valid rows keep theirs.
    @Test func uncheckedTargetsOutsideTheVocabularyDoNotTrap() throws {
        let cce = try #require(Self.cce)
        for sorted in [false, true] {
            var test = Case(CCEProblem(tokens: 20, vocab: 9, dim: 5, precision: .single, filter: "off", sortVocabulary: sorted, data: .uniform))
            test.targets[3] = 9
            test.targets[7] = 1 << 30
            test.targets[11] = -7
            let result = try test.run(cce, checkTargets: false)
            #expect(result.valid == 20 - test.targets.filter { $0 == -100 }.count)
            #expect(result.dE.count == 100 && result.dC.count == 45)
        }
    }

    /// The call API checks what a call needs, not the harness's host memory: a Gemma-sized problem (8192 tokens,
    /// vocabulary 256,000, dim 3072) needs tens of GiB of host memory for a harness's fp64 reference, which a call
    /// never allocates.
    @Test func callsDoNotCheckTheHarnessHostMemory() throws {
        let cce = try #require(Self.cce)
        let gemma = CCEProblem(tokens: 8192, vocab: 256_000, dim: 3072, precision: .half)
        let needs = try CutCrossEntropy.needs(gemma)
        #expect(needs.hostBytes > 16 << 30)
        let canned = ResourceNeeds(deviceBuffers: [1024], hostBytes: needs.hostBytes)
        #expect { try canned.check(on: cce.context.device, hostAvailable: 1 << 30) } throws: { "\($0)".contains("of host memory") }
        try canned.checkDevice(cce.context.device)
        // A call whose harness would need more host memory than this machine has (2 tokens over a vocabulary of
        // 2^25 entries: 64 GiB of reference logits) runs: its device buffers are 64 MiB.
        let wide = CCEProblem(tokens: 2, vocab: 1 << 25, dim: 1, precision: .half, filter: "off")
        try #require(try CutCrossEntropy.needs(wide).hostBytes > ResourceNeeds.availableHostBytes())
        let context = cce.context
        let e = try DeviceTensor(context, [0.5, -0.25], format: .half), c = try DeviceTensor(context, format: .half, shape: [1 << 25])
        try c.fill(0)
        let loss = try cce.loss(wide, embeddings: e, classifier: c, targets: try DeviceBuffer<Int32>(context, [3, 7]))
        // Every logit is 0: the loss of each row is log V.
        #expect(abs(Double(try loss.value()) - log(Double(1 << 25))) < 1e-3)
    }

    /// Calls from several threads on one family each get their own target check (its scratch is shared under
    /// one lock): a bad target throws in its own call only.
    @Test func concurrentTargetChecksDoNotMix() throws {
        let cce = try #require(Self.cce)
        let context = cce.context
        let problem = CCEProblem(tokens: 5, vocab: 7, dim: 3, precision: .single, filter: "off")
        let e = try DeviceTensor(context, format: .single, shape: [5, 3]), c = try DeviceTensor(context, format: .single, shape: [7, 3])
        try e.fill(0.5)
        try c.fill(0.25)
        let good = try DeviceBuffer<Int32>(context, [0, 6, -100, 3, 1]), bad = try DeviceBuffer<Int32>(context, [0, 6, -100, 7, 1])
        let outcomes = Mutex([Bool?](repeating: nil, count: 16))
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let threw = (try? cce.loss(problem, embeddings: e, classifier: c, targets: index % 2 == 0 ? good : bad)) == nil
            outcomes.withLock { $0[index] = threw }
        }
        #expect(outcomes.withLock { $0 } == (0..<16).map { $0 % 2 == 1 })
    }

    /// A loss computed into the buffers of an earlier one allocates nothing and gives the same values.
    @Test func lossReusesTheBuffersItIsGiven() throws {
        let cce = try #require(Self.cce)
        let test = Case(CCEProblem(tokens: 40, vocab: 50, dim: 8, precision: .single, filter: "off", data: .uniform))
        let context = cce.context, problem = test.problem
        let e = try DeviceTensor(context, test.e, format: .single), c = try DeviceTensor(context, test.c, format: .single)
        let targets = try DeviceBuffer<Int32>(context, test.targets)
        let first = try cce.loss(problem, embeddings: e, classifier: c, targets: targets, checkTargets: false)
        let value = try first.value()
        let allocated = context.memory.currentBytes
        let second = try cce.loss(problem, embeddings: e, classifier: c, targets: targets, checkTargets: false, reusing: first)
        #expect(second === first && context.memory.currentBytes == allocated)
        #expect(try second.value() == value)
        var larger = problem
        larger.tokens = 80
        let moreTargets = try DeviceBuffer<Int32>(context, test.targets + test.targets)
        let moreE = try DeviceTensor(context, test.e + test.e, format: .single)
        #expect { try cce.loss(larger, embeddings: moreE, classifier: c, targets: moreTargets, reusing: first) } throws: { "\($0)".contains("too small") }
        // A loss call into it that fails (a bad target) leaves it refused by the gradients until the next good one.
        let bad = try DeviceBuffer<Int32>(context, test.targets.map { _ in Int32(problem.vocab) })
        #expect(throws: CCEError.self) { try cce.loss(problem, embeddings: e, classifier: c, targets: bad, reusing: first) }
        let dE = try DeviceTensor(context, format: .single, shape: [test.e.count]), dC = try DeviceTensor(context, format: .single, shape: [test.c.count])
        let one = try DeviceBuffer<Float>(context, [1])
        #expect { try cce.gradients(problem, embeddings: e, classifier: c, targets: targets, loss: first, gradOutput: one, dEmbeddings: dE, dClassifier: dC) }
            throws: { "\($0)".contains("no complete result") }
        _ = try cce.loss(problem, embeddings: e, classifier: c, targets: targets, reusing: first)
        try cce.gradients(problem, embeddings: e, classifier: c, targets: targets, loss: first, gradOutput: one, dEmbeddings: dE, dClassifier: dC)
        try context.queue.finish()
    }
}

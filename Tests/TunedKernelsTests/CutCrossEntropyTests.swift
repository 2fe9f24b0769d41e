import Autotuning
import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// Cut cross-entropy against the fp64 CPU reference: odd shapes, every option, every storage precision, both
/// gradient modes (exact, filtered), and every bad input refused with its message.
@Suite(.serialized) struct CutCrossEntropyTests {
    static let cce: CutCrossEntropy? = Shared.context.flatMap { try? CutCrossEntropy(context: $0, database: .init()) }

    /// Runs the forward and backward once on the harness's data (20% of targets ignored) and checks every part.
    static func expectCorrect(_ problem: CCEProblem, configurations: [Configuration] = [], seed: UInt64 = 3, family: CutCrossEntropy? = nil,
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let cce = try #require(family ?? cce)
        let harness = try CCEHarness(family: cce, problem: problem, seed: seed, ignoredFraction: 0.2)
        try harness.reset()
        _ = try harness.launch(configurations, role: nil)
        try cce.context.queue.finish()
        let check = try harness.check()
        let failing = check.parts.filter { !$0.value.passed }.map { "\($0.key) \($0.value.maxAbsError) > \($0.value.tolerance)" }
        #expect(check.passed, "\(problem): \(failing)",
                sourceLocation: sourceLocation)
    }

    static let shapes: [(Int, Int, Int)] = [(256, 512, 128), (252, 507, 123), (1, 3, 1), (1000, 1031, 67)]

    @Test(arguments: CutCrossEntropy.formats)
    func plainMeanOnOddShapesExact(precision: ElementFormat) throws {
        for (n, v, d) in Self.shapes {
            try Self.expectCorrect(CCEProblem(tokens: n, vocab: v, dim: d, precision: precision, filter: "off", data: .uniform))
        }
    }

    /// Bias, softcap 20, shift, z-loss and label smoothing together, with every reduction.
    @Test(arguments: CCEReduction.allCases)
    func everyOptionTogether(reduction: CCEReduction) throws {
        for (n, v, d) in [(252, 507, 123), (1000, 1031, 67)] {
            for precision in CutCrossEntropy.formats {
                try Self.expectCorrect(CCEProblem(tokens: n, vocab: v, dim: d, precision: precision, bias: true, softcap: 20, shift: true,
                                                  zLoss: 1e-3, labelSmoothing: 0.1, reduction: reduction, filter: "off", data: .uniform))
            }
        }
    }

    /// A peaked softmax (the trained-like data) with the default filter (fp16, bfloat16) or a threshold (fp32):
    /// tiles are skipped and the result stays within the filtered tolerance.
    @Test(arguments: CutCrossEntropy.formats)
    func peakedSoftmaxFiltered(precision: ElementFormat) throws {
        let filter = precision == .single ? "1e-5" : "auto"
        for (n, v, d) in [(256, 512, 128), (1000, 1031, 67)] {
            let problem = CCEProblem(tokens: n, vocab: v, dim: d, precision: precision, bias: true, filter: filter, data: .trained)
            try Self.expectCorrect(problem)
        }
        let cce = try #require(Self.cce)
        // At D = 1024 the entries outside a token's few are about N(0, 0.9): below 1e-5 after the softmax.
        let harness = try CCEHarness(family: cce, problem: CCEProblem(tokens: 256, vocab: 4096, dim: 1024, precision: precision, filter: filter),
                                     seed: 5, ignoredFraction: 0.1)
        let measured = try harness.measure(nil, repetitions: 1)
        #expect(measured.isCorrect)
        let skipped = try #require(measured.metrics["skipped_tile_fraction"])
        #expect(skipped > 0.5, "a peaked softmax over 4096 entries skips most tiles: \(skipped)")
    }

    /// The vocabulary processed by decreasing average logit: the same loss and gradients (dC and db written to each
    /// class's own row), exact and filtered; on shuffled ids it skips more tiles than the id order does.
    @Test func sortedVocabulary() throws {
        for precision in [ElementFormat.half, .single] {
            try Self.expectCorrect(CCEProblem(tokens: 252, vocab: 507, dim: 123, precision: precision, bias: true, softcap: 20, shift: true,
                                              labelSmoothing: 0.1, reduction: .none, filter: "off", sortVocabulary: true, data: .uniform))
        }
        try Self.expectCorrect(CCEProblem(tokens: 1000, vocab: 1031, dim: 67, precision: .bfloat16, bias: true, sortVocabulary: true, data: .shuffled))
        let cce = try #require(Self.cce)
        var skipped: [Bool: Double] = [:]
        for sort in [false, true] {
            let problem = CCEProblem(tokens: 256, vocab: 4096, dim: 1024, precision: .half, sortVocabulary: sort, data: .shuffled)
            let measured = try CCEHarness(family: cce, problem: problem, seed: 5, ignoredFraction: 0.1).measure(nil, repetitions: 1)
            #expect(measured.isCorrect)
            let fraction = try #require(measured.metrics["skipped_tile_fraction"])
            skipped[sort] = fraction
        }
        #expect(skipped[true]! > skipped[false]!, "\(skipped)")
    }

    /// Several configurations, including work-groups of many work-items, vocabulary splits, narrow vectors,
    /// register blocks that do not divide the tiles, and D chunks that do not divide D (whole rows where D is
    /// smaller than the chunk). The last gives the backward another block, chunk, vector width and work-group than
    /// the forward on the same tiles.
    @Test(arguments: [
        CutCrossEntropy.configurations(["TB": 16, "NB": 32, "KC": 32, "MR": 2, "NR": 4, "VW": 4, "WG": 16, "VS": 4, "PMR": 8, "PNV": 4, "ACC": 1]),
        CutCrossEntropy.configurations(["TB": 8, "NB": 16, "KC": 0, "MR": 8, "NR": 1, "VW": 1, "WG": 4, "VS": 2, "PMR": 1, "PNV": 1, "ACC": 1]),
        CutCrossEntropy.configurations(["TB": 128, "NB": 64, "KC": 64, "MR": 4, "NR": 8, "VW": 16, "WG": 1, "VS": 8, "PMR": 2, "PNV": 4, "ACC": 1]),
        [Configuration(variant: "forward", ["TB": 32, "NB": 16, "KC": 0, "MR": 1, "NR": 8, "VW": 16, "WG": 1, "VS": 2]),
         Configuration(variant: "backward", ["TB": 32, "NB": 16, "KC": 32, "MR": 2, "NR": 2, "VW": 4, "WG": 4, "PMR": 2, "PNV": 1, "ACC": 1])],
    ])
    func configurations(configurations: [Configuration]) throws {
        for (n, v, d) in [(252, 507, 123), (1, 3, 1)] {
            let configs = configurations.map { configuration in
                var config = configuration
                if config["KC"]! >= d { config.values["KC"] = 0 }
                return config
            }
            try Self.expectCorrect(CCEProblem(tokens: n, vocab: v, dim: d, precision: .half, bias: true, shift: n > 1, filter: "off", data: .uniform),
                                   configurations: configs)
        }
    }

    /// Accumulators in global memory with D chunks, exact and filtered, in each storage precision. They are allowed
    /// only where the local ones do not fit, so the family sees canned limits: this device's work-group limits with
    /// 48 KiB of local memory (a GPU's), where 32 rows of D = 300 do not fit. (The kernels run on this device, whatever
    /// its own local memory.)
    @Test(arguments: CutCrossEntropy.formats)
    func globalAccumulators(precision: ElementFormat) throws {
        let device = try #require(Shared.context)
        var limits = DeviceLimits(device.device)
        limits.localMemoryBytes = 48 * 1024
        let cce = CutCrossEntropy(core: try FamilyCore(context: device, database: .init(), limits: limits, source: CutCrossEntropy.kernelSource))
        let d = 300
        let config = CutCrossEntropy.configurations(["TB": 32, "NB": 16, "KC": 64, "MR": 2, "NR": 2, "VW": 4, "WG": 4, "VS": 2,
                                                     "PMR": 4, "PNV": 2, "ACC": 0])
        let local = CutCrossEntropy.localFloats(tb: 32, nb: 16, vw: 4, kc: 64, localAccumulators: true, dim: d) * 4
        try #require(local > limits.localMemoryBytes, "48 KiB holds \(local) bytes")
        try Self.expectCorrect(CCEProblem(tokens: 131, vocab: 61, dim: d, precision: precision, bias: true, softcap: 20, shift: true,
                                          zLoss: 1e-3, labelSmoothing: 0.1, filter: "off", data: .uniform), configurations: config, family: cce)
        try Self.expectCorrect(CCEProblem(tokens: 131, vocab: 61, dim: d, precision: precision, filter: precision == .single ? "1e-5" : "auto",
                                          data: .trained), configurations: config, family: cce)
    }

    /// The space of a large D (8192) on a device with 48 KiB of local memory: only D chunks with global
    /// accumulators fit, and the defaults offer one; on a CPU's 1 MiB, local accumulators with whole rows fit at D = 1024.
    @Test func largeDimensionsChunkAndAccumulateGlobally() throws {
        let gpu = DeviceLimits(kind: .gpu, maxWorkGroupSize: 1024, maxWorkItemSizes: [1024, 1024, 64], localMemoryBytes: 48 * 1024,
                               supportsHalf: true)
        let problem = CCEProblem(tokens: 4096, vocab: 32768, dim: 8192, precision: .half)
        let (forward, backward) = (CutCrossEntropy.roles[0], CutCrossEntropy.roles[1])
        let forwardSpace = try #require(CutCrossEntropy.spaces(for: problem, role: forward, given: [:], limits: gpu).first)
        let chosen = try #require(CutCrossEntropy.defaults(for: problem, role: forward, given: [:], limits: gpu).first(where: forwardSpace.isValid))
        let given = ["forward": chosen]
        let space = try #require(CutCrossEntropy.spaces(for: problem, role: backward, given: given, limits: gpu).first)
        let valid = try #require(CutCrossEntropy.defaults(for: problem, role: backward, given: given, limits: gpu).first(where: space.isValid))
        #expect(valid["ACC"] == 0 && valid["KC"]! > 0 && valid["TB"] == chosen["TB"] && valid["NB"] == chosen["NB"], "\(valid)")
        let cpu = DeviceLimits(kind: .cpu, maxWorkGroupSize: 4096, maxWorkItemSizes: [4096, 4096, 4096], localMemoryBytes: 1 << 20,
                               supportsHalf: false)
        let bench = CCEProblem(tokens: 4096, vocab: 32768, dim: 1024, precision: .half)
        let first = try #require(CutCrossEntropy.defaults(for: bench, role: forward, given: [:], limits: cpu).first)
        let firstBackward = try #require(CutCrossEntropy.defaults(for: bench, role: backward, given: ["forward": first], limits: cpu).first)
        #expect(try #require(CutCrossEntropy.spaces(for: bench, role: forward, given: [:], limits: cpu).first).isValid(first) && first["KC"] == 0)
        #expect(try #require(CutCrossEntropy.spaces(for: bench, role: backward, given: ["forward": first], limits: cpu).first).isValid(firstBackward)
                && firstBackward["KC"] == 0 && firstBackward["ACC"] == 1)
    }

    /// The extra device memory of the cut path (beyond E, C, targets, their gradients and the LSE) does not grow
    /// with the vocabulary, except for one byte of skip decision per tile.
    @Test func extraMemoryDoesNotGrowWithTheVocabulary() throws {
        let cce = try #require(Self.cce)
        var extras: [Int: Double] = [:]
        for v in [1000, 8000] {
            let harness = try CCEHarness(family: cce, problem: CCEProblem(tokens: 256, vocab: v, dim: 64, precision: .half), seed: 1,
                                         ignoredFraction: 0.1)
            cce.core.releaseScratch()
            let measured = try harness.measure(nil, repetitions: 1)
            #expect(measured.isCorrect)
            let extra = try #require(measured.metrics["extra_device_bytes"])
            extras[v] = extra
        }
        let logits = 256.0 * 8000 * 2
        #expect(extras[8000]! <= extras[1000]! + 256 * 8000 / 8, "\(extras)")
        #expect(extras[8000]! < 0.01 * logits, "\(extras) against \(logits) bytes of logits")
    }

    /// The baselines of `bench cce` compute the same loss and gradients: the materialized path (our GEMM and the
    /// log-softmax kernels; fp32 GEMMs for single and bfloat16 storage) and OpenBLAS on the host.
    @Test(arguments: [ElementFormat.single, .bfloat16])
    func baselinesAgreeWithTheReference(precision: ElementFormat) throws {
        let cce = try #require(Self.cce)
        let problem = CCEProblem(tokens: 252, vocab: 507, dim: 123, precision: precision, bias: true, softcap: 20, shift: true,
                                 zLoss: 1e-3, labelSmoothing: 0.1, reduction: .sum, filter: "off", data: .uniform)
        let harness = try CCEHarness(family: cce, problem: problem, seed: 9, ignoredFraction: 0.2)
        let baselines = harness.baselines()
        #expect(baselines.map(\.name) == ["materialized", "openblas"])
        for baseline in baselines {
            let result = try baseline.measure(1)
            let check = try #require(result.check)
            let failing = check.parts.filter { !$0.value.passed }.map { "\($0.key) \($0.value.maxAbsError) > \($0.value.tolerance)" }
            #expect(check.passed, "\(baseline.name): loss \(check.maxAbsError) > \(check.tolerance); \(failing)")
        }
    }

    /// `autotune bench cce --json` follows the bench contract: our row, then `materialized` and `openblas`, each
    /// with seconds, peak device bytes and the error; ours with the fraction of gradient tiles skipped.
    @Test func benchCommandReportsTheContract() throws {
        // A row of one configuration per role (a JSON array), and a row whose backward is not on its forward's tiles.
        let pair = #"[{"variant":"forward","TB":16,"NB":16,"KC":0,"MR":1,"NR":2,"VW":4,"WG":1,"VS":2},"#
            + #"{"variant":"backward","TB":16,"NB":16,"KC":0,"MR":2,"NR":4,"VW":8,"WG":4,"PMR":2,"PNV":1,"ACC":1}]"#
        let offTiles = #"{"variant":"backward","TB":8,"NB":16,"KC":0,"MR":1,"NR":2,"VW":4,"WG":1,"PMR":1,"PNV":1,"ACC":1}"#
        let output = try CLI.run(CLI.autotune, ["bench", "cce", "--tokens", "64", "--vocab", "300", "--dim", "32", "--repetitions", "1",
                                                "--config", pair, "--config", offTiles, "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any])
        let rows = try #require(report["results"] as? [[String: Any]])
        let roles = try #require(rows[1]["roles"] as? [[String: Any]])
        #expect(roles.map { $0["role"] as? String } == ["forward", "backward"] && roles.allSatisfy { $0["source"] as? String == "explicit" })
        #expect((rows[1]["error"] as? String) == nil && (rows[2]["error"] as? String)?.contains("the forward's per-tile bounds") == true, "\(rows[2])")
        let results = rows.filter { !($0["name"] as? String ?? "").hasPrefix("config-") }
        #expect(results.map { $0["name"] as? String } == ["tunedkernels", "materialized", "openblas"])
        for result in results {
            for key in ["seconds", "peak_device_bytes", "max_abs_error", "extra_device_bytes", "part_errors"] {
                #expect(result[key] != nil, "\(result["name"] ?? "?") has no \(key)")
            }
        }
        #expect(results[0]["skipped_tile_fraction"] is Double)
        // max_abs_error is the largest error over every output, each part beside it with its tolerance.
        for result in results {
            let parts = try #require(result["part_errors"] as? [String: Double]), tolerances = try #require(result["part_tolerances"] as? [String: Double])
            #expect(Set(parts.keys) == ["loss", "lse", "losses", "dE", "dC"] && Set(tolerances.keys) == Set(parts.keys))
            #expect(result["max_abs_error"] as? Double == parts.values.max(), "\(result)")
        }
        #expect((results[2]["openblas_core"] as? String)?.isEmpty == false)
        let verify = try CLI.run(CLI.autotune, ["verify", "cce", "--tokens", "64", "--vocab", "300", "--dim", "32"])
        for part in ["loss", "lse", "losses", "dE", "dC"] {
            let text = String(decoding: verify.stdout, as: UTF8.self)
            #expect(text.contains("ok   \(part): max abs error"), "\(text)")
        }
        #expect((report["problem"] as? [String: Any])?["ignore-index"] as? Int == -100)
    }

    /// `autotune tune cce` searches the family's space (tile, D chunk, register blocks, work-group, splits,
    /// accumulators) for one problem and stores the best under the problem's key; a family reading that database
    /// launches the stored configuration, correctly.
    @Test func tuneStoresTheBestAndCallsUseIt() throws {
        let cce = try #require(Self.cce)
        let folder = TuneCommandTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let reports = try TuneCommandTests.tuneAll(["--tokens", "64", "--vocab", "300", "--dim", "40", "--precision", "single", "--bias",
                                                    "--budget", "4", "--confirm", "2", "--seed", "2", "--output", folder + "/db.json",
                                                    "--journal-dir", folder], family: "cce")
        // The forward, then the backward on the forward's tuned tiles: one entry each, keyed by role.
        #expect(reports.results.count == 2)
        for report in reports.results { #expect(report.evaluations == 4 && report.best != nil, "\(report)") }
        let file = try #require(try TuningDatabase.read(path: folder + "/db.json"))
        let problem = CCEProblem(tokens: 64, vocab: 300, dim: 40, precision: .single, bias: true, filter: "off", data: .uniform)
        let entries = CutCrossEntropy.roles.map { role in file.entries.first { $0.key == CutCrossEntropy.key(problem, role: role) } }
        #expect(file.entries.count == 2 && entries.allSatisfy { $0 != nil }, "\(file.entries.map(\.key))")
        #expect(entries[1]?.config["TB"] == entries[0]?.config["TB"] && entries[1]?.config["NB"] == entries[0]?.config["NB"])
        var database = TuningDatabase()
        database.overlay(file, source: folder + "/db.json")
        let tuned = try CutCrossEntropy(context: cce.context, database: database)
        let harness = try CCEHarness(family: tuned, problem: problem, seed: 4, ignoredFraction: 0.2)
        try harness.reset()
        let launch = try harness.launch(nil)
        #expect(launch.choices.map(\.source) == [.tuned, .tuned] && launch.choices.map(\.config) == entries.map { $0?.config })
        #expect(try harness.check().passed)
    }

    /// Each role alone, as the tuner times it: the forward's kernels and its check of the loss; the backward's two
    /// kernels on the forward's saved loss (made once); a backward on other tiles than its loss's is refused.
    @Test func rolesLaunchAndCheckApart() throws {
        let cce = try #require(Self.cce)
        let problem = CCEProblem(tokens: 37, vocab: 45, dim: 19, precision: .half, bias: true, filter: "off", data: .uniform)
        let harness = try CCEHarness(family: cce, problem: problem, seed: 9, ignoredFraction: 0.1)
        let forward = try harness.measure([], role: "forward", repetitions: 2)
        #expect(forward.isCorrect && forward.choices.map(\.role) == ["forward"] && Set(forward.check.parts.keys) == ["loss", "lse", "losses"])
        let backward = try harness.measure([], role: "backward", repetitions: 2)
        #expect(backward.isCorrect && backward.choices.map(\.role) == ["forward", "backward"] && backward.check.parts["dC"] != nil)
        try harness.reset()
        _ = try harness.launch([], role: "forward")
        let alone = try harness.launch([], role: "backward")
        #expect(alone.events.count == 2, "the backward launched \(alone.events.count) kernels")
        #expect(try harness.check().passed)

        let (e, c) = (harness.e, harness.c)
        let loss = try cce.loss(problem, embeddings: e, classifier: c, bias: harness.bias, targets: harness.targets)
        var other = cce.configuration(for: problem, role: CutCrossEntropy.roles[1], given: ["forward": loss.launch.configuration]).0
        other.values["TB"] = other["TB"] == 8 ? 16 : 8
        #expect { try cce.gradients(problem, embeddings: e, classifier: c, bias: harness.bias, targets: harness.targets, loss: loss,
                                    gradOutput: harness.grad, dEmbeddings: harness.dE, dClassifier: harness.dC, dBias: harness.dBias,
                                    configuration: other) } throws: { "\($0)".contains("TB") }
        #expect { try cce.loss(problem, embeddings: e, classifier: c, bias: harness.bias, targets: harness.targets, configuration: other) }
            throws: { "\($0)".contains("not a configuration of the forward") }
    }

    // MARK: Bad input

    @Test func badProblemsAreRefused() throws {
        let cce = try #require(Self.cce)
        let cases: [(CCEProblem, String)] = [
            (CCEProblem(tokens: 0, vocab: 10, dim: 4), "tokens must be at least 1"),
            (CCEProblem(tokens: 4, vocab: 10, dim: 0), "dim must be at least 1"),
            (CCEProblem(tokens: 1, vocab: 10, dim: 4, shift: true), "shift needs at least 2 tokens"),
            (CCEProblem(tokens: 4, vocab: 10, dim: 4, softcap: -1), "softcap must be 0"),
            (CCEProblem(tokens: 4, vocab: 10, dim: 4, labelSmoothing: 1), "label-smoothing must be in [0, 1)"),
            (CCEProblem(tokens: 4, vocab: 10, dim: 4, zLoss: -1), "z-loss must be at least 0"),
            (CCEProblem(tokens: 4, vocab: 10, dim: 4, filter: "often"), "--filter must be auto, off or a threshold"),
        ]
        for (problem, message) in cases {
            #expect { try cce.check(problem) } throws: { "\($0)".contains(message) }
        }
    }

    @Test func badBuffersAndTargetsAreRefused() throws {
        let cce = try #require(Self.cce)
        let context = cce.context
        let problem = CCEProblem(tokens: 5, vocab: 7, dim: 3, precision: .half)
        let e = try DeviceTensor(context, format: .half, shape: [5, 3]), c = try DeviceTensor(context, format: .half, shape: [7, 3])
        let good = try DeviceBuffer<Int32>(context, [0, 6, -100, 3, 1])
        // A target outside [0, V) names its position.
        let bad = try DeviceBuffer<Int32>(context, [0, 6, -100, 7, 1])
        #expect(throws: CCEError.targetOutOfRange(position: 3, target: 7, vocab: 7, ignoreIndex: -100)) {
            try cce.loss(problem, embeddings: e, classifier: c, targets: bad)
        }
        let negative = try DeviceBuffer<Int32>(context, [0, -1, -100, 3, 1])
        #expect { try cce.loss(problem, embeddings: e, classifier: c, targets: negative) } throws: { "\($0)".contains("targets[1] = -1") }
        // Element type, size, bias presence.
        let single = try DeviceTensor(context, format: .single, shape: [5, 3])
        #expect { try cce.loss(problem, embeddings: single, classifier: c, targets: good) } throws: { "\($0)".contains("embeddings is a single tensor; the problem's storage is half") }
        let short = try DeviceTensor(context, format: .half, shape: [20])
        #expect { try cce.loss(problem, embeddings: e, classifier: short, targets: good) } throws: { "\($0)".contains("classifier has the shape [20]") }
        // A buffer of another type than its tensor's format is refused when the tensor is made.
        #expect(throws: TensorError.self) { try DeviceTensor(try DeviceBuffer<Float>(context, count: 15), format: .half, shape: [5, 3]) }
        #expect(throws: TensorError.self) { try DeviceTensor(try DeviceBuffer<Float16>(context, count: 14), format: .half, shape: [5, 3]) }
        #expect { try cce.loss(problem, embeddings: e, classifier: c, bias: c, targets: good) } throws: { "\($0)".contains("the problem has no bias") }
        var withBias = problem
        withBias.bias = true
        #expect { try cce.loss(withBias, embeddings: e, classifier: c, targets: good) } throws: { "\($0)".contains("no bias tensor") }
        let shortTargets = try DeviceBuffer<Int32>(context, [0, 1])
        #expect { try cce.loss(problem, embeddings: e, classifier: c, targets: shortTargets) } throws: { "\($0)".contains("targets holds 2") }
        // The gradients: their buffers and the incoming gradient.
        let loss = try cce.loss(problem, embeddings: e, classifier: c, targets: good)
        let one = try DeviceBuffer<Float>(context, [1])
        let de = try DeviceTensor(context, format: .half, shape: [5, 3]), dc = try DeviceTensor(context, format: .half, shape: [7, 3])
        #expect { try cce.gradients(problem, embeddings: e, classifier: c, targets: good, loss: loss, gradOutput: one,
                                    dEmbeddings: de, dClassifier: try DeviceTensor(context, format: .half, shape: [3])) } throws: { "\($0)".contains("dClassifier has the shape [3]") }
        var none = problem
        none.reduction = .none
        #expect { try cce.gradients(none, embeddings: e, classifier: c, targets: good, loss: loss, gradOutput: one,
                                    dEmbeddings: de, dClassifier: dc) } throws: { "\($0)".contains("none needs 5") }
        try cce.gradients(problem, embeddings: e, classifier: c, targets: good, loss: loss, gradOutput: one, dEmbeddings: de, dClassifier: dc)
        try context.queue.finish()
    }

    /// The JSON problem of every subcommand, with its defaults and hyphenated keys.
    @Test func problemOptionsParse() throws {
        let problem = try ProblemParser.parse(CCEProblem.self, family: "cce", options: CutCrossEntropy.problemOptions,
                                              arguments: ["--tokens", "12", "--vocab", "30", "--dim", "5", "--z-loss", "0.001", "--shift",
                                                          "--filter", "off", "--precision", "bfloat16"])
        #expect(problem == CCEProblem(tokens: 12, vocab: 30, dim: 5, precision: .bfloat16, shift: true, zLoss: 0.001, filter: "off"))
        #expect(CutCrossEntropy.key(problem).tags == ["precision": "bfloat16", "filter": "off"])
        let json = try JSONEncoder().encode(problem)
        #expect(try JSONDecoder().decode(CCEProblem.self, from: json) == problem)
        #expect(String(decoding: json, as: UTF8.self).contains("\"ignore-index\":-100"))
    }
}

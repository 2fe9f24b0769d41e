import Autotuning
import Foundation
import Testing
@testable import TunedKernels

/// The performance suite's cases from the registry, and the baseline check's rule on canned samples (no timing:
/// the speed itself is checked by scripts/perf-check.sh, whose calibration README reports).
@Suite struct PerformanceSuiteTests {
    /// Every registered family declares cases for each of its roles, with unique ids, problems the kernels accept,
    /// and the work of what is timed.
    @Test func everyRoleOfEveryFamilyIsBenchmarked() throws {
        let cases = PerformanceSuite.cases(KernelFamilies.families)
        #expect(Set(cases.map(\.id)).count == cases.count, "two cases share an id")
        for family in KernelFamilies.families {
            let own = cases.filter { $0.family == family.name }
            #expect(!own.isEmpty, "\(family.name) declares no performance case")
            if family.roles.count > 1 {
                for role in family.roles {
                    #expect(own.contains { $0.role == role.name }, "\(family.name): no performance case times the \(role.name)")
                }
            }
            for entry in own {
                #expect(entry.work.flops > 0 || entry.bound == .memory, "\(entry.id): a compute-bound case without FLOPs")
                #expect(entry.work.bytes > 0, "\(entry.id): no bytes")
            }
        }
        try Self.checkNeeds(GEMM.self)
        try Self.checkNeeds(CutCrossEntropy.self)
        try Self.checkNeeds(Bandwidth.self)
    }

    static func checkNeeds<F: KernelFamily>(_ family: F.Type) throws {
        for entry in F.performanceCases { _ = try F.needs(entry.problem) }
    }

    /// A role's case times that role's work (CCE's forward does a third of the FLOPs of the call).
    @Test func aRoleCaseHasItsRolesWork() {
        let cases = CutCrossEntropy.suiteCases
        let forward = cases.first { $0.role == "forward" }!, backward = cases.first { $0.role == "backward" }!
        #expect(abs(forward.work.flops * 2 - backward.work.flops) < 1)
        #expect(forward.id.hasPrefix("cce/forward/"))
        #expect(GEMM.suiteCases.allSatisfy { $0.role == nil && !$0.id.contains("/gemm/") })
    }

    // MARK: the baseline check on canned samples

    static let configuration = [RoleChoice(role: "gemm", config: Configuration(variant: "packed", ["MR": 6]), source: .default)]

    static func sample(_ id: String, seconds: Double, reference: Double? = 1, launches: Int = 3, flops: Double = 100, passed: Bool = true,
                       configurations: [RoleChoice] = configuration) -> SuiteSample {
        SuiteSample(id: id, seconds: seconds, wallSeconds: seconds, launches: launches, flops: flops, bytes: 10, configurations: configurations,
                    maxAbsError: passed ? 0 : nil, passed: passed, referenceSeconds: reference, defaultsPassed: true)
    }

    static func baseline() throws -> PerformanceBaseline {
        let runs = [0.9, 1.0, 1.1].map { scale in [sample("a", seconds: 2 * scale), sample("b", seconds: 3 * scale)] }
        return try PerformanceBaseline(device: DeviceIdentity(name: "dev", vendor: "v", type: "cpu"), recorded: "today", commit: nil, runs: runs)
    }

    @Test func recordingKeepsTheMedianRatioAndItsRange() throws {
        let recorded = try Self.baseline()
        #expect(recorded.cases["a"]?.relative == 2)
        #expect(recorded.cases["a"]?.low == 1.8 && recorded.cases["a"]?.high == 2.2)
        #expect(recorded.runs == 3)
        // A run without references cannot be recorded, nor a wrong result.
        #expect(throws: ProblemError.self) {
            try PerformanceBaseline(device: DeviceIdentity(name: "d"), recorded: "", commit: nil, runs: [[Self.sample("a", seconds: 1, reference: nil)]])
        }
        #expect(throws: ProblemError.self) {
            try PerformanceBaseline(device: DeviceIdentity(name: "d"), recorded: "", commit: nil, runs: [[Self.sample("a", seconds: 1, passed: false)]])
        }
        let data = try JSONEncoder().encode(recorded)
        #expect(try JSONDecoder().decode(PerformanceBaseline.self, from: data) == recorded)
    }

    /// Within the threshold passes without confirming; above it, the confirming runs decide.
    @Test func aSlowdownIsARegressionOnlyWhenConfirmed() throws {
        let baseline = try Self.baseline()
        var confirmed: [String] = []
        let verdicts = BaselineCheck.evaluate([Self.sample("a", seconds: 2.4), Self.sample("b", seconds: 4.5)], baseline: baseline, exact: true,
                                              threshold: 1.25) { sample in
            confirmed.append(sample.id)
            return [1.4, 1.5, 1.6]
        }
        #expect(confirmed == ["b"])
        #expect(verdicts[0].outcome == .pass && abs(verdicts[0].slowdown! - 1.2) < 1e-12)
        #expect(verdicts[1].outcome == .regression && verdicts[1].confirmed == 1.5)
        let chance = BaselineCheck.evaluate([Self.sample("b", seconds: 4.5)], baseline: baseline, exact: true, threshold: 1.25) { _ in [1.0, 1.1, 1.3] }
        #expect(chance[0].outcome == .pass && chance[0].confirmed == 1.1)
        // Faster than the reference ratio recorded: a pass.
        #expect(BaselineCheck.evaluate([Self.sample("a", seconds: 1)], baseline: baseline, exact: true, threshold: 1.25) { _ in [] }[0].outcome == .pass)
    }

    /// The exact gates: a wrong result, other FLOPs or bytes, other launches with the same configurations (not with
    /// other configurations, which may launch otherwise).
    @Test func deterministicGates() throws {
        let baseline = try Self.baseline()
        func outcome(_ sample: SuiteSample, exact: Bool = true) -> BaselineVerdict.Outcome {
            BaselineCheck.evaluate([sample], baseline: baseline, exact: exact, threshold: 1.25) { _ in [] }[0].outcome
        }
        #expect(outcome(Self.sample("a", seconds: 2, passed: false)) == .gateFailure)
        #expect(outcome(Self.sample("a", seconds: 2, flops: 101)) == .gateFailure)
        #expect(outcome(Self.sample("a", seconds: 2, launches: 4)) == .gateFailure)
        let other = [RoleChoice(role: "gemm", config: Configuration(variant: "xgemm", ["MWG": 64]), source: .tuned)]
        #expect(outcome(Self.sample("a", seconds: 2, launches: 4, configurations: other)) == .pass)
        var defaults = Self.sample("a", seconds: 2)
        defaults.defaultsPassed = false
        #expect(outcome(defaults) == .gateFailure)
        // Another device's baseline: the exact gates hold, the times are not gated.
        #expect(outcome(Self.sample("a", seconds: 20), exact: false) == .ungated)
        #expect(outcome(Self.sample("a", seconds: 2, flops: 101), exact: false) == .gateFailure)
        // A case the baseline does not have, or no baseline at all.
        #expect(outcome(Self.sample("c", seconds: 2)) == .new)
        #expect(BaselineCheck.evaluate([Self.sample("a", seconds: 9)], baseline: nil, exact: false, threshold: 1.25) { _ in [] }[0].outcome == .new)
    }

    /// The device's own file, else the closest recorded device of its vendor and type; a corrupt file is named.
    @Test func baselineFilesFallBackLikeTheTuningDatabase() throws {
        let context = try #require(Shared.context)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("baselines-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(try PerformanceBaseline.load(for: context.device, folder: folder) == nil)
        var other = try Self.baseline()
        other.device = DeviceIdentity(name: context.device.name + " other", vendor: context.device.vendor, type: context.device.kind.rawValue)
        try JSONEncoder().encode(other).write(to: URL(fileURLWithPath: folder + "/other.json"))
        let fallback = try #require(try PerformanceBaseline.load(for: context.device, folder: folder))
        #expect(!fallback.exact && fallback.baseline == other)
        var own = other
        own.device = context.device.identity
        try JSONEncoder().encode(own).write(to: URL(fileURLWithPath: folder + "/" + PerformanceBaseline.fileName(for: context.device)))
        #expect(try PerformanceBaseline.load(for: context.device, folder: folder)?.exact == true)
        try Data("{".utf8).write(to: URL(fileURLWithPath: folder + "/" + PerformanceBaseline.fileName(for: context.device)))
        #expect(throws: ProblemError.self) { try PerformanceBaseline.load(for: context.device, folder: folder) }
    }
}

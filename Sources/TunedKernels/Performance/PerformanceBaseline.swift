import Autotuning
import Foundation
import OpenCLRuntime

/// A device's recorded performance suite (`Benchmarks/baselines/<device slug>.json`): per case, its time as a
/// multiple of the in-run reference's (``SuiteSample/relative``), and the figures that are exact on any machine
/// (FLOPs, bytes, kernel launches per call, the configurations chosen).
///
/// Ratios, not seconds: these machines are shared and change CPU from day to day, and a ratio to a reference
/// measured in the same run moves with the kernel, hardly with the machine's load.
public struct PerformanceBaseline: Codable, Sendable, Equatable {
    public struct Case: Codable, Sendable, Equatable {
        /// The median over the recorded runs of seconds / reference seconds.
        public var relative: Double
        /// The smallest and largest of the recorded runs' ratios.
        public var low: Double
        public var high: Double
        public var flops: Double
        public var bytes: Double
        public var launches: Int
        public var configurations: [RoleChoice]
    }

    public var format = 1
    public var device: DeviceIdentity
    /// When and at which commit it was recorded, and over how many runs.
    public var recorded: String
    public var commit: String?
    public var runs: Int
    public var cases: [String: Case]

    public init(device: DeviceIdentity, recorded: String, commit: String?, runs: [[SuiteSample]]) throws {
        self.device = device
        self.recorded = recorded
        self.commit = commit
        self.runs = runs.count
        var cases: [String: Case] = [:]
        for sample in runs.first ?? [] {
            let all = runs.compactMap { $0.first { $0.id == sample.id } }
            let ratios = all.compactMap(\.relative)
            guard ratios.count == all.count, !ratios.isEmpty else {
                throw ProblemError("\(sample.id): a run has no reference time; record with the references measured")
            }
            guard all.allSatisfy(\.passed) else { throw ProblemError("\(sample.id): a recorded run's result is wrong; nothing recorded") }
            cases[sample.id] = Case(relative: median(ratios), low: ratios.min()!, high: ratios.max()!, flops: sample.flops, bytes: sample.bytes,
                                    launches: sample.launches, configurations: sample.configurations)
        }
        self.cases = cases
    }

    /// The file name of `device`'s baseline.
    public static func fileName(for device: Device) -> String { "\(device.slug).json" }

    /// The baseline of `device` in `folder`: its own file, else (a fallback, which the check reports but does not
    /// gate) the closest recorded device of the same vendor and type, as the tuning database falls back; nil when
    /// the folder has neither.
    public static func load(for device: Device, folder: String) throws -> (baseline: PerformanceBaseline, path: String, exact: Bool)? {
        let decoder = JSONDecoder()
        func read(_ path: String) throws -> PerformanceBaseline {
            do { return try decoder.decode(PerformanceBaseline.self, from: try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
                throw ProblemError("\(path) is not a performance baseline (\(error)); record it again with scripts/perf-check.sh --record")
            }
        }
        let own = folder + "/" + fileName(for: device)
        if FileManager.default.fileExists(atPath: own) { return (try read(own), own, true) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let files = try names.map { (try read(folder + "/" + $0), folder + "/" + $0) }
        guard let index = DeviceMatch.closest(to: device.identity, among: files.map(\.0.device), entryCounts: files.map(\.0.cases.count)) else {
            return nil
        }
        return (files[index].0, files[index].1, false)
    }
}

/// The verdict of one case of the baseline check.
public struct BaselineVerdict: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        /// Within the threshold (or faster).
        case pass
        /// Slower than the baseline by more than the threshold, in the first run and in the confirming runs.
        case regression
        /// A deterministic gate failed: a wrong result, defaults that do not pass, FLOPs, bytes or launches per call
        /// that differ from the baseline's.
        case gateFailure = "gate-failure"
        /// Not in the baseline (a new case): reported, not gated.
        case new
        /// Compared with another device's baseline (a fallback): reported, not gated.
        case ungated
    }

    public var id: String
    public var outcome: Outcome
    /// Current relative / baseline relative (above 1: slower), from the first run.
    public var slowdown: Double?
    /// The median slowdown of the confirming runs, when the first run was above the threshold.
    public var confirmed: Double?
    public var reasons: [String]

    public init(id: String, outcome: Outcome, slowdown: Double? = nil, confirmed: Double? = nil, reasons: [String] = []) {
        self.id = id
        self.outcome = outcome
        self.slowdown = slowdown
        self.confirmed = confirmed
        self.reasons = reasons
    }
}

extension PerformanceBaseline {
    /// The deterministic gates of `sample` against this baseline (exact on any machine): a correct result, defaults
    /// that pass, the same FLOPs and bytes, and, where the same configurations were chosen, the same number of
    /// kernel launches per call. Empty when every gate holds.
    public func gateFailures(of sample: SuiteSample) -> [String] {
        var reasons: [String] = []
        if !sample.passed { reasons.append("the result is wrong (error \(sample.maxAbsError.map { "\($0)" } ?? "not finite"))") }
        if sample.defaultsPassed == false { reasons.append("the defaults (no tuning database) give a wrong result") }
        guard let recorded = cases[sample.id] else { return reasons }
        if sample.flops != recorded.flops || sample.bytes != recorded.bytes {
            reasons.append("work per call \(sample.flops) FLOPs, \(sample.bytes) bytes; the baseline's \(recorded.flops) FLOPs, \(recorded.bytes) bytes")
        }
        if sample.configurations == recorded.configurations && sample.launches != recorded.launches {
            reasons.append("\(sample.launches) kernel launches per call with the baseline's configurations; the baseline's \(recorded.launches)")
        }
        return reasons
    }

    /// Whether `sample` is slower than the baseline by more than `threshold` (a slowdown of `threshold` or less
    /// passes), and the slowdown.
    public func slowdown(of sample: SuiteSample) -> Double? {
        guard let recorded = cases[sample.id], let relative = sample.relative, recorded.relative > 0 else { return nil }
        return relative / recorded.relative
    }
}

/// The baseline check's rule, apart from any measuring (tested on canned samples).
public enum BaselineCheck {
    /// The slowdown above which a case is measured again (`confirmations` more runs) and, when their median is also
    /// above it, a regression. Chosen from the false-alarm calibration in README ("Performance regression tests").
    public static let defaultThreshold = 1.3

    /// The verdict of every case of `first` (one run of the suite), with `confirm` re-measuring a case whose first
    /// slowdown is above `threshold` (called only then; it returns that case's slowdowns). With `exact` false (another
    /// device's baseline) only the deterministic gates (``PerformanceBaseline/gateFailures(of:)``) are gated, not the
    /// times; with no baseline, only a wrong result and defaults that fail.
    public static func evaluate(_ first: [SuiteSample], baseline: PerformanceBaseline?, exact: Bool, threshold: Double,
                                confirm: (SuiteSample) throws -> [Double]) rethrows -> [BaselineVerdict] {
        try first.map { sample in
            var verdict = BaselineVerdict(id: sample.id, outcome: .pass, slowdown: nil, confirmed: nil, reasons: [])
            guard let baseline else {
                if !sample.passed { verdict.reasons.append("the result is wrong") }
                if sample.defaultsPassed == false { verdict.reasons.append("the defaults (no tuning database) give a wrong result") }
                verdict.outcome = verdict.reasons.isEmpty ? .new : .gateFailure
                return verdict
            }
            // FLOPs and bytes are the same on any device; launches only where the configurations are.
            let failures = baseline.gateFailures(of: sample)
            verdict.slowdown = baseline.slowdown(of: sample)
            if !failures.isEmpty {
                verdict.outcome = .gateFailure
                verdict.reasons = failures
                return verdict
            }
            guard baseline.cases[sample.id] != nil else {
                verdict.outcome = .new
                verdict.reasons = ["not in the baseline"]
                return verdict
            }
            guard exact else {
                verdict.outcome = .ungated
                return verdict
            }
            if let slowdown = verdict.slowdown, slowdown > threshold {
                let again = try confirm(sample)
                let confirmed = again.isEmpty ? slowdown : median(again)
                verdict.confirmed = confirmed
                if confirmed > threshold {
                    verdict.outcome = .regression
                    verdict.reasons = [String(format: "%.2fx the baseline's time relative to the reference, %.2fx again in %d confirming runs",
                                              slowdown, confirmed, again.count)]
                }
            }
            return verdict
        }
    }
}

import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

/// `autotune perf check`: the suite once, each case with its in-run reference, against the device's committed
/// baseline (``PerformanceBaseline``), with the deterministic gates; `--record` writes the baseline.
struct PerfCheck<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "check",
            abstract: "Check the suite against this device's baseline (ratios to in-run references), or record it.",
            discussion: """
                Each case's time is divided by its in-run reference's (our FMA-throughput kernel doing the same FLOPs, or \
                a streaming read of the same bytes). A case slower than the baseline by more than --threshold is measured \
                again --confirmations times and is a regression when their median is too. Gates, exact on any machine: a \
                correct result, defaults that pass without a tuning database, the baseline's FLOPs and bytes per call, and \
                its kernel launches per call where the same configurations were chosen. Without a baseline of this device, \
                the closest recorded device of the same vendor and type is compared and reported, but only its gates count.
                """)
    }

    @Option(help: "The folder of the baselines (one <device slug>.json each).") var baselines = "Benchmarks/baselines"
    @Flag(help: "Record this device's baseline (over --runs runs) instead of checking.") var record = false
    @Option(help: "Runs of the suite a recording takes the median of.") var runs = 5
    @Option(help: "The slowdown (time relative to the reference, over the baseline's) above which a case is measured again.")
    var threshold = BaselineCheck.defaultThreshold
    @Option(help: "Confirming runs of a case above the threshold.") var confirmations = 3
    @Option(help: "The commit recorded with a baseline.") var commit: String?
    @Option(name: .customLong("json"), help: ArgumentHelp("Write the verdict (or the recorded baseline) as JSON to this file.", valueName: "file"))
    var jsonFile: String?
    @OptionGroup var selection: CaseOptions
    @OptionGroup var measuring: MeasureOptions

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard threshold > 1 else { throw ValidationError("--threshold must be above 1") }
        guard confirmations >= 0 else { throw ValidationError("--confirmations must be at least 0") }
    }

    struct Report: Encodable {
        var format = 1
        let device: DeviceIdentity
        let baseline: String?
        let baseline_device: String?
        let exact: Bool
        let threshold: Double
        let verdicts: [BaselineVerdict]
        let samples: [SuiteSample]
        let verdict: String
        let seconds: Double
    }

    func run() throws {
        let started = Date()
        let cases = try selection.select(PerformanceSuite.cases(Registry.families))
        let context = try Context()
        var options = measuring.suite
        options.references = true
        options.checkDefaults = true
        if record { return try recordBaseline(cases, context: context, options: options) }

        let found = try PerformanceBaseline.load(for: context.device, folder: baselines)
        if let found {
            progress(found.exact ? "perf check: \(context.device.name) against \(found.path) (recorded \(found.baseline.recorded))"
                     : "perf check: no baseline of \(context.device.name) in \(baselines); comparing with the closest recorded device, "
                        + "\(found.baseline.device.name) (\(found.path)): reported, not gated except the exact gates. "
                        + "Record this device's with scripts/perf-check.sh --record")
        } else {
            progress("perf check: no baseline of \(context.device.name) or of a device like it in \(baselines): only the gates that need none "
                     + "(correct results, defaults that pass). Record one with scripts/perf-check.sh --record")
        }
        // A case that throws (a build that fails, a lost device) fails its gate; the others are still checked.
        var samples: [SuiteSample] = []
        var broken: [BaselineVerdict] = []
        for entry in cases {
            do {
                samples += try PerformanceSuite.run([entry], context: context, options: options, progress: progress)
            } catch {
                progress("  \(entry.id): \(error)")
                broken.append(BaselineVerdict(id: entry.id, outcome: .gateFailure, slowdown: nil, confirmed: nil, reasons: ["the case failed: \(error)"]))
            }
        }
        var confirming = options
        confirming.checkDefaults = false
        var confirmationErrors: [String: String] = [:]
        var verdicts = BaselineCheck.evaluate(samples, baseline: found?.baseline, exact: found?.exact ?? false, threshold: threshold) { sample in
            progress("  \(sample.id) is above the threshold: \(confirmations) confirming runs")
            let entry = cases.first { $0.id == sample.id }!
            do {
                return try (0..<confirmations).compactMap { _ in
                    try PerformanceSuite.run([entry], context: context, options: confirming).first.flatMap { found!.baseline.slowdown(of: $0) }
                }
            } catch {
                progress("  \(sample.id): a confirming run failed: \(error)")
                confirmationErrors[sample.id] = "\(error)"
                return []
            }
        } + broken
        // A case that fails in a confirming run fails its gate, as one that fails in the first run does.
        for index in verdicts.indices {
            if let error = confirmationErrors[verdicts[index].id] {
                verdicts[index].outcome = .gateFailure
                verdicts[index].reasons = ["a confirming run failed: \(error)"]
            }
        }
        // A case of the baseline that the suite no longer has would otherwise drop out of every gate unnoticed.
        if let found, found.exact, selection.cases.isEmpty {
            for id in found.baseline.cases.keys.sorted() where !cases.contains(where: { $0.id == id }) {
                verdicts.append(BaselineVerdict(id: id, outcome: .gateFailure, slowdown: nil, confirmed: nil,
                                                reasons: ["in the baseline but not in the suite (removed or renamed): record the baseline again"]))
            }
        }
        let failed = verdicts.filter { $0.outcome == .regression || $0.outcome == .gateFailure }
        let report = Report(device: context.device.identity, baseline: found?.path, baseline_device: found?.baseline.device.name, exact: found?.exact ?? false,
                            threshold: threshold, verdicts: verdicts, samples: samples, verdict: failed.isEmpty ? "pass" : "regression",
                            seconds: Date().timeIntervalSince(started))
        if let jsonFile { try writeJSON(report, to: jsonFile) }
        print("perf check on \(context.device.name): " + (found.map { "\($0.exact ? "baseline" : "fallback baseline (not gated)") \($0.path)" } ?? "no baseline"))
        print(table(["case", "ms", "x reference", "baseline x ref", "slowdown", "confirmed", "verdict"], verdicts.map { verdict in
            let sample = samples.first { $0.id == verdict.id }
            return [verdict.id, format(sample.map { $0.seconds * 1000 }, 3), format(sample?.relative, 3), format(found?.baseline.cases[verdict.id]?.relative, 3),
                    format(verdict.slowdown, 3), format(verdict.confirmed, 3),
                    verdict.outcome == .regression ? "REGRESSION" : verdict.outcome == .gateFailure ? "GATE FAILED" : verdict.outcome.rawValue]
        }))
        for verdict in verdicts where !verdict.reasons.isEmpty { print("note: \(verdict.id): " + verdict.reasons.joined(separator: "; ")) }
        print(String(format: "verdict: %@ (threshold %.2f, %.0f s)", failed.isEmpty ? "no regression" : "regression in " + failed.map(\.id).joined(separator: ", "),
                     threshold, report.seconds))
        if !failed.isEmpty { throw regressionExitCode }
    }

    func recordBaseline(_ cases: [SuiteCase], context: Context, options: SuiteOptions) throws {
        var all: [[SuiteSample]] = []
        var options = options
        for run in 0..<runs {
            progress("perf check --record: run \(run + 1)/\(runs) on \(context.device.name)")
            all.append(try PerformanceSuite.run(cases, context: context, options: options, progress: progress))
            options.checkDefaults = false
        }
        for sample in all[0] where sample.defaultsPassed == false {
            throw ValidationError("\(sample.id): the defaults (no tuning database) give a wrong result; nothing recorded")
        }
        let formatter = ISO8601DateFormatter()
        var baseline: PerformanceBaseline
        do {
            baseline = try PerformanceBaseline(device: context.device.identity, recorded: formatter.string(from: Date()), commit: commit, runs: all)
        } catch let error as ProblemError {
            throw ValidationError(error.message)
        }
        try FileManager.default.createDirectory(atPath: baselines, withIntermediateDirectories: true)
        let path = baselines + "/" + PerformanceBaseline.fileName(for: context.device)
        if !selection.cases.isEmpty, let existing = try PerformanceBaseline.load(for: context.device, folder: baselines), existing.exact {
            // Some cases recorded again: the others keep their recorded figures.
            baseline.cases.merge(existing.baseline.cases) { new, _ in new }
        }
        try writeJSON(baseline, to: path)
        if let jsonFile { try writeJSON(baseline, to: jsonFile) }
        print("recorded \(path): \(baseline.cases.count) cases over \(runs) runs")
        print(table(["case", "x reference", "lowest", "highest"], baseline.cases.sorted { $0.key < $1.key }.map {
            [$0.key, format($0.value.relative, 3), format($0.value.low, 3), format($0.value.high, 3)]
        }))
    }
}

import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

enum PerShapeVerb: FamilyVerb {
    static let name = "per-shape"
    static let abstract = "Compare per-problem tuned configurations with the single best configuration for all problems."
    static func command<Family: KernelFamily>(_ family: Family.Type) -> any ParsableCommand.Type { BenchPerShape<Family>.self }
}

/// Does per-shape tuning pay? Every problem's tuned configuration is timed on every problem of the set,
/// and the per-problem choice is compared with the single configuration that is best over the whole set.
struct BenchPerShape<Family: KernelFamily>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Family.name,
            abstract: "Compare per-problem tuned \(Family.name) configurations with the single best configuration for all problems.",
            discussion: """
                Takes the tuned configuration of every problem from the tuning database (each problem must have an \
                exact entry), times each of those configurations on each problem in --rounds interleaved rounds \
                (each the median of at least --repetitions runs), and picks the single configuration with the \
                smallest geometric-mean time over the set, judged on the even rounds. The speedup of a problem is the \
                single best's time divided by the time of the problem's own tuned configuration, both the median of \
                the odd rounds: held-out rounds, so the single best's pick does not also profit from the noise it was \
                picked on (with one round, the same round serves both). The summary is their geometric mean. \
                A configuration that is invalid, fails or computes a wrong result on some problem cannot be the single best.

                """ + FamilyHelp.problemOptions(Family.self)
        )
    }

    @Option(help: "A file with one problem per line (the family's main option alone, problem options, or JSON; # starts a comment).")
    var shapesFile: String?
    @Option(help: "The kernel role whose configurations are compared (\(Family.roles.map(\.name).joined(separator: ", ")); default: \(Family.roles[0].name)); it is timed alone.")
    var role: String?
    @Option(help: "Tuning database file to take the configurations from (default: the databases the dispatcher reads).")
    var database: String?
    @Option(help: "Timed runs per measurement (more for short kernels, until they add up to 20 ms).") var repetitions = 5
    @Option(help: "Interleaved rounds per problem: even rounds pick the single best, odd rounds measure the speedups.") var rounds = 15
    @OptionGroup var output: OutputOptions
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The problem options (see above).", visibility: .hidden))
    var problemWords: [String] = []

    func validate() throws {
        if let role, Family.role(named: role) == nil {
            throw ValidationError("--role \(role): \(Family.name) has the roles \(Family.roles.map(\.name).joined(separator: ", "))")
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        _ = try FamilyHelp.problems(Family.self, words: problemWords, file: shapesFile)
    }

    struct Row: Encodable {
        let problem: Family.Problem
        /// Index into `configs` of this problem's tuned configuration.
        let tuned: Int
        /// Seconds of each configuration on this problem, median of the odd rounds (nil: invalid, failed or wrong).
        let seconds: [Double?]
        /// The same from the even rounds, on which the single best was chosen.
        let selection_seconds: [Double?]
        /// Null when the configuration failed here (or the kernel does no floating-point work).
        let tuned_gflops: Double?
        let single_best_gflops: Double?
        /// Single best seconds / tuned seconds.
        let speedup: Double?
        /// Index of the fastest configuration on this problem in this run.
        let fastest: Int
    }

    struct Report: Encodable {
        let kernel: String, device: String
        let configs: [Configuration]
        let rows: [Row]
        /// Index into `configs` of the single best configuration, nil when none works on every shape.
        let single_best: Int?
        let geomean_speedup: Double?
        let min_speedup: Double?
        let max_speedup: Double?
        let rounds: Int, repetitions: Int
    }

    func run() throws {
        let problems = try FamilyHelp.problems(Family.self, words: problemWords, file: shapesFile)
        let context = try Context()
        let family: Family
        if let database {
            guard let file = try TuningDatabase.read(path: database) else {
                throw ValidationError("--database \(database) does not exist")
            }
            var only = TuningDatabase()
            only.overlay(file, source: database)
            family = try Family(context: context, database: only)
        } else {
            family = try Family(context: context)
        }
        for problem in problems { try family.check(problem) }
        let tuningDatabase = family.database
        let kernelRole = role.flatMap(Family.role(named:)) ?? Family.roles[0]
        // A family of several roles has the role timed alone (the roles it depends on run first, untimed).
        let launchedRole = Family.roles.count > 1 ? kernelRole.name : nil

        // The tuned configuration of every problem, and the distinct configurations among them.
        var configs: [Configuration] = [], tunedIndex: [Int] = [], missing: [String] = []
        for problem in problems {
            guard let found = tuningDatabase.lookup(Family.key(problem, role: kernelRole)), found.exact else {
                missing.append(problem.description)
                continue
            }
            if let index = configs.firstIndex(of: found.entry.config) { tunedIndex.append(index) } else {
                configs.append(found.entry.config)
                tunedIndex.append(configs.count - 1)
            }
        }
        guard missing.isEmpty else {
            let sources = tuningDatabase.sources.isEmpty ? "no database" : tuningDatabase.sources.joined(separator: ", ")
            throw ValidationError("no tuned \(Family.name)\(Family.roles.count > 1 ? " " + kernelRole.name : "") entry for \(missing.joined(separator: "; ")) in \(sources); "
                                  + "run `autotune tune \(Family.name)` for these problems first")
        }

        var selection: [[Double?]] = [], evaluation: [[Double?]] = []
        for (row, problem) in problems.enumerated() {
            progress("per-shape \(Family.name) \(problem): \(configs.count) configurations, \(rounds) rounds")
            let harness = try family.harness(problem, seed: 42)
            var runs = [[Double]](repeating: [], count: configs.count)
            let given = family.given(for: problem, role: kernelRole)
            var broken = configs.map { !family.violations(of: $0, for: problem, role: kernelRole, given: given).isEmpty }
            forEachInterleaved(count: configs.count, rounds: rounds, shift: row) { index, _ in
                if broken[index] { return }
                do {
                    let measured = try harness.measure([configs[index]], role: launchedRole, repetitions: repetitions, minimumSeconds: 0.02)
                    if measured.isCorrect { runs[index].append(measured.seconds) } else { broken[index] = true }
                } catch {
                    broken[index] = true
                }
            }
            // Even rounds pick the single best, odd rounds measure the speedups.
            func medianOfRounds(_ index: Int, parity: Int) -> Double? {
                if broken[index] || runs[index].isEmpty { return nil }
                let kept = runs[index].count < 2 ? runs[index] : runs[index].enumerated().filter { $0.offset % 2 == parity }.map(\.element)
                return median(kept)
            }
            selection.append(configs.indices.map { medianOfRounds($0, parity: 0) })
            evaluation.append(configs.indices.map { medianOfRounds($0, parity: 1) })
            family.core.releaseScratch()
        }

        let report = Self.summarize(device: context.device.name, problems: problems, role: kernelRole, configs: configs,
                                    tuned: tunedIndex, selection: selection, times: evaluation, rounds: rounds, repetitions: repetitions)
        if output.json { try printJSON(report); return }
        print("\(Family.name) on \(report.device): per-problem tuned vs single best configuration")
        print(table(["problem", "tuned", "tuned GFLOP/s", "single best GFLOP/s", "speedup", "fastest here"], report.rows.map { r in
            [r.problem.description, "#\(r.tuned + 1)", format(r.tuned_gflops, 1), format(r.single_best_gflops, 1), format(r.speedup, 3), "#\(r.fastest + 1)"]
        }))
        for (index, config) in configs.enumerated() { print("#\(index + 1): \(config)") }
        if let best = report.single_best {
            print("single best: #\(best + 1); geometric-mean speedup of per-shape tuning: \(format(report.geomean_speedup, 3))x "
                  + "(min \(format(report.min_speedup, 3)), max \(format(report.max_speedup, 3)))")
        } else {
            print("no configuration works on every shape: every single configuration fails somewhere")
        }
    }

    /// The single best configuration, chosen on `selection`, and the speedups, measured on `times`
    /// (both `[shape][config]` seconds, nil where a configuration does not work).
    static func summarize(device: String, problems: [Family.Problem], role: KernelRole, configs: [Configuration],
                          tuned: [Int], selection: [[Double?]], times: [[Double?]], rounds: Int, repetitions: Int) -> Report {
        // The single best: smallest mean log time over the shapes, among the configurations that work on all of them.
        let complete = configs.indices.filter { index in selection.allSatisfy { $0[index] != nil } && times.allSatisfy { $0[index] != nil } }
        let single = complete.min { a, b in
            selection.reduce(0) { $0 + log($1[a]!) } < selection.reduce(0) { $0 + log($1[b]!) }
        }
        var rows: [Row] = []
        for (row, problem) in problems.enumerated() {
            let work = Family.work(problem, role: role)
            let own = times[row][tuned[row]]
            let singleSeconds = single.flatMap { times[row][$0] }
            let fastest = configs.indices.min { (times[row][$0] ?? .infinity) < (times[row][$1] ?? .infinity) } ?? tuned[row]
            let speedup: Double? = if let own, let singleSeconds { singleSeconds / own } else { nil }
            rows.append(Row(problem: problem, tuned: tuned[row], seconds: times[row], selection_seconds: selection[row],
                            tuned_gflops: own.flatMap(work.gflops), single_best_gflops: singleSeconds.flatMap(work.gflops),
                            speedup: speedup, fastest: fastest))
        }
        let speedups = rows.compactMap(\.speedup)
        let geomean = speedups.count == rows.count && !rows.isEmpty ? exp(speedups.reduce(0) { $0 + log($1) } / Double(speedups.count)) : nil
        return Report(kernel: Family.name, device: device, configs: configs, rows: rows,
                      single_best: single, geomean_speedup: geomean, min_speedup: speedups.min(), max_speedup: speedups.max(),
                      rounds: rounds, repetitions: repetitions)
    }
}

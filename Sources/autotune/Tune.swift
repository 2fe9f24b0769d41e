import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search kernel configurations per shape and store the best in the tuning database.",
        subcommands: [TuneGEMM.self]
    )
}

struct TuneGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Tune GEMM for one or more shapes on the selected device.",
        discussion: """
            Each candidate runs in a worker process (restarted when it crashes or exceeds --timeout): it is \
            built, checked against OpenBLAS and timed (median of --repetitions runs); a wrong or failing \
            candidate is recorded as failed. The search starts from the dispatcher's current choice and the \
            best configurations of the nearest tuned shapes (--transfer), so tuning never stores something \
            slower than what it had. Every evaluation is journaled in Kernel Tuner's cache format under \
            --journal-dir; running the same command again resumes without measuring anything twice. At the end \
            the --confirm fastest candidates are timed again in three interleaved rounds (so one lucky \
            measurement does not decide), and the best median per shape is merged into --output (default: \
            the user's database for this device).
            """
    )

    @Option(help: "Problem shape MxNxK.") var shape: Shape?
    @Option(help: "A file with one MxNxK shape per line (# starts a comment).") var shapesFile: String?
    @Option(help: "half or single.") var precision: Precision = .half
    @Option(help: "nn, nt, tn or tt.") var layout: GEMMLayout = .nn
    @Option(help: "Batch count.") var batch = 1
    @Option(help: "Search strategy: \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var strategy: StrategyKind = .evolutionary
    @Option(help: "Unique configurations to evaluate per shape.") var budget = 60
    @Option(help: "Wall-clock limit per shape in seconds (the run ends at the budget or the limit, whichever comes first).")
    var timeLimit: Double?
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Timed runs per candidate.") var repetitions = 3
    @Option(help: "Seconds a candidate may take before its worker is killed and restarted.") var timeout = 120.0
    @Option(help: "How many of the nearest tuned shapes seed the search; 0 starts from the device default alone, ignoring the databases.")
    var transfer = 3
    @Option(help: "How many of the fastest candidates are timed again in 3 interleaved rounds before the best is chosen (0 or 1: take the search's best as measured).")
    var confirm = 4
    @Option(help: "Database file to merge the results into.") var output: String?
    @Option(help: "Folder of the evaluation journals (default: <cache>/journal/<device>).") var journalDir: String?
    @Option(help: "Write an SVG convergence plot (best time so far per shape).") var plot: String?
    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        guard shape != nil || shapesFile != nil else { throw ValidationError("give --shape or --shapes-file") }
        guard budget >= 1 else { throw ValidationError("--budget must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard transfer >= 0 else { throw ValidationError("--transfer must not be negative") }
        guard confirm >= 0 else { throw ValidationError("--confirm must not be negative") }
        if let timeLimit, !(timeLimit > 0) { throw ValidationError("--time-limit must be positive") }
    }

    func shapes() throws -> [Shape] {
        var shapes = shape.map { [$0] } ?? []
        if let shapesFile { shapes += try Shape.read(file: shapesFile) }
        return shapes
    }

    struct Best: Encodable { let config: Configuration; let seconds: Double; let gflops: Double }
    struct Report: Encodable {
        let kernel: String, device: String, problem: String, strategy: String, budget: Int
        /// Unique configurations evaluated, of which `measured` were run now and the rest read from the journal.
        let evaluations: Int, measured: Int, from_journal: Int, failures: Int, seeds: Int
        /// How many of the fastest candidates were timed again before the best was chosen.
        let confirmed: Int
        let best: Best?
        let history: [Double?]
        let journal: String
    }

    func run() throws {
        let context = try Context()
        let gemm = try GEMM(context: context)
        let path = output ?? TuningDatabase.userDatabasePath(for: context.device)
        let journals = journalDir ?? ProgramCache.cacheRoot() + "/journal/\(context.device.slug)"
        var reports: [Report] = []
        for shape in try shapes() {
            let problem = GEMMProblem(m: shape.m, n: shape.n, k: shape.k, batch: batch, precision: precision, layout: layout)
            reports.append(try tune(problem, gemm: gemm, databasePath: path, journals: journals))
        }
        if let plot {
            let series = reports.map { r in ConvergencePlot.Series(name: r.problem, values: r.history.map { $0.map { $0 * 1000 } }) }
            try ConvergencePlot(title: "gemm on \(context.device.name): \(strategy.rawValue), budget \(budget)",
                                xLabel: "unique evaluations", yLabel: "best time so far (ms)", series: series, logY: true).write(to: plot)
        }
        if outputOptions.json {
            if reports.count == 1 { try printJSON(reports[0]) } else {
                struct Many: Encodable { let kernel: String; let results: [Report] }
                try printJSON(Many(kernel: "gemm", results: reports))
            }
            return
        }
        print(table(["problem", "best GFLOP/s", "ms", "evaluations", "measured", "failures", "best configuration"], reports.map { r in
            [r.problem, format(r.best?.gflops, 1), format(r.best.map { $0.seconds * 1000 }, 3), "\(r.evaluations)", "\(r.measured)",
             "\(r.failures)", r.best.map { "\($0.config)" } ?? "-"]
        }))
        print("saved to \(path)")
    }

    /// The path of this executable, to start workers from.
    private static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    private func tune(_ problem: GEMMProblem, gemm: GEMM, databasePath: String, journals: String) throws -> Report {
        let device = gemm.context.device
        let space = TuningSpace(searchSpaces: GEMMSpace.spaces(limits: gemm.limits, precision: problem.precision))
        let columns = space.kernelTunerColumns
        let journalPath = journals + "/gemm-\(problem.precision.rawValue)-\(problem.layout.rawValue)-\(problem.m)x\(problem.n)x\(problem.k)"
            + (problem.batch > 1 ? "-b\(problem.batch)" : "") + ".json"
        let journal = try KernelTunerJournal(path: journalPath, header: KernelTunerCache(
            deviceName: device.name, kernelName: "gemm", problemSize: [problem.m, problem.n, problem.k, problem.batch],
            parameterNames: columns.names, parameterValues: columns.values))
        var known: [Candidate: EvaluationOutcome] = [:]
        for entry in journal.entries.values {
            guard let candidate = space.candidate(kernelTunerLabels: entry.labels, names: columns.names) else { continue }
            known[candidate] = entry.time.map { .seconds($0 / 1000) } ?? .failed(entry.failure ?? "failed")
        }

        // Seeds: the dispatcher's current choice, then the best of the nearest tuned shapes.
        var database = gemm.database
        if let file = try TuningDatabase.read(path: databasePath) { database.overlay(file, source: databasePath) }
        let nearest = database.nearest(kernel: "gemm", precision: problem.precision.rawValue, layout: problem.layout.rawValue,
                                       shape: [problem.m, problem.n, problem.k], batch: problem.batch, count: transfer)
        let current = transfer == 0 ? try GEMM(context: gemm.context, database: TuningDatabase()).configuration(for: problem).0
            : gemm.configuration(for: problem).0
        var initial: [Candidate] = []
        for configuration in [current] + nearest.map(\.config) {
            if let candidate = space.candidate(configuration), !initial.contains(candidate) { initial.append(candidate) }
        }

        let worker = WorkerProcess(executable: Self.executablePath(), arguments: [
            "worker", "gemm", "--shape", "\(problem.m)x\(problem.n)x\(problem.k)", "--batch", "\(problem.batch)",
            "--precision", problem.precision.rawValue, "--layout", problem.layout.rawValue, "--repetitions", "\(repetitions)",
        ])
        defer { worker.stop() }
        let evaluator = WorkerEvaluator(worker: worker, timeout: timeout)
        let bar = ProgressBar(total: budget, label: "gemm \(problem)")
        bar.log("tune gemm \(problem) on \(device.name): \(strategy.rawValue), budget \(budget), \(known.count) journaled, "
                + "\(initial.count) seeds; journal \(journalPath)")
        var bestSoFar: Double?
        let session = SearchSession(space: space, seed: seed, budget: TuningBudget(evaluations: budget, seconds: timeLimit), known: known) { candidate in
            guard let configuration = space.configuration(candidate) else { return .failed("not a GEMM configuration") }
            let result = try evaluator.evaluate(configuration, cutoff: bestSoFar.map { 4 * $0 + 0.05 })
            try journal.record(KernelTunerCache.Entry(
                labels: space.kernelTunerLabels(candidate), time: result.outcome.seconds.map { $0 * 1000 },
                failure: result.failureKind, times: result.outcome.seconds.map { [$0 * 1000] } ?? [],
                compileTime: result.compileSeconds.map { $0 * 1000 }, extra: result.gflops.map { ["GFLOP/s": $0] } ?? [:]))
            return result.outcome
        }
        var measured = 0, failures = 0
        session.onEvaluation = { record in
            if !record.fromJournal { measured += 1 }
            let improved = record.value != nil && record.value == record.best && record.best != bestSoFar
            bestSoFar = record.best
            let configuration = space.configuration(record.candidate).map { "\($0)" } ?? "\(record.candidate)"
            if let failure = record.failure {
                failures += 1
                bar.log("  [\(record.number)/\(self.budget)] failed (\(record.strategy)): \(configuration): \(failure.prefix(160))")
            } else if improved, let value = record.value {
                bar.log("  [\(record.number)/\(self.budget)] new best \(format(problem.flops / value * 1e-9, 1)) GFLOP/s (\(record.strategy)): \(configuration)")
            }
            bar.update(done: record.number, status: bestSoFar.map { "best \(format(problem.flops / $0 * 1e-9, 1)) GFLOP/s" } ?? "")
        }
        try runSearch(strategy.make(), in: session, initial: initial)
        bar.finish()
        try journal.close()
        let (confirmed, chosen) = try confirmBest(session: session, space: space, evaluator: evaluator, bar: bar)

        var best: Best?
        if let (candidate, seconds) = chosen, let configuration = space.configuration(candidate) {
            best = Best(config: configuration, seconds: seconds, gflops: problem.flops / seconds * 1e-9)
            try TuningDatabase.merge([TuningEntry(kernel: "gemm", precision: problem.precision.rawValue, layout: problem.layout.rawValue,
                                                  shape: [problem.m, problem.n, problem.k], batch: problem.batch, config: configuration,
                                                  seconds: seconds, gflops: problem.flops / seconds * 1e-9)],
                                     into: databasePath, device: device.name)
        }
        return Report(kernel: "gemm", device: device.name, problem: problem.description, strategy: strategy.rawValue, budget: budget,
                      evaluations: session.evaluations, measured: measured, from_journal: session.evaluations - measured,
                      failures: failures, seeds: initial.count, confirmed: confirmed, best: best, history: session.history, journal: journalPath)
    }

    /// One noisy measurement can crown a lucky candidate (the winner's curse of picking the minimum of
    /// many noisy times), so the `--confirm` fastest distinct candidates are timed again in three
    /// interleaved rounds and the best median of the new times wins. Returns how many were re-timed
    /// and the choice (the search's best when there is nothing to confirm or no re-timing succeeded).
    private func confirmBest(session: SearchSession, space: TuningSpace, evaluator: WorkerEvaluator,
                             bar: ProgressBar) throws -> (Int, (Candidate, Double)?) {
        var finalists: [Candidate] = []
        for record in session.records.filter({ $0.value != nil }).sorted(by: { $0.value! < $1.value! })
        where finalists.count < confirm && !finalists.contains(record.candidate) {
            finalists.append(record.candidate)
        }
        guard finalists.count > 1 else { return (0, session.best) }
        bar.log("  confirming the \(finalists.count) fastest in 3 interleaved rounds")
        var times = [[Double]](repeating: [], count: finalists.count)
        try forEachInterleaved(count: finalists.count, rounds: 3) { index, _ in
            guard let configuration = space.configuration(finalists[index]) else { return }
            if let seconds = try evaluator.evaluate(configuration, cutoff: nil).outcome.seconds { times[index].append(seconds) }
        }
        let timed = finalists.indices.filter { !times[$0].isEmpty }
        guard let winner = timed.min(by: { median(times[$0]) < median(times[$1]) }) else { return (finalists.count, session.best) }
        for index in timed {
            let configuration = space.configuration(finalists[index]).map { "\($0)" } ?? ""
            bar.log("    \(format(median(times[index]) * 1000, 3)) ms\(index == winner ? " (chosen)" : ""): \(configuration)")
        }
        return (finalists.count, (finalists[winner], median(times[winner])))
    }
}

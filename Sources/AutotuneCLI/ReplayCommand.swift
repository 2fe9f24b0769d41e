import ArgumentParser
import Autotuning
import Foundation
import TunedKernels

extension StrategyKind: ExpressibleByArgument {}

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a search strategy against a recorded search space (Kernel Tuner cache file) for many seeds.",
        discussion: """
            Each first visit of a configuration costs one evaluation and reads the time the file recorded; \
            recorded failures cost an evaluation and find nothing. Reports the median fraction of the optimum \
            (optimum time / best time found) at the budget over the seeds, the same for random search \
            (computed exactly, not sampled), and the autotuning-methodology score: the strategy's mean best \
            time measured against random search and the optimum, (random - strategy) / (random - optimum), \
            averaged over budgets 1...N (0 = random search, 1 = the optimum at once). With several files, each \
            file's table is followed by the mean over the files of each strategy's fractions at 20, 50, 100 and 200 \
            evaluations and of its score (--json: {"budget", "seeds", "files": [one report each], "mean": [...]}).
            """
    )

    @Argument(help: "Kernel Tuner cache files (.json or .json.gz).") var files: [String]
    @Option(help: "Search strategy: \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")); or all.")
    var strategy = TuningOptions.defaultStrategy.rawValue
    @Option(help: "Unique evaluations per run.") var budget = 100
    @Option(help: "Number of seeds (runs 1...K).") var seeds = 50
    @Flag(help: "Replay a file that is not a complete recorded space (truncated, or a journal still being written).")
    var allowIncomplete = false
    @Option(help: "Write an SVG convergence plot (median best time so far, one line per strategy).") var plot: String?
    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        guard budget >= 1 else { throw ValidationError("--budget must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard !files.isEmpty else { throw ValidationError("give at least one recorded space") }
        guard plot == nil || files.count == 1 else { throw ValidationError("--plot draws one file's runs: give one file") }
        guard strategy == "all" || StrategyKind(rawValue: strategy) != nil else {
            throw ValidationError("unknown --strategy \(strategy); use one of \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")) or all")
        }
    }

    struct Report: Encodable {
        let file: String, budget: Int, seeds: Int
        let optimum_seconds: Double
        let random_median_fraction_of_optimum: Double
        let configurations: Int
        let results: [StrategyReport]
    }

    struct StrategyReport: Encodable {
        let strategy: String
        let median_fraction_of_optimum: Double
        let score: Double
        /// The median fraction of the optimum at 20, 50, 100 and 200 evaluations (those within the budget) and at the budget.
        let fractions_at: [String: Double]
        /// Median fraction of the optimum after each evaluation.
        let curve: [Double]
    }

    /// The evaluation counts reported: 20, 50, 100 and 200 below the budget, and the budget.
    var marks: [Int] { [20, 50, 100, 200].filter { $0 < budget } + [budget] }

    /// One row per strategy: its fractions of the optimum at ``marks`` and its score.
    func fractionTable(_ rows: [(strategy: String, fractions: [String: Double], score: Double)]) -> String {
        table(["strategy"] + marks.map { "@\($0)" } + ["score"], rows.map { row in
            [row.strategy] + marks.map { format(row.fractions["\($0)"], 3) } + [format(row.score, 3)]
        })
    }

    struct MeanReport: Encodable {
        let strategy: String
        let fractions_at: [String: Double]
        let score: Double
    }

    struct MultiReport: Encodable {
        let budget: Int, seeds: Int
        let files: [Report]
        let mean: [MeanReport]
    }

    func run() throws {
        if let plot { try WritablePath.check(plot, what: "--plot") }
        let kinds = strategy == "all" ? StrategyKind.allCases : [StrategyKind(rawValue: strategy)!]
        var reports: [Report] = []
        for file in files {
            let cache = try KernelTunerCache.read(path: file)
            let replay = try Replay(cache: cache, allowIncomplete: allowIncomplete)
            let randomAtBudget = replay.fraction(replay.randomSearch(draws: budget).median)
            var results: [StrategyReport] = []
            var allRuns: [Replay.Runs] = []
            for kind in kinds {
                let runs = replay.run(kind, budget: budget, seeds: seeds)
                allRuns.append(runs)
                let curve = replay.medianFractions(runs, budget: budget)
                results.append(StrategyReport(strategy: kind.rawValue, median_fraction_of_optimum: curve.last ?? 0,
                                              score: replay.score(runs, budget: budget),
                                              fractions_at: Dictionary(uniqueKeysWithValues: marks.map { ("\($0)", curve[$0 - 1]) }), curve: curve))
            }
            if let plot { try writePlot(plot, replay: replay, runs: allRuns, cache: cache) }
            let report = Report(file: file, budget: budget, seeds: seeds, optimum_seconds: replay.optimum,
                                random_median_fraction_of_optimum: randomAtBudget, configurations: replay.space.points.count, results: results)
            reports.append(report)
            if !outputOptions.json {
                print("\(cache.kernelName) on \(cache.deviceName): \(replay.space.points.count) configurations, optimum \(format(replay.optimum * 1000, 4)) ms")
                print("budget \(budget), \(seeds) seeds; median fraction of optimum (random search: \(format(randomAtBudget, 3)))")
                print(fractionTable(results.map { ($0.strategy, $0.fractions_at, $0.score) }))
                if files.count > 1 { print("") }
            }
        }
        let mean = kinds.map { kind in
            let results = reports.map { $0.results.first { $0.strategy == kind.rawValue }! }
            func average(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
            return MeanReport(strategy: kind.rawValue,
                              fractions_at: Dictionary(uniqueKeysWithValues: marks.map { mark in ("\(mark)", average(results.map { $0.fractions_at["\(mark)"]! })) }),
                              score: average(results.map(\.score)))
        }
        if outputOptions.json {
            if reports.count == 1 { return try printJSON(reports[0]) }
            return try printJSON(MultiReport(budget: budget, seeds: seeds, files: reports, mean: mean))
        }
        if files.count > 1 {
            print("mean over \(files.count) files, budget \(budget), \(seeds) seeds")
            print(fractionTable(mean.map { ($0.strategy, $0.fractions_at, $0.score) }))
        }
    }

    private func writePlot(_ path: String, replay: Replay, runs: [Replay.Runs], cache: KernelTunerCache) throws {
        let random = (1...budget).map { Optional(replay.randomSearch(draws: $0).median * 1000) }
        var series = [ConvergencePlot.Series(name: "random (exact median)", values: random)]
        for run in runs {
            let values = (1...budget).map { b -> Double? in
                let best = median(run.bestTimes(at: b))
                return best.isFinite ? best * 1000 : nil
            }
            series.append(ConvergencePlot.Series(name: run.strategy, values: values))
        }
        let plot = ConvergencePlot(title: "\(cache.kernelName) on \(cache.deviceName): median of \(seeds) seeds",
                                   xLabel: "unique evaluations", yLabel: "best time so far (ms)", series: series,
                                   references: [.init(label: "optimum", value: replay.optimum * 1000)], logY: true)
        try plot.write(to: path)
    }
}

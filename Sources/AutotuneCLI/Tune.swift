import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

enum TuneVerb: FamilyVerb {
    static let name = "tune"
    static let abstract = "Search kernel configurations per problem and store the best in the tuning database."
    static func command<Family: KernelFamily>(_ family: Family.Type) -> any ParsableCommand.Type { TuneFamily<Family>.self }
}

/// `autotune tune <family>`: a thin face of ``Tuner``.
struct TuneFamily<Family: KernelFamily>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Family.name,
            abstract: "Tune \(Family.name) for one or more problems on the selected device.",
            discussion: """
                Each candidate runs in a worker process (restarted when it crashes or exceeds --timeout): it is \
                built, checked against the family's CPU reference and timed (median of --repetitions runs, at least \
                20 ms of them); a wrong or failing candidate is recorded as failed, with its status. The search starts \
                from the dispatcher's current choice and the best configurations of the nearest tuned problems \
                (--transfer). Every evaluation is journaled in Kernel Tuner's cache format under --journal-dir, keyed \
                by the family, problem, device, driver and kernel source; running the same command again resumes \
                without measuring anything twice. A failure of the environment (kernel sources missing, no device) \
                stops the run and is not journaled. At the end the --confirm fastest candidates are timed again in \
                three interleaved rounds, and the best median per problem is merged into --output (default: the \
                user's database for this device). A family of several kernel roles (\(Family.roles.count > 1 ? Family.name + ": " + Family.roles.map(\.name).joined(separator: ", ") : "not this one")) \
                has each role tuned in turn, the roles it depends on first (each with --budget evaluations), or the \
                --role given alone, on the dispatcher's current choices of the roles it depends on.

                """ + FamilyHelp.problemOptions(Family.self)
        )
    }

    @Option(help: "A file with one problem per line: the family's main option alone (e.g. 1024x1024x1024), problem options, or a JSON problem; the command line's problem options apply under each line (# starts a comment).")
    var shapesFile: String?
    @Option(help: "Tune this kernel role alone (\(Family.roles.map(\.name).joined(separator: ", "))); default: every role in turn.")
    var role: String?
    @Option(help: "Search strategy: \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var strategy: StrategyKind = TuningOptions.defaultStrategy
    @Option(help: "Unique configurations to evaluate per problem (and per kernel role).") var budget = 60
    @Option(help: "Wall-clock limit per problem in seconds (the run ends at the budget or the limit, whichever comes first).")
    var timeLimit: Double?
    @Option(help: "Random seed of the search.") var seed: UInt64 = 1
    @Option(help: "Timed runs per candidate.") var repetitions = 3
    @Option(help: "Seconds a candidate may take before its worker is killed and restarted.") var timeout = 120.0
    @Option(help: "How many of the nearest tuned problems seed the search; 0 starts from the device default alone.")
    var transfer = 3
    @Option(help: "How many of the fastest candidates are timed again in 3 interleaved rounds before the best is chosen (0 or 1: the search's best as measured).")
    var confirm = 4
    @Option(help: "Database file to merge the results into (default: the user's database of the device).") var output: String?
    @Option(help: "Folder of the evaluation journals (default: <cache>/journal).") var journalDir: String?
    @Option(help: "Write an SVG convergence plot (best time so far per problem).") var plot: String?
    @OptionGroup var outputOptions: OutputOptions
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The problem options (see above).", visibility: .hidden))
    var problemWords: [String] = []

    func validate() throws {
        if let role, Family.role(named: role) == nil {
            throw ValidationError("--role \(role): \(Family.name) has the roles \(Family.roles.map(\.name).joined(separator: ", "))")
        }
        do { try options().validate() } catch let error as TuningOptionsError { throw ValidationError(error.message) }
        _ = try FamilyHelp.problems(Family.self, words: problemWords, file: shapesFile)
    }

    func options() -> TuningOptions {
        var options = TuningOptions()
        options.strategy = strategy
        options.budget = budget
        options.timeLimit = timeLimit
        options.seed = seed
        options.repetitions = repetitions
        options.timeout = timeout
        options.transfer = transfer
        options.confirm = confirm
        options.databasePath = output
        options.journalDirectory = journalDir
        options.isolation = .process(executable: TuningOptions.Isolation.executablePath, arguments: ["worker"])
        return options
    }

    struct Report: Encodable {
        let kernel: String, device: String, strategy: String, budget: Int
        let database: DatabaseOrigin
        let results: [TuningResult<Family.Problem>]
    }

    func run() throws {
        let problems = try FamilyHelp.problems(Family.self, words: problemWords, file: shapesFile)
        if let plot { try WritablePath.check(plot, what: "--plot") }
        let context = try Context()
        let family = try Family(context: context)
        for problem in problems { try family.check(problem) }
        let tuner = try Tuner(family, options: options())
        var results: [TuningResult<Family.Problem>] = []
        let roles = role.flatMap(Family.role(named:)).map { [$0] } ?? Family.roles
        for problem in problems {
            for role in roles {
                let bar = ProgressBar(total: budget, label: "\(Family.name)\(Family.roles.count > 1 ? " " + role.name : "") \(problem)")
                tuner.observer = bar
                results.append(try tuner.tune(problem, role: role))
            }
        }
        // The report first: a plot that cannot be written (the path was checked, but a disk can fill) loses nothing.
        func writePlot() throws {
            guard let plot else { return }
            let series = results.map { r in ConvergencePlot.Series(name: "\(r.problem)" + (Family.roles.count > 1 ? " \(r.role)" : ""), values: r.history.map { $0.map { $0 * 1000 } }) }
            do {
                try ConvergencePlot(title: "\(Family.name) on \(context.device.name): \(strategy.rawValue), budget \(budget)",
                                    xLabel: "unique evaluations", yLabel: "best time so far (ms)", series: series, logY: true).write(to: plot)
            } catch {
                throw ValidationError("--plot \(plot) could not be written: \(error.localizedDescription)")
            }
            if !outputOptions.json { print("convergence plot: \(plot)") }
        }
        if outputOptions.json {
            try printJSON(Report(kernel: Family.name, device: context.device.name, strategy: strategy.rawValue, budget: budget,
                                 database: family.core.origin, results: results))
            try writePlot()
            return
        }
        let roleColumn = Family.roles.count > 1
        print(table(["problem"] + (roleColumn ? ["role"] : []) + ["best", "ms", "evaluations", "measured", "failures", "best configuration"], results.map { r in
            [r.problem.description] + (roleColumn ? [r.role] : []) + [r.best.map { Family.work(r.problem, role: Family.role(named: r.role) ?? Family.roles[0]).rate($0.seconds) } ?? "-", format(r.best.map { $0.seconds * 1000 }, 3),
             "\(r.evaluations)", "\(r.measured)", "\(r.failures)", r.best.map { "\($0.config)" } ?? "-"]
        }))
        let saved = results.filter { $0.savedTo != nil }.count
        print(saved == 0 ? "nothing saved: no candidate succeeded" : "saved \(saved) of \(results.count) results to \(tuner.databasePath)")
        try writePlot()
    }
}

extension ProgressBar: TuningObserver {
    func progress(done: Int, total: Int, status: String) { update(done: done, status: status) }
    func finished() { finish() }
}

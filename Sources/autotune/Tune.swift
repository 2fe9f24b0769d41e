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
            Each candidate is built, checked against OpenBLAS and timed (median of --repetitions runs); a \
            wrong or failing candidate is recorded and skipped. The dispatcher's current choice is always \
            evaluated first, so tuning never stores something slower than what it had. The best configuration \
            per shape is merged into --output (default: the user's database for this device).
            """
    )

    enum Strategy: String, ExpressibleByArgument, CaseIterable { case random }

    @Option(help: "Problem shape MxNxK.") var shape: Shape?
    @Option(help: "A file with one MxNxK shape per line (# starts a comment).") var shapesFile: String?
    @Option(help: "half or single.") var precision: Precision = .half
    @Option(help: "nn, nt, tn or tt.") var layout: GEMMLayout = .nn
    @Option(help: "Search strategy.") var strategy: Strategy = .random
    @Option(help: "Unique configurations to evaluate per shape.") var budget = 30
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Timed runs per candidate.") var repetitions = 3
    @Option(help: "Database file to merge the results into.") var output: String?
    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        guard shape != nil || shapesFile != nil else { throw ValidationError("give --shape or --shapes-file") }
        guard budget >= 1 else { throw ValidationError("--budget must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
    }

    func shapes() throws -> [Shape] {
        var shapes = shape.map { [$0] } ?? []
        if let shapesFile {
            guard let text = try? String(contentsOfFile: shapesFile, encoding: .utf8) else {
                throw ValidationError("cannot read --shapes-file \(shapesFile)")
            }
            for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                    .trimmingCharacters(in: .whitespaces) ?? ""
                if line.isEmpty { continue }
                guard let parsed = Shape(argument: line) else {
                    throw ValidationError("\(shapesFile):\(number + 1): \"\(line)\" is not MxNxK")
                }
                shapes.append(parsed)
            }
        }
        return shapes
    }

    struct Best: Encodable { let config: Configuration; let seconds: Double; let gflops: Double }
    struct Report: Encodable {
        let kernel: String, device: String, problem: String, strategy: String, budget: Int, evaluations: Int, failures: Int
        let best: Best?, history: [Double?]
    }

    func run() throws {
        let context = try Context()
        let gemm = try GEMM(context: context)
        let path = output ?? TuningDatabase.userDatabasePath(for: context.device)
        var reports: [Report] = []
        for shape in try shapes() {
            let problem = GEMMProblem(m: shape.m, n: shape.n, k: shape.k, precision: precision, layout: layout)
            reports.append(try tune(problem, gemm: gemm, databasePath: path))
        }
        if outputOptions.json {
            if reports.count == 1 { try printJSON(reports[0]) } else {
                struct Many: Encodable { let kernel: String; let results: [Report] }
                try printJSON(Many(kernel: "gemm", results: reports))
            }
            return
        }
        print(table(["problem", "best GFLOP/s", "seconds", "evaluations", "failures", "best configuration"], reports.map { r in
            [r.problem, format(r.best?.gflops, 1), format(r.best?.seconds, 5), "\(r.evaluations)", "\(r.failures)", r.best.map { "\($0.config)" } ?? "-"]
        }))
        print("saved to \(path)")
    }

    private func tune(_ problem: GEMMProblem, gemm: GEMM, databasePath: String) throws -> Report {
        let harness = try GEMMHarness(gemm: gemm, problem: problem)
        let spaces = GEMMSpace.spaces(limits: gemm.limits, precision: problem.precision)
        var generator = SplitMix64(seed: seed)
        var seen = Set<Configuration>()
        var candidates = [gemm.configuration(for: problem).0]
        var best: GEMMHarness.Measurement?
        var history: [Double?] = []
        var failures = 0
        var misses = 0
        progress("tune gemm \(problem) on \(gemm.context.device.name): \(strategy.rawValue), budget \(budget)")
        while seen.count < budget && misses < 10 * budget {
            let candidate = candidates.popLast() ?? spaces.randomElement(using: &generator)!.randomConfiguration(using: &generator)
            guard let candidate, !seen.contains(candidate) else { misses += 1; continue }
            seen.insert(candidate)
            do {
                let measured = try harness.measure(candidate, warmup: 1, repetitions: repetitions, cutoff: best.map { 4 * $0.seconds + 0.05 })
                if !measured.isCorrect {
                    failures += 1
                    progress("  [\(seen.count)/\(budget)] wrong result (error \(measured.maxAbsError)): \(candidate)")
                } else if best == nil || measured.seconds < best!.seconds {
                    best = measured
                    progress("  [\(seen.count)/\(budget)] new best \(format(measured.gflops, 1)) GFLOP/s: \(candidate)")
                }
            } catch {
                failures += 1
                progress("  [\(seen.count)/\(budget)] failed: \(candidate): \(String(describing: error).prefix(200))")
            }
            history.append(best?.seconds)
        }
        if let best {
            try TuningDatabase.merge([TuningEntry(kernel: "gemm", precision: problem.precision.rawValue, layout: problem.layout.rawValue,
                                                  shape: [problem.m, problem.n, problem.k], batch: problem.batch, config: best.configuration,
                                                  seconds: best.seconds, gflops: best.gflops)],
                                     into: databasePath, device: gemm.context.device.name)
        }
        return Report(kernel: "gemm", device: gemm.context.device.name, problem: problem.description, strategy: strategy.rawValue,
                      budget: budget, evaluations: seen.count, failures: failures,
                      best: best.map { Best(config: $0.configuration, seconds: $0.seconds, gflops: $0.gflops) }, history: history)
    }
}

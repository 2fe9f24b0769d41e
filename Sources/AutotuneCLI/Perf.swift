import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

/// `autotune perf`: the performance-regression suite, generated from the registry (every family's
/// ``KernelFamily/performanceCases``). `scripts/perf-check.sh` is its front end.
struct PerfCommand<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "perf",
            abstract: "The performance-regression suite: list, run, compare two builds (A/B), check against a device's baseline.",
            discussion: """
                Exit status of compare and check: 0 no regression, 2 a regression (or a gate that failed), any other an error \
                (64 a bad option). \
                See README, "Performance regression tests".
                """,
            subcommands: [PerfList<Registry>.self, PerfRun<Registry>.self, PerfCompare<Registry>.self, PerfCheck<Registry>.self,
                          PerfReference.self, PerfServe<Registry>.self])
    }
}

/// The exit status of a check that found a regression.
let regressionExitCode = ExitCode(2)

/// Selects cases by id or id prefix (`gemm/`, `cce/backward/`).
struct CaseOptions: ParsableArguments {
    @Option(name: .customLong("case"), help: ArgumentHelp("Only the cases whose id starts with this (repeatable); default every case.", valueName: "id"))
    var cases: [String] = []

    func select<Case>(_ all: [Case], id: (Case) -> String) throws -> [Case] {
        guard !cases.isEmpty else { return all }
        for prefix in cases where !all.contains(where: { id($0).hasPrefix(prefix) }) {
            throw ValidationError("--case \(prefix): no case of the suite starts with it; its cases are " + all.map(id).joined(separator: ", "))
        }
        return all.filter { entry in cases.contains { id(entry).hasPrefix($0) } }
    }

    func select(_ all: [SuiteCase]) throws -> [SuiteCase] { try select(all, id: \.id) }
}

/// The suite's measuring options.
struct MeasureOptions: ParsableArguments {
    @Option(help: "Timed calls per sample (more, until they add up to 0.05 s).") var repetitions = 5
    @Option(help: "Untimed calls per sample before the timed ones, the first included (it builds the kernels and is checked).") var warmup = 2
    @Option(help: "Seed of the inputs.") var seed: UInt64 = 42

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be at least 0") }
    }

    var suite: SuiteOptions {
        var options = SuiteOptions()
        options.repetitions = repetitions
        options.warmup = warmup
        options.seed = seed
        return options
    }
}

/// `autotune perf list`
struct PerfList<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(commandName: "list", abstract: "List the suite's cases.") }
    @OptionGroup var output: OutputOptions

    struct Entry: Codable {
        let id: String
        let family: String
        let role: String?
        /// The case's name within its family, without the role (compare's name of a whole call).
        let label: String
        let bound: PerformanceBound
        let problem: String
        let flops: Double
        let bytes: Double
    }

    struct Listing: Codable {
        var format = 1
        let cases: [Entry]
    }

    static var entries: [Entry] {
        PerformanceSuite.cases(Registry.families).map {
            Entry(id: $0.id, family: $0.family, role: $0.role, label: $0.label, bound: $0.bound, problem: $0.problem, flops: $0.work.flops, bytes: $0.work.bytes)
        }
    }

    func run() throws {
        let entries = Self.entries
        if output.json { return try printJSON(Listing(cases: entries)) }
        print(table(["case", "bound", "GFLOP", "MB", "problem"], entries.map {
            [$0.id, $0.bound.rawValue, format($0.flops * 1e-9, 3), format($0.bytes * 1e-6, 1), $0.problem]
        }))
    }
}

/// What `perf run --json` prints: one sample of each case, measured in this process.
struct PerfRunReport: Codable {
    var format = 1
    var device: DeviceIdentity
    var samples: [SuiteSample]
}

/// `autotune perf run`
struct PerfRun<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "run", abstract: "Measure the suite's cases once, in this process (what compare runs in each round).")
    }
    @OptionGroup var selection: CaseOptions
    @OptionGroup var measuring: MeasureOptions
    @Flag(help: "Also measure each case's in-run reference (FMA throughput or streaming read).") var references = false
    @Flag(help: "Also check that each case's defaults, without any tuning database, pass.") var defaults = false
    @OptionGroup var output: OutputOptions

    func run() throws {
        let cases = try selection.select(PerformanceSuite.cases(Registry.families))
        let context = try Context()
        var options = measuring.suite
        options.references = references
        options.checkDefaults = defaults
        progress("perf run: \(cases.count) cases on \(context.device.name)")
        let samples = try PerformanceSuite.run(cases, context: context, options: options, progress: progress)
        let report = PerfRunReport(device: context.device.identity, samples: samples)
        if output.json { try printJSON(report); return }
        print(table(["case", "ms", "wall ms", "launches", "x reference", "correct", "configuration"], samples.map { s in
            [s.id, format(s.seconds * 1000, 4), format(s.wallSeconds * 1000, 4), "\(s.launches)", format(s.relative, 3), s.passed ? "yes" : "NO",
             s.configurations.map { "\($0.config)" }.joined(separator: " + ")]
        }))
    }
}

/// `autotune perf serve` (hidden): what `perf compare` runs on each side, one process per side and round. It reads a
/// case id per line on stdin and answers one line of JSON (``PerfServeReply``) after measuring one sample; it exits
/// when stdin ends or its parent is gone.
struct PerfServe<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "serve", abstract: "Measure the cases named on stdin, one sample each (started by perf compare).",
                             shouldDisplay: false)
    }
    @OptionGroup var measuring: MeasureOptions

    func run() throws {
        ParentWatchdog.start(expectedParent: ParentWatchdog.expectedParentFromEnvironment())
        let cases = PerformanceSuite.cases(Registry.families)
        var context: Context?
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while let line = readLine() {
            let id = line.trimmingCharacters(in: .whitespaces)
            var reply = PerfServeReply()
            var measured = false
            do {
                guard let entry = cases.first(where: { $0.id == id }) else {
                    throw ValidationError("no case \(id) in this build's suite")
                }
                measured = true
                if context == nil { context = try Context() }
                reply.sample = try PerformanceSuite.run([entry], context: context!, options: measuring.suite).first
            } catch {
                reply.error = "\(error)"
            }
            let data = (try? encoder.encode(reply)) ?? Data(#"{"error":"the reply could not be encoded"}"#.utf8)
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            // After a failed measurement the context may be unusable: the next request gets a fresh process.
            if measured && reply.error != nil { Foundation.exit(1) }
        }
    }
}

/// One answer of `perf serve`: a sample, or why there is none.
struct PerfServeReply: Codable {
    var sample: SuiteSample?
    var error: String?
}

/// `autotune perf reference`: the suite's in-run references on their own, checked (the oclgrind test runs it).
struct PerfReference: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "reference",
                             abstract: "Measure and check the in-run references: our FMA throughput and a streaming read.")
    }
    @Option(help: "FMAs per chain of the throughput kernel.") var iterations = 1024
    @Option(help: "MiB of the streaming read.") var megabytes = 64

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard megabytes >= 1 else { throw ValidationError("--megabytes must be at least 1") }
    }

    func run() throws {
        let context = try Context()
        let references = try ReferenceKernels(context: context, iterations: iterations)
        let flops = try references.fmaThroughput()
        let bytes = Double(megabytes) * 1_048_576
        let read = try references.streamingReadSeconds(bytes: bytes)
        print(String(format: "%@: FMA throughput %.1f GFLOP/s, streaming read %.1f GB/s (%d MiB); sums checked: PASS",
                     context.device.name, flops * 1e-9, bytes / read * 1e-9, megabytes))
    }
}

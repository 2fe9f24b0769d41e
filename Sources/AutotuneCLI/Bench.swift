import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

enum BenchVerb: FamilyVerb {
    static let name = "bench"
    static let abstract = "Benchmark a kernel family against its baselines, measured in the same run on the same data."
    static func command<Family: KernelFamily>(_ family: Family.Type) -> any ParsableCommand.Type { BenchFamily<Family>.self }

    static func extra<Registry: FamilyRegistry>(_ registry: Registry.Type) -> [any ParsableCommand.Type] {
        [FamilyGroup<Registry, PerShapeVerb>.self]
    }
}

/// One row of a `bench` report.
struct BenchResult: Encodable {
    var name: String
    var seconds: Double?
    var gflops: Double?
    var bytes: Double?
    var gbps: Double?
    /// Against the family's CPU reference; null when the result holds NaN or infinity (see `error`).
    var max_abs_error: Double?
    var tolerance: Double?
    var peak_device_bytes: Int?
    var device_seconds: Double? = nil
    var config: Configuration? = nil
    var config_source: String? = nil
    /// The configuration of every kernel role of the call, with its source (written for families of several roles;
    /// `config` is then the last role's).
    var roles: [RoleChoice]? = nil
    var error: String? = nil
    /// The errors of the parts of a result (``Check/parts``), null where not finite, and their tolerances.
    var part_errors: [String: Double?]? = nil
    var part_tolerances: [String: Double]? = nil
    /// The harness's figures (``KernelHarness/metrics()``), written as keys of the row.
    var metrics: [String: Double] = [:]
    /// What a baseline ran, in words (``Baseline/Result/labels``), written as keys of the row.
    var labels: [String: String] = [:]
    /// What one call of the row does (not encoded): the rates' and the progress line's yardstick.
    let work: Work

    private enum CodingKeys: String, CodingKey {
        case name, seconds, gflops, bytes, gbps, max_abs_error, tolerance, peak_device_bytes, device_seconds, config, config_source, roles, error,
             part_errors, part_tolerances
    }

    private struct MetricKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    /// Like the synthesized encoding, except that a checked row's `max_abs_error` is written as null when the
    /// result holds NaN or infinity, rather than left out.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encodeIfPresent(seconds, forKey: .seconds)
        try container.encodeIfPresent(gflops, forKey: .gflops)
        try container.encodeIfPresent(bytes, forKey: .bytes)
        try container.encodeIfPresent(gbps, forKey: .gbps)
        if tolerance != nil { try container.encode(max_abs_error, forKey: .max_abs_error) }
        try container.encodeIfPresent(tolerance, forKey: .tolerance)
        try container.encodeIfPresent(peak_device_bytes, forKey: .peak_device_bytes)
        try container.encodeIfPresent(device_seconds, forKey: .device_seconds)
        try container.encodeIfPresent(config, forKey: .config)
        try container.encodeIfPresent(config_source, forKey: .config_source)
        try container.encodeIfPresent(roles, forKey: .roles)
        try container.encodeIfPresent(error, forKey: .error)
        try container.encodeIfPresent(part_errors, forKey: .part_errors)
        try container.encodeIfPresent(part_tolerances, forKey: .part_tolerances)
        var extra = encoder.container(keyedBy: MetricKey.self)
        for (key, value) in metrics.sorted(by: { $0.key < $1.key }) { try extra.encode(value, forKey: MetricKey(stringValue: key)) }
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) { try extra.encode(value, forKey: MetricKey(stringValue: key)) }
    }

    /// Whether the row's result failed its check (NaN, infinity, or beyond the tolerance).
    var isWrong: Bool {
        guard let tolerance else { return false }
        return max_abs_error.map { !($0 <= tolerance) } ?? true
    }

    /// A row of `seconds` with the rates of `work` and the check's error.
    init(name: String, seconds: Double?, work: Work, check: Check?, peakDeviceBytes: Int? = nil, error: String? = nil) {
        self.name = name
        self.seconds = seconds
        self.work = work
        gflops = seconds.flatMap(work.gflops)
        bytes = work.bytes > 0 ? work.bytes : nil
        gbps = seconds.flatMap(work.gbps)
        peak_device_bytes = peakDeviceBytes
        self.error = error
        if let check {
            tolerance = check.tolerance
            if check.maxAbsError.isFinite {
                max_abs_error = check.maxAbsError
            } else {
                self.error = self.error ?? "the result holds NaN or infinity"
            }
            if !check.parts.isEmpty {
                part_errors = check.parts.mapValues { $0.maxAbsError.isFinite ? $0.maxAbsError : nil }
                part_tolerances = check.parts.mapValues(\.tolerance)
            }
            if check.maxAbsError.isFinite && !(check.maxAbsError <= check.tolerance) {
                self.error = self.error ?? "error \(check.maxAbsError) above the tolerance \(check.tolerance)"
            }
            for (name, part) in check.parts.sorted(by: { $0.key < $1.key }) where !part.passed {
                self.error = self.error ?? "\(name): error \(part.maxAbsError) above the tolerance \(part.tolerance)"
            }
            if !check.passed {
                // A wrong result has no speed worth showing: its seconds stay, its rates go.
                gflops = nil
                gbps = nil
            }
        }
    }
}

/// Options of every `bench <family>`.
struct BenchOptions: ParsableArguments {
    @Option(help: "Timed runs per measurement.") var repetitions = 5
    @Option(help: "Rounds: our kernel, the --config rows and the baselines are timed once per round, interleaved, and the median over rounds is reported.")
    var rounds = 1
    @Option(name: .customLong("config"),
            help: ArgumentHelp("Also time this configuration, as JSON: '{\"variant\": \"packed\", \"MR\": 6, ...}', or a JSON array of one configuration per kernel role (the roles not given get the dispatcher's choice); repeatable, a row each.", valueName: "json"))
    var configs: [String] = []
    @Option(name: .customLong("skip"), help: ArgumentHelp("Skip the baseline of this name (repeatable), e.g. --skip clblast.", valueName: "name"))
    var skipped: [String] = []
    @Option(help: "Seed of the inputs.") var seed: UInt64 = 42
    @Option(name: .customLong("pass"),
            help: ArgumentHelp("Time one kernel role alone (attention and cce: forward or backward; the roles it needs run first, untimed), with that role's baselines.", valueName: "role"))
    var pass: String?
    @Flag(help: "Before every timed call of ours and of each --config, read through twice the last-level cache (the device's and, on a CPU, the host's), so memory-bound figures are not cache figures. The baselines run as they are (stream-read reads a buffer of its own).")
    var cold = false

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        _ = try configs.map { try decodeConfigurations($0) }
    }
}

/// `autotune bench <family>`: our dispatcher's choice, each `--config`, and the family's baselines, timed in
/// interleaved rounds on the same data; every row checks its own output (outputs are poisoned before each).
struct BenchFamily<Family: KernelFamily>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Family.name,
            abstract: "Time our \(Family.name) against its baselines on the same data.",
            discussion: "Seconds are medians of --repetitions runs after a warm-up (median over --rounds); errors are against the family's CPU reference.\n\n"
                + FamilyHelp.problemOptions(Family.self)
        )
    }

    @OptionGroup var bench: BenchOptions
    @OptionGroup var output: OutputOptions
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The problem options (see above).", visibility: .hidden))
    var problemWords: [String] = []

    func validate() throws {
        _ = try FamilyHelp.problems(Family.self, words: problemWords, file: nil)
    }

    struct Report: Encodable {
        let kernel: String
        let device: String
        let database: DatabaseOrigin
        let problem: Family.Problem
        /// The role timed alone (nil: the whole call).
        let pass: String?
        /// Bytes read before every timed call (`--cold`), nil without.
        let cold_bytes: Int?
        let results: [BenchResult]
    }

    func run() throws {
        let problem = try FamilyHelp.problems(Family.self, words: problemWords, file: nil)[0]
        let context = try Context()
        let family = try Family(context: context)
        try family.check(problem)
        progress("bench \(Family.name) \(problem) on \(context.device.name) (database: \(family.core.origin.summary))")
        if let pass = bench.pass, Family.role(named: pass) == nil {
            throw ValidationError("--pass \(pass): \(Family.name) has the roles " + Family.roles.map(\.name).joined(separator: ", "))
        }
        let harness = try family.harness(problem, seed: bench.seed)
        let cold = try bench.cold ? ColdCaches(context: context) : nil
        if let cold { progress("  --cold: \(cold.bytes >> 20) MiB read before every timed call") }
        let work = harness.work(role: bench.pass)

        // Rows: ours (the dispatcher's choice), each --config, each baseline; timed once per round, interleaved.
        let extra = try bench.configs.map { try decodeConfigurations($0) }
        var baselines = harness.baselines(role: bench.pass)
            + (bench.pass == nil ? BaselineRegistry.baselines(for: Family.self, harness: harness, problem: problem) : [])
        let unknown = bench.skipped.filter { name in !baselines.contains { $0.name == name } }
        guard unknown.isEmpty else {
            throw ValidationError("--skip \(unknown.joined(separator: ", ")): no such baseline of \(Family.name) \(problem); its baselines are "
                                  + (baselines.isEmpty ? "none" : baselines.map(\.name).joined(separator: ", ")))
        }
        baselines.removeAll { bench.skipped.contains($0.name) }
        let configurations: [[Configuration]] = [[]] + extra
        var errors: [String?] = configurations.map { configuration in
            guard !configuration.isEmpty else { return nil }
            do {
                _ = try family.resolve(configuration, for: problem)
                return nil
            } catch let error as InvalidConfiguration {
                return "invalid configuration: " + error.message
            } catch {
                return "\(error)"
            }
        } + baselines.map { _ in nil }
        var measurements = [[KernelMeasurement]](repeating: [], count: configurations.count)
        var baselineRuns = [[Baseline.Result]](repeating: [], count: baselines.count)
        for round in 0..<bench.rounds {
            for row in 0..<(configurations.count + baselines.count) where errors[row] == nil {
                do {
                    if row < configurations.count {
                        measurements[row].append(try harness.measure(configurations[row], role: bench.pass, repetitions: bench.repetitions,
                                                                     beforeEachCall: cold.map { cold in { try cold.evict() } }))
                    } else {
                        baselineRuns[row - configurations.count].append(try baselines[row - configurations.count].measure(bench.repetitions))
                    }
                } catch {
                    errors[row] = "\(error)"
                    if row == 0 { throw error }
                }
            }
            if bench.rounds > 1 { progress("  round \(round + 1)/\(bench.rounds) done") }
        }
        var results: [BenchResult] = []
        for (row, configuration) in configurations.enumerated() {
            let name = row == 0 ? "tunedkernels" : "config-\(row)"
            let runs = measurements[row]
            guard let last = runs.last, errors[row] == nil else {
                var failed = BenchResult(name: name, seconds: nil, work: work, check: nil, error: errors[row] ?? "not measured")
                failed.config = configuration.last
                failed.config_source = "option"
                results.append(failed)
                continue
            }
            let worst = Check.worst(runs.map(\.check))!
            var result = BenchResult(name: name, seconds: median(runs.map(\.seconds)), work: work, check: worst,
                                     peakDeviceBytes: runs.map(\.peakDeviceBytes).max())
            result.device_seconds = median(runs.map(\.deviceSeconds))
            result.metrics = last.metrics
            result.config = last.configuration
            result.config_source = row == 0 ? last.source.rawValue : "option"
            if Family.roles.count > 1 { result.roles = last.choices }
            results.append(result)
        }
        for (index, baseline) in baselines.enumerated() {
            let runs = baselineRuns[index]
            if let error = errors[configurations.count + index] ?? (runs.isEmpty ? "not measured" : nil) {
                results.append(BenchResult(name: baseline.name, seconds: nil, work: work, check: nil, error: error))
            } else {
                let checks = runs.compactMap(\.check)
                var result = BenchResult(name: baseline.name, seconds: median(runs.map(\.seconds)), work: runs.last!.work ?? work,
                                         check: Check.worst(checks), peakDeviceBytes: runs.compactMap(\.peakDeviceBytes).max())
                result.metrics = runs.last!.metrics
                result.labels = runs.last!.labels
                results.append(result)
            }
        }
        for result in results {
            progress("  \(result.name): " + (result.seconds.map { result.work.rate($0) } ?? "-") + (result.error.map { " (\($0))" } ?? ""))
        }

        let report = Report(kernel: Family.name, device: context.device.name, database: family.core.origin, problem: problem, pass: bench.pass, cold_bytes: cold?.bytes, results: results)
        if output.json { try printJSON(report); return }
        let ours = results[0].seconds ?? .nan
        print("\(Family.name) \(problem)" + (bench.pass.map { " (\($0) pass alone)" } ?? "") + " on \(context.device.name)")
        print(table(["implementation", "seconds", "GFLOP/s", "GB/s", "ours is x faster", "max abs error", "peak device MiB"], results.map { r in
            [r.name, format(r.seconds, 5), format(r.gflops, 1), format(r.gbps, 1),
             r.isWrong ? "WRONG" : r.seconds.map { format($0 / ours, 2) } ?? "-",
             formatScientific(r.max_abs_error), r.peak_device_bytes.map { format(Double($0) / 1048576, 1) } ?? "-"]
        }))
        for r in results { if let error = r.error { print("note: \(r.name): \(error)") } }
        for r in results {
            var figures = (r.part_errors ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) error \(formatScientific($0.value))" }
            figures += r.metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4g", $0.value))" }
            figures += r.labels.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
            if !figures.isEmpty { print("\(r.name): " + figures.joined(separator: ", ")) }
        }
        if let roles = results[0].roles {
            for choice in roles { print("config of the \(choice.role): \(choice.config) (\(choice.source.rawValue))") }
        } else {
            print("config: \(results[0].config.map { "\($0)" } ?? "-") (\(results[0].config_source ?? ""))")
        }
        print("database: \(family.core.origin.summary)")
        for index in extra.indices { print("config-\(index + 1): \(extra[index].map { "\($0)" }.joined(separator: ", "))") }
    }
}

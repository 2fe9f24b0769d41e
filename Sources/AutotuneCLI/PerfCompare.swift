import ArgumentParser
import Autotuning
import Foundation
import TunedKernels

/// `autotune perf compare`: two builds (or one build under two environments) measured interleaved on this
/// machine, round by round (base then head, then head then base...), each round a fresh `perf serve` process per
/// side, each case measured on both sides back to back; per case the median ratio head/base, a 95% interval and a Mann-Whitney U p-value (``SampleComparison``).
struct PerfCompare<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "compare",
            abstract: "A/B: measure a base and a head build interleaved, and say which cases regressed.",
            discussion: """
                A regression is a median ratio head/base above 1.05 with a two-sided Mann-Whitney U p below 0.01; \
                improvements are reported, never failed. A case whose head run fails or whose head result is wrong fails; \
                one the base fails is reported (base-failed) and not compared, as are cases of one side only and cases whose \
                problem differs between the sides. Each round starts one `autotune perf serve` process per side and measures \
                each case on both back to back (which side goes first alternates); a base without `perf serve` is measured \
                on both sides through `autotune bench <family> --problem ...`, which times whole calls: cases of one problem \
                and several roles become one whole-call case.
                """)
    }

    @Option(help: "The base's autotune binary.") var base: String
    @Option(help: "The head's autotune binary (default: this one).") var head: String?

    @Option(help: "Rounds, each measuring every case once per side (at least 9).") var rounds = 9
    @Option(name: .customLong("base-env"), help: ArgumentHelp("NAME=VALUE set for the base's processes only (repeatable).", valueName: "assignment"))
    var baseEnvironment: [String] = []
    @Option(name: .customLong("head-env"), help: ArgumentHelp("NAME=VALUE set for the head's processes only (repeatable), e.g. a planted TUNEDKERNELS_TUNING_DB.", valueName: "assignment"))
    var headEnvironment: [String] = []
    @Option(help: "How the table names the base.") var baseLabel = "base"
    @Option(help: "How the table names the head.") var headLabel = "head"
    @Option(name: .customLong("json"), help: ArgumentHelp("Write the verdict as JSON to this file.", valueName: "file")) var jsonFile: String?
    @Flag(help: "Measure through `autotune bench` even when both builds have `perf`.") var viaBench = false
    @OptionGroup var selection: CaseOptions
    @OptionGroup var measuring: MeasureOptions

    func validate() throws {
        for (option, path) in [("--base", base), ("--head", head)] {
            if let path, !FileManager.default.isExecutableFile(atPath: absolutePath(path)) {
                throw ValidationError("\(option) \(path) is not an executable file (an `autotune` binary)")
            }
        }
        guard rounds >= 9 else { throw ValidationError("--rounds must be at least 9 (the verdict needs at least 9 values a side)") }
        for assignment in baseEnvironment + headEnvironment where !assignment.contains("=") {
            throw ValidationError("\(assignment) is not NAME=VALUE")
        }
    }

    /// A build and the environment its processes run in.
    struct Side {
        let label: String
        let binary: String
        let environment: [String: String]
        let isBase: Bool

        /// Runs the binary with `arguments`; its stdout, or an error with the end of its stderr (killed after `timeout` seconds).
        func run(_ arguments: [String], timeout: Double = 1800) throws -> Data {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            process.environment = environment
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("perf-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let out = folder.appendingPathComponent("stdout"), err = folder.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            process.standardInput = FileHandle.nullDevice
            do { try process.run() } catch { throw ValidationError("cannot run the \(label)'s \(binary): \(error)") }
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw SideFailure(message: "the \(label)'s `autotune \(arguments.prefix(3).joined(separator: " "))...` did not finish within \(Int(timeout)) s: killed")
            }
            let stdout = (try? Data(contentsOf: out)) ?? Data()
            guard process.terminationStatus == 0 else {
                let stderr = String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self)
                throw SideFailure(message: "the \(label)'s `autotune \(arguments.prefix(3).joined(separator: " "))...` exited with \(process.terminationStatus): "
                                  + stderr.split(separator: "\n").suffix(4).joined(separator: " | "))
            }
            return stdout
        }
    }

    struct SideFailure: Error, CustomStringConvertible { let message: String; var description: String { message } }

    /// One compared benchmark: a suite case, or (through bench) a whole call.
    struct Benchmark {
        let id: String
        let family: String
        let problem: String
    }

    struct CaseReport: Encodable {
        let id: String
        var base_seconds: [Double] = []
        var head_seconds: [Double] = []
        var ratio: Double?
        var interval: [Double]?
        var p_value: Double?
        /// regression, improvement, unchanged; failed (the head's run failed or its result is wrong: fails the check);
        /// base-failed (the base's did: not compared); new, removed (a case of one side only), changed (the same id,
        /// another problem or work): not compared.
        var verdict: String = "unchanged"
        var error: String?
    }

    struct Report: Encodable {
        var format = 1
        let mode: String
        let base: [String: String]
        let head: [String: String]
        let rounds: Int
        let tolerance = 1.05
        let alpha = 0.01
        var cases: [CaseReport]
        var regressions: [String]
        var verdict: String
        var seconds: Double
    }

    func run() throws {
        let started = Date()
        // A note of this process's OpenBLAS restart is not the children's (workers inherit this environment).
        unsetenv(OpenBLASCore.correctedVariable)
        let inherited = ProcessInfo.processInfo.environment.filter { $0.key != OpenBLASCore.correctedVariable }
        func side(_ label: String, _ binary: String, _ extra: [String], isBase: Bool) -> Side {
            var environment = inherited
            for assignment in extra {
                let parts = assignment.split(separator: "=", maxSplits: 1)
                environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            return Side(label: label, binary: binary, environment: environment, isBase: isBase)
        }
        let baseSide = side(baseLabel, absolutePath(base), baseEnvironment, isBase: true)
        let headSide = side(headLabel, head.map(absolutePath) ?? thisExecutablePath(), headEnvironment, isBase: false)

        // What each side can measure.
        func listing(_ side: Side) -> PerfList<Registry>.Listing? {
            guard let data = try? side.run(["perf", "list", "--json"], timeout: 120) else { return nil }
            return try? JSONDecoder().decode(PerfList<Registry>.Listing.self, from: data)
        }
        guard let headListing = listing(headSide) else {
            throw ValidationError("the head's \(headSide.binary) has no `autotune perf` (or it failed): build the head first")
        }
        // Served samples need `perf serve` on both sides (a base older than it is timed through bench).
        var why = "--via-bench"
        var baseListing: PerfList<Registry>.Listing?
        if !viaBench {
            if (try? baseSide.run(["perf", "serve", "--help"], timeout: 120)) == nil {
                why = "the base has no `autotune perf serve`"
            } else if let listing = listing(baseSide) {
                baseListing = listing
            } else {
                why = "the base's `autotune perf list --json` failed or could not be read"
            }
        }
        let selected = try selection.select(headListing.cases, id: \.id)
        var reports: [CaseReport] = []
        var benchmarks: [Benchmark] = []
        let mode: String
        if let baseListing {
            mode = "perf"
            for entry in selected {
                guard let other = baseListing.cases.first(where: { $0.id == entry.id }) else {
                    reports.append(CaseReport(id: entry.id, verdict: "new", error: "not a case of the base: not compared"))
                    continue
                }
                // The same id must mean the same benchmark on both sides.
                if other.problem != entry.problem || other.flops != entry.flops || other.bytes != entry.bytes || other.role != entry.role {
                    reports.append(CaseReport(id: entry.id, verdict: "changed",
                                              error: "the case differs between the sides (base: \(other.problem), \(other.flops) FLOPs, \(other.bytes) bytes; "
                                                  + "head: \(entry.problem), \(entry.flops) FLOPs, \(entry.bytes) bytes): not compared"))
                    continue
                }
                benchmarks.append(Benchmark(id: entry.id, family: entry.family, problem: entry.problem))
            }
            if selection.cases.isEmpty {
                for entry in baseListing.cases where !headListing.cases.contains(where: { $0.id == entry.id }) {
                    reports.append(CaseReport(id: entry.id, verdict: "removed", error: "a case of the base only (removed or renamed): not compared"))
                }
            }
        } else {
            mode = "bench"
            progress("perf compare: \(why); both sides are timed through `autotune bench` (whole calls)")
            for entry in selected {
                let id = "\(entry.family)/\(entry.label)" + (entry.role == nil ? "" : " (whole call)")
                if !benchmarks.contains(where: { $0.id == id }) {
                    benchmarks.append(Benchmark(id: id, family: entry.family, problem: entry.problem))
                }
            }
        }
        var values = [String: (base: [Double], head: [Double])]()
        /// The first failure of each case on each side: a side that failed a case is not asked for it again.
        var baseFailures = [String: String](), headFailures = [String: String]()
        func record(_ side: Side, _ id: String, _ seconds: Double?, error: String?) {
            if let error {
                if side.isBase { baseFailures[id] = baseFailures[id] ?? "\(side.label): \(error)" } else { headFailures[id] = headFailures[id] ?? "\(side.label): \(error)" }
            } else if let seconds {
                if side.isBase { values[id, default: ([], [])].base.append(seconds) } else { values[id, default: ([], [])].head.append(seconds) }
            }
        }
        /// One sample of `benchmark` from a served process of `side`.
        func serve(_ worker: WorkerProcess, _ side: Side, _ benchmark: Benchmark) throws {
            switch try worker.request(benchmark.id, timeout: 1800) {
            case .reply(let line):
                guard let reply = try? JSONDecoder().decode(PerfServeReply.self, from: Data(line.utf8)) else {
                    return record(side, benchmark.id, nil, error: "unreadable answer: \(line.prefix(200))")
                }
                if let sample = reply.sample {
                    record(side, benchmark.id, sample.seconds,
                           error: sample.passed ? nil : "wrong result (error \(sample.maxAbsError.map { "\($0)" } ?? "not finite"))")
                } else {
                    record(side, benchmark.id, nil, error: reply.error ?? "no sample")
                    // The server exits after a failed measurement: the next request must not reach the dying process.
                    worker.stop()
                }
            case .crashed(let status, let stderrTail):
                record(side, benchmark.id, nil, error: "`perf serve` exited with \(status): " + stderrTail.split(separator: "\n").suffix(4).joined(separator: " | "))
            case .timedOut(let seconds):
                record(side, benchmark.id, nil, error: "no sample within \(Int(seconds)) s")
            }
        }
        /// One sample of `benchmark` from a `bench` process of `side` (a whole call).
        func bench(_ side: Side, _ benchmark: Benchmark) {
            do {
                let data = try side.run(["bench", benchmark.family, "--problem", benchmark.problem, "--json",
                                         "--repetitions", "\(measuring.repetitions)", "--seed", "\(measuring.seed)"])
                let row = try JSONDecoder().decode(BenchReport.self, from: data).results.first
                record(side, benchmark.id, row?.device_seconds ?? row?.seconds, error: row == nil ? "no result" : row!.error)
            } catch {
                record(side, benchmark.id, nil, error: "\(error)")
            }
        }
        progress("perf compare (\(mode)): \(benchmarks.count) benchmarks, \(rounds) rounds; base \(baseSide.binary), head \(headSide.binary)")
        let sides = [baseSide, headSide]
        for round in 0..<rounds {
            // A fresh process per side and round; each case measured on both sides back to back, the side that goes
            // first alternating by round and case, so that a burst of load on this shared machine falls on both.
            let workers = mode == "perf" ? sides.map { side in
                WorkerProcess(executable: side.binary, arguments: ["perf", "serve", "--repetitions", "\(measuring.repetitions)", "--warmup",
                                                                   "\(measuring.warmup)", "--seed", "\(measuring.seed)"], environment: side.environment)
            } : []
            // A case the head failed is decided; one the base failed is still run on the head (its result is checked).
            for (index, benchmark) in benchmarks.enumerated() where headFailures[benchmark.id] == nil {
                for s in (round + index) % 2 == 0 ? [0, 1] : [1, 0] where !(s == 0 && baseFailures[benchmark.id] != nil) {
                    if mode == "perf" { try serve(workers[s], sides[s], benchmark) } else { bench(sides[s], benchmark) }
                }
            }
            workers.forEach { $0.stop() }
            progress("  round \(round + 1)/\(rounds) done")
        }
        for benchmark in benchmarks {
            var report = CaseReport(id: benchmark.id)
            let measured = values[benchmark.id] ?? ([], [])
            report.base_seconds = measured.base
            report.head_seconds = measured.head
            func valid(_ values: [Double]) -> Bool { !values.isEmpty && values.allSatisfy { $0.isFinite && $0 > 0 } }
            if let failure = headFailures[benchmark.id] {
                // A head that fails (or gives a wrong result) fails the check; a base that does is no regression of the head.
                report.verdict = "failed"
                report.error = failure
            } else if let failure = baseFailures[benchmark.id] {
                report.verdict = "base-failed"
                report.error = failure + " (not compared)"
            } else if !valid(measured.base) {
                report.verdict = "base-failed"
                report.error = "the base gave no usable times (\(measured.base)): not compared"
            } else if !valid(measured.head) {
                report.verdict = "failed"
                report.error = "the head gave no usable times (\(measured.head))"
            } else {
                do {
                    let comparison = try SampleComparison(head: measured.head, base: measured.base)
                    report.ratio = comparison.ratio
                    report.interval = [comparison.interval.lowerBound, comparison.interval.upperBound]
                    report.p_value = comparison.pValue
                    report.verdict = comparison.verdict.rawValue
                } catch {
                    report.verdict = "failed"
                    report.error = "\(error)"
                }
            }
            reports.append(report)
        }
        let regressions = reports.filter { $0.verdict == "regression" || $0.verdict == "failed" }.map(\.id)
        let verdict = Report(mode: mode, base: ["binary": baseSide.binary, "label": baseLabel, "environment": baseEnvironment.joined(separator: " ")],
                             head: ["binary": headSide.binary, "label": headLabel, "environment": headEnvironment.joined(separator: " ")],
                             rounds: rounds, cases: reports, regressions: regressions, verdict: regressions.isEmpty ? "pass" : "regression",
                             seconds: Date().timeIntervalSince(started))
        if let jsonFile { try writeJSON(verdict, to: jsonFile) }
        print("perf compare: \(headLabel) against \(baseLabel), \(rounds) rounds a side, interleaved (\(mode == "perf" ? "autotune perf serve" : "autotune bench, whole calls"))")
        print(table(["case", "\(baseLabel) ms", "\(headLabel) ms", "head/base", "95% interval", "p", "verdict"], reports.map { r in
            [r.id, r.base_seconds.isEmpty ? "-" : format(median(r.base_seconds) * 1000, 3), r.head_seconds.isEmpty ? "-" : format(median(r.head_seconds) * 1000, 3),
             format(r.ratio, 3), r.interval.map { format($0[0], 3) + "-" + format($0[1], 3) } ?? "-",
             r.p_value.map { String(format: "%.2g", $0) } ?? "-",
             r.verdict == "regression" ? "REGRESSION" : r.verdict == "failed" ? "FAILED" : r.verdict == "unchanged" ? "-" : r.verdict]
        }))
        for r in reports { if let error = r.error { print("note: \(r.id): \(error)") } }
        print(String(format: "verdict: %@ (%.0f s)", regressions.isEmpty ? "no regression" : "regression in " + regressions.joined(separator: ", "),
                     verdict.seconds))
        if !regressions.isEmpty { throw regressionExitCode }
    }

    /// The parts of a `bench --json` report that compare reads (every revision's bench writes them).
    struct BenchReport: Decodable {
        struct Row: Decodable {
            let name: String
            let seconds: Double?
            let device_seconds: Double?
            let error: String?
        }
        let results: [Row]
    }
}

/// Writes `value` as pretty JSON to `path`.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do { try (encoder.encode(value) + Data("\n".utf8)).write(to: URL(fileURLWithPath: path)) } catch {
        throw ValidationError("cannot write \(path): \(error)")
    }
}

/// `path` made absolute (relative to the current folder), so that every way of starting it finds the same file.
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

/// This executable's absolute path.
func thisExecutablePath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? absolutePath(CommandLine.arguments[0])
}

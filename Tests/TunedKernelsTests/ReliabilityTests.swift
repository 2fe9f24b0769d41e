import Autotuning
import Foundation
import Testing
import TunedKernels

/// What a demanding user tried, each now a clear error or correct behaviour (issue 8's findings).
@Suite(.serialized) struct ReliabilityTests {
    static let direct = #"{"variant":"direct","WPTM":1,"WPTN":1,"DLOCALM":1,"DLOCALN":1,"DKU":1}"#
    static let packed = #"{"variant":"packed","KC":0,"MR":4,"NR":8,"PKU":1,"PLM":1,"PLN":1,"TM":1,"TN":1,"VW":4}"#

    /// Absurd sizes are refused with a message before anything is allocated: no abort (134) or trap (132).
    @Test(arguments: [
        (["bench", "gemm", "--shape", "100000x100000x100000"], "32-bit indexing"),
        (["verify", "gemm", "--shape", "100000x100000x100000"], "32-bit indexing"),
        (["bench", "gemm", "--shape", "40000x40000x40000"], "memory|largest allocation"),
        (["verify", "gemm", "--shape", "40000x40000x40000", "--precision", "single"], "memory|largest allocation"),
        (["tune", "gemm", "--shape", "40000x40000x40000", "--budget", "2"], "memory|largest allocation"),
        (["verify", "gemm", "--shape", "9223372036854775807x1x1"], "32-bit indexing"),
        (["tune", "gemm", "--shape", "4611686018427387904x4x1", "--budget", "2"], "32-bit indexing"),
        (["bench", "gemm", "--shape", "1x1x1", "--batch", "9223372036854775807"], "overflows"),
        (["bench", "gemm", "--shape", "1x1x1", "--batch", "9223372036854775808"], "is not an integer"),
        (["bench", "gemm", "--shape", "0x4x4"], "M must be at least 1"),
        (["bench", "gemm", "--shape", "4x4"], "is not MxNxK"),
        (["bench", "gemm", "--shape", "4x4x4", "--precision", "double"], "must be one of half, single"),
        (["bench", "gemm", "--shape", "4x4x4", "--shpe", "1"], "unknown option --shpe"),
        (["bench", "gemm", "--precision", "half"], "--shape MxNxK is required"),
    ])
    func sizesAndOptionsAreCheckedFirst(arguments: [String], message: String) throws {
        let output = try CLI.run(CLI.autotune, arguments)
        #expect(output.status != 0 && output.status < 128, "\(arguments): status \(output.status)")
        #expect(message.split(separator: "|").contains { output.stderr.contains($0) }, "\(arguments): \(output.stderr)")
    }

    /// Every row checks its own output on a poisoned C: a configuration that writes nothing cannot report the
    /// previous row's result as its own.
    @Test func benchRowsDoNotShareResults() throws {
        let kernels = try CLI.kernelsWithLazyDirect()
        defer { try? FileManager.default.removeItem(atPath: kernels) }
        let output = try CLI.run(CLI.autotune, ["bench", "gemm", "--shape", "19x23x17", "--precision", "single", "--skip", "clblast",
                                                "--repetitions", "1", "--config", Self.packed, "--config", Self.direct, "--json"],
                                 environment: ["TUNEDKERNELS_KERNELS_DIR": kernels])
        #expect(output.status == 0, "\(output.stderr)")
        let results = try #require(try CLI.json(output)["results"] as? [[String: Any]])
        let lazy = try #require(results.first { $0["name"] as? String == "config-2" })
        #expect(lazy["error"] as? String == "the result holds NaN or infinity", "\(lazy)")
        #expect(lazy["max_abs_error"] is NSNull, "\(lazy)")
        #expect(lazy["gflops"] == nil, "a wrong row shows no speed")
        let good = try #require(results.first { $0["name"] as? String == "config-1" })
        #expect(good["error"] == nil && (good["max_abs_error"] as? Double ?? 1) < 1e-4)
        let openblas = try #require(results.first { $0["name"] as? String == "openblas" })
        #expect(openblas["max_abs_error"] as? Double == 0, "the baseline's own output is checked")
        let table = try CLI.run(CLI.autotune, ["bench", "gemm", "--shape", "19x23x17", "--precision", "single", "--skip", "clblast",
                                               "--repetitions", "1", "--config", Self.direct], environment: ["TUNEDKERNELS_KERNELS_DIR": kernels])
        let row = try #require(table.text.split(separator: "\n").first { $0.hasPrefix("config-1 ") })
        #expect(row.contains("WRONG"), "\(table.text)")
    }

    /// `verify` of a configuration that writes nothing fails with exit 1, and its JSON has null (not "inf") errors.
    @Test func verifyReportsANonFiniteResultAsNull() throws {
        let kernels = try CLI.kernelsWithLazyDirect()
        defer { try? FileManager.default.removeItem(atPath: kernels) }
        let output = try CLI.run(CLI.autotune, ["verify", "gemm", "--shape", "7x5x3", "--precision", "single", "--config", Self.direct, "--json"],
                                 environment: ["TUNEDKERNELS_KERNELS_DIR": kernels])
        #expect(output.status == 1, "\(output.stderr)")
        let report = try CLI.json(output)
        #expect(report["passed"] as? Bool == false)
        let checks = try #require(report["checks"] as? [[String: Any]])
        #expect(checks.first?["max_abs_error"] is NSNull, "\(checks)")
        #expect(!output.text.contains("\"inf\""))
    }

    /// A wrong candidate is a typed `wrong_result` with an error of infinity, not a crashed worker; an unknown
    /// family is an environment failure.
    @Test func workerRepliesWrongResultAndEnvironment() throws {
        let kernels = try CLI.kernelsWithLazyDirect()
        defer { try? FileManager.default.removeItem(atPath: kernels) }
        let devices = try CLI.run(CLI.autotune, ["devices", "--json"])
        let selected = try #require((try CLI.json(devices)["devices"] as? [[String: Any]])?.first { $0["selected"] as? Bool == true })
        let device = try #require(selected["index"] as? Int)
        let problem = #"{"m":7,"n":5,"k":3,"batch":1,"precision":"single","layout":"nn"}"#
        func request(_ family: String, _ config: String) -> String {
            #"{"family":"\#(family)","problem":\#(problem),"role":"gemm","given":{},"config":\#(config),"device":\#(device),"repetitions":1,"minimum_seconds":0,"seed":1}"#
        }
        let process = CLI.process(CLI.autotune, ["worker"], environment: ["TUNEDKERNELS_KERNELS_DIR": kernels])
        let input = Pipe(), out = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data((request("gemm", Self.direct) + "\n" + request("gemm", Self.packed) + "\n"
                                              + request("conv", Self.packed) + "\n").utf8))
        try input.fileHandleForWriting.close()
        let replies = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        try #require(replies.count == 3, "\(replies)")
        let decoder = EvaluationResult.decoder()
        let wrong = try decoder.decode(EvaluationResult.self, from: Data(replies[0].utf8))
        #expect(wrong.status == .wrongResult && wrong.maxAbsError == .infinity)
        #expect(try decoder.decode(EvaluationResult.self, from: Data(replies[1].utf8)).status == .ok)
        let unknown = try decoder.decode(EvaluationResult.self, from: Data(replies[2].utf8))
        #expect(unknown.status == .environment && unknown.message?.contains("no kernel family \"conv\"") == true)
    }

    /// Missing kernel sources stop the run; nothing is journaled, so the next run measures. An edited kernel
    /// source starts a new journal instead of reusing old timings.
    @Test func environmentFailuresStopAndJournalsFollowTheSource() throws {
        let folder = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let common = ["tune", "gemm", "--shape", "9x7x5", "--precision", "single", "--budget", "2", "--confirm", "0", "--json",
                      "--journal-dir", folder + "/journals", "--output", folder + "/db.json"]
        let missing = try CLI.run(CLI.autotune, common, environment: ["TUNEDKERNELS_KERNELS_DIR": folder + "/no-kernels"])
        #expect(missing.status != 0 && missing.stderr.contains("not found"), "\(missing.stderr)")
        #expect(TuneCommandTests.journals(in: folder + "/journals").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: folder + "/db.json"))

        let first = try CLI.run(CLI.autotune, common)
        #expect(first.status == 0, "\(first.stderr)")
        let firstResult = try #require((try CLI.json(first)["results"] as? [[String: Any]])?.first)
        #expect(firstResult["measured"] as? Int == 2)
        let edited = try CLI.kernels { $0 + "\n// an edit\n" }
        defer { try? FileManager.default.removeItem(atPath: edited) }
        let second = try CLI.run(CLI.autotune, common, environment: ["TUNEDKERNELS_KERNELS_DIR": edited])
        let secondResult = try #require((try CLI.json(second)["results"] as? [[String: Any]])?.first)
        #expect(secondResult["measured"] as? Int == 2 && secondResult["from_journal"] as? Int == 0)
        #expect(secondResult["journal"] as? String != firstResult["journal"] as? String)
        #expect(TuneCommandTests.journals(in: folder + "/journals").count == 2)
    }

    /// A build failure keeps its whole compiler log; when nothing succeeds, nothing is saved and the output says so.
    @Test func failedBuildsKeepTheirLogAndNothingIsClaimedSaved() throws {
        let broken = try CLI.kernels { $0 + "\n#error this kernel file is broken on purpose for a test of the compiler log\n" }
        let folder = CLI.temporaryFolder()
        defer {
            try? FileManager.default.removeItem(atPath: broken)
            try? FileManager.default.removeItem(atPath: folder)
        }
        let arguments = ["tune", "gemm", "--shape", "9x7x5", "--budget", "2", "--journal-dir", folder, "--output", folder + "/db.json"]
        let json = try CLI.run(CLI.autotune, arguments + ["--json"], environment: ["TUNEDKERNELS_KERNELS_DIR": broken])
        #expect(json.status == 0, "\(json.stderr)")
        let result = try #require((try CLI.json(json)["results"] as? [[String: Any]])?.first)
        #expect(result["saved_to"] == nil || result["saved_to"] is NSNull)
        let failures = try #require(result["failure_details"] as? [[String: Any]])
        #expect(failures.count == 2 && failures.allSatisfy { $0["status"] as? String == "build_failure" })
        let log = try #require(failures.first?["message"] as? String)
        #expect(log.count > 300 && log.contains("broken on purpose for a test of the compiler log"))
        #expect(!FileManager.default.fileExists(atPath: folder + "/db.json"))
        let table = try CLI.run(CLI.autotune, arguments + ["--journal-dir", folder + "/table"], environment: ["TUNEDKERNELS_KERNELS_DIR": broken])
        #expect(table.text.contains("nothing saved") && !table.text.contains("saved 1"), "\(table.text)")
        #expect(table.stderr.contains("broken on purpose for a test of the compiler log"), "the log is shown in text mode too")
    }

    /// Output paths are checked before the work, with a clear message.
    @Test func unwritableOutputsAreRefusedFirst() throws {
        let folder = CLI.temporaryFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "a file".write(toFile: folder + "/file", atomically: true, encoding: .utf8)
        let common = ["tune", "gemm", "--shape", "9x7x5", "--budget", "2", "--journal-dir", folder + "/journals"]
        let plot = try CLI.run(CLI.autotune, common + ["--plot", folder + "/file/plot.svg", "--output", folder + "/db.json"])
        #expect(plot.status != 0 && plot.stderr.contains("--plot"), "\(plot.stderr)")
        let output = try CLI.run(CLI.autotune, common + ["--output", folder])
        #expect(output.status != 0 && output.stderr.contains("is a folder"), "\(output.stderr)")
        #expect(TuneCommandTests.journals(in: folder + "/journals").isEmpty, "nothing was measured")
        // A path every permission check passes as root but no file can be created at (/proc): refused first too.
        let proc = try CLI.run(CLI.autotune, common + ["--plot", "/proc/tk-plot.svg", "--output", folder + "/db.json"])
        #expect(proc.status != 0 && proc.stderr.contains("--plot /proc/tk-plot.svg cannot be written"), "\(proc.stderr)")
        #expect(TuneCommandTests.journals(in: folder + "/journals").isEmpty, "nothing was measured")
    }

    /// Misspelled options are errors, never silently ignored: a JSON problem's unknown field, a fraction for an
    /// integer, a `--skip` of no baseline, a database entry of a variant the family does not have.
    @Test func misspellingsAreRefused() throws {
        let cce = ["verify", "cce", "--problem"]
        let zloss = try CLI.run(CLI.autotune, cce + [#"{"tokens":4,"vocab":5,"dim":3,"zloss":0.5}"#])
        #expect(zloss.status != 0 && zloss.stderr.contains("the problem has no field \"zloss\""), "\(zloss.stderr)")
        let fraction = try CLI.run(CLI.autotune, cce + [#"{"tokens":64.5,"vocab":5,"dim":3}"#])
        #expect(fraction.status != 0 && fraction.stderr.contains("\"tokens\" must be an integer, got 64.5"), "\(fraction.stderr)")
        let skip = try CLI.run(CLI.autotune, ["bench", "gemm", "--shape", "8x8x8", "--repetitions", "1", "--skip", "nosuch"])
        #expect(skip.status != 0 && skip.stderr.contains("--skip nosuch: no such baseline") && skip.stderr.contains("openblas"), "\(skip.stderr)")
        let folder = CLI.temporaryFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try #"{"schema": 2, "device": {"name": "x"}, "entries": [{"kernel": "gemm", "tags": {"precision": "half", "layout": "nn"}, "sizes": [8, 8, 8, 1], "config": {"variant": "bogus"}, "seconds": 1e-5, "date": "2026-01-01"}]}"#
            .write(toFile: folder + "/db.json", atomically: true, encoding: .utf8)
        let bogus = try CLI.run(CLI.autotune, ["verify", "gemm", "--shape", "8x8x8"], environment: ["TUNEDKERNELS_TUNING_DB": folder + "/db.json"])
        #expect(bogus.status != 0 && bogus.stderr.contains(folder + "/db.json") && bogus.stderr.contains("the variant \"bogus\""), "\(bogus.stderr)")
    }

    /// `kill -9` of `tune` takes its worker with it (the worker watches its parent).
    @Test func aKilledTuneTakesItsWorkerWithIt() throws {
        let folder = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let process = CLI.process(CLI.autotune, ["tune", "gemm", "--shape", "300x300x300", "--budget", "40", "--strategy", "random",
                                                 "--journal-dir", folder, "--output", folder + "/db.json"])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let parent = process.processIdentifier
        func children() -> [Int32] {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return pids.compactMap(Int32.init).filter { pid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                return fields.count > 1 && Int32(fields[1]) == parent
            }
        }
        var workers: [Int32] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && workers.isEmpty {
            workers = children()
            Thread.sleep(forTimeInterval: 0.1)
        }
        try #require(!workers.isEmpty, "no worker started")
        Thread.sleep(forTimeInterval: 1)  // the worker is busy with candidates now
        kill(parent, SIGKILL)
        process.waitUntilExit()
        // Generous: this only catches a worker that outlives its parent for good, not a slow machine.
        let gone = Date().addingTimeInterval(20)
        while Date() < gone && workers.contains(where: { kill($0, 0) == 0 && !Self.isZombie($0) }) {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(!workers.contains { kill($0, 0) == 0 && !Self.isZombie($0) }, "the worker outlived its killed parent")
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    static let recordedSpace = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/tuning-spaces/convolution_A4000.json.gz").path

    /// A truncated recorded space is refused unless asked for; `replay` without `--strategy` uses tune's default; one
    /// JSON layout.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: recordedSpace)))
    func replayRefusesATruncatedSpaceAndDefaultsToTunesStrategy() throws {
        let folder = CLI.temporaryFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let whole = try KernelTunerCache.read(path: Self.recordedSpace)
        #expect(whole.completeness == .closed)
        let gunzip = Process()
        gunzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gunzip.arguments = ["-c", "gunzip -c '\(Self.recordedSpace)' | head -c 200000 > '\(folder)/cut.json'"]
        try gunzip.run()
        gunzip.waitUntilExit()
        let refused = try CLI.run(CLI.autotune, ["replay", folder + "/cut.json", "--budget", "20", "--seeds", "2"])
        #expect(refused.status != 0 && refused.stderr.contains("not a complete recorded space"), "\(refused.stderr)")
        let allowed = try CLI.run(CLI.autotune, ["replay", folder + "/cut.json", "--budget", "20", "--seeds", "2", "--allow-incomplete", "--json"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let report = try CLI.json(allowed)
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(results.count == 1 && results[0]["strategy"] as? String == TuningOptions.defaultStrategy.rawValue)
        #expect((report["configurations"] as? Int ?? .max) < 4362)
    }
}

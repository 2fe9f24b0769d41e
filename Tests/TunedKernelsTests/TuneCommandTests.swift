import Autotuning
import Foundation
import Testing

/// A real, short `autotune tune gemm` on the PoCL device: worker process, journal, database, resume
/// (also after the run was killed).
@Suite(.serialized) struct TuneCommandTests {
    static var autotune: String { OclgrindTests.autotune }

    struct Report: Decodable {
        struct Best: Decodable { let seconds: Double; let gflops: Double }
        let evaluations: Int, measured: Int, from_journal: Int, failures: Int, confirmed: Int
        let best: Best?
        let history: [Double?]
        let journal: String
        let saved_to: String?
    }

    /// `tune --json`: one layout for one problem or several.
    struct Reports: Decodable {
        let kernel: String, strategy: String, budget: Int
        let results: [Report]
    }

    static func folder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tk-tune-\(UUID().uuidString)").path
    }

    static func process(_ arguments: [String]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: autotune)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CACHE_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("tk-tune-cache").path
        process.environment = environment
        return process
    }

    static func tune(_ arguments: [String], executable: String? = nil) throws -> Report {
        let reports = try tuneAll(arguments, executable: executable)
        #expect(reports.results.count == 1)
        return try #require(reports.results.first)
    }

    static func tuneAll(_ arguments: [String], executable: String? = nil, family: String = "gemm") throws -> Reports {
        let process = process(["tune", family, "--json"] + arguments)
        if let executable { process.executableURL = URL(fileURLWithPath: executable) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return try JSONDecoder().decode(Reports.self, from: data)
    }

    @Test func tuneJournalsStoresTheBestAndResumes() throws {
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let common = ["--shape", "37x29x19", "--precision", "single", "--output", folder + "/db.json", "--journal-dir", folder, "--seed", "4",
                      "--plot", folder + "/plot.svg"]
        let first = try Self.tune(common + ["--budget", "5"])
        #expect(first.evaluations == 5 && first.measured == 5 && first.from_journal == 0)
        #expect(first.best != nil && first.history.count == 5)
        // The fastest four (or fewer, if some failed) were timed again before the best was stored.
        let successes = 5 - first.failures
        #expect(first.confirmed == (successes > 1 ? min(4, successes) : 0))
        let journal = try KernelTunerCache.read(path: first.journal)
        #expect(journal.entries.count == 5)
        #expect(journal.parameterNames.first == "variant")
        let database = try TuningDatabase.read(path: folder + "/db.json")
        #expect(database?.entries.count == 1 && database?.entries.first?.key.sizes == [37, 29, 19, 1])
        #expect(first.saved_to == folder + "/db.json")
        #expect(FileManager.default.fileExists(atPath: folder + "/plot.svg"))

        // The same run with a larger budget starts from the stored best (a seed now), reads what the journal
        // holds instead of measuring it again, and measures each new candidate once.
        let second = try Self.tune(common + ["--budget", "7"])
        #expect(second.journal == first.journal)
        #expect(second.evaluations == 7 && second.from_journal >= 1 && second.from_journal + second.measured == 7)
        #expect(try KernelTunerCache.read(path: second.journal).entries.count == 5 + second.measured)
        // Once more: whatever it visits again comes from the journal; nothing is ever measured twice.
        let third = try Self.tune(common + ["--budget", "7"])
        #expect(third.from_journal >= 1 && third.from_journal + third.measured == 7)
        #expect(try KernelTunerCache.read(path: third.journal).entries.count == 5 + second.measured + third.measured)
    }

    @Test func aKilledRunResumesWithoutRepeatingEvaluations() throws {
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let common = ["tune", "gemm", "--shape", "64x48x40", "--precision", "single", "--output", folder + "/db.json", "--journal-dir", folder,
                      "--budget", "40", "--strategy", "random"]
        let process = Self.process(common)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        var recorded = 0
        var journalPath = ""
        while Date() < deadline {
            journalPath = Self.journals(in: folder).first ?? ""
            recorded = (try? KernelTunerCache.read(path: journalPath).entries.count) ?? 0
            if recorded >= 3 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try #require(recorded >= 3, "the run journaled nothing in time")
        let before = try KernelTunerCache.read(path: journalPath).entries.count
        let resumed = try Self.tune(Array(common.dropFirst(2).dropLast(4)) + ["--budget", "\(before + 2)", "--strategy", "random"])
        #expect(resumed.journal == journalPath)
        #expect(resumed.from_journal == before)
        #expect(resumed.measured == 2)
        let text = try String(contentsOfFile: journalPath, encoding: .utf8)
        let lines = text.split(separator: "\n").filter { $0.contains("\"timestamp\"") }
        #expect(lines.count == before + 2, "journal lines \(lines.count), expected \(before + 2)")
    }

    /// The journal files under `folder` (journals are named by a hash of the problem, device and source).
    static func journals(in folder: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: folder)
        var found: [String] = []
        while let name = enumerator?.nextObject() as? String {
            if name.hasSuffix(".json") && name.contains("gemm/") { found.append(folder + "/" + name) }
        }
        return found.sorted()
    }
}

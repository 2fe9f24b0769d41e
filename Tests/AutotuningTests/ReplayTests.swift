import Autotuning
import Foundation
import Testing

/// Replay on the recorded spaces in ../shared/tuning-spaces (those tests show as skipped when the files are
/// absent), and Replay's refusal of incomplete files.
@Suite struct ReplayTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/tuning-spaces").path

    /// Whether every one of the recorded spaces `names` is there.
    static func recorded(_ names: String...) -> Bool {
        names.allSatisfy { FileManager.default.fileExists(atPath: folder + "/" + $0) }
    }

    static let absent: Comment = "skipped: ../shared/tuning-spaces (the recorded Kernel Tuner spaces) is not beside the package"

    static func replay(_ name: String) throws -> Replay {
        try Replay(cache: KernelTunerCache.read(path: folder + "/" + name))
    }

    @Test(.enabled(if: recorded("convolution_A4000.json.gz"), absent))
    func exactRandomSearchMatchesSimulatedRandomSearch() throws {
        let replay = try Self.replay("convolution_A4000.json.gz")
        let runs = replay.run(.random, budget: 100, seeds: 201)
        for budget in [10, 50, 100] {
            let simulated = median(runs.bestTimes(at: budget).map(replay.fraction))
            let exact = replay.fraction(replay.randomSearch(draws: budget).median)
            #expect(abs(simulated - exact) < 0.03, "at \(budget): simulated \(simulated), exact \(exact)")
        }
        #expect(abs(replay.score(runs, budget: 100)) < 0.1)
    }

    @Test(.enabled(if: recorded("gemm_RTX_3090.json.gz", "convolution_A4000.json.gz", "dedispersion_A4000.json.gz"), absent),
          arguments: ["gemm_RTX_3090.json.gz", "convolution_A4000.json.gz", "dedispersion_A4000.json.gz"])
    func evolutionarySearchBeatsRandomSearch(file: String) throws {
        let replay = try Self.replay(file)
        let runs = replay.run(.evolutionary, budget: 200, seeds: 25)
        let atBudget = median(runs.bestTimes(at: 200).map(replay.fraction))
        let random = replay.fraction(replay.randomSearch(draws: 200).median)
        #expect(atBudget >= 0.99, "\(file): median fraction \(atBudget) at 200")
        #expect(atBudget > random || random > 0.99)
        #expect(replay.score(runs, budget: 200) > 0.3)
    }

    @Test(.enabled(if: recorded("convolution_A4000.json.gz"), absent))
    func recordedFailuresCostAnEvaluationAndFindNothing() throws {
        let replay = try Self.replay("convolution_A4000.json.gz")
        let failed = replay.space.points.indices.filter { replay.space.seconds[$0] == nil }
        #expect(failed.count == 161)
        #expect(replay.space.outcome(replay.space.points[failed[0]]) == .failed("recorded as failed"))
    }

    /// The GEMM space cut after 30,000 bytes, as `gunzip -c | head -c 30000` does: 31 of its 17,956
    /// configurations survive, and replay must not pass them off as the space.
    @Test(.enabled(if: recorded("gemm_RTX_3090.json.gz"), absent))
    func aCutRecordedSpaceIsRefused() throws {
        let full = try KernelTunerCache.read(path: Self.folder + "/gemm_RTX_3090.json.gz")
        #expect(full.completeness == .closed)
        let text = try Self.decompressed(Self.folder + "/gemm_RTX_3090.json.gz")
        let cut = try KernelTunerCache.decode(text.prefix(30_000), path: "/tmp/cut.json")
        #expect(cut.completeness == .truncated && cut.entries.count == 31)
        let error = try #require(throws: KernelTunerCacheError.self) { _ = try Replay(cache: cut) }
        #expect(error.path == "/tmp/cut.json")
        #expect(error.reason.contains("not a complete recorded space") && error.reason.contains("31 configurations"))
        let replay = try Replay(cache: cut, allowIncomplete: true)
        #expect(replay.space.points.count == 31)
    }

    // MARK: Incomplete files (no recorded space needed)

    static let header = KernelTunerCache(deviceName: "d", kernelName: "k", problemSize: [8], parameterNames: ["x", "y"],
                                         parameterValues: [["1", "2", "3"], ["a", "b"]])

    /// Writes a journal of every configuration of ``header`` to `path`, closed or left open, and returns its bytes.
    @discardableResult
    static func writeJournal(_ path: String, close: Bool) throws -> Data {
        let journal = try KernelTunerJournal(path: path, header: header)
        for (i, x) in ["1", "2", "3"].enumerated() {
            for (j, y) in ["a", "b"].enumerated() {
                try journal.record(KernelTunerCache.Entry(labels: [x, y], time: Double(1 + i * 2 + j), times: [1]))
            }
        }
        if close { try journal.close() }
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    static func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    @Test func aClosedFileReplays() throws {
        try Self.withDirectory { directory in
            let path = directory + "/closed.json"
            try Self.writeJournal(path, close: true)
            let cache = try KernelTunerCache.read(path: path)
            #expect(cache.completeness == .closed)
            let replay = try Replay(cache: cache)
            #expect(replay.space.points.count == 6 && replay.optimum == 0.001)
            // A cache built in memory is complete too.
            var memory = Self.header
            memory.entries = cache.entries
            #expect(try Replay(cache: memory).space.points.count == 6)
        }
    }

    @Test func anOpenJournalIsRefusedUnlessAllowed() throws {
        try Self.withDirectory { directory in
            let path = directory + "/open.json"
            try Self.writeJournal(path, close: false)
            let cache = try KernelTunerCache.read(path: path)
            #expect(cache.completeness == .open && cache.entries.count == 6)
            let error = try #require(throws: KernelTunerCacheError.self) { _ = try Replay(cache: cache) }
            #expect(error.path == path)
            #expect(error.reason.contains("not a complete recorded space"))
            #expect(error.reason.contains("still being written") && error.reason.contains("6 configurations"))
            #expect(error.reason.contains("--allow-incomplete"))
            #expect(error.description.contains(path))
            let replay = try Replay(cache: cache, allowIncomplete: true)
            #expect(replay.space.points.count == 6 && replay.optimum == 0.001)
        }
    }

    @Test func aTruncatedFileIsRefusedUnlessAllowed() throws {
        try Self.withDirectory { directory in
            let path = directory + "/cut.json"
            let closed = try Self.writeJournal(directory + "/whole.json", close: true)
            // A kill in the middle of a line: the file lost its end, with the last two entries.
            let text = String(decoding: closed, as: UTF8.self)
            let lastLines = try #require(text.range(of: "\n\"3,a\""))
            let cut = Data(text[..<lastLines.lowerBound].utf8) + Data("\n\"3,a\": {\"x\": 3, \"y\": \"a\", \"ti".utf8)
            try cut.write(to: URL(fileURLWithPath: path))
            let cache = try KernelTunerCache.read(path: path)
            #expect(cache.completeness == .truncated && cache.entries.count == 4)
            let error = try #require(throws: KernelTunerCacheError.self) { _ = try Replay(cache: cache) }
            #expect(error.path == path)
            #expect(error.reason.contains("not a complete recorded space") && error.reason.contains("truncated"))
            #expect(error.reason.contains("4 configurations") && error.reason.contains("--allow-incomplete"))
            let replay = try Replay(cache: cache, allowIncomplete: true)
            #expect(replay.space.points.count == 4)
        }
    }

    @Test func errorsNameTheFile() throws {
        try Self.withDirectory { directory in
            let path = directory + "/failed.json"
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            try journal.record(KernelTunerCache.Entry(labels: ["1", "a"], time: nil, failure: "CompilationFailedConfig"))
            try journal.close()
            let error = try #require(throws: KernelTunerCacheError.self) { _ = try Replay(cache: KernelTunerCache.read(path: path)) }
            #expect(error.path == path && error.reason.contains("no successful configuration"))

            var wrong = Self.header
            wrong.entries = ["9,a": KernelTunerCache.Entry(labels: ["9", "a"], time: 1)]
            wrong.source = path
            let lookup = try #require(throws: KernelTunerCacheError.self) { _ = try Replay(cache: wrong) }
            #expect(lookup.path == path && lookup.reason.contains("x=9"))
        }
    }

    /// The decompressed contents of a gzip file, by the gzip tool.
    static func decompressed(_ path: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "gzip -dc \"$0\"", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw KernelTunerCacheError(path: path, reason: "gzip -dc failed") }
        return data
    }
}

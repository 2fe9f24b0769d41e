import Autotuning
import Foundation
import Testing

@Suite struct KernelTunerCacheTests {
    // MARK: Recorded search spaces (../shared/tuning-spaces beside the package)

    /// The folder of recorded spaces, or nil where this checkout has none.
    static let spaces: String? = {
        let packageDirectory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = packageDirectory.deletingLastPathComponent().appendingPathComponent("shared/tuning-spaces").path
        return FileManager.default.fileExists(atPath: folder + "/gemm_RTX_3090.json.gz") ? folder : nil
    }()

    @Test(.enabled(if: spaces != nil, "skipped: ../shared/tuning-spaces (the recorded Kernel Tuner spaces) is not beside the package"))
    func readsTheGEMMSpace() throws {
        let cache = try KernelTunerCache.read(path: Self.spaces! + "/gemm_RTX_3090.json.gz")
        #expect(cache.completeness == .closed)
        #expect(cache.source == Self.spaces! + "/gemm_RTX_3090.json.gz")
        #expect(cache.deviceName == "NVIDIA GeForce RTX 3090")
        #expect(cache.kernelName == "Xgemm")
        #expect(cache.problemSize == [4096, 4096])
        #expect(cache.objective == "time")
        #expect(cache.parameterNames == ["MWG", "NWG", "KWG", "MDIMC", "NDIMC", "MDIMA", "NDIMB", "KWI", "VWM", "VWN",
                                         "STRM", "STRN", "SA", "SB", "PRECISION"])
        #expect(cache.parameterValues.count == 15)
        #expect(cache.parameterValues.first == ["16", "32", "64", "128"])
        #expect(cache.parameterValues.last == ["32"])
        #expect(cache.entries.count == 17_956)
        #expect(cache.entries.allSatisfy { $0.key == KernelTunerCache.key($0.value.labels) })
        #expect(cache.entries.values.allSatisfy { $0.time != nil && $0.failure == nil && $0.extra["GFLOP/s"] != nil })

        let first = try #require(cache.entries["16,16,32,8,8,8,8,2,1,1,0,0,0,0,32"])
        #expect(first.time == 46.072413)
        #expect(first.times.count == 32 && first.times.first == 46.49472)
        #expect(first.compileTime == 0.6785109871998429)
        #expect(first.extra["GFLOP/s"] == 2983.8356394313446)
        #expect(first.extra["verification_time"] == 267.1127449721098)

        let optimum = try #require(cache.optimum)
        let smallest = cache.entries.values.compactMap(\.time).min()
        #expect(optimum.time == smallest)
        #expect(optimum.key == "128,128,32,16,8,16,32,2,8,2,0,0,1,1,32")
        #expect(optimum.time == 5.657843999999999)
    }

    @Test(.enabled(if: spaces != nil, "skipped: ../shared/tuning-spaces (the recorded Kernel Tuner spaces) is not beside the package"))
    func readsTheConvolutionSpaceWithItsFailures() throws {
        let cache = try KernelTunerCache.read(path: Self.spaces! + "/convolution_A4000.json.gz")
        #expect(cache.deviceName == "NVIDIA RTX A4000")
        #expect(cache.problemSize == [4096, 4096])
        #expect(cache.parameterNames == ["block_size_x", "block_size_y", "tile_size_x", "tile_size_y", "read_only",
                                         "use_padding", "use_shmem", "use_cmem", "filter_height", "filter_width"])
        #expect(cache.entries.count == 4362)
        #expect(cache.entries.allSatisfy { $0.key == KernelTunerCache.key($0.value.labels) })
        let failed = cache.entries.values.filter { $0.time == nil }
        #expect(failed.count == 161)
        #expect(failed.filter { $0.failure == "RuntimeFailedConfig" }.count == 155)
        #expect(failed.filter { $0.failure == "CompilationFailedConfig" }.count == 6)
        #expect(failed.allSatisfy { $0.times.isEmpty })
        #expect(cache.entries.values.filter { $0.time != nil }.allSatisfy { $0.failure == nil && !$0.times.isEmpty })
        let optimum = try #require(cache.optimum)
        #expect(optimum.key == "256,1,2,4,0,0,0,1,15,15")
        #expect(optimum.time == cache.entries.values.compactMap(\.time).min())
    }

    @Test(.enabled(if: spaces != nil, "skipped: ../shared/tuning-spaces (the recorded Kernel Tuner spaces) is not beside the package"))
    func readsTheDedispersionSpace() throws {
        let cache = try KernelTunerCache.read(path: Self.spaces! + "/dedispersion_A4000.json.gz")
        #expect(cache.kernelName == "dedispersion_kernel")
        #expect(cache.problemSize == [25000, 2048, 1])
        #expect(cache.parameterNames == ["block_size_x", "block_size_y", "block_size_z", "tile_size_x", "tile_size_y",
                                         "tile_stride_x", "tile_stride_y", "loop_unroll_factor_channel"])
        #expect(cache.parameterValues[1].count == 29)
        #expect(cache.entries.count == 11_130)
        #expect(cache.entries.allSatisfy { $0.key == KernelTunerCache.key($0.value.labels) })
        #expect(cache.entries.values.allSatisfy { $0.time != nil && $0.extra["GB/s"] != nil })
        #expect(cache.optimum?.key == "8,96,1,1,6,0,1,0")
    }

    // MARK: Journal

    static let header = KernelTunerCache(
        deviceName: "Test \"GPU\" ü", kernelName: "kernel", problemSize: [64, 32],
        parameterNames: ["block_size_x", "tile", "mode", "ratio"],
        parameterValues: [["16", "32"], ["1", "2"], ["fast", "slow"], ["0.5", "1.0"]])

    static func entry(_ labels: [String], _ time: Double?, failure: String? = nil) -> KernelTunerCache.Entry {
        if time == nil { return KernelTunerCache.Entry(labels: labels, time: nil, failure: failure, compileTime: 3.5) }
        return KernelTunerCache.Entry(labels: labels, time: time, times: [time! * 0.9, time! * 1.1], compileTime: 12.25,
                                      extra: ["GFLOP/s": 1000 / time!, "verification_time": 1.5])
    }

    /// A fresh directory, removed by `body`'s end.
    static func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kernel-tuner-cache-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    static func contents(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
    }

    @Test func journalRoundTrip() throws {
        try Self.withDirectory { directory in
            let path = directory + "/nested/run.json"
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            #expect(journal.entries.isEmpty)
            // The header exactly as Kernel Tuner writes it: json.dumps(indent="") less the closing "}\n}".
            let expectedHeader = """
                {
                "device_name": "Test \\"GPU\\" \\u00fc",
                "kernel_name": "kernel",
                "problem_size": [
                64,
                32
                ],
                "tune_params_keys": [
                "block_size_x",
                "tile",
                "mode",
                "ratio"
                ],
                "tune_params": {
                "block_size_x": [
                16,
                32
                ],
                "tile": [
                1,
                2
                ],
                "mode": [
                "fast",
                "slow"
                ],
                "ratio": [
                0.5,
                1.0
                ]
                },
                "objective": "time",
                "cache": {
                """
            #expect(try Self.contents(path) == expectedHeader)
            // A header-only journal reads as an empty cache.
            #expect(try KernelTunerCache.read(path: path).entries.isEmpty)

            #expect(try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2.5)))
            #expect(try journal.record(Self.entry(["32", "1", "slow", "1.0"], nil, failure: "CompilationFailedConfig")))
            #expect(try journal.record(Self.entry(["16", "2", "fast", "1.0"], 1.25)))
            #expect(try !journal.record(Self.entry(["16", "2", "fast", "1.0"], 9)))  // a key already present
            #expect(journal.entries.count == 3)
            #expect(journal.entries["16,2,fast,1.0"]?.time == 1.25)
            #expect(journal.entry(for: ["32", "1", "slow", "1.0"])?.failure == "CompilationFailedConfig")

            // Still open: one line per entry, each ending in a comma.
            let open = try Self.contents(path)
            #expect(open.hasSuffix(","))
            let lines = open.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == expectedHeader.split(separator: "\n").count + 3)
            let line = try #require(lines.first { $0.hasPrefix("\"16,1,fast,0.5\"") })
            #expect(line.hasPrefix("\"16,1,fast,0.5\": {\"block_size_x\": 16, \"tile\": 1, \"mode\": \"fast\", \"ratio\": 0.5, \"time\": 2.5, \"times\": [2.25, 2.75], \"compile_time\": 12.25, \"verification_time\": 1.5, \"benchmark_time\": 0.0, \"strategy_time\": 0.0, \"framework_time\": 0.0, \"timestamp\": \""))
            #expect(line.hasSuffix("+00:00\", \"GFLOP/s\": 400.0},"))
            let failedLine = try #require(lines.first { $0.hasPrefix("\"32,1,slow,1.0\"") })
            #expect(failedLine.contains("\"time\": \"CompilationFailedConfig\", \"times\": [], \"compile_time\": 3.5"))

            let whileOpen = try KernelTunerCache.read(path: path)
            #expect(whileOpen.entries == journal.entries)
            #expect(whileOpen.deviceName == Self.header.deviceName)
            #expect(whileOpen.problemSize == [64, 32])
            #expect(whileOpen.parameterNames == Self.header.parameterNames)
            #expect(whileOpen.parameterValues == Self.header.parameterValues)
            #expect(whileOpen.optimum?.key == "16,2,fast,1.0")
            let failed = try #require(whileOpen.entries["32,1,slow,1.0"])
            #expect(failed.time == nil && failed.failure == "CompilationFailedConfig" && failed.times.isEmpty && failed.compileTime == 3.5)
            let stored = try #require(whileOpen.entries["16,1,fast,0.5"])
            #expect(stored == KernelTunerCache.Entry(labels: ["16", "1", "fast", "0.5"], time: 2.5, times: [2.25, 2.75], compileTime: 12.25,
                                                     extra: ["GFLOP/s": 400, "verification_time": 1.5, "benchmark_time": 0,
                                                             "strategy_time": 0, "framework_time": 0]))

            try journal.close()
            try journal.close()  // idempotent
            let closed = try Self.contents(path)
            #expect(closed.hasSuffix("},\n}") == false && closed.hasSuffix("}}\n}"))
            #expect(closed.dropLast(3) == open.dropLast())
            // A closed journal is complete JSON that any reader takes.
            let json = try JSONSerialization.jsonObject(with: Data(closed.utf8)) as? [String: Any]
            let entry = (json?["cache"] as? [String: Any])?["16,1,fast,0.5"] as? [String: Any]
            #expect(entry?["mode"] as? String == "fast")
            #expect(entry?["block_size_x"] as? Int == 16)
            #expect(try KernelTunerCache.read(path: path).entries == whileOpen.entries)
            #expect(throws: KernelTunerCacheError.self) { try journal.record(Self.entry(["32", "2", "fast", "0.5"], 1)) }
        }
    }

    @Test func journalResumes() throws {
        try Self.withDirectory { directory in
            let path = directory + "/run.json"
            do {
                let journal = try KernelTunerJournal(path: path, header: Self.header)
                try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
                try journal.record(Self.entry(["32", "1", "fast", "0.5"], nil, failure: "RuntimeFailedConfig"))
                try journal.close()
            }
            // A closed journal reopens for appending.
            do {
                let journal = try KernelTunerJournal(path: path, header: Self.header)
                #expect(journal.entries.count == 2)
                #expect(journal.entries["32,1,fast,0.5"]?.failure == "RuntimeFailedConfig")
                #expect(try Self.contents(path).hasSuffix("},"))
                #expect(try !journal.record(Self.entry(["16", "1", "fast", "0.5"], 7)))
                try journal.record(Self.entry(["16", "2", "slow", "1.0"], 3))
                #expect(try KernelTunerCache.read(path: path).entries == journal.entries)
                // Left open, as after a kill.
            }
            // An open journal resumes as well.
            do {
                let journal = try KernelTunerJournal(path: path, header: Self.header)
                #expect(journal.entries.count == 3)
                try journal.record(Self.entry(["32", "2", "slow", "1.0"], 4))
                try journal.close()
            }
            let cache = try KernelTunerCache.read(path: path)
            #expect(Set(cache.entries.keys) == ["16,1,fast,0.5", "32,1,fast,0.5", "16,2,slow,1.0", "32,2,slow,1.0"])
            #expect(cache.entries["16,1,fast,0.5"]?.time == 2)
            #expect(cache.entries["32,2,slow,1.0"]?.time == 4)
            #expect(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) is [String: Any])
            // A header-only journal that was closed reopens too.
            let empty = directory + "/empty.json"
            try KernelTunerJournal(path: empty, header: Self.header).close()
            #expect(try Self.contents(empty).hasSuffix("\"cache\": {}\n}"))
            let reopened = try KernelTunerJournal(path: empty, header: Self.header)
            try reopened.record(Self.entry(["16", "1", "fast", "0.5"], 1))
            #expect(try KernelTunerCache.read(path: empty).entries.count == 1)
        }
    }

    @Test func journalRefusesOtherParametersAndASecondWriter() throws {
        try Self.withDirectory { directory in
            let path = directory + "/run.json"
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
            // Two journals never append to one file.
            #expect(throws: KernelTunerCacheError.self) { _ = try KernelTunerJournal(path: path, header: Self.header) }
            try journal.close()

            let before = try Data(contentsOf: URL(fileURLWithPath: path))
            var other = Self.header
            other.parameterNames = ["block_size_x", "tile", "mode", "ratio_other"]
            let error = try #require(throws: KernelTunerCacheError.self) { _ = try KernelTunerJournal(path: path, header: other) }
            #expect(error.description.contains(path) && error.description.contains("ratio_other"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
            // An entry with the wrong number of parameters is refused.
            let again = try KernelTunerJournal(path: path, header: Self.header)
            #expect(throws: KernelTunerCacheError.self) { try again.record(KernelTunerCache.Entry(labels: ["16"], time: 1)) }
            #expect(throws: KernelTunerCacheError.self) { try again.record(KernelTunerCache.Entry(labels: ["16", "1", "fast", "1.0"], time: .nan)) }
            #expect(again.entries.count == 1)
        }
    }

    @Test func truncatedLastLineIsDropped() throws {
        try Self.withDirectory { directory in
            let path = directory + "/run.json"
            do {
                let journal = try KernelTunerJournal(path: path, header: Self.header)
                try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
                try journal.record(Self.entry(["32", "1", "fast", "0.5"], 3))
            }
            // A kill in the middle of writing the third line.
            let handle = try #require(FileHandle(forWritingAtPath: path))
            handle.seekToEndOfFile()
            handle.write(Data("\n\"16,2,slow,1.0\": {\"block_size_x\": 16, \"tile\": 2, \"mo".utf8))
            handle.closeFile()

            let cache = try KernelTunerCache.read(path: path)
            #expect(Set(cache.entries.keys) == ["16,1,fast,0.5", "32,1,fast,0.5"])
            // Resuming drops the half line from the file, then appends after the last complete entry.
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            #expect(journal.entries.count == 2)
            let resumed = try Self.contents(path)
            #expect(!resumed.contains("16,2,slow,1.0") && resumed.hasSuffix("},"))
            try journal.record(Self.entry(["16", "2", "slow", "1.0"], 1))
            try journal.close()
            let closed = try KernelTunerCache.read(path: path)
            #expect(closed.entries.count == 3 && closed.entries["16,2,slow,1.0"]?.time == 1)
            #expect(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) is [String: Any])

            // A line cut inside a number would still close into valid JSON, with a wrong time: it is dropped too.
            let second = directory + "/second.json"
            do {
                let journal = try KernelTunerJournal(path: second, header: Self.header)
                try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
            }
            let cut = try #require(FileHandle(forWritingAtPath: second))
            cut.seekToEndOfFile()
            cut.write(Data("\n\"32,2,slow,1.0\": {\"block_size_x\": 32, \"tile\": 2, \"mode\": \"slow\", \"ratio\": 1.0, \"time\": 1.2".utf8))
            cut.closeFile()
            #expect(Set(try KernelTunerCache.read(path: second).entries.keys) == ["16,1,fast,0.5"])
        }
    }

    @Test func corruptFilesThrowAndStayUntouched() throws {
        try Self.withDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let garbage = directory + "/garbage.json"
            let bytes = Data("this is not a cache {{{\n\u{0}\u{1} at all".utf8)
            try bytes.write(to: URL(fileURLWithPath: garbage))
            let readError = try #require(throws: KernelTunerCacheError.self) { _ = try KernelTunerCache.read(path: garbage) }
            #expect(readError.description.contains(garbage))
            let openError = try #require(throws: KernelTunerCacheError.self) { _ = try KernelTunerJournal(path: garbage, header: Self.header) }
            #expect(openError.description.contains(garbage))
            #expect(try Data(contentsOf: URL(fileURLWithPath: garbage)) == bytes)

            // Valid JSON that is not a cache.
            let incomplete = directory + "/incomplete.json"
            try Data("{\"device_name\": \"x\", \"kernel_name\": \"k\", \"cache\": {}}".utf8).write(to: URL(fileURLWithPath: incomplete))
            let fieldError = try #require(throws: KernelTunerCacheError.self) { _ = try KernelTunerCache.read(path: incomplete) }
            #expect(fieldError.description.contains(incomplete) && fieldError.description.contains("tune_params_keys"))

            let missing = directory + "/missing.json"
            let missingError = try #require(throws: KernelTunerCacheError.self) { _ = try KernelTunerCache.read(path: missing) }
            #expect(missingError.description.contains(missing))
            #expect(throws: KernelTunerCacheError.self) { _ = try KernelTunerCache.decode(Data([0x1f, 0x8b, 8, 0, 1, 2]), path: "x.gz") }
        }
    }

    @Test func readsGzippedJournals() throws {
        try Self.withDirectory { directory in
            let path = directory + "/run.json"
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
            try journal.record(Self.entry(["32", "2", "slow", "1.0"], nil, failure: "RuntimeFailedConfig"))
            let open = try Data(contentsOf: URL(fileURLWithPath: path))
            try journal.close()
            let closed = try Data(contentsOf: URL(fileURLWithPath: path))

            for (name, data) in [("open", open), ("closed", closed)] {
                // Stored (uncompressed) deflate blocks, a small one per block to exercise several.
                let stored = try KernelTunerCache.decode(Data(Self.gzipStored(Array(data), blockSize: 100)), path: name + ".gz")
                #expect(stored.entries == journal.entries)
            }
            // Real compression with the gzip tool, where there is one.
            if let gzip = ["/usr/bin/gzip", "/bin/gzip"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: gzip)
                process.arguments = ["-k", "-9", path]
                try process.run()
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                let cache = try KernelTunerCache.read(path: path + ".gz")
                #expect(cache.entries == journal.entries)
                #expect(cache.parameterValues == Self.header.parameterValues)
                // A gzip-compressed file cannot be appended to.
                #expect(throws: KernelTunerCacheError.self) { _ = try KernelTunerJournal(path: path + ".gz", header: Self.header) }
            }
        }
    }

    @Test func concurrentRecordsAllLand() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kernel-tuner-cache-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let header = KernelTunerCache(deviceName: "d", kernelName: "k", problemSize: [1], parameterNames: ["a", "b"],
                                      parameterValues: [(0..<8).map(String.init), (0..<16).map(String.init)])
        let journal = try KernelTunerJournal(path: directory + "/run.json", header: header)
        await withTaskGroup(of: Void.self) { group in
            for a in 0..<8 {
                group.addTask {
                    for b in 0..<16 { _ = try? journal.record(KernelTunerCache.Entry(labels: [String(a), String(b)], time: Double(a * 16 + b + 1))) }
                }
            }
        }
        #expect(journal.entries.count == 128)
        let cache = try KernelTunerCache.read(path: directory + "/run.json")
        #expect(cache.entries == journal.entries)
        #expect(cache.optimum?.key == "0,0" && cache.optimum?.time == 1)
    }

    // MARK: Completeness

    @Test func completenessTellsHowTheFileEnded() throws {
        try Self.withDirectory { directory in
            let path = directory + "/run.json"
            #expect(Self.header.completeness == .closed && Self.header.source == nil)  // built in memory
            let journal = try KernelTunerJournal(path: path, header: Self.header)
            // Header only: ends after "cache": {
            let headerOnly = try KernelTunerCache.read(path: path)
            #expect(headerOnly.completeness == .open && headerOnly.entries.isEmpty && headerOnly.source == path)
            try journal.record(Self.entry(["16", "1", "fast", "0.5"], 2))
            try journal.record(Self.entry(["32", "1", "fast", "0.5"], 3))
            let open = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(try KernelTunerCache.read(path: path).completeness == .open)
            // Trailing whitespace after the comma changes nothing.
            #expect(try KernelTunerCache.decode(open + Data(" \n\n".utf8), path: "open.json").completeness == .open)
            try journal.close()
            let closed = try KernelTunerCache.read(path: path)
            #expect(closed.completeness == .closed && closed.entries.count == 2)
            let closedBytes = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(try KernelTunerCache.decode(closedBytes + Data("\n".utf8), path: "closed.json").completeness == .closed)

            // Cut in the middle of a line: the line is dropped.
            let cut = open + Data("\n\"16,2,slow,1.0\": {\"block_size_x\": 16, \"time\": 1.2".utf8)
            let truncated = try KernelTunerCache.decode(cut, path: "cut.json")
            #expect(truncated.completeness == .truncated && truncated.entries.count == 2 && truncated.source == "cut.json")
            // Cut after a comma inside an entry: not an entry's comma, so the partial line is dropped.
            let insideEntry = open + Data("\n\"16,2,slow,1.0\": {\"block_size_x\": 16,".utf8)
            let afterInnerComma = try KernelTunerCache.decode(insideEntry, path: "inner.json")
            #expect(afterInnerComma.completeness == .truncated && afterInnerComma.entries.count == 2)
            // Cut inside the closing of a closed file.
            #expect(try KernelTunerCache.decode(closedBytes.dropLast(), path: "brace.json").completeness == .truncated)
            // Gzip-compressed files tell the same.
            #expect(try KernelTunerCache.decode(Data(Self.gzipStored(Array(open), blockSize: 100)), path: "o.gz").completeness == .open)
            #expect(try KernelTunerCache.decode(Data(Self.gzipStored(Array(closedBytes), blockSize: 100)), path: "c.gz").completeness == .closed)
            #expect(try KernelTunerCache.decode(Data(Self.gzipStored(Array(cut), blockSize: 100)), path: "t.gz").completeness == .truncated)
        }

        // Complete JSON in other layouts is closed.
        let compact = """
            {"device_name": "d", "kernel_name": "k", "problem_size": 8, "tune_params_keys": ["x"], "tune_params": {"x": [1, 2]}, \
            "cache": {"1": {"x": 1, "time": 1.5}, "2": {"x": 2, "time": 2.5}}}
            """
        #expect(try KernelTunerCache.decode(Data(compact.utf8), path: "compact.json").completeness == .closed)
        let cacheFirst = """
            {"device_name": "d", "kernel_name": "k", "cache": {"1": {"x": 1, "time": 1.5}},
              "tune_params_keys": ["x"], "tune_params": {"x": [1, 2]}
            }
            """
        #expect(try KernelTunerCache.decode(Data(cacheFirst.utf8), path: "first.json").completeness == .closed)
        // One line that lacks its closing: closed by the reader, but it does not end as an open journal does.
        let oneLine = try KernelTunerCache.decode(Data(compact.dropLast(2).utf8), path: "one-line.json")
        #expect(oneLine.completeness == .truncated && oneLine.entries.count == 2)
        // Ends with a comma, but not an entry's: `cache` is not the last field.
        let cutAfterCache = """
            {"device_name": "d", "kernel_name": "k", "cache": {"1": {"x": 1, "time": 1.5}},
            "tune_params_keys": ["x"],
            "tune_params": {"x": [1, 2],
            """
        let notAJournal = try KernelTunerCache.decode(Data(cutAfterCache.utf8), path: "not-a-journal.json")
        #expect(notAJournal.completeness == .truncated && notAJournal.entries.count == 1)
    }

    // MARK: Kernel Tuner's own layouts and Python's rendering of values

    @Test func readsOtherLayoutsAndRendersValuesAsPython() throws {
        // Compact and closed ("}}}"), with floats, booleans, strings and a single-int problem size.
        let compact = """
            {"device_name": "d", "kernel_name": "k", "problem_size": 1024, "tune_params_keys": ["f", "b", "s", "e"], \
            "tune_params": {"f": [0.5, 1.0], "b": [true, false], "s": ["x,y"], "e": [1e-05]}, "objective": "GFLOP/s", \
            "cache": {"0.5,True,x,y,1e-05": {"f": 0.5, "b": true, "s": "x,y", "e": 1e-05, "time": 1.5, "times": [1.5], "GFLOP/s": 3}}}
            """
        let cache = try KernelTunerCache.decode(Data(compact.utf8), path: "compact.json")
        #expect(cache.problemSize == [1024])
        #expect(cache.objective == "GFLOP/s")
        #expect(cache.parameterValues == [["0.5", "1.0"], ["True", "False"], ["x,y"], ["1e-05"]])
        let entry = try #require(cache.entries["0.5,True,x,y,1e-05"])
        #expect(entry.labels == ["0.5", "True", "x,y", "1e-05"])
        #expect(entry.extra == ["GFLOP/s": 3])
        #expect(entry.compileTime == nil)

        // Pretty-printed with indentation, problem size "callable", an entry with an "InvalidConfig".
        let pretty = """
            {
              "device_name": "d",
              "kernel_name": "k",
              "problem_size": "callable",
              "tune_params_keys": ["x"],
              "tune_params": {"x": [1, 2]},
              "cache": {
                "1": {"x": 1, "time": "InvalidConfig"},
                "2": {"x": 2, "time": 2}
              }
            }

            """
        let other = try KernelTunerCache.decode(Data(pretty.utf8), path: "pretty.json")
        #expect(other.problemSize == [])
        #expect(other.objective == "time")
        #expect(other.entries["1"]?.failure == "InvalidConfig")
        #expect(other.optimum?.key == "2" && other.optimum?.time == 2)

        // Kernel Tuner's own open journal, as written by its process_cache and store_cache.
        let open = "{\n\"device_name\": \"d\",\n\"kernel_name\": \"k\",\n\"problem_size\": [\n8\n],\n\"tune_params_keys\": [\n\"x\"\n],\n"
            + "\"tune_params\": {\n\"x\": [\n1,\n2\n]\n},\n\"objective\": \"time\",\n\"cache\": {"
            + "\n\"1\": {\"x\": 1, \"time\": 0.25, \"times\": [0.25], \"compile_time\": 1, \"timestamp\": \"2023-01-01 00:00:00.000000+00:00\"},"
        let journal = try KernelTunerCache.decode(Data(open.utf8), path: "open.json")
        #expect(journal.entries["1"]?.time == 0.25 && journal.entries["1"]?.compileTime == 1)
    }

    // MARK: Helpers

    /// gzip with stored deflate blocks: no compression, but the real container, checksum included.
    static func gzipStored(_ data: [UInt8], blockSize: Int) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
        var offset = 0
        repeat {
            let n = min(blockSize, data.count - offset)
            out.append(offset + n == data.count ? 1 : 0)
            out += [UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
            out += data[offset..<offset + n]
            offset += n
        } while offset < data.count
        var crc: UInt32 = 0xffff_ffff
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
        }
        crc = ~crc
        let size = UInt32(truncatingIfNeeded: data.count)
        for value in [crc, size] { out += (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        return out
    }
}

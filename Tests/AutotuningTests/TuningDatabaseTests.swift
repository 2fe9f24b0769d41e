import Autotuning
import Foundation
import Testing

@Suite struct TuningDatabaseTests {
    static let amdCPU = DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: "AuthenticAMD", type: "cpu", driver: "6.0")

    static func key(_ sizes: [Int], precision: String = "half", layout: String = "nn") -> TuningKey {
        TuningKey(kernel: "gemm", tags: ["precision": precision, "layout": layout], sizes: sizes)
    }

    static func entry(_ sizes: [Int], _ variant: String, precision: String = "half", layout: String = "nn") -> TuningEntry {
        TuningEntry(key: key(sizes, precision: precision, layout: layout),
                    config: Configuration(variant: variant, ["X": sizes[0]]), seconds: 0.01, gflops: 1)
    }

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tk-db-\(UUID().uuidString)/device.json").path
    }

    static func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A schema-1 file as `autotune tune` wrote them before schema 2: one entry without `batch`.
    static let schemaOneText = """
        {"schema": 1, "device": "pthread-haswell-AMD EPYC", "entries": [
          {"kernel": "gemm", "precision": "half", "layout": "nn", "shape": [1024, 1024, 1024], "batch": 1,
           "config": {"variant": "packed", "MR": 4, "NR": 24}, "seconds": 0.012648664, "gflops": 169.8,
           "date": "2026-11-24T05:08:20Z"},
          {"kernel": "gemm", "precision": "single", "layout": "tn", "shape": [64, 128, 256],
           "config": {"variant": "simple", "TM": 2}, "seconds": 0.0001, "date": "2026-11-24T05:05:52Z"}
        ]}
        """

    /// A schema-2 file of one entry whose fields are the given JSON texts.
    static func schemaTwoText(sizes: String = "[64, 64, 64, 1]", seconds: String = "0.01", gflops: String = "1.5") -> String {
        """
        {"schema": 2, "device": {"name": "d"}, "entries": [
          {"kernel": "gemm", "tags": {"precision": "half", "layout": "nn"}, "sizes": \(sizes),
           "config": {"variant": "packed"}, "seconds": \(seconds), "gflops": \(gflops), "date": "2026-11-24T05:08:20Z"}
        ]}
        """
    }

    // MARK: Keys

    @Test func keyDescriptionAndIdentifierSortTheTags() {
        let key = Self.key([1024, 1024, 1024, 1])
        #expect(key.description == "gemm layout=nn precision=half 1024x1024x1024x1")
        #expect(key.id == "gemm|layout=nn,precision=half|1024x1024x1024x1")
        #expect(TuningKey(kernel: "copy", sizes: [7]).id == "copy||7")
        // Separators inside names are escaped, so these two keys keep different identifiers.
        let tricky = TuningKey(kernel: "k", tags: ["a": "1,b=2"], sizes: [1])
        let plain = TuningKey(kernel: "k", tags: ["a": "1", "b": "2"], sizes: [1])
        #expect(tricky.id != plain.id)
    }

    // MARK: Lookup

    @Test func exactThenNearestOfTheSameKernelAndTags() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: Self.amdCPU, entries: [
            Self.entry([128, 128, 128, 1], "small"), Self.entry([2048, 2048, 2048, 1], "large"),
            Self.entry([512, 512, 512, 1], "single", precision: "single"),
        ]), source: "test")
        let exact = database.lookup(Self.key([128, 128, 128, 1]))
        #expect(exact?.exact == true && exact?.entry.config.variant == "small")
        let near = database.lookup(Self.key([1500, 1600, 1700, 1]))
        #expect(near?.entry.config.variant == "large" && near?.exact == false)
        #expect(database.lookup(Self.key([1, 1, 1, 1], precision: "single"))?.entry.config.variant == "single")
        #expect(database.nearest(Self.key([128, 128, 128, 1]), count: 5).map(\.config.variant) == ["small", "large"])
        #expect(database.nearest(Self.key([1500, 1600, 1700, 1]), count: 1).map(\.config.variant) == ["large"])
        #expect(database.nearest(Self.key([128, 128, 128, 1]), count: 0).isEmpty)
    }

    @Test func tagsKernelAndSizeCountMustMatch() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: Self.amdCPU, entries: [Self.entry([128, 128, 128, 1], "half")]), source: "test")
        #expect(database.lookup(Self.key([128, 128, 128, 1], precision: "single")) == nil)
        #expect(database.lookup(Self.key([128, 128, 128, 1], layout: "tt")) == nil)
        #expect(database.lookup(TuningKey(kernel: "gemm", tags: ["precision": "half"], sizes: [128, 128, 128, 1])) == nil)
        #expect(database.lookup(TuningKey(kernel: "gemm", tags: ["precision": "half", "layout": "nn", "mode": "x"],
                                          sizes: [128, 128, 128, 1])) == nil)
        #expect(database.lookup(TuningKey(kernel: "conv", tags: ["precision": "half", "layout": "nn"], sizes: [128, 128, 128, 1])) == nil)
        #expect(database.lookup(Self.key([128, 128, 128])) == nil)
        #expect(database.nearest(Self.key([128, 128, 128, 1], precision: "single"), count: 3).isEmpty)
    }

    @Test func equallyNearEntriesAreOrderedByKeyIdentifier() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: Self.amdCPU, entries: [Self.entry([200, 1], "b"), Self.entry([50, 1], "a")]), source: "test")
        // |log 100 - log 200| == |log 100 - log 50|: "gemm|...|200x1" < "gemm|...|50x1".
        #expect(database.lookup(Self.key([100, 1]))?.entry.config.variant == "b")
    }

    @Test func laterLayersWin() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: Self.amdCPU, entries: [Self.entry([64, 64, 64, 1], "shipped")]), source: "shipped")
        database.overlay(TuningFile(device: Self.amdCPU, entries: [Self.entry([64, 64, 64, 1], "user")]), source: "user")
        #expect(database.lookup(Self.key([64, 64, 64, 1]))?.entry.config.variant == "user")
        #expect(database.entries.count == 1)
        #expect(database.sources == ["shipped", "user"])
    }

    // MARK: Files

    @Test func encodingIsFlatStableAndRoundTrips() throws {
        var withBandwidth = Self.entry([8, 8, 8, 1], "b")
        withBandwidth.gbps = 12.5
        let file = TuningFile(device: Self.amdCPU, entries: [withBandwidth, Self.entry([4, 4, 4, 1], "a")])
        let data = try TuningDatabase.encode(file)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["schema"] as? Int == 2)
        #expect((json["device"] as? [String: Any])?["vendor"] as? String == "AuthenticAMD")
        let entries = try #require(json["entries"] as? [[String: Any]])
        #expect(entries.map { $0["sizes"] as? [Int] } == [[4, 4, 4, 1], [8, 8, 8, 1]])
        #expect(entries[0]["kernel"] as? String == "gemm" && entries[0]["key"] == nil)
        #expect(entries[0]["tags"] as? [String: String] == ["precision": "half", "layout": "nn"])
        #expect(entries[0]["gbps"] == nil && entries[1]["gbps"] as? Double == 12.5)
        let decoded = try TuningDatabase.decode(data, path: "memory")
        #expect(decoded.entries == [file.entries[1], withBandwidth])
        #expect(decoded.device == Self.amdCPU)
        #expect(try TuningDatabase.encode(decoded) == data)
    }

    @Test func mergeRoundTripsAndKeepsOtherEntries() throws {
        let path = Self.temporaryPath()
        try TuningDatabase.merge([Self.entry([1, 2, 3, 1], "a")], into: path, device: Self.amdCPU)
        try TuningDatabase.merge([Self.entry([4, 5, 6, 1], "b"), Self.entry([1, 2, 3, 1], "c")], into: path, device: Self.amdCPU)
        let file = try #require(try TuningDatabase.read(path: path))
        #expect(file.device == Self.amdCPU && file.schema == TuningFile.currentSchema)
        #expect(Set(file.entries.map(\.config.variant)) == ["b", "c"])
    }

    @Test func mergeKeepsAnExistingDeviceAndFillsOnlyItsMissingFields() throws {
        let path = Self.temporaryPath()
        try TuningDatabase.merge([Self.entry([1, 1, 1, 1], "a")], into: path, device: DeviceIdentity(name: "first", vendor: "V"))
        try TuningDatabase.merge([Self.entry([2, 1, 1, 1], "b")], into: path,
                                 device: DeviceIdentity(name: "second", vendor: "W", type: "gpu", driver: "1.2"))
        let file = try #require(try TuningDatabase.read(path: path))
        #expect(file.device == DeviceIdentity(name: "first", vendor: "V", type: "gpu", driver: "1.2"))
    }

    @Test func concurrentWritersLoseNothing() async throws {
        let path = Self.temporaryPath()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                group.addTask { try TuningDatabase.merge([Self.entry([index + 1, 1, 1, 1], "w\(index)")], into: path, device: Self.amdCPU) }
            }
            try await group.waitForAll()
        }
        #expect(try TuningDatabase.read(path: path)?.entries.count == 16)
    }

    @Test func corruptFileIsReportedAndNotOverwritten() throws {
        let path = Self.temporaryPath()
        try Self.write("{ not json", to: path)
        #expect {
            try TuningDatabase.merge([Self.entry([1, 1, 1, 1], "x")], into: path, device: Self.amdCPU)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("not a valid tuning database")
        }
        #expect(Self.contents(path) == "{ not json")
    }

    @Test func unknownSchemaIsRejected() throws {
        #expect {
            _ = try TuningDatabase.decode(Data(#"{"schema": 3, "device": {"name": "d"}, "entries": []}"#.utf8), path: "future.json")
        } throws: { error in
            "\(error)" == "tuning database future.json: schema 3 is not supported (this build reads schemas 1 and 2)"
        }
        #expect(throws: TuningDatabaseError.self) {
            _ = try TuningDatabase.decode(Data(#"{"device": {"name": "d"}, "entries": []}"#.utf8), path: "none.json")
        }
    }

    // MARK: Schema 1

    @Test func schemaOneIsMigratedOnDecode() throws {
        let file = try TuningDatabase.decode(Data(Self.schemaOneText.utf8), path: "old.json")
        #expect(file.schema == 2)
        #expect(file.device == DeviceIdentity(name: "pthread-haswell-AMD EPYC"))
        #expect(file.entries.map(\.key) == [Self.key([1024, 1024, 1024, 1]), Self.key([64, 128, 256, 1], precision: "single", layout: "tn")])
        #expect(file.entries[0].config == Configuration(variant: "packed", ["MR": 4, "NR": 24]))
        #expect(file.entries[0].seconds == 0.012648664 && file.entries[0].gflops == 169.8 && file.entries[0].gbps == nil)
        #expect(file.entries.map(\.date) == ["2026-11-24T05:08:20Z", "2026-11-24T05:05:52Z"])
        #expect(file.entries[1].gflops == nil)
    }

    @Test func mergeRewritesASchemaOneFileAsSchemaTwo() throws {
        let path = Self.temporaryPath()
        try Self.write(Self.schemaOneText, to: path)
        try TuningDatabase.merge([Self.entry([32, 32, 32, 1], "new")], into: path, device: Self.amdCPU)
        let data = try #require(FileManager.default.contents(atPath: path))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["schema"] as? Int == 2)
        let file = try #require(try TuningDatabase.read(path: path))
        #expect(file.device == Self.amdCPU)
        #expect(Set(file.entries.map(\.config.variant)) == ["packed", "simple", "new"])
        #expect(file.entries.contains { $0.key == Self.key([64, 128, 256, 1], precision: "single", layout: "tn") })
    }

    @Test func invalidSchemaOneEntriesAreRejected() {
        let text = Self.schemaOneText.replacingOccurrences(of: "\"shape\": [64, 128, 256]", with: "\"shape\": [64, 0, 256]")
        #expect {
            _ = try TuningDatabase.decode(Data(text.utf8), path: "old.json")
        } throws: { error in
            "\(error)".contains("old.json") && "\(error)".contains("gemm layout=tn precision=single 64x0x256x1")
        }
    }

    // MARK: Validation

    struct BadEntry: Sendable, CustomStringConvertible {
        var sizes = "[64, 64, 64, 1]"
        var seconds = "0.01"
        var gflops = "1.5"
        var problem: String
        var description: String { problem }
    }

    @Test(arguments: [
        BadEntry(sizes: "[0, 64, 64, 1]", problem: "sizes[0] is 0"),
        BadEntry(sizes: "[64, 64, -3, 1]", problem: "sizes[2] is -3"),
        BadEntry(seconds: "0", problem: "seconds is 0.0"),
        BadEntry(seconds: "-0.5", problem: "seconds is -0.5"),
        BadEntry(gflops: "-1", problem: "gflops is -1.0"),
    ])
    func decodeRejectsAnInvalidEntryNamingIt(bad: BadEntry) {
        let text = Self.schemaTwoText(sizes: bad.sizes, seconds: bad.seconds, gflops: bad.gflops)
        #expect {
            _ = try TuningDatabase.decode(Data(text.utf8), path: "bad.json")
        } throws: { error in
            let message = "\(error)"
            return message.hasPrefix("tuning database bad.json: invalid entry gemm layout=nn precision=half ")
                && message.contains(bad.problem)
        }
    }

    @Test func validEntriesHaveNoProblems() throws {
        #expect(Self.entry([1, 1, 1, 1], "a").problems.isEmpty)
        #expect(try TuningDatabase.decode(Data(Self.schemaTwoText().utf8), path: "good.json").entries.count == 1)
    }

    @Test func problemsNameEveryDefect() {
        var entry = TuningEntry(key: TuningKey(kernel: " ", sizes: [0, 2, -1]), config: Configuration(variant: "", [:]),
                                seconds: .nan, gflops: -1, gbps: .infinity)
        #expect(entry.problems == [
            "the kernel name is empty", "sizes[0] is 0 (must be at least 1)", "sizes[2] is -1 (must be at least 1)",
            "seconds is nan (must be finite and > 0)", "gflops is -1.0 (must be finite and >= 0)",
            "gbps is inf (must be finite and >= 0)", "the config variant is empty",
        ])
        entry.seconds = .infinity
        #expect(entry.problems.contains("seconds is inf (must be finite and > 0)"))
    }

    @Test func mergeRejectsInvalidEntriesAndLeavesTheFileUntouched() throws {
        let path = Self.temporaryPath()
        try TuningDatabase.merge([Self.entry([1, 1, 1, 1], "kept")], into: path, device: Self.amdCPU)
        let before = Self.contents(path)
        var zeroSize = Self.entry([0, 1, 1, 1], "zero")
        zeroSize.gflops = nil
        var nanSeconds = Self.entry([2, 1, 1, 1], "nan")
        nanSeconds.seconds = .nan
        var zeroSeconds = Self.entry([3, 1, 1, 1], "zero-seconds")
        zeroSeconds.seconds = 0
        var negativeSeconds = Self.entry([4, 1, 1, 1], "negative-seconds")
        negativeSeconds.seconds = -1
        var negativeGflops = Self.entry([5, 1, 1, 1], "negative-gflops")
        negativeGflops.gflops = -2
        for bad in [zeroSize, nanSeconds, zeroSeconds, negativeSeconds, negativeGflops] {
            #expect {
                try TuningDatabase.merge([Self.entry([9, 1, 1, 1], "good"), bad], into: path, device: Self.amdCPU)
            } throws: { error in
                "\(error)".contains(path) && "\(error)".contains("invalid entry \(bad.key)") && "\(error)".contains("nothing was written")
            }
        }
        #expect(Self.contents(path) == before)
        #expect {
            try TuningDatabase.merge([zeroSize, nanSeconds], into: path, device: Self.amdCPU)
        } throws: { error in
            "\(error)".contains("2 invalid entries: \(zeroSize.key): ") && "\(error)".contains("; \(nanSeconds.key): seconds is nan")
        }
        let fresh = Self.temporaryPath()
        #expect(throws: TuningDatabaseError.self) { try TuningDatabase.merge([nanSeconds], into: fresh, device: Self.amdCPU) }
        #expect(!FileManager.default.fileExists(atPath: fresh))
    }
}

@Suite struct DeviceMatchTests {
    static let skylake = DeviceIdentity(name: "pthread-skylake-avx512-AMD EPYC", vendor: "AuthenticAMD", type: "cpu")

    @Test func tokensAndSimilarity() {
        #expect(DeviceMatch.tokens("pthread-skylake-avx512-AMD EPYC") == ["pthread", "skylake", "avx512", "amd", "epyc"])
        #expect(DeviceMatch.tokens("  --  ").isEmpty)
        #expect(DeviceMatch.similarity("pthread-skylake-avx512-AMD EPYC", "pthread-haswell-AMD EPYC") == 0.5)
        #expect(DeviceMatch.similarity("NVIDIA A100", "nvidia a100") == 1)
        #expect(DeviceMatch.similarity("NVIDIA A100", "pthread-haswell-AMD EPYC") == 0)
        #expect(DeviceMatch.similarity("", "") == 0)
    }

    @Test func theMostSimilarSameVendorSameTypeDeviceIsChosen() {
        // Even were "NVIDIA A100" reported with the same vendor and type, the Haswell name is closer.
        let candidates = [DeviceIdentity(name: "NVIDIA A100", vendor: "AuthenticAMD", type: "cpu"),
                          DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: " authenticamd ", type: "CPU")]
        #expect(DeviceMatch.closest(to: Self.skylake, among: candidates, entryCounts: [100, 1]) == 1)
        // With no similar name, a same-vendor same-type device still beats nothing.
        #expect(DeviceMatch.closest(to: Self.skylake, among: [candidates[0]], entryCounts: [3]) == 0)
    }

    @Test func aDifferentVendorIsNeverChosen() {
        let intel = DeviceIdentity(name: "pthread-skylake-avx512-Intel Xeon", vendor: "GenuineIntel", type: "cpu")
        let amd = DeviceIdentity(name: "pthread-zen2", vendor: "AuthenticAMD", type: "cpu")
        #expect(DeviceMatch.closest(to: Self.skylake, among: [intel], entryCounts: [10]) == nil)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [intel, amd], entryCounts: [10, 1]) == 1)
    }

    @Test func aDifferentTypeIsNeverChosen() {
        let gpu = DeviceIdentity(name: "pthread-skylake-AMD EPYC", vendor: "AuthenticAMD", type: "gpu")
        #expect(DeviceMatch.closest(to: Self.skylake, among: [gpu], entryCounts: [10]) == nil)
    }

    @Test func aMissingVendorOrTypeNeverMatches() {
        let noVendor = DeviceIdentity(name: "pthread-haswell-AMD EPYC", type: "cpu")
        let noType = DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: "AuthenticAMD")
        let blankVendor = DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: "  ", type: "cpu")
        #expect(DeviceMatch.closest(to: Self.skylake, among: [noVendor, noType, blankVendor], entryCounts: [1, 1, 1]) == nil)
        let full = DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: "AuthenticAMD", type: "cpu")
        #expect(DeviceMatch.closest(to: DeviceIdentity(name: Self.skylake.name, type: "cpu"), among: [full], entryCounts: [1]) == nil)
        #expect(DeviceMatch.closest(to: DeviceIdentity(name: Self.skylake.name, vendor: "AuthenticAMD"), among: [full], entryCounts: [1]) == nil)
    }

    @Test func theSameNameIsNotAFallback() {
        let same = Self.skylake
        let other = DeviceIdentity(name: "pthread-haswell-AMD EPYC", vendor: "AuthenticAMD", type: "cpu")
        #expect(DeviceMatch.closest(to: Self.skylake, among: [same], entryCounts: [10]) == nil)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [same, other], entryCounts: [10, 1]) == 1)
    }

    @Test func tiesGoToMoreEntriesThenToTheLowerIndex() {
        let a = DeviceIdentity(name: "pthread-zen3-AMD EPYC", vendor: "AuthenticAMD", type: "cpu")
        let b = DeviceIdentity(name: "pthread-zen4-AMD EPYC", vendor: "AuthenticAMD", type: "cpu")
        #expect(DeviceMatch.similarity(a.name, Self.skylake.name) == DeviceMatch.similarity(b.name, Self.skylake.name))
        #expect(DeviceMatch.closest(to: Self.skylake, among: [a, b], entryCounts: [3, 7]) == 1)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [a, b], entryCounts: [7, 3]) == 0)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [a, b], entryCounts: [5, 5]) == 0)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [a, b], entryCounts: [5]) == 0)
        #expect(DeviceMatch.closest(to: Self.skylake, among: [], entryCounts: []) == nil)
    }
}

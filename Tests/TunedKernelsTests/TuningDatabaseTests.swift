import Autotuning
import Foundation
import OpenCLRuntime
import Testing
import TunedKernels

@Suite struct TuningDatabaseTests {
    static func entry(_ shape: [Int], _ variant: String, precision: String = "half", layout: String = "nn") -> TuningEntry {
        TuningEntry(kernel: "gemm", precision: precision, layout: layout, shape: shape,
                    config: Configuration(variant: variant, ["X": shape[0]]), seconds: 0.01, gflops: 1)
    }

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tk-db-\(UUID().uuidString)/device.json").path
    }

    @Test func exactThenNearestShapeOfTheSameKey() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: "d", entries: [Self.entry([128, 128, 128], "small"), Self.entry([2048, 2048, 2048], "large"),
                                                           Self.entry([512, 512, 512], "single", precision: "single")]), source: "test")
        #expect(database.lookup(kernel: "gemm", precision: "half", layout: "nn", shape: [128, 128, 128])?.exact == true)
        let near = database.lookup(kernel: "gemm", precision: "half", layout: "nn", shape: [1500, 1600, 1700])
        #expect(near?.entry.config.variant == "large" && near?.exact == false)
        #expect(database.lookup(kernel: "gemm", precision: "half", layout: "tt", shape: [128, 128, 128]) == nil)
        #expect(database.lookup(kernel: "gemm", precision: "single", layout: "nn", shape: [1, 1, 1])?.entry.config.variant == "single")
    }

    @Test func laterLayersWin() {
        var database = TuningDatabase()
        database.overlay(TuningFile(device: "d", entries: [Self.entry([64, 64, 64], "shipped")]), source: "shipped")
        database.overlay(TuningFile(device: "d", entries: [Self.entry([64, 64, 64], "user")]), source: "user")
        #expect(database.lookup(kernel: "gemm", precision: "half", layout: "nn", shape: [64, 64, 64])?.entry.config.variant == "user")
        #expect(database.sources == ["shipped", "user"])
    }

    @Test func mergeRoundTripsAndKeepsOtherEntries() throws {
        let path = Self.temporaryPath()
        try TuningDatabase.merge([Self.entry([1, 2, 3], "a")], into: path, device: "dev")
        try TuningDatabase.merge([Self.entry([4, 5, 6], "b"), Self.entry([1, 2, 3], "c")], into: path, device: "dev")
        let file = try #require(try TuningDatabase.read(path: path))
        #expect(file.device == "dev" && file.schema == TuningFile.currentSchema)
        #expect(Set(file.entries.map(\.config.variant)) == ["b", "c"])
    }

    @Test func concurrentWritersLoseNothing() async throws {
        let path = Self.temporaryPath()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                group.addTask { try TuningDatabase.merge([Self.entry([index + 1, 1, 1], "w\(index)")], into: path, device: "dev") }
            }
            try await group.waitForAll()
        }
        #expect(try TuningDatabase.read(path: path)?.entries.count == 16)
    }

    @Test func corruptFileIsReportedAndNotOverwritten() throws {
        let path = Self.temporaryPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try TuningDatabase.merge([Self.entry([1, 1, 1], "x")], into: path, device: "dev")
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("not a valid tuning database")
        }
        #expect(String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self) == "{ not json")
    }

    @Test func deviceDatabaseUsesTheEnvironmentOverlayAndRejectsAMissingOne() throws {
        let device = try #require(Shared.context?.device)
        let path = Self.temporaryPath()
        try TuningDatabase.merge([Self.entry([3, 3, 3], "override")], into: path, device: device.name)
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("tk-cache-\(UUID().uuidString)").path
        let database = try TuningDatabase.forDevice(device, environment: ["XDG_CACHE_HOME": cache, "TUNEDKERNELS_TUNING_DB": path])
        #expect(database.lookup(kernel: "gemm", precision: "half", layout: "nn", shape: [3, 3, 3])?.entry.config.variant == "override")
        #expect(throws: TuningDatabaseError.self) {
            _ = try TuningDatabase.forDevice(device, environment: ["XDG_CACHE_HOME": cache, "TUNEDKERNELS_TUNING_DB": path + ".missing"])
        }
    }
}

import Autotuning
import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// The tuning database of a device: its own layers, the fallback to the closest tuned device, the defaults.
@Suite struct DeviceDatabaseTests {
    static func entry(_ sizes: [Int], _ variant: String) -> TuningEntry {
        TuningEntry(key: TuningKey(kernel: "gemm", tags: ["precision": "half", "layout": "nn"], sizes: sizes),
                    config: Configuration(variant: variant, ["X": sizes[0]]), seconds: 0.01, gflops: 1)
    }

    static func temporaryFolder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tk-db-\(UUID().uuidString)").path
    }

    static func text(_ file: TuningFile) throws -> String { String(decoding: try TuningDatabase.encode(file), as: UTF8.self) }

    @Test func environmentOverlayAndAMissingOne() throws {
        let device = try #require(Shared.context?.device)
        let path = Self.temporaryFolder() + "/device.json"
        try TuningDatabase.merge([Self.entry([3, 3, 3, 1], "override")], into: path, device: device.identity)
        let cache = Self.temporaryFolder()
        let (database, _) = try TuningDatabase.forDevice(device, environment: ["XDG_CACHE_HOME": cache, "TUNEDKERNELS_TUNING_DB": path])
        #expect(database.lookup(Self.entry([3, 3, 3, 1], "").key)?.entry.config.variant == "override")
        #expect(throws: TuningDatabaseError.self) {
            _ = try TuningDatabase.forDevice(device, environment: ["XDG_CACHE_HOME": cache, "TUNEDKERNELS_TUNING_DB": path + ".missing"])
        }
    }

    @Test func exactFileThenClosestDeviceOfTheSameVendorAndTypeThenDefaults() throws {
        let device = try #require(Shared.context?.device)
        let cache = Self.temporaryFolder()
        let environment = ["XDG_CACHE_HOME": cache]
        func file(_ name: String, vendor: String?, type: String?, variant: String) throws -> String {
            try Self.text(TuningFile(device: DeviceIdentity(name: name, vendor: vendor, type: type), entries: [Self.entry([8, 8, 8, 1], variant)]))
        }
        let type = device.kind.rawValue
        let shipped = [
            "near.json": try file(device.name + " v2", vendor: device.vendor, type: type, variant: "near"),
            "far.json": try file("another model", vendor: device.vendor, type: type, variant: "far"),
            "other-vendor.json": try file(device.name, vendor: device.vendor + "X", type: type, variant: "vendor"),
            "other-type.json": try file(device.name + " v2", vendor: device.vendor, type: type == "gpu" ? "cpu" : "gpu", variant: "type"),
        ]
        let key = Self.entry([8, 8, 8, 1], "").key
        // No file of this device: the closest of the same vendor and type, and it says so.
        let (fallback, origin) = try TuningDatabase.forDevice(device, environment: environment, shipped: shipped)
        #expect(origin.match == .fallback && origin.device == device.name + " v2")
        #expect(origin.summary.contains("fallback to \(device.name) v2"))
        #expect(fallback.lookup(key)?.entry.config.variant == "near")
        // Its own shipped file wins over any other device's.
        var withOwn = shipped
        withOwn["\(device.slug).json"] = try file(device.name, vendor: device.vendor, type: type, variant: "own")
        let (own, ownOrigin) = try TuningDatabase.forDevice(device, environment: environment, shipped: withOwn)
        #expect(ownOrigin.match == .exact && own.lookup(key)?.entry.config.variant == "own")
        // Nothing of the same vendor and type: the defaults, and a dispatcher on it uses them.
        let (none, noneOrigin) = try TuningDatabase.forDevice(device, environment: environment,
                                                              shipped: ["other-vendor.json": shipped["other-vendor.json"]!])
        #expect(noneOrigin.match == .defaults && none.entries.isEmpty)
        // Tuning one shape here puts the user's file over the fallback, which still serves the other shapes.
        let userPath = cache + "/tunedkernels/\(device.slug).json"
        try TuningDatabase.merge([Self.entry([64, 64, 64, 1], "mine")], into: userPath, device: device.identity)
        let (user, userOrigin) = try TuningDatabase.forDevice(device, environment: environment, shipped: shipped)
        #expect(userOrigin.match == .fallback && userOrigin.sources.last == userPath)
        #expect(user.lookup(Self.entry([64, 64, 64, 1], "").key)?.entry.config.variant == "mine")
        #expect(user.lookup(key)?.entry.config.variant == "near")
        // Only the user's file: exact.
        let (_, onlyUser) = try TuningDatabase.forDevice(device, environment: environment, shipped: [:])
        #expect(onlyUser.match == .exact)
        // Only TUNEDKERNELS_TUNING_DB: given, not exact.
        let (_, onlyGiven) = try TuningDatabase.forDevice(device, environment: ["XDG_CACHE_HOME": Self.temporaryFolder(), "TUNEDKERNELS_TUNING_DB": userPath],
                                                          shipped: [:])
        #expect(onlyGiven.match == .given)
    }

    @Test func dispatcherReportsWhereItsDatabaseCameFrom() throws {
        let context = try #require(Shared.context)
        let gemm = try GEMM(context: context, database: TuningDatabase())
        #expect(gemm.core.origin.match == .defaults)
        #expect(gemm.configuration(for: GEMMProblem(m: 64, n: 64, k: 64, precision: .half)).1 == .default)
    }

    /// Every shipped file is schema 2 in the canonical form `merge` writes, with the device's vendor and type,
    /// so the fallback can use it.
    @Test func shippedFilesAreCanonicalSchemaTwo() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("autotune")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        #expect(!names.isEmpty)
        for name in names {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let file = try TuningDatabase.decode(data, path: name)
            #expect(String(decoding: data, as: UTF8.self).contains("\"schema\" : 2"), "\(name) is not schema 2 on disk")
            #expect(try TuningDatabase.encode(file) == data, "\(name) is not in canonical form")
            #expect(file.device.vendor != nil && file.device.type != nil, "\(name) lacks the device's vendor or type")
        }
    }
}

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

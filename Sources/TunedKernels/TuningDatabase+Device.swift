import Autotuning
import Foundation
import OpenCLRuntime

extension TuningDatabase {
    /// The tuning database of `device`: the file shipped in the package's `autotune/<device slug>.json`,
    /// overlaid by the user's `$XDG_CACHE_HOME/tunedkernels/<device slug>.json` (or
    /// `~/.cache/tunedkernels/...`), overlaid by the file named by `TUNEDKERNELS_TUNING_DB`.
    ///
    /// **Edge cases:** missing files are skipped; a corrupt one throws ``TuningDatabaseError`` naming it.
    public static func forDevice(_ device: Device, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TuningDatabase {
        var database = TuningDatabase()
        let shippedName = "\(device.slug).json"
        if let text = EmbeddedTuningDatabases.files[shippedName] {
            database.overlay(try decode(Data(text.utf8), path: "autotune/\(shippedName) (embedded)"), source: "autotune/\(shippedName) (shipped)")
        }
        let userPath = userDatabasePath(for: device, environment: environment)
        if let file = try read(path: userPath) { database.overlay(file, source: userPath) }
        if let extra = environment["TUNEDKERNELS_TUNING_DB"], !extra.isEmpty {
            guard let file = try read(path: extra) else {
                throw TuningDatabaseError(path: extra, reason: "TUNEDKERNELS_TUNING_DB names a file that does not exist")
            }
            database.overlay(file, source: extra)
        }
        return database
    }

    /// Where `autotune tune` writes its results for `device` unless told otherwise.
    public static func userDatabasePath(for device: Device, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        ProgramCache.cacheRoot(environment: environment) + "/\(device.slug).json"
    }
}

import Autotuning
import Foundation
import OpenCLRuntime

/// Which tuning database serves a device, for `autotune show` and `bench` and for a program to log.
public struct DatabaseOrigin: Codable, Sendable, Equatable {
    public enum Match: String, Codable, Sendable {
        /// A file tuned on this very device (shipped or the user's) is the base.
        case exact
        /// No file was shipped for this device: the closest tuned device's file is the base, under the user's own
        /// entries for this device, if any.
        case fallback
        /// Nothing tuned applies: the family's defaults for the device type.
        case defaults
        /// A database the caller passed in (or only `TUNEDKERNELS_TUNING_DB`).
        case given
    }

    public var match: Match
    /// The device whose entries are the base (for a fallback: the other device's name).
    public var device: String?
    /// The files read, in overlay order.
    public var sources: [String]
    /// Why this match, in words.
    public var reason: String?

    public init(match: Match, device: String?, sources: [String], reason: String?) {
        self.match = match
        self.device = device
        self.sources = sources
        self.reason = reason
    }

    /// `exact (autotune/x.json (shipped))`, `fallback to D: ...`, `defaults`.
    public var summary: String {
        switch match {
        case .exact: "exact: " + sources.joined(separator: ", ")
        case .fallback: "fallback to \(device ?? "?"): " + (reason ?? "") + " (" + sources.joined(separator: ", ") + ")"
        case .defaults: "defaults: " + (reason ?? "no tuned entries for this device")
        case .given: "given: " + sources.joined(separator: ", ")
        }
    }
}

extension Device {
    /// This device as a tuning database records it.
    public var identity: DeviceIdentity {
        DeviceIdentity(name: name, vendor: vendor, type: kind.rawValue, driver: driverVersion)
    }
}

extension TuningDatabase {
    /// The tuning database of `device` and where it came from.
    ///
    /// Layers, each over the one before:
    /// 1. when no file was shipped for this device, the file of the closest tuned device of the same vendor and type
    ///    among the shipped files and the user's files of other devices (CLBlast's fallback: these machines change
    ///    CPU model from day to day);
    /// 2. the file shipped in the package's `autotune/<device slug>.json`;
    /// 3. the user's `$XDG_CACHE_HOME/tunedkernels/<device slug>.json` (or `~/.cache/tunedkernels/...`);
    /// 4. the file named by `TUNEDKERNELS_TUNING_DB`.
    ///
    /// So tuning one shape here (layer 3) does not hide the fallback's entries for the other shapes. With no layer at
    /// all, the families use their defaults.
    ///
    /// **Edge cases:** a corrupt file of this device throws ``TuningDatabaseError`` naming it; another device's
    /// unreadable user file is skipped; a missing `TUNEDKERNELS_TUNING_DB` file throws.
    public static func forDevice(_ device: Device, environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> (database: TuningDatabase, origin: DatabaseOrigin) {
        try forDevice(device, environment: environment, shipped: EmbeddedTuningDatabases.files)
    }

    /// ``forDevice(_:environment:)`` with the shipped files given by name (the tests give their own).
    static func forDevice(_ device: Device, environment: [String: String], shipped: [String: String]) throws
        -> (database: TuningDatabase, origin: DatabaseOrigin) {
        var database = TuningDatabase()
        var origin = DatabaseOrigin(match: .defaults, device: nil, sources: [], reason: "no tuning database for \(device.name) or a device like it")
        let shippedName = "\(device.slug).json"
        if let text = shipped[shippedName] {
            database.overlay(try decode(Data(text.utf8), path: "autotune/\(shippedName) (embedded)"), source: "autotune/\(shippedName) (shipped)")
            origin = DatabaseOrigin(match: .exact, device: device.name, sources: [], reason: nil)
        } else if let (file, source) = try closestFile(to: device, environment: environment, shipped: shipped) {
            database.overlay(file, source: source)
            origin = DatabaseOrigin(match: .fallback, device: file.device.name, sources: [],
                                    reason: "closest tuned \(device.kind.rawValue) device of vendor \(device.vendor) to \(device.name)")
        }
        let userPath = userDatabasePath(for: device, environment: environment)
        if let file = try read(path: userPath) {
            database.overlay(file, source: userPath)
            if origin.match == .defaults { origin = DatabaseOrigin(match: .exact, device: device.name, sources: [], reason: nil) }
        }
        if let extra = environment["TUNEDKERNELS_TUNING_DB"], !extra.isEmpty {
            guard let file = try read(path: extra) else {
                throw TuningDatabaseError(path: extra, reason: "TUNEDKERNELS_TUNING_DB names a file that does not exist")
            }
            database.overlay(file, source: extra)
            if origin.match == .defaults {
                origin = DatabaseOrigin(match: .given, device: file.device.name, sources: [], reason: "TUNEDKERNELS_TUNING_DB only")
            }
        }
        origin.sources = database.sources
        return (database, origin)
    }

    /// The shipped or user file of the device closest to `device` (same vendor and type), if any.
    static func closestFile(to device: Device, environment: [String: String], shipped: [String: String]) throws -> (TuningFile, String)? {
        var files: [(TuningFile, String)] = []
        for (name, text) in shipped.sorted(by: { $0.key < $1.key }) {
            files.append((try decode(Data(text.utf8), path: "autotune/\(name) (embedded)"), "autotune/\(name) (shipped)"))
        }
        let folder = ProgramCache.cacheRoot(environment: environment)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names.sorted() where name.hasSuffix(".json") {
            // Another device's file that cannot be read is not this device's problem: skip it.
            if let file = try? read(path: folder + "/" + name) { files.append((file, folder + "/" + name)) }
        }
        guard let index = DeviceMatch.closest(to: device.identity, among: files.map(\.0.device), entryCounts: files.map(\.0.entries.count)) else {
            return nil
        }
        return files[index]
    }

    /// Where `autotune tune` writes its results for `device` unless told otherwise.
    public static func userDatabasePath(for device: Device, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        ProgramCache.cacheRoot(environment: environment) + "/\(device.slug).json"
    }
}

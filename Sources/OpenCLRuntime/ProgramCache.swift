import COpenCL
import Foundation
import Synchronization

/// Built programs by (device, source, options): in memory for this process, and on disk as device
/// binaries so that a second process start does not rebuild them, except on a driver that keeps compiled kernels
/// itself (``Device/driverCachesCompiledKernels``: PoCL), where its own cache serves the second start.
///
/// The on-disk key hashes the device's name, vendor, driver and platform versions, the source and the
/// options, so a driver update or an edited kernel never loads a stale binary. A binary the driver
/// rejects is rebuilt from source and replaced. Files are written to a temporary name and renamed.
public final class ProgramCache: Sendable {
    /// How requests were served since creation.
    public struct Statistics: Sendable, Equatable {
        public var memoryHits = 0
        public var diskHits = 0
        public var builds = 0

        public init(memoryHits: Int = 0, diskHits: Int = 0, builds: Int = 0) {
            (self.memoryHits, self.diskHits, self.builds) = (memoryHits, diskHits, builds)
        }
    }

    /// When binaries are stored on disk.
    public enum BinaryPolicy: Sendable {
        /// For every device.
        case always
        /// Unless the device's driver keeps compiled kernels itself (``Device/driverCachesCompiledKernels``).
        case unlessTheDriverCaches
    }

    /// Where binaries are stored, or `nil` for memory only.
    public let directory: String?
    public let binaries: BinaryPolicy
    private let entries = Mutex<[String: Program]>([:])
    private let counters = Mutex(Statistics())

    public init(directory: String?, binaries: BinaryPolicy = .unlessTheDriverCaches) {
        self.directory = directory
        self.binaries = binaries
    }

    /// Whether programs of `device` go to (and come from) the disk.
    public func storesBinaries(for device: Device) -> Bool {
        directory != nil && (binaries == .always || !device.driverCachesCompiledKernels)
    }

    public var statistics: Statistics { counters.withLock { $0 } }

    /// `TUNEDKERNELS_PROGRAM_CACHE` (a folder, or `off` for memory only), else
    /// `$XDG_CACHE_HOME/tunedkernels/programs`, else `~/.cache/tunedkernels/programs`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let value = environment["TUNEDKERNELS_PROGRAM_CACHE"], !value.isEmpty {
            return ["off", "0", "none"].contains(value.lowercased()) ? nil : value
        }
        return cacheRoot(environment: environment) + "/programs"
    }

    /// `$XDG_CACHE_HOME/tunedkernels` or `~/.cache/tunedkernels`.
    public static func cacheRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/tunedkernels" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/tunedkernels"
    }

    /// The built program for `source` and `options` on the context's device, building it at most once.
    public func program(_ context: Context, source: String, options: String) throws -> Program {
        let key = Self.key(device: context.device, source: source, options: options)
        if let cached = entries.withLock({ $0[key] }) {
            counters.withLock { $0.memoryHits += 1 }
            return cached
        }
        let program: Program
        let disk = storesBinaries(for: context.device)
        if disk, let loaded = loadFromDisk(context, key: key, options: options) {
            counters.withLock { $0.diskHits += 1 }
            program = loaded
        } else {
            program = try Program.build(context, source: source, options: options)
            counters.withLock { $0.builds += 1 }
            if disk { saveToDisk(program, key: key) }
        }
        return entries.withLock { table in
            if let raced = table[key] { return raced }
            table[key] = program
            return program
        }
    }

    /// Forgets the in-memory programs (the disk cache stays).
    public func removeAllFromMemory() { entries.withLock { $0.removeAll() } }

    private func path(for key: String) -> String? { directory.map { "\($0)/\(key).bin" } }

    private func loadFromDisk(_ context: Context, key: String, options: String) -> Program? {
        guard let path = path(for: key), let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return nil }
        return try? Program.load(context, binary: [UInt8](data), options: options)
    }

    private func saveToDisk(_ program: Program, key: String) {
        guard let directory, let path = path(for: key), let binary = try? program.binary(), !binary.isEmpty else { return }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let temporary = "\(path).\(ProcessInfo.processInfo.processIdentifier).\(UInt64.random(in: 0...UInt64.max)).tmp"
            try Data(binary).write(to: URL(fileURLWithPath: temporary))
            if rename(temporary, path) != 0 { try? FileManager.default.removeItem(atPath: temporary) }
        } catch {
            // A cache that cannot be written only costs a rebuild next time.
        }
    }

    static func key(device: Device, source: String, options: String) -> String {
        let identity = [device.name, device.vendor, device.version, device.driverVersion, device.platformVersion, options].joined(separator: "\u{1}")
        let text = identity + "\u{2}" + source
        return hex(fnv1a(text, basis: 0xcbf2_9ce4_8422_2325)) + hex(fnv1a(text, basis: 0x6c62_272e_07bb_0142))
    }

    private static func fnv1a(_ text: String, basis: UInt64) -> UInt64 {
        var hash = basis
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

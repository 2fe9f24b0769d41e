import Foundation

/// The best known configuration of one kernel family for one problem on one device.
public struct TuningEntry: Codable, Sendable, Equatable {
    /// The key: kernel family (`"gemm"`), precision (`"half"`), layout (`"nn"`), shape (`[M, N, K]`),
    /// batch count.
    public var kernel: String
    public var precision: String
    public var layout: String
    public var shape: [Int]
    public var batch: Int
    public var config: Configuration
    /// Median measured seconds of one call.
    public var seconds: Double
    public var gflops: Double?
    /// When it was measured, ISO 8601.
    public var date: String

    public init(kernel: String, precision: String, layout: String, shape: [Int], batch: Int = 1,
                config: Configuration, seconds: Double, gflops: Double?, date: Date = Date()) {
        self.kernel = kernel
        self.precision = precision
        self.layout = layout
        self.shape = shape
        self.batch = batch
        self.config = config
        self.seconds = seconds
        self.gflops = gflops
        self.date = ISO8601DateFormatter().string(from: date)
    }

    var key: String { "\(kernel)|\(precision)|\(layout)|\(shape.map(String.init).joined(separator: "x"))|\(batch)" }
}

/// One tuning-database file: the entries of one device.
public struct TuningFile: Codable, Sendable, Equatable {
    public static let currentSchema = 1
    public var schema: Int
    /// The device name the entries were measured on.
    public var device: String
    public var entries: [TuningEntry]

    public init(device: String, entries: [TuningEntry] = []) {
        schema = Self.currentSchema
        self.device = device
        self.entries = entries
    }
}

/// Why a tuning database could not be used. The file is never overwritten after such an error.
public struct TuningDatabaseError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "tuning database \(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// The tuned configurations of one device: layers of ``TuningFile``s, a later layer's entry replacing
/// an earlier one with the same key (shipped database, then the user's, then `TUNEDKERNELS_TUNING_DB`).
public struct TuningDatabase: Sendable {
    public private(set) var entries: [String: TuningEntry] = [:]
    /// Where each layer came from, in order, for `autotune show`.
    public private(set) var sources: [String] = []

    public init() {}

    /// Adds `file`'s entries over the existing ones.
    public mutating func overlay(_ file: TuningFile, source: String) {
        for entry in file.entries { entries[entry.key] = entry }
        sources.append(source)
    }

    /// The entry for exactly this problem, or else the nearest tuned shape of the same kernel,
    /// precision and layout (distance: the sum of |log ratio| over the shape and batch), or nil.
    public func lookup(kernel: String, precision: String, layout: String, shape: [Int], batch: Int = 1) -> (entry: TuningEntry, exact: Bool)? {
        guard let nearest = nearest(kernel: kernel, precision: precision, layout: layout, shape: shape, batch: batch, count: 1).first else { return nil }
        return (nearest, nearest.shape == shape && nearest.batch == batch)
    }

    /// Up to `count` entries of the same kernel, precision and layout, nearest shape first (the exact
    /// shape, if tuned, comes first): the seeds of a new shape's search.
    public func nearest(kernel: String, precision: String, layout: String, shape: [Int], batch: Int = 1, count: Int) -> [TuningEntry] {
        func distance(_ entry: TuningEntry) -> Double {
            zip(entry.shape + [entry.batch], shape + [batch]).reduce(0) { sum, pair in
                sum + abs(log(Double(max(pair.0, 1))) - log(Double(max(pair.1, 1))))
            }
        }
        let candidates = entries.values.filter {
            $0.kernel == kernel && $0.precision == precision && $0.layout == layout && $0.shape.count == shape.count
        }
        return Array(candidates.map { ($0, distance($0)) }.sorted { ($0.1, $0.0.key) < ($1.1, $1.0.key) }.prefix(count).map(\.0))
    }

    // MARK: Files

    /// Decodes a database file; a file that is not valid JSON of a known schema throws, naming the file.
    public static func decode(_ data: Data, path: String) throws -> TuningFile {
        let file: TuningFile
        do {
            file = try JSONDecoder().decode(TuningFile.self, from: data)
        } catch {
            throw TuningDatabaseError(path: path, reason: "not a valid tuning database (\(error)); fix or remove the file")
        }
        guard file.schema == TuningFile.currentSchema else {
            throw TuningDatabaseError(path: path, reason: "schema \(file.schema) is not supported (this build reads schema \(TuningFile.currentSchema))")
        }
        return file
    }

    /// Reads a database file; a missing file is `nil`, an unreadable or corrupt one throws.
    public static func read(path: String) throws -> TuningFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuningDatabaseError(path: path, reason: "cannot be read")
        }
        return try decode(data, path: path)
    }

    /// Encodes a file as stable, readable JSON (sorted keys, entries in key order).
    public static func encode(_ file: TuningFile) throws -> Data {
        var sorted = file
        sorted.entries.sort { $0.key < $1.key }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(sorted) + Data("\n".utf8)
    }

    /// Adds or replaces `newEntries` in the file at `path` for `device`, creating it if needed.
    ///
    /// Safe against another process doing the same: an exclusive `flock` on `path.lock` is held while
    /// the file is read, merged and written to a temporary file that is renamed over it. A corrupt
    /// existing file throws and is left as it is.
    public static func merge(_ newEntries: [TuningEntry], into path: String, device: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let lockPath = path + ".lock"
        let descriptor = open(lockPath, O_CREAT | O_RDWR, 0o644)
        guard descriptor >= 0 else { throw TuningDatabaseError(path: path, reason: "cannot open lock file \(lockPath)") }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX) == 0 else { throw TuningDatabaseError(path: path, reason: "cannot lock \(lockPath)") }
        defer { flock(descriptor, LOCK_UN) }

        var file = try read(path: path) ?? TuningFile(device: device)
        var byKey = Dictionary(file.entries.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        for entry in newEntries { byKey[entry.key] = entry }
        file.entries = Array(byKey.values)
        let temporary = path + ".\(getpid()).tmp"
        do {
            try encode(file).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw TuningDatabaseError(path: path, reason: "cannot write \(temporary): \(error)")
        }
        guard rename(temporary, path) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw TuningDatabaseError(path: path, reason: "cannot rename \(temporary) over it")
        }
    }
}

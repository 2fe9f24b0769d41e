import Foundation

// MARK: - Keys and entries

/// The key of a tuned configuration: the kernel family (`"gemm"`), its tags (precision, layout, mode,
/// format...) and its integer sizes (for a GEMM `[M, N, K, batch]`). This module knows no particular
/// kernel: what the tags and sizes mean is the caller's business.
public struct TuningKey: Codable, Hashable, Sendable, CustomStringConvertible {
    public var kernel: String
    public var tags: [String: String]
    public var sizes: [Int]

    public init(kernel: String, tags: [String: String] = [:], sizes: [Int]) {
        self.kernel = kernel
        self.tags = tags
        self.sizes = sizes
    }

    /// `gemm layout=nn precision=half 1024x1024x1024x1`: the kernel, the tags in name order, the sizes
    /// joined by `x` (left out when there are none).
    public var description: String {
        var words = [kernel] + sortedTags.map { "\($0.key)=\($0.value)" }
        if !sizes.isEmpty { words.append(sizeText) }
        return words.joined(separator: " ")
    }

    /// A stable identifier, `gemm|layout=nn,precision=half|1024x1024x1024x1`: the database's dictionary
    /// key and the order of a file's entries.
    ///
    /// **Edge cases:** `%`, `|`, `,` and `=` in the kernel name or in a tag's name or value are
    /// percent-escaped (`%25`, `%7C`, `%2C`, `%3D`), so two different keys never share an identifier.
    public var id: String {
        let tagText = sortedTags.map { Self.escaped($0.key) + "=" + Self.escaped($0.value) }.joined(separator: ",")
        return Self.escaped(kernel) + "|" + tagText + "|" + sizeText
    }

    private var sortedTags: [(key: String, value: String)] { tags.sorted { $0.key < $1.key } }
    private var sizeText: String { sizes.map(String.init).joined(separator: "x") }

    private static func escaped(_ text: String) -> String {
        guard text.contains(where: { "%|,=".contains($0) }) else { return text }
        var result = ""
        for character in text {
            switch character {
            case "%": result += "%25"
            case "|": result += "%7C"
            case ",": result += "%2C"
            case "=": result += "%3D"
            default: result.append(character)
            }
        }
        return result
    }
}

/// The best known configuration for one key on one device.
///
/// Serialized flat, the key's fields beside the measurement (`gflops` and `gbps` left out when nil):
/// `{"kernel": "gemm", "tags": {"precision": "half", "layout": "nn"}, "sizes": [1024, 1024, 1024, 1],
/// "config": {"variant": "packed", ...}, "seconds": 0.0126, "gflops": 169.8, "date": "2026-11-24T05:08:20Z"}`.
public struct TuningEntry: Codable, Sendable, Equatable {
    public var key: TuningKey
    public var config: Configuration
    /// Median measured seconds of one call (finite, > 0).
    public var seconds: Double
    /// Achieved arithmetic throughput, when the kernel counts its operations.
    public var gflops: Double?
    /// Achieved memory throughput, when the kernel counts its bytes.
    public var gbps: Double?
    /// When it was measured, ISO 8601.
    public var date: String

    public init(key: TuningKey, config: Configuration, seconds: Double, gflops: Double? = nil, gbps: Double? = nil,
                date: Date = Date()) {
        self.key = key
        self.config = config
        self.seconds = seconds
        self.gflops = gflops
        self.gbps = gbps
        self.date = ISO8601DateFormatter().string(from: date)
    }

    /// Why this entry is not acceptable, one phrase per problem; empty when it is valid.
    ///
    /// Checked: the kernel name is not empty, every size is at least 1, `seconds` is finite and > 0,
    /// `gflops` and `gbps` (when present) are finite and >= 0, the config's variant is not empty.
    /// **Edge cases:** a name of only white space counts as empty; an entry without sizes is valid.
    public var problems: [String] {
        var problems: [String] = []
        if key.kernel.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { problems.append("the kernel name is empty") }
        for (index, size) in key.sizes.enumerated() where size < 1 {
            problems.append("sizes[\(index)] is \(size) (must be at least 1)")
        }
        if !seconds.isFinite || seconds <= 0 { problems.append("seconds is \(seconds) (must be finite and > 0)") }
        for (name, value) in [("gflops", gflops), ("gbps", gbps)] {
            if let value, !value.isFinite || value < 0 { problems.append("\(name) is \(value) (must be finite and >= 0)") }
        }
        if config.variant.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { problems.append("the config variant is empty") }
        return problems
    }

    private enum CodingKeys: String, CodingKey {
        case kernel, tags, sizes, config, seconds, gflops, gbps, date
    }

    /// **Edge cases:** a missing `tags` object reads as no tags.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        key = TuningKey(kernel: try container.decode(String.self, forKey: .kernel),
                        tags: try container.decodeIfPresent([String: String].self, forKey: .tags) ?? [:],
                        sizes: try container.decode([Int].self, forKey: .sizes))
        config = try container.decode(Configuration.self, forKey: .config)
        seconds = try container.decode(Double.self, forKey: .seconds)
        gflops = try container.decodeIfPresent(Double.self, forKey: .gflops)
        gbps = try container.decodeIfPresent(Double.self, forKey: .gbps)
        date = try container.decode(String.self, forKey: .date)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key.kernel, forKey: .kernel)
        try container.encode(key.tags, forKey: .tags)
        try container.encode(key.sizes, forKey: .sizes)
        try container.encode(config, forKey: .config)
        try container.encode(seconds, forKey: .seconds)
        try container.encodeIfPresent(gflops, forKey: .gflops)
        try container.encodeIfPresent(gbps, forKey: .gbps)
        try container.encode(date, forKey: .date)
    }
}

// MARK: - Files

/// The device a file's entries were measured on. The optional fields are what OpenCL reports
/// (`CL_DEVICE_VENDOR`, the device type, `CL_DRIVER_VERSION`); they are nil in files migrated from
/// schema 1, and are left out of the JSON when nil.
public struct DeviceIdentity: Codable, Sendable, Hashable {
    /// `CL_DEVICE_NAME`, e.g. `"pthread-haswell-AMD EPYC"`.
    public var name: String
    /// `CL_DEVICE_VENDOR`, e.g. `"AuthenticAMD"`.
    public var vendor: String?
    /// `"cpu"`, `"gpu"`, `"accelerator"` or `"other"`.
    public var type: String?
    /// `CL_DRIVER_VERSION`.
    public var driver: String?

    public init(name: String, vendor: String? = nil, type: String? = nil, driver: String? = nil) {
        self.name = name
        self.vendor = vendor
        self.type = type
        self.driver = driver
    }
}

/// One tuning-database file: the entries of one device.
/// `{"schema": 2, "device": {"name": ..., "vendor": ..., "type": ..., "driver": ...}, "entries": [...]}`.
public struct TuningFile: Codable, Sendable, Equatable {
    /// The schema this build writes. ``TuningDatabase/decode(_:path:)`` also reads schema 1 (the device
    /// a plain name, entries keyed by precision, layout, shape and batch) and migrates it.
    public static let currentSchema = 2
    public var schema: Int
    public var device: DeviceIdentity
    public var entries: [TuningEntry]

    public init(device: DeviceIdentity, entries: [TuningEntry] = []) {
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

// MARK: - Database

/// The tuned configurations of one device: layers of ``TuningFile``s, a later layer's entry replacing
/// an earlier one with the same key (shipped database, then the user's, then `TUNEDKERNELS_TUNING_DB`).
public struct TuningDatabase: Sendable {
    /// The entries by ``TuningKey/id``.
    public private(set) var entries: [String: TuningEntry] = [:]
    /// Where each layer came from, in order, for `autotune show`.
    public private(set) var sources: [String] = []
    /// The layer (its source) each entry comes from, by ``TuningKey/id``.
    public private(set) var entrySources: [String: String] = [:]

    public init() {}

    /// Adds `file`'s entries over the existing ones.
    ///
    /// **Edge cases:** the entries are not validated here (``decode(_:path:)`` and ``merge(_:into:device:)``
    /// do that); of two entries of `file` with the same key the later wins.
    public mutating func overlay(_ file: TuningFile, source: String) {
        for entry in file.entries {
            entries[entry.key.id] = entry
            entrySources[entry.key.id] = source
        }
        sources.append(source)
    }

    /// The entry for exactly `key`, or else the nearest entry of the same kernel, the same tags and the
    /// same number of sizes (distance: the sum over the sizes of |log a - log b|, ties broken by key id),
    /// or nil when there is none.
    public func lookup(_ key: TuningKey) -> (entry: TuningEntry, exact: Bool)? {
        if let exact = entries[key.id] { return (exact, true) }
        guard let nearest = nearest(key, count: 1).first else { return nil }
        return (nearest, false)
    }

    /// Up to `count` entries of the same kernel, tags and number of sizes as `key`, nearest first (the
    /// exact key, if tuned, comes first): the seeds of a new problem's search.
    ///
    /// **Edge cases:** sizes below 1 count as 1 in the distance; `count <= 0` gives no entries.
    public func nearest(_ key: TuningKey, count: Int) -> [TuningEntry] {
        guard count > 0 else { return [] }
        let ranked = entries.values
            .filter { $0.key.kernel == key.kernel && $0.key.tags == key.tags && $0.key.sizes.count == key.sizes.count }
            .map { (entry: $0, rank: $0.key == key ? 0 : 1, distance: Self.distance($0.key.sizes, key.sizes), id: $0.key.id) }
            .sorted { ($0.rank, $0.distance, $0.id) < ($1.rank, $1.distance, $1.id) }
        return ranked.prefix(count).map(\.entry)
    }

    /// The sum over paired sizes of |log a - log b|, sizes below 1 counting as 1.
    public static func distance(_ a: [Int], _ b: [Int]) -> Double {
        zip(a, b).reduce(0) { sum, pair in
            sum + abs(log(Double(max(pair.0, 1))) - log(Double(max(pair.1, 1))))
        }
    }

    // MARK: Files

    /// Decodes a database file of schema 2, or of schema 1 migrated in memory: each entry's key becomes
    /// `TuningKey(kernel:, tags: ["precision": ..., "layout": ...], sizes: shape + [batch])` and the device
    /// `DeviceIdentity(name:)`. The result is always of schema ``TuningFile/currentSchema``.
    ///
    /// **Edge cases:** throws ``TuningDatabaseError`` naming `path` for text that is not JSON of the
    /// schema it declares, for a schema other than 1 or 2, and for any entry with ``TuningEntry/problems``
    /// (the message names each such entry's key and its problems). A schema-1 entry without `batch` has
    /// batch 1.
    public static func decode(_ data: Data, path: String) throws -> TuningFile {
        let decoder = JSONDecoder()
        func invalid(_ error: any Error) -> TuningDatabaseError {
            TuningDatabaseError(path: path, reason: "not a valid tuning database (\(error)); fix or remove the file")
        }
        let schema: Int
        do {
            schema = try decoder.decode(SchemaProbe.self, from: data).schema
        } catch {
            throw invalid(error)
        }
        var file: TuningFile
        switch schema {
        case 1:
            do {
                file = try decoder.decode(SchemaOneFile.self, from: data).migrated
            } catch {
                throw invalid(error)
            }
        case 2:
            do {
                file = try decoder.decode(TuningFile.self, from: data)
            } catch {
                throw invalid(error)
            }
        default:
            throw TuningDatabaseError(path: path, reason: "schema \(schema) is not supported (this build reads schemas 1 and 2)")
        }
        file.schema = TuningFile.currentSchema
        if let reason = invalidEntriesReason(file.entries, fixHint: "fix or remove") {
            throw TuningDatabaseError(path: path, reason: reason)
        }
        return file
    }

    /// Reads a database file (see ``decode(_:path:)``); a missing file is `nil`, an unreadable, corrupt
    /// or invalid one throws.
    public static func read(path: String) throws -> TuningFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuningDatabaseError(path: path, reason: "cannot be read")
        }
        return try decode(data, path: path)
    }

    /// Encodes a file as stable, readable JSON: pretty-printed, sorted keys, entries in key-id order,
    /// always as schema ``TuningFile/currentSchema`` whatever `file.schema` says.
    ///
    /// **Edge cases:** a non-finite number (which ``TuningEntry/problems`` reports) makes the encoder throw.
    public static func encode(_ file: TuningFile) throws -> Data {
        var sorted = file
        sorted.schema = TuningFile.currentSchema
        sorted.entries = file.entries.map { ($0.key.id, $0) }.sorted { $0.0 < $1.0 }.map(\.1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(sorted) + Data("\n".utf8)
    }

    /// Adds or replaces `newEntries` in the file at `path`, creating it (and its folder) if needed.
    ///
    /// Safe against another process doing the same: an exclusive `flock` on `path.lock` is held while
    /// the file is read, merged and written to a temporary file that is renamed over it. The file is
    /// always written as schema 2, so an existing schema-1 file is migrated. A new file's device is
    /// `device`; an existing file keeps its device name, and its missing (nil or blank) vendor, type and
    /// driver are filled from `device`.
    ///
    /// **Edge cases:** throws before touching anything when a new entry has ``TuningEntry/problems``;
    /// a corrupt or invalid existing file throws and is left as it is.
    public static func merge(_ newEntries: [TuningEntry], into path: String, device: DeviceIdentity) throws {
        if let reason = invalidEntriesReason(newEntries, fixHint: "nothing was written; fix") {
            throw TuningDatabaseError(path: path, reason: reason)
        }
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let lockPath = path + ".lock"
        let descriptor = open(lockPath, O_CREAT | O_RDWR, 0o644)
        guard descriptor >= 0 else { throw TuningDatabaseError(path: path, reason: "cannot open lock file \(lockPath)") }
        defer { close(descriptor) }
        var locked = flock(descriptor, LOCK_EX)
        while locked != 0 && errno == EINTR { locked = flock(descriptor, LOCK_EX) }
        guard locked == 0 else { throw TuningDatabaseError(path: path, reason: "cannot lock \(lockPath)") }
        defer { flock(descriptor, LOCK_UN) }

        var file: TuningFile
        if let existing = try read(path: path) {
            file = existing
            func missing(_ value: String?) -> Bool { value?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ?? true }
            if missing(file.device.vendor) { file.device.vendor = device.vendor }
            if missing(file.device.type) { file.device.type = device.type }
            if missing(file.device.driver) { file.device.driver = device.driver }
        } else {
            file = TuningFile(device: device)
        }
        var byID = Dictionary(file.entries.map { ($0.key.id, $0) }, uniquingKeysWith: { _, last in last })
        for entry in newEntries { byID[entry.key.id] = entry }
        file.entries = Array(byID.values)
        let temporary = path + ".\(getpid()).tmp"
        do {
            try encode(file).write(to: URL(fileURLWithPath: temporary))
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw TuningDatabaseError(path: path, reason: "cannot write \(temporary): \(error)")
        }
        guard rename(temporary, path) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw TuningDatabaseError(path: path, reason: "cannot rename \(temporary) over it")
        }
    }

    /// `invalid entry gemm layout=nn precision=half 0x1x1x1: sizes[0] is 0 (must be at least 1)`, or
    /// `2 invalid entries: <key>: <problems>; <key>: <problems>`, ended by `fixHint` with `it` or `them`;
    /// nil when all of `entries` are valid.
    private static func invalidEntriesReason(_ entries: [TuningEntry], fixHint: String) -> String? {
        let invalid = entries.compactMap { entry -> String? in
            let problems = entry.problems
            return problems.isEmpty ? nil : "\(entry.key): \(problems.joined(separator: ", "))"
        }
        guard !invalid.isEmpty else { return nil }
        if invalid.count == 1 { return "invalid entry \(invalid[0]); \(fixHint) it" }
        return "\(invalid.count) invalid entries: \(invalid.joined(separator: "; ")); \(fixHint) them"
    }
}

// MARK: - Schema 1

/// Just enough of a file to tell its schema.
private struct SchemaProbe: Decodable {
    let schema: Int
}

/// A schema-1 file: `{"schema": 1, "device": "pthread-haswell-AMD EPYC", "entries": [...]}`.
private struct SchemaOneFile: Decodable {
    struct Entry: Decodable {
        let kernel: String
        let precision: String
        let layout: String
        let shape: [Int]
        let batch: Int?
        let config: Configuration
        let seconds: Double
        let gflops: Double?
        let date: String
    }

    let device: String
    let entries: [Entry]

    var migrated: TuningFile {
        TuningFile(device: DeviceIdentity(name: device), entries: entries.map { old in
            var entry = TuningEntry(key: TuningKey(kernel: old.kernel, tags: ["precision": old.precision, "layout": old.layout],
                                                   sizes: old.shape + [old.batch ?? 1]),
                                    config: old.config, seconds: old.seconds, gflops: old.gflops)
            entry.date = old.date
            return entry
        })
    }
}

// MARK: - Fallback device

/// Choosing a fallback device's file when none was tuned on this exact device (CLBlast's idea: the
/// closest tuned device of the same vendor and type).
public enum DeviceMatch {
    /// The lower-case alphanumeric tokens of a device name:
    /// `"pthread-skylake-avx512-AMD EPYC"` gives `["pthread", "skylake", "avx512", "amd", "epyc"]`.
    public static func tokens(_ name: String) -> Set<String> {
        var tokens = Set<String>()
        var current = ""
        for character in name.lowercased() {
            if character.isLetter || character.isNumber {
                current.append(character)
            } else if !current.isEmpty {
                tokens.insert(current)
                current = ""
            }
        }
        if !current.isEmpty { tokens.insert(current) }
        return tokens
    }

    /// The Jaccard similarity of the names' tokens (shared tokens over all tokens), in 0...1.
    ///
    /// **Edge cases:** two names without any token have similarity 0 (nothing to go on).
    public static func similarity(_ a: String, _ b: String) -> Double {
        let first = tokens(a)
        let second = tokens(b)
        let union = first.union(second).count
        return union == 0 ? 0 : Double(first.intersection(second).count) / Double(union)
    }

    /// The index in `candidates` of the closest device to `device`, or nil when none qualifies.
    ///
    /// A candidate qualifies when its vendor and type equal `device`'s (case-insensitively, ignoring
    /// surrounding white space) and its name is not exactly `device.name` (that file is an exact match,
    /// not a fallback). The highest ``similarity(_:_:)`` of the names wins, ties go to more entries
    /// (`entryCounts[i]`), then to the lower index.
    ///
    /// **Edge cases:** a nil or blank vendor or type, on `device` or on a candidate, never matches; a
    /// candidate without an `entryCounts` element counts as having no entries.
    public static func closest(to device: DeviceIdentity, among candidates: [DeviceIdentity], entryCounts: [Int]) -> Int? {
        func normalized(_ text: String?) -> String? {
            guard let text = text?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(), !text.isEmpty else { return nil }
            return text
        }
        guard let vendor = normalized(device.vendor), let type = normalized(device.type) else { return nil }
        var best: (index: Int, similarity: Double, count: Int)?
        for (index, candidate) in candidates.enumerated()
        where normalized(candidate.vendor) == vendor && normalized(candidate.type) == type && candidate.name != device.name {
            let score = similarity(candidate.name, device.name)
            let count = index < entryCounts.count ? entryCounts[index] : 0
            if let current = best, (score, count) <= (current.similarity, current.count) { continue }
            best = (index, score, count)
        }
        return best?.index
    }
}

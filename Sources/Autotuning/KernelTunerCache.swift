import CZlib
import Foundation

/// A file in Kernel Tuner's cache format: a recorded (possibly partial) search space.
///
/// The format is one JSON object: `device_name`, `kernel_name`, `problem_size`, `tune_params_keys`
/// (the parameter names in order), `tune_params` (each parameter's values), `objective` and `cache`,
/// which maps a key (the configuration's parameter values rendered as Python's `str` and joined by
/// commas, in `tune_params_keys` order) to an entry with the parameters by name, `time` (ms, or a
/// string such as `"CompilationFailedConfig"` for a configuration that failed), `times`,
/// `compile_time` and other measurements.
///
/// Kernel Tuner writes the file as it tunes, one entry per line, and closes the two outer objects
/// only at the end; ``read(path:)`` accepts such an unclosed file, and one whose last line was cut
/// off by a kill in the middle of a write (that line is dropped), plain or gzip-compressed.
/// ``completeness`` tells which of these a file was: a journal resumes from any of them, but only a
/// ``Completeness/closed`` file is the whole recorded space.
public struct KernelTunerCache: Sendable {
    /// Whether a file read was complete: how its text ended.
    public enum Completeness: String, Sendable, Equatable, CaseIterable {
        /// Ended with the closing of its outer objects, as written (or was built in memory).
        case closed
        /// An open journal: ended after an entry's comma, or after `"cache": {`, as Kernel Tuner
        /// leaves the file while it tunes (or when its run was killed between two entries).
        case open
        /// Cut off: a partial last line was dropped, or the text lacked its closing in a way other
        /// than an open journal's and was closed by the reader. Entries may be missing.
        case truncated
    }

    /// One evaluated configuration.
    public struct Entry: Sendable, Equatable {
        /// The parameter values in ``KernelTunerCache/parameterNames`` order, rendered as Python's `str`.
        public var labels: [String]
        /// Milliseconds; `nil` for a configuration that failed.
        public var time: Double?
        /// Why the configuration failed (`"CompilationFailedConfig"`, `"RuntimeFailedConfig"`,
        /// `"InvalidConfig"`, ...), when ``time`` is `nil`.
        public var failure: String?
        /// The individual measurements, ms; may be empty.
        public var times: [Double]
        /// Milliseconds.
        public var compileTime: Double?
        /// The other numeric fields (`"GFLOP/s"`, `"verification_time"`, `"benchmark_time"`, ...).
        public var extra: [String: Double]

        public init(labels: [String], time: Double?, failure: String? = nil, times: [Double] = [],
                    compileTime: Double? = nil, extra: [String: Double] = [:]) {
            self.labels = labels
            self.time = time
            self.failure = failure
            self.times = times
            self.compileTime = compileTime
            self.extra = extra
        }
    }

    public var deviceName: String
    public var kernelName: String
    /// `problem_size`; a single integer becomes a one-element array, anything that is not integers `[]`.
    public var problemSize: [Int]
    /// `tune_params_keys`.
    public var parameterNames: [String]
    /// `tune_params`: each parameter's values in ``parameterNames`` order, rendered as Python's `str`.
    public var parameterValues: [[String]]
    public var objective: String
    /// The evaluated configurations by key.
    public var entries: [String: Entry]
    /// How the file ended when read; ``Completeness/closed`` for a cache built in memory.
    public var completeness: Completeness = .closed
    /// The path (or name) the cache was read or decoded from; `nil` for a cache built in memory.
    public var source: String?

    public init(deviceName: String, kernelName: String, problemSize: [Int], parameterNames: [String],
                parameterValues: [[String]], objective: String = "time", entries: [String: Entry] = [:]) {
        self.deviceName = deviceName
        self.kernelName = kernelName
        self.problemSize = problemSize
        self.parameterNames = parameterNames
        self.parameterValues = parameterValues
        self.objective = objective
        self.entries = entries
    }

    /// The cache key of a configuration: its labels joined by commas.
    public static func key(_ labels: [String]) -> String { labels.joined(separator: ",") }

    /// The smallest time among the successful entries and its key (the smaller key on a tie).
    public var optimum: (key: String, time: Double)? {
        var best: (key: String, time: Double)?
        for (key, entry) in entries {
            guard let time = entry.time, time.isFinite else { continue }
            if let current = best, current.time < time || (current.time == time && current.key < key) { continue }
            best = (key, time)
        }
        return best
    }

    /// Reads a cache file: plain or gzip-compressed JSON, closed or still open (an interrupted run);
    /// ``completeness`` tells which, and ``source`` is `path`.
    public static func read(path: String) throws -> KernelTunerCache {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KernelTunerCacheError(path: path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try decode(data, path: path)
    }

    /// Decodes the contents of a cache file; `path` names it in errors and becomes ``source``.
    public static func decode(_ data: Data, path: String) throws -> KernelTunerCache {
        var bytes = [UInt8](data)
        if isGzip(bytes) { bytes = try gunzip(bytes, path: path) }
        return try parse(bytes, path: path).cache
    }
}

/// Why a Kernel Tuner cache file could not be read or appended to.
public struct KernelTunerCacheError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "Kernel Tuner cache \(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

// MARK: - Reading

extension KernelTunerCache {
    static func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b }

    /// Decompresses gzip (or zlib) data, including several concatenated gzip members.
    static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        // The gzip trailer holds the uncompressed size modulo 2^32: a good first guess, within reason
        // (the last bytes of a truncated file are anything).
        var guess = input.count * 4
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            guess = min(max(guess, isize + 1), input.count * 64)
        }
        var output = [UInt8](repeating: 0, count: max(guess, 1 << 16))
        var produced = 0
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw KernelTunerCacheError(path: path, reason: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var failure: String?
        input.withUnsafeBufferPointer { inBuffer in
            var consumed = 0
            while failure == nil {
                let chunkIn = min(inBuffer.count - consumed, Int(UInt32.max))
                stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress! + consumed)
                stream.avail_in = UInt32(chunkIn)
                if produced == output.count { output.append(contentsOf: repeatElement(0, count: output.count)) }
                let status: Int32 = output.withUnsafeMutableBufferPointer { outBuffer in
                    let room = min(outBuffer.count - produced, Int(UInt32.max))
                    stream.next_out = outBuffer.baseAddress! + produced
                    stream.avail_out = UInt32(room)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return status
                }
                consumed += chunkIn - Int(stream.avail_in)
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow; anything else after the end is ignored, as gzip does.
                    let rest = inBuffer.count - consumed
                    if rest >= 2 && inBuffer[consumed] == 0x1f && inBuffer[consumed + 1] == 0x8b {
                        inflateReset(&stream)
                    } else {
                        return
                    }
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress although there was room for output: the input ended before the stream did.
                    failure = "the gzip data is truncated"
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    failure = "the gzip data is corrupt (\(message))"
                }
            }
        }
        if let failure { throw KernelTunerCacheError(path: path, reason: failure) }
        output.removeSubrange(produced...)
        return output
    }

    /// Parses the (decompressed) contents of a cache file. `appendOffset` is where the entries end:
    /// the length of the prefix to keep, after which a journal appends `,` and new entry lines; `nil`
    /// when `cache` is not the last field of the file, which cannot be appended to in place. Sets the
    /// cache's ``completeness`` from the attempt that parsed, and its ``source`` to `path`.
    static func parse(_ bytes: [UInt8], path: String) throws -> (cache: KernelTunerCache, appendOffset: Int?) {
        let end = trimmedEnd(bytes, upTo: bytes.count)
        guard end > 0 else { throw KernelTunerCacheError(path: path, reason: "the file is empty") }

        func isClosed(_ length: Int) -> Bool {
            let tail = bytes[max(0, length - 3)..<length]
            return tail.elementsEqual([0x7d, 0x0a, 0x7d]) || tail.elementsEqual([0x7d, 0x7d, 0x7d])
        }
        // The texts to try, each with how much of it is the file's own. Kernel Tuner's rule: a text
        // that does not end with "}\n}" or "}}}" is an open journal; drop its trailing comma and close it.
        // Each text also tells how complete the file was if it parses: `.open` is decided after parsing.
        typealias Attempt = () -> (text: [UInt8], own: Int, completeness: Completeness)?
        let asIs: Attempt = { (Array(bytes[..<end]), end, .closed) }
        let closedAsKernelTunerDoes: (Int, Completeness) -> Attempt = { length, completeness in
            {
                guard length > 0 else { return nil }
                if isClosed(length) { return (Array(bytes[..<length]), length, completeness) }
                let own = bytes[length - 1] == UInt8(ascii: ",") ? length - 1 : length
                var text = [UInt8]()
                text.reserveCapacity(own + 3)
                text.append(contentsOf: bytes[..<own])
                text.append(contentsOf: [0x7d, 0x0a, 0x7d])
                return (text, own, completeness)
            }
        }
        let lastLineDropped: Attempt = {
            guard let newline = bytes[..<end].lastIndex(of: 0x0a) else { return nil }
            return closedAsKernelTunerDoes(trimmedEnd(bytes, upTo: newline), .truncated)()
        }
        let attempts: [Attempt]
        if isClosed(end) {
            attempts = [asIs, lastLineDropped]
        } else if bytes[end - 1] == UInt8(ascii: ",") || bytes[end - 1] == UInt8(ascii: "{") {
            attempts = [closedAsKernelTunerDoes(end, .open), lastLineDropped]  // an open journal
        } else {
            // Complete JSON in another layout; or an open journal whose last line was cut off by a
            // kill mid-write: a complete line ends with a comma, and a cut one may end inside a
            // number, so it is dropped rather than closed as Kernel Tuner does, which comes last.
            attempts = [asIs, lastLineDropped, closedAsKernelTunerDoes(end, .truncated)]
        }

        var firstError: (error: KernelTunerJSONParser.SyntaxError, text: [UInt8])?
        for attempt in attempts {
            guard let candidate = attempt() else { continue }
            let parsed: KernelTunerJSONParser.Document
            do {
                parsed = try candidate.text.withUnsafeBufferPointer { buffer in
                    var parser = KernelTunerJSONParser(buffer)
                    return try parser.parseDocument()
                }
            } catch let error as KernelTunerJSONParser.SyntaxError {
                if firstError == nil { firstError = (error, candidate.text) }
                continue
            }
            var cache = try build(parsed.members, path: path)
            cache.source = path
            // Closing an open journal adds the braces of `cache` and of the file: when `cache` is not
            // the last field, the first brace closed something else, so the file was cut elsewhere.
            cache.completeness = candidate.completeness == .open && !parsed.cacheIsLast ? .truncated : candidate.completeness
            var appendOffset: Int?
            if let close = parsed.cacheClose, parsed.cacheIsLast {
                appendOffset = trimmedEnd(bytes, upTo: min(close, candidate.own))
            }
            return (cache, appendOffset)
        }
        let (error, text) = firstError!
        let offset = min(error.offset, text.count)
        let line = text[..<offset].reduce(1) { $1 == 0x0a ? $0 + 1 : $0 }
        let column = offset - (text[..<offset].lastIndex(of: 0x0a).map { $0 + 1 } ?? 0) + 1
        throw KernelTunerCacheError(path: path, reason: "not valid JSON in Kernel Tuner's cache format (line \(line), column \(column): \(error.message))")
    }

    static func trimmedEnd(_ bytes: [UInt8], upTo end: Int) -> Int {
        var end = end
        while end > 0, KernelTunerJSONParser.isWhitespace(bytes[end - 1]) { end -= 1 }
        return end
    }

    private static func build(_ members: [(key: String, value: KernelTunerJSON)], path: String) throws -> KernelTunerCache {
        func fail(_ reason: String) -> KernelTunerCacheError { KernelTunerCacheError(path: path, reason: reason) }
        func field(_ name: String) -> KernelTunerJSON? { members.last { $0.key == name }?.value }
        func string(_ name: String) throws -> String {
            guard let value = field(name) else { throw fail("the field \"\(name)\" is missing") }
            guard case .string(let s) = value else { throw fail("the field \"\(name)\" is not a string") }
            return s
        }

        let deviceName = try string("device_name")
        let kernelName = try string("kernel_name")
        let objective = field("objective") == nil ? "time" : try string("objective")

        var problemSize: [Int] = []
        switch field("problem_size") {
        case .int(let n)?: problemSize = [n]
        case .array(let items)?:
            let ints = items.compactMap { item -> Int? in if case .int(let n) = item { return n } else { return nil } }
            problemSize = ints.count == items.count ? ints : []
        default: break
        }

        guard let keysValue = field("tune_params_keys") else { throw fail("the field \"tune_params_keys\" is missing") }
        guard case .array(let keyItems) = keysValue else { throw fail("\"tune_params_keys\" is not a list") }
        var names: [String] = []
        for item in keyItems {
            guard case .string(let name) = item else { throw fail("\"tune_params_keys\" holds a value that is not a string") }
            names.append(name)
        }

        guard let paramsValue = field("tune_params") else { throw fail("the field \"tune_params\" is missing") }
        guard case .object(let params) = paramsValue else { throw fail("\"tune_params\" is not an object") }
        var values: [[String]] = []
        for name in names {
            guard let value = params.last(where: { $0.key == name })?.value else {
                throw fail("\"tune_params\" has no values for the parameter \"\(name)\"")
            }
            if case .array(let items) = value {
                values.append(items.map(pythonString))
            } else {
                values.append([pythonString(value)])
            }
        }

        guard let cacheValue = field("cache") else { throw fail("the field \"cache\" is missing") }
        guard case .object(let cacheMembers) = cacheValue else { throw fail("\"cache\" is not an object") }
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(cacheMembers.count)
        var hints = Array(names.indices)  // where each parameter was found in the previous entry
        let parameterNames = Set(names)
        for (key, value) in cacheMembers {
            guard case .object(let fields) = value else { throw fail("the entry \"\(key)\" is not an object") }
            var labels: [String] = []
            labels.reserveCapacity(names.count)
            for (p, name) in names.enumerated() {
                let hint = hints[p]
                let index = hint < fields.count && fields[hint].key == name ? hint : fields.lastIndex { $0.key == name }
                if let index {
                    hints[p] = index
                    labels.append(pythonString(fields[index].value))
                } else {
                    let parts = key.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                    guard parts.count == names.count else {
                        throw fail("the entry \"\(key)\" has no value for the parameter \"\(name)\"")
                    }
                    labels = parts
                    break
                }
            }
            var entry = Entry(labels: labels, time: nil)
            for (name, value) in fields {
                switch name {
                case "time":
                    switch value {
                    case .int(let n): entry.time = Double(n)
                    case .double(let d): entry.time = d
                    case .string(let s): entry.failure = s
                    default: break
                    }
                case "times":
                    if case .array(let items) = value { entry.times = items.compactMap(\.number) }
                case "compile_time":
                    entry.compileTime = value.number
                case "timestamp":
                    break
                default:
                    if let number = value.number, !parameterNames.contains(name) { entry.extra[name] = number }
                }
            }
            entries[key] = entry
        }
        return KernelTunerCache(deviceName: deviceName, kernelName: kernelName, problemSize: problemSize,
                                parameterNames: names, parameterValues: values, objective: objective, entries: entries)
    }

    /// A JSON value rendered as Python's `str` renders what `json.loads` makes of it.
    static func pythonString(_ value: KernelTunerJSON) -> String {
        switch value {
        case .null: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let n): return String(n)
        case .double(let d): return pythonFloat(d)
        case .string(let s): return s
        case .array(let items): return "[" + items.map(pythonRepr).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.map { pythonRepr(.string($0.key)) + ": " + pythonRepr($0.value) }.joined(separator: ", ") + "}"
        }
    }

    private static func pythonRepr(_ value: KernelTunerJSON) -> String {
        guard case .string(let s) = value else { return pythonString(value) }
        return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// Python's `str(float)`; Swift's shortest round-trip description uses the same digits and layout
    /// (`0.5`, `1.0`, `1e-05`, `1e+16`).
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        return d.description
    }
}

// MARK: - A small JSON parser

/// A parsed JSON value. Integers that fit `Int` stay integers, so that labels render as Python would.
enum KernelTunerJSON: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([KernelTunerJSON])
    case object([(key: String, value: KernelTunerJSON)])

    var number: Double? {
        switch self {
        case .int(let n): return Double(n)
        case .double(let d): return d
        default: return nil
        }
    }
}

/// A JSON parser specialised for Kernel Tuner's caches: fast on large files, and able to tell where
/// the `cache` object ends. Also accepts Python's `NaN`, `Infinity` and `-Infinity`.
struct KernelTunerJSONParser {
    struct SyntaxError: Error {
        let offset: Int
        let message: String
    }

    struct Document {
        var members: [(key: String, value: KernelTunerJSON)]
        /// The offset of the closing brace of the top-level `cache` object.
        var cacheClose: Int?
        /// Whether `cache` is the last field of the top-level object.
        var cacheIsLast: Bool
    }

    private let base: UnsafePointer<UInt8>
    private let count: Int
    private var index = 0
    private var depth = 0
    private static let maximumDepth = 512
    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        // An empty buffer may have no base address; it never gets read.
        base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
        count = buffer.baseAddress == nil ? 0 : buffer.count
    }

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 }

    private func error(_ message: String) -> SyntaxError { SyntaxError(offset: index, message: message) }

    private mutating func skipWhitespace() {
        while index < count, Self.isWhitespace(base[index]) { index += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard index < count else { throw error("the text ends where \(what) was expected") }
        guard base[index] == byte else { throw error("\(what) expected") }
        index += 1
    }

    mutating func parseDocument() throws -> Document {
        try expect(UInt8(ascii: "{"), "'{'")
        var document = Document(members: [], cacheClose: nil, cacheIsLast: false)
        skipWhitespace()
        if index < count, base[index] == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                guard index < count, base[index] == UInt8(ascii: "\"") else { throw error("a field name expected") }
                let key = try parseString()
                try expect(UInt8(ascii: ":"), "':'")
                let value = try parseValue()
                if key == "cache" { document.cacheClose = index - 1 }
                document.cacheIsLast = key == "cache"
                document.members.append((key, value))
                skipWhitespace()
                guard index < count else { throw error("the text ends inside the top-level object") }
                if base[index] == UInt8(ascii: ",") { index += 1; continue }
                if base[index] == UInt8(ascii: "}") { index += 1; break }
                throw error("',' or '}' expected")
            }
        }
        skipWhitespace()
        guard index == count else { throw error("unexpected text after the end of the JSON object") }
        return document
    }

    private mutating func parseValue() throws -> KernelTunerJSON {
        skipWhitespace()
        guard index < count else { throw error("the text ends where a value was expected") }
        switch base[index] {
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "N"): try literal("NaN"); return .double(.nan)
        case UInt8(ascii: "I"): try literal("Infinity"); return .double(.infinity)
        default: throw error("a value expected")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let length = word.utf8CodeUnitCount
        guard index + length <= count, memcmp(base + index, word.utf8Start, length) == 0 else {
            throw error("a value expected")
        }
        index += length
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("nested too deeply") }
    }

    private mutating func parseObject() throws -> KernelTunerJSON {
        try enter()
        index += 1
        var members: [(key: String, value: KernelTunerJSON)] = []
        skipWhitespace()
        if index < count, base[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < count, base[index] == UInt8(ascii: "\"") else { throw error("a field name expected") }
            let key = try parseString()
            try expect(UInt8(ascii: ":"), "':'")
            members.append((key, try parseValue()))
            skipWhitespace()
            guard index < count else { throw error("the text ends inside an object") }
            let byte = base[index]
            index += 1
            if byte == UInt8(ascii: ",") { continue }
            if byte == UInt8(ascii: "}") { break }
            index -= 1
            throw error("',' or '}' expected")
        }
        depth -= 1
        return .object(members)
    }

    private mutating func parseArray() throws -> KernelTunerJSON {
        try enter()
        index += 1
        var items: [KernelTunerJSON] = []
        skipWhitespace()
        if index < count, base[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(items)
        }
        while true {
            items.append(try parseValue())
            skipWhitespace()
            guard index < count else { throw error("the text ends inside a list") }
            let byte = base[index]
            index += 1
            if byte == UInt8(ascii: ",") { continue }
            if byte == UInt8(ascii: "]") { break }
            index -= 1
            throw error("',' or ']' expected")
        }
        depth -= 1
        return .array(items)
    }

    /// Parses a string starting at its opening quote.
    private mutating func parseString() throws -> String {
        index += 1
        let start = index
        while index < count {
            let byte = base[index]
            if byte == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(start: base + start, count: index - start), as: UTF8.self)
                index += 1
                return s
            }
            if byte == UInt8(ascii: "\\") { return try parseEscapedString(from: start) }
            if byte < 0x20 { throw error("a control character inside a string") }
            index += 1
        }
        throw error("the text ends inside a string")
    }

    private mutating func parseEscapedString(from start: Int) throws -> String {
        var utf8 = Array(UnsafeBufferPointer(start: base + start, count: index - start))
        while index < count {
            let byte = base[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            }
            if byte < 0x20 { throw error("a control character inside a string") }
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            guard index + 1 < count else { break }
            let escaped = base[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0c)
            case UInt8(ascii: "n"): utf8.append(0x0a)
            case UInt8(ascii: "r"): utf8.append(0x0d)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xd800..<0xdc00).contains(scalar), index + 1 < count,
                   base[index] == UInt8(ascii: "\\"), base[index + 1] == UInt8(ascii: "u") {
                    let save = index
                    index += 2
                    let low = try parseHex4()
                    if (0xdc00..<0xe000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    } else {
                        index = save
                    }
                }
                let character = Unicode.Scalar(scalar) ?? "\u{fffd}"  // a lone surrogate
                utf8.append(contentsOf: String(character).utf8)
            default:
                index -= 2
                throw error("an invalid escape sequence")
            }
        }
        throw error("the text ends inside a string")
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard index + 4 <= count else { throw error("the text ends inside a \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = base[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("an invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws -> KernelTunerJSON {
        let start = index
        let negative = base[index] == UInt8(ascii: "-")
        if negative {
            index += 1
            if index < count, base[index] == UInt8(ascii: "I") {
                try literal("Infinity")
                return .double(-.infinity)
            }
        }
        var mantissa: UInt64 = 0
        var digits = 0          // significant digits in `mantissa`
        var exponent = 0        // decimal exponent of `mantissa`
        var truncated = false   // digits beyond the 19 that `mantissa` holds
        let integerStart = index
        while index < count, case let d = base[index] &- UInt8(ascii: "0"), d < 10 {
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                if mantissa != 0 { digits += 1 }
            } else {
                exponent += 1
                truncated = true
            }
            index += 1
        }
        guard index > integerStart else { throw error("a digit expected") }
        var isInteger = true
        if index < count, base[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let fractionStart = index
            while index < count, case let d = base[index] &- UInt8(ascii: "0"), d < 10 {
                if digits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(d)
                    if mantissa != 0 { digits += 1 }
                    exponent -= 1
                } else {
                    truncated = true
                }
                index += 1
            }
            guard index > fractionStart else { throw error("a digit expected after '.'") }
        }
        if index < count, base[index] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            index += 1
            var exponentNegative = false
            if index < count, base[index] == UInt8(ascii: "-") || base[index] == UInt8(ascii: "+") {
                exponentNegative = base[index] == UInt8(ascii: "-")
                index += 1
            }
            let exponentStart = index
            var written = 0
            while index < count, case let d = base[index] &- UInt8(ascii: "0"), d < 10 {
                if written < 100_000 { written = written * 10 + Int(d) }
                index += 1
            }
            guard index > exponentStart else { throw error("a digit expected in the exponent") }
            exponent += exponentNegative ? -written : written
        }
        if isInteger && !truncated {
            if negative {
                if mantissa <= UInt64(Int.max) + 1 { return .int(mantissa == UInt64(Int.max) + 1 ? Int.min : -Int(mantissa)) }
            } else if mantissa <= UInt64(Int.max) {
                return .int(Int(mantissa))
            }
        }
        if mantissa == 0 { return .double(negative ? -0.0 : 0.0) }
        if !truncated && digits <= 15 && exponent >= -22 && exponent <= 22 {
            // Exact: both operands are exact doubles, so the one rounding is the correct one.
            var value = Double(mantissa)
            value = exponent < 0 ? value / Self.powersOfTen[-exponent] : value * Self.powersOfTen[exponent]
            return .double(negative ? -value : value)
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: index - start), as: UTF8.self)
        guard let value = Double(text) else { throw error("an invalid number") }
        return .double(value)
    }
}

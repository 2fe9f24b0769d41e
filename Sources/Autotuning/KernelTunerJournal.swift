import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only journal of evaluations in Kernel Tuner's cache format, written as evaluations
/// happen, so that an interrupted run can resume and Kernel Tuner's tools can read it.
///
/// The layout is the one Kernel Tuner writes while it tunes: the header (`json.dumps(..., indent="")`
/// without its closing `}\n}`), then one line per evaluation ending in a comma; ``close()`` replaces
/// the last comma by `}\n}`. Every ``record(_:timestamp:)`` reaches the disk before it returns, so a
/// kill loses at most the evaluation being written, and that half line is dropped on reading.
///
/// One journal holds an exclusive `flock` on its file while it is open, so two journals (in one
/// process or two) never append to the same file.
public final class KernelTunerJournal: @unchecked Sendable {
    public let path: String
    /// The header as the file holds it (for a resumed journal, the file's own); its `entries` are empty.
    public let header: KernelTunerCache

    // Guarded by `lock`.
    private let lock = NSLock()
    private var descriptor: Int32
    private var recorded: [String: KernelTunerCache.Entry]
    private var size: Int             // bytes in the file
    private var endsWithComma: Bool   // false right after the header: the file ends with "{"
    private var closed = false
    private var broken: String?       // why the file can no longer be appended to

    /// Opens the journal at `path`.
    ///
    /// An existing file is read and resumed: it must have the same parameter names as `header`, its
    /// entries become ``entries``, and a closed file is reopened for appending. A file that cannot be
    /// parsed is never modified: this throws ``KernelTunerCacheError`` instead. A missing file is
    /// created (with its directories) and gets `header`'s header; `header.entries` are not written.
    public init(path: String, header: KernelTunerCache) throws {
        self.path = path
        guard header.parameterValues.count == header.parameterNames.count else {
            throw KernelTunerCacheError(path: path, reason: "the header has \(header.parameterNames.count) parameter names but \(header.parameterValues.count) lists of values")
        }
        guard Set(header.parameterNames).count == header.parameterNames.count else {
            throw KernelTunerCacheError(path: path, reason: "the header names a parameter twice: \(header.parameterNames)")
        }
        let opened = try Self.open(path: path, header: header)
        descriptor = opened.descriptor
        self.header = opened.header
        recorded = opened.entries
        size = opened.size
        endsWithComma = opened.endsWithComma
    }

    deinit {
        // Left open on purpose (not closed as Kernel Tuner closes): an open journal reads and resumes as well.
        if descriptor >= 0 { _ = systemClose(descriptor) }
    }

    /// The evaluations recorded so far, including those read when the journal was resumed, by key.
    public var entries: [String: KernelTunerCache.Entry] { lock.withLock { recorded } }

    /// The recorded evaluation of the configuration with these labels, if any.
    public func entry(for labels: [String]) -> KernelTunerCache.Entry? {
        let key = KernelTunerCache.key(labels)
        return lock.withLock { recorded[key] }
    }

    /// Appends one evaluation and flushes it to disk (`write` and `fsync`) before returning; an
    /// evaluation whose key is already present is ignored (returns `false`).
    ///
    /// The entry is stored as it will read back: a missing `compileTime` and the missing
    /// `verification_time`, `benchmark_time`, `strategy_time` and `framework_time` become 0, and a
    /// failed entry without a failure string becomes `"InvalidConfig"`. Numbers must be finite.
    @discardableResult
    public func record(_ entry: KernelTunerCache.Entry, timestamp: Date = Date()) throws -> Bool {
        let names = header.parameterNames
        guard entry.labels.count == names.count else {
            throw KernelTunerCacheError(path: path, reason: "an entry has \(entry.labels.count) parameter values but the journal has \(names.count) parameters \(names)")
        }
        let key = KernelTunerCache.key(entry.labels)
        var normalized = entry
        if normalized.time == nil {
            normalized.failure = normalized.failure ?? "InvalidConfig"
        } else {
            normalized.failure = nil
        }
        normalized.compileTime = normalized.compileTime ?? 0
        for field in Self.standardTimes where normalized.extra[field] == nil { normalized.extra[field] = 0 }
        let line = try Self.line(key: key, entry: normalized, names: names, timestamp: timestamp, path: path)

        return try lock.withLock {
            try checkWritable()
            guard recorded[key] == nil else { return false }
            try append(Array(line.utf8), removingLastByte: false)
            endsWithComma = true
            recorded[key] = normalized
            return true
        }
    }

    /// Closes the file as Kernel Tuner does (the final `,` becomes `}\n}`); does nothing the second time.
    public func close() throws {
        try lock.withLock {
            guard !closed else { return }
            try checkWritable()
            try append(Array("}\n}".utf8), removingLastByte: endsWithComma)
            endsWithComma = false
            closed = true
            _ = systemClose(descriptor)
            descriptor = -1
        }
    }

    // MARK: Writing

    private static let standardTimes = ["verification_time", "benchmark_time", "strategy_time", "framework_time"]
    private static let reservedFields: Set<String> = ["time", "times", "compile_time", "timestamp"]

    private func checkWritable() throws {
        if closed { throw KernelTunerCacheError(path: path, reason: "the journal is closed") }
        if let broken { throw KernelTunerCacheError(path: path, reason: broken) }
    }

    /// Appends `bytes` (after dropping the file's last byte, the comma, if asked) and syncs. On a
    /// failure the file is cut back to its previous length, so it never keeps half a line.
    private func append(_ bytes: [UInt8], removingLastByte: Bool) throws {
        let kept = removingLastByte ? size - 1 : size
        do {
            if removingLastByte { try Self.truncate(descriptor, to: kept, path: path) }
            try Self.write(descriptor, bytes, path: path)
            try Self.sync(descriptor, path: path)
            size = kept + bytes.count
        } catch {
            var undone = ftruncate(descriptor, off_t(kept)) == 0
            if undone && removingLastByte {
                undone = (try? Self.write(descriptor, [UInt8(ascii: ",")], path: path)) != nil
            }
            if !undone { broken = "an earlier write failed and could not be undone (\(error))" }
            throw error
        }
    }

    /// One entry line: `"\n" + json.dumps({key: entry})[1:-1] + ","`, fields in Kernel Tuner's order.
    private static func line(key: String, entry: KernelTunerCache.Entry, names: [String], timestamp: Date, path: String) throws -> String {
        func number(_ value: Double, _ field: String) throws -> String {
            guard value.isFinite else {
                throw KernelTunerCacheError(path: path, reason: "the entry \"\(key)\" has a non-finite \(field) (\(value))")
            }
            return KernelTunerCache.pythonFloat(value)
        }
        var fields: [String] = []
        fields.reserveCapacity(names.count + 10 + entry.extra.count)
        for (name, label) in zip(names, entry.labels) {
            fields.append(jsonString(name) + ": " + jsonToken(label: label))
        }
        if let time = entry.time {
            fields.append("\"time\": " + (try number(time, "time")))
        } else {
            fields.append("\"time\": " + jsonString(entry.failure ?? "InvalidConfig"))
        }
        fields.append("\"times\": [" + (try entry.times.map { try number($0, "times") }).joined(separator: ", ") + "]")
        fields.append("\"compile_time\": " + (try number(entry.compileTime ?? 0, "compile_time")))
        for field in standardTimes {
            fields.append(jsonString(field) + ": " + (try number(entry.extra[field] ?? 0, field)))
        }
        fields.append("\"timestamp\": " + jsonString(pythonTimestamp(timestamp)))
        let parameterNames = Set(names)
        for (field, value) in entry.extra.sorted(by: { $0.key < $1.key }) where !standardTimes.contains(field) {
            guard !reservedFields.contains(field), !parameterNames.contains(field) else {
                throw KernelTunerCacheError(path: path, reason: "the extra field \"\(field)\" of the entry \"\(key)\" clashes with a standard field or a parameter")
            }
            fields.append(jsonString(field) + ": " + (try number(value, field)))
        }
        return "\n" + jsonString(key) + ": {" + fields.joined(separator: ", ") + "},"
    }

    /// The header as `json.dumps(header, indent="")` writes it, less the closing `}\n}` of an empty cache.
    private static func headerText(_ header: KernelTunerCache) -> String {
        func list(_ tokens: [String]) -> String { tokens.isEmpty ? "[]" : "[\n" + tokens.joined(separator: ",\n") + "\n]" }
        let params = zip(header.parameterNames, header.parameterValues).map { name, values in
            jsonString(name) + ": " + list(values.map(jsonToken(label:)))
        }
        let fields = [
            "\"device_name\": " + jsonString(header.deviceName),
            "\"kernel_name\": " + jsonString(header.kernelName),
            "\"problem_size\": " + list(header.problemSize.map(String.init)),
            "\"tune_params_keys\": " + list(header.parameterNames.map(jsonString)),
            "\"tune_params\": " + (params.isEmpty ? "{}" : "{\n" + params.joined(separator: ",\n") + "\n}"),
            "\"objective\": " + jsonString(header.objective),
            "\"cache\": {",
        ]
        return "{\n" + fields.joined(separator: ",\n")
    }

    /// A label as a JSON value: a number when it reads back as the same label, else a string.
    static func jsonToken(label: String) -> String {
        if let n = Int(label), String(n) == label { return label }
        if let d = Double(label), d.isFinite, KernelTunerCache.pythonFloat(d) == label { return label }
        return jsonString(label)
    }

    /// A JSON string as Python's `json.dumps` writes it (`ensure_ascii`: non-ASCII as `\uXXXX`).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0c}": out += "\\f"
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                func hex(_ unit: UInt32) -> String {
                    let digits = String(unit, radix: 16)
                    return "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
                }
                if scalar.value < 0x10000 {
                    out += hex(scalar.value)
                } else {
                    let v = scalar.value - 0x10000
                    out += hex(0xd800 + (v >> 10)) + hex(0xdc00 + (v & 0x3ff))
                }
            }
        }
        return out + "\""
    }

    /// Python's `str(datetime.now(timezone.utc))`: `2026-11-24 10:00:00.000000+00:00`.
    static func pythonTimestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let micros = min(999_999, Int(((interval - Double(seconds)) * 1_000_000).rounded(.down)))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2)) "
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(micros, 6))+00:00"
    }

    // MARK: Opening

    private struct Opened {
        var descriptor: Int32
        var header: KernelTunerCache
        var entries: [String: KernelTunerCache.Entry]
        var size: Int
        var endsWithComma: Bool
    }

    private static func open(path: String, header: KernelTunerCache) throws -> Opened {
        var descriptor = systemOpen(path, O_RDWR | O_APPEND | O_CLOEXEC)
        var created = false
        if descriptor < 0 && errno == ENOENT {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    throw KernelTunerCacheError(path: path, reason: "cannot create the directory \(directory): \(error.localizedDescription)")
                }
            }
            descriptor = systemOpen(path, O_RDWR | O_APPEND | O_CLOEXEC | O_CREAT | O_EXCL, 0o644)
            created = descriptor >= 0
            if descriptor < 0 && errno == EEXIST { descriptor = systemOpen(path, O_RDWR | O_APPEND | O_CLOEXEC) }
        }
        guard descriptor >= 0 else { throw posixError(path, "cannot open the file") }
        do {
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                throw errno == EWOULDBLOCK
                    ? KernelTunerCacheError(path: path, reason: "another journal has the file open")
                    : posixError(path, "cannot lock the file")
            }
            if created { syncDirectory(of: path) }
            let bytes = try readAll(descriptor, path: path)
            if KernelTunerCache.trimmedEnd(bytes, upTo: bytes.count) == 0 {
                // New, or created by a run killed before it wrote anything: nothing to lose.
                if !bytes.isEmpty { try truncate(descriptor, to: 0, path: path) }
                let text = Array(headerText(header).utf8)
                try write(descriptor, text, path: path)
                try sync(descriptor, path: path)
                var written = header
                written.entries = [:]
                return Opened(descriptor: descriptor, header: written, entries: [:], size: text.count, endsWithComma: false)
            }
            if KernelTunerCache.isGzip(bytes) {
                throw KernelTunerCacheError(path: path, reason: "the file is gzip-compressed and cannot be appended to; decompress it to resume")
            }
            let (cache, appendOffset) = try KernelTunerCache.parse(bytes, path: path)
            guard cache.parameterNames == header.parameterNames else {
                throw KernelTunerCacheError(path: path, reason: "the file was recorded with the parameters \(cache.parameterNames) but the journal is for \(header.parameterNames)")
            }
            guard let appendOffset else {
                throw KernelTunerCacheError(path: path, reason: "\"cache\" is not the last field of the file, so entries cannot be appended")
            }
            // Make the file end exactly where new lines go: after the last entry and a comma, or after
            // "cache": { when there is none (this reopens a closed file and drops a half-written line).
            let endsWithComma = bytes[appendOffset - 1] != UInt8(ascii: "{")
            let target = appendOffset + (endsWithComma ? 1 : 0)
            let ready = bytes.count == target && (!endsWithComma || bytes[appendOffset] == UInt8(ascii: ","))
            if !ready {
                try truncate(descriptor, to: appendOffset, path: path)
                if endsWithComma { try write(descriptor, [UInt8(ascii: ",")], path: path) }
                try sync(descriptor, path: path)
            }
            var fileHeader = cache
            fileHeader.entries = [:]
            return Opened(descriptor: descriptor, header: fileHeader, entries: cache.entries, size: target, endsWithComma: endsWithComma)
        } catch {
            _ = systemClose(descriptor)
            throw error
        }
    }

    // MARK: POSIX helpers

    private static func posixError(_ path: String, _ what: String) -> KernelTunerCacheError {
        KernelTunerCacheError(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }

    private static func readAll(_ descriptor: Int32, path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw posixError(path, "cannot read the file")
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<n])
            offset += off_t(n)
        }
    }

    private static func write(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = systemWrite(descriptor, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw posixError(path, "cannot write to the file")
                }
                done += n
            }
        }
    }

    private static func truncate(_ descriptor: Int32, to length: Int, path: String) throws {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw posixError(path, "cannot truncate the file") }
    }

    private static func sync(_ descriptor: Int32, path: String) throws {
        guard fsync(descriptor) == 0 else { throw posixError(path, "cannot sync the file to disk") }
    }

    /// Makes a new file's directory entry durable; best effort.
    private static func syncDirectory(of path: String) {
        var directory = (path as NSString).deletingLastPathComponent
        if directory.isEmpty { directory = "." }
        let descriptor = systemOpen(directory, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            _ = fsync(descriptor)
            _ = systemClose(descriptor)
        }
    }
}

// Outside the class, where `open`, `close` and `write` name the C functions rather than its methods.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }
private func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, buffer, count) }

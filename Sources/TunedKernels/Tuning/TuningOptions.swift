import Autotuning
import Foundation

/// How a ``Tuner`` searches, measures and stores.
public struct TuningOptions: Sendable {
    /// Where candidates run.
    public enum Isolation: Sendable, Equatable {
        /// In this process: no process start, but a kernel that crashes the driver ends the program.
        case inProcess
        /// In a worker process, restarted when it crashes or hangs: `executable arguments...` must serve
        /// ``TuningWorker/serve(_:)`` (`autotune worker` does).
        case process(executable: String, arguments: [String])

        /// Workers are this program, started with ``TuningWorker/argument``: its `main` must call
        /// ``TuningWorker/serveIfRequested(_:)`` first.
        public static var thisExecutable: Isolation {
            .process(executable: executablePath, arguments: [TuningWorker.argument])
        }

        /// The path of this process's executable, to start workers from.
        public static var executablePath: String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        }
    }

    /// The strategy `tune` and `replay` use unless told otherwise.
    public static let defaultStrategy = StrategyKind.evolutionary

    public var strategy = TuningOptions.defaultStrategy
    /// Unique configurations to evaluate per problem.
    public var budget = 60
    /// Wall-clock limit per problem in seconds (the run ends at the budget or the limit, whichever comes first).
    public var timeLimit: Double?
    /// Seed of the search.
    public var seed: UInt64 = 1
    /// Seed of the harness's inputs.
    public var dataSeed: UInt64 = 42
    /// Timed runs per candidate (more for short kernels, until they add up to ``minimumSeconds``).
    public var repetitions = 3
    public var minimumSeconds = 0.02
    /// Seconds a candidate may take before its worker is killed and restarted (process isolation only).
    public var timeout = 120.0
    /// How many of the nearest tuned problems seed the search; 0 starts from the device default alone.
    public var transfer = 3
    /// How many of the fastest candidates are timed again in ``confirmRounds`` interleaved rounds before the
    /// best is chosen (0 or 1: the search's best as measured). The minimum of many noisy times flatters a lucky one.
    public var confirm = 4
    public var confirmRounds = 3
    /// The database file results are merged into (nil: the user's database of the device).
    public var databasePath: String?
    /// The folder of the evaluation journals (nil: `<cache>/journal`).
    public var journalDirectory: String?
    public var isolation = Isolation.inProcess

    public init() {}

    /// Throws ``TuningOptionsError`` for a value that cannot work.
    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws { if !condition { throw TuningOptionsError(message) } }
        try require(budget >= 1, "the budget must be at least 1")
        try require(repetitions >= 1, "repetitions must be at least 1")
        try require(minimumSeconds >= 0 && minimumSeconds.isFinite, "the minimum seconds must be finite and not negative")
        try require(timeout > 0 && timeout.isFinite, "the timeout must be positive")
        try require(transfer >= 0, "transfer must not be negative")
        try require(confirm >= 0, "confirm must not be negative")
        try require(confirmRounds >= 1, "confirmation rounds must be at least 1")
        if let timeLimit { try require(timeLimit > 0 && timeLimit.isFinite, "the time limit must be positive") }
    }
}

/// A tuning option that cannot work, or an output that cannot be written.
public struct TuningOptionsError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Checks that a file can be written before hours of work go into it.
public enum WritablePath {
    /// Creates the folder of `path` if needed and checks that `path` can be written (created, or replaced when it
    /// exists). Throws ``TuningOptionsError`` naming `what`.
    public static func check(_ path: String, what: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard !isFolder.boolValue else { throw TuningOptionsError("\(what) \(path) is a folder, not a file") }
            guard access(path, W_OK) == 0 else { throw TuningOptionsError("\(what) \(path) cannot be written (permission denied)") }
        }
        let directory = folder.isEmpty ? "." : folder
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TuningOptionsError("\(what) \(path): its folder \(directory) cannot be created (\(error.localizedDescription))")
        }
        guard access(directory, W_OK) == 0 else { throw TuningOptionsError("\(what) \(path): its folder \(directory) cannot be written") }
        // Permissions do not tell everything (root passes every access check, and /proc or a read-only mount still
        // refuses a new file): open the file itself, creating it for a moment when it does not exist.
        let existed = FileManager.default.fileExists(atPath: path)
        let descriptor = open(path, existed ? O_WRONLY : (O_WRONLY | O_CREAT | O_EXCL), 0o644)
        guard descriptor >= 0 else {
            throw TuningOptionsError("\(what) \(path) cannot be written (\(String(cString: strerror(errno))))")
        }
        close(descriptor)
        if !existed { unlink(path) }
    }
}

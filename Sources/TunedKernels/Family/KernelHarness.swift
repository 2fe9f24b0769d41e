import Autotuning
import Dispatch
import OpenCLRuntime

/// A result compared with the family's CPU reference.
public struct Check: Sendable, Equatable {
    /// Largest absolute difference from the reference; infinity when the result holds NaN or infinity.
    public var maxAbsError: Double
    /// The family's tolerance for this problem (one rule, the same in tuning, benchmarks and tests).
    public var tolerance: Double

    /// Named checks of the parts of a result (a family with several outputs: `"dE"`, `"lse"`...), each against its
    /// own tolerance; the result passes when this check and every part pass.
    public var parts: [String: Check]

    public init(maxAbsError: Double, tolerance: Double, parts: [String: Check] = [:]) {
        self.maxAbsError = maxAbsError
        self.tolerance = tolerance
        self.parts = parts
    }

    /// A check made of named parts (absolute errors, each with its tolerance): its error is the largest part's
    /// (infinity when one holds NaN or infinity), its tolerance the loosest part's, and it passes when every
    /// part does.
    public init(parts: [String: Check]) {
        let errors = parts.values.map(\.maxAbsError)
        self.init(maxAbsError: errors.contains { !$0.isFinite } ? .infinity : errors.max() ?? 0,
                  tolerance: parts.values.map(\.tolerance).max() ?? 0, parts: parts)
    }

    public var passed: Bool { maxAbsError <= tolerance && parts.values.allSatisfy(\.passed) }

    /// The check with the largest error among `checks` (nil for none); a failing check counts as worse than a
    /// passing one.
    public static func worst(_ checks: [Check]) -> Check? {
        checks.max { a, b in a.passed != b.passed ? a.passed : !(a.maxAbsError >= b.maxAbsError) }
    }

    /// The largest |got - want| (NaN or infinity anywhere in `got` gives infinity).
    public static func maxAbsError(_ got: [Float], _ want: [Float]) -> Double {
        var worst = 0.0
        for (g, w) in zip(got, want) {
            let difference = Double(abs(g - w))
            if !difference.isFinite { return .infinity }
            worst = max(worst, difference)
        }
        return worst
    }
}

/// A comparison implementation measured in the same run on the same data (OpenBLAS, CLBlast, a dense kernel...).
public struct Baseline {
    public struct Result {
        public var seconds: Double
        /// Its result against the reference, when it can be checked.
        public var check: Check?
        /// The most device memory held during its runs, when it runs on the device.
        public var peakDeviceBytes: Int?
        /// Named figures of the run (``KernelHarness/metrics()``).
        public var metrics: [String: Double]
        /// What it ran, in words (`openblas_core`: the kernels OpenBLAS used), written as keys of the bench row.
        public var labels: [String: String]
        /// What one of its calls did, when not the family's problem (`stream-read` reads the bytes and does no FLOPs).
        public var work: Work?
        public init(seconds: Double, check: Check?, peakDeviceBytes: Int? = nil, metrics: [String: Double] = [:],
                    labels: [String: String] = [:], work: Work? = nil) {
            self.seconds = seconds
            self.check = check
            self.peakDeviceBytes = peakDeviceBytes
            self.metrics = metrics
            self.labels = labels
            self.work = work
        }

        /// The labels of an OpenBLAS baseline: the core it ran, and how it was chosen where this program chose it.
        public static var openBLASLabels: [String: String] {
            let (core, note) = OpenBLASCore.report()
            return ["openblas_core": core].merging(note.map { ["openblas_core_note": $0] } ?? [:]) { a, _ in a }
        }
    }

    public let name: String
    /// Times `repetitions` calls (after a warm-up) and returns the median.
    public let measure: (_ repetitions: Int) throws -> Result

    public init(name: String, measure: @escaping (_ repetitions: Int) throws -> Result) {
        self.name = name
        self.measure = measure
    }
}

/// Seeded inputs of one problem on the device and on the host, the CPU reference result, and launches of
/// configurations on them: what tuning, benchmarks and tests measure. One per family, built once per problem.
public protocol KernelHarness: AnyObject {
    var context: Context { get }
    var work: Work { get }
    /// Poisons the outputs (NaN), so a configuration that leaves an output unwritten fails ``check()``.
    func reset() throws
    /// Enqueues one call with `configurations` (at most one per role, told apart by their variants; the other
    /// roles get the dispatcher's choice); does not wait. With `role`, only that role's kernels are enqueued: the
    /// outputs of the roles it depends on are made first, once per configuration of theirs, and kept (the
    /// tuner times a role alone this way).
    func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch
    /// What one launch of `role` does (nil: the whole call); by default ``work``.
    func work(role: String?) -> Work
    /// Makes what a launch of `role` reads from the roles it depends on, before that launch is timed (by default
    /// nothing; a harness that keeps such outputs between launches makes them here).
    func prepare(_ configurations: [Configuration], role: String?) throws
    /// Compares the outputs of the last launch's roles with the reference, with the family's tolerance (waits
    /// for the queue).
    func check() throws -> Check
    /// The family's comparison implementations on the same data.
    func baselines() -> [Baseline]
    /// The comparison implementations of `role` alone (nil: of the whole call, ``baselines()``); by default none
    /// for a role.
    func baselines(role: String?) -> [Baseline]
    /// Named figures of the last measured runs beyond time and error (`skipped_tile_fraction`...), reported by
    /// `autotune bench` in the row; called after the final check of ``measure(_:warmup:repetitions:minimumSeconds:cutoff:)``.
    func metrics() throws -> [String: Double]
}

extension KernelHarness {
    public func baselines() -> [Baseline] { [] }
    public func baselines(role: String?) -> [Baseline] { role == nil ? baselines() : [] }
    public func work(role: String?) -> Work { work }
    public func prepare(_ configurations: [Configuration], role: String?) throws {}

    /// One whole call with `configuration` for its role (nil: the dispatcher's choice for every role).
    public func launch(_ configuration: Configuration?) throws -> KernelLaunch {
        try launch(configuration.map { [$0] } ?? [], role: nil)
    }

    /// Measures one whole call with `configuration` for its role (nil: the dispatcher's choices); see
    /// ``measure(_:role:warmup:repetitions:minimumSeconds:cutoff:)``.
    public func measure(_ configuration: Configuration?, warmup: Int = 1, repetitions: Int = 5, minimumSeconds: Double = 0,
                        cutoff: Double? = nil, beforeEachCall: (() throws -> Void)? = nil) throws -> KernelMeasurement {
        try measure(configuration.map { [$0] } ?? [], role: nil, warmup: warmup, repetitions: repetitions, minimumSeconds: minimumSeconds,
                    cutoff: cutoff, beforeEachCall: beforeEachCall)
    }
    public func metrics() throws -> [String: Double] { [:] }

    /// Wall-clock seconds of `body`.
    public static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    /// The median wall-clock seconds of `repetitions` (at least 1) runs of `body`: how a baseline on the host is timed.
    public static func medianTime(repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<max(repetitions, 1) { times.append(try time(body)) }
        return median(times)
    }

    /// Measures a call with `configurations` (one per role at most; the others get the dispatcher's choice), or
    /// `role`'s kernels alone.
    ///
    /// The outputs are poisoned first; the first call builds the kernels (from the program cache when built
    /// before) and its result is checked, so every measurement checks its own output. Then `warmup - 1` more
    /// calls, and `repetitions` timed calls (more, up to 1000, until they add up to `minimumSeconds`: a short
    /// kernel is timed over enough runs that one slow run cannot decide its median). Last, one untimed call on
    /// poisoned outputs is checked again, and the worse of the two checks is reported.
    ///
    /// - Parameters:
    ///   - cutoff: when the call after the build takes longer than this, the candidate is timed by that call alone (a
    ///     tuner's early stop for hopeless candidates).
    ///   - beforeEachCall: run, and waited for, before every warm-up and timed call, outside the timed region
    ///     (`bench --cold`: ``ColdCaches/evict()``).
    public func measure(_ configurations: [Configuration], role: String?, warmup: Int = 1, repetitions: Int = 5, minimumSeconds: Double = 0,
                        cutoff: Double? = nil, beforeEachCall: (() throws -> Void)? = nil) throws -> KernelMeasurement {
        context.memory.resetPeak()
        try reset()
        try prepare(configurations, role: role)
        var launch: KernelLaunch?
        let firstCall = try Self.time {
            launch = try self.launch(configurations, role: role)
            try context.queue.finish()
        }
        var check = try self.check()
        let choices = launch!.choices
        // Every later call uses the choices of the first (the dispatcher is asked once).
        let chosen = choices.map(\.config)
        var wall: [Double] = [], device: [Double] = []
        var launches = launch!.events.count
        func result(_ wall: [Double], _ device: [Double]) throws -> KernelMeasurement {
            // One more call, untimed, on poisoned outputs: its result is checked too.
            try reset()
            try prepare(chosen, role: role)
            _ = try self.launch(chosen, role: role)
            try context.queue.finish()
            let last = try self.check()
            check = Check.worst([check, last])!
            return KernelMeasurement(choices: choices, seconds: median(wall), deviceSeconds: median(device), check: check,
                               peakDeviceBytes: context.memory.peakBytes, firstCallSeconds: firstCall, work: work(role: role),
                               launches: launches, metrics: try metrics())
        }
        func timedCall() throws {
            try beforeEachCall?()
            wall.append(try Self.time {
                launch = try self.launch(chosen, role: role)
                try context.queue.finish()
            })
            device.append(try launch!.seconds())
            launches = launch!.events.count
        }
        if let cutoff {
            try timedCall()
            if wall[0] > cutoff { return try result(wall, device) }
            wall.removeAll()
            device.removeAll()
        }
        for _ in 1..<max(warmup, 1) {
            try beforeEachCall?()
            _ = try self.launch(chosen, role: role)
            try context.queue.finish()
        }
        var total = 0.0
        while wall.count < max(repetitions, 1) || (total < minimumSeconds && wall.count < 1000) {
            try timedCall()
            total += wall[wall.count - 1]
        }
        return try result(wall, device)
    }
}

/// One timed configuration.
public struct KernelMeasurement: Sendable {
    /// The configuration of every role that ran.
    public let choices: [RoleChoice]
    /// Median wall-clock seconds of one call, from enqueue to completion.
    public let seconds: Double
    /// Median device seconds from the first kernel's start to the last kernel's end.
    public let deviceSeconds: Double
    /// The worse of the checks of the first and the last call.
    public let check: Check
    /// The most device memory the context held during the runs (operands, scratch).
    public let peakDeviceBytes: Int
    /// Wall-clock seconds of the first call, which builds the kernels: the call minus a timed run
    /// approximates the compile time.
    public let firstCallSeconds: Double
    public let work: Work
    /// Kernels enqueued by the last timed call.
    public var launches: Int
    /// The harness's named figures of the runs (``KernelHarness/metrics()``).
    public var metrics: [String: Double] = [:]

    /// The configuration of the last role that ran (the role measured, or the only role of the family).
    public var configuration: Configuration { choices.last?.config ?? Configuration(variant: "none", [:]) }
    public var source: ConfigurationSource { choices.last?.source ?? .default }
    public var isCorrect: Bool { check.passed }
    public var maxAbsError: Double { check.maxAbsError }
    public var gflops: Double? { work.gflops(seconds) }
    public var gbps: Double? { work.gbps(seconds) }
    public var compileSeconds: Double { max(0, firstCallSeconds - seconds) }
}

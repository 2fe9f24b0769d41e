import Autotuning
import Foundation
import OpenCLRuntime

/// What one call of a kernel does: floating-point operations and bytes moved to and from device memory
/// (the yardsticks of compute-bound and memory-bound kernels).
public struct Work: Sendable, Equatable {
    public var flops: Double
    public var bytes: Double
    public init(flops: Double, bytes: Double) {
        self.flops = flops
        self.bytes = bytes
    }

    /// GFLOP/s of one call taking `seconds` (nil when the kernel does no floating-point work).
    public func gflops(_ seconds: Double) -> Double? { flops > 0 && seconds > 0 ? flops / seconds * 1e-9 : nil }
    /// GB/s of one call taking `seconds`.
    public func gbps(_ seconds: Double) -> Double? { bytes > 0 && seconds > 0 ? bytes / seconds * 1e-9 : nil }

    /// The rate a person reads for this kind of kernel: `"172.4 GFLOP/s"`, or GB/s when there are no FLOPs.
    public func rate(_ seconds: Double) -> String {
        if let gflops = gflops(seconds) { return String(format: "%.1f GFLOP/s", gflops) }
        if let gbps = gbps(seconds) { return String(format: "%.1f GB/s", gbps) }
        return String(format: "%.4f ms", seconds * 1000)
    }
}

/// What a kernel family's problem needs before anything is allocated: the device buffers (bytes each) and
/// the host memory of a harness (inputs, reference, copies). Computed with overflow checks.
public struct ResourceNeeds: Sendable, Equatable {
    public var deviceBuffers: [Int]
    public var hostBytes: Int
    public init(deviceBuffers: [Int], hostBytes: Int) {
        self.deviceBuffers = deviceBuffers
        self.hostBytes = hostBytes
    }
}

/// A kernel family: a plug-in of the tuning machinery. It declares its problem (the tuning key), its search
/// spaces and defaults, and a harness that makes seeded inputs, launches a configuration and checks the result
/// against the family's CPU reference. The dispatcher logic, the tuner, the worker, the CLI and the benchmarks
/// are written once, over this protocol; see `docs/adding-a-kernel-family.md`.
///
/// A family is a final class that keeps a ``FamilyCore`` (context, tuning database, compiled kernels, scratch
/// buffers) and adds its typed call API.
public protocol KernelFamily: AnyObject, Sendable {
    /// The tuning key: sizes and tags (precision, layout, mode...). Its JSON is the `problem` object of every
    /// `autotune` subcommand, and its coding keys are the names in ``problemOptions``.
    associatedtype Problem: Codable & Hashable & Sendable & CustomStringConvertible
    /// The family's seeded inputs, reference and launches.
    associatedtype Harness: KernelHarness

    /// `"gemm"`, `"cce"`...: the subcommand name and the kernel name of database entries.
    static var name: String { get }
    /// One line for `--help`.
    static var summary: String { get }
    /// How a problem is given on the command line (declared once, parsed by ``ProblemParser``).
    static var problemOptions: [ProblemOption] { get }
    /// The names of the kernel variants (the `variant` of every configuration, one search space each): a
    /// database entry of another variant is refused when the family loads its database.
    static var variants: [String] { get }
    /// A few small problems, together reaching every kernel and option of the family: the conformance suite runs
    /// them (oclgrind, refusals, the space, defaults on canned limits, a short tune).
    static var conformanceProblems: [Problem] { get }
    /// The program source of every configuration (by default `Kernels/common.cl` + `Kernels/<name>.cl`).
    static func kernelSource() throws -> String

    /// The database key of a problem.
    static func key(_ problem: Problem) -> TuningKey
    /// FLOPs and bytes of one call.
    static func work(_ problem: Problem) -> Work
    /// Throws ``ProblemError`` when the problem is not one the kernels accept (a size below 1, a size beyond
    /// the kernels' indexing), and returns what it needs so it can be checked against the device and the host
    /// (``ResourceNeeds/check(on:)``). Arithmetic must be overflow-checked (``Checked``).
    static func needs(_ problem: Problem) throws -> ResourceNeeds

    var core: FamilyCore { get }
    init(core: FamilyCore)

    /// The search spaces, one per kernel variant, for this device and problem (constraints declared once).
    func spaces(for problem: Problem) -> [SearchSpace]
    /// Configurations that work before any tuning, best first; the dispatcher takes the first valid one.
    func defaults(for problem: Problem) -> [Configuration]
    /// Seeded inputs on the device, the CPU reference result, and launches.
    func harness(_ problem: Problem, seed: UInt64) throws -> Harness
    /// The build options of the program of `configuration`'s tuned kernels for `problem` (by default its
    /// parameters as defines): what a change of a parameter must change.
    func buildOptions(_ configuration: Configuration, for problem: Problem) -> String
    /// A stricter check than the harness's, for `autotune verify` and the oclgrind tests (canaries around the
    /// buffers, odd offsets...); by default the harness's own check of one launch on poisoned outputs.
    func verify(_ problem: Problem, configuration: Configuration?, seed: UInt64) throws -> Verification
}

extension KernelFamily {
    public static func kernelSource() throws -> String { try KernelSources.program(name) }

    /// A dispatcher on `context` with the tuned configurations of its device (``TuningDatabase/forDevice(_:environment:)``),
    /// or with `database` when given.
    ///
    /// - Throws: ``TuningDatabaseError`` when an entry of this family names a variant it does not have.
    public init(context: Context, database: TuningDatabase? = nil) throws {
        let core = try FamilyCore(context: context, database: database, source: Self.kernelSource)
        try Self.checkVariants(of: core.database)
        self.init(core: core)
    }

    /// Throws ``TuningDatabaseError`` naming the first entry of this family whose variant is not one of ``variants``
    /// (a typo or a file of another version: the dispatcher would silently ignore it).
    public static func checkVariants(of database: TuningDatabase) throws {
        for entry in database.entries.values.sorted(by: { $0.key.id < $1.key.id })
        where entry.key.kernel == name && !variants.contains(entry.config.variant) {
            throw TuningDatabaseError(path: database.entrySources[entry.key.id] ?? database.sources.joined(separator: ", "),
                                      reason: "the entry \(entry.key) has the variant \"\(entry.config.variant)\"; \(name) has "
                                          + variants.joined(separator: ", "))
        }
    }

    public func buildOptions(_ configuration: Configuration, for problem: Problem) -> String { configuration.defines }

    public var context: Context { core.context }
    public var database: TuningDatabase { core.database }
    public var limits: DeviceLimits { core.limits }

    public func verify(_ problem: Problem, configuration: Configuration?, seed: UInt64) throws -> Verification {
        let harness = try self.harness(problem, seed: seed)
        try harness.reset()
        let launch = try harness.launch(configuration)
        try context.queue.finish()
        return Verification(configuration: launch.configuration, source: launch.source, checks: [("result", try harness.check())])
    }
}

/// Where a launch's configuration came from.
public enum ConfigurationSource: String, Sendable, Codable {
    case explicit, tuned, nearest = "nearest-tuned", `default`
}

/// What one call enqueued.
public struct KernelLaunch {
    public let configuration: Configuration
    public let source: ConfigurationSource
    /// The kernels' events in queue order.
    public let events: [Event]

    public init(configuration: Configuration, source: ConfigurationSource, events: [Event]) {
        self.configuration = configuration
        self.source = source
        self.events = events
    }

    /// Device seconds from the start of the first kernel to the end of the last (waits for them).
    public func seconds() throws -> Double { try Event.span(events) }
}

/// A problem the kernels do not accept, refused before anything is allocated.
public struct ProblemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What `verify` found: named checks, each against the family's tolerance.
public struct Verification: Sendable {
    public let configuration: Configuration
    public let source: ConfigurationSource
    public let checks: [(name: String, check: Check)]
    /// Elements outside the outputs that were changed (canaries), when the family checks them.
    public var canaryViolations = 0
    /// Elements of the inputs that were changed.
    public var inputViolations = 0

    public init(configuration: Configuration, source: ConfigurationSource, checks: [(name: String, check: Check)],
                canaryViolations: Int = 0, inputViolations: Int = 0) {
        self.configuration = configuration
        self.source = source
        self.checks = checks
        self.canaryViolations = canaryViolations
        self.inputViolations = inputViolations
    }

    public var passed: Bool { checks.allSatisfy(\.check.passed) && canaryViolations == 0 && inputViolations == 0 }
}

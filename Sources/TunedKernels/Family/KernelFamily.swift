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
    associatedtype Problem: TabulatedProblem & Hashable & CustomStringConvertible
    /// The family's seeded inputs, reference and launches.
    associatedtype Harness: KernelHarness

    /// `"gemm"`, `"cce"`...: the subcommand name and the kernel name of database entries.
    static var name: String { get }
    /// One line for `--help`.
    static var summary: String { get }
    /// The family's kernel roles, dependencies first: the parts of a call that are tuned, stored and chosen apart
    /// (attention: forward and backward; CCE: its loss and its gradients). A family of one kernel has one role.
    static var roles: [KernelRole] { get }
    /// A few small problems, together reaching every kernel and option of the family: the conformance suite runs
    /// them (oclgrind, refusals, the space, defaults on canned limits, a short tune).
    static var conformanceProblems: [Problem] { get }
    /// The benchmarks of the performance suite (`autotune perf`, `scripts/perf-check.sh`): per role, a few
    /// representative problems, each compute- or memory-bound. A family without any is not benchmarked (the
    /// conformance tests require one per role).
    static var performanceCases: [PerformanceCase<Problem>] { get }
    /// The family's program source (by default `Kernels/common.cl` + `Kernels/<name>.cl`): of its kernels that are
    /// never tuned, and of every role that names no ``KernelRole/sources`` of its own.
    static func kernelSource() throws -> String

    /// The database key of a problem (``key(_:role:)`` adds the role).
    static func key(_ problem: Problem) -> TuningKey
    /// FLOPs and bytes of one call.
    static func work(_ problem: Problem) -> Work
    /// FLOPs and bytes of one role's kernels (the tuner's rates of a role); by default the whole call's.
    static func work(_ problem: Problem, role: KernelRole) -> Work
    /// Throws ``ProblemError`` when the problem is not one the kernels accept (a size below 1, a size beyond
    /// the kernels' indexing), and returns what it needs so it can be checked against the device and the host
    /// (``ResourceNeeds/check(on:)``). Arithmetic must be overflow-checked (``Checked``).
    static func needs(_ problem: Problem) throws -> ResourceNeeds

    var core: FamilyCore { get }
    init(core: FamilyCore)

    /// The search spaces of `role`, one per kernel variant of the role, for this device and problem (constraints
    /// declared once); `given` holds the configurations chosen for the roles it depends on.
    func spaces(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace]
    /// Configurations of `role` that work before any tuning, best first; the dispatcher takes the first valid one.
    func defaults(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [Configuration]
    /// Seeded inputs on the device, the CPU reference result, and launches.
    func harness(_ problem: Problem, seed: UInt64) throws -> Harness
    /// The build options of the program of `configuration`'s tuned kernels for `problem` (by default its
    /// parameters as defines): what a change of a parameter must change.
    func buildOptions(_ configuration: Configuration, for problem: Problem) -> String
    /// A stricter check than the harness's, for `autotune verify` and the oclgrind tests (canaries around the
    /// buffers, odd offsets...) of a whole call, with `configurations` (at most one per role; the other roles get
    /// the dispatcher's choice); by default the harness's own check of one launch on poisoned outputs.
    func verify(_ problem: Problem, configurations: [Configuration], seed: UInt64) throws -> Verification
}

extension KernelFamily {
    public static func kernelSource() throws -> String { try KernelSources.program(name) }

    public static func work(_ problem: Problem, role: KernelRole) -> Work { work(problem) }

    public static var performanceCases: [PerformanceCase<Problem>] { [] }

    /// The program source of `role`'s kernels: `common.cl` and the role's ``KernelRole/sources``, or the family's
    /// ``kernelSource()`` when the role names none.
    public static func kernelSource(role: KernelRole) throws -> String {
        guard let files = role.sources else { return try kernelSource() }
        return try KernelSources.program(files: files)
    }

    /// How a problem is given on the command line: the options of the problem's ``ProblemTable``.
    public static var problemOptions: [ProblemOption] { Problem.table.options }

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
        for entry in database.entries.values.sorted(by: { $0.key.id < $1.key.id }) where entry.key.kernel == name {
            let path = database.entrySources[entry.key.id] ?? database.sources.joined(separator: ", ")
            let role: KernelRole
            if roles.count == 1 {
                role = roles[0]
            } else {
                guard let named = entry.key.tags["role"].flatMap(Self.role(named:)) else {
                    throw TuningDatabaseError(path: path, reason: "the entry \(entry.key) names no role of \(name) (\"role\": one of "
                                              + roles.map(\.name).joined(separator: ", ") + "): an entry saved before \(name) had kernel roles; "
                                              + "delete it from that file, then tune the problem again (one entry per role)")
                }
                role = named
            }
            guard role.variants.contains(entry.config.variant) else {
                throw TuningDatabaseError(path: path, reason: "the entry \(entry.key) has the variant \"\(entry.config.variant)\"; \(name)'s role "
                                          + "\(role.name) has " + role.variants.joined(separator: ", "))
            }
        }
    }

    /// The names of every role's kernel variants (the `variant` of every configuration, one search space each).
    public static var variants: [String] { roles.flatMap(\.variants) }

    /// The role called `name`.
    public static func role(named name: String) -> KernelRole? { roles.first { $0.name == name } }

    /// The role whose variant `configuration` is (a variant belongs to one role).
    public static func role(of configuration: Configuration) -> KernelRole? { roles.first { $0.variants.contains(configuration.variant) } }

    /// The database key of `problem`'s `role`: ``key(_:)``, with the tag `role` when the family has several roles
    /// (a family of one role keeps the keys it had).
    public static func key(_ problem: Problem, role: KernelRole) -> TuningKey {
        var key = key(problem)
        if roles.count > 1 { key.tags["role"] = role.name }
        return key
    }

    public func buildOptions(_ configuration: Configuration, for problem: Problem) -> String { configuration.defines }

    public var context: Context { core.context }
    public var database: TuningDatabase { core.database }
    public var limits: DeviceLimits { core.limits }

    public func verify(_ problem: Problem, configurations: [Configuration], seed: UInt64) throws -> Verification {
        let harness = try self.harness(problem, seed: seed)
        try harness.reset()
        let launch = try harness.launch(configurations, role: nil)
        try context.queue.finish()
        return Verification(choices: launch.choices, checks: [("result", try harness.check())])
    }
}

/// One kernel role of a family: a part of its call with its own search spaces, defaults, database entries and
/// sources, tuned and chosen on its own.
public struct KernelRole: Sendable, Hashable, CustomStringConvertible {
    /// `"forward"`, `"backward"`, `"gemm"`...: the `role` tag of its database entries and `tune --role`'s value.
    public let name: String
    /// Its kernel variants (one search space each); a variant belongs to one role.
    public let variants: [String]
    /// The roles whose chosen configuration its spaces, defaults and launches read (declared earlier in
    /// ``KernelFamily/roles``); they are chosen, and tuned, first.
    public let dependsOn: [String]
    /// One line for `--help` and the docs.
    public let summary: String
    /// Its program's files under `Kernels/`, after `common.cl` (a family may keep several in its own folder); nil:
    /// the family's ``KernelFamily/kernelSource()``. Only these are compiled for a candidate of the role.
    public let sources: [String]?

    public init(_ name: String, variants: [String], dependsOn: [String] = [], sources: [String]? = nil, summary: String) {
        self.name = name
        self.variants = variants
        self.dependsOn = dependsOn
        self.sources = sources
        self.summary = summary
    }

    public var description: String { name }
}

/// The configuration of one role of a call and where it came from.
public struct RoleChoice: Sendable, Equatable, Codable {
    public let role: String
    public let config: Configuration
    public let source: ConfigurationSource

    public init(role: String, config: Configuration, source: ConfigurationSource) {
        self.role = role
        self.config = config
        self.source = source
    }
}

/// Where a launch's configuration came from.
public enum ConfigurationSource: String, Sendable, Codable {
    case explicit, tuned, nearest = "nearest-tuned", `default`
}

/// What one call enqueued.
public struct KernelLaunch {
    /// The configuration of every role that ran, in order (dependencies first).
    public let choices: [RoleChoice]
    /// The kernels' events in queue order.
    public let events: [Event]

    public init(choices: [RoleChoice], events: [Event]) {
        self.choices = choices
        self.events = events
    }

    /// One role's launch.
    public init(role: String, configuration: Configuration, source: ConfigurationSource, events: [Event]) {
        self.init(choices: [RoleChoice(role: role, config: configuration, source: source)], events: events)
    }

    /// The configuration of the last role that ran (the only one of a one-role family).
    public var configuration: Configuration { choices.last?.config ?? Configuration(variant: "none", [:]) }
    public var source: ConfigurationSource { choices.last?.source ?? .default }

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
    /// The configuration of every role that ran.
    public let choices: [RoleChoice]
    public let checks: [(name: String, check: Check)]
    /// Elements outside the outputs that were changed (canaries), when the family checks them.
    public var canaryViolations = 0
    /// Elements of the inputs that were changed.
    public var inputViolations = 0

    public init(choices: [RoleChoice], checks: [(name: String, check: Check)], canaryViolations: Int = 0, inputViolations: Int = 0) {
        self.choices = choices
        self.checks = checks
        self.canaryViolations = canaryViolations
        self.inputViolations = inputViolations
    }

    public var passed: Bool { checks.allSatisfy(\.check.passed) && canaryViolations == 0 && inputViolations == 0 }
    /// The configuration of the last role that ran.
    public var configuration: Configuration { choices.last?.config ?? Configuration(variant: "none", [:]) }
    public var source: ConfigurationSource { choices.last?.source ?? .default }
}

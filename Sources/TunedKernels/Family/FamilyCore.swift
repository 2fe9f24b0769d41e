import Autotuning
import Foundation
import OpenCLRuntime

/// What every kernel family keeps: its context, the tuning database of its device (and where that came from),
/// the device's limits, and the kernels and scratch buffers it made, reused across calls. Thread-safe.
public final class FamilyCore: @unchecked Sendable {
    public let context: Context
    public let database: TuningDatabase
    /// Which tuning database serves this device: its own, the closest tuned device's, or none (the defaults).
    public let origin: DatabaseOrigin
    public let limits: DeviceLimits
    private let source: @Sendable () throws -> String

    // Guarded by `lock`.
    private let lock = NSLock()
    private var kernels: [String: Kernel] = [:]
    private var scratchBuffers: [String: any AnyDeviceBuffer] = [:]
    private let launching = NSLock()

    /// Runs `body` while no other call of this family sets kernel arguments or enqueues (a ``Kernel`` holds its
    /// arguments, so two threads must not launch the same kernel at once).
    public func serialized<T>(_ body: () throws -> T) throws -> T {
        try launching.withLock { try body() }
    }

    /// - Parameters:
    ///   - database: tuned configurations; by default ``TuningDatabase/forDevice(_:environment:)``.
    ///   - source: the program source of the family (read when a kernel is first built).
    ///   - limits: the device's limits as the spaces see them (tests pass canned limits to reach a space's other
    ///     branches on this device); by default the device's own.
    public init(context: Context, database: TuningDatabase? = nil, limits: DeviceLimits? = nil,
                source: @escaping @Sendable () throws -> String) throws {
        self.context = context
        if let database {
            self.database = database
            origin = DatabaseOrigin(match: database.sources.isEmpty ? .defaults : .given, device: nil, sources: database.sources,
                                    reason: database.sources.isEmpty ? "an empty database was given" : "given by the caller")
        } else {
            (self.database, origin) = try TuningDatabase.forDevice(context.device)
        }
        self.limits = limits ?? DeviceLimits(context.device)
        self.source = source
    }

    /// The kernel `name` of the family's program (or of `common.cl` + `files`, a role's sources) built with
    /// `options` (built once, then cached here, in the context's program cache and, where the driver does not
    /// cache its own, on disk).
    public func kernel(_ name: String, options: String, files: [String]? = nil) throws -> Kernel {
        let key = options + "|" + (files?.joined(separator: ",") ?? "") + "|" + name
        return try lock.withLock {
            if let kernel = kernels[key] { return kernel }
            let text = try files.map { try KernelSources.program(files: $0) } ?? source()
            let program = try context.programs.program(context, source: text, options: options)
            let kernel = try program.kernel(named: name)
            kernels[key] = kernel
            return kernel
        }
    }

    /// A scratch buffer of at least `count` elements for `role` (packed panels, partial sums), reused across calls
    /// and replaced by a larger one when needed.
    public func scratch<Element: BitwiseCopyable>(_ role: String, count: Int, of: Element.Type = Element.self) throws -> DeviceBuffer<Element> {
        try lock.withLock {
            if let buffer = scratchBuffers[role] as? DeviceBuffer<Element>, buffer.count >= count { return buffer }
            scratchBuffers[role] = nil
            let buffer = try DeviceBuffer<Element>(context, count: max(count, 1))
            scratchBuffers[role] = buffer
            return buffer
        }
    }

    /// Releases the scratch buffers kept between calls.
    public func releaseScratch() { lock.withLock { scratchBuffers.removeAll() } }
}

// MARK: - The dispatcher's choice, written once for every family

extension KernelFamily {
    /// The configuration a call of `problem` would use for `role` (by default the family's first role), and where it
    /// came from: the tuned entry of this problem and role, else of the nearest tuned problem with the same tags,
    /// else the first valid default. `given` holds the configurations of the roles `role` depends on (by default
    /// the dispatcher's choices).
    public func configuration(for problem: Problem, role: KernelRole? = nil, given: [String: Configuration]? = nil)
        -> (Configuration, ConfigurationSource) {
        let role = role ?? Self.roles[0]
        let given = given ?? self.given(for: problem, role: role)
        let key = Self.key(problem, role: role)
        if let (entry, exact) = database.lookup(key), violations(of: entry.config, for: problem, role: role, given: given).isEmpty,
           exact || TuningDatabase.distance(entry.key.sizes, key.sizes) <= Self.nearestDistanceLimit {
            return (entry.config, exact ? .tuned : .nearest)
        }
        let candidates = defaults(for: problem, role: role, given: given)
        let fallback = candidates.first { violations(of: $0, for: problem, role: role, given: given).isEmpty }
        return (fallback ?? candidates.last ?? Configuration(variant: "none", [:]), .default)
    }

    /// The dispatcher's choices for the roles `role` depends on (and theirs), by role name.
    public func given(for problem: Problem, role: KernelRole) -> [String: Configuration] {
        var given: [String: Configuration] = [:]
        for dependency in Self.roles where role.dependsOn.contains(dependency.name) {
            given.merge(self.given(for: problem, role: dependency)) { a, _ in a }
            given[dependency.name] = configuration(for: problem, role: dependency, given: given).0
        }
        return given
    }

    /// How far (the sum over sizes of |log a - log b|) the nearest tuned problem may be for its configuration to be
    /// used: ln 8, e.g. 2048³ for 3000³, but not a 1x2304x768 entry for 1x4096x4096, whose shape class (a
    /// memory-bound matrix-vector product) it may not share. Farther problems get the family's defaults, which
    /// are chosen by shape.
    public static var nearestDistanceLimit: Double { log(8) }

    /// The constraints `configuration` violates on this device for `problem` (empty when valid): in the spaces of
    /// the role its variant belongs to, given the configurations of the roles that one depends on (by default the
    /// dispatcher's choices).
    public func violations(of configuration: Configuration, for problem: Problem, given: [String: Configuration]? = nil) -> [String] {
        guard let role = Self.role(of: configuration) else {
            return ["unknown variant \(configuration.variant) (one of \(Self.variants.joined(separator: ", ")))"]
        }
        return violations(of: configuration, for: problem, role: role, given: given ?? self.given(for: problem, role: role))
    }

    /// The constraints `configuration` violates as a configuration of `role`.
    public func violations(of configuration: Configuration, for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [String] {
        let spaces = spaces(for: problem, role: role, given: given)
        guard let space = spaces.first(where: { $0.variant == configuration.variant }) else {
            return ["unknown variant \(configuration.variant) of the role \(role.name) (one of \(spaces.map(\.variant).joined(separator: ", ")))"]
        }
        return space.violations(of: configuration)
    }

    /// The configuration of every role of a call, dependencies first: the explicit configuration of a role where
    /// one is given (a configuration's variant names its role), else the dispatcher's choice given the roles
    /// before it.
    /// - Throws: ``InvalidConfiguration`` when an explicit configuration violates its space, names an unknown
    ///   variant, or two are given for one role.
    public func resolve(_ explicit: [Configuration], for problem: Problem) throws -> [RoleChoice] {
        var byRole: [String: Configuration] = [:]
        for configuration in explicit {
            guard let role = Self.role(of: configuration) else {
                throw InvalidConfiguration(family: Self.name, "\(configuration): unknown variant \(configuration.variant) (one of \(Self.variants.joined(separator: ", ")))")
            }
            guard byRole[role.name] == nil else {
                throw InvalidConfiguration(family: Self.name, "two configurations are given for the role \(role.name)")
            }
            byRole[role.name] = configuration
        }
        var given: [String: Configuration] = [:], choices: [RoleChoice] = []
        for role in Self.roles {
            let (configuration, source) = try resolve(byRole[role.name], role: role, for: problem, given: given)
            given[role.name] = configuration
            choices.append(RoleChoice(role: role.name, config: configuration, source: source))
        }
        return choices
    }

    /// `explicit` when it is a valid configuration of `role` given the configurations of the roles it depends on,
    /// else (nil) the dispatcher's choice.
    /// - Throws: ``InvalidConfiguration`` when `explicit` is of another role or violates the role's space.
    public func resolve(_ explicit: Configuration?, role: KernelRole, for problem: Problem, given: [String: Configuration]) throws
        -> (Configuration, ConfigurationSource) {
        guard let explicit else { return configuration(for: problem, role: role, given: given) }
        guard role.variants.contains(explicit.variant) else {
            throw InvalidConfiguration(family: Self.name, "\(explicit) is not a configuration of the \(role.name) (its variants: "
                                       + role.variants.joined(separator: ", ") + ")")
        }
        let problems = violations(of: explicit, for: problem, role: role, given: given)
        guard problems.isEmpty else {
            throw InvalidConfiguration(family: Self.name, "\(explicit) is not valid on \(context.device.name)"
                                       + (Self.roles.count > 1 ? " for the role \(role.name)" : "") + ": " + problems.joined(separator: "; "))
        }
        return (explicit, .explicit)
    }

    /// The one configuration of a launch of a family of one role (nil: the dispatcher's choice).
    /// - Throws: ``InvalidConfiguration`` for more than one.
    public func onlyConfiguration(_ configurations: [Configuration]) throws -> Configuration? {
        guard configurations.count <= 1 else {
            throw InvalidConfiguration(family: Self.name, "\(Self.name) has one kernel role: give one configuration, not \(configurations.count)")
        }
        return configurations.first
    }

    /// The explicit configuration if given and valid, else the dispatcher's choice, for the role of `explicit`
    /// (the family's first role when nil).
    /// - Throws: ``InvalidConfiguration`` when `explicit` violates the space.
    public func resolve(_ explicit: Configuration?, for problem: Problem) throws -> (Configuration, ConfigurationSource) {
        let choices = try resolve(explicit.map { [$0] } ?? [], for: problem)
        let role = explicit.flatMap(Self.role(of:))?.name ?? Self.roles[0].name
        let choice = choices.first { $0.role == role } ?? choices[0]
        return (choice.config, choice.source)
    }

    /// The tuning space the tuner searches for `problem`'s `role`, given the configurations of the roles it depends on.
    public func tuningSpace(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> TuningSpace {
        TuningSpace(searchSpaces: spaces(for: problem, role: role, given: given))
    }

    /// Checks `problem` against the kernels' limits, the device's memory and the host memory of a harness (its
    /// inputs and CPU reference), before anything is allocated. Throws ``ProblemError`` with the reason.
    public func check(_ problem: Problem) throws {
        try Self.needs(problem).check(on: context.device)
    }

    /// What a call of `problem` needs: the kernels' limits (sizes, overflow-checked) and the device's memory; not
    /// a harness's host memory. The call APIs run this. Throws ``ProblemError`` with the reason.
    public func checkCall(_ problem: Problem) throws {
        try Self.needs(problem).checkDevice(context.device)
    }
}

/// A configuration that violates its family's constraints on the device.
public struct InvalidConfiguration: Error, Sendable, CustomStringConvertible {
    public let family: String
    /// What is wrong, without the family's name.
    public let message: String
    public init(family: String, _ message: String) {
        self.family = family
        self.message = message
    }
    public var description: String { "\(family): \(message)" }
}

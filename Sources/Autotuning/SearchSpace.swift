/// A tunable parameter: a name and its allowed values, in order (neighbours are adjacent values).
public struct Parameter: Sendable, Hashable {
    public let name: String
    public let values: [Int]
    /// Why the values are what they are, for the message of a value outside them (`"the forward's TB: ..."`).
    public let note: String?

    public init(_ name: String, _ values: [Int], note: String? = nil) {
        precondition(!values.isEmpty, "parameter \(name) needs at least one value")
        self.name = name
        self.values = values
        self.note = note
    }
}

/// A restriction over some parameters. It is checked as soon as all of `parameters` have values, so
/// enumeration prunes early.
public struct Constraint: Sendable {
    /// What the constraint demands, for error messages: `"MWG % (MDIMC*VWM) == 0"`.
    public let description: String
    public let parameters: [String]
    public let isSatisfied: @Sendable ([String: Int]) -> Bool

    public init(_ description: String, _ parameters: [String], _ isSatisfied: @escaping @Sendable ([String: Int]) -> Bool) {
        self.description = description
        self.parameters = parameters
        self.isSatisfied = isSatisfied
    }

    /// `a % b == 0`, with `b` computed from the values (a zero divisor fails).
    public static func divides(_ description: String, _ parameters: [String],
                               _ dividend: @escaping @Sendable ([String: Int]) -> Int,
                               _ divisor: @escaping @Sendable ([String: Int]) -> Int) -> Constraint {
        Constraint(description, parameters) { v in
            let d = divisor(v)
            return d > 0 && dividend(v) % d == 0
        }
    }
}

/// The search space of one kernel variant: named discrete parameters and constraints, which include
/// the device's limits. A configuration is valid when every constraint holds.
public struct SearchSpace: Sendable {
    public let variant: String
    public let parameters: [Parameter]
    public let constraints: [Constraint]

    public init(variant: String, parameters: [Parameter], constraints: [Constraint]) {
        self.variant = variant
        self.parameters = parameters
        self.constraints = constraints
    }

    /// The constraints `configuration` violates (empty when it is valid), including parameters that
    /// are missing, unknown or outside their value lists.
    public func violations(of configuration: Configuration) -> [String] {
        guard configuration.variant == variant else { return ["variant \(configuration.variant) is not \(variant)"] }
        var problems: [String] = []
        for parameter in parameters {
            guard let value = configuration[parameter.name] else {
                problems.append("\(parameter.name) is missing")
                continue
            }
            if !parameter.values.contains(value) {
                problems.append("\(parameter.name)=\(value) is not one of \(parameter.values)" + (parameter.note.map { " (\($0))" } ?? ""))
            }
        }
        let known = Set(parameters.map(\.name))
        for name in configuration.values.keys.sorted() where !known.contains(name) {
            problems.append("\(name) is not a parameter of \(variant)")
        }
        if !problems.isEmpty { return problems }
        return constraints.filter { !$0.isSatisfied(configuration.values) }.map(\.description)
    }

    public func isValid(_ configuration: Configuration) -> Bool { violations(of: configuration).isEmpty }

    /// Every valid configuration, in lexicographic order of the parameter values, found by a
    /// depth-first walk that checks each constraint as soon as its parameters are set.
    public func enumerate(limit: Int = .max) -> [Configuration] {
        var result: [Configuration] = []
        let order = parameters.map(\.name)
        // Constraints become checkable at the depth of their last parameter.
        var checksAtDepth = [[Constraint]](repeating: [], count: parameters.count)
        for constraint in constraints {
            let depth = constraint.parameters.compactMap { order.firstIndex(of: $0) }.max() ?? 0
            checksAtDepth[depth].append(constraint)
        }
        var values: [String: Int] = [:]
        func visit(_ depth: Int) {
            if result.count >= limit { return }
            if depth == parameters.count {
                result.append(Configuration(variant: variant, values))
                return
            }
            let parameter = parameters[depth]
            for value in parameter.values {
                values[parameter.name] = value
                if checksAtDepth[depth].allSatisfy({ $0.isSatisfied(values) }) { visit(depth + 1) }
            }
            values[parameter.name] = nil
        }
        visit(0)
        return result
    }

    /// The number of valid configurations.
    public var count: Int { enumerate().count }

    /// A uniformly random valid configuration by rejection sampling (nil after `attempts` misses).
    public func randomConfiguration<G: RandomNumberGenerator>(using generator: inout G, attempts: Int = 10_000) -> Configuration? {
        for _ in 0..<attempts {
            var values: [String: Int] = [:]
            for parameter in parameters { values[parameter.name] = parameter.values.randomElement(using: &generator)! }
            let candidate = Configuration(variant: variant, values)
            if constraints.allSatisfy({ $0.isSatisfied(values) }) { return candidate }
        }
        return nil
    }
}

/// One point of a ``TuningSpace``: a variant and, per dimension of that variant, the index of the
/// chosen value. Strategies work on these; ``TuningSpace`` maps them to and from configurations.
public struct Candidate: Hashable, Sendable, CustomStringConvertible {
    public var variant: Int
    public var indices: [Int]

    public init(variant: Int, indices: [Int]) {
        self.variant = variant
        self.indices = indices
    }

    public var description: String { "\(variant):" + indices.map(String.init).joined(separator: ",") }
}

/// The search space of one kernel variant seen by the strategies: dimensions with ordered values
/// (shown as labels), and which index vectors are valid. ``SearchSpace`` (constraints over named
/// integer parameters) and ``RecordedSpace`` (the configurations a Kernel Tuner cache holds) are the
/// two kinds.
public protocol VariantSpace: Sendable {
    var name: String { get }
    var dimensionNames: [String] { get }
    /// The values of each dimension as text, in order (neighbours are adjacent values).
    var dimensionLabels: [[String]] { get }
    /// The number of values of each dimension.
    var dimensionSizes: [Int] { get }
    func isValid(_ indices: [Int]) -> Bool
    /// A uniformly random valid point, or nil when none could be found.
    func randomValid(using generator: inout SplitMix64) -> [Int]?
}

/// What a tuning run searches: one or more kernel variants, each its own ``VariantSpace``.
/// The tuner and its strategies know no kernel; they see only this.
public struct TuningSpace: Sendable {
    public let variants: [any VariantSpace]

    public init(_ variants: [any VariantSpace]) {
        precondition(!variants.isEmpty, "a tuning space needs at least one variant")
        self.variants = variants
    }

    public func isValid(_ candidate: Candidate) -> Bool {
        variants.indices.contains(candidate.variant) && candidate.indices.count == variants[candidate.variant].dimensionNames.count
            && variants[candidate.variant].isValid(candidate.indices)
    }

    /// A random valid candidate: a variant chosen uniformly, then a uniformly random point of it.
    public func random(using generator: inout SplitMix64) -> Candidate? {
        var order = Array(variants.indices)
        order.shuffle(using: &generator)
        for variant in order {
            if let indices = variants[variant].randomValid(using: &generator) { return Candidate(variant: variant, indices: indices) }
        }
        return nil
    }

    /// Every valid candidate that differs from `candidate` in exactly one dimension (moved to any
    /// other value), in dimension then value order.
    public func neighbours(of candidate: Candidate) -> [Candidate] {
        moves(of: candidate) { original, size in (0..<size).filter { $0 != original } }
    }

    /// The valid candidates that move one dimension of `candidate` to an adjacent value.
    public func adjacentNeighbours(of candidate: Candidate) -> [Candidate] {
        moves(of: candidate) { original, size in [original - 1, original + 1].filter { $0 >= 0 && $0 < size } }
    }

    /// The valid candidates that change one dimension to one of `targets(current index, size)`.
    private func moves(of candidate: Candidate, _ targets: (Int, Int) -> [Int]) -> [Candidate] {
        let space = variants[candidate.variant]
        let sizes = space.dimensionSizes
        var result: [Candidate] = []
        var indices = candidate.indices
        for dimension in indices.indices {
            let original = indices[dimension]
            for value in targets(original, sizes[dimension]) {
                indices[dimension] = value
                if space.isValid(indices) { result.append(Candidate(variant: candidate.variant, indices: indices)) }
            }
            indices[dimension] = original
        }
        return result
    }

    /// A random valid neighbour: with probability `adjacentProbability` an adjacent move, otherwise
    /// a move to any value; nil when the candidate has no valid neighbour.
    public func randomNeighbour(of candidate: Candidate, adjacentProbability: Double = 0.5,
                                using generator: inout SplitMix64) -> Candidate? {
        if Double.random(in: 0..<1, using: &generator) < adjacentProbability,
           let move = adjacentNeighbours(of: candidate).randomElement(using: &generator) {
            return move
        }
        return neighbours(of: candidate).randomElement(using: &generator)
    }

    /// `name=label` pairs of a candidate, for messages.
    public func describe(_ candidate: Candidate) -> String {
        let space = variants[candidate.variant]
        let labels = space.dimensionLabels
        let values = candidate.indices.enumerated().map { dimension, index in "\(space.dimensionNames[dimension])=\(labels[dimension][index])" }
        return "\(space.name)(" + values.joined(separator: " ") + ")"
    }
}

// MARK: - SearchSpace as a variant space

extension SearchSpace: VariantSpace {
    public var name: String { variant }
    public var dimensionNames: [String] { parameters.map(\.name) }
    public var dimensionLabels: [[String]] { parameters.map { $0.values.map(String.init) } }
    public var dimensionSizes: [Int] { parameters.map(\.values.count) }

    /// The configuration of an index vector.
    public func configuration(_ indices: [Int]) -> Configuration {
        var values: [String: Int] = [:]
        for (parameter, index) in zip(parameters, indices) { values[parameter.name] = parameter.values[index] }
        return Configuration(variant: variant, values)
    }

    /// The index vector of a configuration, or nil when a value is not in its parameter's list.
    public func indices(of configuration: Configuration) -> [Int]? {
        guard configuration.variant == variant else { return nil }
        var result: [Int] = []
        for parameter in parameters {
            guard let value = configuration[parameter.name], let index = parameter.values.firstIndex(of: value) else { return nil }
            result.append(index)
        }
        return result
    }

    public func isValid(_ indices: [Int]) -> Bool {
        let values = configuration(indices).values
        return constraints.allSatisfy { $0.isSatisfied(values) }
    }

    public func randomValid(using generator: inout SplitMix64) -> [Int]? {
        randomConfiguration(using: &generator).flatMap(indices(of:))
    }
}

extension TuningSpace {
    /// A tuning space over kernel variants declared as ``SearchSpace``s.
    public init(searchSpaces: [SearchSpace]) { self.init(searchSpaces) }

    /// The configuration of a candidate whose variant is a ``SearchSpace``.
    public func configuration(_ candidate: Candidate) -> Configuration? {
        (variants[candidate.variant] as? SearchSpace)?.configuration(candidate.indices)
    }

    /// The candidate of a configuration, or nil when no variant of this space holds it.
    public func candidate(_ configuration: Configuration) -> Candidate? {
        for (index, variant) in variants.enumerated() {
            if let space = variant as? SearchSpace, let indices = space.indices(of: configuration) {
                return Candidate(variant: index, indices: indices)
            }
        }
        return nil
    }
}

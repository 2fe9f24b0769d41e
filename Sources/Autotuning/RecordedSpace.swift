/// A recorded search space (a Kernel Tuner cache file) as a ``VariantSpace``: its dimensions are the
/// file's tunable parameters, a point is valid when the file holds it, and evaluating a point reads
/// the time it recorded. Recorded failures stay in the space and cost an evaluation, like in a real run.
public struct RecordedSpace: VariantSpace {
    public let name: String
    public let dimensionNames: [String]
    public let dimensionLabels: [[String]]
    public let dimensionSizes: [Int]
    /// Every point of the space, and its recorded time in seconds (nil: the configuration failed).
    public let points: [[Int]]
    public let seconds: [Double?]
    private let indexOfCode: [Int: Int]
    private let radix: [Int]

    public init(_ cache: KernelTunerCache) throws {
        name = cache.kernelName
        dimensionNames = cache.parameterNames
        dimensionLabels = cache.parameterValues
        dimensionSizes = cache.parameterValues.map(\.count)
        var radix: [Int] = []
        var scale = 1
        for size in dimensionSizes {
            radix.append(scale)
            scale *= max(size, 1)
        }
        self.radix = radix
        let lookup = cache.parameterValues.map { labels in Dictionary(labels.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first }) }
        var points: [[Int]] = [], seconds: [Double?] = [], indexOfCode: [Int: Int] = [:]
        for key in cache.entries.keys.sorted() {
            let entry = cache.entries[key]!
            guard entry.labels.count == lookup.count else {
                throw KernelTunerCacheError(path: cache.kernelName, reason: "entry \(key) has \(entry.labels.count) values for \(lookup.count) parameters")
            }
            var indices: [Int] = []
            for (dimension, label) in entry.labels.enumerated() {
                guard let index = lookup[dimension][label] else {
                    throw KernelTunerCacheError(path: cache.kernelName, reason: "entry \(key): \(cache.parameterNames[dimension])=\(label) is not in tune_params")
                }
                indices.append(index)
            }
            indexOfCode[zip(indices, radix).reduce(0) { $0 + $1.0 * $1.1 }] = points.count
            points.append(indices)
            seconds.append(entry.time.map { $0 / 1000 })
        }
        self.points = points
        self.seconds = seconds
        self.indexOfCode = indexOfCode
    }

    private func code(_ indices: [Int]) -> Int { zip(indices, radix).reduce(0) { $0 + $1.0 * $1.1 } }

    /// The position of `indices` in ``points``, or nil when the space does not hold it.
    public func index(of indices: [Int]) -> Int? {
        guard indices.count == radix.count, zip(indices, dimensionSizes).allSatisfy({ $0 >= 0 && $0 < $1 }) else { return nil }
        return indexOfCode[code(indices)]
    }

    public func isValid(_ indices: [Int]) -> Bool { index(of: indices) != nil }

    public func randomValid(using generator: inout SplitMix64) -> [Int]? { points.randomElement(using: &generator) }

    /// The recorded outcome of a point of this space.
    public func outcome(_ indices: [Int]) -> EvaluationOutcome {
        guard let index = index(of: indices) else { return .failed("not in the recorded space") }
        return seconds[index].map(EvaluationOutcome.seconds) ?? .failed("recorded as failed")
    }

    /// The fastest recorded time in seconds.
    public var optimum: Double? { seconds.compactMap { $0 }.min() }
}

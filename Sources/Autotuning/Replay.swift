import Foundation
import Synchronization

/// Replays search strategies against a recorded space for many seeds: each first visit of a point
/// costs one evaluation and returns the recorded time.
public struct Replay: Sendable {
    public let space: RecordedSpace
    public let optimum: Double
    /// Times of the space in increasing order, failures last as infinity: random search without
    /// repetition draws from these.
    private let sortedTimes: [Double]

    /// Replays the space `cache` recorded. Unless `allowIncomplete`, refuses a cache read from a file
    /// that was not ``KernelTunerCache/Completeness/closed`` (cut off, or a journal still being
    /// written): its configurations are only part of the space, and its optimum may not be the space's.
    /// Errors name the cache's ``KernelTunerCache/source`` (its file).
    public init(cache: KernelTunerCache, allowIncomplete: Bool = false) throws {
        let path = cache.source ?? "\(cache.kernelName) on \(cache.deviceName) (in memory)"
        if !allowIncomplete, cache.completeness != .closed {
            let count = cache.entries.count
            let configurations = "\(count) configuration\(count == 1 ? "" : "s")"
            let how = switch cache.completeness {
            case .open: "it is a journal still being written, or left open by a killed run (its closing braces are missing), "
                + "so only the \(configurations) recorded so far could be read"
            case .truncated, .closed: "it is truncated (its last line was cut off, or its closing braces are missing), "
                + "so only \(configurations) could be read"
            }
            throw KernelTunerCacheError(path: path, reason: "not a complete recorded space: \(how). --allow-incomplete replays those anyway")
        }
        do {
            space = try RecordedSpace(cache)
        } catch let error as KernelTunerCacheError {
            throw KernelTunerCacheError(path: path, reason: error.reason)  // RecordedSpace names the kernel, not the file
        }
        sortedTimes = space.seconds.map { $0 ?? .infinity }.sorted()
        guard let optimum = space.optimum else {
            throw KernelTunerCacheError(path: path, reason: "the recorded space has no successful configuration")
        }
        self.optimum = optimum
    }

    /// One strategy's runs: per seed, the best seconds after each evaluation (nil until a success).
    public struct Runs: Sendable {
        public let strategy: String
        public let histories: [[Double?]]

        /// The best time after `evaluations` evaluations in each run (a run that ended earlier, on a
        /// space smaller than the budget, keeps its final best; nothing found counts as infinity).
        public func bestTimes(at evaluations: Int) -> [Double] {
            histories.map { history in
                guard !history.isEmpty else { return .infinity }
                return history[min(evaluations, history.count) - 1] ?? .infinity
            }
        }
    }

    /// Runs `kind` for seeds 1...`seeds` with `budget` evaluations each, in parallel.
    public func run(_ kind: StrategyKind, budget: Int, seeds: Int) -> Runs {
        let histories = Mutex([[Double?]](repeating: [], count: seeds))
        let space = self.space
        DispatchQueue.concurrentPerform(iterations: seeds) { index in
            let session = SearchSession(space: TuningSpace([space]), seed: UInt64(index + 1), budget: TuningBudget(evaluations: budget)) {
                space.outcome($0.indices)
            }
            try? runSearch(kind.make(), in: session)
            let history = session.history
            histories.withLock { $0[index] = history }
        }
        return Runs(strategy: kind.rawValue, histories: histories.withLock { $0 })
    }

    /// The fraction of the optimum a best time reaches: optimum / time (0 when nothing was found).
    public func fraction(_ time: Double) -> Double { time.isFinite ? optimum / time : 0 }

    /// Median over runs of the fraction of the optimum after each evaluation 1...budget.
    public func medianFractions(_ runs: Runs, budget: Int) -> [Double] {
        (1...max(budget, 1)).map { evaluations in median(runs.bestTimes(at: evaluations).map(fraction)) }
    }

    // MARK: Random search, exactly


    /// log C(n, k).
    private static func logChoose(_ n: Int, _ k: Int) -> Double {
        guard k >= 0, k <= n else { return -.infinity }
        return lgamma(Double(n + 1)) - lgamma(Double(k + 1)) - lgamma(Double(n - k + 1))
    }

    /// Random search without repetition, computed exactly: after `draws` draws from the N points, the
    /// probability that the best is not among the i fastest is C(N-i, draws) / C(N, draws). Returns
    /// the median and the expected best time (infinity-free: a run that found nothing counts as the
    /// slowest successful time).
    public func randomSearch(draws: Int) -> (median: Double, mean: Double) {
        let times = sortedTimes
        let n = times.count, k = min(max(draws, 1), times.count)
        let slowest = times.last(where: \.isFinite) ?? optimum
        let total = Self.logChoose(n, k)
        var median = Double.infinity, mean = 0.0, previousTail = 1.0
        for i in 1...n {
            // P(best rank > i): all draws avoid the i fastest.
            let tail = i > n - k ? 0 : exp(Self.logChoose(n - i, k) - total)
            let p = previousTail - tail  // P(best rank == i)
            let time = times[i - 1].isFinite ? times[i - 1] : slowest
            mean += p * time
            if median == .infinity && 1 - tail >= 0.5 { median = time }
            previousTail = tail
            if tail == 0 { break }
        }
        return (median, mean)
    }

    /// The autotuning-methodology score (Willemsen et al., 2024): at each budget point b, how far the
    /// strategy's mean best time goes from the random-search baseline toward the optimum,
    /// (random(b) - strategy(b)) / (random(b) - optimum), averaged over b = 1...budget. 0 is random
    /// search, 1 finds the optimum at once, negative is worse than random.
    public func score(_ runs: Runs, budget: Int) -> Double {
        var total = 0.0, count = 0
        let slowest = sortedTimes.last(where: \.isFinite) ?? optimum
        for b in 1...max(budget, 1) {
            let baseline = randomSearch(draws: b).mean
            guard baseline - optimum > 1e-12 * optimum else { continue }
            let times = runs.bestTimes(at: b).map { $0.isFinite ? $0 : slowest }
            let strategy = times.reduce(0, +) / Double(times.count)
            total += (baseline - strategy) / (baseline - optimum)
            count += 1
        }
        return count == 0 ? 0 : total / Double(count)
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

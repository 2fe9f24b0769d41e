import Foundation

/// Two sets of timings of one benchmark compared: a head (a change) against a base (the revision it changes),
/// each a set of per-round medians measured interleaved on one machine.
///
/// The verdict is the performance-regression rule of this package: a **regression** is a median ratio head/base
/// above `tolerance` (1.05) with a two-sided Mann-Whitney U p-value below `alpha` (0.01); an **improvement** is
/// the mirror image (ratio below 1/`tolerance`, same p). Anything else is no change. Neither test alone is enough:
/// a tiny consistent shift is significant but harmless, and a large ratio of two noisy sets may be chance.
///
/// **Edge cases:** fewer than two values a side cannot be significant (p = 1); a set holding a non-finite value
/// or a value not above zero is refused by ``init(head:base:tolerance:alpha:)``.
public struct SampleComparison: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable { case regression, improvement, unchanged }

    /// median(head) / median(base): above 1 means the head is slower.
    public let ratio: Double
    /// A 95% percentile-bootstrap interval of `ratio` (both sets resampled independently, 2000 times, seeded).
    public let interval: ClosedRange<Double>
    /// The two-sided Mann-Whitney U p-value: exact (no ties, at most 50 values a side), else the normal
    /// approximation with the tie correction.
    public let pValue: Double
    public let verdict: Verdict
    public let headMedian: Double
    public let baseMedian: Double
    public let headCount: Int
    public let baseCount: Int

    public init(head: [Double], base: [Double], tolerance: Double = 1.05, alpha: Double = 0.01) throws {
        for (name, values) in [("head", head), ("base", base)] {
            guard !values.isEmpty else { throw ComparisonError("no \(name) values to compare") }
            guard values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw ComparisonError("the \(name) values hold a non-finite value or one not above zero: \(values)")
            }
        }
        headMedian = median(head)
        baseMedian = median(base)
        ratio = headMedian / baseMedian
        interval = Self.bootstrapInterval(head: head, base: base)
        pValue = Self.mannWhitneyP(head, base)
        headCount = head.count
        baseCount = base.count
        if ratio > tolerance && pValue < alpha {
            verdict = .regression
        } else if ratio < 1 / tolerance && pValue < alpha {
            verdict = .improvement
        } else {
            verdict = .unchanged
        }
    }

    /// The two-sided p-value of the Mann-Whitney U test of `a` against `b` (the chance, were both drawn from one
    /// distribution, of a rank sum at least this far from its mean).
    public static func mannWhitneyP(_ a: [Double], _ b: [Double]) -> Double {
        let n = a.count, m = b.count
        guard n >= 2, m >= 2 else { return 1 }
        // U of a: pairs (x in a, y in b) with x > y, ties counting a half.
        var u = 0.0
        for x in a {
            for y in b { u += x > y ? 1 : (x == y ? 0.5 : 0) }
        }
        let all = (a + b).sorted()
        let hasTies = zip(all, all.dropFirst()).contains { $0 == $1 }
        if !hasTies && n <= 50 && m <= 50 {
            let counts = exactUDistribution(n, m)
            let total = counts.reduce(0, +)
            let low = Int(u.rounded())
            let below = counts[0...low].reduce(0, +) / total
            let above = counts[low...].reduce(0, +) / total
            return min(1, 2 * min(below, above))
        }
        // Normal approximation, tie-corrected variance, continuity correction.
        let mean = Double(n * m) / 2
        var tieTerm = 0.0
        var index = 0
        while index < all.count {
            var end = index
            while end + 1 < all.count && all[end + 1] == all[index] { end += 1 }
            let t = Double(end - index + 1)
            tieTerm += t * t * t - t
            index = end + 1
        }
        let total = Double(n + m)
        let variance = Double(n * m) / 12 * ((total + 1) - tieTerm / (total * (total - 1)))
        guard variance > 0 else { return 1 }
        let z = max(0, abs(u - mean) - 0.5) / variance.squareRoot()
        return min(1, erfc(z / 2.0.squareRoot()))
    }

    /// The number of arrangements of `n` and `m` distinct values giving each U from 0 to n*m.
    static func exactUDistribution(_ n: Int, _ m: Int) -> [Double] {
        // previous[j]: the counts for i - 1 values of a and j of b; U is 0 when either side is empty.
        var previous = [[Double]](repeating: [1], count: m + 1)
        for i in 1...max(n, 1) where n >= 1 {
            var current = [[Double]](repeating: [1], count: m + 1)
            for j in 1...max(m, 1) where m >= 1 {
                // The largest value is a's (it beats all j of b: U + j) or b's (U unchanged).
                var row = [Double](repeating: 0, count: i * j + 1)
                for (u, count) in previous[j].enumerated() { row[u + j] += count }
                for (u, count) in current[j - 1].enumerated() { row[u] += count }
                current[j] = row
            }
            previous = current
        }
        return previous[m]
    }

    /// The 2.5th and 97.5th percentiles of median(head*)/median(base*) over 2000 seeded resamples.
    static func bootstrapInterval(head: [Double], base: [Double], resamples: Int = 2000) -> ClosedRange<Double> {
        var generator = SplitMix64(seed: 0x5EED_AB)
        var ratios: [Double] = []
        ratios.reserveCapacity(resamples)
        func resample(_ values: [Double]) -> [Double] {
            (0..<values.count).map { _ in values[Int(generator.next() % UInt64(values.count))] }
        }
        for _ in 0..<resamples { ratios.append(median(resample(head)) / median(resample(base))) }
        ratios.sort()
        let low = ratios[Int(0.025 * Double(resamples - 1))]
        let high = ratios[Int((0.975 * Double(resamples - 1)).rounded(.up))]
        return low...high
    }
}

/// Values that cannot be compared.
public struct ComparisonError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

@testable import Autotuning
import Testing

/// The A/B verdict's statistics: the exact Mann-Whitney U p-values of small cases worked out by hand, the
/// normal approximation with ties, the bootstrap interval, and the regression rule (ratio and p together).
@Suite struct SampleComparisonTests {
    /// Every arrangement of n and m values counted once: C(n + m, n) in all, symmetric about n*m/2.
    @Test func exactDistributionCountsEveryArrangement() {
        let counts = SampleComparison.exactUDistribution(9, 9)
        #expect(counts.count == 82)
        #expect(counts.reduce(0, +) == 48620)
        #expect(counts == counts.reversed())
        #expect(SampleComparison.exactUDistribution(2, 2) == [1, 1, 2, 1, 1])
        #expect(SampleComparison.exactUDistribution(1, 3) == [1, 1, 1, 1])
    }

    /// n = m = 2: U of [1, 2] against [3, 4] is 0 (1 of 6 arrangements, two-sided 1/3); of [1, 3] against [2, 4] it
    /// is 1 (P(U <= 1) = 2/6, two-sided 2/3). Fully separated sets of 9 give 2 / C(18, 9).
    @Test func exactPValuesOfSmallCases() {
        #expect(abs(SampleComparison.mannWhitneyP([1, 2], [3, 4]) - 1.0 / 3) < 1e-12)
        #expect(abs(SampleComparison.mannWhitneyP([1, 3], [2, 4]) - 2.0 / 3) < 1e-12)
        let low = (1...9).map(Double.init), high = (10...18).map(Double.init)
        #expect(abs(SampleComparison.mannWhitneyP(low, high) - 2.0 / 48620) < 1e-15)
        #expect(abs(SampleComparison.mannWhitneyP(high, low) - 2.0 / 48620) < 1e-15)
        // Interleaved sets are not different.
        #expect(SampleComparison.mannWhitneyP([1, 3, 5, 7, 9], [2, 4, 6, 8, 10]) > 0.5)
    }

    /// With ties the normal approximation is used: identical sets give p = 1, separated sets with ties a small p.
    @Test func tiesUseTheNormalApproximation() {
        #expect(SampleComparison.mannWhitneyP([1, 1, 1, 1], [1, 1, 1, 1]) == 1)
        // One value a side is never evidence, however many the other side has.
        #expect(SampleComparison.mannWhitneyP([100], (1...60).map(Double.init)) == 1)
        let p = SampleComparison.mannWhitneyP([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], [6, 6, 7, 7, 8, 8, 9, 9, 10, 10])
        #expect(p < 0.001 && p > 0)
    }

    static func noisy(_ center: Double, _ count: Int, seed: UInt64) -> [Double] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in center * (1 + (Double(generator.next() % 1000) / 1000 - 0.5) * 0.02) }
    }

    /// 20% slower with 1% noise: a regression whose interval holds the ratio; 3% slower: significant but within
    /// the 5% tolerance, no regression; 20% faster: an improvement; the same: unchanged.
    @Test func verdictNeedsBothRatioAndSignificance() throws {
        let base = Self.noisy(1.0, 9, seed: 1)
        let slower = try SampleComparison(head: Self.noisy(1.2, 9, seed: 2), base: base)
        #expect(slower.verdict == .regression)
        #expect(slower.interval.contains(slower.ratio) && slower.interval.lowerBound > 1.1)
        #expect(slower.pValue < 0.001)
        let slightly = try SampleComparison(head: Self.noisy(1.03, 9, seed: 3), base: base)
        #expect(slightly.pValue < 0.01 && slightly.verdict == .unchanged)
        #expect(try SampleComparison(head: Self.noisy(1 / 1.2, 9, seed: 4), base: base).verdict == .improvement)
        #expect(try SampleComparison(head: Self.noisy(1.0, 9, seed: 5), base: base).verdict == .unchanged)
        // A large ratio that is chance: two values a side cannot reach p < 0.01.
        #expect(try SampleComparison(head: [2, 2.1], base: [1, 1.1]).verdict == .unchanged)
    }

    @Test func refusesValuesThatCannotBeTimes() {
        #expect(throws: ComparisonError.self) { try SampleComparison(head: [], base: [1]) }
        #expect(throws: ComparisonError.self) { try SampleComparison(head: [1, .nan], base: [1]) }
        #expect(throws: ComparisonError.self) { try SampleComparison(head: [1], base: [0]) }
    }
}

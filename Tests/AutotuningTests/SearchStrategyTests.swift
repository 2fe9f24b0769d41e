import Autotuning
import Foundation
import Testing

/// Strategies on a synthetic space whose optimum is known: four parameters, a constraint, a
/// landscape with interactions and a failing region.
@Suite struct SearchStrategyTests {
    static let space = SearchSpace(
        variant: "synthetic",
        parameters: [Parameter("A", Array(0..<10)), Parameter("B", Array(0..<10)), Parameter("C", Array(0..<10)), Parameter("D", [1, 2, 4, 8])],
        constraints: [Constraint("(A + B) % 4 != 3", ["A", "B"]) { ($0["A"]! + $0["B"]!) % 4 != 3 }]
    )

    /// Seconds of a configuration: the optimum is A=7 B=2 C=5 D=4 (1 ms); C's best value depends on D,
    /// and C=0 fails.
    static func objective(_ c: Configuration) -> EvaluationOutcome {
        let (a, b, cc, d) = (Double(c["A"]!), Double(c["B"]!), c["C"]!, c["D"]!)
        if cc == 0 { return .failed("C=0 fails") }
        let cBest = d == 4 ? 5.0 : 3.0
        let penalty = 0.02 * (a - 7) * (a - 7) + 0.03 * (b - 2) * (b - 2) + 0.05 * abs(Double(cc) - cBest) + (d == 4 ? 0 : 0.15)
        return .seconds(0.001 * (1 + penalty))
    }

    static let optimum = 0.001

    static func session(seed: UInt64, budget: Int, seconds: Double? = nil, known: [Candidate: EvaluationOutcome] = [:],
                        calls: Counter? = nil) -> SearchSession {
        let tuning = TuningSpace(searchSpaces: [space])
        return SearchSession(space: tuning, seed: seed, budget: TuningBudget(evaluations: budget, seconds: seconds), known: known) { candidate in
            calls?.add()
            return objective(tuning.configuration(candidate)!)
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func add() { lock.withLock { value += 1 } }
        var count: Int { lock.withLock { value } }
    }

    @Test func theSyntheticOptimumIsValidAndBest() {
        let all = Self.space.enumerate()
        let invalidPairs = (0..<10).flatMap { a in (0..<10).map { b in (a + b) % 4 } }.filter { $0 == 3 }.count
        #expect(all.count == (100 - invalidPairs) * 40)
        let best = all.compactMap { Self.objective($0).seconds }.min()
        #expect(best == Self.optimum)
    }

    @Test(arguments: StrategyKind.allCases)
    func strategiesFindTheOptimumOrComeClose(kind: StrategyKind) throws {
        var fractions: [Double] = []
        for seed in UInt64(1)...9 {
            let calls = Counter()
            let session = Self.session(seed: seed, budget: 150, calls: calls)
            try runSearch(kind.make(), in: session)
            #expect(session.evaluations == 150, "\(kind) evaluated \(session.evaluations) of 150")
            #expect(calls.count == session.evaluations, "\(kind) measured a candidate twice")
            fractions.append(Self.optimum / (session.best?.seconds ?? .infinity))
        }
        let result = median(fractions)
        // Random search reaches about 0.9 here; guided strategies must do better, and the local ones
        // find the optimum itself.
        let required: Double = switch kind {
        case .random: 0.8
        case .rl: 0.9
        default: 0.999
        }
        #expect(result >= required, "\(kind): median fraction of optimum \(result) < \(required); runs \(fractions)")
    }

    @Test(arguments: StrategyKind.allCases)
    func aSeedReproducesTheRun(kind: StrategyKind) throws {
        func run(_ seed: UInt64) throws -> [Candidate] {
            let session = Self.session(seed: seed, budget: 60)
            try runSearch(kind.make(), in: session)
            return session.records.map(\.candidate)
        }
        let first = try run(5)
        #expect(first == (try run(5)))
        #expect(first != (try run(6)))
    }

    @Test func aResumedRunFollowsTheSamePathAndMeasuresOnlyTheRest() throws {
        let full = Self.session(seed: 11, budget: 80)
        try runSearch(EvolutionarySearch(), in: full)
        // The first 50 evaluations were journaled before the run was killed.
        let journaled = Dictionary(uniqueKeysWithValues: full.records.prefix(50).map { record in
            (record.candidate, full.results[record.candidate]!)
        })
        let calls = Counter()
        let resumed = Self.session(seed: 11, budget: 80, known: journaled, calls: calls)
        try runSearch(EvolutionarySearch(), in: resumed)
        #expect(resumed.records.map(\.candidate) == full.records.map(\.candidate))
        #expect(calls.count == 30)
        #expect(resumed.records.filter(\.fromJournal).count == 50)
    }

    @Test func aWallClockBudgetEndsTheRun() throws {
        let tuning = TuningSpace(searchSpaces: [Self.space])
        let session = SearchSession(space: tuning, seed: 1, budget: TuningBudget(evaluations: 1000, seconds: 0.3)) { candidate in
            Thread.sleep(forTimeInterval: 0.02)
            return Self.objective(tuning.configuration(candidate)!)
        }
        let start = Date()
        try runSearch(RandomSearch(), in: session)
        #expect(session.evaluations < 100)
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test func initialCandidatesComeFirstAndATinySpaceEnds() throws {
        let tiny = SearchSpace(variant: "tiny", parameters: [Parameter("X", [1, 2, 3])], constraints: [])
        let tuning = TuningSpace(searchSpaces: [tiny])
        let session = SearchSession(space: tuning, seed: 1, budget: TuningBudget(evaluations: 50)) { candidate in
            .seconds(Double(tuning.configuration(candidate)!["X"]!))
        }
        let seed = tuning.candidate(Configuration(variant: "tiny", ["X": 2]))!
        try runSearch(BanditSearch(), in: session, initial: [seed])
        #expect(session.records.first?.candidate == seed)
        #expect(session.evaluations == 3)
        #expect(session.best?.seconds == 1)
    }

    @Test func neighboursStayValidAndDifferInOneParameter() {
        let tuning = TuningSpace(searchSpaces: [Self.space])
        var generator = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let candidate = tuning.random(using: &generator)!
            #expect(tuning.isValid(candidate))
            for neighbour in tuning.neighbours(of: candidate) {
                #expect(tuning.isValid(neighbour))
                #expect(zip(neighbour.indices, candidate.indices).filter { $0 != $1 }.count == 1)
            }
            for neighbour in tuning.adjacentNeighbours(of: candidate) {
                #expect(zip(neighbour.indices, candidate.indices).map { abs($0 - $1) }.reduce(0, +) == 1)
            }
        }
    }

    @Test func kernelTunerRowsRoundTripAcrossVariants() {
        let other = SearchSpace(variant: "other", parameters: [Parameter("A", [0, 11]), Parameter("E", [3, 5])], constraints: [])
        let tuning = TuningSpace(searchSpaces: [Self.space, other])
        let columns = tuning.kernelTunerColumns
        #expect(columns.names == ["variant", "A", "B", "C", "D", "E"])
        #expect(columns.values[1].contains("11") && columns.values[2].contains(TuningSpace.notApplicable))
        var generator = SplitMix64(seed: 9)
        for _ in 0..<40 {
            let candidate = tuning.random(using: &generator)!
            let row = tuning.kernelTunerLabels(candidate)
            #expect(tuning.candidate(kernelTunerLabels: row, names: columns.names) == candidate)
        }
    }
}

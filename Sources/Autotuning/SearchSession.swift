import Foundation

/// How much a tuning run may spend: a number of unique evaluations, a wall-clock limit, or both
/// (whichever ends first).
public struct TuningBudget: Sendable, Equatable {
    public var evaluations: Int
    public var seconds: Double?

    public init(evaluations: Int, seconds: Double? = nil) {
        self.evaluations = evaluations
        self.seconds = seconds
    }
}

/// Thrown by ``SearchSession/evaluate(_:)`` when the budget is spent; strategies let it propagate.
public struct BudgetSpent: Error, Sendable {}

/// One evaluation of a tuning run.
public struct EvaluationRecord: Sendable {
    public let candidate: Candidate
    /// The objective (seconds, lower is better), or nil when the candidate failed.
    public let value: Double?
    /// Why it failed, when it did.
    public let failure: String?
    /// 1-based number of unique evaluations so far.
    public let number: Int
    /// Whether the value came from earlier knowledge (a resumed journal) instead of a new measurement.
    public let fromJournal: Bool
    /// The best value after this evaluation.
    public let best: Double?
    /// The strategy (or bandit arm) that asked for it.
    public let strategy: String
}

/// The result of evaluating a candidate: seconds, or a failure with its reason.
public enum EvaluationOutcome: Sendable, Equatable {
    case seconds(Double)
    case failed(String)

    public var seconds: Double? { if case .seconds(let value) = self { return value } else { return nil } }
}

/// A tuning run in progress: the space, the seeded generator, every evaluation so far (each unique
/// candidate is measured at most once), the best, and the budget. Strategies call ``evaluate(_:)``.
public final class SearchSession {
    public let space: TuningSpace
    public var generator: SplitMix64
    public let budget: TuningBudget
    private let objective: (Candidate) throws -> EvaluationOutcome
    /// Results known before the run (a resumed journal): used instead of measuring, but they still
    /// count as evaluations of this run when visited, so a resumed run follows the same path.
    private var known: [Candidate: EvaluationOutcome]
    public private(set) var results: [Candidate: EvaluationOutcome] = [:]
    public private(set) var records: [EvaluationRecord] = []
    public private(set) var best: (candidate: Candidate, seconds: Double)?
    /// Best seconds after each evaluation (nil while nothing has succeeded).
    public private(set) var history: [Double?] = []
    /// The name recorded with each evaluation (the bandit sets it to the arm it runs).
    public var currentStrategy = ""
    public var onEvaluation: ((EvaluationRecord) -> Void)?
    private let start = Date()

    public init(space: TuningSpace, seed: UInt64, budget: TuningBudget, known: [Candidate: EvaluationOutcome] = [:],
                objective: @escaping (Candidate) throws -> EvaluationOutcome) {
        self.space = space
        self.generator = SplitMix64(seed: seed)
        self.budget = budget
        self.known = known
        self.objective = objective
    }

    public var evaluations: Int { results.count }
    public var remaining: Int { max(0, budget.evaluations - results.count) }
    public var isSpent: Bool {
        results.count >= budget.evaluations || budget.seconds.map { Date().timeIntervalSince(start) >= $0 } ?? false
    }

    /// The value of a candidate already evaluated in this run: `.some(nil)` for a failure, nil if unseen.
    public func value(of candidate: Candidate) -> Double?? {
        results[candidate].map { $0.seconds }
    }

    public func isVisited(_ candidate: Candidate) -> Bool { results[candidate] != nil }

    /// Measures `candidate` (or returns its earlier result without cost). Throws ``BudgetSpent`` when
    /// a new evaluation is needed and the budget is spent; an objective error ends the run.
    @discardableResult
    public func evaluate(_ candidate: Candidate) throws -> Double? {
        if let earlier = results[candidate] { return earlier.seconds }
        if isSpent { throw BudgetSpent() }
        let fromJournal = known[candidate] != nil
        let outcome = try known.removeValue(forKey: candidate) ?? objective(candidate)
        results[candidate] = outcome
        if let seconds = outcome.seconds, best == nil || seconds < best!.seconds { best = (candidate, seconds) }
        history.append(best?.seconds)
        var failure: String?
        if case .failed(let reason) = outcome { failure = reason }
        let record = EvaluationRecord(candidate: candidate, value: outcome.seconds, failure: failure, number: results.count,
                                      fromJournal: fromJournal, best: best?.seconds, strategy: currentStrategy)
        records.append(record)
        onEvaluation?(record)
        return outcome.seconds
    }

    /// A random valid candidate not yet evaluated (or any random one after many misses).
    public func randomUnvisited() -> Candidate? {
        var fallback: Candidate?
        for _ in 0..<200 {
            guard let candidate = space.random(using: &generator) else { return nil }
            if !isVisited(candidate) { return candidate }
            fallback = candidate
        }
        return fallback
    }
}

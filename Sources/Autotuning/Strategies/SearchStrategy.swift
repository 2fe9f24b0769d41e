/// A search strategy: called step by step on a shared ``SearchSession`` until the budget is spent.
/// A step does a small unit of work (a handful of evaluations) so that the ``BanditSearch`` can share
/// the budget among strategies. All randomness comes from the session's seeded generator.
public protocol SearchStrategy: AnyObject {
    var name: String { get }
    func step(_ session: SearchSession) throws
}

/// The strategies `autotune tune` and `autotune replay` offer.
public enum StrategyKind: String, CaseIterable, Sendable, Codable {
    case random
    case local
    case evolutionary
    case rl
    case annealing
    case bandit

    public func make() -> any SearchStrategy {
        switch self {
        case .random: RandomSearch()
        case .local: IteratedLocalSearch()
        case .evolutionary: EvolutionarySearch()
        case .rl: PolicyGradientSearch()
        case .annealing: SimulatedAnnealing()
        case .bandit: BanditSearch()
        }
    }
}

/// Runs `strategy` until the session's budget is spent or the space holds nothing new.
public func runSearch(_ strategy: any SearchStrategy, in session: SearchSession, initial: [Candidate] = []) throws {
    session.currentStrategy = "initial"
    do {
        for candidate in initial where session.space.isValid(candidate) { try session.evaluate(candidate) }
        var idleSteps = 0
        while !session.isSpent {
            let before = session.evaluations
            session.currentStrategy = strategy.name
            try strategy.step(session)
            idleSteps = session.evaluations == before ? idleSteps + 1 : 0
            if idleSteps >= 500 { break }  // every reachable candidate has been seen
        }
    } catch is BudgetSpent {}
}

/// Uniform random sampling without repetition.
public final class RandomSearch: SearchStrategy {
    public let name = "random"
    public init() {}
    public func step(_ session: SearchSession) throws {
        if let candidate = session.randomUnvisited() { try session.evaluate(candidate) }
    }
}

/// A first-improvement hill climb that can be advanced a few evaluations at a time: from the current
/// point, neighbours (one parameter changed to any value) are tried in random order, known better
/// ones first; the climb moves to the first better one and ends at a local optimum.
struct HillClimb {
    private(set) var current: Candidate
    private(set) var currentValue: Double
    private var queue: [Candidate] = []
    private(set) var isAtOptimum = false

    init(from start: Candidate, value: Double, session: SearchSession) {
        current = start
        currentValue = value
        refill(session)
    }

    private mutating func refill(_ session: SearchSession) {
        var unknown: [Candidate] = []
        var betterKnown: [(Candidate, Double)] = []
        for neighbour in session.space.neighbours(of: current) {
            switch session.value(of: neighbour) {
            case .none: unknown.append(neighbour)
            case .some(.some(let value)) where value < currentValue: betterKnown.append((neighbour, value))
            default: break
            }
        }
        unknown.shuffle(using: &session.generator)
        // The queue is consumed from the end: best known first, then unknown in random order.
        queue = unknown + betterKnown.sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// Evaluates up to `limit` new neighbours (known ones are free); returns how many it used.
    @discardableResult
    mutating func advance(_ session: SearchSession, limit: Int) throws -> Int {
        var used = 0
        while used < limit, !isAtOptimum {
            guard let next = queue.popLast() else { isAtOptimum = true; break }
            let wasKnown = session.isVisited(next)
            let value = try session.evaluate(next)
            if !wasKnown { used += 1 }
            if let value, value < currentValue {
                current = next
                currentValue = value
                refill(session)
            }
        }
        return used
    }
}

/// Iterated local search: hill climbs; each ends at a local optimum, and the next starts either from
/// a random point or from a kick (two or three random moves) away from the best optimum found.
public final class IteratedLocalSearch: SearchStrategy {
    public let name: String
    let restartProbability: Double
    private var climb: HillClimb?
    private var incumbent: (candidate: Candidate, value: Double)?
    private var started = false

    public init(name: String = "local", restartProbability: Double = 0.5) {
        self.name = name
        self.restartProbability = restartProbability
    }

    public func step(_ session: SearchSession) throws {
        if var current = climb {
            try current.advance(session, limit: 8)
            climb = current
            if current.isAtOptimum {
                if incumbent == nil || current.currentValue < incumbent!.value { incumbent = (current.current, current.currentValue) }
                climb = nil
            }
            return
        }
        // Start a new climb: from the session's best on the first step (initial or transferred
        // candidates), then from a kick of the incumbent or a random restart.
        var start: Candidate?
        if !started, let best = session.best {
            start = best.candidate
        } else if let incumbent, Double.random(in: 0..<1, using: &session.generator) >= restartProbability {
            var point = incumbent.candidate
            for _ in 0..<Int.random(in: 2...3, using: &session.generator) {
                point = session.space.randomNeighbour(of: point, adjacentProbability: 0, using: &session.generator) ?? point
            }
            start = point
        } else {
            start = session.randomUnvisited()
        }
        started = true
        guard let start, let value = try session.evaluate(start) else { return }
        climb = HillClimb(from: start, value: value, session: session)
    }
}

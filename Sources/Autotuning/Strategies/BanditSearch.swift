import Foundation

/// A bandit over strategies: each step runs one step of one arm, chosen by UCB1 on the arm's recent
/// success, the improvement of the run's best log time per evaluation over its last few plays.
/// All arms share the session, so each sees what the others measured.
public final class BanditSearch: SearchStrategy {
    public let name = "bandit"
    let arms: [any SearchStrategy]
    let window: Int
    private var plays: [[(gain: Double, cost: Int)]]
    private var totalPlays = 0

    public init(arms: [any SearchStrategy] = [IteratedLocalSearch(), EvolutionarySearch()],
                window: Int = 4) {
        self.arms = arms
        self.window = window
        plays = arms.map { _ in [] }
    }

    private func rate(_ arm: Int) -> Double {
        let recent = plays[arm].suffix(window)
        let cost = recent.reduce(0) { $0 + $1.cost }
        return cost == 0 ? 0 : recent.reduce(0) { $0 + $1.gain } / Double(cost)
    }

    public func step(_ session: SearchSession) throws {
        let arm: Int
        if let unplayed = plays.firstIndex(where: \.isEmpty) {
            arm = unplayed
        } else {
            let rates = arms.indices.map(rate)
            let scale = max(rates.max() ?? 0, 1e-3)
            arm = arms.indices.max { a, b in
                let ua = rates[a] + scale * sqrt(2 * log(Double(totalPlays)) / Double(plays[a].count))
                let ub = rates[b] + scale * sqrt(2 * log(Double(totalPlays)) / Double(plays[b].count))
                return ua < ub
            }!
        }
        let before = session.best?.seconds
        let evaluations = session.evaluations
        session.currentStrategy = arms[arm].name
        defer {
            let after = session.best?.seconds
            let gain = switch (before, after) {
            case (.some(let b), .some(let a)): max(0, log(b) - log(a))
            case (.none, .some): 1.0
            default: 0.0
            }
            plays[arm].append((gain, max(1, session.evaluations - evaluations)))
            totalPlays += 1
            session.currentStrategy = name
        }
        try arms[arm].step(session)
    }
}

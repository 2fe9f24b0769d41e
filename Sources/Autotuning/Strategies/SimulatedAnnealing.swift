import Foundation

/// Simulated annealing on log time: a random neighbour (adjacent or any value) is accepted when it is
/// faster, or when slower with probability exp(-Δlog t / T); T cools geometrically from `t0` to
/// `t0 / 100` over the budget. Failed candidates are rejected. When the chain finds no unseen
/// neighbour it restarts from the best point found.
public final class SimulatedAnnealing: SearchStrategy {
    public let name = "annealing"
    let t0: Double
    private var current: (candidate: Candidate, value: Double)?

    public init(t0: Double = 0.3) { self.t0 = t0 }

    public func step(_ session: SearchSession) throws {
        guard let state = current else {
            if let best = session.best { current = (best.candidate, best.seconds); return }
            if let candidate = session.randomUnvisited(), let value = try session.evaluate(candidate) { current = (candidate, value) }
            return
        }
        for _ in 0..<8 {
            let state = current ?? state
            var proposal: Candidate?
            for _ in 0..<10 {
                guard let move = session.space.randomNeighbour(of: state.candidate, using: &session.generator) else { break }
                if !session.isVisited(move) { proposal = move; break }
            }
            guard let proposal else {
                if let best = session.best { current = (best.candidate, best.seconds) }
                if let candidate = session.randomUnvisited(), let value = try session.evaluate(candidate), value < (current?.value ?? .infinity) {
                    current = (candidate, value)
                }
                return
            }
            guard let value = try session.evaluate(proposal) else { continue }
            let progress = min(1, Double(session.evaluations) / Double(max(session.budget.evaluations, 1)))
            let temperature = t0 * pow(0.01, progress)
            let delta = log(value) - log(state.value)
            if delta <= 0 || Double.random(in: 0..<1, using: &session.generator) < exp(-delta / temperature) {
                current = (proposal, value)
            }
        }
    }
}

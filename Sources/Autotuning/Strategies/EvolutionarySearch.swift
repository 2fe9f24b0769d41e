/// A steady generational genetic algorithm with local improvement of new champions (memetic):
/// tournament selection, uniform crossover between parents of the same variant, constraint-aware
/// mutation (a child that breaks a constraint is repaired by random valid moves), elitism (the
/// population is the best `populationSize` distinct candidates seen by it), and a hill climb from
/// each new best so that good regions are exploited before the population moves on.
public final class EvolutionarySearch: SearchStrategy {
    public let name = "evolutionary"
    let populationSize: Int
    let tournamentSize: Int
    private var population: [(candidate: Candidate, value: Double)] = []
    private var initialized = false
    private var climb: HillClimb?
    private var championValue = Double.infinity

    public init(populationSize: Int = 16, tournamentSize: Int = 3) {
        self.populationSize = populationSize
        self.tournamentSize = tournamentSize
    }

    public func step(_ session: SearchSession) throws {
        if var current = climb {
            try current.advance(session, limit: 8)
            climb = current.isAtOptimum ? nil : current
            admit(current.current, current.currentValue)
            return
        }
        if !initialized {
            initialized = true
            // Start from what the session knows (initial or transferred candidates), then random.
            for (candidate, outcome) in session.results { if let value = outcome.seconds { admit(candidate, value) } }
            for _ in 0..<(2 * populationSize) where population.count < populationSize {
                guard let candidate = session.randomUnvisited(), !session.isVisited(candidate) else { break }
                if let value = try session.evaluate(candidate) { admit(candidate, value) }
            }
            return
        }
        guard !population.isEmpty else {
            if let candidate = session.randomUnvisited(), let value = try session.evaluate(candidate) { admit(candidate, value) }
            return
        }
        for _ in 0..<max(2, populationSize / 2) {
            let child = makeChild(session)
            if let value = try session.evaluate(child) { admit(child, value) }
        }
        if let best = population.first, best.value < championValue {
            championValue = best.value
            climb = HillClimb(from: best.candidate, value: best.value, session: session)
        }
    }

    private func admit(_ candidate: Candidate, _ value: Double) {
        guard !population.contains(where: { $0.candidate == candidate }) else { return }
        population.append((candidate, value))
        population.sort { $0.value < $1.value }
        if population.count > populationSize { population.removeLast(population.count - populationSize) }
    }

    private func select(_ session: SearchSession) -> Candidate {
        var winner = Int.random(in: population.indices, using: &session.generator)
        for _ in 1..<tournamentSize {
            let challenger = Int.random(in: population.indices, using: &session.generator)
            if population[challenger].value < population[winner].value { winner = challenger }
        }
        return population[winner].candidate
    }

    private func makeChild(_ session: SearchSession) -> Candidate {
        let space = session.space
        for _ in 0..<20 {
            let first = select(session), second = select(session)
            var child = first
            if first.variant == second.variant {
                for dimension in child.indices.indices where Bool.random(using: &session.generator) {
                    child.indices[dimension] = second.indices[dimension]
                }
            }
            // Mutation: each dimension with probability 1/D moves to an adjacent or a random value.
            let sizes = space.variants[child.variant].dimensionSizes
            for dimension in child.indices.indices where sizes[dimension] > 1
                && Double.random(in: 0..<1, using: &session.generator) < 1 / Double(sizes.count) {
                if Bool.random(using: &session.generator) {
                    let step = Bool.random(using: &session.generator) ? 1 : -1
                    child.indices[dimension] = min(max(child.indices[dimension] + step, 0), sizes[dimension] - 1)
                } else {
                    child.indices[dimension] = Int.random(in: 0..<sizes[dimension], using: &session.generator)
                }
            }
            // Repair: an invalid or already seen child takes random valid moves from its first parent.
            var attempts = 0
            while (!space.isValid(child) || session.isVisited(child)) && attempts < 8 {
                child = space.randomNeighbour(of: attempts == 0 ? first : child, using: &session.generator) ?? first
                attempts += 1
            }
            if space.isValid(child) && !session.isVisited(child) { return child }
        }
        return session.randomUnvisited() ?? population[0].candidate
    }
}

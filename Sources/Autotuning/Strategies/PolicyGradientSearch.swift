import Foundation

/// Reinforcement learning: a policy of independent categorical distributions (one per variant, and
/// one per dimension of each variant) sampled in batches and trained by REINFORCE with a baseline.
/// The reward is -log(time); a failed candidate gets the worst reward seen minus one. Advantages
/// are normalized per batch; invalid samples are redrawn (rejection), so only valid candidates are
/// measured.
public final class PolicyGradientSearch: SearchStrategy {
    public let name = "rl"
    let batchSize: Int
    let learningRate: Double
    private var variantLogits: [Double] = []
    private var logits: [[[Double]]] = []
    private var worstReward = 0.0

    public init(batchSize: Int = 8, learningRate: Double = 0.8) {
        self.batchSize = batchSize
        self.learningRate = learningRate
    }

    private static func probabilities(_ logits: [Double]) -> [Double] {
        let top = logits.max() ?? 0
        let weights = logits.map { exp($0 - top) }
        let total = weights.reduce(0, +)
        return weights.map { $0 / total }
    }

    private static func sample(_ probabilities: [Double], _ generator: inout SplitMix64) -> Int {
        var u = Double.random(in: 0..<1, using: &generator)
        for (index, p) in probabilities.enumerated() {
            u -= p
            if u < 0 { return index }
        }
        return probabilities.count - 1
    }

    private func draw(_ session: SearchSession) -> Candidate {
        let space = session.space
        for _ in 0..<200 {
            let variant = Self.sample(Self.probabilities(variantLogits), &session.generator)
            let indices = logits[variant].map { Self.sample(Self.probabilities($0), &session.generator) }
            let candidate = Candidate(variant: variant, indices: indices)
            if space.isValid(candidate) && !session.isVisited(candidate) { return candidate }
        }
        return session.randomUnvisited() ?? Candidate(variant: 0, indices: logits[0].map { _ in 0 })
    }

    public func step(_ session: SearchSession) throws {
        let space = session.space
        if logits.isEmpty {
            variantLogits = [Double](repeating: 0, count: space.variants.count)
            logits = space.variants.map { $0.dimensionSizes.map { [Double](repeating: 0, count: $0) } }
        }
        var batch: [(Candidate, Double?)] = []
        for _ in 0..<batchSize {
            let candidate = draw(session)
            let value: Double?
            do { value = try session.evaluate(candidate) } catch let spent as BudgetSpent {
                if batch.count > 1 { update(batch) }
                throw spent
            }
            batch.append((candidate, value))
        }
        update(batch)
    }

    private func update(_ batch: [(Candidate, Double?)]) {
        let rewards = batch.map { $0.1.map { -log($0) } }
        let succeeded = rewards.compactMap { $0 }
        if let low = succeeded.min() { worstReward = min(worstReward == 0 ? low : worstReward, low) }
        let filled = rewards.map { $0 ?? (worstReward - 1) }
        let mean = filled.reduce(0, +) / Double(filled.count)
        let spread = sqrt(filled.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(filled.count))
        guard spread > 1e-12 else { return }
        for ((candidate, _), reward) in zip(batch, filled) {
            let advantage = (reward - mean) / spread
            let step = learningRate * advantage / Double(batch.count)
            let variantP = Self.probabilities(variantLogits)
            for index in variantLogits.indices { variantLogits[index] += step * ((index == candidate.variant ? 1 : 0) - variantP[index]) }
            for (dimension, chosen) in candidate.indices.enumerated() {
                let p = Self.probabilities(logits[candidate.variant][dimension])
                for value in p.indices { logits[candidate.variant][dimension][value] += step * ((value == chosen ? 1 : 0) - p[value]) }
            }
        }
    }
}

/// Calls `body` with every index of `0..<count`, `rounds` times, starting each round one index later
/// (plus `shift`), so that on a machine whose speed drifts no candidate is always timed first or last.
public func forEachInterleaved(count: Int, rounds: Int, shift: Int = 0, _ body: (_ index: Int, _ round: Int) throws -> Void) rethrows {
    guard count > 0 else { return }
    for round in 0..<rounds {
        for offset in 0..<count { try body((offset + round + shift) % count, round) }
    }
}

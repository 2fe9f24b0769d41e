import Autotuning
import Foundation
import Testing

/// Replay on the recorded spaces in ../shared/tuning-spaces (skipped when they are absent).
@Suite struct ReplayTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/tuning-spaces").path

    static func replay(_ name: String) throws -> Replay? {
        let path = folder + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try Replay(cache: KernelTunerCache.read(path: path))
    }

    @Test func exactRandomSearchMatchesSimulatedRandomSearch() throws {
        guard let replay = try Self.replay("convolution_A4000.json.gz") else { return }
        let runs = replay.run(.random, budget: 100, seeds: 201)
        for budget in [10, 50, 100] {
            let simulated = median(runs.bestTimes(at: budget).map(replay.fraction))
            let exact = replay.fraction(replay.randomSearch(draws: budget).median)
            #expect(abs(simulated - exact) < 0.03, "at \(budget): simulated \(simulated), exact \(exact)")
        }
        #expect(abs(replay.score(runs, budget: 100)) < 0.1)
    }

    @Test(arguments: ["gemm_RTX_3090.json.gz", "convolution_A4000.json.gz", "dedispersion_A4000.json.gz"])
    func evolutionarySearchBeatsRandomSearch(file: String) throws {
        guard let replay = try Self.replay(file) else { return }
        let runs = replay.run(.evolutionary, budget: 200, seeds: 25)
        let atBudget = median(runs.bestTimes(at: 200).map(replay.fraction))
        let random = replay.fraction(replay.randomSearch(draws: 200).median)
        #expect(atBudget >= 0.99, "\(file): median fraction \(atBudget) at 200")
        #expect(atBudget > random || random > 0.99)
        #expect(replay.score(runs, budget: 200) > 0.3)
    }

    @Test func recordedFailuresCostAnEvaluationAndFindNothing() throws {
        guard let replay = try Self.replay("convolution_A4000.json.gz") else { return }
        let failed = replay.space.points.indices.filter { replay.space.seconds[$0] == nil }
        #expect(failed.count == 161)
        #expect(replay.space.outcome(replay.space.points[failed[0]]) == .failed("recorded as failed"))
    }
}

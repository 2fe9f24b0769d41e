import Testing
@testable import TunedKernels

/// Baselines registered for a family by a program that links another library reach that family's `bench`,
/// typed by the family's harness and problem, and no other family's.
@Suite struct BaselineRegistryTests {
    @Test func registeredBaselinesReachTheirFamilyOnly() throws {
        let gemm = try #require(Shared.gemm)
        let problem = GEMMProblem(m: 3, n: 4, k: 5, precision: .single)
        let harness = try gemm.harness(problem, seed: 1)
        BaselineRegistry.register(GEMM.self, name: "registry-test") { harness, problem in
            [Baseline(name: "registry-test-\(problem.m)x\(harness.problem.n)") { _ in Baseline.Result(seconds: 1, check: nil) }]
        }
        BaselineRegistry.register(GEMM.self, name: "registry-test") { _, _ in
            [Baseline(name: "registry-test-replaced") { _ in Baseline.Result(seconds: 1, check: nil) }]
        }
        #expect(BaselineRegistry.baselines(for: GEMM.self, harness: harness, problem: problem).map(\.name) == ["registry-test-replaced"])
        let cce = try #require(CutCrossEntropyTests.cce)
        let cceProblem = CCEProblem(tokens: 3, vocab: 5, dim: 2, precision: .single)
        let cceHarness = try cce.harness(cceProblem, seed: 1)
        #expect(BaselineRegistry.baselines(for: CutCrossEntropy.self, harness: cceHarness, problem: cceProblem).isEmpty)
    }
}

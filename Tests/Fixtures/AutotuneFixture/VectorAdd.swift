import Autotuning
import OpenCLRuntime
import TunedKernels

/// `c = a + b` on fp32 vectors: the smallest family there is, with a search space, a CPU reference and a baseline.
final class VectorAdd: KernelFamily, @unchecked Sendable {
    struct Problem: TabulatedProblem, Hashable, CustomStringConvertible {
        var n: Int
        static let table = ProblemTable(defaults: Problem(n: 1)) { $0.integer("n", \.n, help: "Vector length.", required: true, primary: true) }
        var description: String { "n=\(n)" }
    }

    let core: FamilyCore
    init(core: FamilyCore) { self.core = core }

    static let name = "vadd"
    static let summary = "c = a + b on fp32 vectors (a test fixture)"
    static let roles = [KernelRole("vadd", variants: ["vadd"], summary: "the sum")]
    static let conformanceProblems = [Problem(n: 37)]

    /// Each work-item adds WPT runs of VW elements; every access is guarded.
    static func kernelSource() throws -> String {
        """
        __kernel void vadd(const int n, const __global float* a, const __global float* b, __global float* c) {
            const int first = (int)get_global_id(0) * WPT * VW;
            for (int w = 0; w < WPT; ++w) {
                for (int v = 0; v < VW; ++v) {
                    const int i = first + w * VW + v;
                    if (i < n) c[i] = a[i] + b[i];
                }
            }
        }
        """
    }

    static func key(_ problem: Problem) -> TuningKey { TuningKey(kernel: name, sizes: [problem.n]) }
    static func work(_ problem: Problem) -> Work { Work(flops: Double(problem.n), bytes: 12 * Double(problem.n)) }

    static func needs(_ problem: Problem) throws -> ResourceNeeds {
        try Checked.sizes(["n": problem.n], maximum: Int(Int32.max) / 64, family: name)
        let bytes = try Checked.product(problem.n, 4, what: "a vector")
        return ResourceNeeds(deviceBuffers: [bytes, bytes, bytes], hostBytes: try Checked.product(bytes, 5, what: "the host vectors"))
    }

    func spaces(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace] {
        let parameters = [Parameter("VW", [1, 2, 4, 8]), Parameter("WPT", [1, 2, 4]), Parameter("LOCAL", [1, 8, 32, 64])]
        return [SearchSpace(variant: "vadd", parameters: parameters,
                            constraints: limits.workGroupConstraints(["LOCAL"]) { ($0["LOCAL"]!, 1) })]
    }

    func defaults(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [Configuration] {
        [Configuration(variant: "vadd", ["VW": 4, "WPT": 1, "LOCAL": 8]), Configuration(variant: "vadd", ["VW": 1, "WPT": 1, "LOCAL": 1])]
    }

    func harness(_ problem: Problem, seed: UInt64) throws -> Harness { try Harness(family: self, problem: problem, seed: seed) }

    final class Harness: KernelHarness {
        let family: VectorAdd
        let problem: Problem
        let hostA: [Float], hostB: [Float], reference: [Float]
        let a: DeviceBuffer<Float>, b: DeviceBuffer<Float>, c: DeviceBuffer<Float>
        var context: Context { family.context }
        var work: Work { VectorAdd.work(problem) }

        init(family: VectorAdd, problem: Problem, seed: UInt64) throws {
            try family.check(problem)
            self.family = family
            self.problem = problem
            var generator = SplitMix64(seed: seed)
            hostA = (0..<problem.n).map { _ in Float.random(in: -1...1, using: &generator) }
            hostB = (0..<problem.n).map { _ in Float.random(in: -1...1, using: &generator) }
            reference = zip(hostA, hostB).map { $0 + $1 }
            a = try DeviceBuffer(family.context, hostA)
            b = try DeviceBuffer(family.context, hostB)
            c = try DeviceBuffer(family.context, count: problem.n)
        }

        func reset() throws { try c.fill(.nan) }

        func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch {
            let (configuration, source) = try family.resolve(try family.onlyConfiguration(configurations), for: problem)
            let v = configuration.values
            let options = configuration.defines
            let perItem = v["WPT"]! * v["VW"]!
            let items = (problem.n + perItem - 1) / perItem
            let local = v["LOCAL"]!
            let event = try family.core.serialized {
                try family.core.kernel("vadd", options: options).launch(
                    on: context.queue, global: [(items + local - 1) / local * local], local: [local],
                    arguments: [Int32(problem.n), a, b, c])
            }
            return KernelLaunch(role: "vadd", configuration: configuration, source: source, events: [event])
        }

        /// Exact: one fp32 addition per element.
        func check() throws -> Check { Check(maxAbsError: Check.maxAbsError(try c.download(), reference), tolerance: 0) }

        func baselines() -> [Baseline] {
            [Baseline(name: "swift") { repetitions in
                var out = [Float](repeating: 0, count: self.problem.n)
                let seconds = Self.medianTime(repetitions: repetitions) { for i in out.indices { out[i] = self.hostA[i] + self.hostB[i] } }
                return Baseline.Result(seconds: seconds, check: Check(maxAbsError: Check.maxAbsError(out, self.reference), tolerance: 0))
            }]
        }
    }
}

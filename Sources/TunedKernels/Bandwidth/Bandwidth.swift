import Autotuning
import OpenCLRuntime

/// The device's streaming read bandwidth, measured by a tuned read kernel: the yardstick of memory-bound kernels
/// (`autotune bench bandwidth`). Every work-item reads a run of float vectors and each work-group writes one sum.
public final class Bandwidth: KernelFamily, @unchecked Sendable {
    /// How much is read.
    public struct Problem: TabulatedProblem, Hashable, CustomStringConvertible {
        /// Mebibytes read per call.
        public var megabytes: Int
        public init(megabytes: Int = 256) { self.megabytes = megabytes }
        public static let table = ProblemTable(defaults: Problem()) {
            $0.integer("megabytes", \.megabytes, help: "MiB read per call.", primary: true)
        }
        public var description: String { "\(megabytes) MiB" }
        /// Floats read per call.
        public var count: Int { megabytes * (1 << 18) }
    }

    public let core: FamilyCore
    public init(core: FamilyCore) { self.core = core }

    public static let name = "bandwidth"
    public static let summary = "the device's streaming read bandwidth (a tuned read-and-sum kernel)"
    public static let roles = [KernelRole("read", variants: ["read"], summary: "read and sum a buffer")]
    public static let conformanceProblems = [Problem(megabytes: 1)]
    public static let performanceCases = [PerformanceCase("256MiB", Problem(megabytes: 256), bound: .memory)]

    public static func key(_ problem: Problem) -> TuningKey { TuningKey(kernel: name, sizes: [problem.megabytes]) }
    public static func work(_ problem: Problem) -> Work { Work(flops: 0, bytes: Double(problem.megabytes) * 1_048_576) }

    public static func needs(_ problem: Problem) throws -> ResourceNeeds {
        try Checked.sizes(["megabytes": problem.megabytes], maximum: 1 << 20, family: name)
        let bytes = try Checked.product(problem.megabytes, 1 << 20, what: "the buffer")
        return ResourceNeeds(deviceBuffers: [bytes, bytes / 16], hostBytes: try Checked.product(bytes, 2, what: "the host copy"))
    }

    /// Reads of `VW` floats, `WPT` per work-item, contiguous (CPU-like) or interleaved (GPU-like), work-groups of
    /// `LOCAL`. `VW * WPT * LOCAL` divides every problem (a multiple of 2^18 floats).
    public func spaces(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace] {
        let parameters = [Parameter("VW", [1, 2, 4, 8, 16]), Parameter("WPT", [1, 4, 16, 64]),
                          Parameter("LOCAL", [1, 16, 64, 256]), Parameter("CONTIGUOUS", [0, 1])]
        let constraints = [
            Constraint("VW*WPT*LOCAL <= 2^18", ["VW", "WPT", "LOCAL"]) { $0["VW"]! * $0["WPT"]! * $0["LOCAL"]! <= 1 << 18 },
        ] + limits.workGroupConstraints(["LOCAL"]) { ($0["LOCAL"]!, 1) }
        return [SearchSpace(variant: "read", parameters: parameters, constraints: constraints)]
    }

    public func defaults(for problem: Problem, role: KernelRole, given: [String: Configuration]) -> [Configuration] {
        let cpu = Configuration(variant: "read", ["VW": 16, "WPT": 16, "LOCAL": 16, "CONTIGUOUS": 1])
        let gpu = Configuration(variant: "read", ["VW": 4, "WPT": 16, "LOCAL": 256, "CONTIGUOUS": 0])
        return (limits.kind == .cpu ? [cpu, gpu] : [gpu, cpu]) + [Configuration(variant: "read", ["VW": 1, "WPT": 1, "LOCAL": 1, "CONTIGUOUS": 1])]
    }

    public func harness(_ problem: Problem, seed: UInt64) throws -> BandwidthHarness {
        try BandwidthHarness(family: self, problem: problem, seed: seed)
    }

    /// Seconds of one streaming read of `bytes` bytes (at least 1 MiB) with the device's tuned read kernel: the
    /// time a kernel that only has to read that much cannot beat. Builds a harness of that size.
    public func streamingReadSeconds(bytes: Double, repetitions: Int = 5) throws -> Double {
        let problem = Problem(megabytes: max(1, Int((bytes / 1_048_576).rounded(.up))))
        let measured = try harness(problem, seed: 1).measure(nil, repetitions: repetitions, minimumSeconds: 0.02)
        guard measured.isCorrect else { throw ProblemError("bandwidth: the read kernel's sum is wrong (\(measured.check))") }
        return measured.seconds * bytes / Bandwidth.work(problem).bytes
    }
}

/// Small integers (exact sums in fp32) on the device and the host; the check compares the work-groups' sums
/// with the host's exact total.
public final class BandwidthHarness: KernelHarness {
    public let family: Bandwidth
    public let problem: Bandwidth.Problem
    let host: [Float]
    let total: Double
    let input: DeviceBuffer<Float>
    var partial: DeviceBuffer<Float>?
    public var context: Context { family.context }
    public var work: Work { Bandwidth.work(problem) }

    init(family: Bandwidth, problem: Bandwidth.Problem, seed: UInt64) throws {
        try family.check(problem)
        self.family = family
        self.problem = problem
        var generator = SplitMix64(seed: seed)
        // Values 0...3: a work-item sums at most 1024 of them, a group at most 256 work-items: below 2^24, exact.
        host = (0..<problem.count).map { _ in Float(generator.next() & 3) }
        total = host.reduce(0.0) { $0 + Double($1) }
        input = try DeviceBuffer(family.context, host)
    }

    public func reset() throws { try partial?.fill(.nan) }

    public func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch {
        let (configuration, source) = try family.resolve(try family.onlyConfiguration(configurations), for: problem)
        let v = configuration.values
        let items = problem.count / (v["VW"]! * v["WPT"]!)
        let groups = items / v["LOCAL"]!
        if partial == nil || partial!.count < groups {
            partial = try DeviceBuffer<Float>(context, count: groups)
            try partial!.fill(.nan)
        }
        let options = configuration.defines
        let event = try family.core.serialized {
            try family.core.kernel("read_sum", options: options).launch(on: context.queue, global: [items], local: [v["LOCAL"]!],
                                                                        arguments: [input, partial!])
        }
        lastGroups = groups
        return KernelLaunch(role: "read", configuration: configuration, source: source, events: [event])
    }

    private var lastGroups = 0

    /// Exact: the sums of small integers.
    public func check() throws -> Check {
        let sums = try partial.map { try $0.download(count: lastGroups) } ?? []
        let got = sums.reduce(0.0) { $0 + Double($1) }
        return Check(maxAbsError: got.isFinite && !sums.isEmpty ? abs(got - total) : .infinity, tolerance: 0)
    }

    /// The host reading the same data (a Swift loop over SIMD vectors), for comparison on a CPU device.
    public func baselines() -> [Baseline] {
        [Baseline(name: "host-read") { repetitions in
            var sum = 0.0
            let seconds = Self.medianTime(repetitions: repetitions) {
                sum = self.host.withUnsafeBufferPointer { buffer in
                    var acc = SIMD16<Float>()
                    let vectors = buffer.count / 16
                    buffer.baseAddress!.withMemoryRebound(to: SIMD16<Float>.self, capacity: vectors) { p in
                        for i in 0..<vectors { acc += p[i] }
                    }
                    return Double(acc.sum())
                }
            }
            return Baseline.Result(seconds: seconds, check: Check(maxAbsError: abs(sum - self.total), tolerance: Double(self.host.count) * 1e-7 * 3))
        }]
    }
}

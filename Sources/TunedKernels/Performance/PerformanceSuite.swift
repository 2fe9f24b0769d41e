import Autotuning
import Foundation
import OpenCLRuntime

/// What limits a benchmark's speed, and so which in-run reference normalizes it in a baseline.
public enum PerformanceBound: String, Sendable, Codable {
    /// Arithmetic: compared with our FMA-throughput kernel doing as many FLOPs (``ReferenceKernels``).
    case compute
    /// Memory traffic: compared with a streaming read of as many bytes.
    case memory
}

/// A benchmark of the performance suite: a representative problem of one role of a family
/// (``KernelFamily/performanceCases``).
public struct PerformanceCase<Problem: Sendable>: Sendable {
    /// Names the case within its family and role: `"1024x1024x1024-half"`, `"mid-filtered"`.
    public var label: String
    public var problem: Problem
    /// The role timed alone (the roles it depends on are run before, untimed); nil: the whole call (a family of
    /// one role).
    public var role: String?
    public var bound: PerformanceBound

    public init(_ label: String, _ problem: Problem, role: String? = nil, bound: PerformanceBound) {
        self.label = label
        self.problem = problem
        self.role = role
        self.bound = bound
    }
}

/// How the suite measures.
public struct SuiteOptions: Sendable {
    /// Timed calls per sample (more for a short kernel, until they add up to `minimumSeconds`).
    public var repetitions = 5
    /// Untimed calls after the first (which builds and checks).
    public var warmup = 2
    public var minimumSeconds = 0.05
    public var seed: UInt64 = 42
    /// Measure the in-run reference of each case right after it (the baseline check's yardstick).
    public var references = false
    /// Also run each case with every role's defaults and no tuning database, and check its result (a gate).
    public var checkDefaults = false
    public init() {}
}

/// One measurement of one case.
public struct SuiteSample: Sendable, Codable, Equatable {
    public var id: String
    /// Median device seconds (profiling events, first kernel's start to last kernel's end) of one call, or of the
    /// case's role alone.
    public var seconds: Double
    /// Median wall seconds of the same calls (enqueue to completion).
    public var wallSeconds: Double
    /// Kernels enqueued by one timed call.
    public var launches: Int
    public var flops: Double
    public var bytes: Double
    /// The configuration of every role that ran, and where it came from.
    public var configurations: [RoleChoice]
    /// Largest error against the family's CPU reference (nil when not finite).
    public var maxAbsError: Double?
    public var passed: Bool
    /// Seconds the in-run reference takes for the same work (FLOPs at our FMA kernel's rate, or a streaming read
    /// of the same bytes), when asked for.
    public var referenceSeconds: Double?
    /// Whether the case with every role's defaults (no tuning database) built and passed, when asked for.
    public var defaultsPassed: Bool?

    enum CodingKeys: String, CodingKey {
        case id, seconds, launches, flops, bytes, configurations, passed
        case wallSeconds = "wall_seconds", maxAbsError = "max_abs_error", referenceSeconds = "reference_seconds", defaultsPassed = "defaults_passed"
    }

    /// seconds / referenceSeconds: how many times the reference's time the case takes (the figure a baseline
    /// stores; it moves with the kernel, hardly with the machine's load or clock).
    public var relative: Double? { referenceSeconds.map { seconds / $0 } }
}

/// A case of the suite with its family's types erased: what the CLI lists, runs and compares.
public struct SuiteCase: Sendable {
    /// `gemm/1024x1024x1024-half`; with the role for a family of several: `cce/backward/mid-filtered`.
    public let id: String
    public let family: String
    /// The role timed alone (nil: the whole call).
    public let role: String?
    /// Its name within the family (the id without family and role).
    public let label: String
    public let bound: PerformanceBound
    /// The problem as its family's JSON (the `--problem` of every `autotune` subcommand).
    public let problem: String
    /// FLOPs and bytes of what is timed.
    public let work: Work
    let measure: @Sendable (_ context: Context, _ options: SuiteOptions) throws -> SuiteSample
}

extension KernelFamily {
    /// The family's cases as the suite runs them.
    public static var suiteCases: [SuiteCase] {
        performanceCases.map { entry in
            let roleName = roles.count > 1 ? (entry.role ?? roles.last!.name) : nil
            let role = roleName.flatMap(self.role(named:))
            let id = [name, roleName, entry.label].compactMap { $0 }.joined(separator: "/")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = (try? encoder.encode(entry.problem)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            let work = role.map { self.work(entry.problem, role: $0) } ?? self.work(entry.problem)
            return SuiteCase(id: id, family: name, role: roleName, label: entry.label, bound: entry.bound, problem: json, work: work) { context, options in
                try measureCase(entry.problem, id: id, role: roleName, context: context, options: options)
            }
        }
    }

    /// One sample of a case: the dispatcher's choices (tuning database of the device), a checked first call,
    /// warm-up, then the median of timed calls.
    static func measureCase(_ problem: Problem, id: String, role: String?, context: Context, options: SuiteOptions) throws -> SuiteSample {
        let family = try Self(context: context)
        try family.check(problem)
        let harness = try family.harness(problem, seed: options.seed)
        let measured = try harness.measure([], role: role, warmup: options.warmup, repetitions: options.repetitions,
                                           minimumSeconds: options.minimumSeconds)
        var sample = SuiteSample(id: id, seconds: measured.deviceSeconds, wallSeconds: measured.seconds, launches: measured.launches,
                                 flops: measured.work.flops, bytes: measured.work.bytes, configurations: measured.choices,
                                 maxAbsError: measured.maxAbsError.isFinite ? measured.maxAbsError : nil, passed: measured.isCorrect)
        if options.checkDefaults {
            let untuned = try Self(context: context, database: TuningDatabase())
            let defaults = try untuned.harness(problem, seed: options.seed).measure([], role: nil, warmup: 1, repetitions: 1)
            sample.defaultsPassed = defaults.isCorrect
        }
        return sample
    }
}

/// The performance suite: the cases every registered family declares, run in this process.
public enum PerformanceSuite {
    /// Every case of `families`, in registry order.
    public static func cases(_ families: [any KernelFamily.Type]) -> [SuiteCase] {
        families.flatMap { $0.suiteCases }
    }

    /// One sample of each of `cases` on `context`, in order; with ``SuiteOptions/references``, each followed by its
    /// in-run reference.
    public static func run(_ cases: [SuiteCase], context: Context, options: SuiteOptions,
                           progress: (String) -> Void = { _ in }) throws -> [SuiteSample] {
        let references = options.references ? try ReferenceKernels(context: context) : nil
        var samples: [SuiteSample] = []
        for entry in cases {
            var sample = try entry.measure(context, options)
            if let references {
                sample.referenceSeconds = try references.seconds(for: entry.work, bound: entry.bound)
            }
            progress("  \(entry.id): " + String(format: "%.4f ms", sample.seconds * 1000)
                     + (sample.relative.map { String(format: " (%.3f x the reference)", $0) } ?? "") + (sample.passed ? "" : " WRONG"))
            samples.append(sample)
        }
        return samples
    }
}

/// The suite's in-run yardsticks, untuned so that no change of a family or a tuning database moves them: our
/// FMA-throughput kernel (`Kernels/reference.cl`) for compute-bound cases, and the bandwidth family's read kernel
/// with its device-type default (not its tuned configuration) for memory-bound ones.
public final class ReferenceKernels {
    public let context: Context
    private let peak: Kernel
    private let output: DeviceBuffer<Float>
    private let items: Int
    private let bandwidth: Bandwidth
    private var readers: [Int: BandwidthHarness] = [:]

    /// - Parameter iterations: FMAs per chain of the throughput kernel (the default keeps a run near a millisecond on
    ///   a CPU; the oclgrind test uses a few).
    public init(context: Context, iterations: Int = 1024) throws {
        self.context = context
        let width = context.device.kind == .cpu ? 16 : 4
        let source = try KernelSources.program(files: ["reference.cl"])
        peak = try context.programs.program(context, source: source, options: "-DVW=\(width)").kernel(named: "fma_peak")
        self.width = width
        self.iterations = Int32(clamping: max(1, iterations))
        items = max(1, context.device.computeUnits) * (context.device.kind == .cpu ? 256 : 2048)
        output = try DeviceBuffer<Float>(context, count: items)
        bandwidth = try Bandwidth(context: context, database: TuningDatabase())
        expected = Self.expectedSums(items: items, iterations: Int(self.iterations), scale: Self.scale, width: width)
    }

    private let width: Int
    private let iterations: Int32
    private static let scale: Float = 0.999
    private let expected: [Float]

    /// What `fma_peak` writes for work-item `0..<items`: the host's fp32 FMA chains (every lane of a chain holds the
    /// same value), summed as the kernel sums them.
    static func expectedSums(items: Int, iterations: Int, scale: Float, width: Int) -> [Float] {
        (0..<items).map { gid in
            let start = Float(gid) * 1e-9
            var chains = (0..<8).map { start + Float($0) * 0.125 }
            for index in 0..<8 {
                for _ in 0..<iterations { chains[index] = (1 - scale).addingProduct(chains[index], scale) }
            }
            // ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) per lane, then the lanes' pairwise tree.
            var lane = ((chains[0] + chains[1]) + (chains[2] + chains[3])) + ((chains[4] + chains[5]) + (chains[6] + chains[7]))
            var count = width
            while count > 1 {
                lane += lane
                count /= 2
            }
            return lane
        }
    }

    /// The device's FMA throughput in FLOP/s: the median of several runs of `fma_peak`, after a warm-up, whose
    /// sums are checked against the host's.
    public func fmaThroughput(repetitions: Int = 5) throws -> Double {
        let arguments: [any KernelArgument] = [output, iterations, Self.scale]
        _ = try peak.launch(on: context.queue, global: [items], arguments: arguments)
        try context.queue.finish()
        var seconds: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let event = try peak.launch(on: context.queue, global: [items], arguments: arguments)
            seconds.append(try Event.span([event]))
        }
        let sums = try output.download()
        let wrong = sums.indices.first { index in !(abs(sums[index] - expected[index]) <= 1e-5 * abs(expected[index]) + 1e-6) }
        if let wrong {
            throw ProblemError("the FMA reference kernel wrote \(sums[wrong]) for work-item \(wrong), the host computes \(expected[wrong]) "
                               + "(device \(context.device.name))")
        }
        return Double(items) * Double(iterations) * Double(8 * width) * 2 / median(seconds)
    }

    /// Device seconds of a streaming read of `bytes` (at least 1 MiB, scaled), with the read kernel's default.
    public func streamingReadSeconds(bytes: Double, repetitions: Int = 5) throws -> Double {
        let megabytes = max(1, Int((bytes / 1_048_576).rounded(.up)))
        let harness = try readers[megabytes] ?? bandwidth.harness(Bandwidth.Problem(megabytes: megabytes), seed: 1)
        readers = [megabytes: harness]   // one buffer at a time
        let measured = try harness.measure(nil, repetitions: repetitions, minimumSeconds: 0.02)
        guard measured.isCorrect else { throw ProblemError("the streaming-read reference's sum is wrong (\(measured.check))") }
        return measured.deviceSeconds * bytes / Double(megabytes * 1_048_576)
    }

    /// The seconds the reference takes for `work`: its FLOPs at the FMA throughput (compute-bound), or a
    /// streaming read of its bytes (memory-bound).
    public func seconds(for work: Work, bound: PerformanceBound) throws -> Double {
        switch bound {
        case .compute: work.flops / (try fmaThroughput())
        case .memory: try streamingReadSeconds(bytes: work.bytes)
        }
    }
}

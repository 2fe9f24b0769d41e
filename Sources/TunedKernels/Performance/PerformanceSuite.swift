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
    /// Untimed calls before the timed ones, the first included (it builds the kernels and is checked):
    /// ``KernelHarness/measure(_:role:warmup:repetitions:minimumSeconds:cutoff:)``'s `warmup`.
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
    public var relative: Double? { referenceSeconds.flatMap { $0 > 0 && seconds.isFinite ? seconds / $0 : nil } }
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

/// The suite's in-run yardsticks (`Kernels/reference.cl`), untuned, so that no change of a family's kernels or of a
/// tuning database moves them: independent FMA chains for compute-bound cases, and a streaming read with fixed
/// parameters (contiguous runs per work-item on a CPU, interleaved on a GPU) for memory-bound ones.
public final class ReferenceKernels {
    public let context: Context
    private let peak: Kernel
    private let read: Kernel
    private let output: DeviceBuffer<Float>
    private let items: Int
    private let width: Int
    private let iterations: Int32
    private static let scale: Float = 0.999
    /// The work-items whose FMA sums are checked (at most 4096, spread over all of them) and their expected sums.
    private let checked: [(index: Int, sum: Float)]
    private var readBuffer: DeviceBuffer<Float>?
    private var readOutput: DeviceBuffer<Float>?
    private var evictBuffer: DeviceBuffer<Float>?

    /// - Parameter iterations: FMAs per chain of the throughput kernel (the default keeps a run near a millisecond on
    ///   a CPU; the oclgrind test uses a few).
    public init(context: Context, iterations: Int = 1024) throws {
        self.context = context
        let cpu = context.device.kind == .cpu
        width = cpu ? 16 : 4
        let program = try context.programs.program(context, source: try KernelSources.program(files: ["reference.cl"]),
                                                   options: "-DVW=\(width) -DCONTIGUOUS=\(cpu ? 1 : 0)")
        peak = try program.kernel(named: "fma_peak")
        read = try program.kernel(named: "stream_read")
        self.iterations = Int32(clamping: max(1, iterations))
        items = max(1, context.device.computeUnits) * (cpu ? 256 : 2048)
        output = try DeviceBuffer<Float>(context, count: items)
        let step = (items + 4095) / 4096, chain = Int(self.iterations), lanes = width
        checked = stride(from: 0, to: items, by: step).map { ($0, Self.expectedSum(item: $0, iterations: chain, width: lanes)) }
    }

    /// What `fma_peak` writes for work-item `item`: the host's fp32 FMA chains (every lane of a chain holds the same
    /// value), summed as the kernel sums them.
    static func expectedSum(item: Int, iterations: Int, width: Int) -> Float {
        let start = Float(item) * 1e-9
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

    /// Device seconds of `kernel` over `global` work-items: the median of `repetitions` runs after a warm-up.
    private func time(_ kernel: Kernel, global: Int, arguments: [any KernelArgument], repetitions: Int) throws -> Double {
        _ = try kernel.launch(on: context.queue, global: [global], arguments: arguments)
        try context.queue.finish()
        var seconds: [Double] = []
        for _ in 0..<max(1, repetitions) {
            let event = try kernel.launch(on: context.queue, global: [global], arguments: arguments)
            seconds.append(try Event.span([event]))
        }
        return median(seconds)
    }

    /// The device's FMA throughput in FLOP/s (`fma_peak`), its sums checked against the host's.
    public func fmaThroughput(repetitions: Int = 5) throws -> Double {
        let seconds = try time(peak, global: items, arguments: [output, iterations, Self.scale], repetitions: repetitions)
        let sums = try output.download()
        if let wrong = checked.first(where: { !(abs(sums[$0.index] - $0.sum) <= 1e-5 * abs($0.sum) + 1e-6) }) {
            throw ProblemError("the FMA reference kernel wrote \(sums[wrong.index]) for work-item \(wrong.index), the host computes \(wrong.sum) "
                               + "(device \(context.device.name))")
        }
        return Double(items) * Double(iterations) * Double(8 * width) * 2 / seconds
    }

    /// Device seconds of a streaming read of `bytes` (at least 1 MiB; the time is scaled to `bytes`), its sum checked.
    public func streamingReadSeconds(bytes: Double, repetitions: Int = 5) throws -> Double {
        let vectors = max(1 << 16, Int((bytes / 16).rounded(.up)))
        // Each work-item sums at most 2^16 vectors of ones: at most 2^18, exact in fp32.
        let groups = max(items / (context.device.kind == .cpu ? 16 : 1), (vectors + 65535) / 65536)
        let perItem = (vectors + groups - 1) / groups
        let floats = groups * perItem * 4
        if readBuffer == nil || readBuffer!.count != floats {
            readBuffer = nil
            let buffer = try DeviceBuffer<Float>(context, count: floats)
            try buffer.fill(1)
            readBuffer = buffer
        }
        if readOutput == nil || readOutput!.count != groups { readOutput = try DeviceBuffer<Float>(context, count: groups) }
        try readOutput!.fill(.nan)
        let seconds = try time(read, global: groups, arguments: [readBuffer!, Int32(perItem), readOutput!], repetitions: repetitions)
        let total = try readOutput!.download().reduce(0.0) { $0 + Double($1) }
        guard total == Double(floats) else {
            throw ProblemError("the streaming-read reference summed \(total), not \(floats) (device \(context.device.name))")
        }
        return seconds * bytes / Double(floats * 4)
    }

    /// Reads `bytes` (at least 1 MiB) of a buffer of its own through the streaming-read kernel, untimed: what
    /// ``ColdCaches`` streams through to evict the caches.
    public func readThrough(bytes: Int) throws {
        let floats = max(1 << 18, (bytes + 3) / 4 / 4 * 4)
        if evictBuffer == nil || evictBuffer!.count != floats {
            evictBuffer = nil
            let buffer = try DeviceBuffer<Float>(context, count: floats)
            try buffer.fill(1)
            evictBuffer = buffer
        }
        let vectors = floats / 4
        let groups = max(1, min(items, vectors / 16))
        let perItem = vectors / groups
        if readOutput == nil || readOutput!.count < groups { readOutput = try DeviceBuffer<Float>(context, count: groups) }
        _ = try read.launch(on: context.queue, global: [groups], arguments: [evictBuffer!, Int32(perItem), readOutput!])
        try context.queue.finish()
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

/// `--cold`: before every timed call, a read through twice the last-level cache (the device's reported global
/// memory cache and, on a CPU device, the host's last cache level, the larger), so that a memory-bound kernel's
/// inputs come from memory, not from a cache its previous call filled. Written once for every family: the
/// harness's `measure` calls ``evict()`` outside the timed region.
public final class ColdCaches {
    public let bytes: Int
    private let reader: ReferenceKernels

    /// Reads through a context of its own on the context's device, so its buffer is not counted in the measured
    /// context's device memory (the rows' peak and extra bytes).
    public init(context: Context) throws {
        reader = try ReferenceKernels(context: try Context(device: context.device), iterations: 1)
        let device = context.device
        let cache = max(device.globalMemoryCacheBytes, device.kind == .cpu ? Self.hostLastLevelCacheBytes() : 0, 1 << 20)
        bytes = min(2 * cache, device.maxAllocationBytes)
    }

    /// Streams through ``bytes`` of memory (waits).
    public func evict() throws { try reader.readThrough(bytes: bytes) }

    /// The largest cache level of CPU 0 that Linux reports (`/sys/devices/system/cpu/cpu0/cache/index*/size`), 0 if none.
    static func hostLastLevelCacheBytes() -> Int {
        var largest = 0
        for index in 0..<8 {
            guard let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cache/index\(index)/size", encoding: .utf8) else { continue }
            let word = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let scale = word.hasSuffix("K") ? 1 << 10 : word.hasSuffix("M") ? 1 << 20 : word.hasSuffix("G") ? 1 << 30 : 1
            if let value = Int(word.trimmingCharacters(in: CharacterSet.decimalDigits.inverted)) { largest = max(largest, value * scale) }
        }
        return largest
    }
}

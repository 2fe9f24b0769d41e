import Autotuning
import CBLAS
import Dispatch
import OpenCLRuntime

/// Random operands of one problem on the device and on the host, the OpenBLAS reference result, and
/// timed runs of GEMM configurations on them: what `autotune bench` and `autotune tune` measure.
public final class GEMMHarness {
    public let gemm: GEMM
    public let problem: GEMMProblem
    /// Host operands as fp32 (half inputs are rounded to fp16 first, then widened exactly).
    public let hostA: [Float], hostB: [Float]
    /// Device operands, tightly packed, of the problem's precision.
    public let a: MatrixOperand, b: MatrixOperand, c: MatrixOperand
    /// `A * B` computed by OpenBLAS SGEMM on the host operands.
    public let reference: [Float]

    /// One timed configuration.
    public struct Measurement: Sendable {
        public let configuration: Configuration
        public let source: GEMM.ConfigurationSource
        /// Median wall-clock seconds of one call, from enqueue to completion.
        public let seconds: Double
        /// Median device seconds from the first kernel's start to the last kernel's end.
        public let deviceSeconds: Double
        public let maxAbsError: Double
        /// Whether the result is within ``GEMMHarness/tolerance``.
        public let isCorrect: Bool
        /// The most device memory this context held during the runs (operands, scratch).
        public let peakDeviceBytes: Int
        public let gflops: Double
        /// Wall-clock seconds of the first call, which builds the kernels (from the program cache if
        /// they were built before): the call minus a timed run approximates the compile time.
        public let firstCallSeconds: Double
    }

    public init(gemm: GEMM, problem: GEMMProblem, seed: UInt64 = 42) throws {
        self.gemm = gemm
        self.problem = problem
        var generator = SplitMix64(seed: seed)
        func random(_ count: Int) -> [Float] {
            (0..<count).map { _ in
                let value = Float.random(in: -1...1, using: &generator)
                return problem.precision == .half ? Float(Float16(value)) : value
            }
        }
        let (m, n, k, batch) = (problem.m, problem.n, problem.k, problem.batch)
        hostA = random(m * k * batch)
        hostB = random(k * n * batch)
        let context = gemm.context
        func upload(_ values: [Float]) throws -> any AnyDeviceBuffer { try makeDeviceBuffer(context, values, precision: problem.precision) }
        let (aRows, aColumns) = problem.storedA
        let (bRows, bColumns) = problem.storedB
        a = MatrixOperand(try upload(hostA), leadingDimension: aColumns, batchStride: aRows * aColumns)
        b = MatrixOperand(try upload(hostB), leadingDimension: bColumns, batchStride: bRows * bColumns)
        c = MatrixOperand(try upload([Float](repeating: .nan, count: m * n * batch)), leadingDimension: n, batchStride: m * n)
        var expected = GEMMReference.HostMatrix([Float](repeating: 0, count: m * n * batch), leadingDimension: n, batchStride: m * n)
        GEMMReference.gemm(problem, alpha: 1,
                           a: .init(hostA, leadingDimension: aColumns, batchStride: aRows * aColumns),
                           b: .init(hostB, leadingDimension: bColumns, batchStride: bRows * bColumns), beta: 0, c: &expected)
        reference = expected.values
    }

    /// The largest accepted absolute error: fp32 accumulation error grows with K; half storage
    /// rounds the result to 11 significant bits.
    public var tolerance: Double {
        let largest = Double(reference.lazy.map { abs($0) }.max() ?? 0)
        let accumulation = 4e-6 * Double(problem.k) + 1e-5
        return problem.precision == .half ? accumulation + 2e-3 * max(largest, 1) : accumulation
    }

    /// Runs `configuration` (or the dispatcher's choice) `warmup` times, then `repetitions` timed
    /// times (more, up to 1000, until the timed runs add up to `minimumSeconds`: a short kernel is timed
    /// over enough runs that one slow run cannot decide its median), and checks the result of the
    /// last run against the reference.
    ///
    /// - Parameter cutoff: when a run (after the one that builds) takes longer than this many seconds, the candidate is
    ///   timed by one run after the build alone (a tuner's early stop for hopeless candidates).
    public func measure(_ configuration: Configuration? = nil, warmup: Int = 1, repetitions: Int = 5, minimumSeconds: Double = 0,
                        cutoff: Double? = nil) throws -> Measurement {
        let context = gemm.context
        context.memory.resetPeak()
        let firstStart = DispatchTime.now().uptimeNanoseconds
        var launch = try gemm.run(problem, alpha: 1, a: a, b: b, beta: 0, c: c, configuration: configuration)  // builds
        try context.queue.finish()
        let firstCall = Double(DispatchTime.now().uptimeNanoseconds - firstStart) * 1e-9
        let source = launch.source
        if let cutoff {
            let start = DispatchTime.now().uptimeNanoseconds
            launch = try gemm.run(problem, a: a, b: b, c: c, configuration: launch.configuration)
            try context.queue.finish()
            let probe = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if probe > cutoff {
                let error = try maxAbsError(of: c.buffer)
                return Measurement(configuration: launch.configuration, source: source, seconds: probe, deviceSeconds: try launch.seconds(),
                                   maxAbsError: error, isCorrect: error <= tolerance, peakDeviceBytes: context.memory.peakBytes,
                                   gflops: problem.flops / probe * 1e-9, firstCallSeconds: firstCall)
            }
        }
        for _ in 1..<max(warmup, 1) {
            launch = try gemm.run(problem, a: a, b: b, c: c, configuration: launch.configuration)
            try context.queue.finish()
        }
        var wall: [Double] = [], device: [Double] = []
        var total = 0.0
        while wall.count < max(repetitions, 1) || (total < minimumSeconds && wall.count < 1000) {
            let start = DispatchTime.now().uptimeNanoseconds
            launch = try gemm.run(problem, a: a, b: b, c: c, configuration: launch.configuration)
            try context.queue.finish()
            wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            total += wall[wall.count - 1]
            device.append(try launch.seconds())
        }
        let error = try maxAbsError(of: c.buffer)
        let seconds = Self.median(wall)
        return Measurement(configuration: launch.configuration, source: source,
                           seconds: seconds, deviceSeconds: Self.median(device), maxAbsError: error,
                           isCorrect: error <= tolerance, peakDeviceBytes: context.memory.peakBytes,
                           gflops: problem.flops / seconds * 1e-9, firstCallSeconds: firstCall)
    }

    /// Median wall-clock seconds of OpenBLAS SGEMM on the host operands.
    public func openBLASSeconds(repetitions: Int = 5) -> Double {
        var output = GEMMReference.HostMatrix([Float](repeating: 0, count: reference.count), leadingDimension: problem.n,
                                              batchStride: problem.m * problem.n)
        let a = GEMMReference.HostMatrix(hostA, leadingDimension: problem.storedA.columns, batchStride: problem.storedA.rows * problem.storedA.columns)
        let b = GEMMReference.HostMatrix(hostB, leadingDimension: problem.storedB.columns, batchStride: problem.storedB.rows * problem.storedB.columns)
        GEMMReference.gemm(problem, alpha: 1, a: a, b: b, beta: 0, c: &output)  // warm-up
        var times: [Double] = []
        for _ in 0..<max(repetitions, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            GEMMReference.gemm(problem, alpha: 1, a: a, b: b, beta: 0, c: &output)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return Self.median(times)
    }

    /// The largest |result - reference| of a C buffer of this problem (NaN counts as infinite).
    public func maxAbsError(of buffer: any AnyDeviceBuffer) throws -> Double {
        let values = try downloadFloats(buffer)
        var worst = 0.0
        for (got, want) in zip(values, reference) {
            let difference = Double(abs(got - want))
            if !difference.isFinite { return .infinity }
            worst = max(worst, difference)
        }
        return worst
    }

    /// Median of a non-empty list.
    public static func median(_ values: [Double]) -> Double { Autotuning.median(values) }
}

import Autotuning
import CBLAS
import Dispatch
import OpenCLRuntime

/// Random operands of one problem on the device and on the host, the OpenBLAS reference result, and
/// launches of GEMM configurations on them: what `autotune bench`, `tune` and the tests measure.
public final class GEMMHarness: KernelHarness {
    public let gemm: GEMM
    public let problem: GEMMProblem
    /// Host operands as fp32 (half inputs are rounded to fp16 first, then widened exactly).
    public let hostA: [Float], hostB: [Float]
    /// Device operands, tightly packed, of the problem's precision.
    public let a: MatrixOperand, b: MatrixOperand, c: MatrixOperand
    /// `A * B` computed by OpenBLAS SGEMM on the host operands.
    public let reference: [Float]
    /// The family's tolerance for this problem (``GEMMReference/tolerance(_:alpha:beta:largest:)``).
    public let tolerance: Double

    public var context: Context { gemm.context }
    public var work: Work { GEMM.work(problem) }

    /// - Throws: ``ProblemError`` when the problem does not fit the kernels, the device or the host, before
    ///   anything is allocated.
    public init(gemm: GEMM, problem: GEMMProblem, seed: UInt64 = 42) throws {
        try gemm.check(problem)
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
        func upload(_ values: [Float]) throws -> any AnyDeviceBuffer { try DeviceTensor(context, values, format: problem.precision).buffer }
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
        tolerance = GEMMReference.tolerance(problem, alpha: 1, beta: 0, largest: Double(reference.lazy.map { abs($0) }.max() ?? 0))
    }

    /// Fills C with NaN: a configuration that leaves part of C unwritten then fails ``check()``.
    public func reset() throws {
        try DeviceTensor(c.buffer, format: problem.precision, shape: [c.buffer.count]).poison()
    }

    /// `C = A * B` (alpha 1, beta 0) with `configuration` or the dispatcher's choice.
    public func launch(_ configurations: [Configuration], role: String?) throws -> KernelLaunch {
        try gemm.run(problem, alpha: 1, a: a, b: b, beta: 0, c: c, configuration: try gemm.onlyConfiguration(configurations))
    }

    public func check() throws -> Check {
        try check(buffer: c.buffer)
    }

    /// The error of a C buffer of this problem (another implementation's output) against the reference.
    public func check(buffer: any AnyDeviceBuffer) throws -> Check {
        Check(maxAbsError: Check.maxAbsError(try downloadFloats(buffer), reference), tolerance: tolerance)
    }

    /// OpenBLAS SGEMM on the host operands (fp16 inputs widened to fp32), timed in the same run; its own output
    /// is checked against the reference like every row.
    ///
    /// And `stream-read`: the device's tuned streaming read (``Bandwidth``) of as many bytes as one call moves, the
    /// time a memory-bound GEMM cannot beat (its own sum is checked).
    public func baselines() -> [Baseline] {
        var bandwidth: Bandwidth?
        return [Baseline(name: "openblas") { repetitions in
            let (seconds, output) = self.openBLAS(repetitions: repetitions)
            return Baseline.Result(seconds: seconds, check: Check(maxAbsError: Check.maxAbsError(output, self.reference), tolerance: self.tolerance),
                                   labels: Baseline.Result.openBLASLabels)
        }, Baseline(name: "stream-read") { repetitions in
            if bandwidth == nil { bandwidth = try Bandwidth(context: self.context) }
            return Baseline.Result(seconds: try bandwidth!.streamingReadSeconds(bytes: self.work.bytes, repetitions: repetitions), check: nil,
                                   work: Work(flops: 0, bytes: self.work.bytes))
        }]
    }

    /// Median wall-clock seconds of OpenBLAS SGEMM on the host operands, and its last result.
    public func openBLAS(repetitions: Int = 5) -> (seconds: Double, output: [Float]) {
        var output = GEMMReference.HostMatrix([Float](repeating: .nan, count: reference.count), leadingDimension: problem.n,
                                              batchStride: problem.m * problem.n)
        let a = GEMMReference.HostMatrix(hostA, leadingDimension: problem.storedA.columns, batchStride: problem.storedA.rows * problem.storedA.columns)
        let b = GEMMReference.HostMatrix(hostB, leadingDimension: problem.storedB.columns, batchStride: problem.storedB.rows * problem.storedB.columns)
        GEMMReference.gemm(problem, alpha: 1, a: a, b: b, beta: 0, c: &output)  // warm-up
        let seconds = Self.medianTime(repetitions: repetitions) { GEMMReference.gemm(problem, alpha: 1, a: a, b: b, beta: 0, c: &output) }
        return (seconds, output.values)
    }
}

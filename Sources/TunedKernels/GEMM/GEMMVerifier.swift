import Autotuning
import OpenCLRuntime

/// Checks one GEMM call end to end against the OpenBLAS reference, in a deliberately awkward setting:
/// nonzero offsets, leading dimensions wider than the rows, batch strides with gaps, NaN in C when
/// `beta == 0`, and a canary value everywhere in the buffers that the call must not write.
public struct GEMMVerifier {
    /// How the operands are laid out around the matrices.
    public struct Layout: Sendable {
        /// Extra elements at the start of each buffer (the operand's offset).
        public var offset = 5
        /// Extra elements per row (leading dimension = row length + this).
        public var rowPadding = 3
        /// Extra elements between the matrices of a batch.
        public var batchGap = 7
        /// Extra elements after the last matrix.
        public var tail = 11
        public init() {}
        public init(offset: Int, rowPadding: Int, batchGap: Int, tail: Int) {
            (self.offset, self.rowPadding, self.batchGap, self.tail) = (offset, rowPadding, batchGap, tail)
        }
    }

    /// What a verification found.
    public struct Report: Sendable {
        /// The result against the reference, with the family's tolerance.
        public let check: Check
        public var maxAbsError: Double { check.maxAbsError }
        public var tolerance: Double { check.tolerance }
        /// Positions of C's buffer outside the result that were changed (should be 0).
        public let canaryViolations: Int
        /// Positions of A's and B's buffers that were changed (should be 0).
        public let inputViolations: Int
        public let configuration: Configuration
        public let source: ConfigurationSource
        public var passed: Bool { check.passed && canaryViolations == 0 && inputViolations == 0 }
    }

    /// The value written everywhere outside the matrices (exact in fp16).
    public static let canary: Float = -777

    public let gemm: GEMM
    public init(gemm: GEMM) { self.gemm = gemm }

    /// Runs `problem` once with `configuration` (or the dispatcher's choice) and compares.
    public func verify(_ problem: GEMMProblem, alpha: Float = 1.5, beta: Float = 0, configuration: Configuration? = nil,
                       layout: Layout = Layout(), seed: UInt64 = 7) throws -> Report {
        try gemm.check(problem)
        var generator = SplitMix64(seed: seed)
        let half = problem.precision == .half
        func round(_ value: Float) -> Float { half ? Float(Float16(value)) : value }
        func host(rows: Int, columns: Int, fill: (inout SplitMix64) -> Float) -> GEMMReference.HostMatrix {
            let ld = columns + layout.rowPadding
            let stride = rows * ld + layout.batchGap
            let count = layout.offset + (problem.batch - 1) * stride + (rows - 1) * ld + columns + layout.tail
            var values = [Float](repeating: Self.canary, count: count)
            for b in 0..<problem.batch {
                for r in 0..<rows {
                    let start = layout.offset + b * stride + r * ld
                    for c in 0..<columns { values[start + c] = fill(&generator) }
                }
            }
            return GEMMReference.HostMatrix(values, offset: layout.offset, leadingDimension: ld, batchStride: stride)
        }
        let random: (inout SplitMix64) -> Float = { round(Float.random(in: -1...1, using: &$0)) }
        let a = host(rows: problem.storedA.rows, columns: problem.storedA.columns, fill: random)
        let b = host(rows: problem.storedB.rows, columns: problem.storedB.columns, fill: random)
        var c = host(rows: problem.m, columns: problem.n, fill: beta == 0 ? { _ in .nan } : random)
        let context = gemm.context
        func upload(_ values: [Float]) throws -> any AnyDeviceBuffer { try DeviceTensor(context, values, format: problem.precision).buffer }
        func operand(_ matrix: GEMMReference.HostMatrix) throws -> MatrixOperand {
            MatrixOperand(try upload(matrix.values), offset: matrix.offset, leadingDimension: matrix.leadingDimension, batchStride: matrix.batchStride)
        }
        let (da, db, dc) = (try operand(a), try operand(b), try operand(c))
        let launch = try gemm.run(problem, alpha: alpha, a: da, b: db, beta: beta, c: dc, configuration: configuration)
        try context.queue.finish()

        /// Whether an index of C's buffer holds an element of the result (arithmetic, no set of every index).
        func inside(_ index: Int) -> Bool {
            let relative = index - c.offset
            guard relative >= 0 else { return false }
            let batch = c.batchStride > 0 ? relative / c.batchStride : 0
            guard batch < problem.batch else { return false }
            let within = relative - batch * c.batchStride
            let row = within / c.leadingDimension, column = within % c.leadingDimension
            return row < problem.m && column < problem.n
        }
        let before = c.values
        GEMMReference.gemm(problem, alpha: alpha, a: a, b: b, beta: beta, c: &c)
        let got = try downloadFloats(dc.buffer)
        var worst = 0.0, largest = 0.0, canaryViolations = 0
        for index in got.indices {
            if inside(index) {
                let want = c.values[index]
                largest = max(largest, Double(abs(want)))
                let difference = Double(abs(got[index] - want))
                worst = difference.isFinite ? max(worst, difference) : .infinity
            } else if got[index] != before[index] {
                canaryViolations += 1
            }
        }
        var inputViolations = 0
        for (matrix, operand) in [(a, da), (b, db)] {
            inputViolations += zip(try downloadFloats(operand.buffer), matrix.values).filter { $0 != $1 }.count
        }
        let tolerance = GEMMReference.tolerance(problem, alpha: alpha, beta: beta, largest: largest)
        return Report(check: Check(maxAbsError: worst, tolerance: tolerance), canaryViolations: canaryViolations,
                      inputViolations: inputViolations, configuration: launch.configuration, source: launch.source)
    }
}

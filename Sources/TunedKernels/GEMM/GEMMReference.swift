import CBLAS

/// The CPU reference of the GEMM family: OpenBLAS SGEMM per batch on fp32 data (fp16 inputs are
/// widened exactly to fp32 first). Tests compare against it and `autotune bench` times it.
public enum GEMMReference {
    /// Host copies of a call's operands, laid out as in device memory (offsets, leading dimensions and
    /// batch strides as in a ``MatrixOperand``).
    public struct HostMatrix {
        public var values: [Float]
        public var offset: Int
        public var leadingDimension: Int
        public var batchStride: Int

        public init(_ values: [Float], offset: Int = 0, leadingDimension: Int, batchStride: Int = 0) {
            self.values = values
            self.offset = offset
            self.leadingDimension = leadingDimension
            self.batchStride = batchStride
        }
    }

    /// `C = alpha * op(A) * op(B) + beta * C` for every batch, in place on `c.values`.
    ///
    /// **Edge cases:** with `beta == 0`, C is overwritten without being read, so NaN in C does not
    /// propagate (as in the kernels).
    public static func gemm(_ problem: GEMMProblem, alpha: Float, a: HostMatrix, b: HostMatrix, beta: Float, c: inout HostMatrix) {
        let transA = problem.layout.transposeA ? CblasTrans : CblasNoTrans
        let transB = problem.layout.transposeB ? CblasTrans : CblasNoTrans
        for batch in 0..<problem.batch {
            let cStart = c.offset + batch * c.batchStride
            if beta == 0 {
                for row in 0..<problem.m {
                    let start = cStart + row * c.leadingDimension
                    for column in 0..<problem.n { c.values[start + column] = 0 }
                }
            }
            a.values.withUnsafeBufferPointer { aPointer in
                b.values.withUnsafeBufferPointer { bPointer in
                    c.values.withUnsafeMutableBufferPointer { cPointer in
                        cblas_sgemm(CblasRowMajor, transA, transB, Int32(problem.m), Int32(problem.n), Int32(problem.k), alpha,
                                    aPointer.baseAddress! + a.offset + batch * a.batchStride, Int32(a.leadingDimension),
                                    bPointer.baseAddress! + b.offset + batch * b.batchStride, Int32(b.leadingDimension),
                                    beta, cPointer.baseAddress! + cStart, Int32(c.leadingDimension))
                    }
                }
            }
        }
    }

    /// The family's one tolerance rule, used by the harness (tuning, benchmarks) and the verifier (tests):
    /// fp32 accumulation error grows with `|alpha| K + |beta|` (inputs in [-1, 1]); half storage adds the
    /// rounding of the result to 11 significant bits (1e-3 of the largest result, two halves of an ulp).
    public static func tolerance(_ problem: GEMMProblem, alpha: Float, beta: Float, largest: Double) -> Double {
        let accumulation = 4e-6 * (Double(abs(alpha)) * Double(problem.k) + Double(abs(beta))) + 1e-5
        return problem.precision == .half ? accumulation + 1e-3 * largest : accumulation
    }
}

/// Which operands are transposed, for row-major storage: `nt` means `C = A * B^T`.
public enum GEMMLayout: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case nn, nt, tn, tt

    /// A is stored K x M (row-major) and used transposed.
    public var transposeA: Bool { self == .tn || self == .tt }
    /// B is stored N x K (row-major) and used transposed.
    public var transposeB: Bool { self == .nt || self == .tt }
    public var description: String { rawValue }

    public init(transposeA: Bool, transposeB: Bool) {
        switch (transposeA, transposeB) {
        case (false, false): self = .nn
        case (false, true): self = .nt
        case (true, false): self = .tn
        case (true, true): self = .tt
        }
    }
}

/// A GEMM problem: the key under which tuned configurations are stored.
///
/// `C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b]` for `b` in `0..<batch`, with `op(A)` M x K,
/// `op(B)` K x N and C M x N, all row-major.
public struct GEMMProblem: Hashable, TabulatedProblem, CustomStringConvertible {
    public var m: Int
    public var n: Int
    public var k: Int
    public var batch: Int
    public var precision: ElementFormat
    public var layout: GEMMLayout

    public init(m: Int, n: Int, k: Int, batch: Int = 1, precision: ElementFormat, layout: GEMMLayout = .nn) {
        self.m = m
        self.n = n
        self.k = k
        self.batch = batch
        self.precision = precision
        self.layout = layout
    }

    /// The problem options of `autotune ... gemm` and the JSON keys of the problem: `--shape MxNxK` (m, n, k),
    /// `--precision` (half by default), `--layout`, `--batch`.
    public static let table = ProblemTable(defaults: GEMMProblem(m: 1, n: 1, k: 1, precision: .half)) {
        $0.dimensions("shape", [("m", \.m), ("n", \.n), ("k", \.k)], help: "M, N and K: op(A) is M x K, op(B) K x N.", primary: true)
        $0.format("precision", \.precision, GEMM.formats, help: "Storage precision.")
        $0.choice("layout", \.layout, help: "Row-major operands; t = transposed (nt: C = A * B^T).")
        $0.integer("batch", \.batch, help: "Matrices in a strided batch.")
    }

    /// Floating-point operations of one call: `2 M N K batch`.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(batch) }

    /// Rows and columns of A and B as stored (before `op`).
    var storedA: (rows: Int, columns: Int) { layout.transposeA ? (k, m) : (m, k) }
    var storedB: (rows: Int, columns: Int) { layout.transposeB ? (n, k) : (k, n) }

    /// `MxNxK`, with `xB` batches when more than one, precision and layout.
    public var description: String {
        "\(m)x\(n)x\(k)" + (batch > 1 ? " batch \(batch)" : "") + " \(precision) \(layout)"
    }
}

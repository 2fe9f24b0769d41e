import Autotuning
import OpenCLRuntime
import Testing
import TunedKernels

/// Bad inputs are refused with a clear ``GEMMError`` before anything is launched.
@Suite struct GEMMValidationTests {
    struct Setup {
        let context: Context, gemm: GEMM
        let a: DeviceBuffer<Float>, b: DeviceBuffer<Float>, c: DeviceBuffer<Float>
        init() throws {
            context = try #require(Shared.context)
            gemm = try #require(Shared.gemm)
            a = try DeviceBuffer<Float>(context, count: 4 * 3)
            b = try DeviceBuffer<Float>(context, count: 3 * 5)
            c = try DeviceBuffer<Float>(context, count: 4 * 5)
        }
        var problem: GEMMProblem { GEMMProblem(m: 4, n: 5, k: 3, precision: .single) }
        func run(_ problem: GEMMProblem? = nil, a: MatrixOperand? = nil, b: MatrixOperand? = nil, c: MatrixOperand? = nil,
                 configuration: Configuration? = nil) throws {
            try gemm.run(problem ?? self.problem, a: a ?? MatrixOperand(self.a, leadingDimension: 3),
                         b: b ?? MatrixOperand(self.b, leadingDimension: 5), c: c ?? MatrixOperand(self.c, leadingDimension: 5),
                         configuration: configuration)
        }
    }

    static func expectError(_ check: (GEMMError) -> Bool, containing text: String, _ body: () throws -> Void) {
        #expect {
            try body()
        } throws: { error in
            guard let error = error as? GEMMError else { return false }
            return check(error) && "\(error)".contains(text)
        }
    }

    @Test func zeroAndNegativeSizes() throws {
        let s = try Setup()
        for (m, n, k, batch, name) in [(0, 5, 3, 1, "M"), (4, -1, 3, 1, "N"), (4, 5, 0, 1, "K"), (4, 5, 3, 0, "batch")] {
            Self.expectError({ if case .invalidSize = $0 { true } else { false } }, containing: "\(name) must be at least 1") {
                try s.run(GEMMProblem(m: m, n: n, k: k, batch: batch, precision: .single))
            }
        }
    }

    /// Sizes, leading dimensions, strides and offsets at the edge of Int are refused with an error, never an
    /// arithmetic overflow trap (through the typed call, whose default strides multiply them, and through `run`).
    @Test func absurdSizesAreRefusedWithoutATrap() throws {
        let s = try Setup()
        let cases: [(String, () throws -> Void)] = [
            ("m = Int.max", { try s.gemm(m: .max, n: 5, k: 3, a: s.a, b: s.b, c: s.c) }),
            ("m = Int.max / 2", { try s.gemm(m: .max / 2, n: 5, k: 3, a: s.a, b: s.b, c: s.c) }),
            ("k = Int.max", { try s.gemm(m: 4, n: 5, k: .max, a: s.a, b: s.b, c: s.c) }),
            ("lda = Int.max", { try s.gemm(m: 4, n: 5, k: 3, a: s.a, lda: .max, b: s.b, c: s.c) }),
            ("ldc = Int.max / 3", { try s.gemm(m: 4, n: 5, k: 3, a: s.a, b: s.b, c: s.c, ldc: .max / 3) }),
            ("batch = Int.max", { try s.gemm(m: 4, n: 5, k: 3, batch: .max, a: s.a, b: s.b, c: s.c) }),
            ("batch stride = Int.max", { try s.run(GEMMProblem(m: 4, n: 5, k: 3, batch: 2, precision: .single),
                                                   a: MatrixOperand(s.a, leadingDimension: 3, batchStride: .max)) }),
            ("offset = Int.max", { try s.run(a: MatrixOperand(s.a, offset: .max, leadingDimension: 3)) }),
        ]
        for (name, call) in cases {
            #expect(throws: GEMMError.self, "\(name)") { try call() }
        }
    }

    @Test func leadingDimensionSmallerThanRow() throws {
        let s = try Setup()
        Self.expectError({ if case .invalidLeadingDimension = $0 { true } else { false } }, containing: "leading dimension of A (2)") {
            try s.run(a: MatrixOperand(s.a, leadingDimension: 2))
        }
        // For tn, A is stored K x M: its rows hold M = 4 elements.
        Self.expectError({ if case .invalidLeadingDimension = $0 { true } else { false } }, containing: "A is stored 3x4") {
            try s.run(GEMMProblem(m: 4, n: 5, k: 3, precision: .single, layout: .tn), a: MatrixOperand(s.a, leadingDimension: 3))
        }
    }

    @Test func buffersTooSmallForShapeOffsetOrBatch() throws {
        let s = try Setup()
        Self.expectError({ if case .bufferTooSmall = $0 { true } else { false } }, containing: "C needs 21 elements") {
            try s.run(c: MatrixOperand(s.c, offset: 1, leadingDimension: 5))
        }
        Self.expectError({ if case .bufferTooSmall = $0 { true } else { false } }, containing: "B needs") {
            try s.run(b: MatrixOperand(s.b, leadingDimension: 6))
        }
        Self.expectError({ if case .bufferTooSmall = $0 { true } else { false } }, containing: "batch 2") {
            try s.run(GEMMProblem(m: 4, n: 5, k: 3, batch: 2, precision: .single), a: MatrixOperand(s.a, leadingDimension: 3, batchStride: 12),
                      c: MatrixOperand(s.c, leadingDimension: 5, batchStride: 20))
        }
    }

    @Test func negativeOffsetsOverlappingBatchesAndAliasing() throws {
        let s = try Setup()
        Self.expectError({ if case .invalidStride = $0 { true } else { false } }, containing: "must not be negative") {
            try s.run(a: MatrixOperand(s.a, offset: -1, leadingDimension: 3))
        }
        let big = try DeviceBuffer<Float>(s.context, count: 100)
        Self.expectError({ if case .invalidStride = $0 { true } else { false } }, containing: "do not overlap") {
            try s.run(GEMMProblem(m: 4, n: 5, k: 3, batch: 2, precision: .single), a: MatrixOperand(s.a, leadingDimension: 3),
                      b: MatrixOperand(s.b, leadingDimension: 5), c: MatrixOperand(big, leadingDimension: 5, batchStride: 10))
        }
        Self.expectError({ if case .aliasing = $0 { true } else { false } }, containing: "overlaps A") {
            try s.run(a: MatrixOperand(big, leadingDimension: 3), c: MatrixOperand(big, offset: 5, leadingDimension: 5))
        }
    }

    @Test func precisionMismatchAndUnsupportedElements() throws {
        let s = try Setup()
        let halves = try DeviceBuffer<Float16>(s.context, count: 12)
        Self.expectError({ if case .precisionMismatch = $0 { true } else { false } }, containing: "A is half (Float16) but the problem is single") {
            try s.run(a: MatrixOperand(halves, leadingDimension: 3))
        }
        let integers = try DeviceBuffer<Int32>(s.context, count: 20)
        Self.expectError({ if case .precisionMismatch = $0 { true } else { false } }, containing: "C holds Int32") {
            try s.run(c: MatrixOperand(integers, leadingDimension: 5))
        }
    }

    @Test func bufferFromAnotherContext() throws {
        let s = try Setup()
        let other = try Context(device: s.context.device, programCacheDirectory: nil)
        let foreign = try DeviceBuffer<Float>(other, count: 20)
        Self.expectError({ if case .contextMismatch = $0 { true } else { false } }, containing: "another context") {
            try s.run(c: MatrixOperand(foreign, leadingDimension: 5))
        }
    }

    @Test func invalidConfigurationsAreNeverBuilt() throws {
        let s = try Setup()
        var bad = Configuration(variant: "xgemm", ["MWG": 64, "NWG": 64, "KWG": 16, "MDIMC": 16, "NDIMC": 16, "MDIMA": 16, "NDIMB": 16,
                                                   "KWI": 2, "VWM": 8, "VWN": 2, "STRM": 0, "STRN": 0, "SA": 1, "SB": 1, "KSPLIT": 1])
        let builds = s.context.programs.statistics.builds
        Self.expectError({ if case .invalidConfiguration = $0 { true } else { false } }, containing: "MWG % (MDIMC*VWM) == 0") {
            try s.run(configuration: bad)
        }
        bad.variant = "mystery"
        Self.expectError({ if case .invalidConfiguration = $0 { true } else { false } }, containing: "unknown variant mystery") {
            try s.run(configuration: bad)
        }
        Self.expectError({ if case .invalidConfiguration = $0 { true } else { false } }, containing: "HALF_MATH is not a parameter of direct") {
            try s.run(configuration: Configuration(variant: "direct", ["WPTM": 1, "WPTN": 1, "DLOCALM": 1, "DLOCALN": 1, "DKU": 1, "HALF_MATH": 1]))
        }
        #expect(s.context.programs.statistics.builds == builds)
    }
}

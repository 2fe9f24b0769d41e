import Autotuning
import OpenCLRuntime
import Testing
import TunedKernels

/// Correctness of every variant against OpenBLAS, with canaries around the outputs.
@Suite(.serialized) struct GEMMTests {
    /// Configurations from every variant, including edge settings (wide vectors, strided ownership,
    /// no local memory, split-K, work-groups of one).
    static let configurations: [Configuration] = [
        Configuration(variant: "packed", ["MR": 6, "NR": 16, "VW": 8, "KC": 256, "TM": 4, "TN": 2, "PLM": 1, "PLN": 1, "PKU": 4]),
        Configuration(variant: "packed", ["MR": 4, "NR": 8, "VW": 4, "KC": 64, "TM": 2, "TN": 1, "PLM": 2, "PLN": 2, "PKU": 1]),
        Configuration(variant: "xgemm", ["MWG": 64, "NWG": 64, "KWG": 16, "MDIMC": 16, "NDIMC": 16, "MDIMA": 16, "NDIMB": 16, "KWI": 2,
                                         "VWM": 2, "VWN": 2, "STRM": 0, "STRN": 0, "SA": 1, "SB": 1, "KSPLIT": 1]),
        Configuration(variant: "xgemm", ["MWG": 64, "NWG": 32, "KWG": 32, "MDIMC": 8, "NDIMC": 8, "MDIMA": 4, "NDIMB": 8, "KWI": 8,
                                         "VWM": 8, "VWN": 4, "STRM": 1, "STRN": 1, "SA": 0, "SB": 1, "KSPLIT": 4]),
        Configuration(variant: "direct", ["WPTM": 4, "WPTN": 4, "DLOCALM": 4, "DLOCALN": 8, "DKU": 4]),
        Configuration(variant: "direct", ["WPTM": 1, "WPTN": 1, "DLOCALM": 1, "DLOCALN": 1, "DKU": 1]),
        Configuration(variant: "gemv", ["GVW": 8, "GNV": 2, "GMR": 4, "GLN": 8, "KSPLIT": 4, "GSTREAM": 0, "GCR": 1, "GRB": 1]),
        Configuration(variant: "packb", ["MR": 6, "NR": 16, "VW": 8, "PAC": 0, "TM": 2, "TN": 2, "PLM": 2, "PLN": 1, "PKU": 4]),
        Configuration(variant: "packb", ["MR": 4, "NR": 64, "VW": 16, "PAC": 0, "TM": 16, "TN": 1, "PLM": 1, "PLN": 1, "PKU": 4]),
        // A staged as fp32: vectors along K (nn, nt) or along M (tn, tt: MR a power of two; scalar with MR 6),
        // chunks that do not divide K.
        Configuration(variant: "packb", ["MR": 4, "NR": 32, "VW": 16, "PAC": 16, "TM": 4, "TN": 1, "PLM": 1, "PLN": 1, "PKU": 4]),
        Configuration(variant: "packb", ["MR": 6, "NR": 8, "VW": 4, "PAC": 32, "TM": 2, "TN": 2, "PLM": 1, "PLN": 2, "PKU": 2]),
    ]

    /// The decoding variant on its own shapes: M of 1, 2 and 7, odd N and K, every layout, both precisions,
    /// with and without split-K, vector widths that do not divide N or K.
    static let gemvConfigurations = [
        Configuration(variant: "gemv", ["GVW": 16, "GNV": 8, "GMR": 1, "GLN": 1, "KSPLIT": 16, "GSTREAM": 0, "GCR": 1, "GRB": 1]),
        Configuration(variant: "gemv", ["GVW": 4, "GNV": 1, "GMR": 2, "GLN": 32, "KSPLIT": 1, "GSTREAM": 0, "GCR": 1, "GRB": 1]),
        Configuration(variant: "gemv", ["GVW": 1, "GNV": 4, "GMR": 8, "GLN": 8, "KSPLIT": 2, "GSTREAM": 0, "GCR": 1, "GRB": 1]),
        Configuration(variant: "gemv", ["GVW": 16, "GNV": 1, "GMR": 1, "GLN": 1, "KSPLIT": 2, "GSTREAM": 1, "GCR": 1, "GRB": 1]),
        Configuration(variant: "gemv", ["GVW": 4, "GNV": 1, "GMR": 4, "GLN": 1, "KSPLIT": 16, "GSTREAM": 1, "GCR": 8, "GRB": 1]),
        Configuration(variant: "gemv", ["GVW": 8, "GNV": 2, "GMR": 2, "GLN": 1, "KSPLIT": 4, "GSTREAM": 1, "GCR": 2, "GRB": 8]),
    ]

    @Test(arguments: gemvConfigurations)
    func gemvDecodingShapes(configuration: Configuration) throws {
        // Row streaming is for B stored K x N (nn, tn); the others take every layout, two per configuration.
        let index = Self.gemvConfigurations.firstIndex(of: configuration) ?? 0
        let combinations = configuration["GSTREAM"] == 1
            ? [(GEMMLayout.nn, GEMM.formats[index % 2]), (.tn, GEMM.formats[(index + 1) % 2])]
            : Self.combinations(index)
        for (m, n, k) in [(1, 1023, 1025), (2, 129, 67), (7, 31, 1000), (1, 1, 1), (3, 5, 17)] {
            for (layout, precision) in combinations {
                try Self.verify(GEMMProblem(m: m, n: n, k: k, precision: precision, layout: layout), configuration, beta: 0.5)
            }
        }
    }

    /// Every layout and precision pair is a program of its own (about a second to build on a CPU device), so a
    /// configuration runs in two of the eight, chosen so that each configuration sees both precisions and both
    /// operands transposed and not (nn and tt, or nt and tn), and consecutive configurations (a variant's) see
    /// all four layouts: every pair is covered, at a quarter of the builds.
    static func combinations(_ index: Int) -> [(GEMMLayout, ElementFormat)] {
        let layouts: [GEMMLayout] = index % 2 == 0 ? [.nn, .tt] : [.nt, .tn]
        let first = GEMM.formats[(index / 2) % 2], second = GEMM.formats[(index / 2 + 1) % 2]
        return [(layouts[0], first), (layouts[1], second)]
    }

    static let oddShapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 5, 3), (127, 129, 65), (1025, 1023, 1)]

    static func verify(_ problem: GEMMProblem, _ configuration: Configuration?, beta: Float = 0,
                       layout: GEMMVerifier.Layout = .init()) throws {
        let gemm = try #require(Shared.gemm)
        let report = try GEMMVerifier(gemm: gemm).verify(problem, alpha: 1.5, beta: beta, configuration: configuration, layout: layout)
        #expect(report.maxAbsError <= report.tolerance, "\(problem) \(report.configuration): error \(report.maxAbsError) > \(report.tolerance)")
        #expect(report.canaryViolations == 0, "\(problem) \(report.configuration) wrote outside C")
        #expect(report.inputViolations == 0, "\(problem) \(report.configuration) changed A or B")
    }

    /// Odd shapes in two layout and precision pairs per configuration (``combinations(_:)``), then strided batches
    /// with beta and a tail in the same programs.
    @Test(arguments: configurations.indices)
    func oddShapesAllLayouts(index: Int) throws {
        let configuration = Self.configurations[index]
        for (layout, precision) in Self.combinations(index) {
            for (m, n, k) in Self.oddShapes {
                try Self.verify(GEMMProblem(m: m, n: n, k: k, precision: precision, layout: layout), configuration)
            }
            let problem = GEMMProblem(m: 33, n: 17, k: 45, batch: 3, precision: precision, layout: layout)
            try Self.verify(problem, configuration, beta: 0.5)
            try Self.verify(problem, configuration, beta: 0, layout: .init(offset: 0, rowPadding: 0, batchGap: 0, tail: 1))
        }
    }

    /// Every layout and precision pair is covered by some configuration of every variant with two or more.
    @Test func combinationsCoverEveryPair() {
        var byVariant: [String: Set<String>] = [:]
        for (index, configuration) in Self.configurations.enumerated() {
            for (layout, precision) in Self.combinations(index) { byVariant[configuration.variant, default: []].insert("\(layout)-\(precision)") }
        }
        for (variant, pairs) in byVariant where Self.configurations.filter({ $0.variant == variant }).count >= 2 {
            #expect(Set(pairs.map { $0.split(separator: "-")[0] }).count == 4, "\(variant): \(pairs)")
        }
        #expect(Set(byVariant.values.flatMap { $0 }).count == 8)
    }

    /// The large odd shape, for one configuration per variant (it costs a second or more each).
    @Test(arguments: [configurations[0], configurations[2], configurations[3], configurations[4]])
    func largeOddShape(configuration: Configuration) throws {
        for (precision, layout) in [(ElementFormat.single, GEMMLayout.nn), (.half, .tn)] {
            try Self.verify(GEMMProblem(m: 1000, n: 999, k: 1001, precision: precision, layout: layout), configuration,
                            layout: .init(offset: 1, rowPadding: 1, batchGap: 0, tail: 3))
        }
    }

    /// The dispatcher's own choice (default configurations, including small-matrix and split-K paths).
    @Test(arguments: [(1, 1, 1), (7, 5, 3), (64, 48, 20000), (300, 200, 100), (1025, 1023, 1), (3, 700, 900), (400, 37, 300)])
    func dispatcherChoice(shape: (Int, Int, Int)) throws {
        for precision in GEMM.formats {
            try Self.verify(GEMMProblem(m: shape.0, n: shape.1, k: shape.2, precision: precision, layout: .nt), nil, beta: 0.25)
        }
    }

    /// Tensors as operands: the leading dimension and batch stride come from their shapes; a format GEMM does not
    /// store is refused.
    @Test func tensorsAreOperands() throws {
        let context = try #require(Shared.context)
        let gemm = try #require(Shared.gemm)
        let a = try DeviceTensor(context, [1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0], format: .half, shape: [2, 2, 3])   // two 2x3
        let b = try DeviceTensor(context, [1, 0, 0, 1, 1, 1], format: .half, shape: [3, 2])
        let c = try DeviceTensor(context, format: .half, shape: [2, 2, 2])
        try gemm.run(GEMMProblem(m: 2, n: 2, k: 3, batch: 2, precision: .half), a: MatrixOperand(a), b: MatrixOperand(b, batchStride: 0),
                     c: MatrixOperand(c))
        #expect(try c.download() == [4, 5, 10, 11, 1, 0, 0, 1])
        #expect(throws: GEMMError.self) { try MatrixOperand(try DeviceTensor(context, [1], format: .bfloat16)) }
    }

    @Test func typedCallUsesDefaultLeadingDimensions() throws {
        let context = try #require(Shared.context)
        let gemm = try #require(Shared.gemm)
        let a = try DeviceBuffer<Float>(context, [1, 2, 3, 4, 5, 6])       // 2x3
        let b = try DeviceBuffer<Float>(context, [1, 0, 0, 1, 1, 1])       // 3x2
        let c = try DeviceBuffer<Float>(context, [.nan, .nan, .nan, .nan])
        try gemm(m: 2, n: 2, k: 3, a: a, b: b, c: c)
        #expect(try c.download() == [4, 5, 10, 11])
        // C = 2 A B + 0.5 C: a kernel that ignores alpha, beta or both gets another result.
        try gemm(.nn, m: 2, n: 2, k: 3, alpha: 2, a: a, b: b, beta: 0.5, c: c)
        #expect(try c.download() == [10, 12.5, 25, 27.5])
    }
}

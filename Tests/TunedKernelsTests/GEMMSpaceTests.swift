import Foundation
import Autotuning
import OpenCLRuntime
import Testing
@testable import TunedKernels

@Suite struct GEMMSpaceTests {
    static let cpu = DeviceLimits(kind: .cpu, maxWorkGroupSize: 4096, maxWorkItemSizes: [4096, 4096, 4096], localMemoryBytes: 512 << 10, supportsHalf: false)
    static let smallGPU = DeviceLimits(kind: .gpu, maxWorkGroupSize: 256, maxWorkItemSizes: [256, 256, 64], localMemoryBytes: 16 << 10, supportsHalf: true)

    @Test func xgemmSpaceIsAtLeastAsRichAsCLBlasts() {
        let space = GEMMSpace.space(.xgemm, limits: Self.smallGPU, precision: .single)
        let names = Set(space.parameters.map(\.name))
        #expect(names.isSuperset(of: ["MWG", "NWG", "KWG", "MDIMC", "NDIMC", "MDIMA", "NDIMB", "KWI", "VWM", "VWN", "STRM", "STRN", "SA", "SB", "KSPLIT"]))
        let all = space.enumerate()
        #expect(all.count > 10_000)
        for configuration in all.prefix(2000) {
            let v = configuration.values
            #expect(v["MWG"]! % (v["MDIMC"]! * v["VWM"]!) == 0 && v["KWG"]! % v["KWI"]! == 0)
            #expect(v["MDIMC"]! * v["NDIMC"]! <= 256 && GEMMSpace.xgemmLocalBytes(v) <= 16 << 10)
        }
    }

    @Test func deviceLimitsShrinkTheSpace() {
        let cpu = GEMMSpace.space(.xgemm, limits: Self.cpu, precision: .single).count
        let gpu = GEMMSpace.space(.xgemm, limits: Self.smallGPU, precision: .single).count
        #expect(gpu < cpu)
        // Native half arithmetic is not a tuning parameter: the kernels accumulate in fp32 everywhere.
        #expect(GEMMSpace.spaces(limits: Self.smallGPU, precision: .half).allSatisfy { !$0.parameters.contains { $0.name == "HALF_MATH" } })
    }

    @Test func violationsNameTheBrokenConstraint() {
        let space = GEMMSpace.space(.packed, limits: Self.cpu, precision: .single)
        let bad = Configuration(variant: "packed", ["MR": 6, "NR": 24, "VW": 16, "KC": 0, "TM": 1, "TN": 1, "PLM": 1, "PLN": 1, "PKU": 1])
        #expect(space.violations(of: bad) == ["NR % VW == 0"])
        var missing = bad
        missing.values["TM"] = nil
        missing.values["EXTRA"] = 1
        #expect(space.violations(of: missing) == ["TM is missing", "EXTRA is not a parameter of packed"])
    }

    @Test func randomSamplingIsValidAndSeeded() {
        let space = GEMMSpace.space(.xgemm, limits: Self.smallGPU, precision: .single)
        var first = SplitMix64(seed: 3), second = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let a = space.randomConfiguration(using: &first), b = space.randomConfiguration(using: &second)
            #expect(a == b && a.map(space.isValid) == true)
        }
    }

    /// A tuned problem's configuration serves problems near it, not ones of another shape class.
    @Test func nearestTunedOnlyWhenNear() throws {
        let context = try #require(Shared.context)
        var database = TuningDatabase()
        let entry = TuningEntry(key: GEMM.key(GEMMProblem(m: 1, n: 2304, k: 768, precision: .half)),
                                config: Configuration(variant: "packed", ["MR": 4, "NR": 24, "VW": 8, "KC": 0, "TM": 16, "TN": 2, "PLM": 1, "PLN": 1, "PKU": 4]),
                                seconds: 1e-4)
        database.overlay(TuningFile(device: DeviceIdentity(name: "test"), entries: [entry]), source: "test")
        let gemm = try GEMM(context: context, database: database)
        #expect(gemm.configuration(for: GEMMProblem(m: 1, n: 2304, k: 768, precision: .half)) == (entry.config, .tuned))
        #expect(gemm.configuration(for: GEMMProblem(m: 1, n: 3072, k: 1024, precision: .half)) == (entry.config, .nearest))
        let far = gemm.configuration(for: GEMMProblem(m: 1, n: 11008, k: 4096, precision: .half))
        #expect(far.1 == .default && far.0.variant == "gemv")
    }

    /// The CPU defaults size the micro-tile by the vector registers, and take B's panels for every large shape
    /// where vectors are 16 floats wide.
    @Test func cpuDefaultsFollowTheVectorWidth() {
        let problems = [GEMMProblem(m: 1024, n: 1024, k: 1024, precision: .half), GEMMProblem(m: 4096, n: 64, k: 4096, precision: .half),
                        GEMMProblem(m: 4096, n: 64, k: 4096, precision: .single, layout: .tn),
                        GEMMProblem(m: 2048, n: 1024, k: 4096, precision: .half, layout: .tn)]
        for width in [8, 16] {
            var limits = Self.cpu
            limits.nativeFloatVectorWidth = width
            for problem in problems {
                let first = GEMMDefaults.configurations(for: problem, limits: limits)[0]
                // B's panels for a small N; for every large shape with 16-float vectors, unless A is stored K x M.
                let packb = problem.n <= 128 || (width == 16 && !problem.layout.transposeA)
                #expect(first.variant == (packb ? "packb" : "packed"), "\(problem) width \(width): \(first)")
                #expect(first["VW"] == (width == 16 ? 16 : 8))
                if first.variant == "packb" { #expect(first["PAC"] == (problem.precision == .half && !problem.layout.transposeA ? 64 : 0)) }
                #expect(GEMMSpace.spaces(limits: limits, precision: problem.precision, layout: problem.layout)
                    .contains { $0.variant == first.variant && $0.violations(of: first).isEmpty }, "\(first)")
            }
        }
    }

    @Test func everyDefaultIsValidOnTheTestDevice() throws {
        let gemm = try #require(Shared.gemm)
        for precision in GEMM.formats {
            for (m, n, k) in [(1, 1, 1), (64, 64, 65536), (1024, 1024, 1024), (7, 3000, 5), (1, 4096, 4096), (8, 11008, 4096), (4096, 64, 4096)] {
                let problem = GEMMProblem(m: m, n: n, k: k, precision: precision)
                let (configuration, source) = gemm.configuration(for: problem)
                #expect(source == .default)
                #expect(gemm.violations(of: configuration, for: problem).isEmpty)
                // Decoding shapes get the matrix-vector variant.
                #expect((configuration.variant == "gemv") == (m <= 8 && n >= 256 && k >= 256), "\(m)x\(n)x\(k): \(configuration)")
                // A small N with a large A: B's panels only; on a CPU with 16-float vectors, every large shape.
                let wide = gemm.limits.nativeFloatVectorWidth >= 16 && m >= 256 && m * n * k > 64 * 64 * 64
                #expect((configuration.variant == "packb") == (n <= 128 && m >= 256 && k >= 256 || wide), "\(m)x\(n)x\(k): \(configuration)")
            }
        }
    }
}

import Autotuning
import OpenCLRuntime
import Testing
import TunedKernels

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
        #expect(GEMMSpace.space(.direct, limits: Self.smallGPU, precision: .half).parameters.first { $0.name == "HALF_MATH" }?.values == [0, 1])
        #expect(GEMMSpace.space(.direct, limits: Self.cpu, precision: .half).parameters.first { $0.name == "HALF_MATH" }?.values == [0])
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

    @Test func everyDefaultIsValidOnTheTestDevice() throws {
        let gemm = try #require(Shared.gemm)
        for precision in Precision.allCases {
            for (m, n, k) in [(1, 1, 1), (64, 64, 65536), (1024, 1024, 1024), (7, 3000, 5)] {
                let (configuration, source) = gemm.configuration(for: GEMMProblem(m: m, n: n, k: k, precision: precision))
                #expect(source == .default)
                #expect(gemm.violations(of: configuration, precision: precision).isEmpty)
            }
        }
    }
}

import Testing
import TunedKernels

/// The OpenBLAS baseline runs the widest kernels the CPU supports: a core of a narrower instruction set that
/// OpenBLAS chose by itself (0.3.21's `Prescott` on an unknown Xeon) is replaced, one named by the environment is not.
@Suite struct OpenBLASCoreTests {
    static let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_fp16"]
    static let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]

    @Test func aGenericCoreIsReplacedByTheCPUsWidest() {
        #expect(OpenBLASCore.betterCoreType(chosen: "Prescott", flags: Self.avx512, environment: [:]) == "SkylakeX")
        #expect(OpenBLASCore.betterCoreType(chosen: "Prescott", flags: Self.avx2, environment: [:]) == "Haswell")
        #expect(OpenBLASCore.betterCoreType(chosen: "Haswell", flags: Self.avx512, environment: [:]) == "SkylakeX")
        #expect(OpenBLASCore.betterCoreType(chosen: "Sandybridge", flags: ["avx"], environment: [:]) == nil)
        #expect(OpenBLASCore.betterCoreType(chosen: "Prescott", flags: ["sse3"], environment: [:]) == nil)
    }

    @Test func aKnownCoreOrAnEnvironmentsChoiceStays() {
        for core in ["SkylakeX", "Cooperlake", "SapphireRapids"] {
            #expect(OpenBLASCore.betterCoreType(chosen: core, flags: Self.avx512, environment: [:]) == nil)
        }
        #expect(OpenBLASCore.betterCoreType(chosen: "Zen", flags: Self.avx2, environment: [:]) == nil)
        #expect(OpenBLASCore.betterCoreType(chosen: "Prescott", flags: Self.avx512, environment: ["OPENBLAS_CORETYPE": "Prescott"]) == nil)
        #expect(OpenBLASCore.betterCoreType(chosen: "Prescott", flags: Self.avx512, environment: [OpenBLASCore.correctedVariable: "Prescott"]) == nil)
    }

    @Test func flagsAreReadFromCpuinfo() {
        let cpuinfo = "processor\t: 0\nflags\t\t: fpu sse3 avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512cd\nbugs\t\t:\n"
        #expect(OpenBLASCore.level(ofFlags: OpenBLASCore.cpuFlags(cpuinfo: cpuinfo)) == .avx512)
        #expect(OpenBLASCore.cpuFlags(cpuinfo: nil).isEmpty)
        #expect(!OpenBLASCore.name.isEmpty)
    }
}

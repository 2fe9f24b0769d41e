import Autotuning
import OpenCLRuntime

/// Configurations that work before any tuning, by device type and problem shape.
enum GEMMDefaults {
    /// Valid on every device: one work-item per output element, work-groups of one.
    static let safest = Configuration(variant: "direct", ["WPTM": 1, "WPTN": 1, "DLOCALM": 1, "DLOCALN": 1, "DKU": 1])

    static let directSmall = Configuration(variant: "direct", ["WPTM": 2, "WPTN": 4, "DLOCALM": 8, "DLOCALN": 8, "DKU": 4])

    /// CLBlast-like defaults for GPUs.
    static let xgemmGPU = Configuration(variant: "xgemm", [
        "MWG": 64, "NWG": 64, "KWG": 16, "MDIMC": 16, "NDIMC": 16, "MDIMA": 16, "NDIMB": 16, "KWI": 2,
        "VWM": 2, "VWN": 2, "STRM": 0, "STRN": 0, "SA": 1, "SB": 1, "KSPLIT": 1,
    ])

    /// BLIS-style panels and a register-blocked micro-kernel for CPUs: 4 x 24 with 8-float vectors (AVX2), 6 x 32
    /// with 16-float vectors (AVX-512: 194-201 GFLOP/s against 178-194 for 4 x 24 on 1024^3 and 32768x1024x4096
    /// tn, half).
    static func packedCPU(_ limits: DeviceLimits) -> Configuration {
        limits.nativeFloatVectorWidth >= 16
            ? Configuration(variant: "packed", ["MR": 6, "NR": 32, "VW": 16, "KC": 0, "TM": 16, "TN": 1, "PLM": 1, "PLN": 2, "PKU": 2])
            : Configuration(variant: "packed", ["MR": 4, "NR": 24, "VW": 8, "KC": 0, "TM": 16, "TN": 1, "PLM": 1, "PLN": 1, "PKU": 4])
    }

    /// Few rows of C on a CPU, B stored K x N: each work-item streams 8 rows of B at a time in memory order over
    /// its K slice (their products summed in registers, the sums in a partial row in cache), then the slices are
    /// added. Measured here on 1x11008x4096 half: 29-35 GB/s, 0.93-0.99 of the streaming read, against 17-19 for
    /// one row at a time or column strips.
    static let gemvCPU = Configuration(variant: "gemv", ["GVW": 16, "GNV": 1, "GMR": 1, "GLN": 1, "KSPLIT": 4, "GSTREAM": 1, "GCR": 1, "GRB": 8])
    /// Few rows of C on a CPU, B stored N x K: each work-item reads one row of B (contiguous along K).
    static let gemvCPUTransposedB = Configuration(variant: "gemv", ["GVW": 16, "GNV": 1, "GMR": 1, "GLN": 8, "KSPLIT": 1, "GSTREAM": 0, "GCR": 1, "GRB": 1])
    /// GPU: neighbouring work-items read neighbouring vectors (coalesced), split-K for parallelism.
    static let gemvGPU = Configuration(variant: "gemv", ["GVW": 2, "GNV": 1, "GMR": 1, "GLN": 128, "KSPLIT": 4, "GSTREAM": 0, "GCR": 1, "GRB": 1])

    /// B's panels only, A read as stored, on a CPU: the default for a small N, where packing A would cost about as
    /// much as the arithmetic (measured here on 4096x64x4096 half: 138 GFLOP/s against 89 for the best packed
    /// configuration), and for every large shape with A stored M x K on a CPU with 16-float vectors (AVX-512:
    /// 1024^3 to 2048^3 at 190-218 GFLOP/s against 173-200 for the packed default).
    ///
    /// - fp16 A stored M x K is staged as fp32, 64 values of k at a time (PAC), for the micro-kernel to broadcast
    ///   from memory (4096x64x4096 half: 203-209 GFLOP/s against 140 without); fp32 A is broadcast from memory as
    ///   stored, and A stored K x M ran no faster staged.
    /// - The micro-tile fits the registers: 4 x 64 with 16-float vectors (16 of 32 vector registers), else the
    ///   packed default's 4 x 24 with 8-float vectors (12 of 16 with AVX2).
    static func packbCPU(_ problem: GEMMProblem, limits: DeviceLimits) -> Configuration {
        let stage = problem.precision == .half && !problem.layout.transposeA
        let wide = limits.nativeFloatVectorWidth >= 16
        return Configuration(variant: "packb", ["MR": 4, "NR": wide ? 64 : 24, "VW": wide ? 16 : 8, "PAC": stage ? 64 : 0,
                                                "TM": 16, "TN": 1, "PLM": 1, "PLN": 1, "PKU": 4])
    }

    /// Candidates in order of preference; the dispatcher takes the first that is valid on the device.
    static func configurations(for problem: GEMMProblem, limits: DeviceLimits) -> [Configuration] {
        let (m, n, k) = (problem.m, problem.n, problem.k)
        let kind = limits.kind
        var candidates: [Configuration] = []
        if m <= 8 && n >= 256 && k >= 256 {
            var gemv = kind != .cpu ? gemvGPU : problem.layout.transposeB ? gemvCPUTransposedB : gemvCPU
            gemv.values["GMR"] = m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8
            candidates.append(gemv)
        } else if kind == .cpu && n <= 128 && m >= 256 && k >= 256 {
            candidates.append(packbCPU(problem, limits: limits))
        } else if m * n <= 128 * 128 && k >= 1024 && k >= 16 * max(m, n) {
            var splitK = xgemmGPU
            splitK.values["KSPLIT"] = 8
            if kind == .cpu { splitK.values.merge(["MWG": 32, "NWG": 32, "MDIMC": 8, "NDIMC": 8, "MDIMA": 8, "NDIMB": 8]) { $1 } }
            candidates.append(splitK)
        } else if m * n * k <= 64 * 64 * 64 {
            candidates.append(directSmall)
        }
        if kind == .cpu {
            // packb reads A as stored: with A stored K x M (tn, tt) a large shape runs at half the speed of packed
            // (32768x1024x4096 tn half: 88 against 194 GFLOP/s).
            let packb = limits.nativeFloatVectorWidth >= 16 && !problem.layout.transposeA
            candidates += (packb ? [packbCPU(problem, limits: limits)] : []) + [packedCPU(limits), xgemmGPU]
        } else {
            candidates += [xgemmGPU, packedCPU(limits)]
        }
        return candidates + [directSmall, safest]
    }
}

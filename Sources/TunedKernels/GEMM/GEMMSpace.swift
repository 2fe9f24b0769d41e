import Autotuning

/// The GEMM kernel variants, each with its own search space.
public enum GEMMVariant: String, CaseIterable, Sendable {
    /// Local-memory tiled kernel on the operands as stored (CLBlast-Xgemm-like parameters), with split-K.
    case xgemm
    /// Small-matrix kernel: no packing, no local memory, one launch.
    case direct
    /// BLIS-style: operands packed into fp32 panels, then a register-blocked micro-kernel (CPU fast path).
    case packed
    /// The packed micro-kernel on B's panels and A as stored: for a small N, packing A costs about as much as
    /// the arithmetic.
    case packb
    /// Few rows of C (decoding, M of 1 to about 8): B streamed once per GMR rows, vector loads along its
    /// contiguous dimension, optional split-K. Memory-bound: judged against the device's streaming bandwidth.
    case gemv
}

/// The GEMM family's tunable parameters and constraints, declared once: the tuner, the dispatcher and
/// the tests all ask here whether a configuration is valid.
public enum GEMMSpace {
    /// One search space per variant for `limits` and `precision`.
    public static func spaces(limits: DeviceLimits, precision: ElementFormat, layout: GEMMLayout = .nn) -> [SearchSpace] {
        GEMMVariant.allCases.map { space($0, limits: limits, precision: precision, layout: layout) }
    }

    /// The search space of `variant`.
    public static func space(_ variant: GEMMVariant, limits: DeviceLimits, precision: ElementFormat, layout: GEMMLayout = .nn) -> SearchSpace {
        switch variant {
        case .xgemm: return xgemm(limits: limits)
        case .direct: return direct(limits: limits)
        case .packed: return packed(limits: limits)
        case .gemv: return gemv(limits: limits, layout: layout)
        case .packb: return packb(limits: limits)
        }
    }

    /// The most floats of private C tiles a packed work-item may keep between K blocks (16 KiB): more spills to
    /// memory on a GPU and overflows work-item stacks on a CPU driver.
    public static let packedPrivateFloats = 4096

    /// Bytes of local memory an xgemm configuration uses (tiles are kept as fp32).
    public static func xgemmLocalBytes(_ v: [String: Int]) -> Int {
        ((v["SA"] ?? 0) * (v["KWG"] ?? 0) * (v["MWG"] ?? 0) + (v["SB"] ?? 0) * (v["KWG"] ?? 0) * (v["NWG"] ?? 0)) * 4
    }

    static func xgemm(limits: DeviceLimits) -> SearchSpace {
        let parameters = [
            Parameter("MWG", [16, 32, 64, 128]), Parameter("NWG", [16, 32, 64, 128]), Parameter("KWG", [16, 32]),
            Parameter("MDIMC", [4, 8, 16, 32]), Parameter("NDIMC", [4, 8, 16, 32]),
            Parameter("MDIMA", [4, 8, 16, 32]), Parameter("NDIMB", [4, 8, 16, 32]),
            Parameter("KWI", [2, 8]), Parameter("VWM", [1, 2, 4, 8, 16]), Parameter("VWN", [1, 2, 4, 8, 16]),
            Parameter("STRM", [0, 1]), Parameter("STRN", [0, 1]), Parameter("SA", [0, 1]), Parameter("SB", [0, 1]),
            Parameter("KSPLIT", [1, 2, 4, 8]),
        ]
        let localBytes = limits.localMemoryBytes
        let constraints: [Constraint] = [
            .divides("KWG % KWI == 0", ["KWG", "KWI"], { $0["KWG"]! }, { $0["KWI"]! }),
            .divides("MWG % (MDIMC*VWM) == 0", ["MWG", "MDIMC", "VWM"], { $0["MWG"]! }, { $0["MDIMC"]! * $0["VWM"]! }),
            .divides("NWG % (NDIMC*VWN) == 0", ["NWG", "NDIMC", "VWN"], { $0["NWG"]! }, { $0["NDIMC"]! * $0["VWN"]! }),

            .divides("(MDIMC*NDIMC) % MDIMA == 0", ["MDIMC", "NDIMC", "MDIMA"], { $0["MDIMC"]! * $0["NDIMC"]! }, { $0["MDIMA"]! }),
            .divides("(MDIMC*NDIMC) % NDIMB == 0", ["MDIMC", "NDIMC", "NDIMB"], { $0["MDIMC"]! * $0["NDIMC"]! }, { $0["NDIMB"]! }),
            // MDIMA and NDIMB shape the loads into local memory: they apply with SA and SB, and are held at 4
            // without (a parameter the kernel does not read would only double the space).
            Constraint("SA == 1 ? MWG % (MDIMA*VWM) == 0 and KWG % ((MDIMC*NDIMC)/MDIMA) == 0 : MDIMA == 4",
                       ["SA", "MWG", "MDIMA", "VWM", "KWG", "MDIMC", "NDIMC"]) { v in
                v["SA"]! == 1 ? v["MWG"]! % (v["MDIMA"]! * v["VWM"]!) == 0 && v["KWG"]! % (v["MDIMC"]! * v["NDIMC"]! / v["MDIMA"]!) == 0
                    : v["MDIMA"]! == 4
            },
            Constraint("SB == 1 ? NWG % (NDIMB*VWN) == 0 and KWG % ((MDIMC*NDIMC)/NDIMB) == 0 : NDIMB == 4",
                       ["SB", "NWG", "NDIMB", "VWN", "KWG", "MDIMC", "NDIMC"]) { v in
                v["SB"]! == 1 ? v["NWG"]! % (v["NDIMB"]! * v["VWN"]!) == 0 && v["KWG"]! % (v["MDIMC"]! * v["NDIMC"]! / v["NDIMB"]!) == 0
                    : v["NDIMB"]! == 4
            },
            Constraint("local memory (SA*KWG*MWG + SB*KWG*NWG)*4 <= \(localBytes)", ["MWG", "NWG", "KWG", "SA", "SB"]) {
                xgemmLocalBytes($0) <= localBytes
            },
        ] + limits.workGroupConstraints(["MDIMC", "NDIMC"]) { ($0["NDIMC"]!, $0["MDIMC"]!) }
        return SearchSpace(variant: GEMMVariant.xgemm.rawValue, parameters: parameters, constraints: constraints)
    }

    static func direct(limits: DeviceLimits) -> SearchSpace {
        let parameters = [
            Parameter("WPTM", [1, 2, 4, 8]), Parameter("WPTN", [1, 2, 4, 8]),
            Parameter("DLOCALM", [1, 2, 4, 8, 16]), Parameter("DLOCALN", [1, 2, 4, 8, 16, 32]),
            Parameter("DKU", [1, 2, 4, 8]),
        ]
        let constraints = limits.workGroupConstraints(["DLOCALM", "DLOCALN"]) { ($0["DLOCALN"]!, $0["DLOCALM"]!) }
        return SearchSpace(variant: GEMMVariant.direct.rawValue, parameters: parameters, constraints: constraints)
    }

    static func packed(limits: DeviceLimits) -> SearchSpace {
        let parameters = [
            Parameter("MR", [4, 6, 8, 12, 16]), Parameter("NR", [8, 16, 24, 32]), Parameter("VW", [4, 8, 16]),
            Parameter("KC", [0, 16, 32, 64, 128, 256, 512]), Parameter("TM", [1, 2, 4, 8, 16]), Parameter("TN", [1, 2, 4]),
            Parameter("PLM", [1, 2, 4]), Parameter("PLN", [1, 2, 4]), Parameter("PKU", [1, 2, 4, 8]),
        ]
        let constraints = [
            .divides("NR % VW == 0", ["NR", "VW"], { $0["NR"]! }, { $0["VW"]! }),
            // K blocking applies to a work-item of several tiles only: with one, KC is held at 0.
            Constraint("KC == 0 or TM*TN > 1", ["KC", "TM", "TN"]) { v in v["KC"]! == 0 || v["TM"]! * v["TN"]! > 1 },
            // With K blocking over several tiles, a work-item keeps TM*TN C tiles in a private array.
            Constraint("private C tiles: KC == 0 or TM*TN == 1 or TM*TN*MR*NR <= \(packedPrivateFloats) floats", ["KC", "TM", "TN", "MR", "NR"]) { v in
                v["KC"]! == 0 || v["TM"]! * v["TN"]! == 1 || v["TM"]! * v["TN"]! * v["MR"]! * v["NR"]! <= packedPrivateFloats
            },
            Constraint("pack work-group of 64 fits the device", ["MR"]) { _ in limits.maxWorkGroupSize >= 64 && (limits.maxWorkItemSizes.first ?? 0) >= 64 },
        ] + limits.workGroupConstraints(["PLM", "PLN"]) { ($0["PLN"]!, $0["PLM"]!) }
        return SearchSpace(variant: GEMMVariant.packed.rawValue, parameters: parameters, constraints: constraints)
    }

    static func gemv(limits: DeviceLimits, layout: GEMMLayout) -> SearchSpace {
        let parameters = [
            Parameter("GVW", [1, 2, 4, 8, 16]), Parameter("GNV", [1, 2, 4, 8, 16, 32, 64]), Parameter("GMR", [1, 2, 4, 8]),
            Parameter("GLN", [1, 8, 32, 64, 128, 256]), Parameter("KSPLIT", [1, 2, 4, 8, 16]),
            // Row streaming (B's rows read in memory order, sums in a cached partial row): for B stored K x N only.
            Parameter("GSTREAM", layout.transposeB ? [0] : [0, 1]), Parameter("GCR", [1, 2, 4, 8]), Parameter("GRB", [1, 2, 4, 8]),
        ]
        let constraints = [
            // Wide column strips (CPU: each work-item streams long runs of a row) keep their sums in private memory.
            Constraint("private accumulators GMR*GNV*GVW <= 2048 floats", ["GMR", "GNV", "GVW"]) { $0["GMR"]! * $0["GNV"]! * $0["GVW"]! <= 2048 },
            // Streaming work-items are alone in their work-group, own column ranges (GCR) and step GNV <= 8 vectors at
            // a time; the others own GNV vectors of columns.
            Constraint("GSTREAM == 1 ? GLN == 1 and GNV <= 8 : GCR == 1 and GRB == 1", ["GSTREAM", "GLN", "GNV", "GCR", "GRB"]) { v in
                v["GSTREAM"]! == 1 ? v["GLN"]! == 1 && v["GNV"]! <= 8 : v["GCR"]! == 1 && v["GRB"]! == 1
            },
        ] + limits.workGroupConstraints(["GLN"]) { ($0["GLN"]!, 1) }
        return SearchSpace(variant: GEMMVariant.gemv.rawValue, parameters: parameters, constraints: constraints)
    }

    static func packb(limits: DeviceLimits) -> SearchSpace {
        let parameters = [
            Parameter("MR", [2, 4, 6, 8, 12, 16]), Parameter("NR", [8, 16, 24, 32, 64]), Parameter("VW", [4, 8, 16]),
            Parameter("PAC", [0, 16, 32, 64, 128, 256]), Parameter("TM", [1, 2, 4, 8, 16]), Parameter("TN", [1, 2, 4]),
            Parameter("PLM", [1, 2, 4]), Parameter("PLN", [1, 2, 4]), Parameter("PKU", [1, 2, 4, 8]),
        ]
        let constraints = [
            .divides("NR % VW == 0", ["NR", "VW"], { $0["NR"]! }, { $0["VW"]! }),
            // The staged rows of A are a private buffer of MR*PAC floats.
            Constraint("staged A: MR*PAC <= \(packedPrivateFloats) floats", ["MR", "PAC"]) { $0["MR"]! * $0["PAC"]! <= packedPrivateFloats },
            Constraint("pack work-group of 64 fits the device", ["MR"]) { _ in limits.maxWorkGroupSize >= 64 && (limits.maxWorkItemSizes.first ?? 0) >= 64 },
        ] + limits.workGroupConstraints(["PLM", "PLN"]) { ($0["PLN"]!, $0["PLM"]!) }
        return SearchSpace(variant: GEMMVariant.packb.rawValue, parameters: parameters, constraints: constraints)
    }
}

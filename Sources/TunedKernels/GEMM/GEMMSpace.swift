import Autotuning

/// The GEMM kernel variants, each with its own search space.
public enum GEMMVariant: String, CaseIterable, Sendable {
    /// Local-memory tiled kernel on the operands as stored (CLBlast-Xgemm-like parameters), with split-K.
    case xgemm
    /// Small-matrix kernel: no packing, no local memory, one launch.
    case direct
    /// BLIS-style: operands packed into fp32 panels, then a register-blocked micro-kernel (CPU fast path).
    case packed
}

/// The GEMM family's tunable parameters and constraints, declared once: the tuner, the dispatcher and
/// the tests all ask here whether a configuration is valid.
public enum GEMMSpace {
    /// One search space per variant for `limits` and `precision`.
    public static func spaces(limits: DeviceLimits, precision: Precision) -> [SearchSpace] {
        GEMMVariant.allCases.map { space($0, limits: limits, precision: precision) }
    }

    /// The search space of `variant`.
    public static func space(_ variant: GEMMVariant, limits: DeviceLimits, precision: Precision) -> SearchSpace {
        let halfMath = Parameter("HALF_MATH", precision == .half && limits.supportsHalf ? [0, 1] : [0])
        switch variant {
        case .xgemm: return xgemm(limits: limits, halfMath: halfMath)
        case .direct: return direct(limits: limits, halfMath: halfMath)
        case .packed: return packed(limits: limits)
        }
    }

    /// Bytes of local memory an xgemm configuration uses (tiles are kept as fp32).
    public static func xgemmLocalBytes(_ v: [String: Int]) -> Int {
        ((v["SA"] ?? 0) * (v["KWG"] ?? 0) * (v["MWG"] ?? 0) + (v["SB"] ?? 0) * (v["KWG"] ?? 0) * (v["NWG"] ?? 0)) * 4
    }

    static func xgemm(limits: DeviceLimits, halfMath: Parameter) -> SearchSpace {
        let parameters = [
            Parameter("MWG", [16, 32, 64, 128]), Parameter("NWG", [16, 32, 64, 128]), Parameter("KWG", [16, 32]),
            Parameter("MDIMC", [4, 8, 16, 32]), Parameter("NDIMC", [4, 8, 16, 32]),
            Parameter("MDIMA", [4, 8, 16, 32]), Parameter("NDIMB", [4, 8, 16, 32]),
            Parameter("KWI", [2, 8]), Parameter("VWM", [1, 2, 4, 8, 16]), Parameter("VWN", [1, 2, 4, 8, 16]),
            Parameter("STRM", [0, 1]), Parameter("STRN", [0, 1]), Parameter("SA", [0, 1]), Parameter("SB", [0, 1]),
            Parameter("KSPLIT", [1, 2, 4, 8]), halfMath,
        ]
        let localBytes = limits.localMemoryBytes
        let constraints: [Constraint] = [
            .divides("KWG % KWI == 0", ["KWG", "KWI"], { $0["KWG"]! }, { $0["KWI"]! }),
            .divides("MWG % (MDIMC*VWM) == 0", ["MWG", "MDIMC", "VWM"], { $0["MWG"]! }, { $0["MDIMC"]! * $0["VWM"]! }),
            .divides("NWG % (NDIMC*VWN) == 0", ["NWG", "NDIMC", "VWN"], { $0["NWG"]! }, { $0["NDIMC"]! * $0["VWN"]! }),
            .divides("MWG % (MDIMA*VWM) == 0", ["MWG", "MDIMA", "VWM"], { $0["MWG"]! }, { $0["MDIMA"]! * $0["VWM"]! }),
            .divides("NWG % (NDIMB*VWN) == 0", ["NWG", "NDIMB", "VWN"], { $0["NWG"]! }, { $0["NDIMB"]! * $0["VWN"]! }),
            .divides("(MDIMC*NDIMC) % MDIMA == 0", ["MDIMC", "NDIMC", "MDIMA"], { $0["MDIMC"]! * $0["NDIMC"]! }, { $0["MDIMA"]! }),
            .divides("(MDIMC*NDIMC) % NDIMB == 0", ["MDIMC", "NDIMC", "NDIMB"], { $0["MDIMC"]! * $0["NDIMC"]! }, { $0["NDIMB"]! }),
            .divides("KWG % ((MDIMC*NDIMC)/MDIMA) == 0", ["KWG", "MDIMC", "NDIMC", "MDIMA"], { $0["KWG"]! }, { $0["MDIMC"]! * $0["NDIMC"]! / $0["MDIMA"]! }),
            .divides("KWG % ((MDIMC*NDIMC)/NDIMB) == 0", ["KWG", "MDIMC", "NDIMC", "NDIMB"], { $0["KWG"]! }, { $0["MDIMC"]! * $0["NDIMC"]! / $0["NDIMB"]! }),
            Constraint("local memory (SA*KWG*MWG + SB*KWG*NWG)*4 <= \(localBytes)", ["MWG", "NWG", "KWG", "SA", "SB"]) {
                xgemmLocalBytes($0) <= localBytes
            },
        ] + limits.workGroupConstraints(["MDIMC", "NDIMC"]) { ($0["NDIMC"]!, $0["MDIMC"]!) }
        return SearchSpace(variant: GEMMVariant.xgemm.rawValue, parameters: parameters, constraints: constraints)
    }

    static func direct(limits: DeviceLimits, halfMath: Parameter) -> SearchSpace {
        let parameters = [
            Parameter("WPTM", [1, 2, 4, 8]), Parameter("WPTN", [1, 2, 4, 8]),
            Parameter("DLOCALM", [1, 2, 4, 8, 16]), Parameter("DLOCALN", [1, 2, 4, 8, 16, 32]),
            Parameter("DKU", [1, 2, 4, 8]), halfMath,
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
            Constraint("pack work-group of 64 fits the device", ["MR"]) { _ in limits.maxWorkGroupSize >= 64 && (limits.maxWorkItemSizes.first ?? 0) >= 64 },
        ] + limits.workGroupConstraints(["PLM", "PLN"]) { ($0["PLN"]!, $0["PLM"]!) }
        return SearchSpace(variant: GEMMVariant.packed.rawValue, parameters: parameters, constraints: constraints)
    }
}

import CBLAS
import Foundation

/// The kernel set OpenBLAS runs on this CPU, so that an OpenBLAS baseline is what it claims to be.
///
/// OpenBLAS chooses its kernels when it loads, from the CPU model; a release that does not know a new CPU falls
/// back to a generic core (0.3.21 runs its SSE3 `Prescott` kernels on an Intel Xeon with AVX-512, at a fifth of
/// the speed of its `SkylakeX` kernels there). `OPENBLAS_CORETYPE` overrides the choice, but only before the
/// library loads: ``reexecutingWithTheBestCoreIfNeeded(arguments:environment:)`` starts the program again with it.
public enum OpenBLASCore {
    /// The instruction sets OpenBLAS's x86-64 kernels are written for, in order.
    public enum Level: Int, Comparable, Sendable {
        case sse = 0, avx, avx2, avx512
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        /// The core to ask for at this level (`OPENBLAS_CORETYPE`).
        public var coreType: String? {
            switch self {
            case .sse: nil
            case .avx: "Sandybridge"
            case .avx2: "Haswell"
            case .avx512: "SkylakeX"
            }
        }
    }

    /// The core OpenBLAS chose (`openblas_get_corename`), e.g. `"Haswell"`, `"SkylakeX"`, `"Prescott"`.
    public static var name: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The instruction set of an OpenBLAS core name (`.sse` for the generic and pre-AVX cores).
    public static func level(ofCore core: String) -> Level {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": .avx512
        case "haswell", "zen", "excavator": .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": .avx
        default: .sse
        }
    }

    /// The widest instruction set the CPU offers that OpenBLAS has kernels for, from `/proc/cpuinfo`'s flags.
    public static func level(ofFlags flags: Set<String>) -> Level {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return .avx512 }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return .avx2 }
        if flags.contains("avx") { return .avx }
        return .sse
    }

    /// This CPU's flags (empty where `/proc/cpuinfo` cannot be read).
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> Set<String> {
        guard let line = cpuinfo?.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }

    /// The `OPENBLAS_CORETYPE` to start again with: the best core of the CPU when OpenBLAS chose a core of a
    /// narrower instruction set by itself (not when the environment already names one), else nil.
    public static func betterCoreType(chosen: String, flags: Set<String>, environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[correctedVariable] == nil else { return nil }
        let best = level(ofFlags: flags)
        return level(ofCore: chosen) < best ? best.coreType : nil
    }

    /// Set by ``reexecutingWithTheBestCoreIfNeeded(arguments:environment:)`` to the core OpenBLAS had chosen itself.
    public static let correctedVariable = "TUNEDKERNELS_OPENBLAS_CHOSE"

    /// What a report says of the core: its name, and when this program set it, what OpenBLAS had chosen alone.
    public static func report(environment: [String: String] = ProcessInfo.processInfo.environment) -> (core: String, note: String?) {
        let core = name
        if let chosen = environment[correctedVariable] {
            return (core, "OpenBLAS chose its \(chosen) kernels on this CPU by itself; run with OPENBLAS_CORETYPE=\(core), the widest this CPU supports")
        }
        if environment["OPENBLAS_CORETYPE"] != nil { return (core, "OPENBLAS_CORETYPE=\(environment["OPENBLAS_CORETYPE"]!) from the environment") }
        return (core, nil)
    }

    /// Starts this program again (same arguments) with `OPENBLAS_CORETYPE` set to the CPU's best core when
    /// OpenBLAS chose a narrower one by itself; returns when nothing needs to change (or the restart failed).
    public static func reexecutingWithTheBestCoreIfNeeded(arguments: [String] = CommandLine.arguments,
                                                          environment: [String: String] = ProcessInfo.processInfo.environment) {
        let chosen = name
        guard let better = betterCoreType(chosen: chosen, flags: cpuFlags(), environment: environment) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(correctedVariable, chosen, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &argv)
        // The restart failed: go on with the core OpenBLAS chose (the reports name it).
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(correctedVariable)
    }
}

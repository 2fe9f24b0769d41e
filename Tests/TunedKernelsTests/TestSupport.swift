import OpenCLRuntime
import TunedKernels

/// One context and dispatcher for the suite (programs built once are reused across tests).
enum Shared {
    static let context: Context? = try? Context()
    static let gemm: GEMM? = context.flatMap { try? GEMM(context: $0, database: .init()) }
}

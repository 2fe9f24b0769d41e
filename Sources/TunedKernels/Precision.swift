/// Storage precision of a kernel's data. Arithmetic accumulates in fp32 either way (unless a
/// configuration selects native half arithmetic on a device with `cl_khr_fp16`).
public enum Precision: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// fp16 storage (`half`, read and written with `vload_half`/`vstore_half`).
    case half
    /// fp32 storage.
    case single

    /// Bytes per stored element.
    public var bytes: Int { self == .half ? 2 : 4 }
    /// The value of the kernels' `PRECISION` define.
    var define: Int { self == .half ? 16 : 32 }
    public var description: String { rawValue }
}

/// A Swift element type the kernels store: `Float` (single) or `Float16` (half).
public protocol KernelScalar: BitwiseCopyable, Sendable {
    static var precision: Precision { get }
}

extension Float: KernelScalar {
    public static var precision: Precision { .single }
}

extension Float16: KernelScalar {
    public static var precision: Precision { .half }
}

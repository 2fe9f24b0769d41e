/// A GEMM call that was refused before anything was launched.
public enum GEMMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// M, N, K or the batch count is not at least 1.
    case invalidSize(String)
    /// A leading dimension is smaller than the stored row length.
    case invalidLeadingDimension(String)
    /// An offset or batch stride is negative, or C's batches overlap.
    case invalidStride(String)
    /// A buffer holds fewer elements than its offset, strides and shape reach.
    case bufferTooSmall(String)
    /// The operands are not all of one supported precision.
    case precisionMismatch(String)
    /// A buffer belongs to another context than the dispatcher's.
    case contextMismatch(String)
    /// C overlaps A or B in the same buffer.
    case aliasing(String)
    /// One matrix spans more elements than the kernels' 32-bit indexing reaches.
    case tooLarge(String)
    /// An explicitly given configuration violates the search space's constraints on this device.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .invalidSize(text), let .invalidLeadingDimension(text), let .invalidStride(text),
             let .bufferTooSmall(text), let .precisionMismatch(text), let .contextMismatch(text),
             let .aliasing(text), let .tooLarge(text), let .invalidConfiguration(text):
            "GEMM: " + text
        }
    }
}

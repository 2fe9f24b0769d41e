import Synchronization

/// Byte accounting of the device buffers of one ``Context``: what is allocated now and the most that
/// was allocated at once, so a benchmark can report peak device memory.
public final class MemoryAccount: Sendable {
    private struct State { var current = 0; var peak = 0 }
    private let state = Mutex(State())

    public init() {}

    /// Bytes allocated now.
    public var currentBytes: Int { state.withLock { $0.current } }
    /// The most bytes allocated at once since creation or the last ``resetPeak()``.
    public var peakBytes: Int { state.withLock { $0.peak } }

    /// Starts a new peak measurement from what is allocated now.
    public func resetPeak() { state.withLock { $0.peak = $0.current } }

    func allocate(_ bytes: Int) {
        state.withLock {
            $0.current += bytes
            $0.peak = max($0.peak, $0.current)
        }
    }

    func free(_ bytes: Int) { state.withLock { $0.current -= bytes } }
}

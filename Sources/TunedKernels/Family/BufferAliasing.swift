import OpenCLRuntime

/// Which output of a call shares its buffer with an input or another output (each family's refusal of aliased
/// buffers: the kernels read the inputs while they write the outputs).
public enum BufferAliasing {
    /// The message naming the first conflict, or nil.
    public static func conflict(inputs: [(String, (any AnyDeviceBuffer)?)], outputs: [(String, (any AnyDeviceBuffer)?)]) -> String? {
        let named = (inputs + outputs).compactMap { name, buffer in buffer.map { (name, $0) } }
        let outputNames = Set(outputs.map(\.0))
        for case let (output, buffer?) in outputs {
            for (other, candidate) in named where other != output && candidate.memoryHandle == buffer.memoryHandle {
                return "\(output) is the same buffer as \(other); " + (outputNames.contains(other) ? "each output needs its own buffer"
                                                                                                  : "the outputs need buffers apart from the inputs")
            }
        }
        return nil
    }
}

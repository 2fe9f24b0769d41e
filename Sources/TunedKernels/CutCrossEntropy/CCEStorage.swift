import OpenCLRuntime

/// Host <-> device conversions of cut cross-entropy's storage precisions (bfloat16 as 16-bit words).
enum CCEStorage {
    /// The bfloat16 word of `value`, rounded to nearest even (a NaN stays a NaN).
    static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16)
    }

    static func float(bfloat16 word: UInt16) -> Float { Float(bitPattern: UInt32(word) << 16) }

    /// `value` as stored in `precision`, widened back to Float.
    static func rounded(_ value: Float, _ precision: CCEPrecision) -> Float {
        switch precision {
        case .half: Float(Float16(value))
        case .single: value
        case .bfloat16: float(bfloat16: bfloat16(value))
        }
    }

    /// A device buffer of `values` in `precision` (the values should already be rounded to it).
    static func upload(_ context: Context, _ values: [Float], _ precision: CCEPrecision) throws -> any AnyDeviceBuffer {
        switch precision {
        case .half: try DeviceBuffer<Float16>(context, values.map { Float16($0) })
        case .single: try DeviceBuffer<Float>(context, values)
        case .bfloat16: try DeviceBuffer<UInt16>(context, values.map(bfloat16))
        }
    }

    /// An uninitialized device buffer of `count` elements of `precision`.
    static func buffer(_ context: Context, count: Int, _ precision: CCEPrecision) throws -> any AnyDeviceBuffer {
        switch precision {
        case .half: try DeviceBuffer<Float16>(context, count: max(count, 1))
        case .single: try DeviceBuffer<Float>(context, count: max(count, 1))
        case .bfloat16: try DeviceBuffer<UInt16>(context, count: max(count, 1))
        }
    }

    /// The first `count` elements, widened to Float.
    static func download(_ buffer: any AnyDeviceBuffer, count: Int) throws -> [Float] {
        switch buffer {
        case let half as DeviceBuffer<Float16>: try half.download(count: count).map { Float($0) }
        case let single as DeviceBuffer<Float>: try single.download(count: count)
        case let words as DeviceBuffer<UInt16>: try words.download(count: count).map(float(bfloat16:))
        default: throw CCEError.buffer("\(buffer.elementTypeName) is not a storage type of cce")
        }
    }

    /// Sets every element to NaN.
    static func poison(_ buffer: any AnyDeviceBuffer) throws { try fill(buffer, .nan) }

    /// Sets every element to `value`.
    static func fill(_ buffer: any AnyDeviceBuffer, _ value: Float) throws {
        switch buffer {
        case let half as DeviceBuffer<Float16>: try half.fill(Float16(value))
        case let single as DeviceBuffer<Float>: try single.fill(value)
        case let words as DeviceBuffer<UInt16>: try words.fill(bfloat16(value))
        default: throw CCEError.buffer("\(buffer.elementTypeName) is not a storage type of cce")
        }
    }
}

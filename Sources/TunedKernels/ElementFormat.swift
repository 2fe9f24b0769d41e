import Foundation
import OpenCLRuntime

/// How a kernel's data is stored in device memory: one layer for every family. Arithmetic is fp32 (integer formats:
/// int32 accumulation) whatever the storage.
///
/// Each format has its kernels' `PRECISION` define, its Swift storage type (the element type of its
/// ``DeviceBuffer``), host conversions (rounding to nearest, ties to even), a poison value that marks an unwritten
/// output, and upload and download through ``DeviceTensor``. Its ``tag`` is the word of the CLI, the JSON problems
/// and the tuning database's tags (`half`, `single`... as before this layer).
public enum ElementFormat: Hashable, Sendable, CustomStringConvertible {
    /// fp32 (`float`).
    case float32
    /// fp16 (`half`, read and written with `vload_half`/`vstore_half`: no `cl_khr_fp16` needed).
    case float16
    /// bfloat16: 16-bit words, the upper half of an fp32 (widened by shifting; stored rounded to nearest even).
    case bfloat16
    /// Signed 8-bit integers (quantized values; their scales are data of their own).
    case int8
    /// Unsigned 4-bit codes in [0, 15], packed two per byte, element `2i` in the low nibble of byte `i`; a
    /// quantized weight is `(code - zero) * scale` with one scale (and, with `zeroPoints`, one 4-bit zero) per group
    /// of `groupSize` consecutive elements (nil: one group per row, i.e. per output channel). Zero is 8 without
    /// zero points (symmetric).
    case int4(groupSize: Int?, zeroPoints: Bool)

    /// fp16 storage, the CLI's `half`.
    public static let half = ElementFormat.float16
    /// fp32 storage, the CLI's `single`.
    public static let single = ElementFormat.float32

    /// The word of the CLI, JSON problems and database tags: `single`, `half`, `bfloat16`, `int8`, `int4-g128`,
    /// `int4-g128-zp`, `int4-channel`.
    public var tag: String {
        switch self {
        case .float32: "single"
        case .float16: "half"
        case .bfloat16: "bfloat16"
        case .int8: "int8"
        case .int4(let group, let zeroPoints): "int4-" + (group.map { "g\($0)" } ?? "channel") + (zeroPoints ? "-zp" : "")
        }
    }

    public var description: String { tag }

    /// The format of `tag`, or nil.
    public init?(tag: String) {
        switch tag {
        case "single": self = .float32
        case "half": self = .float16
        case "bfloat16": self = .bfloat16
        case "int8": self = .int8
        default:
            var parts = tag.split(separator: "-").map(String.init)
            guard parts.first == "int4", parts.count >= 2 else { return nil }
            let zeroPoints = parts.last == "zp"
            if zeroPoints { parts.removeLast() }
            guard parts.count == 2 else { return nil }
            if parts[1] == "channel" {
                self = .int4(groupSize: nil, zeroPoints: zeroPoints)
            } else if parts[1].hasPrefix("g"), let group = Int(parts[1].dropFirst()), group > 0 {
                self = .int4(groupSize: group, zeroPoints: zeroPoints)
            } else {
                return nil
            }
        }
    }

    /// Bits per element (4 for packed int4).
    public var bits: Int {
        switch self {
        case .float32: 32
        case .float16, .bfloat16: 16
        case .int8: 8
        case .int4: 4
        }
    }

    /// Bytes per element, for the formats of whole bytes (packed int4: see ``storageBytes(count:)``).
    public var bytes: Int { max(bits / 8, 1) }

    /// Bytes that `count` elements take (packed int4: two per byte, rounded up); no overflow for any count.
    public func storageBytes(count: Int) -> Int { count / 8 * bits + (count % 8 * bits + 7) / 8 }

    /// Whether the format's parameters make sense (an int4 group of at least one element).
    public var isValid: Bool {
        if case .int4(let group, _) = self { return group.map { $0 > 0 } ?? true }
        return true
    }

    /// The value of the kernels' `PRECISION` define (`common.cl`).
    public var define: String {
        switch self {
        case .float32: "32"
        case .float16: "16"
        case .bfloat16: "0xBF16"
        case .int8: "8"
        case .int4: "4"
        }
    }

    /// Whether the format stores floating-point values (it has NaN for a poison).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16: true
        case .int8, .int4: false
        }
    }

    /// The Swift element type of the device buffer of this format.
    public var storageTypeName: String {
        switch self {
        case .float32: "Float"
        case .float16: "Float16"
        case .bfloat16: "UInt16"
        case .int8: "Int8"
        case .int4: "UInt8"
        }
    }

    /// The number of storage elements of `count` values (packed int4: one byte per two).
    func storageCount(_ count: Int) -> Int {
        if case .int4 = self { return count / 2 + count % 2 }
        return count
    }

    /// `value` as this format stores it, widened back to Float: rounded to nearest even (floats: to the format's
    /// precision; integers: to an integer, then clamped to the format's range; NaN to 0, for int4 to 8, the
    /// symmetric zero).
    public func rounded(_ value: Float) -> Float {
        switch self {
        case .float32: value
        case .float16: Float(Float16(value))
        case .bfloat16: Self.float(bfloat16: Self.bfloat16(value))
        case .int8: Float(Self.integer(value, in: -128...127))
        case .int4: Float(Self.integer(value, in: 0...15, nan: 8))
        }
    }

    /// The value an output is filled with before a kernel writes it: NaN for the floating-point formats; -128
    /// (a code symmetric int8 quantization never produces) for int8; code 15 in both nibbles for int4, which a
    /// quantizer may produce (a check cannot tell it from a written value).
    public var poison: Float {
        switch self {
        case .float32, .float16, .bfloat16: .nan
        case .int8: -128
        case .int4: 15
        }
    }

    // MARK: Conversions

    /// The bfloat16 word of `value`, rounded to nearest even (a NaN stays a NaN).
    public static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x40 }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The Float of a bfloat16 word (exact).
    public static func float(bfloat16 word: UInt16) -> Float { Float(bitPattern: UInt32(word) << 16) }

    /// `value` rounded to the nearest integer, ties to even, clamped to `range` (NaN: `nan`).
    static func integer(_ value: Float, in range: ClosedRange<Int>, nan: Int = 0) -> Int {
        guard !value.isNaN else { return nan }
        let rounded = value.rounded(.toNearestOrEven)
        if rounded <= Float(range.lowerBound) { return range.lowerBound }
        if rounded >= Float(range.upperBound) { return range.upperBound }
        return Int(rounded)
    }

    /// `values` packed as int4 codes: element `2i` in the low nibble of byte `i`, `2i + 1` in the high one (an odd
    /// count leaves the last high nibble 0).
    public static func packInt4(_ values: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: (values.count + 1) / 2)
        for (index, value) in values.enumerated() {
            let code = UInt8(integer(value, in: 0...15, nan: 8))
            bytes[index / 2] |= index % 2 == 0 ? code : code << 4
        }
        return bytes
    }

    /// The first `count` int4 codes of `bytes`.
    public static func unpackInt4(_ bytes: [UInt8], count: Int) -> [Float] {
        (0..<count).map { index -> Float in
            let byte = bytes[index / 2]
            return Float(index % 2 == 0 ? byte & 0xF : byte >> 4)
        }
    }
}

extension ElementFormat: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let tag = try container.decode(String.self)
        guard let format = ElementFormat(tag: tag) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(tag)\" is not an element format "
                                                   + "(single, half, bfloat16, int8, int4-g<group>[-zp], int4-channel[-zp])")
        }
        self = format
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(tag)
    }
}

/// A Swift element type the kernels store directly: `Float` (single) or `Float16` (half).
public protocol KernelScalar: BitwiseCopyable, Sendable {
    static var format: ElementFormat { get }
}

extension Float: KernelScalar {
    public static var format: ElementFormat { .float32 }
}

extension Float16: KernelScalar {
    public static var format: ElementFormat { .float16 }
}

/// A tensor on the device: a buffer, the format of its elements and its shape (row-major, the last dimension
/// contiguous). The call APIs take tensors, so a buffer of the wrong type or size is refused by name, and the
/// harnesses and tests upload, poison and download through them in any format.
public struct DeviceTensor: Sendable {
    public let buffer: any AnyDeviceBuffer
    public let format: ElementFormat
    public let shape: [Int]

    /// Elements the shape holds.
    public var count: Int { shape.reduce(1, *) }

    /// A view of `buffer` as a tensor of `format` and `shape`.
    /// - Throws: ``TensorError`` when the buffer's element type is not the format's storage type or the buffer
    ///   holds fewer elements than the shape.
    public init(_ buffer: any AnyDeviceBuffer, format: ElementFormat, shape: [Int]) throws {
        guard buffer.elementTypeName == format.storageTypeName else {
            throw TensorError("a \(format) tensor is stored as \(format.storageTypeName), not \(buffer.elementTypeName)")
        }
        let elements = try Self.count(of: shape, format: format)
        guard buffer.count >= format.storageCount(elements) else {
            throw TensorError("the buffer holds \(buffer.count) \(buffer.elementTypeName) elements; a \(format) tensor of shape \(shape) needs "
                              + "\(format.storageCount(elements))")
        }
        self.buffer = buffer
        self.format = format
        self.shape = shape
    }

    /// A buffer of `Float`, `Float16`, `UInt16` (bfloat16 words) or `Int8` as a tensor of its format, one dimension
    /// of all its elements unless `shape` is given (a `UInt8` buffer of packed int4 needs ``init(_:format:shape:)``,
    /// which says its groups).
    public init<Element>(_ buffer: DeviceBuffer<Element>, shape: [Int]? = nil) throws {
        let formats: [ElementFormat] = [.float32, .float16, .bfloat16, .int8]
        guard let format = formats.first(where: { $0.storageTypeName == buffer.elementTypeName }) else {
            throw TensorError("a buffer of \(buffer.elementTypeName) does not tell its format: give it (DeviceTensor(_:format:shape:))")
        }
        try self.init(buffer, format: format, shape: shape ?? [buffer.count])
    }

    /// A new tensor holding `values` in `format` (rounded to nearest even; see ``ElementFormat/rounded(_:)``).
    public init(_ context: Context, _ values: [Float], format: ElementFormat, shape: [Int]? = nil) throws {
        let buffer: any AnyDeviceBuffer
        switch format {
        case .float32: buffer = try DeviceBuffer<Float>(context, values.isEmpty ? [0] : values)
        case .float16: buffer = try DeviceBuffer<Float16>(context, values.isEmpty ? [0] : values.map { Float16($0) })
        case .bfloat16: buffer = try DeviceBuffer<UInt16>(context, values.isEmpty ? [0] : values.map(ElementFormat.bfloat16))
        case .int8: buffer = try DeviceBuffer<Int8>(context, values.isEmpty ? [0] : values.map { Int8(ElementFormat.integer($0, in: -128...127)) })
        case .int4: buffer = try DeviceBuffer<UInt8>(context, values.isEmpty ? [0] : ElementFormat.packInt4(values))
        }
        try self.init(buffer, format: format, shape: shape ?? [values.count])
    }

    /// The elements of `shape`, checked: sizes of at least 0, a product an Int holds, a valid format.
    static func count(of shape: [Int], format: ElementFormat) throws -> Int {
        guard format.isValid else { throw TensorError("\(format) is not a valid format (an int4 group holds at least one element)") }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError("the shape \(shape) has a negative size") }
        var elements = 1
        for size in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: size)
            guard !overflow else { throw TensorError("the shape \(shape) holds more elements than an Int counts") }
            elements = product
        }
        return elements
    }

    /// A new tensor of `format` and `shape`, filled with the format's poison (`poisoned` false: left as the device
    /// allocates it, for a buffer that is written before it is read).
    public init(_ context: Context, format: ElementFormat, shape: [Int], poisoned: Bool = true) throws {
        let count = max(format.storageCount(try Self.count(of: shape, format: format)), 1)
        let buffer: any AnyDeviceBuffer
        switch format {
        case .float32: buffer = try DeviceBuffer<Float>(context, count: count)
        case .float16: buffer = try DeviceBuffer<Float16>(context, count: count)
        case .bfloat16: buffer = try DeviceBuffer<UInt16>(context, count: count)
        case .int8: buffer = try DeviceBuffer<Int8>(context, count: count)
        case .int4: buffer = try DeviceBuffer<UInt8>(context, count: count)
        }
        try self.init(buffer, format: format, shape: shape)
        if poisoned { try poison() }
    }

    /// The first `count` elements (by default all), widened to Float (int formats: their codes).
    public func download(count: Int? = nil) throws -> [Float] {
        let count = count ?? self.count
        switch buffer {
        case let b as DeviceBuffer<Float>: return try b.download(count: count)
        case let b as DeviceBuffer<Float16>: return try b.download(count: count).map { Float($0) }
        case let b as DeviceBuffer<UInt16>: return try b.download(count: count).map(ElementFormat.float(bfloat16:))
        case let b as DeviceBuffer<Int8>: return try b.download(count: count).map { Float($0) }
        case let b as DeviceBuffer<UInt8>: return ElementFormat.unpackInt4(try b.download(count: (count + 1) / 2), count: count)
        default: throw TensorError("\(buffer.elementTypeName) is not the storage of an element format")
        }
    }

    /// Sets every element to `value` as the format stores it.
    public func fill(_ value: Float) throws {
        switch buffer {
        case let b as DeviceBuffer<Float>: try b.fill(value)
        case let b as DeviceBuffer<Float16>: try b.fill(Float16(value))
        case let b as DeviceBuffer<UInt16>: try b.fill(ElementFormat.bfloat16(value))
        case let b as DeviceBuffer<Int8>: try b.fill(Int8(ElementFormat.integer(value, in: -128...127)))
        case let b as DeviceBuffer<UInt8>:
            let code = UInt8(ElementFormat.integer(value, in: 0...15))
            try b.fill(code | code << 4)
        default: throw TensorError("\(buffer.elementTypeName) is not the storage of an element format")
        }
    }

    /// Fills the tensor with its format's poison (``ElementFormat/poison``).
    public func poison() throws { try fill(format.poison) }
}

/// A buffer that does not hold the tensor it is given as.
public struct TensorError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

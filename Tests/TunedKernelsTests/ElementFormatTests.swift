import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// The element-format layer: tags (the database's and the CLI's words), host conversions rounding to nearest even,
/// int4 packing, poison values, and tensors uploaded, poisoned and read back in every format.
@Suite struct ElementFormatTests {
    static let all: [ElementFormat] = [.float32, .float16, .bfloat16, .int8, .int4(groupSize: 128, zeroPoints: false),
                                       .int4(groupSize: 32, zeroPoints: true), .int4(groupSize: nil, zeroPoints: false)]

    @Test func tagsKeepTheirValuesAndRoundTrip() throws {
        #expect(ElementFormat.half.tag == "half" && ElementFormat.single.tag == "single" && ElementFormat.bfloat16.tag == "bfloat16")
        #expect(Self.all.map(\.tag) == ["single", "half", "bfloat16", "int8", "int4-g128", "int4-g32-zp", "int4-channel"])
        for format in Self.all {
            #expect(ElementFormat(tag: format.tag) == format)
            let json = try JSONEncoder().encode([format])
            #expect(try JSONDecoder().decode([ElementFormat].self, from: json) == [format])
        }
        for bad in ["double", "int4", "int4-g0", "int4-gx", "int4-g32-zz", ""] { #expect(ElementFormat(tag: bad) == nil, "\(bad)") }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([ElementFormat].self, from: Data(#"["fp8"]"#.utf8)) }
    }

    @Test func conversionsRoundToNearestEven() {
        // fp16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.
        #expect(ElementFormat.half.rounded(1 + 0x1p-11) == 1 && ElementFormat.half.rounded(1 + 3 * 0x1p-11) == 1 + 2 * 0x1p-10)
        // bfloat16: 8 bits of mantissa.
        #expect(ElementFormat.bfloat16.rounded(1 + 0x1p-8) == 1 && ElementFormat.bfloat16.rounded(1 + 3 * 0x1p-8) == 1 + 2 * 0x1p-7)
        #expect(ElementFormat.bfloat16.rounded(.nan).isNaN && ElementFormat.bfloat16.rounded(.infinity) == .infinity)
        // Integers: ties to even, clamped, NaN to 0.
        #expect([0.5, 1.5, 2.5, -0.5, -1.5, 200, -200, .nan].map(ElementFormat.int8.rounded) == [0, 2, 2, 0, -2, 127, -128, 0])
        let int4 = ElementFormat.int4(groupSize: 64, zeroPoints: false)
        #expect([0.5, 7.5, 8.5, -3, 99, .nan].map(int4.rounded) == [0, 8, 8, 0, 15, 8])
        #expect(ElementFormat.float32.rounded(0.1) == 0.1)
    }

    @Test func int4PacksTheLowNibbleFirst() {
        #expect(ElementFormat.packInt4([1, 2, 15, 0, 7]) == [0x21, 0x0F, 0x07])
        #expect(ElementFormat.unpackInt4([0x21, 0x0F, 0x07], count: 5) == [1, 2, 15, 0, 7])
        #expect(ElementFormat.int4(groupSize: 32, zeroPoints: false).storageBytes(count: 7) == 4)
        #expect(ElementFormat.bfloat16.storageBytes(count: 7) == 14 && ElementFormat.int8.bytes == 1 && ElementFormat.single.bytes == 4)
    }

    @Test func tensorsUploadPoisonAndDownloadInEveryFormat() throws {
        let context = try #require(Shared.context)
        let values: [Float] = [0.25, -1.5, 3, 7.5, 1 + 0x1p-11, 100, -0.5]
        for format in Self.all {
            let tensor = try DeviceTensor(context, values, format: format, shape: [7])
            #expect(try tensor.download() == values.map(format.rounded), "\(format)")
            #expect(tensor.buffer.elementTypeName == format.storageTypeName && tensor.buffer.count == format.storageBytes(count: 7) / max(format.bytes, 1))
            try tensor.poison()
            let poisoned = try tensor.download()
            #expect(format.isFloatingPoint ? poisoned.allSatisfy(\.isNaN) : poisoned == [Float](repeating: format.poison, count: 7), "\(format)")
            let empty = try DeviceTensor(context, format: format, shape: [3, 5])
            let emptyValues = try empty.download()
            #expect(empty.count == 15 && (!format.isFloatingPoint || emptyValues.allSatisfy(\.isNaN)))
        }
    }

    @Test func aBufferThatDoesNotHoldItsTensorIsRefused() throws {
        let context = try #require(Shared.context)
        #expect { try DeviceTensor(try DeviceBuffer<Float>(context, count: 6), format: .half, shape: [2, 3]) }
            throws: { "\($0)".contains("a half tensor is stored as Float16, not Float") }
        #expect { try DeviceTensor(try DeviceBuffer<Float>(context, count: 5), format: .single, shape: [2, 3]) } throws: { "\($0)".contains("needs 6") }
        #expect { try DeviceTensor(try DeviceBuffer<UInt8>(context, count: 4)) } throws: { "\($0)".contains("does not tell its format") }
        #expect { try DeviceTensor(try DeviceBuffer<Float>(context, count: 4), format: .single, shape: [-1]) } throws: { "\($0)".contains("negative") }
        #expect { try DeviceTensor(try DeviceBuffer<Float>(context, count: 4), format: .single, shape: [Int.max, 2]) } throws: { "\($0)".contains("more elements") }
        #expect { try DeviceTensor(context, format: .half, shape: [Int.max, 3]) } throws: { "\($0)".contains("more elements") }
        #expect { try DeviceTensor(context, format: .int4(groupSize: 0, zeroPoints: false), shape: [4]) } throws: { "\($0)".contains("not a valid format") }
        #expect(ElementFormat.int4(groupSize: 32, zeroPoints: false).storageBytes(count: .max) == Int.max / 2 + 1)
        let words = try DeviceTensor(try DeviceBuffer<UInt16>(context, count: 4))
        #expect(words.format == .bfloat16 && words.shape == [4])
    }
}

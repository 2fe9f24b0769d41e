import OpenCLRuntime
import Testing

@Suite struct DeviceBufferTests {
    @Test func roundTripAndPartialTransfers() throws {
        let context = try Context(programCacheDirectory: nil)
        let buffer = try DeviceBuffer<Float>(context, [1, 2, 3, 4, 5])
        #expect(try buffer.download() == [1, 2, 3, 4, 5])
        try buffer.upload([9, 8], at: 3)
        #expect(try buffer.download(offset: 2, count: 3) == [3, 9, 8])
        let halves = try DeviceBuffer<Float16>(context, [0.5, -2])
        #expect(try halves.download() == [0.5, -2])
        #expect(halves.byteCount == 4)
    }

    @Test func outOfRangeTransfersAndEmptyBuffersThrow() throws {
        let context = try Context(programCacheDirectory: nil)
        let buffer = try DeviceBuffer<Float>(context, count: 4)
        #expect(throws: OpenCLError.self) { try buffer.upload([1, 2, 3], at: 2) }
        #expect(throws: OpenCLError.self) { _ = try buffer.download(offset: 3, count: 2) }
        #expect(throws: OpenCLError.self) { _ = try DeviceBuffer<Float>(context, count: 0) }
        #expect(throws: OpenCLError.self) { _ = try DeviceBuffer<Float>(context, count: Int.max / 2) }
    }

    @Test func byteAccountingTracksCurrentAndPeak() throws {
        let context = try Context(programCacheDirectory: nil)
        #expect(context.memory.currentBytes == 0)
        do {
            let a = try DeviceBuffer<Float>(context, count: 1000)
            let b = try DeviceBuffer<Float16>(context, count: 1000)
            #expect(context.memory.currentBytes == 6000)
            _ = (a, b)
        }
        #expect(context.memory.currentBytes == 0)
        #expect(context.memory.peakBytes == 6000)
        context.memory.resetPeak()
        #expect(context.memory.peakBytes == 0)
    }
}

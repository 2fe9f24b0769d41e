import OpenCLRuntime

/// A matrix (or a strided batch of matrices) in a device buffer, row-major.
public struct MatrixOperand: Sendable {
    public var buffer: any AnyDeviceBuffer
    /// Index of the first element of the first matrix.
    public var offset: Int
    /// Elements between the starts of two consecutive rows.
    public var leadingDimension: Int
    /// Elements between the starts of two consecutive matrices of a batch.
    public var batchStride: Int

    public init(_ buffer: any AnyDeviceBuffer, offset: Int = 0, leadingDimension: Int, batchStride: Int = 0) {
        self.buffer = buffer
        self.offset = offset
        self.leadingDimension = leadingDimension
        self.batchStride = batchStride
    }

    /// The storage precision of the buffer's element type, or nil for a type the kernels do not store.
    var precision: Precision? {
        switch buffer {
        case is DeviceBuffer<Float>: .single
        case is DeviceBuffer<Float16>: .half
        default: nil
        }
    }

    /// One past the last element a batch of `rows` x `columns` matrices reaches, or nil when that overflows an Int.
    func end(rows: Int, columns: Int, batch: Int) -> Int? {
        let (batches, o1) = (batch - 1).multipliedReportingOverflow(by: batchStride)
        let (span, o2) = (rows - 1).multipliedReportingOverflow(by: leadingDimension)
        let (first, o3) = offset.addingReportingOverflow(batches)
        let (second, o4) = first.addingReportingOverflow(span)
        let (end, o5) = second.addingReportingOverflow(columns)
        return o1 || o2 || o3 || o4 || o5 ? nil : end
    }
}

/// A device buffer of `precision` holding `values` (rounded to fp16 for half).
func makeDeviceBuffer(_ context: Context, _ values: [Float], precision: Precision) throws -> any AnyDeviceBuffer {
    precision == .half ? try DeviceBuffer<Float16>(context, values.map { Float16($0) }) : try DeviceBuffer<Float>(context, values)
}

/// The contents of a Float or Float16 device buffer, widened to Float.
func downloadFloats(_ buffer: any AnyDeviceBuffer) throws -> [Float] {
    switch buffer {
    case let half as DeviceBuffer<Float16>: try half.download().map { Float($0) }
    case let single as DeviceBuffer<Float>: try single.download()
    default: throw GEMMError.precisionMismatch("\(buffer.elementTypeName) is not a GEMM element type")
    }
}

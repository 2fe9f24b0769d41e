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

    /// A tensor as an operand: its buffer, with the leading dimension of its last dimension (a batch of matrices of
    /// shape [batch, rows, columns] gets the batch stride rows x columns) unless given.
    /// - Throws: ``GEMMError/precisionMismatch(_:)`` for a format GEMM does not store (half and single).
    public init(_ tensor: DeviceTensor, offset: Int = 0, leadingDimension: Int? = nil, batchStride: Int? = nil) throws {
        guard GEMM.formats.contains(tensor.format) else {
            throw GEMMError.precisionMismatch("a \(tensor.format) tensor is not a GEMM operand (GEMM stores \(GEMM.formats.map(\.tag).joined(separator: ", ")))")
        }
        let columns = tensor.shape.last ?? 1
        let rows = tensor.shape.count >= 2 ? tensor.shape[tensor.shape.count - 2] : 1
        self.init(tensor.buffer, offset: offset, leadingDimension: leadingDimension ?? columns,
                  batchStride: batchStride ?? (tensor.shape.count >= 3 ? rows * columns : 0))
    }

    /// The storage precision of the buffer's element type, or nil for a type the kernels do not store.
    var precision: ElementFormat? { ElementFormat.gemmFormat(of: buffer) }

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

/// The contents of a Float or Float16 device buffer, widened to Float.
func downloadFloats(_ buffer: any AnyDeviceBuffer) throws -> [Float] {
    guard let format = ElementFormat.gemmFormat(of: buffer) else {
        throw GEMMError.precisionMismatch("\(buffer.elementTypeName) is not a GEMM element type")
    }
    return try DeviceTensor(buffer, format: format, shape: [buffer.count]).download()
}

extension ElementFormat {
    /// The GEMM storage format of a buffer's element type (Float: single, Float16: half), or nil.
    static func gemmFormat(of buffer: any AnyDeviceBuffer) -> ElementFormat? {
        GEMM.formats.first { $0.storageTypeName == buffer.elementTypeName }
    }
}

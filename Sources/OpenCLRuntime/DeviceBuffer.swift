import COpenCL

/// What every ``DeviceBuffer`` offers regardless of its element type.
public protocol AnyDeviceBuffer: AnyObject, Sendable {
    /// Number of elements.
    var count: Int { get }
    /// Size in bytes.
    var byteCount: Int { get }
    /// The context that owns the buffer.
    var context: Context { get }
    /// The element type's name, for error messages.
    var elementTypeName: String { get }
    var memoryHandle: cl_mem { get }
}

/// A typed buffer in device memory, released when the last reference goes away.
///
/// Its bytes are counted in the context's ``MemoryAccount`` from allocation to release.
///
/// ```swift
/// let a = try DeviceBuffer<Float>(context, [1, 2, 3, 4])
/// try a.upload([5, 6, 7, 8])
/// let back = try a.download()
/// ```
public final class DeviceBuffer<Element: BitwiseCopyable>: AnyDeviceBuffer, @unchecked Sendable {
    public let memoryHandle: cl_mem
    public let count: Int
    public let context: Context

    public var byteCount: Int { count * MemoryLayout<Element>.stride }
    public var elementTypeName: String { String(describing: Element.self) }

    /// Allocates `count` uninitialized elements.
    ///
    /// **Edge cases:** `count` must be at least 1 (OpenCL has no empty buffers); a larger request
    /// than the device's largest allocation throws before asking the driver.
    public init(_ context: Context, count: Int) throws {
        guard count >= 1 else {
            throw OpenCLError(code: CL_INVALID_BUFFER_SIZE, call: "clCreateBuffer", detail: "a buffer needs at least 1 element, got \(count)")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard !overflow, bytes <= context.device.maxAllocationBytes else {
            throw OpenCLError(code: CL_INVALID_BUFFER_SIZE, call: "clCreateBuffer",
                              detail: "\(count) elements of \(Element.self) exceed the device's largest allocation (\(context.device.maxAllocationBytes) bytes)")
        }
        memoryHandle = try create("clCreateBuffer", detail: "\(bytes) bytes") { status in
            clCreateBuffer(context.handle, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, status)
        }
        self.count = count
        self.context = context
        context.memory.allocate(bytes)
    }

    /// Allocates a buffer holding a copy of `elements`.
    public convenience init(_ context: Context, _ elements: [Element]) throws {
        try self.init(context, count: elements.count)
        try upload(elements)
    }

    deinit {
        clReleaseMemObject(memoryHandle)
        context.memory.free(byteCount)
    }

    /// The raw `cl_mem`, for interoperating with other OpenCL libraries. Valid while the buffer lives.
    public var rawHandle: OpaquePointer { memoryHandle }

    /// Copies `elements` to the device, starting at element `offset`, and waits for the copy.
    public func upload(_ elements: [Element], at offset: Int = 0) throws {
        guard offset >= 0, offset + elements.count <= count else {
            throw OpenCLError(code: CL_INVALID_VALUE, call: "clEnqueueWriteBuffer",
                              detail: "\(elements.count) elements at offset \(offset) do not fit a buffer of \(count)")
        }
        if elements.isEmpty { return }
        let stride = MemoryLayout<Element>.stride
        try elements.withUnsafeBytes { raw in
            try check(clEnqueueWriteBuffer(context.queue.handle, memoryHandle, cl_bool(CL_TRUE), offset * stride,
                                           raw.count, raw.baseAddress, 0, nil, nil), "clEnqueueWriteBuffer")
        }
    }

    /// Copies `count` elements from element `offset` (by default the whole buffer) back to the host,
    /// after every command enqueued before it.
    public func download(offset: Int = 0, count requested: Int? = nil) throws -> [Element] {
        let length = requested ?? (count - offset)
        guard offset >= 0, length >= 0, offset + length <= count else {
            throw OpenCLError(code: CL_INVALID_VALUE, call: "clEnqueueReadBuffer",
                              detail: "\(length) elements at offset \(offset) exceed a buffer of \(count)")
        }
        if length == 0 { return [] }
        let stride = MemoryLayout<Element>.stride
        return try [Element](unsafeUninitializedCapacity: length) { storage, initialized in
            try check(clEnqueueReadBuffer(context.queue.handle, memoryHandle, cl_bool(CL_TRUE), offset * stride,
                                          length * stride, UnsafeMutableRawPointer(storage.baseAddress), 0, nil, nil),
                      "clEnqueueReadBuffer")
            initialized = length
        }
    }

    /// Sets every element to `value`, and waits.
    public func fill(_ value: Element) throws {
        try upload([Element](repeating: value, count: count))
    }
}

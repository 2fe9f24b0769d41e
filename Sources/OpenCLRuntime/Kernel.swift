import COpenCL

/// A value that can be passed as an OpenCL kernel argument.
public protocol KernelArgument {
    func set(on kernel: cl_kernel, at index: cl_uint) throws
}

extension KernelArgument where Self: BitwiseCopyable {
    public func set(on kernel: cl_kernel, at index: cl_uint) throws {
        var value = self
        try check(clSetKernelArg(kernel, index, MemoryLayout<Self>.size, &value), "clSetKernelArg", detail: "argument \(index)")
    }
}

extension Int32: KernelArgument {}
extension UInt32: KernelArgument {}
extension Int64: KernelArgument {}
extension UInt64: KernelArgument {}
extension Float: KernelArgument {}
extension Double: KernelArgument {}

extension DeviceBuffer: KernelArgument {
    public func set(on kernel: cl_kernel, at index: cl_uint) throws {
        var handle: cl_mem? = memoryHandle
        try check(clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &handle), "clSetKernelArg", detail: "buffer argument \(index)")
    }
}

/// A `__local` buffer of `bytes` bytes.
public struct LocalMemory: KernelArgument {
    public let bytes: Int
    public init(bytes: Int) { self.bytes = bytes }
    public func set(on kernel: cl_kernel, at index: cl_uint) throws {
        try check(clSetKernelArg(kernel, index, bytes, nil), "clSetKernelArg", detail: "local argument \(index)")
    }
}

/// A kernel function of a built ``Program``. A `Kernel` holds its arguments, so use one per thread.
public final class Kernel {
    let handle: cl_kernel
    public let name: String
    /// Keeps the program alive while the kernel lives.
    let program: Program

    init(handle: cl_kernel, name: String, program: Program) {
        self.handle = handle
        self.name = name
        self.program = program
    }

    deinit { clReleaseKernel(handle) }

    /// Sets all arguments, in order.
    public func setArguments(_ arguments: [any KernelArgument]) throws {
        for (index, argument) in arguments.enumerated() {
            try argument.set(on: handle, at: cl_uint(index))
        }
    }

    /// Enqueues the kernel over `global` work-items in work-groups of `local` (or the driver's choice
    /// when `nil`) and returns its event.
    ///
    /// **Edge cases:** every global size must be a positive multiple of the local size (OpenCL 1.2);
    /// a violation throws before anything is enqueued.
    @discardableResult
    public func launch(on queue: CommandQueue, global: [Int], local: [Int]? = nil, arguments: [any KernelArgument]? = nil) throws -> Event {
        if let arguments { try setArguments(arguments) }
        guard (1...3).contains(global.count), local == nil || local!.count == global.count else {
            throw OpenCLError(code: CL_INVALID_WORK_DIMENSION, call: "clEnqueueNDRangeKernel", detail: "\(name): global \(global), local \(local ?? [])")
        }
        if let local {
            for (g, l) in zip(global, local) where l < 1 || g < 1 || g % l != 0 {
                throw OpenCLError(code: CL_INVALID_WORK_GROUP_SIZE, call: "clEnqueueNDRangeKernel",
                                  detail: "\(name): global size \(global) is not a positive multiple of local size \(local)")
            }
        }
        var event: cl_event?
        let status = global.withUnsafeBufferPointer { globalSizes in
            if let local {
                return local.withUnsafeBufferPointer { localSizes in
                    clEnqueueNDRangeKernel(queue.handle, handle, cl_uint(global.count), nil, globalSizes.baseAddress,
                                           localSizes.baseAddress, 0, nil, &event)
                }
            }
            return clEnqueueNDRangeKernel(queue.handle, handle, cl_uint(global.count), nil, globalSizes.baseAddress, nil, 0, nil, &event)
        }
        try check(status, "clEnqueueNDRangeKernel", detail: "\(name) global \(global) local \(local.map { "\($0)" } ?? "nil")")
        guard let event else { throw OpenCLError(code: CL_INVALID_EVENT, call: "clEnqueueNDRangeKernel", detail: "no event") }
        return Event(event)
    }
}

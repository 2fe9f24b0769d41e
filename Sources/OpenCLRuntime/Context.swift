import COpenCL

/// An OpenCL context on one device, with its profiling command queue, the byte accounting of its
/// buffers and its program cache.
///
/// ```swift
/// let context = try Context()                 // TUNEDKERNELS_DEVICE, else the first GPU, else the first device
/// let x = try DeviceBuffer<Float>(context, [1, 2, 3])
/// ```
public final class Context: @unchecked Sendable {
    let handle: cl_context
    public let device: Device
    /// The in-order command queue with profiling enabled that every launch of this context uses.
    public let queue: CommandQueue
    /// Current and peak bytes of the buffers allocated in this context.
    public let memory = MemoryAccount()
    /// Built programs, in memory and on disk.
    public let programs: ProgramCache

    /// Creates a context on `device` (by default ``Device/selected(environment:)``).
    ///
    /// - Parameters:
    ///   - programCacheDirectory: where built program binaries are kept between processes; `nil` keeps them in
    ///     memory only. Defaults to ``ProgramCache/defaultDirectory()``.
    ///   - programBinaries: when binaries go to that directory (by default, unless the driver keeps compiled kernels
    ///     itself, as PoCL does).
    public init(device: Device? = nil, programCacheDirectory: String? = ProgramCache.defaultDirectory(),
                programBinaries: ProgramCache.BinaryPolicy = .unlessTheDriverCaches) throws {
        let device = try device ?? Device.selected()
        self.device = device
        var deviceID: cl_device_id? = device.id
        handle = try create("clCreateContext") { status in
            clCreateContext(nil, 1, &deviceID, nil, nil, status)
        }
        do {
            queue = try CommandQueue(context: handle, device: device)
        } catch {
            clReleaseContext(handle)
            throw error
        }
        programs = ProgramCache(directory: programCacheDirectory, binaries: programBinaries)
    }

    deinit { clReleaseContext(handle) }
}

/// An in-order command queue with profiling enabled.
public final class CommandQueue: @unchecked Sendable {
    let handle: cl_command_queue

    init(context: cl_context, device: Device) throws {
        handle = try create("clCreateCommandQueue") { status in
            clCreateCommandQueue(context, device.id, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), status)
        }
    }

    deinit { clReleaseCommandQueue(handle) }

    /// The raw `cl_command_queue`, for interoperating with other OpenCL libraries (e.g. CLBlast).
    /// It stays valid while this queue lives.
    public var rawHandle: OpaquePointer { handle }

    /// Blocks until every command enqueued so far has completed.
    public func finish() throws { try check(clFinish(handle), "clFinish") }

    /// Submits enqueued commands to the device without waiting.
    public func flush() throws { try check(clFlush(handle), "clFlush") }
}

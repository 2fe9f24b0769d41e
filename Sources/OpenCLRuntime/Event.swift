import COpenCL

/// A command's completion event, with its profiled device time.
public final class Event: @unchecked Sendable {
    let handle: cl_event

    init(_ handle: cl_event) { self.handle = handle }

    /// Takes ownership of a raw event created by another OpenCL library (e.g. CLBlast).
    public init(adopting raw: OpaquePointer) { handle = raw }

    deinit { clReleaseEvent(handle) }

    /// Blocks until the command has completed.
    public func wait() throws {
        var event: cl_event? = handle
        try check(clWaitForEvents(1, &event), "clWaitForEvents")
    }

    /// Device time stamps in nanoseconds (start, end) of the completed command.
    public func profile() throws -> (start: UInt64, end: UInt64) {
        try wait()
        return (try timestamp(CL_PROFILING_COMMAND_START, "CL_PROFILING_COMMAND_START"),
                try timestamp(CL_PROFILING_COMMAND_END, "CL_PROFILING_COMMAND_END"))
    }

    /// Seconds between the start and the end of the completed command on the device.
    public func seconds() throws -> Double {
        let (start, end) = try profile()
        return Double(end &- start) * 1e-9
    }

    /// Seconds from the start of the first to the end of the last of `events` (in queue order).
    public static func span(_ events: [Event]) throws -> Double {
        guard let first = events.first, let last = events.last else { return 0 }
        let start = try first.profile().start
        let end = try last.profile().end
        return Double(end &- start) * 1e-9
    }

    private func timestamp(_ parameter: Int32, _ label: String) throws -> UInt64 {
        var value: cl_ulong = 0
        try check(clGetEventProfilingInfo(handle, cl_profiling_info(parameter), MemoryLayout<cl_ulong>.size, &value, nil),
                  "clGetEventProfilingInfo(\(label))")
        return value
    }
}

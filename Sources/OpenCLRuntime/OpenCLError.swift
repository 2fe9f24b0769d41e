import COpenCL

/// An OpenCL call that returned an error status.
///
/// Every OpenCL status code in this module goes through ``check(_:_:)``, so each error names the
/// call that failed and the code's symbolic name.
public struct OpenCLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The raw status code, e.g. `-5` for `CL_OUT_OF_RESOURCES`.
    public let code: Int32
    /// The OpenCL function (and, where useful, what it was doing), e.g. `clBuildProgram`.
    public let call: String
    /// Extra text: a build log, a kernel name.
    public let detail: String?

    public init(code: Int32, call: String, detail: String? = nil) {
        self.code = code
        self.call = call
        self.detail = detail
    }

    /// The symbolic name of ``code``, e.g. `CL_INVALID_WORK_GROUP_SIZE`.
    public var name: String { Self.name(of: code) }

    public var description: String {
        var text = "\(call) failed with \(name) (\(code))"
        if let detail, !detail.isEmpty { text += ": \(detail)" }
        return text
    }

    static func name(of code: Int32) -> String {
        switch code {
        case 0: "CL_SUCCESS"
        case -1: "CL_DEVICE_NOT_FOUND"
        case -2: "CL_DEVICE_NOT_AVAILABLE"
        case -3: "CL_COMPILER_NOT_AVAILABLE"
        case -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE"
        case -5: "CL_OUT_OF_RESOURCES"
        case -6: "CL_OUT_OF_HOST_MEMORY"
        case -7: "CL_PROFILING_INFO_NOT_AVAILABLE"
        case -8: "CL_MEM_COPY_OVERLAP"
        case -9: "CL_IMAGE_FORMAT_MISMATCH"
        case -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED"
        case -11: "CL_BUILD_PROGRAM_FAILURE"
        case -12: "CL_MAP_FAILURE"
        case -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET"
        case -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"
        case -15: "CL_COMPILE_PROGRAM_FAILURE"
        case -16: "CL_LINKER_NOT_AVAILABLE"
        case -17: "CL_LINK_PROGRAM_FAILURE"
        case -18: "CL_DEVICE_PARTITION_FAILED"
        case -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"
        case -30: "CL_INVALID_VALUE"
        case -31: "CL_INVALID_DEVICE_TYPE"
        case -32: "CL_INVALID_PLATFORM"
        case -33: "CL_INVALID_DEVICE"
        case -34: "CL_INVALID_CONTEXT"
        case -35: "CL_INVALID_QUEUE_PROPERTIES"
        case -36: "CL_INVALID_COMMAND_QUEUE"
        case -37: "CL_INVALID_HOST_PTR"
        case -38: "CL_INVALID_MEM_OBJECT"
        case -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"
        case -40: "CL_INVALID_IMAGE_SIZE"
        case -41: "CL_INVALID_SAMPLER"
        case -42: "CL_INVALID_BINARY"
        case -43: "CL_INVALID_BUILD_OPTIONS"
        case -44: "CL_INVALID_PROGRAM"
        case -45: "CL_INVALID_PROGRAM_EXECUTABLE"
        case -46: "CL_INVALID_KERNEL_NAME"
        case -47: "CL_INVALID_KERNEL_DEFINITION"
        case -48: "CL_INVALID_KERNEL"
        case -49: "CL_INVALID_ARG_INDEX"
        case -50: "CL_INVALID_ARG_VALUE"
        case -51: "CL_INVALID_ARG_SIZE"
        case -52: "CL_INVALID_KERNEL_ARGS"
        case -53: "CL_INVALID_WORK_DIMENSION"
        case -54: "CL_INVALID_WORK_GROUP_SIZE"
        case -55: "CL_INVALID_WORK_ITEM_SIZE"
        case -56: "CL_INVALID_GLOBAL_OFFSET"
        case -57: "CL_INVALID_EVENT_WAIT_LIST"
        case -58: "CL_INVALID_EVENT"
        case -59: "CL_INVALID_OPERATION"
        case -60: "CL_INVALID_GL_OBJECT"
        case -61: "CL_INVALID_BUFFER_SIZE"
        case -62: "CL_INVALID_MIP_LEVEL"
        case -63: "CL_INVALID_GLOBAL_WORK_SIZE"
        case -64: "CL_INVALID_PROPERTY"
        case -65: "CL_INVALID_IMAGE_DESCRIPTOR"
        case -66: "CL_INVALID_COMPILER_OPTIONS"
        case -67: "CL_INVALID_LINKER_OPTIONS"
        case -68: "CL_INVALID_DEVICE_PARTITION_COUNT"
        case -1001: "CL_PLATFORM_NOT_FOUND_KHR"
        default: "CL_UNKNOWN_ERROR"
        }
    }
}

/// Throws an ``OpenCLError`` naming `call` unless `status` is `CL_SUCCESS`.
@inlinable
func check(_ status: cl_int, _ call: @autoclosure () -> String, detail: @autoclosure () -> String? = nil) throws {
    if status != CL_SUCCESS {
        throw OpenCLError(code: status, call: call(), detail: detail())
    }
}

/// Runs a creator that reports its status through an out-parameter and returns a non-nil handle.
@inlinable
func create<Handle>(_ call: String, detail: @autoclosure () -> String? = nil,
                    _ body: (UnsafeMutablePointer<cl_int>) -> Handle?) throws -> Handle {
    var status: cl_int = CL_SUCCESS
    let handle = body(&status)
    try check(status, call, detail: detail())
    guard let handle else { throw OpenCLError(code: CL_INVALID_VALUE, call: call, detail: "returned no object") }
    return handle
}

/// Reads a string property through an OpenCL query that first reports the size and then fills a
/// buffer (`clGetDeviceInfo`, `clGetPlatformInfo`, `clGetProgramBuildInfo`...).
func queryString(_ call: String, _ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int) throws -> String {
    var size = 0
    try check(query(0, nil, &size), call)
    var bytes = [UInt8](repeating: 0, count: max(size, 1))
    try bytes.withUnsafeMutableBytes { raw in try check(query(size, raw.baseAddress, nil), call) }
    return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

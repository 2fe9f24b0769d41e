import COpenCL
import Foundation
import Synchronization

/// A built OpenCL program. Programs are safe to share between threads; create a ``Kernel`` per use.
public final class Program: @unchecked Sendable {
    let handle: cl_program
    /// The build options it was built with.
    public let options: String

    init(handle: cl_program, options: String) {
        self.handle = handle
        self.options = options
    }

    deinit { clReleaseProgram(handle) }

    /// Builds `source` for the context's device. A failed build throws ``ProgramBuildError`` with the
    /// compiler's log.
    public static func build(_ context: Context, source: String, options: String = "") throws -> Program {
        let handle: cl_program = try source.withCString { pointer in
            var strings: UnsafePointer<CChar>? = pointer
            var length = strlen(pointer)
            return try create("clCreateProgramWithSource") { status in
                clCreateProgramWithSource(context.handle, 1, &strings, &length, status)
            }
        }
        let program = Program(handle: handle, options: options)
        try program.build(device: context.device)
        return program
    }

    /// Creates a program from a device binary made by ``binary(for:)``; throws if the driver rejects it.
    static func load(_ context: Context, binary: [UInt8], options: String) throws -> Program {
        var deviceID: cl_device_id? = context.device.id
        var length = binary.count
        var binaryStatus: cl_int = CL_SUCCESS
        let handle: cl_program = try binary.withUnsafeBufferPointer { bytes in
            var pointer: UnsafePointer<UInt8>? = bytes.baseAddress
            return try create("clCreateProgramWithBinary") { status in
                clCreateProgramWithBinary(context.handle, 1, &deviceID, &length, &pointer, &binaryStatus, status)
            }
        }
        let program = Program(handle: handle, options: options)
        try check(binaryStatus, "clCreateProgramWithBinary")
        try program.build(device: context.device)
        return program
    }

    /// Serializes compiles within the process: some drivers (PoCL 3 among them) crash when programs
    /// are built from several threads at once.
    private static let compilerLock = Mutex(())

    private func build(device: Device) throws {
        try Self.compilerLock.withLock { _ in try buildLocked(device: device) }
    }

    private func buildLocked(device: Device) throws {
        var deviceID: cl_device_id? = device.id
        let status = Self.withoutCompilerSummary { clBuildProgram(handle, 1, &deviceID, options, nil, nil) }
        if status != CL_SUCCESS {
            throw ProgramBuildError(code: status, options: options, log: (try? buildLog(device: device)) ?? "(no build log)")
        }
    }

    /// Runs `body` (a build) with the process's standard error captured, then writes back what was written there
    /// except the compiler's own summary lines ("1 warning generated."), which some drivers (PoCL) print besides
    /// putting the diagnostics in the build log. Other threads' lines written meanwhile are kept, only delayed.
    static func withoutCompilerSummary<T>(_ body: () -> T) -> T {
        var template = Array((NSTemporaryDirectory() + "/tk-build-stderr-XXXXXX").utf8CString)
        let capture = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard capture >= 0 else { return body() }
        let saved = dup(STDERR_FILENO)
        guard saved >= 0 else { close(capture); return body() }
        fflush(nil)
        dup2(capture, STDERR_FILENO)
        let result = body()
        fflush(nil)
        dup2(saved, STDERR_FILENO)
        close(saved)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let length = lseek(capture, 0, SEEK_END)
        if length > 0 {
            var bytes = [UInt8](repeating: 0, count: Int(length))
            let count = pread(capture, &bytes, bytes.count, 0)
            let text = String(decoding: bytes.prefix(max(count, 0)), as: UTF8.self)
            let kept = text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
                !line.hasSuffix(" generated.") || !(line.contains("warning") || line.contains("error"))
            }.joined(separator: "\n")
            if !kept.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { FileHandle.standardError.write(Data(kept.utf8)) }
        }
        close(capture)
        return result
    }

    /// The compiler's log for `device`.
    public func buildLog(device: Device) throws -> String {
        try queryString("clGetProgramBuildInfo(CL_PROGRAM_BUILD_LOG)") {
            clGetProgramBuildInfo(handle, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), $0, $1, $2)
        }
    }

    /// The device binary of the built program (for a one-device context).
    func binary() throws -> [UInt8] {
        var size = 0
        try check(clGetProgramInfo(handle, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil),
                  "clGetProgramInfo(CL_PROGRAM_BINARY_SIZES)")
        guard size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        try bytes.withUnsafeMutableBufferPointer { storage in
            var pointer: UnsafeMutablePointer<UInt8>? = storage.baseAddress
            try check(clGetProgramInfo(handle, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil),
                      "clGetProgramInfo(CL_PROGRAM_BINARIES)")
        }
        return bytes
    }

    /// A new kernel object for the function `name`.
    public func kernel(named name: String) throws -> Kernel {
        let handle: cl_kernel = try create("clCreateKernel", detail: name) { status in
            clCreateKernel(self.handle, name, status)
        }
        return Kernel(handle: handle, name: name, program: self)
    }
}

/// A program that did not compile, with the compiler's output.
public struct ProgramBuildError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let options: String
    public let log: String

    public var description: String {
        "clBuildProgram failed with \(OpenCLError.name(of: code)) (\(code)) for options \"\(options)\":\n\(log)"
    }
}

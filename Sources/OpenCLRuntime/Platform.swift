import COpenCL
import Foundation
import Synchronization

/// Enumeration of OpenCL platforms and their devices.
public enum Platform {
    /// Every device of every platform, in platform order; a platform whose device query fails
    /// (no devices of any type) contributes none.
    public static func devices() throws -> [Device] {
        try enumerationLock.withLock { _ in try enumerate() }
    }

    /// The ICD loader's first-call initialization is not thread-safe (ocl-icd, PoCL): enumerate one
    /// thread at a time.
    private static let enumerationLock = Mutex(())

    private static func enumerate() throws -> [Device] {
        // PoCL's CPU device leaves its worker threads unpinned by default, and on a small machine a
        // process then often runs with two of them sharing one core for its whole life: every kernel
        // takes twice as long in that process and not in the next (measured on 2 cores: 3 of 6
        // processes at 2x for GEMM 1024^3; 0 of 12 with pinning). Pinning them (`POCL_AFFINITY=1`)
        // makes times repeatable, which tuning depends on. Set before PoCL reads it at its first
        // initialization; a value the user set, e.g. `POCL_AFFINITY=0`, is kept.
        setenv("POCL_AFFINITY", "1", 0)
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == -1001 || count == 0 { return [] }  // CL_PLATFORM_NOT_FOUND_KHR: no ICD installed
        try check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var result: [Device] = []
        for case let platform? in platforms {
            var deviceCount: cl_uint = 0
            let deviceStatus = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &deviceCount)
            if deviceStatus == CL_DEVICE_NOT_FOUND || deviceCount == 0 { continue }
            try check(deviceStatus, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(deviceCount))
            try check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), deviceCount, &ids, nil), "clGetDeviceIDs")
            for case let id? in ids {
                result.append(try Device(id: id, index: result.count, platform: platform))
            }
        }
        return result
    }

    static func string(_ id: cl_platform_id, _ parameter: Int32, _ label: String) throws -> String {
        try queryString("clGetPlatformInfo(\(label))") { clGetPlatformInfo(id, cl_platform_info(parameter), $0, $1, $2) }
    }
}

/// Why no device could be chosen.
public enum DeviceSelectionError: Error, Sendable, CustomStringConvertible {
    case noDevices
    case noMatch(selector: String, available: [String])

    public var description: String {
        switch self {
        case .noDevices:
            "no OpenCL device found: install an OpenCL driver (on Debian: apt-get install pocl-opencl-icd) and check `clinfo -l`"
        case let .noMatch(selector, available):
            "TUNEDKERNELS_DEVICE=\(selector) matches no device; available: "
                + available.enumerated().map { "\($0.offset): \($0.element)" }.joined(separator: ", ")
        }
    }
}

extension Device {
    /// All devices of all platforms. See ``Platform/devices()``.
    public static func all() throws -> [Device] { try Platform.devices() }

    /// The device to use: `TUNEDKERNELS_DEVICE` (an index into ``all()`` or a case-insensitive
    /// substring of the device or platform name), else the first GPU, else the first device.
    ///
    /// **Edge cases:** a selector that matches nothing throws ``DeviceSelectionError/noMatch(selector:available:)``
    /// rather than silently picking another device.
    public static func selected(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Device {
        let devices = try all()
        guard !devices.isEmpty else { throw DeviceSelectionError.noDevices }
        if let selector = environment["TUNEDKERNELS_DEVICE"]?.trimmingCharacters(in: .whitespaces), !selector.isEmpty {
            if let index = Int(selector), devices.indices.contains(index) { return devices[index] }
            let needle = selector.lowercased()
            if let match = devices.first(where: {
                $0.name.lowercased().contains(needle) || $0.platformName.lowercased().contains(needle)
            }) { return match }
            throw DeviceSelectionError.noMatch(selector: selector, available: devices.map(\.description))
        }
        return devices.first { $0.kind == .gpu } ?? devices[0]
    }
}

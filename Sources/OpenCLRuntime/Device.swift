import COpenCL
import Foundation

/// An OpenCL device and the properties the kernels and the tuner need.
///
/// Root devices are owned by the platform, so a `Device` releases nothing. All properties are read
/// once, when the device is enumerated.
public final class Device: @unchecked Sendable, CustomStringConvertible {
    /// The kind of device, as reported by `CL_DEVICE_TYPE`.
    public enum Kind: String, Sendable, Codable {
        case cpu, gpu, accelerator, other
    }

    let id: cl_device_id
    /// Position in ``Device/all()``: the index `TUNEDKERNELS_DEVICE` refers to.
    public let index: Int
    public let name: String
    public let vendor: String
    public let version: String
    public let driverVersion: String
    public let platformName: String
    public let platformVersion: String
    public let kind: Kind
    public let computeUnits: Int
    public let maxClockMHz: Int
    public let globalMemoryBytes: Int
    /// The device's global memory cache (`CL_DEVICE_GLOBAL_MEM_CACHE_SIZE`; 0 when it reports none).
    public let globalMemoryCacheBytes: Int
    public let maxAllocationBytes: Int
    public let localMemoryBytes: Int
    /// Whether local memory is dedicated (`CL_LOCAL`) rather than emulated in global memory.
    public let hasDedicatedLocalMemory: Bool
    public let maxWorkGroupSize: Int
    public let maxWorkItemSizes: [Int]
    public let extensions: Set<String>
    /// `CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT`: floats per native vector register (PoCL: 16 with AVX-512, 8 with
    /// AVX2; GPUs: usually 1).
    public let nativeFloatVectorWidth: Int

    /// Whether the device does arithmetic on `half` (`cl_khr_fp16`). Every device can store fp16
    /// through `vload_half`/`vstore_half`.
    public var supportsHalf: Bool { extensions.contains("cl_khr_fp16") }
    /// Whether the driver keeps compiled kernels on disk itself, keyed by source and options: PoCL's kernel cache
    /// (unless `POCL_KERNEL_CACHE=0`). Asking such a driver for program binaries only costs time: PoCL compiles every
    /// kernel of the program for it (7.6 s of a cut cross-entropy candidate's 10.9 s cold build).
    public var driverCachesCompiledKernels: Bool {
        platformName.contains("Portable Computing Language") && ProcessInfo.processInfo.environment["POCL_KERNEL_CACHE"] != "0"
    }
    /// Whether the device supports `double` (`cl_khr_fp64`).
    public var supportsDouble: Bool { extensions.contains("cl_khr_fp64") }

    /// A file-name-safe identifier of the device model, used to name tuning databases:
    /// lower case, runs of other characters replaced by `-`.
    public var slug: String { Device.slug(name) }

    public var description: String { "\(name) (\(platformName), \(kind.rawValue))" }

    init(id: cl_device_id, index: Int, platform: cl_platform_id) throws {
        self.id = id
        self.index = index
        name = try Device.string(id, CL_DEVICE_NAME, "CL_DEVICE_NAME").trimmingCharacters(in: .whitespaces)
        vendor = try Device.string(id, CL_DEVICE_VENDOR, "CL_DEVICE_VENDOR")
        version = try Device.string(id, CL_DEVICE_VERSION, "CL_DEVICE_VERSION")
        driverVersion = try Device.string(id, CL_DRIVER_VERSION, "CL_DRIVER_VERSION")
        platformName = try Platform.string(platform, CL_PLATFORM_NAME, "CL_PLATFORM_NAME")
        platformVersion = try Platform.string(platform, CL_PLATFORM_VERSION, "CL_PLATFORM_VERSION")
        let type: cl_device_type = try Device.value(id, CL_DEVICE_TYPE, "CL_DEVICE_TYPE")
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { kind = .gpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { kind = .cpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { kind = .accelerator }
        else { kind = .other }
        computeUnits = Int(try Device.value(id, CL_DEVICE_MAX_COMPUTE_UNITS, "CL_DEVICE_MAX_COMPUTE_UNITS") as cl_uint)
        maxClockMHz = Int(try Device.value(id, CL_DEVICE_MAX_CLOCK_FREQUENCY, "CL_DEVICE_MAX_CLOCK_FREQUENCY") as cl_uint)
        globalMemoryBytes = Int(try Device.value(id, CL_DEVICE_GLOBAL_MEM_SIZE, "CL_DEVICE_GLOBAL_MEM_SIZE") as cl_ulong)
        globalMemoryCacheBytes = Int((try? Device.value(id, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, "CL_DEVICE_GLOBAL_MEM_CACHE_SIZE") as cl_ulong) ?? 0)
        maxAllocationBytes = Int(try Device.value(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, "CL_DEVICE_MAX_MEM_ALLOC_SIZE") as cl_ulong)
        localMemoryBytes = Int(try Device.value(id, CL_DEVICE_LOCAL_MEM_SIZE, "CL_DEVICE_LOCAL_MEM_SIZE") as cl_ulong)
        let localType: cl_device_local_mem_type = try Device.value(id, CL_DEVICE_LOCAL_MEM_TYPE, "CL_DEVICE_LOCAL_MEM_TYPE")
        hasDedicatedLocalMemory = localType == cl_device_local_mem_type(CL_LOCAL)
        maxWorkGroupSize = Int(try Device.value(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, "CL_DEVICE_MAX_WORK_GROUP_SIZE") as Int)
        let dimensions = Int(try Device.value(id, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, "CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS") as cl_uint)
        var sizes = [Int](repeating: 0, count: dimensions)
        try sizes.withUnsafeMutableBytes { raw in
            try check(clGetDeviceInfo(id, cl_device_info(CL_DEVICE_MAX_WORK_ITEM_SIZES), raw.count, raw.baseAddress, nil),
                      "clGetDeviceInfo(CL_DEVICE_MAX_WORK_ITEM_SIZES)")
        }
        maxWorkItemSizes = sizes
        nativeFloatVectorWidth = Int(try Device.value(id, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, "CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT") as cl_uint)
        let extensionList = try Device.string(id, CL_DEVICE_EXTENSIONS, "CL_DEVICE_EXTENSIONS")
        extensions = Set(extensionList.split(separator: " ").map(String.init))
    }

    static func slug(_ text: String) -> String {
        var result = ""
        var pendingDash = false
        for scalar in text.lowercased().unicodeScalars {
            if (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") {
                if pendingDash && !result.isEmpty { result.append("-") }
                pendingDash = false
                result.unicodeScalars.append(scalar)
            } else {
                pendingDash = true
            }
        }
        return result.isEmpty ? "device" : result
    }

    static func string(_ id: cl_device_id, _ parameter: Int32, _ label: String) throws -> String {
        try queryString("clGetDeviceInfo(\(label))") { clGetDeviceInfo(id, cl_device_info(parameter), $0, $1, $2) }
    }

    static func value<T: BitwiseCopyable>(_ id: cl_device_id, _ parameter: Int32, _ label: String) throws -> T {
        try withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { buffer in
            try check(clGetDeviceInfo(id, cl_device_info(parameter), MemoryLayout<T>.size, buffer.baseAddress, nil),
                      "clGetDeviceInfo(\(label))")
            return buffer[0]
        }
    }
}


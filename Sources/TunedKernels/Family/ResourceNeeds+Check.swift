import Foundation
import OpenCLRuntime

/// Overflow-checked integer arithmetic for problem sizes: every product that sizes an allocation goes through
/// here, so an absurd size is a ``ProblemError``, never a trap.
public enum Checked {
    /// The product of `factors`, or a ``ProblemError`` naming `what` when it overflows.
    public static func product(_ factors: Int..., what: String) throws -> Int {
        try factors.reduce(1) { result, factor in
            let (value, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow else { throw ProblemError("\(what) overflows a 64-bit integer: the sizes are far too large") }
            return value
        }
    }

    /// The sum of `terms`, or a ``ProblemError`` naming `what` when it overflows.
    public static func sum(_ terms: [Int], what: String) throws -> Int {
        try terms.reduce(0) { result, term in
            let (value, overflow) = result.addingReportingOverflow(term)
            guard !overflow else { throw ProblemError("\(what) overflows a 64-bit integer: the sizes are far too large") }
            return value
        }
    }

    /// Throws unless every named size is at least 1 (and at most `maximum`, when given).
    public static func sizes(_ sizes: KeyValuePairs<String, Int>, maximum: Int? = nil, family: String) throws {
        for (name, value) in sizes {
            guard value >= 1 else { throw ProblemError("\(family): \(name) must be at least 1, got \(value)") }
            if let maximum, value > maximum {
                throw ProblemError("\(family): \(name) = \(value) exceeds \(maximum), the most the kernels index")
            }
        }
    }
}

extension ResourceNeeds {
    /// Bytes of memory the host can give now: `MemAvailable` of `/proc/meminfo`, else the physical memory.
    public static func availableHostBytes() -> Int {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes * 1024
        }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory)
    }

    /// Throws ``ProblemError`` when a buffer exceeds the device's largest allocation, the buffers together exceed
    /// its global memory, or the host memory a harness needs exceeds what the host has available.
    public func check(on device: Device, hostAvailable: Int = ResourceNeeds.availableHostBytes()) throws {
        try checkDevice(device)
        if hostBytes > hostAvailable {
            throw ProblemError("the inputs and reference need \(Self.mib(hostBytes)) of host memory but \(Self.mib(hostAvailable)) is available")
        }
    }

    /// What a call needs: throws ``ProblemError`` when a buffer exceeds the device's largest allocation or the
    /// buffers together exceed its global memory. (The host memory of a harness's reference is not a call's.)
    public func checkDevice(_ device: Device) throws {
        let mib = Self.mib
        if let largest = deviceBuffers.max(), largest > device.maxAllocationBytes {
            throw ProblemError("a buffer of \(mib(largest)) exceeds the largest allocation of \(device.name) (\(mib(device.maxAllocationBytes)))")
        }
        let total = try Checked.sum(deviceBuffers, what: "the device memory")
        if total > device.globalMemoryBytes {
            throw ProblemError("the buffers need \(mib(total)) but \(device.name) has \(mib(device.globalMemoryBytes)) of global memory")
        }
    }

    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}

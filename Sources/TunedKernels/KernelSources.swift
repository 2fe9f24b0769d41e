import Foundation

/// The OpenCL C sources of the kernel families, embedded at build time from the package's `Kernels/`.
///
/// `TUNEDKERNELS_KERNELS_DIR` may name a folder to read them from instead (while developing kernels).
public enum KernelSources {
    /// Why a kernel source could not be found.
    public struct MissingSource: Error, CustomStringConvertible {
        public let file: String
        public let location: String
        public var description: String { "kernel source \(file) not found in \(location)" }
    }

    /// `common.cl` followed by `<family>.cl`: the program source of one kernel family.
    public static func program(_ family: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try file("common.cl", environment: environment) + "\n" + file("\(family).cl", environment: environment)
    }

    /// `common.cl` followed by `files` (paths under `Kernels/`, e.g. `cross_entropy/forward.cl`): the program source of
    /// a role whose family keeps several files in its own folder.
    public static func program(files: [String], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        try ([file("common.cl", environment: environment)] + files.map { try file($0, environment: environment) }).joined(separator: "\n")
    }

    /// One file of `Kernels/` (a path under it).
    public static func file(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let folder = environment["TUNEDKERNELS_KERNELS_DIR"], !folder.isEmpty {
            let path = (folder as NSString).appendingPathComponent(name)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw MissingSource(file: name, location: "TUNEDKERNELS_KERNELS_DIR=\(folder)")
            }
            return text
        }
        guard let text = EmbeddedKernels.files[name] else {
            throw MissingSource(file: name, location: "the embedded Kernels/ (\(EmbeddedKernels.files.keys.sorted().joined(separator: ", ")))")
        }
        return text
    }
}

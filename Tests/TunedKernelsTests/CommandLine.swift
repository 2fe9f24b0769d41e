import Foundation

/// Runs the `autotune` binaries the tests build (`autotune`, and `autotune-fixture` with the test-only family).
enum CLI {
    struct Output {
        let status: Int32
        let stdout: Data
        let stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    static func binary(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
    }

    static var autotune: String { binary("autotune") }
    static var fixture: String { binary("autotune-fixture") }

    static func temporaryFolder(_ label: String = "tk") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
    }

    /// A process of `executable` with a private cache folder (journals and the user's database stay out of ~).
    static func process(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CACHE_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("tk-cli-cache").path
        environment.merge(extra) { $1 }
        process.environment = environment
        return process
    }

    /// Runs to the end; stderr goes through a file so neither stream can fill a pipe and stall the child.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Output {
        let process = process(executable, arguments, environment: environment)
        let errorPath = temporaryFolder("tk-err") + ".txt"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: stdout, stderr: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
    }

    static func json(_ output: Output) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any] else {
            throw CocoaError(.coderReadCorrupt)
        }
        return object
    }

    /// A copy of the package's `Kernels/` in a temporary folder, with `gemm.cl` changed by `edit`.
    static func kernels(editingGEMM edit: (String) -> String) throws -> String {
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
        let folder = temporaryFolder("tk-kernels")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: kernels.appendingPathComponent("common.cl"), to: URL(fileURLWithPath: folder + "/common.cl"))
        let source = try String(contentsOf: kernels.appendingPathComponent("gemm.cl"), encoding: .utf8)
        try edit(source).write(toFile: folder + "/gemm.cl", atomically: true, encoding: .utf8)
        return folder
    }

    /// `gemm_direct` replaced by a kernel that writes nothing: its results stay whatever C held.
    static func kernelsWithLazyDirect() throws -> String {
        try kernels { source in
            source.replacingOccurrences(of: "void gemm_direct(const int M", with: "void gemm_direct_original(const int M") + """

                __kernel void gemm_direct(const int M, const int N, const int K, const float alpha, const float beta,
                    const __global real* A, const long offA, const int lda, const long strideA,
                    const __global real* B, const long offB, const int ldb, const long strideB,
                    __global real* C, const long offC, const int ldc, const long strideC) {}
                """
        }
    }
}

import Foundation
import Testing

/// Runs `autotune verify gemm` under oclgrind (memory, uninitialized-value and data-race checks) on
/// small odd shapes: any invalid access, race or wrong result fails the test.
@Suite(.serialized) struct OclgrindTests {
    struct Outcome { let status: Int32; let output: String }

    static var autotune: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("autotune").path
    }

    static func oclgrind(_ arguments: [String], environment extra: [String: String] = [:], executable: String = autotune) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // -cl-opt-disable: oclgrind 21.10's uninitialized-value plugin cannot interpret LLVM's `freeze`
        // instruction, which optimized builds contain; unoptimized code is also checked more precisely.
        process.arguments = ["oclgrind", "--build-options", "-cl-opt-disable", "--check-api", "--data-races", "--uninitialized", executable] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["TUNEDKERNELS_PROGRAM_CACHE"] = "off"
        environment.merge(extra) { $1 }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static let findings = ["Invalid read", "Invalid write", "data race", "Uninitialized", "OCLGRIND", "Error:"]

    static func expectClean(_ arguments: [String]) throws {
        let outcome = try oclgrind(arguments)
        let flagged = outcome.output.split(separator: "\n").filter { line in findings.contains { line.contains($0) } }
        #expect(outcome.status == 0 && flagged.isEmpty && outcome.output.contains("PASS"),
                "oclgrind \(arguments.joined(separator: " ")):\n\(outcome.output.suffix(3000))")
    }

    @Test func oclgrindIsInstalledAndTheBinaryIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.autotune), "build the autotune product first (swift build --build-tests builds it)")
        #expect((try? Self.oclgrind(["devices"]))?.output.contains("Oclgrind") == true, "oclgrind is not installed (scripts/setup.sh installs it)")
    }

    /// The performance suite's references: the FMA chains (their sums checked against the host's) and the read.
    @Test func referenceKernelsRunClean() throws {
        try Self.expectClean(["perf", "reference", "--iterations", "3", "--megabytes", "1"])
    }

    static let cases: [(config: String, shape: String, precision: String, layout: String)] = [
        (#"{"variant":"direct","WPTM":2,"WPTN":4,"DLOCALM":2,"DLOCALN":4,"DKU":2}"#, "7x5x3", "single", "tn"),
        (#"{"variant":"direct","WPTM":1,"WPTN":1,"DLOCALM":1,"DLOCALN":1,"DKU":1}"#, "19x23x17", "half", "nt"),
        (#"{"variant":"xgemm","MWG":16,"NWG":16,"KWG":16,"MDIMC":8,"NDIMC":8,"MDIMA":8,"NDIMB":8,"KWI":2,"VWM":2,"VWN":2,"STRM":0,"STRN":0,"SA":1,"SB":1,"KSPLIT":2}"#, "19x23x17", "single", "nn"),
        (#"{"variant":"xgemm","MWG":32,"NWG":16,"KWG":16,"MDIMC":8,"NDIMC":8,"MDIMA":4,"NDIMB":8,"KWI":8,"VWM":4,"VWN":1,"STRM":1,"STRN":1,"SA":0,"SB":1,"KSPLIT":1}"#, "7x5x3", "half", "tt"),
        (#"{"variant":"packed","MR":6,"NR":16,"VW":8,"KC":16,"TM":2,"TN":2,"PLM":1,"PLN":1,"PKU":4}"#, "19x23x17", "single", "tt"),
        (#"{"variant":"packed","MR":4,"NR":8,"VW":4,"KC":0,"TM":1,"TN":1,"PLM":2,"PLN":2,"PKU":1}"#, "7x5x3", "half", "nn"),
        (#"{"variant":"gemv","GVW":4,"GNV":2,"GMR":2,"GLN":8,"KSPLIT":4,"GSTREAM":0,"GCR":1,"GRB":1}"#, "3x19x23", "half", "nn"),
        (#"{"variant":"gemv","GVW":8,"GNV":2,"GMR":1,"GLN":1,"KSPLIT":1,"GSTREAM":0,"GCR":1,"GRB":1}"#, "2x7x21", "single", "nt"),
        (#"{"variant":"gemv","GVW":4,"GNV":1,"GMR":2,"GLN":1,"KSPLIT":4,"GSTREAM":1,"GCR":2,"GRB":4}"#, "3x19x23", "half", "tn"),
        (#"{"variant":"packb","MR":6,"NR":16,"VW":8,"PAC":0,"TM":2,"TN":2,"PLM":2,"PLN":1,"PKU":4}"#, "19x23x17", "half", "tn"),
        (#"{"variant":"packb","MR":4,"NR":16,"VW":8,"PAC":16,"TM":2,"TN":1,"PLM":1,"PLN":2,"PKU":4}"#, "19x23x37", "half", "nn"),
        (#"{"variant":"packb","MR":4,"NR":8,"VW":4,"PAC":16,"TM":2,"TN":2,"PLM":2,"PLN":1,"PKU":2}"#, "19x23x37", "single", "tt"),
    ]

    @Test(arguments: cases.indices)
    func kernelRunsCleanUnderOclgrind(index: Int) throws {
        let c = Self.cases[index]
        try Self.expectClean(["verify", "gemm", "--shape", c.shape, "--precision", c.precision, "--layout", c.layout,
                              "--batch", "2", "--config", c.config])
    }

    /// Cut cross-entropy's kernels (forward, finish, reduce, both backward kernels, the target check) on a small
    /// problem with every option, filtered and exact, one work-item and several per work-group.
    @Test(arguments: [
        ["--dim", "45", "--precision", "half", "--filter", "off", "--data", "uniform", "--config",
         #"{"variant":"forward","TB":8,"NB":16,"KC":32,"MR":2,"NR":4,"VW":4,"WG":4,"VS":2}"#, "--config",
         #"{"variant":"backward","TB":8,"NB":16,"KC":32,"MR":2,"NR":4,"VW":4,"WG":4,"PMR":2,"PNV":2,"ACC":1}"#],
        ["--dim", "13", "--precision", "single", "--sort-vocabulary", "--data", "shuffled", "--config",
         #"{"variant":"forward","TB":8,"NB":16,"KC":0,"MR":2,"NR":2,"VW":4,"WG":4,"VS":1}"#, "--config",
         #"{"variant":"backward","TB":8,"NB":16,"KC":0,"MR":2,"NR":2,"VW":4,"WG":4,"PMR":2,"PNV":2,"ACC":1}"#],
        ["--dim", "13", "--precision", "bfloat16", "--data", "trained", "--config",
         #"{"variant":"forward","TB":16,"NB":16,"KC":0,"MR":2,"NR":4,"VW":8,"WG":1,"VS":1}"#, "--config",
         #"{"variant":"backward","TB":16,"NB":16,"KC":0,"MR":2,"NR":4,"VW":8,"WG":1,"PMR":4,"PNV":1,"ACC":1}"#],
    ])
    func cutCrossEntropyRunsCleanUnderOclgrind(options: [String]) throws {
        try Self.expectClean(["verify", "cce", "--tokens", "19", "--vocab", "37", "--bias", "--shift", "--softcap", "5",
                              "--z-loss", "0.001", "--label-smoothing", "0.1"] + options)
    }

    /// With `shift`, N rows of dE may span one more row tile than the ROWS = N - 1 rows of the forward's per-tile bounds
    /// (17 tokens in tiles of 8): that tile reads no bound.
    @Test func cutCrossEntropyShiftedExtraTileRunsCleanUnderOclgrind() throws {
        try Self.expectClean(["verify", "cce", "--tokens", "17", "--vocab", "37", "--dim", "13", "--shift", "--precision", "half", "--config",
                              #"{"variant":"forward","TB":8,"NB":16,"KC":0,"MR":1,"NR":2,"VW":4,"WG":1,"VS":1}"#, "--config",
                              #"{"variant":"backward","TB":8,"NB":16,"KC":0,"MR":1,"NR":2,"VW":4,"WG":1,"PMR":1,"PNV":1,"ACC":1}"#])
    }

    /// Cut cross-entropy's backward with its accumulators in global memory, allowed only where the local ones do
    /// not fit: D is derived from the local memory oclgrind's device reports (16 rows of D floats beyond it).
    @Test func cutCrossEntropyGlobalAccumulatorsRunCleanUnderOclgrind() throws {
        let devices = try Self.oclgrind(["devices", "--json"])
        let json = try #require(devices.output.firstIndex(of: "{").map { String(devices.output[$0...]) })
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let local = try #require((report["devices"] as? [[String: Any]])?.first?["local_memory_bytes"] as? Int)
        // The configuration's other local buffers: (TB + NB) * KC + TB * NB + 5 * 16 + 16 floats.
        let dim = (local / 4 - (24 * 32 + 128 + 96)) / 16 + 29
        try #require(dim <= 1 << 16, "oclgrind reports \(local) bytes of local memory: no D the kernels take exceeds it")
        try Self.expectClean(["verify", "cce", "--tokens", "19", "--vocab", "37", "--bias", "--shift", "--dim", "\(dim)", "--precision", "half",
                              "--data", "uniform", "--config",
                              #"{"variant":"forward","TB":8,"NB":16,"KC":32,"MR":2,"NR":2,"VW":4,"WG":4,"VS":1}"#, "--config",
                              #"{"variant":"backward","TB":8,"NB":16,"KC":32,"MR":2,"NR":2,"VW":4,"WG":4,"PMR":2,"PNV":2,"ACC":0}"#])
    }

    /// The fixture family's kernel too: the machinery's default verify (one launch on poisoned outputs) under oclgrind.
    @Test func fixtureFamilyRunsCleanUnderOclgrind() throws {
        let outcome = try Self.oclgrind(["verify", "vadd", "--n", "37", "--config", #"{"variant":"vadd","VW":4,"WPT":2,"LOCAL":8}"#],
                                        executable: CLI.fixture)
        let flagged = outcome.output.split(separator: "\n").filter { line in Self.findings.contains { line.contains($0) } }
        #expect(outcome.status == 0 && flagged.isEmpty && outcome.output.contains("PASS"), "\(outcome.output.suffix(3000))")
    }

    /// The negative control: a kernel that writes far out of bounds must be reported.
    @Test func outOfBoundsWriteIsCaught() throws {
        let kernels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tk-bad-kernels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: kernels.appendingPathComponent("common.cl"), to: folder.appendingPathComponent("common.cl"))
        let source = try String(contentsOf: kernels.appendingPathComponent("gemm.cl"), encoding: .utf8)
            .replacingOccurrences(of: "void gemm_direct(const int M", with: "void gemm_direct_original(const int M")
        let broken = source + """

            __kernel void gemm_direct(const int M, const int N, const int K, const float alpha, const float beta,
                const __global real* A, const long offA, const int lda, const long strideA,
                const __global real* B, const long offB, const int ldb, const long strideB,
                __global real* C, const long offC, const int ldc, const long strideC) {
                if (get_global_id(0) == 0 && get_global_id(1) == 0) C[offC + 100000] = 1.0f;
            }
            """
        try broken.write(to: folder.appendingPathComponent("gemm.cl"), atomically: true, encoding: .utf8)
        let outcome = try Self.oclgrind(["verify", "gemm", "--shape", "7x5x3", "--precision", "single", "--config",
                                         #"{"variant":"direct","WPTM":1,"WPTN":1,"DLOCALM":1,"DLOCALN":1,"DKU":1}"#],
                                        environment: ["TUNEDKERNELS_KERNELS_DIR": folder.path])
        #expect(outcome.output.contains("Invalid write"), "oclgrind did not report the out-of-bounds write:\n\(outcome.output.suffix(2000))")
    }
}

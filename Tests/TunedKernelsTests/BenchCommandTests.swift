import Autotuning
import Foundation
import Testing
import TunedKernels

/// `autotune bench gemm --config` and `autotune bench per-shape` on the PoCL device, small shapes.
@Suite(.serialized) struct BenchCommandTests {
    static func autotune(_ arguments: [String]) throws -> CLI.Output { try CLI.run(CLI.autotune, arguments) }

    static let fast = Configuration(variant: "packed", ["KC": 0, "MR": 4, "NR": 24, "PKU": 4, "PLM": 1, "PLN": 1, "TM": 16, "TN": 1, "VW": 8])
    static let other = Configuration(variant: "packed", ["KC": 512, "MR": 6, "NR": 16, "PKU": 1, "PLM": 1, "PLN": 4, "TM": 2, "TN": 2, "VW": 16])

    static func json(_ configuration: Configuration) throws -> String {
        String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
    }

    struct BenchReport: Decodable {
        struct Result: Decodable { let name: String; let seconds: Double?; let config: Configuration?; let error: String? }
        let results: [Result]
    }

    @Test func benchTimesGivenConfigurationsAndRejectsInvalidOnes() throws {
        let invalid = Configuration(variant: "packed", ["KC": 0, "MR": 0, "NR": 24, "PKU": 4, "PLM": 1, "PLN": 1, "TM": 16, "TN": 1, "VW": 8])
        let output = try Self.autotune(["bench", "gemm", "--shape", "7x9x5", "--precision", "single", "--skip", "clblast", "--json",
                                        "--repetitions", "1", "--rounds", "2", "--config", try Self.json(Self.other), "--config", try Self.json(invalid)])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try JSONDecoder().decode(BenchReport.self, from: output.stdout)
        #expect(report.results.map(\.name) == ["tunedkernels", "config-1", "config-2", "openblas", "stream-read"])
        let timed = try #require(report.results.first { $0.name == "config-1" })
        #expect(timed.seconds != nil && timed.error == nil && timed.config == Self.other)
        let rejected = try #require(report.results.first { $0.name == "config-2" })
        #expect(rejected.seconds == nil)
        #expect(rejected.error?.contains("invalid configuration") == true)

        let unreadable = try Self.autotune(["bench", "gemm", "--shape", "7x9x5", "--config", "{MR: 4"])
        #expect(unreadable.status != 0)
        #expect(unreadable.stderr.contains("is not a configuration"))
    }

    /// `--pass` times one role alone with that role's baselines; `--cold` reads through at least twice the device's
    /// reported cache before every timed call and says how much; an unknown role is refused.
    @Test func passAndColdOptions() throws {
        struct Report: Decodable {
            struct Result: Decodable { let name: String; let seconds: Double?; let error: String? }
            let pass: String?
            let cold_bytes: Int?
            let results: [Result]
        }
        let output = try Self.autotune(["bench", "attention", "--heads", "4", "--kv-heads", "2", "--seq", "1", "--kv-seq", "300", "--dim", "16",
                                        "--pass", "forward", "--cold", "--repetitions", "1", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try JSONDecoder().decode(Report.self, from: output.stdout)
        #expect(report.pass == "forward")
        let cache = Shared.context.map { $0.device.globalMemoryCacheBytes } ?? 0
        #expect((report.cold_bytes ?? 0) >= min(2 * cache, Shared.context?.device.maxAllocationBytes ?? 0) && (report.cold_bytes ?? 0) >= 1 << 20)
        #expect(report.results.map(\.name) == ["tunedkernels", "materialized", "stream-read"])
        #expect(report.results.allSatisfy { $0.seconds != nil && $0.error == nil }, "\(report.results)")
        let backward = try JSONDecoder().decode(Report.self, from: try Self.autotune(["bench", "attention", "--seq", "20", "--dim", "8", "--pass", "backward",
                                                                                    "--repetitions", "1", "--json"]).stdout)
        #expect(backward.results.map(\.name) == ["tunedkernels", "materialized"])
        let unknown = try Self.autotune(["bench", "attention", "--seq", "20", "--dim", "8", "--pass", "sideways"])
        #expect(unknown.status != 0 && unknown.stderr.contains("attention has the roles forward, backward"), "\(unknown.stderr)")
    }

    /// Every row says what it measured: no raw library lines on stderr (CLBlast's refusal of HGEMM is the row's
    /// note), no GFLOP/s for a read, the OpenBLAS core that ran.
    @Test func reportsSayWhatTheyMeasure() throws {
        let output = try Self.autotune(["bench", "gemm", "--shape", "33x17x20", "--precision", "half", "--repetitions", "1", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(!output.stderr.contains("CLBlast:") && !output.stderr.contains("generated."), "\(output.stderr)")
        let report = try CLI.json(output)
        let rows = try #require(report["results"] as? [[String: Any]])
        let read = try #require(rows.first { $0["name"] as? String == "stream-read" })
        #expect(read["gflops"] == nil && read["gbps"] is Double, "\(read)")
        let openblas = try #require(rows.first { $0["name"] as? String == "openblas" })
        #expect((openblas["openblas_core"] as? String)?.isEmpty == false, "\(openblas)")
        // CLBlast, registered for GEMM by the CLI (BaselineRegistry), is there; HGEMM where the device has fp16.
        #expect(rows.map { $0["name"] as? String } == ["tunedkernels", "openblas", "stream-read", "clblast", "clblast-sgemm"])
        let clblast = try #require(rows.first { $0["name"] as? String == "clblast" })
        if clblast["seconds"] == nil { #expect((clblast["error"] as? String)?.contains("cl_khr_fp16") == true, "\(clblast)") }
    }

    /// A compiler's summary line ("1 warning generated."), which PoCL prints to stderr besides the build log, is
    /// kept off the program's stderr.
    @Test func compilerSummaryLinesStayOffStderr() throws {
        let kernels = try CLI.kernels(editingGEMM: { $0 })
        defer { try? FileManager.default.removeItem(atPath: kernels) }
        let original = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Kernels/bandwidth.cl")
        try ("#warning \"a warning for a test\"\n" + String(contentsOf: original, encoding: .utf8))
            .write(toFile: kernels + "/bandwidth.cl", atomically: true, encoding: .utf8)
        let output = try CLI.run(CLI.autotune, ["verify", "bandwidth", "--megabytes", "1"],
                                 environment: ["TUNEDKERNELS_KERNELS_DIR": kernels, "TUNEDKERNELS_PROGRAM_CACHE": "off"])
        #expect(output.status == 0 && !output.stderr.contains("generated."), "\(output.stderr)")
    }

    struct PerShapeReport: Decodable {
        struct Row: Decodable {
            struct Problem: Decodable, Equatable { let m: Int, n: Int, k: Int }
            let problem: Problem
            let tuned: Int, seconds: [Double?], selection_seconds: [Double?], speedup: Double?, fastest: Int
        }
        let configs: [Configuration]
        let rows: [Row]
        let single_best: Int?
        let geomean_speedup: Double?
    }

    @Test func perShapeTimesEveryTunedConfigurationOnEveryShape() throws {
        let folder = TuneCommandTests.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let database = folder + "/db.json"
        func entry(_ shape: [Int], _ configuration: Configuration) -> TuningEntry {
            TuningEntry(key: TuningKey(kernel: "gemm", tags: ["precision": "single", "layout": "nn"], sizes: shape + [1]),
                        config: configuration, seconds: 1e-3)
        }
        try TuningDatabase.merge([entry([7, 9, 5], Self.fast), entry([33, 17, 20], Self.other), entry([1, 127, 64], Self.fast)],
                                 into: database, device: DeviceIdentity(name: "test"))
        try "# two shapes\n7x9x5\n33x17x20\n\n".write(toFile: folder + "/shapes.txt", atomically: true, encoding: .utf8)
        let output = try Self.autotune(["bench", "per-shape", "gemm", "--shapes-file", folder + "/shapes.txt", "--shape", "1x127x64",
                                        "--precision", "single", "--database", database, "--rounds", "2", "--repetitions", "1", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try JSONDecoder().decode(PerShapeReport.self, from: output.stdout)
        #expect(report.configs == [Self.fast, Self.other])
        // The command line's problem first, then the file's.
        #expect(report.rows.map(\.problem) == [.init(m: 1, n: 127, k: 64), .init(m: 7, n: 9, k: 5), .init(m: 33, n: 17, k: 20)])
        #expect(report.rows.map(\.tuned) == [0, 0, 1])
        let single = try #require(report.single_best)
        var logSum = 0.0
        for row in report.rows {
            let times = row.seconds.compactMap { $0 }
            try #require(times.count == 2, "every configuration is timed on \(row.problem)")
            let speedup = try #require(row.speedup)
            #expect(abs(speedup - times[single] / times[row.tuned]) < 1e-9 * speedup)
            #expect(times[row.fastest] == times.min())
            logSum += log(speedup)
        }
        // The single best minimizes the geometric-mean time over the set in the rounds that pick it.
        let meanLog = { (index: Int) in report.rows.reduce(0.0) { $0 + log($1.selection_seconds[index]!) } }
        #expect(meanLog(single) <= meanLog(1 - single))
        let geomean = try #require(report.geomean_speedup)
        #expect(abs(geomean - exp(logSum / 3)) < 1e-9 * geomean)

        try "7x9x5\n8x8x8\n".write(toFile: folder + "/missing.txt", atomically: true, encoding: .utf8)
        let missing = try Self.autotune(["bench", "per-shape", "gemm", "--shapes-file", folder + "/missing.txt", "--precision", "single",
                                         "--database", database])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no tuned gemm entry for 8x8x8 single nn"), "\(missing.stderr)")
    }
}

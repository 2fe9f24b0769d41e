import Foundation
import Testing
import TunedKernels

/// `autotune perf`'s contract without timing anything (the measured runs are scripts/perf-proof.sh's, in CI): the
/// listing from the registry, refusals of bad options, and the serve protocol's answer to an unknown case.
@Suite struct PerfCommandTests {
    static func autotune(_ arguments: [String]) throws -> CLI.Output { try CLI.run(CLI.autotune, arguments) }

    @Test func listNamesEveryCaseOfEveryFamily() throws {
        let output = try Self.autotune(["perf", "list", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let listing = try CLI.json(output)
        #expect(listing["format"] as? Int == 1)
        let cases = try #require(listing["cases"] as? [[String: Any]])
        let families = Set(cases.compactMap { $0["family"] as? String })
        #expect(families == Set(KernelFamilies.families.map { $0.name }))
        let ids = cases.compactMap { $0["id"] as? String }
        #expect(ids.contains("cce/backward/mid-exact") && ids.contains("gemm/1024x1024x1024-half"))
        for entry in cases {
            #expect(entry["bound"] as? String == "compute" || entry["bound"] as? String == "memory")
            let problem = try #require((entry["problem"] as? String)?.data(using: .utf8))
            #expect((try? JSONSerialization.jsonObject(with: problem)) is [String: Any])
        }
    }

    @Test func refusesBadOptions() throws {
        let few = try Self.autotune(["perf", "compare", "--base", CLI.autotune, "--rounds", "3"])
        #expect(few.status != 0 && few.stderr.contains("at least 9"))
        let missing = try Self.autotune(["perf", "compare", "--base", "/nonexistent/autotune"])
        #expect(missing.status != 0 && missing.status != 2 && missing.stderr.contains("/nonexistent/autotune"))
        let unknown = try Self.autotune(["perf", "check", "--case", "nosuch/", "--baselines", CLI.temporaryFolder()])
        #expect(unknown.status != 0 && unknown.stderr.contains("gemm/1024x1024x1024-half"))
        let threshold = try Self.autotune(["perf", "check", "--threshold", "0.9"])
        #expect(threshold.status != 0 && threshold.stderr.contains("--threshold"))
    }

    /// A case this build does not have is answered with an error line, and the server goes on to the next request
    /// (it exits when stdin ends).
    @Test func serveAnswersAnUnknownCaseWithAnError() throws {
        let process = CLI.process(CLI.autotune, ["perf", "serve"])
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data("nosuch/case\nnosuch/other\n".utf8))
        try input.fileHandleForWriting.close()
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(lines.count == 2)
        for line in lines {
            let reply = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect((reply?["error"] as? String)?.contains("no case nosuch/") == true)
            #expect(reply?["sample"] == nil)
        }
    }
}

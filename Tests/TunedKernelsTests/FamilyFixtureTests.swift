import Autotuning
import Foundation
import Testing

/// A family registered only in the tests (`vadd`, in `Tests/Fixtures/AutotuneFixture`) goes through tune, bench,
/// verify and per-shape with no CLI change: the proof that the family protocol carries a family.
@Suite(.serialized) struct FamilyFixtureTests {
    @Test func tuneBenchVerifyAndPerShapeOfAFamilyTheCLIDoesNotKnow() throws {
        let folder = CLI.temporaryFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let help = try CLI.run(CLI.fixture, ["tune", "vadd", "--help"])
        #expect(help.text.contains("--n N") && help.text.contains("Vector length"), "\(help.text)")

        // tune, in worker processes, for two problems: one from the command line, one from a file.
        try "1000\n".write(toFile: folder + "/problems.txt", atomically: true, encoding: .utf8)
        let tune = try CLI.run(CLI.fixture, ["tune", "vadd", "--n", "37", "--shapes-file", folder + "/problems.txt", "--budget", "4",
                                             "--output", folder + "/db.json", "--journal-dir", folder + "/journals", "--json"])
        #expect(tune.status == 0, "\(tune.stderr)")
        let report = try CLI.json(tune)
        #expect(report["kernel"] as? String == "vadd")
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(results.compactMap { ($0["problem"] as? [String: Any])?["n"] as? Int } == [37, 1000])
        #expect(results.allSatisfy { $0["evaluations"] as? Int == 4 && $0["best"] is [String: Any] && $0["failures"] as? Int == 0 })
        let database = try #require(try TuningDatabase.read(path: folder + "/db.json"))
        #expect(Set(database.entries.map(\.key.id)) == ["vadd||37", "vadd||1000"])

        // bench with the tuned database: ours, a --config row and the family's baseline, each checked.
        let config = #"{"variant":"vadd","VW":2,"WPT":4,"LOCAL":1}"#
        let bench = try CLI.run(CLI.fixture, ["bench", "vadd", "1000", "--rounds", "2", "--config", config, "--json"],
                                environment: ["TUNEDKERNELS_TUNING_DB": folder + "/db.json"])
        #expect(bench.status != 0, "a bare value is a problems-file line only")
        let benched = try CLI.run(CLI.fixture, ["bench", "vadd", "--n", "1000", "--rounds", "2", "--config", config, "--json"],
                                  environment: ["TUNEDKERNELS_TUNING_DB": folder + "/db.json"])
        #expect(benched.status == 0, "\(benched.stderr)")
        let rows = try #require(try CLI.json(benched)["results"] as? [[String: Any]])
        #expect(rows.compactMap { $0["name"] as? String } == ["tunedkernels", "config-1", "swift"])
        #expect(rows[0]["config_source"] as? String == "tuned")
        #expect(rows.allSatisfy { $0["error"] == nil && $0["max_abs_error"] as? Double == 0 && ($0["gbps"] as? Double ?? 0) > 0 })

        // verify: the default check of one launch on poisoned outputs; an invalid configuration is refused.
        let verify = try CLI.run(CLI.fixture, ["verify", "vadd", "--n", "1025", "--config", config])
        #expect(verify.status == 0 && verify.text.contains("PASS"), "\(verify.text)\(verify.stderr)")
        let invalid = try CLI.run(CLI.fixture, ["verify", "vadd", "--n", "7", "--config", #"{"variant":"vadd","VW":3,"WPT":1,"LOCAL":1}"#])
        #expect(invalid.status != 0 && invalid.stderr.contains("VW=3 is not one of [1, 2, 4, 8]"), "\(invalid.stderr)")

        // per-shape over the two tuned problems.
        let perShape = try CLI.run(CLI.fixture, ["bench", "per-shape", "vadd", "--shapes-file", folder + "/problems.txt", "--n", "37",
                                                 "--database", folder + "/db.json", "--rounds", "2", "--repetitions", "1", "--json"])
        #expect(perShape.status == 0, "\(perShape.stderr)")
        #expect((try CLI.json(perShape)["rows"] as? [Any])?.count == 2)
    }

    /// The real `autotune` does not know the fixture family, and says which it has.
    @Test func theRealCLIDoesNotKnowTheFixture() throws {
        let output = try CLI.run(CLI.autotune, ["tune", "vadd", "--n", "8"])
        #expect(output.status != 0 && output.stderr.contains("unknown kernel family \"vadd\" for `tune`; this autotune has: gemm"), "\(output.stderr)")
    }
}

import Foundation
import Testing

/// `autotune replay` over several recorded spaces: each file's report and the mean over the files (skipped when
/// ../shared/tuning-spaces is not beside the package).
@Suite struct ReplayCommandTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/tuning-spaces").path
    static let files = ["convolution_A4000.json.gz", "dedispersion_A4000.json.gz"].map { folder + "/" + $0 }
    static var present: Bool { files.allSatisfy { FileManager.default.fileExists(atPath: $0) } }

    @Test(.enabled(if: present, "skipped: ../shared/tuning-spaces is not beside the package"))
    func severalFilesReportEachAndTheirMean() throws {
        let output = try CLI.run(CLI.autotune, ["replay"] + Self.files + ["--strategy", "all", "--budget", "60", "--seeds", "3", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        let report = try CLI.json(output)
        let files = try #require(report["files"] as? [[String: Any]])
        #expect(files.count == 2)
        let mean = try #require(report["mean"] as? [[String: Any]])
        let perFile = files.map { ($0["results"] as? [[String: Any]]) ?? [] }
        #expect(mean.count == perFile[0].count && mean.count > 1)
        for (index, entry) in mean.enumerated() {
            let marks = try #require(entry["fractions_at"] as? [String: Double])
            #expect(Set(marks.keys) == ["20", "50", "60"])
            // The mean is the average of the files' figures.
            let scores = perFile.map { $0[index]["score"] as? Double ?? .nan }
            #expect(abs((entry["score"] as? Double ?? .nan) - (scores[0] + scores[1]) / 2) < 1e-12)
            let at50 = perFile.map { (($0[index]["fractions_at"] as? [String: Double]) ?? [:])["50"] ?? .nan }
            #expect(abs(marks["50"]! - (at50[0] + at50[1]) / 2) < 1e-12)
        }
        let plot = try CLI.run(CLI.autotune, ["replay"] + Self.files + ["--plot", CLI.temporaryFolder() + ".svg"])
        #expect(plot.status != 0 && plot.stderr.contains("one file"))
    }
}

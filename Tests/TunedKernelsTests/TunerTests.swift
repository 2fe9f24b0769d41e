import Autotuning
import Foundation
import OpenCLRuntime
import Testing
import TunedKernels

/// The tuner as a library: a program tunes its own problem without the CLI.
@Suite(.serialized) struct TunerTests {
    @Test func tunesInProcessJournalsAndMerges() throws {
        let context = try #require(Shared.context)
        let folder = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var options = TuningOptions()
        options.budget = 4
        options.confirm = 2
        options.databasePath = folder + "/db.json"
        options.journalDirectory = folder + "/journals"
        let gemm = try GEMM(context: context, database: TuningDatabase())
        let problem = GEMMProblem(m: 33, n: 17, k: 9, precision: .single, layout: .tn)
        let result = try Tuner(gemm, options: options).tune(problem)[0]
        #expect(result.evaluations == 4 && result.measured == 4 && result.problem == problem)
        let best = try #require(result.best)
        #expect(result.savedTo == folder + "/db.json")
        let stored = try #require(try TuningDatabase.read(path: folder + "/db.json")?.entries.first)
        #expect(stored.key == GEMM.key(problem) && stored.config == best.config)
        // A dispatcher on the new database picks it.
        var database = TuningDatabase()
        database.overlay(try #require(try TuningDatabase.read(path: folder + "/db.json")), source: "test")
        #expect(try GEMM(context: context, database: database).configuration(for: problem) == (best.config, .tuned))
        // Again with a larger budget: it starts from the stored best, reads what the journal holds instead of
        // measuring it, and measures each new candidate once.
        options.budget = 6
        let again = try Tuner(gemm, options: options).tune(problem)[0]
        #expect(again.evaluations == 6 && again.fromJournal >= 1 && again.fromJournal + again.measured == 6)
        #expect(try KernelTunerCache.read(path: again.journal).entries.count == 4 + again.measured)
    }

    /// One role alone: the backward of cut cross-entropy, given the dispatcher's forward (here its default), stores
    /// only its own entry, on the forward's tiles; after a forward entry is stored, the backward is given that one.
    /// A role the family does not have is refused.
    @Test func oneRoleIsTunedOnTheDispatchersChoiceOfItsDependencies() throws {
        let context = try #require(Shared.context)
        let folder = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var options = TuningOptions()
        options.budget = 2
        options.confirm = 1
        options.repetitions = 1
        options.databasePath = folder + "/db.json"
        options.journalDirectory = folder + "/journals"
        let cce = try CutCrossEntropy(context: context, database: TuningDatabase())
        let problem = CCEProblem(tokens: 21, vocab: 40, dim: 9, precision: .single, filter: "off", data: .uniform)
        let tuner = try Tuner(cce, options: options)
        #expect(throws: ProblemError.self) { try tuner.tune(problem, role: "sideways") }
        let backward = try tuner.tune(problem, role: "backward")
        let defaultForward = cce.configuration(for: problem, role: CutCrossEntropy.roles[0]).0
        #expect(backward.map(\.role) == ["backward"] && backward[0].given == ["forward": defaultForward])
        let file = try #require(try TuningDatabase.read(path: folder + "/db.json"))
        #expect(file.entries.map(\.key) == [CutCrossEntropy.key(problem, role: CutCrossEntropy.roles[1])])
        #expect(backward[0].best?.config["TB"] == defaultForward["TB"] && backward[0].best?.config["NB"] == defaultForward["NB"])
        let forward = try tuner.tune(problem, role: "forward")
        let again = try tuner.tune(problem, role: "backward")
        #expect(again[0].given == ["forward": try #require(forward[0].best).config])
    }

    @Test func badOptionsAndOutputsAreRefusedBeforeWork() throws {
        let context = try #require(Shared.context)
        let gemm = try GEMM(context: context, database: TuningDatabase())
        var options = TuningOptions()
        options.budget = 0
        #expect(throws: TuningOptionsError.self) { _ = try Tuner(gemm, options: options) }
        options.budget = 2
        options.databasePath = "/proc/no-such-folder/db.json"
        #expect(throws: TuningOptionsError.self) { _ = try Tuner(gemm, options: options) }
        // Another device's file is not mixed with this device's entries.
        let path = CLI.temporaryFolder() + "/other.json"
        try TuningDatabase.merge([], into: path, device: DeviceIdentity(name: "another device"))
        options.databasePath = path
        #expect { _ = try Tuner(gemm, options: options) } throws: { "\($0)".contains("holds entries of another device") }
    }

    /// The README's example program, compiled by the build, runs.
    @Test func theTuneExampleRuns() throws {
        let cache = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let output = try CLI.run(CLI.binary("TuneExample"), ["3"], environment: ["XDG_CACHE_HOME": cache])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.text.contains("after 3 evaluations") && output.text.contains(".tuned"), "\(output.text)")
        let device = try #require(Shared.context?.device)
        #expect(FileManager.default.fileExists(atPath: cache + "/tunedkernels/\(device.slug).json"))
    }
}

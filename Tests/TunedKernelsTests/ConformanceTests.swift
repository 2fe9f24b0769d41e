import Autotuning
import Foundation
import OpenCLRuntime
import Testing
@testable import TunedKernels

/// What every registered family must do, checked from the registry on each family's own conformance problems:
/// a family registered later is covered without touching this suite.
///
/// - `verify` passes under oclgrind;
/// - absurd sizes (0, negative, and sizes far beyond any device) are refused by `needs` and the device check with a
///   ``ProblemError``, never a trap;
/// - every search parameter changes the preprocessed program (a parameter the kernels never read doubles the
///   space for nothing);
/// - the last default of every role is valid on canned CPU limits and on a GPU's (48 KiB of local memory, 256
///   work-items), and the dispatcher chooses a valid one;
/// - a budget-2 tune stores an entry per role that a dispatcher on that database then uses, and its result is correct;
/// - roles are declared with unique names and variants, dependencies first.
@Suite(.serialized) struct ConformanceTests {
    static let cpu = DeviceLimits(kind: .cpu, maxWorkGroupSize: 4096, maxWorkItemSizes: [4096, 4096, 4096], localMemoryBytes: 1 << 20,
                                  supportsHalf: false, nativeFloatVectorWidth: 16)
    static let gpu = DeviceLimits(kind: .gpu, maxWorkGroupSize: 256, maxWorkItemSizes: [256, 256, 64], localMemoryBytes: 48 << 10,
                                  supportsHalf: true, nativeFloatVectorWidth: 1)

    static var families: [any KernelFamily.Type] { KernelFamilies.families }

    @Test func everyFamilyDeclaresConformanceProblems() {
        for family in Self.families {
            #expect(!Self.problems(family).isEmpty, "\(family.name) declares no conformance problem")
        }
    }

    /// At least one role; names and variants unique (a variant tells its role); a role depends only on roles
    /// declared before it (the order in which they are chosen and tuned).
    @Test func everyFamilyDeclaresItsRolesInDependencyOrder() {
        for family in Self.families { Self.checkRoles(family) }
    }

    static func checkRoles<F: KernelFamily>(_ family: F.Type) {
        #expect(!F.roles.isEmpty, "\(F.name) declares no role")
        #expect(Set(F.roles.map(\.name)).count == F.roles.count, "\(F.name): two roles share a name")
        #expect(Set(F.variants).count == F.variants.count && !F.variants.isEmpty, "\(F.name): a variant belongs to two roles, or none is declared")
        for (index, role) in F.roles.enumerated() {
            let earlier = F.roles[..<index].map(\.name)
            #expect(role.dependsOn.allSatisfy(earlier.contains), "\(F.name) \(role): depends on a role not declared before it")
        }
    }

    static func problems<F: KernelFamily>(_ family: F.Type) -> [Any] { F.conformanceProblems }

    // MARK: oclgrind

    /// `autotune verify <family> --problem <json>` under oclgrind (memory, uninitialized values, data races) with the
    /// dispatcher's choice on oclgrind's device, for every conformance problem.
    @Test func everyConformanceProblemRunsCleanUnderOclgrind() throws {
        for family in Self.families { try Self.checkOclgrind(family) }
    }

    static func checkOclgrind<F: KernelFamily>(_ family: F.Type) throws {
        for problem in F.conformanceProblems {
            let json = String(decoding: try JSONEncoder().encode(problem), as: UTF8.self)
            try OclgrindTests.expectClean(["verify", F.name, "--problem", json])
        }
    }

    // MARK: Refusals

    @Test func absurdSizesAreRefusedWithoutATrap() throws {
        let device = try #require(Shared.context).device
        for family in Self.families { try Self.checkRefusals(family, device: device) }
    }

    /// The integer options that are sizes: dimensions, and integers whose default is positive (an ignore index is not).
    static func sizeKeys(_ options: [ProblemOption]) -> [String] {
        options.flatMap { option -> [String] in
            switch option.kind {
            case .dimensions(let keys): keys
            case .integer where option.isPrimary || (option.defaultValue.flatMap { Int($0) } ?? 0) >= 1: [option.name]
            default: []
            }
        }
    }

    static func checkRefusals<F: KernelFamily>(_ family: F.Type, device: Device) throws {
        for problem in F.conformanceProblems {
            #expect(throws: Never.self, "\(F.name) \(problem)") { _ = try F.needs(problem) }
            let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(problem)) as? [String: Any])
            for key in sizeKeys(F.problemOptions) where json[key] != nil {
                for value in [0, -1, Int.max, Int.max / 3, 1 << 40] {
                    var changed = json
                    changed[key] = value
                    let data = try JSONSerialization.data(withJSONObject: changed)
                    // Decoding may already refuse it; what decodes, `needs` must refuse, naming the problem.
                    guard let bad = try? ProblemParser.decode(F.Problem.self, family: F.name, options: F.problemOptions, data: data) else { continue }
                    #expect(throws: ProblemError.self, "\(F.name): \(key) = \(value) is not refused in \(bad)") {
                        try F.needs(bad).checkDevice(device)
                    }
                }
            }
        }
    }

    // MARK: The space

    @Test func everyParameterChangesThePreprocessedProgram() throws {
        let context = try #require(Shared.context)
        for family in Self.families { try Self.checkParameters(family, context: context) }
    }

    /// `body` for every role of every conformance problem of `F`, on a family that sees the canned CPU limits, then
    /// the GPU's.
    static func forEachRole<F: KernelFamily>(_ family: F.Type, context: Context,
                                             _ body: (F, DeviceLimits, F.Problem, KernelRole) throws -> Void) throws {
        for limits in [cpu, gpu] {
            let instance = F(core: try FamilyCore(context: context, database: TuningDatabase(), limits: limits, source: F.kernelSource))
            for problem in F.conformanceProblems {
                for role in F.roles { try body(instance, limits, problem, role) }
            }
        }
    }

    static func checkParameters<F: KernelFamily>(_ family: F.Type, context: Context) throws {
        try forEachRole(family, context: context) { instance, _, problem, role in
            let source = try F.kernelSource(role: role)
            for space in instance.spaces(for: problem, role: role, given: instance.given(for: problem, role: role)) {
                guard let base = space.enumerate(limit: 1).first else { continue }
                let baseText = try preprocess(source, instance.buildOptions(base, for: problem))
                for parameter in space.parameters where parameter.values.count > 1 {
                    let other = parameter.values.lazy.filter { $0 != base[parameter.name] }.map { value -> Configuration in
                        var changed = base
                        changed.values[parameter.name] = value
                        return changed
                    }.first(where: space.isValid)
                    guard let other else { continue }
                    let text = try preprocess(source, instance.buildOptions(other, for: problem))
                    #expect(text != baseText, "\(F.name) \(space.variant): \(parameter.name) does not change the compiled code")
                }
            }
        }
    }

    /// `source` through the C preprocessor with the `-D` options of `options`.
    static func preprocess(_ source: String, _ options: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cpp", "-P", "-x", "c"] + options.split(separator: " ").map(String.init).filter { $0.hasPrefix("-D") } + ["-"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data(source.utf8))
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
        return text
    }

    // MARK: Defaults

    @Test func aDefaultIsValidOnCannedCPUAndGPULimits() throws {
        let context = try #require(Shared.context)
        for family in Self.families { try Self.checkDefaults(family, context: context) }
    }

    static func checkDefaults<F: KernelFamily>(_ family: F.Type, context: Context) throws {
        try forEachRole(family, context: context) { instance, limits, problem, role in
            let given = instance.given(for: problem, role: role)
            let defaults = instance.defaults(for: problem, role: role, given: given)
            let valid = { (configuration: Configuration) in instance.violations(of: configuration, for: problem, role: role, given: given) }
            #expect(defaults.last.map { valid($0).isEmpty } == true,
                    "\(F.name) \(role) \(problem): the last default is not valid on \(limits.kind): \(defaults.last.map(valid) ?? [])")
            let (chosen, source) = instance.configuration(for: problem, role: role)
            #expect(source == .default && valid(chosen).isEmpty, "\(F.name) \(role) \(problem) on \(limits.kind)")
        }
    }

    // MARK: A short tune

    @Test func aShortTuneStoresAnEntryTheDispatcherUses() throws {
        let context = try #require(Shared.context)
        for family in Self.families { try Self.checkTune(family, context: context) }
    }

    static func checkTune<F: KernelFamily>(_ family: F.Type, context: Context) throws {
        let folder = CLI.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let problem = try #require(F.conformanceProblems.first)
        var options = TuningOptions()
        options.budget = 2
        options.confirm = 1
        options.repetitions = 1
        options.minimumSeconds = 0
        options.databasePath = folder + "/db.json"
        options.journalDirectory = folder + "/journals"
        // Every role in turn, each tuned given the roles before it: one entry per role, each the dispatcher's choice.
        let results = try Tuner(try F(context: context, database: TuningDatabase()), options: options).tune(problem)
        #expect(results.map(\.role) == F.roles.map(\.name))
        var database = TuningDatabase()
        database.overlay(try #require(try TuningDatabase.read(path: folder + "/db.json")), source: "test")
        let tuned = try F(context: context, database: database)
        for (role, result) in zip(F.roles, results) {
            let best = try #require(result.best, "\(F.name) \(role) \(problem): nothing succeeded")
            #expect(tuned.configuration(for: problem, role: role) == (best.config, .tuned), "\(F.name) \(role) \(problem)")
            #expect(result.given == tuned.given(for: problem, role: role), "\(F.name) \(role): tuned given other configurations than a call's")
        }
        let verification = try tuned.verify(problem, configurations: [], seed: 5)
        #expect(verification.passed && verification.choices.allSatisfy { $0.source == .tuned },
                "\(F.name) \(problem): \(verification.checks.map(\.check))")
    }
}

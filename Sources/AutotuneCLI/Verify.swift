import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

enum VerifyVerb: FamilyVerb {
    static let name = "verify"
    static let abstract = "Check a kernel configuration against the family's CPU reference (run it under oclgrind to check memory accesses and races)."
    static func command<Family: KernelFamily>(_ family: Family.Type) -> any ParsableCommand.Type { VerifyFamily<Family>.self }
}

/// `autotune verify <family>`: the family's strictest check of one configuration (canaries where it has them).
struct VerifyFamily<Family: KernelFamily>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Family.name,
            abstract: "Run one \(Family.name) call and compare it with the CPU reference.",
            discussion: "Exits 1 when a result is wrong or anything outside the outputs changed.\n\n" + FamilyHelp.problemOptions(Family.self)
        )
    }

    @Option(name: .customLong("config"),
            help: ArgumentHelp("A configuration as JSON, e.g. '{\"variant\":\"direct\",...}', of the kernel role its variant belongs to (repeatable: one per role); other roles get the dispatcher's choice.", valueName: "json"))
    var configs: [String] = []
    @Option(help: "Seed of the inputs.") var seed: UInt64 = 7
    @OptionGroup var output: OutputOptions
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("The problem options (see above).", visibility: .hidden))
    var problemWords: [String] = []

    func validate() throws {
        _ = try configs.map { try decodeConfiguration($0) }
        _ = try FamilyHelp.problems(Family.self, words: problemWords, file: nil)
    }

    struct CheckReport: Encodable {
        let name: String, passed: Bool
        /// Null when the result holds NaN or infinity.
        let max_abs_error: Double?
        let tolerance: Double
        /// The named parts of the result, each against its own tolerance.
        let parts: [CheckReport]

        init(name: String, check: Check) {
            self.name = name
            passed = check.passed
            max_abs_error = check.maxAbsError.isFinite ? check.maxAbsError : nil
            tolerance = check.tolerance
            parts = check.parts.sorted { $0.key < $1.key }.map { CheckReport(name: $0.key, check: $0.value) }
        }

        private enum CodingKeys: String, CodingKey { case name, passed, max_abs_error, tolerance, parts }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(passed, forKey: .passed)
            try container.encode(max_abs_error, forKey: .max_abs_error)  // null, not left out
            try container.encode(tolerance, forKey: .tolerance)
            if !parts.isEmpty { try container.encode(parts, forKey: .parts) }
        }

        /// `ok   name: max abs error E (tolerance T)`, then its parts indented.
        func lines(indent: String = "  ") -> [String] {
            let error = max_abs_error.map(formatScientific) ?? "NaN or infinity"
            let head = parts.isEmpty ? "max abs error \(error) (tolerance \(formatScientific(tolerance)))"
                                     : "largest error of its parts \(error)"
            return ["\(indent)\(passed ? "ok  " : "FAIL") \(name): \(head)"] + parts.flatMap { $0.lines(indent: indent + "    ") }
        }
    }

    struct Report: Encodable {
        let kernel: String, device: String, problem: Family.Problem, config: Configuration, config_source: String
        /// The configuration of every kernel role of the call (one for a family of one role).
        let roles: [RoleChoice]
        let passed: Bool
        let checks: [CheckReport]
        let canary_violations: Int, input_violations: Int
    }

    func run() throws {
        let problem = try FamilyHelp.problems(Family.self, words: problemWords, file: nil)[0]
        let configurations = try configs.map { try decodeConfiguration($0) }
        let context = try Context()
        let family = try Family(context: context)
        try family.check(problem)
        let verification = try family.verify(problem, configurations: configurations, seed: seed)
        let checks = verification.checks.map { name, check in CheckReport(name: name, check: check) }
        if output.json {
            try printJSON(Report(kernel: Family.name, device: context.device.name, problem: problem, config: verification.configuration,
                                 config_source: verification.source.rawValue, roles: verification.choices, passed: verification.passed, checks: checks,
                                 canary_violations: verification.canaryViolations, input_violations: verification.inputViolations))
        } else {
            let with = verification.choices.count == 1 ? "\(verification.configuration)"
                : verification.choices.map { $0.config.variant == $0.role ? "\($0.config)" : "\($0.role) \($0.config)" }.joined(separator: ", ")
            print("\(verification.passed ? "PASS" : "FAIL") \(Family.name) \(problem) on \(context.device.name) with \(with):")
            for check in checks { check.lines().forEach { print($0) } }
            print("  \(verification.canaryViolations) canary and \(verification.inputViolations) input violations")
        }
        if !verification.passed { throw ExitCode(1) }
    }
}

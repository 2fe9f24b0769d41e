import ArgumentParser
import Autotuning
import Foundation
import TunedKernels

/// The `autotune` command over the families of `Registry`: `tune`, `bench` and `verify` have one subcommand
/// per family, generated from the registry, so a new family needs no edit here.
///
/// ```swift
/// AutotuneCommand<KernelFamilies>.main()     // the whole main.swift of the autotune executable
/// ```
public struct AutotuneCommand<Registry: FamilyRegistry>: ParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "autotune",
            abstract: "Tune and benchmark TunedKernels' OpenCL kernels on this machine's devices.",
            discussion: """
                The device is TUNEDKERNELS_DEVICE (an index from `autotune devices`, or part of a name), \
                else the first GPU, else the first device. --json prints exactly one JSON object on stdout; \
                progress goes to stderr. Kernel families: \(Registry.families.map { $0.name }.joined(separator: ", ")).
                """,
            subcommands: [Devices.self, FamilyGroup<Registry, BenchVerb>.self, FamilyGroup<Registry, VerifyVerb>.self,
                          FamilyGroup<Registry, TuneVerb>.self, ReplayCommand.self, Show.self, PerfCommand<Registry>.self, WorkerCommand<Registry>.self]
        )
    }

    public init() {}

    /// Parses and runs the command line; a family subcommand the registry does not have gets a message that
    /// names the families there are (ArgumentParser alone would complain about the family's first option).
    public static func main() {
        // The OpenBLAS baselines run the CPU's widest kernels, even where OpenBLAS does not know the CPU.
        OpenBLASCore.reexecutingWithTheBestCoreIfNeeded()
        CLBlastBaseline.register()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let groups: [[String]] = [["tune"], ["bench"], ["verify"], ["bench", "per-shape"]]
        for group in groups.sorted(by: { $0.count > $1.count }) where arguments.count > group.count && Array(arguments.prefix(group.count)) == group {
            let word = arguments[group.count]
            if word.hasPrefix("-") || Registry.family(named: word) != nil || (group == ["bench"] && word == "per-shape") { break }
            exit(withError: ValidationError("unknown kernel family \"\(word)\" for `\(group.joined(separator: " "))`; "
                                            + "this autotune has: \(Registry.families.map { $0.name }.joined(separator: ", "))"))
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// A verb with one subcommand per family: `tune gemm`, `bench gemm`, `verify gemm`, `bench per-shape gemm`.
protocol FamilyVerb {
    static var name: String { get }
    static var abstract: String { get }
    /// The verb's subcommand for `family`.
    static func command<Family: KernelFamily>(_ family: Family.Type) -> any ParsableCommand.Type
    /// Subcommands besides the families' (`bench per-shape`).
    static func extra<Registry: FamilyRegistry>(_ registry: Registry.Type) -> [any ParsableCommand.Type]
}

extension FamilyVerb {
    static func extra<Registry: FamilyRegistry>(_ registry: Registry.Type) -> [any ParsableCommand.Type] { [] }
}

/// The command of a verb, its subcommands generated from the registry.
struct FamilyGroup<Registry: FamilyRegistry, Verb: FamilyVerb>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Verb.name, abstract: Verb.abstract,
                             subcommands: Registry.families.map { Verb.command($0) } + Verb.extra(Registry.self))
    }
}

/// Options every subcommand shares.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object on stdout instead of a table.")
    var json = false
}

/// `autotune worker`: the process `tune` runs candidates in (hidden). It reads one request per line on stdin and
/// answers one line on stdout; it exits when its parent is gone.
struct WorkerCommand<Registry: FamilyRegistry>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "worker", abstract: "Serve tuning requests on stdin (started by `autotune tune`).",
                             shouldDisplay: false)
    }

    func run() throws { TuningWorker.serve(Registry.self) }
}

// MARK: - A family's problem on the command line

/// The problem words every family subcommand collects (`--shape 1024x1024x1024 --precision half`...): parsed
/// against the family's declared ``ProblemOption``s, not by ArgumentParser, so that the options are declared
/// once, in the family.
enum FamilyHelp {
    /// The problem options of a family, for a subcommand's `--help`.
    static func problemOptions<Family: KernelFamily>(_ family: Family.Type) -> String {
        var lines = ["\(Family.name): \(Family.summary).", "", "Problem options:"]
        for option in Family.problemOptions {
            let suffix = option.defaultValue.map { " (default: \($0))" } ?? (option.kind.isFlag ? "" : " (required)")
            lines.append("  \(option.usage)\n        \(option.help)\(suffix)")
        }
        lines.append("  --problem JSON\n        The whole problem as the JSON object that --json output prints.")
        return lines.joined(separator: "\n")
    }

    /// The problems named on the command line and in a problems file (each line: the primary option's value,
    /// problem options, or a JSON object; the command line's problem options apply under each line).
    static func problems<Family: KernelFamily>(_ family: Family.Type, words: [String], file: String?) throws -> [Family.Problem] {
        do {
            guard let file else { return [try ProblemParser.parse(Family.Problem.self, family: Family.name, options: Family.problemOptions, arguments: words)] }
            var problems: [Family.Problem] = []
            if let primary = Family.problemOptions.first(where: \.isPrimary), words.contains(where: { $0 == "--\(primary.name)" || $0.hasPrefix("--\(primary.name)=") })
                || words.contains(where: { $0 == "--problem" || $0.hasPrefix("--problem=") }) {
                problems.append(try ProblemParser.parse(Family.Problem.self, family: Family.name, options: Family.problemOptions, arguments: words))
            }
            return problems + (try ProblemParser.read(Family.Problem.self, family: Family.name, options: Family.problemOptions, file: file, base: words))
        } catch let error as ProblemError {
            throw ValidationError(error.message)
        }
    }
}

extension ProblemOption.Kind {
    var isFlag: Bool { if case .flag = self { true } else { false } }
}

/// Reads a `--config` of `bench`: one configuration, or a JSON array of one configuration per kernel role.
func decodeConfigurations(_ text: String, option: String = "--config") throws -> [Configuration] {
    if text.trimmingCharacters(in: .whitespaces).hasPrefix("["),
       let list = try? JSONDecoder().decode([Configuration].self, from: Data(text.utf8)), !list.isEmpty {
        return list
    }
    return [try decodeConfiguration(text, option: option)]
}

/// Reads a `--config` JSON object.
func decodeConfiguration(_ text: String, option: String = "--config") throws -> Configuration {
    do { return try JSONDecoder().decode(Configuration.self, from: Data(text.utf8)) } catch {
        throw ValidationError("\(option) \(text) is not a configuration: give a JSON object with \"variant\" and integer parameters")
    }
}

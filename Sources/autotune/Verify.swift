import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a kernel configuration against the CPU reference, with canaries around every buffer.",
        subcommands: [VerifyGEMM.self]
    )
}

struct VerifyGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Run one GEMM (offsets, padded rows, batch gaps, NaN in C when beta is 0) and compare it with OpenBLAS.",
        discussion: "Exits 1 when the result is wrong or anything outside C's matrices changed. Run it under oclgrind to check memory accesses and races."
    )

    @Option(help: "Problem shape MxNxK.") var shape: Shape
    @Option(help: "half or single.") var precision: Precision = .single
    @Option(help: "nn, nt, tn or tt.") var layout: GEMMLayout = .nn
    @Option var batch = 1
    @Option var alpha: Float = 1.5
    @Option var beta: Float = 0
    @Option(help: "A configuration as JSON, e.g. '{\"variant\":\"direct\",\"WPTM\":1,...}'; default: the dispatcher's choice.")
    var config: String?
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let config, (try? JSONDecoder().decode(Configuration.self, from: Data(config.utf8))) == nil {
            throw ValidationError("--config is not a configuration object: \(config)")
        }
    }

    func run() throws {
        let configuration = try config.map { try JSONDecoder().decode(Configuration.self, from: Data($0.utf8)) }
        let context = try Context()
        let gemm = try GEMM(context: context)
        let problem = GEMMProblem(m: shape.m, n: shape.n, k: shape.k, batch: batch, precision: precision, layout: layout)
        let report = try GEMMVerifier(gemm: gemm).verify(problem, alpha: alpha, beta: beta, configuration: configuration)
        if output.json {
            struct JSONReport: Encodable {
                let kernel: String, device: String, problem: String, config: Configuration, passed: Bool
                let max_abs_error: Double, tolerance: Double, canary_violations: Int, input_violations: Int
            }
            try printJSON(JSONReport(kernel: "gemm", device: context.device.name, problem: problem.description,
                                     config: report.configuration, passed: report.passed, max_abs_error: report.maxAbsError,
                                     tolerance: report.tolerance, canary_violations: report.canaryViolations,
                                     input_violations: report.inputViolations))
        } else {
            print("\(report.passed ? "PASS" : "FAIL") gemm \(problem) on \(context.device.name) with \(report.configuration): "
                  + "max abs error \(formatScientific(report.maxAbsError)) (tolerance \(formatScientific(report.tolerance))), "
                  + "\(report.canaryViolations) canary and \(report.inputViolations) input violations")
        }
        if !report.passed { throw ExitCode(1) }
    }
}

import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

/// The process `autotune tune` runs candidates in: it reads one ``WorkerRequest`` per line on stdin
/// and answers one ``WorkerReply`` per line on stdout. A candidate that crashes or hangs the OpenCL
/// runtime takes only this process down; the tuner restarts it.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate configurations sent on stdin (used by `autotune tune`).",
        shouldDisplay: false,
        subcommands: [WorkerGEMM.self]
    )
}

struct WorkerGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gemm")

    @Option var shape: Shape
    @Option var batch = 1
    @Option var precision: Precision = .half
    @Option var layout: GEMMLayout = .nn
    @Option var repetitions = 3

    func run() throws {
        let context = try Context()
        let gemm = try GEMM(context: context, database: TuningDatabase())
        let problem = GEMMProblem(m: shape.m, n: shape.n, k: shape.k, batch: batch, precision: precision, layout: layout)
        let harness = try GEMMHarness(gemm: gemm, problem: problem)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while let line = readLine() {
            let reply: WorkerReply
            if let request = try? JSONDecoder().decode(WorkerRequest.self, from: Data(line.utf8)) {
                reply = Self.evaluate(request, harness: harness, repetitions: repetitions)
            } else {
                reply = WorkerReply(status: "failed", error: "unreadable request")
            }
            FileHandle.standardOutput.write(try encoder.encode(reply) + Data("\n".utf8))
        }
    }

    /// Timed runs of a candidate add up to at least this many seconds (see ``GEMMHarness/measure``).
    static let minimumSeconds = 0.02

    static func evaluate(_ request: WorkerRequest, harness: GEMMHarness, repetitions: Int) -> WorkerReply {
        let violations = harness.gemm.violations(of: request.config, precision: harness.problem.precision)
        guard violations.isEmpty else { return WorkerReply(status: "failed", error: "invalid configuration: " + violations.joined(separator: "; ")) }
        do {
            let measured = try harness.measure(request.config, warmup: 1, repetitions: repetitions, minimumSeconds: minimumSeconds,
                                               cutoff: request.cutoff)
            let compile = max(0, measured.firstCallSeconds - measured.seconds)
            guard measured.isCorrect else {
                return WorkerReply(status: "wrong", seconds: measured.seconds, compile_seconds: compile, max_abs_error: measured.maxAbsError)
            }
            return WorkerReply(status: "ok", seconds: measured.seconds, compile_seconds: compile, gflops: measured.gflops,
                               max_abs_error: measured.maxAbsError)
        } catch let error as ProgramBuildError {
            return WorkerReply(status: "failed", error: "build failed: \(String(describing: error).prefix(300))")
        } catch {
            return WorkerReply(status: "failed", error: String(describing: error).prefix(300).description)
        }
    }
}

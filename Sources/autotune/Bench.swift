import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark a kernel family against its baselines, measured in the same run on the same data.",
        subcommands: [BenchGEMM.self, BenchPerShape.self]
    )
}

extension Precision: ExpressibleByArgument {}
extension GEMMLayout: ExpressibleByArgument {}

/// One row of a `bench` report.
struct BenchResult: Encodable {
    var name: String
    var seconds: Double?
    var gflops: Double?
    var max_abs_error: Double?
    var peak_device_bytes: Int?
    var device_seconds: Double? = nil
    var config: Configuration? = nil
    var config_source: String? = nil
    var error: String? = nil
}

struct BenchReport: Encodable {
    struct Problem: Encodable { let m: Int, n: Int, k: Int, batch: Int, precision: String, layout: String }
    let kernel: String
    let device: String
    let problem: Problem
    let results: [BenchResult]
}

struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Time our GEMM against OpenBLAS SGEMM and CLBlast on the same data.",
        discussion: "Seconds are medians of --repetitions runs after a warm-up; errors are against OpenBLAS SGEMM on the same (fp16-rounded) inputs."
    )

    @Option(help: "Problem shape MxNxK.") var shape: Shape
    @Option(help: "Storage precision: half or single.") var precision: Precision = .half
    @Option(help: "nn, nt, tn or tt (row-major; t = transposed operand).") var layout: GEMMLayout = .nn
    @Option(help: "Number of matrices in a strided batch.") var batch = 1
    @Option(help: "Timed runs per measurement.") var repetitions = 5
    @Option(name: .customLong("config"),
            help: ArgumentHelp("Also time this configuration, as JSON: '{\"variant\": \"packed\", \"MR\": 6, ...}' (repeatable).",
                               valueName: "json"))
    var configs: [String] = []
    @Option(help: "Rounds: our kernels and OpenBLAS are timed once per round, interleaved, and the median over rounds is reported.")
    var rounds = 1
    @Flag(help: "Skip the CLBlast baseline.") var noClblast = false
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        _ = try extraConfigurations()
    }

    /// The `--config` values, decoded.
    func extraConfigurations() throws -> [Configuration] {
        try configs.map { text in
            do { return try JSONDecoder().decode(Configuration.self, from: Data(text.utf8)) } catch {
                throw ValidationError("--config \(text) is not a configuration: give a JSON object with \"variant\" and integer parameters")
            }
        }
    }

    func run() throws {
        let context = try Context()
        let gemm = try GEMM(context: context)
        let problem = GEMMProblem(m: shape.m, n: shape.n, k: shape.k, batch: batch, precision: precision, layout: layout)
        progress("bench gemm \(problem) on \(context.device.name)")
        let harness = try GEMMHarness(gemm: gemm, problem: problem)

        // Our kernel, the --config configurations and OpenBLAS, interleaved over the rounds.
        let extra = try extraConfigurations()
        var extraErrors: [String?] = extra.map { configuration in
            let violations = gemm.violations(of: configuration, precision: precision)
            return violations.isEmpty ? nil : "invalid configuration: " + violations.joined(separator: "; ")
        }
        var extraRuns = [[GEMMHarness.Measurement]](repeating: [], count: extra.count)
        var oursRuns: [GEMMHarness.Measurement] = [], blas: [Double] = []
        for _ in 0..<rounds {
            oursRuns.append(try harness.measure(repetitions: repetitions))
            for index in extra.indices where extraErrors[index] == nil {
                do { extraRuns[index].append(try harness.measure(extra[index], repetitions: repetitions)) } catch {
                    extraErrors[index] = "\(error)"
                }
            }
            blas.append(harness.openBLASSeconds(repetitions: repetitions))
        }
        func result(_ name: String, _ runs: [GEMMHarness.Measurement]) -> BenchResult {
            let last = runs[runs.count - 1]
            let seconds = median(runs.map(\.seconds))
            return BenchResult(name: name, seconds: seconds, gflops: problem.flops / seconds * 1e-9, max_abs_error: runs.map(\.maxAbsError).max(),
                               peak_device_bytes: last.peakDeviceBytes, device_seconds: median(runs.map(\.deviceSeconds)),
                               config: last.configuration, config_source: last.source.rawValue,
                               error: runs.allSatisfy(\.isCorrect) ? nil : "error above tolerance \(harness.tolerance)")
        }
        let ours = result("tunedkernels", oursRuns)
        let oursSeconds = ours.seconds ?? .nan
        var results = [ours]
        progress("  tunedkernels: \(format(ours.gflops, 1)) GFLOP/s (\(ours.config_source ?? "") \(ours.config.map { "\($0)" } ?? ""))")
        for index in extra.indices {
            let name = "config-\(index + 1)"
            if let error = extraErrors[index] {
                results.append(BenchResult(name: name, seconds: nil, gflops: nil, max_abs_error: nil, peak_device_bytes: nil,
                                           config: extra[index], config_source: "option", error: error))
            } else {
                var row = result(name, extraRuns[index])
                row.config_source = "option"
                results.append(row)
            }
            progress("  \(name): \(format(results[results.count - 1].gflops, 1)) GFLOP/s (\(extra[index]))")
        }
        let blasSeconds = median(blas)
        results.append(BenchResult(name: "openblas", seconds: blasSeconds, gflops: problem.flops / blasSeconds * 1e-9, max_abs_error: 0, peak_device_bytes: nil))

        if !noClblast {
            results.append(clblast(name: "clblast", harness: harness, operands: (harness.a, harness.b, harness.c), context: context))
            if precision == .half {
                // CLBlast SGEMM on the same values widened to fp32: the OpenCL baseline where HGEMM is refused.
                let single = GEMMProblem(m: problem.m, n: problem.n, k: problem.k, batch: batch, precision: .single, layout: layout)
                do {
                    let a = MatrixOperand(try DeviceBuffer<Float>(context, harness.hostA), leadingDimension: harness.a.leadingDimension, batchStride: harness.a.batchStride)
                    let b = MatrixOperand(try DeviceBuffer<Float>(context, harness.hostB), leadingDimension: harness.b.leadingDimension, batchStride: harness.b.batchStride)
                    let c = MatrixOperand(try DeviceBuffer<Float>(context, count: harness.reference.count), leadingDimension: problem.n, batchStride: problem.m * problem.n)
                    results.append(clblast(name: "clblast-sgemm", harness: harness, operands: (a, b, c), context: context, problem: single))
                } catch {
                    results.append(BenchResult(name: "clblast-sgemm", seconds: nil, gflops: nil, max_abs_error: nil, peak_device_bytes: nil, error: "\(error)"))
                }
            }
        }

        let report = BenchReport(kernel: "gemm", device: context.device.name,
                                 problem: .init(m: problem.m, n: problem.n, k: problem.k, batch: batch,
                                                precision: precision.rawValue, layout: layout.rawValue),
                                 results: results)
        if output.json { try printJSON(report); return }
        print("GEMM \(problem) on \(context.device.name)")
        print(table(["implementation", "seconds", "GFLOP/s", "ours is x faster", "max abs error", "peak device MiB"], results.map { r in
            [r.name, format(r.seconds, 5), format(r.gflops, 1), r.seconds.map { format($0 / oursSeconds, 2) } ?? "-",
             formatScientific(r.max_abs_error), r.peak_device_bytes.map { format(Double($0) / 1048576, 1) } ?? "-"]
        }))
        for r in results { if let error = r.error { print("note: \(r.name): \(error)") } }
        print("config: \(ours.config.map { "\($0)" } ?? "-") (\(ours.config_source ?? ""))")
        for index in extra.indices { print("config-\(index + 1): \(extra[index])") }
    }

    private func clblast(name: String, harness: GEMMHarness, operands: (MatrixOperand, MatrixOperand, MatrixOperand),
                         context: Context, problem: GEMMProblem? = nil) -> BenchResult {
        let problem = problem ?? harness.problem
        do {
            let seconds = try CLBlastBaseline.seconds(problem, a: operands.0, b: operands.1, c: operands.2,
                                                      queue: context.queue, repetitions: repetitions)
            let error = try harness.maxAbsError(of: operands.2.buffer)
            progress("  \(name): \(format(problem.flops / seconds * 1e-9, 1)) GFLOP/s")
            return BenchResult(name: name, seconds: seconds, gflops: problem.flops / seconds * 1e-9, max_abs_error: error, peak_device_bytes: nil)
        } catch {
            progress("  \(name): \(error)")
            return BenchResult(name: name, seconds: nil, gflops: nil, max_abs_error: nil, peak_device_bytes: nil, error: "\(error)")
        }
    }
}

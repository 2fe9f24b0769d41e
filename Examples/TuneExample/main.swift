// The README's tuning example: a program that links the library tunes its own shape, without the CLI.
// `swift run TuneExample [BUDGET]`; the result is merged into the user's tuning database of the device, which
// every later `GEMM(context:)` on this device reads.
import Autotuning
import OpenCLRuntime
import TunedKernels

TuningWorker.serveIfRequested()                      // this program is also its own tuning worker (see isolation)
let gemm = try GEMM(context: Context())
var options = TuningOptions()                        // evolutionary search, journal and resume, confirmation rounds
options.budget = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 8
options.isolation = .thisExecutable                 // candidates run in a worker process; .inProcess needs none
let problem = GEMMProblem(m: 256, n: 384, k: 128, precision: .half)
let result = try Tuner(gemm, options: options).tune(problem)[0]   // one result per kernel role; GEMM has one
guard let best = result.best else { fatalError("no candidate succeeded: \(result.failureDetails.map(\.status))") }
print("\(problem): \(best.config) at \(best.gflops ?? 0) GFLOP/s after \(result.evaluations) evaluations; saved to \(result.savedTo ?? "-")")
print("the dispatcher now picks: \(try GEMM(context: gemm.context).configuration(for: problem))")

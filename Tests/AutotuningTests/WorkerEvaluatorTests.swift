import Autotuning
import Foundation
import Testing

/// The evaluator's protocol over a scripted worker that answers each typed status, crashes, hangs or babbles.
@Suite struct WorkerEvaluatorTests {
    static func script() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tk-worker-\(UUID().uuidString).sh").path
        try """
        while IFS= read -r line; do
          case "$line" in
            *'"variant":"ok"'*) echo '{"status":"ok","seconds":0.25,"compile_seconds":0.5,"gflops":8}' ;;
            *'"variant":"wrong"'*) echo '{"status":"wrong_result","seconds":0.25,"max_abs_error":"inf","tolerance":0.001}' ;;
            *'"variant":"nobuild"'*) echo '{"status":"build_failure","message":"clBuildProgram failed\\nline 2 of the log"}' ;;
            *'"variant":"nolaunch"'*) echo '{"status":"launch_failure","message":"CL_OUT_OF_RESOURCES"}' ;;
            *'"variant":"invalid"'*) echo '{"status":"invalid_configuration","message":"MR=0 is not one of [4]"}' ;;
            *'"variant":"environment"'*) echo '{"status":"environment","message":"kernel source gemm.cl not found"}' ;;
            *'"variant":"notime"'*) echo '{"status":"ok"}' ;;
            *'"variant":"crash"'*) echo "dying" >&2; kill -SEGV $$ ;;
            *'"variant":"hang"'*) sleep 100 ;;
            *) echo 'not json' ;;
          esac
        done
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func everyStatusIsTypedAndOnlyTheEnvironmentEndsARun() throws {
        let path = try Self.script()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Answers may take long on a busy machine: 30 s for those; the hang gets its own evaluator with 1 s.
        let request: (Configuration, Double?) throws -> String = { configuration, _ in
            String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
        }
        let worker = WorkerProcess(executable: "/bin/bash", arguments: [path])
        let evaluator = WorkerEvaluator(worker: worker, timeout: 30, request: request)
        let impatient = WorkerEvaluator(worker: worker, timeout: 1, request: request)
        defer { worker.stop() }
        func run(_ variant: String) throws -> EvaluationResult {
            try (variant == "hang" ? impatient : evaluator).evaluate(Configuration(variant: variant, ["X": 1]), cutoff: nil)
        }

        let ok = try run("ok")
        #expect(ok.status == .ok && ok.outcome == .seconds(0.25) && ok.compileSeconds == 0.5 && ok.gflops == 8)
        // A non-finite error travels as a string and comes back as infinity: a wrong result, not a crash.
        let wrong = try run("wrong")
        #expect(wrong.status == .wrongResult && wrong.maxAbsError == .infinity && wrong.outcome.seconds == nil)
        let nobuild = try run("nobuild")
        #expect(nobuild.status == .buildFailure && nobuild.status.kernelTunerFailure == "CompilationFailedConfig")
        #expect(nobuild.message == "clBuildProgram failed\nline 2 of the log", "the whole log, not a cut")
        #expect(try run("nolaunch").status == .launchFailure)
        #expect(try run("invalid").status == .invalidConfiguration)
        #expect(try run("notime").status == .launchFailure)
        #expect(throws: EnvironmentFailure.self) { try run("environment") }

        let crash = try run("crash")
        #expect(crash.status == .launchFailure)
        #expect(crash.message?.contains("crashed") == true && crash.message?.contains("139") == true && crash.message?.contains("dying") == true)
        #expect(try run("ok").outcome == .seconds(0.25))  // restarted
        let clock = ContinuousClock()
        let start = clock.now
        let hung = try run("hang")
        #expect(hung.status == .timeout && hung.message?.contains("no answer") == true)
        // Only an upper bound that catches a hang: this machine is shared and slow at times.
        #expect(clock.now - start < .seconds(30))
        #expect(try run("ok").outcome == .seconds(0.25))
        #expect(try run("garbage").status == .launchFailure)
        #expect(worker.starts == 3)
    }

    @Test func aWorkerThatCannotStartIsAnEnvironmentFailure() throws {
        let evaluator = WorkerEvaluator(worker: WorkerProcess(executable: "/nonexistent/worker", arguments: []), timeout: 1) { _, _ in "{}" }
        #expect(throws: EnvironmentFailure.self) { try evaluator.evaluate(Configuration(variant: "ok", [:]), cutoff: nil) }
    }
}

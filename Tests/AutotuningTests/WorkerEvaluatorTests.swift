import Autotuning
import Foundation
import Testing

/// The evaluator's protocol over a scripted worker that answers, fails, crashes or hangs by variant.
@Suite struct WorkerEvaluatorTests {
    static func script() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tk-worker-\(UUID().uuidString).sh").path
        try """
        while IFS= read -r line; do
          case "$line" in
            *'"variant":"ok"'*) echo '{"status":"ok","seconds":0.25,"compile_seconds":0.5,"gflops":8}' ;;
            *'"variant":"wrong"'*) echo '{"status":"wrong","seconds":0.25,"max_abs_error":3}' ;;
            *'"variant":"nobuild"'*) echo '{"status":"failed","error":"build failed: syntax error"}' ;;
            *'"variant":"crash"'*) echo "dying" >&2; kill -SEGV $$ ;;
            *'"variant":"hang"'*) sleep 100 ;;
            *) echo 'not json' ;;
          esac
        done
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func outcomesOfEveryKind() throws {
        let path = try Self.script()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Answers are awaited with a generous limit that only catches a hang: on a busy 2-core machine, starting
        // bash can take seconds. Only the hang is evaluated with a short timeout, by a second evaluator of the same worker.
        let worker = WorkerProcess(executable: "/bin/bash", arguments: [path])
        let evaluator = WorkerEvaluator(worker: worker, timeout: 30)
        let impatient = WorkerEvaluator(worker: worker, timeout: 1)
        defer { worker.stop() }
        func run(_ variant: String, by chosen: WorkerEvaluator? = nil) throws -> WorkerEvaluator.Result {
            try (chosen ?? evaluator).evaluate(Configuration(variant: variant, ["X": 1]), cutoff: nil)
        }

        let ok = try run("ok")
        #expect(ok.outcome == .seconds(0.25) && ok.compileSeconds == 0.5 && ok.gflops == 8)
        #expect(try run("wrong").outcome.seconds == nil)
        let nobuild = try run("nobuild")
        #expect(nobuild.failureKind == "CompilationFailedConfig")
        let crash = try run("crash")
        guard case .failed(let why) = crash.outcome else { Issue.record("crash not failed"); return }
        #expect(why.contains("crashed") && why.contains("139") && why.contains("dying"))
        #expect(try run("ok").outcome == .seconds(0.25))  // restarted
        let start = Date()
        guard case .failed(let hung) = try run("hang", by: impatient).outcome else { Issue.record("hang not failed"); return }
        // The timeout did not fire early; the upper bound only catches a hang.
        let elapsed = Date().timeIntervalSince(start)
        #expect(hung.contains("timed out") && elapsed >= 0.95 && elapsed < 30, "timed out after \(elapsed) s")
        #expect(try run("ok").outcome == .seconds(0.25))
        #expect(try run("garbage").outcome.seconds == nil)
        #expect(evaluator.worker.starts == 3)
    }
}

import Foundation

/// The message a tuning worker receives: one configuration to build, verify and time, and the time
/// after which a clearly hopeless candidate may stop early.
public struct WorkerRequest: Codable, Sendable {
    public var config: Configuration
    public var cutoff: Double?

    public init(config: Configuration, cutoff: Double?) {
        self.config = config
        self.cutoff = cutoff
    }
}

/// A worker's answer. `status` is `ok` (verified and timed), `wrong` (built and ran, but the result
/// differs from the reference) or `failed` (did not build or run).
public struct WorkerReply: Codable, Sendable {
    public var status: String
    public var seconds: Double?
    public var compile_seconds: Double?
    public var gflops: Double?
    public var max_abs_error: Double?
    public var error: String?

    public init(status: String, seconds: Double? = nil, compile_seconds: Double? = nil, gflops: Double? = nil,
                max_abs_error: Double? = nil, error: String? = nil) {
        self.status = status
        self.seconds = seconds
        self.compile_seconds = compile_seconds
        self.gflops = gflops
        self.max_abs_error = max_abs_error
        self.error = error
    }
}

/// Evaluates configurations in a ``WorkerProcess`` speaking ``WorkerRequest``/``WorkerReply`` JSON
/// lines. A worker that crashes or exceeds `timeout` is restarted and the candidate is recorded as
/// failed, so no candidate can end a tuning run.
public final class WorkerEvaluator: @unchecked Sendable {
    public let worker: WorkerProcess
    public let timeout: Double

    /// What one evaluation found.
    public struct Result: Sendable {
        public var outcome: EvaluationOutcome
        /// Kernel Tuner's failure label for a failed candidate.
        public var failureKind: String?
        public var compileSeconds: Double?
        public var gflops: Double?
    }

    public init(worker: WorkerProcess, timeout: Double) {
        self.worker = worker
        self.timeout = timeout
    }

    public func evaluate(_ configuration: Configuration, cutoff: Double?) throws -> Result {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let line = String(decoding: try encoder.encode(WorkerRequest(config: configuration, cutoff: cutoff)), as: UTF8.self)
        switch try worker.request(line, timeout: timeout) {
        case .timedOut(let seconds):
            return Result(outcome: .failed("timed out after \(seconds) s; worker restarted"), failureKind: "RuntimeFailedConfig")
        case .crashed(let status, let tail):
            let last = tail.split(separator: "\n").last.map { ": " + $0.prefix(200) } ?? ""
            return Result(outcome: .failed("worker crashed (status \(status))\(last); restarted"), failureKind: "RuntimeFailedConfig")
        case .reply(let text):
            guard let reply = try? JSONDecoder().decode(WorkerReply.self, from: Data(text.utf8)) else {
                return Result(outcome: .failed("unreadable worker reply: \(text.prefix(200))"), failureKind: "RuntimeFailedConfig")
            }
            switch reply.status {
            case "ok":
                guard let seconds = reply.seconds, seconds.isFinite, seconds > 0 else {
                    return Result(outcome: .failed("worker reply without a time"), failureKind: "RuntimeFailedConfig")
                }
                return Result(outcome: .seconds(seconds), compileSeconds: reply.compile_seconds, gflops: reply.gflops)
            case "wrong":
                let error = reply.max_abs_error.map { "max abs error \($0)" } ?? "differs from the reference"
                return Result(outcome: .failed("wrong result (\(error))"), failureKind: "RuntimeFailedConfig", compileSeconds: reply.compile_seconds)
            default:
                let message = reply.error ?? "failed"
                let kind = message.contains("build") || message.contains("compile") ? "CompilationFailedConfig" : "RuntimeFailedConfig"
                return Result(outcome: .failed(message), failureKind: kind, compileSeconds: reply.compile_seconds)
            }
        }
    }
}

import Foundation

/// What became of one candidate. The worker says which, by name; nothing is guessed from message text.
public enum EvaluationStatus: String, Codable, Sendable, CaseIterable {
    /// Built, ran, verified against the reference and timed.
    case ok
    /// Built and ran, but the result differs from the reference beyond the family's tolerance.
    case wrongResult = "wrong_result"
    /// The kernel did not compile for this configuration.
    case buildFailure = "build_failure"
    /// The kernel compiled but could not be launched or failed while running (also: the worker crashed).
    case launchFailure = "launch_failure"
    /// No answer within the time limit; the worker was killed.
    case timeout
    /// The configuration violates the family's constraints on this device.
    case invalidConfiguration = "invalid_configuration"
    /// Nothing can be measured in this environment (kernel sources missing, no device, the problem does not
    /// fit): not the candidate's fault, so a tuning run stops instead of recording it as a failed candidate.
    case environment

    /// Kernel Tuner's failure label for a journal entry.
    public var kernelTunerFailure: String {
        switch self {
        case .buildFailure: "CompilationFailedConfig"
        case .invalidConfiguration: "InvalidConfig"
        default: "RuntimeFailedConfig"
        }
    }
}

/// What one evaluation of a candidate found.
public struct EvaluationResult: Codable, Sendable, Equatable {
    public var status: EvaluationStatus
    /// Median seconds of one call (also for a wrong result, when it ran).
    public var seconds: Double?
    public var compileSeconds: Double?
    public var gflops: Double?
    /// Largest difference from the reference; infinity when the result holds NaN or infinity.
    public var maxAbsError: Double?
    public var tolerance: Double?
    /// Why it failed, in full (a compiler log is not cut).
    public var message: String?

    public init(status: EvaluationStatus, seconds: Double? = nil, compileSeconds: Double? = nil, gflops: Double? = nil,
                maxAbsError: Double? = nil, tolerance: Double? = nil, message: String? = nil) {
        self.status = status
        self.seconds = seconds
        self.compileSeconds = compileSeconds
        self.gflops = gflops
        self.maxAbsError = maxAbsError
        self.tolerance = tolerance
        self.message = message
    }

    /// The objective a search sees: seconds for a verified result, a failure otherwise.
    public var outcome: EvaluationOutcome {
        if status == .ok, let seconds { return .seconds(seconds) }
        return .failed(summary)
    }

    /// One line: the status and the first line of the message.
    public var summary: String {
        var text = status.rawValue.replacingOccurrences(of: "_", with: " ")
        if status == .wrongResult, let maxAbsError {
            text += " (max abs error \(maxAbsError)" + (tolerance.map { ", tolerance \($0)" } ?? "") + ")"
        }
        if let first = message?.split(separator: "\n", omittingEmptySubsequences: true).first { text += ": " + first }
        return text
    }

    private enum CodingKeys: String, CodingKey {
        case status, seconds, gflops, message, tolerance
        case compileSeconds = "compile_seconds", maxAbsError = "max_abs_error"
    }

    /// The worker channel's encoder and decoder: non-finite numbers (an error of infinity) travel as strings.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }
}

/// The environment cannot measure anything (see ``EvaluationStatus/environment``): a tuning run ends with this
/// error instead of journaling every candidate as failed.
public struct EnvironmentFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Measures candidates for a tuning run.
public protocol CandidateEvaluator: AnyObject {
    /// Builds, verifies and times `configuration`; a candidate's own failure is a result, never an error.
    /// - Parameter cutoff: seconds after which a clearly hopeless candidate may be timed by one run only.
    /// - Throws: ``EnvironmentFailure`` when nothing can be measured here.
    func evaluate(_ configuration: Configuration, cutoff: Double?) throws -> EvaluationResult
}

/// Evaluates candidates in a ``WorkerProcess`` that answers one JSON ``EvaluationResult`` line per request line.
/// A worker that crashes or exceeds `timeout` is restarted and the candidate gets a launch failure or a timeout,
/// so no candidate can end a tuning run; a worker that cannot be started, or says `environment`, ends it.
public final class WorkerEvaluator: CandidateEvaluator, @unchecked Sendable {
    public let worker: WorkerProcess
    public let timeout: Double
    private let request: (Configuration, Double?) throws -> String
    /// Crashes in a row before the worker ever answered: a worker that dies at every start is the environment's
    /// fault (a broken driver, a wrong executable), not every candidate's.
    private var crashesBeforeAnyReply = 0
    private var hasReplied = false
    static let crashesMeaningBrokenWorker = 3

    /// - Parameter request: the request line for a configuration and cutoff (one line of JSON).
    public init(worker: WorkerProcess, timeout: Double, request: @escaping (Configuration, Double?) throws -> String) {
        self.worker = worker
        self.timeout = timeout
        self.request = request
    }

    public func evaluate(_ configuration: Configuration, cutoff: Double?) throws -> EvaluationResult {
        let line = try request(configuration, cutoff)
        let outcome: WorkerProcess.Outcome
        do {
            outcome = try worker.request(line, timeout: timeout)
        } catch {
            throw EnvironmentFailure("the tuning worker cannot be used: \(error)")
        }
        switch outcome {
        case .timedOut(let seconds):
            return EvaluationResult(status: .timeout, message: "no answer within \(seconds) s; worker restarted")
        case .crashed(let status, let tail):
            let last = tail.split(separator: "\n").last.map { ": " + $0 } ?? ""
            let message = "worker crashed (status \(status))\(last)"
            if !hasReplied {
                crashesBeforeAnyReply += 1
                if crashesBeforeAnyReply >= Self.crashesMeaningBrokenWorker {
                    throw EnvironmentFailure("the tuning worker crashed on each of its first \(crashesBeforeAnyReply) requests without ever answering: \(message)")
                }
            }
            return EvaluationResult(status: .launchFailure, message: message + "; restarted")
        case .reply(let text):
            hasReplied = true
            guard let reply = try? EvaluationResult.decoder().decode(EvaluationResult.self, from: Data(text.utf8)) else {
                return EvaluationResult(status: .launchFailure, message: "unreadable worker reply: \(text.prefix(500))")
            }
            if reply.status == .environment {
                throw EnvironmentFailure(reply.message ?? "the worker cannot measure anything here")
            }
            if reply.status == .ok, !(reply.seconds.map { $0.isFinite && $0 > 0 } ?? false) {
                return EvaluationResult(status: .launchFailure, message: "worker reply without a valid time: \(text.prefix(500))")
            }
            return reply
        }
    }
}

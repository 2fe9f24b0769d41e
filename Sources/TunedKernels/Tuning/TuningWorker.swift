import Autotuning
import Foundation
import OpenCLRuntime

/// One request to a tuning worker: which family, problem, configuration and device, how to time it, and the
/// cutoff after which a clearly hopeless candidate may stop early. One JSON line.
public struct WorkerRequest<Problem: Codable>: Codable {
    public var family: String
    public var problem: Problem
    /// The role `config` is a configuration of, and the configurations of the roles it depends on.
    public var role: String
    public var given: [String: Configuration]
    public var config: Configuration
    public var cutoff: Double?
    /// Index of the device in `Device.all()`.
    public var device: Int
    public var repetitions: Int
    /// Timed runs add up to at least this many seconds.
    public var minimumSeconds: Double
    public var seed: UInt64

    private enum CodingKeys: String, CodingKey {
        case family, problem, role, given, config, cutoff, device, repetitions, seed
        case minimumSeconds = "minimum_seconds"
    }
}

/// The family name of a request line, read before the family's problem type is known.
private struct RequestHeader: Decodable { var family: String }

/// Measures candidates of one family: the harness of the last problem is kept, so a tuning run builds its
/// inputs and reference once. Used in a worker process and in-process alike, so both classify outcomes the
/// same way: a typed status, never guessed from message text.
public final class CandidateMeasurer<Family: KernelFamily> {
    public let family: Family
    private var harness: (problem: Family.Problem, seed: UInt64, harness: Family.Harness)?

    public init(family: Family) { self.family = family }

    /// Build errors that are the configuration's fault (CL_BUILD_PROGRAM_FAILURE, CL_INVALID_BUILD_OPTIONS).
    static var candidateBuildErrors: Set<Int32> { [-11, -43] }

    /// Forgets the harness (after a launch failure the device state may be spoiled).
    public func forget() { harness = nil }

    /// Measures `configuration` as a configuration of `role`, given the configurations of the roles it depends on:
    /// that role's kernels alone are timed.
    public func evaluate(_ problem: Family.Problem, role: String, given: [String: Configuration], configuration: Configuration,
                         cutoff: Double?, repetitions: Int, minimumSeconds: Double, seed: UInt64) -> EvaluationResult {
        guard let kernelRole = Family.role(named: role) else {
            return EvaluationResult(status: .environment, message: "\(Family.name) has no role \(role)")
        }
        let problems = family.violations(of: configuration, for: problem, role: kernelRole, given: given)
        guard problems.isEmpty else {
            return EvaluationResult(status: .invalidConfiguration, message: problems.joined(separator: "; "))
        }
        let harness: Family.Harness
        if let kept = self.harness, kept.problem == problem, kept.seed == seed {
            harness = kept.harness
        } else {
            self.harness = nil
            do {
                _ = try Family.kernelSource(role: kernelRole)
                harness = try family.harness(problem, seed: seed)
            } catch {
                return EvaluationResult(status: .environment, message: "cannot set up \(Family.name) \(problem): \(error)")
            }
            self.harness = (problem, seed, harness)
        }
        do {
            let configurations = given.sorted { $0.key < $1.key }.map(\.value) + [configuration]
            let measured = try harness.measure(configurations, role: Family.roles.count > 1 ? role : nil, warmup: 1, repetitions: repetitions,
                                               minimumSeconds: minimumSeconds, cutoff: cutoff)
            return EvaluationResult(status: measured.isCorrect ? .ok : .wrongResult, seconds: measured.seconds,
                                    compileSeconds: measured.compileSeconds, gflops: measured.gflops,
                                    maxAbsError: measured.maxAbsError, tolerance: measured.check.tolerance)
        } catch let error as ProgramBuildError where Self.candidateBuildErrors.contains(error.code) {
            return EvaluationResult(status: .buildFailure, message: "\(error)")
        } catch let error as ProgramBuildError {
            // No compiler, out of host memory...: no candidate would build.
            return EvaluationResult(status: .environment, message: "\(error)")
        } catch let error as KernelSources.MissingSource {
            return EvaluationResult(status: .environment, message: "\(error)")
        } catch {
            return EvaluationResult(status: .launchFailure, message: "\(error)")
        }
    }
}

/// Evaluates candidates in this process: no isolation (a crashing kernel ends the program), no process start.
public final class InProcessEvaluator<Family: KernelFamily>: CandidateEvaluator {
    let measurer: CandidateMeasurer<Family>
    let problem: Family.Problem
    let role: String, given: [String: Configuration]
    let repetitions: Int, minimumSeconds: Double, seed: UInt64

    public init(family: Family, problem: Family.Problem, role: String, given: [String: Configuration], repetitions: Int,
                minimumSeconds: Double, seed: UInt64) {
        measurer = CandidateMeasurer(family: family)
        self.problem = problem
        self.role = role
        self.given = given
        self.repetitions = repetitions
        self.minimumSeconds = minimumSeconds
        self.seed = seed
    }

    public func evaluate(_ configuration: Configuration, cutoff: Double?) throws -> EvaluationResult {
        let result = measurer.evaluate(problem, role: role, given: given, configuration: configuration, cutoff: cutoff,
                                       repetitions: repetitions, minimumSeconds: minimumSeconds, seed: seed)
        if result.status == .launchFailure { measurer.forget() }
        if result.status == .environment { throw EnvironmentFailure(result.message ?? "nothing can be measured here") }
        return result
    }
}

/// The serving side of a tuning worker process: reads ``WorkerRequest`` lines on stdin and answers one
/// ``EvaluationResult`` line each on stdout, for any family of `registry`. `autotune worker` runs it; a program
/// of your own can too (start it with ``TuningOptions/Isolation/process(executable:arguments:)``).
public enum TuningWorker {
    /// The argument that ``Isolation/thisExecutable`` starts a worker with.
    public static let argument = "--tunedkernels-tuning-worker"

    /// Call first thing in a program that tunes with ``TuningOptions/Isolation/thisExecutable``: when this
    /// process was started as its tuning worker, it serves requests and exits here; otherwise it returns at once.
    public static func serveIfRequested(_ registry: any FamilyRegistry.Type = KernelFamilies.self) {
        guard CommandLine.arguments.dropFirst().first == argument else { return }
        serve(registry)
        exit(0)
    }

    /// Serves requests until stdin ends. The process exits as soon as its parent is gone.
    public static func serve(_ registry: any FamilyRegistry.Type) {
        // A killed `tune` must not leave its worker running a kernel for seconds.
        ParentWatchdog.start(expectedParent: ParentWatchdog.expectedParentFromEnvironment())
        var state = ServerState()
        while let line = readLine() {
            let reply = state.answer(line, registry: registry)
            let data = (try? EvaluationResult.encoder().encode(reply))
                ?? Data(#"{"status":"launch_failure","message":"the reply could not be encoded"}"#.utf8)
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }

    struct ServerState {
        var contexts: [Int: Context] = [:]
        /// Measurers by family name; their families share the context of their device.
        var measurers: [String: AnyObject] = [:]

        mutating func answer(_ line: String, registry: any FamilyRegistry.Type) -> EvaluationResult {
            guard let header = try? JSONDecoder().decode(RequestHeader.self, from: Data(line.utf8)) else {
                return EvaluationResult(status: .environment, message: "unreadable request: \(line.prefix(300))")
            }
            guard let family = registry.family(named: header.family) else {
                return EvaluationResult(status: .environment, message: "this worker has no kernel family \"\(header.family)\" "
                                        + "(it has \(registry.families.map { $0.name }.joined(separator: ", ")))")
            }
            return answer(line, family: family)
        }

        mutating func answer<Family: KernelFamily>(_ line: String, family: Family.Type) -> EvaluationResult {
            let request: WorkerRequest<Family.Problem>
            do {
                request = try JSONDecoder().decode(WorkerRequest<Family.Problem>.self, from: Data(line.utf8))
            } catch {
                return EvaluationResult(status: .environment, message: "unreadable \(Family.name) request: \(error)")
            }
            let measurer: CandidateMeasurer<Family>
            if let kept = measurers[Family.name] as? CandidateMeasurer<Family>, kept.family.context.device.index == request.device {
                measurer = kept
            } else {
                do {
                    let context = try contexts[request.device] ?? {
                        let devices = try Device.all()
                        guard devices.indices.contains(request.device) else {
                            throw ProblemError("no device \(request.device) here (\(devices.count) devices)")
                        }
                        return try Context(device: devices[request.device])
                    }()
                    contexts[request.device] = context
                    measurer = CandidateMeasurer(family: try Family(context: context, database: TuningDatabase()))
                } catch {
                    return EvaluationResult(status: .environment, message: "cannot open device \(request.device): \(error)")
                }
                measurers[Family.name] = measurer
            }
            let result = measurer.evaluate(request.problem, role: request.role, given: request.given, configuration: request.config,
                                           cutoff: request.cutoff, repetitions: request.repetitions, minimumSeconds: request.minimumSeconds,
                                           seed: request.seed)
            if result.status == .launchFailure {
                // A failed launch may leave the context unusable: the next request starts from a new one.
                measurers[Family.name] = nil
                contexts[request.device] = nil
            }
            return result
        }
    }
}

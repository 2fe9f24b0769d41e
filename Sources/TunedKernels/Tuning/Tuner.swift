import Autotuning
import Foundation
import OpenCLRuntime

/// Receives a tuning run's progress (the CLI draws a progress bar; a program may log or ignore it).
public protocol TuningObserver: AnyObject {
    /// A line worth showing: the run's start, a new best, a failed candidate, the confirmation.
    func log(_ text: String)
    /// `done` of `total` evaluations; `status` is the best so far in words.
    func progress(done: Int, total: Int, status: String)
    /// The search of one problem has ended.
    func finished()
}

/// What tuning one problem found: the `results` entries of `autotune tune --json`.
public struct TuningResult<Problem: Codable & Sendable>: Encodable, Sendable {
    public struct Best: Codable, Sendable, Equatable {
        public let config: Configuration
        public let seconds: Double
        public let gflops: Double?
        public let gbps: Double?
    }

    /// A candidate that failed, with its whole message (a compiler log is not cut).
    public struct Failure: Encodable, Sendable {
        public let config: Configuration
        public let status: EvaluationStatus
        public let message: String?
    }

    public let problem: Problem
    /// The kernel role tuned.
    public let role: String
    /// The configurations of the roles it depends on, as the dispatcher chose them when the search ran.
    public let given: [String: Configuration]
    public let key: TuningKey
    /// Unique configurations evaluated, of which `measured` were run now and `fromJournal` read from the journal.
    public let evaluations: Int
    public let measured: Int
    public let fromJournal: Int
    public let failures: Int
    /// Candidates the search started from (the current choice and the nearest tuned problems' best).
    public let seeds: Int
    /// How many of the fastest candidates were timed again before the best was chosen.
    public let confirmed: Int
    public let best: Best?
    /// Best seconds after each evaluation (nil while nothing succeeded).
    public let history: [Double?]
    public let journal: String
    /// The database file the best was merged into, nil when nothing was saved (no candidate succeeded).
    public let savedTo: String?
    public let failureDetails: [Failure]

    private enum CodingKeys: String, CodingKey {
        case problem, role, given, key, evaluations, measured, failures, seeds, confirmed, best, history, journal
        case fromJournal = "from_journal", savedTo = "saved_to", failureDetails = "failure_details"
    }
}

/// Tunes problems of one kernel family on its device: journal and resume, seeding from the nearest tuned
/// problems, worker isolation, budgets, confirmation rounds and the database merge, for any family.
///
/// ```swift
/// let gemm = try GEMM(context: Context())
/// var options = TuningOptions()
/// options.budget = 20
/// let results = try Tuner(gemm, options: options).tune(GEMMProblem(m: 512, n: 768, k: 768, precision: .half))
/// print(results[0].best?.config, results[0].best?.gflops)   // also merged into the user's database of the device
/// ```
public final class Tuner<Family: KernelFamily> {
    public let family: Family
    public let options: TuningOptions
    /// Receives the progress (held strongly; set it to nil to stop).
    public var observer: (any TuningObserver)?
    /// Where results are merged.
    public let databasePath: String
    public let journalDirectory: String

    /// Checks the options, and that the database file is readable and writable, before any work.
    public init(_ family: Family, options: TuningOptions = TuningOptions(), observer: (any TuningObserver)? = nil) throws {
        try options.validate()
        self.family = family
        self.options = options
        self.observer = observer
        let device = family.context.device
        databasePath = options.databasePath ?? TuningDatabase.userDatabasePath(for: device)
        journalDirectory = options.journalDirectory ?? ProgramCache.cacheRoot() + "/journal"
        try WritablePath.check(databasePath, what: "the tuning database")
        if let file = try TuningDatabase.read(path: databasePath), file.device.name != device.name {
            throw TuningOptionsError("the tuning database \(databasePath) holds entries of \(file.device.name), not of \(device.name): "
                                     + "give another file, so that the entries of two devices do not mix")
        }
    }

    private func log(_ text: String) { observer?.log(text) }

    /// Tunes every role of `problem` in turn (dependencies first, each given the configurations the ones before
    /// it were just given), or `role` alone (given the dispatcher's choices of the roles it depends on), and merges
    /// each role's best configuration into ``databasePath``. One result per role, in order.
    ///
    /// - Throws: ``ProblemError`` for a problem that does not fit or a role the family does not have;
    ///   ``EnvironmentFailure`` when nothing can be measured (kernel sources missing, the worker cannot start):
    ///   the run stops and journals nothing for it.
    public func tune(_ problem: Family.Problem, role: String? = nil) throws -> [TuningResult<Family.Problem>] {
        let roles: [KernelRole]
        if let role {
            guard let named = Family.role(named: role) else {
                throw ProblemError("\(Family.name) has no role \(role) (its roles: \(Family.roles.map(\.name).joined(separator: ", ")))")
            }
            roles = [named]
        } else {
            roles = Family.roles
        }
        let results = try roles.map { try tune(problem, role: $0) }
        // A role tuned alone may change what the roles that depend on it were tuned on.
        let dependents = Family.roles.filter { dependent in roles.contains { dependent.dependsOn.contains($0.name) } && !roles.contains(dependent) }
        if !dependents.isEmpty {
            log("note: \(dependents.map(\.name).joined(separator: ", ")) depend\(dependents.count == 1 ? "s" : "") on \(roles.map(\.name).joined(separator: ", ")): "
                + "an entry tuned on an earlier choice may no longer be valid (the dispatcher then uses the defaults); tune "
                + dependents.map { "--role \($0.name)" }.joined(separator: " and ") + " again")
        }
        return results
    }

    /// Tunes one role of `problem`, given the dispatcher's choices (this device's database and ``databasePath``)
    /// for the roles it depends on.
    public func tune(_ problem: Family.Problem, role: KernelRole) throws -> TuningResult<Family.Problem> {
        try family.check(problem)
        let device = family.context.device
        let dispatcher = try self.dispatcher()
        let given = dispatcher.given(for: problem, role: role)
        let space = family.tuningSpace(for: problem, role: role, given: given)
        let columns = space.kernelTunerColumns
        let key = Family.key(problem, role: role)
        let source: String
        // The role's program, and the family's when the role has files of its own (its kernels that are never tuned
        // run in the role's launches too); the configurations it is given. A family of one role keeps its journals.
        do {
            source = try Family.kernelSource() + (role.sources == nil ? "" : try Family.kernelSource(role: role))
                + (given.isEmpty ? "" : "\(given.sorted { $0.key < $1.key })")
        } catch {
            throw EnvironmentFailure("\(error)")
        }
        let journalPath = try self.journalPath(problem, key: key, source: source, columns: columns)
        let journal = try KernelTunerJournal(path: journalPath, header: KernelTunerCache(
            deviceName: device.name, kernelName: Family.name, problemSize: key.sizes,
            parameterNames: columns.names, parameterValues: columns.values))
        var known: [Candidate: EvaluationOutcome] = [:]
        for entry in journal.entries.values {
            guard let candidate = space.candidate(kernelTunerLabels: entry.labels, names: columns.names) else { continue }
            known[candidate] = entry.time.map { .seconds($0 / 1000) } ?? .failed(entry.failure ?? "failed")
        }
        let initial = seeds(problem, role: role, given: given, key: key, space: space, dispatcher: dispatcher)
        let evaluator = try makeEvaluator(problem, role: role, given: given)
        defer { (evaluator as? WorkerEvaluator)?.worker.stop() }

        log("tune \(Family.name)\(Family.roles.count > 1 ? " \(role.name)" : "") \(problem) on \(device.name): \(options.strategy.rawValue), budget \(options.budget), "
            + "\(known.count) journaled, \(initial.count) seeds; journal \(journalPath)")
        let work = Family.work(problem, role: role)
        var bestSoFar: Double?
        var failureDetails: [TuningResult<Family.Problem>.Failure] = []
        let session = SearchSession(space: space, seed: options.seed, budget: TuningBudget(evaluations: options.budget, seconds: options.timeLimit),
                                    known: known) { candidate in
            guard let configuration = space.configuration(candidate) else { return .failed("not a configuration of \(Family.name)") }
            let result = try evaluator.evaluate(configuration, cutoff: bestSoFar.map { 4 * $0 + 0.05 })
            if result.status != .ok {
                failureDetails.append(.init(config: configuration, status: result.status, message: result.message ?? result.summary))
                if result.status == .buildFailure, let log = result.message {
                    self.log("  build failure of \(configuration):\n" + log)
                }
            }
            // A timeout may be the machine's load rather than the candidate's: not journaled, so a resumed run retries it.
            if result.status == .timeout { return result.outcome }
            try journal.record(KernelTunerCache.Entry(
                labels: space.kernelTunerLabels(candidate), time: result.outcome.seconds.map { $0 * 1000 },
                failure: result.status == .ok ? nil : result.status.kernelTunerFailure, times: result.outcome.seconds.map { [$0 * 1000] } ?? [],
                compileTime: result.compileSeconds.map { $0 * 1000 }, extra: result.outcome.seconds.flatMap(work.gflops).map { ["GFLOP/s": $0] } ?? [:]))
            return result.outcome
        }
        var measured = 0, failures = 0
        session.onEvaluation = { [weak self] record in
            guard let self else { return }
            if !record.fromJournal { measured += 1 }
            let improved = record.value != nil && record.value == record.best && record.best != bestSoFar
            bestSoFar = record.best
            let configuration = space.configuration(record.candidate).map { "\($0)" } ?? "\(record.candidate)"
            let total = self.options.budget
            if let failure = record.failure {
                failures += 1
                self.log("  [\(record.number)/\(total)] failed (\(record.strategy)): \(configuration): \(failure.prefix(300))")
            } else if improved, let value = record.value {
                self.log("  [\(record.number)/\(total)] new best \(work.rate(value)) (\(record.strategy)): \(configuration)")
            }
            self.observer?.progress(done: record.number, total: total, status: bestSoFar.map { "best \(work.rate($0))" } ?? "")
        }
        do {
            try runSearch(options.strategy.make(), in: session, initial: initial)
        } catch {
            observer?.finished()
            throw error
        }
        observer?.finished()
        try journal.close()
        let (confirmed, chosen) = try confirmBest(session: session, space: space, evaluator: evaluator, work: work)

        var best: TuningResult<Family.Problem>.Best?
        var savedTo: String?
        if let (candidate, seconds) = chosen, let configuration = space.configuration(candidate) {
            best = .init(config: configuration, seconds: seconds, gflops: work.gflops(seconds), gbps: work.gbps(seconds))
            try TuningDatabase.merge([TuningEntry(key: key, config: configuration, seconds: seconds, gflops: work.gflops(seconds), gbps: work.gbps(seconds))],
                                     into: databasePath, device: device.identity)
            savedTo = databasePath
        }
        return TuningResult(problem: problem, role: role.name, given: given, key: key, evaluations: session.evaluations, measured: measured,
                            fromJournal: session.evaluations - measured, failures: failures, seeds: initial.count, confirmed: confirmed,
                            best: best, history: session.history, journal: journalPath, savedTo: savedTo, failureDetails: failureDetails)
    }

    // MARK: Parts

    /// `<journals>/<family>/<device>/<key>-<hash>.json`; the hash covers the family, the problem, the device and
    /// its driver, the kernel source, the space and how candidates are timed, so an edited kernel or a driver
    /// update starts a new journal.
    func journalPath(_ problem: Family.Problem, key: TuningKey, source: String, columns: (names: [String], values: [[String]])) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let device = family.context.device
        let identity = [Family.name, String(decoding: try encoder.encode(problem), as: UTF8.self), device.name, device.vendor,
                        device.driverVersion, device.platformVersion, source, "\(columns.names)", "\(columns.values)",
                        "repetitions \(options.repetitions) minimum \(options.minimumSeconds) data seed \(options.dataSeed)"]
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identity.joined(separator: "\u{1}").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let words = [key.kernel] + key.tags.sorted { $0.key < $1.key }.map(\.value) + [key.sizes.map(String.init).joined(separator: "x")]
        let name = String(words.joined(separator: "-").map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "x" ? $0 : "_" }.prefix(120))
        let hex = String(hash, radix: 16)
        return journalDirectory + "/\(Family.name)/\(device.slug)/\(name)-\(String(repeating: "0", count: 16 - hex.count) + hex).json"
    }

    /// The family on the device's database with the output file overlaid: the dispatcher whose choices the
    /// search starts from, and whose choices of the roles a role depends on it is given.
    func dispatcher() throws -> Family {
        var database = family.database
        if let file = try TuningDatabase.read(path: databasePath) { database.overlay(file, source: databasePath) }
        return try Family(core: FamilyCore(context: family.context, database: database, source: Family.kernelSource))
    }

    /// The configuration the dispatcher would choose with the device's database and the output file (its tuned
    /// entry, else the nearest tuned, else the default), the family's default, then the best of the nearest tuned
    /// problems; with `transfer` 0, the device default alone.
    func seeds(_ problem: Family.Problem, role: KernelRole, given: [String: Configuration], key: TuningKey, space: TuningSpace,
               dispatcher: Family) -> [Candidate] {
        var configurations: [Configuration] = []
        let valid = { (configuration: Configuration) in self.family.violations(of: configuration, for: problem, role: role, given: given).isEmpty }
        let defaults = family.defaults(for: problem, role: role, given: given)
        if options.transfer > 0 {
            configurations = [dispatcher.configuration(for: problem, role: role, given: given).0]
            // The family's default too: a tuned or nearest entry from an older build or another shape class must
            // not keep the search from the configuration a call would get without it.
            configurations += defaults.first(where: valid).map { [$0] } ?? []
            configurations += dispatcher.database.nearest(key, count: .max).map(\.config).filter(valid).prefix(options.transfer)
        } else if let first = defaults.first(where: valid) {
            configurations = [first]
        }
        var initial: [Candidate] = []
        for configuration in configurations {
            if let candidate = space.candidate(configuration), !initial.contains(candidate) { initial.append(candidate) }
        }
        return initial
    }

    func makeEvaluator(_ problem: Family.Problem, role: KernelRole, given: [String: Configuration]) throws -> any CandidateEvaluator {
        switch options.isolation {
        case .inProcess:
            // A private core, so the candidates' kernels and scratch buffers go when the run ends, not with the caller's family.
            let own = try Family(core: FamilyCore(context: family.context, database: TuningDatabase(), source: Family.kernelSource))
            return InProcessEvaluator(family: own, problem: problem, role: role.name, given: given, repetitions: options.repetitions,
                                      minimumSeconds: options.minimumSeconds, seed: options.dataSeed)
        case .process(let executable, let arguments):
            let device = family.context.device.index
            let options = self.options
            return WorkerEvaluator(worker: WorkerProcess(executable: executable, arguments: arguments), timeout: options.timeout) { configuration, cutoff in
                let request = WorkerRequest(family: Family.name, problem: problem, role: role.name, given: given, config: configuration,
                                            cutoff: cutoff, device: device,
                                            repetitions: options.repetitions, minimumSeconds: options.minimumSeconds, seed: options.dataSeed)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return String(decoding: try encoder.encode(request), as: UTF8.self)
            }
        }
    }

    /// The `confirm` fastest distinct candidates timed again in interleaved rounds; the best median wins.
    /// Returns how many were re-timed and the choice (the search's best when there is nothing to confirm or no
    /// re-timing succeeded).
    func confirmBest(session: SearchSession, space: TuningSpace, evaluator: any CandidateEvaluator, work: Work) throws
        -> (Int, (Candidate, Double)?) {
        var finalists: [Candidate] = []
        for record in session.records.filter({ $0.value != nil }).sorted(by: { $0.value! < $1.value! })
        where finalists.count < options.confirm && !finalists.contains(record.candidate) {
            finalists.append(record.candidate)
        }
        guard finalists.count > 1 else { return (0, session.best) }
        log("  confirming the \(finalists.count) fastest in \(options.confirmRounds) interleaved rounds")
        var times = [[Double]](repeating: [], count: finalists.count)
        var disqualified = Set<Int>()
        try forEachInterleaved(count: finalists.count, rounds: options.confirmRounds) { index, _ in
            guard !disqualified.contains(index), let configuration = space.configuration(finalists[index]) else { return }
            let result = try evaluator.evaluate(configuration, cutoff: nil)
            if let seconds = result.outcome.seconds {
                times[index].append(seconds)
            } else {
                // Wrong or failing once is enough: a racy kernel must not win on its lucky rounds.
                disqualified.insert(index)
                log("    disqualified (\(result.summary)): \(configuration)")
            }
        }
        let timed = finalists.indices.filter { !times[$0].isEmpty && !disqualified.contains($0) }
        guard let winner = timed.min(by: { median(times[$0]) < median(times[$1]) }) else {
            log("  no finalist passed the confirmation rounds: nothing is saved")
            return (finalists.count, nil)
        }
        for index in timed {
            let configuration = space.configuration(finalists[index]).map { "\($0)" } ?? ""
            log("    \(work.rate(median(times[index])))\(index == winner ? " (chosen)" : ""): \(configuration)")
        }
        return (finalists.count, (finalists[winner], median(times[winner])))
    }
}

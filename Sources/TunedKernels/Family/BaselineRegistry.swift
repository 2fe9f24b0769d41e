import Foundation
import Synchronization

/// Baselines that need a library the TunedKernels library does not link (CLBlast, which only the `autotune` CLI
/// links), registered for a family by the program that links it. `bench` asks for a family's baselines through the
/// family's own types, so no caller casts a harness.
///
/// ```swift
/// BaselineRegistry.register(GEMM.self, name: "clblast") { harness, problem in CLBlastBaseline.baselines(harness) }
/// ```
public enum BaselineRegistry {
    /// One registration: its name (a registration of the same name replaces it) and its maker, type-erased.
    private struct Entry: Sendable {
        let family: String
        let name: String
        let make: @Sendable (Any, Any) -> [Baseline]
    }

    private static let entries = Mutex<[Entry]>([])

    /// Registers `make` as a source of baselines for `family`'s problems.
    public static func register<Family: KernelFamily>(_ family: Family.Type, name: String,
                                                       _ make: @escaping @Sendable (Family.Harness, Family.Problem) -> [Baseline]) {
        let entry = Entry(family: Family.name, name: name) { harness, problem in
            // Only `baselines(for:harness:problem:)` calls this, with the family's own harness and problem.
            guard let harness = harness as? Family.Harness, let problem = problem as? Family.Problem else { return [] }
            return make(harness, problem)
        }
        entries.withLock { list in
            list.removeAll { $0.family == entry.family && $0.name == name }
            list.append(entry)
        }
    }

    /// The registered baselines of `family` for `problem` on `harness`'s data, in registration order.
    public static func baselines<Family: KernelFamily>(for family: Family.Type, harness: Family.Harness, problem: Family.Problem) -> [Baseline] {
        entries.withLock { $0 }.filter { $0.family == Family.name }.flatMap { $0.make(harness, problem) }
    }
}

import ArgumentParser
import Autotuning
import Foundation
import OpenCLRuntime
import TunedKernels

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the tuning database of a device (shipped, user and TUNEDKERNELS_TUNING_DB layers merged) and where it came from.",
        discussion: "When no file was tuned on this device, the closest tuned device of the same vendor and type is used (a fallback), else the families' defaults.")

    @Option(help: "Device index or name substring (default: TUNEDKERNELS_DEVICE, else the first GPU, else the first device).")
    var device: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        var environment = ProcessInfo.processInfo.environment
        if let device { environment["TUNEDKERNELS_DEVICE"] = device }
        let chosen = try Device.selected(environment: environment)
        let (database, origin) = try TuningDatabase.forDevice(chosen, environment: environment)
        let entries = database.entries.values.sorted { $0.key.id < $1.key.id }
        if output.json {
            struct Report: Encodable { let device: String; let database: DatabaseOrigin; let entries: [TuningEntry] }
            try printJSON(Report(device: chosen.name, database: origin, entries: entries))
            return
        }
        print("\(chosen.name): \(entries.count) entries; database \(origin.summary)")
        print(table(["kernel", "tags", "sizes", "GFLOP/s", "GB/s", "seconds", "date", "configuration"], entries.map { e in
            [e.key.kernel, e.key.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
             e.key.sizes.map(String.init).joined(separator: "x"), format(e.gflops, 1), format(e.gbps, 1), format(e.seconds, 5),
             String(e.date.prefix(10)), "\(e.config)"]
        }))
    }
}

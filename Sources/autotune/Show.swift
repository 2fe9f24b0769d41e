import ArgumentParser
import Foundation
import Autotuning
import OpenCLRuntime
import TunedKernels

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the tuning database of a device (shipped, user and TUNEDKERNELS_TUNING_DB layers merged).")

    @Option(help: "Device index or name substring (default: TUNEDKERNELS_DEVICE, else the first GPU, else the first device).")
    var device: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        var environment = ProcessInfo.processInfo.environment
        if let device { environment["TUNEDKERNELS_DEVICE"] = device }
        let chosen = try Device.selected(environment: environment)
        let database = try TuningDatabase.forDevice(chosen)
        let entries = database.entries.values.sorted { a, b in
            let (x, y) = ((a.kernel, a.precision, a.layout), (b.kernel, b.precision, b.layout))
            return x != y ? x < y : a.shape.lexicographicallyPrecedes(b.shape)
        }
        if output.json {
            struct Report: Encodable { let device: String; let sources: [String]; let entries: [TuningEntry] }
            try printJSON(Report(device: chosen.name, sources: database.sources, entries: entries))
            return
        }
        print("\(chosen.name): \(entries.count) entries from \(database.sources.isEmpty ? "no database" : database.sources.joined(separator: ", "))")
        print(table(["kernel", "precision", "layout", "shape", "GFLOP/s", "seconds", "date", "configuration"], entries.map { e in
            [e.kernel, e.precision, e.layout, e.shape.map(String.init).joined(separator: "x") + (e.batch > 1 ? " x\(e.batch)" : ""),
             format(e.gflops, 1), format(e.seconds, 5), String(e.date.prefix(10)), "\(e.config)"]
        }))
    }
}

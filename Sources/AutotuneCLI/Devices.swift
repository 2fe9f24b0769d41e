import ArgumentParser
import OpenCLRuntime

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the OpenCL devices and their properties.")

    @OptionGroup var output: OutputOptions

    struct Info: Encodable {
        let index: Int, name: String, vendor: String, platform: String, version: String, driver_version: String
        let type: String, compute_units: Int, max_clock_mhz: Int, global_memory_bytes: Int, max_allocation_bytes: Int
        let local_memory_bytes: Int, max_work_group_size: Int, max_work_item_sizes: [Int], supports_half: Bool
        let supports_double: Bool, extensions: [String], selected: Bool, slug: String
    }

    func run() throws {
        let devices = try Device.all()
        let selected = try? Device.selected()
        let infos = devices.map { d in
            Info(index: d.index, name: d.name, vendor: d.vendor, platform: d.platformName, version: d.version,
                 driver_version: d.driverVersion, type: d.kind.rawValue, compute_units: d.computeUnits,
                 max_clock_mhz: d.maxClockMHz, global_memory_bytes: d.globalMemoryBytes, max_allocation_bytes: d.maxAllocationBytes,
                 local_memory_bytes: d.localMemoryBytes, max_work_group_size: d.maxWorkGroupSize,
                 max_work_item_sizes: d.maxWorkItemSizes, supports_half: d.supportsHalf, supports_double: d.supportsDouble,
                 extensions: d.extensions.sorted(), selected: d.index == selected?.index, slug: d.slug)
        }
        if output.json {
            struct Report: Encodable { let devices: [Info] }
            try printJSON(Report(devices: infos))
            return
        }
        if infos.isEmpty { print("No OpenCL devices. Install a driver (Debian: apt-get install pocl-opencl-icd) and check `clinfo -l`.") }
        print(table(["#", "device", "platform", "type", "CUs", "global MiB", "local KiB", "max WG", "fp16"], infos.map {
            ["\($0.selected ? "*" : " ")\($0.index)", $0.name, $0.platform, $0.type, "\($0.compute_units)",
             "\($0.global_memory_bytes >> 20)", "\($0.local_memory_bytes >> 10)", "\($0.max_work_group_size)", $0.supports_half ? "yes" : "no"]
        }))
    }
}

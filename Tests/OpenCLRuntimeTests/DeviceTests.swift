import Foundation
import OpenCLRuntime
import Testing

@Suite struct DeviceTests {
    @Test func enumeratesDevicesWithSaneProperties() throws {
        let devices = try Device.all()
        #expect(!devices.isEmpty, "no OpenCL device: is pocl-opencl-icd installed?")
        for device in devices {
            #expect(!device.name.isEmpty)
            #expect(device.computeUnits >= 1)
            #expect(device.maxWorkGroupSize >= 1)
            #expect(device.localMemoryBytes > 0)
            #expect(device.maxWorkItemSizes.count >= 3)
            #expect(device.supportsHalf == device.extensions.contains("cl_khr_fp16"))
            #expect(!device.slug.isEmpty && device.slug.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" })
        }
    }

    @Test func pinsPoCLWorkerThreadsUnlessTheUserChose() throws {
        let before = ProcessInfo.processInfo.environment["POCL_AFFINITY"]
        _ = try Device.all()
        // Pinned by the first enumeration, or left as the user (or the test runner) set it.
        #expect(ProcessInfo.processInfo.environment["POCL_AFFINITY"] == (before ?? "1"))
    }

    @Test func selectionByIndexNameAndDefault() throws {
        let devices = try Device.all()
        let first = try #require(devices.first)
        #expect(try Device.selected(environment: ["TUNEDKERNELS_DEVICE": "0"]).index == 0)
        let byName = try Device.selected(environment: ["TUNEDKERNELS_DEVICE": String(first.name.prefix(6)).uppercased()])
        #expect(byName.name.lowercased().contains(first.name.prefix(6).lowercased()))
        let chosen = try Device.selected(environment: [:])
        if devices.contains(where: { $0.kind == .gpu }) { #expect(chosen.kind == .gpu) } else { #expect(chosen.index == 0) }
    }

    @Test func selectorMatchingNothingThrowsNamingTheDevices() throws {
        #expect {
            _ = try Device.selected(environment: ["TUNEDKERNELS_DEVICE": "no-such-device-xyz"])
        } throws: { error in
            "\(error)".contains("no-such-device-xyz") && "\(error)".contains("available")
        }
    }
}

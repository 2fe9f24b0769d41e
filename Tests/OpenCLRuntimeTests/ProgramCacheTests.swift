import Foundation
import OpenCLRuntime
import Testing

@Suite struct ProgramCacheTests {
    static let source = """
        __kernel void scale(__global float* x, const float factor) { x[get_global_id(0)] *= factor; }
        """

    @Test func buildFailureCarriesTheCompilerLog() throws {
        let context = try Context(programCacheDirectory: nil)
        #expect {
            _ = try Program.build(context, source: "__kernel void broken( { }")
        } throws: { error in
            guard let build = error as? ProgramBuildError else { return false }
            return !build.log.isEmpty && "\(build)".contains("CL_BUILD_PROGRAM_FAILURE")
        }
    }

    @Test func kernelRunsAndMemoryCacheServesRepeats() throws {
        let context = try Context(programCacheDirectory: nil)
        let program = try context.programs.program(context, source: Self.source, options: "-DX=1")
        let again = try context.programs.program(context, source: Self.source, options: "-DX=1")
        #expect(program === again)
        #expect(context.programs.statistics == .init(memoryHits: 1, diskHits: 0, builds: 1))
        let data = try DeviceBuffer<Float>(context, [1, 2, 3, 4])
        let event = try program.kernel(named: "scale").launch(on: context.queue, global: [4], arguments: [data, Float(2)])
        #expect(try event.seconds() >= 0)
        #expect(try data.download() == [2, 4, 6, 8])
        #expect(throws: OpenCLError.self) { _ = try program.kernel(named: "missing") }
    }

    @Test func secondStartLoadsTheBinaryFromDiskWithoutRebuilding() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tk-programs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try Context(programCacheDirectory: folder, programBinaries: .always)
        _ = try first.programs.program(first, source: Self.source, options: "")
        #expect(first.programs.statistics.builds == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".bin") }.count == 1)

        // A new context with its own cache object stands for a second process start.
        let second = try Context(programCacheDirectory: folder, programBinaries: .always)
        let program = try second.programs.program(second, source: Self.source, options: "")
        #expect(second.programs.statistics == .init(memoryHits: 0, diskHits: 1, builds: 0))
        let data = try DeviceBuffer<Float>(second, [3])
        try program.kernel(named: "scale").launch(on: second.queue, global: [1], arguments: [data, Float(3)]).wait()
        #expect(try data.download() == [9])

        // Other options are another program.
        _ = try second.programs.program(second, source: Self.source, options: "-DOTHER")
        #expect(second.programs.statistics.builds == 1)
    }

    /// By default no binary is stored for a driver that keeps compiled kernels itself (PoCL: asking it for binaries
    /// compiles every kernel of the program), and one is for any other.
    @Test func binariesAreStoredUnlessTheDriverCaches() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tk-programs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let context = try Context(programCacheDirectory: folder)
        _ = try context.programs.program(context, source: Self.source, options: "-DDEFAULT_POLICY")
        let stored = (try? FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".bin") }.count) ?? 0
        #expect(stored == (context.device.driverCachesCompiledKernels ? 0 : 1), "\(context.device.platformName)")
        #expect(context.programs.storesBinaries(for: context.device) == !context.device.driverCachesCompiledKernels)
    }

    @Test func corruptBinaryIsRebuiltFromSource() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tk-programs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try Context(programCacheDirectory: folder, programBinaries: .always)
        _ = try first.programs.program(first, source: Self.source, options: "")
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        let second = try Context(programCacheDirectory: folder, programBinaries: .always)
        _ = try second.programs.program(second, source: Self.source, options: "")
        #expect(second.programs.statistics.builds == 1)
    }

    @Test func launchRejectsGlobalSizesThatAreNotMultiplesOfLocal() throws {
        let context = try Context(programCacheDirectory: nil)
        let kernel = try context.programs.program(context, source: Self.source, options: "").kernel(named: "scale")
        let data = try DeviceBuffer<Float>(context, count: 6)
        #expect {
            try kernel.launch(on: context.queue, global: [6], local: [4], arguments: [data, Float(1)])
        } throws: { error in
            (error as? OpenCLError)?.name == "CL_INVALID_WORK_GROUP_SIZE"
        }
    }
}

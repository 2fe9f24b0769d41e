import Foundation
import PackagePlugin

/// Embeds the package's top-level `Kernels/*.cl` and `autotune/*.json` into the target as string
/// literals (`EmbeddedKernels.files`, `EmbeddedTuningDatabases.files`).
@main
struct EmbedResources: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let tool = try context.tool(named: "KernelEmbedder").url
        let root = context.package.directoryURL
        return [
            try command(tool: tool, folder: root.appending(path: "Kernels"), suffix: ".cl",
                        enumName: "EmbeddedKernels", work: context.pluginWorkDirectoryURL),
            try command(tool: tool, folder: root.appending(path: "autotune"), suffix: ".json",
                        enumName: "EmbeddedTuningDatabases", work: context.pluginWorkDirectoryURL),
        ]
    }

    private func command(tool: URL, folder: URL, suffix: String, enumName: String, work: URL) throws -> Command {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let inputs = names.filter { $0.hasSuffix(suffix) }.sorted().map { folder.appending(path: $0) }
        let output = work.appending(path: "\(enumName).swift")
        return .buildCommand(
            displayName: "Embedding \(inputs.count) \(suffix) file(s) from \(folder.lastPathComponent)/",
            executable: tool,
            arguments: [output.path, enumName, folder.path, suffix],
            // The folder too: adding a file changes its modification time, which re-runs the command.
            inputFiles: [folder] + inputs,
            outputFiles: [output]
        )
    }
}

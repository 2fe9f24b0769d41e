import Foundation
import PackagePlugin

/// Embeds the package's top-level `Kernels/**/*.cl` and `autotune/*.json` into the target as string
/// literals (`EmbeddedKernels.files`, `EmbeddedTuningDatabases.files`), keyed by their paths in the folder.
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
        // Files in subfolders too (a family's folder of sources), and the subfolders themselves as inputs.
        let names = ((FileManager.default.enumerator(atPath: folder.path)?.allObjects as? [String]) ?? []).sorted()
        let inputs = names.filter { $0.hasSuffix(suffix) }.map { folder.appending(path: $0) }
        let folders = names.filter { name in
            var isFolder: ObjCBool = false
            return FileManager.default.fileExists(atPath: folder.appending(path: name).path, isDirectory: &isFolder) && isFolder.boolValue
        }.map { folder.appending(path: $0) }
        let output = work.appending(path: "\(enumName).swift")
        return .buildCommand(
            displayName: "Embedding \(inputs.count) \(suffix) file(s) from \(folder.lastPathComponent)/",
            executable: tool,
            arguments: [output.path, enumName, folder.path, suffix],
            // The folder too: adding a file changes its modification time, which re-runs the command.
            inputFiles: [folder] + folders + inputs,
            outputFiles: [output]
        )
    }
}

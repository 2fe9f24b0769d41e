import ArgumentParser

@main
struct Autotune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autotune",
        abstract: "Tune and benchmark TunedKernels' OpenCL kernels on this machine's devices.",
        discussion: """
            The device is TUNEDKERNELS_DEVICE (an index from `autotune devices`, or part of a name), \
            else the first GPU, else the first device. --json prints exactly one JSON object on stdout; \
            progress goes to stderr.
            """,
        subcommands: [Devices.self, Bench.self, Verify.self, Tune.self, ReplayCommand.self, Show.self, Worker.self]
    )
}

/// Options every subcommand shares.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object on stdout instead of a table.")
    var json = false
}

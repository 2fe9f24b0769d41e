// swift-tools-version: 6.1
import PackageDescription

// MARK: - System libraries

let systemLibraries: [Target] = [
    .systemLibrary(
        name: "COpenCL",
        pkgConfig: "OpenCL",
        providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers", "pocl-opencl-icd"])]
    ),
    .systemLibrary(
        name: "CBLAS",
        pkgConfig: "openblas",
        providers: [.apt(["libopenblas-dev"])]
    ),
    .systemLibrary(
        name: "CZlib",
        pkgConfig: "zlib",
        providers: [.apt(["zlib1g-dev"])]
    ),
    .systemLibrary(
        name: "CCLBlast",
        pkgConfig: "clblast",
        providers: [.apt(["libclblast-dev"])]
    ),
]

// MARK: - Build-time embedding of Kernels/ and autotune/

let embedding: [Target] = [
    .executableTarget(name: "KernelEmbedder", path: "Sources/KernelEmbedder"),
    .plugin(
        name: "EmbedResources",
        capability: .buildTool(),
        dependencies: ["KernelEmbedder"],
        path: "Plugins/EmbedResources"
    ),
]

// MARK: - Library layers

let libraries: [Target] = [
    .target(name: "OpenCLRuntime", dependencies: ["COpenCL"]),
    .target(name: "Autotuning", dependencies: ["OpenCLRuntime", "CZlib"]),
    .target(
        name: "TunedKernels",
        dependencies: ["Autotuning", "OpenCLRuntime", "CBLAS"],
        plugins: ["EmbedResources"]
    ),
]

// MARK: - Command-line tool and examples

let executables: [Target] = [
    // The commands, generic over a registry of kernel families (tests add a family of their own).
    .target(
        name: "AutotuneCLI",
        dependencies: [
            "TunedKernels", "OpenCLRuntime", "Autotuning", "CCLBlast",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    .executableTarget(name: "autotune", dependencies: ["AutotuneCLI", "TunedKernels"]),
    .executableTarget(name: "GEMMExample", dependencies: ["TunedKernels"], path: "Examples/GEMMExample"),
    .executableTarget(name: "TuneExample", dependencies: ["TunedKernels"], path: "Examples/TuneExample"),
    // `autotune` plus a test-only "vector add" family: proof that a family needs no CLI change.
    .executableTarget(name: "autotune-fixture", dependencies: ["AutotuneCLI", "TunedKernels", "OpenCLRuntime", "Autotuning"],
                      path: "Tests/Fixtures/AutotuneFixture"),
]

// MARK: - Tests

let tests: [Target] = [
    .testTarget(name: "OpenCLRuntimeTests", dependencies: ["OpenCLRuntime"]),
    .testTarget(name: "AutotuningTests", dependencies: ["Autotuning"]),
    .testTarget(name: "TunedKernelsTests", dependencies: ["TunedKernels", "OpenCLRuntime", "Autotuning", "CBLAS"]),
]

let package = Package(
    name: "TunedKernels",
    products: [
        .library(name: "TunedKernels", targets: ["TunedKernels"]),
        .library(name: "OpenCLRuntime", targets: ["OpenCLRuntime"]),
        .executable(name: "autotune", targets: ["autotune"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: systemLibraries + embedding + libraries + executables + tests,
    swiftLanguageModes: [.v6]
)

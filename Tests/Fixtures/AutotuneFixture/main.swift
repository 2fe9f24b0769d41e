// `autotune` with one more kernel family, registered here only: the tests run tune, bench and verify on it to
// show that the family protocol carries a family with no change to the CLI.
import AutotuneCLI
import TunedKernels

enum FixtureFamilies: FamilyRegistry {
    static let families: [any KernelFamily.Type] = KernelFamilies.families + [VectorAdd.self]
}

AutotuneCommand<FixtureFamilies>.main()

/// A list of kernel families: what the `autotune` commands, the tuning worker and the benchmarks iterate over.
public protocol FamilyRegistry {
    static var families: [any KernelFamily.Type] { get }
}

/// The families of this package. Adding a family is its folder, its `.cl` file and one line here.
public enum KernelFamilies: FamilyRegistry {
    public static let families: [any KernelFamily.Type] = [
        GEMM.self,
        Bandwidth.self,
        CutCrossEntropy.self,
        Attention.self,
    ]
}

extension FamilyRegistry {
    /// The family named `name`, if registered.
    public static func family(named name: String) -> (any KernelFamily.Type)? {
        families.first { $0.name == name }
    }
}

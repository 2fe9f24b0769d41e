import OpenCLRuntime

/// The device properties that bound a search space.
public struct DeviceLimits: Sendable, Hashable {
    public var kind: Device.Kind
    public var maxWorkGroupSize: Int
    public var maxWorkItemSizes: [Int]
    public var localMemoryBytes: Int
    public var supportsHalf: Bool
    /// Floats per native vector register (``Device/nativeFloatVectorWidth``); defaults size their tiles by it.
    public var nativeFloatVectorWidth: Int

    public init(kind: Device.Kind, maxWorkGroupSize: Int, maxWorkItemSizes: [Int], localMemoryBytes: Int, supportsHalf: Bool,
                nativeFloatVectorWidth: Int = 1) {
        self.kind = kind
        self.maxWorkGroupSize = maxWorkGroupSize
        self.maxWorkItemSizes = maxWorkItemSizes
        self.localMemoryBytes = localMemoryBytes
        self.supportsHalf = supportsHalf
        self.nativeFloatVectorWidth = nativeFloatVectorWidth
    }

    public init(_ device: Device) {
        self.init(kind: device.kind, maxWorkGroupSize: device.maxWorkGroupSize, maxWorkItemSizes: device.maxWorkItemSizes,
                  localMemoryBytes: device.localMemoryBytes, supportsHalf: device.supportsHalf,
                  nativeFloatVectorWidth: device.nativeFloatVectorWidth)
    }

    /// Constraints that a work-group of `local(values)` = (dimension 0, dimension 1) fits the device.
    public func workGroupConstraints(_ parameters: [String], local: @escaping @Sendable ([String: Int]) -> (Int, Int)) -> [Constraint] {
        let limits = self
        return [
            Constraint("work-group size <= \(maxWorkGroupSize)", parameters) { v in
                let (x, y) = local(v)
                return x * y <= limits.maxWorkGroupSize
            },
            Constraint("work-group dimensions <= \(maxWorkItemSizes.prefix(2).map(String.init).joined(separator: "x"))", parameters) { v in
                let (x, y) = local(v)
                return x <= (limits.maxWorkItemSizes.first ?? 1) && y <= (limits.maxWorkItemSizes.dropFirst().first ?? 1)
            },
        ]
    }
}

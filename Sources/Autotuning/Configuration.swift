/// One point of a search space: the kernel variant and its integer parameters, as a plain dictionary
/// (like a Triton config). Serialized flat: `{"variant": "packed", "MR": 6, "NR": 16}`.
public struct Configuration: Hashable, Sendable, Codable, CustomStringConvertible {
    public var variant: String
    public var values: [String: Int]

    public init(variant: String, _ values: [String: Int]) {
        self.variant = variant
        self.values = values
    }

    public subscript(_ name: String) -> Int? { values[name] }

    /// The parameters as OpenCL build options, in name order: `-DMR=6 -DNR=16`.
    public var defines: String {
        values.sorted { $0.key < $1.key }.map { "-D\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// `variant(A=1 B=2)` with parameters in name order.
    public var description: String {
        "\(variant)(" + values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + ")"
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        variant = try container.decode(String.self, forKey: Key(stringValue: "variant"))
        var values: [String: Int] = [:]
        for key in container.allKeys where key.stringValue != "variant" {
            values[key.stringValue] = try container.decode(Int.self, forKey: key)
        }
        self.values = values
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(variant, forKey: Key(stringValue: "variant"))
        for (name, value) in values { try container.encode(value, forKey: Key(stringValue: name)) }
    }
}

import Foundation

/// A family's problem options, declared once: each option's name, kind, help and the problem property it fills (a
/// key path). The table drives the command-line parsing (``ProblemParser``), `--help`, the problems file, and the
/// problem's JSON coding (``decode(from:)`` and ``encode(_:to:)``, unknown fields refused by the parser); the
/// defaults are the values of ``defaults``, a problem made with the Swift initializer, so a default is written once,
/// in that initializer (or in ``defaults`` for an option the initializer requires).
///
/// ```swift
/// static let table = ProblemTable(defaults: MyProblem(n: 1)) {
///     $0.integer("n", \.n, help: "Vector length.", required: true, primary: true)
///     $0.format("precision", \.precision, [.half, .single], help: "Storage.")
///     $0.flag("causal", \.causal, help: "Causal mask.")
/// }
/// ```
public struct ProblemTable<Problem: Sendable>: Sendable {
    /// The problem whose values the options not given take.
    public let defaults: Problem
    /// The options, in declaration order (the order of `--help` and of the JSON keys).
    public private(set) var fields: [Field] = []

    public init(defaults: Problem, _ declare: (inout ProblemTable) -> Void) {
        self.defaults = defaults
        declare(&self)
    }

    /// One option: its description for the parser and `--help`, and how it reads and writes its problem property.
    public struct Field: Sendable {
        public let option: ProblemOption
        let decode: @Sendable (KeyedDecodingContainer<TableKey>, inout Problem) throws -> Void
        let encode: @Sendable (Problem, inout KeyedEncodingContainer<TableKey>) throws -> Void
    }

    /// The options as the parser and `--help` see them.
    public var options: [ProblemOption] { fields.map(\.option) }

    // MARK: Declaring

    private mutating func add<Value: Codable & Sendable>(_ name: String, _ kind: ProblemOption.Kind, _ path: WritableKeyPath<Problem, Value> & Sendable,
                                                         help: String, required: Bool, primary: Bool, text: (Value) -> String?,
                                                         check: (@Sendable (Value) -> String?)? = nil) {
        let defaultValue = required ? nil : text(defaults[keyPath: path])
        let key = TableKey(name)
        fields.append(Field(option: ProblemOption(name, kind, help: help, default: defaultValue, primary: primary, required: required),
                            decode: { container, problem in
                                if let value = try container.decodeIfPresent(Value.self, forKey: key) {
                                    if let message = check?(value) {
                                        throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: message)
                                    }
                                    problem[keyPath: path] = value
                                } else if required {
                                    throw DecodingError.keyNotFound(key, .init(codingPath: container.codingPath, debugDescription: "\(name) is required"))
                                }
                            },
                            encode: { problem, container in try container.encode(problem[keyPath: path], forKey: key) }))
    }

    /// An integer (`--name N`).
    public mutating func integer(_ name: String, _ path: WritableKeyPath<Problem, Int> & Sendable, help: String, required: Bool = false,
                                 primary: Bool = false) {
        add(name, .integer, path, help: help, required: required, primary: primary) { "\($0)" }
    }

    /// A floating-point number (`--name X`).
    public mutating func number(_ name: String, _ path: WritableKeyPath<Problem, Double> & Sendable, help: String) {
        add(name, .number, path, help: help, required: false, primary: false) { "\($0)" }
    }

    /// Present or not (`--name`); false by default.
    public mutating func flag(_ name: String, _ path: WritableKeyPath<Problem, Bool> & Sendable, help: String) {
        add(name, .flag, path, help: help, required: false, primary: false) { $0 ? "true" : nil }
    }

    /// Any word, checked where the problem is checked (`needs`).
    public mutating func text(_ name: String, _ path: WritableKeyPath<Problem, String> & Sendable, help: String) {
        add(name, .text, path, help: help, required: false, primary: false) { $0 }
    }

    /// One of the cases of a string enum.
    public mutating func choice<Value: CaseIterable & RawRepresentable & Codable & Sendable>(
        _ name: String, _ path: WritableKeyPath<Problem, Value> & Sendable, help: String) where Value.RawValue == String {
        add(name, .choice(Value.allCases.map(\.rawValue)), path, help: help, required: false, primary: false) { $0.rawValue }
    }

    /// One of `formats`, by tag (`--precision half`).
    public mutating func format(_ name: String, _ path: WritableKeyPath<Problem, ElementFormat> & Sendable, _ formats: [ElementFormat], help: String) {
        add(name, .choice(formats.map(\.tag)), path, help: help, required: false, primary: false, text: { $0.tag },
            check: { formats.contains($0) ? nil : "\($0) is not one of \(formats.map(\.tag).joined(separator: ", "))" })
    }

    /// Integer sizes joined by `x` (`--shape 1024x768x512`), one JSON key and one problem property each.
    public mutating func dimensions(_ name: String, _ keys: [(String, WritableKeyPath<Problem, Int> & Sendable)], help: String, primary: Bool = false) {
        let names = keys.map(\.0)
        fields.append(Field(option: ProblemOption(name, .dimensions(names), help: help, default: nil, primary: primary, required: true),
                            decode: { container, problem in
                                for (key, path) in keys {
                                    guard let value = try container.decodeIfPresent(Int.self, forKey: TableKey(key)) else {
                                        throw DecodingError.keyNotFound(TableKey(key), .init(codingPath: container.codingPath, debugDescription: "\(key) is required"))
                                    }
                                    problem[keyPath: path] = value
                                }
                            },
                            encode: { problem, container in
                                for (key, path) in keys { try container.encode(problem[keyPath: path], forKey: TableKey(key)) }
                            }))
    }

    // MARK: Coding

    /// The problem of a JSON object (through any `Decoder`): the declared keys, each option not given taking its
    /// default. Keys the table does not declare are ignored here; ``ProblemParser`` refuses them first.
    public func decode(from decoder: any Decoder) throws -> Problem {
        let container = try decoder.container(keyedBy: TableKey.self)
        var problem = defaults
        for field in fields { try field.decode(container, &problem) }
        return problem
    }

    /// Every declared key of `problem`.
    public func encode(_ problem: Problem, to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: TableKey.self)
        for field in fields { try field.encode(problem, &container) }
    }
}

/// A JSON key of a problem table.
public struct TableKey: CodingKey, Sendable {
    public let stringValue: String
    public init(_ name: String) { stringValue = name }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}

/// A problem whose options, defaults and JSON coding come from one ``ProblemTable``: conform and declare the table;
/// `Codable` comes with it.
public protocol TabulatedProblem: Codable, Sendable {
    static var table: ProblemTable<Self> { get }
}

extension TabulatedProblem {
    public init(from decoder: any Decoder) throws { self = try Self.table.decode(from: decoder) }
    public func encode(to encoder: any Encoder) throws { try Self.table.encode(self, to: encoder) }
}

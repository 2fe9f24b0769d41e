import Foundation

/// One command-line option of a family's problem, as its ``ProblemTable`` declares it; ``ProblemParser`` turns the
/// options into the family's `Problem` (through its JSON keys), and the CLI lists them in `--help`.
public struct ProblemOption: Sendable {
    public enum Kind: Sendable {
        /// Integer sizes joined by `x` (`--shape 1024x768x512`), one JSON key each.
        case dimensions([String])
        /// An integer.
        case integer
        /// A floating-point number.
        case number
        /// One of a list of words.
        case choice([String])
        /// Present or not (`--causal`).
        case flag
        /// Any word, checked by the problem's decoder (`--filter auto|off|0.001`).
        case text
    }

    /// The option's name without dashes: `shape` is `--shape`.
    public let name: String
    public let kind: Kind
    public let help: String
    /// The value when the option is not given, in words (nil for a required option and a flag that is off).
    public let defaultValue: String?
    /// The option must be given.
    public let isRequired: Bool
    /// A line of a problems file may give this option's value alone (`1024x1024x1024` for `--shape 1024x1024x1024`).
    public let isPrimary: Bool

    /// Options are declared in a problem's ``ProblemTable``, which makes these.
    init(_ name: String, _ kind: Kind, help: String, default defaultValue: String?, primary: Bool, required: Bool) {
        self.name = name
        self.kind = kind
        self.help = help
        self.defaultValue = defaultValue
        self.isPrimary = primary
        self.isRequired = required
    }

    /// `--name VALUE`, as `--help` shows it.
    public var usage: String {
        switch kind {
        case .dimensions(let keys): "--\(name) \(keys.map { $0.uppercased() }.joined(separator: "x"))"
        case .integer: "--\(name) N"
        case .number: "--\(name) X"
        case .choice(let words): "--\(name) \(words.joined(separator: "|"))"
        case .flag: "--\(name)"
        case .text: "--\(name) VALUE"
        }
    }
}

/// Parses a family's problem from command-line words, a problems-file line, or JSON.
public enum ProblemParser {
    /// `--name value`, `--name=value` and flags, checked against `options`; options not given take their
    /// defaults (the problem table's, when it decodes); `--problem JSON` gives the whole problem as the JSON object every subcommand prints.
    ///
    /// - Parameter base: words applied first, which `arguments` override (the command line under a file's lines).
    /// - Throws: ``ProblemError`` with a message that names the option and what it accepts.
    public static func parse<P: Decodable>(_ type: P.Type, family: String, options: [ProblemOption], arguments: [String],
                                           base: [String] = []) throws -> P {
        var given = try words(base, family: family, options: options, primaryAllowed: false).values
        let parsed = try words(arguments, family: family, options: options, primaryAllowed: false)
        if let json = parsed.json {
            guard parsed.values.isEmpty else { throw ProblemError("\(family): --problem gives the whole problem; do not combine it with other problem options") }
            return try decode(type, family: family, options: options, data: Data(json.utf8))
        }
        given.merge(parsed.values) { $1 }
        return try build(type, family: family, options: options, given: given)
    }

    /// One line of a problems file: the primary option's value alone (`512x768x768`), problem options
    /// (`--shape 512x768x768 --precision single`), or a JSON object; the command line's problem words apply first.
    public static func parseLine<P: Decodable>(_ type: P.Type, family: String, options: [ProblemOption], line: String,
                                               base: [String]) throws -> P {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("{") { return try decode(type, family: family, options: options, data: Data(trimmed.utf8)) }
        let lineWords = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var given = try words(base, family: family, options: options, primaryAllowed: false).values
        given.merge(try words(lineWords, family: family, options: options, primaryAllowed: true).values) { $1 }
        return try build(type, family: family, options: options, given: given)
    }

    /// The problems of a file (one per line; `#` starts a comment; blank lines are skipped).
    public static func read<P: Decodable>(_ type: P.Type, family: String, options: [ProblemOption], file path: String,
                                          base: [String]) throws -> [P] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ProblemError("cannot read the problems file \(path)") }
        var problems: [P] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            do {
                problems.append(try parseLine(type, family: family, options: options, line: line, base: base))
            } catch {
                throw ProblemError("\(path):\(number + 1): \(error)")
            }
        }
        if problems.isEmpty { throw ProblemError("the problems file \(path) holds no problem") }
        return problems
    }

    /// The JSON keys of a problem with `options`: each option's name, or its dimensions' keys.
    public static func keys(_ options: [ProblemOption]) -> [String] {
        options.flatMap { option in
            if case .dimensions(let keys) = option.kind { return keys }
            return [option.name]
        }
    }

    /// A problem's JSON, decoded, with a readable message on failure: a key that is not one of the problem's
    /// (a misspelled option) and a fraction where an integer belongs are refused by name.
    public static func decode<P: Decodable>(_ type: P.Type, family: String, options: [ProblemOption], data: Data) throws -> P {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ProblemError("\(family): the problem is not valid JSON (\(String(decoding: data.prefix(200), as: UTF8.self)))")
        }
        guard let object = parsed as? [String: Any] else { throw ProblemError("\(family): the problem must be a JSON object") }
        let known = keys(options)
        let unknown = object.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw ProblemError("\(family): the problem has no field \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")); its fields are "
                               + known.joined(separator: ", "))
        }
        for option in options {
            let integers: [String]
            switch option.kind {
            case .dimensions(let keys): integers = keys
            case .integer: integers = [option.name]
            default: integers = []
            }
            for key in integers {
                if let number = object[key] as? NSNumber, number.doubleValue != number.doubleValue.rounded() {
                    throw ProblemError("\(family): \"\(key)\" must be an integer, got \(number)")
                }
            }
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ProblemError("\(family): the problem has no \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ProblemError("\(family): \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type (\(context.debugDescription))")
        } catch let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ProblemError("\(family): the problem is not valid" + (path.isEmpty ? "" : " at \"\(path)\"") + ": \(context.debugDescription)")
        } catch {
            throw ProblemError("\(family): the problem is not valid: \(error)")
        }
    }

    // MARK: Words

    private struct Words {
        var values: [String: String] = [:]
        var json: String?
    }

    private static func words(_ arguments: [String], family: String, options: [ProblemOption], primaryAllowed: Bool) throws -> Words {
        var result = Words()
        var index = 0
        func known() -> String { (options.map(\.usage) + ["--problem JSON"]).joined(separator: ", ") }
        while index < arguments.count {
            let word = arguments[index]
            index += 1
            guard word.hasPrefix("--") else {
                if primaryAllowed, result.values.isEmpty, let primary = options.first(where: \.isPrimary) {
                    result.values[primary.name] = word
                    continue
                }
                throw ProblemError("\(family): unexpected \"\(word)\"; problem options are \(known())")
            }
            var name = String(word.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if name == "problem" {
                guard let json = value ?? (index < arguments.count ? arguments[index] : nil) else {
                    throw ProblemError("\(family): --problem needs a JSON object")
                }
                if value == nil { index += 1 }
                result.json = json
                continue
            }
            guard let option = options.first(where: { $0.name == name }) else {
                throw ProblemError("\(family): unknown option --\(name); problem options are \(known()) (see --help for the others)")
            }
            if case .flag = option.kind {
                if let value, !["true", "false"].contains(value) { throw ProblemError("\(family): --\(name) takes no value") }
                result.values[name] = value ?? "true"
                continue
            }
            if value == nil {
                guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                    throw ProblemError("\(family): --\(name) needs a value (\(option.usage))")
                }
                value = arguments[index]
                index += 1
            }
            if result.values[name] != nil { throw ProblemError("\(family): --\(name) is given twice") }
            result.values[name] = value
        }
        return result
    }

    private static func build<P: Decodable>(_ type: P.Type, family: String, options: [ProblemOption], given: [String: String]) throws -> P {
        var object: [String: Any] = [:]
        for option in options {
            guard let text = given[option.name] else {
                if option.isRequired { throw ProblemError("\(family): \(option.usage) is required") }
                continue  // the problem's default, from its table
            }
            func integer(_ word: Substring, _ label: String) throws -> Int {
                guard let value = Int(word) else {
                    throw ProblemError("\(family): \(label) \"\(word)\" is not an integer (at most \(Int.max))")
                }
                return value
            }
            switch option.kind {
            case .dimensions(let keys):
                let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
                guard parts.count == keys.count else {
                    throw ProblemError("\(family): --\(option.name) \(text) is not \(keys.map { $0.uppercased() }.joined(separator: "x"))")
                }
                for (key, part) in zip(keys, parts) { object[key] = try integer(part, "--\(option.name) \(key.uppercased())") }
            case .integer:
                object[option.name] = try integer(Substring(text), "--\(option.name)")
            case .number:
                guard let value = Double(text), value.isFinite else { throw ProblemError("\(family): --\(option.name) \"\(text)\" is not a finite number") }
                object[option.name] = value
            case .choice(let words):
                guard words.contains(text) else { throw ProblemError("\(family): --\(option.name) must be one of \(words.joined(separator: ", ")), got \"\(text)\"") }
                object[option.name] = text
            case .flag:
                object[option.name] = text == "true"
            case .text:
                object[option.name] = text
            }
        }
        return try decode(type, family: family, options: options, data: try JSONSerialization.data(withJSONObject: object))
    }
}

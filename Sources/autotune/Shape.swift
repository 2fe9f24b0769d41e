import ArgumentParser
import Foundation

/// `MxNxK` on the command line.
struct Shape: ExpressibleByArgument, CustomStringConvertible, Hashable {
    var m: Int, n: Int, k: Int

    init(m: Int, n: Int, k: Int) { (self.m, self.n, self.k) = (m, n, k) }

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let m = parts[0], let n = parts[1], let k = parts[2], m >= 1, n >= 1, k >= 1 else { return nil }
        self.init(m: m, n: n, k: k)
    }

    var description: String { "\(m)x\(n)x\(k)" }
    static var defaultValueDescription: String { "MxNxK" }
}

extension Shape {
    /// The shapes of a file with one `MxNxK` per line (`#` starts a comment; blank lines are skipped).
    static func read(file path: String, option: String = "--shapes-file") throws -> [Shape] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read \(option) \(path)")
        }
        var shapes: [Shape] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            guard let parsed = Shape(argument: line) else {
                throw ValidationError("\(path):\(number + 1): \"\(line)\" is not MxNxK")
            }
            shapes.append(parsed)
        }
        if shapes.isEmpty { throw ValidationError("\(option) \(path) holds no shape") }
        return shapes
    }
}

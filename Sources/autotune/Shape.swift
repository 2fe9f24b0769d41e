import ArgumentParser

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

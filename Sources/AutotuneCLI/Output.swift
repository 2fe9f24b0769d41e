import Foundation

/// Writes progress to stderr, so stdout stays one JSON object or one table.
func progress(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Prints `value` as one JSON object on stdout. Numbers must be finite (reports carry null and an error
/// instead of NaN or infinity).
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A plain text table with right-aligned numbers.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            let pad = String(repeating: " ", count: widths[index] - cell.count)
            return index == 0 ? cell + pad : pad + cell
        }.joined(separator: "  ")
    }
    let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
    return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
}

func format(_ value: Double?, _ digits: Int) -> String {
    guard let value else { return "-" }
    return String(format: "%.\(digits)f", value)
}

func formatScientific(_ value: Double?) -> String {
    guard let value else { return "-" }
    return String(format: "%.2e", value)
}

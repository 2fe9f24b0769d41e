import Foundation

/// A one-line progress bar on stderr when stderr is a terminal (isatty(2)); otherwise it
/// prints nothing on update (the caller prints plain log lines).
///
/// Used from one thread.
final class ProgressBar {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private var done = 0
    private var status = ""
    /// Whether the bar is on screen now.
    private var visible = false
    /// The last line drawn, so an unchanged bar is not redrawn.
    private var drawn = ""

    init(total: Int, label: String) {
        self.total = max(0, total)
        self.label = ProgressBar.singleLine(label)
        let term = ProcessInfo.processInfo.environment["TERM"]
        enabled = isatty(STDERR_FILENO) != 0 && term != "dumb"
    }

    deinit {
        finish()
    }

    /// Whether stderr is a terminal (and TERM is not "dumb"), so the bar is drawn.
    var isEnabled: Bool { enabled }

    /// Redraws the bar: "<label> [#####.....] 12/60 <status>", cut to the terminal width.
    func update(done: Int, status: String) {
        self.done = done
        self.status = ProgressBar.singleLine(status)
        guard enabled else { return }
        let line = render()
        if visible && line == drawn { return }
        write("\r" + line + "\u{1B}[K")
        drawn = line
        visible = true
    }

    /// Prints `line` above the bar; when the bar is disabled, just prints it to stderr.
    func log(_ line: String) {
        guard enabled else {
            write(line + "\n")
            return
        }
        if visible {
            write("\r\u{1B}[K" + line + "\n")
            let bar = render()
            write("\r" + bar + "\u{1B}[K")
            drawn = bar
        } else {
            write(line + "\n")
        }
    }

    /// Clears the bar line. Calling it again does nothing.
    func finish() {
        guard enabled, visible else { return }
        write("\r\u{1B}[K")
        visible = false
        drawn = ""
    }

    // MARK: - Drawing

    private func render() -> String {
        let columns = ProgressBar.terminalColumns()
        let shown = min(max(done, 0), max(total, done))
        let counts = "\(shown)/\(total)"
        // The bar is at most 30 cells, and narrower on a narrow terminal.
        let room = columns - label.count - counts.count - 6
        let cells = max(5, min(30, room))
        let fraction = total > 0 ? min(1, Double(shown) / Double(total)) : 0
        let filled = min(cells, Int((fraction * Double(cells)).rounded(.down)))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: cells - filled)
        var line = "\(label) [\(bar)] \(counts)"
        if !status.isEmpty { line += " " + status }
        // One column short of the width, so the cursor never wraps to a new line.
        let limit = max(1, columns - 1)
        if line.count > limit { line = String(line.prefix(limit)) }
        while line.last == " " { line.removeLast() }
        return line
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    private static func singleLine(_ text: String) -> String {
        String(text.map { $0.isNewline || $0 == "\t" ? " " : $0 })
            .filter { !($0.unicodeScalars.first.map { $0.value < 0x20 || $0.value == 0x7F } ?? false) }
    }

    /// The width of the terminal on stderr (TIOCGWINSZ), else $COLUMNS, else 80.
    private static func terminalColumns() -> Int {
        var size = winsize()
        #if os(Linux)
        let request = UInt(TIOCGWINSZ)
        #else
        let request: UInt = 0x4008_7468  // TIOCGWINSZ on Darwin, a macro Swift cannot import
        #endif
        if ioctl(STDERR_FILENO, request, &size) == 0, size.ws_col > 0 {
            return Int(size.ws_col)
        }
        if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 {
            return columns
        }
        return 80
    }
}

import Foundation

/// A convergence plot drawn as a standalone SVG 1.1 document: the best value found so far
/// (y) against the number of evaluations (x), one step line per series.
///
/// The plot has a title, axes with 1-2-5 ticks (decades on a log axis, with 2 and 5 labelled
/// when there is room), axis labels, and a legend to the right of the plot area (or, when the
/// names are long, inside the corner with the least data). Series get colours from the
/// Okabe-Ito palette, and dash patterns once the palette runs out. Optional horizontal
/// reference lines are dashed and labelled; an optional band per series (for example the 25th
/// to 75th percentile over seeds) is shaded in the series colour.
///
/// Values that are nil, NaN or infinite (and values at or below zero on a log axis) are
/// skipped: the step line goes on from the last value it drew, so a series may also start
/// after some evaluations.
public struct ConvergencePlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        /// y after evaluation 1, 2, ... (x = index + 1).
        public var values: [Double?]
        /// Optional band: the lower and upper edge after each evaluation.
        public var lower: [Double?]?
        public var upper: [Double?]?

        public init(name: String, values: [Double?], lower: [Double?]? = nil, upper: [Double?]? = nil) {
            self.name = name
            self.values = values
            self.lower = lower
            self.upper = upper
        }
    }

    public struct ReferenceLine: Sendable {
        public var label: String
        public var value: Double

        public init(label: String, value: Double) {
            self.label = label
            self.value = value
        }
    }

    public var title: String
    /// For example "unique evaluations".
    public var xLabel: String
    /// For example "best time so far (ms)".
    public var yLabel: String
    public var series: [Series]
    public var references: [ReferenceLine]
    /// Whether the y axis is logarithmic (for values spanning several decades).
    public var logY: Bool
    /// The size of the drawing in pixels.
    public var width: Int = 800, height: Int = 500

    public init(
        title: String, xLabel: String, yLabel: String, series: [Series],
        references: [ReferenceLine] = [], logY: Bool = false
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.references = references
        self.logY = logY
    }

    /// A complete standalone SVG 1.1 document.
    public func svg() -> String {
        PlotRenderer(plot: self).render()
    }

    /// Writes `svg()` to `path`, creating the parent directories.
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(svg().utf8).write(to: url, options: .atomic)
    }
}

// MARK: - Style

private enum PlotStyle {
    /// Okabe-Ito, without the yellow, which is hard to see on white.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
    /// Used in turn once every colour has been used with the previous pattern.
    static let dashes: [String?] = [nil, "7,3", "2,2", "9,3,2,3"]
    static let font = "DejaVu Sans, Helvetica, Arial, sans-serif"
    static let titleSize = 16.0
    static let labelSize = 13.0
    static let tickSize = 11.0
    static let legendSize = 12.0
    static let legendRowHeight = 20.0
    static let referenceColor = "#555555"

    static func color(_ index: Int) -> String { palette[index % palette.count] }
    static func dash(_ index: Int) -> String? { dashes[(index / palette.count) % dashes.count] }

    /// A slightly generous estimate of the width of `text`, from the advance widths of
    /// DejaVu Sans (wider than Helvetica and Arial), in em.
    static func textWidth(_ text: String, size: Double) -> Double {
        var ems = 0.0
        for character in text {
            switch character {
            case " ", "i", "j", "l", "I", "!", "|", ".", ",", ":", ";", "'": ems += 0.33
            case "f", "r", "t", "(", ")", "[", "]", "{", "}", "/", "\\", "-": ems += 0.42
            case "m", "w", "M", "W", "%", "@": ems += 1.0
            case "0"..."9", "a"..."z": ems += 0.64
            case "A"..."Z": ems += 0.75
            default: ems += character.isASCII ? 0.7 : 0.8
            }
        }
        return ems * size
    }
}

// MARK: - Axes

private struct PlotTick {
    var value: Double
    var label: String?
    var major: Bool
}

private struct PlotAxis {
    var lo: Double
    var hi: Double
    var log: Bool
    var ticks: [PlotTick]

    /// Where `value` lies between the ends of the axis, 0 to 1.
    func fraction(_ value: Double) -> Double {
        let f = log ? (log10(value) - log10(lo)) / (log10(hi) - log10(lo)) : (value - lo) / (hi - lo)
        return f.isFinite ? min(max(f, 0), 1) : 0
    }

    /// 1, 2 or 5 times a power of ten, near `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return 1 }
        let exponent = (log10(raw)).rounded(.down)
        let power = pow(10, exponent)
        let f = raw / power
        let nice: Double = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10
        return nice * power
    }

    /// A linear axis from `lo` to `hi`, widened to whole steps, with about one tick per
    /// `spacing` pixels.
    static func linear(lo: Double, hi: Double, pixels: Double, spacing: Double, minStep: Double = 0) -> PlotAxis {
        var (lo, hi) = (lo, hi)
        if !lo.isFinite || !hi.isFinite { (lo, hi) = (0, 1) }
        if hi < lo { swap(&lo, &hi) }
        if hi - lo <= max(abs(lo), abs(hi)) * 1e-9 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = (lo - pad, hi + pad)
        }
        let count = max(2, min(10, (pixels / spacing).rounded()))
        var step = max(niceStep((hi - lo) / count), minStep)
        var first = (lo / step).rounded(.down), last = (hi / step).rounded(.up)
        if !(last - first).isFinite || last - first > 1000 {
            step = (hi - lo) / 5
            first = (lo / step).rounded(.down)
            last = first + 5
        }
        let values = stride(from: first, through: last, by: 1).map { $0 * step }
        let labels = PlotFormat.labels(values, step: step)
        let ticks = zip(values, labels).map { PlotTick(value: $0.0, label: $0.1, major: true) }
        return PlotAxis(lo: first * step, hi: last * step, log: false, ticks: ticks)
    }

    /// A logarithmic axis from `lo` to `hi` (both positive).
    static func logarithmic(lo: Double, hi: Double, pixels: Double) -> PlotAxis {
        var (lo, hi) = (lo, hi)
        if !(lo > 0 && hi > 0 && lo.isFinite && hi.isFinite) { (lo, hi) = (1, 10) }
        if hi < lo { swap(&lo, &hi) }
        if hi / lo < 1.0001 { (lo, hi) = (lo / 1.5, hi * 1.5) }
        let pad = pow(hi / lo, 0.03)
        (lo, hi) = (lo / pad, hi * pad)
        let span = log10(hi / lo)
        if span < 1 { return subDecade(lo: lo, hi: hi, pixels: pixels) }

        // Decades, with 2 and 5 labelled where a decade is tall enough.
        let labelTwoFive = pixels / span >= 110
        let snapped: [Double] = labelTwoFive ? [1, 2, 5] : [1]
        lo = snapDown(lo, to: snapped)
        hi = snapUp(hi, to: snapped)
        let pixelsPerDecade = pixels / log10(hi / lo)
        var stride = 1
        while Double(stride) * pixelsPerDecade < 22 { stride += 1 }
        let showMinor = pixelsPerDecade >= 30
        // Scientific labels throughout when some would be long, so they read alike.
        let scientific = lo < 1e-3 || hi > 1e5
        func label(_ value: Double) -> String {
            scientific ? PlotFormat.scientific(value) : PlotFormat.label(value)
        }
        var ticks: [PlotTick] = []
        let firstDecade = Int(log10(lo).rounded(.down)), lastDecade = Int(log10(hi).rounded(.up))
        for decade in firstDecade...lastDecade {
            let power = pow(10, Double(decade))
            for m in 1...9 {
                let value = Double(m) * power
                guard value >= lo * (1 - 1e-9), value <= hi * (1 + 1e-9) else { continue }
                if m == 1 {
                    let labelled = decade.isMultiple(of: stride)
                    ticks.append(PlotTick(value: value, label: labelled ? label(value) : nil, major: true))
                } else if labelTwoFive && (m == 2 || m == 5) {
                    ticks.append(PlotTick(value: value, label: label(value), major: false))
                } else if showMinor {
                    ticks.append(PlotTick(value: value, label: nil, major: false))
                }
            }
        }
        return PlotAxis(lo: lo, hi: hi, log: true, ticks: ticks)
    }

    /// Less than a decade: nice linear steps, placed on the log axis, thinned where they crowd.
    private static func subDecade(lo: Double, hi: Double, pixels: Double) -> PlotAxis {
        var (lo, hi) = (lo, hi)
        let count = max(2, min(10, (pixels / 60).rounded()))
        // Ticks crowd towards the top of a log axis: keep them at least 24 pixels apart there.
        let crowded = 24 * log10(hi / lo) * hi * 2.302_585_093 / pixels  // ln 10
        var step = niceStep((hi - lo) / count)
        while step < crowded { step = niceStep(step * 2.2) }
        let snappedLo = (lo / step).rounded(.down) * step
        if snappedLo > 0 { lo = snappedLo }
        hi = (hi / step).rounded(.up) * step
        let first = (lo / step).rounded(.up), last = (hi / step).rounded(.down)
        let values = first <= last ? stride(from: first, through: last, by: 1).map { $0 * step } : []
        let labels = PlotFormat.labels(values, step: step)
        var axis = PlotAxis(lo: lo, hi: hi, log: true, ticks: [])
        var lastPosition = -Double.infinity
        // From the top (where ticks crowd on a log axis) down, so the top tick keeps its label.
        for (value, label) in zip(values, labels).reversed() {
            let isPower = abs(log10(value) - log10(value).rounded()) < 1e-9
            let position = pixels * (1 - axis.fraction(value))
            let labelled = position - lastPosition >= 16
            if labelled { lastPosition = position }
            axis.ticks.append(PlotTick(value: value, label: labelled ? label : nil, major: isPower))
        }
        axis.ticks.reverse()
        return axis
    }

    private static func snapDown(_ value: Double, to mantissas: [Double]) -> Double {
        let power = pow(10, log10(value).rounded(.down))
        let m = mantissas.last { $0 * power <= value * (1 + 1e-9) } ?? 1
        return m * power
    }

    private static func snapUp(_ value: Double, to mantissas: [Double]) -> Double {
        let power = pow(10, log10(value).rounded(.down))
        let m = (mantissas + [10]).first { $0 * power >= value * (1 - 1e-9) } ?? 10
        return m * power
    }
}

// MARK: - Text

private enum PlotFormat {
    /// Coordinates, with two decimals.
    static func coordinate(_ value: Double) -> String {
        String(format: "%.2f", value.isFinite ? value : 0)
    }

    /// Labels for ticks `step` apart, all with the same number of decimals.
    static func labels(_ values: [Double], step: Double) -> [String] {
        let largest = values.map(abs).max() ?? 0
        if largest >= 1e6 || step < 1e-4 {
            return values.map { abs($0) < step * 1e-6 ? "0" : scientific($0) }
        }
        let decimals = max(0, min(10, Int(-(log10(step)).rounded(.down))))
        return values.map { value in
            let value = abs(value) < step * 1e-6 ? 0 : value
            return String(format: "%.\(decimals)f", value)
        }
    }

    /// A short label: up to six significant digits, without trailing zeros; scientific
    /// ("2e-5", "1.5e6") for very small or large magnitudes.
    static func label(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1e6 || magnitude < 1e-4 { return scientific(value) }
        let decimals = max(0, min(12, 5 - Int(log10(magnitude).rounded(.down))))
        return trimmed(String(format: "%.\(decimals)f", value))
    }

    /// "2e-5", "1.5e6", "1e0".
    static func scientific(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "0" }
        var exponent = Int(log10(abs(value)).rounded(.down))
        var mantissa = (value / pow(10, Double(exponent)) * 1000).rounded() / 1000
        if abs(mantissa) >= 10 {
            mantissa /= 10
            exponent += 1
        }
        return trimmed(String(format: "%.3f", mantissa)) + "e\(exponent)"
    }

    private static func trimmed(_ text: String) -> String {
        guard text.contains(".") else { return text }
        var text = Substring(text)
        while text.hasSuffix("0") { text = text.dropLast() }
        if text.hasSuffix(".") { text = text.dropLast() }
        return String(text)
    }

    /// `text` escaped for XML character data and attribute values; control characters that
    /// XML 1.0 does not allow become spaces.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out += " "
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += " "
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

// MARK: - Rendering

private struct PlotPoint {
    var x: Double
    var y: Double
}

private struct PlotBox {
    var x: Double
    var y: Double
    var width: Double
    var height: Double

    func contains(_ p: PlotPoint) -> Bool {
        p.x >= x && p.x <= x + width && p.y >= y && p.y <= y + height
    }
}

private struct PlotRenderer {
    let plot: ConvergencePlot
    let width: Double
    let height: Double
    /// The finite, drawable values of each series as (x, y), in order.
    let points: [[(x: Double, y: Double)]]
    /// The drawable band of each series as (x, low, high).
    let bands: [[(x: Double, low: Double, high: Double)]]
    let references: [ConvergencePlot.ReferenceLine]
    let evaluations: Int

    init(plot: ConvergencePlot) {
        self.plot = plot
        width = Double(min(max(plot.width, 240), 20000))
        height = Double(min(max(plot.height, 160), 20000))
        let logY = plot.logY
        func usable(_ value: Double?) -> Double? {
            guard let value, value.isFinite, !logY || value > 0 else { return nil }
            return min(max(value, -1e300), 1e300)
        }
        points = plot.series.map { series in
            series.values.enumerated().compactMap { index, value in
                usable(value).map { (x: Double(index + 1), y: $0) }
            }
        }
        bands = plot.series.map { series in
            guard let lower = series.lower, let upper = series.upper else { return [] }
            return (0..<min(lower.count, upper.count)).compactMap { index in
                guard let a = usable(lower[index]), let b = usable(upper[index]) else { return nil }
                return (x: Double(index + 1), low: min(a, b), high: max(a, b))
            }
        }
        references = plot.references.filter { usable($0.value) != nil }
        let longest = plot.series.map { series in
            max(series.values.count, min(series.lower?.count ?? 0, series.upper?.count ?? 0))
        }.max() ?? 0
        evaluations = max(1, longest)
    }

    func render() -> String {
        let logY = plot.logY

        // Vertical layout.
        let top = plot.title.isEmpty ? 20.0 : 46.0
        let bottom = height - (plot.xLabel.isEmpty ? 34.0 : 52.0)
        let plotHeight = bottom - top

        // The y axis, from every value, band edge and reference line.
        var ys = points.flatMap { $0.map(\.y) } + bands.flatMap { $0.flatMap { [$0.low, $0.high] } }
        ys += references.map { min(max($0.value, -1e300), 1e300) }
        let yAxis: PlotAxis
        if let lo = ys.min(), let hi = ys.max() {
            yAxis = logY
                ? .logarithmic(lo: lo, hi: hi, pixels: plotHeight)
                : .linear(lo: lo, hi: hi, pixels: plotHeight, spacing: 55)
        } else {
            yAxis = logY
                ? .logarithmic(lo: 1, hi: 10, pixels: plotHeight)
                : .linear(lo: 0, hi: 1, pixels: plotHeight, spacing: 55)
        }

        // Horizontal layout: y label, tick labels, plot, legend.
        let tickLabelWidth = yAxis.ticks.compactMap(\.label)
            .map { PlotStyle.textWidth($0, size: PlotStyle.tickSize) }.max() ?? 0
        let left = 10 + (plot.yLabel.isEmpty ? 0 : 22) + tickLabelWidth + 10
        let legendNameWidth = plot.series
            .map { PlotStyle.textWidth($0.name, size: PlotStyle.legendSize) }.max() ?? 0
        let legendWidth = 10 + 30 + 8 + legendNameWidth + 10
        let legendHeight = 8 + Double(plot.series.count) * PlotStyle.legendRowHeight + 4
        let legendOutside = !plot.series.isEmpty && legendWidth <= width * 0.3
        let right = legendOutside ? width - legendWidth - 16 : width - 20
        let plotWidth = max(right - left, 40)

        let xAxis = PlotAxis.linear(
            lo: 0, hi: Double(evaluations), pixels: plotWidth, spacing: 90, minStep: 1)
        func px(_ x: Double) -> Double { left + xAxis.fraction(x) * plotWidth }
        func py(_ y: Double) -> Double { bottom - yAxis.fraction(y) * plotHeight }

        var svg = """
            <?xml version="1.0" encoding="UTF-8" standalone="no"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" \
            width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
            font-family="\(PlotStyle.font)">
            <title>\(PlotFormat.escape(plot.title))</title>
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>

            """
        let c = PlotFormat.coordinate

        // Plot area, grid and ticks.
        svg += """
            <rect class="plot-area" x="\(c(left))" y="\(c(top))" width="\(c(plotWidth))" \
            height="\(c(plotHeight))" fill="#ffffff" stroke="none"/>
            <g class="grid" stroke-width="1" fill="none">

            """
        for tick in yAxis.ticks {
            let y = py(tick.value)
            let color = tick.major || tick.label != nil ? "#dedede" : "#f0f0f0"
            svg += "<line x1=\"\(c(left))\" y1=\"\(c(y))\" x2=\"\(c(left + plotWidth))\" y2=\"\(c(y))\" stroke=\"\(color)\"/>\n"
        }
        for tick in xAxis.ticks {
            let x = px(tick.value)
            svg += "<line x1=\"\(c(x))\" y1=\"\(c(top))\" x2=\"\(c(x))\" y2=\"\(c(bottom))\" stroke=\"#dedede\"/>\n"
        }
        svg += "</g>\n<g class=\"ticks\" stroke=\"#333333\" stroke-width=\"1\">\n"
        for tick in yAxis.ticks {
            let y = py(tick.value)
            let length = tick.major || tick.label != nil ? 5.0 : 3.0
            svg += "<line x1=\"\(c(left - length))\" y1=\"\(c(y))\" x2=\"\(c(left))\" y2=\"\(c(y))\"/>\n"
        }
        for tick in xAxis.ticks {
            let x = px(tick.value)
            svg += "<line x1=\"\(c(x))\" y1=\"\(c(bottom))\" x2=\"\(c(x))\" y2=\"\(c(bottom + 5))\"/>\n"
        }
        svg += "</g>\n<g class=\"tick-labels\" font-size=\"\(Int(PlotStyle.tickSize))\" fill=\"#333333\">\n"
        for tick in yAxis.ticks {
            guard let label = tick.label else { continue }
            let kind = tick.major ? "major" : "minor"
            svg += "<text class=\"ytick \(kind)\" x=\"\(c(left - 8))\" y=\"\(c(py(tick.value) + 4))\" text-anchor=\"end\">\(PlotFormat.escape(label))</text>\n"
        }
        for tick in xAxis.ticks {
            guard let label = tick.label else { continue }
            svg += "<text class=\"xtick\" x=\"\(c(px(tick.value)))\" y=\"\(c(bottom + 18))\" text-anchor=\"middle\">\(PlotFormat.escape(label))</text>\n"
        }
        svg += "</g>\n"

        // Bands, under everything else.
        var bandOutlines: [[PlotPoint]] = []
        for (index, band) in bands.enumerated() where band.count >= 2 {
            var upper: [PlotPoint] = [], lower: [PlotPoint] = []
            for (i, item) in band.enumerated() {
                let x = px(item.x)
                if i > 0 {
                    upper.append(PlotPoint(x: x, y: upper[upper.count - 1].y))
                    lower.append(PlotPoint(x: x, y: lower[lower.count - 1].y))
                }
                upper.append(PlotPoint(x: x, y: py(item.high)))
                lower.append(PlotPoint(x: x, y: py(item.low)))
            }
            let outline = upper + lower.reversed()
            bandOutlines.append(outline)
            let text = outline.map { "\(c($0.x)),\(c($0.y))" }.joined(separator: " ")
            svg += "<polygon class=\"band s\(index)\" points=\"\(text)\" fill=\"\(PlotStyle.color(index))\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
        }

        // Reference lines.
        for reference in references {
            let y = py(reference.value)
            svg += "<line class=\"reference\" x1=\"\(c(left))\" y1=\"\(c(y))\" x2=\"\(c(left + plotWidth))\" y2=\"\(c(y))\" stroke=\"\(PlotStyle.referenceColor)\" stroke-width=\"1.2\" stroke-dasharray=\"6,4\"/>\n"
        }

        // Series: steps, horizontal then vertical, and a dot at the last value.
        var lines: [[PlotPoint]] = []
        for (index, series) in points.enumerated() {
            var line: [PlotPoint] = []
            for item in series {
                let point = PlotPoint(x: px(item.x), y: py(item.y))
                if let last = line.last {
                    if point.y != last.y {
                        if point.x != last.x { line.append(PlotPoint(x: point.x, y: last.y)) }
                        line.append(point)
                    }
                } else {
                    line.append(point)
                }
            }
            if let end = series.last, let last = line.last, px(end.x) != last.x {
                line.append(PlotPoint(x: px(end.x), y: last.y))
            }
            lines.append(line)
            guard let last = line.last else { continue }
            let text = line.map { "\(c($0.x)),\(c($0.y))" }.joined(separator: " ")
            let dash = PlotStyle.dash(index).map { " stroke-dasharray=\"\($0)\"" } ?? ""
            svg += """
                <polyline class="series s\(index)" points="\(text)" fill="none" \
                stroke="\(PlotStyle.color(index))" stroke-width="1.8" stroke-linejoin="round"\(dash)/>
                <circle class="end s\(index)" cx="\(c(last.x))" cy="\(c(last.y))" r="3" fill="\(PlotStyle.color(index))"/>

                """
        }

        // Reference labels at the left end, where convergence curves are usually far away.
        var labelBoxes: [PlotBox] = []
        for reference in references {
            let y = py(reference.value)
            let textWidth = PlotStyle.textWidth(reference.label, size: PlotStyle.tickSize)
            let baseline = y - 16 < top ? y + 14 : y - 5
            let box = PlotBox(x: left + 4, y: baseline - 11, width: textWidth + 6, height: 14)
            labelBoxes.append(box)
            svg += """
                <rect x="\(c(box.x))" y="\(c(box.y))" width="\(c(box.width))" height="\(c(box.height))" fill="#ffffff" fill-opacity="0.8"/>
                <text class="reference-label" x="\(c(left + 7))" y="\(c(baseline))" font-size="\(Int(PlotStyle.tickSize))" fill="\(PlotStyle.referenceColor)">\(PlotFormat.escape(reference.label))</text>

                """
        }

        // Axes frame.
        svg += "<rect x=\"\(c(left))\" y=\"\(c(top))\" width=\"\(c(plotWidth))\" height=\"\(c(plotHeight))\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n"

        // Title and axis labels.
        if !plot.title.isEmpty {
            let fitting = (width - 20) / max(PlotStyle.textWidth(plot.title, size: 1.08), 1)
            let size = min(PlotStyle.titleSize, max(9, fitting))
            svg += "<text class=\"title\" x=\"\(c(width / 2))\" y=\"28\" font-size=\"\(c(size))\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111111\">\(PlotFormat.escape(plot.title))</text>\n"
        }
        if !plot.xLabel.isEmpty {
            svg += "<text class=\"xlabel\" x=\"\(c(left + plotWidth / 2))\" y=\"\(c(height - 12))\" font-size=\"\(Int(PlotStyle.labelSize))\" text-anchor=\"middle\" fill=\"#111111\">\(PlotFormat.escape(plot.xLabel))</text>\n"
        }
        if !plot.yLabel.isEmpty {
            let x = 22.0, y = top + plotHeight / 2
            svg += "<text class=\"ylabel\" x=\"\(c(x))\" y=\"\(c(y))\" font-size=\"\(Int(PlotStyle.labelSize))\" text-anchor=\"middle\" fill=\"#111111\" transform=\"rotate(-90 \(c(x)) \(c(y)))\">\(PlotFormat.escape(plot.yLabel))</text>\n"
        }

        // Legend: to the right of the plot area, or inside the emptiest corner.
        if !plot.series.isEmpty {
            let box: PlotBox
            if legendOutside {
                box = PlotBox(x: right + 12, y: top, width: legendWidth, height: legendHeight)
            } else {
                let inset = 8.0
                let corners = [
                    PlotBox(x: left + plotWidth - inset - legendWidth, y: top + inset, width: legendWidth, height: legendHeight),
                    PlotBox(x: left + inset, y: top + inset, width: legendWidth, height: legendHeight),
                    PlotBox(x: left + plotWidth - inset - legendWidth, y: bottom - inset - legendHeight, width: legendWidth, height: legendHeight),
                    PlotBox(x: left + inset, y: bottom - inset - legendHeight, width: legendWidth, height: legendHeight),
                ]
                let crowding = corners.map { corner in
                    var count = lines.reduce(0) { $0 + 4 * Self.samples($1, inside: corner) }
                    count += bandOutlines.reduce(0) { $0 + Self.samples($1, inside: corner) }
                    count += labelBoxes.filter { Self.overlaps($0, corner) }.count * 50
                    return count
                }
                let best = crowding.indices.min { crowding[$0] < crowding[$1] } ?? 0
                box = corners[best]
            }
            svg += """
                <g class="legend" font-size="\(Int(PlotStyle.legendSize))">
                <rect class="legend-box" x="\(c(box.x))" y="\(c(box.y))" width="\(c(box.width))" height="\(c(box.height))" fill="#ffffff" fill-opacity="0.9" stroke="#bbbbbb" stroke-width="1"/>

                """
            for (index, series) in plot.series.enumerated() {
                let y = box.y + 8 + (Double(index) + 0.5) * PlotStyle.legendRowHeight
                let x0 = box.x + 10, x1 = box.x + 40
                if bands[index].count >= 2 {
                    svg += "<rect x=\"\(c(x0))\" y=\"\(c(y - 6))\" width=\"\(c(x1 - x0))\" height=\"12\" fill=\"\(PlotStyle.color(index))\" fill-opacity=\"0.18\"/>\n"
                }
                let dash = PlotStyle.dash(index).map { " stroke-dasharray=\"\($0)\"" } ?? ""
                svg += """
                    <line x1="\(c(x0))" y1="\(c(y))" x2="\(c(x1))" y2="\(c(y))" stroke="\(PlotStyle.color(index))" stroke-width="1.8"\(dash)/>
                    <text class="legend-label" x="\(c(x1 + 8))" y="\(c(y + 4))" fill="#111111">\(PlotFormat.escape(series.name))</text>

                    """
            }
            svg += "</g>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// How many points, every few pixels along `polyline`, lie inside `box`.
    private static func samples(_ polyline: [PlotPoint], inside box: PlotBox) -> Int {
        guard var previous = polyline.first else { return 0 }
        var count = box.contains(previous) ? 1 : 0
        for point in polyline.dropFirst() {
            let length = abs(point.x - previous.x) + abs(point.y - previous.y)
            let steps = min(Int(length / 4) + 1, 10_000)
            for step in 1...steps {
                let t = Double(step) / Double(steps)
                let sample = PlotPoint(x: previous.x + (point.x - previous.x) * t, y: previous.y + (point.y - previous.y) * t)
                if box.contains(sample) { count += 1 }
            }
            previous = point
        }
        return count
    }

    private static func overlaps(_ a: PlotBox, _ b: PlotBox) -> Bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }
}

import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

import Autotuning

@Suite struct ConvergencePlotTests {
    // MARK: - Helpers

    /// Parses `svg` as XML (failing the test when it is not well-formed) and returns every element.
    private func elements(_ svg: String) throws -> [XMLElement] {
        let document = try XMLDocument(data: Data(svg.utf8), options: [])
        guard let root = document.rootElement() else {
            Issue.record("no root element")
            return []
        }
        #expect(root.localName == "svg")
        var result: [XMLElement] = []
        func walk(_ element: XMLElement) {
            result.append(element)
            for child in element.children ?? [] {
                if let child = child as? XMLElement { walk(child) }
            }
        }
        walk(root)
        return result
    }

    private func named(_ name: String, _ elements: [XMLElement]) -> [XMLElement] {
        elements.filter { $0.localName == name }
    }

    /// The value of an attribute. (On Linux, `attribute(forName:)` finds nothing in an
    /// element in a default namespace, so this looks through `attributes`.)
    private func attribute(_ element: XMLElement, _ name: String) -> String? {
        element.attributes?.first { $0.name == name }?.stringValue
    }

    private func classes(_ element: XMLElement) -> [String] {
        (attribute(element, "class") ?? "").split(separator: " ").map(String.init)
    }

    private func number(_ element: XMLElement, _ attribute: String) -> Double? {
        self.attribute(element, attribute).flatMap(Double.init)
    }

    private func texts(_ elements: [XMLElement]) -> [String] {
        named("text", elements).compactMap(\.stringValue)
    }

    private struct Area {
        var x: Double, y: Double, width: Double, height: Double
        func contains(_ p: (Double, Double), tolerance: Double = 0.01) -> Bool {
            p.0 >= x - tolerance && p.0 <= x + width + tolerance
                && p.1 >= y - tolerance && p.1 <= y + height + tolerance
        }
    }

    private func plotArea(_ elements: [XMLElement]) throws -> Area {
        let rect = try #require(named("rect", elements).first { classes($0).contains("plot-area") })
        return Area(
            x: try #require(number(rect, "x")), y: try #require(number(rect, "y")),
            width: try #require(number(rect, "width")), height: try #require(number(rect, "height")))
    }

    private func points(_ element: XMLElement) throws -> [(Double, Double)] {
        let text = try #require(attribute(element, "points"))
        return try text.split(separator: " ").map { pair in
            let parts = pair.split(separator: ",")
            try #require(parts.count == 2)
            return (try #require(Double(parts[0])), try #require(Double(parts[1])))
        }
    }

    private func seriesLines(_ elements: [XMLElement]) -> [XMLElement] {
        named("polyline", elements).filter { classes($0).contains("series") }
    }

    /// Best-so-far of a deterministic pseudo-random walk, from `start` towards `floor`.
    private static func bestSoFar(count: Int, seed: UInt64, start: Double, floor: Double, rate: Double) -> [Double] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        func random() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        var best = Double.infinity
        return (0..<count).map { i in
            let scale = floor + (start - floor) * exp(-rate * Double(i) * random() * 2)
            let sample = scale * (1 + 2 * random())
            best = min(best, sample)
            return best
        }
    }

    private static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        let position = p * Double(sorted.count - 1)
        let low = Int(position.rounded(.down)), high = Int(position.rounded(.up))
        return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
    }

    // MARK: - Tests

    @Test func wellFormedWithTitleAxisLabelsNamesAndReferences() throws {
        let plot = ConvergencePlot(
            title: "GEMM 1024³ on Test Device", xLabel: "unique evaluations", yLabel: "best time so far (ms)",
            series: [
                .init(name: "random", values: [5, 4, 4, 3, 2.5]),
                .init(name: "annealing", values: [6, 3, 2, 2, 1.5]),
            ],
            references: [.init(label: "optimum", value: 1.2)])
        let svg = plot.svg()
        #expect(svg.hasPrefix("<?xml"))
        let all = try elements(svg)
        let labels = texts(all)
        for expected in ["GEMM 1024³ on Test Device", "unique evaluations", "best time so far (ms)", "random", "annealing", "optimum"] {
            #expect(labels.contains(expected), "missing text \(expected)")
        }
        #expect(named("line", all).contains { classes($0).contains("reference") })
    }

    @Test func onePolylinePerSeriesInsideThePlotArea() throws {
        let plot = ConvergencePlot(
            title: "t", xLabel: "x", yLabel: "y",
            series: (0..<4).map { k in
                .init(name: "s\(k)", values: Self.bestSoFar(count: 50 + 10 * k, seed: UInt64(k), start: 100, floor: 3, rate: 0.05).map(Optional.some))
            },
            references: [.init(label: "optimum", value: 2)])
        let all = try elements(plot.svg())
        let area = try plotArea(all)
        let lines = seriesLines(all)
        #expect(lines.count == 4)
        for line in lines {
            let pts = try points(line)
            #expect(pts.count >= 2)
            for p in pts { #expect(area.contains(p), "point \(p) outside \(area)") }
        }
    }

    @Test func stepsGoAcrossThenDown() throws {
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", values: [3, 2, 2, 1])])
        let pts = try points(try #require(seriesLines(try elements(plot.svg())).first))
        // (1,3) (2,3) (2,2) (4,2)... merged: start, across, down, across, down, across to the end.
        #expect(pts.count == 5)
        for (a, b) in zip(pts, pts.dropFirst()) {
            #expect(a.0 == b.0 || a.1 == b.1, "segment \(a) to \(b) is diagonal")
        }
        // Horizontal first: the second point keeps the first point's y.
        #expect(pts[1].1 == pts[0].1 && pts[1].0 > pts[0].0)
        // x grows, y (a falling value) moves down the page or stays.
        for (a, b) in zip(pts, pts.dropFirst()) {
            #expect(b.0 >= a.0)
            #expect(b.1 >= a.1)
        }
    }

    @Test func logScaleTicksArePowersOfTenInRange() throws {
        let values: [Double?] = (0..<100).map { 1000 * pow(0.9, Double($0)) }  // 1000 down to about 0.03
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", values: values)], logY: true)
        let all = try elements(plot.svg())
        let area = try plotArea(all)
        let major = named("text", all).filter { classes($0).contains("ytick") && classes($0).contains("major") }
        #expect(major.count >= 3)
        var seen: [Double] = []
        for tick in major {
            let value = try #require(tick.stringValue.flatMap(Double.init), "tick label \(tick.stringValue ?? "")")
            let exponent = log10(value)
            #expect(abs(exponent - exponent.rounded()) < 1e-9, "\(value) is not a power of ten")
            #expect(value >= 0.01 && value <= 10_000, "\(value) is out of range")
            let y = try #require(number(tick, "y"))
            #expect(y >= area.y - 5 && y <= area.y + area.height + 5)
            seen.append(value)
        }
        for decade in [0.1, 1.0, 10, 100, 1000] {
            #expect(seen.contains { abs($0 / decade - 1) < 1e-9 }, "missing decade \(decade)")
        }
        // Higher values are drawn higher up.
        let ys = try major.map { try #require(number($0, "y")) }
        #expect(zip(seen, ys).sorted { $0.0 < $1.0 }.map(\.1) == ys.sorted(by: >))
    }

    @Test func logScaleWithSmallRangeLabelsTwoAndFive() throws {
        let values: [Double?] = (0..<60).map { 30 * pow(0.97, Double($0)) }  // 30 down to about 5
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", values: values)], logY: true)
        let labels = named("text", try elements(plot.svg())).filter { classes($0).contains("ytick") }.compactMap(\.stringValue)
        #expect(labels.contains("10"))
        #expect(labels.contains("20"))
        #expect(labels.contains("5"))
    }

    @Test func linearTicksAreOneTwoFiveSteps() throws {
        let values: [Double?] = [812, 640, 533, 533, 402, 377, 377, 251]
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", values: values)])
        let all = try elements(plot.svg())
        for axis in ["ytick", "xtick"] {
            let ticks = try named("text", all).filter { classes($0).contains(axis) }.map { try #require($0.stringValue.flatMap(Double.init)) }
            #expect(ticks.count >= 3)
            let steps = zip(ticks, ticks.dropFirst()).map { abs($1 - $0) }
            let step = try #require(steps.first)
            for s in steps { #expect(abs(s - step) < step * 1e-9) }
            let mantissa = step / pow(10, log10(step).rounded(.down))
            #expect([1.0, 2.0, 5.0].contains { abs(mantissa - $0) < 1e-9 }, "step \(step)")
        }
    }

    @Test(arguments: [false, true])
    func awkwardDataGivesFiniteCoordinates(logY: Bool) throws {
        let plot = ConvergencePlot(
            title: "edge cases", xLabel: "x", yLabel: "y",
            series: [
                .init(name: "gaps", values: [nil, nil, 5, nil, .nan, 3, .infinity, -.infinity, 2, nil]),
                .init(name: "empty", values: []),
                .init(name: "all nil", values: [nil, nil]),
                .init(name: "single", values: [4]),
                .init(name: "constant", values: [7, 7, 7, 7]),
                .init(name: "non-positive", values: [0, -1, 3]),
                .init(name: "bad band", values: [1, 2], lower: [nil, .nan], upper: [.infinity]),
            ],
            references: [.init(label: "nan ref", value: .nan), .init(label: "zero", value: 0)],
            logY: logY)
        let svg = plot.svg()
        #expect(!svg.lowercased().contains("nan\"") && !svg.contains("inf\""))
        let numbers = svg.split(whereSeparator: { " ,\"=<>".contains($0) })
        #expect(!numbers.contains { ["nan", "-nan", "inf", "-inf"].contains($0.lowercased()) })
        let all = try elements(svg)
        let area = try plotArea(all)
        for element in all {
            for attribute in element.attributes ?? [] {
                guard let name = attribute.name, ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height"].contains(name) else { continue }
                let value = try #require(attribute.stringValue.flatMap(Double.init), "\(name)=\(attribute.stringValue ?? "")")
                #expect(value.isFinite)
            }
        }
        let lines = seriesLines(all)
        // Every series with a drawable value has a line, and only those.
        #expect(lines.count == 5)
        for line in lines {
            for p in try points(line) {
                #expect(p.0.isFinite && p.1.isFinite)
                #expect(area.contains(p))
            }
        }
        // Every name is in the legend, even those without data.
        for name in ["gaps", "empty", "all nil", "single", "constant", "non-positive", "bad band"] {
            #expect(texts(all).contains(name))
        }
    }

    @Test func constantValuesGetAPaddedRange() throws {
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "flat", values: [2, 2, 2])])
        let all = try elements(plot.svg())
        let ticks = try named("text", all).filter { classes($0).contains("ytick") }.map { try #require($0.stringValue.flatMap(Double.init)) }
        #expect(try #require(ticks.min()) < 2 && #require(ticks.max()) > 2)
    }

    @Test func noSeriesAtAll() throws {
        let plot = ConvergencePlot(title: "nothing yet", xLabel: "x", yLabel: "y", series: [], logY: true)
        let all = try elements(plot.svg())
        #expect(seriesLines(all).isEmpty)
        #expect(texts(all).contains("nothing yet"))
    }

    @Test func textIsEscaped() throws {
        let title = "A & B <C> \"quoted\" 'single'"
        let plot = ConvergencePlot(
            title: title, xLabel: "x < 10 & y > 2", yLabel: "y",
            series: [.init(name: "R&D <new>", values: [1, 2])],
            references: [.init(label: "best & <worst>", value: 1.5)])
        let svg = plot.svg()
        #expect(svg.contains("A &amp; B &lt;C&gt;"))
        #expect(!svg.contains("R&D"))
        let labels = texts(try elements(svg))
        for expected in [title, "x < 10 & y > 2", "R&D <new>", "best & <worst>"] {
            #expect(labels.contains(expected), "missing \(expected)")
        }
    }

    @Test func bandsAreShadedInsideThePlotArea() throws {
        let values: [Double?] = [nil, 9, 7, 5, 5, 4]
        let plot = ConvergencePlot(
            title: "t", xLabel: "x", yLabel: "y",
            series: [.init(name: "median", values: values, lower: [nil, 8, 6, nil, 4, 3], upper: [nil, 10, 8, 7, 6, 5])],
            logY: true)
        let all = try elements(plot.svg())
        let area = try plotArea(all)
        let bands = named("polygon", all).filter { classes($0).contains("band") }
        #expect(bands.count == 1)
        for p in try points(try #require(bands.first)) { #expect(area.contains(p)) }
    }

    @Test func manySeriesHaveDistinctStyles() throws {
        let series = (0..<12).map { k in ConvergencePlot.Series(name: "shape \(k)", values: [Double(k + 2), Double(k + 1)]) }
        let all = try elements(ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: series).svg())
        let styles = seriesLines(all).map {
            (attribute($0, "stroke") ?? "") + "/" + (attribute($0, "stroke-dasharray") ?? "solid")
        }
        #expect(styles.count == 12)
        #expect(Set(styles).count == 12)
    }

    @Test(arguments: ["short", "a rather long series name that does not fit beside the plot area at all"])
    func legendDoesNotCoverTheData(name: String) throws {
        let series = (0..<3).map { k in
            ConvergencePlot.Series(
                name: "\(name) \(k)",
                values: Self.bestSoFar(count: 120, seed: UInt64(k + 7), start: 50, floor: 1, rate: 0.04).map(Optional.some))
        }
        let all = try elements(ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: series).svg())
        let box = try #require(named("rect", all).first { classes($0).contains("legend-box") })
        let legend = Area(
            x: try #require(number(box, "x")), y: try #require(number(box, "y")),
            width: try #require(number(box, "width")), height: try #require(number(box, "height")))
        for line in seriesLines(all) {
            for p in try points(line) {
                #expect(!legend.contains(p, tolerance: -1), "legend covers \(p)")
            }
        }
    }

    @Test func writeCreatesParentDirectories() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("convergence-plot-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("a/b/plot.svg").path
        let plot = ConvergencePlot(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", values: [1])])
        try plot.write(to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == plot.svg())
    }

    /// Writes the example plots that a person looks at: svgplot/example.svg (log scale) and
    /// svgplot/example-linear.svg in the temporary directory.
    @Test func examplePlots() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svgplot")
        let evaluations = 200
        func summary(_ name: String, seeds: Range<UInt64>, start: Double, floor: Double, rate: Double, skip: Int = 0, band: Bool) -> ConvergencePlot.Series {
            let runs = seeds.map { Self.bestSoFar(count: evaluations - skip, seed: $0, start: start, floor: floor, rate: rate) }
            func column(_ p: Double) -> [Double?] {
                Array(repeating: nil, count: skip) + (0..<(evaluations - skip)).map { i in Self.percentile(runs.map { $0[i] }, p) }
            }
            return .init(name: name, values: column(0.5), lower: band ? column(0.25) : nil, upper: band ? column(0.75) : nil)
        }
        let log = ConvergencePlot(
            title: "GEMM 1024×1024×1024 (float) — convergence over 9 seeds",
            xLabel: "unique evaluations", yLabel: "best time so far (ms)",
            series: [
                summary("random search", seeds: 0..<9, start: 60, floor: 0.9, rate: 0.02, band: true),
                summary("annealing", seeds: 10..<19, start: 60, floor: 0.75, rate: 0.05, band: true),
                summary("model-guided", seeds: 20..<29, start: 8, floor: 0.7, rate: 0.08, skip: 20, band: false),
            ],
            references: [.init(label: "optimum (exhaustive)", value: 0.68)],
            logY: true)
        try log.write(to: directory.appendingPathComponent("example.svg").path)
        _ = try elements(log.svg())

        let shapes = ["256³", "512³", "1024³", "2048³", "4096³", "1024×64×1024", "64×1024×1024", "2048×2048×128", "128×4096×4096"]
        let linear = ConvergencePlot(
            title: "Best GFLOP/s per shape (annealing)", xLabel: "unique evaluations", yLabel: "best GFLOP/s so far",
            series: shapes.enumerated().map { k, shape in
                // Best time so far falls, so the best GFLOP/s so far rises.
                let times = Self.bestSoFar(count: 150 + 10 * k, seed: UInt64(100 + k), start: 20, floor: 1 + 0.1 * Double(k), rate: 0.03)
                return .init(name: shape, values: times.map { 1700 / $0 })
            },
            references: [.init(label: "CLBlast 1024³", value: 1450), .init(label: "peak", value: 1900)])
        try linear.write(to: directory.appendingPathComponent("example-linear.svg").path)
        _ = try elements(linear.svg())
    }
}

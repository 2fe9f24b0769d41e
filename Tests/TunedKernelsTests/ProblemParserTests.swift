import Foundation
import Testing
import TunedKernels

/// A family's problem options, declared once, parsed from words, problems-file lines and JSON.
@Suite struct ProblemParserTests {
    static func parse(_ words: [String], base: [String] = []) throws -> GEMMProblem {
        try ProblemParser.parse(GEMMProblem.self, family: "gemm", options: GEMM.problemOptions, arguments: words, base: base)
    }

    static func expectError(_ words: [String], _ message: String) {
        #expect {
            _ = try parse(words)
        } throws: { error in
            (error as? ProblemError)?.message.contains(message) == true
        }
    }

    @Test func optionsDefaultsAndJSON() throws {
        #expect(try Self.parse(["--shape", "7x5x3"]) == GEMMProblem(m: 7, n: 5, k: 3, precision: .half))
        #expect(try Self.parse(["--shape=7X5X3", "--precision=single", "--layout", "tn", "--batch", "4"])
                == GEMMProblem(m: 7, n: 5, k: 3, batch: 4, precision: .single, layout: .tn))
        let problem = GEMMProblem(m: 1, n: 2304, k: 768, batch: 2, precision: .single, layout: .nt)
        let json = String(decoding: try JSONEncoder().encode(problem), as: UTF8.self)
        #expect(try Self.parse(["--problem", json]) == problem, "the JSON every report prints is accepted back")
        #expect(try Self.parse(["--problem=" + json]) == problem)
        Self.expectError(["--problem", json, "--batch", "2"], "do not combine it")
    }

    @Test func clearErrors() {
        Self.expectError(["--shape", "7x5"], "--shape 7x5 is not MxNxK")
        Self.expectError(["--shape", "7x5xk"], "is not an integer")
        Self.expectError(["--shape", "7x5x99999999999999999999"], "is not an integer")
        Self.expectError(["--precision", "half"], "--shape MxNxK is required")
        Self.expectError(["--shape", "1x1x1", "--precision", "bf16"], "must be one of half, single")
        Self.expectError(["--shape", "1x1x1", "--shape", "2x2x2"], "--shape is given twice")
        Self.expectError(["--shape"], "--shape needs a value")
        Self.expectError(["--shape", "1x1x1", "--mystery", "3"], "unknown option --mystery")
        Self.expectError(["1x1x1"], "unexpected \"1x1x1\"")
        Self.expectError(["--problem", "{\"m\": 1}"], "the problem has no \"n\"")
        Self.expectError(["--problem", "{\"m\": 1, \"n\": 1, \"k\": 1, \"bacth\": 2}"], "the problem has no field \"bacth\"")
        Self.expectError(["--problem", "{\"m\": 1.5, \"n\": 1, \"k\": 1}"], "\"m\" must be an integer, got 1.5")
        Self.expectError(["--problem", "{\"m\": 1, "], "the problem is not valid JSON")
        Self.expectError(["--problem", "{\"m\": 1, \"n\": 1, \"k\": 1, \"batch\": 1, \"precision\": \"quad\", \"layout\": \"nn\"}"], "precision")
    }

    /// The problem JSON of every registered family's reports is accepted back: its keys are the declared ones.
    @Test func everyFamilysProblemKeysAreDeclared() throws {
        for family in KernelFamilies.families {
            let keys = Set(ProblemParser.keys(family.problemOptions))
            let found = family.problemOptions.first { $0.isPrimary }
            let primary = try #require(found)
            let value: String
            if case .dimensions(let names) = primary.kind { value = names.map { _ in "3" }.joined(separator: "x") } else { value = "3" }
            let json = try Self.encodedKeys(family, arguments: ["--\(primary.name)", value])
            #expect(json.isSubset(of: keys), "\(family.name): \(json.subtracting(keys)) are not declared")
        }
    }

    static func encodedKeys<F: KernelFamily>(_ family: F.Type, arguments: [String]) throws -> Set<String> {
        let problem = try ProblemParser.parse(F.Problem.self, family: F.name, options: F.problemOptions, arguments: arguments)
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(problem)) as? [String: Any] ?? [:]
        return Set(object.keys)
    }

    /// One declaration: a JSON problem missing an option takes the initializer's default, a required one missing is
    /// refused by name, every conformance problem survives encoding and decoding, and `--help`'s defaults are the
    /// initializer's.
    @Test func theTableDrivesCodingAndDefaults() throws {
        let partial = try ProblemParser.decode(CCEProblem.self, family: "cce", options: CutCrossEntropy.problemOptions,
                                               data: Data(#"{"tokens": 9, "vocab": 30, "dim": 4, "shift": true}"#.utf8))
        #expect(partial == CCEProblem(tokens: 9, vocab: 30, dim: 4, shift: true))
        #expect { try ProblemParser.decode(CCEProblem.self, family: "cce", options: CutCrossEntropy.problemOptions, data: Data(#"{"vocab": 3}"#.utf8)) }
            throws: { "\($0)".contains("the problem has no \"tokens\"") }
        #expect { try ProblemParser.decode(GEMMProblem.self, family: "gemm", options: GEMM.problemOptions, data: Data(#"{"m": 3, "n": 4}"#.utf8)) }
            throws: { "\($0)".contains("the problem has no \"k\"") }
        for family in KernelFamilies.families { try Self.roundTrip(family) }
        // A format the family does not store is refused, in JSON as on the command line, and by `needs`.
        #expect { try ProblemParser.decode(CCEProblem.self, family: "cce", options: CutCrossEntropy.problemOptions,
                                           data: Data(#"{"tokens": 9, "precision": "int8"}"#.utf8)) } throws: { "\($0)".contains("int8 is not one of half, single, bfloat16") }
        #expect { try GEMM.needs(GEMMProblem(m: 2, n: 2, k: 2, precision: .bfloat16)) } throws: { "\($0)".contains("not one of half, single") }
        #expect { try CutCrossEntropy.needs(CCEProblem(tokens: 2, vocab: 2, dim: 2, precision: .int8)) } throws: { "\($0)".contains("not one of") }
        let defaults = Dictionary(uniqueKeysWithValues: CutCrossEntropy.problemOptions.map { ($0.name, $0.defaultValue) })
        #expect(defaults["precision"] == "half" && defaults["ignore-index"] == "-100" && defaults["filter"] == "auto" && defaults["vocab"] == "32768")
        #expect(defaults["tokens"] == .some(nil) && defaults["bias"] == .some(nil))
        #expect(GEMM.problemOptions.map(\.name) == ["shape", "precision", "layout", "batch"])
    }

    static func roundTrip<F: KernelFamily>(_ family: F.Type) throws {
        for problem in F.conformanceProblems {
            let data = try JSONEncoder().encode(problem)
            #expect(try ProblemParser.decode(F.Problem.self, family: F.name, options: F.problemOptions, data: data) == problem, "\(F.name) \(problem)")
        }
    }

    @Test func problemsFileLinesOverrideTheCommandLine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tk-problems-\(UUID().uuidString).txt").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
        # square
        64x64x64
        --shape 1x2304x768 --layout nt   # decode
        {"m": 3, "n": 4, "k": 5, "batch": 1, "precision": "half", "layout": "tt"}

        """.write(toFile: path, atomically: true, encoding: .utf8)
        let problems = try ProblemParser.read(GEMMProblem.self, family: "gemm", options: GEMM.problemOptions, file: path,
                                              base: ["--precision", "single"])
        #expect(problems == [GEMMProblem(m: 64, n: 64, k: 64, precision: .single), GEMMProblem(m: 1, n: 2304, k: 768, precision: .single, layout: .nt),
                             GEMMProblem(m: 3, n: 4, k: 5, precision: .half, layout: .tt)])
        try "64x64\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try ProblemParser.read(GEMMProblem.self, family: "gemm", options: GEMM.problemOptions, file: path, base: [])
        } throws: { "\($0)".contains("\(path):1:") && "\($0)".contains("is not MxNxK") }
    }

    @Test func sizesAreCheckedWithoutOverflow() {
        for problem in [GEMMProblem(m: .max, n: 1, k: 1, precision: .half), GEMMProblem(m: 1, n: 1, k: 1, batch: .max, precision: .half),
                        GEMMProblem(m: 1 << 62, n: 4, k: 1, precision: .single), GEMMProblem(m: 0, n: 1, k: 1, precision: .half)] {
            #expect(throws: ProblemError.self) { _ = try GEMM.needs(problem) }
        }
    }
}

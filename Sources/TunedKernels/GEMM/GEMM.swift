import Autotuning
import Foundation
import OpenCLRuntime

/// Tuned GEMM on an OpenCL device: `C = alpha * op(A) * op(B) + beta * C`, row-major, fp16 or fp32
/// storage with fp32 accumulation, any M, N, K >= 1, leading dimensions and strided batches.
///
/// The configuration comes from the device's tuning database (the exact shape, else the nearest tuned
/// shape of the same precision and layout), else from the device type's default. Programs are built
/// once per configuration and cached in memory and on disk.
///
/// ```swift
/// let context = try Context()
/// let gemm = try GEMM(context: context)
/// let a = try DeviceBuffer<Float16>(context, hostA)   // M x K
/// let b = try DeviceBuffer<Float16>(context, hostB)   // K x N
/// let c = try DeviceBuffer<Float16>(context, count: m * n)
/// try gemm(m: m, n: n, k: k, a: a, b: b, c: c)          // C = A * B
/// let result = try c.download()
/// ```
public final class GEMM: KernelFamily, @unchecked Sendable {
    public let core: FamilyCore

    public init(core: FamilyCore) { self.core = core }

    /// What one call enqueued (the kernels' events: packs, GEMM, reduction).
    public typealias Launch = KernelLaunch

    // MARK: The family

    public static let name = "gemm"
    public static let summary = "C = alpha * op(A) * op(B) + beta * C, fp16 or fp32 storage with fp32 accumulation"
    /// The storage formats of A, B and C.
    public static let formats: [ElementFormat] = [.half, .single]

    public static let roles = [KernelRole("gemm", variants: GEMMVariant.allCases.map(\.rawValue),
                                          summary: "the whole product (packing, split-K reduction and matrix-vector paths are its variants)")]
    public static let conformanceProblems = [GEMMProblem(m: 7, n: 5, k: 3, batch: 2, precision: .single, layout: .tn),
                                             GEMMProblem(m: 19, n: 23, k: 17, precision: .half)]
    /// 1024^3 in both precisions, a BERT-base layer's feed-forward product (512 tokens, 768 -> 3072) and a decoding
    /// step (one token through a 4096 x 4096 weight: memory-bound).
    public static let performanceCases = [
        PerformanceCase("1024x1024x1024-half", GEMMProblem(m: 1024, n: 1024, k: 1024, precision: .half), bound: .compute),
        PerformanceCase("1024x1024x1024-single", GEMMProblem(m: 1024, n: 1024, k: 1024, precision: .single), bound: .compute),
        PerformanceCase("bert-512x3072x768-half", GEMMProblem(m: 512, n: 3072, k: 768, precision: .half), bound: .compute),
        PerformanceCase("decode-1x4096x4096-half", GEMMProblem(m: 1, n: 4096, k: 4096, precision: .half), bound: .memory),
    ]

    public static func key(_ problem: GEMMProblem) -> TuningKey {
        TuningKey(kernel: name, tags: ["precision": problem.precision.tag, "layout": problem.layout.rawValue],
                  sizes: [problem.m, problem.n, problem.k, problem.batch])
    }

    public static func work(_ problem: GEMMProblem) -> Work {
        let (m, n, k, b) = (Double(problem.m), Double(problem.n), Double(problem.k), Double(problem.batch))
        return Work(flops: 2 * m * n * k * b, bytes: (m * k + k * n + m * n) * b * Double(problem.precision.bytes))
    }

    /// Sizes of at least 1; one matrix within the kernels' 32-bit indexing; the operands and the variants' scratch
    /// (packed fp32 panels, split-K partial sums) on the device, and the harness's and verifier's fp32 host copies.
    public static func needs(_ problem: GEMMProblem) throws -> ResourceNeeds {
        try Checked.sizes(["M": problem.m, "N": problem.n, "K": problem.k, "batch": problem.batch], family: name)
        guard formats.contains(problem.precision) else {
            throw ProblemError("gemm: precision \(problem.precision) is not one of \(formats.map(\.tag).joined(separator: ", "))")
        }
        for (label, rows, columns) in [("A", problem.m, problem.k), ("B", problem.k, problem.n), ("C", problem.m, problem.n)] {
            let elements = try Checked.product(rows, columns, what: "one matrix of \(label)")
            guard elements <= Int(Int32.max) else {
                throw ProblemError("gemm: one matrix of \(label) holds \(rows) x \(columns) elements, more than the kernels' 32-bit indexing reaches (\(Int32.max)); split the problem")
            }
        }
        let (m, n, k, batch, bytes) = (problem.m, problem.n, problem.k, problem.batch, problem.precision.bytes)
        let a = try Checked.product(m, k, batch, bytes, what: "A"), b = try Checked.product(k, n, batch, bytes, what: "B")
        let c = try Checked.product(m, n, batch, bytes, what: "C")
        // Scratch of the CPU default: packed fp32 panels. (Split-K partial sums are KSPLIT x C: a configuration
        // whose partials exceed the device's largest allocation fails with that message when it is launched.)
        let scratch = [try Checked.product(m + 16, k, batch, 4, what: "the packed A panels"),
                       try Checked.product(n + 32, k, batch, 4, what: "the packed B panels")]
        // fp32 host copies of the operands (with the verifier's padding and canaries), the reference, and the
        // downloads a check compares.
        let host = try Checked.sum([try Checked.product(m + 8, k + 8, batch, 16, what: "A on the host"),
                                    try Checked.product(k + 8, n + 8, batch, 16, what: "B on the host"),
                                    try Checked.product(m + 8, n + 8, batch, 32, what: "C on the host")], what: "the host memory")
        return ResourceNeeds(deviceBuffers: [a, b, c] + scratch, hostBytes: host)
    }

    public func spaces(for problem: GEMMProblem, role: KernelRole, given: [String: Configuration]) -> [SearchSpace] {
        GEMMSpace.spaces(limits: limits, precision: problem.precision, layout: problem.layout)
    }

    public func defaults(for problem: GEMMProblem, role: KernelRole, given: [String: Configuration]) -> [Configuration] {
        GEMMDefaults.configurations(for: problem, limits: limits)
    }

    public func buildOptions(_ configuration: Configuration, for problem: GEMMProblem) -> String {
        Self.buildOptions(configuration, problem: problem)
    }

    public func harness(_ problem: GEMMProblem, seed: UInt64) throws -> GEMMHarness {
        try GEMMHarness(gemm: self, problem: problem, seed: seed)
    }

    /// Two calls with canaries around every buffer, odd offsets, padded rows and batch gaps: `alpha = 1.5`,
    /// `beta = 0` on a C full of NaN, then `alpha = -0.75`, `beta = 0.5`.
    public func verify(_ problem: GEMMProblem, configurations: [Configuration], seed: UInt64) throws -> Verification {
        let configuration = try onlyConfiguration(configurations)
        let verifier = GEMMVerifier(gemm: self)
        let first = try verifier.verify(problem, alpha: 1.5, beta: 0, configuration: configuration, seed: seed)
        let second = try verifier.verify(problem, alpha: -0.75, beta: 0.5, configuration: configuration, seed: seed &+ 1)
        return Verification(choices: [RoleChoice(role: Self.roles[0].name, config: first.configuration, source: first.source)],
                            checks: [("alpha 1.5, beta 0 (NaN in C)", first.check), ("alpha -0.75, beta 0.5", second.check)],
                            canaryViolations: first.canaryViolations + second.canaryViolations,
                            inputViolations: first.inputViolations + second.inputViolations)
    }


    /// Releases the scratch buffers (packed panels, split-K partial sums) kept between calls.
    public func releaseScratch() { core.releaseScratch() }

    // MARK: Calls

    /// Runs one GEMM (or a strided batch) with the operands as given.
    ///
    /// - Parameters:
    ///   - configuration: a configuration to use instead of the tuned one (the tuner and tests use it);
    ///     it must be valid on this device.
    /// - Returns: the configuration used and the kernels' events; the call does not wait for them.
    /// - Throws: ``GEMMError`` for bad shapes, strides, buffers or configurations; ``OpenCLError`` or
    ///   ``ProgramBuildError`` from the driver.
    @discardableResult
    public func run(_ problem: GEMMProblem, alpha: Float = 1, a: MatrixOperand, b: MatrixOperand, beta: Float = 0,
                    c: MatrixOperand, configuration explicit: Configuration? = nil) throws -> Launch {
        try validate(problem, a: a, b: b, c: c)
        let (configuration, source): (Configuration, ConfigurationSource)
        do {
            (configuration, source) = try resolve(explicit, for: problem)
        } catch let error as InvalidConfiguration {
            throw GEMMError.invalidConfiguration(error.message)
        }
        // Kernels hold their arguments: one call at a time sets and enqueues them.
        let events = try core.serialized {
            try enqueue(problem, alpha: alpha, a: a, b: b, beta: beta, c: c, configuration: configuration)
        }
        return Launch(role: Self.roles[0].name, configuration: configuration, source: source, events: events)
    }

    /// Runs `C = alpha * op(A) * op(B) + beta * C` on typed buffers; leading dimensions default to the
    /// stored row lengths and batch strides to tightly packed matrices.
    @discardableResult
    public func callAsFunction<Scalar: KernelScalar>(
        _ layout: GEMMLayout = .nn, m: Int, n: Int, k: Int, batch: Int = 1, alpha: Float = 1,
        a: DeviceBuffer<Scalar>, lda: Int? = nil, b: DeviceBuffer<Scalar>, ldb: Int? = nil,
        beta: Float = 0, c: DeviceBuffer<Scalar>, ldc: Int? = nil, configuration: Configuration? = nil
    ) throws -> Launch {
        let problem = GEMMProblem(m: m, n: n, k: k, batch: batch, precision: Scalar.format, layout: layout)
        let (aRows, aColumns) = problem.storedA
        let (bRows, bColumns) = problem.storedB
        let lda = lda ?? aColumns, ldb = ldb ?? bColumns, ldc = ldc ?? n
        /// A tightly packed batch's stride; an overflow is left to ``run`` to refuse (the span check names it).
        func stride(_ rows: Int, _ leading: Int) -> Int {
            let (value, overflow) = rows.multipliedReportingOverflow(by: leading)
            return overflow ? Int.max : value
        }
        return try run(problem, alpha: alpha,
                       a: MatrixOperand(a, leadingDimension: lda, batchStride: stride(aRows, lda)),
                       b: MatrixOperand(b, leadingDimension: ldb, batchStride: stride(bRows, ldb)), beta: beta,
                       c: MatrixOperand(c, leadingDimension: ldc, batchStride: stride(m, ldc)), configuration: configuration)
    }

    // MARK: Launching

    /// The build options of `configuration` for `problem`: precision, layout, the variant (only its kernels are
    /// compiled) and every parameter as `-D`.
    static func buildOptions(_ configuration: Configuration, problem: GEMMProblem) -> String {
        var options = ["-DPRECISION=\(problem.precision.define)", "-DTRANSA=\(problem.layout.transposeA ? 1 : 0)",
                       "-DTRANSB=\(problem.layout.transposeB ? 1 : 0)", "-DGEMM_ONLY", "-DGEMM_\(configuration.variant.uppercased())"]
        options.append(configuration.defines)
        return options.joined(separator: " ")
    }

    private func enqueue(_ p: GEMMProblem, alpha: Float, a: MatrixOperand, b: MatrixOperand, beta: Float, c: MatrixOperand,
                         configuration: Configuration) throws -> [Event] {
        let options = Self.buildOptions(configuration, problem: p)
        let v = configuration.values
        let queue = context.queue
        let (m, n, k, batch) = (Int32(p.m), Int32(p.n), Int32(p.k), p.batch)
        func operands(_ x: MatrixOperand) -> [any KernelArgument] {
            [x.buffer as! any KernelArgument, Int64(x.offset), Int32(x.leadingDimension), Int64(x.batchStride)]
        }
        let head: [any KernelArgument] = [m, n, k, alpha, beta]
        switch GEMMVariant(rawValue: configuration.variant)! {
        case .direct:
            let (wptm, wptn, lm, ln) = (v["WPTM"]!, v["WPTN"]!, v["DLOCALM"]!, v["DLOCALN"]!)
            let global = [roundUp(ceilDiv(p.n, wptn), ln), roundUp(ceilDiv(p.m, wptm), lm), batch]
            let kernel = try core.kernel("gemm_direct", options: options)
            return [try kernel.launch(on: queue, global: global, local: [ln, lm, 1],
                                      arguments: head + operands(a) + operands(b) + operands(c))]
        case .xgemm:
            let (mwg, nwg, mdimc, ndimc, ksplit) = (v["MWG"]!, v["NWG"]!, v["MDIMC"]!, v["NDIMC"]!, v["KSPLIT"]!)
            let partial = try core.scratch("partial", count: ksplit > 1 ? batch * ksplit * p.m * p.n : 1, of: Float.self)
            let global = [ceilDiv(p.n, nwg) * ndimc, ceilDiv(p.m, mwg) * mdimc, batch * ksplit]
            let kernel = try core.kernel("xgemm", options: options)
            var events = [try kernel.launch(on: queue, global: global, local: [ndimc, mdimc, 1],
                                            arguments: head + operands(a) + operands(b) + operands(c) + [partial])]
            if ksplit > 1 {
                let reduce = try core.kernel("gemm_splitk_reduce", options: options)
                events.append(try reduce.launch(on: queue, global: [roundUp(p.n, 16), p.m, batch], local: [16, 1, 1],
                                                arguments: [m, n, beta, partial] + operands(c)))
            }
            return events
        case .gemv:
            let (gvw, gnv, gln, ksplit, stream) = (v["GVW"]!, v["GNV"]!, v["GLN"]!, v["KSPLIT"]!, v["GSTREAM"]! == 1)
            let perItem = p.layout.transposeB ? gnv : gvw * gnv
            let partial = try core.scratch("partial", count: ksplit > 1 || stream ? batch * ksplit * p.m * p.n : 1, of: Float.self)
            var events: [Event]
            if stream {
                let kernel = try core.kernel("gemv_stream", options: options)
                events = [try kernel.launch(on: queue, global: [v["GCR"]!, ksplit, batch], local: [1, 1, 1],
                                            arguments: [m, n, k, alpha] + operands(a) + operands(b) + [partial])]
            } else {
                let kernel = try core.kernel("gemv", options: options)
                events = [try kernel.launch(on: queue, global: [roundUp(ceilDiv(p.n, perItem), gln), ksplit, batch], local: [gln, 1, 1],
                                            arguments: head + operands(a) + operands(b) + operands(c) + [partial])]
            }
            if ksplit > 1 || stream {
                let reduce = try core.kernel("gemm_splitk_reduce", options: options)
                events.append(try reduce.launch(on: queue, global: [roundUp(p.n, 16), p.m, batch], local: [16, 1, 1],
                                                arguments: [m, n, beta, partial] + operands(c)))
            }
            return events
        case .packb:
            let (mr, nr, tm, tn, plm, pln) = (v["MR"]!, v["NR"]!, v["TM"]!, v["TN"]!, v["PLM"]!, v["PLN"]!)
            let np = roundUp(p.n, nr)
            let bp = try core.scratch("packedB", count: batch * np * p.k, of: Float.self)
            let packB = try core.kernel("pack_b", options: options)
            let gemm = try core.kernel("gemm_packb", options: options)
            var events: [Event] = []
            events.append(try packB.launch(on: queue, global: [roundUp(p.k, 64), np / nr, batch], local: [64, 1, 1],
                                           arguments: [n, k] + operands(b) + [bp]))
            let global = [roundUp(ceilDiv(np / nr, tn), pln), roundUp(ceilDiv(ceilDiv(p.m, mr), tm), plm), batch]
            events.append(try gemm.launch(on: queue, global: global, local: [pln, plm, 1],
                                          arguments: head + operands(a) + [bp] + operands(c)))
            return events
        case .packed:
            let (mr, nr, tm, tn, plm, pln) = (v["MR"]!, v["NR"]!, v["TM"]!, v["TN"]!, v["PLM"]!, v["PLN"]!)
            let (mp, np) = (roundUp(p.m, mr), roundUp(p.n, nr))
            let ap = try core.scratch("packedA", count: batch * mp * p.k, of: Float.self)
            let bp = try core.scratch("packedB", count: batch * np * p.k, of: Float.self)
            let packA = try core.kernel("pack_a", options: options)
            let packB = try core.kernel("pack_b", options: options)
            let gemm = try core.kernel("gemm_packed", options: options)
            var events: [Event] = []
            events.append(try packA.launch(on: queue, global: [roundUp(p.k, 64), mp / mr, batch], local: [64, 1, 1],
                                           arguments: [m, k] + operands(a) + [ap]))
            events.append(try packB.launch(on: queue, global: [roundUp(p.k, 64), np / nr, batch], local: [64, 1, 1],
                                           arguments: [n, k] + operands(b) + [bp]))
            let global = [roundUp(ceilDiv(np / nr, tn), pln), roundUp(ceilDiv(mp / mr, tm), plm), batch]
            events.append(try gemm.launch(on: queue, global: global, local: [pln, plm, 1],
                                          arguments: head + [ap, bp] + operands(c)))
            return events
        }
    }
}

@inline(__always) func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
@inline(__always) func roundUp(_ a: Int, _ b: Int) -> Int { ceilDiv(a, b) * b }

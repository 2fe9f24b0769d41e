import Autotuning
import Foundation
import OpenCLRuntime
import Synchronization

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
public final class GEMM: @unchecked Sendable {
    /// Where a launch's configuration came from.
    public enum ConfigurationSource: String, Sendable {
        case explicit, tuned, nearest = "nearest-tuned", `default`
    }

    /// What one call enqueued.
    public struct Launch {
        public let configuration: Configuration
        public let source: ConfigurationSource
        /// The kernels' events in queue order (packs, GEMM, reduction).
        public let events: [Event]

        /// Device seconds from the start of the first kernel to the end of the last (waits for them).
        public func seconds() throws -> Double { try Event.span(events) }
    }

    public let context: Context
    public let database: TuningDatabase
    public let limits: DeviceLimits

    private struct State {
        var kernels: [String: Kernel] = [:]
        var scratch: [String: DeviceBuffer<Float>] = [:]
    }
    private let state = Mutex(State())

    /// - Parameter database: tuned configurations; by default ``TuningDatabase/forDevice(_:environment:)``.
    public init(context: Context, database: TuningDatabase? = nil) throws {
        self.context = context
        self.database = try database ?? TuningDatabase.forDevice(context.device)
        limits = DeviceLimits(context.device)
    }

    // MARK: Configuration choice

    /// The configuration a call of `problem` would use, and where it came from.
    public func configuration(for problem: GEMMProblem) -> (Configuration, ConfigurationSource) {
        if let (entry, exact) = database.lookup(kernel: "gemm", precision: problem.precision.rawValue, layout: problem.layout.rawValue,
                                                shape: [problem.m, problem.n, problem.k], batch: problem.batch),
           isValid(entry.config, precision: problem.precision) {
            return (entry.config, exact ? .tuned : .nearest)
        }
        let fallback = GEMMDefaults.configurations(for: problem, kind: limits.kind).first { isValid($0, precision: problem.precision) }
        return (fallback ?? GEMMDefaults.safest, .default)
    }

    /// The constraints `configuration` violates on this device for `precision` (empty when valid).
    public func violations(of configuration: Configuration, precision: Precision) -> [String] {
        guard let variant = GEMMVariant(rawValue: configuration.variant) else {
            return ["unknown variant \(configuration.variant) (one of \(GEMMVariant.allCases.map(\.rawValue).joined(separator: ", ")))"]
        }
        return GEMMSpace.space(variant, limits: limits, precision: precision).violations(of: configuration)
    }

    func isValid(_ configuration: Configuration, precision: Precision) -> Bool {
        violations(of: configuration, precision: precision).isEmpty
    }

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
        if let explicit {
            let problems = violations(of: explicit, precision: problem.precision)
            guard problems.isEmpty else {
                throw GEMMError.invalidConfiguration("\(explicit) is not valid on \(context.device.name): " + problems.joined(separator: "; "))
            }
            (configuration, source) = (explicit, .explicit)
        } else {
            (configuration, source) = self.configuration(for: problem)
        }
        let events = try state.withLock { state in
            try enqueue(problem, alpha: alpha, a: a, b: b, beta: beta, c: c, configuration: configuration, state: &state)
        }
        return Launch(configuration: configuration, source: source, events: events)
    }

    /// Runs `C = alpha * op(A) * op(B) + beta * C` on typed buffers; leading dimensions default to the
    /// stored row lengths and batch strides to tightly packed matrices.
    @discardableResult
    public func callAsFunction<Scalar: KernelScalar>(
        _ layout: GEMMLayout = .nn, m: Int, n: Int, k: Int, batch: Int = 1, alpha: Float = 1,
        a: DeviceBuffer<Scalar>, lda: Int? = nil, b: DeviceBuffer<Scalar>, ldb: Int? = nil,
        beta: Float = 0, c: DeviceBuffer<Scalar>, ldc: Int? = nil, configuration: Configuration? = nil
    ) throws -> Launch {
        let problem = GEMMProblem(m: m, n: n, k: k, batch: batch, precision: Scalar.precision, layout: layout)
        let (aRows, aColumns) = problem.storedA
        let (bRows, bColumns) = problem.storedB
        let lda = lda ?? aColumns, ldb = ldb ?? bColumns, ldc = ldc ?? n
        return try run(problem, alpha: alpha,
                       a: MatrixOperand(a, leadingDimension: lda, batchStride: aRows * lda),
                       b: MatrixOperand(b, leadingDimension: ldb, batchStride: bRows * ldb), beta: beta,
                       c: MatrixOperand(c, leadingDimension: ldc, batchStride: m * ldc), configuration: configuration)
    }

    // MARK: Launching

    /// The build options of `configuration` for `problem`: precision, layout and every parameter as `-D`.
    static func buildOptions(_ configuration: Configuration, problem: GEMMProblem) -> String {
        var options = ["-DPRECISION=\(problem.precision.define)", "-DTRANSA=\(problem.layout.transposeA ? 1 : 0)",
                       "-DTRANSB=\(problem.layout.transposeB ? 1 : 0)"]
        options += configuration.values.sorted { $0.key < $1.key }.map { "-D\($0.key)=\($0.value)" }
        return options.joined(separator: " ")
    }

    private func kernel(_ name: String, options: String, state: inout State) throws -> Kernel {
        let key = options + "|" + name
        if let kernel = state.kernels[key] { return kernel }
        let source = try KernelSources.program("gemm")
        let program = try context.programs.program(context, source: source, options: options)
        let kernel = try program.kernel(named: name)
        state.kernels[key] = kernel
        return kernel
    }

    /// A scratch buffer of at least `count` floats for `role`, reused across calls.
    private func scratch(_ role: String, count: Int, state: inout State) throws -> DeviceBuffer<Float> {
        if let buffer = state.scratch[role], buffer.count >= count { return buffer }
        state.scratch[role] = nil
        let buffer = try DeviceBuffer<Float>(context, count: max(count, 1))
        state.scratch[role] = buffer
        return buffer
    }

    /// Releases the scratch buffers (packed panels, split-K partial sums) kept between calls.
    public func releaseScratch() { state.withLock { $0.scratch.removeAll() } }

    private func enqueue(_ p: GEMMProblem, alpha: Float, a: MatrixOperand, b: MatrixOperand, beta: Float, c: MatrixOperand,
                         configuration: Configuration, state: inout State) throws -> [Event] {
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
            let kernel = try self.kernel("gemm_direct", options: options, state: &state)
            return [try kernel.launch(on: queue, global: global, local: [ln, lm, 1],
                                      arguments: head + operands(a) + operands(b) + operands(c))]
        case .xgemm:
            let (mwg, nwg, mdimc, ndimc, ksplit) = (v["MWG"]!, v["NWG"]!, v["MDIMC"]!, v["NDIMC"]!, v["KSPLIT"]!)
            let partial = try scratch("partial", count: ksplit > 1 ? batch * ksplit * p.m * p.n : 1, state: &state)
            let global = [ceilDiv(p.n, nwg) * ndimc, ceilDiv(p.m, mwg) * mdimc, batch * ksplit]
            let kernel = try self.kernel("xgemm", options: options, state: &state)
            var events = [try kernel.launch(on: queue, global: global, local: [ndimc, mdimc, 1],
                                            arguments: head + operands(a) + operands(b) + operands(c) + [partial])]
            if ksplit > 1 {
                let reduce = try self.kernel("gemm_splitk_reduce", options: options, state: &state)
                events.append(try reduce.launch(on: queue, global: [roundUp(p.n, 16), p.m, batch], local: [16, 1, 1],
                                                arguments: [m, n, beta, partial] + operands(c)))
            }
            return events
        case .packed:
            let (mr, nr, tm, tn, plm, pln) = (v["MR"]!, v["NR"]!, v["TM"]!, v["TN"]!, v["PLM"]!, v["PLN"]!)
            let (mp, np) = (roundUp(p.m, mr), roundUp(p.n, nr))
            let ap = try scratch("packedA", count: batch * mp * p.k, state: &state)
            let bp = try scratch("packedB", count: batch * np * p.k, state: &state)
            let packA = try self.kernel("pack_a", options: options, state: &state)
            let packB = try self.kernel("pack_b", options: options, state: &state)
            let gemm = try self.kernel("gemm_packed", options: options, state: &state)
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

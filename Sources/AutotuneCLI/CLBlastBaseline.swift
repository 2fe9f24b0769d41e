import Autotuning
import CCLBlast
import Dispatch
import OpenCLRuntime
import TunedKernels


/// CLBlast's GEMM on the same device buffers, as the OpenCL baseline of `bench gemm`.
enum CLBlastBaseline {
    /// Registers CLBlast as a baseline of `bench gemm` (the CLI links CLBlast; the library does not).
    static func register() {
        BaselineRegistry.register(GEMM.self, name: "clblast") { harness, _ in baselines(harness) }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `clblast` on the harness's own buffers (HGEMM for half, which a device without fp16 refuses), and for
    /// half also `clblast-sgemm`: SGEMM on the same values widened to fp32, the OpenCL baseline where HGEMM is
    /// refused. Each poisons its output first and is checked against the reference.
    static func baselines(_ harness: GEMMHarness) -> [Baseline] {
        let problem = harness.problem
        var rows = [Baseline(name: "clblast") { repetitions in
            try harness.reset()
            let seconds = try Self.seconds(problem, a: harness.a, b: harness.b, c: harness.c, queue: harness.context.queue, repetitions: repetitions)
            return Baseline.Result(seconds: seconds, check: try harness.check())
        }]
        if problem.precision == .half {
            var widened: (MatrixOperand, MatrixOperand, MatrixOperand)?
            rows.append(Baseline(name: "clblast-sgemm") { repetitions in
                let context = harness.context
                if widened == nil {
                    widened = (MatrixOperand(try DeviceBuffer<Float>(context, harness.hostA), leadingDimension: harness.a.leadingDimension, batchStride: harness.a.batchStride),
                               MatrixOperand(try DeviceBuffer<Float>(context, harness.hostB), leadingDimension: harness.b.leadingDimension, batchStride: harness.b.batchStride),
                               MatrixOperand(try DeviceBuffer<Float>(context, count: harness.reference.count), leadingDimension: problem.n, batchStride: problem.m * problem.n))
                }
                let (a, b, c) = widened!
                try (c.buffer as! DeviceBuffer<Float>).fill(.nan)
                var single = problem
                single.precision = .single
                let seconds = try Self.seconds(single, a: a, b: b, c: c, queue: context.queue, repetitions: repetitions)
                return Baseline.Result(seconds: seconds, check: try harness.check(buffer: c.buffer))
            })
        }
        return rows
    }

    /// Runs CLBlast `Sgemm` (or `Hgemm` for half buffers) once per batch; returns the median
    /// wall-clock seconds of `repetitions` calls after one warm-up (which compiles CLBlast's kernels).
    static func seconds(_ problem: GEMMProblem, a: MatrixOperand, b: MatrixOperand, c: MatrixOperand,
                        queue: CommandQueue, repetitions: Int) throws -> Double {
        func call() throws {
            var rawQueue: cl_command_queue? = queue.rawHandle
            for batch in 0..<problem.batch {
                let transA = problem.layout.transposeA ? CLBlastTransposeYes : CLBlastTransposeNo
                let transB = problem.layout.transposeB ? CLBlastTransposeYes : CLBlastTransposeNo
                let offsets = [a, b, c].map { $0.offset + batch * $0.batchStride }
                let status: CLBlastStatusCode
                if a.buffer is DeviceBuffer<Float16> {
                    // Asked anyway, CLBlast would refuse with CLBlastNoHalfPrecision and print a line of its own.
                    guard a.buffer.context.device.supportsHalf else {
                        throw Failure(description: "CLBlast Hgemm needs cl_khr_fp16, which the device lacks (status \(CLBlastNoHalfPrecision.rawValue), CLBlastNoHalfPrecision)")
                    }
                    let one: cl_half = 0x3C00, zero: cl_half = 0
                    status = CLBlastHgemm(CLBlastLayoutRowMajor, transA, transB, problem.m, problem.n, problem.k, one,
                                          a.buffer.memoryHandle, offsets[0], a.leadingDimension,
                                          b.buffer.memoryHandle, offsets[1], b.leadingDimension, zero,
                                          c.buffer.memoryHandle, offsets[2], c.leadingDimension, &rawQueue, nil)
                } else {
                    status = CLBlastSgemm(CLBlastLayoutRowMajor, transA, transB, problem.m, problem.n, problem.k, 1,
                                          a.buffer.memoryHandle, offsets[0], a.leadingDimension,
                                          b.buffer.memoryHandle, offsets[1], b.leadingDimension, 0,
                                          c.buffer.memoryHandle, offsets[2], c.leadingDimension, &rawQueue, nil)
                }
                guard status == CLBlastSuccess else {
                    throw Failure(description: "CLBlast \(a.buffer is DeviceBuffer<Float16> ? "Hgemm" : "Sgemm") returned status \(status.rawValue)\(explanation(status.rawValue))")
                }
            }
            try queue.finish()
        }
        try call()
        var times: [Double] = []
        for _ in 0..<max(repetitions, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            try call()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return median(times)
    }

    private static func explanation(_ code: Int32) -> String {
        switch code {
        case CLBlastNoHalfPrecision.rawValue: " (CLBlastNoHalfPrecision: the device lacks cl_khr_fp16)"
        case CLBlastNoDoublePrecision.rawValue: " (CLBlastNoDoublePrecision)"
        case -11: " (CL_BUILD_PROGRAM_FAILURE)"
        default: ""
        }
    }
}

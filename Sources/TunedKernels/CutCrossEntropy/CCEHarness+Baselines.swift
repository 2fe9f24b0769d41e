import Autotuning
import CBLAS
import Foundation
import OpenCLRuntime

extension CCEHarness {
    /// The bytes the task itself needs on the device: E, C, the bias, the targets, their gradients and the LSE.
    /// A path's extra memory is its peak beyond these.
    public var baseDeviceBytes: Int {
        let storage = problem.precision.bytes
        let inputs = (problem.tokens + problem.vocab) * problem.dim * storage + (problem.bias ? problem.vocab * storage : 0)
        return 2 * inputs + problem.tokens * 4 + problem.rows * 4
    }

    /// The fraction of gradient tiles skipped by the last launch, and the extra device memory of the measured runs.
    public func metrics() throws -> [String: Double] {
        var metrics = ["extra_device_bytes": Double(max(0, context.memory.peakBytes - baseDeviceBytes))]
        // A forward alone skips nothing: the decisions are the last backward's, of another launch.
        if lastRole != "forward", let skipped = try family.lastSkippedFraction() { metrics["skipped_tile_fraction"] = skipped }
        return metrics
    }

    /// `materialized`: the N x V logits in device memory, from our tuned GEMM (E Cᵀ), a log-softmax kernel (LSE,
    /// loss), G in place, then two GEMMs (G C, Gᵀ E); fp16 storage runs fp16 GEMMs, fp32 and bfloat16 (which the
    /// GEMM does not store) fp32 GEMMs on fp32 copies made once, outside the timing. `openblas`: the same on the
    /// host in fp32 with OpenBLAS SGEMM.
    public func baselines() -> [Baseline] {
        [Baseline(name: "materialized") { repetitions in try self.materialized(repetitions: repetitions) },
         Baseline(name: "openblas") { repetitions in self.openBLAS(repetitions: repetitions) }]
    }

    func materialized(repetitions: Int) throws -> Baseline.Result {
        let gemm = try GEMM(context: context)
        let precision: ElementFormat = problem.precision == .half ? .half : .single
        let (rows, v, d) = (problem.rows, problem.vocab, problem.dim)
        // Operands in the GEMM's precision (copies only for bfloat16).
        let floats = problem.precision == .bfloat16
        let e = floats ? try DeviceTensor(context, inputs.embeddings.map(Float.init), format: .single) : self.e
        let c = floats ? try DeviceTensor(context, inputs.classifier.map(Float.init), format: .single) : self.c
        let bias = try self.bias.map { floats ? try DeviceTensor(context, inputs.bias.map(Float.init), format: .single) : $0 }
        let de = floats ? try DeviceTensor(context, format: .single, shape: [problem.tokens * d]) : dE
        let dc = floats ? try DeviceTensor(context, format: .single, shape: [v * d]) : dC
        let db = try dBias.map { floats ? try DeviceTensor(context, format: .single, shape: [v]) : $0 }
        // The materialized path reads the targets as given, in the vocabulary's own order.
        var unordered = problem
        unordered.sortVocabulary = false
        var options = family.utilityOptions(unordered)
        if floats { options = options.replacingOccurrences(of: "-DPRECISION=0xBF16", with: "-DPRECISION=32") }
        let lse = try DeviceBuffer<Float>(context, count: rows), losses = try DeviceBuffer<Float>(context, count: rows)
        let total = try DeviceBuffer<Float>(context, count: 1), valid = try DeviceBuffer<Int32>(context, count: 1)
        let mode = Int32(problem.reduction == .mean ? 0 : problem.reduction == .sum ? 1 : 2)
        func kernel(_ name: String) throws -> Kernel { try family.core.kernel(name, options: options) }
        let argument: (any AnyDeviceBuffer) throws -> any KernelArgument = family.argument
        context.memory.resetPeak()
        func step() throws {
            let z = try DeviceTensor(context, format: floats ? .single : problem.precision, shape: [rows * v], poisoned: false).buffer
            let queue = context.queue
            try gemm.run(GEMMProblem(m: rows, n: v, k: d, precision: precision, layout: .nt),
                         a: MatrixOperand(e.buffer, leadingDimension: d), b: MatrixOperand(c.buffer, leadingDimension: d), c: MatrixOperand(z, leadingDimension: v))
            try family.core.serialized {
                let (r, vv) = (Int32(rows), Int32(v))
                _ = try kernel("cce_mat_forward").launch(on: queue, global: [rows * 64], local: [64],
                                                          arguments: [r, vv, argument(z), argument((bias ?? e).buffer), targets, lse, losses])
                _ = try kernel("cce_reduce").launch(on: queue, global: [64], local: [64],
                                                     arguments: [r, Int32(mode == 0 ? 1 : 0), losses, targets, total, valid])
                _ = try kernel("cce_mat_backward").launch(on: queue, global: [rows * 64], local: [64],
                                                           arguments: [r, vv, argument(z), targets, lse, grad, mode, valid])
                if let db { _ = try kernel("cce_mat_colsum").launch(on: queue, global: [roundUp(v, 64)], local: [64], arguments: [r, vv, argument(z), argument(db.buffer)]) }
            }
            if problem.shift { try de.fill(0) }
            try gemm.run(GEMMProblem(m: rows, n: d, k: v, precision: precision, layout: .nn),
                         a: MatrixOperand(z, leadingDimension: v), b: MatrixOperand(c.buffer, leadingDimension: d), c: MatrixOperand(de.buffer, leadingDimension: d))
            try gemm.run(GEMMProblem(m: v, n: d, k: rows, precision: precision, layout: .tn),
                         a: MatrixOperand(z, leadingDimension: v), b: MatrixOperand(e.buffer, leadingDimension: d), c: MatrixOperand(dc.buffer, leadingDimension: d))
            try queue.finish()
        }
        try step()  // warm-up: builds the kernels
        try reset()
        let seconds = try Self.medianTime(repetitions: repetitions) { try step() }
        let peak = context.memory.peakBytes
        let check = check(total: try total.download(count: 1)[0], lse: try lse.download(), losses: try losses.download(),
                          dE: try de.download(), dC: try dc.download(), dBias: try db?.download(), filtered: false)
        return Baseline.Result(seconds: seconds, check: check, peakDeviceBytes: peak,
                               metrics: ["extra_device_bytes": Double(max(0, peak - baseDeviceBytes))])
    }

    /// The same on the host: SGEMM logits (fp32, N x V), a log-softmax and G in place, two SGEMMs.
    func openBLAS(repetitions: Int) -> Baseline.Result {
        let (rows, v, d) = (problem.rows, problem.vocab, problem.dim)
        let e = inputs.embeddings.map(Float.init), c = inputs.classifier.map(Float.init), bias = inputs.bias.map(Float.init)
        var z = [Float](repeating: 0, count: rows * v)
        var lse = [Float](repeating: 0, count: rows), losses = [Float](repeating: 0, count: rows)
        var de = [Float](repeating: 0, count: problem.tokens * d), dc = [Float](repeating: 0, count: v * d)
        var db = [Float](repeating: 0, count: bias.isEmpty ? 0 : v)
        var total: Float = 0
        let (eps, cap, w) = (Float(problem.labelSmoothing), Float(problem.softcap), Float(problem.zLoss))
        func step() {
            e.withUnsafeBufferPointer { ep in c.withUnsafeBufferPointer { cp in z.withUnsafeMutableBufferPointer { zp in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(v), Int32(d), 1,
                            ep.baseAddress!, Int32(d), cp.baseAddress!, Int32(d), 0, zp.baseAddress!, Int32(v))
            } } }
            var valid = 0
            var sum: Float = 0
            for i in 0..<rows {
                let t = Int(inputs.targets[problem.shift ? i + 1 : i])
                var m = -Float.infinity, zsum: Float = 0
                for j in 0..<v {
                    var x = z[i * v + j] + (bias.isEmpty ? 0 : bias[j])
                    if cap > 0 { x = cap * tanh(x / cap) }
                    z[i * v + j] = x
                    m = max(m, x)
                    zsum += x
                }
                var s: Float = 0
                for j in 0..<v { s += exp(z[i * v + j] - m) }
                let lg = log(s)
                lse[i] = m + lg
                if t != problem.ignoreIndex {
                    valid += 1
                    losses[i] = (1 - eps) * (m - z[i * v + t]) + eps * (m - zsum / Float(v)) + lg + w * lse[i] * lse[i]
                    sum += losses[i]
                } else {
                    losses[i] = 0
                }
            }
            total = problem.reduction == .mean ? (valid > 0 ? sum / Float(valid) : 0) : sum
            for i in 0..<rows {
                let t = Int(inputs.targets[problem.shift ? i + 1 : i])
                let g: Float = t == problem.ignoreIndex ? 0 : problem.reduction == .mean ? (valid > 0 ? gradOutput[0] / Float(valid) : 0)
                    : problem.reduction == .sum ? gradOutput[0] : gradOutput[i]
                let zs = 1 + 2 * w * lse[i]
                for j in 0..<v {
                    let x = z[i * v + j]
                    var dz = exp(x - lse[i]) * zs - eps / Float(v) - (j == t ? 1 - eps : 0)
                    if cap > 0 { dz *= 1 - (x / cap) * (x / cap) }
                    z[i * v + j] = g * dz
                }
            }
            z.withUnsafeBufferPointer { zp in
                c.withUnsafeBufferPointer { cp in de.withUnsafeMutableBufferPointer { out in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(v), 1,
                                zp.baseAddress!, Int32(v), cp.baseAddress!, Int32(d), 0, out.baseAddress!, Int32(d))
                } }
                e.withUnsafeBufferPointer { ep in dc.withUnsafeMutableBufferPointer { out in
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(v), Int32(d), Int32(rows), 1,
                                zp.baseAddress!, Int32(v), ep.baseAddress!, Int32(d), 0, out.baseAddress!, Int32(d))
                } }
            }
            if !db.isEmpty {
                for j in 0..<v { db[j] = 0 }
                for i in 0..<rows { for j in 0..<v { db[j] += z[i * v + j] } }
            }
        }
        context.memory.resetPeak()
        step()
        let seconds = Self.medianTime(repetitions: repetitions) { step() }
        // On the host: the device holds only the harness's inputs and outputs meanwhile (no extra device bytes);
        // the logits (then G) take rows x V floats of host memory.
        return Baseline.Result(seconds: seconds, check: check(total: total, lse: lse, losses: losses, dE: de, dC: dc,
                                                              dBias: db.isEmpty ? nil : db, filtered: false),
                               peakDeviceBytes: context.memory.peakBytes,
                               metrics: ["extra_device_bytes": Double(max(0, context.memory.peakBytes - baseDeviceBytes)),
                                         "host_logits_bytes": Double(rows * v * 4)],
                               labels: Baseline.Result.openBLASLabels)
    }
}

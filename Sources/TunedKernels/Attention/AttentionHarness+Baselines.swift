import Autotuning
import Foundation
import OpenCLRuntime

extension AttentionHarness {
    /// The bytes the task itself needs on the device: Q, K, V, O, dO, the gradients, the LSE and the map.
    public var baseDeviceBytes: Int {
        let storage = problem.precision.bytes
        let q = problem.queryRows * problem.dim * storage, kv = problem.batch * problem.keyHeads * problem.keys * problem.dim * storage
        return 4 * q + 4 * kv + problem.queryRows * 4 + (map?.count ?? 0)
    }

    /// The extra device memory of the measured runs.
    public func metrics() throws -> [String: Double] {
        ["extra_device_bytes": Double(max(0, context.memory.peakBytes - baseDeviceBytes))]
    }

    public func baselines() -> [Baseline] { baselines(role: nil) }

    /// `materialized`: the scores in device memory — our GEMM for Q Kᵀ, a masked softmax kernel, our GEMM for P V; the
    /// backward from the kept P: GEMMs for dV = Pᵀ dO and dP = dO Vᵀ, a softmax-gradient kernel, GEMMs for dQ = dS K and
    /// dK = dSᵀ Q (fp16 storage runs fp16 GEMMs; fp32 and bfloat16, which the GEMM does not store, fp32 GEMMs on fp32
    /// copies made once). `dense` (block-sparse problems): our dense kernels on the same data (not checked: its
    /// result is dense attention's). `stream-read` (decoding shapes): the device's streaming read of the bytes one
    /// forward moves.
    public func baselines(role: String?) -> [Baseline] {
        var list = [Baseline(name: "materialized") { repetitions in try self.materialized(role: role, repetitions: repetitions) }]
        if problem.mode == .blockSparse {
            list.append(Baseline(name: "dense") { repetitions in try self.dense(role: role, repetitions: repetitions) })
        }
        // Decoding (a few query rows per key/value head) is memory-bound: the device's tuned streaming read of the
        // bytes a forward moves is the time it cannot beat.
        if role != "backward", problem.seq * problem.group <= 16 {
            let bytes = Attention.work(problem).bytes
            var bandwidth: Bandwidth?
            list.append(Baseline(name: "stream-read") { repetitions in
                if bandwidth == nil { bandwidth = try Bandwidth(context: self.context) }
                return Baseline.Result(seconds: try bandwidth!.streamingReadSeconds(bytes: bytes, repetitions: repetitions), check: nil,
                                       work: Work(flops: 0, bytes: bytes))
            })
        }
        return list
    }

    func materialized(role: String?, repetitions: Int) throws -> Baseline.Result {
        let gemm = try GEMM(context: context)
        let floats = problem.precision == .bfloat16
        let precision: ElementFormat = problem.precision == .half ? .half : .single
        let (b, hk, lq, lk, d, g) = (problem.batch, problem.keyHeads, problem.seq, problem.keys, problem.dim, problem.group)
        let (groups, rows, nrows) = (b * hk, g * lq, problem.queryRows)
        func copy(_ values: [Double], _ tensor: DeviceTensor) throws -> DeviceTensor {
            floats ? try DeviceTensor(context, values.map(Float.init), format: .single) : tensor
        }
        func output(_ tensor: DeviceTensor) throws -> DeviceTensor {
            floats ? try DeviceTensor(context, format: .single, shape: tensor.shape) : tensor
        }
        let (q, k, v, dO) = (try copy(inputs.q, self.q), try copy(inputs.k, self.k), try copy(inputs.v, self.v), try copy(inputs.dO, self.dO))
        let (o, dQ, dK, dV) = (try output(self.o), try output(self.dQ), try output(self.dK), try output(self.dV))
        let lse = try DeviceBuffer<Float>(context, count: nrows)
        var options = family.utilityOptions(problem)
        if floats { options = options.replacingOccurrences(of: "-DPRECISION=0xBF16", with: "-DPRECISION=32") }
        let softmax = try family.core.kernel("attn_mat_softmax", options: options)
        let dsoftmax = try family.core.kernel("attn_mat_dsoftmax", options: options)
        let (nqb, nkb) = problem.mapBlocks
        let backward = role != "forward", forward = role != "backward"
        context.memory.resetPeak()
        let p = try DeviceTensor(context, format: precision, shape: [nrows * lk], poisoned: false)
        let dp = backward ? try DeviceTensor(context, format: precision, shape: [nrows * lk], poisoned: false) : nil
        func matrix(_ tensor: DeviceTensor, columns: Int, rows: Int) -> MatrixOperand {
            MatrixOperand(tensor.buffer, leadingDimension: columns, batchStride: rows * columns)
        }
        func gemmProblem(_ m: Int, _ n: Int, _ k: Int, _ layout: GEMMLayout) -> GEMMProblem {
            GEMMProblem(m: m, n: n, k: k, batch: groups, precision: precision, layout: layout)
        }
        func runForward() throws {
            try gemm.run(gemmProblem(rows, lk, d, .nt), a: matrix(q, columns: d, rows: rows), b: matrix(k, columns: d, rows: lk), c: matrix(p, columns: lk, rows: rows))
            try family.core.serialized {
                _ = try softmax.launch(on: context.queue, global: [roundUp(nrows, 64)], local: [64],
                                       arguments: [Int32(nrows), Int32(lq), Int32(lk), try family.argument(p.buffer), lse, map ?? lse, Int32(nqb), Int32(nkb)])
            }
            try gemm.run(gemmProblem(rows, d, lk, .nn), a: matrix(p, columns: lk, rows: rows), b: matrix(v, columns: d, rows: lk), c: matrix(o, columns: d, rows: rows))
        }
        func runBackward() throws {
            guard let dp else { return }
            try gemm.run(gemmProblem(lk, d, rows, .tn), a: matrix(p, columns: lk, rows: rows), b: matrix(dO, columns: d, rows: rows), c: matrix(dV, columns: d, rows: lk))
            try gemm.run(gemmProblem(rows, lk, d, .nt), a: matrix(dO, columns: d, rows: rows), b: matrix(v, columns: d, rows: lk), c: matrix(dp, columns: lk, rows: rows))
            try family.core.serialized {
                _ = try dsoftmax.launch(on: context.queue, global: [roundUp(nrows, 64)], local: [64],
                                        arguments: [Int32(nrows), Int32(lk), try family.argument(p.buffer), try family.argument(dp.buffer), lse])
            }
            try gemm.run(gemmProblem(rows, d, lk, .nn), a: matrix(dp, columns: lk, rows: rows), b: matrix(k, columns: d, rows: lk), c: matrix(dQ, columns: d, rows: rows))
            try gemm.run(gemmProblem(lk, d, rows, .tn), a: matrix(dp, columns: lk, rows: rows), b: matrix(q, columns: d, rows: rows), c: matrix(dK, columns: d, rows: lk))
        }
        let times = try timedSteps(role: role, repetitions: repetitions, runForward: runForward, runBackward: runBackward)
        let peak = context.memory.peakBytes
        var parts: [String: Check] = [:]
        if forward {
            parts["o"] = Self.check(try o.download(), reference.o, precision: problem.precision)
            parts["lse"] = Self.checkLSE(try lse.download(), reference.lse)
        }
        if backward {
            let gradients = referenceGradients
            parts["dQ"] = Self.check(try dQ.download(), gradients.dQ, precision: problem.precision)
            parts["dK"] = Self.check(try dK.download(), gradients.dK, precision: problem.precision)
            parts["dV"] = Self.check(try dV.download(), gradients.dV, precision: problem.precision)
        }
        return Baseline.Result(seconds: median(times), check: Check(parts: parts), peakDeviceBytes: peak,
                               metrics: ["extra_device_bytes": Double(max(0, peak - baseDeviceBytes))])
    }

    func dense(role: String?, repetitions: Int) throws -> Baseline.Result {
        var dense = problem
        dense.mode = .dense
        let format = problem.precision
        let (o, dQ, dK, dV) = (try DeviceTensor(context, format: format, shape: self.o.shape), try DeviceTensor(context, format: format, shape: self.dQ.shape),
                               try DeviceTensor(context, format: format, shape: self.dK.shape), try DeviceTensor(context, format: format, shape: self.dV.shape))
        let lse = try DeviceBuffer<Float>(context, count: problem.queryRows)
        var saved: Attention.Saved?
        func runForward() throws {
            saved = try family.forward(dense, q: operand(q), k: operand(k), v: operand(v), o: AttentionOperand(o), lse: lse, checkInputs: false)
        }
        func runBackward() throws {
            try family.backward(dense, q: operand(q), k: operand(k), v: operand(v), forward: saved!, dO: operand(dO), dQ: AttentionOperand(dQ),
                                dK: AttentionOperand(dK), dV: AttentionOperand(dV), checkInputs: false)
        }
        context.memory.resetPeak()
        let times = try timedSteps(role: role, repetitions: repetitions, runForward: runForward, runBackward: runBackward)
        return Baseline.Result(seconds: median(times), check: nil, peakDeviceBytes: context.memory.peakBytes,
                               labels: ["note": "dense attention on the same data (not checked against the block-sparse reference)"])
    }

    /// Wall-clock seconds of `repetitions` calls of `role` (nil: a forward then a backward), after one warm-up call
    /// that builds the kernels; a backward alone gets a fresh forward before each call, untimed.
    private func timedSteps(role: String?, repetitions: Int, runForward: () throws -> Void, runBackward: () throws -> Void) throws -> [Double] {
        let forward = role != "backward", backward = role != "forward"
        func step() throws {
            if forward { try runForward() }
            if backward { try runBackward() }
            try context.queue.finish()
        }
        var times: [Double] = []
        for repetition in -1..<max(repetitions, 1) {
            if !forward {
                try runForward()
                try context.queue.finish()
            }
            let seconds = try Self.time { try step() }
            if repetition >= 0 { times.append(seconds) }
        }
        return times
    }
}

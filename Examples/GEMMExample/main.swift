// The README's example: one HGEMM on the selected device, checked against a plain loop.
import OpenCLRuntime
import TunedKernels

let (m, n, k) = (64, 48, 100)
let hostA = (0..<m * k).map { Float16(Float($0 % 7) * 0.25) }
let hostB = (0..<k * n).map { Float16(Float($0 % 5) * 0.5 - 1) }

let context = try Context()                          // TUNEDKERNELS_DEVICE, else the first GPU, else the first device
let gemm = try GEMM(context: context)                // tuned configurations for this device
let a = try DeviceBuffer<Float16>(context, hostA)    // M x K, row-major
let b = try DeviceBuffer<Float16>(context, hostB)    // K x N
let c = try DeviceBuffer<Float16>(context, count: m * n)
let launch = try gemm(m: m, n: n, k: k, a: a, b: b, c: c)   // C = A * B, fp32 accumulation
let result = try c.download()

var worst: Float = 0
for i in 0..<m {
    for j in 0..<n {
        var sum: Float = 0
        for p in 0..<k { sum += Float(hostA[i * k + p]) * Float(hostB[p * n + j]) }
        worst = max(worst, abs(Float(result[i * n + j]) - sum) / max(1, abs(sum)))
    }
}
print("HGEMM \(m)x\(n)x\(k) on \(context.device.name) with \(launch.configuration) (\(launch.source.rawValue)): max relative error \(worst)")
if worst > 1e-3 { fatalError("GEMM example result is wrong") }

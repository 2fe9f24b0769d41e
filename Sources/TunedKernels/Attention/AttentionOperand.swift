import OpenCLRuntime

/// One attention tensor (Q, K, V, O or a gradient) in a device buffer: `[batch, heads, rows, dim]` elements of its
/// format, each row contiguous along `dim`, placed by an offset and the strides (in elements) of a batch, a head and
/// a row. By default contiguous and row-major; strides give other layouts without a copy, e.g. `[B, L, H, D]`
/// (PyTorch's `(batch, seq, heads, dim)`): `strides: (batch: L * H * D, head: D, row: H * D)`.
public struct AttentionOperand: Sendable {
    public var tensor: DeviceTensor
    /// The element of [0, 0, 0, 0].
    public var offset: Int
    /// Elements between consecutive batches, heads and rows.
    public var strides: (batch: Int, head: Int, row: Int)?

    public init(_ tensor: DeviceTensor, offset: Int = 0, strides: (batch: Int, head: Int, row: Int)? = nil) {
        self.tensor = tensor
        self.offset = offset
        self.strides = strides
    }

    public var buffer: any AnyDeviceBuffer { tensor.buffer }
    public var format: ElementFormat { tensor.format }

    /// The strides in effect for `heads` x `rows` x `dim` per batch (the contiguous ones when none were given).
    func resolvedStrides(heads: Int, rows: Int, dim: Int) -> (batch: Int, head: Int, row: Int) {
        strides ?? (heads * rows * dim, rows * dim, dim)
    }

    /// The placement as the kernels read it (a `long4`: offset, batch, head and row strides).
    func placement(heads: Int, rows: Int, dim: Int) -> TensorPlacement {
        let s = resolvedStrides(heads: heads, rows: rows, dim: dim)
        return TensorPlacement(offset: Int64(offset), batch: Int64(s.batch), head: Int64(s.head), row: Int64(s.row))
    }

    /// Why this operand cannot hold `[batch, heads, rows, dim]` of `format` (nil when it can): the format, the
    /// context, negative strides, an element beyond the buffer, and for an output, two elements at one place.
    func refusal(named name: String, batch: Int, heads: Int, rows: Int, dim: Int, format: ElementFormat, context: Context,
                 output: Bool) -> String? {
        guard tensor.format == format else {
            return "\(name) is a \(tensor.format) tensor; the problem's storage is \(format) (\(format.storageTypeName) elements)"
        }
        guard tensor.buffer.context === context else { return "\(name) belongs to another context" }
        let s = resolvedStrides(heads: heads, rows: rows, dim: dim)
        guard offset >= 0, s.batch >= 0, s.head >= 0, s.row >= 0 else {
            return "\(name): the offset and strides must be at least 0, got offset \(offset), strides \(s)"
        }
        // The last element: offset + (B-1) sb + (H-1) sh + (L-1) sr + D - 1, overflow-checked.
        let terms = [(batch - 1, s.batch), (heads - 1, s.head), (rows - 1, s.row)]
        var end = offset + dim
        for (count, stride) in terms {
            let (product, o1) = count.multipliedReportingOverflow(by: stride)
            let (sum, o2) = end.addingReportingOverflow(product)
            if o1 || o2 { return "\(name): its strides reach beyond any buffer" }
            end = sum
        }
        guard end <= tensor.count else {
            return "\(name) holds \(tensor.count) elements; [\(batch), \(heads), \(rows), \(dim)] at offset \(offset) with strides "
                + "(batch \(s.batch), head \(s.head), row \(s.row)) reaches element \(end - 1)"
        }
        if output {
            // Distinct elements: the dimensions by increasing stride, each stride at least the extent below it.
            var extent = dim
            for (count, stride) in terms.filter({ $0.0 > 0 }).sorted(by: { $0.1 < $1.1 }) {
                guard stride >= extent else {
                    return "\(name): its strides (batch \(s.batch), head \(s.head), row \(s.row)) place two elements at one place; an output needs each its own"
                }
                extent = stride * (count + 1)
            }
        }
        return nil
    }
}

/// A tensor's place as a kernel argument: OpenCL's `long4` (offset, batch, head and row strides in elements).
struct TensorPlacement: KernelArgument, BitwiseCopyable {
    var offset: Int64
    var batch: Int64
    var head: Int64
    var row: Int64
}

import Foundation

/// Dense attention, or attention restricted to the blocks a block map selects.
public enum AttentionMode: String, Codable, Sendable, CaseIterable {
    /// Every key (within the causal and window masks).
    case dense
    /// Only the (query block, key block) pairs the block map selects: exactly dense attention with -inf outside them.
    case blockSparse = "block-sparse"
}

/// An attention problem: `O = softmax(mask(softcap(scale Q Kᵀ))) V` per batch and query head, as FlashAttention-2
/// defines it, with the log-sum-exp of each row saved for the backward.
///
/// Q and O are `[batch, heads, seq, dim]`, K and V `[batch, kvHeads, kvSeq, dim]`; query head `h` reads key/value head
/// `h / (heads / kvHeads)` (GQA; `kvHeads` 1 is MQA). Causal and window masks are aligned bottom-right when
/// `seq != kvSeq` (query row `i` sits at key position `i + kvSeq - seq`), as FlashAttention-2 aligns them.
public struct AttentionProblem: Hashable, TabulatedProblem, CustomStringConvertible {
    public var batch: Int
    /// Query heads (Hq).
    public var heads: Int
    /// Key/value heads (Hkv, dividing Hq); 0: as many as the query heads.
    public var kvHeads: Int
    /// Query rows per head (Lq).
    public var seq: Int
    /// Key rows per head (Lk); 0: as many as the query rows.
    public var kvSeq: Int
    /// The head dimension D (1 to 256).
    public var dim: Int
    public var precision: ElementFormat
    /// Key j is hidden from query row i when j > i + kvSeq - seq.
    public var causal: Bool
    /// The sliding window `"L,R"`: query row i sees keys [i + off - L, i + off + R] (off = kvSeq - seq; -1: unbounded
    /// on that side); `""`: none.
    public var window: String
    /// `cap * tanh(s / cap)` on the scaled scores when above 0 (Gemma 2).
    public var softcap: Double
    /// The scores' scale; 0: 1/sqrt(dim).
    public var scale: Double
    public var mode: AttentionMode
    /// The block map's query and key block sizes (block-sparse: multiples of 16 up to 128).
    public var block: Int
    /// Benchmarks' maps (block-sparse): each query block selects a seeded random `1 - sparsity` of its key blocks
    /// (at least one). Not part of the tuning key.
    public var sparsity: Double

    public init(batch: Int = 1, heads: Int, kvHeads: Int = 0, seq: Int, kvSeq: Int = 0, dim: Int, precision: ElementFormat = .half,
                causal: Bool = false, window: String = "", softcap: Double = 0, scale: Double = 0, mode: AttentionMode = .dense,
                block: Int = 64, sparsity: Double = 0.5) {
        self.batch = batch
        self.heads = heads
        self.kvHeads = kvHeads
        self.seq = seq
        self.kvSeq = kvSeq
        self.dim = dim
        self.precision = precision
        self.causal = causal
        self.window = window
        self.softcap = softcap
        self.scale = scale
        self.mode = mode
        self.block = block
        self.sparsity = sparsity
    }

    /// The options of `autotune ... attention` and the JSON keys of the problem.
    public static let table = ProblemTable(defaults: AttentionProblem(heads: 8, seq: 1, dim: 64)) {
        $0.integer("batch", \.batch, help: "B: sequences per call.")
        $0.integer("heads", \.heads, help: "Hq: query heads.")
        $0.integer("kv-heads", \.kvHeads, help: "Hkv: key/value heads, dividing Hq (GQA; 1 is MQA); 0: as many as Hq.")
        $0.integer("seq", \.seq, help: "Lq: query rows per head.", required: true, primary: true)
        $0.integer("kv-seq", \.kvSeq, help: "Lk: key rows per head; 0: as many as Lq.")
        $0.integer("dim", \.dim, help: "D: the head dimension, 1 to 256.")
        $0.format("precision", \.precision, Attention.formats, help: "Storage of Q, K, V, O and the gradients (fp32 accumulation).")
        $0.flag("causal", \.causal, help: "Causal mask, aligned bottom-right when Lq != Lk.")
        $0.text("window", \.window, help: "Sliding window L,R: row i sees keys [i+off-L, i+off+R], off = Lk-Lq (-1: unbounded side).")
        $0.number("softcap", \.softcap, help: "cap * tanh(s / cap) on the scaled scores (0: none).")
        $0.number("scale", \.scale, help: "The scores' scale (0: 1/sqrt(D)).")
        $0.choice("mode", \.mode, help: "dense, or block-sparse (a block map selects (query block, key block) pairs).")
        $0.integer("block", \.block, help: "The block map's block size along queries and keys (a multiple of 16 up to 128).")
        $0.number("sparsity", \.sparsity, help: "Block-sparse benchmarks: the fraction of key blocks each query block leaves out (seeded).")
    }

    /// Hkv in effect.
    public var keyHeads: Int { kvHeads == 0 ? heads : kvHeads }
    /// Lk in effect.
    public var keys: Int { kvSeq == 0 ? seq : kvSeq }
    /// Query heads per key/value head.
    public var group: Int { heads / max(keyHeads, 1) }
    /// The scale in effect.
    public var effectiveScale: Double { scale == 0 ? 1 / Double(dim).squareRoot() : scale }

    /// The window's (left, right) bounds (-1: unbounded), nil for none, or an error for a malformed one.
    public var windowBounds: Result<(left: Int, right: Int)?, ProblemError> {
        let text = window.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text == "none" { return .success(nil) }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let left = parts[0], let right = parts[1], left >= -1, right >= -1 else {
            return .failure(ProblemError("attention: --window must be L,R with L and R at least -1 (-1: unbounded), got \"\(window)\""))
        }
        return .success((left, right))
    }

    /// The visible keys of query row i as offsets from its diagonal i + off: at least `i + off - lo` when `lo` is
    /// given, at most `i + off + hi` when `hi` is given (causal and window combined).
    public var bounds: (lo: Int?, hi: Int?) {
        let window = (try? windowBounds.get()) ?? nil
        var hi: Int? = causal ? 0 : nil
        if let right = window?.right, right >= 0 { hi = min(hi ?? right, right) }
        let lo = window.flatMap { $0.left >= 0 ? $0.left : nil }
        return (lo, hi)
    }

    /// Query rows in all: B x Hq x Lq.
    public var queryRows: Int { batch * heads * seq }

    /// Blocks of the block map along queries and keys.
    public var mapBlocks: (queries: Int, keys: Int) { ((seq + block - 1) / block, (keys + block - 1) / block) }

    public var description: String {
        var text = "\(batch)x\(heads)"
        if keyHeads != heads { text += "/\(keyHeads)" }
        text += "x\(seq)"
        if keys != seq { text += ":\(keys)" }
        text += "x\(dim) \(precision)"
        if causal { text += " causal" }
        if !window.isEmpty { text += " window \(window)" }
        if softcap > 0 { text += " softcap \(softcap)" }
        if scale != 0 { text += " scale \(scale)" }
        if mode == .blockSparse { text += " block-sparse \(block) sparsity \(sparsity)" }
        return text
    }
}

import Foundation

extension ElementFormat {
    /// Cut cross-entropy's default gradient filter for this storage: a tile whose every softmax term is below this
    /// is skipped (2^-12 for bfloat16, 2^-15 for fp16: below the precision of the stored gradients); none for fp32.
    public var defaultFilter: Float? {
        switch self {
        case .bfloat16: 0x1p-12
        case .float16: 0x1p-15
        default: nil
        }
    }
}

/// How per-token losses are reduced.
public enum CCEReduction: String, Codable, Sendable, CaseIterable {
    /// The mean over the tokens whose target is not ignored.
    case mean
    /// The sum over the tokens.
    case sum
    /// One loss per token (0 where the target is ignored).
    case none
}

/// The data a harness generates (benchmarks and tests).
public enum CCEData: String, Codable, Sendable, CaseIterable {
    /// Like a trained model's: every embedding is pulled toward its target's classifier row, and the bias is
    /// Zipf-shaped, so each token's softmax is concentrated on a few entries.
    case trained
    /// Uniform random embeddings and classifier in [-1, 1] (a flat softmax).
    case uniform
    /// `trained` with the vocabulary ids shuffled: frequent entries scattered over the ids, as with a tokenizer
    /// whose ids are not in frequency order (what ``CCEProblem/sortVocabulary`` is for).
    case shuffled
}

/// A cut cross-entropy problem: the loss of a linear classifier over a large vocabulary,
/// `cross_entropy(softcap(E Cᵀ + b), t)`, and its gradients, without the N x V logits in device memory.
///
/// E is `tokens x dim`, C is `vocab x dim`, the bias has `vocab` entries, the targets `tokens` (Int32). With `shift`,
/// token `i` predicts target `i + 1` (a language model's loss without copying E): `tokens - 1` tokens have a loss.
public struct CCEProblem: Hashable, TabulatedProblem, CustomStringConvertible {
    public var tokens: Int
    public var vocab: Int
    public var dim: Int
    public var precision: ElementFormat
    /// Whether a bias is added to the logits.
    public var bias: Bool
    /// `cap * tanh(z / cap)` applied to the logits (after the bias) when above 0.
    public var softcap: Double
    /// Token i predicts target i + 1.
    public var shift: Bool
    /// Weight of the z-loss term `weight * LSE^2` added per token.
    public var zLoss: Double
    /// Label smoothing ε (PyTorch's definition: `(1-ε) CE + ε mean_j(-log p_j)`).
    public var labelSmoothing: Double
    public var reduction: CCEReduction
    /// Targets equal to this are ignored (no loss, no gradient).
    public var ignoreIndex: Int
    /// The gradient filter: `"auto"` (the precision's default), `"off"` (exact), or a threshold.
    public var filter: String
    /// Process the vocabulary in decreasing order of its average logit (the logit of the mean embedding), so the
    /// entries that matter share tiles and the others' tiles are skipped together. Costs one sort of V values on
    /// the host per loss call.
    public var sortVocabulary: Bool
    /// The data of benchmarks and tests (not part of the tuning key).
    public var data: CCEData

    public init(tokens: Int, vocab: Int, dim: Int, precision: ElementFormat = .half, bias: Bool = false, softcap: Double = 0,
                shift: Bool = false, zLoss: Double = 0, labelSmoothing: Double = 0, reduction: CCEReduction = .mean,
                ignoreIndex: Int = -100, filter: String = "auto", sortVocabulary: Bool = false, data: CCEData = .trained) {
        self.tokens = tokens
        self.vocab = vocab
        self.dim = dim
        self.precision = precision
        self.bias = bias
        self.softcap = softcap
        self.shift = shift
        self.zLoss = zLoss
        self.labelSmoothing = labelSmoothing
        self.reduction = reduction
        self.ignoreIndex = ignoreIndex
        self.filter = filter
        self.sortVocabulary = sortVocabulary
        self.data = data
    }

    /// The problem options of `autotune ... cce` and the JSON keys of the problem; the defaults are the
    /// initializer's, with V = 32768 and D = 1024 on the command line.
    public static let table = ProblemTable(defaults: CCEProblem(tokens: 1, vocab: 32768, dim: 1024)) {
        $0.integer("tokens", \.tokens, help: "N: rows of the embeddings E (N x D) and targets.", required: true, primary: true)
        $0.integer("vocab", \.vocab, help: "V: rows of the classifier C (V x D).")
        $0.integer("dim", \.dim, help: "D: the embedding width.")
        $0.format("precision", \.precision, CutCrossEntropy.formats, help: "Storage of E, C, the bias and the gradients.")
        $0.flag("bias", \.bias, help: "Add a bias to the logits.")
        $0.number("softcap", \.softcap, help: "cap * tanh(z / cap) on the logits (0: none).")
        $0.flag("shift", \.shift, help: "Token i predicts target i + 1.")
        $0.number("z-loss", \.zLoss, help: "Weight of the z-loss term weight * LSE^2.")
        $0.number("label-smoothing", \.labelSmoothing, help: "Label smoothing epsilon.")
        $0.choice("reduction", \.reduction, help: "Reduction of the per-token losses.")
        $0.integer("ignore-index", \.ignoreIndex, help: "Targets equal to this have no loss.")
        $0.text("filter", \.filter, help: "Gradient filter: auto (2^-12 bf16, 2^-15 fp16, none fp32), off, or a threshold.")
        $0.flag("sort-vocabulary", \.sortVocabulary, help: "Process the vocabulary by decreasing average logit (skipped tiles cluster).")
        $0.choice("data", \.data, help: "Benchmark data: trained (a peaked softmax), uniform (a flat one), or shuffled (trained with the ids permuted).")
    }

    /// Tokens with a loss: `tokens - 1` with `shift`, else `tokens`.
    public var rows: Int { shift ? tokens - 1 : tokens }

    /// The filter threshold in effect (nil: exact gradients), or nil with an error message for a bad `filter`.
    public var filterThreshold: Result<Float?, ProblemError> {
        switch filter {
        case "auto": return .success(precision.defaultFilter)
        case "off": return .success(nil)
        default:
            guard let value = Float(filter), value.isFinite, value > 0, value < 1 else {
                return .failure(ProblemError("cce: --filter must be auto, off or a threshold in (0, 1), got \"\(filter)\""))
            }
            return .success(value)
        }
    }

    /// The threshold in effect: nil for exact gradients (and for a bad `filter`, which ``CutCrossEntropy/needs(_:)``
    /// refuses before anything runs).
    var threshold: Float? { (try? filterThreshold.get()) ?? nil }

    /// Floating-point operations of the forward and the exact backward (the materialized path's count): the logits
    /// (2 N V D) and the two gradient products (4 N V D).
    public var flops: Double { 6 * Double(rows) * Double(vocab) * Double(dim) }

    public var description: String {
        var text = "\(tokens)x\(vocab)x\(dim) \(precision)"
        if bias { text += " bias" }
        if softcap > 0 { text += " softcap \(softcap)" }
        if shift { text += " shift" }
        if zLoss != 0 { text += " z-loss \(zLoss)" }
        if labelSmoothing != 0 { text += " smoothing \(labelSmoothing)" }
        if reduction != .mean { text += " \(reduction.rawValue)" }
        if ignoreIndex != -100 { text += " ignore-index \(ignoreIndex)" }
        if filter != "auto" { text += " filter \(filter)" }
        if sortVocabulary { text += " sorted" }
        return text
    }
}

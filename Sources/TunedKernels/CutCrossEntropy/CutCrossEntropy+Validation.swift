import OpenCLRuntime

/// A cut cross-entropy call refused before anything is enqueued.
public enum CCEError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A target outside [0, vocab) that is not the ignore index, at `position` of the targets.
    case targetOutOfRange(position: Int, target: Int, vocab: Int, ignoreIndex: Int)
    /// A buffer of the wrong element type, size or context.
    case buffer(String)
    /// An output buffer that is an input or another output.
    case aliasing(String)
    /// A saved `Loss` given to a call it was not computed for.
    case mismatch(String)

    public var description: String {
        switch self {
        case let .targetOutOfRange(position, target, vocab, ignoreIndex):
            "cce: targets[\(position)] = \(target) is outside [0, \(vocab)) and is not the ignore index \(ignoreIndex)"
        case let .buffer(message), let .aliasing(message), let .mismatch(message): "cce: \(message)"
        }
    }
}

extension CutCrossEntropy {
    /// The element type name of a precision's buffers.
    static func elementName(_ precision: CCEPrecision) -> String {
        switch precision {
        case .half: "Float16"
        case .single: "Float"
        case .bfloat16: "UInt16"
        }
    }

    func checkBuffer(_ buffer: any AnyDeviceBuffer, _ name: String, count: Int, precision: CCEPrecision) throws {
        let expected = Self.elementName(precision)
        guard buffer.elementTypeName == expected else {
            throw CCEError.buffer("\(name) is a buffer of \(buffer.elementTypeName); \(precision) storage needs \(expected)"
                                  + (precision == .bfloat16 ? " (bfloat16 words)" : ""))
        }
        guard buffer.count >= count else { throw CCEError.buffer("\(name) holds \(buffer.count) elements; the problem needs \(count)") }
        guard buffer.context === context else { throw CCEError.buffer("\(name) belongs to another context") }
    }

    /// A buffer of `vocab` elements given exactly when the problem has a bias.
    func checkBiasBuffer(_ buffer: (any AnyDeviceBuffer)?, _ name: String, _ problem: CCEProblem) throws {
        switch (problem.bias, buffer) {
        case (true, nil): throw CCEError.buffer("the problem has a bias but no \(name) buffer was given")
        case (false, .some): throw CCEError.buffer("a \(name) buffer was given but the problem has no bias (set bias: true)")
        case (true, .some(let buffer)): try checkBuffer(buffer, name, count: problem.vocab, precision: problem.precision)
        case (false, nil): break
        }
    }

    /// The inputs: element types of the storage precision, sizes, the bias exactly when the problem has one.
    func validate(_ problem: CCEProblem, embeddings: any AnyDeviceBuffer, classifier: any AnyDeviceBuffer,
                  bias: (any AnyDeviceBuffer)?, targets: DeviceBuffer<Int32>) throws {
        try checkBuffer(embeddings, "embeddings", count: problem.tokens * problem.dim, precision: problem.precision)
        try checkBuffer(classifier, "classifier", count: problem.vocab * problem.dim, precision: problem.precision)
        try checkBiasBuffer(bias, "bias", problem)
        guard targets.count >= problem.tokens else { throw CCEError.buffer("targets holds \(targets.count) elements; the problem needs \(problem.tokens)") }
        guard targets.context === context else { throw CCEError.buffer("targets belongs to another context") }
    }

    /// The gradients' buffers, like the inputs'.
    func validate(_ problem: CCEProblem, gradients dEmbeddings: any AnyDeviceBuffer, _ dClassifier: any AnyDeviceBuffer,
                  _ dBias: (any AnyDeviceBuffer)?) throws {
        try checkBuffer(dEmbeddings, "dEmbeddings", count: problem.tokens * problem.dim, precision: problem.precision)
        try checkBuffer(dClassifier, "dClassifier", count: problem.vocab * problem.dim, precision: problem.precision)
        try checkBiasBuffer(dBias, "dBias", problem)
    }
}

extension CutCrossEntropy {
    /// Throws when an output is one of the inputs or another output (the kernels read the inputs while they write
    /// the outputs, so dC would come out wrong).
    func checkAliasing(inputs: [(String, (any AnyDeviceBuffer)?)], outputs: [(String, (any AnyDeviceBuffer)?)]) throws {
        let named = (inputs + outputs).compactMap { name, buffer in buffer.map { (name, $0) } }
        let outputNames = Set(outputs.map(\.0))
        for case let (output, buffer?) in outputs {
            for (other, candidate) in named where other != output && candidate.memoryHandle == buffer.memoryHandle {
                let isOutput = outputNames.contains(other)
                throw CCEError.aliasing("\(output) is the same buffer as \(other); " + (isOutput ? "each output needs its own buffer"
                                                                                           : "the gradients need buffers apart from the inputs"))
            }
        }
    }

    /// Throws unless `loss` was computed by this family for `problem` (every option that changes the result or
    /// the saved values) on the same input buffers.
    func checkMatch(_ loss: Loss, _ problem: CCEProblem, inputs: [AnyObject]) throws {
        guard loss.family === self else { throw CCEError.mismatch("the Loss was computed by another CutCrossEntropy (or context)") }
        guard !loss.inputs.isEmpty else { throw CCEError.mismatch("the Loss holds no complete result: the last loss call into it failed") }
        var given = problem, saved = loss.problem
        given.data = .trained
        saved.data = .trained
        guard given == saved else { throw CCEError.mismatch("the Loss was computed for \(loss.problem), not for \(problem)") }
        let names = ["embeddings", "classifier", "targets", "bias"]
        for (index, input) in inputs.enumerated() where index >= loss.inputs.count || loss.inputs[index] !== input {
            throw CCEError.mismatch("the Loss was computed from another \(names[index]) buffer than the one given")
        }
    }
}

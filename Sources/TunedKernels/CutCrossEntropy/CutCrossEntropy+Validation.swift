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
    /// A tensor of the problem's storage format, `count` elements, on this family's context.
    func checkTensor(_ tensor: DeviceTensor, _ name: String, count: Int, format: ElementFormat) throws {
        guard tensor.format == format else {
            throw CCEError.buffer("\(name) is a \(tensor.format) tensor; the problem's storage is \(format) (\(format.storageTypeName) elements"
                                  + (format == .bfloat16 ? ", bfloat16 words)" : ")"))
        }
        guard tensor.count == count else {
            throw CCEError.buffer("\(name) has the shape \(tensor.shape) (\(tensor.count) elements); the problem needs \(count)")
        }
        guard tensor.buffer.context === context else { throw CCEError.buffer("\(name) belongs to another context") }
    }

    /// A tensor of `vocab` elements given exactly when the problem has a bias.
    func checkBias(_ tensor: DeviceTensor?, _ name: String, _ problem: CCEProblem) throws {
        switch (problem.bias, tensor) {
        case (true, nil): throw CCEError.buffer("the problem has a bias but no \(name) tensor was given")
        case (false, .some): throw CCEError.buffer("a \(name) tensor was given but the problem has no bias (set bias: true)")
        case (true, .some(let tensor)): try checkTensor(tensor, name, count: problem.vocab, format: problem.precision)
        case (false, nil): break
        }
    }

    /// The inputs: the storage format, sizes, the bias exactly when the problem has one.
    func validate(_ problem: CCEProblem, embeddings: DeviceTensor, classifier: DeviceTensor, bias: DeviceTensor?,
                  targets: DeviceBuffer<Int32>) throws {
        try checkTensor(embeddings, "embeddings", count: problem.tokens * problem.dim, format: problem.precision)
        try checkTensor(classifier, "classifier", count: problem.vocab * problem.dim, format: problem.precision)
        try checkBias(bias, "bias", problem)
        guard targets.count >= problem.tokens else { throw CCEError.buffer("targets holds \(targets.count) elements; the problem needs \(problem.tokens)") }
        guard targets.context === context else { throw CCEError.buffer("targets belongs to another context") }
    }

    /// The gradients' tensors, like the inputs'.
    func validate(_ problem: CCEProblem, gradients dEmbeddings: DeviceTensor, _ dClassifier: DeviceTensor, _ dBias: DeviceTensor?) throws {
        try checkTensor(dEmbeddings, "dEmbeddings", count: problem.tokens * problem.dim, format: problem.precision)
        try checkTensor(dClassifier, "dClassifier", count: problem.vocab * problem.dim, format: problem.precision)
        try checkBias(dBias, "dBias", problem)
    }
}

extension CutCrossEntropy {
    /// Throws when an output is one of the inputs or another output (the kernels read the inputs while they write
    /// the outputs, so dC would come out wrong).
    func checkAliasing(inputs: [(String, (any AnyDeviceBuffer)?)], outputs: [(String, (any AnyDeviceBuffer)?)]) throws {
        if let message = BufferAliasing.conflict(inputs: inputs, outputs: outputs) { throw CCEError.aliasing(message) }
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

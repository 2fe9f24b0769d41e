import OpenCLRuntime

extension GEMM {
    /// Checks a call's sizes, strides, buffers and precisions; throws the first problem found.
    func validate(_ problem: GEMMProblem, a: MatrixOperand, b: MatrixOperand, c: MatrixOperand) throws {
        for (name, value) in [("M", problem.m), ("N", problem.n), ("K", problem.k), ("batch", problem.batch)] where value < 1 {
            throw GEMMError.invalidSize("\(name) must be at least 1, got \(value)")
        }
        // The checks of `autotune` (overflow-checked sizes, the kernels' 32-bit indexing, the device's memory).
        do {
            try checkCall(problem)
        } catch let error as ProblemError {
            throw GEMMError.tooLarge(error.message)
        }
        let operands: [(String, MatrixOperand, (rows: Int, columns: Int))] = [
            ("A", a, problem.storedA), ("B", b, problem.storedB), ("C", c, (problem.m, problem.n)),
        ]
        for (name, operand, shape) in operands {
            guard let precision = operand.precision else {
                throw GEMMError.precisionMismatch("\(name) holds \(operand.buffer.elementTypeName); GEMM stores Float (single) or Float16 (half)")
            }
            guard precision == problem.precision else {
                throw GEMMError.precisionMismatch("\(name) is \(precision) (\(operand.buffer.elementTypeName)) but the problem is \(problem.precision)")
            }
            guard operand.buffer.context === context else {
                throw GEMMError.contextMismatch("\(name) was allocated in another context than this GEMM's")
            }
            guard operand.leadingDimension >= shape.columns else {
                throw GEMMError.invalidLeadingDimension(
                    "leading dimension of \(name) (\(operand.leadingDimension)) is smaller than its stored row length \(shape.columns) "
                        + "(\(name) is stored \(shape.rows)x\(shape.columns) for layout \(problem.layout))")
            }
            guard operand.offset >= 0, operand.batchStride >= 0 else {
                throw GEMMError.invalidStride("offset (\(operand.offset)) and batch stride (\(operand.batchStride)) of \(name) must not be negative")
            }
            let (span, overflow) = (shape.rows - 1).multipliedReportingOverflow(by: operand.leadingDimension)
            guard !overflow, span <= Int(Int32.max) - shape.columns else {
                throw GEMMError.tooLarge("one matrix of \(name) spans more than \(Int32.max) elements ((rows-1)*ld + columns); split the problem")
            }
            let end = operand.end(rows: shape.rows, columns: shape.columns, batch: problem.batch)
            guard let end, end <= operand.buffer.count else {
                throw GEMMError.bufferTooSmall(
                    "\(name) needs \(end.map(String.init) ?? "more than Int.max") elements (offset \(operand.offset), batch \(problem.batch) x stride \(operand.batchStride), "
                        + "\(shape.rows)x\(shape.columns) with leading dimension \(operand.leadingDimension)) but its buffer holds \(operand.buffer.count)")
            }
        }
        let cSpan = (problem.m - 1) * c.leadingDimension + problem.n
        if problem.batch > 1 && c.batchStride < cSpan {
            throw GEMMError.invalidStride("C's batch stride (\(c.batchStride)) must be at least \(cSpan) so that the \(problem.batch) results do not overlap")
        }
        // Every end was checked against its buffer above: none overflows.
        let cRange = c.offset..<c.end(rows: problem.m, columns: problem.n, batch: problem.batch)!
        for (name, operand, shape) in operands.prefix(2) where operand.buffer === c.buffer {
            let range = operand.offset..<operand.end(rows: shape.rows, columns: shape.columns, batch: problem.batch)!
            if range.overlaps(cRange) {
                throw GEMMError.aliasing("C (elements \(cRange)) overlaps \(name) (elements \(range)) in the same buffer")
            }
        }
    }
}

/// Candidates of a ``TuningSpace`` as rows of a Kernel Tuner cache file. A space of several variants
/// becomes one table: a `variant` column, then every parameter of any variant (sorted by name);
/// a parameter that a candidate's variant does not have holds `"-1"` ("not applicable").
extension TuningSpace {
    public static let notApplicable = "-1"

    /// The cache columns: parameter names and their value labels.
    public var kernelTunerColumns: (names: [String], values: [[String]]) {
        var valuesByName: [String: [String]] = [:]
        for variant in variants {
            for (name, labels) in zip(variant.dimensionNames, variant.dimensionLabels) {
                var merged = valuesByName[name] ?? []
                for label in labels where !merged.contains(label) { merged.append(label) }
                valuesByName[name] = merged
            }
        }
        let names = valuesByName.keys.sorted()
        let values = names.map { name -> [String] in
            let labels = valuesByName[name]!
            let everywhere = variants.allSatisfy { $0.dimensionNames.contains(name) }
            return everywhere || labels.contains(Self.notApplicable) ? labels : labels + [Self.notApplicable]
        }
        return (["variant"] + names, [variants.map(\.name)] + values)
    }

    /// A candidate's row of labels in the order of ``kernelTunerColumns``.
    public func kernelTunerLabels(_ candidate: Candidate) -> [String] {
        let space = variants[candidate.variant]
        let labels = space.dimensionLabels
        var byName: [String: String] = [:]
        for (dimension, index) in candidate.indices.enumerated() { byName[space.dimensionNames[dimension]] = labels[dimension][index] }
        return [space.name] + kernelTunerColumns.names.dropFirst().map { byName[$0] ?? Self.notApplicable }
    }

    /// The candidate of a row of labels (nil when it names no variant of this space or a value the
    /// space does not have, e.g. a journal written for an older version of the space).
    public func candidate(kernelTunerLabels row: [String], names: [String]) -> Candidate? {
        guard let variantColumn = names.firstIndex(of: "variant"), row.count == names.count,
              let variant = variants.firstIndex(where: { $0.name == row[variantColumn] }) else { return nil }
        let space = variants[variant]
        var indices: [Int] = []
        for (dimension, name) in space.dimensionNames.enumerated() {
            guard let column = names.firstIndex(of: name), let index = space.dimensionLabels[dimension].firstIndex(of: row[column]) else { return nil }
            indices.append(index)
        }
        let candidate = Candidate(variant: variant, indices: indices)
        return isValid(candidate) ? candidate : nil
    }
}

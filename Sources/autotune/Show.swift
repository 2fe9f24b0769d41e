import ArgumentParser

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the tuning database of a device.")
}

import ArgumentParser

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Search kernel configurations per shape and store the best.", subcommands: [])
}

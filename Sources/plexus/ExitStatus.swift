import ArgumentParser
import Glibc
import PlexusCore

/// One table of exit statuses for every command (also in `plexus --help`
/// and the README), so scripts can tell a failed request from a typo and
/// from a host that is not there.
enum ExitStatus {
    static let done: Int32 = 0
    /// The request was made and failed: an error reply, a failed task or
    /// run, a refused plugin, a missing key.
    static let failed: Int32 = 1
    /// The command line is wrong: an unknown command or option, an invalid value.
    static let usage: Int32 = 2
    /// No host answers at the socket, or it went away during the command.
    static let noHost: Int32 = 3
    /// Interrupted (Ctrl-C): `plexus call` cancelled its request, which
    /// ended CANCELLED (128 + SIGINT, as shells report it).
    static let interrupted: Int32 = 130
}

extension Plexus {
    /// ArgumentParser's own main, with the exit statuses above (it would
    /// exit 64 for a usage error) and "did you mean" for a mistyped command.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let error as CLIError {
            FileHandleErr.note("Error: \(error.description)")
            Glibc.exit(error.code)
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            var text = fullMessage(for: error)
            if let hint = commandSuggestion(arguments) { text += "\n\(hint)" }
            FileHandleErr.note(text)
            Glibc.exit(ExitStatus.usage)
        }
    }

    /// "Did you mean 'agents'?" when the first word that is not a known
    /// subcommand, where one was expected, is close to one.
    static func commandSuggestion(_ arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Plexus.self
        var path = ["plexus"]
        for word in arguments where !word.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty else { return nil }
            if let next = subcommands.first(where: { name(of: $0) == word }) {
                command = next
                path.append(word)
                continue
            }
            let help = "`\(path.joined(separator: " ")) --help` lists them"
            guard let close = Suggestion.closest(to: word, among: subcommands.map(name(of:))) else {
                return "'\(word)' is not a command of \(path.joined(separator: " ")); \(help)."
            }
            return "Did you mean '\(path.joined(separator: " ")) \(close)'? (\(help))"
        }
        return nil
    }

    /// A subcommand's name as typed: its configured name, else its type's
    /// name in kebab case without "Command" (ArgumentParser's own rule).
    private static func name(of command: ParsableCommand.Type) -> String {
        if let n = command.configuration.commandName { return n }
        var base = String(describing: command)
        if base.hasSuffix("Command") { base.removeLast("Command".count) }
        var out = ""
        for (i, ch) in base.enumerated() {
            if ch.isUppercase && i > 0 { out.append("-") }
            out.append(contentsOf: ch.lowercased())
        }
        return out
    }
}

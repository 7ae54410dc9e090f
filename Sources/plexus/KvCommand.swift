import ArgumentParser
import PlexusCore
import PlexusSocket

/// `plexus kv`: the running host's key-value store, where plugins keep
/// their state (one namespace per plugin, named after it).
struct KvCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv", abstract: "Read and repair what plugins keep in the running host's key-value store.",
        discussion: "Each plugin's kv_* calls use the namespace named after the plugin (its descriptor name).",
        subcommands: [Get.self, Put.self, Delete.self, List.self])

    struct Key: ParsableArguments {
        @Argument(help: "The namespace: a plugin's name.") var namespace: String
        @Argument(help: "The key.") var key: String
        var args: [String: JSONValue] { ["namespace": .string(namespace), "key": .string(key)] }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a key's value (exit 1 when it is absent).")
        @OptionGroup var key: Key
        @Flag(help: "Print {value, version} as JSON.") var json = false
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let reply = try ask(try options.hostForState(), "plexus.kv.get", .object(key.args))
            if json { print(reply.text); return }
            guard reply["version"] != .int(0) else {
                FileHandleErr.note("plexus kv: \(key.namespace) has no key '\(key.key)'")
                throw ExitCode(ExitStatus.failed)
            }
            print(str(reply["value"] ?? reply["value_base64"]))
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a key; prints its new version once on disk.")
        @OptionGroup var key: Key
        @Argument(help: "The value, as text.") var value: String
        @Option(help: "Write only if the key is at this version (0: only create it).") var expected: Int64?
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            var args = key.args
            args["value"] = .string(value)
            if let expected { args["expected"] = .int(expected) }
            print(str(try ask(try options.hostForState(), "plexus.kv.put", .object(args))["version"]))
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a key (exit 1 when it is absent).")
        @OptionGroup var key: Key
        @Option(help: "Remove it only if it is at this version.") var expected: Int64?
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            var args = key.args
            if let expected { args["expected"] = .int(expected) }
            let reply = try ask(try options.hostForState(), "plexus.kv.delete", .object(args))
            guard reply["removed"] != .bool(false) else {
                FileHandleErr.note("plexus kv: \(key.namespace) has no key '\(key.key)': nothing removed")
                throw ExitCode(ExitStatus.failed)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A namespace's keys, in order.")
        @Argument(help: "The namespace: a plugin's name.") var namespace: String
        @Option(help: "Only keys starting with this.") var prefix = ""
        @Option(help: "At most this many.") var limit = 1000
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            bootstrapLogging(default: .error)
            let args: JSONValue = .object(["namespace": .string(namespace), "prefix": .string(prefix), "limit": .int(Int64(limit))])
            let c = try options.hostForState()
            guard case .array(let keys) = try ask(c, "plexus.kv.list", args) else { return }
            for k in keys { print(str(k)) }
            if keys.isEmpty { try explainEmpty(c) }
        }

        /// No keys: fine for a plugin that has stored nothing yet, but a
        /// namespace no agent has is most likely a typo.
        private func explainEmpty(_ c: SocketClient) throws {
            guard case .array(let agents) = try ask(c, "plexus.agents", .null) else { return }
            let names = agents.compactMap { if case .string(let n)? = $0["name"] { n } else { nil } }
            guard !names.contains(namespace) else { return }
            var text = "plexus kv: no keys in '\(namespace)', and no agent of that name runs"
            if let close = Suggestion.closest(to: namespace, among: names.sorted()) { text += "; did you mean '\(close)'?" }
            FileHandleErr.note(text + " (`plexus agents` lists them)")
            throw ExitCode(ExitStatus.failed)
        }
    }
}

import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusSocket

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins", abstract: "List, inspect, reload and unload plugins.",
        subcommands: [List.self, Inspect.self, Reload.self, Unload.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every plugin file: loaded ones with their capabilities, refused ones with the reason.")
        @OptionGroup var options: HostOptions
        @Flag(name: .long, help: "Print a JSON array instead of a table.") var json = false

        func run() throws {
            bootstrapLogging(default: .error)
            var embedded = false
            let reports = try options.ask("plexus.plugins", fallback: true) { embedded = true; return $0.pluginReports }
            if json { print(try prettyJSON(reports)); return }
            // The table says which host it describes: a running one, or one started just for this listing.
            print(embedded ? "# plugins of an embedded host (none is running at \(options.socketPath))"
                           : "# plugins of the host running at \(options.socketPath)")
            printTable(reports)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one plugin file's descriptor, or exactly why it is refused.")
        @Argument(help: "The .so file.") var file: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() throws {
            bootstrapLogging(default: .critical)
            // In a worker: a hostile constructor never runs in this process.
            var config = HostConfiguration(pluginsDirectory: nil)
            config.sandbox = .process
            let host = Host(config)
            _ = try? host.load(path: file)
            guard let report = host.pluginReports.first else { throw CLIError("\(file): nothing to inspect") }
            if json { print(try prettyJSON(report)) } else { printDetail(report) }
            if report.status != "loaded" { throw ExitCode(ExitStatus.failed) }
        }
    }
}

extension PluginsCommand {
    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load, upgrade or unload a plugin of the running host from its file, now.",
            discussion: """
                TARGET is a plugin's name or its file in the plugins directory (NAME, NAME.so or Plugins/NAME.so). \
                A new file is loaded; a changed one is a rolling upgrade: the new version starts beside the old, \
                takes the new messages once its init succeeded, and the old one finishes what it accepted. A new \
                version whose worker dies within its first reload.probation_messages messages is rolled back. A \
                removed file's agents drain and stop. The host does this by itself when a file in its plugins \
                directory changes (reload.watch); this command is for a host that does not watch, or to retry now. \
                Exits 1 when the file is refused (the running version, if any, goes on), 3 with no host.
                """)
        @OptionGroup var options: ConnectionOptions   // a running host's plugins: no --embedded
        @Argument(help: "The plugin's name or file.") var target: String
        @Flag(name: .long, help: "Print the host's JSON answer.") var json = false

        func run() throws {
            bootstrapLogging(default: .error)
            let r = try ask(try options.hostForState(), "plexus.plugins.reload", .object(["target": .string(target)]))
            if json { print(r.text); return }
            switch str(r["outcome"]) {
            case "upgraded":
                let n = str(r["probation_messages"])
                print("\(str(r["plugin"])): \(str(r["previous"])) -> \(str(r["version"])) serving"
                      + (n == "0" ? "" : "; on probation for its first \(n) messages (`plexus plugins list` shows how it went)"))
            case "loaded": print("\(str(r["plugin"])) \(str(r["version"])) loaded from \(str(r["file"]))")
            case "unchanged": print("\(str(r["plugin"])) \(str(r["version"])): \(str(r["file"])) is unchanged")
            case "unloaded": print("\(str(r["plugin"])) \(str(r["version"])) unloaded (its file is gone); its agents finish what they accepted, then stop")
            default: print(r.text)
            }
        }
    }

    struct Unload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drain and stop a plugin's agents in the running host; its file stays.",
            discussion: "NAME is the plugin's name or its file. Its agents take no new messages, finish what they accepted, then stop. `plexus plugins reload NAME` loads it again.")
        @OptionGroup var options: ConnectionOptions
        @Argument(help: "The plugin's name or file.") var name: String

        func run() throws {
            bootstrapLogging(default: .error)
            let r = try ask(try options.hostForState(), "plexus.plugins.unload", .object(["target": .string(name)]))
            if str(r["outcome"]) == "unloaded" {
                print("\(str(r["plugin"])) \(str(r["version"])) unloaded; its agents finish what they accepted, then stop"
                      + (r["in_process"] == .bool(true) ? ". It ran in process: loading it again needs a restart of the host" : ""))
            } else {
                print(r.text)
            }
        }
    }
}

func prettyJSON<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}

private func printTable(_ reports: [PluginReport]) {
    let loaded = reports.filter { $0.status == "loaded" }
    if loaded.isEmpty { print("no plugins loaded") }
    for r in loaded {
        print("\(r.name ?? "?")  \(r.version ?? "?")  abi \(r.abi ?? "?")  \(r.file)")
        if let note = r.reload { print("    reload: \(note)") }
        for c in r.capability_info ?? [] {
            let what = c.signature ?? c.description ?? ""
            print("    \(c.name)\(c.kind == "export" ? " [export]" : "")  \(what)")
        }
    }
    for r in reports where r.status == "refused" {
        print("refused  \(r.file)\n    \(r.error ?? ""): \(r.reason ?? "")")
    }
    for r in reports where r.status == "unloaded" {
        print("unloaded  \(r.file)\n    \(r.reason ?? "")")
    }
    for r in reports where r.status == "missing" {
        print("missing  \(r.file)\n    \(r.reason ?? "")")
    }
}

private func printDetail(_ r: PluginReport) {
    guard r.status == "loaded" else {
        print("\(r.file): refused (\(r.error ?? ""))\n  \(r.reason ?? "")")
        return
    }
    print("""
        file         \(r.file)
        name         \(r.name ?? "")
        version      \(r.version ?? "")
        abi          \(r.abi ?? "")
        description  \(r.description ?? "-")
        concurrent   \(r.concurrent == true ? "yes" : "no")
        capabilities
        """)
    for c in r.capability_info ?? [] {
        print("  \(c.name) (\(c.kind))\(c.signature.map { "  \($0)" } ?? "")\(c.description.map { "  — \($0)" } ?? "")")
        if let i = c.input { print("      input:  \(i)") }
        if let o = c.output { print("      output: \(o)") }
    }
    if let p = r.permissions, !p.isEmpty {
        print("permissions requested")
        for x in p { print("  \(x.kind) \(x.pattern)") }
    }
}

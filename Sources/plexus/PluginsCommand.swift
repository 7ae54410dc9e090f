import ArgumentParser
import FoundationEssentials
import PlexusCore
import PlexusHost
import PlexusSocket

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins", abstract: "List and inspect plugins.",
        subcommands: [List.self, Inspect.self])

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
        for c in r.capability_info ?? [] {
            let what = c.signature ?? c.description ?? ""
            print("    \(c.name)\(c.kind == "export" ? " [export]" : "")  \(what)")
        }
    }
    for r in reports where r.status == "refused" {
        print("refused  \(r.file)\n    \(r.error ?? ""): \(r.reason ?? "")")
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

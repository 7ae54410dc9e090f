import ArgumentParser
import PlexusSocket

/// Only what reaches a running host: its socket and the client to say hello
/// as. For commands that read the running host's in-memory state (traces),
/// where --plugins, --sandbox and --config would do nothing.
struct SocketConnection: ParsableArguments {
    @Option(name: .long, help: "The host's socket (default: $PLEXUS_SOCKET or \(SocketPath.defaultDescription)).")
    var socket: String?

    @Option(name: .long, help: "Say hello to the running host as this client of its plexus.yaml (default: $PLEXUS_CLIENT; none: the host's own user).")
    var client: String?

    @Option(name: .long, help: "The client's token (default: $PLEXUS_TOKEN).")
    var token: String?

    var socketPath: String { socket ?? SocketPath.default }

    /// The running host (after its hello when a client is named), or exit 3
    /// saying none answers at the socket.
    func hostForState() throws -> SocketClient {
        guard let c = try connectToHost(socketPath, client: client, token: token) else { throw CLIError.noHost(socketPath) }
        return c
    }
}

/// A connection to the host at path, after its hello when a client is named
/// (here or in $PLEXUS_CLIENT, with --token or $PLEXUS_TOKEN); nil when no
/// host answers there.
func connectToHost(_ path: String, client: String?, token: String?) throws -> SocketClient? {
    guard let c = try? SocketClient(path: path) else { return nil }
    if let name = client ?? env("PLEXUS_CLIENT") {
        do { try c.hello(name, token: token ?? env("PLEXUS_TOKEN")) } catch { throw CLIError("\(error.name): \(error.detail)") }
    }
    return c
}

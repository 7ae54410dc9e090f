import PlexusCore
import PlexusSandbox
import Synchronization

/// What one plugin's agents may spawn (plexus.yaml `plugins.NAME.spawn`).
/// Absent, a plugin spawns nothing: a hostile plugin can neither multiply
/// itself nor start a trusted in-process plugin with a config of its choosing.
public struct SpawnSettings: Sendable, Equatable {
    /// Children one agent of the plugin may have at once.
    public var maxChildren = 8
    /// The plugins (descriptor names) it may start children of.
    public var plugins: [String] = []
    /// How the supervisor treats a child that exits: temporary (never
    /// restarted) unless plexus.yaml says otherwise.
    public var restart = RestartKind.temporary

    public init(maxChildren: Int = 8, plugins: [String] = [], restart: RestartKind = .temporary) {
        self.maxChildren = maxChildren
        self.plugins = plugins
        self.restart = restart
    }
}

/// The host's side of spawn/stop (Host+Spawn.swift), reached by both host
/// tables: the in-process one through Router.spawns, a worker's through
/// its link. Also told when a worker agent dies, so its children follow.
protocol SpawnService: AnyObject, Sendable {
    /// Starts a child of `parent`; returns its agent name.
    func spawn(by parent: Agent, plugin: String, instance: String?, config: String?) throws(PlexusError) -> String
    /// Stops `child`, which must be a child of `parent`.
    func stop(by parent: Agent, child: String) throws(PlexusError)
    /// A worker agent's process ended (a crash, an exit): its children are
    /// linked to that process and stop with it.
    func workerDied(_ agent: Agent, exit: String)
    /// The supervisor gave the agent up (a temporary child's exit, or too
    /// many restarts): it is gone for good.
    func terminated(_ agent: Agent, reason: String)
    /// The spawner of a spawned agent; nil for any other.
    func parent(of name: String) -> String?
}

/// Who spawned whom, the names taken and the counts the limits look at.
/// Children belong to their spawner's agent name, so a rolling upgrade of
/// the spawner keeps them; its death, stop or unload takes them down.
final class Lineage: Sendable {
    struct Child {
        let agent: Agent
        let parent: String
        /// The config its spawner gave: an operator's restart inits it with this again.
        let config: String
    }

    struct State {
        /// Started children by name, and names being started (nil agent).
        var children: [String: Child] = [:]
        var starting: [String: String] = [:]   // child name -> parent
        /// Spawn order, for shutdown (children stop before their parents).
        var order: [String] = []
        var counter = 0
        var closed = false
    }

    let state = Mutex(State())

    /// Claims `name` for a child of `parent` within the limits, or says why not.
    func reserve(_ name: String, parent: String, max: Int, hostMax: Int) throws(PlexusError) {
        try state.withLock { s throws(PlexusError) in
            guard !s.closed else { throw PlexusError(.SHUTTING_DOWN, "the host is shutting down: no agent is spawned") }
            let mine = s.children.values.filter { $0.parent == parent }.count + s.starting.values.filter { $0 == parent }.count
            guard mine < max else {
                throw PlexusError(.LIMIT_REACHED, "agent '\(parent)' has \(mine) children, its limit (spawn.max_children: \(max))")
            }
            let all = s.children.count + s.starting.count
            guard all < hostMax else {
                throw PlexusError(.LIMIT_REACHED, "the host has \(all) spawned agents, its limit (defaults.spawn.max_total: \(hostMax))")
            }
            guard s.children[name] == nil && s.starting[name] == nil else {
                throw PlexusError(.CONFLICT, "agent name '\(name)' is taken by another child")
            }
            s.starting[name] = parent
        }
    }

    /// The next number for a child the host names.
    func nextNumber() -> Int { state.withLock { s in s.counter += 1; return s.counter } }

    /// Records the started child; false when the host began shutting
    /// down meanwhile (its list of children to stop is taken already).
    func started(_ a: Agent, parent: String, config: String) -> Bool {
        state.withLock { s in
            s.starting[a.name] = nil
            s.children[a.name] = Child(agent: a, parent: parent, config: config)
            s.order.append(a.name)
            return !s.closed
        }
    }

    func release(_ name: String) { state.withLock { s in _ = s.starting.removeValue(forKey: name) } }

    /// Forgets the child; returns it (nil when it was not one, or is gone already).
    func remove(_ name: String) -> Child? {
        state.withLock { s in
            s.order.removeAll { $0 == name }
            return s.children.removeValue(forKey: name)
        }
    }

    func child(_ name: String) -> Child? { state.withLock { $0.children[name] } }
    func parent(of name: String) -> String? { state.withLock { $0.children[name]?.parent } }

    /// The children of `parent`, newest first.
    func children(of parent: String) -> [Agent] {
        state.withLock { s in s.order.reversed().compactMap { s.children[$0] }.filter { $0.parent == parent }.map(\.agent) }
    }

    /// Every child, in spawn order.
    var all: [Agent] { state.withLock { s in s.order.compactMap { s.children[$0]?.agent } } }

    /// No spawn from now on (the host shuts down); returns every child in spawn order.
    func close() -> [Agent] {
        state.withLock { s in
            s.closed = true
            return s.order.compactMap { s.children[$0]?.agent }
        }
    }
}

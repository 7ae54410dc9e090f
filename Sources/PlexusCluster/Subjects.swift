/// The NATS subjects of one cluster, all under the reserved prefix
/// `plexus.<cluster>.from.<sending node>`: the sender's node is the fourth
/// token of every subject, so a server that lets each node's user publish
/// only under its own prefix makes it unforgeable, and the receiver takes
/// the sender's node from the subject, never from the frame.
///
///   .agent.<node>.<name>   a message for agent <name> on host <node>
///   .cap.<capability>      a capability call from a host with no provider; the providers' hosts share it in a queue group named after it
///   .capon.<node>.<capability>  a capability call for host <node>, chosen by a host whose own providers are busy
///   .topic.<subject>       a topic publish; every host hears it and hands it to its own subscribers
///   .reply.<node>          answers to the requests host <node> sent
///   .took.<node>           "I have request ID" (16 bytes), to the requester of a capability call
///   .cancel.<node>         "my caller cancelled request ID" (16 bytes), to the host handling it
///   .announce              agents, capabilities and load, every second
///   .ping                  answered by the host holding the node name (a newcomer's name check)
struct Subjects: Sendable {
    let cluster: String
    let node: String
    /// "plexus.<cluster>.from."
    let root: String
    /// "plexus.<cluster>.from.<node>"
    let mine: String

    init(cluster: String, node: String) {
        self.cluster = cluster
        self.node = node
        root = "plexus.\(cluster).from."
        mine = root + node
    }

    func agent(_ name: String, on node: String) -> String { "\(mine).agent.\(node).\(name)" }
    func capability(_ name: String) -> String { "\(mine).cap.\(name)" }
    func capability(_ name: String, on node: String) -> String { "\(mine).capon.\(node).\(name)" }
    func topic(_ subject: String) -> String { "\(mine).topic.\(subject)" }
    func reply(to node: String) -> String { "\(mine).reply.\(node)" }
    func took(to node: String) -> String { "\(mine).took.\(node)" }
    func cancel(to node: String) -> String { "\(mine).cancel.\(node)" }
    var announce: String { "\(mine).announce" }
    var ping: String { "\(mine).ping" }

    // What this host subscribes to.
    var agentsHere: String { "\(root)*.agent.\(node).>" }
    var capabilitiesHere: String { "\(root)*.capon.\(node).>" }
    func capabilityHere(_ name: String) -> String { "\(root)*.cap.\(name)" }
    var topics: String { "\(root)*.topic.>" }
    var repliesHere: String { "\(root)*.reply.\(node)" }
    var tookHere: String { "\(root)*.took.\(node)" }
    var cancelsHere: String { "\(root)*.cancel.\(node)" }
    var announcements: String { "\(root)*.announce" }

    /// Splits a received subject into the sending node, the kind and the
    /// rest (after the kind's own tokens: for agent, after the node).
    /// On the UTF-8 bytes (subjects are ASCII tokens): it runs once per
    /// message that arrives, where walking Characters showed in profiles.
    func parse(_ subject: String) -> (from: String, kind: String, rest: String)? {
        let u = subject.utf8, dot = UInt8(ascii: ".")
        guard u.starts(with: root.utf8) else { return nil }
        let tail = u.index(u.startIndex, offsetBy: root.utf8.count)
        guard let d1 = u[tail...].firstIndex(of: dot) else { return nil }
        let from = String(Substring(u[tail..<d1]))
        let afterFrom = u.index(after: d1)
        guard let d2 = u[afterFrom...].firstIndex(of: dot) else { return (from, String(Substring(u[afterFrom...])), "") }
        return (from, String(Substring(u[afterFrom..<d2])), String(Substring(u[u.index(after: d2)...])))
    }
}

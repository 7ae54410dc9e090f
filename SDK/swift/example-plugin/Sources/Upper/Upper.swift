// upper — the smallest Swift agent: text.upper answers with its payload upper-cased.
import PlexusAgent

final class Upper: Agent {
    init(context: AgentContext, config: String) throws {}

    func handle(_ m: AgentMessage, context: AgentContext) throws {
        guard m.target == "text.upper" else { throw AgentError(PLEXUS_UNSUPPORTED, "upper answers text.upper only") }
        try context.reply(to: m, text: m.text.uppercased())
    }
}

@_cdecl("plexus_plugin_entry")
public func plexusPluginEntry() -> UnsafeRawPointer {
    PluginExport.descriptor(Upper.self, name: "upper", version: "1.0.0",
                            capabilities: [.init("text.upper", "upper-cases text")])
}

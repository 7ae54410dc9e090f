import PlexusCore
import Yams

/// The names plexus.yaml uses for things it does not define: plugin files
/// (`plugins: NAME:`), agents (`supervision: ... agent: NAME`) and the
/// plugins a plugin may spawn (`plugins.NAME.spawn.plugins: [PLUGIN]`, the
/// descriptor names of loaded plugins). A name
/// that matches nothing is most likely a typo, but a plugin may be added
/// later, so the host warns (file:line:column and the closest real name)
/// rather than refuses.
public struct ConfigReference: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case plugin, agent, spawnable }
    public let kind: Kind
    public let name: String
    public let field: String
    public let file: String
    public let line: Int
    public let column: Int
}

extension ConfigFile {
    /// Every plugin and agent name the file refers to, with its position;
    /// none when the file does not read (load() reports that).
    public static func references(_ text: String, file: String) -> [ConfigReference] {
        guard let root = try? Yams.compose(yaml: text), case .mapping(let top) = root else { return [] }
        var out: [ConfigReference] = []
        func add(_ kind: ConfigReference.Kind, _ name: String, _ field: String, _ node: Node) {
            out.append(ConfigReference(kind: kind, name: name, field: field, file: file,
                                       line: node.mark?.line ?? 0, column: node.mark?.column ?? 0))
        }
        if case .mapping(let plugins)? = top["plugins"] {
            for (k, _) in plugins { if case .scalar(let s) = k { add(.plugin, s.string, "plugins.\(s.string)", k) } }
            for (k, v) in plugins {
                guard case .scalar(let s) = k, case .mapping(let p) = v, case .mapping(let spawn)? = p["spawn"],
                      case .sequence(let names)? = spawn["plugins"] else { continue }
                for (i, n) in names.enumerated() {
                    if case .scalar(let name) = n { add(.spawnable, name.string, "plugins.\(s.string).spawn.plugins[\(i)]", n) }
                }
            }
        }
        func walk(_ node: Node, _ field: String) {
            guard case .mapping(let m) = node, case .sequence(let children)? = m["children"] else { return }
            for (i, c) in children.enumerated() {
                let f = "\(field).children[\(i)]"
                guard case .mapping(let cm) = c else { continue }
                if let a = cm["agent"], case .scalar(let s) = a { add(.agent, s.string, "\(f).agent", a) } else { walk(c, f) }
            }
        }
        if let s = top["supervision"] { walk(s, "supervision") }
        return out
    }

    /// A warning for each reference that names no plugin file (`plugins`,
    /// names without .so), no agent (`agents`) or no loaded plugin
    /// (`loaded`, descriptor names), with the closest name.
    public static func unmatched(_ refs: [ConfigReference], plugins: [String], agents: [String], loaded: [String] = [],
                                 pluginsDirectory: String) -> [String] {
        refs.compactMap { r in
            let known = switch r.kind { case .plugin: plugins; case .agent: agents; case .spawnable: loaded }
            guard !known.contains(r.name) else { return nil }
            let hint = Suggestion.closest(to: r.name, among: known.sorted()).map { " (did you mean \($0)?)" } ?? ""
            let what = switch r.kind {
            case .plugin: "no plugin file \(r.name).so in \(pluginsDirectory)\(hint); its settings apply if one is added later"
            case .agent: "no agent is named '\(r.name)'\(hint); this entry supervises nothing"
            case .spawnable: "no loaded plugin is named '\(r.name)'\(hint); a spawn of it answers NO_SUCH_AGENT until one is loaded"
            }
            return "\(r.file):\(r.line):\(r.column): \(r.field): \(what)"
        }
    }
}

import Glibc
import PlexusCore

/// The rule for file paths in a run's input given on the command line:
/// the user typed them in the CLI's directory, so a relative path that
/// names an existing file or directory there is made absolute before the
/// run starts (the host, whose directory may differ, reads that file).
/// The host then applies the same rule to the whole input (the file's
/// defaults included) against its own directory when a run starts: an
/// agent, sandboxed with `/` as its directory, could not resolve it. What
/// names no file in either place is left as it is, and the agent's error
/// says which path it tried.
public enum InputPaths {
    /// The calling process's directory, or nil when it cannot be read.
    public static func currentDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        return getcwd(&buf, buf.count) != nil ? String(cString: buf) : nil
    }

    /// `value` with such strings made absolute against `cwd`, and what was
    /// changed ("input.path" -> "/home/me/mine.csv"), for the CLI to say.
    public static func absolutize(_ value: JSONValue, cwd: String, field: String = "input",
                                  exists: (String) -> Bool = { access($0, F_OK) == 0 }) -> (JSONValue, [(field: String, path: String)]) {
        switch value {
        case .string(let s) where looksLikeRelativePath(s):
            let full = join(cwd, s)
            return exists(full) ? (.string(full), [(field, full)]) : (value, [])
        case .object(let o):
            var out: [String: JSONValue] = [:]
            var changed: [(field: String, path: String)] = []
            for k in o.keys.sorted() {
                let (v, c) = absolutize(o[k]!, cwd: cwd, field: "\(field).\(k)", exists: exists)
                out[k] = v
                changed += c
            }
            return (.object(out), changed)
        case .array(let a):
            var changed: [(field: String, path: String)] = []
            let items = a.enumerated().map { i, v in
                let (nv, c) = absolutize(v, cwd: cwd, field: "\(field)[\(i)]", exists: exists)
                changed += c
                return nv
            }
            return (.array(items), changed)
        default:
            return (value, [])
        }
    }

    /// Not absolute, not a URL, not empty, one line: worth asking the file system.
    static func looksLikeRelativePath(_ s: String) -> Bool {
        !s.isEmpty && !s.hasPrefix("/") && !s.contains("://") && !s.contains("\n") && s.utf8.count < 4096
    }

    /// "/a/b" + "./c/../d.csv" -> "/a/b/d.csv": "." and ".." folded so the
    /// path the host is told reads well in its messages.
    static func join(_ cwd: String, _ rel: String) -> String {
        var parts = cwd.split(separator: "/").map(String.init)
        for p in rel.split(separator: "/") {
            switch p {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(String(p))
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}

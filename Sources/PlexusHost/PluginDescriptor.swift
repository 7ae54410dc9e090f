import CPlexus
import PlexusCore

/// A checked, Swift-side copy of a plugin's descriptor.
public struct PluginDescriptor: Sendable {
    public struct Capability: Sendable, Equatable {
        public let name: String
        public let description: String?
        public let input: String?
        public let output: String?
    }

    public struct Permission: Sendable, Equatable {
        public let kind: String   // "call", "publish", "subscribe"
        public let pattern: String
    }

    public struct Export: Sendable {
        public let name: String
        public let description: String?
        /// nil for a plugin in a worker: the function lives in that process.
        public let function: (@convention(c) () -> Void)?
        public let returnType: UInt8
        public let argTypes: [UInt8]
        public let argNames: [String]?

        /// "pow(base: f64, exponent: f64) -> f64"
        public var signature: String {
            let args = argTypes.enumerated().map { i, t in
                (argNames.map { "\($0[i]): " } ?? "") + TypeName.of(t)
            }
            return "\(name)(\(args.joined(separator: ", "))) -> \(TypeName.of(returnType))"
        }
    }

    public let name: String
    public let version: String
    public let description: String?
    public let abiMajor: UInt16
    public let abiMinor: UInt16
    public let concurrent: Bool
    public let capabilities: [Capability]
    public let permissions: [Permission]
    public let exports: [Export]
    /// How the worker that sent this descriptor is confined
    /// ("mount-namespace+landlock", ..., "rlimits-only"); nil in process.
    public var confinement: String? = nil
    public var abi: String { "\(abiMajor).\(abiMinor)" }

    /// Every capability name the agent answers, handler-backed and typed exports.
    public var allCapabilityNames: [String] { capabilities.map(\.name) + exports.map(\.name) }

    /// The name plexus.yaml knows a plugin file by: "Plugins/textkit.so" -> "textkit".
    public static func stem(of path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.hasSuffix(".so") ? String(file.dropLast(3)) : file
    }
}

enum TypeName {
    static func of(_ t: UInt8) -> String {
        switch UInt32(t) {
        case PLEXUS_TYPE_VOID.rawValue: "void"
        case PLEXUS_TYPE_BOOL.rawValue: "bool"
        case PLEXUS_TYPE_I32.rawValue: "i32"
        case PLEXUS_TYPE_I64.rawValue: "i64"
        case PLEXUS_TYPE_U32.rawValue: "u32"
        case PLEXUS_TYPE_U64.rawValue: "u64"
        case PLEXUS_TYPE_F32.rawValue: "f32"
        case PLEXUS_TYPE_F64.rawValue: "f64"
        case PLEXUS_TYPE_STRING.rawValue: "string"
        case PLEXUS_TYPE_BUFFER.rawValue: "buffer"
        case PLEXUS_TYPE_STRING_OWNED.rawValue: "string(owned)"
        default: "type#\(t)"
        }
    }
}

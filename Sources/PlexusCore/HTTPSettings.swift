/// The host's HTTP server (plexus.yaml `http:`, `plexus run --http`):
/// health, metrics and the dashboard. Off unless an address is given.
public struct HTTPSettings: Sendable, Equatable {
    /// Where to listen; nil: no HTTP server.
    public var listen: Address?
    /// When set, every request but /healthz must carry `Authorization: Bearer TOKEN`.
    /// Required when `listen` is not a loopback address.
    public var token: String?
    public init() {}

    /// An address other machines can reach with no token to guard it: refused
    /// wherever it comes from (plexus.yaml or --http).
    public var isOpenWithoutToken: Bool { listen.map { !$0.isLoopback } == true && token == nil }

    /// "127.0.0.1:7400", "[::1]:7400", "localhost:7400", "0.0.0.0:7400".
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        /// Parses HOST:PORT; the reason it is not one otherwise.
        public static func parse(_ text: String) -> Result<Address, AddressError> {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(AddressError("expected HOST:PORT such as 127.0.0.1:7400, found \"\(text)\""))
            }
            var host = String(text[..<colon])
            let portText = text[text.index(after: colon)...]
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return .failure(AddressError("\"\(text)\" has no host: give one, such as 127.0.0.1:7400")) }
            guard let port = Int(portText), (0...65_535).contains(port) else {
                return .failure(AddressError("\"\(text)\": the port must be a number from 0 to 65535, found \"\(portText)\""))
            }
            guard host == "localhost" || isIPv4(host) || host.contains(":") else {
                return .failure(AddressError("\"\(text)\": the host must be an IP address or localhost, found \"\(host)\""))
            }
            return .success(Address(host: host == "localhost" ? "127.0.0.1" : host, port: port))
        }

        /// 127.0.0.0/8 and ::1: reachable from this machine only.
        public var isLoopback: Bool { host.hasPrefix("127.") || host == "::1" }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        static func isIPv4(_ s: String) -> Bool {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts.allSatisfy { p in p.count <= 3 && UInt8(p) != nil }
        }
    }

    public struct AddressError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ d: String) { description = d }
    }
}

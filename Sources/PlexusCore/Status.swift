@_exported import CPlexus


/// A failure with its ABI status and a sentence saying what went wrong and where.
public struct PlexusError: Error, CustomStringConvertible, Equatable, Sendable {
    public let status: plexus_status
    public let detail: String

    public init(_ code: plexus_status_code, _ detail: String) {
        self.status = plexus_status(code.rawValue)
        self.detail = detail
    }

    public init(status: plexus_status, _ detail: String) {
        self.status = status
        self.detail = detail
    }

    /// The code's symbolic name, e.g. "MAILBOX_FULL".
    public var name: String { statusName(status) }

    public var description: String { "\(name): \(detail)" }

    public func `is`(_ code: plexus_status_code) -> Bool { status == plexus_status(code.rawValue) }
}

public func statusName(_ s: plexus_status) -> String { String(cString: plexus_status_name(s)) }
public func statusMessage(_ s: plexus_status) -> String { String(cString: plexus_status_message(s)) }

extension plexus_status_code {
    public var status: plexus_status { plexus_status(rawValue) }
}

/// Swift spellings `.MAILBOX_FULL` etc. for the ABI's status codes.
extension plexus_status_code {
    public static let OK = PLEXUS_OK
    public static let INVALID_ARGUMENT = PLEXUS_INVALID_ARGUMENT
    public static let NO_MEMORY = PLEXUS_NO_MEMORY
    public static let NO_SUCH_AGENT = PLEXUS_NO_SUCH_AGENT
    public static let NO_SUCH_CAPABILITY = PLEXUS_NO_SUCH_CAPABILITY
    public static let TIMEOUT = PLEXUS_TIMEOUT
    public static let EXPIRED = PLEXUS_EXPIRED
    public static let TOO_LARGE = PLEXUS_TOO_LARGE
    public static let MAILBOX_FULL = PLEXUS_MAILBOX_FULL
    public static let HANDLER_FAILED = PLEXUS_HANDLER_FAILED
    public static let PERMISSION_DENIED = PLEXUS_PERMISSION_DENIED
    public static let ABI_MISMATCH = PLEXUS_ABI_MISMATCH
    public static let BAD_DESCRIPTOR = PLEXUS_BAD_DESCRIPTOR
    public static let MALFORMED_FRAME = PLEXUS_MALFORMED_FRAME
    public static let UNSUPPORTED = PLEXUS_UNSUPPORTED
    public static let SHUTTING_DOWN = PLEXUS_SHUTTING_DOWN
    public static let AGENT_CRASHED = PLEXUS_AGENT_CRASHED
    public static let TYPE_MISMATCH = PLEXUS_TYPE_MISMATCH
    public static let ARITY_MISMATCH = PLEXUS_ARITY_MISMATCH
    public static let NOT_A_REQUEST = PLEXUS_NOT_A_REQUEST
    public static let INTERNAL = PLEXUS_INTERNAL
    public static let UNAVAILABLE = PLEXUS_UNAVAILABLE
    public static let CONFLICT = PLEXUS_CONFLICT
    public static let CANCELLED = PLEXUS_CANCELLED
    public static let LIMIT_REACHED = PLEXUS_LIMIT_REACHED
}

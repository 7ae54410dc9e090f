/// Integers as the channel's control payloads carry them (plexus_channel.h:
/// little-endian), shared by the worker link and typed exports.
enum LittleEndian {
    /// The n-byte integer at `at`.
    static func read(_ p: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(p[at + $1]) << (8 * UInt64($1)) }
    }

    /// v as n bytes.
    static func bytes(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
}

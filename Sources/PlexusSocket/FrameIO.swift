import Glibc
import PlexusCore

/// Reads and writes whole frames on a stream socket. Lengths are checked
/// before anything is allocated for the body.
struct FrameIO {
    let fd: Int32
    let maxPayload: UInt64

    enum ReadResult { case frame([UInt8]), closed }

    /// Reads one frame. `.closed` on a clean end-of-file between frames;
    /// throws MALFORMED_FRAME/TOO_LARGE for a bad header or a frame cut short.
    func read() throws(PlexusError) -> ReadResult {
        var header = [UInt8](repeating: 0, count: Wire.headerLength)
        let got = try readFull(&header, from: 0)
        if got == 0 { return .closed }
        if got < header.count { throw PlexusError(.MALFORMED_FRAME, "connection closed inside a frame header (\(got) of 12 bytes)") }
        let checked: Result<Int, PlexusError> = header.withUnsafeBytes { h in
            do throws(PlexusError) { return .success(try Wire.bodyLength(header: h, maxPayload: maxPayload)) }
            catch { return .failure(error) }
        }
        let body = try checked.get()
        var frame = header + [UInt8](repeating: 0, count: body)
        let n = try readFull(&frame, from: header.count)
        if n < body { throw PlexusError(.MALFORMED_FRAME, "connection closed inside a frame body (\(n) of \(body) bytes)") }
        return .frame(frame)
    }

    /// Fills buf[from...]; returns how many bytes arrived before end-of-file.
    private func readFull(_ buf: inout [UInt8], from start: Int) throws(PlexusError) -> Int {
        var off = start
        while off < buf.count {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + off, $0.count - off) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw PlexusError(.MALFORMED_FRAME, "read failed: \(String(cString: strerror(errno)))")
            }
            off += n
        }
        return off - start
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(PlexusError) {
        var off = 0
        while off < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw PlexusError(.SHUTTING_DOWN, "the other end went away (write failed: \(String(cString: strerror(errno))))")
            }
            off += n
        }
    }

    func write(_ env: Envelope) throws(PlexusError) {
        let frame = try env.encode(maxPayload: maxPayload)
        let r: Result<Void, PlexusError> = frame.withUnsafeBytes { b in
            do throws(PlexusError) { return .success(try write(b)) } catch { return .failure(error) }
        }
        try r.get()
    }
}

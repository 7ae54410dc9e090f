import Glibc
import PlexusCore

/// Checks a file is a loadable shared object for this machine before dlopen
/// sees it, so the refusal can say what the file actually is.
enum ELFCheck {
    static let maxPluginBytes: Int64 = 512 * 1024 * 1024

    #if arch(x86_64)
    static let hostMachine: UInt16 = 62
    #elseif arch(arm64)
    static let hostMachine: UInt16 = 183
    #else
    static let hostMachine: UInt16 = 0
    #endif

    static func machineName(_ m: UInt16) -> String {
        switch m {
        case 3: "x86 (32-bit)"
        case 40: "ARM (32-bit)"
        case 62: "x86-64"
        case 183: "AArch64"
        case 243: "RISC-V"
        default: "machine \(m)"
        }
    }

    static func check(path: String) throws(PlexusError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw PlexusError(.INVALID_ARGUMENT, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw PlexusError(.BAD_DESCRIPTOR, "not a regular file (a device, directory or FIFO, or a link to one)")
        }
        guard Int64(st.st_size) <= maxPluginBytes else {
            throw PlexusError(.TOO_LARGE, "file is \(st.st_size) bytes; plugins may be at most \(maxPluginBytes)")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PlexusError(.INVALID_ARGUMENT, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var h = [UInt8](repeating: 0, count: 64)
        let n = h.withUnsafeMutableBytes { read(fd, $0.baseAddress, 64) }
        guard n >= 4, h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46 else {
            let shown = h.prefix(max(0, min(n, 4))).map { String(format2($0)) }.joined(separator: " ")
            throw PlexusError(.BAD_DESCRIPTOR, "not an ELF file: expected magic 7f 45 4c 46, found \(shown.isEmpty ? "an empty file" : shown)")
        }
        guard n >= 64 else { throw PlexusError(.BAD_DESCRIPTOR, "truncated ELF file: \(n) bytes, the header alone needs 64") }
        guard h[4] == 2 else { throw PlexusError(.BAD_DESCRIPTOR, "wrong ELF class: expected 64-bit (2), found \(h[4])") }
        guard h[5] == 1 else { throw PlexusError(.BAD_DESCRIPTOR, "wrong byte order: expected little-endian (1), found \(h[5])") }
        let type = UInt16(h[16]) | UInt16(h[17]) << 8
        guard type == 3 else {
            throw PlexusError(.BAD_DESCRIPTOR, "not a shared object: expected ELF type ET_DYN (3), found \(type)")
        }
        let machine = UInt16(h[18]) | UInt16(h[19]) << 8
        guard machine == hostMachine else {
            throw PlexusError(.BAD_DESCRIPTOR,
                "wrong architecture: expected \(machineName(hostMachine)) (\(hostMachine)), found \(machineName(machine)) (\(machine))")
        }
        try checkExtents(fd: fd, header: h, size: UInt64(st.st_size))
    }

    /// A truncated library makes the dynamic loader fault (SIGBUS) when it
    /// touches a mapped page past the end of the file, so every table and
    /// every loadable segment must lie inside the file before dlopen runs.
    private static func checkExtents(fd: Int32, header h: [UInt8], size: UInt64) throws(PlexusError) {
        func u16(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(b[o]) | UInt64(b[o + 1]) << 8 }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
        let phoff = u64(h, 32), shoff = u64(h, 40)
        let phentsize = u16(h, 54), phnum = u16(h, 56), shentsize = u16(h, 58), shnum = u16(h, 60)
        func truncated(_ what: String, _ end: UInt64) -> PlexusError {
            PlexusError(.BAD_DESCRIPTOR, "truncated ELF file: \(what) ends at byte \(end) but the file has \(size) bytes")
        }
        guard phentsize >= 56, phnum > 0, phnum < 4096 else {
            throw PlexusError(.BAD_DESCRIPTOR, "malformed ELF file: \(phnum) program headers of \(phentsize) bytes")
        }
        let phEnd = phoff + phentsize * phnum
        guard phoff < size, phEnd <= size else { throw truncated("the program header table", phEnd) }
        let shEnd = shoff + shentsize * shnum
        guard shEnd <= size else { throw truncated("the section header table", shEnd) }
        var table = [UInt8](repeating: 0, count: Int(phEnd - phoff))
        let n = table.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(phoff)) }
        guard n == table.count else { throw truncated("the program header table", phEnd) }
        for i in 0..<Int(phnum) {
            let e = i * Int(phentsize)
            let type = UInt32(truncatingIfNeeded: u64(table, e) & 0xffff_ffff)
            guard type == 1 else { continue }   // PT_LOAD
            let offset = u64(table, e + 8), filesz = u64(table, e + 32)
            guard offset.addingReportingOverflow(filesz).overflow == false, offset + filesz <= size else {
                throw truncated("loadable segment \(i)", offset &+ filesz)
            }
        }
    }

    private static func format2(_ b: UInt8) -> String {
        let s = String(b, radix: 16)
        return s.count == 1 ? "0" + s : s
    }
}

import Foundation
import PlexusCore
import PlexusSocket
import PlexusTestSupport
import Testing

/// The default socket's directory (/tmp/plexus-UID) is the user's own:
/// created 0700, and refused when another user could have prepared it.
@Suite("Socket path")
struct SocketPathTests {
    func refusal(_ dir: String) -> String? {
        do { try SocketPath.prepareDirectory(of: dir + "/plexus.sock", othersMayConnect: false, privateDirectory: dir); return nil }
        catch { return error.detail }
    }

    func mode(_ path: String) -> mode_t {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test func theDirectoryIsCreatedPrivateAndOnlyForItsOwnSockets() throws {
        let dir = TestDirectory.make("sockpath") + "/plexus-me"
        #expect(refusal(dir) == nil)
        #expect(mode(dir) == 0o700)
        try SocketPath.prepareDirectory(of: dir + "/plexus.sock", othersMayConnect: true, privateDirectory: dir)
        #expect(mode(dir) == 0o711)   // other users' clients pass through, cannot list
        // A socket elsewhere is not this directory's business.
        try SocketPath.prepareDirectory(of: "/elsewhere/plexus.sock", othersMayConnect: false, privateDirectory: dir + "-absent")
        #expect(!FileManager.default.fileExists(atPath: dir + "-absent"))
    }

    @Test func aDirectoryAnotherUserCouldHavePreparedIsRefused() throws {
        let base = TestDirectory.make("sockpath")
        let open = base + "/open"
        mkdir(open, 0o755)
        chmod(open, 0o777)
        #expect(refusal(open)?.contains("others may write in it (mode 777)") == true, "\(refusal(open) ?? "accepted")")

        let link = base + "/link"
        symlink(base, link)
        #expect(refusal(link)?.contains("it is not a directory") == true, "\(refusal(link) ?? "accepted")")

        if getuid() == 0 {
            let theirs = base + "/theirs"
            mkdir(theirs, 0o700)
            chown(theirs, 65534, 65534)
            #expect(refusal(theirs)?.contains("it belongs to uid 65534") == true, "\(refusal(theirs) ?? "accepted")")
        }
    }

    /// Any other socket ($XDG_RUNTIME_DIR, --socket): a directory others may
    /// write in lets them replace the socket, unless it is sticky like /tmp.
    @Test func aSocketElsewhereIsRefusedInADirectoryOthersMayWriteIn() throws {
        let base = TestDirectory.make("sockpath")
        let shared = base + "/shared"
        mkdir(shared, 0o755)
        chmod(shared, 0o777)
        let e = #expect(throws: PlexusError.self) {
            try SocketPath.prepareDirectory(of: shared + "/plexus.sock", othersMayConnect: false, privateDirectory: base + "/none")
        }
        #expect(e?.detail.contains("refusing to put the socket in \(shared): others may write in it and it is not sticky (mode 777)") == true,
                "\(e?.detail ?? "")")
        chmod(shared, 0o1777)
        try SocketPath.prepareDirectory(of: shared + "/plexus.sock", othersMayConnect: false, privateDirectory: base + "/none")
        chmod(shared, 0o755)
        try SocketPath.prepareDirectory(of: shared + "/plexus.sock", othersMayConnect: false, privateDirectory: base + "/none")
    }
}

import Foundation
import PlexusTestSupport
import Testing

/// One build gives a host that works: `swift build` puts plexus-worker
/// beside plexus, the host finds it there without PLEXUS_WORKER, and the
/// helper is a C program that maps no Swift runtime at its start.
@Suite("The worker helper beside plexus", .serialized)
struct WorkerHelperTests {
    static let bin = URL(fileURLWithPath: PlexusCommand.path).deletingLastPathComponent().path

    /// plexus (and, when given, the helper) linked into a directory of their
    /// own with Plugins/textkit.so, so that "beside the executable" is this
    /// directory and nothing else. Removed by the caller.
    func install(withHelper: Bool) throws -> String {
        let dir = TestDirectory.make("helper")
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/plugins", withIntermediateDirectories: true)
        try fm.copyItem(atPath: CLITests.root + "/Plugins/textkit.so", toPath: dir + "/plugins/textkit.so")
        for name in ["plexus"] + (withHelper ? ["plexus-worker"] : []) {
            // A hard link where the file system allows it (the host reads
            // /proc/self/exe, which a symbolic link would resolve back to the bin directory).
            do { try fm.linkItem(atPath: Self.bin + "/" + name, toPath: dir + "/" + name) } catch {
                try fm.copyItem(atPath: Self.bin + "/" + name, toPath: dir + "/" + name)
            }
        }
        return dir
    }

    /// Runs dir/plexus with PLEXUS_WORKER removed from its environment.
    func call(_ dir: String, _ args: [String]) throws -> PlexusCommand.Outcome {
        try PlexusCommand.run(args, in: dir, unset: ["PLEXUS_WORKER", "PLEXUS_SANDBOX"], executable: dir + "/plexus")
    }

    /// A worker does not take the host's umask: a host whose umask was 0177
    /// when it spawned a worker (its socket server narrows it that far while
    /// it binds, and warm workers start then) still has a worker that can
    /// open the plugin image its root holds for uid 65534.
    @Test func aWorkerSpawnedUnderANarrowUmaskStillLoadsItsPlugin() throws {
        let dir = try install(withHelper: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = "umask 177 && exec ./plexus call echo --embedded --sandbox process --plugins ./plugins --json '{\"umask\":177}'"
        let r = try PlexusCommand.run(["-c", script], in: dir, unset: ["PLEXUS_WORKER", "PLEXUS_SANDBOX"], executable: "/bin/sh")
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("\"umask\":177"), "\(r.out)")
    }

    @Test func callEchoAnswersThroughTheHelperBesideTheExecutable() throws {
        let dir = try install(withHelper: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try call(dir, ["call", "echo", "--embedded", "--sandbox", "process", "--plugins", dir + "/plugins",
                               "--json", "{\"hello\":\"world\"}"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "{\"hello\":\"world\"}", "\(r.out) \(r.err)")
    }

    @Test func withoutTheHelperTheErrorSaysWhereAndHowToBuildIt() throws {
        let dir = try install(withHelper: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try call(dir, ["call", "echo", "--embedded", "--sandbox", "process", "--plugins", dir + "/plugins",
                               "--json", "1"])
        #expect(r.status != 0)
        #expect(r.err.contains("the worker helper \(dir)/plexus-worker is missing"), "\(r.err)")
        #expect(r.err.contains("swift build --product plexus"), "\(r.err)")
    }

    /// What the dynamic loader maps when a worker starts (ld.so --list, as
    /// ldd): libc and nothing of Swift, libseccomp or libffi, which are
    /// linked in statically.
    @Test func theHelperLoadsNoSwiftRuntime() throws {
        #if arch(x86_64)
        let loader = "/lib64/ld-linux-x86-64.so.2"
        #else
        let loader = "/lib/ld-linux-aarch64.so.1"
        #endif
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loader)
        p.arguments = ["--list", Self.bin + "/plexus-worker"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("libc.so.6"), "\(text)")
        for lib in ["libswift", "libseccomp", "libffi", "libstdc++", "libdispatch", "libFoundation"] {
            #expect(!text.contains(lib), "plexus-worker loads \(lib):\n\(text)")
        }
    }
}

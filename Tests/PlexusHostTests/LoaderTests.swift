import Foundation
import PlexusCore
import PlexusHost
import Testing

@Suite("Loading and refusing plugins")
struct LoaderTests {
    func refusal(_ path: String) -> PluginRefusal? {
        let host = Host(HostConfiguration(pluginsDirectory: nil))
        do { try host.load(path: path); return nil } catch { return error }
    }

    @Test func abiMajorMismatchNamesBothVersions() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DMAJOR=2"])))
        #expect(r.error.is(.ABI_MISMATCH))
        #expect(r.error.detail.contains("expected 1, found 2"))
    }

    @Test func newerMinorIsRefused() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DMINOR=7"])))
        #expect(r.error.is(.ABI_MISMATCH))
        #expect(r.error.detail.contains("expected at most 2, found 7"))
    }

    @Test func unknownDescriptorSizeIsRefused() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DDESC_SIZE=16"])))
        #expect(r.error.detail == "descriptor struct_size: expected at least 112 (ABI 1.0), found 16")
    }

    @Test func envelopeSizeMismatchIsRefused() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DENV_SIZE=64"])))
        #expect(r.error.detail.contains("envelope_size: expected 112, found 64"))
    }

    @Test func hostTableSizeOutsideWhatTheHostKnowsIsRefused() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DHOST_SIZE=40"])))
        #expect(r.error.detail == "host_size: expected 96 (ABI 1.0) to 152 (ABI 1.2), found 40 (the plugin was compiled against a different plexus.h)")
    }

    @Test func missingEntrySymbol() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DNO_ENTRY"])))
        #expect(r.error.detail.contains("missing symbol"))
        #expect(r.error.detail.contains("plexus_plugin_entry"))
    }

    @Test func unresolvedSymbolIsALoadErrorNotACrashLater() throws {
        let r = try #require(refusal(Fixtures.build("broken.c", ["-DMISSING_SYMBOL"])))
        #expect(r.error.detail.contains("plexus_fixture_symbol_nobody_defines"))
    }

    @Test func notAnELFFile() throws {
        let path = Fixtures.dir + "/text-\(UUID().uuidString).so"
        try "hello, I am not a library\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try #require(refusal(path))
        #expect(r.error.detail.contains("not an ELF file: expected magic 7f 45 4c 46, found 68 65 6c 6c"))
    }

    @Test func emptyAndTruncatedFiles() throws {
        let empty = Fixtures.dir + "/empty-\(UUID().uuidString).so"
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(refusal(empty)?.error.detail.contains("an empty file") == true)
        let good = try Data(contentsOf: URL(fileURLWithPath: Fixtures.probe()))
        let cut = Fixtures.dir + "/cut-\(UUID().uuidString).so"
        _ = FileManager.default.createFile(atPath: cut, contents: good.prefix(40))
        #expect(refusal(cut)?.error.detail.contains("truncated ELF file") == true)
        let half = Fixtures.dir + "/half-\(UUID().uuidString).so"
        _ = FileManager.default.createFile(atPath: half, contents: good.prefix(good.count / 3))
        #expect(refusal(half)?.error.detail.contains("truncated ELF file") == true)
    }

    @Test func wrongArchitectureNamesBoth() throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.probe()))
        bytes[18] = 183; bytes[19] = 0   // e_machine = AArch64
        let path = Fixtures.dir + "/arm-\(UUID().uuidString).so"
        _ = FileManager.default.createFile(atPath: path, contents: bytes)
        let r = try #require(refusal(path))
        #expect(r.error.detail.contains("wrong architecture: expected x86-64 (62), found AArch64 (183)"))
    }

    @Test func linkToDevZeroIsRefused() throws {
        let path = Fixtures.dir + "/zero-\(UUID().uuidString).so"
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/zero")
        #expect(refusal(path)?.error.detail.contains("not a regular file") == true)
    }

    @Test func duplicateAgentNameIsRefusedDeterministically() throws {
        let dir = Fixtures.dir + "/dup-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.probe(named: "twin"), toPath: dir + "/a.so")
        try FileManager.default.copyItem(atPath: Fixtures.probe(named: "twin"), toPath: dir + "/b.so")
        let host = Host(HostConfiguration(pluginsDirectory: dir))
        try host.loadPlugins()
        host.start()
        defer { host.shutdown() }
        let reports = host.pluginReports
        #expect(reports.map(\.status) == ["loaded", "refused"])
        #expect(reports[1].reason == "duplicate agent name 'twin': already provided by \(dir)/a.so, which loaded first (plugin files load in name order)")
        #expect(try host.callText("probe.whoami") == "twin")
    }

    @Test func initFailureRemovesTheAgentAndReportsIt() throws {
        let bad = try Fixtures.build("broken.c", ["-DINIT_FAILS"])
        let good = try Fixtures.probe()
        let host = try startedHost([bad, good])
        defer { host.shutdown() }
        let r = try #require(host.pluginReports.first { $0.file == bad })
        #expect(r.status == "refused")
        #expect(r.reason?.contains("init returned INVALID_ARGUMENT") == true)
        _ = expectError(.NO_SUCH_CAPABILITY) { _ = try host.callText("broken.cap") }
        #expect(try host.callText("probe.echo", "still here") == "still here")
    }

    @Test func refusedFilesDoNotStopTheOthers() throws {
        let dir = Fixtures.dir + "/mixed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.build("broken.c", ["-DMAJOR=3"]), toPath: dir + "/a-old.so")
        try "junk".write(toFile: dir + "/b-junk.so", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: Fixtures.probe(), toPath: dir + "/c-probe.so")
        try "not a plugin".write(toFile: dir + "/README.txt", atomically: true, encoding: .utf8)
        let host = Host(HostConfiguration(pluginsDirectory: dir))
        try host.loadPlugins()
        host.start()
        defer { host.shutdown() }
        #expect(host.pluginReports.map(\.status) == ["refused", "refused", "loaded"])
        #expect(try host.callText("probe.echo", "ok") == "ok")
    }

    @Test func descriptorIsReadIntoTheReport() throws {
        let host = Host(HostConfiguration(pluginsDirectory: nil))
        let d = try host.load(path: Fixtures.probe(named: "described"))
        #expect(d.name == "described")
        #expect(d.version == "0.1.0")
        #expect(d.abi == "1.2")
        #expect(d.capabilities.count == 17)
        #expect(d.permissions.map { "\($0.kind) \($0.pattern)" } == ["call *", "publish probe.events.>", "subscribe probe.none"])
        #expect(d.exports.first?.signature == "probe.add(a: i64, b: i64) -> i64")
    }
}

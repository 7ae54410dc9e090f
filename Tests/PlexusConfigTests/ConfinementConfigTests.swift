import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml's confinement keys: network, filesystem, confinement and
/// system calls by name, and the file:line:column error for each mistake.
@Suite("plexus.yaml confinement")
struct ConfinementConfigTests: ConfigParsing {

    @Test func grantsApplyPerPluginOverTheDefaults() throws {
        let c = try parse("""
            defaults:
              confinement: rlimits-only
              filesystem: { read: [/usr/share], tmp_size: 4MiB }
            plugins:
              fetcher:
                network: true
                syscalls: [socket, memfd_secret]
                filesystem: { read: [/etc/hostname], write: [/tmp] }
            """)
        #expect(c.workerPolicy.rlimitsOnlyAllowed)
        #expect(c.workerPolicy.readPaths == ["/usr/share"] && c.workerPolicy.tmpSize == 4 << 20)
        #expect(!c.workerPolicy.network)
        let f = c.settings(for: "/x/fetcher.so").policy
        #expect(f.network && f.allowSocket && f.extraSyscalls == ["memfd_secret"])
        #expect(f.readPaths == ["/etc/hostname"] && f.writePaths == ["/tmp"])
        #expect(f.tmpSize == 4 << 20 && f.rlimitsOnlyAllowed)   // inherited
        let d = try parse("plugins:\n  x: { sandbox: process }\n").settings(for: "x.so").policy
        #expect(!d.network && !d.rlimitsOnlyAllowed && d.readPaths.isEmpty && d.tmpSize == 16 << 20)
    }

    @Test func everyMistakeNamesFileLineAndField() {
        #expect(error("defaults:\n  filesystem: { read: [data] }\n")
                == "plexus.yaml:2:24: defaults.filesystem.read: expected an absolute path, found \"data\"")
        #expect(error("plugins:\n  a:\n    filesystem:\n      write: [/no/such/dir]\n")
                == "plexus.yaml:4:15: plugins.a.filesystem.write: /no/such/dir does not exist")
        #expect(error("defaults:\n  filesystem: { read: [/usr/../etc] }\n")
                == "plexus.yaml:2:24: defaults.filesystem.read: a path may not contain '..', found \"/usr/../etc\"")
        #expect(error("defaults:\n  filesystem: { read: /usr }\n")
                == "plexus.yaml:2:23: defaults.filesystem.read: expected a list of absolute paths such as [/srv/data], found \"/usr\"")
        #expect(error("defaults:\n  filesystem: { exec: [/usr] }\n")
                == "plexus.yaml:2:17: defaults.filesystem.exec: unknown field; expected one of: read, write, tmp_size")
        #expect(error("defaults:\n  filesystem: { tmp_size: 1KiB }\n")
                == "plexus.yaml:2:27: defaults.filesystem.tmp_size: expected between 1MiB and 16GiB")
        #expect(error("defaults:\n  network: maybe\n") == "plexus.yaml:2:12: defaults.network: expected true or false, found \"maybe\"")
        #expect(error("defaults:\n  confinement: none\n")
                == "plexus.yaml:2:16: defaults.confinement: expected required or rlimits-only, found \"none\"")
        #expect(error("plugins:\n  a:\n    confinement: rlimits-only\n").hasPrefix(
                "plexus.yaml:3:18: plugins.a.confinement: set confinement under defaults"))
        #expect(error("defaults:\n  syscalls: [rt_sigqueueinfo]\n")
                == "plexus.yaml:2:14: defaults.syscalls: the system call rt_sigqueueinfo can never be granted: it reaches outside the worker or undoes its confinement")
        #expect(error("defaults:\n  syscalls: [io_uring_setup]\n").contains("io_uring_setup can never be granted"))
        #expect(error("defaults:\n  network_namespace: true\n").hasPrefix(
                "plexus.yaml:2:22: defaults.network_namespace: every worker now has its own empty network namespace"))
    }
}

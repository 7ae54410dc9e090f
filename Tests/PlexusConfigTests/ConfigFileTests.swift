import PlexusConfig
import PlexusHost
import Testing

/// plexus.yaml: what it sets, and the errors a user sees for each mistake.
@Suite("plexus.yaml")
struct ConfigFileTests: ConfigParsing {

    @Test func defaultsAndPerPluginSettingsApply() throws {
        let c = try parse("""
            defaults:
              limits: { memory: 512MiB, cpu_seconds: 30, open_files: 100, file_size: 8MiB }
              restart: { intensity: 2, period_seconds: 5, max_attempts: 4 }
              health: { heartbeat_ms: 250, timeout_ms: 2000 }
            plugins:
              textkit:
                sandbox: in-process
                config: { greeting: hi, times: 3, loud: true, tags: [a, b] }
              keywords:
                syscalls: [socket]
                limits: { memory: 64MiB }
                concurrency: 4
            """)
        #expect(c.workerPolicy.addressSpace == 512 << 20)
        #expect(c.workerPolicy.cpuSoftSeconds == 30 && c.workerPolicy.cpuHardSeconds == 40)
        #expect(c.restartPolicy.intensity == 2 && c.restartPolicy.maxAttempts == 4)
        #expect(c.restartPolicy.heartbeatIntervalMs == 250)
        let t = c.settings(for: "Plugins/textkit.so")
        #expect(t.sandbox == .inProcess)
        #expect(t.config == #"{"greeting":"hi","loud":true,"tags":["a","b"],"times":3}"#)
        let k = c.settings(for: "/x/keywords.so")
        #expect(k.sandbox == .process && k.policy.allowSocket && !k.policy.allowFork)
        #expect(k.policy.addressSpace == 64 << 20)
        #expect(k.policy.openFiles == 100)           // inherited from defaults
        #expect(k.policy.concurrency == 4 && t.policy.concurrency == 1)
        #expect(c.settings(for: "other.so").policy.addressSpace == 512 << 20)
    }

    @Test func everyMistakeNamesFileLineAndField() {
        #expect(error("defaults:\n  limits:\n    memroy: 1GiB\n")
                == "plexus.yaml:3:5: defaults.limits.memroy: unknown field; expected one of: memory, cpu_seconds, cpu_hard_seconds, open_files, file_size")
        #expect(error("plugins:\n  textkit:\n    sandbox: docker\n")
                == "plexus.yaml:3:14: plugins.textkit.sandbox: expected process or in-process, found \"docker\"")
        #expect(error("defaults:\n  limits: { memory: lots }\n")
                == "plexus.yaml:2:21: defaults.limits.memory: expected a size such as 512MiB or 1GiB, found \"lots\"")
        #expect(error("defaults:\n  limits: { memory: 1MiB }\n").contains("at least 32MiB"))
        #expect(error("defaults:\n  syscalls: [fork, teleport]\n")
                == "plexus.yaml:2:20: defaults.syscalls: unknown system call \"teleport\"; expected fork, exec, socket, ptrace or a system call's name such as memfd_secret")
        #expect(error("defaults:\n  grants: [socket]\n").hasPrefix(
                "plexus.yaml:2:11: defaults.grants: grants is now what the plugin may message: { call: [...], publish: [...], subscribe: [...] }; the system calls its filter lets through moved to syscalls:"))
        #expect(error("defaults:\n  restart: { max_attempts: 0 }\n").contains("defaults.restart.max_attempts: 0 is out of range 1...1000"))
        #expect(error("defaults:\n  limits: { cpu_seconds: 60, cpu_hard_seconds: 30 }\n").contains("cpu_hard_seconds: must be at least cpu_seconds (60)"))
        #expect(error("plugins:\n  fetcher:\n    concurrency: 0\n") == "plexus.yaml:3:18: plugins.fetcher.concurrency: 0 is out of range 1...256")
        #expect(error("defaults:\n  concurrency: 4\n").hasPrefix("plexus.yaml:2:16: defaults.concurrency: set concurrency per plugin"))
        #expect(error("colour: blue\n") == "plexus.yaml:1:1: colour: unknown field; expected one of: defaults, plugins, supervision, clients, store, http, metrics, tracing, reload, nats")
        #expect(error("store:\n  retention: { events: 10 }\n") == "plexus.yaml:2:24: store.retention.events: 10 is out of range 100...1000000000")
        #expect(error("store:\n  retention:\n    keep_days: 3\n")
                == "plexus.yaml:3:5: store.retention.keep_days: unknown field; expected one of: events, finished_tasks_hours, finished_runs_hours, interval_seconds")
        #expect(error("store:\n  path: \"\"\n") == "plexus.yaml:2:9: store.path: expected a file path, found an empty string")
        #expect(error("plugins: [textkit]\n").hasPrefix("plexus.yaml:1:10: plugins: expected a mapping"))
        #expect(error("defaults:\n  sandbox: [process\n").hasPrefix("plexus.yaml:"))
        #expect(error("defaults:\n  sandbox: [process\n").contains("not valid YAML"))
    }

    @Test func storeSettingsAreReadAndDefaultElsewhere() throws {
        let c = try parse("""
            store:
              path: /var/lib/plexus/state.db
              retention: { events: 5000, finished_tasks_hours: 2, finished_runs_hours: 48, interval_seconds: 0.5 }
            """)
        #expect(c.store.path == "/var/lib/plexus/state.db")
        #expect(c.store.retention.events == 5000 && c.store.retention.finishedTasksSeconds == 7200)
        #expect(c.store.retention.finishedRunsSeconds == 48 * 3600 && c.store.retention.intervalSeconds == 0.5)
        let d = try parse("store:\n  retention: { events: 300 }\n")
        #expect(d.store.path == nil && d.store.retention.events == 300 && d.store.retention.finishedTasksSeconds == 7 * 86_400)
    }

    @Test func grantsAreReadPerPluginAndFromDefaults() throws {
        let c = try parse("""
            defaults:
              grants: { call: ["text.*"] }
            plugins:
              summarizer:
                grants: { call: [text.stats, text.keywords], publish: [docs.summarized], subscribe: ["docs.>"] }
            """)
        #expect(c.settings(for: "Plugins/summarizer.so").grants
                == [.call: ["text.stats", "text.keywords"], .publish: ["docs.summarized"], .subscribe: ["docs.>"]])
        #expect(c.settings(for: "Plugins/other.so").grants == [.call: ["text.*"]])
        #expect(try parse("plugins:\n  x: { sandbox: process }\n").settings(for: "x.so").grants == nil)   // what it requests
        #expect(error("plugins:\n  x:\n    grants: { call: [\"a.>.b\"] }\n")
                == "plexus.yaml:3:22: plugins.x.grants.call: pattern 'a.>.b': '>' may only be the last token")
        #expect(error("plugins:\n  x:\n    grants: { register: [a] }\n")
                == "plexus.yaml:3:15: plugins.x.grants.register: unknown field; expected one of: call, publish, subscribe")
        #expect(error("plugins:\n  x:\n    grants: { call: a }\n").contains("plugins.x.grants.call: expected a list of names or patterns"))
    }

    @Test func clientsAreReadWithUidTokenAndGrants() throws {
        let c = try parse("""
            clients:
              owner: { grants: { call: ["plexus.>"] } }
              reporter:
                uid: 1001
                token: "0123456789abcdef-reporter"
                grants: { call: [report.summarize], subscribe: ["docs.>"], register: [ocr] }
              batch: { uid: 1002 }
            """)
        #expect(c.ownerGrants == [.call: ["plexus.>"]])
        #expect(c.clients["reporter"] == ClientSpec(uid: 1001, token: "0123456789abcdef-reporter",
                                                    grants: [.call: ["report.summarize"], .subscribe: ["docs.>"], .register: ["ocr"]]))
        #expect(c.clients["batch"] == ClientSpec(uid: 1002))   // admitted by uid, granted nothing
        #expect(error("clients:\n  anyone: { grants: { call: [\">\"] } }\n")
                == "plexus.yaml:2:11: clients.anyone: a client needs a uid, a token (or token_env), or both: otherwise anyone could claim to be it")
        #expect(error("clients:\n  x: { token: short }\n")
                == "plexus.yaml:2:15: clients.x.token: a token needs at least 16 characters (it is the client's only secret)")
        #expect(error("clients:\n  x: { token_env: PLEXUS_TEST_UNSET_VARIABLE }\n")
                == "plexus.yaml:2:19: clients.x.token_env: the environment variable PLEXUS_TEST_UNSET_VARIABLE is not set")
        #expect(error("clients:\n  x: { uid: -1 }\n") == "plexus.yaml:2:13: clients.x.uid: -1 is out of range 0...4294967294")
        #expect(error("clients:\n  owner: { uid: 5 }\n") == "plexus.yaml:2:12: clients.owner.uid: unknown field; expected one of: grants")
        #expect(error("clients:\n  \"bad name\": { uid: 5 }\n").contains("clients.bad name: client name 'bad name' has the character ' '"))
    }

    @Test func theSupervisionTreeIsRead() throws {
        let c = try parse("""
            supervision:
              strategy: one-for-all
              intensity: 2
              children:
                - agent: textkit
                - group: text
                  strategy: rest-for-one
                  period_seconds: 5
                  children: [{ agent: keywords, restart: transient }, { agent: summarizer, restart: temporary }]
            """)
        let root = try #require(c.supervision)
        #expect(root.strategy == .oneForAll && root.intensity == 2 && root.periodSeconds == 10)
        #expect(root.agents == ["textkit", "keywords", "summarizer"])
        guard case .group(let g) = root.children[1] else { Issue.record("no group"); return }
        #expect(g.name == "text" && g.strategy == .restForOne && g.periodSeconds == 5)
        #expect(g.children == [.agent("keywords", .transient), .agent("summarizer", .temporary)])
        #expect(error("supervision:\n  children:\n    - agent: a\n      restart: forever\n")
                == "plexus.yaml:4:16: supervision.children[0].restart: expected permanent, transient or temporary, found \"forever\"")
        #expect(error("supervision:\n  children: [{ agent: a }, { agent: a }]\n").contains("agent 'a' appears twice"))
        #expect(error("supervision:\n  strategy: all-for-one\n").contains("expected one-for-one, one-for-all or rest-for-one"))
    }

    @Test func anEmptyFileChangesNothing() throws {
        let c = try parse("")
        #expect(c.sandbox == .process && c.plugins.isEmpty)
    }
}

// swift-tools-version:6.0
// Plexus: a host for multi-agent systems whose agents are C-ABI plugins.
// Dependencies point inward: plexus (CLI) -> PlexusSocket -> PlexusHost -> PlexusSandbox -> PlexusCore -> CPlexus.
import PackageDescription

let package = Package(
    name: "Plexus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "plexus", targets: ["plexus"]),
        // Example Swift agent, built by Plugins/build.sh and copied into Plugins/.
        .library(name: "summarizer", type: .dynamic, targets: ["SummarizerPlugin"]),
        // The weather crew's Swift agents (the main job, run.sh).
        .library(name: "analyst", type: .dynamic, targets: ["AnalystPlugin"]),
        .library(name: "reporter", type: .dynamic, targets: ["ReporterPlugin"]),
        // The Swift SDK, for plugin packages of their own (SDK/swift/example-plugin).
        .library(name: "PlexusAgent", targets: ["PlexusAgent"]),
        // The host itself, for a Swift program that embeds it (by path: its
        // release flags are unsafeFlags, which SwiftPM allows only there).
        .library(name: "PlexusHost", targets: ["PlexusHost"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
    ],
    targets: [
        // C: the envelope codec. Its public headers are the top-level include/ (symlink).
        .target(name: "CPlexus", path: "Sources/CPlexus"),
        // C, private (never installed): the host-worker channel protocol, the codec's unchecked
        // entry points, and the host functions' argument checks shared by the host and the worker.
        .target(name: "CPlexusInternal", dependencies: ["CPlexus"], path: "Sources/CPlexusInternal"),
        // C: libffi calls for typed exports.
        .target(
            name: "CPlexusFFI", dependencies: ["CPlexus"], path: "Sources/CPlexusFFI",
            linkerSettings: [.linkedLibrary("ffi")]),
        // C: POSIX calls Swift's Glibc module does not import (spawn, pipes, memfd, SHA-256).
        .target(name: "CPlexusPOSIX", path: "Sources/CPlexusPOSIX", linkerSettings: [.linkedLibrary("seccomp")]),
        // C: plexus-worker, the sandboxed worker helper, built beside `plexus` (where the host
        // looks for it) by every build that builds `plexus`. No language runtime: swiftc links
        // executables with swiftrt.o and -lswiftCore, so -nostartfiles leaves out swiftrt.o
        // (the only reference to the runtime) and link.c asks for --as-needed ahead of
        // -lswiftCore, which then is not loaded. libseccomp and libffi are linked statically
        // (-l:lib.a): the dynamic loader maps only libc at every worker start. unsafeFlags
        // here does not keep PlexusAgent from being used from git: SwiftPM checks only the
        // targets of the products a dependent uses.
        .executableTarget(
            name: "plexus-worker", dependencies: ["CPlexus", "CPlexusInternal", "CPlexusFFI"],
            path: "Sources/plexus-worker",
            cSettings: [.headerSearchPath("../CPlexusPOSIX/include"), .unsafeFlags(["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers", "-Wno-for-loop-analysis"])],
            linkerSettings: [.linkedLibrary(":libseccomp.a"), .linkedLibrary(":libffi.a"), .unsafeFlags(["-nostartfiles", "-no-toolchain-stdlib-rpath"])]),
        // Swift: envelopes, identifiers, subjects, statuses. No system calls.
        .target(name: "PlexusCore", dependencies: ["CPlexus"]),
        // Swift: OS threads, a mutex with a condition, the two clocks.
        .target(name: "PlexusThreads", dependencies: ["CPlexusPOSIX"]),
        // C: the span ring, appended to without a lock (private to the host).
        .target(name: "CPlexusTrace", path: "Sources/CPlexusTrace"),
        // Swift: traces: the span recorder and reading spans back as trees.
        .target(name: "PlexusTrace", dependencies: ["PlexusCore", "CPlexusTrace", "PlexusThreads",
                                                   .product(name: "Tracing", package: "swift-distributed-tracing")]),
        // Swift: supervision decisions (strategies, restart kinds, intensity, breakers); pure logic.
        .target(name: "PlexusSupervision"),
        // Swift: worker processes: spawning, limits, the channel, output capture.
        .target(name: "PlexusSandbox", dependencies: ["PlexusCore", "PlexusThreads", "CPlexusPOSIX", "CPlexusInternal"]),
        // Swift: the host's meters (swift-metrics API, Prometheus text): counters and
        // gauges on swift-prometheus's atomics, histograms lock-free (one atomic per bucket).
        .target(name: "PlexusMetrics", dependencies: [
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus")]),
        // Swift: plugin loading, registry, router, mailboxes, dispatch, typed exports.
        .target(
            name: "PlexusHost",
            dependencies: [
                "PlexusCore", "PlexusThreads", "PlexusSandbox", "PlexusSupervision", "CPlexusFFI", "CPlexusInternal", "PlexusTrace",
                "PlexusMetrics", .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            // Dynamic exclusivity checks cost ~30% of an in-process round trip
            // (perf, plexus bench --inproc-only). Every field shared between
            // threads is behind a lock or an atomic; debug builds, which the
            // tests run, keep the checks.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        // Swift: the durable store (SQLite in WAL mode through GRDB): tasks,
        // events, the agents' key-value store. Group commit: one writer thread.
        .target(
            name: "PlexusStore",
            dependencies: ["PlexusCore", "PlexusThreads", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "GRDBSQLite", package: "GRDB.swift"),
                           .product(name: "Logging", package: "swift-log")]),
        // Swift: durable tasks: priorities with aging, retries with backoff, dependencies.
        .target(
            name: "PlexusTasks",
            dependencies: ["PlexusHost", "PlexusStore", "PlexusThreads", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "HeapModule", package: "swift-collections"),
                           .product(name: "DequeModule", package: "swift-collections"),
                           .product(name: "Logging", package: "swift-log")]),
        // Swift: workflows: YAML graphs of steps run as durable tasks, checkpointed per step.
        .target(
            name: "PlexusWorkflows",
            dependencies: ["PlexusHost", "PlexusStore", "PlexusTasks", "PlexusConfig", "PlexusThreads",
                           .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Yams", package: "Yams"),
                           .product(name: "Logging", package: "swift-log")]),
        // Swift: plexus.yaml, validated, with errors naming file, line and field.
        .target(
            name: "PlexusConfig",
            dependencies: ["PlexusHost", "PlexusSandbox", .product(name: "Yams", package: "Yams")]),
        // Swift: the host's Unix socket (server and client), carrying wire frames.
        .target(name: "PlexusSocket", dependencies: [
            "PlexusTrace",
            "PlexusHost", "PlexusThreads", "CPlexusPOSIX", .product(name: "DequeModule", package: "swift-collections")]),
        // Swift: `plexus run`'s HTTP server (Hummingbird): /healthz, /metrics, the dashboard.
        .target(name: "PlexusHTTP", dependencies: [
            "PlexusCore", "PlexusHost", "PlexusMetrics",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log")]),
        // Swift: the live dashboard at / of `plexus run --http` (page, SSE stream, JSON).
        .target(name: "PlexusDashboard", dependencies: [
            "PlexusCore", "PlexusHost", "PlexusHTTP", "PlexusStore", "PlexusTasks", "PlexusWorkflows", "PlexusThreads",
            "PlexusTrace", .product(name: "Hummingbird", package: "hummingbird")]),
        // C: the official NATS client, libnats (Debian's libnats-dev), for PlexusCluster.
        .systemLibrary(name: "CNats", path: "Sources/CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        // Swift: several hosts as one system over NATS (plexus run --nats): joining, subjects,
        // announcements and heartbeats, and routing to agents, capabilities and topics on other hosts.
        .target(name: "PlexusCluster", dependencies: [
            "CNats", "PlexusCore", "PlexusHost", "PlexusThreads", .product(name: "Logging", package: "swift-log"),
            "PlexusStore", "PlexusTasks"]),
        // The CLI, one file per subcommand.
        .executableTarget(
            name: "plexus",
            dependencies: [
                "PlexusHost", "PlexusSocket", "PlexusConfig", "PlexusStore", "PlexusTasks", "PlexusWorkflows", "CPlexusPOSIX",
                "PlexusHTTP", "PlexusMetrics", "PlexusDashboard", "PlexusCluster",
                // Not linked in: listed so that every build of plexus builds its helper beside it.
                "plexus-worker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // SDK: helpers for writing agents in Swift (depends only on the ABI header).
        .target(name: "PlexusAgent", dependencies: ["CPlexus"], path: "SDK/swift/PlexusAgent"),
        // Example agent in Swift.
        .target(name: "SummarizerPlugin", dependencies: ["PlexusAgent"], path: "Plugins/summarizer"),
        .target(name: "AnalystPlugin", dependencies: ["PlexusAgent"], path: "Plugins/analyst"),
        .target(name: "ReporterPlugin", dependencies: ["PlexusAgent"], path: "Plugins/reporter"),

        // Scratch directories every test target shares, removed when the test process exits.
        .target(name: "PlexusTestSupport", path: "Tests/PlexusTestSupport"),
        .testTarget(name: "PlexusCoreTests", dependencies: ["PlexusTestSupport", "PlexusCore", "CPlexusInternal"]),
        .testTarget(name: "PlexusHostTests", dependencies: ["PlexusTestSupport", "PlexusHost", "PlexusSocket", "PlexusStore", "PlexusTasks", "PlexusWorkflows", "PlexusHTTP",
                                                                 .product(name: "InMemoryTracing", package: "swift-distributed-tracing")]),
        .testTarget(name: "PlexusWorkflowsTests", dependencies: ["PlexusTestSupport", "PlexusWorkflows"]),
        .testTarget(name: "PlexusConfigTests", dependencies: ["PlexusTestSupport", "PlexusConfig"]),
        .testTarget(name: "PlexusStoreTests", dependencies: ["PlexusTestSupport", "PlexusStore"]),
        .testTarget(name: "PlexusSupervisionTests", dependencies: ["PlexusTestSupport", "PlexusSupervision"]),
        // The plexus executable as a user runs it (exit statuses, suggestions, help).
        .testTarget(name: "PlexusCLITests", dependencies: ["PlexusTestSupport"]),
        .testTarget(name: "PlexusMetricsTests", dependencies: ["PlexusTestSupport", "PlexusMetrics"]),
        // The cluster's pure logic (subjects, the directory of hosts); its end-to-end tests
        // run real nats-server and plexus processes (PlexusHostTests/ClusterTests.swift).
        .testTarget(name: "PlexusClusterTests", dependencies: ["PlexusTestSupport", "PlexusCluster"]),
    ]
)

import PlexusCluster
import PlexusHost
import PlexusMetrics
import PlexusSocket
import PlexusStore

extension RunCommand {
    /// The families `plexus run`'s parts outside the host measure: the
    /// store's group commits as they happen, the rest read at scrape time.
    static func collectRunMetrics(_ m: HostMetrics, server: SocketServer, store: Store) {
        let commit = m.storeCommit, batch = m.storeBatch
        store.observeCommits { nanos, writes in
            commit.observe(nanos)
            batch.observe(Int64(writes))
        }
        m.collect { out in
            Exposition.header(&out, "plexus_socket_clients", type: "gauge", help: HostMetrics.help["plexus_socket_clients"]!)
            Exposition.sample(&out, "plexus_socket_clients", [], Double(server.clientCount.load(ordering: .relaxed)))
            Exposition.header(&out, "plexus_tasks", type: "gauge", help: HostMetrics.help["plexus_tasks"]!)
            for (state, n) in store.taskCounts() { Exposition.sample(&out, "plexus_tasks", [("state", state)], Double(n)) }
            Exposition.header(&out, "plexus_workflow_runs", type: "gauge", help: HostMetrics.help["plexus_workflow_runs"]!)
            for (state, n) in store.runCounts() { Exposition.sample(&out, "plexus_workflow_runs", [("state", state)], Double(n)) }
        }
    }

    /// The NATS side (plexus run --nats): the outbox's depth and the connection, read at scrape time.
    static func collectClusterMetrics(_ m: HostMetrics, cluster: ClusterNode) {
        m.collect { out in
            let d = cluster.outboxDepth
            Exposition.header(&out, "plexus_nats_outbox_messages", type: "gauge", help: "Cross-host sends held in the outbox while NATS is down.")
            Exposition.sample(&out, "plexus_nats_outbox_messages", [], Double(d.messages))
            Exposition.header(&out, "plexus_nats_outbox_bytes", type: "gauge", help: "Bytes of the cross-host sends held in the outbox.")
            Exposition.sample(&out, "plexus_nats_outbox_bytes", [], Double(d.bytes))
            Exposition.header(&out, "plexus_nats_connected", type: "gauge", help: "1 while the NATS connection is up, 0 while it reconnects.")
            Exposition.sample(&out, "plexus_nats_connected", [], cluster.natsConnected ? 1 : 0)
            if let e = cluster.eventStreamCounts {
                Exposition.header(&out, "plexus_cluster_events_published_total", type: "counter", help: "This host's events the cluster's JetStream stream acknowledged.")
                Exposition.sample(&out, "plexus_cluster_events_published_total", [], Double(e.published))
                Exposition.header(&out, "plexus_cluster_events_lost_total", type: "counter", help: "This host's events never published to the stream (NATS away longer than nats.events.catch_up, or pruned first).")
                Exposition.sample(&out, "plexus_cluster_events_lost_total", [], Double(e.lost))
            }
        }
    }
}

import Foundation
import Synchronization
import PlexusCore
import PlexusHost
import Testing

/// What a handler sends continues the trace of the message it is handling:
/// the host finds that message through a per-thread word (plexus_tls.h),
/// set around every in-process handler call. (In a sandboxed worker the
/// event does not carry it today: the worker's publish starts a new trace.)
@Suite("Trace continuation")
struct CurrentMessageTests {
    @Test func anEventPublishedByAnInProcessHandlerCarriesTheTraceOfTheRequest() throws {
        var c = HostConfiguration(pluginsDirectory: nil)
        c.sandbox = .inProcess
        c.threads = 2
        c.defaultTimeoutMs = 10_000
        let host = Host(c)
        try host.load(path: try Fixtures.probe(named: "talker"))
        host.start()
        defer { host.shutdown() }
        let heard = DispatchSemaphore(value: 0)
        let traces = Mutex<[plexus_id]>([])
        let ear = try host.attach(name: "ear", capabilities: []) { frame in
            if let e = try? Envelope(frame: Array(frame)), e.kind == .event {
                traces.withLock { $0.append(e.traceID) }
                heard.signal()
            }
            return true
        }
        try host.subscribe(ear, "probe.events.relay")
        for n: UInt64 in 1...3 {   // each request's own trace, on whichever dispatcher thread runs it
            let trace = plexus_id(hi: 0xACE, lo: n)
            _ = try host.call(Envelope(kind: .query, target: .capability("probe.publish"), traceID: trace))
            #expect(heard.wait(timeout: .now() + 10) == .success)
            #expect(traces.withLock { $0.last } == trace)
        }
    }
}

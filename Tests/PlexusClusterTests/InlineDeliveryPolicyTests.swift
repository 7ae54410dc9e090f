import Testing
@testable import PlexusCluster

/// Which agents run on libnats' delivery threads (InlineDelivery.swift),
/// with times of the test's own: quick agents always; one slow three times
/// in a row (by its CPU time, or by a wall time that says it blocked) not
/// for the penalty; a run preempted now and then (long wall time, little
/// CPU) changes nothing.
@Suite struct InlineDeliveryPolicyTests {
    let ms: Int64 = 1_000_000

    @Test func quickAgentsRunInlineAndAPreemptedRunCountsForNothing() {
        let p = InlineDeliveryPolicy(quickRunNanos: 200_000, blockedRunNanos: 20 * ms, strikes: 3, penaltyNanos: 10_000 * ms)
        #expect(p.mayRunInline("pong0", now: 0))
        for i in 0..<100 {
            // Every run preempted for 5 ms of wall time, 10 µs on the CPU.
            p.ranInline("pong0", nanos: 5 * ms, cpuNanos: 10_000, now: Int64(i) * ms)
            #expect(p.mayRunInline("pong0", now: Int64(i) * ms))
        }
    }

    @Test func threeBusyRunsInARowSendAnAgentToTheWorkersForThePenalty() {
        let p = InlineDeliveryPolicy(quickRunNanos: 200_000, blockedRunNanos: 20 * ms, strikes: 3, penaltyNanos: 10_000 * ms)
        p.ranInline("busy", nanos: ms, cpuNanos: ms, now: 1 * ms)
        p.ranInline("busy", nanos: ms, cpuNanos: ms, now: 2 * ms)
        #expect(p.mayRunInline("busy", now: 2 * ms), "two slow runs are not yet three")
        p.ranInline("busy", nanos: 10_000, cpuNanos: 10_000, now: 3 * ms)   // a quick one starts the count over
        p.ranInline("busy", nanos: ms, cpuNanos: ms, now: 4 * ms)
        p.ranInline("busy", nanos: ms, cpuNanos: ms, now: 5 * ms)
        #expect(p.mayRunInline("busy", now: 5 * ms))
        p.ranInline("busy", nanos: ms, cpuNanos: ms, now: 6 * ms)
        #expect(!p.mayRunInline("busy", now: 6 * ms))
        #expect(!p.mayRunInline("busy", now: 10_005 * ms))
        #expect(p.mayRunInline("busy", now: 10_006 * ms), "back after the penalty")
        #expect(p.mayRunInline("other", now: 6 * ms), "another agent is not affected")
    }

    @Test func aHandlerThatBlocksIsSlowByItsWallTime() {
        let p = InlineDeliveryPolicy(quickRunNanos: 200_000, blockedRunNanos: 20 * ms, strikes: 3, penaltyNanos: 10_000 * ms)
        for i in 1...3 { p.ranInline("sleeper", nanos: 50 * ms, cpuNanos: 5_000, now: Int64(i) * 50 * ms) }
        #expect(!p.mayRunInline("sleeper", now: 151 * ms))
    }
}

import PlexusCore
import PlexusHost
import Testing

@Suite("Typed exports through libffi")
struct TypedExportTests {
    let host: Host
    init() throws { host = try startedHost([Fixtures.probe()]) }

    @Test func argumentsByPositionAndByName() throws {
        #expect(try host.callText("probe.add", "[40, 2]") == "{\"result\":42}")
        #expect(try host.callText("probe.add", "{\"a\": -5, \"b\": 3}") == "{\"result\":-2}")
        #expect(try host.callText("probe.add", "[9223372036854775806, 1]") == "{\"result\":9223372036854775807}")
    }

    @Test func everyScalarType() throws {
        #expect(try host.callText("probe.negate", "[7]") == "{\"result\":-7}")
        #expect(try host.callText("probe.half", "[3]") == "{\"result\":1.5}")
        #expect(try host.callText("probe.is_even", "[18446744073709551614]") == "{\"result\":true}")
        #expect(try host.callText("probe.shout", "[\"hi\"]") == "{\"result\":\"HI!\"}")
        #expect(try host.callText("probe.constant", "[]") == "{\"result\":\"plexus\"}")
        #expect(try host.callText("probe.constant") == "{\"result\":\"plexus\"}")
        #expect(try host.callText("probe.count", "[\"héllo\"]") == "{\"result\":6}")
    }

    @Test func arityMismatchSaysWhatItTakes() {
        let e = expectError(.ARITY_MISMATCH) { _ = try host.callText("probe.add", "[1]") }
        #expect(e?.detail == "probe.add(a: i64, b: i64) -> i64 takes 2 arguments, got 1")
        let named = expectError(.ARITY_MISMATCH) { _ = try host.callText("probe.add", "{\"a\":1,\"c\":2}") }
        #expect(named?.detail == "probe.add(a: i64, b: i64) -> i64 has no argument named 'c'")
    }

    @Test func typeMismatchNamesTheArgument() {
        let e = expectError(.TYPE_MISMATCH) { _ = try host.callText("probe.add", "[1, \"two\"]") }
        #expect(e?.detail == "argument 2 ('b') of probe.add: expected i64, got string \"two\"")
        let frac = expectError(.TYPE_MISMATCH) { _ = try host.callText("probe.add", "[1, 2.5]") }
        #expect(frac?.detail.contains("expected i64, got number") == true)
        let range = expectError(.TYPE_MISMATCH) { _ = try host.callText("probe.negate", "[4294967296]") }
        #expect(range?.detail.contains("out of range") == true)
        let neg = expectError(.TYPE_MISMATCH) { _ = try host.callText("probe.is_even", "[-1]") }
        #expect(neg != nil)
    }

    @Test func notJSONIsAClearError() {
        let e = expectError(.INVALID_ARGUMENT) { _ = try host.callText("probe.add", "[1, 2") }
        #expect(e?.detail.hasPrefix("payload is not valid JSON") == true)
    }
}

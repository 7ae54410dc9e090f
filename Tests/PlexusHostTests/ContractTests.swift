import CPlexus
import Foundation
import PlexusCore
import PlexusHost
import Testing

/// One contract, two modes (FAULTS 46, issue 13 items 6-7): every host
/// function answers the same status for the same input whether the plugin
/// runs in a sandboxed worker or in the host process, as plexus.h documents.
@Suite("One contract, two modes", .serialized)
struct ContractTests {
    /// What plexus.h promises for each call Tests/Fixtures/contract.c makes.
    static let expected: KeyValuePairs<String, String> = [
        "send.null_msg": "INVALID_ARGUMENT", "send.null_ctx": "INVALID_ARGUMENT",
        "send.struct_size_0": "INVALID_ARGUMENT", "send.struct_size_8": "INVALID_ARGUMENT",
        "send.ok": "OK", "send.larger_struct_size": "OK", "send.reserved_ignored": "OK",
        "send.target_kind_9": "INVALID_ARGUMENT", "send.priority_7": "INVALID_ARGUMENT",
        "send.kind_9": "INVALID_ARGUMENT", "send.flags_1": "INVALID_ARGUMENT",
        "send.null_target": "INVALID_ARGUMENT", "send.empty_target": "INVALID_ARGUMENT",
        "send.long_target": "INVALID_ARGUMENT", "send.bad_char_target": "INVALID_ARGUMENT",
        "send.bad_content_type": "INVALID_ARGUMENT",
        "send.no_such_agent": "NO_SUCH_AGENT", "send.no_such_capability": "NO_SUCH_CAPABILITY",
        "send.len_2^40": "TOO_LARGE", "send.null_payload": "INVALID_ARGUMENT",
        "send.kind_query": "INVALID_ARGUMENT", "send.kind_response": "INVALID_ARGUMENT",
        "send.target_kind_reply": "INVALID_ARGUMENT", "send.expired": "EXPIRED",
        "request.null_msg": "INVALID_ARGUMENT", "request.null_ctx": "INVALID_ARGUMENT",
        "request.struct_size_0": "INVALID_ARGUMENT", "request.topic": "INVALID_ARGUMENT",
        "request.no_such_capability": "NO_SUCH_CAPABILITY", "request.len_2^40": "TOO_LARGE",
        "request.priority_9": "INVALID_ARGUMENT", "request.kind_ignored": "OK", "request.ok": "OK",
        "reply.null_msg": "INVALID_ARGUMENT", "reply.null_ctx": "INVALID_ARGUMENT",
        "reply.struct_size_0": "INVALID_ARGUMENT", "reply.unknown_request": "NOT_A_REQUEST",
        "reply_partial.null_msg": "INVALID_ARGUMENT", "reply_partial.null_ctx": "INVALID_ARGUMENT",
        "reply_partial.struct_size_0": "INVALID_ARGUMENT", "reply_partial.unknown_request": "NOT_A_REQUEST",
        "cancel.null_ctx": "INVALID_ARGUMENT", "cancel.zero_id": "INVALID_ARGUMENT",
        "cancel.unknown_request": "NOT_A_REQUEST", "cancel.own_request": "OK", "cancel.again": "NOT_A_REQUEST",
        "send.kind_cancel": "INVALID_ARGUMENT",
        "spawn.null_ctx": "INVALID_ARGUMENT", "spawn.null_plugin": "INVALID_ARGUMENT", "spawn.bad_plugin": "INVALID_ARGUMENT",
        "spawn.long_plugin": "INVALID_ARGUMENT", "spawn.slash_instance": "INVALID_ARGUMENT", "spawn.small_out": "INVALID_ARGUMENT",
        "spawn.not_json": "INVALID_ARGUMENT", "spawn.no_such_plugin": "NO_SUCH_AGENT", "spawn.not_permitted": "PERMISSION_DENIED",
        "stop.null_ctx": "INVALID_ARGUMENT", "stop.null_name": "INVALID_ARGUMENT", "stop.bad_name": "INVALID_ARGUMENT",
        "stop.no_such_agent": "NO_SUCH_AGENT", "stop.not_a_child": "PERMISSION_DENIED",
        "publish.null_msg": "INVALID_ARGUMENT", "publish.null_ctx": "INVALID_ARGUMENT",
        "publish.struct_size_0": "INVALID_ARGUMENT", "publish.agent_target": "INVALID_ARGUMENT",
        "publish.wildcard": "INVALID_ARGUMENT", "publish.len_2^40": "TOO_LARGE",
        "publish.kind_ignored": "OK", "publish.ok": "OK",
        "subscribe.null_pattern": "INVALID_ARGUMENT", "subscribe.null_ctx": "INVALID_ARGUMENT",
        "subscribe.bad_pattern": "INVALID_ARGUMENT", "subscribe.ok": "OK", "unsubscribe.ok": "OK",
        "unsubscribe.not_subscribed": "INVALID_ARGUMENT", "unsubscribe.null_pattern": "INVALID_ARGUMENT",
        "kv_get.null_ctx": "INVALID_ARGUMENT", "kv_get.null_key": "INVALID_ARGUMENT",
        "kv_get.null_out": "INVALID_ARGUMENT", "kv_get.empty_key": "INVALID_ARGUMENT",
        "kv_get.key_513": "INVALID_ARGUMENT", "kv_get.key_not_utf8": "INVALID_ARGUMENT",
        "kv_get.absent": "OK-absent",
        "kv_put.null_ctx": "INVALID_ARGUMENT", "kv_put.null_key": "INVALID_ARGUMENT",
        "kv_put.expected_-77": "INVALID_ARGUMENT", "kv_put.expected_-2": "INVALID_ARGUMENT",
        "kv_put.len_2^40": "TOO_LARGE", "kv_put.null_value": "INVALID_ARGUMENT",
        "kv_put.key_513": "INVALID_ARGUMENT", "kv_put.any": "OK", "kv_put.create_existing": "CONFLICT",
        "kv_put.stale_version": "CONFLICT", "kv_put.at_version": "OK", "kv_put.empty_value": "OK",
        "kv_get.present": "OK-v2",
        "kv_delete.null_ctx": "INVALID_ARGUMENT", "kv_delete.null_key": "INVALID_ARGUMENT",
        "kv_delete.expected_-77": "INVALID_ARGUMENT", "kv_delete.stale_version": "CONFLICT",
        "kv_delete.any": "OK", "kv_delete.absent_any": "OK",
        "alloc.UINT64_MAX": "NULL", "alloc.2^63": "NULL", "alloc.0": "PTR", "alloc.64": "PTR",
        "agent_name": "SELF", "agent_name.null_ctx": "NULL", "now_unix_ns": "SANE",
    ]

    static let modes: [SandboxMode] = [.inProcess, .process]

    static func contract(_ name: String = "contract") throws -> String {
        try Fixtures.build("contract.c", ["-DAGENT_NAME=\"\(name)\""], name: "contract")
    }

    /// The table's lines as (label, answer), in the order the fixture ran them.
    static func table(_ mode: SandboxMode) throws -> [(String, String)] {
        let r = try KeyValueTests.Rig([try contract()], sandbox: mode)
        defer { r.stop() }
        return try r.host.callText("contract.table", timeoutMs: 60_000).split(separator: "\n").map { l in
            let parts = l.split(separator: " ", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }

    @Test("every host function answers as plexus.h says, the same in process and sandboxed")
    func wholeTable() throws {
        let inProcess = try Self.table(.inProcess)
        let sandboxed = try Self.table(.process)
        #expect(inProcess.map(\.0) == Self.expected.map(\.key), "the fixture ran a different table than this test expects")
        for ((label, a), (_, b)) in zip(inProcess, sandboxed) {
            #expect(a == b, "\(label): \(a) in process, \(b) sandboxed")
        }
        let got = Dictionary(inProcess, uniquingKeysWith: { a, _ in a })
        let gotSandboxed = Dictionary(sandboxed, uniquingKeysWith: { a, _ in a })
        for (label, want) in Self.expected {
            #expect(got[label] == want, "\(label) in process: expected \(want), found \(got[label] ?? "nothing")")
            #expect(gotSandboxed[label] == want, "\(label) sandboxed: expected \(want), found \(gotSandboxed[label] ?? "nothing")")
        }
    }

    /// FAULTS 46: the caller hears a refused reply or a failed handler at
    /// once, with its status, never its own (here one-minute) timeout.
    @Test("a refused reply or a failed handler reaches the caller at once", arguments: modes)
    func refusedReplyEndsTheRequest(mode: SandboxMode) throws {
        let r = try KeyValueTests.Rig([try Self.contract()], sandbox: mode)
        defer { r.stop() }
        let big = expectError(.TOO_LARGE) { _ = try r.host.callText("contract.big", timeoutMs: 60_000) }
        #expect(big?.detail.hasPrefix("the reply was refused: ") == true, "\(big?.detail ?? "")")
        _ = expectError(.INVALID_ARGUMENT) { _ = try r.host.callText("contract.badreply", timeoutMs: 60_000) }
        let huge = expectError(.TOO_LARGE) { _ = try r.host.callText("contract.huge", "[]", timeoutMs: 60_000) }   // a typed export's result
        #expect(huge?.detail.contains("refused") == true, "\(huge?.detail ?? "")")
        let failed = expectError(.HANDLER_FAILED) { _ = try r.host.callText("contract.fail", timeoutMs: 60_000) }
        #expect(failed?.detail == "agent 'contract' returned INTERNAL while handling the request")
        #expect(try r.host.callText("contract.sink") == "ok")   // the agent serves on
    }

    /// A handler may reply after it returns; one that never does leaves the
    /// caller its TIMEOUT, and a reply after that is NOT_A_REQUEST in both modes.
    @Test("a reply after the caller's timeout is NOT_A_REQUEST", arguments: modes)
    func lateReply(mode: SandboxMode) throws {
        let r = try KeyValueTests.Rig([try Self.contract()], sandbox: mode)
        defer { r.stop() }
        for _ in 0..<5 {   // the late reply follows the TIMEOUT as closely as a caller can manage
            _ = expectError(.TIMEOUT) { _ = try r.host.callText("contract.hold", timeoutMs: 100) }
            #expect(try r.host.callText("contract.late") == "NOT_A_REQUEST")
        }
    }

    /// The worker once sent snprintf's would-be length: with a long agent
    /// name the caller got worker stack bytes after the truncated text.
    @Test("a failure text with a 255-byte agent name arrives whole")
    func longNameFailureText() throws {
        let name = String(repeating: "n", count: 255)
        let r = try KeyValueTests.Rig([try Self.contract(name)], sandbox: .process)
        defer { r.stop() }
        let e = expectError(.HANDLER_FAILED) { _ = try r.host.callText("contract.fail", timeoutMs: 60_000) }
        #expect(e?.detail == "agent '\(name)' returned INTERNAL while handling the request")
    }

    /// "At least the 1.0 size": a descriptor, capabilities and permissions
    /// each 24 bytes longer than this host knows (as a newer plexus.h would
    /// make them) load and serve; the host and the worker skip the tails.
    @Test("structs larger than the host knows are read up to what it knows", arguments: modes)
    func largerStructs(mode: SandboxMode) throws {
        let file = try Fixtures.build("contract.c", ["-DAGENT_NAME=\"newer\"", "-DNEWER_STRUCTS"], name: "newer")
        let r = try KeyValueTests.Rig([file], sandbox: mode)
        defer { r.stop() }
        let report = r.host.pluginReports.first { $0.name == "newer" }
        #expect(report?.capabilities?.count == 7 && report?.capabilities?.last == "contract.late")
        #expect(report?.permissions?.map(\.pattern) == [">", "contract.>", "contract.>"])
        #expect(try r.host.callText("contract.sink") == "ok")
        _ = expectError(.HANDLER_FAILED) { _ = try r.host.callText("contract.fail") }
    }

    /// include/ is what plugin and client authors build against (and what
    /// SDK/c/install.sh installs): the channel protocol and the unchecked
    /// codec entry points stay private to the host and the worker.
    @Test("include/ holds only plugin- and client-facing headers")
    func publicHeaders() throws {
        let dir = Fixtures.root + "/include"
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["plexus.h", "plexus_wire.h"])
        let wire = try String(contentsOfFile: dir + "/plexus_wire.h", encoding: .utf8)
        #expect(!wire.contains("plexus_wire_encode_valid(") && !wire.contains("plexus_wire_view("))
    }

    /// The layout Swift imports is the one plexus.h asserts and the Rust SDK
    /// mirrors: the sizes of ABI 1.0 and the offsets around the reserved field.
    @Test("struct sizes and offsets match the 1.0 constants")
    func layout() {
        #expect(MemoryLayout<plexus_envelope>.size == Int(PLEXUS_ENVELOPE_SIZE_1_0))
        #expect(MemoryLayout<plexus_envelope>.offset(of: \plexus_envelope.status) == 104)
        #expect(MemoryLayout<plexus_envelope>.offset(of: \plexus_envelope.reserved) == 108)
        #expect(MemoryLayout<plexus_host>.offset(of: \plexus_host.kv_get) == Int(PLEXUS_HOST_SIZE_1_0))
        #expect(MemoryLayout<plexus_host>.offset(of: \plexus_host.reply_partial) == Int(PLEXUS_HOST_SIZE_1_1))
        #expect(MemoryLayout<plexus_host>.size == Int(PLEXUS_HOST_SIZE_1_2))
        #expect(MemoryLayout<plexus_capability>.size == Int(PLEXUS_CAPABILITY_SIZE_1_0))
        #expect(MemoryLayout<plexus_permission>.size == Int(PLEXUS_PERMISSION_SIZE_1_0))
        #expect(MemoryLayout<plexus_export>.size == Int(PLEXUS_EXPORT_SIZE_1_0))
        #expect(MemoryLayout<plexus_plugin_descriptor>.size == Int(PLEXUS_DESCRIPTOR_SIZE_1_0))
        #expect(MemoryLayout<plexus_plugin_descriptor>.offset(of: \plexus_plugin_descriptor.`init`) == 88)
    }
}

import PlexusCore
import PlexusStore

/// What makes a run change course: loops (repeat), sub-workflows
/// (workflow: FILE), signals (wait_for) and cancel. Like the rest of
/// RunState, no I/O: each returns or adds the effects the engine writes.
extension RunState {
    /// A repeat step's next move: done when `until` holds on its last
    /// output or it ran `max` times; otherwise its next run, whose task key
    /// ends with the run's number, so a restart gets that same task back.
    func nextIteration(_ s: Step, now: Int64, _ fx: inout Effects) {
        let n = nodes[s.name]!
        let done = n.itemOutputs.count   // runs finish one after another: 0..<done are in
        let last = done > 0 ? n.itemOutputs[done - 1] ?? .null : .null
        let scope = loopScope(s)
        if done > 0, let until = s.repeatUntil {
            do throws(ExpressionError) {
                if Expression.truthy(try until.evaluate(scope)) { finishNode(s.name, .done, output: last, now: now, &fx); return }
            } catch { fail(s.name, "its repeat condition `\(s.repeatUntilText ?? "")` failed: \(error.message)", now: now, &fx); return }
        }
        if done >= s.repeatMax { finishNode(s.name, .done, output: last, now: now, &fx); return }
        nodes[s.name]!.inFlight = [done]
        submit(s, item: done, scope: scope, fallback: nil, now: now, &fx)
    }

    /// The scope with the loop's own step in it: its last output (null
    /// before the first run) and how many runs are done.
    func loopScope(_ s: Step) -> [String: JSONValue] {
        var scope = self.scope()
        let n = nodes[s.name]!
        let done = n.itemOutputs.count
        if case .object(var steps)? = scope["steps"] {
            steps[s.name] = .object(["state": .string(n.state.rawValue), "output": done > 0 ? n.itemOutputs[done - 1] ?? .null : .null,
                                     "iterations": .int(Int64(done))])
            scope["steps"] = .object(steps)
        }
        return scope
    }

    /// A workflow: step asks for its run; the engine makes it and links it (linkChild).
    func startChild(_ s: Step, _ path: String, scope: [String: JSONValue], now: Int64, _ fx: inout Effects) {
        guard let w = workflow.subworkflows[path] else { fail(s.name, "its workflow file \(path) was not read with the run", now: now, &fx); return }
        let given: JSONValue
        do throws(ExpressionError) { given = try s.input?.render(scope) ?? .null } catch {
            fail(s.name, "its input could not be made: \(error.message)", now: now, &fx); return
        }
        do throws(PlexusError) { fx.children.append((s.name, w, try w.input(merging: given))) } catch {
            fail(s.name, "its input for \(path): \(error.detail)", now: now, &fx)
        }
    }

    /// The run the engine made for a workflow: step, checkpointed with the
    /// step (state running, its task_id the run), so a restart finds it.
    func linkChild(_ step: String, run child: String, now: Int64, _ fx: inout Effects) {
        nodes[step]!.child = child
        var c = checkpoint(step, -1, .running, now: now)
        c.task_id = child
        fx.checkpoints.append(c)
        fx.events.append(("workflow.step.subrun", ["step": .string(step), "run": .string(child)]))
    }

    /// A workflow: step's run ended: its outputs are the step's output.
    func childEnded(_ step: String, _ child: RunRecord, now: Int64) -> Effects {
        var fx = Effects()
        guard nodes[step]?.state == .running, nodes[step]?.child == child.id else { return fx }
        switch child.state {
        case "completed":
            let outputs = child.outputs.flatMap { try? JSONValue.parse(Array($0.utf8)) } ?? .object([:])
            finishNode(step, .done, output: outputs, taskID: child.id, now: now, &fx)
        case "cancelled": fail(step, "its workflow run \(child.id) was cancelled", as: .cancelled, now: now, &fx)
        default: fail(step, "its workflow run \(child.id) \(child.state): \(child.error ?? "")", now: now, &fx)
        }
        return fx
    }

    /// A signal came: kept (stored with this turn's checkpoints) until a
    /// wait_for step of that name takes it, now or later.
    /// A name no wait_for step of the run waits for is refused: it could
    /// never be taken (most likely a typo, or meant for a sub-run).
    func signal(_ name: String, payload: JSONValue, now: Int64) throws(PlexusError) -> Effects {
        let waited = workflow.nodes.compactMap { s -> String? in if case .wait(let n) = s.kind { n } else { nil } }
        guard waited.contains(name) else {
            throw PlexusError(.INVALID_ARGUMENT, "run \(id) of \(workflow.name) has no step waiting for a signal '\(name)'; "
                              + (waited.isEmpty ? "it has no wait_for step" : "its wait_for steps wait for \(Set(waited).sorted().joined(separator: ", "))"))
        }
        var fx = Effects()
        signalSeq += 1
        let sig = SignalRecord(run_id: id, seq: signalSeq, name: name, payload: payload.text, sent_unix_ns: now)
        signals.append(sig)
        fx.newSignals.append(sig)
        fx.events.append(("workflow.signal.received", ["signal": .string(name), "seq": .int(signalSeq)]))
        return fx
    }

    /// A waiting step takes the oldest signal of its name, if one came.
    func takeSignal(_ s: Step, _ name: String, now: Int64, _ fx: inout Effects) -> Bool {
        guard let i = signals.firstIndex(where: { $0.name == name }) else { return false }
        let sig = signals.remove(at: i)
        fx.taken.append((sig.seq, s.name))
        finishNode(s.name, .done, output: (try? JSONValue.parse(Array(sig.payload.utf8))) ?? .null, now: now, &fx)
        return true
    }

    func timedOut(_ s: Step, _ name: String, now: Int64, _ fx: inout Effects) -> Bool {
        guard let t = s.waitTimeoutMs, now >= nodes[s.name]!.started + t * 1_000_000 else { return false }
        fail(s.name, "no signal '\(name)' came within \(t) ms", now: now, &fx)
        return true
    }

    /// When the next wait_for step times out (unix ns), if one can.
    var nextDeadline: Int64? {
        guard record.state == "running" else { return nil }
        return workflow.nodes.compactMap { s -> Int64? in
            guard let t = s.waitTimeoutMs, let n = nodes[s.name], n.state == .waiting else { return nil }
            return n.started + t * 1_000_000
        }.min()
    }

    /// `plexus workflow cancel`: the run ends cancelled; each step that was
    /// started (running, waiting for a signal or an approval) is cancelled,
    /// with its open tasks and sub-workflow runs (the engine cancels those).
    func cancel(now: Int64) throws(PlexusError) -> Effects {
        guard record.state == "running" else { throw PlexusError(.INVALID_ARGUMENT, "run \(id) is \(record.state); only a running run can be cancelled") }
        var fx = Effects()
        for s in workflow.nodes {
            let n = nodes[s.name]!
            guard [.running, .waiting, .awaiting_approval, .approved].contains(n.state) else { continue }
            if n.state == .running {
                if let c = n.child { fx.cancelChildren.append(c) }
                if s.capability != nil {
                    if s.forEach != nil || s.repeatMax > 0 { fx.cancelTasks += n.inFlight.sorted().map { key(s.name, $0) } }
                    else { fx.cancelTasks.append(key(s.name, -1)) }
                }
            }
            nodes[s.name]!.state = .cancelled
            nodes[s.name]!.error = "cancelled with its run"
            nodes[s.name]!.finished = now
            nodes[s.name]!.inFlight = []
            var c = checkpoint(s.name, -1, .cancelled, now: now)
            c.error = "cancelled with its run"
            fx.checkpoints.append(c)
            fx.events.append(("workflow.step.finished", ["step": .string(s.name), "state": .string("cancelled")]))
        }
        record.state = "cancelled"
        record.error = "cancelled by hand"
        record.finished_unix_ns = now
        fx.runChanged = true
        fx.events.append(("workflow.cancelled", ["workflow": .string(workflow.name)]))
        return fx
    }
}

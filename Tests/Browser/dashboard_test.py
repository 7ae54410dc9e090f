"""The dashboard in a real browser, against a real host (run by
Tests/PlexusHostTests/DashboardBrowserTests.swift, which starts
`plexus run --http 127.0.0.1:0` with the example plugins):

  1. every agent the host runs is listed;
  2. traffic sent with `plexus call` moves that agent's handled count on
     the open page (no reload);
  3. a workflow run started with `plexus workflow run` appears, and its
     steps are seen not yet done and then all green (done or skipped);
  4. a screenshot at 1280x800 for humans (docs/dashboard.png).

Every wait polls the page against a deadline; nothing sleeps a fixed time.
Exits 0 on success; on failure prints what it waited for and the last value.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cdp  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--plexus", required=True, help="the plexus executable")
    p.add_argument("--agents", required=True, help="comma-separated agent names that must be listed")
    p.add_argument("--call", required=True, help="CAPABILITY=AGENT: what to call for traffic, and who handles it")
    p.add_argument("--workflow", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--screenshot", required=True)
    a = p.parse_args()

    def plexus(*args, text=None):
        r = subprocess.run([a.plexus, *args], capture_output=True, text=True, timeout=120, input=text)
        if r.returncode != 0:
            raise SystemExit(f"plexus {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    b = cdp.Browser(1280, 800)
    try:
        b.open(a.url)
        # A mark that a reload would wipe out.
        b.wait_for("document.readyState === 'complete'", "the page to load", 30)
        b.eval("window.__plexusNoReload = true")

        # 1. Every agent listed.
        names = a.agents.split(",")
        listed = b.wait_for(
            "(() => { const names = " + json.dumps(names) + ";"
            " const rows = [...document.querySelectorAll('#agents tr[data-agent]')].map(r => r.dataset.agent);"
            " return names.every(n => rows.includes(n)) && rows; })()",
            f"every agent ({', '.join(names)}) in the agents table", 60)
        print(f"dashboard_test: listed {len(listed)} agents: {', '.join(listed)}")

        # The topology's layout keeps 50 agents' boxes apart (the page's own function).
        clashes = b.eval("""(() => {
          const names = Array.from({length: 50}, (_, i) => 'agent-' + 'x'.repeat(i % 17) + i);
          const H = 24, widthOf = n => Math.min(150, 16 + n.length * 6.6);
          const { pos } = layoutTopology(names, widthOf, H);
          pos.plexus = { x: 0, y: 0 };
          const all = Object.keys(pos), out = [];
          for (let a = 0; a < all.length; a++) for (let b = a + 1; b < all.length; b++) {
            const p = pos[all[a]], q = pos[all[b]];
            const wa = all[a] === 'plexus' ? 70 : widthOf(all[a]), wb = all[b] === 'plexus' ? 70 : widthOf(all[b]);
            if (Math.abs(p.x - q.x) < (wa + wb) / 2 && Math.abs(p.y - q.y) < H) out.push(all[a] + '/' + all[b]);
          }
          return { placed: all.length, clashes: out };
        })()""")
        if clashes["placed"] != 51 or clashes["clashes"]:
            raise cdp.BrowserError(f"the topology layout of 50 agents overlaps: {clashes}")
        print("dashboard_test: 50 agents laid out without overlaps")

        # 2. Traffic changes the handled count without a reload.
        capability, agent = a.call.split("=")
        cell = f"document.querySelector('#agents tr[data-agent={json.dumps(agent)}] td.handled')"
        before = int(b.wait_for(f"{cell} && {cell}.textContent", f"{agent}'s handled count", 30).replace(",", ""))
        for i in range(5):
            plexus("call", capability, "--file", "-", text=f"The dashboard test sends message {i}. It must be counted. Plexus hosts agents.")
        after = b.wait_for(f"(() => {{ const n = parseInt({cell}.textContent.replace(/,/g, '')); return n >= {before + 5} && n; }})()",
                           f"{agent}'s handled count to rise from {before} by 5", 30)
        print(f"dashboard_test: {agent} handled {before} -> {after} on the open page")

        # 3. A workflow run's steps turn green, seen live. A MutationObserver
        # records every state a step of the graph is drawn in.
        b.eval("""window.__stepStates = {};
          new MutationObserver(() => {
            for (const g of document.querySelectorAll('#graph g.step'))
              (window.__stepStates[g.dataset.step] ??= new Set()).add(g.dataset.state);
          }).observe(document.getElementById('graph'), { childList: true, subtree: true });""")
        run_id = plexus("workflow", "run", a.workflow, "--input", a.input).strip()
        print(f"dashboard_test: started run {run_id}")
        b.wait_for(f"document.querySelector('#runs .run[data-run={json.dumps(run_id)}]')", f"run {run_id} in the runs list", 30)
        b.eval(f"document.querySelector('#runs .run[data-run={json.dumps(run_id)}]').click()")
        b.wait_for(f"document.querySelector('#runs .run.sel[data-run={json.dumps(run_id)}]')", "the run to be selected", 10)
        steps = b.wait_for(
            "(() => { const s = [...document.querySelectorAll('#graph g.step')];"
            " return s.length > 0 && s.every(g => g.dataset.state === 'done' || g.dataset.state === 'skipped')"
            " && document.querySelector('#runs .run.sel').dataset.state === 'completed' && s.map(g => g.dataset.step); })()",
            "every step of the run to turn done (green)", 180)
        seen = b.eval("Object.fromEntries(Object.entries(window.__stepStates).map(([k, v]) => [k, [...v]]))")
        live = [s for s, states in seen.items() if any(x not in ("done", "skipped") for x in states)]
        if not live:
            raise cdp.BrowserError(f"no step was ever drawn before it was done: the page did not follow the run live ({seen})")
        print(f"dashboard_test: steps {', '.join(steps)} all done; seen changing live: {', '.join(live)}")
        green = b.eval("getComputedStyle(document.querySelector('#graph g.step[data-state=done] rect')).stroke")
        print(f"dashboard_test: a done step is drawn in {green}")
        if not b.eval("window.__plexusNoReload === true"):
            raise cdp.BrowserError("the page reloaded")

        # 3b. The run's trace: picked from the run, its span tree drawn with a span per step.
        b.wait_for("document.getElementById('run-trace')", "the run's trace button", 10)
        b.eval("document.getElementById('run-trace').click()")
        kinds = b.wait_for("(() => { const k = [...document.querySelectorAll('#trace-tree .span-row[data-span] b')].map(x => x.textContent);"
                           " return k.includes('run') && k.filter(x => x === 'step').length >= " + str(len(steps) - 1) + " && k; })()",
                           "the run's trace with its run and step spans", 30)
        print(f"dashboard_test: the run's trace shows {len(kinds)} spans ({kinds.count('step')} steps, {kinds.count('attempt')} attempts)")

        # 4. The screenshot, with rates from the traffic still on screen.
        for i in range(20):
            plexus("call", capability, "--file", "-", text=f"Traffic for the screenshot, message {i}. Agents talk to agents.")
        b.wait_for(f"(() => {{ const r = document.querySelector('#agents tr[data-agent={json.dumps(agent)}] td.rate'); return r && r.textContent !== '–' && r.textContent !== '0.00/s'; }})()",
                   "a rate on screen", 30)
        b.eval("window.scrollTo(0, 0)")
        b.screenshot(a.screenshot, full_page=True)
        print(f"dashboard_test: screenshot {a.screenshot} (the whole page, 1280 px wide)")
        # No element wider than the window at 1280x800.
        overflow = b.eval("document.documentElement.scrollWidth")
        if overflow > 1280:
            raise cdp.BrowserError(f"the page is {overflow} px wide at 1280x800")
    finally:
        b.close()
    print("dashboard_test: ok")


if __name__ == "__main__":
    try:
        main()
    except cdp.BrowserError as e:
        print(f"dashboard_test: FAILED: {e}", file=sys.stderr)
        sys.exit(1)

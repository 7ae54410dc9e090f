import PlexusConfig
import PlexusHost
import Testing

/// What a new user meets when plexus.yaml is wrong in ways that do not stop
/// it from parsing: a file that is not there, a key given twice, a plugin
/// or agent that exists nowhere.
@Suite("plexus.yaml: first hour")
struct FirstHourConfigTests {
    func error(_ yaml: String) -> String {
        do { _ = try ConfigFile.parse(yaml, file: "plexus.yaml", into: HostConfiguration(pluginsDirectory: nil)); return "no error" }
        catch { return error.description }
    }

    @Test func aMissingFileSaysSoWithoutAPosition() {
        do {
            _ = try ConfigFile.load(path: "/nonexistent/plexus.yaml", into: HostConfiguration(pluginsDirectory: nil))
            Issue.record("a missing file was read")
        } catch {
            #expect(error.description == "cannot read /nonexistent/plexus.yaml: no such file or directory")
        }
    }

    @Test func aKeyGivenTwiceNamesTheLineOfItsSecondOccurrence() {
        let e = error("""
            defaults:
              sandbox: process
            plugins:
              textkit: { sandbox: in-process }
            defaults:
              sandbox: in-process
            """)
        #expect(e == "plexus.yaml:5:1: 'defaults' is given twice in one mapping (first at line 1); keep one", "\(e)")
        let nested = error("""
            plugins:
              textkit:
                sandbox: in-process
                instances: 1
                sandbox: process
            """)
        #expect(nested.hasPrefix("plexus.yaml:5:5: 'sandbox' is given twice"), "\(nested)")
    }

    @Test func namesThatMatchNoPluginOrAgentAreWarnedAboutWithTheClosestName() {
        let text = """
            plugins:
              textkit: { sandbox: in-process }
              textkt: { instances: 2 }
            supervision:
              children:
                - agent: textkit
                - group: g
                  children: [{ agent: keywrods }]
            """
        let refs = ConfigFile.references(text, file: "plexus.yaml")
        #expect(refs.map(\.name) == ["textkit", "textkt", "textkit", "keywrods"])
        let warnings = ConfigFile.unmatched(refs, plugins: ["textkit", "keywords"], agents: ["textkit", "keywords"], pluginsDirectory: "Plugins")
        #expect(warnings == [
            "plexus.yaml:3:3: plugins.textkt: no plugin file textkt.so in Plugins (did you mean textkit?); its settings apply if one is added later",
            "plexus.yaml:8:27: supervision.children[1].children[0].agent: no agent is named 'keywrods' (did you mean keywords?); this entry supervises nothing",
        ])
    }

    /// `spawn.plugins: [nosuchplugin]` is warned about like a typo under plugins: (it names a loaded plugin's descriptor name).
    @Test func aSpawnListNamingNoLoadedPluginIsWarnedAbout() {
        let text = """
            plugins:
              fanout:
                spawn: { max_children: 4, plugins: [fanout, helpr] }
            """
        let refs = ConfigFile.references(text, file: "plexus.yaml")
        #expect(refs.map(\.name) == ["fanout", "fanout", "helpr"])
        let warnings = ConfigFile.unmatched(refs, plugins: ["fanout", "helper"], agents: [], loaded: ["fanout", "helper"], pluginsDirectory: "Plugins")
        #expect(warnings == [
            "plexus.yaml:3:49: plugins.fanout.spawn.plugins[1]: no loaded plugin is named 'helpr' (did you mean helper?); a spawn of it answers NO_SUCH_AGENT until one is loaded",
        ])
    }
}

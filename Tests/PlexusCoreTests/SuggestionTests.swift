import PlexusCore
import Testing

@Suite("Did you mean")
struct SuggestionTests {
    @Test func aTypoFindsTheName() {
        #expect(Suggestion.closest(to: "text.statz", among: ["text.keywords", "text.stats", "echo"]) == "text.stats")
        #expect(Suggestion.closest(to: "agent", among: ["plugins", "agents", "audit"]) == "agents")
        let caps = ["data.collect", "data.clean", "probe.echo", "plexus.tasks.submit"]
        #expect(Suggestion.closest(to: "data.colect", among: caps) == "data.collect")
        #expect(Suggestion.closest(to: "probe.ech", among: caps) == "probe.echo")
        #expect(Suggestion.closest(to: "weather.forecast", among: caps) == nil)
    }

    @Test func aSwapOfNeighboursCostsOne() {
        #expect(Suggestion.distance("tasks", "taks") == 1)
        #expect(Suggestion.distance("sumbit", "submit") == 1)
        #expect(Suggestion.distance("", "abc") == 3)
        #expect(Suggestion.distance("kitten", "sitting") == 3)
    }

    @Test func somethingElseEntirelyIsNotSuggested() {
        #expect(Suggestion.closest(to: "weather", among: ["echo", "text.stats"]) == nil)
        #expect(Suggestion.closest(to: "ab", among: ["xy"]) == nil)
        #expect(Suggestion.closest(to: "echo", among: ["echo"]) == nil)   // the name itself is no suggestion
    }
}

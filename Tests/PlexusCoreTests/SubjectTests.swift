import PlexusCore
import Testing

@Suite("Subjects and wildcards")
struct SubjectTests {
    static let table: [(pattern: String, subject: String, matches: Bool)] = [
        ("docs.summarized", "docs.summarized", true),
        ("docs.summarized", "docs.summarised", false),
        ("docs.*", "docs.summarized", true),
        ("docs.*", "docs", false),
        ("docs.*", "docs.a.b", false),
        ("*.summarized", "docs.summarized", true),
        ("*", "docs", true),
        ("*", "docs.a", false),
        ("docs.>", "docs.a", true),
        ("docs.>", "docs.a.b.c", true),
        ("docs.>", "docs", false),
        (">", "anything.at.all", true),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.b.d", false),
        ("a.*.>", "a.b.c.d", true),
        ("a.*.>", "a.b", false),
        ("*.*", "a.b", true),
    ]

    @Test(arguments: table)
    func matching(_ row: (pattern: String, subject: String, matches: Bool)) {
        #expect(Subject.matches(pattern: row.pattern, subject: row.subject) == row.matches)
        var index = SubjectIndex<Int>()
        index.insert(row.pattern, 1)
        #expect(index.match(row.subject) == (row.matches ? [1] : []), "index disagrees for \(row.pattern) vs \(row.subject)")
    }

    @Test func patternValidation() {
        for bad in ["", "a..b", ".a", "a.", "a.>.b", "a*", "a.b>"] {
            #expect(throws: PlexusError.self, "\(bad) should be refused") { try Subject.validatePattern(bad) }
        }
        for good in ["a", "a.b", "*", ">", "a.*.c", "a.>"] {
            #expect(throws: Never.self) { try Subject.validatePattern(good) }
        }
    }

    @Test func publishedSubjectsHaveNoWildcards() {
        #expect(throws: PlexusError.self) { try Subject.validateSubject("docs.*") }
        #expect(throws: PlexusError.self) { try Subject.validateSubject("docs.>") }
        #expect(throws: Never.self) { try Subject.validateSubject("docs.summarized") }
    }

    @Test func indexFansOutToEveryMatchOnceAndForgetsRemovals() {
        var index = SubjectIndex<String>()
        index.insert("docs.>", "all")
        index.insert("docs.*", "one-level")
        index.insert("docs.summarized", "exact")
        index.insert("docs.>", "all")   // twice: still once
        #expect(index.match("docs.summarized") == ["all", "one-level", "exact"])
        #expect(index.match("docs.a.b") == ["all"])
        let first = index.remove("docs.*", "one-level")
        let second = index.remove("docs.*", "one-level")
        #expect(first && !second)
        #expect(index.match("docs.summarized") == ["all", "exact"])
        #expect(index.count == 2)
    }
}

/// Reserved names (FAULTS.md 42) and the "did you mean" of FAULTS.md 45.
@Suite("Reserved names")
struct ReservedNamesTests {
    @Test func theHostsPrefixesAndClientNamesAreReserved() {
        #expect(ReservedNames.refusal("plexus.tasks.submit", as: .capability)?.detail == "capability 'plexus.tasks.submit' is reserved for the host")
        #expect(ReservedNames.refusal("plexus", as: .agent) != nil)
        #expect(ReservedNames.refusal("_plexus.shutdown", as: .subject) != nil)
        #expect(ReservedNames.refusal("client:42.1", as: .agent) != nil)
        #expect(ReservedNames.refusal("plexusbot", as: .agent) == nil)
        #expect(ReservedNames.refusal("my.plexus.thing", as: .capability) == nil)
        #expect(ReservedNames.refusal("client:42", as: .capability) == nil)
        #expect(ReservedNames.refusal("plexus.audit.denied", as: .pattern) == nil)   // watching the host's events, within grants
        #expect(ReservedNames.refusal("_plexus.>", as: .pattern) != nil)
    }

    @Test func wildcardsInTheFirstTokenNeverMatchTheHostsSubjects() {
        var index = SubjectIndex<String>()
        index.insert(">", "all")
        index.insert("*.audit.denied", "star")
        index.insert("plexus.>", "named")
        index.insert("plexus.audit.denied", "exact")
        #expect(index.match("plexus.audit.denied") == ["named", "exact"])
        #expect(index.match("_plexus.shutdown") == [])
        #expect(index.match("team.audit.denied") == ["all", "star"])
    }
}

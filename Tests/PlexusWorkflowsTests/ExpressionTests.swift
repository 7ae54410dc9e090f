import PlexusCore
import Testing
@testable import PlexusWorkflows

@Suite struct ExpressionTests {
    let scope: [String: JSONValue] = [
        "input": .object(["limit": .int(3), "name": .string("x"), "people": .array([.object(["k": .string("a")]), .object(["k": .string("b")])])]),
        "steps": .object(["a": .object(["output": .object(["rows": .array([.int(1), .int(2), .int(5)]), "label": .string("hot")])])]),
    ]

    func eval(_ s: String) throws -> JSONValue { try Expression.parse(s).evaluate(scope) }

    @Test func operatorsFunctionsAndMissingNames() throws {
        #expect(try eval("len(steps.a.output.rows) > input.limit - 1") == .bool(true))
        #expect(try eval("sum(steps.a.output.rows) * 2") == .int(16))
        #expect(try eval("steps.a.output.rows[-1]") == .int(5))
        #expect(try eval("steps.a.output.missing ?? 'none'") == .string("none"))
        #expect(try eval("'ho' in steps.a.output.label and not (input.limit == 4)") == .bool(true))
        #expect(try eval("round(7 / 2, 1)") == .double(3.5))
        #expect(try eval("join(pluck(input.people, 'k'), '+')") == .string("a+b"))
        #expect(try eval("max(flatten([[1, 9], [4]]))") == .int(9))
    }

    @Test func mistakesNameWhereAndWhat() throws {
        #expect(throws: ExpressionError.self) { try Expression.parse("steps.a.output >") }
        do { _ = try Expression.parse("lenn(x)"); Issue.record("accepted") } catch {
            #expect(error.message.contains("unknown function 'lenn'"))
            #expect(error.offset == 0)
        }
        do { _ = try Expression.parse("1 + output"); Issue.record("accepted") } catch {
            #expect(error.message.contains("unknown name 'output'"))
            #expect(error.offset == 4)
        }
        do throws(ExpressionError) { _ = try Expression.parse("input.name < 3").evaluate(scope); Issue.record("accepted") } catch {
            #expect(error.message == "< compares two numbers or two strings, got string and integer")
        }
    }

    @Test func templatesKeepValuesWholeOrSpliceText() throws {
        let t = try Template(.object(["all": .string("${steps.a.output.rows}"), "text": .string("n=${len(steps.a.output.rows)}; $${literal}")]))
        #expect(try t.render(scope) == .object(["all": .array([.int(1), .int(2), .int(5)]), "text": .string("n=3; ${literal}")]))
    }
}

import PlexusCore

/// The workflow expression language: what `when:` decides on and what
/// `${...}` in a step's input draws from. Small on purpose:
///
///     names       input, steps, item, index        (item, index: in for_each steps only)
///     access      steps.clean.output.rows   steps.fetch.output[0]   input["file name"]
///     literals    12  3.5  'text'  "text"  true  false  null  [1, 2]
///     operators   ?? (default)  || or  && and  ! not  == != < <= > >= in  + - * / %
///     functions   len(x) sum(list) min(list) max(list) round(x, digits) join(list, sep)
///                 pluck(list, key) flatten(list) keys(object) contains(x, y) string(x) number(x)
///
/// A name that is missing is null, so `steps.a.output.count ?? 0` works
/// whether or not the field exists. Comparing values of different kinds,
/// or doing arithmetic on non-numbers, is an error that names both kinds.
public indirect enum Expression: Sendable, Equatable {
    case literal(JSONValue)
    case name(String)
    case member(Expression, String)
    case index(Expression, Expression)
    case list([Expression])
    case unary(String, Expression)
    case binary(String, Expression, Expression)
    case call(String, [Expression])

    public static let names: Set<String> = ["input", "steps", "item", "index"]
    public static let functions: [String: ClosedRange<Int>] = [
        "len": 1...1, "sum": 1...1, "min": 1...1, "max": 1...1, "round": 1...2, "join": 1...2, "pluck": 2...2,
        "flatten": 1...1, "keys": 1...1, "contains": 2...2, "string": 1...1, "number": 1...1,
    ]

    /// Parses the text; a mistake is reported with its character offset.
    public static func parse(_ text: String) throws(ExpressionError) -> Expression {
        var p = ExpressionParser(tokens: try ExpressionLexer.tokens(text))
        let e = try p.expression()
        if let t = p.peek { throw ExpressionError(offset: t.offset, "unexpected \(t.text) after a complete expression") }
        return e
    }

    /// The step names this expression reads (`steps.NAME...`), each with the
    /// member after it if there is one (a parallel step's branch).
    public var stepReferences: [(step: String, branch: String?)] {
        var out: [(String, String?)] = []
        func walk(_ e: Expression, parent: String?) {
            switch e {
            case .literal, .name: break
            case .member(.member(.name("steps"), let s), let b): out.append((s, b))
            case .member(.name("steps"), let s): out.append((s, nil))
            case .index(.name("steps"), _): out.append(("*", nil))
            case .member(let x, _): walk(x, parent: nil)
            case .index(let x, let i): walk(x, parent: nil); walk(i, parent: nil)
            case .list(let l), .call(_, let l): l.forEach { walk($0, parent: nil) }
            case .unary(_, let x): walk(x, parent: nil)
            case .binary(_, let a, let b): walk(a, parent: nil); walk(b, parent: nil)
            }
        }
        walk(self, parent: nil)
        return out
    }

    /// Every root name the expression reads.
    public var rootNames: Set<String> {
        switch self {
        case .literal: return []
        case .name(let n): return [n]
        case .member(let x, _): return x.rootNames
        case .index(let x, let i): return x.rootNames.union(i.rootNames)
        case .list(let l), .call(_, let l): return l.reduce(into: Set()) { $0.formUnion($1.rootNames) }
        case .unary(_, let x): return x.rootNames
        case .binary(_, let a, let b): return a.rootNames.union(b.rootNames)
        }
    }

    // MARK: evaluation

    public func evaluate(_ scope: [String: JSONValue]) throws(ExpressionError) -> JSONValue {
        switch self {
        case .literal(let v): return v
        case .name(let n): return scope[n] ?? .null
        case .member(let x, let key): return try x.evaluate(scope)[key] ?? .null
        case .index(let x, let i):
            let base = try x.evaluate(scope), at = try i.evaluate(scope)
            switch (base, at) {
            case (.array(let a), _):
                guard let n = Expression.integer(at) else { return .null }
                let k = n < 0 ? a.count + n : n
                return a.indices.contains(k) ? a[k] : .null
            case (.object(let o), .string(let k)): return o[k] ?? .null
            default: return .null
            }
        case .list(let l):
            var out: [JSONValue] = []
            for e in l { out.append(try e.evaluate(scope)) }
            return .array(out)
        case .unary(let op, let x):
            let v = try x.evaluate(scope)
            if op == "-" {
                guard let d = Expression.number(v) else { throw ExpressionError(offset: 0, "cannot negate \(v.typeName)") }
                return Expression.numeric(-d, intLike: Expression.integer(v) != nil)
            }
            return .bool(!Expression.truthy(v))
        case .binary(let op, let a, let b): return try binary(op, a, b, scope)
        case .call(let f, let args):
            var values: [JSONValue] = []
            for a in args { values.append(try a.evaluate(scope)) }
            return try ExpressionFunctions.call(f, values)
        }
    }

    private func binary(_ op: String, _ a: Expression, _ b: Expression, _ scope: [String: JSONValue]) throws(ExpressionError) -> JSONValue {
        let l = try a.evaluate(scope)
        switch op {   // short-circuit forms first
        case "??": return l == .null ? try b.evaluate(scope) : l
        case "||": return Expression.truthy(l) ? .bool(true) : .bool(Expression.truthy(try b.evaluate(scope)))
        case "&&": return !Expression.truthy(l) ? .bool(false) : .bool(Expression.truthy(try b.evaluate(scope)))
        default: break
        }
        let r = try b.evaluate(scope)
        switch op {
        case "==": return .bool(Expression.equal(l, r))
        case "!=": return .bool(!Expression.equal(l, r))
        case "in": return .bool(try ExpressionFunctions.contains(r, l))
        case "<", "<=", ">", ">=":
            let c = try Expression.compare(l, r, op)
            switch op { case "<": return .bool(c < 0); case "<=": return .bool(c <= 0); case ">": return .bool(c > 0); default: return .bool(c >= 0) }
        case "+":
            switch (l, r) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.array(let x), .array(let y)): return .array(x + y)
            default: break
            }
            fallthrough
        default:
            guard let x = Expression.number(l), let y = Expression.number(r) else {
                throw ExpressionError(offset: 0, "\(op) needs two numbers, got \(l.typeName) and \(r.typeName)")
            }
            let ints = Expression.integer(l) != nil && Expression.integer(r) != nil
            switch op {
            case "+": return Expression.numeric(x + y, intLike: ints)
            case "-": return Expression.numeric(x - y, intLike: ints)
            case "*": return Expression.numeric(x * y, intLike: ints)
            case "%":
                guard y != 0 else { throw ExpressionError(offset: 0, "% by zero") }
                return Expression.numeric(x.truncatingRemainder(dividingBy: y), intLike: ints)
            default:
                guard y != 0 else { throw ExpressionError(offset: 0, "division by zero") }
                return Expression.numeric(x / y, intLike: false)
            }
        }
    }

    /// false, null, 0, "", [] and {} are false; everything else is true.
    public static func truthy(_ v: JSONValue) -> Bool {
        switch v {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .uint(let u): return u != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        }
    }

    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .uint(let u): return Double(u)
        case .double(let d): return d
        default: return nil
        }
    }

    static func integer(_ v: JSONValue) -> Int? {
        switch v {
        case .int(let i): return Int(i)
        case .uint(let u): return Int(exactly: u)
        case .double(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: return nil
        }
    }

    static func numeric(_ d: Double, intLike: Bool) -> JSONValue {
        intLike && d == d.rounded() && abs(d) < 9e15 ? .int(Int64(d)) : .double(d)
    }

    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = number(a), let y = number(b) { return x == y }
        return a == b
    }

    static func compare(_ a: JSONValue, _ b: JSONValue, _ op: String) throws(ExpressionError) -> Int {
        if let x = number(a), let y = number(b) { return x < y ? -1 : (x > y ? 1 : 0) }
        if case .string(let x) = a, case .string(let y) = b { return x < y ? -1 : (x > y ? 1 : 0) }
        throw ExpressionError(offset: 0, "\(op) compares two numbers or two strings, got \(a.typeName) and \(b.typeName)")
    }
}

/// What is wrong with an expression, and where in its text.
public struct ExpressionError: Error, Sendable, CustomStringConvertible {
    public let offset: Int
    public let message: String
    init(offset: Int, _ message: String) { self.offset = offset; self.message = message }
    public var description: String { message }
}

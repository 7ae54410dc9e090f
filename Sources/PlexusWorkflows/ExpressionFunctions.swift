import PlexusCore

/// The expression language's functions (listed in Expression).
enum ExpressionFunctions {
    static func call(_ f: String, _ a: [JSONValue]) throws(ExpressionError) -> JSONValue {
        switch f {
        case "len":
            switch a[0] {
            case .array(let x): return .int(Int64(x.count))
            case .object(let x): return .int(Int64(x.count))
            case .string(let x): return .int(Int64(x.count))
            case .null: return .int(0)
            default: throw ExpressionError(offset: 0, "len needs a list, object or string, got \(a[0].typeName)")
            }
        case "sum", "min", "max":
            let xs = try numbers(a[0], f)
            if f == "sum" {
                return Expression.numeric(xs.reduce(0, +), intLike: list(a[0]).allSatisfy { Expression.integer($0) != nil })
            }
            guard let v = f == "min" ? xs.min() : xs.max() else { return .null }
            return Expression.numeric(v, intLike: list(a[0]).allSatisfy { Expression.integer($0) != nil })
        case "round":
            guard let x = Expression.number(a[0]) else { throw ExpressionError(offset: 0, "round needs a number, got \(a[0].typeName)") }
            let digits = a.count > 1 ? Expression.integer(a[1]) ?? 0 : 0
            var scale = 1.0
            for _ in 0..<max(0, min(12, digits)) { scale *= 10 }
            return Expression.numeric((x * scale).rounded() / scale, intLike: digits <= 0)
        case "join":
            let sep: String
            if a.count > 1 { guard case .string(let s) = a[1] else { throw ExpressionError(offset: 0, "join's separator must be a string") }; sep = s } else { sep = "" }
            return .string(list(a[0]).map(text).joined(separator: sep))
        case "pluck":
            guard case .string(let key) = a[1] else { throw ExpressionError(offset: 0, "pluck's key must be a string") }
            return .array(try checkedList(a[0], f).map { $0[key] ?? .null })
        case "flatten":
            return .array(try checkedList(a[0], f).flatMap { v -> [JSONValue] in if case .array(let x) = v { x } else { [v] } })
        case "keys":
            guard case .object(let o) = a[0] else { throw ExpressionError(offset: 0, "keys needs an object, got \(a[0].typeName)") }
            return .array(o.keys.sorted().map(JSONValue.string))
        case "contains": return .bool(try contains(a[0], a[1]))
        case "string": return .string(text(a[0]))
        default:   // number
            if let d = Expression.number(a[0]) { return Expression.numeric(d, intLike: Expression.integer(a[0]) != nil) }
            if case .string(let s) = a[0], let d = Double(s.trimmingCharacters(in: .whitespaces)) { return Expression.numeric(d, intLike: Int64(s) != nil) }
            throw ExpressionError(offset: 0, "number cannot read \(a[0].text.prefix(40)) as a number")
        }
    }

    /// `needle in haystack`: an element of a list, a key of an object, a part of a string.
    static func contains(_ haystack: JSONValue, _ needle: JSONValue) throws(ExpressionError) -> Bool {
        switch (haystack, needle) {
        case (.array(let x), _): return x.contains { Expression.equal($0, needle) }
        case (.object(let o), .string(let k)): return o[k] != nil
        case (.string(let s), .string(let part)): return s.contains(part)
        case (.null, _): return false
        default: throw ExpressionError(offset: 0, "contains looks in a list, an object's keys or a string, got \(haystack.typeName)")
        }
    }

    /// A value as text: strings as they are, everything else as JSON.
    static func text(_ v: JSONValue) -> String {
        if case .string(let s) = v { return s }
        return v.text
    }

    static func list(_ v: JSONValue) -> [JSONValue] {
        if case .array(let x) = v { return x }
        return []
    }

    static func checkedList(_ v: JSONValue, _ f: String) throws(ExpressionError) -> [JSONValue] {
        switch v {
        case .array(let x): return x
        case .null: return []
        default: throw ExpressionError(offset: 0, "\(f) needs a list, got \(v.typeName)")
        }
    }

    static func numbers(_ v: JSONValue, _ f: String) throws(ExpressionError) -> [Double] {
        var out: [Double] = []
        for x in try checkedList(v, f) {
            guard let d = Expression.number(x) else { throw ExpressionError(offset: 0, "\(f) needs a list of numbers; it holds \(x.typeName)") }
            out.append(d)
        }
        return out
    }
}

/// A step's input: any JSON value whose strings may hold `${expression}`.
/// A string that is exactly one `${...}` becomes the expression's value
/// (a list stays a list); otherwise each `${...}` is replaced by its text.
public struct Template: Sendable, Equatable {
    indirect enum Part: Sendable, Equatable {
        case value(JSONValue)
        case whole(Expression)
        case text([Piece])
        case array([Part])
        case object([String: Part])
    }
    enum Piece: Sendable, Equatable { case literal(String), expression(Expression) }

    let root: Part

    /// `offset` in an error is into the string that held the mistake.
    public init(_ value: JSONValue) throws(ExpressionError) { root = try Template.compile(value) }

    public var expressions: [Expression] {
        func walk(_ p: Part) -> [Expression] {
            switch p {
            case .value: return []
            case .whole(let e): return [e]
            case .text(let pieces): return pieces.compactMap { if case .expression(let e) = $0 { e } else { nil } }
            case .array(let ps): return ps.flatMap(walk)
            case .object(let o): return o.keys.sorted().flatMap { walk(o[$0]!) }
            }
        }
        return walk(root)
    }

    public func render(_ scope: [String: JSONValue]) throws(ExpressionError) -> JSONValue { try Template.render(root, scope) }

    static func render(_ p: Part, _ scope: [String: JSONValue]) throws(ExpressionError) -> JSONValue {
        switch p {
        case .value(let v): return v
        case .whole(let e): return try e.evaluate(scope)
        case .text(let pieces):
            var s = ""
            for piece in pieces {
                switch piece {
                case .literal(let l): s += l
                case .expression(let e): s += ExpressionFunctions.text(try e.evaluate(scope))
                }
            }
            return .string(s)
        case .array(let ps):
            var out: [JSONValue] = []
            for x in ps { out.append(try render(x, scope)) }
            return .array(out)
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (k, x) in o { out[k] = try render(x, scope) }
            return .object(out)
        }
    }

    static func compile(_ v: JSONValue) throws(ExpressionError) -> Part {
        switch v {
        case .string(let s) where s.contains("${"):
            let pieces = try pieces(s)
            if pieces.count == 1, case .expression(let e) = pieces[0] { return .whole(e) }
            return .text(pieces)
        case .array(let a):
            var out: [Part] = []
            for x in a { out.append(try compile(x)) }
            return .array(out)
        case .object(let o):
            var out: [String: Part] = [:]
            for (k, x) in o { out[k] = try compile(x) }
            return .object(out)
        default: return .value(v)
        }
    }

    /// Splits "a ${x} b" into literal and expression pieces; `$${` is a literal `${`.
    static func pieces(_ s: String) throws(ExpressionError) -> [Piece] {
        var out: [Piece] = []
        var literal = ""
        var rest = Substring(s)
        var offset = 0
        while let open = rest.range(of: "${") {
            if open.lowerBound > rest.startIndex, rest[rest.index(before: open.lowerBound)] == "$" {
                literal += rest[..<rest.index(before: open.lowerBound)] + "${"
                offset += rest.distance(from: rest.startIndex, to: open.upperBound)
                rest = rest[open.upperBound...]
                continue
            }
            literal += rest[..<open.lowerBound]
            let bodyStart = offset + rest.distance(from: rest.startIndex, to: open.upperBound)
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw ExpressionError(offset: bodyStart - 2, "'${' is never closed with '}'")
            }
            let body = String(rest[open.upperBound..<close])
            do throws(ExpressionError) {
                if !literal.isEmpty { out.append(.literal(literal)); literal = "" }
                out.append(.expression(try Expression.parse(body)))
            } catch {
                throw ExpressionError(offset: bodyStart + error.offset, error.message)
            }
            offset = bodyStart + body.count + 1
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { out.append(.literal(literal)) }
        return out
    }
}

import PlexusCore

struct Token: Equatable {
    enum Kind: Equatable { case number(JSONValue), string(String), identifier(String), symbol(String) }
    let kind: Kind
    let offset: Int
    var text: String {
        switch kind {
        case .number(let v): return v.text
        case .string(let s): return "'\(s)'"
        case .identifier(let s): return "'\(s)'"
        case .symbol(let s): return "'\(s)'"
        }
    }
}

enum ExpressionLexer {
    static let symbols = ["??", "||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%", ".", ",", "(", ")", "[", "]"]

    static func tokens(_ text: String) throws(ExpressionError) -> [Token] {
        let chars = Array(text.unicodeScalars)
        var out: [Token] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" { i += 1; continue }
            let start = i
            if c.properties.numericType != nil && ("0"..."9").contains(c) {
                while i < chars.count && (("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "_") { i += 1 }
                let s = String(String.UnicodeScalarView(chars[start..<i])).replacingOccurrences(of: "_", with: "")
                if let n = Int64(s) { out.append(Token(kind: .number(.int(n)), offset: start)) }
                else if let d = Double(s) { out.append(Token(kind: .number(.double(d)), offset: start)) }
                else { throw ExpressionError(offset: start, "'\(s)' is not a number") }
            } else if c == "'" || c == "\"" {
                i += 1
                var s = String.UnicodeScalarView()
                while i < chars.count && chars[i] != c {
                    if chars[i] == "\\" && i + 1 < chars.count {   // \n \t, else the next character as it is
                        i += 1
                        s.append(chars[i] == "n" ? "\n" : chars[i] == "t" ? "\t" : chars[i]); i += 1
                        continue
                    }
                    s.append(chars[i]); i += 1
                }
                guard i < chars.count else { throw ExpressionError(offset: start, "a string opened here is never closed") }
                i += 1
                out.append(Token(kind: .string(String(s)), offset: start))
            } else if c.properties.isAlphabetic || c == "_" {
                while i < chars.count && (chars[i].properties.isAlphabetic || chars[i] == "_" || ("0"..."9").contains(chars[i])) { i += 1 }
                out.append(Token(kind: .identifier(String(String.UnicodeScalarView(chars[start..<i]))), offset: start))
            } else if let sym = symbols.first(where: { sym in
                let s = Array(sym.unicodeScalars)
                return i + s.count <= chars.count && Array(chars[i..<i + s.count]) == s
            }) {
                i += sym.unicodeScalars.count
                out.append(Token(kind: .symbol(sym), offset: start))
            } else {
                throw ExpressionError(offset: start, "unexpected character '\(c)'")
            }
        }
        return out
    }
}

/// Recursive descent, lowest precedence first: ?? , or, and, not, comparison, + -, * / %, unary -, access.
struct ExpressionParser {
    let tokens: [Token]
    var at = 0

    init(tokens: [Token]) { self.tokens = tokens }

    var peek: Token? { at < tokens.count ? tokens[at] : nil }
    var endOffset: Int { tokens.last.map { $0.offset + 1 } ?? 0 }

    mutating func take(_ symbol: String) -> Bool {
        guard let t = peek else { return false }
        if t.kind == .symbol(symbol) || t.kind == .identifier(symbol) { at += 1; return true }
        return false
    }

    mutating func expect(_ symbol: String, after what: String) throws(ExpressionError) {
        guard take(symbol) else {
            throw ExpressionError(offset: peek?.offset ?? endOffset, "expected '\(symbol)' \(what), found \(peek?.text ?? "the end")")
        }
    }

    mutating func expression() throws(ExpressionError) -> Expression {
        var e = try or()
        while take("??") { e = .binary("??", e, try or()) }
        return e
    }

    mutating func or() throws(ExpressionError) -> Expression {
        var e = try and()
        while take("||") || take("or") { e = .binary("||", e, try and()) }
        return e
    }

    mutating func and() throws(ExpressionError) -> Expression {
        var e = try not()
        while take("&&") || take("and") { e = .binary("&&", e, try not()) }
        return e
    }

    mutating func not() throws(ExpressionError) -> Expression {
        if take("!") || take("not") { return .unary("!", try not()) }
        return try comparison()
    }

    mutating func comparison() throws(ExpressionError) -> Expression {
        let e = try sum()
        for op in ["==", "!=", "<=", ">=", "<", ">", "in"] where take(op) { return .binary(op, e, try sum()) }
        return e
    }

    mutating func sum() throws(ExpressionError) -> Expression {
        var e = try product()
        while true {
            if take("+") { e = .binary("+", e, try product()) } else if take("-") { e = .binary("-", e, try product()) } else { return e }
        }
    }

    mutating func product() throws(ExpressionError) -> Expression {
        var e = try unary()
        while true {
            if take("*") { e = .binary("*", e, try unary()) }
            else if take("/") { e = .binary("/", e, try unary()) }
            else if take("%") { e = .binary("%", e, try unary()) }
            else { return e }
        }
    }

    mutating func unary() throws(ExpressionError) -> Expression {
        if take("-") { return .unary("-", try unary()) }
        return try postfix()
    }

    mutating func postfix() throws(ExpressionError) -> Expression {
        var e = try primary()
        while true {
            if take(".") {
                guard let t = peek, case .identifier(let name) = t.kind else {
                    throw ExpressionError(offset: peek?.offset ?? endOffset, "expected a field name after '.', found \(peek?.text ?? "the end")")
                }
                at += 1
                e = .member(e, name)
            } else if take("[") {
                let i = try expression()
                try expect("]", after: "to close the index")
                e = .index(e, i)
            } else {
                return e
            }
        }
    }

    mutating func primary() throws(ExpressionError) -> Expression {
        guard let t = peek else { throw ExpressionError(offset: endOffset, "the expression ends where a value was expected") }
        at += 1
        switch t.kind {
        case .number(let v): return .literal(v)
        case .string(let s): return .literal(.string(s))
        case .identifier("true"): return .literal(.bool(true))
        case .identifier("false"): return .literal(.bool(false))
        case .identifier("null"): return .literal(.null)
        case .identifier(let name):
            if take("(") { return try call(name, at: t.offset) }
            guard Expression.names.contains(name) else {
                throw ExpressionError(offset: t.offset, "unknown name '\(name)'; an expression starts from \(Expression.names.sorted().joined(separator: ", ")), a literal or a function")
            }
            return .name(name)
        case .symbol("("):
            let e = try expression()
            try expect(")", after: "to close '('")
            return e
        case .symbol("["):
            var items: [Expression] = []
            if !take("]") {
                repeat { items.append(try expression()) } while take(",")
                try expect("]", after: "to close the list")
            }
            return .list(items)
        case .symbol(let s):
            throw ExpressionError(offset: t.offset, "unexpected '\(s)' where a value was expected")
        }
    }

    mutating func call(_ name: String, at offset: Int) throws(ExpressionError) -> Expression {
        guard let arity = Expression.functions[name] else {
            throw ExpressionError(offset: offset, "unknown function '\(name)'; the functions are \(Expression.functions.keys.sorted().joined(separator: ", "))")
        }
        var args: [Expression] = []
        if !take(")") {
            repeat { args.append(try expression()) } while take(",")
            try expect(")", after: "to close the arguments of \(name)")
        }
        guard arity.contains(args.count) else {
            let want = arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound) or \(arity.upperBound)"
            throw ExpressionError(offset: offset, "\(name) takes \(want) argument(s), given \(args.count)")
        }
        return .call(name, args)
    }
}

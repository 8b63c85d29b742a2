// Byte-level helpers shared by the HTTP parsers and builders.
//
// HTTP/1.1's syntax is ASCII (RFC 9110 §5.6, RFC 9112 §2): field names are case-
// insensitive tokens, numbers are decimal (or hex in chunk sizes), lines end in CRLF.
// Everything here works on bytes, never on String: Curio's programs get their input
// as bytes from the network, String comparison would pull in Unicode tables and
// normalisation the protocol does not want, and bytes keep the parsers free of
// allocation. The output side appends to a `[UInt8]` the caller reuses, so a
// response head costs no allocation once its buffer has grown to size.

enum ASCII {
    static let cr: UInt8 = 13
    static let lf: UInt8 = 10
    static let space: UInt8 = 32
    static let tab: UInt8 = 9
    static let colon: UInt8 = 58
    static let comma: UInt8 = 44
    static let slash: UInt8 = 47
    static let percent: UInt8 = 37
    static let zero: UInt8 = 48

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

    static func lowercased(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

    /// The value of a hex digit, or nil.
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: byte - 48
        case 65...70: byte - 55
        case 97...102: byte - 87
        default: nil
        }
    }

    /// tchar (RFC 9110 §5.6.2): what methods, field names and codings are made of.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 48...57, 65...90, 97...122: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }
}

/// A read-only window onto bytes owned by someone else, with the few operations the
/// parsers need. A struct of a pointer and a range: slicing it allocates nothing.
struct ByteView {
    let base: UnsafeRawBufferPointer
    var start: Int
    var end: Int

    init(_ base: UnsafeRawBufferPointer, _ start: Int, _ end: Int) {
        self.base = base
        self.start = start
        self.end = end
    }

    init(_ base: UnsafeRawBufferPointer) { self.init(base, 0, base.count) }

    var count: Int { end - start }
    var isEmpty: Bool { start >= end }
    subscript(_ index: Int) -> UInt8 { base[start + index] }

    func slice(_ from: Int, _ to: Int) -> ByteView { ByteView(base, start + from, start + to) }

    /// Without leading and trailing spaces and tabs (OWS).
    func trimmed() -> ByteView {
        var view = self
        while view.start < view.end && ASCII.isWhitespace(base[view.start]) { view.start += 1 }
        while view.end > view.start && ASCII.isWhitespace(base[view.end - 1]) { view.end -= 1 }
        return view
    }

    func firstIndex(of byte: UInt8) -> Int? {
        var index = start
        while index < end {
            if base[index] == byte { return index - start }
            index += 1
        }
        return nil
    }

    /// Equal to the ASCII `literal`, ignoring the case of letters (`literal` in lower case).
    func equalsIgnoringCase(_ literal: StaticString) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        let pointer = literal.utf8Start
        for index in 0..<count where ASCII.lowercased(self[index]) != pointer[index] { return false }
        return true
    }

    func hasPrefixIgnoringCase(_ literal: StaticString) -> Bool {
        guard count >= literal.utf8CodeUnitCount else { return false }
        return slice(0, literal.utf8CodeUnitCount).equalsIgnoringCase(literal)
    }

    /// The decimal number the view spells (digits only, at least one), or nil; nil
    /// too when it does not fit 63 bits, so a sum of two never overflows UInt64.
    func decimal() -> UInt64? {
        guard !isEmpty else { return nil }
        var value: UInt64 = 0
        for index in 0..<count {
            let byte = self[index]
            guard ASCII.isDigit(byte) else { return nil }
            value = value * 10 + UInt64(byte - ASCII.zero)
            guard value <= UInt64(Int64.max) else { return nil }
        }
        return value
    }

    var bytes: [UInt8] {
        var copy = [UInt8]()
        copy.reserveCapacity(count)
        for index in 0..<count { copy.append(self[index]) }
        return copy
    }

    /// Calls `body` with each comma-separated element, trimmed, skipping empty ones
    /// (RFC 9110 §5.6.1: a recipient accepts empty list elements).
    func forEachListElement(_ body: (ByteView) -> Void) {
        var elementStart = 0
        for index in 0...count {
            if index == count || self[index] == ASCII.comma {
                let element = slice(elementStart, index).trimmed()
                if !element.isEmpty { body(element) }
                elementStart = index + 1
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends an ASCII literal.
    public mutating func append(ascii literal: StaticString) {
        let pointer = literal.utf8Start
        for index in 0..<literal.utf8CodeUnitCount { append(pointer[index]) }
    }

    /// Appends `value` in decimal.
    public mutating func append(decimal value: UInt64) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        repeat {
            append(UInt8(truncatingIfNeeded: value / divisor % 10) + 48)
            divisor /= 10
        } while divisor > 0
    }

    mutating func append(_ view: ByteView) {
        for index in 0..<view.count { append(view[index]) }
    }
}

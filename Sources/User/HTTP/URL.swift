// The client's URLs: `http://HOST[:PORT][/PATH]`, HOST a dotted IPv4 address.
//
// Curio has no resolver yet, so a host name is refused with its own error rather
// than looked up; the rest follows RFC 3986 §3 for the http scheme (RFC 9110 §4.2.1):
// the scheme is case-insensitive, the port defaults to 80, an empty path is "/",
// and the path (with its query) is sent as the request target unchanged, so it must
// already be valid target text: no spaces or control bytes, which would break the
// request line. Userinfo ("user@") is refused: we would not send it anywhere.

public enum HTTPURLError: Error, Sendable, Equatable {
    /// Not "http://..." (https and others are not spoken).
    case notHTTP
    /// A host that is no dotted IPv4 address (names need DNS, which Curio lacks).
    case hostNotAnAddress
    /// A port that is not 1...65535.
    case badPort
    /// A space or control byte in the path, or userinfo.
    case badPath

    public var description: StaticString {
        switch self {
        case .notHTTP: "not an http:// URL"
        case .hostNotAnAddress: "the host must be a dotted IPv4 address (no DNS yet)"
        case .badPort: "bad port"
        case .badPath: "bad characters in the path"
        }
    }
}

public struct HTTPURL: Sendable, Equatable {
    /// a.b.c.d as `a << 24 | b << 16 | c << 8 | d`.
    public var address: UInt32
    public var port: UInt16
    /// The request target: the path and query, "/" at least.
    public var target: [UInt8]
    /// The Host field value: the authority as written (address, and port if given).
    public var host: [UInt8]

    public static func parse(_ text: [UInt8]) throws(HTTPURLError) -> HTTPURL {
        let view = text.withUnsafeBytes { ByteView($0).hasPrefixIgnoringCase("http://") }
        guard view else { throw .notHTTP }
        var authorityEnd = 7
        while authorityEnd < text.count && text[authorityEnd] != ASCII.slash && text[authorityEnd] != UInt8(ascii: "?")
                && text[authorityEnd] != UInt8(ascii: "#") {
            authorityEnd += 1
        }
        let authority = Array(text[7..<authorityEnd])
        guard !authority.contains(UInt8(ascii: "@")) else { throw .badPath }
        var hostEnd = authority.count
        var port: UInt16 = 80
        if let colon = authority.firstIndex(of: ASCII.colon) {
            hostEnd = colon
            let digits = authority[(colon + 1)...]
            guard !digits.isEmpty, digits.count <= 5 else { throw .badPort }
            var value = 0
            for byte in digits {
                guard ASCII.isDigit(byte) else { throw .badPort }
                value = value * 10 + Int(byte - ASCII.zero)
            }
            guard value >= 1 && value <= 65535 else { throw .badPort }
            port = UInt16(value)
        }
        guard let address = dottedAddress(authority[0..<hostEnd]) else { throw .hostNotAnAddress }
        // The fragment is the client's own business and is not sent (RFC 9110 §4.2.5).
        var targetEnd = authorityEnd
        while targetEnd < text.count && text[targetEnd] != UInt8(ascii: "#") { targetEnd += 1 }
        var target = [UInt8]()
        if authorityEnd < targetEnd && text[authorityEnd] == UInt8(ascii: "?") { target.append(ASCII.slash) }
        target.append(contentsOf: text[authorityEnd..<targetEnd])
        if target.isEmpty { target.append(ASCII.slash) }
        for byte in target where byte <= ASCII.space || byte >= 0x7F { throw .badPath }
        return HTTPURL(address: address, port: port, target: target, host: authority)
    }

    /// Four decimal parts of 1...3 digits, each at most 255, no leading zeros (which
    /// some resolvers read as octal: refusing them avoids a surprise).
    static func dottedAddress(_ text: ArraySlice<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var part: UInt32 = 0
        var digits = 0
        var leadingZero = false
        var index = text.startIndex
        while true {
            let byte: UInt8 = index < text.endIndex ? text[index] : UInt8(ascii: ".")
            if ASCII.isDigit(byte) {
                if digits == 0 { leadingZero = byte == ASCII.zero }
                digits += 1
                guard digits <= 3 else { return nil }
                part = part * 10 + UInt32(byte - ASCII.zero)
            } else if byte == UInt8(ascii: ".") {
                guard digits > 0, part <= 255, parts < 4, digits == 1 || !leadingZero else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else {
                return nil
            }
            if index >= text.endIndex { break }
            index += 1
        }
        return parts == 4 ? value : nil
    }
}

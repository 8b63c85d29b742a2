// From a request target to a filesystem path, and back (RFC 3986 §2.1, §3.3, §5.2.4).
//
// The target is attacker-chosen text naming a file to open, so decoding is where a
// file server is most easily fooled. The order of steps is what makes it safe:
// strip the query and fragment, percent-decode, and only then split into segments
// and resolve "." and "..": "%2e%2e" and "..%2f" are caught like "..", because the
// filesystem sees decoded bytes. A ".." that would climb above the root is refused
// rather than clamped (a client that sends one is probing). %00 is refused (it would
// end a C string somewhere below), as is every other control byte: a decoded CR LF
// would otherwise reach the Location header of a redirect. Empty segments are
// dropped ("//" is "/"): ext2 has no empty names. A trailing slash is kept, since
// it is what tells a directory listing from a redirect to one.
//
// The way back, `encodePath`, percent-encodes every byte but letters, digits and
// "-._~/", so an encoded path is safe in a header, in an href and in HTML text.

public enum HTTPTargetError: Error, Sendable, Equatable {
    /// Neither "/..." nor "http://host/...".
    case malformed
    /// "%" not followed by two hex digits.
    case malformedEscape
    /// %00.
    case nulByte
    /// A decoded byte below 0x20, or 0x7F.
    case controlCharacter
    /// ".." above the root.
    case escapesRoot
    /// Longer than the filesystem takes once decoded.
    case tooLong

    public var status: HTTPStatus { self == .tooLong ? .uriTooLong : .badRequest }
}

public enum HTTPTarget {
    /// The filesystem path a request target names: absolute, decoded, normalised,
    /// without query; ends in "/" when the target's path did.
    public static func decodePath(_ target: [UInt8], maximumLength: Int = 1024) throws(HTTPTargetError) -> [UInt8] {
        var start = 0
        var end = target.count
        // absolute-form (RFC 9112 §3.2.2): skip scheme and authority.
        if target.count >= 7, target.withUnsafeBytes({ ByteView($0, 0, 7).equalsIgnoringCase("http://") }) {
            start = 7
            while start < end && target[start] != ASCII.slash && target[start] != UInt8(ascii: "?")
                    && target[start] != UInt8(ascii: "#") { start += 1 }
            if start == end || target[start] != ASCII.slash { return [ASCII.slash] }
        }
        for index in start..<end where target[index] == UInt8(ascii: "?") || target[index] == UInt8(ascii: "#") {
            end = index
            break
        }
        guard start < end, target[start] == ASCII.slash else { throw .malformed }

        var decoded = [UInt8]()
        decoded.reserveCapacity(end - start)
        var index = start
        while index < end {
            var byte = target[index]
            if byte == ASCII.percent {
                guard index + 2 < end, let high = ASCII.hexValue(target[index + 1]),
                      let low = ASCII.hexValue(target[index + 2]) else { throw .malformedEscape }
                byte = high << 4 | low
                guard byte != 0 else { throw .nulByte }
                index += 3
            } else {
                index += 1
            }
            guard byte >= ASCII.space && byte != 0x7F else { throw .controlCharacter }
            decoded.append(byte)
        }

        // Resolve segments in place: `path` keeps "/seg/seg", `marks` where each starts.
        var path = [UInt8]()
        path.reserveCapacity(decoded.count)
        var marks = [Int]()
        var trailingSlash = false
        var segmentStart = 1
        for position in 1...decoded.count where position == decoded.count || decoded[position] == ASCII.slash {
            let length = position - segmentStart
            let isDot = length == 1 && decoded[segmentStart] == UInt8(ascii: ".")
            let isDotDot = length == 2 && decoded[segmentStart] == UInt8(ascii: ".")
                && decoded[segmentStart + 1] == UInt8(ascii: ".")
            if isDotDot {
                guard let mark = marks.popLast() else { throw .escapesRoot }
                path.removeSubrange(mark..<path.count)
            } else if length > 0 && !isDot {
                marks.append(path.count)
                path.append(ASCII.slash)
                path.append(contentsOf: decoded[segmentStart..<position])
            }
            trailingSlash = length == 0 || isDot || isDotDot
            segmentStart = position + 1
        }
        if path.isEmpty || trailingSlash { path.append(ASCII.slash) }
        guard path.count <= maximumLength else { throw .tooLong }
        return path
    }

    /// `path` percent-encoded for a Location header or an href (see above).
    public static func encodePath(_ path: [UInt8]) -> [UInt8] {
        var encoded = [UInt8]()
        encoded.reserveCapacity(path.count)
        appendEncoded(path, to: &encoded)
        return encoded
    }

    static func appendEncoded(_ bytes: some Collection<UInt8>, to output: inout [UInt8]) {
        let hex: StaticString = "0123456789ABCDEF"
        for byte in bytes {
            switch byte {
            case 48...57, 65...90, 97...122, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"), ASCII.slash:
                output.append(byte)
            default:
                output.append(ASCII.percent)
                output.append(hex.utf8Start[Int(byte >> 4)])
                output.append(hex.utf8Start[Int(byte & 15)])
            }
        }
    }
}

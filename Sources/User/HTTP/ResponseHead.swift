// Response heads, content types and directory listings (RFC 9110 §6, §8.3, §14.4).
//
// A response head is a handful of fields we always write in the same order, so it is
// a struct of optional values and one `append(to:)` that writes the bytes into a
// buffer the server reuses for every response: no formatting library, no String, no
// allocation once the buffer has grown. There is no Date field: Curio has no clock of
// the day, and RFC 9110 §6.6.1 lets an origin server without one omit it.
//
// Every response says `Accept-Ranges: bytes` (we honour single ranges on every file),
// `Content-Length` (the only framing we use, so keep-alive works), and `Connection:
// close` when the server will close after it, so the client does not wait for more.
//
// Directory listings are HTML whose every name is written twice, once percent-encoded
// in the href and once HTML-escaped in the text: names on the disk are whatever bytes
// someone chose, and a name like `<script>` or `a"b` must stay text.

public struct HTTPResponseHead: Sendable {
    public var status: HTTPStatus
    public var contentLength: UInt64
    /// Content-Type; none for bodies that are not a file (a 416 or a 301's empty body).
    public var contentType: StaticString?
    /// 206: the bytes sent (`first...last`) of a file of `size`; 416: `bytes */size`.
    public var contentRange: (first: UInt64, last: UInt64, size: UInt64)?
    public var unsatisfiedRangeSize: UInt64?
    /// 301: where to (an encoded absolute path).
    public var location: [UInt8]?
    public var close: Bool

    public init(status: HTTPStatus, contentLength: UInt64, contentType: StaticString? = nil, close: Bool = false) {
        self.status = status
        self.contentLength = contentLength
        self.contentType = contentType
        self.close = close
    }

    /// Appends the head, blank line included, to `output`.
    public func append(to output: inout [UInt8]) {
        output.append(ascii: "HTTP/1.1 ")
        output.append(decimal: UInt64(status.code))
        output.append(ASCII.space)
        output.append(ascii: status.reason)
        output.append(ascii: "\r\nServer: Curio\r\n")
        if let contentType {
            output.append(ascii: "Content-Type: ")
            output.append(ascii: contentType)
            output.append(ascii: "\r\n")
        }
        output.append(ascii: "Content-Length: ")
        output.append(decimal: contentLength)
        output.append(ascii: "\r\n")
        if let contentRange {
            output.append(ascii: "Content-Range: bytes ")
            output.append(decimal: contentRange.first)
            output.append(UInt8(ascii: "-"))
            output.append(decimal: contentRange.last)
            output.append(ASCII.slash)
            output.append(decimal: contentRange.size)
            output.append(ascii: "\r\n")
        }
        if let unsatisfiedRangeSize {
            output.append(ascii: "Content-Range: bytes */")
            output.append(decimal: unsatisfiedRangeSize)
            output.append(ascii: "\r\n")
        }
        if let location {
            output.append(ascii: "Location: ")
            output.append(contentsOf: location)
            output.append(ascii: "\r\n")
        }
        // A 405 must say what is allowed (RFC 9110 §15.5.6).
        if status == .methodNotAllowed { output.append(ascii: "Allow: GET, HEAD\r\n") }
        output.append(ascii: "Accept-Ranges: bytes\r\n")
        if close { output.append(ascii: "Connection: close\r\n") }
        output.append(ascii: "\r\n")
    }

    public var bytes: [UInt8] {
        var output = [UInt8]()
        append(to: &output)
        return output
    }
}

public enum HTTPContentType {
    public static let html: StaticString = "text/html; charset=utf-8"
    public static let text: StaticString = "text/plain; charset=utf-8"
    public static let octetStream: StaticString = "application/octet-stream"

    /// The media type for a path, by its extension (case-insensitive); unknown
    /// extensions, and names without one, are octet-stream.
    public static func forPath(_ path: [UInt8]) -> StaticString {
        var dot = path.count
        for index in stride(from: path.count - 1, through: 0, by: -1) {
            if path[index] == ASCII.slash { return octetStream }
            if path[index] == UInt8(ascii: ".") {
                dot = index
                break
            }
        }
        guard dot < path.count else { return octetStream }
        return path.withUnsafeBytes { bytes -> StaticString in
            let ext = ByteView(bytes, dot + 1, bytes.count)
            if ext.equalsIgnoringCase("txt") { return text }
            if ext.equalsIgnoringCase("html") || ext.equalsIgnoringCase("htm") { return html }
            if ext.equalsIgnoringCase("css") { return "text/css; charset=utf-8" }
            if ext.equalsIgnoringCase("js") { return "text/javascript; charset=utf-8" }
            if ext.equalsIgnoringCase("json") { return "application/json" }
            if ext.equalsIgnoringCase("png") { return "image/png" }
            if ext.equalsIgnoringCase("jpg") || ext.equalsIgnoringCase("jpeg") { return "image/jpeg" }
            if ext.equalsIgnoringCase("gif") { return "image/gif" }
            if ext.equalsIgnoringCase("svg") { return "image/svg+xml" }
            if ext.equalsIgnoringCase("pdf") { return "application/pdf" }
            return octetStream
        }
    }
}

public enum HTMLText {
    /// Appends `bytes` with &, <, >, " and ' escaped (safe in text and in quoted attributes).
    public static func appendEscaped(_ bytes: some Collection<UInt8>, to output: inout [UInt8]) {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "&"): output.append(ascii: "&amp;")
            case UInt8(ascii: "<"): output.append(ascii: "&lt;")
            case UInt8(ascii: ">"): output.append(ascii: "&gt;")
            case UInt8(ascii: "\""): output.append(ascii: "&quot;")
            case UInt8(ascii: "'"): output.append(ascii: "&#39;")
            default: output.append(byte)
            }
        }
    }
}

/// An HTML directory listing, built entry by entry as the directory is read.
public struct HTTPDirectoryListing {
    public private(set) var html: [UInt8] = []

    /// Starts the page for the directory at `path` (decoded, ending in "/").
    public init(path: [UInt8]) {
        html.append(ascii: "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ")
        HTMLText.appendEscaped(path, to: &html)
        html.append(ascii: "</title></head>\n<body><h1>Index of ")
        HTMLText.appendEscaped(path, to: &html)
        html.append(ascii: "</h1>\n<ul>\n")
        if path.count > 1 { html.append(ascii: "<li><a href=\"../\">../</a></li>\n") }
    }

    /// Adds a link to `name` (relative to the directory); directories get a "/".
    public mutating func add(name: some Collection<UInt8>, isDirectory: Bool) {
        html.append(ascii: "<li><a href=\"")
        var encoded = [UInt8]()
        HTTPTarget.appendEncoded(name, to: &encoded)
        // A name with a colon would read as a scheme ("javascript:..."), but ':' is
        // encoded; a name starting with '/' cannot exist. Both stay relative links.
        HTMLText.appendEscaped(encoded, to: &html)
        if isDirectory { html.append(ASCII.slash) }
        html.append(ascii: "\">")
        HTMLText.appendEscaped(name, to: &html)
        if isDirectory { html.append(ASCII.slash) }
        html.append(ascii: "</a></li>\n")
    }

    public mutating func finish() {
        html.append(ascii: "</ul>\n</body></html>\n")
    }
}

// An incremental HTTP/1.1 request-head parser (RFC 9112 §2-§3, §5-§6, §9.3).
//
// A server feeds it bytes as they arrive, in pieces of any size, and asks after each
// piece: need more, a complete head (and how many bytes it took), or an error with
// the status to answer. The design follows from three rules:
//
// * The answer depends only on the bytes, never on how they were split. The parser
//   looks for the end of the head (the first empty line after the request line; a
//   bare LF ends a line as well as CRLF, RFC 9112 §2.2) within the first `headLimit`
//   bytes, and interprets the head only once that end is found, or once `headLimit`
//   bytes came without one. Feeding one byte at a time therefore gives the same
//   result as feeding everything at once; the scan resumes where it stopped, so
//   that costs no quadratic rescanning.
// * Bounded memory. The buffer is a `[UInt8]` that grows with what arrives, and the
//   caller reads at most `freeSpace` bytes into it; a head that does not end within
//   the limit is an error (431, or 414 when the target alone is too long), so a
//   connection never holds more than `headLimit` bytes.
// * Refuse rather than misparse. Curio serves files read-only: GET and HEAD carry no
//   body, and a request that announces one (Content-Length > 0: 413; chunked: 411;
//   another coding: 501; both framings: 400) is refused, because reading past a body
//   we did not parse would take its bytes for the next request (request smuggling,
//   RFC 9112 §6.3, §11.2). Headers are checked strictly (no whitespace before the
//   colon, no obsolete line folding, no control bytes, exactly one Host in HTTP/1.1)
//   for the same reason.
//
// Bytes after the head are the next pipelined request: `consumeHead` drops the head
// and keeps them, and `parse` then looks at them without new input.

public enum HTTPMethod: Sendable, Equatable {
    case get
    case head
}

public enum HTTPVersion: Sendable, Equatable {
    case http10
    case http11
}

/// Why a request head was refused, and the status that says so.
public enum HTTPRequestError: Error, Sendable, Equatable {
    /// Not `method SP target SP HTTP/x.y`, or a target that is no origin- or absolute-form.
    case malformedRequestLine
    /// A header line without a colon, with a bad name or value, or folded.
    case malformedHeader
    /// HTTP/1.1 without Host, or more than one Host.
    case badHost
    /// A Content-Length that is not one decimal number (or several that disagree).
    case badContentLength
    /// Both Transfer-Encoding and Content-Length, or Transfer-Encoding in HTTP/1.0.
    case ambiguousFraming
    /// A method other than GET and HEAD.
    case methodNotAllowed
    /// A chunked body: we take bodies only with a length (and no body at all).
    case chunkedBody
    /// Content-Length > 0: GET and HEAD take no body here.
    case bodyNotAccepted
    /// The request target is longer than `targetLimit`.
    case targetTooLong
    /// The head did not end within `headLimit` bytes.
    case headTooLarge
    /// A transfer coding other than chunked.
    case unsupportedTransferCoding
    /// HTTP/0.x, HTTP/2 or later.
    case versionNotSupported

    public var status: HTTPStatus {
        switch self {
        case .malformedRequestLine, .malformedHeader, .badHost, .badContentLength, .ambiguousFraming: .badRequest
        case .methodNotAllowed: .methodNotAllowed
        case .chunkedBody: .lengthRequired
        case .bodyNotAccepted: .contentTooLarge
        case .targetTooLong: .uriTooLong
        case .headTooLarge: .requestHeaderFieldsTooLarge
        case .unsupportedTransferCoding: .notImplemented
        case .versionNotSupported: .httpVersionNotSupported
        }
    }
}

/// A parsed request head: what a file server needs of it.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: HTTPMethod
    public var version: HTTPVersion
    /// The request target as sent (still percent-encoded; see `HTTPTarget.decodePath`).
    public var target: [UInt8]
    /// Whether the connection stays open after the response (RFC 9112 §9.3): HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    public var keepAlive: Bool
    public var range: HTTPRangeHeader
    /// The bytes the head took in the buffer, blank lines before it included.
    public var headLength: Int
}

public enum HTTPParseResult: Sendable, Equatable {
    case needMore
    case complete(HTTPRequestHead)
    case failed(HTTPRequestError)
}

public struct HTTPRequestParser {
    public static let defaultHeadLimit = 8192
    public static let defaultTargetLimit = 2048

    public let headLimit: Int
    public let targetLimit: Int

    private var buffer: [UInt8] = []
    /// Bytes already searched for line ends.
    private var scanned = 0
    /// Where the line being scanned starts.
    private var lineStart = 0
    /// Where the request line starts (after blank lines), once a non-blank line began.
    private var requestLineStart: Int?
    /// Whether the request line has ended (a later overflow is 431, not 414/400).
    private var requestLineEnded = false
    /// The result for the head in the buffer, once known (until `consumeHead`).
    private var verdict: HTTPParseResult?

    public init(headLimit: Int = defaultHeadLimit, targetLimit: Int = defaultTargetLimit) {
        self.headLimit = headLimit
        self.targetLimit = targetLimit
    }

    /// Bytes held: the head being parsed and anything after it.
    public var bufferedCount: Int { buffer.count }

    /// How many bytes the caller should read next, at most: more would grow the buffer
    /// past the head limit (they stay in the network until the head before is done).
    public var freeSpace: Int { max(0, headLimit - buffer.count) }

    /// Adds bytes that arrived and parses. Every byte is kept, even past `freeSpace`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        buffer.append(contentsOf: bytes)
        return parse()
    }

    public mutating func feed(_ bytes: [UInt8]) -> HTTPParseResult {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// The state of the head at the front of the buffer.
    public mutating func parse() -> HTTPParseResult {
        if let verdict { return verdict }
        let limit = min(buffer.count, headLimit)
        var headEnd: Int? = nil
        while scanned < limit {
            let index = scanned
            scanned += 1
            guard buffer[index] == ASCII.lf else { continue }
            let contentEnd = index > lineStart && buffer[index - 1] == ASCII.cr ? index - 1 : index
            let blank = contentEnd == lineStart
            if requestLineStart == nil {
                // Blank lines before the request line are ignored (RFC 9112 §2.2).
                if !blank { requestLineStart = lineStart; requestLineEnded = true }
            } else if blank {
                headEnd = index + 1
                break
            } else {
                requestLineEnded = true
            }
            lineStart = index + 1
        }
        let result: HTTPParseResult
        if let headEnd {
            result = buffer.withUnsafeBytes { interpret(ByteView($0, requestLineStart!, headEnd), headLength: headEnd) }
        } else if buffer.count < headLimit {
            return .needMore
        } else if !requestLineEnded {
            // The limit came inside the request line: say what was too long.
            let start = requestLineStart ?? lineStart
            result = buffer.withUnsafeBytes { bytes in
                switch requestLine(ByteView(bytes, start, headLimit), complete: false) {
                case .failure(let error): .failed(error)
                case .success: .failed(.malformedRequestLine)
                }
            }
        } else {
            result = .failed(.headTooLarge)
        }
        verdict = result
        return result
    }

    /// Drops the completed head (after `.complete`), keeping the bytes after it for the
    /// next request. After an error the connection is closed: this drops everything.
    public mutating func consumeHead() {
        if case .complete(let head) = verdict {
            buffer.removeFirst(head.headLength)
        } else {
            buffer.removeAll(keepingCapacity: true)
        }
        scanned = 0
        lineStart = 0
        requestLineStart = nil
        requestLineEnded = false
        verdict = nil
    }

    // MARK: Interpretation

    private struct RequestLine {
        var method: HTTPMethod
        var version: HTTPVersion
        var target: ByteView
    }

    /// Checks a request line (`complete`: the whole line; otherwise the part that fit
    /// the head limit, for which only "target too long" or "malformed" can come out).
    private func requestLine(_ line: ByteView, complete: Bool) -> Result<RequestLine, HTTPRequestError> {
        guard let methodEnd = line.firstIndex(of: ASCII.space), methodEnd > 0 else {
            return .failure(.malformedRequestLine)
        }
        let method = line.slice(0, methodEnd)
        for index in 0..<method.count where !ASCII.isTokenCharacter(method[index]) {
            return .failure(.malformedRequestLine)
        }
        let rest = line.slice(methodEnd + 1, line.count)
        let targetEnd = rest.firstIndex(of: ASCII.space)
        let target = rest.slice(0, targetEnd ?? rest.count)
        guard target.count <= targetLimit else { return .failure(.targetTooLong) }
        guard complete, let targetEnd, !target.isEmpty else { return .failure(.malformedRequestLine) }
        for index in 0..<target.count where target[index] <= ASCII.space || target[index] >= 0x7F {
            return .failure(.malformedRequestLine)
        }
        guard target[0] == ASCII.slash || target.hasPrefixIgnoringCase("http://") else {
            return .failure(.malformedRequestLine)
        }
        // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
        let version = rest.slice(targetEnd + 1, rest.count)
        guard version.count == 8, version.slice(0, 5).equalsIgnoringCase("http/"),
              version[0] == UInt8(ascii: "H"), version[1] == UInt8(ascii: "T"), version[2] == UInt8(ascii: "T"),
              version[3] == UInt8(ascii: "P"), ASCII.isDigit(version[5]), version[6] == UInt8(ascii: "."),
              ASCII.isDigit(version[7]) else {
            return .failure(.malformedRequestLine)
        }
        guard version[5] == UInt8(ascii: "1") else { return .failure(.versionNotSupported) }
        // A later 1.x is answered as 1.1, the highest we speak (RFC 9110 §2.5).
        let parsedVersion: HTTPVersion = version[7] == UInt8(ascii: "0") ? .http10 : .http11
        let parsedMethod: HTTPMethod
        if method.count == 3 && method[0] == UInt8(ascii: "G") && method[1] == UInt8(ascii: "E")
            && method[2] == UInt8(ascii: "T") {
            parsedMethod = .get
        } else if method.count == 4 && method[0] == UInt8(ascii: "H") && method[1] == UInt8(ascii: "E")
            && method[2] == UInt8(ascii: "A") && method[3] == UInt8(ascii: "D") {
            parsedMethod = .head
        } else {
            // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
            return .failure(.methodNotAllowed)
        }
        return .success(RequestLine(method: parsedMethod, version: parsedVersion, target: target))
    }

    /// The head from its request line to the end of its blank line.
    private func interpret(_ head: ByteView, headLength: Int) -> HTTPParseResult {
        // Split into lines without their CR LF / LF.
        var position = 0
        func nextLine() -> ByteView? {
            guard position < head.count, let newline = head.slice(position, head.count).firstIndex(of: ASCII.lf) else {
                return nil
            }
            var end = position + newline
            if end > position && head[end - 1] == ASCII.cr { end -= 1 }
            let line = head.slice(position, end)
            position += newline + 1
            return line
        }
        guard let first = nextLine() else { return .failed(.malformedRequestLine) }
        let line: RequestLine
        switch requestLine(first, complete: true) {
        case .failure(let error): return .failed(error)
        case .success(let parsed): line = parsed
        }

        var hosts = 0
        var close = false
        var keepAliveToken = false
        var contentLength: UInt64? = nil
        var transferEncoding = false
        var chunkedLast = false
        var rangeHeaders = 0
        var range = HTTPRangeHeader.absent
        while let field = nextLine(), !field.isEmpty {
            // Leading whitespace is obsolete line folding, or whitespace after the
            // start line (RFC 9112 §2.2, §5.2): both are refused.
            guard let colon = field.firstIndex(of: ASCII.colon), colon > 0 else { return .failed(.malformedHeader) }
            let name = field.slice(0, colon)
            for index in 0..<name.count where !ASCII.isTokenCharacter(name[index]) {
                return .failed(.malformedHeader)
            }
            let value = field.slice(colon + 1, field.count).trimmed()
            for index in 0..<value.count {
                let byte = value[index]
                guard byte == ASCII.tab || (byte >= ASCII.space && byte != 0x7F) else { return .failed(.malformedHeader) }
            }
            if name.equalsIgnoringCase("host") {
                hosts += 1
            } else if name.equalsIgnoringCase("connection") {
                value.forEachListElement { option in
                    if option.equalsIgnoringCase("close") { close = true }
                    if option.equalsIgnoringCase("keep-alive") { keepAliveToken = true }
                }
            } else if name.equalsIgnoringCase("content-length") {
                guard let length = value.decimal(), contentLength == nil || contentLength == length else {
                    return .failed(.badContentLength)
                }
                contentLength = length
            } else if name.equalsIgnoringCase("transfer-encoding") {
                value.forEachListElement { coding in
                    transferEncoding = true
                    chunkedLast = coding.equalsIgnoringCase("chunked")
                }
            } else if name.equalsIgnoringCase("range") {
                rangeHeaders += 1
                range = HTTPRangeHeader.parse(value)
            }
        }
        // HTTP/1.1 requires exactly one Host; HTTP/1.0 at most one (RFC 9112 §3.2).
        guard hosts <= 1, hosts == 1 || line.version == .http10 else { return .failed(.badHost) }
        if transferEncoding {
            guard contentLength == nil, line.version == .http11 else { return .failed(.ambiguousFraming) }
            return .failed(chunkedLast ? .chunkedBody : .unsupportedTransferCoding)
        }
        if let contentLength, contentLength > 0 { return .failed(.bodyNotAccepted) }
        // Two Range fields: the server may ignore Range (RFC 9110 §14.2) and does.
        if rangeHeaders > 1 { range = .ignored }
        let keepAlive = line.version == .http11 ? !close : keepAliveToken && !close
        return .complete(HTTPRequestHead(method: line.method, version: line.version, target: line.target.bytes,
                                         keepAlive: keepAlive, range: range, headLength: headLength))
    }
}

// The client side: a response-head parser and a chunked-body decoder (RFC 9112 §4,
// §6.3, §7.1).
//
// The head parser mirrors the request parser (incremental, split-independent, bare
// LF tolerated, a size limit) but is more forgiving, as a client should be: it
// needs only the status, the framing and whether the server will close, and
// ignores every other field. The framing follows RFC 9112 §6.3: no body for 1xx,
// 204 and 304; Transfer-Encoding ending in chunked means chunked (and wins over
// Content-Length); another Transfer-Encoding, or no length at all, means the body
// runs until the server closes; otherwise Content-Length.
//
// The chunked decoder is a byte-at-a-time state machine that decodes in place: the
// data bytes of a buffer move towards its front, over the chunk-size lines they
// followed, so the client needs no second buffer and any split of the stream
// decodes the same. Chunk extensions and trailer fields are skipped (we have no use
// for them); a size of more than 15 hex digits is an error, not an overflow.

public enum HTTPBodyFraming: Sendable, Equatable {
    case length(UInt64)
    case chunked
    case untilClose
}

public struct HTTPResponseInfo: Sendable, Equatable {
    public var status: Int
    public var version: HTTPVersion
    public var framing: HTTPBodyFraming
    /// The server said `Connection: close`, or is HTTP/1.0 without keep-alive.
    public var close: Bool
    public var headLength: Int
}

public enum HTTPResponseError: Error, Sendable, Equatable {
    case malformedStatusLine
    case malformedHeader
    case badContentLength
    case headTooLarge

    public var description: StaticString {
        switch self {
        case .malformedStatusLine: "malformed status line"
        case .malformedHeader: "malformed header field"
        case .badContentLength: "bad Content-Length"
        case .headTooLarge: "response head too large"
        }
    }
}

public enum HTTPResponseParseResult: Sendable, Equatable {
    case needMore
    case complete(HTTPResponseInfo)
    case failed(HTTPResponseError)
}

public struct HTTPResponseParser {
    public let headLimit: Int
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var lineStart = 0
    private var verdict: HTTPResponseParseResult?

    public init(headLimit: Int = 16384) { self.headLimit = headLimit }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> HTTPResponseParseResult {
        buffer.append(contentsOf: bytes)
        return parse()
    }

    public mutating func feed(_ bytes: [UInt8]) -> HTTPResponseParseResult { bytes.withUnsafeBytes { feed($0) } }

    public mutating func parse() -> HTTPResponseParseResult {
        if let verdict { return verdict }
        let limit = min(buffer.count, headLimit)
        while scanned < limit {
            let index = scanned
            scanned += 1
            guard buffer[index] == ASCII.lf else { continue }
            let blank = index == lineStart || (index == lineStart + 1 && buffer[lineStart] == ASCII.cr)
            if blank && lineStart > 0 {
                let result = buffer.withUnsafeBytes { interpret(ByteView($0, 0, index + 1)) }
                verdict = result
                return result
            }
            lineStart = index + 1
        }
        guard buffer.count >= headLimit else { return .needMore }
        verdict = .failed(.headTooLarge)
        return .failed(.headTooLarge)
    }

    /// After `.complete`: the bytes that came after the head (the body's start, or
    /// the next response's head after a 1xx), and the parser ready for a new head.
    public mutating func takeRemainder() -> [UInt8] {
        guard case .complete(let info) = verdict else { return [] }
        let rest = Array(buffer[info.headLength...])
        buffer.removeAll()
        scanned = 0
        lineStart = 0
        verdict = nil
        return rest
    }

    private func interpret(_ head: ByteView) -> HTTPResponseParseResult {
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
        // status-line = HTTP-version SP 3DIGIT SP [reason-phrase]; the SP after the
        // code is missing in some servers' output, which we tolerate.
        guard let line = nextLine(), line.count >= 12, line.slice(0, 5).equalsIgnoringCase("http/"),
              line[5] == UInt8(ascii: "1"), line[6] == UInt8(ascii: "."), ASCII.isDigit(line[7]),
              line[8] == ASCII.space, ASCII.isDigit(line[9]), ASCII.isDigit(line[10]), ASCII.isDigit(line[11]),
              line.count == 12 || line[12] == ASCII.space else {
            return .failed(.malformedStatusLine)
        }
        let version: HTTPVersion = line[7] == ASCII.zero ? .http10 : .http11
        let status = Int(line[9] - ASCII.zero) * 100 + Int(line[10] - ASCII.zero) * 10 + Int(line[11] - ASCII.zero)
        guard status >= 100 else { return .failed(.malformedStatusLine) }
        var contentLength: UInt64? = nil
        var transferEncoding = false
        var chunked = false
        var close = false
        var keepAlive = false
        while let field = nextLine(), !field.isEmpty {
            guard let colon = field.firstIndex(of: ASCII.colon), colon > 0 else { return .failed(.malformedHeader) }
            let name = field.slice(0, colon)
            let value = field.slice(colon + 1, field.count).trimmed()
            if name.equalsIgnoringCase("content-length") {
                guard let length = value.decimal(), contentLength == nil || contentLength == length else {
                    return .failed(.badContentLength)
                }
                contentLength = length
            } else if name.equalsIgnoringCase("transfer-encoding") {
                value.forEachListElement { coding in
                    transferEncoding = true
                    chunked = coding.equalsIgnoringCase("chunked")
                }
            } else if name.equalsIgnoringCase("connection") {
                value.forEachListElement { option in
                    if option.equalsIgnoringCase("close") { close = true }
                    if option.equalsIgnoringCase("keep-alive") { keepAlive = true }
                }
            }
        }
        let framing: HTTPBodyFraming
        if status < 200 || status == 204 || status == 304 {
            framing = .length(0)
        } else if transferEncoding {
            framing = chunked ? .chunked : .untilClose
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .untilClose
        }
        if version == .http10 && !keepAlive { close = true }
        return .complete(HTTPResponseInfo(status: status, version: version, framing: framing, close: close,
                                          headLength: head.end))
    }
}

public enum HTTPChunkError: Error, Sendable, Equatable {
    /// A chunk-size line without hex digits, or with bytes that are neither an
    /// extension nor the line's end.
    case badChunkSize
    /// More than 15 hex digits.
    case chunkTooLarge
    /// Chunk data not followed by CRLF.
    case missingDataTerminator
}

public struct HTTPChunkedDecoder {
    private enum State {
        case size
        case sizeExtension
        case sizeLF
        case data
        case dataCR
        case dataLF
        case trailerStart
        case trailerLine
        case trailerLF
        case done
    }

    private var state = State.size
    private var digits = 0
    private var remaining: UInt64 = 0

    public init() {}

    /// The last chunk and the trailer have been read: the body is complete.
    public var isDone: Bool { state == .done }

    /// Decodes `buffer` in place, continuing where the previous call stopped: moves
    /// the data bytes to its front and returns their count, and how many bytes of
    /// `buffer` were used (all of them, unless the body ended inside it).
    public mutating func decode(_ buffer: UnsafeMutableRawBufferPointer) throws(HTTPChunkError)
        -> (data: Int, consumed: Int) {
        var input = 0
        var output = 0
        while input < buffer.count && state != .done {
            if state == .data {
                let count = Int(min(remaining, UInt64(buffer.count - input)))
                if output != input, let base = buffer.baseAddress {
                    (base + output).copyMemory(from: base + input, byteCount: count)
                }
                output += count
                input += count
                remaining -= UInt64(count)
                if remaining == 0 { state = .dataCR }
                continue
            }
            let byte = buffer[input]
            input += 1
            switch state {
            case .size:
                if let value = ASCII.hexValue(byte) {
                    digits += 1
                    guard digits <= 15 else { throw .chunkTooLarge }
                    remaining = remaining << 4 | UInt64(value)
                } else if digits > 0 && (byte == UInt8(ascii: ";") || ASCII.isWhitespace(byte)) {
                    state = .sizeExtension
                } else if digits > 0 && byte == ASCII.cr {
                    state = .sizeLF
                } else if digits > 0 && byte == ASCII.lf {
                    endOfSizeLine()
                } else {
                    throw .badChunkSize
                }
            case .sizeExtension:
                if byte == ASCII.lf { endOfSizeLine() }
            case .sizeLF:
                guard byte == ASCII.lf else { throw .badChunkSize }
                endOfSizeLine()
            case .dataCR:
                if byte == ASCII.cr {
                    state = .dataLF
                } else if byte == ASCII.lf {
                    state = .size
                } else {
                    throw .missingDataTerminator
                }
            case .dataLF:
                guard byte == ASCII.lf else { throw .missingDataTerminator }
                state = .size
            case .trailerStart:
                state = byte == ASCII.cr ? .trailerLF : byte == ASCII.lf ? .done : .trailerLine
            case .trailerLine:
                if byte == ASCII.lf { state = .trailerStart }
            case .trailerLF:
                state = byte == ASCII.lf ? .done : .trailerLine
            case .data, .done:
                break
            }
        }
        return (output, input)
    }

    private mutating func endOfSizeLine() {
        digits = 0
        state = remaining == 0 ? .trailerStart : .data
    }
}

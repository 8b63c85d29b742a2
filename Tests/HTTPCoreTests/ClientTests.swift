import HTTPCore
import Testing

@Suite struct URLTests {
    func parse(_ url: String) -> Result<HTTPURL, HTTPURLError> {
        do throws(HTTPURLError) { return .success(try HTTPURL.parse(bytes(url))) } catch { return .failure(error) }
    }

    @Test func parsesAddressPortAndPath() throws {
        let url = try parse("http://10.0.2.2:8080/files/a.txt?x=1#top").get()
        #expect(url.address == 0x0A00_0202)
        #expect(url.port == 8080)
        #expect(text(url.target) == "/files/a.txt?x=1")
        #expect(text(url.host) == "10.0.2.2:8080")
    }

    @Test func defaultsPortAndPath() throws {
        let url = try parse("HTTP://192.168.1.255").get()
        #expect(url.address == 0xC0A8_01FF)
        #expect(url.port == 80)
        #expect(text(url.target) == "/")
        #expect(text(try parse("http://1.2.3.4?q").get().target) == "/?q")
        #expect(try parse("http://0.0.0.0:65535/").get().port == 65535)
    }

    @Test(arguments: [
        ("https://1.2.3.4/", HTTPURLError.notHTTP),
        ("ftp://1.2.3.4/", .notHTTP),
        ("1.2.3.4/", .notHTTP),
        ("http:/1.2.3.4/", .notHTTP),
        ("http://example.com/", .hostNotAnAddress),
        ("http:///x", .hostNotAnAddress),
        ("http://1.2.3/", .hostNotAnAddress),
        ("http://1.2.3.4.5/", .hostNotAnAddress),
        ("http://1.2.3.256/", .hostNotAnAddress),
        ("http://01.2.3.4/", .hostNotAnAddress),
        ("http://1.2.3.4./", .hostNotAnAddress),
        ("http://1..3.4/", .hostNotAnAddress),
        ("http://1.2.3.4:/", .badPort),
        ("http://1.2.3.4:0/", .badPort),
        ("http://1.2.3.4:65536/", .badPort),
        ("http://1.2.3.4:123456/", .badPort),
        ("http://1.2.3.4:8a/", .badPort),
        ("http://user@1.2.3.4/", .badPath),
        ("http://1.2.3.4/a b", .badPath),
        ("http://1.2.3.4/a\r\nX: y", .badPath),
    ])
    func refuses(_ url: String, _ expected: HTTPURLError) {
        #expect(parse(url) == .failure(expected))
    }
}

@Suite struct ResponseParserTests {
    func parse(_ response: String) -> HTTPResponseParseResult {
        var parser = HTTPResponseParser()
        return parser.feed(bytes(response))
    }

    func info(_ response: String) throws -> HTTPResponseInfo {
        guard case .complete(let info) = parse(response) else {
            Issue.record("not complete: \(parse(response))")
            throw HTTPResponseError.malformedStatusLine
        }
        return info
    }

    @Test func readsStatusLengthAndClose() throws {
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: close\r\n\r\nbody"
        let parsed = try info(response)
        #expect(parsed.status == 200)
        #expect(parsed.version == .http11)
        #expect(parsed.framing == .length(42))
        #expect(parsed.close)
        #expect(parsed.headLength == response.utf8.count - 4)
    }

    @Test func framingRules() throws {
        #expect(try info("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing == .chunked)
        #expect(try info("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, CHUNKED\r\ncontent-length: 3\r\n\r\n").framing
                == .chunked)
        #expect(try info("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").framing == .untilClose)
        #expect(try info("HTTP/1.1 200 OK\r\n\r\n").framing == .untilClose)
        #expect(try info("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing == .length(0))
        #expect(try info("HTTP/1.1 304 Not Modified\r\n\r\n").framing == .length(0))
        #expect(try info("HTTP/1.1 100 Continue\r\n\r\n").framing == .length(0))
        #expect(try info("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").status == 404)
    }

    @Test func closeRules() throws {
        #expect(try !info("HTTP/1.1 200 OK\r\n\r\n").close)
        #expect(try info("HTTP/1.0 200 OK\r\n\r\n").close)
        #expect(try !info("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").close)
        #expect(try info("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n\r\n").close)
    }

    @Test func toleratesBareLFAndAMissingReason() throws {
        let parsed = try info("HTTP/1.1 206\nContent-Length: 5\n\nhello")
        #expect(parsed.status == 206)
        #expect(parsed.headLength == 32)
    }

    @Test(arguments: [
        ("HTTP/1.1 2000 OK\r\n\r\n", HTTPResponseError.malformedStatusLine),
        ("HTTP/1.1 20 OK\r\n\r\n", .malformedStatusLine),
        ("HTTP/2 200 OK\r\n\r\n", .malformedStatusLine),
        ("HTTP/1.1 099 Odd\r\n\r\n", .malformedStatusLine),
        ("ICY 200 OK\r\n\r\n", .malformedStatusLine),
        ("\r\n\r\n", .malformedStatusLine),
        ("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", .malformedHeader),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", .badContentLength),
    ])
    func refuses(_ response: String, _ expected: HTTPResponseError) {
        #expect(parse(response) == .failed(expected))
    }

    @Test func aHeadTooLargeIsAnError() {
        var parser = HTTPResponseParser(headLimit: 100)
        #expect(parser.feed(bytes("HTTP/1.1 200 OK\r\n")) == .needMore)
        #expect(parser.feed(bytes(String(repeating: "X-A: b\r\n", count: 20))) == .failed(.headTooLarge))
    }

    @Test func splitAnywhereGivesTheSameHeadAndRemainder() throws {
        let response = bytes("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
        for split in 0...response.count {
            var parser = HTTPResponseParser()
            var result = parser.feed(Array(response[..<split]))
            var fedAll = false
            if result == .needMore {
                result = parser.feed(Array(response[split...]))
                fedAll = true
            }
            guard case .complete(let info) = result else {
                Issue.record("split \(split): \(result)")
                continue
            }
            #expect(info.headLength == 39)
            // The body is what the parser kept after the head, then what came later.
            let body = parser.takeRemainder() + (fedAll ? [] : Array(response[split...]))
            #expect(text(body) == "hello world", "split \(split)")
        }
    }

    @Test func takeRemainderReadiesTheParserForTheFinalHeadAfterA1xx() throws {
        var parser = HTTPResponseParser()
        guard case .complete(let first) = parser.feed(bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")) else {
            Issue.record("100 not parsed")
            return
        }
        #expect(first.status == 100)
        let rest = parser.takeRemainder()
        #expect(parser.feed(rest) == .needMore)
        guard case .complete(let second) = parser.feed(bytes("Content-Length: 1\r\n\r\nx")) else {
            Issue.record("200 not parsed")
            return
        }
        #expect(second.status == 200)
        #expect(parser.takeRemainder() == bytes("x"))
    }
}

@Suite struct ChunkedDecoderTests {
    /// Decodes `body` fed in pieces of `piece` bytes; the data and what was left over.
    func decode(_ body: [UInt8], piece: Int) throws(HTTPChunkError) -> (data: [UInt8], done: Bool, unused: Int) {
        var decoder = HTTPChunkedDecoder()
        var data: [UInt8] = []
        var unused = 0
        var start = 0
        while start < body.count && !decoder.isDone {
            var chunk = Array(body[start..<min(start + piece, body.count)])
            let (produced, consumed) = try chunk.withUnsafeMutableBytes { buffer in
                Result { () throws(HTTPChunkError) in try decoder.decode(buffer) }
            }.get()
            data.append(contentsOf: chunk[..<produced])
            unused += chunk.count - consumed
            start += chunk.count
        }
        unused += body.count - start
        return (data, decoder.isDone, unused)
    }

    @Test func decodesTheRFCExampleInAnySplit() throws {
        let body = bytes("4\r\nWiki\r\n6;name=value\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nNEXT")
        for piece in 1...body.count {
            let result = try decode(body, piece: piece)
            #expect(text(result.data) == "Wikipedia in \r\n\r\nchunks.", "pieces of \(piece)")
            #expect(result.done)
            #expect(result.unused == 4, "the bytes after the body are left alone")
        }
    }

    @Test func toleratesBareLFAndUpperCaseHex() throws {
        let result = try decode(bytes("A\n0123456789\n0\n\n"), piece: 1000)
        #expect(text(result.data) == "0123456789")
        #expect(result.done)
        let big = try decode(bytes("1a \r\n" + String(repeating: "z", count: 26) + "\r\n0\r\n\r\n"), piece: 3)
        #expect(big.data.count == 26 && big.done)
    }

    @Test func isNotDoneBeforeTheLastChunk() throws {
        let result = try decode(bytes("3\r\nabc\r\n0\r\n"), piece: 1000)
        #expect(text(result.data) == "abc")
        #expect(!result.done, "the trailer's blank line has not come")
    }

    @Test(arguments: [
        ("\r\n", HTTPChunkError.badChunkSize),
        ("x\r\n", .badChunkSize),
        (";ext\r\n", .badChunkSize),
        ("3\rX", .badChunkSize),
        ("-3\r\n", .badChunkSize),
        ("3\r\nabcX\r\n", .missingDataTerminator),
        ("3\r\nabc\rX", .missingDataTerminator),
        ("1000000000000000\r\n", .chunkTooLarge),
    ])
    func refuses(_ body: String, _ expected: HTTPChunkError) {
        #expect(throws: expected) { try decode(bytes(body), piece: 1000) }
        #expect(throws: expected) { try decode(bytes(body), piece: 1) }
    }

    @Test func fifteenHexDigitsAreAccepted() throws {
        var decoder = HTTPChunkedDecoder()
        var header = bytes("fffffffffffffff\r\nab")
        let (data, consumed) = try header.withUnsafeMutableBytes { buffer in
            Result { () throws(HTTPChunkError) in try decoder.decode(buffer) }
        }.get()
        #expect(data == 2 && consumed == header.count)
        #expect(Array(header[0..<2]) == bytes("ab"))
    }
}

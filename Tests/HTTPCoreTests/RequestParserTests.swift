import HTTPCore
import Testing

@Suite struct RequestParserTests {
    @Test func parsesASimpleGet() throws {
        let request = "GET /index.html HTTP/1.1\r\nHost: 10.0.2.15\r\nUser-Agent: curl/8\r\n\r\n"
        let head = try #require(parseWhole(request).head)
        #expect(head.method == .get)
        #expect(head.version == .http11)
        #expect(text(head.target) == "/index.html")
        #expect(head.keepAlive)
        #expect(head.range == .absent)
        #expect(head.headLength == request.utf8.count)
    }

    @Test func parsesHeadAndHTTP10() throws {
        let head = try #require(parseWhole("HEAD /a?b=c HTTP/1.0\r\n\r\n").head)
        #expect(head.method == .head)
        #expect(head.version == .http10)
        #expect(text(head.target) == "/a?b=c")
        #expect(!head.keepAlive, "HTTP/1.0 closes unless keep-alive")
    }

    @Test func needsMoreUntilTheBlankLine() {
        var parser = HTTPRequestParser()
        #expect(parser.feed(bytes("GET / HTTP/1.1\r\n")) == .needMore)
        #expect(parser.feed(bytes("Host: x\r\n")) == .needMore)
        #expect(parser.feed(bytes("\r")) == .needMore)
        #expect(parser.feed(bytes("\n")).head != nil)
    }

    @Test func toleratesBareLineFeeds() throws {
        let head = try #require(parseWhole("GET /x HTTP/1.1\nHost: h\n\n").head)
        #expect(text(head.target) == "/x")
        #expect(head.headLength == 25)
        let mixed = try #require(parseWhole("GET /x HTTP/1.1\r\nHost: h\n\r\n").head)
        #expect(mixed.headLength == 27)
    }

    @Test func skipsBlankLinesBeforeTheRequestLine() throws {
        let head = try #require(parseWhole("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").head)
        #expect(head.headLength == 30)
        #expect(text(head.target) == "/")
    }

    @Test func keepAliveRules() throws {
        func keepAlive(_ version: String, _ connection: String?) throws -> Bool {
            var request = "GET / HTTP/" + version + "\r\nHost: h\r\n"
            if let connection { request += "Connection: " + connection + "\r\n" }
            return try #require(parseWhole(request + "\r\n").head).keepAlive
        }
        #expect(try keepAlive("1.1", nil))
        #expect(try !keepAlive("1.1", "close"))
        #expect(try !keepAlive("1.1", "Upgrade, CLOSE"))
        #expect(try keepAlive("1.1", "keep-alive"))
        #expect(try !keepAlive("1.0", nil))
        #expect(try keepAlive("1.0", "Keep-Alive"))
        #expect(try !keepAlive("1.0", "keep-alive, close"))
        #expect(try keepAlive("1.2", nil), "a later 1.x is 1.1")
    }

    @Test func fieldNamesAreCaseInsensitive() throws {
        let head = try #require(parseWhole("GET / HTTP/1.1\r\nhOsT: h\r\nCONNECTION: close\r\nrange: bytes=1-2\r\n\r\n").head)
        #expect(!head.keepAlive)
        #expect(head.range == .single(.closed(first: 1, last: 2)))
    }

    @Test func acceptsAbsoluteForm() throws {
        let head = try #require(parseWhole("GET http://10.0.2.15/a HTTP/1.1\r\nHost: 10.0.2.15\r\n\r\n").head)
        #expect(text(head.target) == "http://10.0.2.15/a")
    }

    @Test func zeroContentLengthIsNoBody() throws {
        #expect(parseWhole("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").head != nil)
        #expect(parseWhole("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n").head != nil)
    }

    @Test(arguments: [
        // request line
        ("GET /\r\n\r\n", HTTPRequestError.malformedRequestLine),
        ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET / http/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.10\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        (" GET / HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET /a\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET /é HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        // versions and methods
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .versionNotSupported),
        ("GET / HTTP/0.9\r\nHost: h\r\n\r\n", .versionNotSupported),
        ("POST / HTTP/1.1\r\nHost: h\r\n\r\n", .methodNotAllowed),
        ("get / HTTP/1.1\r\nHost: h\r\n\r\n", .methodNotAllowed),
        ("DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", .methodNotAllowed),
        ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        // header fields
        ("GET / HTTP/1.1\r\nHost h\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\n: h\r\nHost: h\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n  folded\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\n Host: h\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHost: h\u{0}\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n", .malformedHeader),
        ("GET / HTTP/1.1\r\nHo[st: h\r\n\r\n", .malformedHeader),
        // Host
        ("GET / HTTP/1.1\r\n\r\n", .badHost),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .badHost),
        ("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", .badHost),
        // bodies
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", .bodyNotAccepted),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 2\r\n\r\n", .badContentLength),
        ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", .chunkedBody),
        ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", .chunkedBody),
        ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferCoding),
        ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", .ambiguousFraming),
        ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .ambiguousFraming),
    ])
    func refuses(_ request: String, _ expected: HTTPRequestError) {
        #expect(parseWhole(request) == .failed(expected))
        #expect(parseByteByByte(bytes(request)) == .failed(expected), "split into single bytes")
    }

    @Test func errorsCarryTheirStatus() {
        #expect(HTTPRequestError.malformedRequestLine.status == .badRequest)
        #expect(HTTPRequestError.malformedHeader.status == .badRequest)
        #expect(HTTPRequestError.badHost.status == .badRequest)
        #expect(HTTPRequestError.badContentLength.status == .badRequest)
        #expect(HTTPRequestError.ambiguousFraming.status == .badRequest)
        #expect(HTTPRequestError.methodNotAllowed.status.code == 405)
        #expect(HTTPRequestError.chunkedBody.status.code == 411)
        #expect(HTTPRequestError.bodyNotAccepted.status.code == 413)
        #expect(HTTPRequestError.targetTooLong.status.code == 414)
        #expect(HTTPRequestError.headTooLarge.status.code == 431)
        #expect(HTTPRequestError.unsupportedTransferCoding.status.code == 501)
        #expect(HTTPRequestError.versionNotSupported.status.code == 505)
    }

    // MARK: Limits

    @Test func aHeadJustWithinTheLimitParses() throws {
        let start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: "
        let padding = String(repeating: "a", count: 8192 - start.utf8.count - 4)
        let request = start + padding + "\r\n\r\n"
        #expect(request.utf8.count == 8192)
        #expect(parseWhole(request).head?.headLength == 8192)
        #expect(parseByteByByte(bytes(request)).head?.headLength == 8192)
    }

    @Test func aHeadOneBytePastTheLimitIs431() {
        let start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: "
        let padding = String(repeating: "a", count: 8192 - start.utf8.count - 3)
        let request = start + padding + "\r\n\r\n"
        #expect(request.utf8.count == 8193)
        #expect(parseWhole(request) == .failed(.headTooLarge))
        #expect(parseByteByByte(bytes(request)) == .failed(.headTooLarge))
    }

    @Test func endlessHeadersAre431WithoutWaitingForMore() {
        var parser = HTTPRequestParser()
        #expect(parser.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\n")) == .needMore)
        var result = HTTPParseResult.needMore
        var fed = 0
        while result == .needMore && fed < 20000 {
            result = parser.feed(bytes("X-A: b\r\n"))
            fed += 8
        }
        #expect(result == .failed(.headTooLarge))
        #expect(fed < 8200)
    }

    @Test func aLongTargetIs414() {
        let target = "/" + String(repeating: "a", count: 2048)
        #expect(parseWhole("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n") == .failed(.targetTooLong))
        let fits = "/" + String(repeating: "a", count: 2047)
        #expect(parseWhole("GET " + fits + " HTTP/1.1\r\nHost: h\r\n\r\n").head != nil)
    }

    @Test func aTargetRunningPastTheHeadLimitIs414() {
        let request = bytes("GET /" + String(repeating: "a", count: 9000))
        #expect(parseByteByByte(request) == .failed(.targetTooLong))
        var parser = HTTPRequestParser()
        #expect(parser.feed(request) == .failed(.targetTooLong))
    }

    @Test func aRequestLineOfGarbageAtTheLimitIs400() {
        let request = bytes(String(repeating: "x", count: 9000))
        #expect(parseByteByByte(request) == .failed(.malformedRequestLine))
        let blankLines = bytes(String(repeating: "\r\n", count: 4100))
        #expect(parseByteByByte(blankLines) == .failed(.malformedRequestLine))
        let longVersion = bytes("GET / HTTP/1.1" + String(repeating: "1", count: 9000))
        #expect(parseByteByByte(longVersion) == .failed(.malformedRequestLine))
    }

    @Test func freeSpaceShrinksToZeroAtTheLimit() {
        var parser = HTTPRequestParser(headLimit: 64)
        #expect(parser.freeSpace == 64)
        _ = parser.feed(bytes("GET / HTTP/1.1\r\n"))
        #expect(parser.freeSpace == 48)
        _ = parser.feed(bytes(String(repeating: "a", count: 60)))
        #expect(parser.freeSpace == 0)
        #expect(parser.bufferedCount == 76)
    }

    // MARK: Pipelining

    @Test func keepsPipelinedRequestsForTheNext() throws {
        let first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
        let second = "HEAD /two HTTP/1.1\r\nHost: h\r\nRange: bytes=-3\r\n\r\n"
        let third = "GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        var parser = HTTPRequestParser()
        let one = try #require(parser.feed(bytes(first + second + third + "GET /fo")).head)
        #expect(text(one.target) == "/one")
        #expect(one.headLength == first.utf8.count)
        #expect(parser.parse().head == one, "asking again gives the same head")
        parser.consumeHead()
        let two = try #require(parser.parse().head)
        #expect(two.method == .head)
        #expect(text(two.target) == "/two")
        #expect(two.range == .single(.suffix(3)))
        parser.consumeHead()
        let three = try #require(parser.parse().head)
        #expect(text(three.target) == "/three")
        #expect(!three.keepAlive)
        parser.consumeHead()
        #expect(parser.parse() == .needMore)
        #expect(parser.bufferedCount == 7)
        let four = try #require(parser.feed(bytes("ur HTTP/1.1\r\nHost: h\r\n\r\n")).head)
        #expect(text(four.target) == "/four")
        parser.consumeHead()
        #expect(parser.bufferedCount == 0)
    }

    @Test func pipelinedRequestsSplitAnywhereGiveTheSameHeads() throws {
        let stream = bytes("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\nConnection: keep-alive\n\n"
                           + "\r\nHEAD /c HTTP/1.1\r\nHost: h\r\nRange: bytes=5-\r\n\r\n")
        var reference: [HTTPRequestHead] = []
        var whole = HTTPRequestParser()
        _ = whole.feed(stream)
        while let head = whole.parse().head {
            reference.append(head)
            whole.consumeHead()
        }
        #expect(reference.map { text($0.target) } == ["/a", "/b", "/c"])
        #expect(reference[1].keepAlive && reference[1].version == .http10)
        for split in 1..<stream.count {
            var parser = HTTPRequestParser()
            var heads: [HTTPRequestHead] = []
            for piece in [Array(stream[..<split]), Array(stream[split...])] {
                var result = parser.feed(piece)
                while let head = result.head {
                    heads.append(head)
                    parser.consumeHead()
                    result = parser.parse()
                }
            }
            #expect(heads == reference, "split at \(split)")
        }
    }

    @Test func aRequestWithABodyIsRefusedNotTakenForTheNext() {
        var parser = HTTPRequestParser()
        let result = parser.feed(bytes("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 26\r\n\r\nGET /secret HTTP/1.1\r\n\r\n"))
        #expect(result == .failed(.bodyNotAccepted))
        parser.consumeHead()
        #expect(parser.bufferedCount == 0, "after an error nothing is kept")
    }

    @Test func rangeHeaderRepeatedIsIgnored() throws {
        let head = try #require(parseWhole("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n").head)
        #expect(head.range == .ignored)
    }
}

import HTTPCore
import Testing

@Suite struct ResponseHeadTests {
    @Test func writesA200() {
        let head = HTTPResponseHead(status: .ok, contentLength: 1234, contentType: HTTPContentType.forPath(bytes("/a.txt")))
        #expect(text(head.bytes) == "HTTP/1.1 200 OK\r\nServer: Curio\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: 1234\r\nAccept-Ranges: bytes\r\n\r\n")
    }

    @Test func writesA206WithContentRangeAndClose() {
        var head = HTTPResponseHead(status: .partialContent, contentLength: 500, contentType: "image/png", close: true)
        head.contentRange = (first: 500, last: 999, size: 1000)
        #expect(text(head.bytes) == "HTTP/1.1 206 Partial Content\r\nServer: Curio\r\nContent-Type: image/png\r\n"
                + "Content-Length: 500\r\nContent-Range: bytes 500-999/1000\r\nAccept-Ranges: bytes\r\n"
                + "Connection: close\r\n\r\n")
    }

    @Test func writesA416() {
        var head = HTTPResponseHead(status: .rangeNotSatisfiable, contentLength: 0)
        head.unsatisfiedRangeSize = 0
        #expect(text(head.bytes) == "HTTP/1.1 416 Range Not Satisfiable\r\nServer: Curio\r\nContent-Length: 0\r\n"
                + "Content-Range: bytes */0\r\nAccept-Ranges: bytes\r\n\r\n")
    }

    @Test func writesA301() {
        var head = HTTPResponseHead(status: .movedPermanently, contentLength: 0)
        head.location = HTTPTarget.encodePath(bytes("/my dir/"))
        #expect(text(head.bytes) == "HTTP/1.1 301 Moved Permanently\r\nServer: Curio\r\nContent-Length: 0\r\n"
                + "Location: /my%20dir/\r\nAccept-Ranges: bytes\r\n\r\n")
    }

    @Test func a405SaysWhatIsAllowed() {
        let head = HTTPResponseHead(status: .methodNotAllowed, contentLength: 0, close: true)
        #expect(text(head.bytes) == "HTTP/1.1 405 Method Not Allowed\r\nServer: Curio\r\nContent-Length: 0\r\n"
                + "Allow: GET, HEAD\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n")
        #expect(!text(HTTPResponseHead(status: .notFound, contentLength: 0).bytes).contains("Allow"))
    }

    @Test func writesLargeLengthsAndAppends() {
        var output = bytes("x")
        HTTPResponseHead(status: .notFound, contentLength: UInt64.max).append(to: &output)
        #expect(text(output).hasPrefix("xHTTP/1.1 404 Not Found\r\n"))
        #expect(text(output).contains("Content-Length: 18446744073709551615\r\n"))
        var zero = [UInt8]()
        zero.append(decimal: 0)
        zero.append(decimal: 10)
        zero.append(decimal: 9)
        #expect(text(zero) == "0109")
    }

    @Test func everyStatusHasItsCodeAndReason() {
        for status in HTTPStatus.allCases {
            let line = text(HTTPResponseHead(status: status, contentLength: 0).bytes).split(separator: "\r\n")[0]
            #expect(line.hasPrefix("HTTP/1.1 \(status.code) "))
            #expect(line.count > 13)
        }
        #expect(HTTPStatus.requestHeaderFieldsTooLarge.code == 431)
        #expect(HTTPStatus.httpVersionNotSupported.code == 505)
    }

    @Test(arguments: [
        ("/a.txt", "text/plain; charset=utf-8"), ("/a.TXT", "text/plain; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"), ("/old.htm", "text/html; charset=utf-8"),
        ("/s.css", "text/css; charset=utf-8"), ("/app.js", "text/javascript; charset=utf-8"),
        ("/d.json", "application/json"), ("/i.png", "image/png"), ("/p.jpg", "image/jpeg"),
        ("/p.jpeg", "image/jpeg"), ("/g.gif", "image/gif"), ("/v.svg", "image/svg+xml"),
        ("/doc.pdf", "application/pdf"), ("/x.bin", "application/octet-stream"),
        ("/noext", "application/octet-stream"), ("/dir.txt/file", "application/octet-stream"),
        ("/archive.tar.gz", "application/octet-stream"), ("/.txt", "text/plain; charset=utf-8"),
        ("/a.", "application/octet-stream"), ("", "application/octet-stream"),
    ])
    func contentTypes(_ path: String, _ expected: String) {
        #expect(HTTPContentType.forPath(bytes(path)).description == expected)
    }

    @Test func escapesHTML() {
        var output = [UInt8]()
        HTMLText.appendEscaped(bytes("a&b<c>d\"e'f"), to: &output)
        #expect(text(output) == "a&amp;b&lt;c&gt;d&quot;e&#39;f")
    }

    @Test func listsADirectoryWithEscapedNames() {
        var listing = HTTPDirectoryListing(path: bytes("/docs & <stuff>/"))
        listing.add(name: bytes("readme.txt"), isDirectory: false)
        listing.add(name: bytes("sub"), isDirectory: true)
        listing.add(name: bytes("<script>alert('x')</script>"), isDirectory: false)
        listing.add(name: bytes("a \"b\" & c"), isDirectory: false)
        listing.finish()
        let html = text(listing.html)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<title>Index of /docs &amp; &lt;stuff&gt;/</title>"))
        #expect(html.contains("<li><a href=\"../\">../</a></li>"))
        #expect(html.contains("<li><a href=\"readme.txt\">readme.txt</a></li>"))
        #expect(html.contains("<li><a href=\"sub/\">sub/</a></li>"))
        #expect(html.contains("<li><a href=\"%3Cscript%3Ealert%28%27x%27%29%3C/script%3E\">"
                              + "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</a></li>"))
        #expect(html.contains("<li><a href=\"a%20%22b%22%20%26%20c\">a &quot;b&quot; &amp; c</a></li>"))
        #expect(!html.contains("<script>"))
        #expect(html.hasSuffix("</ul>\n</body></html>\n"))
    }

    @Test func theRootListingHasNoParentLink() {
        var listing = HTTPDirectoryListing(path: bytes("/"))
        listing.finish()
        #expect(!text(listing.html).contains("../"))
    }
}

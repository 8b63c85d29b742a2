import HTTPCore
import Testing

@Suite struct TargetPathTests {
    func decode(_ target: String) -> Result<String, HTTPTargetError> {
        do throws(HTTPTargetError) {
            return .success(text(try HTTPTarget.decodePath(bytes(target))))
        } catch {
            return .failure(error)
        }
    }

    @Test(arguments: [
        ("/", "/"),
        ("/index.html", "/index.html"),
        ("/a/b/", "/a/b/"),
        ("/a%20b.txt", "/a b.txt"),
        ("/%41%62%7e", "/Ab~"),
        ("/caf%C3%A9", "/café"),
        ("/a?x=1", "/a"),
        ("/a/?x=/../../..", "/a/"),
        ("/a#frag", "/a"),
        ("/?", "/"),
        ("//a///b", "/a/b"),
        ("/./a/./b/.", "/a/b/"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/..", "/"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/b%2f..%2fc", "/a/c"),
        ("/...", "/..."),
        ("/..a/b..", "/..a/b.."),
        ("http://10.0.2.15/x/y", "/x/y"),
        ("HTTP://host", "/"),
        ("http://host?q", "/"),
        ("/a+b", "/a+b"),
    ])
    func decodes(_ target: String, _ expected: String) {
        #expect(decode(target) == .success(expected))
    }

    @Test(arguments: [
        ("/..", HTTPTargetError.escapesRoot),
        ("/../etc/passwd", .escapesRoot),
        ("/a/../../b", .escapesRoot),
        ("/%2e%2e/x", .escapesRoot),
        ("/%2E%2E", .escapesRoot),
        ("/a/..%2f..", .escapesRoot),
        ("/a%00b", .nulByte),
        ("/a%0d%0aSet-Cookie:x", .controlCharacter),
        ("/a%7f", .controlCharacter),
        ("/a%", .malformedEscape),
        ("/a%4", .malformedEscape),
        ("/a%G1", .malformedEscape),
        ("/a%1G", .malformedEscape),
        ("/%%41", .malformedEscape),
        ("a/b", .malformed),
        ("", .malformed),
        ("?x", .malformed),
        ("*", .malformed),
    ])
    func refuses(_ target: String, _ expected: HTTPTargetError) {
        #expect(decode(target) == .failure(expected))
    }

    @Test func refusesPathsLongerThanTheFilesystemTakes() throws {
        let fits = "/" + String(repeating: "a", count: 1023)
        #expect(decode(fits) == .success(fits))
        #expect(decode(fits + "b") == .failure(.tooLong))
        #expect(HTTPTargetError.tooLong.status == .uriTooLong)
        #expect(HTTPTargetError.escapesRoot.status == .badRequest)
        // The limit is on the decoded path: three bytes of escape are one.
        let escaped = "/" + String(repeating: "%61", count: 1023)
        #expect(decode(escaped) == .success(fits))
        #expect(throws: HTTPTargetError.tooLong) { try HTTPTarget.decodePath(bytes("/abcd"), maximumLength: 4) }
        #expect(try HTTPTarget.decodePath(bytes("/abc"), maximumLength: 4) == bytes("/abc"))
    }

    @Test func encodesWhatIsNotPlainlySafe() {
        #expect(text(HTTPTarget.encodePath(bytes("/a b/c.txt"))) == "/a%20b/c.txt")
        #expect(text(HTTPTarget.encodePath(bytes("/<x>&\"'?#%"))) == "/%3Cx%3E%26%22%27%3F%23%25")
        #expect(text(HTTPTarget.encodePath(bytes("/café"))) == "/caf%C3%A9")
        #expect(text(HTTPTarget.encodePath(bytes("/A-z_0.9~/"))) == "/A-z_0.9~/")
    }

    @Test func encodingThenDecodingGivesThePathBack() throws {
        var generator = SplitMix(seed: 7)
        for _ in 0..<500 {
            var path: [UInt8] = []
            for _ in 0..<Int.random(in: 1...5, using: &generator) {
                path.append(UInt8(ascii: "/"))
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    var byte = UInt8.random(in: 0x20...0xFF, using: &generator)
                    if byte == UInt8(ascii: "/") || byte == 0x7F { byte = UInt8(ascii: "x") }
                    path.append(byte)
                }
            }
            // "." and ".." segments resolve: leave those cases to the tests above.
            let segments = path.split(separator: UInt8(ascii: "/"))
            if segments.contains(where: { $0.elementsEqual([46]) || $0.elementsEqual([46, 46]) }) { continue }
            #expect(try HTTPTarget.decodePath(HTTPTarget.encodePath(path)) == path)
        }
    }
}

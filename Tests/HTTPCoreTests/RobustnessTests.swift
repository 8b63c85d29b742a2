import HTTPCore
import Testing

/// Random and mutated input never traps, and never depends on how it is split.
@Suite struct RobustnessTests {
    static let samples = [
        "GET /index.html HTTP/1.1\r\nHost: 10.0.2.15\r\nRange: bytes=0-99\r\nConnection: keep-alive\r\n\r\n",
        "HEAD /a%20b/?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://1.2.3.4/x HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
    ]

    func mutate(_ input: [UInt8], _ generator: inout SplitMix) -> [UInt8] {
        var output = input
        let alphabet = bytes("\r\n :/%.-=,0123456789abcdefGETHTP\t\u{0}\u{7F}")
        for _ in 0..<Int.random(in: 1...8, using: &generator) {
            guard !output.isEmpty else { break }
            let index = Int.random(in: 0..<output.count, using: &generator)
            switch Int.random(in: 0...3, using: &generator) {
            case 0: output[index] = UInt8.random(in: 0...255, using: &generator)
            case 1: output[index] = alphabet.randomElement(using: &generator)!
            case 2: output.remove(at: index)
            default: output.insert(alphabet.randomElement(using: &generator)!, at: index)
            }
        }
        return output
    }

    /// Every head in `stream`, and the first result that is not a head: as one piece,
    /// and in pieces cut by the generator.
    func heads(_ stream: [UInt8], cuts: [Int], limit: Int) -> [HTTPParseResult] {
        var parser = HTTPRequestParser(headLimit: limit, targetLimit: limit / 4)
        var results: [HTTPParseResult] = []
        var start = 0
        for end in cuts + [stream.count] where end >= start {
            var result = parser.feed(Array(stream[start..<end]))
            start = end
            while true {
                if result == .needMore { break }
                results.append(result)
                if result.head == nil { return results }
                parser.consumeHead()
                result = parser.parse()
            }
        }
        results.append(.needMore)
        return results
    }

    @Test func junkNeverTrapsAndSplittingNeverMatters() {
        var generator = SplitMix(seed: 0xC0FFEE)
        for round in 0..<3000 {
            let stream: [UInt8]
            if round % 3 == 0 {
                stream = (0..<Int.random(in: 0...300, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                stream = mutate(bytes(Self.samples.randomElement(using: &generator)!), &generator)
            }
            let limit = [64, 128, 8192].randomElement(using: &generator)!
            let whole = heads(stream, cuts: [], limit: limit)
            var cuts = (0..<Int.random(in: 1...6, using: &generator)).map { _ in
                Int.random(in: 0...stream.count, using: &generator)
            }
            cuts.sort()
            #expect(heads(stream, cuts: cuts, limit: limit) == whole, "round \(round)")
            for result in whole {
                if let head = result.head {
                    _ = try? HTTPTarget.decodePath(head.target)
                    _ = head.range.resolve(size: UInt64.random(in: 0...100, using: &generator))
                }
            }
        }
    }

    @Test func oneByteAtATimeMatchesWhole() {
        var generator = SplitMix(seed: 99)
        for _ in 0..<300 {
            let stream = mutate(bytes(Self.samples.randomElement(using: &generator)!), &generator)
            let whole = heads(stream, cuts: [], limit: 8192)
            #expect(heads(stream, cuts: Array(0...stream.count), limit: 8192) == whole)
        }
    }

    @Test func junkNeverTrapsTheOtherParsers() {
        var generator = SplitMix(seed: 1234)
        let alphabet = bytes("%0123456789abcdefABCDEF./-=,:;?#@ \r\n\u{0}xyzHTPbytes")
        for _ in 0..<5000 {
            let input = (0..<Int.random(in: 0...60, using: &generator)).map { _ in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)!
                    : UInt8.random(in: 0...255, using: &generator)
            }
            let path = try? HTTPTarget.decodePath([UInt8(ascii: "/")] + input)
            if let path {
                // A decoded path is absolute, has no "." or ".." segment and no control byte.
                #expect(path.first == UInt8(ascii: "/"))
                #expect(!path.contains { $0 < 0x20 || $0 == 0x7F })
                let segments = path.split(separator: UInt8(ascii: "/"))
                #expect(!segments.contains { $0.elementsEqual([46]) || $0.elementsEqual([46, 46]) })
            }
            _ = HTTPRangeHeader.parse(input).resolve(size: UInt64.random(in: 0...1000, using: &generator))
            _ = try? HTTPURL.parse(bytes("http://") + input)
            var response = HTTPResponseParser(headLimit: 64)
            _ = response.feed(bytes("HTTP/1.1 200 OK\r\n") + input + bytes("\r\n\r\n"))
            var decoder = HTTPChunkedDecoder()
            var body = input
            body.withUnsafeMutableBytes { buffer in _ = try? decoder.decode(buffer) }
            // Whatever the name, it adds no markup: as many '<', '>' and '"' as a plain name.
            let directory = Bool.random(using: &generator)
            var listing = HTTPDirectoryListing(path: [UInt8(ascii: "/")])
            listing.add(name: input, isDirectory: directory)
            var plain = HTTPDirectoryListing(path: [UInt8(ascii: "/")])
            plain.add(name: bytes("x"), isDirectory: directory)
            for mark in bytes("<>\"'") {
                #expect(listing.html.count { $0 == mark } == plain.html.count { $0 == mark })
            }
        }
    }
}

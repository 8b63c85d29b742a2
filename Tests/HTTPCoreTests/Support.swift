import HTTPCore

/// The bytes of a string literal.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A deterministic generator (SplitMix64), so a failing random test replays.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds all of `request` at once to a fresh parser.
func parseWhole(_ request: String) -> HTTPParseResult {
    var parser = HTTPRequestParser()
    return parser.feed(bytes(request))
}

/// Feeds `request` one byte at a time; the first result that is not needMore, or
/// needMore at the end. Also checks that every earlier byte said needMore.
func parseByteByByte(_ request: [UInt8], limit: Int = HTTPRequestParser.defaultHeadLimit) -> HTTPParseResult {
    var parser = HTTPRequestParser(headLimit: limit)
    for byte in request {
        let result = parser.feed([byte])
        if result != .needMore { return result }
    }
    return .needMore
}

extension HTTPParseResult {
    var head: HTTPRequestHead? {
        if case .complete(let head) = self { return head }
        return nil
    }

    var error: HTTPRequestError? {
        if case .failed(let error) = self { return error }
        return nil
    }
}

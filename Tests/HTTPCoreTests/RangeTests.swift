import HTTPCore
import Testing

@Suite struct RangeTests {
    func range(_ value: String) -> HTTPRangeHeader { HTTPRangeHeader.parse(bytes(value)) }

    @Test(arguments: [
        ("bytes=0-499", HTTPRangeHeader.single(.closed(first: 0, last: 499))),
        ("bytes=500-999", .single(.closed(first: 500, last: 999))),
        ("bytes=7-7", .single(.closed(first: 7, last: 7))),
        ("bytes=9500-", .single(.from(9500))),
        ("bytes=-500", .single(.suffix(500))),
        ("bytes=-0", .single(.suffix(0))),
        ("Bytes=1-2", .single(.closed(first: 1, last: 2))),
        ("  bytes=1-2  ", .single(.closed(first: 1, last: 2))),
        ("bytes= 1-2 ,", .single(.closed(first: 1, last: 2))),
        ("bytes=0-0,-1", .multiple),
        ("bytes=0-1, 5-6, 9-", .multiple),
        ("bytes=5-4", .ignored),
        ("bytes=", .ignored),
        ("bytes=,", .ignored),
        ("bytes=-", .ignored),
        ("bytes=a-b", .ignored),
        ("bytes=1-2-3", .ignored),
        ("bytes=1 - 2", .ignored),
        ("bytes=+1-2", .ignored),
        ("bytes=0-1,x", .ignored),
        ("items=0-1", .ignored),
        ("bytes 0-1", .ignored),
        ("", .ignored),
        ("bytes=99999999999999999999999-", .single(.from(UInt64.max))),
        ("bytes=0-99999999999999999999999", .single(.closed(first: 0, last: UInt64.max))),
    ])
    func parses(_ value: String, _ expected: HTTPRangeHeader) {
        #expect(range(value) == expected)
    }

    @Test(arguments: [
        // a-b, inside, clamped, at and past the end
        ("bytes=0-499", 1000, HTTPRangeResolution.partial(first: 0, last: 499)),
        ("bytes=0-0", 1000, .partial(first: 0, last: 0)),
        ("bytes=999-999", 1000, .partial(first: 999, last: 999)),
        ("bytes=500-5000", 1000, .partial(first: 500, last: 999)),
        ("bytes=0-99999999999999999999999", 1000, .partial(first: 0, last: 999)),
        ("bytes=1000-1000", 1000, .unsatisfiable),
        ("bytes=2000-3000", 1000, .unsatisfiable),
        // a-
        ("bytes=0-", 1000, .partial(first: 0, last: 999)),
        ("bytes=999-", 1000, .partial(first: 999, last: 999)),
        ("bytes=1000-", 1000, .unsatisfiable),
        ("bytes=99999999999999999999999-", 1000, .unsatisfiable),
        // -n
        ("bytes=-1", 1000, .partial(first: 999, last: 999)),
        ("bytes=-500", 1000, .partial(first: 500, last: 999)),
        ("bytes=-1000", 1000, .partial(first: 0, last: 999)),
        ("bytes=-5000", 1000, .partial(first: 0, last: 999)),
        ("bytes=-0", 1000, .unsatisfiable),
        // size 0
        ("bytes=0-0", 0, .unsatisfiable),
        ("bytes=0-", 0, .unsatisfiable),
        ("bytes=-1", 0, .whole),
        ("bytes=-0", 0, .unsatisfiable),
        // size 1
        ("bytes=0-", 1, .partial(first: 0, last: 0)),
        ("bytes=-9", 1, .partial(first: 0, last: 0)),
        ("bytes=1-", 1, .unsatisfiable),
        // ignored and multiple: the whole file
        ("bytes=5-4", 1000, .whole),
        ("bytes=0-1,5-6", 1000, .whole),
        ("bytes=2000-3000,4000-", 1000, .whole),
        ("lines=1-2", 1000, .whole),
    ])
    func resolves(_ value: String, _ size: UInt64, _ expected: HTTPRangeResolution) {
        #expect(range(value).resolve(size: size) == expected)
    }

    @Test func noHeaderIsTheWholeFile() {
        #expect(HTTPRangeHeader.absent.resolve(size: 0) == .whole)
        #expect(HTTPRangeHeader.absent.resolve(size: 10) == .whole)
    }

    @Test func aResolvedRangeIsAlwaysInsideTheFile() {
        var generator = SplitMix(seed: 42)
        for _ in 0..<5000 {
            let size = UInt64.random(in: 0...50, using: &generator)
            let a = UInt64.random(in: 0...60, using: &generator)
            let b = UInt64.random(in: 0...60, using: &generator)
            let spec: HTTPByteRange
            switch Int.random(in: 0...2, using: &generator) {
            case 0: spec = .closed(first: min(a, b), last: max(a, b))
            case 1: spec = .from(a)
            default: spec = .suffix(a)
            }
            switch HTTPRangeHeader.single(spec).resolve(size: size) {
            case .partial(let first, let last):
                #expect(first <= last && last < size)
            case .whole:
                #expect(size == 0)
            case .unsatisfiable:
                break
            }
        }
    }
}

// Range requests (RFC 9110 §14): the Range header's parse, and its resolution
// against a file's size.
//
// Parsing and resolving are two steps because the parser sees the header before the
// server has looked the file up. The server answers one range or the whole file:
//
//   bytes=a-b   bytes a through b, b clamped to size-1 (§14.1.2)
//   bytes=a-    from a to the end
//   bytes=-n    the last n bytes (the whole file if it is shorter)
//
// A header we do not understand (another unit, bad syntax, b < a) is ignored and the
// whole file sent with 200, as §14.2 allows; so are several ranges, which would need
// a multipart/byteranges body: sending the whole file is always a correct answer. A
// single range that selects nothing (a at or past the end; -0; any range of an empty
// file but a suffix, which has nothing to select either and gets the whole empty
// file) is unsatisfiable: 416 with `Content-Range: bytes */size`.

public enum HTTPByteRange: Sendable, Equatable {
    /// bytes=first-last
    case closed(first: UInt64, last: UInt64)
    /// bytes=first-
    case from(UInt64)
    /// bytes=-count
    case suffix(UInt64)
}

public enum HTTPRangeHeader: Sendable, Equatable {
    /// No Range header.
    case absent
    case single(HTTPByteRange)
    /// Several ranges: answered with the whole file.
    case multiple
    /// Not a bytes range we understand: answered with the whole file.
    case ignored

    /// Parses a Range field value.
    public static func parse(_ value: UnsafeRawBufferPointer) -> HTTPRangeHeader { parse(ByteView(value).trimmed()) }

    public static func parse(_ value: [UInt8]) -> HTTPRangeHeader { value.withUnsafeBytes { parse($0) } }

    static func parse(_ value: ByteView) -> HTTPRangeHeader {
        guard let equals = value.firstIndex(of: UInt8(ascii: "=")),
              value.slice(0, equals).equalsIgnoringCase("bytes") else { return .ignored }
        var ranges = 0
        var valid = true
        var single = HTTPByteRange.from(0)
        value.slice(equals + 1, value.count).forEachListElement { element in
            ranges += 1
            if let range = parseOne(element) { single = range } else { valid = false }
        }
        guard valid, ranges > 0 else { return .ignored }
        return ranges == 1 ? .single(single) : .multiple
    }

    /// One range-spec: first-last, first-, or -suffix.
    private static func parseOne(_ spec: ByteView) -> HTTPByteRange? {
        guard let dash = spec.firstIndex(of: UInt8(ascii: "-")) else { return nil }
        let before = spec.slice(0, dash)
        let after = spec.slice(dash + 1, spec.count)
        if before.isEmpty {
            guard let count = saturatingDecimal(after) else { return nil }
            return .suffix(count)
        }
        guard let first = saturatingDecimal(before) else { return nil }
        if after.isEmpty { return .from(first) }
        guard let last = saturatingDecimal(after), last >= first else { return nil }
        return .closed(first: first, last: last)
    }

    /// Digits only; a number past UInt64 is UInt64.max (a position that large is past
    /// any file's end, which is what it means).
    private static func saturatingDecimal(_ view: ByteView) -> UInt64? {
        guard !view.isEmpty else { return nil }
        var value: UInt64 = 0
        for index in 0..<view.count {
            guard ASCII.isDigit(view[index]) else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(view[index] - ASCII.zero))
            value = overflow1 || overflow2 ? UInt64.max : sum
        }
        return value
    }

    /// What to send of a file of `size` bytes.
    public func resolve(size: UInt64) -> HTTPRangeResolution {
        guard case .single(let range) = self else { return .whole }
        switch range {
        case .closed(let first, let last):
            guard first < size else { return .unsatisfiable }
            return .partial(first: first, last: min(last, size - 1))
        case .from(let first):
            guard first < size else { return .unsatisfiable }
            return .partial(first: first, last: size - 1)
        case .suffix(let count):
            guard count > 0 else { return .unsatisfiable }
            guard size > 0 else { return .whole }
            return .partial(first: size - min(count, size), last: size - 1)
        }
    }
}

public enum HTTPRangeResolution: Sendable, Equatable {
    /// 200 with the whole file.
    case whole
    /// 206 with bytes first...last (both within the file).
    case partial(first: UInt64, last: UInt64)
    /// 416 with `Content-Range: bytes */size`.
    case unsatisfiable
}

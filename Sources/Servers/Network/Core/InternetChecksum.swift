// The Internet checksum (RFC 1071): the one's-complement of the one's-complement sum
// of the data taken as big-endian 16-bit words, an odd last byte padded with a zero.
// IPv4 headers, ICMP messages and UDP datagrams (with their pseudo-header) all use it.
//
// Why a running sum rather than one function over one buffer: a UDP checksum covers
// a pseudo-header that exists nowhere in memory (two addresses, the protocol, a
// length) followed by the datagram, so the caller feeds the pieces one after the
// other. The pieces need not be of even length: the sum is over the concatenated
// bytes, so a byte left over at the end of one piece is held and paired with the
// first byte of the next, exactly as if the two had been one buffer.
//
// Why 64 bits and folding only at the end: one's-complement addition is ordinary
// addition with every carry out of bit 15 added back in, and the order of the
// additions does not matter (RFC 1071 §2). So the words are summed into a wide
// integer and the carries are folded back once, in `value`. A 64-bit sum of 16-bit
// words cannot overflow before 2^48 words, far beyond any frame.
//
// Verifying: summing data that includes a correct checksum field gives all ones,
// so `value` is 0 for intact data.

public struct InternetChecksum {
    var sum: UInt64
    /// The odd byte held over from the last piece, as the high half of a word.
    var heldByte: UInt64?

    public init() {
        sum = 0
        heldByte = nil
    }

    /// Adds the bytes as the next part of the data.
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard var next = bytes.baseAddress, bytes.count > 0 else { return }
        let end = next + bytes.count
        if let held = heldByte {
            sum &+= held | UInt64(next.load(as: UInt8.self))
            heldByte = nil
            next += 1
        }
        // From here `next` is at an even position of the data. When that is an even
        // address too (every header and payload in a frame is), the bulk is summed a
        // word at a time, below; pairs lead up to the word boundary.
        if Int(bitPattern: next) & 1 == 0 {
            while Int(bitPattern: next) & 7 != 0 && end - next >= 2 {
                sum &+= Self.pair(at: next)
                next += 2
            }
            next = addWords(from: next, to: end)
        }
        while end - next >= 2 {
            sum &+= Self.pair(at: next)
            next += 2
        }
        if next < end {
            heldByte = UInt64(next.load(as: UInt8.self)) << 8
        }
    }

    /// The two bytes at `bytes` as a big-endian 16-bit value (any alignment).
    @inline(__always)
    static func pair(at bytes: UnsafeRawPointer) -> UInt64 {
        UInt64(bytes.load(as: UInt8.self)) << 8 | UInt64(bytes.load(fromByteOffset: 1, as: UInt8.self))
    }

    /// Sums the aligned 8-byte words from `start` (8-aligned, at an even position of
    /// the data) while a whole one is left before `end`; returns where it stopped.
    /// A word loaded on this little-endian machine holds its 16-bit pairs with their
    /// bytes swapped, and the one's-complement sum does not care about byte order
    /// except to swap its result the same way (RFC 1071 §2 (B)): so the words' 32-bit
    /// halves are summed as they are, folded to 16 bits, and swapped once.
    mutating func addWords(from start: UnsafeRawPointer, to end: UnsafeRawPointer) -> UnsafeRawPointer {
        var next = start
        var swapped: UInt64 = 0
        while end - next >= 8 {
            let word = next.load(as: UInt64.self).littleEndian
            swapped &+= (word & 0xFFFF_FFFF) &+ (word >> 32)
            next += 8
        }
        while swapped > 0xFFFF {
            swapped = (swapped & 0xFFFF) &+ (swapped >> 16)
        }
        sum &+= UInt64(UInt16(truncatingIfNeeded: swapped).byteSwapped)
        return next
    }

    /// Adds two bytes, `word`'s high byte first, as the next part of the data.
    public mutating func add(word: UInt16) {
        if let held = heldByte {
            sum &+= held | UInt64(word >> 8)
            heldByte = UInt64(word & 0xFF) << 8
        } else {
            sum &+= UInt64(word)
        }
    }

    /// Adds the address's four wire bytes as the next part of the data.
    public mutating func add(_ address: IPv4Address) {
        add(word: UInt16(truncatingIfNeeded: address.rawValue >> 16))
        add(word: UInt16(truncatingIfNeeded: address.rawValue))
    }

    /// The checksum of everything added so far: the one's-complement of the folded
    /// sum, an odd final byte padded with zero. 0 when the data includes its own
    /// correct checksum.
    public var value: UInt16 {
        var folded = sum &+ (heldByte ?? 0)
        while folded > 0xFFFF {
            folded = (folded & 0xFFFF) &+ (folded >> 16)
        }
        return ~UInt16(truncatingIfNeeded: folded)
    }
}

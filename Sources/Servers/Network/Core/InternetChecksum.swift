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
        var index = 0
        if let held = heldByte, bytes.count > 0 {
            sum &+= held | UInt64(bytes[0])
            heldByte = nil
            index = 1
        }
        while index + 1 < bytes.count {
            sum &+= UInt64(bytes[index]) << 8 | UInt64(bytes[index + 1])
            index += 2
        }
        if index < bytes.count {
            heldByte = UInt64(bytes[index]) << 8
        }
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

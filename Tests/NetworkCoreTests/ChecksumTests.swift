import NetworkCore
import Testing

@Suite struct ChecksumTests {
    /// The IPv4 header every checksum tutorial works through (a UDP datagram from
    /// 192.168.0.1 to 192.168.0.199).
    let classicHeader: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xB8, 0x61,
                                  0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]

    @Test func classicIPv4HeaderKnownAnswer() {
        var zeroed = classicHeader
        zeroed[10] = 0
        zeroed[11] = 0
        #expect(checksum(zeroed) == 0xB861)
        #expect(checksum(classicHeader) == 0, "a header with its checksum verifies to 0")
        var damaged = classicHeader
        damaged[3] ^= 0x01
        #expect(checksum(damaged) != 0)
    }

    @Test func rfc1071Example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2, so the checksum is 220d.
        #expect(checksum([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]) == 0x220D)
    }

    @Test func oddLengthPadsTheLastByteWithZero() {
        #expect(checksum([0x01, 0x02, 0x03]) == ~UInt16(0x0102 + 0x0300))
        #expect(checksum([0xAB]) == ~UInt16(0xAB00))
        #expect(checksum([]) == 0xFFFF)
    }

    @Test func piecesOfAnyLengthSumAsOneBuffer() {
        var generator = SplitMix(seed: 11)
        for _ in 0..<200 {
            let bytes = (0..<generator.below(64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            var pieces = InternetChecksum()
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + generator.below(5))
                if end - start == 2 && generator.below(2) == 0 {
                    pieces.add(word: UInt16(bytes[start]) << 8 | UInt16(bytes[start + 1]))
                } else {
                    Array(bytes[start..<end]).withUnsafeBytes { pieces.add($0) }
                }
                start = end
            }
            #expect(pieces.value == checksum(bytes))
        }
    }

    /// RFC 1071 as written: big-endian pairs, an odd last byte padded, carries folded.
    static func reference(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt64 = 0
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let low = index + 1 < bytes.endIndex ? UInt64(bytes[index + 1]) : 0
            sum += UInt64(bytes[index]) << 8 | low
            index += 2
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// The word-at-a-time path (8-aligned words, summed byte-swapped) against the
    /// reference: data at every address alignment, lengths across the word edges, in
    /// one piece and cut in two anywhere, with runs of 0xFF that make every carry.
    @Test func wordAtATimeSumAgreesWithPairsAtEveryAlignment() {
        var generator = SplitMix(seed: 5)
        let storage = [UInt8](repeating: 0, count: 512)
        for offset in 0..<8 {
            for length in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 65, 255, 256, 300, 480] {
                var buffer = storage
                for index in 0..<length {
                    buffer[offset + index] = generator.below(3) == 0 ? 0xFF : UInt8(truncatingIfNeeded: generator.next())
                }
                let expected = Self.reference(buffer[offset..<offset + length])
                let cut = length == 0 ? 0 : generator.below(length + 1)
                buffer.withUnsafeBytes { raw in
                    var whole = InternetChecksum()
                    whole.add(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + length]))
                    #expect(whole.value == expected, "offset \(offset), \(length) bytes")
                    var halves = InternetChecksum()
                    halves.add(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + cut]))
                    halves.add(UnsafeRawBufferPointer(rebasing: raw[offset + cut..<offset + length]))
                    #expect(halves.value == expected, "offset \(offset), \(length) bytes cut at \(cut)")
                }
            }
        }
        var ones = InternetChecksum()
        [UInt8](repeating: 0xFF, count: 4096).withUnsafeBytes { ones.add($0) }
        #expect(ones.value == 0, "all ones sum to negative zero, whose complement is 0")
    }

    @Test func wordAndAddressAfterAnOddByte() {
        var sum = InternetChecksum()
        [UInt8(0x12)].withUnsafeBytes { sum.add($0) }
        sum.add(word: 0x3456)
        sum.add(IPv4Address(0x78, 0x9A, 0xBC, 0xDE))
        #expect(sum.value == checksum([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE]))
    }

    @Test func carriesFoldBackIn() {
        // 0xffff + 0x0001 = 0x1_0000, which folds to 0x0001.
        #expect(checksum([0xFF, 0xFF, 0x00, 0x01]) == ~UInt16(0x0001))
        #expect(checksum([UInt8](repeating: 0xFF, count: 4000)) == 0)
    }

    /// A datagram from 10.0.2.15:1234 to 10.0.2.2:53 carrying "hi", summed by hand:
    /// pseudo-header 0a00 + 020f + 0a00 + 0202 + 0011 + 000a, then the UDP header
    /// 04d2 + 0035 + 000a + 0000 and data 6869: 0x85a6, complemented 0x7a59. The IP
    /// header (identification 1, DF, TTL 64) sums to 0xdd41: checksum 0x22be.
    @Test func udpDatagramKnownAnswer() {
        let frame = udpFrame(payload: [0x68, 0x69])
        let expected: [UInt8] = [
            0x52, 0x55, 0x0A, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x1E, 0x00, 0x01, 0x40, 0x00, 0x40, 0x11, 0x22, 0xBE,
            0x0A, 0x00, 0x02, 0x0F, 0x0A, 0x00, 0x02, 0x02,
            0x04, 0xD2, 0x00, 0x35, 0x00, 0x0A, 0x7A, 0x59,
            0x68, 0x69,
        ]
        #expect(frame == expected)
    }
}

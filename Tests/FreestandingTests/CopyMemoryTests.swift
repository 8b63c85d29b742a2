import Freestanding
import Testing

/// memcpy's copy against the obvious byte loop, for every pair of alignments and
/// every length across the word paths' edges; bytes around the destination stay as
/// they were.
@Suite struct CopyMemoryTests {
    @Test func everyAlignmentAndLengthCopiesExactlyTheBytes() {
        var source = [UInt8](repeating: 0, count: 160)
        for index in source.indices { source[index] = UInt8(truncatingIfNeeded: index &* 37 &+ 11) }
        for sourceOffset in 0..<8 {
            for destinationOffset in 0..<8 {
                for count in 0...120 {
                    var destination = [UInt8](repeating: 0xEE, count: 160)
                    source.withUnsafeBytes { from in
                        destination.withUnsafeMutableBytes { to in
                            _ = curio_copy_memory(to.baseAddress! + destinationOffset, from.baseAddress! + sourceOffset,
                                                  count)
                        }
                    }
                    let expected = [UInt8](repeating: 0xEE, count: destinationOffset)
                        + source[sourceOffset..<sourceOffset + count]
                        + [UInt8](repeating: 0xEE, count: 160 - destinationOffset - count)
                    #expect(destination == expected,
                            "source +\(sourceOffset), destination +\(destinationOffset), \(count) bytes")
                }
            }
        }
    }
}

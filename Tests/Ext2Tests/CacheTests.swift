// The block cache under a bit flip in the server's memory: a cached block whose bytes
// no longer match their checksum is dropped and read from the disk again, so a read
// never returns (and an update never writes back) the damaged bytes. The server
// verifies a slot at its first use in each request (`beginRequest`); the engine used
// on its own, at every use. And the cache keeps what a sequential write uses again
// and again instead of reading it anew.

@testable import Ext2
import FileSystemCore
import Testing

@Suite struct CacheTests {
    @Test(arguments: [1024, 4096], [false, true])
    func aFlippedBitInACachedBlockIsNeverRead(blockSize: Int, inRequests: Bool) throws {
        let disk = try Tools.makeImage(blockSize: blockSize, size: "8M")
        var volume = try mount(disk)
        func request() throws { if inRequests { try volume.beginRequest() } }
        try request()
        var intent = Ext2Intent(tag: 1)
        let file = try withBytes("data") { name in
            try volume.create(name, in: .root, type: .regular, permissions: 0o644, intent: &intent, checkpoint: { _ in })
        }
        let contents = pattern(3 * blockSize, seed: 7)
        intent = Ext2Intent(tag: 2)
        try request()
        _ = try contents.withUnsafeBytes { bytes in
            try volume.write(file, at: 0, from: bytes, intent: &intent, checkpoint: { _ in })
        }
        // Read at an offset of one byte: no block is read whole, so each goes
        // through the cache (whole ones go straight from the disk).
        try request()
        var first = [UInt8](repeating: 0, count: contents.count - 1)
        _ = try first.withUnsafeMutableBytes { try volume.read(file, at: 1, into: $0) }
        #expect(first == Array(contents.dropFirst()))

        // Flip one bit in every cached slot, as a fault in the server would.
        for slot in 0..<volume.cacheSlots where volume.memory.cacheTags[slot] != VolumeMemory.noBlock {
            volume.memory.cache[slot * blockSize + 100] ^= 0x10
        }
        try request()
        var second = [UInt8](repeating: 0, count: contents.count - 1)
        _ = try second.withUnsafeMutableBytes { try volume.read(file, at: 1, into: $0) }
        #expect(second == Array(contents.dropFirst()), "the damaged copies were dropped and read again")
        #expect(try volume.status(file).size == UInt64(contents.count))
    }

    /// 1 MiB written in 4 KiB pieces, each its own request as in the server, with the
    /// server's 64 slots: the metadata each piece needs (bitmaps, inode table,
    /// indirect blocks) stays cached and verified, so the disk is read a handful of
    /// times in all, not for every piece.
    @Test func aSequentialWriteReadsItsMetadataFromTheDiskOnce() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "32M")
        var volume = try mount(disk, cache: 64)
        try perform([.create("/f")], on: &volume)
        let file = try volume.path("/f")
        let piece = pattern(4096, seed: 1)
        let before = volume.device.reads
        for index in 0..<256 {
            try volume.beginRequest()
            var intent = Ext2Intent(tag: UInt64(100 + index))
            _ = try piece.withUnsafeBytes { bytes in
                try volume.write(file, at: UInt64(index * 4096), from: bytes, intent: &intent, checkpoint: { _ in })
            }
        }
        #expect(volume.device.reads - before <= 8, "\(volume.device.reads - before) reads")
    }
}

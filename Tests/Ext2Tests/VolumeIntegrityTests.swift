// What the volume knows of the disk's shape, under a bit flip in the server's memory:
// the geometry (kept in the volume's state object) and where each group's
// bitmaps and inode table are (in its heap). Damaged, either would send every read
// and write to the wrong block while the disk stays intact; `beginRequest` finds it
// and answers `internalInconsistency`, on which the server restarts and mounts again.
// (A fault campaign's stack flip set bit 56 of the block shift: every handle of four
// clients then looked stale and every directory empty, until the next restart.)

@testable import Ext2
import FileSystemCore
import Testing

@Suite struct VolumeIntegrityTests {
    /// Flips `mask` in byte `byte` of the field at `path` of the volume's geometry.
    func flip<Field>(_ volume: inout Volume, _ path: KeyPath<Geometry, Field>, byte: Int, mask: UInt8) throws {
        let field = try #require(MemoryLayout<Geometry>.offset(of: path))
        withUnsafeMutableBytes(of: &volume.state.geometry) { bytes in bytes[field + byte] ^= mask }
    }

    @Test func requestsGoOnWhileNothingIsDamaged() throws {
        var volume = try mount(try Tools.makeImage(blockSize: 1024, size: "4M"))
        for tag in 1...3 {
            try volume.beginRequest()
            var intent = Ext2Intent(tag: UInt64(tag))
            _ = try withBytes("f\(tag)") { name in
                try volume.create(name, in: .root, type: .directory, permissions: 0o755, intent: &intent,
                                  checkpoint: { _ in })
            }
        }
        try volume.beginRequest()
    }

    @Test(arguments: [(byte: 7, mask: UInt8(0x01)), (byte: 0, mask: UInt8(0x02))])
    func aFlippedBitInTheGeometryStopsTheNextRequest(byte: Int, mask: UInt8) throws {
        var volume = try mount(try Tools.makeImage(blockSize: 1024, size: "4M"))
        try volume.beginRequest()
        try flip(&volume, \.blockShift, byte: byte, mask: mask)
        #expect(throws: FileSystemError.internalInconsistency) { try volume.beginRequest() }
        var other = try mount(try Tools.makeImage(blockSize: 4096, size: "8M"))
        try flip(&other, \.inodesPerGroup, byte: 1, mask: 0x10)
        #expect(throws: FileSystemError.internalInconsistency) { try other.beginRequest() }
    }

    @Test func aFlippedBitInWhereAGroupKeepsItsInodesStopsTheNextRequest() throws {
        for field in [GroupField.blockBitmap, GroupField.inodeBitmap, GroupField.inodeTable] {
            var volume = try mount(try Tools.makeImage(blockSize: 1024, size: "16M"))
            try volume.beginRequest()
            volume.memory.descriptors[GroupField.size + field] ^= 0x04  // group 1
            #expect(throws: FileSystemError.internalInconsistency) { try volume.beginRequest() }
        }
    }
}

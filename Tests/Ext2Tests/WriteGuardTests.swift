// The engine's last check before a block goes to the disk: a block number that
// contradicts the buffer's role (as a fault inside the server could make it) is
// refused with `internalInconsistency`, and the disk is left exactly as it was.

@testable import Ext2
import FileSystemCore
import Testing

@Suite struct WriteGuardTests {
    @Test(arguments: [1024, 4096])
    func blocksWrittenAgainstTheirRoleAreRefused(blockSize: Int) throws {
        let disk = try Tools.makeImage(blockSize: blockSize, size: "8M")
        var volume = try mount(disk)
        let before = disk.bytes
        let table = volume.descriptorField(0, GroupField.inodeTable)
        let blockBitmap = volume.descriptorField(0, GroupField.blockBitmap)
        // A free data block far from anything mke2fs allocated.
        let freeBlock = UInt32(volume.geometry.blocksCount - 10)
        #expect(volume.isDataBlock(freeBlock))
        #expect(try !volume.isBlockAllocated(freeBlock))

        let refused: [(UInt32, Scratch)] = [
            (table, .data), (table, .directory), (table, .path1), (blockBitmap, .data),
            (freeBlock, .data), (freeBlock, .directory), (freeBlock, .bitmap), (freeBlock, .inodeTable),
            (table + UInt32(volume.geometry.inodeTableBlocks), .inodeTable), (UInt32(volume.geometry.blocksCount), .data),
        ]
        for (block, role) in refused {
            #expect(throws: FileSystemError.internalInconsistency, "block \(block) from \(role)") {
                try volume.writeBlock(block, from: role)
            }
        }
        #expect(disk.bytes == before, "nothing reached the disk")
        // The right roles pass.
        try volume.readBlock(table, into: .inodeTable)
        try volume.writeBlock(table, from: .inodeTable)
        try volume.readBlock(blockBitmap, into: .bitmap)
        try volume.writeBlock(blockBitmap, from: .bitmap)
        #expect(disk.bytes == before, "rewriting a block with its own contents changes nothing")
    }
}

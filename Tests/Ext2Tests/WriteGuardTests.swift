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

    /// An indirect block or an inode whose pointers a fault damaged in the buffer — a
    /// pointer into metadata or past the disk, a block linked twice — or an inode with
    /// a fragment address (a flipped bit e2fsck calls damage) never reaches the disk.
    @Test func damagedPointersAreRefused() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "8M")
        var volume = try mount(disk)
        try perform([.create("/f"), .write("/f", offset: 0, bytes: pattern(40 * 1024, seed: 5))], on: &volume)
        let file = try volume.path("/f").rawValue
        let inode = try volume.readInode(file)
        let indirect = inode.pointer(12)
        #expect(indirect != 0)
        let before = disk.bytes
        let table = volume.descriptorField(0, GroupField.inodeTable)
        for damage in [UInt32(0xFFFF_FFF0), table, 0] {
            try volume.readBlock(indirect, into: .path1)
            let third = volume.buffer(.path1).le32(8)
            volume.buffer(.path1).setLE32(12, damage == 0 ? third : damage)  // 0: a duplicate of pointer 2
            #expect(throws: FileSystemError.internalInconsistency, "indirect pointer \(damage)") {
                try volume.writeBlock(indirect, from: .path1)
            }
        }
        var twice = inode
        twice.setPointer(5, inode.pointer(4))
        #expect(throws: FileSystemError.internalInconsistency) { try volume.writeInode(file, twice) }
        var wild = inode
        wild.setPointer(7, table)
        #expect(throws: FileSystemError.internalInconsistency) { try volume.writeInode(file, wild) }
        var fragment = inode
        withUnsafeMutableBytes(of: &fragment.raw) { $0.setLE32(Inode.fragmentAddressOffset, 16384) }
        #expect(throws: FileSystemError.internalInconsistency, "i_faddr set") { try volume.writeInode(file, fragment) }
        #expect(disk.bytes == before, "nothing reached the disk")
        try volume.writeInode(file, inode)
        try volume.readBlock(indirect, into: .path1)
        try volume.writeBlock(indirect, from: .path1)
        #expect(disk.bytes == before, "intact pointers pass")
    }

    /// A file's inode written under the number of one of ext2's reserved inodes (a
    /// damaged inode number: 12 became 8 in a soak) is refused; the root is not reserved.
    @Test func reservedInodesAreNeverWritten() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "8M")
        var volume = try mount(disk)
        try perform([.create("/f"), .write("/f", offset: 0, bytes: pattern(2048, seed: 3))], on: &volume)
        let inode = try volume.readInode(try volume.path("/f").rawValue)
        let before = disk.bytes
        for reserved in [UInt32(1)] + Array(3..<volume.geometry.firstInode) {
            #expect(throws: FileSystemError.internalInconsistency, "inode \(reserved)") {
                try volume.writeInode(reserved, inode)
            }
        }
        #expect(disk.bytes == before, "nothing reached the disk")
        let root = InodeNumber.root.rawValue
        try volume.writeInode(root, try volume.readInode(root))
        #expect(disk.bytes == before, "the root's own inode passes")
    }

    /// One file's inode written under another file's number (the generations differ),
    /// or a fresh inode over a slot in use, is refused: either would leave the other
    /// file's blocks claimed by nobody, or by two files.
    @Test func anInodeIsNeverWrittenOverAnotherFile() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "8M")
        var volume = try mount(disk)
        try perform([.create("/a"), .create("/b"), .write("/a", offset: 0, bytes: pattern(3000, seed: 4))], on: &volume)
        let a = try volume.path("/a").rawValue
        let b = try volume.path("/b").rawValue
        let inodeOfA = try volume.readInode(a)
        let before = disk.bytes
        #expect(throws: FileSystemError.internalInconsistency) { try volume.writeInode(b, inodeOfA) }
        #expect(throws: FileSystemError.internalInconsistency) { try volume.writeInode(b, inodeOfA, fresh: true) }
        #expect(disk.bytes == before, "nothing reached the disk")
        try volume.writeInode(a, inodeOfA)
        try volume.writeInode(a, inodeOfA, fresh: true)
        #expect(try volume.readInode(a).generation == inodeOfA.generation, "a create run again rewrites its own inode")
    }

    /// Every new link a chunk writes must be a block it took from the reservation, each
    /// once: a block number damaged between being taken and being linked (754 became
    /// 752, another file's block, in a soak) is refused before the map is written.
    @Test func aNewLinkMustBeABlockTakenFromTheReservation() throws {
        var reservation = Ext2Intent(tag: 11)
        reservation.reservationKind = .allocate
        reservation.reservationCount = 3
        for (index, block) in [UInt32(754), 755, 760].enumerated() { reservation.setReservedBlock(index, block) }
        typealias Volume = Ext2Volume<MemoryDevice>
        var unmatched: UInt32 = 0b011  // this chunk took the first two
        try Volume.match(755, in: reservation, unmatched: &unmatched)
        try Volume.match(754, in: reservation, unmatched: &unmatched)
        #expect(unmatched == 0)
        unmatched = 0b011
        #expect(throws: FileSystemError.internalInconsistency, "a damaged number") {
            try Volume.match(752, in: reservation, unmatched: &unmatched)
        }
        #expect(throws: FileSystemError.internalInconsistency, "a block this chunk did not take") {
            try Volume.match(760, in: reservation, unmatched: &unmatched)
        }
        try Volume.match(754, in: reservation, unmatched: &unmatched)
        #expect(throws: FileSystemError.internalInconsistency, "one block linked twice") {
            try Volume.match(754, in: reservation, unmatched: &unmatched)
        }
        #expect(unmatched == 0b010, "755 taken and never linked")
    }

    /// A bitmap or inode-table buffer that a stray store changed beyond what the step
    /// meant (one more bit, another inode's bytes) is refused before it is written.
    @Test func strayChangesToBitmapsAndInodeTablesAreRefused() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "8M")
        var volume = try mount(disk)
        try perform([.create("/f")], on: &volume)
        let bitmapBlock = volume.descriptorField(0, GroupField.blockBitmap)
        let freeBit = Int(volume.geometry.blocksCount - 10 - volume.geometry.groupStart(0))
        try volume.readBlock(bitmapBlock, into: .bitmap)
        Ext2Volume<MemoryDevice>.setBit(volume.buffer(.bitmap), freeBit, true)
        try volume.checkBitmapChange(bitmapBlock, flips: 1) { $0 == freeBit }
        Ext2Volume<MemoryDevice>.setBit(volume.buffer(.bitmap), freeBit - 1, true)
        #expect(throws: FileSystemError.internalInconsistency) {
            try volume.checkBitmapChange(bitmapBlock, flips: 1) { $0 == freeBit }
        }
        #expect(throws: FileSystemError.internalInconsistency) {
            try volume.checkBitmapChange(bitmapBlock, flips: 2) { $0 == freeBit }
        }

        let file = try volume.path("/f").rawValue
        let inode = try volume.readInode(file)
        let byte = Int(file - 1) * volume.geometry.inodeSize
        let table = volume.descriptorField(0, GroupField.inodeTable) + UInt32(byte / 1024)
        let offset = byte % 1024
        try volume.readBlock(table, into: .inodeTable)
        try volume.checkInodeTableChange((table, offset), inode, fresh: false)
        let neighbour = offset == 0 ? volume.geometry.inodeSize : 0
        volume.buffer(.inodeTable)[neighbour + 4] ^= 0x10
        #expect(throws: FileSystemError.internalInconsistency) {
            try volume.checkInodeTableChange((table, offset), inode, fresh: false)
        }
        volume.buffer(.inodeTable)[neighbour + 4] ^= 0x10
        volume.buffer(.inodeTable)[offset + 8] ^= 0x01
        #expect(throws: FileSystemError.internalInconsistency, "the inode's own bytes, changed after the copy") {
            try volume.checkInodeTableChange((table, offset), inode, fresh: false)
        }
    }

    /// Blocks a write has just chosen as free must still be free when it marks them:
    /// a reservation damaged into a block in use (another file's) is refused, and a
    /// full-block data write goes through the same role check as any other.
    @Test func aFreshReservationOfABlockInUseIsRefused() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "8M")
        var volume = try mount(disk)
        try perform([.create("/f"), .write("/f", offset: 0, bytes: pattern(4096, seed: 6))], on: &volume)
        let inUse = try volume.readInode(try volume.path("/f").rawValue).pointer(0)
        let free = UInt32(volume.geometry.blocksCount - 10)
        let before = disk.bytes
        var reservation = Ext2Intent(tag: 9)
        reservation.reservationKind = .allocate
        reservation.reservationCount = 2
        reservation.setReservedBlock(0, free)
        reservation.setReservedBlock(1, inUse)
        #expect(throws: FileSystemError.internalInconsistency) {
            try volume.commitBlockBits(reservation, allocate: true, everyBitFlips: true)
        }
        #expect(disk.bytes == before)
        let file = try volume.path("/f").rawValue
        var damaged = try volume.readInode(file)
        damaged.setPointer(0, free)
        #expect(throws: FileSystemError.internalInconsistency, "a full block of data aimed at a free block") {
            try pattern(1024, seed: 7).withUnsafeBytes { bytes in
                var intent = Ext2Intent(tag: 10)
                _ = try volume.writeRange(file, &damaged, at: 0, from: bytes, intent: &intent) { _ in }
            }
        }
        #expect(disk.bytes == before)
    }
}

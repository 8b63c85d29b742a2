// The table of interrupted updates the server keeps across mounts (the crash tests
// check that volumes honour it): what it holds, when it lets go, and that a flipped
// bit in it is noticed.

@testable import Ext2
import Testing

@Suite struct InterruptedUpdatesTests {
    func intent(tag: UInt64, block: UInt32, inode: UInt32) -> Ext2Intent {
        var intent = Ext2Intent(tag: tag)
        intent.kind = .write
        intent.inode = inode
        intent.reservationKind = .allocate
        intent.reservationCount = 1
        intent.setReservedBlock(0, block)
        return intent
    }

    @Test func holdsWhatAnIntentNamesForOthersUntilForgotten() {
        let table = InterruptedUpdates()
        table.adopt(intent(tag: 5, block: 300, inode: 40))
        #expect(table.holdsBlock(300, otherThan: 9) && table.holdsInode(40, otherThan: 9))
        #expect(!table.holdsBlock(300, otherThan: 5), "its own re-run may use them")
        #expect(!table.holdsBlock(301, otherThan: 9) && !table.holdsInode(41, otherThan: 9))
        table.adopt(intent(tag: 5, block: 310, inode: 40))
        #expect(table.count == 1 && !table.holdsBlock(300, otherThan: 9) && table.holdsBlock(310, otherThan: 9),
                "adopting a tag again replaces its entry")
        table.forget(tag: 5)
        #expect(table.count == 0 && !table.holdsBlock(310, otherThan: 9))
        table.adopt(Ext2Intent(tag: 6))
        #expect(table.count == 0, "an intent that recorded nothing holds nothing")
    }

    @Test func growsPastAnyFixedNumberOfClients() {
        let table = InterruptedUpdates()
        for client in 0..<320 { table.adopt(intent(tag: UInt64(client + 1) << 48 | 7, block: UInt32(1000 + client), inode: 12)) }
        #expect(table.count == 320)
        #expect(table.holdsBlock(1319, otherThan: 0))
    }

    @Test func aFlippedBitInAnEntryIsNoticed() {
        let table = InterruptedUpdates()
        table.adopt(intent(tag: 5, block: 300, inode: 40))
        table.adopt(intent(tag: 6, block: 301, inode: 41))
        #expect(table.isIntact)
        table.entries[1].intent.setReservedBlock(0, 301 ^ 0x40)
        #expect(!table.isIntact)
    }

    /// Two flips of the top bit in two words: a plain multiply hash would not see them
    /// (a product carries differences only upwards); the fold does.
    @Test func twoFlipsOfTheTopBitAreNoticed() {
        let table = InterruptedUpdates()
        table.adopt(intent(tag: 5, block: 300, inode: 40))
        #expect(table.isIntact)
        table.entries[0].intent.tag ^= 1 << 63
        table.entries[0].intent.words.0 ^= 1 << 63
        #expect(!table.isIntact)
    }
}

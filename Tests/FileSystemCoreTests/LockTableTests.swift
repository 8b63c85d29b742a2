// The server's lock table on the host: POSIX conflicts between clients, a client's
// own locks, releases, FIFO waiters, deadlock detection, the rebuild from client
// states (which must give back exactly the table the server had), and the check
// words that catch any damaged bit.

@testable import FileSystemCore
import Testing

let alice = ClientID(rawValue: 0x0001_0003)
let bob = ClientID(rawValue: 0x0001_0004)
let carol = ClientID(rawValue: 0x0002_0005)
let dave = ClientID(rawValue: 0x0001_0006)

func heldList(_ table: LockTable) -> [String] {
    (0..<table.heldCount).map { index in
        let lock = table.heldLock(at: index)
        return "\(lock.client.rawValue):\(lock.file.inode.rawValue).\(lock.file.generation):"
            + "\(lock.range.start)-\(lock.range.end):\(lock.kind)"
    }.sorted()
}

func waiter(_ client: ClientID, _ file: FileKey, _ range: LockRange, _ kind: LockKind) -> LockTable.Waiter {
    LockTable.Waiter(client: client, handle: FileHandle(rawValue: 9), file: file, range: range, kind: kind)
}

@Suite struct LockTableTests {
    @Test func sharedLocksShareAndExclusiveOnesDoNot() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .shared)
        try table.acquire(client: bob, file: fileA, range: range(50, 150), kind: .shared)
        #expect(throws: FileSystemError.wouldBlock) {
            try table.acquire(client: carol, file: fileA, range: range(99, 100), kind: .exclusive)
        }
        #expect(table.conflictingHolder(client: carol, file: fileA, range: range(120, 130), kind: .exclusive) == bob)
        #expect(table.conflictingHolder(client: carol, file: fileA, range: range(150, 160), kind: .exclusive) == nil,
                "ranges are half-open")
        try table.acquire(client: carol, file: fileA, range: range(150, LockRange.toEndOfFile), kind: .exclusive)
        #expect(throws: FileSystemError.wouldBlock) {
            try table.acquire(client: alice, file: fileA, range: range(1_000_000, 1_000_001), kind: .shared)
        }
        // Another file, or another life of the same inode, is another file.
        try table.acquire(client: alice, file: fileB, range: range(0, 1000), kind: .exclusive)
        try table.acquire(client: bob, file: FileKey(inode: fileA.inode, generation: 2), range: range(0, 1000), kind: .exclusive)
        #expect(table.conflictingHolder(client: bob, file: fileA, range: range(0, 10), kind: .unlock) == nil)
        #expect(table.heldCount == 5 && table.isIntact)
    }

    @Test func aClientsOwnLocksNeverConflict() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .shared)
        try table.acquire(client: alice, file: fileA, range: range(20, 30), kind: .exclusive)  // upgrade part
        #expect(heldList(table) == ["\(alice.rawValue):12.1:0-20:shared", "\(alice.rawValue):12.1:20-30:exclusive",
                                    "\(alice.rawValue):12.1:30-100:shared"])
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .exclusive)  // upgrade all
        #expect(heldList(table) == ["\(alice.rawValue):12.1:0-100:exclusive"])
        // Upgrading over another client's shared lock must wait.
        try table.acquire(client: alice, file: fileB, range: range(0, 10), kind: .shared)
        try table.acquire(client: bob, file: fileB, range: range(5, 10), kind: .shared)
        #expect(throws: FileSystemError.wouldBlock) {
            try table.acquire(client: alice, file: fileB, range: range(0, 10), kind: .exclusive)
        }
        try table.acquire(client: alice, file: fileB, range: range(0, 5), kind: .exclusive)
        #expect(table.isIntact)
    }

    @Test func releasesSplitAndDropWhatTheySay() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .exclusive)
        try table.acquire(client: alice, file: fileB, range: range(0, 100), kind: .shared)
        try table.acquire(client: bob, file: fileB, range: range(0, 100), kind: .shared)
        try table.release(client: alice, file: fileA, range: range(40, 60))
        #expect(heldList(table).filter { $0.contains(":12.1:") }
                == ["\(alice.rawValue):12.1:0-40:exclusive", "\(alice.rawValue):12.1:60-100:exclusive"])
        #expect(table.conflictingHolder(client: bob, file: fileA, range: range(40, 60), kind: .exclusive) == nil)
        try table.acquire(client: alice, file: fileA, range: range(0, 1), kind: .unlock)
        #expect(heldList(table).contains("\(alice.rawValue):12.1:1-40:exclusive"))
        table.releaseAll(client: alice, file: fileA)
        #expect(heldList(table) == ["\(alice.rawValue):13.7:0-100:shared", "\(bob.rawValue):13.7:0-100:shared"])
        table.forget(client: bob)
        #expect(heldList(table) == ["\(alice.rawValue):13.7:0-100:shared"])
        #expect(table.isIntact)
    }

    @Test func aFullTableRefusesAndChangesNothing() throws {
        let table = LockTable()
        for index in 0..<LockTable.capacity {
            try table.acquire(client: ClientID(rawValue: UInt32(index % 7)), file: fileA,
                              range: range(UInt64(index) * 10, UInt64(index) * 10 + 5), kind: .shared)
        }
        let before = heldList(table)
        #expect(throws: FileSystemError.tooManyOpen) {
            try table.acquire(client: alice, file: fileB, range: range(0, 1), kind: .shared)
        }
        // A split in the middle needs one more entry.
        #expect(throws: FileSystemError.tooManyOpen) {
            try table.release(client: ClientID(rawValue: 0), file: fileA, range: range(1, 2))
        }
        #expect(heldList(table) == before)
        // Replacing a whole lock needs none.
        try table.acquire(client: ClientID(rawValue: 0), file: fileA, range: range(0, 5), kind: .exclusive)
        #expect(table.isIntact)
    }

    @Test func waitersAreGrantedOldestFirstAsLocksAreReleased() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .exclusive)
        try table.enqueue(waiter(bob, fileA, range(0, 10), .shared))
        try table.enqueue(waiter(carol, fileA, range(5, 20), .exclusive))
        try table.enqueue(waiter(dave, fileA, range(50, 60), .shared))
        #expect(table.waiterCount == 3)
        #expect(table.takeGrantableWaiter() == nil, "alice still holds everything")
        table.releaseAll(client: alice, file: fileA)
        var granted: [ClientID] = []
        while let next = table.takeGrantableWaiter() {
            granted.append(next.client)
            try table.acquire(client: next.client, file: next.file, range: next.range, kind: next.kind)
        }
        // bob first; carol's exclusive now overlaps bob's shared; dave does not overlap.
        #expect(granted == [bob, dave])
        #expect(table.waiterCount == 1 && table.waiter(at: 0).client == carol)
        try table.release(client: bob, file: fileA, range: range(0, LockRange.toEndOfFile))
        let last = table.takeGrantableWaiter()
        #expect(last == waiter(carol, fileA, range(5, 20), .exclusive))
        #expect(table.takeGrantableWaiter() == nil && table.waiterCount == 0)
        #expect(table.isIntact)
    }

    @Test func aClientWaitsForOneThingAtATime() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 100), kind: .exclusive)
        try table.enqueue(waiter(bob, fileA, range(0, 10), .shared))
        try table.enqueue(waiter(carol, fileA, range(0, 10), .shared))
        try table.enqueue(waiter(bob, fileA, range(20, 30), .exclusive))  // replaces bob's first
        #expect(table.waiterCount == 2)
        #expect(table.waiter(at: 0).client == carol && table.waiter(at: 1).range == range(20, 30))
        try table.enqueue(waiter(dave, fileA, range(0, 10), .shared))
        #expect(table.removeWaiter(client: carol)?.client == carol)
        #expect(table.removeWaiter(client: carol) == nil)
        #expect(table.waiter(at: 0).client == bob && table.waiter(at: 1).client == dave, "removal keeps arrival order")
        table.forget(client: bob)
        table.forget(client: dave)
        #expect(table.waiterCount == 0 && table.isIntact)
        for index in 0..<LockTable.waiterCapacity {
            try table.enqueue(waiter(ClientID(rawValue: UInt32(100 + index)), fileA, range(0, 1), .shared))
        }
        #expect(throws: FileSystemError.tooManyOpen) { try table.enqueue(waiter(bob, fileA, range(0, 1), .shared)) }
        #expect(throws: FileSystemError.invalidArgument) { try table.enqueue(waiter(bob, fileA, range(0, 1), .unlock)) }
    }

    @Test func waitingThatWouldCloseACycleIsADeadlock() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 10), kind: .exclusive)
        try table.acquire(client: bob, file: fileA, range: range(10, 20), kind: .exclusive)
        try table.acquire(client: carol, file: fileB, range: range(0, 10), kind: .shared)
        // alice waits for bob: fine.
        try table.enqueue(waiter(alice, fileA, range(10, 20), .exclusive))
        // bob waiting for alice would close alice -> bob -> alice.
        #expect(table.wouldDeadlock(waiter(bob, fileA, range(5, 6), .shared)))
        #expect(throws: FileSystemError.deadlock) { try table.enqueue(waiter(bob, fileA, range(0, 10), .shared)) }
        // bob waiting for carol (who waits for nobody) is not.
        #expect(!table.wouldDeadlock(waiter(bob, fileB, range(0, 10), .exclusive)))
        // A longer cycle: bob waits for carol, then carol waiting for alice closes
        // carol -> alice -> bob -> carol.
        try table.enqueue(waiter(bob, fileB, range(0, 10), .exclusive))
        #expect(throws: FileSystemError.deadlock) { try table.enqueue(waiter(carol, fileA, range(0, 1), .shared)) }
        // dave waiting on alice is just a chain.
        try table.enqueue(waiter(dave, fileA, range(0, 1), .shared))
        #expect(table.waiterCount == 3 && table.isIntact)
        // Shared locks do not wait for shared locks: no edge, no cycle.
        #expect(!table.wouldDeadlock(waiter(bob, fileB, range(0, 10), .shared)))
    }

    @Test func deadlockDetectionFollowsEveryBlocker() throws {
        // alice holds two ranges shared with bob; carol waits for both holders
        // through one request: the cycle through the second holder must be found.
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(0, 10), kind: .shared)
        try table.acquire(client: bob, file: fileA, range: range(0, 10), kind: .shared)
        try table.acquire(client: carol, file: fileB, range: range(0, 10), kind: .exclusive)
        try table.enqueue(waiter(bob, fileB, range(0, 1), .shared))  // bob -> carol
        #expect(throws: FileSystemError.deadlock) {
            try table.enqueue(waiter(carol, fileA, range(0, 10), .exclusive))  // carol -> alice, bob
        }
    }

    // MARK: Rebuild

    /// A model server: clients with real states, requests applied to the state and the
    /// table as the server does (table conflict check, state edit, table edit), closes
    /// and client exits. Throughout, the table must be the union of the states; at the
    /// end, a rebuild from the states must give the same table.
    @Test(arguments: 0..<6)
    func rebuildFromTheStatesGivesTheSameTable(seed: Int) throws {
        var random = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        func next(_ bound: Int) -> Int {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return Int(random % UInt64(bound))
        }
        let clients = (0..<12).map { ClientID(rawValue: UInt32(0x0001_0000 + $0)) }
        let files = [fileA, fileB, FileKey(inode: InodeNumber(40), generation: 3)]
        var states = [FileSystemClientState](repeating: .initial, count: clients.count)
        let table = LockTable()

        func union() -> [String] {
            var all: [String] = []
            for (index, state) in states.enumerated() {
                state.forEachLock { file, range, kind in
                    all.append("\(clients[index].rawValue):\(file.inode.rawValue).\(file.generation):"
                        + "\(range.start)-\(range.end):\(kind)")
                }
            }
            return all.sorted()
        }

        var granted = 0
        for _ in 0..<1500 {
            let index = next(clients.count)
            let client = clients[index]
            var state = states[index]
            let open = (0..<8).filter { !state.handles[$0].isFree }
            switch next(20) {
            case 0 ... 2:
                let file = files[next(files.count)]
                _ = try? state.open(inode: file.inode, generation: file.generation, flags: .readWrite)
            case 3 where !open.isEmpty:
                let closed = try state.close(state.handles[open[next(open.count)]].handle)
                table.releaseAll(client: client, file: closed.file)
            case 4 where next(10) == 0:
                state = .initial  // the client ended
                table.forget(client: client)
            default:
                guard !open.isEmpty else { continue }
                let handle = state.handles[open[next(open.count)]]
                let start = UInt64(next(60))
                let request = range(start, next(4) == 0 ? LockRange.toEndOfFile : start + 1 + UInt64(next(30)))
                let kind = [LockKind.shared, .shared, .exclusive, .unlock][next(4)]
                guard table.conflictingHolder(client: client, file: handle.file, range: request, kind: kind) == nil
                else { continue }
                var changed = state
                do {
                    try changed.applyLock(handle.handle, range: request, kind: kind)
                } catch {
                    #expect(error == .tooManyOpen)
                    continue
                }
                try table.acquire(client: client, file: handle.file, range: request, kind: kind)
                state = changed
                granted += 1
            }
            states[index] = state
            #expect(FileSystemClientState.isConsistent(state))
            #expect(heldList(table) == union())
        }
        #expect(granted > 300 && table.heldCount > 10)
        #expect(table.isIntact)
        let before = heldList(table)
        table.clear()
        #expect(table.heldCount == 0 && table.isIntact)
        for (index, state) in states.enumerated() { try table.addHeldLocks(of: clients[index], from: state) }
        #expect(heldList(table) == before)
        #expect(table.isIntact)
    }

    @Test func rebuildRefusesWhatDoesNotFit() throws {
        let table = LockTable()
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite)
        for index in 0..<3 { try state.applyLock(handle, range: range(UInt64(index) * 10, UInt64(index) * 10 + 1), kind: .shared) }
        for index in 0..<(LockTable.capacity - 2) {
            try table.acquire(client: ClientID(rawValue: UInt32(index)), file: fileB, range: range(0, 1), kind: .shared)
        }
        let before = heldList(table)
        #expect(throws: FileSystemError.tooManyOpen) { try table.addHeldLocks(of: alice, from: state) }
        #expect(heldList(table) == before)
    }

    // MARK: Integrity

    @Test func everyBitOfEveryEntryIsGuarded() throws {
        let table = LockTable()
        try table.acquire(client: alice, file: fileA, range: range(3, LockRange.toEndOfFile), kind: .exclusive)
        try table.acquire(client: bob, file: fileB, range: range(0x1234, 0x5678), kind: .shared)
        try table.enqueue(waiter(carol, fileA, range(0, 10), .shared))
        #expect(table.isIntact)
        #expect(MemoryLayout<LockTable.Entry>.size == 48 && MemoryLayout<LockTable.Entry>.stride == 48)
        func flip(_ buffer: UnsafeMutableBufferPointer<LockTable.Entry>, _ index: Int, _ bit: Int) {
            let bytes = UnsafeMutableRawPointer(buffer.baseAddress! + index)
            bytes.storeBytes(of: bytes.load(fromByteOffset: bit / 8, as: UInt8.self) ^ UInt8(1 << (bit % 8)),
                             toByteOffset: bit / 8, as: UInt8.self)
        }
        for (buffer, index) in [(table.held, 0), (table.held, 1), (table.held, 2), (table.held, 255),
                                (table.waiting, 0), (table.waiting, 1), (table.waiting, 63)] {
            for bit in 0..<(48 * 8) {
                flip(buffer, index, bit)
                #expect(!table.isIntact, "entry \(index) bit \(bit)")
                flip(buffer, index, bit)
            }
        }
        #expect(table.isIntact)
    }
}

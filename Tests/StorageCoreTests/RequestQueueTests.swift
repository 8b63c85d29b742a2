import StorageCore
import Testing

@Suite struct RequestQueueTests {
    func client(_ raw: UInt32) -> StorageClientID { StorageClientID(rawValue: raw) }

    func drain(_ queue: RequestQueue) -> [UInt32] {
        var order: [UInt32] = []
        while let entry = queue.popBest() { order.append(entry.client.rawValue) }
        return order
    }

    @Test func leavesByPriorityThenArrival() throws {
        let queue = RequestQueue()
        // (client, priority) in arrival order.
        let arrivals: [(UInt32, UInt8)] = [(1, 4), (2, 7), (3, 0), (4, 4), (5, 0), (6, 7), (7, 3), (8, 4)]
        for (raw, priority) in arrivals {
            try queue.insert(client(raw), priority: priority, arrival: queue.takeArrival())
        }
        #expect(queue.count == 8)
        #expect(queue.isIntact)
        #expect(queue.entry(rank: 0)?.client == client(3))
        #expect(queue.entry(rank: 7)?.client == client(6))
        #expect(queue.entry(rank: 8) == nil)
        #expect(drain(queue) == [3, 5, 7, 1, 4, 8, 2, 6])
        #expect(queue.isEmpty)
        #expect(queue.popBest() == nil)
    }

    @Test func isFIFOWithinAPriorityWhateverTheInsertionOrder() throws {
        let queue = RequestQueue()
        for raw in UInt32(0)..<20 {
            try queue.insert(client(100 + raw), priority: 2, arrival: 1000 - UInt64(raw))
        }
        #expect(drain(queue) == (0..<20).reversed().map { 100 + $0 })
    }

    @Test func popBestReportsTheEntry() throws {
        let queue = RequestQueue()
        try queue.insert(client(9), priority: 5, arrival: 77)
        let best = try #require(queue.popBest())
        #expect(best.client == client(9) && best.priority == 5 && best.arrival == 77)
    }

    @Test func removeTakesOutOneClientAndKeepsTheOrder() throws {
        let queue = RequestQueue()
        for raw in UInt32(1)...6 {
            try queue.insert(client(raw), priority: UInt8(raw % 2), arrival: queue.takeArrival())
        }
        #expect(queue.contains(client(4)))
        #expect(queue.remove(client(4)))
        #expect(!queue.contains(client(4)))
        #expect(!queue.remove(client(4)))
        #expect(!queue.remove(client(99)))
        #expect(queue.remove(client(5)), "the least urgent entry")
        #expect(queue.remove(client(2)), "the most urgent entry")
        #expect(queue.isIntact)
        #expect(drain(queue) == [6, 1, 3])
    }

    @Test func refusesDuplicatesBadEntriesAndOverflow() throws {
        let queue = RequestQueue()
        try queue.insert(client(1), priority: 0, arrival: 1)
        #expect(throws: RequestQueueError.duplicate) { try queue.insert(client(1), priority: 3, arrival: 2) }
        #expect(throws: RequestQueueError.badEntry) { try queue.insert(client(2), priority: 8, arrival: 2) }
        #expect(throws: RequestQueueError.badEntry) { try queue.insert(client(2), priority: 1, arrival: 0) }
        for raw in UInt32(2)...64 { try queue.insert(client(raw), priority: 7, arrival: queue.takeArrival()) }
        #expect(queue.count == RequestQueue.capacity)
        #expect(throws: RequestQueueError.full) { try queue.insert(client(65), priority: 0, arrival: 1000) }
        #expect(queue.isIntact)
        #expect(drain(queue) == Array(1...64))
    }

    /// A restart rebuilds the queue from the SSRs, which come back in slot order, not
    /// arrival order; the order of service must not change, and new requests still
    /// queue behind the old ones.
    @Test func aRebuildRestoresTheOrderAndTheArrivalCounter() throws {
        var generator = SplitMix(seed: 7)
        let before = RequestQueue()
        var records: [(StorageClientID, UInt8, UInt64)] = []
        for raw in UInt32(1)...40 {
            let priority = UInt8(generator.next() % 8)
            let arrival = before.takeArrival()
            try before.insert(client(raw), priority: priority, arrival: arrival)
            records.append((client(raw), priority, arrival))
        }
        // Serve a few, so the queue is not simply everything ever inserted.
        for _ in 0..<10 {
            let served = try #require(before.popBest())
            records.removeAll { $0.0 == served.client }
        }
        let newArrivalBefore = before.takeArrival()

        let after = RequestQueue()
        try after.insert(client(999), priority: 0, arrival: 1)
        after.removeAll()
        #expect(after.isEmpty)
        for index in records.indices.shuffled(using: &generator) {
            let (id, priority, arrival) = records[index]
            try after.insert(id, priority: priority, arrival: arrival)
        }
        #expect(after.isIntact)
        let newArrivalAfter = after.takeArrival()
        #expect(newArrivalAfter > records.map(\.2).max()!)
        try before.insert(client(500), priority: 3, arrival: newArrivalBefore)
        try after.insert(client(500), priority: 3, arrival: newArrivalAfter)
        #expect(drain(after) == drain(before))
    }

    /// Found by `make fuzz-host` (storage-state): rebuilt from an SSR whose arrival
    /// number lay just below the limit its checker allows, the queue went on handing
    /// out numbers past it, and every new request's state failed the checker (the
    /// client lost its state, and so did the next). The counter now stops below it.
    @Test func arrivalNumbersStayBelowTheLimit() throws {
        let limit = StorageClientState.arrivalLimit
        let queue = RequestQueue()
        try queue.insert(client(1), priority: 3, arrival: limit - 2)
        for raw in UInt32(2)...4 {
            let arrival = queue.takeArrival()
            #expect(arrival < limit)
            try queue.insert(client(raw), priority: 3, arrival: arrival)
        }
        #expect(queue.isIntact)
        #expect(drain(queue) == [1, 2, 3, 4])
        #expect(throws: RequestQueueError.badEntry) { try queue.insert(client(5), priority: 3, arrival: limit) }
    }

    @Test func anyFlippedBitIsDetected() throws {
        let queue = RequestQueue()
        for raw in UInt32(1)...5 { try queue.insert(client(raw), priority: UInt8(raw), arrival: queue.takeArrival()) }
        #expect(queue.isIntact)
        for entry in 0..<5 {
            for bit in 0..<(MemoryLayout<RequestQueue.Entry>.size * 8) {
                queue.flip(entry: entry, bit: bit)
                #expect(!queue.isIntact, "entry \(entry) bit \(bit)")
                queue.flip(entry: entry, bit: bit)
            }
        }
        #expect(queue.isIntact)
    }

    @Test func intactEntriesInTheWrongOrderAreDetected() throws {
        let queue = RequestQueue()
        try queue.insert(client(1), priority: 1, arrival: 1)
        try queue.insert(client(2), priority: 1, arrival: 2)
        swapEntries(queue, 0, 1)
        #expect(!queue.isIntact)
        swapEntries(queue, 0, 1)
        #expect(queue.isIntact)
    }

    @Test func aClientQueuedTwiceIsDetected() throws {
        let queue = RequestQueue()
        try queue.insert(client(1), priority: 1, arrival: 1)
        try queue.insert(client(3), priority: 1, arrival: 2)
        // Turn client 1 into client 3 and fix up the check word to match (client bit 1
        // lands on check bit 1 + 23 of the word at offset 16), so only the duplicate
        // check can see it.
        let index = 1
        queue.flip(entry: index, bit: 1)
        queue.flip(entry: index, bit: 16 * 8 + 24)
        #expect(queue.entry(rank: 0)?.client == client(3))
        #expect(!queue.isIntact)
    }

    /// Swaps two stored entries bit by bit (each stays intact on its own).
    func swapEntries(_ queue: RequestQueue, _ first: Int, _ second: Int) {
        let a = storedBits(queue, first), b = storedBits(queue, second)
        for bit in a.indices where a[bit] != b[bit] {
            queue.flip(entry: first, bit: bit)
            queue.flip(entry: second, bit: bit)
        }
    }

    /// The bits of stored entry `index` (counted from the least urgent).
    func storedBits(_ queue: RequestQueue, _ index: Int) -> [Bool] {
        let entry = queue.entry(rank: queue.count - 1 - index)!
        let bytes = withUnsafeBytes(of: entry) { Array($0) }
        return (0..<bytes.count * 8).map { bytes[$0 / 8] & UInt8(1 << ($0 % 8)) != 0 }
    }
}

/// A small deterministic generator for shuffles.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

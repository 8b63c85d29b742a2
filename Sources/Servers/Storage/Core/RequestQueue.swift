// The storage server's priority queue of outstanding requests: a cache of what the
// clients' SSRs say, rebuilt from them after a restart.
//
// Order. Requests leave by priority (0 first), and within a priority in the order they
// arrived. Arrival numbers are handed out by the queue (`takeArrival`) and stored in
// the client's SSR with the request, so a rebuild that re-inserts the SSRs' requests
// in any order (the order the kernel hands the SSRs back) yields exactly the order
// before the crash; the counter then resumes after the largest number it saw, so new
// requests still queue behind old ones. Ties cannot happen (numbers are unique), but
// the client id settles them anyway so the order is total and checkable. Numbers stay
// below `StorageClientState.arrivalLimit` (2^62, a number no server reaches at one per
// request): an SSR claiming a larger one is damaged and refused by its checker, and
// the counter never wraps — at the limit it keeps handing out the last number, and
// the client ids order those.
//
// Storage. A sorted array of at most 64 entries, most urgent last: taking the best
// request is O(1), inserting or removing shifts at most 64 entries, and the array is
// easy to check. One buffer allocated for the server's life (as in the timer queue, an
// inline array in a struct was copied whole on reads in the embedded build).
//
// Integrity. A damaged entry could lose a client's request, and that client would wait
// for ever. Each entry carries a check word (a mix of the complement of its fields),
// and `isIntact` verifies every check word, the order, the count, the priorities,
// arrival numbers below the counter and that no client appears twice. The server calls
// it before trusting the queue and restarts itself if it fails: the restart rebuilds
// the queue from the SSRs. Any change confined to one field of one entry is caught.

/// A client of the storage server (the server uses the client's task id).
public struct StorageClientID: Equatable, Sendable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

public enum RequestQueueError: Error, Equatable, Sendable {
    case full
    /// The client already has a request queued (clients have at most one).
    case duplicate
    /// A priority above 7, or an arrival number of 0 or not below the limit.
    case badEntry
}

public final class RequestQueue {
    public struct Entry: Equatable, Sendable {
        public private(set) var client: StorageClientID
        var priorityWord: UInt32
        public private(set) var arrival: UInt64
        var check: UInt64

        init(client: StorageClientID, priority: UInt8, arrival: UInt64) {
            self.client = client
            priorityWord = UInt32(priority)
            self.arrival = arrival
            check = Self.check(client: client.rawValue, priority: priorityWord, arrival: arrival)
        }

        static func check(client: UInt32, priority: UInt32, arrival: UInt64) -> UInt64 {
            let identity = UInt64(client) | UInt64(priority) << 32
            return ~(arrival ^ (identity << 23 | identity >> 41))
        }

        static var none: Entry { Entry(client: StorageClientID(rawValue: 0), priority: 0, arrival: 0) }

        public var priority: UInt8 { UInt8(truncatingIfNeeded: priorityWord) }

        public var isIntact: Bool {
            check == Self.check(client: client.rawValue, priority: priorityWord, arrival: arrival)
                && priorityWord <= UInt32(StorageLimits.lowestPriority) && arrival != 0
        }

        /// Whether this entry leaves the queue before `other`.
        func isMoreUrgent(than other: Entry) -> Bool {
            if priorityWord != other.priorityWord { return priorityWord < other.priorityWord }
            if arrival != other.arrival { return arrival < other.arrival }
            return client.rawValue < other.client.rawValue
        }
    }

    public static let capacity = 64
    /// Sorted from least to most urgent: entries[storedCount - 1] is the best.
    let entries: UnsafeMutableBufferPointer<Entry>
    var storedCount: Int
    /// The arrival number the next request gets.
    public private(set) var nextArrival: UInt64

    public init() {
        entries = UnsafeMutableBufferPointer<Entry>.allocate(capacity: Self.capacity)
        entries.initialize(repeating: .none)
        storedCount = 0
        nextArrival = 1
    }

    deinit { entries.deallocate() }

    /// The number of entries, clamped so a damaged count never indexes out of bounds.
    public var count: Int { min(max(storedCount, 0), Self.capacity) }
    public var isEmpty: Bool { count == 0 }

    /// Hands out the arrival number for a new request (to be stored in its SSR).
    public func takeArrival() -> UInt64 {
        let arrival = min(nextArrival, StorageClientState.arrivalLimit - 1)
        if nextArrival < StorageClientState.arrivalLimit { nextArrival += 1 }
        return arrival
    }

    /// Queues `client`'s request. A request re-inserted from an SSR passes the arrival
    /// number it was given originally.
    public func insert(_ client: StorageClientID, priority: UInt8, arrival: UInt64) throws(RequestQueueError) {
        guard priority <= StorageLimits.lowestPriority, arrival != 0, arrival < StorageClientState.arrivalLimit else {
            throw .badEntry
        }
        guard !contains(client) else { throw .duplicate }
        let live = count
        guard live < Self.capacity else { throw .full }
        let entry = Entry(client: client, priority: priority, arrival: arrival)
        var position = live
        while position > 0 && entries[position - 1].isMoreUrgent(than: entry) {
            entries[position] = entries[position - 1]
            position -= 1
        }
        entries[position] = entry
        storedCount = live + 1
        if arrival >= nextArrival { nextArrival = arrival + 1 }
    }

    /// Drops `client`'s request; false if it had none queued.
    @discardableResult
    public func remove(_ client: StorageClientID) -> Bool {
        guard let index = index(of: client) else { return false }
        let live = count
        for position in index..<(live - 1) { entries[position] = entries[position + 1] }
        entries[live - 1] = .none
        storedCount = live - 1
        return true
    }

    /// Takes the most urgent request.
    public func popBest() -> Entry? {
        let live = count
        guard live > 0 else { return nil }
        let best = entries[live - 1]
        entries[live - 1] = .none
        storedCount = live - 1
        return best
    }

    /// The entry of rank `rank` (0 = the most urgent), for a `stat` display.
    public func entry(rank: Int) -> Entry? {
        let live = count
        guard rank >= 0, rank < live else { return nil }
        return entries[live - 1 - rank]
    }

    public func contains(_ client: StorageClientID) -> Bool { index(of: client) != nil }

    func index(of client: StorageClientID) -> Int? {
        for index in 0..<count where entries[index].client == client { return index }
        return nil
    }

    /// Empties the queue and restarts the arrival numbers, before a rebuild.
    public func removeAll() {
        entries.update(repeating: .none)
        storedCount = 0
        nextArrival = 1
    }

    /// True if nothing in the queue has been damaged since it was written.
    public var isIntact: Bool {
        guard storedCount >= 0, storedCount <= Self.capacity else { return false }
        for index in 0..<storedCount {
            let entry = entries[index]
            guard entry.isIntact, entry.arrival < nextArrival else { return false }
            if index + 1 < storedCount { guard entries[index + 1].isMoreUrgent(than: entry) else { return false } }
            for other in (index + 1)..<storedCount where entries[other].client == entry.client { return false }
        }
        return true
    }

    /// For fault-injection tests: flips one bit of the storage of entry `index`
    /// (counted from the least urgent).
    public func flip(entry index: Int, bit: Int) {
        guard index >= 0, index < Self.capacity, bit >= 0, bit < MemoryLayout<Entry>.size * 8,
              let base = entries.baseAddress else { return }
        let bytes = UnsafeMutableRawPointer(base + index)
        bytes.storeBytes(of: bytes.load(fromByteOffset: bit / 8, as: UInt8.self) ^ UInt8(1 << (bit % 8)),
                         toByteOffset: bit / 8, as: UInt8.self)
    }
}

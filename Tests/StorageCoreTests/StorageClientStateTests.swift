import StorageCore
import Testing

@Suite struct StorageClientStateTests {
    let read = StorageRequest(kind: .read, sector: 10, count: 8, priority: 2)

    @Test func lifecycleKeepsTheInvariantAndCounts() {
        var state = StorageClientState.initial
        #expect(StorageClientState.isConsistent(state))
        #expect(state.outstanding == nil && state.requestPhase == .idle)

        state.accept(read, id: 5, arrival: 3)
        #expect(StorageClientState.isConsistent(state))
        #expect(state.outstanding == read && state.requestPhase == .queued && state.arrival == 3)
        state.complete(succeeded: true)
        #expect(StorageClientState.isConsistent(state))
        #expect(state.outstanding == nil && state.completed == 1 && state.sectorsRead == 8 && state.failed == 0)

        state.accept(StorageRequest(kind: .write, sector: 0, count: 3, priority: 7), id: 6, arrival: 4)
        state.complete(succeeded: true)
        state.accept(StorageRequest(kind: .write, sector: 0, count: 1, priority: 0), id: 7, arrival: 5)
        state.complete(succeeded: false)
        state.accept(StorageRequest(kind: .flush, sector: 0, count: 0, priority: 1), id: 8, arrival: 6)
        #expect(StorageClientState.isConsistent(state))
        state.complete(succeeded: true)
        #expect(state.completed == 4 && state.failed == 1 && state.sectorsWritten == 3 && state.sectorsRead == 8)
        #expect(StorageClientState.isConsistent(state))
    }

    @Test func damagedRecordsAreDetected() {
        var queued = StorageClientState.initial
        queued.accept(read, id: 9, arrival: 4)
        var idle = StorageClientState.initial
        idle.accept(read, id: 9, arrival: 4)
        idle.complete(succeeded: true)
        #expect(StorageClientState.isConsistent(queued) && StorageClientState.isConsistent(idle))

        let damages: [(String, StorageClientState, (inout StorageClientState) -> Void)] = [
            ("count 0", queued, { $0.count = 0 }),
            ("count 9", queued, { $0.count = 9 }),
            ("kind 0", queued, { $0.kind = 0 }),
            ("kind 4", queued, { $0.kind = 4 }),
            ("priority 8", queued, { $0.priority = 8 }),
            ("phase 2", queued, { $0.phase = 2 }),
            ("no request id", queued, { $0.requestID = 0 }),
            ("no arrival", queued, { $0.arrival = 0 }),
            ("sector overflow", queued, { $0.sector = UInt64.max - 2 }),
            ("flush with a count", queued, { $0.kind = StorageRequestKind.flush.rawValue }),
            ("idle with a request id", idle, { $0.requestID = 3 }),
            ("idle with a sector", idle, { $0.sector = 1 }),
            ("idle with a kind", idle, { $0.kind = 1 }),
            ("more failures than requests", idle, { $0.failed = 2 }),
            ("more sectors than requests carry", idle, { $0.sectorsRead = 9 }),
            ("sector counters overflow", idle, { $0.sectorsRead = .max; $0.sectorsWritten = 2 }),
        ]
        for (name, start, damage) in damages {
            var state = start
            damage(&state)
            #expect(!StorageClientState.isConsistent(state), "\(name)")
        }
    }

    /// Found by `make fuzz-host` (storage-state): a record the checker accepts, with
    /// its request counter at its largest value, came out of the next completion as
    /// one the checker rejects (`completed` wrapped to 0, below `failed`): the server
    /// restarted and the client lost its state. The counters now stop at the top.
    @Test func countersAtTheirLimitStayConsistent() {
        var state = StorageClientState.initial
        state.completed = .max
        state.failed = .max - 1
        state.sectorsRead = .max - 3
        state.sectorsWritten = 2
        state.accept(read, id: 1, arrival: 1)
        #expect(StorageClientState.isConsistent(state))
        state.complete(succeeded: false)
        #expect(StorageClientState.isConsistent(state))
        #expect(state.completed == .max && state.failed == .max)
        state.accept(read, id: 2, arrival: 2)
        state.complete(succeeded: true)
        #expect(StorageClientState.isConsistent(state))
        #expect(state.sectorsRead == .max)
    }

    /// Found by `make fuzz-host` (storage-state): a queued record with arrival number
    /// UInt64.max passed the checker; rebuilding the queue from it wrapped the queue's
    /// arrival counter to 0, the queue then failed its own integrity check, and the
    /// server would restart on every request until it was given up, for every client.
    @Test func anArrivalNumberNoServerHandsOutIsDamage() {
        var state = StorageClientState.initial
        state.accept(read, id: 1, arrival: StorageClientState.arrivalLimit - 1)
        #expect(StorageClientState.isConsistent(state))
        let queue = RequestQueue()
        #expect(throws: Never.self) {
            try queue.insert(StorageClientID(rawValue: 1), priority: 2, arrival: state.arrival)
        }
        #expect(queue.isIntact)
        for arrival in [StorageClientState.arrivalLimit, UInt64.max] {
            state.arrival = arrival
            #expect(!StorageClientState.isConsistent(state), "arrival \(arrival)")
        }
    }

    @Test func aRequestPastTheCapacityIsDetectedWhenTheCapacityIsGiven() {
        var state = StorageClientState.initial
        state.accept(read, id: 1, arrival: 1)
        #expect(StorageClientState.isConsistent(state, capacity: 18))
        #expect(!StorageClientState.isConsistent(state, capacity: 17))
        #expect(!StorageClientState.isConsistent(state, capacity: 5))
    }

    @Test func aDamagedKindReadsAsNoRequest() {
        var state = StorageClientState.initial
        state.accept(read, id: 1, arrival: 1)
        state.kind = 200
        #expect(state.outstanding == nil)
        state.phase = 77
        #expect(state.requestPhase == nil)
    }

    @Test func theLayoutIsFixed() {
        #expect(MemoryLayout<StorageClientState>.size == 64)
        #expect(MemoryLayout<StorageClientState>.offset(of: \.kind) == 24)
        #expect(MemoryLayout<StorageClientState>.offset(of: \.completed) == 32)
        #expect(MemoryLayout<StorageClientState>.offset(of: \.sectorsWritten) == 56)
    }
}

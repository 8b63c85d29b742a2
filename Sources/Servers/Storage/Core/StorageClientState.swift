// What the storage server keeps in each client's SSR: the client's one outstanding
// request (clients call synchronously, so there is at most one) and its counters.
//
// Why the request lives here and not only in the server's queue: the paper's storage
// server keeps "information about outstanding requests such as priority and requested
// blocks in client SSRs", and its global queue only as a cache of them. After a crash
// the restarted server walks the SSRs and re-inserts every outstanding request with
// its original arrival number, so the queue comes back in the same order and no
// client has to resubmit. Whether the old instance had already handed a request to the
// device is not recorded (the SSR is mapped only while its client's request is handled,
// not when the device is fed): the restart resets the device, which forgets everything,
// so every outstanding request goes to it again — a block read or write may safely be
// done twice.
//
// Fields are plain integers rather than enums: a damaged byte in an enum field would
// be undefined behaviour when read, while a damaged integer is simply caught by
// `isConsistent`, which the server runs on every SSR it loads.
//
//   offset  field            meaning
//   ------  ---------------  ------------------------------------------------
//   0       requestID        the outstanding request's id (0: none)
//   8       sector           its first sector (0 for a flush)
//   16      arrival          its arrival number (server-wide from 1, orders FIFO)
//   24      kind             StorageRequestKind raw value (0: none)
//   25      count            sectors (1...8; 0 for a flush)
//   26      priority         0 (most urgent) ... 7
//   27      phase            StorageRequestPhase raw value
//   28      reserved         0
//   32      completed        requests completed (ok or failed)
//   40      failed           of those, the ones that failed
//   48      sectorsRead
//   56      sectorsWritten

public enum StorageRequestPhase: UInt8, Sendable {
    case idle = 0
    /// Accepted, and not yet answered (queued or at the device).
    case queued = 1
}

public struct StorageClientState: BitwiseCopyable, Sendable {
    public var requestID: UInt64
    public var sector: UInt64
    public var arrival: UInt64
    public var kind: UInt8
    public var count: UInt8
    public var priority: UInt8
    public var phase: UInt8
    /// Always 0.
    public var reserved: UInt32
    public var completed: UInt64
    public var failed: UInt64
    public var sectorsRead: UInt64
    public var sectorsWritten: UInt64

    public static var initial: StorageClientState {
        StorageClientState(requestID: 0, sector: 0, arrival: 0, kind: 0, count: 0, priority: 0, phase: 0, reserved: 0,
                           completed: 0, failed: 0, sectorsRead: 0, sectorsWritten: 0)
    }

    /// The outstanding request, if any (nil also for a damaged record).
    public var outstanding: StorageRequest? {
        guard phase != StorageRequestPhase.idle.rawValue, let known = StorageRequestKind(rawValue: kind) else {
            return nil
        }
        return StorageRequest(kind: known, sector: sector, count: Int(count), priority: priority)
    }

    public var requestPhase: StorageRequestPhase? { StorageRequestPhase(rawValue: phase) }

    /// Records a newly accepted (decoded, validated) request as queued.
    public mutating func accept(_ request: StorageRequest, id: UInt64, arrival: UInt64) {
        requestID = id
        sector = request.sector
        self.arrival = arrival
        kind = request.kind.rawValue
        count = UInt8(truncatingIfNeeded: request.count)
        priority = request.priority
        phase = StorageRequestPhase.queued.rawValue
    }


    /// Ends the outstanding request and counts it. The counters stop at their largest
    /// value instead of wrapping: a wrapped `completed` would fall below `failed`, and
    /// a record the checker accepted must still be accepted after any request.
    public mutating func complete(succeeded: Bool) {
        completed = Self.saturatingSum(completed, 1)
        if succeeded {
            if kind == StorageRequestKind.read.rawValue { sectorsRead = Self.saturatingSum(sectorsRead, UInt64(count)) }
            if kind == StorageRequestKind.write.rawValue {
                sectorsWritten = Self.saturatingSum(sectorsWritten, UInt64(count))
            }
        } else {
            failed = Self.saturatingSum(failed, 1)
        }
        requestID = 0
        sector = 0
        arrival = 0
        kind = 0
        count = 0
        priority = 0
        phase = StorageRequestPhase.idle.rawValue
    }

    /// Arrival numbers count up from 1, one per request, so no server ever hands out
    /// one this large; a record holding one is damaged. It must not be believed: the
    /// rebuilt queue resumes counting after the largest number it saw, and at the top
    /// of UInt64 that counter would wrap and the queue fail its own check at every
    /// restart, taking the service away from every client instead of just this one.
    public static let arrivalLimit: UInt64 = 1 << 62

    static func saturatingSum(_ left: UInt64, _ right: UInt64) -> UInt64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        return overflow ? .max : sum
    }

    /// The invariants every committed state satisfies; a state that breaks them was
    /// damaged (or computed by a damaged server) and is not trusted. With `capacity`,
    /// the outstanding request must also lie on the device.
    public static func isConsistent(_ state: StorageClientState, capacity: UInt64 = .max) -> Bool {
        // Every request moves at most 8 sectors. The counters saturate (see `complete`),
        // so the sums are compared saturated too: the rule then holds after any request.
        guard state.reserved == 0, state.failed <= state.completed else { return false }
        let (product, overflow) = state.completed.multipliedReportingOverflow(
            by: UInt64(StorageLimits.maximumSectorsPerRequest))
        let maximumSectors = overflow ? UInt64.max : product
        guard saturatingSum(state.sectorsRead, state.sectorsWritten) <= maximumSectors else { return false }
        guard let phase = StorageRequestPhase(rawValue: state.phase) else { return false }
        if phase == .idle {
            return state.requestID == 0 && state.sector == 0 && state.arrival == 0 && state.kind == 0
                && state.count == 0 && state.priority == 0
        }
        guard state.requestID != 0, state.arrival != 0, state.arrival < arrivalLimit,
              state.priority <= StorageLimits.lowestPriority,
              let kind = StorageRequestKind(rawValue: state.kind) else { return false }
        if kind == .flush { return state.count == 0 && state.sector == 0 }
        let count = UInt64(state.count)
        return count >= 1 && count <= UInt64(StorageLimits.maximumSectorsPerRequest)
            && state.sector <= capacity && count <= capacity - state.sector
    }
}

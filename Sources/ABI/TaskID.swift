// Names for processes and endpoints.
//
// A TaskID names one incarnation of a task slot: the slot index in the low 16 bits
// and the slot's generation above it. Every time a slot is reused or its process is
// restarted the generation advances, so an ID held from before is recognised as
// stale and refused with `deadEndpoint` (Hubris calls this a "dead code").
//
//    31            16 15             0
//   +----------------+----------------+
//   |   generation   |   slot index   |
//   +----------------+----------------+
public struct TaskID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(index: Int, generation: UInt16) {
        rawValue = UInt32(truncatingIfNeeded: index & 0xFFFF) | UInt32(generation) << 16
    }

    public var index: Int { Int(rawValue & 0xFFFF) }
    public var generation: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) }

    /// The sender reported by `receive` for a notification rather than a message.
    public static let kernel = TaskID(rawValue: 0xFFFF_FFFF)

    /// How many task slots the kernel has: every slot index is below this. A server
    /// that keeps something per client slot needs this many entries.
    public static let slotCount = 320

    public var description: String { "\(index).\(generation)" }
}

/// The first syscall argument of `send`: the endpoint and the operation requested.
public struct EndpointCall: Sendable {
    public let endpoint: TaskID
    public let operation: UInt16

    public init(endpoint: TaskID, operation: UInt16) {
        self.endpoint = endpoint
        self.operation = operation
    }

    public init(rawValue: UInt) {
        endpoint = TaskID(rawValue: UInt32(truncatingIfNeeded: rawValue))
        operation = UInt16(truncatingIfNeeded: rawValue >> 32)
    }

    public var rawValue: UInt { UInt(endpoint.rawValue) | UInt(operation) << 32 }
}

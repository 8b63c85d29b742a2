// The timer service's wire protocol, shared by the client API (TimerAPI) and the
// server (TimerServer): timer ids, expirations, operations, reply codes, and how an
// expiration travels in a reply's two words. No system calls here, so the host
// tests can use it.
//
// Messages (operation, words -> code, words); all times in `System.clock()` ticks:
//   start   period, repeating (0/1)  -> timer id, first deadline
//   cancel  timer id                 -> -
//   wait    -                        -> deadline, sequence (low 48 bits) | timer id << 48

/// One of a client's timers (a slot number and a per-client generation, so a
/// cancelled timer's id does not name the timer that later reuses its slot).
public struct TimerID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public init(slot: Int, generation: UInt16) {
        rawValue = UInt16(truncatingIfNeeded: slot & 3) | generation << 2
    }

    public var slot: Int { Int(rawValue & 3) }
    public var generation: UInt16 { rawValue >> 2 }

    public var description: String { "\(rawValue)" }
}

/// One delivered expiration.
public struct Expiration: Sendable {
    public var timer: TimerID
    /// When it was due.
    public var deadline: UInt64
    /// When `wait` returned it (the client's clock, read as the reply arrived).
    public var delivered: UInt64
    /// Its number: the first expiration of a timer is 1, and each one after it one more.
    public var sequence: UInt64

    public init(timer: TimerID, deadline: UInt64, delivered: UInt64, sequence: UInt64) {
        self.timer = timer
        self.deadline = deadline
        self.delivered = delivered
        self.sequence = sequence
    }

    /// How late it arrived, in ticks.
    public var skew: UInt64 { delivered >= deadline ? delivered - deadline : 0 }
}

public enum TimerOperation: UInt16, Sendable {
    case start = 1
    case cancel = 2
    case wait = 3
}

/// The server's response codes.
public enum TimerReplyCode: UInt32, Sendable {
    case ok = 0
    case tooManyTimers = 1
    case noSuchTimer = 2
    case noTimers = 3
    case badPeriod = 4
    case badOperation = 5
}

public enum TimerLimits {
    public static let timersPerClient = 4
    /// The shortest period (10 us): shorter ones would only measure the server.
    public static let minimumPeriod: UInt64 = 100
}

/// How `wait`'s reply packs an expiration into two words.
public enum TimerWire {
    public static let sequenceBits = 48

    public static func expirationWords(timer: TimerID, deadline: UInt64, sequence: UInt64) -> (UInt, UInt) {
        (UInt(deadline), UInt(sequence & (1 << UInt64(sequenceBits) - 1)) | UInt(timer.rawValue) << UInt(sequenceBits))
    }

    public static func expiration(from words: (UInt, UInt), delivered: UInt64) -> Expiration {
        Expiration(timer: TimerID(rawValue: UInt16(truncatingIfNeeded: words.1 >> UInt(sequenceBits))),
                   deadline: UInt64(words.0), delivered: delivered,
                   sequence: UInt64(words.1) & (1 << UInt64(sequenceBits) - 1))
    }
}

// The timer service's client API: periodic and one-shot timers, and a blocking wait
// for the next expiration.
//
//   let timer = try Timer.start(period: 100_000, repeating: true)   // 10 ms
//   let expiration = try Timer.wait()      // blocks until the next deadline
//
// The server (`timer`) keeps every client's timers in that client's server state
// region, so if it crashes and restarts, nothing changes for the client: a call in
// flight is delivered again and answered once, and deadlines missed during the
// restart are delivered late, never dropped or doubled. A call made after a restart
// finds the old endpoint dead and looks the server up again.
//
// The messages are TimerCore's (Sources/Servers/Timer/Core/TimerProtocol.swift).

@_exported import TimerCore
import CurioUser

public enum TimerError: Error, Equatable, Sendable {
    /// The client already has `TimerLimits.timersPerClient` timers.
    case tooManyTimers
    case noSuchTimer
    /// `wait` with no timer running.
    case noTimers
    case badPeriod
    case badOperation
    /// The call itself failed: `serverStateLost` (the server lost this client's
    /// timers in a crash; they are gone, start again), `serverFailed`, ...
    case system(SyscallError)

    public var name: String {
        switch self {
        case .tooManyTimers: "too many timers"
        case .noSuchTimer: "no such timer"
        case .noTimers: "no timers"
        case .badPeriod: "bad period"
        case .badOperation: "bad operation"
        case .system(let error): String(error.name)
        }
    }
}

public enum Timer {
    nonisolated(unsafe) private static var server = ServerEndpoint("timer")

    /// Calls the server (following it across restarts: see `ServerEndpoint`).
    private static func call(_ operation: TimerOperation, _ words: (UInt, UInt) = (0, 0)) throws(TimerError) -> Reply {
        let reply: Reply
        do throws(SyscallError) {
            reply = try server.call(operation: operation.rawValue, words: words)
        } catch {
            throw .system(error)
        }
        switch TimerReplyCode(rawValue: UInt32(truncatingIfNeeded: reply.code)) {
        case .ok: return reply
        case .tooManyTimers: throw .tooManyTimers
        case .noSuchTimer: throw .noSuchTimer
        case .noTimers: throw .noTimers
        case .badPeriod: throw .badPeriod
        case .badOperation, nil: throw .badOperation
        }
    }

    /// Starts a timer that expires `period` ticks from now (and every `period` after
    /// that, if `repeating`).
    public static func start(period: UInt64, repeating: Bool) throws(TimerError) -> TimerID {
        try schedule(period: period, repeating: repeating).timer
    }

    /// `start`, also returning the first deadline the server set.
    public static func schedule(period: UInt64, repeating: Bool) throws(TimerError) -> (timer: TimerID, firstDeadline: UInt64) {
        let reply = try call(.start, (UInt(period), repeating ? 1 : 0))
        return (TimerID(rawValue: UInt16(truncatingIfNeeded: reply.words.0)), UInt64(reply.words.1))
    }

    public static func cancel(_ timer: TimerID) throws(TimerError) {
        _ = try call(.cancel, (UInt(timer.rawValue), 0))
    }

    /// Blocks until the next undelivered expiration of any of this client's timers
    /// (the earliest deadline first) and returns it. Expirations are never skipped: a
    /// periodic timer that fell behind returns each missed deadline, one per call.
    public static func wait() throws(TimerError) -> Expiration {
        let reply = try call(.wait)
        return TimerWire.expiration(from: reply.words, delivered: System.clock())
    }
}

// The faults a workload injects into a server while its clients run.
//
// `fstest stress` (into fs and storage) and `nettest stress` (into net) arm faults
// the same way, and the campaign tool drives both with the same words, so the words
// and the arming live here once:
//
//   every=TICKS     one injection every TICKS of the guest's clock (default 20 ms)
//   kind=FAULT      only this kind (a FaultKind name); by default every kind in turn
//   trigger=WORD    next (default), after (the ARGth request from then), random (a
//                   random tick below ARG), exec (a random tick of the server's own
//                   execution below ARG)
//   arg=N           the trigger's ARG; by default 1 request, TICKS, or 10 ms
//   aim=N           strike register or byte N (default: the kernel picks at random)
//   seed=S          the kernel's choice of moment and target follows from S, S+1, ...
//                   for the successive injections (default: the kernel's own sequence),
//                   so a campaign's record replays
//   persistent      a code fault outlives restarts: every later load has the same bug

import CurioABI

public struct FaultSchedule {
    public var every: UInt64 = 200_000
    var onlyKind: FaultKind?
    var trigger = FaultTrigger.nextRequest
    var argument: UInt?
    /// The kernel's word: 0 at random, N + 1 for register or byte N.
    var aim: UInt = 0
    var seed: UInt = 0
    var persistent = false

    public init() {}

    /// Takes one of the options above; false if `option` is none of them, or malformed.
    public mutating func take(_ option: String) -> Bool {
        if option == "persistent" {
            persistent = true
            return true
        }
        let parts = option.split(separator: "=").map(String.init)
        guard parts.count == 2 else { return false }
        switch (parts[0], UInt64(parts[1])) {
        case ("every", let value?): every = value
        case ("arg", let value?): argument = UInt(value)
        case ("aim", let value?): aim = UInt(value) + 1
        case ("seed", let value?): seed = UInt(value)
        case ("kind", nil):
            guard let kind = FaultKind.allCases.first(where: { String($0.name) == parts[1] }) else { return false }
            onlyKind = kind
        case ("trigger", nil):
            switch parts[1] {
            case "next": trigger = .nextRequest
            case "after": trigger = .afterRequests
            case "random": trigger = .randomTime
            case "exec": trigger = .execution
            default: return false
            }
        default: return false
        }
        return true
    }

    /// The kind of a server's `turn`th injection.
    public func kind(turn: Int) -> FaultKind {
        onlyKind ?? FaultKind.allCases[turn % FaultKind.allCases.count]
    }

    /// Arms the workload's `number`th injection, of `kind`, in `server`.
    public func arm(_ number: Int, kind: FaultKind, into server: String) throws(SyscallError) {
        let triggerArgument: UInt
        switch trigger {
        case .nextRequest, .afterRequests: triggerArgument = argument ?? 1
        case .randomTime: triggerArgument = argument ?? UInt(every)
        case .execution: triggerArgument = argument ?? UInt(System.ticksPerSecond / 100)
        }
        // 0 means "no seed"; a run of seeds that wraps skips it.
        let injectionSeed = seed == 0 ? 0 : (seed &+ UInt(number) == 0 ? 1 : seed &+ UInt(number))
        let name = Array(server.utf8)
        try name.withUnsafeBytes { bytes in
            Result { () throws(SyscallError) in
                try System.injectFault(into: bytes, kind: kind, persistent: persistent, trigger: trigger,
                                       argument: triggerArgument, aim: aim, seed: injectionSeed)
            }
        }.get()
    }
}

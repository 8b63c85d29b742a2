// SSRServer: the runtime that makes a restartable server with per-client state in
// server state regions a few lines of code.
//
// A service says what its per-client state is, how to check it, how to handle a
// request, and how to rebuild its caches from a client's state; the runtime does
// the rest:
//
//   start     recovery (a fresh start simply finds no SSRs): for every SSR the kernel
//             hands back (`ssrRecoverNext`), check the format (SSRFormat: checksums,
//             the kernel's last-answered id L) and the service's invariants, repair
//             or roll back where that loses nothing acknowledged, give the kernel the
//             verdict, rebuild the service's caches; then `recoveryComplete`, after
//             which the kernel re-delivers the requests that were in flight.
//   request   the client's SSR is in the window. If the committed request id is this
//             request's id, the request was applied before a crash: send the cached
//             reply (exactly once). Otherwise hand a copy of the state to the service;
//             if it answers now, commit (state, request id, reply), then reply in the
//             same trap as the next receive. If it defers, nothing is committed (its
//             changes to the state are dropped: the request may be delivered again);
//             it answers later with `complete(_:_:)`.
//   unbind    a client ended: the service cleans up, the reply frees the SSR.
//   damage    a committed record that fails its checksum or the service's invariants
//             in normal operation means a fault hit the region or the server:
//             `reportFailure`, so the kernel restarts us and recovery judges it with L.
//   checkpoint  a request that takes several steps with effects outside the SSR (disk
//             writes) may commit its progress part-way (`checkpoint`): the state is
//             committed under the id and reply of the previous request, so exactly-once
//             is untouched, and a re-delivery after a crash finds the progress.
//   replay    a re-delivered request that was committed before the crash gets its cached
//             code and words; a service whose replies carry payloads regenerates the
//             payload from the committed state, or asks for the request to be handled
//             again when doing so is idempotent (`replayPayload`).
//
// The same server, given no SSRs in the system description (`ssr` absent), keeps its
// clients' state in its own memory instead: nothing survives a crash then, which is
// exactly the baseline the benchmarks compare SSRs against (`mkimage --without-ssr`).
//
// The state is copied out of the window once, after its copy verified in full
// (SSRFormat's "Verifying on every load"), into the one `State` the server handles
// requests in (`stateInHand`); the service changes it in place, and the commit writes
// it back, only as much of it as can be non-zero (`significantBytes`). The window
// itself is only ever written by SSRFormat. The state is passed around by address,
// never by value: a by-value `State` of 2 KiB (the network server's) is a copy on
// every call, and those copies were most of what an SSR cost a request.
//
// Every step that needs the kernel goes through `SSRKernel` (SSRKernel.swift): the
// runtime is `SSRRuntime<Service, Kernel>`, servers use it on the real kernel as
// `SSRServer<Service>`, and Tests/SSRServerTests runs it on a fake one.

import CurioUser
import SSRFormat
import UserArch

/// What a service does with a request.
public enum SSROutcome: Sendable {
    /// Answer now: response code, two words, and `length` bytes of reply payload
    /// already written to the payload buffer. Only the code and the words are cached
    /// for a re-delivered request, so a payload must be derivable from the state.
    case reply(code: UInt32, words: (UInt, UInt), length: Int)
    /// Hold the request; answer it later with `SSRServer.complete(_:_:)`.
    case deferred

    public static func reply(_ code: UInt32 = 0, _ word0: UInt = 0, _ word1: UInt = 0) -> SSROutcome {
        .reply(code: code, words: (word0, word1), length: 0)
    }
}

/// A reply on its way from the service to the kernel, sealed as soon as the service
/// has produced it, checked again before it is committed, and checked by the kernel
/// at the `ecall` (`Syscall.reply`). A fault that changed its words in between (a
/// flipped register: a timer client got another timer's id) makes the server restart
/// instead of answering, or caching for a re-delivery, what the service never said;
/// the kernel then delivers the request again.
struct SealedReply {
    var client: TaskID
    var code: UInt32
    var words: (UInt, UInt)
    var length: Int
    var requestID: UInt64
    private(set) var seal: UInt64

    init(client: TaskID, code: UInt32, words: (UInt, UInt), length: Int, requestID: UInt64) {
        self.client = client
        self.code = code
        self.words = words
        self.length = length
        self.requestID = requestID
        seal = 0
        seal = expectedSeal
    }

    var isIntact: Bool { seal == expectedSeal }

    private var expectedSeal: UInt64 {
        IPC.replySeal(to: client, code: UInt(code), words: words, length: length, requestID: requestID)
    }
}

/// A request's payload: the bytes received, and the buffer a reply payload goes in
/// (the same memory).
public struct SSRPayload {
    public var request: UnsafeRawBufferPointer
    public var replyBuffer: UnsafeMutableRawBufferPointer
}

/// A server whose per-client state lives in SSRs.
public protocol SSRService {
    /// One client's state: plain bytes, checksummed and committed as a whole.
    associatedtype State: BitwiseCopyable

    /// Bump when `State`'s layout or meaning changes: older regions then fail to verify.
    static var layoutVersion: UInt32 { get }
    /// Live upgrade (paper §4): the state of the version of this server that this one
    /// replaces, and its layout version. A region that version wrote is read in its
    /// layout and migrated (`migrate`), never misread or judged lost for its layout.
    /// The default: no previous version.
    associatedtype PreviousState: BitwiseCopyable = State
    static var previousLayoutVersion: UInt32? { get }
    /// This version's state made from the previous version's; false if it cannot be
    /// (the region is then judged lost).
    static func migrate(_ previous: UnsafePointer<PreviousState>, to state: UnsafeMutablePointer<State>) -> Bool
    /// How many leading bytes of `state` can be non-zero: a commit stores only those
    /// (SSRFormat, "Storing only what can be non-zero"), so a state that is a table
    /// used from the front costs what its used slots cost. A wrong answer costs time,
    /// never data. The default: all of them.
    static func significantBytes(of state: UnsafePointer<State>) -> Int
    /// The state of a client the server has never served.
    static var initialState: State { get }
    /// The notification bits `receive` should deliver to `notified(bits:)`.
    static var notificationMask: UInt32 { get }
    /// The service's own invariants over one client's state (the checksum only proves
    /// the bytes are what was committed). Static: it must not depend on caches. The
    /// state is given in place, as `significantBytes`'s is: a `State` is often
    /// kilobytes, and a by-value parameter is a copy of them on every request.
    static func check(_ state: UnsafePointer<State>) -> Bool

    /// Recovery: `client`'s state was judged good; rebuild caches from it.
    mutating func rebuild(client: TaskID, state: State)
    /// Handles one request from `client`. Changes to `state` are committed when the
    /// outcome is a reply, discarded when it is `deferred`.
    mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                         state: inout State) -> SSROutcome
    /// `client` has ended: forget it. `state` is nil if its SSR did not verify.
    mutating func clientEnded(client: TaskID, state: State?)
    /// Notification bits arrived (interrupts, `setTimer`). Deferred requests are
    /// answered from here with `SSRServer.complete(_:_:)`.
    mutating func notified(bits: UInt)
    /// A request answered and committed before a crash came again; `reply` is its cached
    /// answer and `state` the state committed with it. Write the reply's payload into
    /// `payload.replyBuffer` and return its length, or return nil to handle the request
    /// again from `state` (only where that is idempotent). The default: no payload.
    mutating func replayPayload(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                state: State, reply: SSRReply) -> Int?
    /// Work `handle` or `clientEnded` asked for with `SSRServer.requestFollowUp()`, done
    /// once the current reply is sent and the window is free: typically answering
    /// deferred requests (`complete`) that the request just handled unblocked.
    mutating func followUp()
    /// The last look at a reply, once it is sealed and committed, before it is sent:
    /// `code` and `words` are the sealed ones, `old` the state before the request, `new`
    /// the state as committed, read back from the SSR; `request` is the request
    /// answered (nil: a held request answered by `complete`). A service that checks its
    /// transition before returning repeats the check here: a fault between its own
    /// check and the commit (a bit flipped in a reply word before the seal, or in the
    /// state on its way into the SSR) would otherwise be sent under a good seal and
    /// stay committed. Failing restarts the server; recovery rolls the commit back (the
    /// SSR was mapped) and the request comes again. Asked only when
    /// `checksCommittedReplies` (reading the commit back costs a checksum).
    static func confirms(reply code: UInt32, words: (UInt, UInt), to request: (operation: UInt16, words: (UInt, UInt))?,
                         from old: State, to new: State) -> Bool
    static var checksCommittedReplies: Bool { get }
    /// The most payload bytes a correct reply to this request carries: the protocol's
    /// own bound (a read's count, a status record's size), which a client sizes its
    /// reply buffer by. A longer reply is a length damaged before its seal: the server
    /// restarts and the request comes again, instead of the kernel ending the client's
    /// call because its buffer cannot take the reply. The default: the whole buffer.
    static func replyLimit(operation: UInt16, words: (UInt, UInt)) -> Int
}

extension SSRService {
    public static func significantBytes(of state: UnsafePointer<State>) -> Int { MemoryLayout<State>.size }
    public static var previousLayoutVersion: UInt32? { nil }
    public static func migrate(_ previous: UnsafePointer<PreviousState>, to state: UnsafeMutablePointer<State>) -> Bool {
        false
    }
    public mutating func replayPayload(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                       state: State, reply: SSRReply) -> Int? { 0 }
    public mutating func followUp() {}
    public static func confirms(reply code: UInt32, words: (UInt, UInt),
                                to request: (operation: UInt16, words: (UInt, UInt))?,
                                from old: State, to new: State) -> Bool { true }
    public static var checksCommittedReplies: Bool { false }
    public static func replyLimit(operation: UInt16, words: (UInt, UInt)) -> Int { Int.max }
}


/// A service whose state is a layout of what it computes with (SSRStateLayout, for
/// a server with versions): the layout says its version, the version it replaces, how
/// much of it a commit stores, and how to migrate the previous layout.
extension SSRService where State: SSRStateLayout, PreviousState == State.Previous {
    public static var layoutVersion: UInt32 { State.layoutVersion }
    public static var previousLayoutVersion: UInt32? { State.previousLayoutVersion }
    public static func significantBytes(of state: UnsafePointer<State>) -> Int { State.significantBytes(of: state) }
    public static func migrate(_ previous: UnsafePointer<PreviousState>, to state: UnsafeMutablePointer<State>) -> Bool {
        guard let migrated = State.migrating(previous.pointee) else { return false }
        state.pointee = migrated
        return true
    }
}

/// How the last recovery went (for a service that wants to report it).
public struct SSRRecoveryReport: Sendable {
    public var valid = 0
    public var repaired = 0
    public var rolledBack = 0
    public var lost = 0
    public var fresh = 0
}

/// True while a request's SSR is in the window and the service is handling it:
/// `complete` would map another client's SSR over it.
nonisolated(unsafe) private var windowInUse = false

/// The request being handled (its client, and the commit before it), for `checkpoint`.
nonisolated(unsafe) private var handling: (client: TaskID, requestID: UInt64, committedID: UInt64,
                                           committedReply: SSRReply)?
/// The client whose SSR a `complete` body works on, and where it is mapped.
nonisolated(unsafe) private var completing: (client: TaskID, window: UInt)?
/// The message being handled, as the kernel delivered it (`isRequestInHand`).
nonisolated(unsafe) private var handledMessage: Received?
/// Set by `requestFollowUp`: call the service's `followUp` after this reply.
nonisolated(unsafe) private var followUpRequested = false
/// The state of the request in hand (or of the `complete` body running), loaded from
/// the SSR, changed in place by the service and committed from here: one `State`,
/// allocated once, so that no request makes a value of the whole state on its way.
/// Its address is kept twice, the second time complemented, for the reason
/// `receiveMask` is compared: a flipped pointer that still lands in our memory would
/// have every request write a client's state over something else.
nonisolated(unsafe) private var stateInHandMemory: UnsafeMutableRawPointer?
nonisolated(unsafe) private var stateInHandComplement: UInt = 0

/// For a server configured without SSRs: the table of client states in its own
/// memory, entries of `LocalClientState<State>` indexed by task slot.
nonisolated(unsafe) private var localStates: UnsafeMutableRawPointer?
private let localSlots = TaskID.slotCount

struct LocalClientState<State> {
    var client: TaskID
    var state: State
}

/// The notification mask the loop receives with, re-read from memory for every
/// receive (each system call clobbers memory, so the compiler cannot keep it in a
/// register) and compared with the service's constant first: a fault that corrupts a
/// register holding a loop constant — the mask, or the base address the loop reads
/// this variable through (a campaign found that one: pointer-flip, seed
/// 5072679285713941) — would otherwise leave the server deaf to its notifications for
/// good: alive, not runnable, invisible to the watchdog, every held client waiting
/// for ever. Two copies reached through different registers disagree instead.
nonisolated(unsafe) private var receiveMask: UInt32 = 0
/// The loop's stack pointer, compared at the top of every iteration for the same
/// reason: a flipped `sp` that still points into the stack makes the loop read its own
/// variables (the reply in hand, the buffer) from the wrong place and serve nobody —
/// a campaign found that one too (pointer-flip, seed 1804511879223743).
nonisolated(unsafe) private var loopStackPointer: UInt = 0

/// The runtime, over the kernel it runs on (`SSRKernel`); servers name it
/// `SSRServer<Service>`, on the real kernel.
public typealias SSRServer<Service: SSRService> = SSRRuntime<Service, SystemSSRKernel>

public struct SSRRuntime<Service: SSRService, Kernel: SSRKernel> {
    public typealias State = Service.State
    typealias Format = SSRFormat<State, SSRMemory>
    typealias PreviousFormat = SSRFormat<Service.PreviousState, SSRMemory>

    public var service: Service
    public private(set) var recovery = SSRRecoveryReport()
    /// The message buffer's address; its size is the constant `maxMessageBytes`, never
    /// stored: a damaged stored size would make the kernel refuse every client's
    /// message as too large while the server, never receiving them, noticed nothing.
    let bufferBase: UnsafeMutableRawPointer
    var buffer: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: bufferBase, count: SyscallLimits.maxMessageBytes)
    }

    /// `regionBytes`: the smallest SSR the server is configured with (system.toml's
    /// `ssr`); the state's format must fit in it.
    public init(service: Service, regionBytes: Int = 4096) {
        precondition(Format.requiredBytes <= regionBytes, "the state does not fit in the SSR")
        self.service = service
        bufferBase = UnsafeMutableRawPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 16)
        let state = UnsafeMutablePointer<State>.allocate(capacity: 1)
        state.initialize(to: Service.initialState)
        stateInHandMemory = UnsafeMutableRawPointer(state)
        stateInHandComplement = ~UInt(bitPattern: state)
    }

    /// `Service.check` of a state held as a value (off the hot path).
    static func checks(_ state: State) -> Bool { withUnsafePointer(to: state) { Service.check($0) } }

    /// The one `State` requests are handled in (see `stateInHandMemory`).
    @inline(__always)
    static var stateInHand: UnsafeMutablePointer<State> {
        guard let memory = stateInHandMemory, UInt(bitPattern: memory) == ~stateInHandComplement else {
            Kernel.reportFailure()
        }
        return memory.assumingMemoryBound(to: State.self)
    }

    /// Loads the state `commit` holds into `state` (`stateInHand`), and checks it.
    static func load(_ state: UnsafeMutablePointer<State>, from format: Format, commit: SSRCommit) {
        format.loadState(of: commit, into: UnsafeMutableRawPointer(state))
        guard Service.check(state) else { Kernel.reportFailure() }
    }

    /// Commits `state` (`stateInHand`) as the answer to `requestID`.
    static func commit(_ state: UnsafeMutablePointer<State>, to format: Format, requestID: UInt64, reply: SealedReply) {
        format.commit(stateAt: UnsafeRawPointer(state), significantBytes: Service.significantBytes(of: state),
                      requestID: requestID,
                      reply: SSRReply(code: UInt64(reply.code), word0: UInt64(reply.words.0), word1: UInt64(reply.words.1)))
    }

    /// Whether client state lives in SSRs (false: in this server's memory).
    public static var usesRegions: Bool { localStates == nil }

    /// Switches to keeping client state in server memory (no SSRs configured).
    static func placeStatesInServerMemory() {
        let table = UnsafeMutablePointer<LocalClientState<State>>.allocate(capacity: localSlots)
        table.initialize(repeating: LocalClientState(client: TaskID(rawValue: 0), state: Service.initialState),
                         count: localSlots)
        localStates = UnsafeMutableRawPointer(table)
    }

    /// Without SSRs: `client`'s state (a client new to its slot
    /// starts from the initial state; the slot's previous owner has ended).
    static func localState(_ client: TaskID) -> UnsafeMutablePointer<LocalClientState<State>>? {
        guard let localStates, client.index < localSlots else { return nil }
        let entry = localStates.assumingMemoryBound(to: LocalClientState<State>.self) + client.index
        if entry.pointee.client != client {
            entry.pointee = LocalClientState(client: client, state: Service.initialState)
        }
        return entry
    }

    /// The kernel's id of the request being handled (0 without SSRs, or outside `handle`).
    public static var currentRequestID: UInt64 { handling?.requestID ?? 0 }

    /// Whether `operation` and `words` are what the kernel delivered for the request
    /// being handled (and that copy still matches the kernel's seal). A service calls
    /// it in its transition check: a request its own copy of which a fault changed (a
    /// flipped register turning a cancel into one of another timer, or the operation
    /// into a bad one) gets an answer that passes every check of the state, an error
    /// reply leaving it unchanged; the server restarts instead, and the request comes
    /// again.
    public static func isRequestInHand(operation: UInt16, words: (UInt, UInt)) -> Bool {
        guard let message = handledMessage, message.requestID == 0 || message.isIntact else { return false }
        return UInt16(truncatingIfNeeded: message.operation) == operation && message.words == words
    }

    /// The state last committed for the request in hand (in `handle`, or in the body of
    /// `complete`), read again from the SSR and verified: where a transition check must
    /// start from. The copy the service was handed lives in the server's memory, where a
    /// wild write can change it before the service copies it for its check; the check
    /// would then find a damaged start and a result consistent with it (a timer's
    /// deadline moved, delivered out of order). nil if the SSR no longer verifies.
    public static func committedState() -> State? {
        guard let owner = handling?.client ?? completing?.client else { return nil }
        if localStates != nil { return localState(owner)?.pointee.state }
        let window = completing.map { UnsafeMutableRawPointer(bitPattern: $0.window)! }
            ?? Kernel.window
        let format = format(at: window, owner: owner)
        switch format.loadCommit() {
        case .unformatted: return Service.initialState
        case .committed(let commit):
            let state = format.state(of: commit)
            return Self.checks(state) ? state : nil
        case .damaged: return previousState(format)
        }
    }

    /// The state of a region the previous version wrote, migrated (nil: not such a region).
    static func previousState(_ format: Format) -> State? {
        let migrated = UnsafeMutablePointer<State>.allocate(capacity: 1)
        defer { migrated.deallocate() }
        guard let previous = previousRegion(format, migratingInto: migrated) else { return nil }
        previous.release()
        return migrated.pointee
    }

    /// Asks for the service's `followUp` once the current reply has gone out.
    public static func requestFollowUp() { followUpRequested = true }

    /// Commits `state` for the request being handled as progress, not as its answer:
    /// under the previous request's id and reply, so a re-delivery after a crash
    /// handles the request again from this state (see the essay). Only from `handle`.
    public static func checkpoint(_ state: State) {
        guard let current = handling else { Kernel.reportFailure() }
        // Without SSRs the progress goes to the client's entry in server memory, where a
        // later `complete` finds it (and a restart loses it, as the baseline should).
        guard localStates == nil else {
            localState(current.client)?.pointee.state = state
            return
        }
        let significant = withUnsafePointer(to: state) { Service.significantBytes(of: $0) }
        windowFormat(owner: current.client).commit(state: state, significantBytes: significant,
                                                   requestID: current.committedID,
                                                   reply: current.committedReply)
    }

    static func format(at window: UnsafeMutableRawPointer, owner: TaskID) -> Format {
        Format(storage: SSRMemory(base: window, count: Format.requiredBytes), layoutVersion: Service.layoutVersion,
               owner: owner.rawValue)
    }

    /// The SSR of `owner` in the window, as the kernel mapped it for a delivered message.
    static func windowFormat(owner: TaskID) -> Format {
        format(at: Kernel.window, owner: owner)
    }

    // MARK: Regions of the previous version (live upgrade)

    /// A region the version this server replaced wrote, read in that version's layout:
    /// its verified commit, and its state in the previous layout (for `migrate`).
    struct PreviousRegion {
        let format: PreviousFormat
        let commit: SSRCommit
        let state: UnsafeMutablePointer<Service.PreviousState>

        /// Rewrites the region in this version's layout, holding `migrated` (SSRFormat,
        /// "Migrating a region"). Only for a commit the client has its answer to: the
        /// runtime migrates before it applies a request, never to replay one.
        func migrate(into region: Format, migrated: UnsafeMutablePointer<State>) {
            region.migrate(from: format, commit: commit, previousState: state, state: migrated,
                           significantBytes: Service.significantBytes(of: migrated))
        }

        func release() { state.deallocate() }
    }

    /// The region at `format` read as the previous version wrote it, if the service
    /// has one, the header names its layout, the commit verifies in it, and the state
    /// migrates into `state` and passes `check`. Writes nothing to the region. The
    /// caller `release`s the result.
    static func previousRegion(_ format: Format, migratingInto state: UnsafeMutablePointer<State>) -> PreviousRegion? {
        guard let version = Service.previousLayoutVersion else { return nil }
        let previous = PreviousFormat(storage: format.storage, layoutVersion: version, owner: format.owner)
        guard previous.isWrittenInThisLayout, case .committed(let commit) = previous.loadCommit() else { return nil }
        let old = UnsafeMutablePointer<Service.PreviousState>.allocate(capacity: 1)
        previous.loadState(of: commit, into: UnsafeMutableRawPointer(old))
        guard Service.migrate(old, to: state), Service.check(state) else {
            old.deallocate()
            return nil
        }
        return PreviousRegion(format: previous, commit: commit, state: old)
    }

    /// `format.loadCommit()` for a request about to be handled (id `requestID`), with its
    /// state loaded into `state`; a region of the previous version is migrated to this
    /// layout first, unless `requestID` is the request its commit answered (a replay,
    /// of a commit that may not be acknowledged: answered from the previous layout,
    /// its state migrated in memory only). `.damaged` loads nothing.
    static func loadForRequest(_ format: Format, into state: UnsafeMutablePointer<State>, requestID: UInt64)
        -> SSRCommitLoad {
        let loaded = format.loadCommit()
        switch loaded {
        case .unformatted:
            state.pointee = Service.initialState
        case .committed(let commit):
            load(state, from: format, commit: commit)
        case .damaged:
            guard let previous = previousRegion(format, migratingInto: state) else { return loaded }
            defer { previous.release() }
            if previous.commit.requestID == requestID { return .committed(previous.commit) }
            previous.migrate(into: format, migrated: state)
            guard case .committed(let commit) = format.loadCommit() else { Kernel.reportFailure() }
            return .committed(commit)
        }
        return loaded
    }

    /// A replay of a region still in the previous layout that must be handled again
    /// (`replayPayload` returned nil): it is migrated first, so that the commit lands in
    /// this layout.
    static func migrateForReplay(_ format: Format, state: UnsafeMutablePointer<State>) {
        guard !format.isWrittenInThisLayout else { return }
        let migrated = UnsafeMutablePointer<State>.allocate(capacity: 1)
        defer { migrated.deallocate() }
        guard let previous = previousRegion(format, migratingInto: migrated) else { Kernel.reportFailure() }
        defer { previous.release() }
        previous.migrate(into: format, migrated: migrated)
    }

    // MARK: Recovery

    /// Walks every SSR bound to this server, judges, repairs and rebuilds; then lets the
    /// kernel re-deliver the requests in flight. On a first start there are none.
    public mutating func recover() {
        var cursor = 0
        var verdictOnCurrent: SSRVerdict?
        while true {
            let found: System.RecoveredSSR?
            do throws(SyscallError) {
                found = try Kernel.recoverNext(cursor: cursor, verdictOnCurrent: verdictOnCurrent)
            } catch {
                // Refused at the very start: this server has no SSRs to recover.
                if cursor == 0 && verdictOnCurrent == nil && error == .badArgument { Self.placeStatesInServerMemory() }
                break
            }
            guard let found else { break }
            cursor = found.nextCursor
            let format = Self.format(at: found.window, owner: found.client)
            let (verdict, state) = judge(format, kernelState: found.state, lastCompleted: found.lastCompletedRequest)
            // Given with the call that fetches the next region; the state was copied.
            verdictOnCurrent = verdict
            if let state { service.rebuild(client: found.client, state: state) }
        }
        try? Kernel.recoveryComplete()
    }

    /// The verdict on one region, after repairing it if that is safe; and the state
    /// to rebuild from (nil for a fresh or lost client). A region the previous version
    /// wrote is judged in its layout and repaired there if need be: it stays in that
    /// layout until a request migrates it, so that an upgrade rolled back during this
    /// recovery leaves the old version every region as it can read it. A region that
    /// holds a commit of a layout this version does not know at all (an upgrade back to
    /// an older version) cannot be judged here, and is not judged lost for its layout:
    /// the server fails, and the kernel rolls back the upgrade that started it (or
    /// after a second failure on it, judges it lost itself).
    mutating func judge(_ format: Format, kernelState: SSRState, lastCompleted: UInt64) -> (SSRVerdict, State?) {
        if let version = Service.previousLayoutVersion {
            let previous = PreviousFormat(storage: format.storage, layoutVersion: version, owner: format.owner)
            if previous.isWrittenInThisLayout {
                return judge(previous, kernelState: kernelState, lastCompleted: lastCompleted) { old in
                    withUnsafePointer(to: old) { old in
                        var migrated = Service.initialState
                        return Service.migrate(old, to: &migrated) && Self.checks(migrated) ? migrated : nil
                    }
                }
            }
        }
        // Asked before judging: with nothing acknowledged (L = 0) the judgement would
        // clear the region as damage.
        if format.holdsCommitInAnotherLayout { Kernel.reportFailure() }
        return judge(format, kernelState: kernelState, lastCompleted: lastCompleted) { Self.checks($0) ? $0 : nil }
    }

    /// `judge` of a region read in the layout of `Stored`, whose states `usable` turns
    /// into this version's (nil: not usable).
    mutating func judge<Stored: BitwiseCopyable>(_ format: SSRFormat<Stored, SSRMemory>, kernelState: SSRState,
                                                 lastCompleted: UInt64,
                                                 usable: (Stored) -> State?) -> (SSRVerdict, State?) {
        func restore(_ point: SSRRestorePoint<Stored>) -> State? {
            switch point {
            case .fresh: return Service.initialState
            case .record(let record): return usable(record.state)
            }
        }
        switch format.check(lastCompleted: lastCompleted) {
        case .unformatted:
            recovery.fresh += 1
            return (.valid, nil)
        case .valid(let record):
            // Work a failing server committed for an unanswered request is redone by
            // us when we can get back to the state before it: always for a suspect
            // region, and whenever the commit breaks the service's invariants.
            let state = usable(record.state)
            if kernelState == .suspect || state == nil, let point = format.rollbackPoint(lastCompleted: lastCompleted),
               let restored = restore(point) {
                format.repair(to: point)
                recovery.rolledBack += 1
                return (.repaired, restored)
            }
            if let state {
                recovery.valid += 1
                return (.valid, state)
            }
            recovery.lost += 1
            return (.lost, nil)
        case .repairable(let point, _):
            guard let state = restore(point) else {
                recovery.lost += 1
                return (.lost, nil)
            }
            format.repair(to: point)
            recovery.repaired += 1
            return (.repaired, state)
        case .corrupt:
            recovery.lost += 1
            return (.lost, nil)
        }
    }

    // MARK: Serving

    /// Recovers, then serves forever.
    public mutating func run() -> Never {
        receiveMask = Service.notificationMask
        recover()
        var pending: SealedReply?
        loopStackPointer = UInt(curio_stack_pointer())
        while true {
            guard receiveMask == Service.notificationMask, UInt(curio_stack_pointer()) == loopStackPointer else {
                Kernel.reportFailure()
            }
            let message: Received
            do throws(SyscallError) {
                if let reply = pending {
                    guard reply.isIntact else { Kernel.reportFailure() }
                    message = try Kernel.replyAndReceive(to: reply.client, code: reply.code, words: reply.words,
                                                         replyLength: reply.length, buffer: buffer,
                                                         notificationMask: receiveMask, seal: reply.seal)
                } else {
                    message = try Kernel.receive(into: buffer, notificationMask: receiveMask)
                }
            } catch {
                // The kernel drops a reply to a client that ended, and ends the call of a
                // client whose buffer cannot take its reply, so a refused step means our
                // own state is wrong: a reply to someone not waiting for us (the real
                // caller would wait for ever), or a damaged buffer. Restart now rather than
                // spin until the watchdog notices; the kernel re-delivers what is in flight.
                Kernel.reportFailure()
            }
            pending = nil
            if message.isNotification {
                service.notified(bits: message.operation)
            } else if message.operation == SSRMessage.unbindOperation && message.requestID == 0 && Self.usesRegions {
                unbind(message.sender)
                pending = SealedReply(client: message.sender, code: 0, words: (0, 0), length: 0, requestID: 0)
            } else {
                pending = serve(message)
            }
            if followUpRequested {
                followUpRequested = false
                if let reply = pending {
                    guard reply.isIntact else { Kernel.reportFailure() }
                    try? Kernel.reply(to: reply.client, code: reply.code, words: reply.words,
                                      payload: UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length]), seal: reply.seal)
                    pending = nil
                }
                service.followUp()
            }
        }
    }

    mutating func unbind(_ client: TaskID) {
        let state: State?
        let format = Self.windowFormat(owner: client)
        switch format.loadCommit() {
        case .committed(let commit):
            let committed = format.state(of: commit)
            state = Self.checks(committed) ? committed : nil
        case .unformatted: state = Service.initialState
        case .damaged: state = Self.previousState(format)
        }
        service.clientEnded(client: client, state: state)
    }

    /// Handles one request; returns the reply to send, or nil if it is deferred.
    mutating func serve(_ message: Received) -> SealedReply? {
        if localStates != nil { return serveFromServerMemory(message) }
        // Every sender of an SSR server is bound, so every request has an id; only
        // notifications and unbind messages have none. A request without one means
        // our own decoding is damaged (a corrupted register keeps misreading every
        // message, e.g. notifications as requests, leaving held clients waiting for
        // ever without a crash): restart. The same for a request whose registers no
        // longer match the kernel's seal: the client sent something else.
        guard message.requestID != 0, message.isIntact else { Kernel.reportFailure() }
        // A region that does not verify for this sender (damage, or a sender that is not
        // who really called: replying to it would leave the real caller waiting for
        // ever) means a fault got here first: restart, and recovery sorts it out.
        let format = Self.windowFormat(owner: message.sender)
        let state = Self.stateInHand
        var committed = (id: UInt64(0), reply: SSRReply())
        let payload = SSRPayload(request: UnsafeRawBufferPointer(rebasing: buffer[0..<min(message.length, buffer.count)]),
                                 replyBuffer: buffer)
        // Verified in full; the state copied out once into the state in hand, and checked.
        switch Self.loadForRequest(format, into: state, requestID: message.requestID) {
        case .unformatted:
            break
        case .committed(let commit):
            committed = (commit.requestID, commit.reply)
            if commit.requestID == message.requestID {
                // Applied and committed before a crash; only the reply was lost.
                windowInUse = true
                let length = service.replayPayload(operation: UInt16(truncatingIfNeeded: message.operation),
                                                   words: message.words, payload: payload, client: message.sender,
                                                   state: state.pointee, reply: commit.reply)
                windowInUse = false
                if let length {
                    guard length <= Self.replyLimit(of: message) else { Kernel.reportFailure() }
                    return SealedReply(client: message.sender, code: UInt32(truncatingIfNeeded: commit.reply.code),
                                       words: (UInt(commit.reply.word0), UInt(commit.reply.word1)),
                                       length: min(max(length, 0), buffer.count), requestID: message.requestID)
                }
                Self.migrateForReplay(format, state: state)
            }
        case .damaged:
            Kernel.reportFailure()
        }
        handling = (message.sender, message.requestID, committed.id, committed.reply)
        handledMessage = message
        windowInUse = true
        // A copy of the whole state: made only for a service that reads it back.
        let old = Service.checksCommittedReplies ? state.pointee : nil
        let outcome = service.handle(operation: UInt16(truncatingIfNeeded: message.operation), words: message.words,
                                     payload: payload, client: message.sender, state: &state.pointee)
        windowInUse = false
        handling = nil
        handledMessage = nil
        switch outcome {
        case .reply(let code, let words, let length):
            let reply = SealedReply(client: message.sender, code: code, words: words,
                                    length: min(max(length, 0), buffer.count), requestID: message.requestID)
            guard reply.isIntact, reply.length <= Self.replyLimit(of: message) else { Kernel.reportFailure() }
            Self.commit(state, to: format, requestID: message.requestID, reply: reply)
            Self.confirmCommit(format, reply: reply, to: (UInt16(truncatingIfNeeded: message.operation), message.words),
                               from: old)
            return reply
        case .deferred:
            return nil
        }
    }

    private static func replyLimit(of message: Received) -> Int {
        Service.replyLimit(operation: UInt16(truncatingIfNeeded: message.operation), words: message.words)
    }

    /// `serve` for a server that keeps client state in its own memory.
    mutating func serveFromServerMemory(_ message: Received)
        -> SealedReply? {
        guard let entry = Self.localState(message.sender) else { Kernel.reportFailure() }
        var state = entry.pointee.state
        let payload = SSRPayload(request: UnsafeRawBufferPointer(rebasing: buffer[0..<min(message.length, buffer.count)]),
                                 replyBuffer: buffer)
        // No request ids without SSRs; `handling` names the client for `checkpoint`.
        handling = (message.sender, 0, 0, SSRReply())
        handledMessage = message
        let outcome = service.handle(operation: UInt16(truncatingIfNeeded: message.operation), words: message.words,
                                     payload: payload, client: message.sender, state: &state)
        handling = nil
        handledMessage = nil
        switch outcome {
        case .reply(let code, let words, let length):
            entry.pointee.state = state
            return SealedReply(client: message.sender, code: code, words: words,
                               length: min(max(length, 0), buffer.count), requestID: 0)
        case .deferred:
            return nil
        }
    }

    /// Answers a deferred request of `client`: maps its SSR (`ssrOpen`), lets `body`
    /// update the state and decide, commits (state, the held request's id, reply) and
    /// replies. `body` returning `.deferred` keeps holding the request (its changes
    /// are dropped). Returns true if the client got its reply. Throws if the client is
    /// not waiting for us (it ended). Call it from `notified(bits:)`, not from `handle`.
    /// A reply payload the body reports (`.reply(code:words:length:)`) is sent from
    /// `payload[0..<length]`.
    public static func complete(_ client: TaskID, payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                                _ body: (inout State) -> SSROutcome) throws(SyscallError) -> Bool {
        // Called from `handle` (or the flag is damaged): the window is someone else's;
        // from another `complete`'s body: so is the state in hand.
        guard !windowInUse, completing == nil else { Kernel.reportFailure() }
        if localStates != nil {
            guard let entry = localState(client) else { throw .badArgument }
            var state = entry.pointee.state
            completing = (client, 0)
            let outcome = body(&state)
            completing = nil
            switch outcome {
            case .reply(let code, let words, let length):
                do throws(SyscallError) {
                    try Kernel.reply(to: client, code: code, words: words,
                                     payload: UnsafeRawBufferPointer(rebasing: payload[0..<min(max(length, 0), payload.count)]),
                                     seal: 0)
                } catch .replyUndeliverable {
                    // The client's buffer could not take the reply; its call ended with that error.
                }
                entry.pointee.state = state
                return true
            case .deferred:
                return false
            }
        }
        let mapping = try Kernel.open(client)
        let format = format(at: mapping.window, owner: client)
        let state = stateInHand
        switch loadForRequest(format, into: state, requestID: mapping.requestID) {
        case .unformatted:
            break
        case .committed(let commit):
            if commit.requestID == mapping.requestID {
                let cached = SealedReply(client: client, code: UInt32(truncatingIfNeeded: commit.reply.code),
                                         words: (UInt(commit.reply.word0), UInt(commit.reply.word1)), length: 0,
                                         requestID: mapping.requestID)
                try sealedReply(cached, payload: UnsafeRawBufferPointer(start: nil, count: 0))
                return true
            }
        case .damaged:
            Kernel.reportFailure()
        }
        completing = (client, UInt(bitPattern: mapping.window))
        // A copy of the whole state: made only for a service that reads it back.
        let old = Service.checksCommittedReplies ? state.pointee : nil
        let outcome = body(&state.pointee)
        completing = nil
        switch outcome {
        case .reply(let code, let words, let length):
            let reply = SealedReply(client: client, code: code, words: words,
                                    length: min(max(length, 0), payload.count), requestID: mapping.requestID)
            guard reply.isIntact else { Kernel.reportFailure() }
            commit(state, to: format, requestID: mapping.requestID, reply: reply)
            confirmCommit(format, reply: reply, to: nil, from: old)
            try sealedReply(reply, payload: payload)
            return true
        case .deferred:
            return false
        }
    }

    /// `SSRService.confirms` over the commit just made, read back from the SSR.
    private static func confirmCommit(_ format: Format, reply: SealedReply,
                                      to request: (operation: UInt16, words: (UInt, UInt))?, from old: Service.State?) {
        guard Service.checksCommittedReplies else { return }
        guard let old else { Kernel.reportFailure() }
        guard case .committed(let commit) = format.loadCommit(), commit.requestID == reply.requestID,
              Service.confirms(reply: reply.code, words: reply.words, to: request, from: old,
                               to: format.state(of: commit)) else { Kernel.reportFailure() }
    }

    /// Sends a sealed reply outside the server's loop; a reply the kernel finds broken
    /// restarts the server (the request comes again), any other refusal is the caller's.
    private static func sealedReply(_ reply: SealedReply, payload: UnsafeRawBufferPointer) throws(SyscallError) {
        guard reply.isIntact else { Kernel.reportFailure() }
        do throws(SyscallError) {
            try Kernel.reply(to: reply.client, code: reply.code, words: reply.words,
                             payload: UnsafeRawBufferPointer(rebasing: payload[0..<reply.length]), seal: reply.seal)
        } catch .replySealBroken {
            Kernel.reportFailure()
        } catch .replyUndeliverable {
            // The client's buffer could not take the reply; its call ended with that error.
        }
    }
}

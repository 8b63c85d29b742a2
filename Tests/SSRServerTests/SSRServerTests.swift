// The SSR runtime on the host, on a fake kernel (`FakeKernel`): the fake maps each
// client's region at the window when it delivers that client's request, records
// replies, and hands the regions to a restarted server with the kernel's L (the last
// request it saw answered). A crash is a server dropped between two steps and a new
// one started on the same regions, as the kernel restarts a server from its image.
// The service is a ledger: a table of values used from the front, so its regions
// store only the used entries (`significantBytes`).

import CurioUser
import SSRFormat
@testable import SSRServer
import Testing

/// One client's ledger: the entries in use, then zeros.
struct Ledger: BitwiseCopyable {
    var count: UInt64
    var entries: InlineArray<16, UInt64>

    static var empty: Ledger { Ledger(count: 0, entries: InlineArray(repeating: 0)) }

    var values: [UInt64] { (0..<Int(count)).map { entries[$0] } }
    var sum: UInt64 { values.reduce(0, &+) }
}

enum LedgerOperation {
    /// words.0: the value to append. Reply: (count, sum).
    static let append: UInt16 = 1
    /// Held until the service is notified; then answered with the count.
    static let wait: UInt16 = 2
}

/// What the service saw, for the tests to compare with what was committed.
nonisolated(unsafe) var applied: [(client: TaskID, value: UInt64)] = []
nonisolated(unsafe) var waiting: [TaskID] = []
nonisolated(unsafe) var ended: [(client: TaskID, count: UInt64?)] = []
nonisolated(unsafe) var rebuilt: [(client: TaskID, count: UInt64)] = []

struct LedgerService: SSRService {
    typealias State = Ledger
    static let layoutVersion: UInt32 = 1
    static var initialState: Ledger { .empty }
    static var notificationMask: UInt32 { 1 }

    static func check(_ state: UnsafePointer<Ledger>) -> Bool {
        let count = Int(state.pointee.count)
        guard count <= 16 else { return false }
        return (count..<16).allSatisfy { state.pointee.entries[$0] == 0 }
    }

    static func significantBytes(of state: UnsafePointer<Ledger>) -> Int { 8 + 8 * Int(state.pointee.count) }

    mutating func rebuild(client: TaskID, state: Ledger) { rebuilt.append((client, state.count)) }

    mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                         state: inout Ledger) -> SSROutcome {
        switch operation {
        case LedgerOperation.append:
            guard state.count < 16 else { return .reply(1) }
            state.entries[Int(state.count)] = UInt64(words.0)
            state.count += 1
            applied.append((client, UInt64(words.0)))
            return .reply(0, UInt(state.count), UInt(state.sum))
        case LedgerOperation.wait:
            waiting.append(client)
            return .deferred
        default:
            return .reply(2)
        }
    }

    mutating func clientEnded(client: TaskID, state: Ledger?) { ended.append((client, state?.count)) }

    mutating func notified(bits: UInt) {}
}

typealias LedgerServer = SSRRuntime<LedgerService, FakeKernel>

/// The kernel's side of SSRs, as far as the runtime sees it.
enum FakeKernel: SSRKernel {
    struct Region {
        let memory: UnsafeMutableRawBufferPointer
        /// L: the client's last request whose reply the kernel delivered.
        var lastCompleted: UInt64 = 0
        /// The request the server holds (deferred), if any.
        var held: UInt64 = 0
        var state: SSRState = .valid
    }

    nonisolated(unsafe) static var regions: [UInt32: Region] = [:]
    nonisolated(unsafe) static var mapped: UInt32 = 0
    nonisolated(unsafe) static var replies: [(client: TaskID, code: UInt32, words: (UInt, UInt))] = []
    nonisolated(unsafe) static var verdicts: [(client: UInt32, verdict: SSRVerdict)] = []
    nonisolated(unsafe) static var recovering: [UInt32] = []

    static func reset() {
        for region in regions.values { region.memory.deallocate() }
        regions = [:]
        mapped = 0
        replies = []
        verdicts = []
        applied = []
        waiting = []
        ended = []
        rebuilt = []
    }

    static func bind(_ client: TaskID) {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        regions[client.rawValue] = Region(memory: memory)
    }

    static func region(of client: TaskID) -> SSRFormat<Ledger, SSRMemory> {
        SSRFormat(storage: SSRMemory(regions[client.rawValue]!.memory), layoutVersion: LedgerService.layoutVersion,
                  owner: client.rawValue)
    }

    static var window: UnsafeMutableRawPointer { regions[mapped]!.memory.baseAddress! }

    static func receive(into buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32)
        throws(SyscallError) -> Received { throw .badArgument }

    static func replyAndReceive(to client: TaskID, code: UInt32, words: (UInt, UInt), replyLength: Int,
                                buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32, seal: UInt64)
        throws(SyscallError) -> Received { throw .badArgument }

    /// A reply from `complete`: the kernel checks its seal against the held request
    /// and delivers it.
    static func reply(to client: TaskID, code: UInt32, words: (UInt, UInt), payload: UnsafeRawBufferPointer,
                      seal: UInt64) throws(SyscallError) {
        guard let held = regions[client.rawValue]?.held, held != 0 else { throw .badArgument }
        guard seal == IPC.replySeal(to: client, code: UInt(code), words: words, length: payload.count,
                                    requestID: held) else { throw .replySealBroken }
        regions[client.rawValue]!.held = 0
        regions[client.rawValue]!.lastCompleted = held
        replies.append((client, code, words))
    }

    static func open(_ client: TaskID) throws(SyscallError) -> System.SSRMapping {
        guard let region = regions[client.rawValue], region.held != 0 else { throw .badArgument }
        return System.SSRMapping(address: UInt(bitPattern: region.memory.baseAddress), size: region.memory.count,
                                 requestID: region.held)
    }

    static func recoverNext(cursor: Int, verdictOnCurrent: SSRVerdict?) throws(SyscallError) -> System.RecoveredSSR? {
        if cursor == 0 { recovering = regions.keys.sorted() }
        if let verdictOnCurrent { verdicts.append((recovering[cursor - 1], verdictOnCurrent)) }
        guard cursor < recovering.count else { return nil }
        let client = recovering[cursor]
        let region = regions[client]!
        return System.RecoveredSSR(client: TaskID(rawValue: client), state: region.state, nextCursor: cursor + 1,
                                   lastCompletedRequest: region.lastCompleted,
                                   address: UInt(bitPattern: region.memory.baseAddress))
    }

    static func recoveryComplete() throws(SyscallError) {}

    static func reportFailure() -> Never { fatalError("the runtime reported a failure") }
}

/// A server on the fake kernel, and the requests its clients send.
struct Harness {
    var server: LedgerServer
    var nextRequest: [UInt32: UInt64] = [:]

    init(clients: [TaskID]) {
        FakeKernel.reset()
        for client in clients { FakeKernel.bind(client) }
        server = LedgerServer(service: LedgerService())
        server.recover()
        FakeKernel.verdicts = []
    }

    /// The next request of `client` (ids count up from 1 per client).
    mutating func request(from client: TaskID, _ operation: UInt16, _ value: UInt = 0) -> Received {
        let id = (nextRequest[client.rawValue] ?? 0) + 1
        nextRequest[client.rawValue] = id
        return Self.message(from: client, operation, value, id: id)
    }

    static func message(from client: TaskID, _ operation: UInt16, _ value: UInt, id: UInt64) -> Received {
        let seal = RequestSeal.value(sender: client.rawValue, operation: UInt(operation), word0: value, word1: 0,
                                     length: 0, requestID: id)
        return Received(sender: client, operation: UInt(operation), words: (value, 0), length: 0, requestID: id,
                        seal: seal)
    }

    /// Delivers `message` with its client's region at the window; the reply, if the
    /// server answers, reaches the client (`deliverReply`) or is lost with a crash.
    @discardableResult
    mutating func deliver(_ message: Received, deliverReply: Bool = true) -> SealedReply? {
        FakeKernel.mapped = message.sender.rawValue
        let reply = server.serve(message)
        if reply == nil { FakeKernel.regions[message.sender.rawValue]!.held = message.requestID }
        if let reply, deliverReply {
            #expect(reply.isIntact)
            FakeKernel.regions[message.sender.rawValue]!.lastCompleted = message.requestID
            FakeKernel.replies.append((reply.client, reply.code, reply.words))
        }
        return reply
    }

    /// The server crashed: a new one starts from the pristine service on the same regions.
    mutating func restart() {
        FakeKernel.verdicts = []
        rebuilt = []
        server = LedgerServer(service: LedgerService())
        server.recover()
    }
}

@Suite(.serialized) struct SSRServerTests {
    static let alice = TaskID(rawValue: 0x0001_0005)
    static let bob = TaskID(rawValue: 0x0002_0006)

    /// Each request is applied once and committed before its reply; the region holds
    /// the client's ledger, and only as many bytes of it as are in use.
    @Test func requestsAreCommittedBeforeTheyAreAnswered() throws {
        var harness = Harness(clients: [Self.alice, Self.bob])
        for value: UInt in [5, 7, 11] {
            let deliveredReply = harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, value))
            let reply = try #require(deliveredReply)
            guard case .committed(let commit) = FakeKernel.region(of: Self.alice).loadCommit() else {
                Issue.record("no commit after request \(value)")
                return
            }
            #expect(commit.requestID == harness.nextRequest[Self.alice.rawValue])
            #expect(commit.reply.word0 == UInt64(reply.words.0) && commit.reply.word1 == UInt64(reply.words.1))
            #expect(commit.storedStateBytes == 8 + 8 * Int(reply.words.0), "only the entries in use are stored")
        }
        harness.deliver(harness.request(from: Self.bob, LedgerOperation.append, 100))
        #expect(FakeKernel.replies.map(\.words.1) == [5, 12, 23, 100], "each client's own sum")
        guard case .committed(let commit) = FakeKernel.region(of: Self.alice).loadCommit() else { return }
        #expect(FakeKernel.region(of: Self.alice).state(of: commit).values == [5, 7, 11])
    }

    /// A crash after the commit, before the reply reached the client: the restarted
    /// server finds the commit valid, and the request, delivered again, is answered
    /// from the cached reply without being applied a second time.
    @Test func aRequestCommittedBeforeACrashIsAnsweredFromTheCache() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 3))
        let second = harness.request(from: Self.alice, LedgerOperation.append, 4)
        let deliveredLost = harness.deliver(second, deliverReply: false)
        let lost = try #require(deliveredLost)
        harness.restart()
        #expect(harness.server.recovery.valid == 1 && rebuilt.map(\.count) == [2])
        let deliveredAgain = harness.deliver(second)
        let again = try #require(deliveredAgain)
        #expect(again.words == lost.words && again.code == lost.code && again.words == (2, 7))
        #expect(applied.map(\.value) == [3, 4], "applied once")
        let deliveredThird = harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 5))
        let third = try #require(deliveredThird)
        #expect(third.words == (3, 12))
    }

    /// A crash while the client's region was mapped (a suspect region) after an
    /// unanswered commit: the commit is rolled back, and the request, delivered
    /// again, is applied once from the state before it.
    @Test func aSuspectRegionsUnansweredCommitIsRolledBack() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 3))
        let second = harness.request(from: Self.alice, LedgerOperation.append, 4)
        harness.deliver(second, deliverReply: false)
        FakeKernel.regions[Self.alice.rawValue]!.state = .suspect
        harness.restart()
        #expect(harness.server.recovery.rolledBack == 1 && FakeKernel.verdicts.map(\.verdict) == [.repaired])
        #expect(rebuilt.map(\.count) == [1], "rebuilt from the state before the unanswered request")
        FakeKernel.regions[Self.alice.rawValue]!.state = .valid
        let deliveredAgain = harness.deliver(second)
        let again = try #require(deliveredAgain)
        #expect(again.words == (2, 7))
        #expect(applied.map(\.value) == [3, 4, 4], "applied again after the rollback, once in what was kept")
    }

    /// A held request is answered later with `complete`, which maps the client's
    /// region, commits with the held request's id and replies; a crash between that
    /// commit and the reply answers the request again from the cache.
    @Test func aHeldRequestIsCompletedAndCommitted() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 9))
        let wait = harness.request(from: Self.alice, LedgerOperation.wait)
        #expect(harness.deliver(wait) == nil && waiting == [Self.alice])
        let answered = try LedgerServer.complete(Self.alice) { state in
            state.entries[Int(state.count)] = 1
            state.count += 1
            return .reply(0, UInt(state.count), 0)
        }
        #expect(answered && FakeKernel.replies.last?.words.0 == 2)
        guard case .committed(let commit) = FakeKernel.region(of: Self.alice).loadCommit() else { return }
        #expect(commit.requestID == wait.requestID && FakeKernel.region(of: Self.alice).state(of: commit).values == [9, 1])
        // Delivered again (its reply lost with a crash): the cached answer, nothing applied.
        FakeKernel.regions[Self.alice.rawValue]!.lastCompleted = wait.requestID - 1
        harness.restart()
        let deliveredAgain = harness.deliver(wait)
        let again = try #require(deliveredAgain)
        #expect(again.words.0 == 2 && waiting == [Self.alice], "not held a second time")
    }

    /// A client that ended: the service is given its last committed state.
    @Test func anEndedClientsStateGoesToTheService() {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 1))
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 2))
        FakeKernel.mapped = Self.alice.rawValue
        harness.server.unbind(Self.alice)
        #expect(ended.count == 1 && ended.first?.count == 2)
    }

    /// A region damaged past repair (a flipped bit in an acknowledged commit) is
    /// judged lost: the kernel is told, and nothing is rebuilt from it.
    @Test func aDamagedAcknowledgedRegionIsLost() {
        var harness = Harness(clients: [Self.alice, Self.bob])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 1))
        harness.deliver(harness.request(from: Self.bob, LedgerOperation.append, 2))
        let active = Int(FakeKernel.region(of: Self.alice).activeSequence! & 1)
        let offset = SSRLayout.headerBytes + active * SSRFormat<Ledger, SSRMemory>.copyStride + SSRLayout.stateField
        FakeKernel.regions[Self.alice.rawValue]!.memory[offset] ^= 0x10
        harness.restart()
        #expect(FakeKernel.verdicts.map(\.verdict) == [.lost, .valid])
        #expect(rebuilt.map(\.client) == [Self.bob])
    }
}

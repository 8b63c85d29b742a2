// A live upgrade on the fake kernel: a second version of the ledger service, with
// another layout of its state, takes over the regions the first version wrote. It
// judges them in the old layout and rebuilds from their migrated states without
// writing them (an upgrade rolled back during its recovery leaves the old version
// every region as it can read it), migrates each region the first time a request of
// its client is applied, and answers a request the old version committed but never
// answered from that commit, exactly once.

import CurioUser
import SSRFormat
@testable import SSRServer
import Testing

/// The second version's state: the sum kept beside the entries, the count last.
struct LedgerV2: BitwiseCopyable {
    var total: UInt64
    var entries: InlineArray<16, UInt64>
    var count: UInt64

    static var empty: LedgerV2 { LedgerV2(total: 0, entries: InlineArray(repeating: 0), count: 0) }

    var values: [UInt64] { (0..<Int(count)).map { entries[$0] } }
}

struct LedgerServiceV2: SSRService {
    typealias State = LedgerV2
    typealias PreviousState = Ledger
    static let layoutVersion: UInt32 = 2
    static var previousLayoutVersion: UInt32? { LedgerService.layoutVersion }
    static var initialState: LedgerV2 { .empty }
    static var notificationMask: UInt32 { 1 }

    static func migrate(_ previous: UnsafePointer<Ledger>, to state: UnsafeMutablePointer<LedgerV2>) -> Bool {
        guard previous.pointee.count <= 16 else { return false }
        state.pointee = LedgerV2(total: previous.pointee.sum, entries: previous.pointee.entries,
                                 count: previous.pointee.count)
        return true
    }

    static func check(_ state: UnsafePointer<LedgerV2>) -> Bool {
        let count = Int(state.pointee.count)
        guard count <= 16, (count..<16).allSatisfy({ state.pointee.entries[$0] == 0 }) else { return false }
        return state.pointee.values.reduce(0, &+) == state.pointee.total
    }

    mutating func rebuild(client: TaskID, state: LedgerV2) { rebuilt.append((client, state.count)) }

    mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                         state: inout LedgerV2) -> SSROutcome {
        switch operation {
        case LedgerOperation.append:
            guard state.count < 16 else { return .reply(1) }
            state.entries[Int(state.count)] = UInt64(words.0)
            state.count += 1
            state.total &+= UInt64(words.0)
            applied.append((client, UInt64(words.0)))
            return .reply(0, UInt(state.count), UInt(state.total))
        case LedgerOperation.wait:
            waiting.append(client)
            return .deferred
        default:
            return .reply(2)
        }
    }

    mutating func clientEnded(client: TaskID, state: LedgerV2?) { ended.append((client, state?.count)) }

    mutating func notified(bits: UInt) {}
}

typealias LedgerServerV2 = SSRRuntime<LedgerServiceV2, FakeKernel>

extension FakeKernel {
    static func regionV2(of client: TaskID) -> SSRFormat<LedgerV2, SSRMemory> {
        SSRFormat(storage: SSRMemory(regions[client.rawValue]!.memory), layoutVersion: LedgerServiceV2.layoutVersion,
                  owner: client.rawValue)
    }
}

/// The version-2 server started on the regions `harness`'s version-1 server left.
func upgrade(_ harness: Harness) -> LedgerServerV2 {
    FakeKernel.verdicts = []
    rebuilt = []
    var server = LedgerServerV2(service: LedgerServiceV2())
    server.recover()
    return server
}

/// Delivers `message` to a version-2 server, as `Harness.deliver` does.
@discardableResult
func deliver(_ message: Received, to server: inout LedgerServerV2) -> SealedReply? {
    FakeKernel.mapped = message.sender.rawValue
    let reply = server.serve(message)
    if let reply {
        FakeKernel.regions[message.sender.rawValue]!.lastCompleted = message.requestID
        FakeKernel.replies.append((reply.client, reply.code, reply.words))
    }
    return reply
}

/// In SSRServerTests' suite, which runs its tests one at a time: they share the fake
/// kernel's tables.
extension SSRServerTests {
    @Test func eachRegionIsMigratedWhenItsClientsNextRequestIsApplied() throws {
        var harness = Harness(clients: [Self.alice, Self.bob])
        for value: UInt in [5, 7, 11] { harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, value)) }
        harness.deliver(harness.request(from: Self.bob, LedgerOperation.append, 100))

        var server = upgrade(harness)
        #expect(server.recovery.valid == 2 && FakeKernel.verdicts.map(\.verdict) == [.valid, .valid])
        #expect(rebuilt.map(\.count) == [3, 1], "rebuilt from the migrated states")
        #expect(FakeKernel.region(of: Self.alice).isWrittenInThisLayout, "recovery writes no region")

        let delivered = deliver(harness.request(from: Self.alice, LedgerOperation.append, 2), to: &server)
        let reply = try #require(delivered)
        #expect(reply.words == (4, 25), "the old entries carried over")
        let alice = FakeKernel.regionV2(of: Self.alice)
        guard case .committed(let commit) = alice.loadCommit() else {
            Issue.record("alice's region is not in the new layout")
            return
        }
        #expect(alice.state(of: commit).values == [5, 7, 11, 2] && alice.state(of: commit).total == 25)
        #expect(FakeKernel.region(of: Self.bob).isWrittenInThisLayout, "bob has sent nothing since")

        // A crash of the new version: it recovers both layouts side by side.
        server = upgrade(harness)
        #expect(FakeKernel.verdicts.map(\.verdict) == [.valid, .valid] && rebuilt.map(\.count) == [4, 1])
        let deliveredToBob = deliver(harness.request(from: Self.bob, LedgerOperation.append, 1), to: &server)
        let bobsReply = try #require(deliveredToBob)
        #expect(bobsReply.words == (2, 101))
        #expect(applied.map(\.value) == [5, 7, 11, 100, 2, 1], "each request applied once")
    }

    @Test func aRequestTheOldVersionCommittedButNeverAnsweredIsAnsweredFromItsCommit() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 3))
        let second = harness.request(from: Self.alice, LedgerOperation.append, 4)
        let deliveredLost = harness.deliver(second, deliverReply: false)
        let lost = try #require(deliveredLost)

        var server = upgrade(harness)
        #expect(server.recovery.valid == 1 && rebuilt.map(\.count) == [2])
        let deliveredAgain = deliver(second, to: &server)
        let again = try #require(deliveredAgain)
        #expect(again.words == lost.words && again.code == lost.code)
        #expect(FakeKernel.region(of: Self.alice).isWrittenInThisLayout,
                "a commit that may be unanswered is not migrated")
        let deliveredThird = deliver(harness.request(from: Self.alice, LedgerOperation.append, 5), to: &server)
        let third = try #require(deliveredThird)
        #expect(third.words == (3, 12))
        #expect(FakeKernel.regionV2(of: Self.alice).isWrittenInThisLayout)
        #expect(applied.map(\.value) == [3, 4, 5], "applied once")
    }

    @Test func aSuspectUnansweredCommitOfTheOldVersionIsRolledBackInItsLayout() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 3))
        let second = harness.request(from: Self.alice, LedgerOperation.append, 4)
        harness.deliver(second, deliverReply: false)
        FakeKernel.regions[Self.alice.rawValue]!.state = .suspect

        var server = upgrade(harness)
        #expect(server.recovery.rolledBack == 1 && rebuilt.map(\.count) == [1])
        #expect(FakeKernel.region(of: Self.alice).isWrittenInThisLayout, "repaired in the old layout")
        FakeKernel.regions[Self.alice.rawValue]!.state = .valid
        let deliveredAgain = deliver(second, to: &server)
        let again = try #require(deliveredAgain)
        #expect(again.words == (2, 7))
        #expect(FakeKernel.regionV2(of: Self.alice).isWrittenInThisLayout)
    }

    @Test func aHeldRequestIsCompletedByTheNewVersionInItsLayout() throws {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 9))
        let wait = harness.request(from: Self.alice, LedgerOperation.wait)
        #expect(harness.deliver(wait) == nil)

        _ = upgrade(harness)
        let answered = try LedgerServerV2.complete(Self.alice) { state in
            state.entries[Int(state.count)] = 1
            state.count += 1
            state.total += 1
            return .reply(0, UInt(state.count), UInt(state.total))
        }
        #expect(answered && FakeKernel.replies.last?.words.0 == 2 && FakeKernel.replies.last?.words.1 == 10)
        let region = FakeKernel.regionV2(of: Self.alice)
        guard case .committed(let commit) = region.loadCommit() else {
            Issue.record("not committed in the new layout")
            return
        }
        #expect(commit.requestID == wait.requestID && region.state(of: commit).values == [9, 1])
    }

    @Test func anEndedClientsUnmigratedStateGoesToTheNewVersion() {
        var harness = Harness(clients: [Self.alice])
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 1))
        harness.deliver(harness.request(from: Self.alice, LedgerOperation.append, 2))
        var server = upgrade(harness)
        FakeKernel.mapped = Self.alice.rawValue
        server.unbind(Self.alice)
        #expect(ended.count == 1 && ended.first?.count == 2)
    }
}

// Fuzz target `ssr-format`: the code a restarted server runs on the bytes of a
// server state region that a fault may have damaged.
//
// The input is the kernel's word on the client — its id (u32) and L, the id of the
// last request the server answered (u64) — then the region itself (32 + 2 x 120
// bytes for the 72-byte state used here, the timer's size; missing bytes are
// zero). The seeds are regions written by `commit`: fresh, after one commit,
// after many. `SSRFormat` judges the region as `SSRServer.recover` does and the
// harness checks what the format promises:
//
//   - `check(lastCompleted:)` answers; `valid` holds a record answering L or later;
//   - `repair(to:)` of a repairable region leaves one that checks `valid` with
//     exactly the restore point's record (or unformatted, for a fresh start), and
//     a rollback point does too;
//   - a commit after that reads back (`load`, `loadCommit`) as the state, request
//     and reply just committed, and the running server's `load` of the damaged
//     region never reports a commit the checker would not.
//
// The layout version and the state's size are fixed by the harness, as a server
// fixes them; a region written for another version or size is just damage.

import SSRFormat

/// The state: the timer's size, plain words.
struct State: BitwiseCopyable, Equatable {
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    static func == (left: State, right: State) -> Bool {
        withUnsafeBytes(of: left.words) { a in withUnsafeBytes(of: right.words) { b in a.elementsEqual(b) } }
    }
}

typealias Format = SSRFormat<State, SSRMemory>

nonisolated(unsafe) let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

func load(_ format: Format) -> SSRRecord<State>? {
    if case .committed(let record) = format.load() { return record }
    return nil
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSRFormat(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let owner = input.integer(UInt32.self)
    let lastCompleted = input.integer(UInt64.self)
    region.initializeMemory(as: UInt8.self, repeating: 0)
    let bytes = input.bytes(Format.requiredBytes)
    UnsafeMutableRawBufferPointer(rebasing: region[0..<bytes.count]).copyMemory(from: bytes)
    let format = Format(storage: SSRMemory(region), layoutVersion: 1, owner: owner)

    let running = load(format)
    let verdict = format.check(lastCompleted: lastCompleted)
    switch verdict {
    case .unformatted:
        precondition(format.isZero && running == nil, "an unformatted region with a commit")
    case .valid(let record):
        precondition(record.requestID >= lastCompleted, "a valid record behind the kernel")
        precondition(running?.sequence == record.sequence, "check and load disagree on the commit")
        if let rollback = format.rollbackPoint(lastCompleted: lastCompleted) {
            format.repair(to: rollback)
            expectRestored(format, rollback, lastCompleted: lastCompleted)
        }
    case .repairable(let point, _):
        format.repair(to: point)
        expectRestored(format, point, lastCompleted: lastCompleted)
    case .corrupt:
        break
    }

    // Whatever the region holds now, a commit over a restored or fresh one must read back.
    if case .corrupt = format.check(lastCompleted: lastCompleted) { return 0 }
    // A hint of how much of the state can be non-zero, right or wrong: a commit
    // stores the prefix, or everything when the hint is wrong, and reads back whole.
    let hint = Int(input.integer(UInt8.self)) - 16
    let used = Int(input.integer(UInt8.self)) % 10
    var state = State(words: (0, 0, 0, 0, 0, 0, 0, 0, 0))
    withUnsafeMutableBytes(of: &state.words) { words in
        for index in 0..<used { words.storeBytes(of: UInt64(index) &+ lastCompleted | 1, toByteOffset: 8 * index, as: UInt64.self) }
    }
    let reply = SSRReply(code: 3, word0: 4, word1: 5)
    format.commit(state: state, significantBytes: hint, requestID: lastCompleted &+ 1, reply: reply)
    guard let committed = load(format) else { preconditionFailure("a commit that does not read back") }
    precondition(committed.state == state && committed.requestID == lastCompleted &+ 1 && committed.reply == reply,
                 "a commit reads back different")
    guard case .committed(let commit) = format.loadCommit(), format.state(of: commit) == state else {
        preconditionFailure("loadCommit disagrees with load")
    }
    return 0
}

/// After `repair(to: point)`: the region checks as that point, whatever it held.
func expectRestored(_ format: Format, _ point: SSRRestorePoint<State>, lastCompleted: UInt64) {
    switch (point, format.check(lastCompleted: lastCompleted)) {
    case (.fresh, .unformatted):
        break
    case (.record(let wanted), .valid(let record)):
        precondition(record.sequence == wanted.sequence && record.requestID == wanted.requestID
                     && record.reply == wanted.reply && record.state == wanted.state, "repaired to another record")
    default:
        preconditionFailure("a repaired region does not check as its restore point")
    }
}

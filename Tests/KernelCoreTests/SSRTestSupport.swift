// What the server-state-region tests share: an image with SSR servers, and ways to
// look at SSRs, the server's window and whole address spaces from outside.
//
// The image (indexes in `SSRProgram`):
//
//   manager  may manage (injects faults, reads ssrInfo)
//   fs       restartable SSR server, 2 pages per client; may call disk and plain
//   client   calls fs, disk, plain, fragile, aux1, aux2
//   disk     restartable SSR server, 1 page per client
//   plain    an ordinary server: no SSRs, not restartable
//   tight    a client whose budget (12 pages) has room for its image (11) but no SSR
//   fragile  an SSR server (1 page) that is not restartable
//   aux1/2   more SSR servers, to fill a client's binding table
//   limited  an SSR server with a reply limit (20 ms)
//   urgent   an SSR server more urgent than fs
//   promising  an SSR server that promises every reply it holds
//   fs-next  a version of fs (`version_of`), for live upgrades
//   keeper   a client that keeps its SSRs across its own crashes (`keep_ssrs`)
import CurioABI
import Testing
@testable import KernelCore

enum SSRProgram {
    static let manager = 0
    static let fs = 1
    static let client = 2
    static let disk = 3
    static let plain = 4
    static let tight = 5
    static let fragile = 6
    static let aux1 = 7
    static let aux2 = 8
    static let limited = 9
    static let urgent = 10
    static let promising = 11
    static let fsNext = 12
    static let keeper = 13
}

extension KernelTestProgram {
    static let ssrImage: [KernelTestProgram] = [
        KernelTestProgram(name: "manager", priority: 2, mayManage: true, sends: ["fs", "disk"]),
        KernelTestProgram(name: "fs", priority: 3, restartable: true, ssrPages: 2, sends: ["disk", "plain"]),
        KernelTestProgram(name: "client", priority: 4,
                          sends: ["fs", "disk", "plain", "fragile", "aux1", "aux2", "limited", "urgent", "promising"]),
        KernelTestProgram(name: "disk", priority: 3, restartable: true, ssrPages: 1),
        KernelTestProgram(name: "plain", priority: 3),
        KernelTestProgram(name: "tight", priority: 4, memoryPages: 12, sends: ["fs"]),
        KernelTestProgram(name: "fragile", priority: 3, ssrPages: 1),
        KernelTestProgram(name: "aux1", priority: 3, ssrPages: 1),
        KernelTestProgram(name: "aux2", priority: 3, ssrPages: 1),
        KernelTestProgram(name: "limited", priority: 3, restartable: true, ssrPages: 1, replyLimitMilliseconds: 20),
        KernelTestProgram(name: "urgent", priority: 2, restartable: true, ssrPages: 1),
        KernelTestProgram(name: "promising", priority: 3, restartable: true, promisesReplies: true, ssrPages: 1),
        KernelTestProgram(name: "fs-next", priority: 3, restartable: true, ssrPages: 2, versionOf: "fs",
                          sends: ["disk", "plain"]),
        KernelTestProgram(name: "keeper", priority: 4, keepsSSRs: true, sends: ["fs", "disk"]),
    ]
}

/// One leaf of an address space's page tables.
struct Mapping: Equatable {
    var virtualAddress: UInt64
    var frame: UInt64
    var flags: PageFlags
}

/// What `ssrRecoverNext` reported for one SSR.
struct RecoveredSSR: Equatable {
    var client: TaskID
    var state: SSRState?
    var lastCompleted: UInt
    /// The frames the server's window showed while this SSR was the current one.
    var windowFrames: [UInt64?]
}

struct FlushedPage: Equatable, CustomStringConvertible {
    var address: UInt64
    var asid: UInt16
    var description: String { "0x\(String(address, radix: 16))@\(asid)" }
}

enum SSRLayout {
    /// An SSR server of the standard layout holds one more page: the table under its window.
    static let serverPages = ProcessLayout.standardPages + 1
    static let fsPages = 2
    static let window = UInt64(SSRWindow.base)
}

extension KernelHarness {
    /// A harness on the SSR image with the clock well past zero (the kernel reads a
    /// last-restart time of 0 as "never restarted").
    static func ssr(megabytes: Int = 4) throws -> KernelHarness {
        let harness = try KernelHarness(programs: KernelTestProgram.ssrImage, megabytes: megabytes)
        harness.clock = 1_000_000
        return harness
    }

    var clock: UInt64 {
        get { kernel.platform.clock }
        set { kernel.platform.clock = newValue }
    }

    /// Advances the clock and delivers the clock interrupt.
    func tick(by ticks: UInt64) {
        clock += ticks
        kernel.clockTick(now: clock)
    }

    /// Lets `ticks` pass as the periodic clock does, one interrupt per time slice (the
    /// watchdog charges at most one slice per interrupt).
    func run(for ticks: UInt64) {
        var left = ticks
        while left > 0 {
            let step = min(left, KernelHarness.TestKernel.timeSlice)
            tick(by: step)
            left -= step
        }
    }

    // MARK: SSRs

    func binding(of client: Int, to program: Int) -> SSRBinding? {
        let bindings = task(client).bindings
        for index in 0..<SSRTable.bindingsPerTask where bindings[index].serverProgram == program {
            return bindings[index]
        }
        return nil
    }

    func bindingCount(of client: Int) -> Int {
        let bindings = task(client).bindings
        return (0..<SSRTable.bindingsPerTask).filter { bindings[$0].isUsed }.count
    }

    /// The frames of `client`'s SSR for `program` ([] if unbound).
    func ssrFrames(of client: Int, to program: Int) -> [UInt64] {
        guard let record = binding(of: client, to: program) else { return [] }
        return (0..<record.pageCount).map { record.frames[$0] }
    }

    /// The same, as `windowFrames` reports a window showing them.
    func ssrWindow(of client: Int, to program: Int) -> [UInt64?] {
        ssrFrames(of: client, to: program).map { $0 }
    }

    /// Every orphaned SSR, wherever it lingers: its last owner and its record.
    func orphans() -> [(client: TaskID, binding: SSRBinding)] {
        var found: [(client: TaskID, binding: SSRBinding)] = []
        for slot in 0..<KernelHarness.TestKernel.maxTasks where state(slot) != .free {
            let bindings = task(slot).bindings
            for index in 0..<SSRTable.bindingsPerTask where bindings[index].state == .orphaned && bindings[index].isUsed {
                found.append((bindings[index].owner, bindings[index]))
            }
        }
        return found
    }

    /// What the server's window maps, page by page (nil: unmapped), for `pages` pages.
    func windowFrames(of server: Int, pages: Int = SSRWindow.maxPages) -> [UInt64?] {
        (0..<pages).map { page in
            task(server).addressSpace?.translate(VirtualAddress(SSRLayout.window + UInt64(page * pageSize)),
                                                 memory: ram).map { $0.0.rawValue }
        }
    }

    var emptyWindow: [UInt64?] { [UInt64?](repeating: nil, count: SSRWindow.maxPages) }

    func physical(_ frame: UInt64, count: Int = pageSize) -> [UInt8] {
        ram.bytes(at: PhysicalAddress(frame), count: count)
    }

    /// The contents of an SSR, all pages.
    func ssrBytes(of client: Int, to program: Int) -> [UInt8] {
        ssrFrames(of: client, to: program).flatMap { physical($0) }
    }

    func isAllocated(_ frame: UInt64) -> Bool { kernel.frames.isAllocated(PhysicalAddress(frame)) }

    /// Every leaf in the slot's own page tables (the kernel's borrowed entries excluded).
    func mappings(of slot: Int) -> [Mapping] {
        guard let root = task(slot).addressSpace?.root else { return [] }
        var found: [Mapping] = []
        func walk(_ table: PhysicalAddress, level: Int, base: UInt64) {
            for index in 0..<Sv39.entriesPerTable {
                let entry = Sv39.load(Sv39.entryAddress(in: table, at: index), memory: ram)
                guard entry.isValid, !entry.isBorrowed else { continue }
                let address = base | UInt64(index) << (12 + 9 * UInt64(level))
                if entry.isLeaf {
                    found.append(Mapping(virtualAddress: address, frame: entry.frame.rawValue, flags: entry.flags))
                } else if level > 0 {
                    walk(entry.frame, level: level - 1, base: address)
                }
            }
        }
        walk(root, level: 2, base: 0)
        return found
    }

    /// The page flushes recorded since there were `start`.
    func pageFlushes(since start: Int) -> [FlushedPage] {
        kernel.platform.pageFlushes[start...].map { FlushedPage(address: $0.address, asid: $0.asid) }
    }

    var pageFlushCount: Int { kernel.platform.pageFlushes.count }

    /// The flushes closing a window of `pages` pages in `server`.
    func windowFlushes(of server: Int, pages: Int) -> [FlushedPage] {
        (0..<pages).map { FlushedPage(address: SSRLayout.window + UInt64($0 * pageSize), asid: kernel.asid(of: server)) }
    }

    // MARK: Calls

    /// `send` with a reply buffer; the result is read later with `error`/`result`.
    func call(_ client: Int, _ server: TaskID, operation: UInt16 = 1) throws {
        try send(from: client, to: server, operation: operation)
    }

    /// ssrOpen(client): (window, size, request id) on success, nil on an error.
    func ssrOpen(_ server: Int, _ client: TaskID) -> (window: UInt, size: UInt, request: UInt)? {
        syscall(server, .ssrOpen, UInt(client.rawValue))
        guard error(server) == nil else { return nil }
        return (result(server, 1), result(server, 2), result(server, 3))
    }

    /// Walks every SSR with `ssrRecoverNext`, giving each the verdict `verdict` picks,
    /// and finishes with `recoveryComplete` when `complete`.
    @discardableResult
    func recover(_ server: Int, pages: Int, complete: Bool = true,
                 verdict: (TaskID) -> SSRVerdict = { _ in .valid }) -> [RecoveredSSR] {
        var walked: [RecoveredSSR] = []
        var cursor: UInt = 0
        while walked.count <= KernelHarness.TestKernel.maxTasks * SSRTable.bindingsPerTask {
            syscall(server, .ssrRecoverNext, cursor)
            #expect(error(server) == nil)
            let client = TaskID(rawValue: UInt32(truncatingIfNeeded: result(server, 1)))
            if client == TaskID.kernel { break }
            #expect(result(server, 5) == SSRWindow.base)
            walked.append(RecoveredSSR(client: client,
                                       state: SSRState(rawValue: UInt8(truncatingIfNeeded: result(server, 2))),
                                       lastCompleted: result(server, 4),
                                       windowFrames: windowFrames(of: server, pages: pages)))
            cursor = result(server, 3)
            syscall(server, .ssrVerdict, UInt(client.rawValue), verdict(client).rawValue)
            #expect(error(server) == nil)
        }
        if complete {
            syscall(server, .recoveryComplete)
            #expect(error(server) == nil)
        }
        return walked
    }

    /// Writes a name into a process's heap (at `offset`) and returns (address, length).
    func name(_ text: String, in slot: Int, offset: UInt64 = 0xF00) throws -> (UInt, UInt) {
        try write(text, at: ProcessLayout.heap + offset, in: slot)
        return (UInt(ProcessLayout.heap + offset), UInt(text.utf8.count))
    }

    /// How many times `text` occurs in the console output.
    func outputCount(_ text: String) -> Int {
        output.ranges(of: text).count
    }
}

/// How many bits differ between two equally long byte arrays.
func differingBits(_ left: [UInt8], _ right: [UInt8]) -> Int {
    precondition(left.count == right.count)
    return zip(left, right).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
}

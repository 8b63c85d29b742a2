// Fuzz target `fs-state`: what the filesystem server keeps in its clients' SSRs
// (open handles, byte-range locks) and the lock table it rebuilds from them.
//
// The input is three clients' states followed by a script of requests. Each state
// is a flag byte and, if its low bit is set, the state's 392 bytes as they lie in
// the SSR (a damaged region whose checksum still verified: a fault in the server
// before the commit); otherwise the client starts fresh. Then, as a restarted
// server does, every state is judged with `FileSystemClientState.isConsistent`
// (one that fails is lost: the client starts again from nothing) and the lock
// table is rebuilt from the survivors.
//
// Each request of the script is an opcode byte, a client byte and operands, and is
// handled as FileSystemServer handles it, minus the disk: open, close, read, write
// (the file sizes and byte counts come from the input), seek, lock and unlock with
// and without waiting (deadlock detection, the waiting list, and the grants that
// follow a release), a client ending, and a server restart (the table rebuilt from
// the SSRs; waiting clients are asked again). After every request the server's
// promises must hold: every state is consistent (a state the server computed and
// committed is one its own checker accepts), the table is intact, and the table
// holds exactly the locks the states hold.
//
// Opcodes: 0 open(inode u8, flags u8, offset u16), 1 close(slot), 2 read(slot,
// count u16), 3 write(slot, count u16, file size u32), 4 seek(slot, offset i64,
// whence u8, file size u32), 5 lock(slot, kind u8, wait u8, start u16, length u16),
// 6 client ends, 7 server restarts, 8 replayed read(slot). A slot byte names a
// handle slot of the client (its current handle); with bit 7 set the next four
// bytes are a raw handle instead.

import FileSystemCore

struct Client {
    var state = FileSystemClientState.initial
    /// A lock request the server is holding for this client (it is blocked meanwhile).
    var waiting = false
    var id: ClientID
}

struct Server {
    var clients: [Client]
    let table = LockTable()

    init(_ input: inout FuzzInput) {
        clients = (0..<3).map { Client(id: ClientID(rawValue: 0x0001_0000 | UInt32($0 + 1))) }
        for index in clients.indices where input.byte() & 1 != 0 {
            clients[index].state = input.value(FileSystemClientState.self)
        }
        restart()
    }

    /// The recovery walk: judge every state, rebuild the table; held requests come back.
    mutating func restart() {
        table.clear()
        for index in clients.indices {
            if !FileSystemClientState.isConsistent(clients[index].state) { clients[index].state = .initial }
            do throws(FileSystemError) {
                try table.addHeldLocks(of: clients[index].id, from: clients[index].state)
            } catch {
                preconditionFailure("three clients' locks do not fit the table")
            }
        }
        // A held lock request is delivered again and asks the table again (below, as
        // the client's next request); here it simply stops waiting.
        for index in clients.indices { clients[index].waiting = false }
    }

    func handle(_ client: Int, _ input: inout FuzzInput) -> FileHandle {
        let slot = input.byte()
        if slot & 0x80 != 0 { return FileHandle(rawValue: input.integer(UInt32.self)) }
        return clients[client].state.handles[Int(slot) % FileSystemClientState.handleCount].handle
    }

    mutating func run(_ opcode: UInt8, client: Int, _ input: inout FuzzInput) {
        let me = clients[client].id
        switch opcode % 9 {
        case 0:
            let inode = InodeNumber(UInt32(input.byte() % 8) + 11)
            let flags = OpenFlags(rawValue: UInt16(input.byte()))
            let offset = UInt64(input.integer(UInt16.self))
            _ = try? clients[client].state.open(inode: inode, generation: 7, flags: flags, offset: offset)
        case 1:
            let handle = handle(client, &input)
            if let closed = try? clients[client].state.close(handle) {
                table.releaseAll(client: me, file: closed.file)
                grantWaiters()
            }
        case 2:
            let handle = handle(client, &input)
            let count = Int(input.integer(UInt16.self) % 4097)
            _ = try? clients[client].state.recordRead(handle, count: count)
        case 3:
            let handle = handle(client, &input)
            let count = Int(input.integer(UInt16.self) % 4097)
            let size = UInt64(input.integer(UInt32.self))
            if let position = try? clients[client].state.writePosition(handle, fileSize: size) {
                _ = try? clients[client].state.recordWrite(handle, at: position, count: count)
            }
        case 4:
            let handle = handle(client, &input)
            let offset = input.integer(Int64.self)
            let whence = Whence(rawValue: input.byte() % 3)!
            let size = UInt64(input.integer(UInt32.self))
            _ = try? clients[client].state.seek(handle, offset: offset, whence: whence, fileSize: size)
        case 5:
            let handle = handle(client, &input)
            let kind = LockKind(rawValue: input.byte() % 3 + 1)!
            let wait = input.bool()
            let start = UInt64(input.integer(UInt16.self))
            let length = UInt64(input.integer(UInt16.self))
            guard let range = try? LockRange(start: start, length: length) else { return }
            lock(client, handle, range: range, kind: kind, wait: wait && kind != .unlock)
        case 6:
            table.forget(client: me)
            clients[client].state = .initial
            clients[client].waiting = false
            grantWaiters()
        case 7:
            restart()
        default:
            let replayed = handle(client, &input)
            guard let record = try? clients[client].state.file(replayed) else { return }
            let file = FileStatus(inode: InodeNumber(record.inode), type: .regular, permissions: 0, links: 1, size: 0,
                                  sectors: 0, generation: record.inodeGeneration, modified: 0, changed: 0, accessed: 0)
            if let replay = try? clients[client].state.readToReplay(replayed, file: file) {
                precondition(replay.count <= FileSystemLimits.maxTransfer, "a replayed read larger than a message")
            }
        }
    }

    /// The `.lock` case of FileSystemServer.perform.
    mutating func lock(_ client: Int, _ handle: FileHandle, range: LockRange, kind: LockKind, wait: Bool) {
        let me = clients[client].id
        guard let file = try? clients[client].state.file(handle).file else { return }
        if kind == .unlock {
            var files = clients[client].state
            do throws(FileSystemError) {
                try files.applyLock(handle, range: range, kind: .unlock)
                try table.release(client: me, file: file, range: range)
                clients[client].state = files
            } catch {
                return
            }
            grantWaiters()
            return
        }
        if table.conflictingHolder(client: me, file: file, range: range, kind: kind) != nil {
            guard wait else { return }
            let waiter = LockTable.Waiter(client: me, handle: handle, file: file, range: range, kind: kind)
            guard !table.wouldDeadlock(waiter) else { return }
            if (try? table.enqueue(waiter)) != nil { clients[client].waiting = true }
            return
        }
        var files = clients[client].state
        do throws(FileSystemError) {
            try files.applyLock(handle, range: range, kind: kind)
            try table.acquire(client: me, file: file, range: range, kind: kind)
            clients[client].state = files
        } catch {}
    }

    /// FileSystemServer.followUp: grant the waiters that no longer conflict.
    mutating func grantWaiters() {
        while let waiter = table.takeGrantableWaiter() {
            guard let client = clients.firstIndex(where: { $0.id == waiter.client }) else {
                preconditionFailure("a waiter of no client")
            }
            precondition(clients[client].waiting, "a waiter the server is not holding")
            clients[client].waiting = false
            var files = clients[client].state
            do throws(FileSystemError) {
                try files.applyLock(waiter.handle, range: waiter.range, kind: waiter.kind)
                try table.acquire(client: waiter.client, file: waiter.file, range: waiter.range, kind: waiter.kind)
                clients[client].state = files
            } catch {}
        }
    }

    /// The promises: consistent states, an intact table holding exactly their locks.
    func check() {
        precondition(table.isIntact, "the lock table is damaged")
        var fromStates: [HeldLock: Int] = [:]
        for client in clients {
            precondition(FileSystemClientState.isConsistent(client.state), "the server computed a state it rejects")
            client.state.forEachLock { file, range, kind in
                fromStates[HeldLock(client: client.id, file: file, range: range, kind: kind), default: 0] += 1
            }
        }
        var fromTable: [HeldLock: Int] = [:]
        for index in 0..<table.heldCount {
            let lock = table.heldLock(at: index)
            fromTable[HeldLock(client: lock.client, file: lock.file, range: lock.range, kind: lock.kind), default: 0] += 1
        }
        precondition(fromStates == fromTable, "the lock table and the SSRs disagree")
    }
}

/// One held lock, as the table and the SSRs both describe it.
struct HeldLock: Hashable {
    var client: UInt32
    var inode: UInt32
    var generation: UInt32
    var start: UInt64
    var end: UInt64
    var kind: UInt8

    init(client: ClientID, file: FileKey, range: LockRange, kind: LockKind) {
        self.client = client.rawValue
        inode = file.inode.rawValue
        generation = file.generation
        start = range.start
        end = range.end
        self.kind = kind.rawValue
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFileSystemState(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var server = Server(&input)
    server.check()
    var requests = 0
    while !input.isAtEnd, requests < 200 {
        requests += 1
        let opcode = input.byte()
        let client = Int(input.byte() % 3)
        if server.clients[client].waiting && opcode % 9 != 6 && opcode % 9 != 7 { continue }
        server.run(opcode, client: client, &input)
        server.check()
    }
    return 0
}

// Server state regions: binding, the per-request window, recovery and unbinding.
//
//   client C                       kernel                               server S
//   send(S, op) ──────────► bind C to S on first use (pages from C's budget)
//                           request id = ++C.binding.lastIssued
//                           map C's SSR at S's window (RW, U) ─────► receive: a6 = id
//                                                                    ...reads/commits SSR...
//   reply arrives ◄──────── unmap window, sfence.vma per page ◄───── reply(C)
//                           C.binding.lastCompleted = id
//
// Need-to-know: S's window holds at most one client's SSR, and only while S is
// working for that client — between delivery (or `ssrOpen` of a held request) and
// its reply, its next receive, or its next `ssrOpen`. The client never maps its SSR.
//
// Recovery (after Kernel+Restart.swift restarted S): S walks its SSRs with
// `ssrRecoverNext`, each mapped in turn, gives each a verdict, then calls
// `recoveryComplete`; until then S takes no messages, and the requests that were in
// flight wait in its queue with their original ids.
//
// Unbinding: when C ends, its bindings become orphans in place (SSRBinding.swift).
// A server that is working on C's request at that moment keeps C's SSR mapped
// until it replies (to nobody) or receives — pulling the pages from under it would
// fault an innocent server. On its next receive S gets an unbind message from C's
// last TaskID with the SSR mapped, cleans up (closes, unlocks, cancels), and its
// reply frees the SSR; the client's lingering slot is freed with its last SSR.
//
// One live instance per SSR server program: bindings name the program, so a second
// instance would recover, map and free SSRs the first one is using. `spawn`
// refuses it (Kernel+Lifecycle.swift).

import CurioABI

extension Kernel {
    /// Finds the binding `client` uses with `serverProgram` (orphans of an earlier
    /// incarnation are not in use). Always inlined: called out of line from the send
    /// path, it made the compiler copy the whole kernel state to pass `self`.
    @inline(__always)
    func binding(of client: Int, to serverProgram: Int) -> Int? {
        for index in 0..<SSRTable.bindingsPerTask
        where tasks[client].bindings[index].serverProgram == serverProgram
            && tasks[client].bindings[index].state != .orphaned {
            return index
        }
        return nil
    }

    /// The binding `client` uses to call `serverProgram`, created (and charged to the
    /// client) on first use. A binding whose state was lost starts again from zero;
    /// if the client has not been told of the loss yet (it was not waiting for the
    /// server when recovery gave its state up), this call tells it instead: a client
    /// whose timers or open files are gone must learn so, not find them missing.
    mutating func bind(_ client: Int, to serverProgram: Int) throws(SyscallError) -> IssuedRequest {
        if let existing = binding(of: client, to: serverProgram) {
            if tasks[client].bindings[existing].state == .lost {
                let told = tasks[client].bindings[existing].lossReported
                zeroSSR(tasks[client].bindings[existing])
                tasks[client].bindings[existing].state = .valid
                tasks[client].bindings[existing].lossReported = false
                if !told { throw .serverStateLost }
            }
            return IssuedRequest(binding: existing, bound: false)
        }
        var free: Int?
        for index in 0..<SSRTable.bindingsPerTask where !tasks[client].bindings[index].isUsed {
            free = index
            break
        }
        guard let index = free else { throw .outOfMemory }
        let pages = image.program(serverProgram).ssrPages
        guard tasks[client].pagesUsed + pages <= tasks[client].pageBudget, frames.freeFrames >= pages else {
            throw .outOfMemory
        }
        var record = SSRBinding()
        record.serverProgram = serverProgram
        record.pageCount = pages
        record.owner = id(of: client)
        for page in 0..<pages {
            guard let frame = frames.allocate() else { preconditionFailure("frames counted free but none allocated") }
            record.frames[page] = frame.rawValue
        }
        tasks[client].pagesUsed += pages
        tasks[client].bindings[index] = record
        return IssuedRequest(binding: index, bound: true)
    }

    /// Issues the next request id on the binding `client` uses to call `server`.
    mutating func issueRequest(from client: Int, to server: Int) throws(SyscallError) -> IssuedRequest {
        guard tasks[server].ssrPages > 0 else { return IssuedRequest(binding: -1, bound: false) }
        let issued = try bind(client, to: tasks[server].program)
        tasks[client].bindings[issued.binding].lastIssuedRequest &+= 1
        tasks[client].requestBinding = issued.binding
        return issued
    }

    /// Undoes `issueRequest` for a send whose delivery failed: the id is taken back
    /// and a binding made for it is freed, so a refused call leaves nothing behind.
    mutating func withdrawRequest(_ issued: IssuedRequest, of client: Int) {
        guard issued.binding >= 0 else { return }
        if issued.bound {
            freeBinding(issued.binding, of: client)
        } else {
            tasks[client].bindings[issued.binding].lastIssuedRequest &-= 1
        }
    }

    /// Maps `client`'s SSR into `server`'s window for the request being delivered or
    /// reopened; returns the request id (0 if the client has no SSR with the server).
    @discardableResult
    mutating func openWindow(of server: Int, for client: Int) -> UInt64 {
        let cached = tasks[client].requestBinding
        let index: Int
        if tasks[client].bindings[cached].serverProgram == tasks[server].program,
           tasks[client].bindings[cached].state != .orphaned {
            index = cached
        } else if let found = binding(of: client, to: tasks[server].program) {
            index = found
        } else {
            return 0
        }
        closeWindow(of: server)
        mapWindow(of: server, binding: index, of: client)
        tasks[server].windowClient = client
        tasks[server].windowBinding = index
        let cursor = tasks[server].recentCursor
        tasks[server].recentWindows[cursor] = 1 << 62 | UInt64(id(of: client).rawValue) << 8 | UInt64(index)
        tasks[server].recentCursor = (cursor + 1) & (SSRTable.recentWindows - 1)
        return tasks[client].bindings[index].lastIssuedRequest
    }

    /// Unmaps whatever SSR the server's window holds, flushing just those pages.
    mutating func closeWindow(of server: Int) {
        let pages = tasks[server].windowPages
        guard pages > 0 else { return }
        tasks[server].windowPages = 0
        tasks[server].windowClient = -1
        tasks[server].windowOrphan = -1
        let entries = PhysicalAddress(tasks[server].windowEntries)
        for page in 0..<pages {
            Sv39.store(PageTableEntry(rawValue: 0), at: entries.advanced(by: page * 8), memory: platform.memory)
            platform.flushPage(UInt64(SSRWindow.base) + UInt64(page * pageSize), asid: asid(of: server))
        }
    }

    /// Maps an SSR at the window by writing its entries in place (no walk, no
    /// allocation: the table was built at spawn). A and D are preset, as for all
    /// Curio mappings the hardware might otherwise have to update.
    /// The binding is named by slot and index, not passed by value: a copy of the
    /// record on every delivery was a measurable share of the SSR round trip.
    private mutating func mapWindow(of server: Int, binding index: Int, of owner: Int) {
        let pages = tasks[owner].bindings[index].pageCount
        tasks[server].windowPages = pages
        let entries = PhysicalAddress(tasks[server].windowEntries)
        let flags = PageFlags.valid.union(.read).union(.write).union(.user).union(.accessed).union(.dirty)
        for page in 0..<pages {
            Sv39.store(PageTableEntry(frame: PhysicalAddress(tasks[owner].bindings[index].frames[page]), flags: flags),
                       at: entries.advanced(by: page * 8), memory: platform.memory)
        }
    }

    /// Builds the page table under a server's window once, at spawn, so mapping an SSR
    /// later never needs memory (and cannot fail half-way through a delivery).
    mutating func prepareWindow(of server: Int, scratch: PhysicalAddress) throws(SyscallError) {
        guard let space = tasks[server].addressSpace else { return }
        let window = VirtualAddress(UInt64(SSRWindow.base))
        do {
            tasks[server].pagesUsed += try space.map(window, to: scratch, flags: [.read], allocator: &frames)
        } catch {
            throw .outOfMemory
        }
        tasks[server].windowEntries = space.walk(window, memory: platform.memory).slot.rawValue
        _ = space.unmap(window, memory: platform.memory)
        guard tasks[server].pagesUsed <= tasks[server].pageBudget else { throw .outOfMemory }
    }

    private func zeroSSR(_ record: SSRBinding) {
        for page in 0..<record.pageCount {
            platform.memory.pointer(to: PhysicalAddress(record.frames[page])).initializeMemory(
                as: UInt8.self, repeating: 0, count: pageSize)
        }
    }

    /// Frees one of a slot's SSRs and its charge.
    mutating func freeBinding(_ index: Int, of slot: Int) {
        let record = tasks[slot].bindings[index]
        for page in 0..<record.pageCount { frames.free(PhysicalAddress(record.frames[page])) }
        tasks[slot].pagesUsed -= record.pageCount
        tasks[slot].bindings[index] = SSRBinding()
    }

    /// The SSR a server's window shows now (a request's or an unbind's), if any.
    func windowRecord(of server: Int) -> SSRBinding? {
        if tasks[server].windowClient >= 0 {
            return tasks[tasks[server].windowClient].bindings[tasks[server].windowBinding]
        }
        let position = tasks[server].windowOrphan
        guard position >= 0 else { return nil }
        return tasks[position / SSRTable.bindingsPerTask].bindings[position % SSRTable.bindingsPerTask]
    }

    // MARK: System calls

    mutating func ssrOpen(by server: Int, client id: TaskID) throws(SyscallError) {
        guard let client = liveSlot(id), tasks[client].state == .awaitingReply, tasks[client].partner == server,
              binding(of: client, to: tasks[server].program) != nil else { throw .notWaitingForReply }
        let request = openWindow(of: server, for: client)
        let file = registers(server)
        file.setResult(1, SSRWindow.base)
        file.setResult(2, UInt(tasks[server].ssrPages * pageSize))
        file.setResult(3, UInt(request))
    }

    /// Maps the next SSR bound to the calling server, from `cursor` (slot * bindings +
    /// binding index), and says whose it is and in what state.
    mutating func ssrRecoverNext(by server: Int, cursor: Int) {
        closeWindow(of: server)
        let program = tasks[server].program
        let file = registers(server)
        var position = cursor
        while position < Self.maxTasks * SSRTable.bindingsPerTask {
            let client = position / SSRTable.bindingsPerTask
            guard tasks[client].isLive else {
                // Most of the 320 slots are free: skip a slot at a time, not a binding.
                position = (client + 1) * SSRTable.bindingsPerTask
                continue
            }
            let index = position % SSRTable.bindingsPerTask
            position += 1
            let record = tasks[client].bindings[index]
            guard record.serverProgram == program, record.state != .lost, record.state != .orphaned else { continue }
            mapWindow(of: server, binding: index, of: client)
            tasks[server].windowClient = client
            tasks[server].windowBinding = index
            file.setResult(1, UInt(id(of: client).rawValue))
            file.setResult(2, UInt(record.state.rawValue))
            file.setResult(3, UInt(position))
            file.setResult(4, UInt(record.lastCompletedRequest))
            file.setResult(5, SSRWindow.base)
            return
        }
        file.setResult(1, UInt(TaskID.kernel.rawValue))
        file.setResult(3, UInt(position))
    }

    mutating func ssrVerdict(by server: Int, client id: TaskID, verdict: SSRVerdict) throws(SyscallError) {
        guard let client = liveSlot(id), let index = binding(of: client, to: tasks[server].program) else {
            throw .notFound
        }
        switch verdict {
        case .valid, .repaired:
            tasks[client].bindings[index].state = .valid
        case .lost:
            tasks[client].bindings[index].state = .lost
            if tasks[server].windowClient == client { closeWindow(of: server) }
            tasks[client].bindings[index].lossReported =
                failPendingRequest(of: client, to: server, with: .serverStateLost)
        }
    }

    mutating func recoveryComplete(by server: Int) {
        closeWindow(of: server)
        tasks[server].recovering = false
        confirmUpgrade(of: server)
    }

    /// Ends a client's blocked call to `server` with an error; false if it had none.
    @discardableResult
    mutating func failPendingRequest(of client: Int, to server: Int, with error: SyscallError) -> Bool {
        switch tasks[client].state {
        case .sending where tasks[client].partner == server:
            tasks[server].sendersWaiting.remove(client)
        case .awaitingReply where tasks[client].partner == server:
            break
        default:
            return false
        }
        registers(client).setResult(0, error.rawValue)
        makeRunnable(client)
        return true
    }

    /// The reply for a request from a bound client completes its request id.
    mutating func completeRequest(of client: Int, by server: Int) {
        guard tasks[server].ssrPages > 0 else { return }
        let index: Int
        if tasks[server].windowClient == client {
            index = tasks[server].windowBinding
            closeWindow(of: server)
        } else if let found = binding(of: client, to: tasks[server].program) {
            index = found
        } else {
            return
        }
        tasks[client].bindings[index].lastCompletedRequest = tasks[client].bindings[index].lastIssuedRequest
        tasks[server].repliedSincePoison = true
    }

    // MARK: Unbinding

    /// A client is ending, or (as a server) restarting: each SSR it uses becomes an
    /// orphan in place, still charged to it, until its server has cleaned up; it is
    /// freed at once only when that server is gone for good.
    mutating func orphanBindings(of client: Int) {
        for index in 0..<SSRTable.bindingsPerTask where tasks[client].bindings[index].isActive {
            let program = tasks[client].bindings[index].serverProgram
            guard let server = firstLiveInstance(of: program), server != client else {
                freeBinding(index, of: client)
                continue
            }
            tasks[client].bindings[index].state = .orphaned
            programsWithOrphans |= 1 << UInt64(program)
            notifyUnbind(server)
        }
    }

    /// Delivers a pending unbind message to a server entering `receive`; true if it did.
    mutating func deliverUnbind(to server: Int) -> Bool {
        let program = tasks[server].program
        guard programsWithOrphans & (1 << UInt64(program)) != 0 else { return false }
        guard let position = firstOrphan(of: program) else {
            programsWithOrphans &= ~(1 << UInt64(program))
            return false
        }
        let record = tasks[position / SSRTable.bindingsPerTask].bindings[position % SSRTable.bindingsPerTask]
        closeWindow(of: server)
        mapWindow(of: server, binding: position % SSRTable.bindingsPerTask, of: position / SSRTable.bindingsPerTask)
        tasks[server].windowOrphan = position
        let file = registers(server)
        file.setResult(0, 0)
        file.setResult(1, UInt(record.owner.rawValue))
        file.setResult(2, SSRMessage.unbindOperation)
        file.setResult(3, 0)
        file.setResult(4, 0)
        file.setResult(5, 0)
        file[.a6] = 0
        return true
    }

    /// A server's reply to an unbind message: the SSR can go. True if it was one.
    mutating func finishUnbind(by server: Int, client: TaskID) -> Bool {
        let position = tasks[server].windowOrphan
        guard position >= 0 else { return false }
        let slot = position / SSRTable.bindingsPerTask
        let index = position % SSRTable.bindingsPerTask
        guard tasks[slot].bindings[index].state == .orphaned, tasks[slot].bindings[index].owner == client else {
            return false
        }
        closeWindow(of: server)
        freeOrphan(index, of: slot)
        return true
    }

    /// Frees an orphaned SSR, and the lingering slot that held it once it holds no more.
    mutating func freeOrphan(_ index: Int, of slot: Int) {
        let program = tasks[slot].bindings[index].serverProgram
        freeBinding(index, of: slot)
        if firstOrphan(of: program) == nil { programsWithOrphans &= ~(1 << UInt64(program)) }
        if tasks[slot].state == .ended, tasks[slot].parent == nil, !tasks[slot].hasBindings { release(slot) }
    }

    /// Frees the orphans of a program that is gone for good.
    mutating func dropOrphans(of program: Int) {
        while let orphan = firstOrphan(of: program) {
            freeOrphan(orphan % SSRTable.bindingsPerTask, of: orphan / SSRTable.bindingsPerTask)
        }
    }

    /// The first orphan waiting for `program`'s cleanup, as slot * bindingsPerTask + index.
    func firstOrphan(of program: Int) -> Int? {
        for slot in 0..<Self.maxTasks where tasks[slot].state != .free {
            for index in 0..<SSRTable.bindingsPerTask
            where tasks[slot].bindings[index].serverProgram == program && tasks[slot].bindings[index].state == .orphaned {
                return slot * SSRTable.bindingsPerTask + index
            }
        }
        return nil
    }

    /// An unbind is work like a request: the watchdog watches it (a server that hung
    /// while cleaning up was never restarted).
    private mutating func notifyUnbind(_ server: Int) {
        if tasks[server].state == .receiving && !tasks[server].recovering {
            if deliverUnbind(to: server) {
                noteServing(server)
                makeRunnable(server)
            }
        }
    }

    // MARK: Listing

    /// The `index`th SSR `caller` may see, for the shell's `ssr`: a manager sees every
    /// SSR (orphans included); anyone else those it owns and those it serves.
    func ssrInfo(_ index: Int, for caller: Int) -> SSRInfo? {
        var remaining = index
        let everything = tasks[caller].mayManage
        for slot in 0..<Self.maxTasks where tasks[slot].state != .free {
            for binding in 0..<SSRTable.bindingsPerTask where tasks[slot].bindings[binding].isUsed {
                let record = tasks[slot].bindings[binding]
                guard everything || slot == caller || record.serverProgram == tasks[caller].program else { continue }
                if remaining == 0 { return info(record, owner: record.owner) }
                remaining -= 1
            }
        }
        return nil
    }

    private func info(_ record: SSRBinding, owner: TaskID) -> SSRInfo {
        var name: (UInt64, UInt64) = (0, 0)
        image.program(record.serverProgram).name.withBytes { bytes in
            withUnsafeMutableBytes(of: &name) { $0.copyMemory(from: bytes) }
        }
        return SSRInfo(owner: owner, serverProgram: UInt8(record.serverProgram), pages: UInt8(record.pageCount),
                       state: record.state, lastCompletedRequest: record.lastCompletedRequest, serverName: name)
    }
}

// The IPC fastpath: the calls made on every request, done in a straight line.
//
// Nearly every trap in a running Curio is one of two: a client calling a server that
// is waiting for it, or that server answering and waiting for the next request.
// seL4's lesson is that these cases can be recognised by a handful of tests on the
// registers and two task records, and then done without the general machinery: no
// request decoded into a value, no user buffer walked, no scheduler search, and the
// processor handed straight to the partner. trap.S goes with it: it saves only the
// registers a call may clobber before asking here, and the other half of the
// register file only when a different process will resume.
//
//   ecall --> trap.S saves ra, t*, a*, sp, pc
//               |
//               v
//         fastpath(from:) -- nil ------------> trap.S saves s*, gp, tp; kernel_trap (slow path)
//               |
//               +-- the caller ---------------> trap.S restores what it saved, sret
//               +-- another slot -------------> trap.S saves s*, gp, tp; restores the other, sret
//
// What the fastpath takes:
//   whoAmI, clock     answered in place, when the caller keeps the processor
//   send              registers only (no payload, no reply buffer), to a server
//                     blocked in `receive` with no fault armed for delivery; to an
//                     SSR server only over a binding already made and not lost:
//                     issue the request id, map the SSR, seal, deliver, run the server
//   replyAndReceive   no reply payload, to the client awaiting it, its seal (if any)
//                     right, its SSR the one mapped; with no notification, sender,
//                     unbind or unchecked receive buffer waiting for the server:
//                     unmap, complete the request, run the client
// and only when the scheduler would make the same choice: the partner alone at the
// most urgent ready priority, not owed the rest of a preempted slice. The SSR steps
// are the slow path's own functions (`openWindow`, `completeRequest`,
// `checkReplySeal`), called once the fastpath knows they will succeed.
//
// The slow path is the definition. The fastpath tests everything the slow path
// would find, changes nothing unless it acts, and when it acts leaves exactly the
// state the slow path would leave (FastpathTests runs both on the same scenarios and
// compares every register, task record and scheduling choice). Anything else — a
// payload, a receiver not yet waiting, a first call that must bind, a lost SSR, a
// broken seal, an armed fault, a tie at the same priority — goes the slow way,
// unchanged in meaning.
//
// A receive buffer is checked against the page tables once, by the slow path, and
// remembered in the task (`checkedReceiveAddress`, `checkedReceiveCount`): a
// process's mappings change only when its address space is built, which forgets the
// check, and at its SSR window, which a remembered buffer may not overlap.

import CurioABI

extension Kernel {
    /// The slot to resume after the system call in `slot`'s saved registers, when the
    /// fastpath answered it; nil, with nothing changed, when the slow path must
    /// (`syscall(from:)`). Only a0...a7, t0 and the pc of `slot` are read.
    @inline(__always)
    public mutating func fastpath(from slot: Int) -> Int? {
        // A fault counting down the caller's execution needs `trapped`/`resuming`.
        guard executionTargets.isEmpty else { return nil }
        let file = registers(slot)
        switch file[.a7] {
        case UInt64(Syscall.send.rawValue):
            return fastSend(from: slot, file)
        case UInt64(Syscall.replyAndReceive.rawValue):
            return fastReplyAndReceive(by: slot, file)
        case UInt64(Syscall.whoAmI.rawValue):
            guard keepsProcessor(slot) else { return nil }
            file.setResult(1, UInt(id(of: slot).rawValue))
        case UInt64(Syscall.clock.rawValue):
            guard keepsProcessor(slot) else { return nil }
            file.setResult(1, UInt(platform.now()))
        default:
            return nil
        }
        file.setResult(0, 0)
        file[.pc] &+= 4
        return slot
    }

    /// `send` with the message in registers, to a server waiting in `receive`.
    /// (Out of line, as is the reply: inlined, their registers made every fastpath
    /// call, whoAmI too, save more in its prologue.)
    @inline(never)
    private mutating func fastSend(from caller: Int, _ file: RegisterFile) -> Int? {
        let call = file.argument(0)
        // No payload, no reply buffer, a well-formed call word (see `decodeSend`).
        guard call >> 48 == 0, file.argument(4) == 0, file.argument(6) == 0 else { return nil }
        let endpoint = TaskID(rawValue: UInt32(truncatingIfNeeded: call))
        let server = endpoint.index
        guard server < Self.maxTasks, server != caller else { return nil }
        // Receiving: live, not recovering (a recovering server is not `.receiving`
        // to senders: `send` checks it too).
        guard tasks[server].state == .receiving, tasks[server].generation == endpoint.generation,
              !tasks[server].recovering, tasks[server].injection.kind == nil,
              tasks[caller].sendMask & (1 << UInt64(tasks[server].program)) != 0 else { return nil }
        // An SSR server: the binding exists (a first call binds, which allocates) and
        // holds state (a lost one is reset, or reported, by `bind`); the window is shut.
        let usesSSR = tasks[server].ssrPages > 0
        var binding = 0
        if usesSSR {
            guard let index = self.binding(of: caller, to: tasks[server].program),
                  tasks[caller].bindings[index].state != .lost, tasks[server].windowPages == 0 else { return nil }
            binding = index
        }
        let priority = tasks[server].priority
        guard schedulerPicks(server, priority: priority, whenBlocking: caller) else { return nil }

        file[.pc] &+= 4
        let now = platform.now()
        let operation = UInt(UInt16(truncatingIfNeeded: call >> 32))
        let delivered = registers(server)
        delivered.setResult(0, 0)
        delivered.setResult(1, UInt(id(of: caller).rawValue))
        delivered.setResult(2, operation)
        delivered.setResult(3, file.argument(1))
        delivered.setResult(4, file.argument(2))
        delivered.setResult(5, 0)
        if usesSSR {
            tasks[caller].bindings[binding].lastIssuedRequest &+= 1
            tasks[caller].requestBinding = binding
            let request = openWindow(of: server, for: caller)
            delivered[.a6] = request
            delivered[.a7] = RequestSeal.value(sender: id(of: caller).rawValue, operation: operation,
                                               word0: file.argument(1), word1: file.argument(2), length: 0,
                                               requestID: request)
        } else {
            delivered[.a6] = 0
        }
        if tasks[server].restartable {
            tasks[server].servingSince = now
            tasks[server].servedTicks = 0
        }
        ready.remove(slot: caller, priority: tasks[caller].priority)
        tasks[caller].state = .awaitingReply
        tasks[caller].partner = server
        tasks[caller].awaitingReplySince = 0
        tasks[caller].replyPromisedBy = 0
        tasks[caller].promiseOverdueTicks = 0
        tasks[server].state = .runnable
        tasks[server].partner = -1
        ready.insert(slot: server, priority: priority)
        switchDirectly(to: server, priority: priority, now: now)
        return server
    }

    /// `replyAndReceive` with the reply in registers, when nothing else waits for the
    /// server: it blocks in `receive` and its client runs.
    @inline(never)
    private mutating func fastReplyAndReceive(by server: Int, _ file: RegisterFile) -> Int? {
        let rawClient = file.argument(0)
        let capacity = file.argument(6)
        // No reply payload; the receive buffer empty or the one checked before.
        guard file.argument(5) == 0, rawClient <= UInt(UInt32.max) else { return nil }
        guard capacity == 0 || (UInt64(capacity) == tasks[server].checkedReceiveCount
                                && UInt64(file.argument(4)) == tasks[server].checkedReceiveAddress) else { return nil }
        let mask = file.argument(1) >> 32
        guard tasks[server].notificationsPending & mask == 0, tasks[server].sendersWaiting.isEmpty,
              !tasks[server].recovering else { return nil }
        let clientID = TaskID(rawValue: UInt32(truncatingIfNeeded: rawClient))
        let client = clientID.index
        guard client < Self.maxTasks, tasks[client].state == .awaitingReply,
              tasks[client].generation == clientID.generation, tasks[client].partner == server else { return nil }
        // An SSR server: the reply's seal (if any) is right, the client's SSR is the
        // one mapped, and no unbind waits to be delivered at the receive.
        let usesSSR = tasks[server].ssrPages > 0
        if usesSSR {
            guard tasks[server].windowClient == client, tasks[server].windowOrphan < 0,
                  programsWithOrphans & (1 << UInt64(tasks[server].program)) == 0 else { return nil }
            do {
                try checkReplySeal(by: server, to: client, code: file.argument(1) & 0xFFFF_FFFF,
                                   words: (file.argument(2), file.argument(3)), length: 0)
            } catch {
                return nil
            }
        }
        let priority = tasks[client].priority
        guard schedulerPicks(client, priority: priority, whenBlocking: server) else { return nil }

        file[.pc] &+= 4
        let now = platform.now()
        if usesSSR { completeRequest(of: client, by: server) }
        let answered = registers(client)
        answered.setResult(0, 0)
        answered.setResult(1, file.argument(1) & 0xFFFF_FFFF)
        answered.setResult(2, file.argument(2))
        answered.setResult(3, file.argument(3))
        answered.setResult(4, 0)
        tasks[server].repliedSinceRestart = true
        if tasks[client].servingSince != 0 {
            tasks[client].servingSince = now
            tasks[client].servedTicks = 0
        }
        tasks[client].state = .runnable
        tasks[client].partner = -1
        ready.insert(slot: client, priority: priority)

        file.setResult(0, capacity == 0 ? 0 : file.argument(4))
        file.setResult(1, capacity)
        file.setResult(2, mask)
        tasks[server].servingSince = 0
        tasks[server].receiveCount &+= 1
        tasks[server].receiveMask = mask
        ready.remove(slot: server, priority: tasks[server].priority)
        tasks[server].state = .receiving
        tasks[server].partner = -1
        switchDirectly(to: client, priority: priority, now: now)
        return client
    }

    /// Whether `reschedule` would leave the running `slot` running: nothing more
    /// urgent is ready, and its slice lasts or no equal waits.
    @inline(__always)
    private mutating func keepsProcessor(_ slot: Int) -> Bool {
        let priority = tasks[slot].priority
        guard ready.occupiedLevels & ((1 &<< priority) &- 1) == 0 else { return false }
        return platform.now() < sliceEnds || ready.isOnlyReady(slot: slot, priority: priority)
    }

    /// Whether `reschedule`, once `blocking` (running) has blocked and `next` (blocked
    /// now) is ready at `priority`, would choose `next` with a fresh slice: no other
    /// process ready at that priority or a more urgent one, and `next` not the one
    /// owed the rest of a preempted slice there.
    @inline(__always)
    private mutating func schedulerPicks(_ next: Int, priority: UInt8, whenBlocking blocking: Int) -> Bool {
        let asUrgent = ready.occupiedLevels & UInt8(truncatingIfNeeded: (2 &<< Int(priority)) &- 1)
        if asUrgent != 0 {
            let blockingPriority = tasks[blocking].priority
            guard asUrgent == 1 &<< blockingPriority, ready.isOnlyReady(slot: blocking, priority: blockingPriority)
            else { return false }
        }
        return preemptedAtLevel[Int(priority)] != next
    }

    /// What `reschedule` does when it picks `next` at `priority` after the running
    /// process blocked.
    @inline(__always)
    private mutating func switchDirectly(to next: Int, priority: UInt8, now: UInt64) {
        preemptedAtLevel[Int(priority)] = -1
        lastRunAtLevel[Int(priority)] = next
        current = next
        sliceEnds = now &+ Self.timeSlice
    }

    /// The slow path checked `buffer` as `slot`'s receive buffer: remember it, unless
    /// it overlaps the SSR window, whose mappings change with every request.
    mutating func rememberCheckedReceiveBuffer(_ buffer: UserBuffer, of slot: Int) {
        let start = UInt64(buffer.address.rawValue)
        let windowStart = UInt64(SSRWindow.base)
        let windowEnd = windowStart + UInt64(SSRWindow.maxPages * pageSize)
        guard buffer.count > 0, start &+ UInt64(buffer.count) <= windowStart || start >= windowEnd else { return }
        tasks[slot].checkedReceiveAddress = start
        tasks[slot].checkedReceiveCount = UInt64(buffer.count)
    }
}

// Transparent restart of a faulting server (a micro-reboot).
//
// A restartable server that faults, hangs (the watchdog) or reports its own failure
// is not ended. In one step the kernel:
//   1. marks *suspect* the SSR mapped in its window and those mapped for its three
//      requests before — the client state the error can have touched (need-to-know),
//      to the bound the kernel can know: an error that lay latent for longer is left
//      to the server's own checks — and closes the window;
//   2. turns every client awaiting its reply back into a queued sender, so the
//      request is re-delivered, with its original request id, after recovery;
//   3. resets the devices a driver drove, so that none keeps writing into the
//      crashed incarnation's DMA pages; then discards the server's address space
//      (data, bss, heap, stack, DMA pages, and any code an injected fault patched)
//      and loads the program again from the boot image into the same slot, with the
//      next generation; SSRs are untouched;
//   4. holds the new process back if it has been restarting in quick succession
//      (exponential backoff), and gives it up after too many (`failed`): its
//      clients then get `serverFailed`, and a parent waiting for it its status.
//      Restarts are in quick succession when they come less than a second apart
//      and the server answered nobody in between: a server that serves between
//      faults, however frequent, is making progress for its clients (and a soak
//      may strike it every 100 ms); one that answers nobody is failing everyone.
//      So is one that fails at the very instruction its previous incarnation failed
//      at, having taken at most two messages, on another client's request (or a
//      notification): it answers the one request a fresh incarnation takes through
//      `receive` and dies on the next message, whoever sends it — a bug in the step
//      every message takes, which would otherwise serve its clients one request per
//      restart, in turn, for ever (campaign seed 5364254567356249). Failures on one
//      client's requests alone are that client's (below).
//
// A server blocked in its own `send` when it is restarted leaves its partner's queue
// of senders: the fresh process never made that call. Its own SSRs with other
// servers become orphans of the old incarnation (Kernel+SSR.swift).
//
// An upgraded server (Kernel+Upgrade.swift) that fails before its first recovery is
// done is restarted with the code it ran before the upgrade: a rollback.
//
// Poison requests: a request whose handling crashes the server every time would be
// re-delivered after every restart until backoff gave the server up for everyone.
// The kernel remembers what the server was doing for whom at each crash (the
// request id in its window, or the SSR it was recovering, or the unbind it was
// handling); the second crash on the same one ends it alone: the request fails with
// `requestFailed` (its SSR is suspect and judged by recovery), an SSR that crashes
// recovery twice is judged lost (`serverStateLost`), an unbind that crashes twice is
// freed without cleanup. The server carries on for everyone else (paper §3: an
// error affects only the clients whose SSRs the server used).
// A client whose requests kill the server one after another fails alone too: when
// the server fails three times in a row on requests of one client, each time having
// taken at most two messages since its restart, the third request fails
// (`requestFailed`). That is a bug in the step every request takes after the first a
// fresh incarnation gets through `receive`: the redelivered request is answered
// there, the next one, through `replyAndReceive`, kills it again, and a client
// would be served one request per restart for ever (campaign seeds
// 5364254567356249, 8200062610915983); only that client's requests count, so it
// can hurt no one but itself.
// The new process starts in recovery (Kernel+SSR.swift) and takes no message until
// it has judged every SSR.
//
// The watchdog: a server that has run for longer than `watchdogTicks` on one request
// without blocking — not waiting on another server — is declared hung. It counts the
// server's own running time, sampled at each clock interrupt (whoever was interrupted
// is charged the time since the previous interrupt, or since it started or woke if
// that was later, at most one clock period), not the time since the request came: a
// server that a more urgent one keeps from the processor (a hung one, say) has not
// hung. And a server with a
// reply limit (system.toml `reply_limit`) that has kept a client waiting longer than
// that is declared to have forgotten the request — a fault that left it alive and
// receiving, with the client's request lost from its tables, would otherwise leave
// that client waiting for ever. Servers that may hold requests for long (timers,
// lock waits) have no limit.

import CurioABI

extension Kernel {
    /// 50 ms: far beyond any request's honest cost here.
    public static var watchdogTicks: UInt64 { 50 * ticksPerMillisecond }
    /// Restarts closer together than this (a second) count as "quick succession".
    public static var rapidRestartWindow: UInt64 { Clock.ticksPerSecond }
    /// Failures in a row on one client's requests, soon after each restart, before its
    /// request fails alone.
    public static var failuresBeforeClientFails: UInt32 { 3 }
    /// Restarts in quick succession before a server is held back, and given up.
    public static var restartsBeforeBackoff: Int { 3 }
    public static var restartsBeforeGivingUp: Int { 8 }

    /// Stops a process for a hardware fault, a runtime trap, a hang or a reported
    /// failure: a restartable server is restarted, anything else ends.
    public mutating func fault(_ slot: Int, cause: FaultCause, address: UInt64) {
        reportFault(slot, cause: cause, address: address)
        if tasks[slot].restartable {
            restart(slot, cause: cause)
        } else if tasks[slot].keepsSSRs {
            restartClient(slot, cause: cause)
        } else {
            end(slot, status: .faulted(cause))
        }
        reschedule()
    }

    mutating func restart(_ slot: Int, cause: FaultCause) {
        let now = platform.now()
        let program = tasks[slot].program
        // An upgraded server that fails before its recovery is done goes back to the
        // code it ran before (Kernel+Upgrade.swift); the crash is the version's, and
        // counts against neither that code nor a client's request.
        let rollback = tasks[slot].recovering && tasks[slot].upgradedFrom >= 0
        let code = rollback ? Int(tasks[slot].upgradedFrom) : Int(tasks[slot].codeProgram)
        let site = crashSite(of: slot)
        let poisoned = !rollback && site != nil && site == tasks[slot].lastCrash
        if tasks[slot].windowClient >= 0 {
            let client = tasks[slot].windowClient
            let index = tasks[slot].windowBinding
            if tasks[client].bindings[index].state == .valid { tasks[client].bindings[index].state = .suspect }
        }
        markRecentWindowsSuspect(of: slot)
        // Failures in a row on one client's requests, each incarnation killed by its
        // second message at most (see the essay).
        let messages = tasks[slot].receiveCount &- tasks[slot].notificationsDelivered
        var streak: UInt32 = 0
        if let site, !rollback, !poisoned, !site.inRecovery {
            streak = site.client == tasks[slot].streakClient && messages <= 2 ? tasks[slot].streak + 1 : 1
        }
        let overrun = streak >= Self.failuresBeforeClientFails
        let orphanInWindow = tasks[slot].windowOrphan
        var queued = detachForReload(slot)
        if poisoned, let site { dropPoison(site, orphan: orphanInWindow, queued: &queued, server: slot) }
        if overrun, let site {
            dropPoison(site, orphan: orphanInWindow, queued: &queued, server: slot, times: "three times in a row")
        }

        // Two crashes on one poison request are that client's request failing, not the
        // server failing everyone — if the server answered someone since the last such
        // request: then the first crash is refunded and the second not counted, so
        // clients that keep sending requests that crash the server (a fuzzer found a
        // path deep enough to overflow fs's stack) cannot get it given up for all. A
        // server that answers nobody between poison requests (a bug every request
        // hits) is failing for everyone, and is given up as before.
        let failurePC = registers(slot)[.pc]
        let stuck = failurePC == tasks[slot].lastFailurePC && messages <= 2
            && (site == nil || site?.client != tasks[slot].streakClient)
        let quick = tasks[slot].lastRestart != 0 && now &- tasks[slot].lastRestart < Self.rapidRestartWindow
            && (!tasks[slot].repliedSinceRestart || stuck)
        let refunded = poisoned && tasks[slot].repliedSincePoison && !stuck
        let rapidRestarts = rollback ? tasks[slot].rapidRestarts
            : refunded ? max(tasks[slot].rapidRestarts - 1, 0) : quick ? tasks[slot].rapidRestarts + 1 : 0
        var kept = Task()
        kept.generation = tasks[slot].generation &+ 1
        kept.restarts = tasks[slot].restarts &+ 1
        kept.parent = tasks[slot].parent
        kept.sendersWaiting = queued
        kept.rapidRestarts = rapidRestarts
        kept.lastRestart = now
        kept.bindings = tasks[slot].bindings
        kept.lastCrash = poisoned || rollback || overrun ? CrashSite() : site ?? CrashSite()
        kept.streakClient = overrun ? TaskID(rawValue: 0) : site?.client ?? TaskID(rawValue: 0)
        kept.streak = overrun ? 0 : streak
        kept.lastFailurePC = rollback ? 0 : failurePC
        kept.repliedSincePoison = !poisoned && tasks[slot].repliedSincePoison

        discardAddressSpace(of: slot)

        do throws(SyscallError) {
            // A generation that would wrap would revive TaskIDs of long-gone incarnations.
            guard rapidRestarts < Self.restartsBeforeGivingUp, tasks[slot].generation < UInt16.max - 1 else {
                throw .serverFailed
            }
            try load(program, code: code, into: slot, as: kept, arguments: nil)
        } catch {
            giveUp(slot, program: program, code: code, cause: cause, queued: queued)
            return
        }
        if rollback { reportRollback(of: slot) }
        // A restarted server is watched from its first instruction: start-up and
        // recovery must reach `receive` as promptly as any request (a fault injected
        // while it waits to run would otherwise spin unseen).
        noteServing(slot)
        platform.write("[kernel] restarted ")
        image.program(program).name.withBytes { platform.write(bytes: $0) }
        platform.write(" (pid ")
        platform.write(decimal: slot)
        platform.write(", gen ")
        platform.write(decimal: Int(kept.generation))
        platform.write(", restart ")
        platform.write(decimal: Int(kept.restarts))
        platform.write(")\n")
        if rapidRestarts >= Self.restartsBeforeBackoff {
            let delay = UInt64(100_000) << UInt64(rapidRestarts - Self.restartsBeforeBackoff)
            tasks[slot].state = .held
            tasks[slot].heldUntil = now &+ delay
            noteDeadline(tasks[slot].heldUntil)
        } else {
            makeRunnable(slot)
        }
    }

    /// Takes a server that is about to be loaded again out of every IPC relationship
    /// of its incarnation: out of the queue it was sending in, its window closed, its
    /// own SSRs with other servers orphaned; every client awaiting its reply queued
    /// to send again. Returns the queued senders, for the next incarnation.
    mutating func detachForReload(_ slot: Int) -> SlotSet {
        if tasks[slot].state == .sending { tasks[tasks[slot].partner].sendersWaiting.remove(slot) }
        closeWindow(of: slot)
        orphanBindings(of: slot)
        var queued = tasks[slot].sendersWaiting
        for other in 0..<Self.maxTasks where tasks[other].state == .awaitingReply && tasks[other].partner == slot {
            tasks[other].state = .sending
            queued.insert(other)
        }
        return queued
    }

    /// Frees the address space of a server about to be loaded again, after stopping
    /// the devices it drove (they may hold its DMA addresses). Its SSR pages stay.
    mutating func discardAddressSpace(of slot: Int) {
        ready.remove(slot: slot, priority: tasks[slot].priority)
        if current == slot { current = nil }
        quiesceDevices(of: slot)
        if let space = tasks[slot].addressSpace {
            platform.flushAddressSpace(asid: asid(of: slot))
            _ = space.destroy(allocator: &frames)
        }
        tasks[slot].addressSpace = nil
        tasks[slot].pagesUsed = tasks[slot].bindingPages
    }

    /// The SSRs of the server's latest requests may hold what a latent error wrote.
    private mutating func markRecentWindowsSuspect(of server: Int) {
        for entry in 0..<SSRTable.recentWindows where tasks[server].recentWindows[entry] != 0 {
            let word = tasks[server].recentWindows[entry]
            let index = Int(word & 0xFF)
            guard let client = liveSlot(TaskID(rawValue: UInt32(truncatingIfNeeded: word >> 8))),
                  index < SSRTable.bindingsPerTask,
                  tasks[client].bindings[index].serverProgram == tasks[server].program,
                  tasks[client].bindings[index].state == .valid else { continue }
            tasks[client].bindings[index].state = .suspect
        }
    }

    /// What the server was doing, and for whom, when it crashed (nil: nothing of a
    /// client's — it was idle, or serving a client without an SSR).
    private func crashSite(of server: Int) -> CrashSite? {
        if tasks[server].windowClient >= 0 {
            let client = tasks[server].windowClient
            let record = tasks[client].bindings[tasks[server].windowBinding]
            return CrashSite(client: record.owner, request: record.lastIssuedRequest,
                             inRecovery: tasks[server].recovering)
        }
        guard let orphan = windowRecord(of: server) else { return nil }
        return CrashSite(client: orphan.owner, request: .max, inRecovery: false)
    }

    /// The second crash on the same request, SSR or unbind: that one alone fails.
    private mutating func dropPoison(_ site: CrashSite, orphan: Int, queued: inout SlotSet, server: Int,
                                     times: StaticString = "twice") {
        if orphan >= 0 {
            let slot = orphan / SSRTable.bindingsPerTask
            freeOrphan(orphan % SSRTable.bindingsPerTask, of: slot)
            reportPoison("an unbind", times: times, server: server)
            return
        }
        guard let client = liveSlot(site.client), let index = binding(of: client, to: tasks[server].program) else {
            return
        }
        let error: SyscallError
        if site.inRecovery {
            tasks[client].bindings[index].state = .lost
            error = .serverStateLost
            reportPoison("recovering an SSR", times: times, server: server)
        } else {
            error = .requestFailed
            reportPoison("a request", times: times, server: server)
        }
        let waiting = tasks[client].state == .sending && tasks[client].partner == server
        guard waiting, site.inRecovery || tasks[client].bindings[index].lastIssuedRequest == site.request else { return }
        queued.remove(client)
        registers(client).setResult(0, error.rawValue)
        makeRunnable(client)
    }

    private func reportPoison(_ what: StaticString, times: StaticString, server: Int) {
        platform.write("[kernel] ")
        image.program(tasks[server].program).name.withBytes { platform.write(bytes: $0) }
        platform.write(" crashed ")
        platform.write(times)
        platform.write(" on ")
        platform.write(what)
        platform.write(" of one client: that one alone fails\n")
    }

    /// A server restarted too often: its slot stays `failed` and every client
    /// waiting on it, now or later, gets `serverFailed`; a parent waiting for it gets
    /// its status. Orphans it left as a client stay for their servers' cleanup.
    mutating func giveUp(_ slot: Int, program: Int, code: Int, cause: FaultCause, queued: SlotSet) {
        var failed = Task()
        failed.generation = tasks[slot].generation == .max ? .max : tasks[slot].generation &+ 1
        failed.program = program
        failed.state = .failed
        failed.restarts = tasks[slot].restarts
        failed.bindings = tasks[slot].bindings
        failed.pagesUsed = tasks[slot].bindingPages
        failed.exitStatus = ExitStatus.faulted(cause).rawValue
        let parent = tasks[slot].parent.flatMap { liveSlot($0) }
        failed.parent = tasks[slot].parent
        tasks[slot] = failed
        var waiting = queued
        while let client = waiting.removeFirst() {
            registers(client).setResult(0, SyscallError.serverFailed.rawValue)
            makeRunnable(client)
        }
        if let parent, tasks[parent].state == .waiting, tasks[parent].partner == slot {
            registers(parent).setResult(0, 0)
            registers(parent).setResult(1, failed.exitStatus)
            makeRunnable(parent)
        }
        dropOrphans(of: program)
        dropPersistentPatches(of: program)
        dropPersistentPatches(of: code)
        platform.write("[kernel] gave up on ")
        image.program(program).name.withBytes { platform.write(bytes: $0) }
        platform.write(": it kept failing\n")
    }

    /// Clock work for servers: release held restarts and catch hangs.
    public mutating func superviseServers(now: UInt64) {
        chargeServingTime(now: now)
        for slot in 0..<Self.maxTasks {
            if tasks[slot].state == .awaitingReply {
                let server = tasks[slot].partner
                guard server >= 0, tasks[server].replyLimit != 0 else { continue }
                if tasks[slot].awaitingReplySince == 0 {
                    tasks[slot].awaitingReplySince = now
                } else if now &- tasks[slot].awaitingReplySince > tasks[server].replyLimit,
                          tasks[server].restartable, tasks[server].state != .held {
                    fault(server, cause: .hang, address: 0)
                }
            } else if tasks[slot].state == .held {
                if tasks[slot].heldUntil <= now { makeRunnable(slot) } else { noteDeadline(tasks[slot].heldUntil) }
            } else if tasks[slot].servingSince != 0, tasks[slot].state == .runnable,
                      tasks[slot].servedTicks > Self.watchdogTicks, tasks[slot].restartable {
                fault(slot, cause: .hang, address: 0)
            }
        }
    }

    /// How late past its promise a server may still reply: it is woken by its own
    /// timer at the promised time and answers within microseconds; this covers a
    /// clock period or two of other work first.
    static var promiseGrace: UInt64 { 10 * ticksPerMillisecond }

    /// Catches servers that forgot a held request: a fault that left the server
    /// running — a code fault in the timer's scan for due waits, say — and the client
    /// would wait for ever. A server promises a held client its reply by a time
    /// (`promiseReply`); one whose system description says `promises` must promise
    /// for every request it holds. Runs at a clock interrupt before the kernel's
    /// timers fire, and counts the interrupts at which a client still waits on a
    /// promise overdue by more than the grace, or on none from a server that must
    /// promise, while the server had had its chance: it sits idle in `receive`, or has
    /// come back to `receive` since the last count (one that keeps waking itself and
    /// answering nobody is never idle at an interrupt). At the first such interrupt
    /// the server's own wake-up may fire only now (or the guest clock leapt while the
    /// host was busy); at the second it has had its chance and answered nobody. A
    /// server busy or starved all along is not judged: that is the watchdog's business.
    mutating func superviseReplyPromises(now: UInt64) {
        for client in 0..<Self.maxTasks where tasks[client].state == .awaitingReply {
            let server = tasks[client].partner
            guard server >= 0, tasks[server].restartable, !tasks[server].recovering else { continue }
            let promise = tasks[client].replyPromisedBy
            guard promise != 0 || tasks[server].promisesReplies else { continue }
            let receives = tasks[server].receiveCount
            let hadChance = tasks[server].state == .receiving || receives != tasks[client].promiseReceiveMark
            tasks[client].promiseReceiveMark = receives
            let broken = promise == 0 || (now > promise && now - promise > Self.promiseGrace)
            guard hadChance, broken else { continue }
            tasks[client].promiseOverdueTicks &+= 1
            if tasks[client].promiseOverdueTicks >= 2 {
                tasks[client].replyPromisedBy = 0
                tasks[client].promiseOverdueTicks = 0
                fault(server, cause: .brokenPromise, address: 0)
            }
        }
    }

    /// Charges the process this clock interrupt interrupted, if it is serving, with
    /// the time since the previous interrupt (or since it started serving, if later),
    /// but never more than one clock period: when the host stops QEMU for a while the
    /// guest's clock leaps on, and one interrupt must not charge that leap to whoever
    /// happened to run (a busy CI host got a healthy timer restarted as hung).
    private mutating func chargeServingTime(now: UInt64) {
        defer { lastClockTick = now }
        guard currentSlot >= 0, tasks[currentSlot].servingSince != 0 else { return }
        let since = max(lastClockTick, tasks[currentSlot].servingSince)
        if now > since { tasks[currentSlot].servedTicks &+= min(now - since, Self.timeSlice) }
    }

    mutating func noteDeadline(_ deadline: UInt64) {
        if deadline < earliestDeadline { earliestDeadline = deadline }
    }
}

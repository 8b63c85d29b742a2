// Transparent restart of a faulting server (a micro-reboot).
//
// A restartable server that faults, hangs (the watchdog) or reports its own failure
// is not ended. In one step the kernel:
//   1. marks the SSR mapped in its window *suspect* — the only client state the
//      error can have touched (need-to-know) — and closes the window;
//   2. turns every client awaiting its reply back into a queued sender, so the
//      request is re-delivered, with its original request id, after recovery;
//   3. discards the server's address space (data, bss, heap, stack, and any code
//      an injected fault patched) and loads the program again from the boot image
//      into the same slot, with the next generation; SSRs are untouched;
//   4. holds the new process back if it has been restarting in quick succession
//      (exponential backoff), and gives it up after too many (`failed`): its
//      clients then get `serverFailed`.
// The new process starts in recovery (Kernel+SSR.swift) and takes no message until
// it has judged every SSR.
//
// The watchdog: a server that has held a request longer than `watchdogTicks` while
// runnable — not waiting on another server — is declared hung. And a server with a
// reply limit (system.toml `reply_limit`) that has kept a client waiting longer than
// that is declared to have forgotten the request — a fault that left it alive and
// receiving, with the client's request lost from its tables, would otherwise leave
// that client waiting for ever. Servers that may hold requests for long (timers,
// lock waits) have no limit.

import CurioABI

extension Kernel {
    /// 50 ms at 10 MHz: far beyond any request's honest cost here.
    public static var watchdogTicks: UInt64 { 500_000 }
    /// Restarts closer together than this count as "quick succession".
    public static var rapidRestartWindow: UInt64 { 10_000_000 }
    /// Restarts in quick succession before a server is held back, and given up.
    public static var restartsBeforeBackoff: Int { 3 }
    public static var restartsBeforeGivingUp: Int { 8 }

    /// Stops a process for a hardware fault, a runtime trap, a hang or a reported
    /// failure: a restartable server is restarted, anything else ends.
    public mutating func fault(_ slot: Int, cause: FaultCause, address: UInt64) {
        reportFault(slot, cause: cause, address: address)
        if tasks[slot].restartable {
            restart(slot)
        } else {
            end(slot, status: .faulted(cause))
        }
        reschedule()
    }

    mutating func restart(_ slot: Int) {
        let now = platform.now()
        let program = tasks[slot].program
        let client = tasks[slot].windowClient
        if client >= 0, let index = binding(of: client, to: program) {
            tasks[client].bindings[index].state = .suspect
        }
        closeWindow(of: slot)
        orphanBindings(of: slot)

        var queued = tasks[slot].sendersWaiting
        for other in 0..<Self.maxTasks where tasks[other].state == .awaitingReply && tasks[other].partner == slot {
            tasks[other].state = .sending
            queued.insert(other)
        }

        let quick = tasks[slot].lastRestart != 0 && now &- tasks[slot].lastRestart < Self.rapidRestartWindow
        let rapidRestarts = quick ? tasks[slot].rapidRestarts + 1 : 0
        var kept = Task()
        kept.generation = tasks[slot].generation &+ 1
        kept.restarts = tasks[slot].restarts &+ 1
        kept.parent = tasks[slot].parent
        kept.sendersWaiting = queued
        kept.rapidRestarts = rapidRestarts
        kept.lastRestart = now

        ready.remove(slot: slot, priority: tasks[slot].priority)
        if current == slot { current = nil }
        if let space = tasks[slot].addressSpace {
            platform.flushAddressSpace(asid: asid(of: slot))
            _ = space.destroy(allocator: &frames)
        }
        tasks[slot].addressSpace = nil

        do throws(SyscallError) {
            guard rapidRestarts < Self.restartsBeforeGivingUp else { throw .serverFailed }
            try load(program, into: slot, as: kept, arguments: nil)
        } catch {
            giveUp(slot, program: program, generation: kept.generation, queued: queued)
            return
        }
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

    /// A server restarted too often: its slot stays `failed` and every client
    /// waiting on it, now or later, gets `serverFailed`.
    private mutating func giveUp(_ slot: Int, program: Int, generation: UInt16, queued: SlotSet) {
        var failed = Task()
        failed.generation = generation
        failed.program = program
        failed.state = .failed
        failed.restarts = tasks[slot].restarts
        tasks[slot] = failed
        var waiting = queued
        while let client = waiting.removeFirst() {
            registers(client).setResult(0, SyscallError.serverFailed.rawValue)
            makeRunnable(client)
        }
        dropOrphans(of: program)
        platform.write("[kernel] gave up on ")
        image.program(program).name.withBytes { platform.write(bytes: $0) }
        platform.write(": it kept failing\n")
    }

    /// Clock work for servers: release held restarts and catch hangs.
    public mutating func superviseServers(now: UInt64) {
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
                      // `now` was read when the tick began; work noted since may be later.
                      now > tasks[slot].servingSince, now - tasks[slot].servingSince > Self.watchdogTicks,
                      tasks[slot].restartable {
                fault(slot, cause: .hang, address: 0)
            }
        }
    }

    mutating func noteDeadline(_ deadline: UInt64) {
        if deadline < earliestDeadline { earliestDeadline = deadline }
    }
}

// Clients that keep their SSRs across their own crash (paper §4, "Robust client
// applications"): "a client can request that its SSRs be persisted across client
// failures and restarts", so that what servers hold for it — open files and their
// offsets, timers, connections — is still there for its next incarnation.
//
// A program marked `keep_ssrs` in system.toml that faults is not ended:
//   1. it is taken out of the processor and its address space is freed, as for any
//      fault; its SSRs stay bound to it, mapped nowhere, charged to it as before;
//   2. it is loaded again from its pristine image into the same slot, with the same
//      TaskID — the servers know their clients by it, and the new incarnation *is*
//      that client — and the argument string it was started with (kept by the kernel
//      from its spawn, `keptArguments`);
//   3. it finds out that it is a continuation from its own `taskInfo` (restarts > 0)
//      and asks each server what it holds for it (fs: `handles`).
//
// Nothing of another process is reachable this way: only the same program's next
// incarnation, in the same slot, gets the SSRs, and a program that ends normally
// (exit, kill) or keeps crashing (restarts in quick succession, as for servers)
// releases them as any client does. A client faults only while it runs, so it has no
// request outstanding: every server has answered it, and nothing is in flight.
// A restartable server is restarted by its own rule (Kernel+Restart.swift), so
// `keep_ssrs` is for clients only.

import CurioABI

/// The argument string a process that keeps its SSRs was started with.
struct KeptArguments {
    /// The process's slot, -1 for a free entry.
    var slot = -1
    var count = 0
    var bytes = InlineArray<128, UInt8>(repeating: 0)
}

extension Kernel {
    /// Remembers the arguments of a process that keeps its SSRs, for its restarts;
    /// false if the table is full.
    mutating func keepArguments(of slot: Int, _ arguments: UnsafeRawBufferPointer?) -> Bool {
        for index in 0..<keptArguments.count where keptArguments[index].slot < 0 {
            var kept = KeptArguments()
            kept.slot = slot
            if let arguments {
                kept.count = min(arguments.count, kept.bytes.count)
                for byte in 0..<kept.count { kept.bytes[byte] = arguments[byte] }
            }
            keptArguments[index] = kept
            return true
        }
        return false
    }

    /// Forgets the arguments kept for the process in `slot` (it ended for good).
    mutating func forgetArguments(of slot: Int) {
        for index in 0..<keptArguments.count where keptArguments[index].slot == slot {
            keptArguments[index] = KeptArguments()
        }
    }

    /// Restarts a faulted client that keeps its SSRs (see above); ends it instead if it
    /// has been restarting in quick succession.
    mutating func restartClient(_ slot: Int, cause: FaultCause) {
        let now = platform.now()
        let quick = tasks[slot].lastRestart != 0 && now &- tasks[slot].lastRestart < Self.rapidRestartWindow
        let rapidRestarts = quick ? tasks[slot].rapidRestarts + 1 : 0
        guard rapidRestarts < Self.restartsBeforeGivingUp,
              let entry = (0..<keptArguments.count).first(where: { keptArguments[$0].slot == slot }) else {
            end(slot, status: .faulted(cause))
            return
        }
        var kept = Task()
        kept.generation = tasks[slot].generation
        kept.restarts = tasks[slot].restarts &+ 1
        kept.parent = tasks[slot].parent
        kept.bindings = tasks[slot].bindings
        kept.sendersWaiting = tasks[slot].sendersWaiting
        kept.rapidRestarts = rapidRestarts
        kept.lastRestart = now
        let program = tasks[slot].program
        discardAddressSpace(of: slot)
        let arguments = keptArguments[entry]
        do throws(SyscallError) {
            try arguments.bytes.span.withUnsafeBufferPointer { bytes throws(SyscallError) in
                try load(program, into: slot, as: kept,
                         arguments: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[0..<arguments.count]))
            }
        } catch {
            // No memory for a fresh image: the client ends, and its SSRs go as any client's.
            kept.program = program
            kept.state = .runnable
            tasks[slot] = kept
            end(slot, status: .faulted(cause))
            return
        }
        platform.write("[kernel] restarted ")
        image.program(program).name.withBytes { platform.write(bytes: $0) }
        platform.write(" (pid ")
        platform.write(decimal: slot)
        platform.write(", restart ")
        platform.write(decimal: Int(kept.restarts))
        platform.write("), its SSRs kept\n")
        makeRunnable(slot)
    }
}

// Live upgrade of a server (paper §4, "Maintainability"): "Server upgrades are a
// simple matter of terminating the old server and starting a new server. As long as
// the new server can interpret existing SSRs for the service, clients would not be
// affected."
//
// A version of a server is a program of its own in the boot image, marked in
// system.toml as `version_of` the server (mkimage gives it the server's authority:
// its sends, interrupts, devices, SSR size and restart settings). `upgrade` replaces
// the running server's code with the version's, in the server's own slot:
//
//   1. only at a request boundary: the server is idle in `receive`, not recovering,
//      its window closed; otherwise the call says `serverBusy` and changes nothing
//      (a request being handled is never cut off, so no SSR is left suspect);
//   2. the old incarnation is taken apart as for a restart (Kernel+Restart.swift):
//      clients awaiting its reply (held requests) are queued to send again, its own
//      SSRs with other servers orphaned, its devices stopped, its address space freed;
//   3. the version is loaded into the slot with the next generation, as the same
//      program: clients keep sending to the program they know, their SSRs stay bound
//      to it, and nothing about them changes;
//   4. the version starts in recovery, as a restarted server does, and finds every
//      SSR as the old code left it. It reads the old layout and migrates each region
//      (SSRServer, SSRFormat's "Migrating a region"), or, if it cannot read a region
//      at all, fails;
//   5. if it fails (a fault, a hang, a reported failure) before its recovery is done,
//      the kernel rolls back: it restarts the slot with the code it ran before, which
//      finds the regions as it left them (a version writes no region in a layout of
//      its own until its recovery is done) and says so on the console. Once recovery
//      is done (`recoveryComplete`) the upgrade stands, and a later failure restarts
//      the version, like any server.
//
// Going back is an upgrade too: a server may be given its original program again, or
// any version of it, whenever it runs another. A server with no SSRs (the no-SSR
// baseline) has no recovery to fail, and so no rollback.

import CurioABI

extension Kernel {
    /// Replaces the code of the running instance of `program` with `version`'s (see
    /// above). Throws, changing nothing, if `program` is not running (`notFound`),
    /// `version` is neither a version of it nor it, or is what it runs already
    /// (`badArgument`), or the server is between no two requests now (`serverBusy`).
    mutating func upgrade(_ program: Int, to version: Int) throws(SyscallError) {
        guard let slot = firstLiveInstance(of: program) else { throw .notFound }
        let replacement = image.program(version)
        guard tasks[slot].restartable, replacement.restartable, replacement.ssrPages == tasks[slot].ssrPages,
              replacement.versionOf == program || version == program,
              version != Int(tasks[slot].codeProgram), tasks[slot].generation < UInt16.max - 1 else {
            throw .badArgument
        }
        guard tasks[slot].state == .receiving, !tasks[slot].recovering, tasks[slot].windowClient < 0,
              tasks[slot].windowOrphan < 0 else { throw .serverBusy }

        let previous = Int(tasks[slot].codeProgram)
        var kept = Task()
        kept.generation = tasks[slot].generation &+ 1
        kept.restarts = tasks[slot].restarts
        kept.parent = tasks[slot].parent
        kept.sendersWaiting = detachForReload(slot)
        kept.rapidRestarts = tasks[slot].rapidRestarts
        kept.lastRestart = tasks[slot].lastRestart
        kept.bindings = tasks[slot].bindings
        discardAddressSpace(of: slot)
        do throws(SyscallError) {
            try load(program, code: version, into: slot, as: kept, arguments: nil)
        } catch {
            // The version does not fit (its memory budget, say): the old code again.
            report(slot, "could not load ", version, "; it runs ", previous, " again")
            do throws(SyscallError) {
                try load(program, code: previous, into: slot, as: kept, arguments: nil)
            } catch {
                giveUp(slot, program: program, code: previous, cause: .reportedFailure, queued: kept.sendersWaiting)
                return
            }
            noteServing(slot)
            makeRunnable(slot)
            throw error
        }
        noteServing(slot)
        makeRunnable(slot)
        guard tasks[slot].recovering else {
            report(slot, "runs ", version, " now; without SSRs its clients' state is gone", -1, "")
            return
        }
        tasks[slot].upgradedFrom = Int16(previous)
        report(slot, "runs ", version, " now, recovering; if that fails, ", previous, " again")
    }

    /// An upgraded server finished its first recovery: the upgrade stands.
    mutating func confirmUpgrade(of server: Int) {
        guard tasks[server].upgradedFrom >= 0 else { return }
        let previous = Int(tasks[server].upgradedFrom)
        tasks[server].upgradedFrom = -1
        report(server, "runs ", Int(tasks[server].codeProgram), ", recovered (upgraded from ", previous, ")")
    }

    /// An upgraded server failed in its first recovery and runs its old code again.
    func reportRollback(of slot: Int) {
        report(slot, "failed in recovery: rolled back to ", Int(tasks[slot].codeProgram), "", -1, "")
    }

    /// "[kernel] upgrade of timer (pid 3, gen 2): <text> <program> <text> <program> <text>"
    private func report(_ slot: Int, _ first: StaticString, _ program: Int, _ second: StaticString, _ other: Int,
                        _ third: StaticString) {
        platform.write("[kernel] upgrade of ")
        image.program(tasks[slot].program).name.withBytes { platform.write(bytes: $0) }
        platform.write(" (pid ")
        platform.write(decimal: slot)
        platform.write(", gen ")
        platform.write(decimal: Int(tasks[slot].generation))
        platform.write("): ")
        platform.write(first)
        image.program(program).name.withBytes { platform.write(bytes: $0) }
        platform.write(second)
        if other >= 0 { image.program(other).name.withBytes { platform.write(bytes: $0) } }
        platform.write(third)
        platform.write("\n")
    }
}

// The kernel invariant audit: a full check of the tables against each other, run
// by the shell's `audit`, after fuzz and campaign runs, and by tests.
//
// Frames. Every allocated frame has exactly one owner, and every owner's frames
// are allocated:
//
//   owner                      found by                           charged to
//   -------------------------  ---------------------------------  ----------------
//   a process's page tables    walking its root (own entries)     that process
//   a process's pages          leaves marked `owned`              that process
//   an SSR                     the bindings of the owning slot    the owning client
//                              (orphans lingering in ended slots
//                              and restarted servers included)
//   the kernel                 what was allocated before the      nobody
//                              first process (kernel page table)
//
// so: no frame is found twice, none is found free, each slot's `pagesUsed` equals
// what was found for it, and the allocated frames nobody owns are exactly the
// kernel's own. Leaves that are not owned are device windows (outside RAM) or the
// SSR window, which must show exactly the SSR the window's bookkeeping names.
//
// IPC. Every waiting-sender bit names a process sending to this one, every sending
// process is in its receiver's set, every process awaiting a reply names a live
// server, every binding names an SSR server program with the right size, and every
// orphan is announced to its program.
//
// The audit needs a bitmap of the frames it has seen: it borrows frames from the
// allocator for it (one per 128 MiB of RAM) and returns them.

import CurioABI

public struct AuditReport: Sendable, Equatable {
    public var violations = 0
    public var first = AuditViolation.none
    /// The slot the first violation was found at (-1: none, or not a slot's).
    public var firstSlot = -1
    /// Frames found with an owner (processes, page tables, SSRs).
    public var ownedFrames = 0

    public var isClean: Bool { violations == 0 }

    mutating func record(_ violation: AuditViolation, at slot: Int) {
        if violations == 0 {
            first = violation
            firstSlot = slot
        }
        violations += 1
    }
}

extension Kernel {
    public mutating func audit() -> AuditReport {
        var report = AuditReport()
        let bitmapFrames = (frames.totalFrames + Self.bitsPerAuditFrame - 1) / Self.bitsPerAuditFrame
        var bitmap = InlineArray<16, UInt64>(repeating: 0)
        var pages = InlineArray<16, UnsafeMutableRawPointer?>(repeating: nil)
        guard bitmapFrames <= 16 else {
            report.record(.noMemoryForAudit, at: -1)
            return report
        }
        for index in 0..<bitmapFrames {
            guard let frame = frames.allocate() else {
                for taken in 0..<index { frames.free(PhysicalAddress(bitmap[taken])) }
                report.record(.noMemoryForAudit, at: -1)
                return report
            }
            platform.memory.pointer(to: frame).initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
            bitmap[index] = frame.rawValue
            pages[index] = platform.memory.pointer(to: frame)
        }
        var seen = SeenFrames(pages: pages, firstFrame: frames.firstFrame, totalFrames: frames.totalFrames)

        for slot in 0..<Self.maxTasks where tasks[slot].state != .free {
            var found = 0
            let grantsSeenBefore = grantedFramesSeen(of: slot, seen: seen)
            if let space = tasks[slot].addressSpace {
                found += auditTables(space.root, level: Sv39.levels - 1, slot: slot, seen: &seen, report: &report)
            }
            if grantsSeenBefore != 0 || grantedFramesSeen(of: slot, seen: seen) != dma.pointee.grantCount(of: slot) {
                report.record(.dmaGrantNotOwned, at: slot)
            }
            for index in 0..<SSRTable.bindingsPerTask where tasks[slot].bindings[index].isUsed {
                let record = tasks[slot].bindings[index]
                if record.serverProgram >= image.programCount
                    || record.pageCount != image.program(record.serverProgram).ssrPages {
                    report.record(.badBinding, at: slot)
                    continue
                }
                for page in 0..<record.pageCount {
                    mark(PhysicalAddress(record.frames[page]), slot: slot, seen: &seen, report: &report)
                }
                found += record.pageCount
                if record.state == .orphaned && programsWithOrphans & (1 << UInt64(record.serverProgram)) == 0 {
                    report.record(.orphanNotAnnounced, at: slot)
                }
            }
            if found != tasks[slot].pagesUsed { report.record(.chargeMismatch, at: slot) }
            report.ownedFrames += found
            auditWindow(of: slot, report: &report)
            auditBlocking(of: slot, report: &report)
        }

        for index in 0..<dma.pointee.grantCount where tasks[dma.pointee.grants[index].owner].state == .free {
            report.record(.dmaGrantNotOwned, at: dma.pointee.grants[index].owner)
        }
        var unowned = 0
        for index in 0..<frames.totalFrames {
            let frame = frames.firstFrame.advanced(by: index * pageSize)
            if frames.isAllocated(frame) && !seen.contains(frame) { unowned += 1 }
        }
        if unowned != kernelOwnFrames + bitmapFrames { report.record(.unownedFrames, at: -1) }
        for index in 0..<bitmapFrames { frames.free(PhysicalAddress(bitmap[index])) }
        return report
    }

    /// How many of the frames granted to `slot` for DMA the audit has found so far:
    /// none before the walk of the slot's own tables, all of them after it.
    private func grantedFramesSeen(of slot: Int, seen: SeenFrames) -> Int {
        var count = 0
        for index in 0..<dma.pointee.grantCount where dma.pointee.grants[index].owner == slot {
            if seen.contains(PhysicalAddress(dma.pointee.grants[index].frame)) { count += 1 }
        }
        return count
    }

    /// 4 KiB of bitmap covers this many frames.
    private static var bitsPerAuditFrame: Int { pageSize * 8 }

    /// Marks the tables below `table` (its own entries, never the kernel's borrowed
    /// ones) and the owned leaves they map; returns how many frames that was.
    private func auditTables(_ table: PhysicalAddress, level: Int, slot: Int, seen: inout SeenFrames,
                             report: inout AuditReport) -> Int {
        mark(table, slot: slot, seen: &seen, report: &report)
        var found = 1
        for index in 0..<Sv39.entriesPerTable {
            let entry = Sv39.load(Sv39.entryAddress(in: table, at: index), memory: platform.memory)
            guard entry.isValid, !entry.isBorrowed else { continue }
            if entry.isLeaf {
                if entry.flags.contains(.owned) {
                    mark(entry.frame, slot: slot, seen: &seen, report: &report)
                    found += 1
                }
            } else if level > 0 {
                found += auditTables(entry.frame, level: level - 1, slot: slot, seen: &seen, report: &report)
            }
        }
        return found
    }

    private func mark(_ frame: PhysicalAddress, slot: Int, seen: inout SeenFrames, report: inout AuditReport) {
        guard seen.covers(frame) else { return }
        if !frames.isAllocated(frame) { report.record(.frameFoundFree, at: slot) }
        if seen.contains(frame) { report.record(.frameFoundTwice, at: slot) }
        seen.insert(frame)
    }

    /// The window of an SSR server maps exactly the SSR its bookkeeping names.
    private func auditWindow(of server: Int, report: inout AuditReport) {
        guard tasks[server].ssrPages > 0, tasks[server].windowEntries != 0 else { return }
        let expected = windowRecord(of: server)
        if tasks[server].windowClient >= 0 {
            let client = tasks[server].windowClient
            if tasks[client].state == .free || !tasks[client].bindings[tasks[server].windowBinding].isUsed {
                report.record(.windowMismatch, at: server)
                return
            }
        }
        let entries = PhysicalAddress(tasks[server].windowEntries)
        for page in 0..<SSRWindow.maxPages {
            let entry = Sv39.load(entries.advanced(by: page * 8), memory: platform.memory)
            let wanted: UInt64? = expected.flatMap { page < $0.pageCount ? $0.frames[page] : nil }
            let mapped = tasks[server].windowPages > page && entry.isValid ? entry.frame.rawValue : nil
            if mapped != wanted || (wanted == nil && entry.isValid) { report.record(.windowMismatch, at: server) }
        }
    }

    /// Whom a blocked process waits on, and who waits on it, agree.
    private func auditBlocking(of slot: Int, report: inout AuditReport) {
        var senders = tasks[slot].sendersWaiting
        while let sender = senders.removeFirst() {
            if tasks[sender].state != .sending || tasks[sender].partner != slot {
                report.record(.staleSenderBit, at: slot)
            }
        }
        switch tasks[slot].state {
        case .sending:
            let partner = tasks[slot].partner
            if partner < 0 || !tasks[partner].sendersWaiting.contains(slot) {
                report.record(.senderNotQueued, at: slot)
            }
        case .awaitingReply:
            let partner = tasks[slot].partner
            if partner < 0 || !tasks[partner].isLive { report.record(.partnerNotLive, at: slot) }
        default:
            break
        }
    }
}

/// A bitmap of the frames an audit has found, kept in frames borrowed for it.
private struct SeenFrames {
    let pages: InlineArray<16, UnsafeMutableRawPointer?>
    let firstFrame: PhysicalAddress
    let totalFrames: Int

    func covers(_ frame: PhysicalAddress) -> Bool { index(of: frame) != nil }

    private func index(of frame: PhysicalAddress) -> Int? {
        guard frame.rawValue >= firstFrame.rawValue else { return nil }
        let index = Int((frame.rawValue - firstFrame.rawValue) / UInt64(pageSize))
        return index < totalFrames ? index : nil
    }

    private func byte(_ index: Int) -> UnsafeMutableRawPointer {
        pages[index / (pageSize * 8)]!.advanced(by: (index % (pageSize * 8)) / 8)
    }

    func contains(_ frame: PhysicalAddress) -> Bool {
        guard let index = index(of: frame) else { return false }
        return byte(index).load(as: UInt8.self) & UInt8(1 << (index % 8)) != 0
    }

    func insert(_ frame: PhysicalAddress) {
        guard let index = index(of: frame) else { return }
        let byte = byte(index)
        byte.storeBytes(of: byte.load(as: UInt8.self) | UInt8(1 << (index % 8)), as: UInt8.self)
    }
}

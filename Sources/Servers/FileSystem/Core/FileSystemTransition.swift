// The filesystem server's last look before it commits and answers a read or a write:
// is what it is about to commit and say what the request and the file allow?
//
// The SSR's checksum catches bytes that change in the region; the service's
// invariants catch a state that cannot be. Neither catches a value computed wrongly
// by a server that a fault left running — a flipped register in a count or an offset —
// which the server would commit under a valid checksum and tell the client (fault
// soaks found clients told "11 bytes written" for 4096, and offsets that skipped). So
// each read and write is checked against what it may change, recomputed from the
// request and from the file's size read afresh:
//
//   read   count = min(requested, size - offset) (0 past the end); the handle's offset
//          moves by count and its lastReadCount becomes count; the reply's offset is
//          the new one.
//   write  count = the request's length, unless the volume was nearly full (a write may
//          then stop short); the offset becomes position + count, lastReadCount 0; the
//          reply's offset is the new one; a handle without O_APPEND wrote at its offset.
//
// and in both, nothing else in the client's state changes: not the handle's identity,
// not another handle, not a lock. A mismatch means the server is damaged: it reports
// its failure, and the request is run again by a fresh instance from the state last
// committed. The timer's counterpart is `TimerTransition` (TimerCore.swift).

public enum FileSystemTransition {
    /// A read through `handle` of up to `requested` bytes, from a file of `fileSize`
    /// bytes, answered `count` bytes with `replyOffset` as the handle's new offset.
    public static func isValidRead(from before: FileSystemClientState, to after: FileSystemClientState,
                                   handle: FileHandle, requested: Int, fileSize: UInt64, count: Int,
                                   replyOffset: UInt64) -> Bool {
        let slot = handle.slot
        guard slot < FileSystemClientState.handleCount, before.handles[slot].id == handle.rawValue,
              requested >= 0, count >= 0 else { return false }
        let old = before.handles[slot]
        let new = after.handles[slot]
        let expected = old.offset < fileSize ? min(UInt64(requested), fileSize - old.offset) : 0
        guard UInt64(count) == expected, new.offset == old.offset + expected,
              Int(new.lastReadCount) == count, replyOffset == new.offset else { return false }
        return onlyPositionChanged(before, after, slot: slot)
    }

    /// A write through `handle` of `length` bytes at `position`, answered `count` bytes
    /// with `replyOffset` as the handle's new offset; `nearlyFull` if the volume had
    /// fewer free blocks than one step of a write may need.
    public static func isValidWrite(from before: FileSystemClientState, to after: FileSystemClientState,
                                    handle: FileHandle, length: Int, position: UInt64, count: Int,
                                    replyOffset: UInt64, nearlyFull: Bool) -> Bool {
        let slot = handle.slot
        guard slot < FileSystemClientState.handleCount, before.handles[slot].id == handle.rawValue,
              length >= 0, count >= 0, count <= length, count == length || nearlyFull else { return false }
        let old = before.handles[slot]
        let new = after.handles[slot]
        if !old.openFlags.contains(.append) && position != old.offset { return false }
        guard new.offset == position + UInt64(count), new.lastReadCount == 0, replyOffset == new.offset else {
            return false
        }
        return onlyPositionChanged(before, after, slot: slot)
    }

    /// Whether `after` is `before` but for the offset and last read count of `slot`.
    static func onlyPositionChanged(_ before: FileSystemClientState, _ after: FileSystemClientState,
                                    slot: Int) -> Bool {
        guard before.handleGeneration == after.handleGeneration, before.reserved == after.reserved else { return false }
        // Through spans: subscripting the arrays of a parameter copied each whole array
        // to read one element.
        let oldLocks = before.locks.span, newLocks = after.locks.span
        for index in 0..<FileSystemClientState.lockCount where oldLocks[index] != newLocks[index] {
            return false
        }
        let oldHandles = before.handles.span, newHandles = after.handles.span
        for index in 0..<FileSystemClientState.handleCount {
            var old = oldHandles[index]
            if index == slot {
                old.offset = newHandles[index].offset
                old.lastReadCount = newHandles[index].lastReadCount
            }
            if old != newHandles[index] { return false }
        }
        return true
    }
}

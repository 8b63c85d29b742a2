// How a version of the filesystem server lays out a client's record in its SSR.
//
// The service computes with `FileSystemClientRecord`; two layouts of it exist:
//
//   layout 1 (`FileSystemClientRecord` itself, the `fs` program): 536 bytes,
//     committed whole.
//
//     0    handles, 8 x 24 bytes (id, inode, inode generation, flags, last read
//          count, offset)
//     192  locks, 8 x 24 bytes (kind, handle slot, inode, start, end)
//     384  handle generation u32 | reserved u32
//     392  intent of a multi-step update, 128 bytes (tag, 15 words)
//     520  append request u64     528 append position u64
//
//   layout 2 (`FileSystemRecordV2`, the `fs-next` program): the same fields in the
//     order they are used, so that a commit stores only what is in use (SSRFormat's
//     prefix commits). Between requests the intent and the append position are zero
//     (the server clears them with each reply) and a client holds a few handles and
//     rarely a lock: a client with one file open stores 32 bytes, not 536.
//
//     0    handle generation u32 | reserved u32
//     8    handles, 8 x 24       200  locks, 8 x 24
//     392  append request        400  append position
//     408  intent, 128 bytes                                              -> 536 bytes
//
// Measured with `curio-profile` over fsbench's sequential write (phase 3 of `run
// fsbench 1`), fs ran 103.66 M instructions as `fs` and 103.22 M as `fs-next`
// (-0.4 %; its commits 1.78 M and 1.09 M): a request's ext2 work dwarfs its commit.

import Ext2
import FileSystemCore
import SSRFormat

/// A layout of one client's record in its SSR.
public protocol FileSystemRecordLayout: SSRStateLayout where Canonical == FileSystemClientRecord {}

extension FileSystemClientRecord: FileSystemRecordLayout {
    public typealias Previous = FileSystemClientRecord
    public static var layoutVersion: UInt32 { 1 }
    public init(_ state: FileSystemClientRecord) { self = state }
    public var state: FileSystemClientRecord { self }
}

/// Layout 2: what is in use first, so that a commit stores only that.
public struct FileSystemRecordV2: FileSystemRecordLayout {
    public typealias Previous = FileSystemClientRecord

    public var handleGeneration: UInt32
    public var reserved: UInt32
    public var handles: InlineArray<8, HandleSlot>
    public var locks: InlineArray<8, LockSlot>
    public var appendRequest: UInt64
    public var appendPosition: UInt64
    public var intent: Ext2Intent

    public static var layoutVersion: UInt32 { 2 }
    public static var previousLayoutVersion: UInt32? { FileSystemClientRecord.layoutVersion }

    public init(_ record: FileSystemClientRecord) {
        handleGeneration = record.files.handleGeneration
        reserved = record.files.reserved
        handles = record.files.handles
        locks = record.files.locks
        appendRequest = record.appendRequest
        appendPosition = record.appendPosition
        intent = record.intent
    }

    public var state: FileSystemClientRecord {
        FileSystemClientRecord(files: FileSystemClientState(handles: handles, locks: locks,
                                                            handleGeneration: handleGeneration, reserved: reserved),
                               intent: intent, appendRequest: appendRequest, appendPosition: appendPosition)
    }

    public static func migrating(_ previous: FileSystemClientRecord) -> FileSystemRecordV2? {
        FileSystemRecordV2(previous)
    }

    static let handlesOffset = 8
    static let locksOffset = 200
    static let slotBytes = 24

    /// Up to the last lock in use, or else the last handle in use, while no update is
    /// in progress (the append words and the intent zero); everything otherwise.
    public static func significantBytes(of layout: UnsafePointer<FileSystemRecordV2>) -> Int {
        if layout.pointee.appendRequest != 0 || layout.pointee.appendPosition != 0 || layout.pointee.intent.tag != 0 {
            return MemoryLayout<FileSystemRecordV2>.size
        }
        var locks = FileSystemClientState.lockCount
        while locks > 0 && layout.pointee.locks[locks - 1].isFree { locks -= 1 }
        if locks > 0 { return locksOffset + locks * slotBytes }
        var handles = FileSystemClientState.handleCount
        while handles > 0 && layout.pointee.handles[handles - 1].isFree { handles -= 1 }
        return handlesOffset + handles * slotBytes
    }
}

// The filesystem server's transition check on the host: honest reads and writes
// pass, and each kind of damage a flipped register makes to a count, an offset or
// another part of the state is refused.

@testable import FileSystemCore
import Testing

@Suite struct TransitionTests {
    /// A client with two handles on one file and a lock; the first at offset 1000.
    static func client() throws -> (FileSystemClientState, FileHandle, FileHandle) {
        var state = FileSystemClientState.initial
        let first = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite, offset: 1000)
        let second = try state.open(inode: fileA.inode, generation: fileA.generation, flags: [.write, .append])
        try state.applyLock(first, range: range(0, 10), kind: .exclusive)
        return (state, first, second)
    }

    @Test func honestReadsPass() throws {
        let (before, handle, _) = try Self.client()
        for (size, read) in [(UInt64(10_000), 4096), (3000, 2000), (1000, 0), (500, 0)] {
            var after = before
            try after.recordRead(handle, count: read)
            #expect(FileSystemTransition.isValidRead(from: before, to: after, handle: handle, requested: 4096,
                                                     fileSize: size, count: read, replyOffset: 1000 + UInt64(read)),
                    "size \(size), read \(read)")
        }
    }

    @Test func damagedReadsAreRefused() throws {
        let (before, handle, other) = try Self.client()
        func check(_ count: Int, size: UInt64 = 10_000, reply: UInt64? = nil,
                   damage: (inout FileSystemClientState) -> Void = { _ in }) -> Bool {
            var after = before
            try? after.recordRead(handle, count: count)
            damage(&after)
            return FileSystemTransition.isValidRead(from: before, to: after, handle: handle, requested: 4096,
                                                    fileSize: size, count: count,
                                                    replyOffset: reply ?? 1000 + UInt64(count))
        }
        #expect(!check(11), "short read inside the file")
        #expect(!check(4096, size: 3000), "past the end")
        #expect(!check(4096, reply: 1000 + 4096 + 4096), "reply offset")
        #expect(!check(4096) { $0.handles[handle.slot].offset += 512 }, "committed offset")
        #expect(!check(4096) { $0.handles[handle.slot].inode += 1 }, "handle's file")
        #expect(!check(4096) { $0.handles[other.slot].offset = 7 }, "another handle")
        #expect(!check(4096) { $0.locks[0].end = 99 }, "a lock")
        #expect(!FileSystemTransition.isValidRead(from: before, to: before, handle: FileHandle(slot: 5, generation: 1),
                                                  requested: 10, fileSize: 10, count: 0, replyOffset: 0),
                "a handle that is not open")
    }

    @Test func honestWritesPass() throws {
        let (before, handle, appender) = try Self.client()
        var after = before
        try after.recordWrite(handle, at: 1000, count: 4096)
        #expect(FileSystemTransition.isValidWrite(from: before, to: after, handle: handle, length: 4096, position: 1000,
                                                  count: 4096, replyOffset: 5096, nearlyFull: false))
        var appended = before
        try appended.recordWrite(appender, at: 70_000, count: 100)
        #expect(FileSystemTransition.isValidWrite(from: before, to: appended, handle: appender, length: 100,
                                                  position: 70_000, count: 100, replyOffset: 70_100, nearlyFull: false))
        var short = before
        try short.recordWrite(handle, at: 1000, count: 11)
        #expect(FileSystemTransition.isValidWrite(from: before, to: short, handle: handle, length: 4096, position: 1000,
                                                  count: 11, replyOffset: 1011, nearlyFull: true), "disk full")
    }

    @Test func damagedWritesAreRefused() throws {
        let (before, handle, other) = try Self.client()
        func check(_ count: Int, position: UInt64 = 1000, reply: UInt64? = nil,
                   damage: (inout FileSystemClientState) -> Void = { _ in }) -> Bool {
            var after = before
            try? after.recordWrite(handle, at: position, count: count)
            damage(&after)
            return FileSystemTransition.isValidWrite(from: before, to: after, handle: handle, length: 4096,
                                                     position: position, count: count,
                                                     replyOffset: reply ?? position + UInt64(count), nearlyFull: false)
        }
        #expect(check(4096))
        #expect(!check(11), "short write with room on the disk")
        #expect(!check(4096, position: 3000), "not at the handle's offset")
        #expect(!check(4096, reply: 1000), "reply offset")
        #expect(!check(4096) { $0.handles[handle.slot].offset = 0 }, "committed offset")
        #expect(!check(4096) { $0.handles[other.slot].flags ^= 1 }, "another handle")
        #expect(!check(4096) { $0.handleGeneration += 1 }, "handle generation")
    }
}

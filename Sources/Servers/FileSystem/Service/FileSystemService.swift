// The filesystem server: ext2 for every program, restartable, with each client's open
// files and locks in that client's server state region (paper §3).
//
// What lives where:
//
//   client's SSR (survives a crash)     server memory (rebuilt or revalidated)
//   ---------------------------------   -----------------------------------------
//   handles: inode, inode generation,   the mounted volume: superblock, group
//     offset, open flags, last read       descriptors, block cache (read again
//   locks the client holds                from the disk after a restart)
//   the intent of a multi-step update   the lock table and its waiting clients
//     in progress (Ext2Intent)            (rebuilt from every SSR's locks; a
//   the position an O_APPEND write        waiting request is delivered again by
//     chose                               the kernel and waits again)
//                                       the interrupted updates (every SSR's
//                                         intent, adopted at recovery; kept
//                                         across fresh mounts)
//
// Configuration. Which storage server holds the disk and whether to mount it
// read-write come from the configuration service (`fs.storage`, `fs.mount`), read
// at the first request after every start: a restarted server never trusts what the
// crashed one remembered. The volume is mounted lazily, so the server starts (and
// answers `notMounted`) even when there is no usable disk. Why the last mount failed
// (no disk, not ext2, the features in the way, ...) is kept, and `mountStatus`
// answers it, with why a mounted volume is read-only: the shell tells the person at
// the console what to do. Only an unreadable disk answers `ioError` instead, which
// gets the request its retry.
//
// Crash safety. Every update reaches the disk before its reply (the engine writes
// through), so an acknowledged write survives a crash of this server or of the
// storage server. A request interrupted by a crash is delivered again and run
// again: the engine's intent, checkpointed into the SSR before each step that
// depends on it, makes the second run finish the first instead of repeating it
// (Operations.swift explains the write ordering). Until that second run, other
// clients' requests must not take what the intent reserved: recovery adopts every
// SSR's intent into one table of interrupted updates, which the server keeps for
// its whole life and hands to every volume it mounts — the first, mounted lazily
// after recovery, and each fresh one mounted to retry an error (InterruptedUpdates.swift).
//
// A handle names its file by inode *and* the inode's generation, so a handle to a
// deleted file answers `staleHandle` instead of reading whatever file reuses the
// inode.
//
// A reply's payload is not cached with the reply: a read answered and committed
// just before a crash is regenerated from the committed state (the handle's offset
// and last read count), after the same generation check as the read itself (the
// file may have been deleted, and its inode reused, by requests re-delivered before
// it); directory listings and status are simply computed again.
//
// The service is generic over how a client's record is laid out in its SSR
// (FileSystemRecordLayouts.swift): the `fs` program stores layout 1, `fs-next`
// layout 2, and reads layout 1 when it replaces `fs` in a live upgrade.

import ConfigAPI
import CurioUser
import Ext2
import FileSystemCore
import SSRFormat
import SSRServer
import StorageAPI

/// Ext2's block device: the storage server, 512-byte sectors, at most 4 KiB a call.
struct StorageBlockDevice: BlockDevice {
    var storage: BlockStorage
    let byteCount: UInt64

    // Storage refuses a request as malformed (`badRequest`) only when we sent one: the
    // engine checks every block number against the volume first, and computes each
    // write's data check over the data it sends. So it means our own state is damaged
    // (a write's data changed after its check was taken): restart, and recovery runs
    // the interrupted update again, rather than tell the client of an I/O error.
    mutating func read(at byteOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) {
        do throws(StorageError) {
            try storage.read(sector: byteOffset / 512, count: buffer.count / 512, into: buffer, priority: 3)
        } catch .badRequest {
            System.reportFailure()
        } catch {
            throw .ioError
        }
    }

    mutating func write(at byteOffset: UInt64, from buffer: UnsafeRawBufferPointer) throws(FileSystemError) {
        do throws(StorageError) {
            try storage.write(sector: byteOffset / 512, from: buffer, priority: 3)
        } catch .readOnly {
            throw .readOnly
        } catch .badRequest {
            System.reportFailure()
        } catch {
            throw .ioError
        }
    }

    mutating func flush() throws(FileSystemError) {
        do throws(StorageError) { try storage.flush(priority: 3) } catch { throw .ioError }
    }
}

/// One client's state, as the service computes with it (its layouts in the SSR:
/// FileSystemRecordLayouts.swift).
public struct FileSystemClientRecord: BitwiseCopyable {
    public var files: FileSystemClientState
    /// The engine's record of a multi-step update in progress (its tag is the request's id).
    public var intent: Ext2Intent
    /// An O_APPEND write in progress: its request id (0: none) and the end of the file
    /// it chose to write at, so that a second run writes there too, not at the new end.
    public var appendRequest: UInt64
    public var appendPosition: UInt64

    public static var initial: FileSystemClientRecord {
        FileSystemClientRecord(files: .initial, intent: Ext2Intent(tag: 0), appendRequest: 0, appendPosition: 0)
    }
}

typealias Volume = Ext2Volume<StorageBlockDevice>

public struct FileSystemService<Layout: FileSystemRecordLayout>: SSRService {
    public typealias State = Layout
    public typealias PreviousState = Layout.Previous
    typealias Runtime = SSRServer<FileSystemService<Layout>>

    /// The promise of a lock wait: a clock value no machine reaches.
    static var heldForEver: UInt64 { 1 << 62 }
    public static var initialState: Layout { Layout(.initial) }
    public static var notificationMask: UInt32 { 0 }
    public static func check(_ state: UnsafePointer<Layout>) -> Bool {
        FileSystemClientState.isConsistent(state.pointee.state.files)
    }

    public init() {}

    var volume: Volume?
    /// Why the last mount failed (nil once one succeeds): what `mountStatus` reports.
    var mountFailure: MountFailure?
    /// Why updates are refused before they reach the engine: `fs.mount` said "ro", or
    /// the device is read-only (nil: the engine decides, by the volume's features).
    var readOnlyReason: ReadOnlyReason?
    var readOnly: Bool { readOnlyReason != nil }
    /// What the request being handled last committed to its SSR as progress (nil:
    /// nothing yet): where a retry starts, as a restarted server would.
    var progress: FileSystemClientRecord?
    let locks = LockTable()
    /// The updates a crash interrupted, held for their re-runs: outlives every volume.
    let interrupted = InterruptedUpdates()
    /// The seconds of the volume's last write time at mount, and the clock then: the
    /// server has no calendar clock, so time moves on from what the disk last saw.
    var mountSeconds: UInt32 = 0
    var mountClock: UInt64 = 0

    // MARK: Mounting

    /// Mounts the disk the configuration names, if not mounted yet; remembers why not.
    /// A volume found damaged is read once more before that is believed: what failed
    /// may be our copy of it, damaged in memory by a fault (as `handle` retries).
    mutating func mount() throws(FileSystemError) {
        if volume != nil { return }
        do throws(MountFailure) {
            do throws(MountFailure) { try mountVolume() } catch .corrupt { try mountVolume() }
            mountFailure = nil
        } catch {
            mountFailure = error
            throw error == .unreadable ? .ioError : .notMounted
        }
    }

    mutating func mountVolume() throws(MountFailure) {
        let value = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
        defer { value.deallocate() }
        let program: StaticString = "fs"
        let programBytes = UnsafeRawBufferPointer(start: program.utf8Start, count: program.utf8CodeUnitCount)
        var storage: BlockStorage
        do throws(StorageError) {
            let length = (try? Config.get(program: programBytes, setting: "storage", into: value)) ?? 0
            if length > 0 {
                storage = try BlockStorage(server: UnsafeRawBufferPointer(rebasing: value[0..<length]))
            } else {
                let fallback: StaticString = "storage"
                storage = try BlockStorage(server: UnsafeRawBufferPointer(start: fallback.utf8Start,
                                                                          count: fallback.utf8CodeUnitCount))
            }
        } catch {
            throw .noDisk
        }
        let info: StorageDeviceInfo
        do throws(StorageError) { info = try storage.info() } catch { throw .noDisk }
        // The superblock's last write time (s_wtime, byte 48 of the superblock at 1024).
        let superblock = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 8)
        defer { superblock.deallocate() }
        do throws(StorageError) { try storage.read(sector: 2, count: 2, into: superblock) } catch { throw .unreadable }
        mountSeconds = superblock.load(fromByteOffset: 48, as: UInt32.self)
        mountClock = System.clock()
        let device = StorageBlockDevice(storage: storage, byteCount: info.capacity * 512)
        let mounted = try Volume(device: device, cacheBlocks: 64, interrupted: interrupted)
        let mode = (try? Config.get(program: programBytes, setting: "mount", into: value)) ?? 0
        let configuredReadOnly = mode == 2 && value[0] == UInt8(ascii: "r") && value[1] == UInt8(ascii: "o")
        readOnlyReason = info.readOnly ? .deviceReadOnly : configuredReadOnly ? .configured : nil
        volume = mounted
    }

    var now: UInt32 {
        mountSeconds &+ UInt32(truncatingIfNeeded: (System.clock() &- mountClock) / System.ticksPerSecond)
    }

    // MARK: Recovery and clients

    public mutating func rebuild(client: TaskID, state layout: Layout) {
        let state = layout.state
        // A client whose locks no longer fit would wrongly look lock-free: restart
        // rather than grant its locks to someone else.
        do throws(FileSystemError) {
            try locks.addHeldLocks(of: ClientID(rawValue: client.rawValue), from: state.files)
        } catch {
            System.reportFailure()
        }
        // An update the crash interrupted is run again when the kernel delivers its
        // request again; until then nobody else may take the blocks and inodes its
        // intent reserved. No volume is needed for that (nor mounted here: the mount
        // may fail now and succeed later), only the table every volume consults.
        if state.intent.tag != 0 { interrupted.adopt(state.intent) }
    }

    /// An intent's tag: unique among all clients (the kernel's request ids are per client).
    static func intentTag(client: TaskID, requestID: UInt64) -> UInt64 {
        requestID == 0 ? 0 : UInt64(client.index) << 48 | requestID & 0xFFFF_FFFF_FFFF
    }

    public mutating func clientEnded(client: TaskID, state layout: Layout?) {
        if let state = layout?.state, state.intent.tag != 0 { releaseAbandoned(state.intent) }
        locks.forget(client: ClientID(rawValue: client.rawValue))
        Runtime.requestFollowUp()
    }

    public mutating func notified(bits: UInt) {}

    /// Grants the waiting lock requests that no longer conflict.
    public mutating func followUp() {
        while let waiter = locks.takeGrantableWaiter() {
            let table = locks
            _ = try? Runtime.complete(TaskID(rawValue: waiter.client.rawValue)) { layout in
                do throws(FileSystemError) {
                    var state = layout.state
                    try state.files.applyLock(waiter.handle, range: waiter.range, kind: waiter.kind)
                    try table.acquire(client: waiter.client, file: waiter.file, range: waiter.range, kind: waiter.kind)
                    layout = Layout(state)
                    return .reply(0)
                } catch {
                    return .reply(error.rawValue)
                }
            }
        }
    }

    // MARK: Requests

    public mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                state layout: inout Layout) -> SSROutcome {
        guard locks.isIntact, interrupted.isIntact else { System.reportFailure() }
        var state = layout.state
        defer { layout = Layout(state) }
        let tag = Self.intentTag(client: client, requestID: Runtime.currentRequestID)
        if tag == 0 || state.intent.tag != tag {
            // An intent of an earlier request that never came back (the kernel failed
            // it) will not be re-run.
            if state.intent.tag != 0 { releaseAbandoned(state.intent) }
            state.intent = Ext2Intent(tag: tag)
        }
        let request: FileSystemRequest
        do throws(FileSystemError) {
            request = try FileSystemRequest.decode(operation: operation, words: words, payload: payload.request)
        } catch {
            return .reply(error.rawValue)
        }
        let before = state
        progress = nil
        var outcome = attempt(request, reply: payload.replyBuffer, client: client, state: &state)
        if case .reply(let code, _, _) = outcome, code == FileSystemError.corrupt.rawValue
            || code == FileSystemError.ioError.rawValue || code == FileSystemError.readOnly.rawValue {
            // The disk may be at fault, or our copy of its metadata or of how it is
            // mounted, damaged in memory by a fault that did not stop us. Mount afresh
            // (configuration, device, metadata) and try once more from the progress last
            // committed to the SSR, so that an update that got part-way finishes, as
            // after a restart; only an error that survives that is the disk's. The
            // interrupted updates of other clients are not the volume's: they hold in
            // the fresh one too.
            volume = nil
            state = progress ?? before
            outcome = attempt(request, reply: payload.replyBuffer, client: client, state: &state)
        }
        // The update is over (done or refused): its intent and append position go with
        // the reply's commit, and what a crash of its first run left adopted with them
        // (the engine lets go when it finishes; a refusal before the engine does not).
        // One that failed part-way gives back the blocks of its unfinished step first.
        if case .reply(let code, _, _) = outcome, code != 0, let left = progress?.intent, left.tag == tag {
            releaseAbandoned(left)
        }
        interrupted.forget(tag: tag)
        state.intent = Ext2Intent(tag: 0)
        state.appendRequest = 0
        state.appendPosition = 0
        return outcome
    }

    /// An update that will never run again: the blocks its unfinished step reserved or
    /// had unlinked go back to the free pool, if the volume can be reached (otherwise
    /// they stay marked in use, for e2fsck to free). Done before the intent leaves the
    /// SSR, so a crash meanwhile finds it there and this runs again.
    mutating func releaseAbandoned(_ intent: Ext2Intent) {
        do throws(FileSystemError) {
            try mount()
            if !readOnly {
                volume!.now = now
                try volume!.beginRequest()
                try volume!.release(abandoned: intent)
            }
        } catch .internalInconsistency {
            System.reportFailure()
        } catch {}
        interrupted.forget(tag: intent.tag)
    }

    /// Commits `record` to the client's SSR as the progress of the request in hand.
    mutating func commitProgress(_ record: FileSystemClientRecord) {
        Runtime.checkpoint(Layout(record))
        progress = record
    }

    /// Mounts if needed and performs the request; an error becomes the reply.
    mutating func attempt(_ request: FileSystemRequest, reply: UnsafeMutableRawBufferPointer, client: TaskID,
                          state: inout FileSystemClientRecord) -> SSROutcome {
        // Answered when nothing mounts too: saying why is what it is for.
        if case .mountStatus = request { return reportMountStatus(into: reply) }
        if case .handles = request { return reportHandles(state.files, into: reply) }
        do throws(FileSystemError) {
            try mount()
            if readOnly && request.updates { throw .readOnly }
            volume!.now = now
            try volume!.beginRequest()
            return try perform(request, reply: reply, client: client, state: &state)
        } catch .internalInconsistency {
            // About to write a block against its own metadata: our state is damaged.
            System.reportFailure()
        } catch {
            return .reply(error.rawValue)
        }
    }

    /// The handles the client holds: what a client restarted with its SSRs finds open.
    /// No volume is needed: they are the client's state.
    func reportHandles(_ files: FileSystemClientState, into reply: UnsafeMutableRawBufferPointer) -> SSROutcome {
        var count = 0
        for index in 0..<FileSystemClientState.handleCount where !files.handles[index].isFree {
            let slot = files.handles[index]
            let start = count * OpenHandle.encodedBytes
            _ = OpenHandle(handle: slot.handle, flags: slot.openFlags, offset: slot.offset,
                           inode: InodeNumber(slot.inode))
                .encode(into: UnsafeMutableRawBufferPointer(rebasing: reply[start..<start + OpenHandle.encodedBytes]))
            count += 1
        }
        return .reply(code: 0, words: (UInt(count), 0), length: count * OpenHandle.encodedBytes)
    }

    /// Mounts if it can, then says how the volume is mounted, or why it is not.
    mutating func reportMountStatus(into reply: UnsafeMutableRawBufferPointer) -> SSROutcome {
        try? mount()
        let status: MountStatus
        if let volume {
            if let readOnlyReason {
                status = .readOnly(readOnlyReason)
            } else if !volume.isWritable {
                status = .readOnly(.features(volume.featuresPreventingWrites))
            } else {
                status = .writable
            }
        } else {
            status = .notMounted(mountFailure ?? .noDisk)
        }
        let encoded = status.encode(into: reply)
        return .reply(code: 0, words: encoded.words, length: encoded.length)
    }

    /// The file a handle names, checked to still be that file.
    mutating func openFile(_ record: HandleSlot) throws(FileSystemError) -> FileStatus {
        let status = try volume!.status(InodeNumber(record.inode))
        guard record.refersTo(status) else { throw .staleHandle }
        return status
    }

    mutating func perform(_ request: FileSystemRequest, reply: UnsafeMutableRawBufferPointer, client: TaskID,
                          state: inout FileSystemClientRecord) throws(FileSystemError) -> SSROutcome {
        // The engine updates its intent here and hands it to `checkpoint`, which commits
        // it with the rest of the client's state (kept apart for exclusive access).
        var intent = state.intent
        func checkpoint(_ intent: Ext2Intent) {
            var record = state
            record.intent = intent
            // Field by field, not `commitProgress`: the engine holds `volume` meanwhile.
            Runtime.checkpoint(Layout(record))
            progress = record
        }
        let me = ClientID(rawValue: client.rawValue)
        switch request {
        case .open(let path, let flags, let permissions):
            // Room for the handle first: nothing is created for a client that cannot hold it.
            var probe = state.files
            _ = try probe.open(inode: InodeNumber.root, generation: 0, flags: .read)
            let inode: InodeNumber
            if flags.contains(.create) {
                let parent = try volume!.resolveParent(path)
                let name = UnsafeRawBufferPointer(rebasing: path[parent.nameStart..<parent.nameStart + parent.nameCount])
                inode = try volume!.openCreating(name, in: parent.directory, permissions: permissions,
                                                 exclusive: flags.contains(.exclusive),
                                                 truncate: flags.contains(.truncate), intent: &intent,
                                                 checkpoint: checkpoint).inode
            } else {
                inode = try volume!.resolve(path)
                // Even an empty file: a re-run may find the size already 0 and a step's
                // blocks not yet freed.
                if flags.contains(.truncate) {
                    try volume!.truncate(inode, to: 0, intent: &intent, checkpoint: checkpoint)
                }
            }
            let status = try volume!.status(inode)
            if status.type == .directory {
                guard flags.contains(.directory), !flags.contains(.write) else { throw .isADirectory }
            }
            let handle = try state.files.open(inode: inode, generation: status.generation, flags: flags)
            return .reply(0, UInt(handle.rawValue), 0)

        case .close(let handle):
            let closed = try state.files.close(handle)
            locks.releaseAll(client: me, file: closed.file)
            Runtime.requestFollowUp()
            return .reply(0)

        case .read(let handle, let count):
            return try read(handle, count: count, into: reply, files: &state.files)

        case .write(let handle, let data):
            let record = state.files.handles[try state.files.slot(of: handle, allowing: .write)]
            let status = try openFile(record)
            var position = try state.files.writePosition(handle, fileSize: status.size)
            if record.openFlags.contains(.append) && state.intent.tag != 0 {
                let requestID = state.intent.tag
                if state.appendRequest == requestID {
                    position = state.appendPosition
                } else {
                    state.appendRequest = requestID
                    state.appendPosition = position
                    commitProgress(state)
                }
            }
            let before = state.files
            let written = try volume!.write(InodeNumber(record.inode), at: position, from: data,
                                            intent: &intent, checkpoint: checkpoint)
            try state.files.recordWrite(handle, at: position, count: written)
            let newOffset = UInt(position) + UInt(written)
            guard FileSystemTransition.isValidWrite(from: before, to: state.files, handle: handle, length: data.count,
                                                    position: position, count: written, replyOffset: UInt64(newOffset),
                                                    nearlyFull: volume!.isNearlyFull) else {
                System.reportFailure()
            }
            return .reply(0, UInt(written), newOffset)

        case .seek(let handle, let offset, let whence):
            let record = try state.files.file(handle)
            let size = whence == .end ? try openFile(record).size : 0
            let position = try state.files.seek(handle, offset: offset, whence: whence, fileSize: size)
            return .reply(0, UInt(position), 0)

        case .stat(let path):
            let status = try volume!.status(try volume!.resolve(path))
            return .reply(code: 0, words: (0, 0), length: status.encode(into: reply))

        case .fstat(let handle):
            let status = try openFile(try state.files.file(handle))
            return .reply(code: 0, words: (0, 0), length: status.encode(into: reply))

        case .truncate(let path, let size):
            let inode = try volume!.resolve(path)
            guard try volume!.status(inode).type != .directory else { throw .isADirectory }
            try volume!.truncate(inode, to: size, intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .ftruncate(let handle, let size):
            let record = state.files.handles[try state.files.slot(of: handle, allowing: .write)]
            _ = try openFile(record)
            try volume!.truncate(InodeNumber(record.inode), to: size, intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .mkdir(let path, let permissions):
            let parent = try volume!.resolveParent(path)
            let name = UnsafeRawBufferPointer(rebasing: path[parent.nameStart..<parent.nameStart + parent.nameCount])
            _ = try volume!.create(name, in: parent.directory, type: .directory, permissions: permissions,
                                   intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .rmdir(let path):
            let parent = try volume!.resolveParent(path)
            let name = UnsafeRawBufferPointer(rebasing: path[parent.nameStart..<parent.nameStart + parent.nameCount])
            try volume!.removeDirectory(name, in: parent.directory, intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .unlink(let path):
            let parent = try volume!.resolveParent(path)
            let name = UnsafeRawBufferPointer(rebasing: path[parent.nameStart..<parent.nameStart + parent.nameCount])
            try volume!.unlink(name, in: parent.directory, intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .rename(let from, let to):
            let source = try volume!.resolveParent(from)
            let target = try volume!.resolveParent(to)
            let oldName = UnsafeRawBufferPointer(rebasing: from[source.nameStart..<source.nameStart + source.nameCount])
            let newName = UnsafeRawBufferPointer(rebasing: to[target.nameStart..<target.nameStart + target.nameCount])
            try volume!.rename(oldName, in: source.directory, to: newName, in: target.directory,
                               intent: &intent, checkpoint: checkpoint)
            return .reply(0)

        case .readDirectory(let path, let start):
            return try readDirectory(path, from: start, into: reply)

        case .lock(let handle, let range, let kind, let wait):
            return try lock(handle, range: range, kind: kind, wait: wait, client: client, files: &state.files)

        case .statistics:
            return .reply(code: 0, words: (0, 0), length: volume!.statistics.encode(into: reply))

        case .sync:
            try volume!.sync()
            return .reply(0)

        case .mountStatus:
            return reportMountStatus(into: reply)

        case .handles:
            return reportHandles(state.files, into: reply)
        }
    }

    /// `read`: from the handle's offset, at most `count` bytes, into the reply; the
    /// transition checked before it is answered.
    mutating func read(_ handle: FileHandle, count: Int, into reply: UnsafeMutableRawBufferPointer,
                       files: inout FileSystemClientState) throws(FileSystemError) -> SSROutcome {
        let record = files.handles[try files.slot(of: handle, allowing: .read)]
        _ = try openFile(record)
        let before = files
        let requested = min(count, reply.count)
        let read = try volume!.read(InodeNumber(record.inode), at: record.offset,
                                    into: UnsafeMutableRawBufferPointer(rebasing: reply[0..<requested]))
        try files.recordRead(handle, count: read)
        let newOffset = UInt(record.offset) + UInt(read)
        let size = try volume!.status(InodeNumber(record.inode)).size
        guard FileSystemTransition.isValidRead(from: before, to: files, handle: handle, requested: requested,
                                               fileSize: size, count: read, replyOffset: UInt64(newOffset)) else {
            System.reportFailure()
        }
        return .reply(code: 0, words: (UInt(read), newOffset), length: read)
    }

    /// `readDirectory`: as many whole entries from `start` as fit the reply, and where
    /// the next page starts (0: the end).
    mutating func readDirectory(_ path: UnsafeRawBufferPointer, from start: UInt64,
                                into reply: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> SSROutcome {
        let directory = try volume!.resolve(path)
        var page = DirectoryPageWriter(reply)
        var cursor = start
        var entry = DirectoryEntry()
        while true {
            guard let next = try volume!.readDirectory(directory, cursor: cursor, into: &entry) else {
                cursor = 0
                break
            }
            guard try page.append(entry) else { break }  // starts the next page
            cursor = next
        }
        return .reply(code: 0, words: (UInt(cursor), UInt(page.count)), length: page.length)
    }

    /// `lock`: takes, or releases, a byte range of the handle's file; a conflicting one
    /// is refused, or with `wait` held until it can be granted (`followUp`).
    mutating func lock(_ handle: FileHandle, range: LockRange, kind: LockKind, wait: Bool, client: TaskID,
                       files: inout FileSystemClientState) throws(FileSystemError) -> SSROutcome {
        let me = ClientID(rawValue: client.rawValue)
        let file = try files.file(handle).file
        if kind == .unlock {
            var changed = files
            try changed.applyLock(handle, range: range, kind: .unlock)
            try locks.release(client: me, file: file, range: range)
            files = changed
            Runtime.requestFollowUp()
            return .reply(0)
        }
        if locks.conflictingHolder(client: me, file: file, range: range, kind: kind) != nil {
            guard wait else { throw .wouldBlock }
            let waiter = LockTable.Waiter(client: me, handle: handle, file: file, range: range, kind: kind)
            guard !locks.wouldDeadlock(waiter) else { throw .deadlock }
            try locks.enqueue(waiter)
            // fs promises every request it holds (system.toml): a lock wait has no
            // deadline, so it is promised for ever; only a request held unpromised
            // (one a fault made us forget) gets us restarted.
            try? System.promiseReply(to: client, by: Self.heldForEver)
            return .deferred
        }
        var changed = files
        try changed.applyLock(handle, range: range, kind: kind)
        try locks.acquire(client: me, file: file, range: range, kind: kind)
        files = changed
        return .reply(0)
    }

    public static func replyLimit(operation: UInt16, words: (UInt, UInt)) -> Int {
        FileSystemOperation(rawValue: operation)?.replyLimit(words: words) ?? 0
    }

    public mutating func replayPayload(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                       state layout: Layout, reply: SSRReply) -> Int? {
        let state = layout.state
        guard operation == FileSystemOperation.read.rawValue else {
            // Listings and status are computed again; updates carry no payload.
            switch FileSystemOperation(rawValue: operation) {
            case .readDirectory?, .stat?, .fstat?, .statistics?, .mountStatus?, .handles?: return nil
            default: return 0
            }
        }
        guard reply.code == 0 else { return 0 }
        do throws(FileSystemError) {
            guard case .read(let handle, _) = try FileSystemRequest.decode(operation: operation, words: words,
                                                                         payload: payload.request) else { return 0 }
            try mount()
            let record = try state.files.file(handle)
            let status = try volume!.status(InodeNumber(record.inode))
            let (offset, count) = try state.files.readToReplay(handle, file: status)
            return try volume!.read(InodeNumber(record.inode), at: offset,
                                    into: UnsafeMutableRawBufferPointer(rebasing: payload.replyBuffer[0..<count]))
        } catch .staleHandle {
            // The file went (and its inode may be another file's now) since the read
            // was committed. Handled again, the read answers `staleHandle` and changes
            // nothing, as the read would have if it came now; a replay of the new
            // file's bytes would hand this client someone else's data.
            return nil
        } catch {
            System.reportFailure()
        }
    }
}

extension FileSystemRequest {
    /// Whether the request changes the disk.
    var updates: Bool {
        switch self {
        case .open(_, let flags, _): flags.contains(.create) || flags.contains(.truncate)
        case .write, .truncate, .ftruncate, .mkdir, .rmdir, .unlink, .rename: true
        case .close, .read, .seek, .stat, .fstat, .readDirectory, .lock, .statistics, .sync, .mountStatus, .handles:
            false
        }
    }
}

// The filesystem's client library: POSIX-like calls over messages to the
// filesystem server.
//
//   let file = try FileSystem.open("/notes.txt", [.write, .create, .truncate])
//   _ = try FileSystem.write(file, from: bytes)
//   try FileSystem.close(file)
//
// The server (`fs`) keeps each client's open files and locks in that client's
// server state region, so a handle survives a crash of the server: a call in flight
// is delivered again to the restarted server and answered once, and the next call
// finds the old endpoint dead, looks the server up again and goes on with the same
// handle. Only if the server could not trust this client's region does a call fail
// with `stateLost`: the handles and locks are gone (open the files again).
//
// Paths are byte buffers, because programs get theirs from command-line words; a
// StaticString overload covers the paths written in code. Every message carries at
// most 4 KiB, so read and write loop over 4 KiB pieces: like read(2) and write(2) they
// return a short count at the end of the file, or when an error stops them after
// some bytes were moved (the error itself then surfaces on the next call). Every
// message is built by `FileSystemRequest.encode`, which applies the server's own
// rules, so a malformed argument is refused here without a round trip; a reply that
// breaks the protocol is reported as `ioError`.

@_exported import FileSystemCore
import CurioUser

public enum FileSystem {
    /// The program serving the calls (a benchmark can point this at a second instance).
    nonisolated(unsafe) public static var serverName: StaticString = "fs" {
        didSet { server = ServerEndpoint(serverName) }
    }

    nonisolated(unsafe) private static var server = ServerEndpoint("fs")

    private static var noReply: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: nil, count: 0) }

    /// Sends `request` and returns the reply (code 0), following the server across
    /// restarts (`ServerEndpoint`).
    private static func call(_ request: FileSystemRequest, reply: UnsafeMutableRawBufferPointer = noReply)
        throws(FileSystemError) -> Reply {
        try withScratch(for: request) { scratch throws(FileSystemError) -> Reply in
            let message = try request.encode(scratch: scratch)
            let answer: Reply
            do throws(SyscallError) {
                answer = try server.call(operation: message.operation.rawValue, words: message.words,
                                         payload: message.payload, reply: reply)
            } catch .serverStateLost {
                throw .stateLost
            } catch {
                throw .unavailable
            }
            guard answer.code == 0 else {
                throw FileSystemError(rawValue: UInt32(truncatingIfNeeded: answer.code)) ?? .ioError
            }
            guard answer.length >= 0, answer.length <= reply.count else { throw .ioError }
            return answer
        }
    }

    /// Lends `body` the scratch the request's encoding needs: rename builds its two
    /// paths in a temporary buffer, lock its range in a small one; the rest borrow.
    private static func withScratch(for request: FileSystemRequest,
                                    _ body: (UnsafeMutableRawBufferPointer) throws(FileSystemError) -> Reply)
        throws(FileSystemError) -> Reply {
        switch request {
        case .rename:
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemRequest.scratchBytes, alignment: 8)
            defer { scratch.deallocate() }
            return try body(scratch)
        case .lock:
            var range: (UInt64, UInt64) = (0, 0)
            return try withUnsafeMutableBytes(of: &range) { scratch throws(FileSystemError) -> Reply in
                try body(scratch)
            }
        default:
            return try body(noReply)
        }
    }

    // MARK: Files

    /// Opens (or with `.create`, creates with `permissions`) the file at `path`.
    public static func open(_ path: UnsafeRawBufferPointer, _ flags: OpenFlags, permissions: UInt16 = 0o644)
        throws(FileSystemError) -> FileHandle {
        let reply = try call(.open(path: path, flags: flags, permissions: permissions))
        guard reply.words.0 != 0, reply.words.0 <= UInt(UInt32.max) else { throw .ioError }
        return FileHandle(rawValue: UInt32(reply.words.0))
    }

    public static func open(_ path: StaticString, _ flags: OpenFlags, permissions: UInt16 = 0o644)
        throws(FileSystemError) -> FileHandle {
        try open(bytes(of: path), flags, permissions: permissions)
    }

    /// Closes the handle, releasing every lock this program holds on its file.
    public static func close(_ handle: FileHandle) throws(FileSystemError) {
        _ = try call(.close(handle))
    }

    /// Reads from the handle's offset into `buffer`, advancing the offset; returns
    /// the bytes read (fewer than `buffer.count` only at the end of the file).
    public static func read(_ handle: FileHandle, into buffer: UnsafeMutableRawBufferPointer)
        throws(FileSystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = min(buffer.count - done, FileSystemLimits.maxTransfer)
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
            let got: Int
            do throws(FileSystemError) {
                let reply = try call(.read(handle, count: count), reply: piece)
                guard reply.words.0 == UInt(reply.length), reply.length <= count else { throw .ioError }
                got = reply.length
            } catch {
                if done > 0 { return done }
                throw error
            }
            done += got
            if got < count { break }
        }
        return done
    }

    /// Writes `data` at the handle's offset (at the end of the file for a handle
    /// opened with `.append`), advancing the offset; returns the bytes written.
    public static func write(_ handle: FileHandle, from data: UnsafeRawBufferPointer) throws(FileSystemError) -> Int {
        var done = 0
        while done < data.count {
            let count = min(data.count - done, FileSystemLimits.maxTransfer)
            let written: Int
            do throws(FileSystemError) {
                let reply = try call(.write(handle, data: UnsafeRawBufferPointer(rebasing: data[done..<done + count])))
                guard reply.words.0 <= UInt(count) else { throw .ioError }
                written = Int(reply.words.0)
            } catch {
                if done > 0 { return done }
                throw error
            }
            done += written
            if written < count { break }
        }
        return done
    }

    /// Moves the handle's offset; returns the new offset.
    public static func seek(_ handle: FileHandle, to offset: Int64, from whence: Whence = .set)
        throws(FileSystemError) -> UInt64 {
        UInt64(try call(.seek(handle, offset: offset, whence: whence)).words.0)
    }

    public static func stat(_ path: UnsafeRawBufferPointer) throws(FileSystemError) -> FileStatus {
        try status(.stat(path: path))
    }

    public static func stat(_ path: StaticString) throws(FileSystemError) -> FileStatus {
        try stat(bytes(of: path))
    }

    public static func fstat(_ handle: FileHandle) throws(FileSystemError) -> FileStatus {
        try status(.fstat(handle))
    }

    private static func status(_ request: FileSystemRequest) throws(FileSystemError) -> FileStatus {
        var record: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        return try withUnsafeMutableBytes(of: &record) { buffer throws(FileSystemError) -> FileStatus in
            let reply = try call(request, reply: buffer)
            return try FileStatus.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length]))
        }
    }

    /// Sets the file's size (cutting it, or extending it with zeros).
    public static func truncate(_ path: UnsafeRawBufferPointer, size: UInt64) throws(FileSystemError) {
        _ = try call(.truncate(path: path, size: size))
    }

    public static func truncate(_ path: StaticString, size: UInt64) throws(FileSystemError) {
        try truncate(bytes(of: path), size: size)
    }

    public static func ftruncate(_ handle: FileHandle, size: UInt64) throws(FileSystemError) {
        _ = try call(.ftruncate(handle, size: size))
    }

    // MARK: Names

    public static func mkdir(_ path: UnsafeRawBufferPointer, permissions: UInt16 = 0o755) throws(FileSystemError) {
        _ = try call(.mkdir(path: path, permissions: permissions))
    }

    public static func mkdir(_ path: StaticString, permissions: UInt16 = 0o755) throws(FileSystemError) {
        try mkdir(bytes(of: path), permissions: permissions)
    }

    public static func rmdir(_ path: UnsafeRawBufferPointer) throws(FileSystemError) {
        _ = try call(.rmdir(path: path))
    }

    public static func rmdir(_ path: StaticString) throws(FileSystemError) { try rmdir(bytes(of: path)) }

    public static func unlink(_ path: UnsafeRawBufferPointer) throws(FileSystemError) {
        _ = try call(.unlink(path: path))
    }

    public static func unlink(_ path: StaticString) throws(FileSystemError) { try unlink(bytes(of: path)) }

    public static func rename(_ old: UnsafeRawBufferPointer, to new: UnsafeRawBufferPointer) throws(FileSystemError) {
        _ = try call(.rename(from: old, to: new))
    }

    public static func rename(_ old: StaticString, to new: StaticString) throws(FileSystemError) {
        try rename(bytes(of: old), to: bytes(of: new))
    }

    /// Calls `body` with each entry of the directory at `path` (including "." and
    /// ".."), in the directory's order, until it returns false. Pages are fetched
    /// as they are needed; a listing crosses a server restart unharmed.
    public static func readDirectory(_ path: UnsafeRawBufferPointer, _ body: (DirectoryEntry) -> Bool)
        throws(FileSystemError) {
        // On the heap, not the stack: `body` may list another directory itself.
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemLimits.maxTransfer, alignment: 8)
        defer { page.deallocate() }
        var cursor: UInt64 = 0
        repeat {
            let reply = try call(.readDirectory(path: path, cursor: cursor), reply: page)
            guard reply.words.1 <= UInt(reply.length) else { throw .ioError }
            var reader = DirectoryPageReader(UnsafeRawBufferPointer(rebasing: page[0..<reply.length]),
                                             count: Int(reply.words.1))
            while let entry = try reader.next() {
                if !body(entry) { return }
            }
            let next = UInt64(reply.words.0)
            // A cursor must move on, or a damaged server would keep us here for ever.
            guard next == 0 || (next != cursor && reply.words.1 > 0) else { throw .ioError }
            cursor = next
        } while cursor != 0
    }

    public static func readDirectory(_ path: StaticString, _ body: (DirectoryEntry) -> Bool) throws(FileSystemError) {
        try readDirectory(bytes(of: path), body)
    }

    // MARK: Locks

    /// Locks `length` bytes from `start` (0: to the end of the file, however long it
    /// grows), shared or exclusive, replacing this program's own locks there. If
    /// another program's lock conflicts: with `wait`, blocks until it is granted (or
    /// fails with `deadlock` if that would never happen); without, `wouldBlock`.
    public static func lock(_ handle: FileHandle, start: UInt64, length: UInt64, exclusive: Bool, wait: Bool)
        throws(FileSystemError) {
        let range = try LockRange(start: start, length: length)
        _ = try call(.lock(handle, range: range, kind: exclusive ? .exclusive : .shared, wait: wait))
    }

    /// Releases this program's locks over the range (0 length: to the end of the file).
    public static func unlock(_ handle: FileHandle, start: UInt64, length: UInt64) throws(FileSystemError) {
        let range = try LockRange(start: start, length: length)
        _ = try call(.lock(handle, range: range, kind: .unlock, wait: false))
    }

    // MARK: Volume

    public static func statistics() throws(FileSystemError) -> VolumeStatistics {
        var record: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return try withUnsafeMutableBytes(of: &record) { buffer throws(FileSystemError) -> VolumeStatistics in
            let reply = try call(.statistics, reply: buffer)
            return try VolumeStatistics.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length]))
        }
    }

    /// Writes everything the server has cached to the disk.
    public static func sync() throws(FileSystemError) {
        _ = try call(.sync)
    }

    /// Whether a volume is mounted, and if not, or only for reading, why: what to
    /// tell a person after `notMounted` or `readOnly`. Asking mounts the disk if it can.
    public static func mountStatus() throws(FileSystemError) -> MountStatus {
        var record: (UInt32, UInt32, UInt32) = (0, 0, 0)
        return try withUnsafeMutableBytes(of: &record) { buffer throws(FileSystemError) -> MountStatus in
            let reply = try call(.mountStatus, reply: buffer)
            return try MountStatus.decode(words: reply.words,
                                          payload: UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length]))
        }
    }

    /// The handles this client holds, with their offsets: what a client restarted with
    /// its SSRs (system.toml `keep_ssrs`) finds still open.
    public static func openHandles() throws(FileSystemError) -> [OpenHandle] {
        let count = FileSystemClientState.handleCount * OpenHandle.encodedBytes
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        defer { buffer.deallocate() }
        let reply = try call(.handles, reply: buffer)
        guard reply.words.0 <= UInt(FileSystemClientState.handleCount),
              reply.length == Int(reply.words.0) * OpenHandle.encodedBytes else { throw .ioError }
        var handles: [OpenHandle] = []
        for index in 0..<Int(reply.words.0) {
            let start = index * OpenHandle.encodedBytes
            handles.append(try OpenHandle.decode(
                UnsafeRawBufferPointer(rebasing: buffer[start..<start + OpenHandle.encodedBytes])))
        }
        return handles
    }

    private static func bytes(of path: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: path.utf8Start, count: path.utf8CodeUnitCount)
    }
}

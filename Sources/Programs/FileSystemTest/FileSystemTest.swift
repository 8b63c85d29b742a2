// fstest: filesystem workloads whose results a test can check from the console.
//
//   fstest tree [PATH]            walk the tree; one line per entry:
//                                   F <crc32 hex> <size> <path>     (regular file)
//                                   D <path>                        (directory)
//                                 then "tree files=N directories=M bytes=B errors=E"
//   fstest stream ID ROUNDS [UNTIL]
//                                 one streaming client (below): ROUNDS rounds, and more
//                                 until the clock reaches UNTIL; exit 0 ok, 1 wrong data,
//                                 2 ok, but its server state was lost (it opened its file
//                                 again and went on), 3 another error
//   fstest ops                    a fixed sequence of every kind of update (the test
//                                 computes the resulting tree on the host and compares)
//   fstest stress CLIENTS ROUNDS [fs=N] [storage=N] [every=TICKS] [kind=FAULT]
//                 [trigger=next|after|random|exec] [arg=N] [aim=N] [seed=S] [persistent]
//                                 (FaultSchedule's options)
//                                 CLIENTS streaming clients while N faults of every kind in
//                                 turn (or only FAULT, a FaultKind name) are injected into
//                                 the filesystem server and N into the storage server, one
//                                 every TICKS, each striking at the next request (or the
//                                 ARGth request from then, a random tick below ARG, or a
//                                 random tick of the server's own execution below ARG;
//                                 default ARG: 1, TICKS, or 10 ms), striking register or
//                                 byte N (aim=N, as timertest's; default at random), with
//                                 the kernel's choice of moment and target seeded by S,
//                                 S+1, ... for the successive injections (seed=S, as
//                                 timertest's; default the kernel's own sequence), a code
//                                 fault outliving restarts if `persistent`; then the verdict:
//                                 "fstest stress ok clients=... ok=... lost=... failed=..."
//                                 (ok: every client passed, except that a client may have
//                                 lost its state to an SSR bit flip in its own region)
//   fstest locks PATH             the lock-and-offset scenario across a server restart
//   fstest blocks                 read the disk's ext2 superblock through the storage
//                                 server directly: "blocks capacity=S magic=ef53 ..."
//
// A streaming client works on /stream-ID: every round it rewrites the file in 4 KiB
// pieces whose bytes depend on (client, round, offset), reads it back from a seek in
// the middle, appends a tail record with O_APPEND, checks the size, and reads the whole
// file again through a second handle. Any difference is "wrong data" — the failure a
// server restart must never cause.

import ConsoleAPI
import CurioUser
import FileSystemAPI
import StorageAPI

@main
struct FileSystemTest {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        switch words.first {
        case "tree": System.exit(tree(words.count > 1 ? words[1] : "/"))
        case "stream":
            guard words.count >= 3, let id = Int(words[1]), let rounds = Int(words[2]) else { usage() }
            let until = words.count > 3 ? UInt64(words[3]) ?? 0 : 0
            System.exit(stream(id: id, rounds: rounds, until: until))
        case "ops": System.exit(operations())
        case "stress":
            guard words.count >= 3, let clients = Int(words[1]), let rounds = Int(words[2]) else { usage() }
            System.exit(stress(clients: clients, rounds: rounds, options: Array(words.dropFirst(3))))
        case "locks":
            guard words.count == 2 else { usage() }
            System.exit(locks(path: words[1]))
        case "blocks": System.exit(blocks())
        case "lockhold":
            guard words.count == 3, let ticks = UInt64(words[2]) else { usage() }
            System.exit(lockHolder(path: words[1], holdTicks: ticks))
        case "lockwait":
            guard words.count == 2 else { usage() }
            System.exit(lockWaiter(path: words[1]))
        default: usage()
        }
    }

    static func usage() -> Never {
        print("usage: fstest tree [PATH] | stream ID ROUNDS | stress CLIENTS ROUNDS [fs=N] [storage=N] [every=TICKS]"
              + " [kind=FAULT] [trigger=next|after|random|exec] [arg=N] [aim=N] [seed=S] [persistent] | locks PATH")
        System.exit(2)
    }

    // MARK: Helpers

    /// A string's UTF-8 in a buffer of its own (deallocate it).
    static func bytes(_ text: String) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(text.utf8.count, 1), alignment: 1)
        for (index, byte) in text.utf8.enumerated() { buffer[index] = byte }
        return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<text.utf8.count])
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    // MARK: ops

    /// The bytes of the `ops` files (the integration test computes the same).
    static func opsPattern(seed: Int, offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset &* 31 &+ seed &* 101) ^ (offset >> 9))
    }

    static func writeWhole(_ path: String, size: Int, seed: Int) throws(FileSystemError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 8)
        defer { buffer.deallocate() }
        let file = try withUTF8Bytes(path) { bytes throws(FileSystemError) in
            try FileSystem.open(bytes, [.write, .create, .truncate])
        }
        var offset = 0
        while offset < size {
            let count = min(chunkBytes, size - offset)
            for index in 0..<count { buffer[index] = opsPattern(seed: seed, offset: offset + index) }
            guard try FileSystem.write(file, from: UnsafeRawBufferPointer(rebasing: buffer[0..<count])) == count else {
                throw .noSpace
            }
            offset += count
        }
        try FileSystem.close(file)
    }

    static func writeText(_ path: String, _ text: String, append: Bool = false) throws(FileSystemError) {
        let flags: OpenFlags = append ? [.write, .create, .append] : [.write, .create, .truncate]
        let file = try withUTF8Bytes(path) { bytes throws(FileSystemError) in try FileSystem.open(bytes, flags) }
        let data = bytes(text)
        defer { data.deallocate() }
        guard try FileSystem.write(file, from: UnsafeRawBufferPointer(data)) == data.count else { throw .noSpace }
        try FileSystem.close(file)
    }

    /// Every kind of update once, in an order the test mirrors on the host.
    static func operations() -> Int32 {
        var step = "start"
        do throws(FileSystemError) {
            for directory in ["/work", "/work/sub", "/gone", "/many"] {
                step = "mkdir " + directory
                try withUTF8Bytes(directory) { path throws(FileSystemError) in try FileSystem.mkdir(path) }
            }
            step = "write /work/big"
            try writeWhole("/work/big", size: 300_000, seed: 1)
            step = "write /work/small"
            try writeText("/work/small", "hello\n")
            step = "write /work/mid"
            try writeWhole("/work/mid", size: 70_000, seed: 2)
            step = "append /work/small"
            try writeText("/work/small", "world\n", append: true)
            step = "truncate /work/big"
            try withUTF8Bytes("/work/big") { path throws(FileSystemError) in
                try FileSystem.truncate(path, size: 100_000)
            }
            step = "ftruncate /work/big"
            let big = try withUTF8Bytes("/work/big") { path throws(FileSystemError) in
                try FileSystem.open(path, .write)
            }
            try FileSystem.ftruncate(big, size: 150_000)
            try FileSystem.close(big)
            step = "write /work/sub/target"
            try writeText("/work/sub/target", "old\n")
            step = "rename /work/mid"
            try withUTF8Bytes("/work/mid") { from throws(FileSystemError) in
                try withUTF8Bytes("/work/sub/moved") { to throws(FileSystemError) in
                    try FileSystem.rename(from, to: to)
                }
            }
            step = "rename /work/small over /work/sub/target"
            try withUTF8Bytes("/work/small") { from throws(FileSystemError) in
                try withUTF8Bytes("/work/sub/target") { to throws(FileSystemError) in
                    try FileSystem.rename(from, to: to)
                }
            }
            step = "rmdir /gone"
            try withUTF8Bytes("/gone") { path throws(FileSystemError) in try FileSystem.rmdir(path) }
            step = "unlink /tmpfile"
            try writeText("/tmpfile", "x")
            try withUTF8Bytes("/tmpfile") { path throws(FileSystemError) in try FileSystem.unlink(path) }
            for index in 0..<40 {
                step = "create many \(index)"
                try writeText("/many/file-with-a-longer-name-\(index)", "file \(index)\n")
            }
            for index in stride(from: 0, to: 40, by: 2) {
                step = "unlink many \(index)"
                try withUTF8Bytes("/many/file-with-a-longer-name-\(index)") { path throws(FileSystemError) in
                    try FileSystem.unlink(path)
                }
            }
            step = "rename /many into /work"
            try withUTF8Bytes("/many") { from throws(FileSystemError) in
                try withUTF8Bytes("/work/many") { to throws(FileSystemError) in try FileSystem.rename(from, to: to) }
            }
            step = "sync"
            try FileSystem.sync()
        } catch {
            print("ops FAIL " + step + ": " + String(error.name))
            return 1
        }
        print("ops ok")
        return 0
    }

    // MARK: blocks

    static func blocks() -> Int32 {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 8)
        defer { buffer.deallocate() }
        do throws(StorageError) {
            var disk = try withUTF8Bytes("storage") { name throws(StorageError) in try BlockStorage(server: name) }
            let info = try disk.info()
            try disk.read(sector: 2, count: 2, into: buffer)
            let magic = buffer.load(fromByteOffset: 56, as: UInt16.self)
            let blocks = buffer.load(fromByteOffset: 4, as: UInt32.self)
            let logBlockSize = buffer.load(fromByteOffset: 24, as: UInt32.self)
            print("blocks capacity=\(info.capacity) readonly=\(info.readOnly) cache=\(info.hasWriteCache) magic="
                  + String(magic, radix: 16) + " ext2blocks=\(blocks) blocksize=\(1024 << logBlockSize)")
            return magic == 0xEF53 ? 0 : 1
        } catch {
            print("blocks: " + String(error.name))
            return 1
        }
    }

    // MARK: tree

    static func tree(_ root: String) -> Int32 {
        var files = 0
        var directories = 0
        var total = 0
        var errors = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        var pending = [root]
        while let directory = pending.popLast() {
            print("D " + directory)
            directories += 1
            var names = [(String, FileType)]()
            let listed: FileSystemError? = withUTF8Bytes(directory) { path in
                do throws(FileSystemError) {
                    try FileSystem.readDirectory(path) { entry in
                        let name = entry.withName { String(decoding: $0, as: UTF8.self) }
                        if name != "." && name != ".." { names.append((name, entry.type)) }
                        return true
                    }
                    return nil
                } catch {
                    return error
                }
            }
            if let listed {
                print("E " + directory + " " + String(listed.name))
                errors += 1
                continue
            }
            for (name, type) in names.sorted(by: { $0.0 > $1.0 }) {
                let path = (directory == "/" ? "/" : directory + "/") + name
                if type == .directory {
                    pending.append(path)
                    continue
                }
                var checksum = CRC32()
                var size = 0
                let failed: FileSystemError? = withUTF8Bytes(path) { bytes in
                    do throws(FileSystemError) {
                        let file = try FileSystem.open(bytes, .read)
                        defer { try? FileSystem.close(file) }
                        while true {
                            let count = try FileSystem.read(file, into: buffer)
                            if count == 0 { break }
                            checksum.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                            size += count
                        }
                        return nil
                    } catch {
                        return error
                    }
                }
                if let failed {
                    print("E " + path + " " + String(failed.name))
                    errors += 1
                    continue
                }
                print("F " + hex(checksum.value) + " \(size) " + path)
                files += 1
                total += size
            }
        }
        print("tree files=\(files) directories=\(directories) bytes=\(total) errors=\(errors)")
        return errors == 0 ? 0 : 1
    }

    // MARK: stream

    /// The byte at `offset` of client `id`'s file in `round`.
    static func pattern(id: Int, round: Int, offset: Int) -> UInt8 {
        let mixed = UInt64(offset) &* 0x9E37_79B1 ^ UInt64(id) &* 0x85EB_CA77 ^ UInt64(round) &* 0xC2B2_AE3D
        return UInt8(truncatingIfNeeded: mixed >> 11)
    }

    static let streamChunks = 12
    static let chunkBytes = 4096
    static let tailBytes = 100

    enum StreamFailure: Error {
        case wrongData(String)
        case system(FileSystemError)
    }

    static func stream(id: Int, rounds: Int, until: UInt64) -> Int32 {
        let path = "/stream-\(id)"
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 8)
        defer { buffer.deallocate() }
        var bytesMoved = 0
        var round = 0
        var losses = 0
        while round < rounds || System.clock() < until {
            defer { round += 1 }
            do throws(StreamFailure) {
                bytesMoved += try streamRound(path: path, id: id, round: round, buffer: buffer)
            } catch {
                switch error {
                case .wrongData(let what):
                    print("stream \(id) FAIL round \(round): " + what)
                    return 1
                case .system(.stateLost):
                    // The server could not trust this client's region (a fault hit it):
                    // its handles are gone, as a crashed process's would be. A real
                    // program opens its files again; so does this one, next round.
                    print("stream \(id) lost its state in round \(round); opening again")
                    losses += 1
                case .system(let failure):
                    print("stream \(id) ERROR round \(round): " + String(failure.name))
                    return 3
                }
            }
        }
        print("stream \(id) ok rounds=\(round) bytes=\(bytesMoved) losses=\(losses)")
        return losses == 0 ? 0 : 2
    }

    static func check(_ result: Bool, _ what: @autoclosure () -> String) throws(StreamFailure) {
        if !result { throw .wrongData(what()) }
    }

    static func io<R>(_ body: () throws(FileSystemError) -> R) throws(StreamFailure) -> R {
        do throws(FileSystemError) { return try body() } catch { throw .system(error) }
    }

    static func streamRound(path: String, id: Int, round: Int, buffer: UnsafeMutableRawBufferPointer)
        throws(StreamFailure) -> Int {
        let size = streamChunks * chunkBytes
        let file = try io { () throws(FileSystemError) in
            try withUTF8Bytes(path) { bytes throws(FileSystemError) in
                try FileSystem.open(bytes, [.readWrite, .create, .truncate])
            }
        }
        var moved = 0
        for chunk in 0..<streamChunks {
            for index in 0..<chunkBytes { buffer[index] = pattern(id: id, round: round, offset: chunk * chunkBytes + index) }
            let written = try io { () throws(FileSystemError) in try FileSystem.write(file, from: UnsafeRawBufferPointer(buffer)) }
            try check(written == chunkBytes, "short write \(written) at chunk \(chunk)")
            moved += written
        }
        // Back to the middle: the offset the server keeps for this handle must follow.
        let middle = size / 2 + 123
        let position = try io { () throws(FileSystemError) in try FileSystem.seek(file, to: Int64(middle), from: .set) }
        try check(position == UInt64(middle), "seek returned \(position), expected \(middle)")
        var offset = middle
        while offset < size {
            let count = try io { () throws(FileSystemError) in try FileSystem.read(file, into: buffer) }
            try check(count > 0, "early end of file at \(offset)")
            for index in 0..<count where buffer[index] != pattern(id: id, round: round, offset: offset + index) {
                throw .wrongData("byte \(offset + index) differs after the seek")
            }
            offset += count
            moved += count
        }
        try io { () throws(FileSystemError) in try FileSystem.close(file) }

        // An O_APPEND record lands at the end, exactly once.
        let appender = try io { () throws(FileSystemError) in
            try withUTF8Bytes(path) { bytes throws(FileSystemError) in try FileSystem.open(bytes, [.write, .append]) }
        }
        for index in 0..<tailBytes { buffer[index] = UInt8(truncatingIfNeeded: id * 16 + round + index) }
        let appended = try io { () throws(FileSystemError) in
            try FileSystem.write(appender, from: UnsafeRawBufferPointer(rebasing: buffer[0..<tailBytes]))
        }
        try check(appended == tailBytes, "short append \(appended)")
        let status = try io { () throws(FileSystemError) in try FileSystem.fstat(appender) }
        try check(status.size == UInt64(size + tailBytes), "size \(status.size) after append, expected \(size + tailBytes)")
        try io { () throws(FileSystemError) in try FileSystem.close(appender) }

        // The whole file once more, from a fresh handle.
        let reader = try io { () throws(FileSystemError) in
            try withUTF8Bytes(path) { bytes throws(FileSystemError) in try FileSystem.open(bytes, .read) }
        }
        offset = 0
        while true {
            let count = try io { () throws(FileSystemError) in try FileSystem.read(reader, into: buffer) }
            if count == 0 { break }
            for index in 0..<count {
                let at = offset + index
                let expected = at < size ? pattern(id: id, round: round, offset: at)
                    : UInt8(truncatingIfNeeded: id * 16 + round + at - size)
                if buffer[index] != expected { throw .wrongData("byte \(at) differs on the full read") }
            }
            offset += count
            moved += count
        }
        try check(offset == size + tailBytes, "read \(offset) bytes, expected \(size + tailBytes)")
        try io { () throws(FileSystemError) in try FileSystem.close(reader) }
        return moved
    }

    // MARK: stress

    static func stress(clients: Int, rounds: Int, options: [String]) -> Int32 {
        var faultsPerServer = (fs: 0, storage: 0)
        // A campaign asks for one kind of fault with its own trigger; by default every
        // kind in turn, each at the next request.
        var schedule = FaultSchedule()
        for option in options where !schedule.take(option) {
            let parts = option.split(separator: "=").map(String.init)
            switch (parts.first, parts.count == 2 ? Int(parts[1]) : nil) {
            case ("fs", let value?): faultsPerServer.fs = value
            case ("storage", let value?): faultsPerServer.storage = value
            default: usage()
            }
        }
        let every = schedule.every
        let restartsBefore = (fs: System.restarts(of: "fs"), storage: System.restarts(of: "storage"))
        var children = [TaskID]()
        // The clients keep going until the last fault has struck, and a little after.
        let until = System.clock() + UInt64(faultsPerServer.fs + faultsPerServer.storage + 2) * every
        for id in 0..<clients {
            do throws(SyscallError) {
                children.append(try System.spawn("fstest", arguments: "stream \(id) \(rounds) \(until)"))
            } catch {
                print("fstest: cannot start a client: " + String(error.name))
                return 3
            }
        }
        var armed = 0
        var flipsIntoFileSystemRegions = 0
        let total = faultsPerServer.fs + faultsPerServer.storage
        for number in 0..<total {
            System.sleep(ticks: every)
            // Alternate the servers; walk the fault kinds for each.
            let intoStorage = number % 2 == 1 && number / 2 < faultsPerServer.storage || number / 2 >= faultsPerServer.fs
            let target = intoStorage ? "storage" : "fs"
            let kind = schedule.kind(turn: number / 2)
            do throws(SyscallError) {
                try schedule.arm(number, kind: kind, into: target)
                armed += 1
                if kind == .ssrBitFlip && !intoStorage { flipsIntoFileSystemRegions += 1 }
            } catch {
                print("fstest: inject " + String(kind.name) + " into " + target + ": " + String(error.name))
            }
        }
        var tally = (ok: 0, failed: 0, lost: 0, error: 0, crashed: 0)
        for child in children {
            switch try? System.wait(child) {
            case .exited(code: 0)?: tally.ok += 1
            case .exited(code: 1)?: tally.failed += 1
            case .exited(code: 2)?: tally.lost += 1
            case .exited?: tally.error += 1
            default: tally.crashed += 1
            }
        }
        let restarted = (fs: System.restarts(of: "fs") - restartsBefore.fs, storage: System.restarts(of: "storage") - restartsBefore.storage)
        // A client may lose its state only to a bit flip in its own region (each flip
        // hits the region of the client being served, if any).
        let passed = tally.ok + tally.lost == clients && tally.lost <= flipsIntoFileSystemRegions
        print("fstest stress " + (passed ? "ok" : "FAIL") + " clients=\(clients) ok=\(tally.ok) failed=\(tally.failed)"
              + " lost=\(tally.lost) error=\(tally.error) crashed=\(tally.crashed) armed=\(armed)"
              + " restarts fs=\(restarted.fs) storage=\(restarted.storage)")
        return passed ? 0 : 1
    }

    // MARK: locks

    /// The scenario: a holder takes an exclusive lock and reads half a file; a waiter
    /// asks for the same lock and blocks; the filesystem server is crashed; a third
    /// client's non-blocking attempt must still fail; the holder reads on from its
    /// offset and unlocks; only then does the waiter get the lock.
    static func locks(path: String) -> Int32 {
        let ticksPerSecond = System.ticksPerSecond
        let holder: TaskID
        let waiter: TaskID
        do throws(SyscallError) {
            // Margins in real time, generous for a busy host: the holder must have its
            // lock before the waiter asks, and still hold it when fs is crashed.
            holder = try System.spawn("fstest", arguments: "lockhold " + path + " \(ticksPerSecond)")
            System.sleep(ticks: ticksPerSecond / 4)
            waiter = try System.spawn("fstest", arguments: "lockwait " + path)
        } catch {
            print("fstest: cannot start the lock clients: " + String(error.name))
            return 3
        }
        System.sleep(ticks: ticksPerSecond / 10)
        let injected: SyscallError? = withUTF8Bytes("fs") { name in
            do throws(SyscallError) {
                try System.injectFault(into: name, kind: .illegalInstruction, trigger: .nextRequest, argument: 0, aim: 0)
                return nil
            } catch {
                return error
            }
        }
        if let injected { print("fstest: inject: " + String(injected.name)) }
        // The next request the server takes crashes it: this client's own probe.
        let probe: FileSystemError? = withUTF8Bytes(path) { bytes in
            do throws(FileSystemError) {
                let file = try FileSystem.open(bytes, .readWrite)
                defer { try? FileSystem.close(file) }
                do throws(FileSystemError) {
                    try FileSystem.lock(file, start: 0, length: 0, exclusive: true, wait: false)
                    return nil
                } catch .wouldBlock {
                    print("probe: lock still held after the restart (would block)")
                    return .wouldBlock
                }
            } catch {
                return error
            }
        }
        if probe == nil { print("probe: FAIL got the lock while another client holds it") }
        let holderStatus = try? System.wait(holder)
        let waiterStatus = try? System.wait(waiter)
        let passed = probe == .wouldBlock && holderStatus == .exited(code: 0) && waiterStatus == .exited(code: 0)
            && System.restarts(of: "fs") > 0
        print("fstest locks " + (passed ? "ok" : "FAIL"))
        return passed ? 0 : 1
    }

    static func lockHolder(path: String, holdTicks: UInt64) -> Int32 {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 8)
        defer { buffer.deallocate() }
        do throws(FileSystemError) {
            let file = try withUTF8Bytes(path) { bytes throws(FileSystemError) in
                try FileSystem.open(bytes, .readWrite)
            }
            try FileSystem.lock(file, start: 0, length: 0, exclusive: true, wait: true)
            print("holder: locked")
            let first = try FileSystem.read(file, into: buffer)
            var before = CRC32()
            before.update(UnsafeRawBufferPointer(rebasing: buffer[0..<first]))
            System.sleep(ticks: holdTicks)
            // The server restarted meanwhile: the handle's offset must still be `first`.
            let second = try FileSystem.read(file, into: buffer)
            let position = try FileSystem.seek(file, to: 0, from: .current)
            print("holder: read \(first) then \(second) bytes, offset \(position)")
            let offsetKept = position == UInt64(first + second)
            print("holder: unlocking")
            try FileSystem.unlock(file, start: 0, length: 0)
            print("holder: unlocked")
            try FileSystem.close(file)
            return offsetKept ? 0 : 1
        } catch {
            print("holder: " + String(error.name))
            return 3
        }
    }

    static func lockWaiter(path: String) -> Int32 {
        do throws(FileSystemError) {
            let file = try withUTF8Bytes(path) { bytes throws(FileSystemError) in
                try FileSystem.open(bytes, .readWrite)
            }
            print("waiter: waiting")
            try FileSystem.lock(file, start: 0, length: 0, exclusive: true, wait: true)
            print("waiter: locked")
            try FileSystem.close(file)
            return 0
        } catch {
            print("waiter: " + String(error.name))
            return 3
        }
    }
}

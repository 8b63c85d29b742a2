// The wire protocol on the host: every request survives encode -> decode unchanged,
// every malformed message is refused with the right error (and never traps), and
// the reply records (status, statistics, directory pages) round-trip and reject
// damage.

@testable import FileSystemCore
import Testing

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A canonical description of a request, payload bytes included, to compare two.
func describe(_ request: FileSystemRequest) -> String {
    func b(_ buffer: UnsafeRawBufferPointer) -> String { "\(Array(buffer))" }
    switch request {
    case .open(let path, let flags, let permissions): return "open \(b(path)) \(flags.rawValue) \(permissions)"
    case .close(let handle): return "close \(handle.rawValue)"
    case .read(let handle, let count): return "read \(handle.rawValue) \(count)"
    case .write(let handle, let data): return "write \(handle.rawValue) \(b(data))"
    case .seek(let handle, let offset, let whence): return "seek \(handle.rawValue) \(offset) \(whence)"
    case .stat(let path): return "stat \(b(path))"
    case .fstat(let handle): return "fstat \(handle.rawValue)"
    case .truncate(let path, let size): return "truncate \(b(path)) \(size)"
    case .ftruncate(let handle, let size): return "ftruncate \(handle.rawValue) \(size)"
    case .mkdir(let path, let permissions): return "mkdir \(b(path)) \(permissions)"
    case .rmdir(let path): return "rmdir \(b(path))"
    case .unlink(let path): return "unlink \(b(path))"
    case .rename(let from, let to): return "rename \(b(from)) \(b(to))"
    case .readDirectory(let path, let cursor): return "readDirectory \(b(path)) \(cursor)"
    case .lock(let handle, let range, let kind, let wait):
        return "lock \(handle.rawValue) \(range.start) \(range.end) \(kind) \(wait)"
    case .statistics: return "statistics"
    case .sync: return "sync"
    case .mountStatus: return "mountStatus"
    case .handles: return "handles"
    }
}

/// Decodes a raw message whose payload is `payload`.
func decode(_ operation: FileSystemOperation, _ words: (UInt, UInt), _ payload: [UInt8] = [])
    throws(FileSystemError) -> FileSystemRequest {
    try decode(raw: operation.rawValue, words, payload)
}

/// Decodes a raw message; the result's paths and data point into a copy of
/// `payload` that is freed on return, so callers may only look at its scalars.
func decode(raw operation: UInt16, _ words: (UInt, UInt), _ payload: [UInt8] = []) throws(FileSystemError)
    -> FileSystemRequest {
    try decode(raw: operation, words, payload) { $0 }
}

/// Decodes a raw message and hands the request to `body` while its payload lives.
func decode<Result>(raw operation: UInt16, _ words: (UInt, UInt), _ payload: [UInt8],
                    _ body: (FileSystemRequest) -> Result) throws(FileSystemError) -> Result {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payload.count, 1), alignment: 8)
    defer { copy.deallocate() }
    copy.copyBytes(from: payload)
    return body(try FileSystemRequest.decode(operation: operation, words: words,
                                             payload: UnsafeRawBufferPointer(rebasing: copy[0..<payload.count])))
}

func expectRefused(_ error: FileSystemError, _ operation: FileSystemOperation, _ words: (UInt, UInt),
                   _ payload: [UInt8] = [], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: error, sourceLocation: sourceLocation) { try decode(operation, words, payload) }
}

@Suite struct RequestRoundTrips {
    /// Encodes `request` (with paths and data living in `storage`), decodes the
    /// message, and checks the result describes the same request.
    func roundTrip(_ make: ([UnsafeRawBufferPointer]) throws(FileSystemError) -> FileSystemRequest,
                   _ storage: [[UInt8]] = [], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let buffers = storage.map { array -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(array.count, 1), alignment: 1)
            buffer.copyBytes(from: array)
            return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<array.count])
        }
        defer { buffers.forEach { UnsafeMutableRawBufferPointer(start: $0.baseAddress, count: 1).deallocate() } }
        let request = try make(buffers.map { UnsafeRawBufferPointer($0) })
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemRequest.scratchBytes, alignment: 8)
        defer { scratch.deallocate() }
        let message = try request.encode(scratch: scratch)
        let decoded = try decode(raw: message.operation.rawValue, message.words, Array(message.payload), describe)
        #expect(decoded == describe(request), sourceLocation: sourceLocation)
    }

    @Test func everyOperationRoundTrips() throws {
        let long = ["a", "b", "c", "d"].map { "/" + String(repeating: $0, count: 255) }.joined()
        #expect(long.utf8.count == FileSystemLimits.maxPathBytes)
        try roundTrip({ p throws(FileSystemError) in .open(path: p[0], flags: [.readWrite, .create, .exclusive], permissions: 0o7777) },
                      [bytes("/etc/motd")])
        try roundTrip({ p throws(FileSystemError) in .open(path: p[0], flags: [.read, .directory], permissions: 0) }, [bytes(long)])
        try roundTrip({ p throws(FileSystemError) in .open(path: p[0], flags: [.write, .append, .truncate], permissions: 0o644) },
                      [bytes("/")])
        try roundTrip { _ throws(FileSystemError) in .close(FileHandle(rawValue: UInt32.max)) }
        try roundTrip { _ throws(FileSystemError) in .read(FileHandle(slot: 3, generation: 9), count: 4096) }
        try roundTrip { _ throws(FileSystemError) in .read(FileHandle(slot: 3, generation: 9), count: 0) }
        try roundTrip({ p throws(FileSystemError) in .write(FileHandle(rawValue: 17), data: p[0]) },
                      [Array(repeating: 0xA5, count: 4096)])
        try roundTrip({ p throws(FileSystemError) in .write(FileHandle(rawValue: 17), data: p[0]) }, [[]])
        for whence in [Whence.set, .current, .end] {
            try roundTrip { _ throws(FileSystemError) in .seek(FileHandle(rawValue: 9), offset: -12345, whence: whence) }
            try roundTrip { _ throws(FileSystemError) in .seek(FileHandle(rawValue: 9), offset: Int64.max, whence: whence) }
            try roundTrip { _ throws(FileSystemError) in .seek(FileHandle(rawValue: 9), offset: Int64.min, whence: whence) }
        }
        try roundTrip({ p throws(FileSystemError) in .stat(path: p[0]) }, [bytes("/a//b/")])
        try roundTrip { _ throws(FileSystemError) in .fstat(FileHandle(rawValue: 8)) }
        try roundTrip({ p throws(FileSystemError) in .truncate(path: p[0], size: FileSystemLimits.maxOffset) }, [bytes("/f")])
        try roundTrip { _ throws(FileSystemError) in .ftruncate(FileHandle(rawValue: 8), size: 0) }
        try roundTrip({ p throws(FileSystemError) in .mkdir(path: p[0], permissions: 0o755) }, [bytes("/d")])
        try roundTrip({ p throws(FileSystemError) in .rmdir(path: p[0]) }, [bytes("/d")])
        try roundTrip({ p throws(FileSystemError) in .unlink(path: p[0]) }, [bytes("/d/f")])
        try roundTrip({ p throws(FileSystemError) in .rename(from: p[0], to: p[1]) }, [bytes("/old/name"), bytes("/new")])
        try roundTrip({ p throws(FileSystemError) in .rename(from: p[0], to: p[1]) }, [bytes(long), bytes(long)])
        try roundTrip({ p throws(FileSystemError) in .readDirectory(path: p[0], cursor: 0) }, [bytes("/")])
        try roundTrip({ p throws(FileSystemError) in .readDirectory(path: p[0], cursor: UInt64.max) }, [bytes("/x")])
        for kind in [LockKind.shared, .exclusive, .unlock] {
            for wait in kind == .unlock ? [false] : [false, true] {
                try roundTrip { _ throws(FileSystemError) in
                    .lock(FileHandle(rawValue: 0x1234_5678), range: try LockRange(start: 100, length: 0), kind: kind, wait: wait)
                }
                try roundTrip { _ throws(FileSystemError) in
                    .lock(FileHandle(rawValue: 5), range: try LockRange(start: 0, length: FileSystemLimits.maxOffset),
                          kind: kind, wait: wait)
                }
            }
        }
        try roundTrip { _ throws(FileSystemError) in .statistics }
        try roundTrip { _ throws(FileSystemError) in .sync }
        try roundTrip { _ throws(FileSystemError) in .mountStatus }
        try roundTrip { _ throws(FileSystemError) in .handles }
    }

    @Test func wordsFollowTheDocumentedTable() throws {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemRequest.scratchBytes, alignment: 8)
        defer { scratch.deallocate() }
        let seek = try FileSystemRequest.seek(FileHandle(rawValue: 7), offset: -1, whence: .end).encode(scratch: scratch)
        #expect(seek.operation.rawValue == 5 && seek.words.0 == 7 | 2 << 32 && seek.words.1 == UInt.max)
        let lock = try FileSystemRequest.lock(FileHandle(rawValue: 7), range: LockRange(start: 0x10, length: 0x20),
                                              kind: .exclusive, wait: true).encode(scratch: scratch)
        #expect(lock.operation.rawValue == 15 && lock.words.0 == 7 | 2 << 32 | 1 << 40 && lock.words.1 == 0)
        #expect(Array(lock.payload) == [0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0])
        try bytes("/a").withUnsafeBytes { from in
            try bytes("/bc").withUnsafeBytes { to in
                let rename = try FileSystemRequest.rename(from: from, to: to).encode(scratch: scratch)
                #expect(rename.operation.rawValue == 13 && rename.words == (2, 0) && Array(rename.payload) == bytes("/a/bc"))
            }
        }
        #expect(FileSystemOperation.allCases.map(\.rawValue) == Array(1...19))
    }

    /// The reply payload column of the table: what a correct reply carries at most,
    /// and so the most a well-formed client's reply buffer has to take.
    @Test func replyLimitsFollowTheDocumentedTable() throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemLimits.maxTransfer, alignment: 8)
        defer { buffer.deallocate() }
        #expect(FileSystemOperation.read.replyLimit(words: (1, 100)) == 100)
        #expect(FileSystemOperation.read.replyLimit(words: (1, UInt.max)) == FileSystemLimits.maxTransfer)
        let status = FileStatus(inode: InodeNumber(12), type: .regular, permissions: 0o644, links: 1, size: 5,
                                sectors: 2, generation: 3, modified: 4, changed: 5, accessed: 6)
        #expect(FileSystemOperation.stat.replyLimit(words: (0, 0)) == status.encode(into: buffer))
        #expect(FileSystemOperation.fstat.replyLimit(words: (1, 0)) == FileStatus.encodedBytes)
        let statistics = VolumeStatistics(blockSize: 1024, totalBlocks: 8, freeBlocks: 4, totalInodes: 2, freeInodes: 1)
        #expect(FileSystemOperation.statistics.replyLimit(words: (0, 0)) == statistics.encode(into: buffer))
        #expect(FileSystemOperation.readDirectory.replyLimit(words: (0, 0)) == FileSystemLimits.maxTransfer)
        #expect(FileSystemOperation.mountStatus.replyLimit(words: (0, 0)) == MountStatus.payloadBytes)
        let handle = OpenHandle(handle: FileHandle(rawValue: 9), flags: .read, offset: 4096, inode: InodeNumber(12))
        #expect(FileSystemOperation.handles.replyLimit(words: (0, 0)) == 8 * handle.encode(into: buffer))
        let withPayload: Set<FileSystemOperation> = [.read, .stat, .fstat, .readDirectory, .statistics, .mountStatus,
                                                     .handles]
        for operation in FileSystemOperation.allCases where !withPayload.contains(operation) {
            #expect(operation.replyLimit(words: (UInt.max, UInt.max)) == 0, "\(operation)")
        }
    }

    @Test func encodeRefusesWhatTheServerWould() throws {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: FileSystemRequest.scratchBytes, alignment: 8)
        defer { scratch.deallocate() }
        let small = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<10])
        bytes("relative").withUnsafeBytes { path in
            _ = #expect(throws: FileSystemError.invalidArgument) { try FileSystemRequest.stat(path: path).encode(scratch: scratch) }
        }
        bytes("/p").withUnsafeBytes { path in
            #expect(throws: FileSystemError.invalidArgument) {
                try FileSystemRequest.open(path: path, flags: [.create], permissions: 0).encode(scratch: scratch)
            }
            #expect(throws: FileSystemError.invalidArgument) {
                try FileSystemRequest.open(path: path, flags: .read, permissions: 0o10000).encode(scratch: scratch)
            }
            #expect(throws: FileSystemError.invalidArgument) {
                try FileSystemRequest.rename(from: path, to: path).encode(scratch: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<3]))
            }
            #expect(throws: FileSystemError.invalidArgument) {
                try FileSystemRequest.lock(FileHandle(rawValue: 1), range: LockRange(start: 0, length: 0), kind: .shared, wait: false)
                    .encode(scratch: small)
            }
        }
        #expect(throws: FileSystemError.invalidArgument) {
            try FileSystemRequest.read(FileHandle(rawValue: 1), count: 4097).encode(scratch: scratch)
        }
        #expect(throws: FileSystemError.invalidArgument) {
            try FileSystemRequest.read(FileHandle(rawValue: 1), count: -1).encode(scratch: scratch)
        }
        #expect(throws: FileSystemError.invalidArgument) {
            try FileSystemRequest.lock(FileHandle(rawValue: 1), range: LockRange(start: 0, length: 0), kind: .unlock, wait: true)
                .encode(scratch: scratch)
        }
        #expect(throws: FileSystemError.invalidArgument) {
            try FileSystemRequest.ftruncate(FileHandle(rawValue: 1), size: UInt64.max).encode(scratch: scratch)
        }
        Array(repeating: UInt8(0), count: 4097).withUnsafeBytes { data in
            _ = #expect(throws: FileSystemError.invalidArgument) {
                try FileSystemRequest.write(FileHandle(rawValue: 1), data: data).encode(scratch: scratch)
            }
        }
    }
}

@Suite struct MalformedRequests {
    let path = bytes("/file")

    @Test func pathsAreValidated() {
        expectRefused(.invalidArgument, .stat, (0, 0), [])
        expectRefused(.invalidArgument, .stat, (0, 0), bytes("file"))
        expectRefused(.invalidArgument, .stat, (0, 0), bytes("/fi\0le"))
        expectRefused(.invalidArgument, .unlink, (0, 0), [0])
        expectRefused(.nameTooLong, .stat, (0, 0), bytes("/" + String(repeating: "x", count: 1024)))
        expectRefused(.nameTooLong, .mkdir, (0o755, 0), bytes("/a/" + String(repeating: "x", count: 256)))
        #expect(throws: Never.self) { try decode(.stat, (0, 0), bytes("/a/" + String(repeating: "x", count: 255) + "/b")) }
        for operation in [FileSystemOperation.open, .stat, .truncate, .mkdir, .rmdir, .unlink, .readDirectory] {
            expectRefused(.invalidArgument, operation, (operation == .open ? 1 : 0, 0), bytes("no/slash"))
        }
    }

    @Test func unknownOperationsAndUnusedWordsAreRefused() {
        #expect(throws: FileSystemError.badOperation) { try decode(raw: 0, (0, 0)) }
        #expect(throws: FileSystemError.badOperation) { try decode(raw: 20, (0, 0)) }
        #expect(throws: FileSystemError.badOperation) { try decode(raw: UInt16.max, (0, 0)) }
        expectRefused(.invalidArgument, .close, (1, 1))
        expectRefused(.invalidArgument, .close, (1, 0), [1])
        expectRefused(.invalidArgument, .read, (1, 1), [1])
        expectRefused(.invalidArgument, .write, (1, 1), [1])
        expectRefused(.invalidArgument, .stat, (1, 0), path)
        expectRefused(.invalidArgument, .stat, (0, 1), path)
        expectRefused(.invalidArgument, .fstat, (1, 1))
        expectRefused(.invalidArgument, .fstat, (1, 0), [0])
        expectRefused(.invalidArgument, .truncate, (0, 1), path)
        expectRefused(.invalidArgument, .ftruncate, (1, 0), [0])
        expectRefused(.invalidArgument, .mkdir, (0o755, 1), path)
        expectRefused(.invalidArgument, .rmdir, (1, 0), path)
        expectRefused(.invalidArgument, .unlink, (0, 1), path)
        expectRefused(.invalidArgument, .readDirectory, (0, 1), path)
        expectRefused(.invalidArgument, .statistics, (1, 0))
        expectRefused(.invalidArgument, .statistics, (0, 0), [0])
        expectRefused(.invalidArgument, .sync, (0, 1))
        expectRefused(.invalidArgument, .sync, (0, 0), [0])
        expectRefused(.invalidArgument, .mountStatus, (1, 0))
        expectRefused(.invalidArgument, .mountStatus, (0, 0), [0])
        expectRefused(.invalidArgument, .handles, (0, 1))
        expectRefused(.invalidArgument, .handles, (0, 0), [0])
        expectRefused(.invalidArgument, .seek, (1, 0), [0])
    }

    @Test func handlesMustBe32BitAndNonZero() {
        for operation in [FileSystemOperation.close, .read, .write, .fstat, .ftruncate] {
            expectRefused(.badHandle, operation, (0, 0))
            expectRefused(.badHandle, operation, (1 << 32, 0))
        }
        expectRefused(.badHandle, .seek, (0, 0))
        expectRefused(.badHandle, .lock, (UInt(LockKind.shared.rawValue) << 32, 0), Array(repeating: 0, count: 16))
    }

    @Test func openFlagsAndPermissions() {
        expectRefused(.invalidArgument, .open, (0, 0), path)  // no access
        expectRefused(.invalidArgument, .open, (UInt(OpenFlags.create.rawValue), 0), path)
        expectRefused(.invalidArgument, .open, (UInt(OpenFlags([.read, .exclusive]).rawValue), 0), path)
        expectRefused(.invalidArgument, .open, (UInt(OpenFlags([.read, .truncate]).rawValue), 0), path)
        expectRefused(.invalidArgument, .open, (UInt(OpenFlags([.read, .append]).rawValue), 0), path)
        expectRefused(.invalidArgument, .open, (UInt(OpenFlags([.write, .directory]).rawValue), 0), path)
        expectRefused(.invalidArgument, .open, (1 | 1 << 7, 0), path)  // unknown bit
        expectRefused(.invalidArgument, .open, (1 | 1 << 16, 0), path)  // beyond 16 bits
        expectRefused(.invalidArgument, .open, (1, 0o10000), path)
        expectRefused(.invalidArgument, .mkdir, (0o10000, 0), path)
        #expect(throws: Never.self) { try decode(.open, (1, 0o7777), path) }
    }

    @Test func countsSizesAndOffsets() {
        expectRefused(.invalidArgument, .read, (1, 4097))
        expectRefused(.invalidArgument, .write, (1, 0), Array(repeating: 1, count: 4097))
        expectRefused(.invalidArgument, .truncate, (UInt(FileSystemLimits.maxOffset) + 1, 0), path)
        expectRefused(.invalidArgument, .ftruncate, (1, UInt(FileSystemLimits.maxOffset) + 1))
        expectRefused(.invalidArgument, .seek, (1 | 3 << 32, 0))  // whence 3
        expectRefused(.invalidArgument, .seek, (1 | 1 << 40, 0))  // bits above whence
        expectRefused(.invalidArgument, .seek, (1 | 1 << 63, 0))
    }

    @Test func renameNeedsTwoValidPaths() {
        let both = bytes("/a/b")
        expectRefused(.invalidArgument, .rename, (0, 0), both)  // no old path
        expectRefused(.invalidArgument, .rename, (4, 0), both)  // no new path
        expectRefused(.invalidArgument, .rename, (9, 0), both)  // past the payload
        expectRefused(.invalidArgument, .rename, (UInt.max, 0), both)
        expectRefused(.invalidArgument, .rename, (1, 0), both)  // "/" then "a/b": relative
        expectRefused(.invalidArgument, .rename, (2, 1), both)
        expectRefused(.invalidArgument, .rename, (2, 0), bytes("/a/b\0"))
        expectRefused(.nameTooLong, .rename, (2, 0), bytes("/a/" + String(repeating: "z", count: 1024)))
        let decoded = try? decode(raw: FileSystemOperation.rename.rawValue, (2, 0), both, describe)
        #expect(decoded == "rename \(bytes("/a")) \(bytes("/b"))")
    }

    @Test func lockRequests() {
        let range = [UInt8](repeating: 0, count: 8) + [5, 0, 0, 0, 0, 0, 0, 0]
        let shared = UInt(LockKind.shared.rawValue) << 32
        expectRefused(.invalidArgument, .lock, (1 | shared, 0), Array(range.dropLast()))
        expectRefused(.invalidArgument, .lock, (1 | shared, 0), range + [0])
        expectRefused(.invalidArgument, .lock, (1 | shared, 1), range)
        expectRefused(.invalidArgument, .lock, (1, 0), range)  // kind 0
        expectRefused(.invalidArgument, .lock, (1 | 4 << 32, 0), range)
        expectRefused(.invalidArgument, .lock, (1 | 3 << 32 | 1 << 40, 0), range)  // unlock and wait
        expectRefused(.invalidArgument, .lock, (1 | shared | 1 << 41, 0), range)
        expectRefused(.invalidArgument, .lock, (1 | shared | 1 << 63, 0), range)
        var overflowing = [UInt8](repeating: 0xFF, count: 8) + [UInt8](repeating: 0, count: 8)
        expectRefused(.invalidArgument, .lock, (1 | shared, 0), overflowing)  // start > maxOffset
        overflowing = [0x00, 0, 0, 0, 0, 0, 0, 0x40] + [0x00, 0, 0, 0, 0, 0, 0, 0x40]
        expectRefused(.invalidArgument, .lock, (1 | shared, 0), overflowing)  // start + length > maxOffset
        guard case .lock(let handle, let decoded, .shared, false)? = try? decode(.lock, (1 | shared, 0), range) else {
            Issue.record("a valid lock")
            return
        }
        #expect(handle.rawValue == 1 && decoded == LockRange(uncheckedStart: 0, end: 5))
    }
}

@Suite struct ReplyRecords {
    static let status = FileStatus(inode: InodeNumber(0x0102_0304), type: .regular, permissions: 0o4755, links: 3,
                                   size: 0x1122_3344_5566_7788, sectors: 42, generation: 0xDEAD_BEEF,
                                   modified: 1, changed: 2, accessed: 3)

    func encoded(_ status: FileStatus) -> [UInt8] {
        var buffer = [UInt8](repeating: 0xEE, count: 64)
        let length = buffer.withUnsafeMutableBytes { status.encode(into: $0) }
        #expect(length == FileStatus.encodedBytes)
        return Array(buffer[0..<length])
    }

    @Test func fileStatusRoundTripsWithTheDocumentedLayout() throws {
        let record = encoded(Self.status)
        #expect(Array(record[0..<4]) == [4, 3, 2, 1])
        #expect(record[4] == FileType.regular.rawValue && record[5] == 0)
        #expect(Array(record[6..<8]) == [0xED, 0x09])
        #expect(Array(record[12..<16]) == [0xEF, 0xBE, 0xAD, 0xDE])
        #expect(Array(record[16..<24]) == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        #expect(Array(record[44..<48]) == [0, 0, 0, 0])
        let decoded = try record.withUnsafeBytes { buffer throws(FileSystemError) in try FileStatus.decode(buffer) }
        #expect(decoded == Self.status)
    }

    @Test func fileStatusDecodeRejectsDamage() {
        let good = encoded(Self.status)
        func expectBad(_ record: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: FileSystemError.ioError, sourceLocation: sourceLocation) {
                try record.withUnsafeBytes { buffer throws(FileSystemError) in try FileStatus.decode(buffer) }
            }
        }
        expectBad(Array(good.dropLast()))
        expectBad(good + [0])
        expectBad([])
        for (offset, value) in [(4, UInt8(8)), (5, 1), (7, 0x10), (10, 1), (11, 1), (44, 1), (47, 1)] {
            var bad = good
            bad[offset] = value
            expectBad(bad)
        }
        var noInode = good
        noInode.replaceSubrange(0..<4, with: [0, 0, 0, 0])
        expectBad(noInode)
    }

    @Test func volumeStatisticsRoundTripAndRejectDamage() throws {
        let statistics = VolumeStatistics(blockSize: 1024, totalBlocks: 16384, freeBlocks: 100, totalInodes: 4096,
                                          freeInodes: 4000)
        var record = [UInt8](repeating: 0, count: 32)
        #expect(record.withUnsafeMutableBytes { statistics.encode(into: $0) } == 32)
        #expect(Array(record[0..<4]) == [0, 4, 0, 0] && Array(record[8..<12]) == [0, 0x40, 0, 0])
        let decoded = try record.withUnsafeBytes { buffer throws(FileSystemError) in try VolumeStatistics.decode(buffer) }
        #expect(decoded == statistics)
        func expectBad(_ change: (inout [UInt8]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
            var bad = record
            change(&bad)
            #expect(throws: FileSystemError.ioError, sourceLocation: sourceLocation) {
                try bad.withUnsafeBytes { buffer throws(FileSystemError) in try VolumeStatistics.decode(buffer) }
            }
        }
        expectBad { $0.removeLast() }
        expectBad { $0[0] = 1 }  // block size 1025
        expectBad { $0[1] = 0 }  // block size 0
        expectBad { $0[16] = 0xFF; $0[17] = 0xFF }  // free > total blocks
        expectBad { $0[26] = 0xFF }  // free > total inodes
        expectBad { $0[31] = 1 }
    }

    @Test func openHandlesRoundTripAndRejectDamage() throws {
        let handle = OpenHandle(handle: FileHandle(rawValue: 0x0102_0304), flags: [.read, .write], offset: 0x1122_3344,
                                inode: InodeNumber(12))
        var record = [UInt8](repeating: 0xEE, count: 24)
        #expect(record.withUnsafeMutableBytes { handle.encode(into: $0) } == 24)
        #expect(Array(record[0..<4]) == [4, 3, 2, 1] && Array(record[6..<8]) == [0, 0])
        #expect(Array(record[8..<16]) == [0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0] && Array(record[20..<24]) == [0, 0, 0, 0])
        let decoded = try record.withUnsafeBytes { buffer throws(FileSystemError) in try OpenHandle.decode(buffer) }
        #expect(decoded == handle)
        func expectBad(_ change: (inout [UInt8]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
            var bad = record
            change(&bad)
            #expect(throws: FileSystemError.ioError, sourceLocation: sourceLocation) {
                try bad.withUnsafeBytes { buffer throws(FileSystemError) in try OpenHandle.decode(buffer) }
            }
        }
        expectBad { $0.removeLast() }
        expectBad { $0.replaceSubrange(0..<4, with: [0, 0, 0, 0]) }  // no handle
        expectBad { $0[5] = 0xFF }  // unknown flags
        expectBad { $0[6] = 1 }
        expectBad { $0[15] = 0x80 }  // offset past Int64.max
        expectBad { $0.replaceSubrange(16..<20, with: [0, 0, 0, 0]) }  // no inode
        expectBad { $0[23] = 1 }
    }

    func entry(_ name: String, inode: UInt32 = 12, type: FileType = .regular) -> DirectoryEntry {
        var entry = DirectoryEntry()
        entry.inode = InodeNumber(inode)
        entry.type = type
        bytes(name).withUnsafeBytes { entry.setName($0) }
        return entry
    }

    func name(_ entry: DirectoryEntry) -> String { entry.withName { String(decoding: $0, as: UTF8.self) } }

    @Test func directoryPagesHoldWholeEntriesAndReadBack() throws {
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { page.deallocate() }
        var writer = DirectoryPageWriter(page)
        var names: [String] = []
        var index = 0
        while true {
            let entryName = "file-\(index)-" + String(repeating: "n", count: index % 250)
            if !(try writer.append(entry(entryName, inode: UInt32(index + 1), type: index % 2 == 0 ? .regular : .directory))) {
                break
            }
            names.append(entryName)
            index += 1
        }
        #expect(writer.count == names.count && writer.count > 20)
        #expect(writer.length <= 4096 && writer.length > 4096 - 6 - 260)
        #expect(names.reduce(0) { $0 + 6 + $1.utf8.count } == writer.length)
        var reader = DirectoryPageReader(UnsafeRawBufferPointer(rebasing: page[0..<writer.length]), count: writer.count)
        var read: [String] = []
        while let next = try reader.next() {
            #expect(next.inode.rawValue == UInt32(read.count + 1))
            #expect(next.type == (read.count % 2 == 0 ? .regular : .directory))
            read.append(name(next))
        }
        #expect(read == names)
        #expect(throws: FileSystemError.invalidArgument) { try writer.append(entry("x", inode: 0)) }
        #expect(throws: FileSystemError.invalidArgument) { try writer.append(entry("")) }
        #expect(throws: FileSystemError.invalidArgument) { try writer.append(entry("a/b")) }
    }

    @Test func directoryPageReaderRejectsDamage() throws {
        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { page.deallocate() }
        var writer = DirectoryPageWriter(page)
        #expect(try writer.append(entry("alpha")))
        #expect(try writer.append(entry("b", inode: 99, type: .symbolicLink)))
        let good = Array(UnsafeRawBufferPointer(rebasing: page[0..<writer.length]))
        #expect(good == [12, 0, 0, 0, 1, 5] + bytes("alpha") + [99, 0, 0, 0, 7, 1] + bytes("b"))
        func readAll(_ record: [UInt8], count: Int) throws -> Int {
            try record.withUnsafeBytes { buffer throws(FileSystemError) -> Int in
                var reader = DirectoryPageReader(buffer, count: count)
                var read = 0
                while try reader.next() != nil { read += 1 }
                return read
            }
        }
        #expect(try readAll(good, count: 2) == 2)
        #expect(throws: FileSystemError.ioError) { try readAll(good, count: 1) }  // bytes left over
        #expect(throws: FileSystemError.ioError) { try readAll(good, count: 3) }
        #expect(throws: FileSystemError.ioError) { try readAll(Array(good.dropLast()), count: 2) }
        for (offset, value) in [(4, UInt8(9)), (5, 0), (5, 200), (0, 0), (6, 0), (8, UInt8(ascii: "/"))] {
            var bad = good
            bad[offset] = value
            if offset == 0 { bad.replaceSubrange(0..<4, with: [0, 0, 0, 0]) }
            #expect(throws: FileSystemError.ioError, "offset \(offset)") { try readAll(bad, count: 2) }
        }
    }
}

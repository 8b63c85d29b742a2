// fcopy SRC DST [crash=N] [chunk=BYTES]: copies a file a chunk at a time (4 KiB unless
// told), and finishes the copy after its own crash (paper §4, "Robust client
// applications").
//
// fcopy keeps its SSRs across its crashes (system.toml `keep_ssrs`): when it faults,
// the kernel starts it again in the same slot, with the same arguments, and its open
// files are still open in fs, at the offsets its last answered requests left them.
// The new incarnation sees from its own restart count that it is a continuation, asks
// fs which handles it holds (`FileSystem.openHandles`), takes the one it reads from and
// the one it writes to, and goes on from what reached the destination: it seeks the
// source to the destination's offset, since a chunk read but not yet written when it
// crashed is in neither file's future. `crash=N` makes the first incarnation crash
// (a store through a null pointer) after N chunks; a smaller chunk makes a small file
// take several.

import ConsoleAPI
import CurioUser
import FileSystemAPI
import UserArch

@main
struct FileCopy {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        let restarts = (try? System.taskInfo(slot: System.whoAmI().index))?.restarts ?? 0
        let chunk = min(max(option("chunk", in: words) ?? 4096, 1), 4096)
        do throws(FileSystemError) {
            if restarts > 0 {
                try resume(after: Int(restarts), chunk: chunk)
            } else {
                try start(words, chunk: chunk)
            }
        } catch {
            print("fcopy: \(error.name)")
            System.exit(1)
        }
    }

    /// The value of `name=VALUE` among the words.
    static func option(_ name: String, in words: [String]) -> Int? {
        words.first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.utf8.count + 1)) }
    }

    static func start(_ words: [String], chunk: Int) throws(FileSystemError) {
        let paths = words.filter { !$0.contains("=") }
        guard paths.count == 2 else {
            print("usage: fcopy SRC DST [crash=N] [chunk=BYTES]")
            System.exit(2)
        }
        let crashAfter = option("crash", in: words)
        let source = try withUTF8Bytes(paths[0]) { path throws(FileSystemError) in
            try FileSystem.open(path, .read)
        }
        let destination = try withUTF8Bytes(paths[1]) { path throws(FileSystemError) in
            try FileSystem.open(path, [.write, .create, .truncate])
        }
        try copy(from: source, to: destination, chunk: chunk, crashAfter: crashAfter)
    }

    /// The continuation after a crash: the same two files, from what was written.
    static func resume(after restarts: Int, chunk: Int) throws(FileSystemError) {
        let handles = try FileSystem.openHandles()
        guard let source = handles.first(where: { $0.flags.contains(.read) && !$0.flags.contains(.write) }),
              let destination = handles.first(where: { $0.flags.contains(.write) }) else {
            print("fcopy: restarted (\(restarts)), but fs holds no copy in progress for it")
            System.exit(1)
        }
        print("fcopy: restarted (\(restarts)); fs still holds its files: source at byte \(source.offset), "
              + "destination at byte \(destination.offset); resuming there")
        _ = try FileSystem.seek(source.handle, to: Int64(destination.offset))
        try copy(from: source.handle, to: destination.handle, chunk: chunk, crashAfter: nil)
    }

    static func copy(from source: FileHandle, to destination: FileHandle, chunk: Int, crashAfter: Int?)
        throws(FileSystemError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 8)
        defer { buffer.deallocate() }
        var chunks = 0
        while true {
            let count = try FileSystem.read(source, into: buffer)
            if count == 0 { break }
            var written = 0
            while written < count {
                written += try FileSystem.write(destination, from: UnsafeRawBufferPointer(rebasing: buffer[written..<count]))
            }
            chunks += 1
            if chunks == crashAfter {
                print("fcopy: crashing after \(chunks) chunks")
                curio_store64(0, 0xDEAD)
            }
        }
        let total = try FileSystem.seek(destination, to: 0, from: .current)
        try FileSystem.close(source)
        try FileSystem.close(destination)
        print("fcopy: copied \(total) bytes")
    }
}

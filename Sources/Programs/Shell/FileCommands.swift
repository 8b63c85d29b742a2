// The shell's filesystem commands: thin wrappers over FileSystemAPI, one function
// per command, each printing "command: path: reason" and returning 1 on failure.
// Paths are absolute; a path without a leading "/" is taken from the root.
//
// A disk that is not mounted, or mounted read-only, fails every command with one
// code; the fs server keeps the reason (MountStatus), and the shell asks for it each
// time, so "ls: no filesystem: the disk needs ext4 features ..." names what to fix
// (the disk may have been fixed, or the server restarted, since the last command).

import ConfigAPI
import ConsoleAPI
import ConsoleCore
import CurioUser
import FileSystemAPI

extension Shell {
    static let fileCommandsHelp = """
        ls [-l] [PATH]            list a directory (-l: type, permissions, links, size, inode)
        cat PATH...               print files
        write PATH TEXT...        replace a file's contents with TEXT and a newline
        append PATH TEXT...       add TEXT and a newline to the end of a file
        cp FROM TO                copy a file
        mkdir PATH                make a directory
        rm [-d] PATH              remove a file (-d: an empty directory)
        mv FROM TO                rename (replacing TO if it is a file or an empty directory)
        stat PATH                 inode, type, size, blocks, links, generation, times
        df                        blocks and inodes in use and free
        sync                      make every completed write durable on the device
        config [KEY [VALUE]]      list the configuration service's settings, or show/set one
        """

    /// Runs `body` with `path` as bytes, made absolute.
    static func withPath<R, E: Error>(_ path: String, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withUTF8Bytes(path.hasPrefix("/") ? path : "/" + path, body)
    }

    /// A string's UTF-8 in a buffer of its own (the typed-throws calls cannot run
    /// inside the standard library's untyped `withUnsafeBytes`). Deallocate it.
    static func copyBytes(_ text: String) -> UnsafeMutableRawBufferPointer {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: text.utf8.count, alignment: 1)
        for (index, byte) in text.utf8.enumerated() { bytes[index] = byte }
        return bytes
    }

    static func failure(_ command: String, _ path: String, _ error: FileSystemError) -> Int32 {
        guard error == .notMounted || error == .readOnly,
              let explanation = (try? FileSystem.mountStatus())?.explanation else {
            complain(command + ": " + path + ": " + String(error.name))
            return 1
        }
        if error == .notMounted {
            complain(command + ": " + explanation)
        } else {
            complain(command + ": " + path + ": " + String(error.name) + " (" + explanation + ")")
        }
        return 1
    }

    /// At an interactive boot: says what is wrong with the disk, if anything is.
    static func reportMountStatus() {
        guard let explanation = (try? FileSystem.mountStatus())?.explanation else { return }
        print("fs: " + explanation)
    }

    static func fileCommand(_ command: String, _ arguments: [String]) -> Int32? {
        switch command {
        case "ls": return list(arguments)
        case "cat": return concatenate(arguments)
        case "write": return writeFile(arguments, append: false)
        case "append": return writeFile(arguments, append: true)
        case "cp": return copy(arguments)
        case "mkdir": return makeDirectory(arguments)
        case "rm": return remove(arguments)
        case "mv": return move(arguments)
        case "stat": return status(arguments)
        case "df": return diskFree()
        case "sync": return synchronize()
        case "config": return configuration(arguments)
        default: return nil
        }
    }

    static func typeLetter(_ type: FileType) -> String {
        switch type {
        case .directory: "d"
        case .regular: "-"
        case .symbolicLink: "l"
        case .characterDevice: "c"
        case .blockDevice: "b"
        case .fifo: "p"
        case .socket: "s"
        case .unknown: "?"
        }
    }

    static func permissionString(_ permissions: UInt16) -> String {
        var text = ""
        for shift in [6, 3, 0] {
            let bits = permissions >> UInt16(shift) & 7
            text += (bits & 4 != 0 ? "r" : "-") + (bits & 2 != 0 ? "w" : "-") + (bits & 1 != 0 ? "x" : "-")
        }
        return text
    }

    /// The entries of `directory` but "." and "..", for Tab; none if it cannot be read.
    static func directoryEntries(_ directory: String) -> [CompletionCandidate] {
        var entries: [CompletionCandidate] = []
        withPath(directory) { path in
            try? FileSystem.readDirectory(path) { entry in
                let name = entry.withName { Array($0) }
                if name != Array(".".utf8) && name != Array("..".utf8) {
                    entries.append(CompletionCandidate(name: name, isDirectory: entry.type == .directory))
                }
                return true
            }
        }
        return entries
    }

    static func list(_ arguments: [String]) -> Int32 {
        let long = arguments.first == "-l"
        let operands = long ? Array(arguments.dropFirst()) : arguments
        guard operands.count <= 1 else {
            complain("usage: ls [-l] [PATH]")
            return 2
        }
        let directory = operands.first ?? "/"
        var names = [String]()
        let result: FileSystemError? = withPath(directory) { path in
            do throws(FileSystemError) {
                try FileSystem.readDirectory(path) { entry in
                    let name = entry.withName { String(decoding: $0, as: UTF8.self) }
                    if name != "." && name != ".." { names.append(name) }
                    return true
                }
                return nil
            } catch {
                return error
            }
        }
        if let result { return failure("ls", directory, result) }
        for name in names {
            guard long else {
                print(name)
                continue
            }
            let full = (directory.hasSuffix("/") ? directory : directory + "/") + name
            let status: FileStatus? = withPath(full) { try? FileSystem.stat($0) }
            guard let status else {
                print("?          " + name)
                continue
            }
            print(typeLetter(status.type) + permissionString(status.permissions) + " " + pad("\(status.links)", 4)
                  + pad("\(status.size)", 10) + pad("\(status.inode.rawValue)", 7) + name)
        }
        return 0
    }

    static func concatenate(_ arguments: [String]) -> Int32 {
        guard !arguments.isEmpty else {
            complain("usage: cat PATH...")
            return 2
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        for name in arguments {
            let failed: FileSystemError? = withPath(name) { path in
                do throws(FileSystemError) {
                    let file = try FileSystem.open(path, .read)
                    defer { try? FileSystem.close(file) }
                    while true {
                        let count = try FileSystem.read(file, into: buffer)
                        if count == 0 { break }
                        Console.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                    }
                    return nil
                } catch {
                    return error
                }
            }
            if let failed { return failure("cat", name, failed) }
        }
        return 0
    }

    static func writeFile(_ arguments: [String], append: Bool) -> Int32 {
        let command = append ? "append" : "write"
        guard let name = arguments.first else {
            complain("usage: " + command + " PATH TEXT...")
            return 2
        }
        let text = arguments.dropFirst().joined(separator: " ") + "\n"
        let flags: OpenFlags = append ? [.write, .create, .append] : [.write, .create, .truncate]
        let failed: FileSystemError? = withPath(name) { path in
            do throws(FileSystemError) {
                let file = try FileSystem.open(path, flags)
                defer { try? FileSystem.close(file) }
                let bytes = copyBytes(text)
                defer { bytes.deallocate() }
                let written = try FileSystem.write(file, from: UnsafeRawBufferPointer(bytes))
                return written == bytes.count ? nil : .noSpace
            } catch {
                return error
            }
        }
        if let failed { return failure(command, name, failed) }
        return 0
    }

    static func copy(_ arguments: [String]) -> Int32 {
        guard arguments.count == 2 else {
            complain("usage: cp FROM TO")
            return 2
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        let source: FileHandle
        do throws(FileSystemError) {
            source = try withPath(arguments[0]) { path throws(FileSystemError) in try FileSystem.open(path, .read) }
        } catch {
            return failure("cp", arguments[0], error)
        }
        defer { try? FileSystem.close(source) }
        do throws(FileSystemError) {
            let destination = try withPath(arguments[1]) { path throws(FileSystemError) in
                try FileSystem.open(path, [.write, .create, .truncate])
            }
            defer { try? FileSystem.close(destination) }
            while true {
                let count = try FileSystem.read(source, into: buffer)
                if count == 0 { break }
                guard try FileSystem.write(destination, from: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                    == count else { throw .noSpace }
            }
        } catch {
            return failure("cp", arguments[1], error)
        }
        return 0
    }

    static func makeDirectory(_ arguments: [String]) -> Int32 {
        guard arguments.count == 1 else {
            complain("usage: mkdir PATH")
            return 2
        }
        let failed: FileSystemError? = withPath(arguments[0]) { path in
            do throws(FileSystemError) { try FileSystem.mkdir(path) } catch { return error }
            return nil
        }
        return failed.map { failure("mkdir", arguments[0], $0) } ?? 0
    }

    static func remove(_ arguments: [String]) -> Int32 {
        let directory = arguments.first == "-d"
        let operands = directory ? Array(arguments.dropFirst()) : arguments
        guard operands.count == 1 else {
            complain("usage: rm [-d] PATH")
            return 2
        }
        let failed: FileSystemError? = withPath(operands[0]) { path in
            do throws(FileSystemError) {
                if directory { try FileSystem.rmdir(path) } else { try FileSystem.unlink(path) }
            } catch {
                return error
            }
            return nil
        }
        return failed.map { failure("rm", operands[0], $0) } ?? 0
    }

    static func move(_ arguments: [String]) -> Int32 {
        guard arguments.count == 2 else {
            complain("usage: mv FROM TO")
            return 2
        }
        let failed: FileSystemError? = withPath(arguments[0]) { from in
            withPath(arguments[1]) { to in
                do throws(FileSystemError) { try FileSystem.rename(from, to: to) } catch { return error }
                return nil
            }
        }
        return failed.map { failure("mv", arguments[0], $0) } ?? 0
    }

    static func status(_ arguments: [String]) -> Int32 {
        guard arguments.count == 1 else {
            complain("usage: stat PATH")
            return 2
        }
        let result: Result<FileStatus, FileSystemError> = withPath(arguments[0]) { path in
            do throws(FileSystemError) { return .success(try FileSystem.stat(path)) } catch { return .failure(error) }
        }
        switch result {
        case .failure(let error):
            return failure("stat", arguments[0], error)
        case .success(let status):
            let kind = status.type == .directory ? "directory" : status.type == .regular ? "regular file" : "other"
            print("  path: " + arguments[0])
            print("  type: " + kind + "  permissions: " + permissionString(status.permissions))
            print("  inode: \(status.inode.rawValue)  generation: \(status.generation)  links: \(status.links)")
            print("  size: \(status.size) bytes  blocks: \(status.sectors) (512-byte sectors)")
            print("  modified: \(status.modified)  changed: \(status.changed)  accessed: \(status.accessed)")
            return 0
        }
    }

    static func diskFree() -> Int32 {
        let statistics: VolumeStatistics
        do throws(FileSystemError) {
            statistics = try FileSystem.statistics()
        } catch {
            return failure("df", "/", error)
        }
        let usedBlocks = statistics.totalBlocks - statistics.freeBlocks
        let usedInodes = statistics.totalInodes - statistics.freeInodes
        print("block size \(statistics.blockSize)")
        print("blocks: \(statistics.totalBlocks) total, \(usedBlocks) used, \(statistics.freeBlocks) free")
        print("inodes: \(statistics.totalInodes) total, \(usedInodes) used, \(statistics.freeInodes) free")
        return 0
    }

    static func synchronize() -> Int32 {
        do throws(FileSystemError) { try FileSystem.sync() } catch { return failure("sync", "/", error) }
        return 0
    }

    static func configuration(_ arguments: [String]) -> Int32 {
        let line = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 8)
        defer { line.deallocate() }
        switch arguments.count {
        case 0:
            var cursor: Int? = 0
            while let current = cursor {
                guard let (length, next) = try? Config.entry(at: current, into: line) else {
                    complain("config: the configuration service does not answer")
                    return 1
                }
                if length > 0 { print(String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<length]), as: UTF8.self)) }
                cursor = next
            }
            return 0
        case 1:
            var key = arguments[0]
            let length: Int? = key.withUTF8 { try? Config.get(UnsafeRawBufferPointer($0), into: line) }
            guard let length else {
                complain("config: " + arguments[0] + ": no such setting")
                return 1
            }
            print(String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<length]), as: UTF8.self))
            return 0
        case 2:
            var key = arguments[0]
            var value = arguments[1]
            let done: Bool = key.withUTF8 { keyBytes in
                value.withUTF8 { valueBytes in
                    (try? Config.set(UnsafeRawBufferPointer(keyBytes), UnsafeRawBufferPointer(valueBytes))) != nil
                }
            }
            guard done else {
                complain("config: cannot set " + arguments[0])
                return 1
            }
            return 0
        default:
            complain("usage: config [KEY [VALUE]]")
            return 2
        }
    }
}

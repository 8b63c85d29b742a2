// A scripted operation language shared by the write and crash tests, and a
// digest of everything a volume shows (tree, types, sizes, contents, link
// counts, free counts) to compare a crashed-and-re-run volume with one that ran
// the operation once.

import Ext2
import FileSystemCore
import Foundation

enum Step: CustomStringConvertible {
    case mkdir(String)
    case create(String)
    case write(String, offset: UInt64, bytes: [UInt8])
    case truncate(String, UInt64)
    case unlink(String)
    case rmdir(String)
    case rename(String, String)
    /// open(O_CREAT | O_TRUNC): created if missing, emptied if there.
    case openTruncating(String)

    var description: String {
        switch self {
        case .mkdir(let p): "mkdir \(p)"
        case .create(let p): "create \(p)"
        case .write(let p, let o, let b): "write \(p) @\(o) ×\(b.count)"
        case .truncate(let p, let s): "truncate \(p) \(s)"
        case .unlink(let p): "unlink \(p)"
        case .rmdir(let p): "rmdir \(p)"
        case .rename(let a, let b): "rename \(a) \(b)"
        case .openTruncating(let p): "open O_CREAT|O_TRUNC \(p)"
        }
    }
}

func split(_ path: String) -> (parent: String, name: String) {
    let index = path.lastIndex(of: "/")!
    let parent = String(path[..<index])
    return (parent.isEmpty ? "/" : parent, String(path[path.index(after: index)...]))
}

/// Arguments resolved before the operation (as the server does), so a re-run
/// passes exactly the same ones.
struct Prepared {
    var step: Step
    var inode = InodeNumber(0)
    var parent = InodeNumber(0)
    var name = ""
    var otherParent = InodeNumber(0)
    var otherName = ""

    init(_ step: Step, on volume: inout Volume) throws {
        self.step = step
        switch step {
        case .mkdir(let p), .create(let p), .unlink(let p), .rmdir(let p), .openTruncating(let p):
            let (parentPath, name) = split(p)
            parent = try volume.path(parentPath)
            self.name = name
        case .write(let p, _, _), .truncate(let p, _):
            inode = try volume.path(p)
        case .rename(let a, let b):
            let (pa, na) = split(a), (pb, nb) = split(b)
            parent = try volume.path(pa)
            name = na
            otherParent = try volume.path(pb)
            otherName = nb
        }
    }

    /// Runs it; returns a printable result (what a single run must also return).
    @discardableResult
    /// `run.intent` is what the operation starts with; afterwards it is the
    /// last intent checkpointed (what a server would hand to a re-run).
    func run(on volume: inout Volume, run: Run) throws -> String {
        var intent = run.intent
        let checkpoint: (Ext2Intent) -> Void = { run.intent = $0; run.checkpoints += 1 }
        switch step {
        case .mkdir, .create:
            var isDirectory = false
            if case .mkdir = step { isDirectory = true }
            let inode = try withBytes(name) {
                try volume.create($0, in: parent, type: isDirectory ? .directory : .regular, permissions: 0o755,
                                  intent: &intent, checkpoint: checkpoint)
            }
            return "inode \(inode.rawValue)"
        case .write(_, let offset, let bytes):
            let count = try bytes.withUnsafeBytes { try volume.write(inode, at: offset, from: $0, intent: &intent, checkpoint: checkpoint) }
            return "wrote \(count)"
        case .truncate(_, let size):
            try volume.truncate(inode, to: size, intent: &intent, checkpoint: checkpoint)
        case .openTruncating:
            let opened = try withBytes(name) {
                try volume.openCreating($0, in: parent, permissions: 0o644, exclusive: false, truncate: true,
                                        intent: &intent, checkpoint: checkpoint)
            }
            return "inode \(opened.inode.rawValue) created \(opened.created)"
        case .unlink:
            try withBytes(name) { try volume.unlink($0, in: parent, intent: &intent, checkpoint: checkpoint) }
        case .rmdir:
            try withBytes(name) { try volume.removeDirectory($0, in: parent, intent: &intent, checkpoint: checkpoint) }
        case .rename:
            try withBytes(name) { old in
                try withBytes(otherName) { new in
                    try volume.rename(old, in: parent, to: new, in: otherParent, intent: &intent, checkpoint: checkpoint)
                }
            }
        }
        return "ok"
    }
}

/// Runs a whole script with fresh intents.
func perform(_ steps: [Step], on volume: inout Volume, tag: UInt64 = 1) throws {
    for (index, step) in steps.enumerated() {
        let prepared = try Prepared(step, on: &volume)
        try prepared.run(on: &volume, run: Run(tag: tag + UInt64(index)))
    }
}

/// The expected tree: path -> contents (nil for a directory).
struct Model {
    var entries: [String: [UInt8]?] = ["/": nil]

    mutating func apply(_ step: Step) {
        switch step {
        case .mkdir(let p): entries[p] = .some(nil)
        case .create(let p): entries[p] = []
        case .write(let p, let offset, let bytes):
            var data = entries[p]!!
            let end = Int(offset) + bytes.count
            if data.count < end { data += [UInt8](repeating: 0, count: end - data.count) }
            data.replaceSubrange(Int(offset)..<end, with: bytes)
            entries[p] = data
        case .truncate(let p, let size):
            var data = entries[p]!!
            if data.count > Int(size) { data.removeLast(data.count - Int(size)) } else {
                data += [UInt8](repeating: 0, count: Int(size) - data.count)
            }
            entries[p] = data
        case .unlink(let p), .rmdir(let p): entries[p] = nil
        case .openTruncating(let p): entries[p] = []
        case .rename(let a, let b):
            let moved = entries.filter { $0.key == a || $0.key.hasPrefix(a + "/") }
            for (key, _) in entries where key == b || key.hasPrefix(b + "/") { entries[key] = nil }
            for (key, value) in moved {
                entries[key] = nil
                entries[b + key.dropFirst(a.count)] = value
            }
        }
    }
}

/// Everything observable through the engine, as text (lost+found excluded).
func digest(_ volume: inout Volume) throws -> String {
    var lines: [String] = []
    func visit(_ directory: InodeNumber, _ path: String, depth: Int) throws {
        precondition(depth < 64)
        for name in try volume.names(directory).sorted() where name != "." && name != ".." && name != "lost+found" {
            let child = try withBytes(name) { try volume.lookup($0, in: directory) }
            let status = try volume.status(child)
            let full = path == "/" ? "/" + name : path + "/" + name
            if status.type == .directory {
                lines.append("\(full)/ links=\(status.links)")
                try visit(child, full, depth: depth + 1)
            } else {
                let bytes = try volume.contents(child)
                lines.append("\(full) size=\(status.size) links=\(status.links) sum=\(checksum(bytes)) sectors=\(status.sectors)")
            }
        }
    }
    try visit(.root, "/", depth: 0)
    let stats = volume.statistics
    lines.append("free blocks=\(stats.freeBlocks) inodes=\(stats.freeInodes)")
    return lines.joined(separator: "\n")
}

func checksum(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}

/// Checks the volume's tree against a model with the engine and with debugfs.
func verify(_ disk: DiskImage, against model: Model, useDebugfs: Bool = true) throws -> [String] {
    var problems: [String] = []
    var volume = try mount(disk.copy())
    for (path, contents) in model.entries.sorted(by: { $0.key < $1.key }) {
        guard let inode = try? volume.path(path) else { problems.append("missing \(path)"); continue }
        if let contents {
            let ours = try volume.contents(inode)
            if ours != contents { problems.append("engine reads wrong bytes in \(path)") }
            if useDebugfs {
                let theirs = try debugfsBytes(disk, cat: path)
                if theirs != contents { problems.append("debugfs reads wrong bytes in \(path) (\(theirs.count) vs \(contents.count))") }
            }
        } else {
            var names = Set(try volume.names(inode))
            names.subtract([".", "..", "lost+found"])
            let expected = Set(model.entries.keys.filter { $0 != "/" && split($0).parent == path }.map { split($0).name })
            if names != expected { problems.append("listing of \(path): \(names.sorted()) expected \(expected.sorted())") }
            if useDebugfs {
                let listing = try debugfs(disk, "ls -p \(path)")
                var theirs = Set(listing.split(separator: "\n").compactMap { line -> String? in
                    let fields = line.split(separator: "/", omittingEmptySubsequences: false)
                    return fields.count >= 6 ? String(fields[5]) : nil
                })
                theirs.subtract([".", "..", "lost+found"])
                if theirs != expected { problems.append("debugfs listing of \(path): \(theirs.sorted())") }
            }
        }
    }
    return problems
}

// The configuration server: a table of settings that outlives every other server's
// crashes (see ConfigAPI for the protocol and the naming of keys).
//
// It is deliberately small and not restartable: it holds no per-client state,
// serves no untrusted data formats, and its table is what the restartable servers
// fall back on. The defaults below describe the standard system; the shell's
// `config KEY VALUE` changes a setting for servers that (re)start afterwards.

import ConfigAPI
import CurioUser

struct Setting {
    var key = InlineArray<32, UInt8>(repeating: 0)
    var keyLength = 0
    var value = InlineArray<64, UInt8>(repeating: 0)
    var valueLength = 0

    func keyEquals(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == keyLength else { return false }
        for index in 0..<keyLength where key[index] != bytes[index] { return false }
        return true
    }
}

/// The built-in settings: which block device each storage server drives (its index
/// among the virtio-blk devices found, in slot order), which storage server each
/// filesystem server mounts, and how; the network interface's addresses (QEMU user
/// networking's, see NetworkCore's InterfaceSettings.swift).
let defaults: [(StaticString, StaticString)] = [
    ("storage.disk", "0"),
    ("fs.storage", "storage"),
    ("fs.mount", "rw"),
    ("net.address", "10.0.2.15/24"),
    ("net.gateway", "10.0.2.2"),
    ("net.dns", "10.0.2.3"),
]

@main
struct ConfigServer {
    nonisolated(unsafe) static var table = [Setting]()

    static func main() {
        for (key, value) in defaults {
            _ = store(UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount),
                      UnsafeRawBufferPointer(start: value.utf8Start, count: value.utf8CodeUnitCount))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 8)
        var pending: (client: TaskID, code: ConfigReplyCode, words: (UInt, UInt), length: Int)?
        while true {
            let message: Received
            do throws(SyscallError) {
                if let reply = pending {
                    message = try IPC.replyAndReceive(to: reply.client, code: reply.code.rawValue, words: reply.words,
                                                      replyLength: reply.length, buffer: buffer)
                } else {
                    message = try IPC.receive(into: buffer)
                }
            } catch {
                pending = nil
                continue
            }
            let request = UnsafeRawBufferPointer(rebasing: buffer[0..<min(message.length, buffer.count)])
            let (code, words, length) = handle(message.operation, words: message.words, request: request, reply: buffer)
            pending = (message.sender, code, words, length)
        }
    }

    static func handle(_ operation: UInt, words: (UInt, UInt), request: UnsafeRawBufferPointer,
                       reply: UnsafeMutableRawBufferPointer) -> (ConfigReplyCode, (UInt, UInt), Int) {
        switch ConfigOperation(rawValue: UInt16(truncatingIfNeeded: operation)) {
        case .get:
            guard let index = find(request) else { return (.noSuchKey, (0, 0), 0) }
            let setting = table[index]
            for offset in 0..<setting.valueLength { reply[offset] = setting.value[offset] }
            return (.ok, (0, 0), setting.valueLength)
        case .set:
            guard let separator = request.firstIndex(of: 0) else { return (.badRequest, (0, 0), 0) }
            let key = UnsafeRawBufferPointer(rebasing: request[0..<separator])
            let value = UnsafeRawBufferPointer(rebasing: request[(separator + 1)...])
            // Copied out first: the reply shares the buffer the request arrived in.
            var setting = Setting()
            guard key.count > 0, key.count <= ConfigLimits.keyBytes, value.count <= ConfigLimits.valueBytes else {
                return (.badRequest, (0, 0), 0)
            }
            for (offset, byte) in key.enumerated() { setting.key[offset] = byte }
            setting.keyLength = key.count
            for (offset, byte) in value.enumerated() { setting.value[offset] = byte }
            setting.valueLength = value.count
            return (place(setting) ? .ok : .tableFull, (0, 0), 0)
        case .list:
            // Any word may arrive here: compare before converting (a cursor past Int.max
            // trapped the server, which nobody restarts).
            guard words.0 < UInt(table.count) else { return (.ok, (0, 0), 0) }
            let cursor = Int(words.0)
            let setting = table[cursor]
            var length = 0
            for offset in 0..<setting.keyLength { reply[length] = setting.key[offset]; length += 1 }
            reply[length] = UInt8(ascii: "="); length += 1
            for offset in 0..<setting.valueLength { reply[length] = setting.value[offset]; length += 1 }
            return (.ok, (cursor + 1 < table.count ? UInt(cursor + 1) : 0, 0), length)
        case nil:
            return (.badRequest, (0, 0), 0)
        }
    }

    static func find(_ key: UnsafeRawBufferPointer) -> Int? {
        table.firstIndex { $0.keyEquals(key) }
    }

    static func store(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool {
        var setting = Setting()
        for (offset, byte) in key.enumerated() { setting.key[offset] = byte }
        setting.keyLength = key.count
        for (offset, byte) in value.enumerated() { setting.value[offset] = byte }
        setting.valueLength = value.count
        return place(setting)
    }

    static func place(_ setting: Setting) -> Bool {
        let existing = setting.key.span.withUnsafeBytes { bytes in
            find(UnsafeRawBufferPointer(rebasing: bytes[0..<setting.keyLength]))
        }
        if let existing {
            table[existing] = setting
            return true
        }
        guard table.count < ConfigLimits.entries else { return false }
        table.append(setting)
        return true
    }
}

// The configuration service's client API: system-wide settings by name.
//
// The paper (§3) has restarted servers reload "system specific configuration
// settings such as disk partition information" from a configuration manager, not
// from their own (lost) memory. Curio's `config` server is that manager: a small
// table of `key = value` strings, with defaults built in and changes made with the
// shell's `config` command. The filesystem server asks it which storage server
// holds its disk and how to mount it; the storage server asks which block device
// is its disk. Keys are "<program>.<setting>".
//
// Messages (operation, words -> code, words; payloads):
//   get    key                      -> value (reply payload)
//   set    key NUL value            -> -
//   list   cursor (word 0)          -> "key=value" (reply payload), next cursor (word 0; 0 = end)

import CurioUser

public enum ConfigOperation: UInt16, Sendable {
    case get = 1
    case set = 2
    case list = 3
}

public enum ConfigReplyCode: UInt32, Sendable {
    case ok = 0
    case noSuchKey = 1
    case tableFull = 2
    case badRequest = 3
}

public enum ConfigLimits {
    public static let keyBytes = 32
    public static let valueBytes = 64
    public static let entries = 32
}

public enum ConfigError: Error, Equatable, Sendable {
    case noSuchKey
    case tableFull
    case badRequest
    case system(SyscallError)
}

public enum Config {
    nonisolated(unsafe) private static var server = ServerEndpoint("config")

    private static func call(_ operation: ConfigOperation, words: (UInt, UInt) = (0, 0),
                             payload: UnsafeRawBufferPointer, reply: UnsafeMutableRawBufferPointer)
        throws(ConfigError) -> Reply {
        let answer: Reply
        do throws(SyscallError) {
            answer = try server.call(operation: operation.rawValue, words: words, payload: payload, reply: reply)
        } catch {
            throw .system(error)
        }
        switch ConfigReplyCode(rawValue: UInt32(truncatingIfNeeded: answer.code)) {
        case .ok: return answer
        case .noSuchKey: throw .noSuchKey
        case .tableFull: throw .tableFull
        case .badRequest, nil: throw .badRequest
        }
    }

    /// The value of `key` in `value`; returns its length.
    public static func get(_ key: UnsafeRawBufferPointer, into value: UnsafeMutableRawBufferPointer) throws(ConfigError) -> Int {
        try call(.get, payload: key, reply: value).length
    }

    /// The value of "<program>.<setting>" (the usual form of a key).
    public static func get(program: UnsafeRawBufferPointer, setting: StaticString,
                           into value: UnsafeMutableRawBufferPointer) throws(ConfigError) -> Int {
        var key = InlineArray<48, UInt8>(repeating: 0)
        let settingBytes = UnsafeRawBufferPointer(start: setting.utf8Start, count: setting.utf8CodeUnitCount)
        guard program.count + 1 + settingBytes.count <= ConfigLimits.keyBytes else { throw .badRequest }
        var length = 0
        for byte in program { key[length] = byte; length += 1 }
        key[length] = UInt8(ascii: "."); length += 1
        for byte in settingBytes { key[length] = byte; length += 1 }
        let keyLength = length
        return try key.span.withUnsafeBytes { bytes throws(ConfigError) in
            try get(UnsafeRawBufferPointer(rebasing: bytes[0..<keyLength]), into: value)
        }
    }

    /// Sets `key` to `value` (both at most `ConfigLimits` bytes).
    public static func set(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(ConfigError) {
        guard key.count > 0, key.count <= ConfigLimits.keyBytes, value.count <= ConfigLimits.valueBytes,
              !key.contains(0) else { throw .badRequest }
        var message = InlineArray<100, UInt8>(repeating: 0)
        var length = 0
        for byte in key { message[length] = byte; length += 1 }
        length += 1
        for byte in value { message[length] = byte; length += 1 }
        let total = length
        try message.span.withUnsafeBytes { bytes throws(ConfigError) in
            _ = try call(.set, payload: UnsafeRawBufferPointer(rebasing: bytes[0..<total]),
                         reply: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }
    }

    /// Entry `cursor` as "key=value" in `line`; returns its length and the next cursor (nil at the end).
    public static func entry(at cursor: Int, into line: UnsafeMutableRawBufferPointer) throws(ConfigError) -> (Int, Int?) {
        let answer = try call(.list, words: (UInt(cursor), 0), payload: UnsafeRawBufferPointer(start: nil, count: 0),
                              reply: line)
        return (answer.length, answer.words.0 == 0 ? nil : Int(answer.words.0))
    }
}

// The storage service's wire protocol, shared by the client library and the server:
// operations, reply codes, limits, and how a request travels in a message's two words.
// Data travels in the message payload: a write's sectors in the send buffer, a read's
// in the reply buffer. No system calls here, so the host tests can use it.
//
//   operation  word0        word1                           payload   -> reply words
//   ---------  -----------  ------------------------------  --------  ---------------------------
//   read       first sector count | priority << 32           -         - (data in reply payload)
//   write      first sector count | priority << 32           data      -
//   flush      0            priority << 32                  -         -
//   info       0            0                               -         capacity, flags
//
//   word1 bits: 0..31 sector count (1...8 for read/write, 0 for flush),
//               32..39 priority (0 most urgent ... 7), 40..63 zero.
//   info flags: bit 0 read-only, bit 1 the device has a write cache to flush.
//
// Reserved bits must be zero: a request with stray bits is refused rather than guessed
// at, so a later extension of the encoding cannot be misread by an old server. The
// server decodes every request with `StorageWire.decode`, which checks everything
// against the device before anything is queued.

public enum StorageOperation: UInt16, Sendable {
    case read = 1
    case write = 2
    case flush = 3
    case info = 4
}

/// The operations that become a device request (and occupy a client's SSR).
public enum StorageRequestKind: UInt8, Sendable {
    case read = 1
    case write = 2
    case flush = 3
}

/// The server's response codes.
public enum StorageReplyCode: UInt32, Sendable {
    case ok = 0
    case badRequest = 1
    case outOfRange = 2
    case ioError = 3
    case readOnly = 4
    case badOperation = 5
    /// Every request buffer is taken: call again (the client library does).
    case busy = 6
}

public enum StorageLimits {
    public static let sectorSize = 512
    public static let maximumSectorsPerRequest = 8
    public static let maximumBytesPerRequest = 4096
    /// Priorities run from 0 (most urgent) to 7.
    public static let lowestPriority: UInt8 = 7
    public static let priorityLevels = 8
}

/// A decoded read, write or flush.
public struct StorageRequest: Sendable, Equatable {
    public var kind: StorageRequestKind
    public var sector: UInt64
    /// Sectors to transfer (0 for flush).
    public var count: Int
    public var priority: UInt8

    public init(kind: StorageRequestKind, sector: UInt64, count: Int, priority: UInt8) {
        self.kind = kind
        self.sector = sector
        self.count = count
        self.priority = priority
    }

    public var byteCount: Int { count * StorageLimits.sectorSize }
}

/// What the server makes of a message.
public enum StorageDecodedMessage: Sendable, Equatable {
    case request(StorageRequest)
    case info
    case rejected(StorageReplyCode)
}

/// The device as `info` describes it.
public struct StorageDeviceInfo: Sendable, Equatable {
    public var capacity: UInt64
    public var readOnly: Bool
    public var hasWriteCache: Bool

    public init(capacity: UInt64, readOnly: Bool, hasWriteCache: Bool) {
        self.capacity = capacity
        self.readOnly = readOnly
        self.hasWriteCache = hasWriteCache
    }
}

public enum StorageWire {
    static let countMask: UInt64 = 0xFFFF_FFFF
    static let priorityShift: UInt64 = 32
    static let reservedMask: UInt64 = ~0xFF_FFFF_FFFF
    static let readOnlyFlag: UInt64 = 1
    static let writeCacheFlag: UInt64 = 2

    /// The words of a read, write or flush (flush: sector 0, count 0).
    public static func requestWords(sector: UInt64, count: Int, priority: UInt8) -> (UInt, UInt) {
        (UInt(sector), UInt(UInt64(truncatingIfNeeded: count) & countMask | UInt64(priority) << priorityShift))
    }

    public static func requestWords(_ request: StorageRequest) -> (UInt, UInt) {
        requestWords(sector: request.sector, count: request.count, priority: request.priority)
    }

    /// Checks a message against the protocol and the device. `payloadBytes` is the
    /// length of the data that came with it (a write's must be exactly its sectors).
    public static func decode(operation: UInt, words: (UInt, UInt), payloadBytes: Int,
                              device: StorageDeviceInfo) -> StorageDecodedMessage {
        guard operation <= UInt(UInt16.max), let known = StorageOperation(rawValue: UInt16(operation)) else {
            return .rejected(.badOperation)
        }
        let sector = UInt64(words.0)
        let word1 = UInt64(words.1)
        let count = Int(word1 & countMask)
        let priority = UInt8(truncatingIfNeeded: word1 >> priorityShift)
        guard word1 & reservedMask == 0, priority <= StorageLimits.lowestPriority else { return .rejected(.badRequest) }
        let kind: StorageRequestKind
        switch known {
        case .info:
            return sector == 0 && word1 == 0 ? .info : .rejected(.badRequest)
        case .flush:
            guard sector == 0, count == 0 else { return .rejected(.badRequest) }
            return .request(StorageRequest(kind: .flush, sector: 0, count: 0, priority: priority))
        case .read: kind = .read
        case .write: kind = .write
        }
        guard count >= 1, count <= StorageLimits.maximumSectorsPerRequest else { return .rejected(.badRequest) }
        if kind == .write {
            guard payloadBytes == count * StorageLimits.sectorSize else { return .rejected(.badRequest) }
            guard !device.readOnly else { return .rejected(.readOnly) }
        }
        guard sector <= device.capacity, UInt64(count) <= device.capacity - sector else {
            return .rejected(.outOfRange)
        }
        return .request(StorageRequest(kind: kind, sector: sector, count: count, priority: priority))
    }

    public static func infoWords(_ info: StorageDeviceInfo) -> (UInt, UInt) {
        (UInt(info.capacity),
         UInt((info.readOnly ? readOnlyFlag : 0) | (info.hasWriteCache ? writeCacheFlag : 0)))
    }

    public static func info(from words: (UInt, UInt)) -> StorageDeviceInfo {
        StorageDeviceInfo(capacity: UInt64(words.0), readOnly: UInt64(words.1) & readOnlyFlag != 0,
                          hasWriteCache: UInt64(words.1) & writeCacheFlag != 0)
    }
}

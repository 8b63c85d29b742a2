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
//               32..39 priority (0 most urgent ... 7), 40..63 zero, except for a
//               write: its data check (below).
//   read reply words: the data check, 0.
//
// The data check (`StorageWire.dataCheck`): 24 bits of a multiply-xor hash over the
// data's 64-bit words, seeded with the sector. The client computes it over what it
// writes and the server verifies it on the data in its DMA page just before the
// device gets it; for a read the server computes it over the page the device filled
// and the client verifies what arrived. A fault in the server that sends data to the
// wrong sector, or the wrong page's data to a client, is caught there instead of
// becoming a silently wrong block on the disk. A read's check alone cannot vouch for
// the sector or the page the device was really given (the server would hash whatever
// the device left, with the client's sector), so before computing it the server
// compares what the device was asked, read back from DMA memory (`DeviceRequest`),
// with the client's SSR record; a mismatch restarts it and the read is done again.
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
    /// A write's data check (0 for reads and flushes).
    public var check: UInt32

    public init(kind: StorageRequestKind, sector: UInt64, count: Int, priority: UInt8, check: UInt32 = 0) {
        self.kind = kind
        self.sector = sector
        self.count = count
        self.priority = priority
        self.check = check
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
    static let checkShift: UInt64 = 40
    public static let checkMask: UInt32 = 0xFF_FFFF

    /// The data check of `data` (whole 64-bit words) destined for `sector`.
    public static func dataCheck(sector: UInt64, data: UnsafeRawBufferPointer) -> UInt32 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ sector
        var offset = 0
        if let base = data.baseAddress, UInt(bitPattern: base) % 8 == 0 {
            // Cache slots and DMA pages are aligned: one load a word, where
            // `loadUnaligned` is eight byte loads on RISC-V (the check of a 4 KiB write
            // cost about 12,000 instructions that way).
            while offset + 8 <= data.count {
                hash = (hash ^ data.load(fromByteOffset: offset, as: UInt64.self)) &* 0x0000_0100_0000_01B3
                offset += 8
            }
        } else {
            while offset + 8 <= data.count {
                hash = (hash ^ data.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0x0000_0100_0000_01B3
                offset += 8
            }
        }
        return UInt32(truncatingIfNeeded: hash ^ hash >> 24 ^ hash >> 48) & checkMask
    }

    /// The words of a write of `data` at `sector`, with its data check.
    public static func writeWords(sector: UInt64, data: UnsafeRawBufferPointer, priority: UInt8) -> (UInt, UInt) {
        let words = requestWords(sector: sector, count: data.count / StorageLimits.sectorSize, priority: priority)
        return (words.0, words.1 | UInt(dataCheck(sector: sector, data: data)) << UInt(checkShift))
    }
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
        let check = known == .write ? UInt32(truncatingIfNeeded: word1 >> checkShift) & checkMask : 0
        guard (word1 & reservedMask) == UInt64(check) << checkShift, priority <= StorageLimits.lowestPriority else {
            return .rejected(.badRequest)
        }
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
        return .request(StorageRequest(kind: kind, sector: sector, count: count, priority: priority, check: check))
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

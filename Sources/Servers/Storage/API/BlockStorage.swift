// The storage service's client API: read and write 512-byte sectors of the disk the
// storage server drives, with a priority per request.
//
//   var disk = try BlockStorage(server: name)      // e.g. "storage", from the config service
//   try disk.read(sector: 2, count: 2, into: buffer, priority: 3)
//
// A call blocks until the device has done the request. The server keeps the request
// (and its priority) in this client's server state region, so if the server crashes
// the restarted server finds it there and completes it: the client never resubmits,
// and a write is acknowledged only once the device has it. A call made after a
// restart finds the old endpoint dead and looks the server up again, which is safe
// because a refused call never reached the server. If the server lost this client's
// region (a fault corrupted it), the call is simply made again: every storage
// request is idempotent.

@_exported import StorageCore
import CurioUser

public enum StorageError: Error, Equatable, Sendable {
    case badRequest
    case outOfRange
    case ioError
    case readOnly
    case badOperation
    /// The call itself failed (`serverStateLost`, `serverFailed`, `notFound`, ...).
    case system(SyscallError)

    public var name: StaticString {
        switch self {
        case .badRequest: "bad request"
        case .outOfRange: "sector out of range"
        case .ioError: "I/O error"
        case .readOnly: "read-only device"
        case .badOperation: "bad operation"
        case .system(let error): error.name
        }
    }
}

public struct BlockStorage {
    var server: ServerEndpoint

    public init(server name: UnsafeRawBufferPointer) throws(StorageError) {
        guard let endpoint = ServerEndpoint(name) else { throw .badRequest }
        server = endpoint
    }

    mutating func call(_ operation: StorageOperation, _ words: (UInt, UInt), payload: UnsafeRawBufferPointer,
                       reply: UnsafeMutableRawBufferPointer) throws(StorageError) -> Reply {
        var attempts = 0
        while true {
            let answer: Reply
            do throws(SyscallError) {
                answer = try server.call(operation: operation.rawValue, words: words, payload: payload, reply: reply)
            } catch .serverStateLost where attempts < 8 {
                // The server could not trust our region after a crash, so it does not know
                // whether this request was done. Every request is idempotent (a read, a
                // write of the same bytes to the same sectors, a flush): do it again.
                attempts += 1
                continue
            } catch .notFound where attempts < 8 {
                // Between a crash and the restart the name is briefly unbound.
                System.yield()
                attempts += 1
                continue
            } catch {
                throw .system(error)
            }
            switch StorageReplyCode(rawValue: UInt32(truncatingIfNeeded: answer.code)) {
            case .ok: return answer
            case .busy:
                System.yield()
                continue
            case .badRequest: throw .badRequest
            case .outOfRange: throw .outOfRange
            case .ioError: throw .ioError
            case .readOnly: throw .readOnly
            case .badOperation, nil: throw .badOperation
            }
        }
    }

    /// The device's size and properties.
    public mutating func info() throws(StorageError) -> StorageDeviceInfo {
        let answer = try call(.info, (0, 0), payload: UnsafeRawBufferPointer(start: nil, count: 0),
                              reply: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        return StorageWire.info(from: answer.words)
    }

    /// Reads `count` sectors (1...8) from `sector` into `buffer` (at least count * 512 bytes).
    public mutating func read(sector: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer,
                              priority: UInt8 = 4) throws(StorageError) {
        let bytes = count * StorageLimits.sectorSize
        guard count >= 1, count <= StorageLimits.maximumSectorsPerRequest, buffer.count >= bytes else {
            throw .badRequest
        }
        let data = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes])
        // Data that does not match the server's check went wrong inside the server (a
        // fault between the device and the reply): reading is idempotent, so ask again.
        for _ in 0..<8 {
            let answer = try call(.read, StorageWire.requestWords(sector: sector, count: count, priority: priority),
                                  payload: UnsafeRawBufferPointer(start: nil, count: 0), reply: data)
            guard answer.length == bytes else { throw .ioError }
            if UInt32(truncatingIfNeeded: answer.words.0)
                == StorageWire.dataCheck(sector: sector, data: UnsafeRawBufferPointer(data)) { return }
        }
        throw .ioError
    }

    /// Writes `data` (1...8 whole sectors) at `sector`; returns once the device has it.
    public mutating func write(sector: UInt64, from data: UnsafeRawBufferPointer, priority: UInt8 = 4)
        throws(StorageError) {
        let count = data.count / StorageLimits.sectorSize
        guard data.count % StorageLimits.sectorSize == 0, count >= 1,
              count <= StorageLimits.maximumSectorsPerRequest else { throw .badRequest }
        _ = try call(.write, StorageWire.writeWords(sector: sector, data: data, priority: priority),
                     payload: data, reply: UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }

    /// Asks the device to make every completed write durable.
    public mutating func flush(priority: UInt8 = 4) throws(StorageError) {
        _ = try call(.flush, StorageWire.requestWords(sector: 0, count: 0, priority: priority),
                     payload: UnsafeRawBufferPointer(start: nil, count: 0),
                     reply: UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }
}

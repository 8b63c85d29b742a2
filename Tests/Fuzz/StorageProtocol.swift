// Fuzz target `storage-protocol`: the storage server's decoder of requests.
//
// The input is the device the server drives — capacity (u64, in sectors) and a
// flags byte (bit 0 read-only, bit 1 write cache) — then one message: operation
// (u64, the register it arrives in), word 0 and word 1 (u64 each) and the length
// of the data that came with it (u16). The seeds are a request of every kind as
// the client library encodes it. `StorageWire.decode` must answer, and what it
// accepts must be a request the server can carry out: 1 to 8 sectors (none for a
// flush) lying on the device, a valid priority, a write's data exactly its
// sectors and never to a read-only device, and the very words the client library
// encodes for that request.

import StorageCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStorageProtocol(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let capacity = input.integer(UInt64.self)
    let flags = input.byte()
    let device = StorageDeviceInfo(capacity: capacity, readOnly: flags & 1 != 0, hasWriteCache: flags & 2 != 0)
    let operation = UInt(input.integer(UInt64.self))
    let words = (UInt(input.integer(UInt64.self)), UInt(input.integer(UInt64.self)))
    let payloadBytes = Int(input.integer(UInt16.self))

    let info = StorageWire.info(from: StorageWire.infoWords(device))
    precondition(info == device, "the device's description does not round-trip")

    switch StorageWire.decode(operation: operation, words: words, payloadBytes: payloadBytes, device: device) {
    case .request(let request):
        precondition(request.priority <= StorageLimits.lowestPriority, "a priority out of range")
        if request.kind == .flush {
            precondition(request.count == 0 && request.sector == 0, "a flush with sectors")
        } else {
            precondition(request.count >= 1 && request.count <= StorageLimits.maximumSectorsPerRequest,
                         "a sector count out of range")
            precondition(request.sector <= capacity && UInt64(request.count) <= capacity - request.sector,
                         "a request past the end of the device")
        }
        if request.kind == .write {
            precondition(!device.readOnly, "a write to a read-only device")
            precondition(payloadBytes == request.byteCount, "a write whose data is not its sectors")
        }
        var encoded = StorageWire.requestWords(request)
        if request.kind == .write { encoded.1 |= UInt(request.check) << 40 }
        precondition(encoded == words, "the words do not round-trip")
    case .info:
        precondition(words == (0, 0), "an info request with arguments")
    case .rejected:
        break
    }
    return 0
}

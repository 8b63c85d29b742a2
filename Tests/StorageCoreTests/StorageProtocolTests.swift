import StorageCore
import Testing

@Suite struct StorageProtocolTests {
    let device = StorageDeviceInfo(capacity: 1000, readOnly: false, hasWriteCache: true)

    func decode(_ operation: StorageOperation, _ words: (UInt, UInt), payload: Int = 0,
                device: StorageDeviceInfo? = nil) -> StorageDecodedMessage {
        StorageWire.decode(operation: UInt(operation.rawValue), words: words, payloadBytes: payload,
                           device: device ?? self.device)
    }

    @Test func requestsRoundTrip() {
        for priority in UInt8(0)...7 {
            for count in 1...8 {
                for sector in [UInt64(0), 1, 1000 - UInt64(count)] {
                    let words = StorageWire.requestWords(sector: sector, count: count, priority: priority)
                    #expect(decode(.read, words) == .request(StorageRequest(kind: .read, sector: sector, count: count,
                                                                            priority: priority)))
                    #expect(decode(.write, words, payload: count * 512)
                        == .request(StorageRequest(kind: .write, sector: sector, count: count, priority: priority)))
                }
            }
            let flush = StorageRequest(kind: .flush, sector: 0, count: 0, priority: priority)
            #expect(decode(.flush, StorageWire.requestWords(flush)) == .request(flush))
        }
    }

    @Test func aWriteCarriesTheCheckOfItsDataAndSector() {
        var data = [UInt8](repeating: 0, count: 1024)
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: index &* 7) }
        data.withUnsafeBytes { bytes in
            let check = StorageWire.dataCheck(sector: 40, data: bytes)
            #expect(check <= StorageWire.checkMask)
            let words = StorageWire.writeWords(sector: 40, data: bytes, priority: 2)
            #expect(decode(.write, words, payload: 1024)
                == .request(StorageRequest(kind: .write, sector: 40, count: 2, priority: 2, check: check)))
            #expect(StorageWire.dataCheck(sector: 41, data: bytes) != check, "the sector is part of the check")
            // The same check bits on anything but a write are stray bits.
            #expect(decode(.read, (40, words.1 & ~0xFF | 2), payload: 0) == .rejected(.badRequest))
        }
        var changed = data
        for bit in stride(from: 0, to: 1024 * 8, by: 61) {
            changed[bit / 8] ^= 1 << UInt8(bit % 8)
            let differs = data.withUnsafeBytes { original in
                changed.withUnsafeBytes { StorageWire.dataCheck(sector: 40, data: $0) }
                    != StorageWire.dataCheck(sector: 40, data: original)
            }
            #expect(differs, "a flipped bit \(bit) changes the check")
            changed[bit / 8] ^= 1 << UInt8(bit % 8)
        }
    }

    @Test func theEncodingIsAsDocumented() {
        let words = StorageWire.requestWords(sector: 0x1234_5678_9A, count: 8, priority: 5)
        #expect(words.0 == 0x1234_5678_9A)
        #expect(words.1 == 8 | 5 << 32)
        #expect(StorageRequest(kind: .read, sector: 0, count: 8, priority: 0).byteCount
            == StorageLimits.maximumBytesPerRequest)
    }

    @Test func malformedRequestsAreRefused() {
        #expect(StorageWire.decode(operation: 0, words: (0, 0), payloadBytes: 0, device: device)
            == .rejected(.badOperation))
        #expect(StorageWire.decode(operation: 5, words: (0, 0), payloadBytes: 0, device: device)
            == .rejected(.badOperation))
        #expect(StorageWire.decode(operation: 0x1_0001, words: (0, 1), payloadBytes: 0, device: device)
            == .rejected(.badOperation))
        #expect(decode(.read, (0, 0)) == .rejected(.badRequest), "no sectors")
        #expect(decode(.read, (0, 9)) == .rejected(.badRequest), "too many sectors")
        #expect(decode(.read, (0, 1 | 8 << 32)) == .rejected(.badRequest), "priority 8")
        #expect(decode(.read, (0, 1 | 1 << 40)) == .rejected(.badRequest), "reserved bits")
        #expect(decode(.read, (0, 1 | 1 << 63)) == .rejected(.badRequest), "reserved bits")
        #expect(decode(.write, StorageWire.requestWords(sector: 0, count: 2, priority: 0), payload: 512)
            == .rejected(.badRequest), "payload shorter than the sectors")
        #expect(decode(.flush, (1, 0)) == .rejected(.badRequest), "flush with a sector")
        #expect(decode(.flush, (0, 1)) == .rejected(.badRequest), "flush with a count")
        #expect(decode(.info, (0, 1)) == .rejected(.badRequest))
        #expect(decode(.info, (0, 0)) == .info)
    }

    @Test func requestsPastTheEndAreOutOfRange() {
        #expect(decode(.read, StorageWire.requestWords(sector: 992, count: 8, priority: 0))
            == .request(StorageRequest(kind: .read, sector: 992, count: 8, priority: 0)))
        #expect(decode(.read, StorageWire.requestWords(sector: 993, count: 8, priority: 0)) == .rejected(.outOfRange))
        #expect(decode(.read, StorageWire.requestWords(sector: 1000, count: 1, priority: 0)) == .rejected(.outOfRange))
        #expect(decode(.read, StorageWire.requestWords(sector: UInt64.max, count: 1, priority: 0))
            == .rejected(.outOfRange))
        #expect(decode(.read, StorageWire.requestWords(sector: UInt64.max - 2, count: 8, priority: 0))
            == .rejected(.outOfRange))
    }

    @Test func writesToAReadOnlyDeviceAreRefused() {
        let readOnly = StorageDeviceInfo(capacity: 1000, readOnly: true, hasWriteCache: false)
        let words = StorageWire.requestWords(sector: 0, count: 1, priority: 0)
        #expect(decode(.write, words, payload: 512, device: readOnly) == .rejected(.readOnly))
        #expect(decode(.read, words, device: readOnly) == .request(StorageRequest(kind: .read, sector: 0, count: 1,
                                                                                  priority: 0)))
    }

    @Test func infoRoundTrips() {
        for info in [StorageDeviceInfo(capacity: 0, readOnly: false, hasWriteCache: false),
                     StorageDeviceInfo(capacity: 1 << 40, readOnly: true, hasWriteCache: false),
                     StorageDeviceInfo(capacity: 32768, readOnly: false, hasWriteCache: true)] {
            #expect(StorageWire.info(from: StorageWire.infoWords(info)) == info)
        }
        #expect(StorageWire.infoWords(StorageDeviceInfo(capacity: 7, readOnly: true, hasWriteCache: true)) == (7, 3))
    }
}

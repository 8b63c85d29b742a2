// The read check made end to end, and DMA kept inside the driver's own pages.
//
// The data check of a read is computed over the page the device filled, with the
// sector the client asked for; the client recomputes it over the bytes it receives.
// Both sides hash the same bytes, so a device that was asked for the wrong sector,
// or to fill the wrong page, passes. The driver therefore reads back, after the
// device completed a request, what the header and the descriptors in DMA memory
// asked of it, and the server compares that with the client's SSR record before it
// computes the check and replies. These tests damage a driver's request between
// submit and completion, as a fault in the driver would, and expect the read-back
// to differ from what the client asked.
//
// And before anything reaches the device, every physical address the driver hands
// it must lie in the pages it was given: a damaged pointer is refused, never
// followed by the device.

@testable import StorageCore
@testable import Virtio
@testable import Virtio
import Testing

/// A rig whose disk holds sector n filled with byte n, the device waiting for `process()`.
func patternedRig() throws -> Rig {
    let rig = try Rig(sectors: 64)
    for sector in 0..<64 { for byte in 0..<512 { rig.device.disk[sector * 512 + byte] = UInt8(sector) } }
    rig.device.processOnNotify = false
    try rig.driver.initialize()
    return rig
}

/// What the client asked for, as its SSR records it.
func clientRead(sector: UInt64, count: Int) -> StorageRequest {
    StorageRequest(kind: .read, sector: sector, count: count, priority: 3)
}

@Suite struct DeviceRequestReadBack {
    @Test func aCompletionSaysWhatTheDeviceWasAsked() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 1024)
        try rig.driver.submit(tag: 2, kind: .write, sector: 7, dataPhysical: rig.buffers[1].physical, byteCount: 512)
        try rig.driver.submit(tag: 3, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        rig.device.process()
        let completions = try rig.collectWithRequests()
        #expect(completions.map(\.tag) == [1, 2, 3] && completions.allSatisfy { $0.status == .ok })
        #expect(completions[0].asked == DeviceRequest(asking: clientRead(sector: 5, count: 2),
                                                      dataPhysical: rig.buffers[0].physical))
        #expect(completions[1].asked == DeviceRequest(asking: StorageRequest(kind: .write, sector: 7, count: 1, priority: 0),
                                                      dataPhysical: rig.buffers[1].physical))
        #expect(completions[2].asked == DeviceRequest(asking: StorageRequest(kind: .flush, sector: 0, count: 0, priority: 0),
                                                      dataPhysical: 12345))
        #expect(rig.device.violations.isEmpty)
    }

    @Test func aSectorChangedBetweenSubmitAndCompletionIsCaught() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        rig.header(ofSlot: 0).storeBytes(of: UInt64(9), toByteOffset: 8, as: UInt64.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(completion.status == .ok && rig.bytes(of: 0, count: 1) == [9], "the device read sector 9")
        #expect(completion.asked?.sector == 9)
        #expect(completion.asked != DeviceRequest(asking: clientRead(sector: 5, count: 1),
                                                  dataPhysical: rig.buffers[0].physical))
    }

    @Test func aWriteToAnotherSectorIsCaughtToo() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .write, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        rig.header(ofSlot: 0).storeBytes(of: UInt64(6), toByteOffset: 8, as: UInt64.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(completion.asked != DeviceRequest(asking: StorageRequest(kind: .write, sector: 5, count: 1, priority: 0),
                                                  dataPhysical: rig.buffers[0].physical))
    }

    @Test func aDataPageChangedBetweenSubmitAndCompletionIsCaught() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        // The chain is descriptors 0 (header), 1 (data), 2 (status).
        rig.descriptor(1).storeBytes(of: rig.buffers[3].physical, as: UInt64.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(rig.bytes(of: 3, count: 1) == [5] && rig.bytes(of: 0, count: 1) == [0xA5],
                "the device filled another page; the client's stayed as it was")
        #expect(completion.asked?.dataPhysical == rig.buffers[3].physical)
        #expect(completion.asked != DeviceRequest(asking: clientRead(sector: 5, count: 1),
                                                  dataPhysical: rig.buffers[0].physical))
    }

    @Test func aDataLengthChangedIsCaught() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 1024)
        rig.descriptor(1).storeBytes(of: UInt32(512), toByteOffset: 8, as: UInt32.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(completion.asked?.byteCount == 512)
        #expect(completion.asked != DeviceRequest(asking: clientRead(sector: 5, count: 2),
                                                  dataPhysical: rig.buffers[0].physical))
    }

    /// The header descriptor pointed at another page holding another header: what the
    /// device was asked is not this slot's request at all.
    @Test func aHeaderDescriptorPointedElsewhereLeavesTheRequestUnknown() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        let forged = rig.buffers[2].base
        forged.storeBytes(of: UInt32(0), as: UInt32.self)
        forged.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        forged.storeBytes(of: UInt64(5), toByteOffset: 8, as: UInt64.self)
        rig.descriptor(0).storeBytes(of: rig.buffers[2].physical, as: UInt64.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(completion.asked == nil)
    }

    @Test func aStatusDescriptorPointedElsewhereLeavesTheRequestUnknown() throws {
        let rig = try patternedRig()
        try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        rig.descriptor(2).storeBytes(of: rig.buffers[2].physical, as: UInt64.self)
        rig.device.process()
        let completion = try #require(try rig.collectWithRequests().first)
        #expect(completion.status == .deviceError, "the slot's status byte was never written")
        #expect(completion.asked == nil)
    }
}

@Suite struct DMAPermission {
    /// Addresses a damaged pointer could hold: memory that is not the driver's (another
    /// driver's page), nothing at all, a page next to one of its own, ranges that run
    /// out of one of its pages, and its own ring page (data there would overwrite the
    /// queue).
    @Test(arguments: ["another region", "unmapped", "next page", "straddling", "zero", "past the end", "the ring"])
    func anAddressOutsideTheDriversPagesNeverReachesTheDevice(_ kind: String) throws {
        let rig = try patternedRig()
        let foreign = rig.memory.allocate(4096)
        let (address, byteCount): (UInt64, Int) = switch kind {
        case "another region": (foreign.physical, 512)
        case "unmapped": (0x1_2345_6000, 512)
        case "next page": (rig.buffers[7].physical + 4096, 512)
        case "straddling": (rig.buffers[0].physical + 3584, 1024)
        case "zero": (0, 512)
        case "the ring": (rig.ring.physical, 512)
        default: (rig.buffers[0].physical + 4096 - 512, 1024)
        }
        #expect(throws: StorageDeviceError.dmaAddressNotPermitted) {
            try rig.driver.submit(tag: 1, kind: .read, sector: 5, dataPhysical: address, byteCount: byteCount)
        }
        #expect(throws: StorageDeviceError.dmaAddressNotPermitted) {
            try rig.driver.submit(tag: 2, kind: .write, sector: 5, dataPhysical: address, byteCount: byteCount)
        }
        rig.device.process()
        #expect(rig.device.completedRequests == 0 && rig.driver.requestsInFlight == 0, "the device saw nothing")
        #expect(foreign.base.load(as: UInt8.self) == 0xA5)
        #expect(rig.device.violations.isEmpty)
        // The driver carries on with what is its own, anywhere inside its pages.
        try rig.driver.submit(tag: 3, kind: .read, sector: 5, dataPhysical: rig.buffers[0].physical + 512,
                              byteCount: 512)
        rig.device.process()
        #expect(try rig.collect() == [Completion(tag: 3, status: .ok)])
    }

    @Test func theListOfPagesNamesOnlyWholePagesAndNoticesDamage() {
        var pages = DMAPages()
        #expect(pages.append(0x8_0000_1000) == 0)
        #expect(pages.append(nil) == 1, "a page whose address is unknown keeps its place")
        #expect(pages.append(0x8_0000_7000) == 2)
        #expect(pages.append(0x8_0000_7800) == 3 && pages.append(0) == 4, "neither is a page: both name nothing")
        #expect(pages.address(ofPage: 0) == 0x8_0000_1000 && pages.address(ofPage: 1) == nil
                && pages.address(ofPage: 3) == nil && pages.address(ofPage: 4) == nil && pages.address(ofPage: 5) == nil)
        #expect(pages.contains(0x8_0000_1000, byteCount: 4096) && pages.contains(0x8_0000_7E00, byteCount: 512))
        #expect(!pages.contains(0x8_0000_1E00, byteCount: 1024) && !pages.contains(0x8_0000_2000, byteCount: 512))
        #expect(!pages.contains(0x8_0000_1000, byteCount: 0) && !pages.contains(DMAPages.absent & ~0xFFF, byteCount: 1))
        pages.physical[2] ^= 1 << 12  // a flip that names the neighbouring page
        #expect(!pages.isIntact)
        #expect(!pages.contains(0x8_0000_8000, byteCount: 512) && !pages.contains(0x8_0000_1000, byteCount: 512),
                "a damaged list permits nothing")
        #expect(pages.address(ofPage: 0) == nil)
    }

    @Test func fillsUpAtItsCapacity() {
        var pages = DMAPages()
        for index in 0..<DMAPages.capacity { #expect(pages.append(UInt64(index + 1) << 12) == index) }
        #expect(pages.append(0x10_0000_0000) == nil)
        #expect(pages.contains(UInt64(DMAPages.capacity) << 12, byteCount: 16))
    }
}

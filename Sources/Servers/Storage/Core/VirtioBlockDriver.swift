// A driver for a modern virtio-mmio block device, small enough to read in one sitting
// and written for a server that can crash and be restarted at any instant.
//
// Restart. A new server instance knows nothing of what the previous one handed the
// device: requests may still be in flight, their rings and buffers in pages the old
// instance owned. So `initialize` always starts with a full device reset (Status = 0,
// then waiting until the device reads back 0), after which the device has forgotten
// every queue and request (§2.1.2, §4.2.3.1). The driver keeps nothing that must
// survive: which client's request is outstanding lives in the client's SSR, and the
// server resubmits requests that were submitted but not completed. Completions are
// never duplicated, because the device answers only requests of the current instance.
//
// One request is three descriptors (two for a flush), in the order the device wants:
//
//   descriptor  buffer                                   device   bytes
//   ----------  ---------------------------------------  -------  -----------------
//   1           header: type u32, reserved u32, sector   reads    16
//   2           the data (read: filled; write: stored)   either   512 * n (absent
//                                                                  for a flush)
//   3           status: 0 OK, 1 IOERR, 2 UNSUPP          writes   1
//
// Header and status live in the driver's DMA region, one of each per request slot
// (at most 8 requests fit a 16-entry queue). The status byte is set to 0xFF before
// submission, so a device that completes a request without writing a status is
// caught instead of read as success. The data buffer is the caller's: physically
// contiguous and at most 4 KiB.
//
// DMA region (given to `init`; 16-byte aligned, at least `requiredDMABytes`):
//
//   offset  bytes    contents
//   ------  -------  ---------------------------------------------
//   0       512      the split virtqueue (see SplitVirtqueue)
//   512     8 * 16   request headers, one per request slot
//   640     8        status bytes, one per request slot
//   648..1023        unused
//
// Every loop is bounded: the reset poll and the configuration read by constants, the
// completion loop by the queue size. Every value the device writes back is checked
// before use (SplitVirtqueue for the used ring, `collect` for the status byte).
//
// The driver's own faults. Every physical address the driver gives the device must lie
// in the pages it was given at `init` (`DMAPages`): the queue's three parts and each
// request's header and status in the DMA region's pages, its data in the data pages
// (never in the rings); anything else is refused before it is written into the ring
// or a register (`dmaAddressNotPermitted`).
// And what the device was asked is not what the driver meant but what the ring says:
// when a request completes, `collect` reads back the chain's descriptors (following
// the links the device followed) and the slot's header, and reports that
// (`VirtioCompletion.asked`) — a sector, page or length a fault changed on the way
// shows up there, for the server to compare with what its client asked.

import Virtio

public enum StorageDeviceError: Error, Equatable, Sendable {
    /// No virtio device in the slot (wrong magic value, or device id 0).
    case notVirtio
    /// A legacy (version 1) virtio-mmio device.
    case legacyDevice
    /// A virtio device, but not a block device.
    case notBlockDevice
    /// A step of setting the device up failed (VirtioDevice's own reasons).
    case setUp(VirtioSetUpError)
    case dmaRegionTooSmall
    case dmaRegionMisaligned
    /// The driver was never initialized, or failed since.
    case notReady
    /// No room for another request until some complete.
    case queueFull
    /// A write to a read-only device.
    case readOnly
    /// A flush to a device without a write cache (nothing to flush: the caller may
    /// answer success at once).
    case flushUnsupported
    /// A byte count that is not a whole number of sectors in 1...4 KiB (0 for flush).
    case badRequest
    /// The device moved the used index past the requests in flight.
    case badUsedIndex
    /// The device returned a chain id that is not a chain in flight.
    case badUsedID
    /// A physical address outside the DMA pages the driver was given: it never
    /// reaches the device.
    case dmaAddressNotPermitted
}

extension StorageDeviceError {
    init(_ error: VirtioSetUpError) { self = .setUp(error) }

    /// The queue's own refusal, in the block driver's terms.
    init(_ error: VirtqueueError) {
        switch error {
        case .regionTooSmall: self = .dmaRegionTooSmall
        case .regionMisaligned: self = .dmaRegionMisaligned
        case .badSize: self = .setUp(.queueUnavailable)
        case .full: self = .queueFull
        case .badUsedIndex: self = .badUsedIndex
        case .badUsedID: self = .badUsedID
        }
    }
}

extension VirtioMMIO {
    /// virtio-blk configuration: capacity in 512-byte sectors, a le64 at Config + 0.
    public static let blockCapacityLow = config
    public static let blockCapacityHigh = config + 4
}

extension VirtioFeature {
    /// The device is read-only (§5.2.3).
    public static let blockReadOnly: UInt64 = 1 << 5
    /// The device has a write cache and understands VIRTIO_BLK_T_FLUSH.
    public static let blockFlush: UInt64 = 1 << 9
}

/// How the device finished a request.
public enum VirtioBlockStatus: Equatable, Sendable {
    case ok
    /// The device reported an I/O error (also what it reports for sectors past the end).
    case ioError
    /// The device did not understand the request.
    case unsupported
    /// The device broke the protocol for this request: a status byte outside the
    /// specification (or none written), or a length larger than the request offered.
    case deviceError

    public var replyCode: StorageReplyCode {
        switch self {
        case .ok: .ok
        case .ioError, .unsupported, .deviceError: .ioError
        }
    }
}

/// What the device was asked to do for one request, as the header and the descriptors
/// in DMA memory say after it completed (not as the driver meant to ask).
public struct DeviceRequest: Equatable, Sendable {
    public var kind: StorageRequestKind
    public var sector: UInt64
    /// The data buffer (0 for a flush).
    public var dataPhysical: UInt64
    public var byteCount: Int

    public init(kind: StorageRequestKind, sector: UInt64, dataPhysical: UInt64, byteCount: Int) {
        self.kind = kind
        self.sector = sector
        self.dataPhysical = dataPhysical
        self.byteCount = byteCount
    }

    /// What the device must have been asked to carry out `request` with its data in
    /// the page at `dataPhysical`.
    public init(asking request: StorageRequest, dataPhysical: UInt64) {
        self.init(kind: request.kind, sector: request.sector, dataPhysical: request.kind == .flush ? 0 : dataPhysical,
                  byteCount: request.byteCount)
    }
}

/// One request the device completed.
public struct VirtioCompletion: Equatable, Sendable {
    /// The caller's tag, given to `submit`.
    public var tag: UInt16
    public var status: VirtioBlockStatus
    /// What the device was asked, read back from the ring and the header; nil if the
    /// chain no longer has the shape of this request slot's (its header or status
    /// descriptor points elsewhere), so the device was asked something unknown.
    public var asked: DeviceRequest?

    public init(tag: UInt16, status: VirtioBlockStatus, asked: DeviceRequest?) {
        self.tag = tag
        self.status = status
        self.asked = asked
    }
}

public enum VirtioBlockDriverState: Equatable, Sendable {
    /// The device is reset (or never touched): no request can be submitted.
    case reset
    case ready
    /// The device broke the protocol; reset and initialize again.
    case failed
}

public struct VirtioBlockDriver<Registers: VirtioRegisters, Barrier: VirtioBarrier> {
    public static var requiredDMABytes: Int { 1024 }
    public static var requestSlots: Int { 8 }

    static var headerOffset: Int { SplitVirtqueue<Barrier>.requiredBytes }
    static var headerBytes: Int { 16 }
    static var statusOffset: Int { headerOffset + requestSlots * headerBytes }
    static var statusNotWritten: UInt8 { 0xFF }

    /// virtio-blk request types (§5.2.6).
    static var typeIn: UInt32 { 0 }
    static var typeOut: UInt32 { 1 }
    static var typeFlush: UInt32 { 4 }

    public let registers: Registers
    var device: VirtioDevice<Registers> { VirtioDevice(registers: registers) }
    let barrier: Barrier
    let dma: DMARegion
    /// The pages a request's data may be in.
    let dataPages: DMAPages
    /// The pages of `dma`, as given at `init` (a checked copy of its address): where
    /// the rings, headers and status bytes may be.
    let ringPages: DMAPages
    var queue: SplitVirtqueue<Barrier>
    /// Request slots in use (bit i = slot i).
    var busySlots: UInt32
    /// The caller's tag of each slot in use.
    var tags: InlineArray<8, UInt16>
    public private(set) var state: VirtioBlockDriverState
    /// The features both sides agreed on (valid once ready).
    public private(set) var features: UInt64
    /// The device's size in 512-byte sectors (valid once ready).
    public private(set) var capacity: UInt64

    /// Takes the device's registers, the DMA region for the rings, headers and status
    /// bytes, and the data pages requests may use; touches neither the device nor
    /// anything but the region until `initialize`. No address outside `dma` and
    /// `dataPages` ever reaches the device.
    public init(registers: Registers, dma: DMARegion, dataPages: DMAPages, barrier: Barrier)
        throws(StorageDeviceError) {
        guard dma.byteCount >= Self.requiredDMABytes else { throw .dmaRegionTooSmall }
        var ringPages = DMAPages()
        let pageBytes = UInt64(DMAPages.pageBytes)
        var page = dma.physical & ~(pageBytes - 1)
        while page < dma.physical + UInt64(dma.byteCount) {
            guard ringPages.append(page) != nil else { throw .dmaRegionTooSmall }
            page += pageBytes
        }
        self.dataPages = dataPages
        self.ringPages = ringPages
        self.registers = registers
        self.barrier = barrier
        self.dma = dma
        do throws(VirtqueueError) {
            queue = try SplitVirtqueue(memory: dma.slice(from: 0, byteCount: SplitVirtqueue<Barrier>.requiredBytes),
                                       barrier: barrier)
        } catch {
            throw StorageDeviceError(error)
        }
        busySlots = 0
        tags = InlineArray(repeating: 0)
        state = .reset
        features = 0
        capacity = 0
    }

    /// Whether the register window holds a modern virtio block device (a slot scan
    /// calls this on each of the eight virtio-mmio slots).
    public static func probe(_ registers: Registers) -> Bool {
        identify(registers) == nil
    }

    static func identify(_ registers: Registers) -> StorageDeviceError? {
        guard registers.read32(VirtioMMIO.magicValue) == VirtioMMIO.expectedMagic else { return .notVirtio }
        guard registers.read32(VirtioMMIO.version) == VirtioMMIO.modernVersion else { return .legacyDevice }
        let id = registers.read32(VirtioMMIO.deviceID)
        guard id != 0 else { return .notVirtio }
        guard id == VirtioMMIO.blockDeviceID else { return .notBlockDevice }
        return nil
    }

    public var isReadOnly: Bool { features & VirtioFeature.blockReadOnly != 0 }
    public var hasWriteCache: Bool { features & VirtioFeature.blockFlush != 0 }
    public var queueSize: Int { queue.size }
    public var requestsInFlight: Int { busySlots.nonzeroBitCount }
    /// Whether a read or write could be submitted now.
    public var canSubmit: Bool {
        state == .ready && busySlots != (1 << UInt32(Self.requestSlots)) - 1 && queue.freeDescriptorCount >= 3
    }
    public var info: StorageDeviceInfo {
        StorageDeviceInfo(capacity: capacity, readOnly: isReadOnly, hasWriteCache: hasWriteCache)
    }
    /// The device asks to be reset (it hit an internal error).
    public var deviceNeedsReset: Bool {
        registers.read32(VirtioMMIO.status) & VirtioStatus.deviceNeedsReset != 0
    }

    /// Resets the device and forgets every request in flight: afterwards the device
    /// neither reads nor writes any of our memory, and no old request completes.
    public mutating func reset() throws(StorageDeviceError) {
        state = .failed
        do throws(VirtioSetUpError) { try device.reset() } catch { throw StorageDeviceError(error) }
        do throws(VirtqueueError) { try queue.reset(size: 0) } catch { throw StorageDeviceError(error) }
        busySlots = 0
        state = .reset
    }

    /// Brings the device from any state to ready (§3.1.1, VirtioDevice.swift): reset,
    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK, the capacity, queue 0, DRIVER_OK. On
    /// failure the device is left with FAILED set and the driver in `.failed`.
    public mutating func initialize() throws(StorageDeviceError) {
        state = .failed
        if let wrong = Self.identify(registers) { throw wrong }
        try reset()
        let device = device
        var status = device.begin()
        do throws(VirtioSetUpError) {
            // Everything else (indirect descriptors, event index, packed rings...) stays
            // off: the driver is simpler without them and a block device must work without.
            let offered = device.offeredFeatures()
            let accepted = offered & VirtioFeature.version1
                | offered & (VirtioFeature.blockFlush | VirtioFeature.blockReadOnly)
            try device.accept(accepted, status: &status)
            features = accepted
            // The capacity, a le64 read as two halves of one configuration generation.
            let (low, high) = try device.readConfiguration(VirtioMMIO.blockCapacityLow, VirtioMMIO.blockCapacityHigh)
            capacity = UInt64(high) << 32 | UInt64(low)
            _ = try device.setUpQueue(0, &queue, ringPages: ringPages)
        } catch {
            device.fail(status)
            state = .failed
            throw StorageDeviceError(error)
        }
        device.finish(&status)
        state = .ready
    }

    /// Hands a request to the device. `tag` comes back to `collect`'s handler when it
    /// completes; `dataPhysical`/`byteCount` is the data buffer (byteCount 0 for a
    /// flush), which must lie in one of the data pages (`dmaAddressNotPermitted`).
    /// The sector is not checked against the capacity: the server does that when it
    /// decodes the request, and the device answers an I/O error anyway.
    public mutating func submit(tag: UInt16, kind: StorageRequestKind, sector: UInt64, dataPhysical: UInt64,
                                byteCount: Int) throws(StorageDeviceError) {
        guard state == .ready else { throw .notReady }
        let type: UInt32
        switch kind {
        case .read, .write:
            guard byteCount > 0, byteCount <= StorageLimits.maximumBytesPerRequest,
                  byteCount % StorageLimits.sectorSize == 0 else { throw .badRequest }
            if kind == .write { guard !isReadOnly else { throw .readOnly } }
            type = kind == .read ? Self.typeIn : Self.typeOut
        case .flush:
            guard byteCount == 0 else { throw .badRequest }
            guard hasWriteCache else { throw .flushUnsupported }
            type = Self.typeFlush
        }
        let free = ~busySlots & ((1 << UInt32(Self.requestSlots)) - 1)
        guard free != 0 else { throw .queueFull }
        let slot = free.trailingZeroBitCount

        let headerBuffer = headerBuffer(slot)
        let statusBuffer = statusBuffer(slot)
        let data = VirtqueueBuffer(physical: dataPhysical, byteCount: UInt32(byteCount), deviceWritable: kind == .read)
        guard ringPages.contains(headerBuffer.physical, byteCount: Self.headerBytes),
              ringPages.contains(statusBuffer.physical, byteCount: 1),
              kind == .flush || dataPages.contains(dataPhysical, byteCount: byteCount) else {
            throw .dmaAddressNotPermitted
        }
        let header = Self.headerOffset + slot * Self.headerBytes
        dma.base.storeBytes(of: type.littleEndian, toByteOffset: header, as: UInt32.self)
        dma.base.storeBytes(of: UInt32(0), toByteOffset: header + 4, as: UInt32.self)
        dma.base.storeBytes(of: sector.littleEndian, toByteOffset: header + 8, as: UInt64.self)
        dma.base.storeBytes(of: Self.statusNotWritten, toByteOffset: Self.statusOffset + slot, as: UInt8.self)

        do throws(VirtqueueError) {
            if kind == .flush {
                _ = try queue.add(headerBuffer, statusBuffer, token: UInt16(slot))
            } else {
                _ = try queue.add(headerBuffer, data, statusBuffer, token: UInt16(slot))
            }
        } catch {
            throw StorageDeviceError(error)
        }
        busySlots |= 1 << UInt32(slot)
        tags[slot] = tag
        barrier.fence() // F2: the new available index before the notification.
        registers.write32(VirtioMMIO.queueNotify, 0)
    }

    /// Slot `slot`'s header, as the device is to read it.
    func headerBuffer(_ slot: Int) -> VirtqueueBuffer {
        VirtqueueBuffer(physical: dma.physical + UInt64(Self.headerOffset + slot * Self.headerBytes),
                        byteCount: UInt32(Self.headerBytes), deviceWritable: false)
    }

    /// Slot `slot`'s status byte, as the device is to write it.
    func statusBuffer(_ slot: Int) -> VirtqueueBuffer {
        VirtqueueBuffer(physical: dma.physical + UInt64(Self.statusOffset + slot), byteCount: 1, deviceWritable: true)
    }

    /// What the completed chain `used` of slot `slot` asked of the device, read from
    /// the descriptor table (following the links the device followed, within the
    /// chain's own descriptors) and the slot's header. Nil unless the chain is shaped
    /// like a request of this slot: the slot's header, the data for a read or write
    /// (device-writable for a read only), the slot's status byte, and nothing else.
    func askedOfDevice(_ used: UsedChain, slot: Int) -> DeviceRequest? {
        var buffers = InlineArray<3, VirtqueueBuffer>(repeating: VirtqueueBuffer(physical: 0, byteCount: 0,
                                                                                 deviceWritable: false))
        var length = 0
        var visited: UInt32 = 0
        var next: UInt16? = used.head
        while let index = next {
            let bit: UInt32 = index < 32 ? 1 << UInt32(index) : 0
            guard length < 3, used.descriptors & bit != 0, visited & bit == 0,
                  let descriptor = queue.descriptor(Int(index)) else { return nil }
            visited |= bit
            buffers[length] = descriptor.buffer
            length += 1
            next = descriptor.next
        }
        guard visited == used.descriptors, length >= 2, buffers[0] == headerBuffer(slot),
              buffers[length - 1] == statusBuffer(slot) else { return nil }
        let header = Self.headerOffset + slot * Self.headerBytes
        let type = UInt32(littleEndian: dma.base.load(fromByteOffset: header, as: UInt32.self))
        let reserved = dma.base.load(fromByteOffset: header + 4, as: UInt32.self)
        let sector = UInt64(littleEndian: dma.base.load(fromByteOffset: header + 8, as: UInt64.self))
        guard reserved == 0 else { return nil }
        switch (type, length) {
        case (Self.typeFlush, 2):
            return DeviceRequest(kind: .flush, sector: sector, dataPhysical: 0, byteCount: 0)
        case (Self.typeIn, 3), (Self.typeOut, 3):
            let data = buffers[1]
            guard data.deviceWritable == (type == Self.typeIn) else { return nil }
            return DeviceRequest(kind: type == Self.typeIn ? .read : .write, sector: sector,
                                 dataPhysical: data.physical, byteCount: Int(data.byteCount))
        default:
            return nil
        }
    }

    /// Reports each request the device completed since the last call, in the order it
    /// completed them, with what the device was asked (read back from the ring and the
    /// header: see `VirtioCompletion.asked`), and returns how many. Call it after
    /// `acknowledgeInterrupt` (a completion that lands in between raises the interrupt
    /// again, so none is missed). Throws if the device broke the used-ring protocol;
    /// the requests still in flight are then lost with the device's state: reset,
    /// initialize and resubmit them.
    public mutating func collect(_ handler: (VirtioCompletion) -> Void) throws(StorageDeviceError) -> Int {
        guard state == .ready else { return 0 }
        var completed = 0
        for _ in 0..<queue.size {
            let next: UsedChain?
            do throws(VirtqueueError) {
                next = try queue.popUsed()
            } catch {
                state = .failed
                throw StorageDeviceError(error)
            }
            guard let used = next else { break }
            let slot = Int(used.token)
            // Tokens are ours, but a slot must be busy to be completed exactly once.
            guard slot < Self.requestSlots, busySlots & (1 << UInt32(slot)) != 0 else {
                state = .failed
                throw .badUsedID
            }
            busySlots &= ~(1 << UInt32(slot))
            let status: VirtioBlockStatus
            switch dma.base.load(fromByteOffset: Self.statusOffset + slot, as: UInt8.self) {
            case 0: status = used.lengthIsValid ? .ok : .deviceError
            case 1: status = .ioError
            case 2: status = .unsupported
            default: status = .deviceError
            }
            handler(VirtioCompletion(tag: tags[slot], status: status, asked: askedOfDevice(used, slot: slot)))
            completed += 1
        }
        return completed
    }

    /// Reads and acknowledges the interrupt status; returns the bits that were set
    /// (`VirtioMMIO.usedBufferInterrupt`, `configurationChangeInterrupt`).
    public func acknowledgeInterrupt() -> UInt32 {
        let pending = registers.read32(VirtioMMIO.interruptStatus)
        if pending != 0 { registers.write32(VirtioMMIO.interruptAcknowledge, pending) }
        return pending
    }
}

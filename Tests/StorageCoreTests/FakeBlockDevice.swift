// A software virtio-blk device behind the virtio-mmio register window, for driving the
// real driver on the host. It processes the virtqueue from the driver's own memory,
// as QEMU would: it walks the descriptor chains, moves data between the buffers and a
// backing byte array, writes the status byte and the used ring, and raises the
// interrupt status.
//
// Physical addresses are made up (`TestMemory` hands out memory at physical addresses
// unrelated to its virtual ones), so a driver that put a virtual address into a
// descriptor or a queue register would be caught: the device cannot translate it.
//
// Memory ordering is modelled crudely: the device sees the available index only as
// it was at the driver's last fence, so a driver that notified without a fence after
// publishing a request leaves it unseen. Everything the device finds wrong with the
// driver's behaviour is recorded in `violations`, which the tests expect empty.
//
// Sabotage makes the device misbehave on its next completion, to test the driver's
// checks of what the device writes.

import StorageCore
import Virtio

/// Memory with invented physical addresses, shared by a test's driver and device.
final class TestMemory {
    struct Region {
        var physical: UInt64
        var pointer: UnsafeMutableRawPointer
        var byteCount: Int
    }

    private(set) var regions: [Region] = []
    private var nextPhysical: UInt64 = 0x8_4000_0000

    func allocate(_ byteCount: Int) -> DMARegion {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 4096)
        pointer.initializeMemory(as: UInt8.self, repeating: 0xA5, count: byteCount)
        let region = Region(physical: nextPhysical, pointer: pointer, byteCount: byteCount)
        regions.append(region)
        nextPhysical += UInt64((byteCount + 0xFFFF) & ~0xFFFF) + 0x10000
        return DMARegion(base: pointer, physical: region.physical, byteCount: byteCount)
    }

    /// The host pointer to `byteCount` bytes at `physical`, or nil if they are not all
    /// inside one region.
    func translate(_ physical: UInt64, _ byteCount: Int) -> UnsafeMutableRawPointer? {
        for region in regions where physical >= region.physical
            && physical - region.physical + UInt64(byteCount) <= UInt64(region.byteCount) {
            return region.pointer + Int(physical - region.physical)
        }
        return nil
    }

    deinit { for region in regions { region.pointer.deallocate() } }
}

final class FakeBlockDevice: VirtioRegisters {
    enum Sabotage {
        case none
        /// Report this id in the used entry instead of the chain's head.
        case usedID(UInt32)
        /// Advance the used index by this much more than one.
        case usedIndexJump(UInt16)
        /// Report this many bytes written.
        case usedLength(UInt32)
        /// Write this status byte.
        case statusByte(UInt8)
        /// Leave the status byte alone.
        case noStatus
    }

    let memory: TestMemory
    var disk: [UInt8]

    // Identity and capabilities (tests change these to model other devices).
    var magic = VirtioMMIO.expectedMagic
    var version = VirtioMMIO.modernVersion
    var deviceID = VirtioMMIO.blockDeviceID
    var offeredFeatures = VirtioFeature.version1 | VirtioFeature.blockFlush
    var queueNumMax: UInt32 = 1024
    var refusesFeatures = false
    /// Reads of the capacity that see the configuration change under them.
    var generationFlaps = 0
    /// Process requests when notified; otherwise only in `process()`.
    var processOnNotify = true
    var sabotage = Sabotage.none

    // Register state.
    private(set) var status: UInt32 = 0
    private(set) var statusLog: [UInt32] = []
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    private(set) var acceptedFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    private(set) var queueNum: UInt32 = 0
    private(set) var queueReady: UInt32 = 0
    private var descriptorTable: UInt64 = 0
    private var availableRing: UInt64 = 0
    private var usedRing: UInt64 = 0
    private(set) var interruptStatus: UInt32 = 0
    private var configGeneration: UInt32 = 0

    // Queue processing state.
    private var nextAvailable: UInt16 = 0
    private var usedIndex: UInt16 = 0
    private var visibleAvailableIndex: UInt16 = 0
    private(set) var flushes = 0
    private(set) var completedRequests = 0
    private(set) var violations: [String] = []

    init(memory: TestMemory, sectors: Int) {
        self.memory = memory
        disk = [UInt8](repeating: 0, count: sectors * 512)
    }

    var isLive: Bool { status & VirtioStatus.driverOK != 0 && queueReady == 1 }

    func read32(_ offset: Int) -> UInt32 {
        switch offset {
        case VirtioMMIO.magicValue: return magic
        case VirtioMMIO.version: return version
        case VirtioMMIO.deviceID: return deviceID
        case VirtioMMIO.vendorID: return 0x554D_4551
        case VirtioMMIO.deviceFeatures:
            return UInt32(truncatingIfNeeded: deviceFeaturesSelect == 0 ? offeredFeatures : offeredFeatures >> 32)
        case VirtioMMIO.queueNumMax: return queueSelect == 0 ? queueNumMax : 0
        case VirtioMMIO.queueReady: return queueSelect == 0 ? queueReady : 0
        case VirtioMMIO.interruptStatus: return interruptStatus
        case VirtioMMIO.status: return status
        case VirtioMMIO.configGeneration: return configGeneration
        case VirtioMMIO.blockCapacityLow: return UInt32(truncatingIfNeeded: disk.count / 512)
        case VirtioMMIO.blockCapacityHigh:
            if generationFlaps > 0 {
                generationFlaps -= 1
                configGeneration &+= 1
            }
            return UInt32(truncatingIfNeeded: UInt64(disk.count / 512) >> 32)
        default:
            violations.append("read of register \(offset)")
            return 0
        }
    }

    func write32(_ offset: Int, _ value: UInt32) {
        switch offset {
        case VirtioMMIO.status: writeStatus(value)
        case VirtioMMIO.deviceFeaturesSelect: deviceFeaturesSelect = value
        case VirtioMMIO.driverFeaturesSelect: driverFeaturesSelect = value
        case VirtioMMIO.driverFeatures:
            if status & VirtioStatus.driver == 0 { violations.append("features before DRIVER") }
            let shift: UInt64 = driverFeaturesSelect == 0 ? 0 : 32
            acceptedFeatures = acceptedFeatures & ~(0xFFFF_FFFF << shift) | UInt64(value) << shift
        case VirtioMMIO.queueSelect: queueSelect = value
        case VirtioMMIO.queueNum:
            if value == 0 || value > queueNumMax || value & (value - 1) != 0 { violations.append("queue size \(value)") }
            queueNum = value
        case VirtioMMIO.queueReady:
            if status & VirtioStatus.featuresOK == 0 { violations.append("queue ready before FEATURES_OK") }
            for address in [descriptorTable, availableRing, usedRing] where memory.translate(address, 16) == nil {
                violations.append("queue address \(address) is not memory")
            }
            queueReady = value
        case VirtioMMIO.queueDescriptorLow: descriptorTable = descriptorTable & ~0xFFFF_FFFF | UInt64(value)
        case VirtioMMIO.queueDescriptorHigh: descriptorTable = descriptorTable & 0xFFFF_FFFF | UInt64(value) << 32
        case VirtioMMIO.queueDriverLow: availableRing = availableRing & ~0xFFFF_FFFF | UInt64(value)
        case VirtioMMIO.queueDriverHigh: availableRing = availableRing & 0xFFFF_FFFF | UInt64(value) << 32
        case VirtioMMIO.queueDeviceLow: usedRing = usedRing & ~0xFFFF_FFFF | UInt64(value)
        case VirtioMMIO.queueDeviceHigh: usedRing = usedRing & 0xFFFF_FFFF | UInt64(value) << 32
        case VirtioMMIO.queueNotify:
            if !isLive { violations.append("notify before DRIVER_OK") }
            if processOnNotify { process() }
        case VirtioMMIO.interruptAcknowledge: interruptStatus &= ~value
        default: violations.append("write of register \(offset)")
        }
    }

    private func writeStatus(_ value: UInt32) {
        statusLog.append(value)
        if value == 0 {
            status = 0
            acceptedFeatures = 0
            queueNum = 0
            queueReady = 0
            descriptorTable = 0
            availableRing = 0
            usedRing = 0
            interruptStatus = 0
            nextAvailable = 0
            usedIndex = 0
            visibleAvailableIndex = 0
            return
        }
        var accepted = value
        if value & VirtioStatus.featuresOK != 0 && status & VirtioStatus.featuresOK == 0 {
            let valid = acceptedFeatures & ~offeredFeatures == 0 && acceptedFeatures & VirtioFeature.version1 != 0
            if refusesFeatures || !valid { accepted &= ~VirtioStatus.featuresOK }
        }
        if value & VirtioStatus.driverOK != 0 && queueReady != 1 { violations.append("DRIVER_OK without a queue") }
        status = accepted
    }

    /// The driver's fence: from now on the device sees the available index as it is.
    func fence() {
        guard queueReady == 1, let ring = memory.translate(availableRing, 4) else { return }
        visibleAvailableIndex = ring.load(fromByteOffset: 2, as: UInt16.self)
    }

    /// Completes every request the device has seen.
    func process() {
        guard isLive, let available = memory.translate(availableRing, 4 + 2 * Int(queueNum)),
              let used = memory.translate(usedRing, 4 + 8 * Int(queueNum)) else { return }
        while nextAvailable != visibleAvailableIndex {
            let head = available.load(fromByteOffset: 4 + 2 * (Int(nextAvailable) % Int(queueNum)), as: UInt16.self)
            nextAvailable &+= 1
            var (id, written) = serve(head: head)
            var advance: UInt16 = 1
            switch sabotage {
            case .usedID(let bad): id = bad
            case .usedIndexJump(let extra): advance &+= extra
            case .usedLength(let bad): written = bad
            default: break
            }
            sabotage = .none
            let slot = Int(usedIndex) % Int(queueNum)
            used.storeBytes(of: id, toByteOffset: 4 + 8 * slot, as: UInt32.self)
            used.storeBytes(of: written, toByteOffset: 8 + 8 * slot, as: UInt32.self)
            usedIndex &+= advance
            used.storeBytes(of: usedIndex, toByteOffset: 2, as: UInt16.self)
            interruptStatus |= VirtioMMIO.usedBufferInterrupt
            completedRequests += 1
        }
    }

    private struct Descriptor {
        var address: UInt64
        var length: UInt32
        var writable: Bool
    }

    /// Carries out one chain; returns the used entry (head, bytes written).
    private func serve(head: UInt16) -> (UInt32, UInt32) {
        var chain: [Descriptor] = []
        var index = head
        while chain.count <= Int(queueNum) {
            guard Int(index) < Int(queueNum), let table = memory.translate(descriptorTable + 16 * UInt64(index), 16)
            else {
                violations.append("descriptor \(index) out of range")
                return (UInt32(head), 0)
            }
            let flags = table.load(fromByteOffset: 12, as: UInt16.self)
            chain.append(Descriptor(address: table.load(fromByteOffset: 0, as: UInt64.self),
                                    length: table.load(fromByteOffset: 8, as: UInt32.self), writable: flags & 2 != 0))
            if flags & 1 == 0 { break }
            index = table.load(fromByteOffset: 14, as: UInt16.self)
        }
        guard chain.count == 2 || chain.count == 3, !chain[0].writable, chain[0].length == 16,
              let statusDescriptor = chain.last, statusDescriptor.writable, statusDescriptor.length == 1,
              let header = memory.translate(chain[0].address, 16),
              let statusByte = memory.translate(statusDescriptor.address, 1) else {
            violations.append("malformed chain at head \(head)")
            return (UInt32(head), 0)
        }
        let type = header.load(fromByteOffset: 0, as: UInt32.self)
        let sector = header.load(fromByteOffset: 8, as: UInt64.self)
        var status: UInt8 = 0
        var written: UInt32 = 1
        switch (type, chain.count) {
        case (0, 3), (1, 3):
            let data = chain[1]
            let isRead = type == 0
            guard data.writable == isRead, let buffer = memory.translate(data.address, Int(data.length)) else {
                violations.append("bad data descriptor at head \(head)")
                return (UInt32(head), 0)
            }
            let start = sector.multipliedReportingOverflow(by: 512)
            if start.overflow || start.partialValue + UInt64(data.length) > UInt64(disk.count) {
                status = 1
            } else if isRead {
                disk.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + Int(start.partialValue),
                                                         byteCount: Int(data.length)) }
                written += data.length
            } else {
                disk.withUnsafeMutableBytes { ($0.baseAddress! + Int(start.partialValue))
                    .copyMemory(from: buffer, byteCount: Int(data.length)) }
            }
        case (4, 2):
            flushes += 1
        default:
            status = 2
        }
        switch sabotage {
        case .statusByte(let bad): statusByte.storeBytes(of: bad, as: UInt8.self)
        case .noStatus: break
        default: statusByte.storeBytes(of: status, as: UInt8.self)
        }
        return (UInt32(head), written)
    }
}

struct FakeBarrier: VirtioBarrier {
    let device: FakeBlockDevice
    func fence() { device.fence() }
}

typealias FakeDriver = VirtioBlockDriver<FakeBlockDevice, FakeBarrier>

/// A device, a driver for it, and data buffers (the driver's data pages).
final class Rig {
    let memory = TestMemory()
    let device: FakeBlockDevice
    var driver: FakeDriver
    let ring: DMARegion
    let buffers: [DMARegion]

    init(sectors: Int = 256, configure: (FakeBlockDevice) -> Void = { _ in }) throws {
        device = FakeBlockDevice(memory: memory, sectors: sectors)
        configure(device)
        let memory = memory
        ring = memory.allocate(4096)
        buffers = (0..<8).map { _ in memory.allocate(4096) }
        driver = try FakeDriver(registers: device, dma: ring, dataPages: Rig.pages(of: buffers),
                                barrier: FakeBarrier(device: device))
    }

    /// The pages of `regions`, as a server lists the DMA pages it obtained.
    static func pages(of regions: [DMARegion]) -> DMAPages {
        var pages = DMAPages()
        for region in regions { pages.append(region.physical) }
        return pages
    }

    /// Everything completed so far, as (tag, status).
    func collect() throws(StorageDeviceError) -> [Completion] {
        try collectWithRequests().map { Completion(tag: $0.tag, status: $0.status) }
    }

    /// Everything completed so far, with what the device was asked.
    func collectWithRequests() throws(StorageDeviceError) -> [VirtioCompletion] {
        var completions: [VirtioCompletion] = []
        _ = try driver.collect { completions.append($0) }
        return completions
    }

    /// Slot `slot`'s request header in the driver's DMA region (16 bytes: type,
    /// reserved, sector), where a fault in the driver could change it.
    func header(ofSlot slot: Int) -> UnsafeMutableRawPointer { ring.base + 512 + 16 * slot }

    /// Descriptor `index` of the virtqueue (address at +0, length at +8).
    func descriptor(_ index: Int) -> UnsafeMutableRawPointer { ring.base + 16 * index }

    func fill(_ buffer: Int, with byte: (Int) -> UInt8, count: Int) {
        for index in 0..<count { buffers[buffer].base.storeBytes(of: byte(index), toByteOffset: index, as: UInt8.self) }
    }

    func bytes(of buffer: Int, count: Int) -> [UInt8] {
        (0..<count).map { buffers[buffer].base.load(fromByteOffset: $0, as: UInt8.self) }
    }
}

struct Completion: Equatable, CustomStringConvertible {
    var tag: UInt16
    var status: VirtioBlockStatus
    var description: String { "\(tag):\(status)" }
}

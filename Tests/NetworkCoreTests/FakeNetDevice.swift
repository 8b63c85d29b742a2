// A software virtio-net device behind the virtio-mmio register window, for driving the
// real driver on the host. Like QEMU, it works from the driver's own memory: it walks
// the available rings, reads the descriptors, copies frames out of transmit buffers
// and into receive buffers, writes the used rings and raises the interrupt status.
//
// Physical addresses are made up (`TestMemory` hands out memory at physical addresses
// unrelated to its virtual ones, and a rig's buffer pages lie at physical addresses in
// reverse order with gaps between them), so a driver that put a virtual address into a
// descriptor, or computed a buffer's physical address from the wrong page, would be
// caught: the device cannot translate the address, or the bytes land elsewhere.
//
// Memory ordering is modelled as in the block device: the device sees a queue's
// available index only as it was at the driver's last fence, so a buffer published
// without a fence before the notify stays unseen.
//
// Everything the device finds wrong with the driver's behaviour is recorded in
// `violations`, which the tests expect empty. Sabotage makes the device misbehave on
// its next used-ring entry (either queue), to test the driver's checks of what the
// device writes.

import NetworkCore
import Virtio

/// Memory with invented physical addresses, shared by a test's driver and device.
final class TestMemory {
    struct Region {
        var physical: UInt64
        var pointer: UnsafeMutableRawPointer
        var byteCount: Int
    }

    private(set) var regions: [Region] = []
    private var allocations: [UnsafeMutableRawPointer] = []
    private var nextPhysical: UInt64 = 0x8_4000_0000

    func allocate(_ byteCount: Int) -> DMARegion {
        let pointer = fresh(byteCount)
        let region = Region(physical: nextPhysical, pointer: pointer, byteCount: byteCount)
        regions.append(region)
        nextPhysical += UInt64((byteCount + 0xFFFF) & ~0xFFFF) + 0x10000
        return DMARegion(base: pointer, physical: region.physical, byteCount: byteCount)
    }

    /// `count` pages, virtually contiguous at the returned pointer, whose physical
    /// addresses (the returned list, page 0 first) run backwards with a gap between
    /// each: so page i's address is not page 0's plus i pages.
    func allocatePages(_ count: Int) -> (pointer: UnsafeMutableRawPointer, physical: [UInt64]) {
        let pointer = fresh(count * DMAPages.pageBytes)
        var physical = [UInt64](repeating: 0, count: count)
        for page in (0..<count).reversed() {
            physical[page] = nextPhysical
            regions.append(Region(physical: nextPhysical, pointer: pointer + page * DMAPages.pageBytes,
                                  byteCount: DMAPages.pageBytes))
            nextPhysical += 0x3000 + UInt64(DMAPages.pageBytes)
        }
        return (pointer, physical)
    }

    private func fresh(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 4096)
        pointer.initializeMemory(as: UInt8.self, repeating: 0xA5, count: byteCount)
        allocations.append(pointer)
        return pointer
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

    deinit { for pointer in allocations { pointer.deallocate() } }
}

final class FakeNetDevice: VirtioRegisters {
    enum Sabotage: Sendable {
        case none
        /// Report this id in the used entry instead of the chain's head.
        case usedID(UInt32)
        /// Advance the used index by this much more than one.
        case usedIndexJump(UInt16)
        /// Report this many bytes written.
        case usedLength(UInt32)
    }

    struct Queue {
        var numMax: UInt32 = 256
        var num: UInt32 = 0
        var ready: UInt32 = 0
        var descriptorTable: UInt64 = 0
        var availableRing: UInt64 = 0
        var usedRing: UInt64 = 0
        var nextAvailable: UInt16 = 0
        var usedIndex: UInt16 = 0
        var visibleAvailableIndex: UInt16 = 0
    }

    static let receive = 0
    static let transmit = 1
    static let headerBytes = 12
    /// The smallest receive buffer a driver without MRG_RXBUF may offer (§5.1.6.3.1).
    static let minimumReceiveBuffer = 1526
    static let checksumOffload: UInt64 = 1 << 0
    static let mergeableBuffers: UInt64 = 1 << 15
    static let linkStatus: UInt64 = 1 << 16

    let memory: TestMemory

    // Identity and capabilities (tests change these to model other devices).
    var magic = VirtioMMIO.expectedMagic
    var version = VirtioMMIO.modernVersion
    var deviceID = VirtioMMIO.networkDeviceID
    /// VERSION_1 and MAC, and three the driver must leave alone.
    var offeredFeatures = VirtioFeature.version1 | VirtioFeature.networkMAC | checksumOffload | mergeableBuffers
        | linkStatus
    var macAddress: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    /// The config field after the MAC (link status; meaningless without STATUS, which
    /// the driver does not take): it shares the second config word with the MAC.
    var linkStatusField: UInt16 = 0xBEEF
    var refusesFeatures = false
    /// Reads of the MAC's second word that see the configuration change under them.
    var generationFlaps = 0
    /// A queue that stays ready through a reset (a device the driver cannot take over).
    var queueReadySurvivesReset = false
    /// Send transmitted frames when notified; otherwise hold them until `completeTransmits()`.
    var transmitOnNotify = true
    var sabotage = Sabotage.none

    // Register state.
    private(set) var status: UInt32 = 0
    private(set) var statusLog: [UInt32] = []
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    private(set) var acceptedFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    private(set) var queues = [Queue(), Queue()]
    private(set) var interruptStatus: UInt32 = 0
    private var configGeneration: UInt32 = 0

    // What passed through.
    private(set) var transmitted: [[UInt8]] = []
    private(set) var delivered = 0
    /// Frames `deliver` found no receive buffer for.
    private(set) var dropped = 0
    /// Every buffer address the driver offered on each queue.
    private(set) var offeredAddresses: [Set<UInt64>] = [[], []]
    private(set) var violations: [String] = []

    init(memory: TestMemory) { self.memory = memory }

    var isLive: Bool { status & VirtioStatus.driverOK != 0 }

    /// Sets both queues' QueueNumMax.
    var queueNumMax: UInt32 {
        get { queues[0].numMax }
        set { for index in queues.indices { queues[index].numMax = newValue } }
    }

    func setQueueNumMax(_ value: UInt32, queue: Int) { queues[queue].numMax = value }

    /// Receive buffers offered and not yet used (as far as the device has seen).
    var receiveBuffersAvailable: Int { Int(queues[Self.receive].visibleAvailableIndex &- queues[Self.receive].nextAvailable) }

    func read32(_ offset: Int) -> UInt32 {
        let selected = Int(queueSelect) < queues.count ? Int(queueSelect) : nil
        switch offset {
        case VirtioMMIO.magicValue: return magic
        case VirtioMMIO.version: return version
        case VirtioMMIO.deviceID: return deviceID
        case VirtioMMIO.vendorID: return 0x554D_4551
        case VirtioMMIO.deviceFeatures:
            return UInt32(truncatingIfNeeded: deviceFeaturesSelect == 0 ? offeredFeatures : offeredFeatures >> 32)
        case VirtioMMIO.queueNumMax: return selected.map { queues[$0].numMax } ?? 0
        case VirtioMMIO.queueReady: return selected.map { queues[$0].ready } ?? 0
        case VirtioMMIO.interruptStatus: return interruptStatus
        case VirtioMMIO.status: return status
        case VirtioMMIO.configGeneration: return configGeneration
        case VirtioMMIO.config:
            return macAddress[0..<4].enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        case VirtioMMIO.config + 4:
            if generationFlaps > 0 {
                generationFlaps -= 1
                configGeneration &+= 1
            }
            return UInt32(macAddress[4]) | UInt32(macAddress[5]) << 8 | UInt32(linkStatusField) << 16
        default:
            violations.append("read of register \(offset)")
            return 0
        }
    }

    func write32(_ offset: Int, _ value: UInt32) {
        let selected = Int(queueSelect) < queues.count ? Int(queueSelect) : nil
        func setQueue(_ body: (inout Queue) -> Void) {
            guard let index = selected else { return violations.append("queue register of queue \(queueSelect)") }
            if queues[index].ready != 0 { violations.append("queue \(index) changed while ready") }
            body(&queues[index])
        }
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
            setQueue { queue in
                if value == 0 || value > queue.numMax || value & (value - 1) != 0 {
                    violations.append("queue size \(value)")
                }
                queue.num = value
            }
        case VirtioMMIO.queueReady:
            guard let index = selected else { return violations.append("ready of queue \(queueSelect)") }
            if status & VirtioStatus.featuresOK == 0 { violations.append("queue ready before FEATURES_OK") }
            let queue = queues[index]
            let num = Int(queue.num)
            for (address, bytes) in [(queue.descriptorTable, 16 * num), (queue.availableRing, 6 + 2 * num),
                                     (queue.usedRing, 6 + 8 * num)] where memory.translate(address, bytes) == nil {
                violations.append("queue \(index) ring at \(address) is not memory")
            }
            queues[index].ready = value
        case VirtioMMIO.queueDescriptorLow: setQueue { $0.descriptorTable = $0.descriptorTable & ~0xFFFF_FFFF | UInt64(value) }
        case VirtioMMIO.queueDescriptorHigh:
            setQueue { $0.descriptorTable = $0.descriptorTable & 0xFFFF_FFFF | UInt64(value) << 32 }
        case VirtioMMIO.queueDriverLow: setQueue { $0.availableRing = $0.availableRing & ~0xFFFF_FFFF | UInt64(value) }
        case VirtioMMIO.queueDriverHigh: setQueue { $0.availableRing = $0.availableRing & 0xFFFF_FFFF | UInt64(value) << 32 }
        case VirtioMMIO.queueDeviceLow: setQueue { $0.usedRing = $0.usedRing & ~0xFFFF_FFFF | UInt64(value) }
        case VirtioMMIO.queueDeviceHigh: setQueue { $0.usedRing = $0.usedRing & 0xFFFF_FFFF | UInt64(value) << 32 }
        case VirtioMMIO.queueNotify:
            if !isLive { violations.append("notify before DRIVER_OK") }
            if Int(value) >= queues.count || queues[Int(value)].ready != 1 { violations.append("notify of queue \(value)") }
            if value == UInt32(Self.transmit) && transmitOnNotify { completeTransmits() }
        case VirtioMMIO.interruptAcknowledge: interruptStatus &= ~value
        default: violations.append("write of register \(offset)")
        }
    }

    private func writeStatus(_ value: UInt32) {
        statusLog.append(value)
        if value == 0 {
            status = 0
            acceptedFeatures = 0
            for index in queues.indices {
                let ready = queueReadySurvivesReset ? queues[index].ready : 0
                queues[index] = Queue(numMax: queues[index].numMax)
                queues[index].ready = ready
            }
            interruptStatus = 0
            return
        }
        var accepted = value
        if value & VirtioStatus.featuresOK != 0 && status & VirtioStatus.featuresOK == 0 {
            if acceptedFeatures & ~offeredFeatures != 0 {
                violations.append("accepted features \(acceptedFeatures) outside the offer \(offeredFeatures)")
            }
            let valid = acceptedFeatures & ~offeredFeatures == 0 && acceptedFeatures & VirtioFeature.version1 != 0
            if refusesFeatures || !valid { accepted &= ~VirtioStatus.featuresOK }
        }
        if value & VirtioStatus.driverOK != 0 && queues.contains(where: { $0.ready != 1 }) {
            violations.append("DRIVER_OK without both queues")
        }
        status = accepted
    }

    /// The driver's fence: from now on the device sees the available indices as they are.
    func fence() {
        for index in queues.indices {
            guard queues[index].ready == 1, let ring = memory.translate(queues[index].availableRing, 4) else { continue }
            queues[index].visibleAvailableIndex = UInt16(littleEndian: ring.load(fromByteOffset: 2, as: UInt16.self))
        }
    }

    private struct Descriptor {
        var address: UInt64
        var length: UInt32
        var flags: UInt16
        var writable: Bool { flags & 2 != 0 }
    }

    /// The next chain the driver made available on `queue` (as the device sees it): its
    /// head and its single descriptor, or nil if there is none (or it is unreadable,
    /// which is recorded).
    private func takeAvailable(_ index: Int) -> (head: UInt16, descriptor: Descriptor?)? {
        let queue = queues[index]
        let num = Int(queue.num)
        guard isLive, queue.ready == 1, queue.nextAvailable != queue.visibleAvailableIndex,
              let available = memory.translate(queue.availableRing, 4 + 2 * num) else { return nil }
        let head = UInt16(littleEndian: available.load(fromByteOffset: 4 + 2 * (Int(queue.nextAvailable) % num),
                                                       as: UInt16.self))
        queues[index].nextAvailable &+= 1
        guard Int(head) < num, let table = memory.translate(queue.descriptorTable + 16 * UInt64(head), 16) else {
            violations.append("queue \(index): descriptor \(head) out of range")
            return (head, nil)
        }
        let descriptor = Descriptor(address: UInt64(littleEndian: table.load(fromByteOffset: 0, as: UInt64.self)),
                                    length: UInt32(littleEndian: table.load(fromByteOffset: 8, as: UInt32.self)),
                                    flags: UInt16(littleEndian: table.load(fromByteOffset: 12, as: UInt16.self)))
        offeredAddresses[index].insert(descriptor.address)
        if descriptor.flags & (1 | 4) != 0 {
            violations.append("queue \(index): descriptor \(head) has flags \(descriptor.flags) (NEXT or INDIRECT)")
        }
        return (head, descriptor)
    }

    /// Puts `head` on `queue`'s used ring with `written` bytes, as sabotaged.
    private func putUsed(_ index: Int, head: UInt16, written: UInt32) {
        let num = Int(queues[index].num)
        guard let used = memory.translate(queues[index].usedRing, 4 + 8 * num) else { return }
        var id = UInt32(head)
        var written = written
        var advance: UInt16 = 1
        switch sabotage {
        case .usedID(let bad): id = bad
        case .usedIndexJump(let extra): advance &+= extra
        case .usedLength(let bad): written = bad
        case .none: break
        }
        sabotage = .none
        let slot = Int(queues[index].usedIndex) % num
        used.storeBytes(of: id.littleEndian, toByteOffset: 4 + 8 * slot, as: UInt32.self)
        used.storeBytes(of: written.littleEndian, toByteOffset: 8 + 8 * slot, as: UInt32.self)
        queues[index].usedIndex &+= advance
        used.storeBytes(of: queues[index].usedIndex.littleEndian, toByteOffset: 2, as: UInt16.self)
        interruptStatus |= VirtioMMIO.usedBufferInterrupt
    }

    /// Sends every frame the driver made available on the transmit queue.
    func completeTransmits() {
        while let (head, descriptor) = takeAvailable(Self.transmit) {
            defer { putUsed(Self.transmit, head: head, written: 0) }
            guard let descriptor else { continue }
            let length = Int(descriptor.length)
            if descriptor.writable { violations.append("transmit descriptor \(head) is device-writable") }
            guard length >= Self.headerBytes, let bytes = memory.translate(descriptor.address, length) else {
                violations.append("transmit descriptor \(head): \(length) bytes at \(descriptor.address)")
                continue
            }
            let buffer = UnsafeRawBufferPointer(start: bytes, count: length)
            if buffer[..<Self.headerBytes].contains(where: { $0 != 0 }) {
                violations.append("transmit header \(Array(buffer[..<Self.headerBytes])) is not zero")
            }
            transmitted.append(Array(buffer[Self.headerBytes...]))
        }
    }

    /// Transmit chains the driver made available that the device has not sent.
    var transmitsPending: Int {
        Int(queues[Self.transmit].visibleAvailableIndex &- queues[Self.transmit].nextAvailable)
    }

    /// Receives `frame` from the wire into the next receive buffer; false (and counted)
    /// if the driver offered none.
    @discardableResult
    func deliver(frame: [UInt8]) -> Bool {
        guard let (head, descriptor) = takeAvailable(Self.receive) else {
            dropped += 1
            return false
        }
        guard let descriptor else {
            putUsed(Self.receive, head: head, written: 0)
            return false
        }
        let length = Int(descriptor.length)
        if !descriptor.writable { violations.append("receive descriptor \(head) is not device-writable") }
        if length < Self.minimumReceiveBuffer { violations.append("receive descriptor \(head) has \(length) bytes") }
        guard Self.headerBytes + frame.count <= length,
              let bytes = memory.translate(descriptor.address, Self.headerBytes + frame.count) else {
            violations.append("receive descriptor \(head): \(length) bytes at \(descriptor.address)")
            putUsed(Self.receive, head: head, written: 0)
            return false
        }
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: Self.headerBytes)
        bytes.storeBytes(of: UInt16(1).littleEndian, toByteOffset: 10, as: UInt16.self)
        frame.withUnsafeBytes { (bytes + Self.headerBytes).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        delivered += 1
        putUsed(Self.receive, head: head, written: UInt32(Self.headerBytes + frame.count))
        return true
    }
}

struct FakeNetBarrier: VirtioBarrier {
    let device: FakeNetDevice
    func fence() { device.fence() }
}

typealias FakeNetDriver = VirtioNetDriver<FakeNetDevice, FakeNetBarrier>

/// A device, a driver for it, its ring page and its buffer pages.
final class NetRig {
    let memory = TestMemory()
    let device: FakeNetDevice
    var driver: FakeNetDriver
    let ring: DMARegion
    let buffers: UnsafeMutableRawPointer
    let pagePhysical: [UInt64]

    /// `missingPage`: that buffer page's address is left out of the driver's list.
    init(missingPage: Int? = nil, configure: (FakeNetDevice) -> Void = { _ in }) throws {
        device = FakeNetDevice(memory: memory)
        configure(device)
        ring = memory.allocate(4096)
        (buffers, pagePhysical) = memory.allocatePages(FakeNetDriver.bufferPagesNeeded)
        var pages = DMAPages()
        for (index, address) in pagePhysical.enumerated() { pages.append(index == missingPage ? nil : address) }
        driver = try FakeNetDriver(registers: device, ring: ring, buffers: buffers, bufferPages: pages,
                                   barrier: FakeNetBarrier(device: device))
    }

    /// Whether `address` lies in one of the buffer pages the driver was given.
    func isBufferAddress(_ address: UInt64, excludingPage missing: Int? = nil) -> Bool {
        pagePhysical.enumerated().contains { index, page in
            index != missing && address >= page && address < page + UInt64(DMAPages.pageBytes)
        }
    }

    /// Takes the next frame, copies its bytes and releases it.
    func receive() throws(NetworkDeviceError) -> [UInt8]? {
        guard let frame = try driver.nextFrame() else { return nil }
        let bytes = Array(frame.bytes)
        try driver.release(frame)
        return bytes
    }

    /// Sends `frame` through a transmit buffer; false if none was free.
    func send(_ frame: [UInt8]) throws(NetworkDeviceError) -> Bool {
        guard let buffer = try driver.transmitBuffer() else { return false }
        frame.withUnsafeBytes { buffer.frame.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try driver.send(buffer, length: frame.count)
        return true
    }
}

/// A recognisable frame of `length` bytes (`seed` varies it).
func testFrame(length: Int, seed: Int = 0) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ $0 >> 8) }
}

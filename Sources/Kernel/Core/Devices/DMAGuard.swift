// Confining a driver's DMA to its own pages, without an IOMMU.
//
// A virtio device reads and writes whatever physical memory it is given: the three
// ring addresses written to its queue registers, and the buffer address in every
// descriptor it fetches. A driver whose pointers are damaged, or a hostile one, could
// aim it at the kernel's memory or another process's. QEMU's `virt` machine has no
// IOMMU for virtio-mmio, so the kernel stands between the driver and the two things
// that decide where the device goes:
//
//   driver                          kernel (this file)                   device
//   ------                          ------------------                   ------
//   physicalAddress(page) -------> grants that owned page for DMA
//   reads registers (mapped R) ------------------------------------------> registers
//   deviceWrite(offset, value) ---> queue set-up: rings inside grants? ---> registers
//                                   notify: every new descriptor chain
//                                   inside grants? (walks the rings)  ---> QueueNotify
//
// Grants. A driver asks for the physical address of one of its own pages (an owned,
// writable 4 KiB leaf of its space: never a device window or an SSR it has borrowed);
// the answer also grants that frame for DMA by that driver, until the driver ends or
// restarts — and at that point the kernel first resets its devices, then revokes,
// then frees the frames. User memory is never moved or unmapped while a process
// lives, so a granted frame stays the driver's for as long as the grant.
//
// Register writes. The register page of a virtio device is mapped read-only into its
// driver; every write goes through `deviceWrite`, which lets through only the
// registers a modern (virtio 1.x) driver writes, and keeps a shadow of the queue
// set-up. A queue's rings are checked when it is made ready (each ring inside granted
// frames, aligned as the spec demands); after that its size and addresses are frozen
// until the device is reset: QEMU applies a new QueueNum to a live ring at once, and
// keeps using a queue's rings after QueueReady is cleared, so "not ready" would not
// mean "not in use". Feature bits that change how the device finds descriptors
// (indirect descriptors, the packed ring, notification data) are refused, as is the
// legacy queue register (QueuePFN).
//
// Notify. Before the kernel writes QueueNotify it walks the available ring from the
// last index it checked to the index the driver published: every chain (at most the
// queue size long, no indirect descriptors) must name only granted bytes. Only then
// does the notify reach the device, and the checked index advances. A refused notify
// leaves the index where it was, so the bad entries are checked (and refused) again
// at every later notify: the device never sees them.
//
// What this relies on: the device fetches the descriptors of a notified chain during
// the notify itself. QEMU's virtio-mmio under TCG handles QueueNotify synchronously in
// the vCPU's MMIO write (the block device pops every available request before the
// write returns), and a single hart runs the kernel with interrupts off, so the driver
// cannot change a checked descriptor before the device has read it. A device that
// fetched lazily, or a machine with more harts and a multi-threaded driver, would need
// an IOMMU (the RISC-V IOMMU specification), which the kernel would program from the
// same grants.

import CurioABI

/// The registers of a virtio-mmio device (virtio 1.x §4.2.2) the kernel looks at.
enum VirtioRegister {
    static let magic = 0x000
    static let deviceFeaturesSelect = 0x014
    static let driverFeatures = 0x020
    static let driverFeaturesSelect = 0x024
    static let queueSelect = 0x030
    static let queueNum = 0x038
    static let queueReady = 0x044
    static let queueNotify = 0x050
    static let interruptAcknowledge = 0x064
    static let status = 0x070
    static let queueDescriptorLow = 0x080
    static let queueDescriptorHigh = 0x084
    static let queueDriverLow = 0x090
    static let queueDriverHigh = 0x094
    static let queueDeviceLow = 0x0a0
    static let queueDeviceHigh = 0x0a4
    /// Device-specific configuration: from here to the end of the register page.
    static let config = 0x100

    static let magicValue: UInt32 = 0x7472_6976
    /// One device's register page.
    static let pageBytes: UInt64 = 0x1000

    /// Driver feature bits the kernel lets through, per 32-bit half: everything
    /// device-specific and event indices, but not indirect descriptors (bit 28); of
    /// the high half VERSION_1, ACCESS_PLATFORM, IN_ORDER and ORDER_PLATFORM, but not
    /// the packed ring (34), SR-IOV (37), notification data (38, 39) or queue reset (40).
    static let permittedFeatures: (low: UInt32, high: UInt32) = (~(1 << 28), 0b1_1011)
}

/// Why the kernel refused a register write.
enum DeviceWriteRefusal: Error, Equatable {
    /// A ring or a descriptor names memory that is not granted to this driver.
    case outsideGrants
    /// A register a driver has no business writing, a feature bit that would hide
    /// descriptors from the check, or a queue change after the queue went live.
    case notPermitted
    /// A value out of range (queue size, queue index) or a malformed ring.
    case badValue
}

/// A split virtqueue's set-up as the driver wrote it, and how far the kernel has
/// checked its available ring.
struct QueueShadow {
    var descriptorTable: UInt64 = 0
    var availableRing: UInt64 = 0
    var usedRing: UInt64 = 0
    var size: UInt32 = 0
    /// The rings were checked and handed to the device: frozen until a reset.
    var isLive = false
    /// The available-ring index up to which every entry was checked.
    var checkedIndex: UInt16 = 0
}

/// One virtio device's register shadow. Laid out in multiples of 8 bytes (records in
/// InlineArrays are loaded byte by byte otherwise).
struct DeviceShadow {
    static let queueCount = 3

    /// The physical address of its register page; 0 for an unused shadow.
    var base: UInt64 = 0
    var owner: Int = -1
    var queueSelect: UInt32 = 0
    var driverFeaturesSelect: UInt32 = 0
    var queues = InlineArray<3, QueueShadow>(repeating: QueueShadow())

    init() {}

    init(base: UInt64, owner: Int) {
        self.base = base
        self.owner = owner
    }
}

/// One granted frame: its physical address, and the owning slot in the low bits.
struct DMAGrant {
    var entry: UInt64

    init(frame: UInt64, owner: Int) { entry = frame | UInt64(owner) }

    var frame: UInt64 { entry & ~UInt64(pageSize - 1) }
    var owner: Int { Int(entry & UInt64(pageSize - 1)) }
}

/// The kernel's DMA bookkeeping: granted frames (sorted by address) and the register
/// shadows of the devices drivers have written to. It lives in one kernel frame: this
/// record, then the two tables it points to. (Tables, not InlineArrays in the record:
/// in the embedded build a subscript read of an InlineArray held in a struct copied
/// the whole array, 1 KiB per grant looked up, most of the kernel's cost per disk
/// request.)
struct DMAGuard {
    static let grantCapacity = 128
    static let deviceCapacity = 8
    /// The bytes of table storage `init(storage:)` takes.
    static var storageBytes: Int {
        grantCapacity * MemoryLayout<DMAGrant>.stride + deviceCapacity * MemoryLayout<DeviceShadow>.stride
    }

    let grants: UnsafeMutablePointer<DMAGrant>
    var grantCount = 0
    let devices: UnsafeMutablePointer<DeviceShadow>

    /// Lays the tables out in `storage` (`storageBytes`, 8-byte aligned), all empty.
    init(storage: UnsafeMutableRawPointer) {
        grants = storage.bindMemory(to: DMAGrant.self, capacity: Self.grantCapacity)
        grants.initialize(repeating: DMAGrant(frame: 0, owner: 0), count: Self.grantCapacity)
        let deviceStorage = storage + Self.grantCapacity * MemoryLayout<DMAGrant>.stride
        devices = deviceStorage.bindMemory(to: DeviceShadow.self, capacity: Self.deviceCapacity)
        devices.initialize(repeating: DeviceShadow(), count: Self.deviceCapacity)
    }

    // MARK: Grants

    /// Grants `frame` to `owner`; false when the table is full. Granting again is a no-op.
    mutating func grant(_ frame: UInt64, to owner: Int) -> Bool {
        let position = firstPosition(notBelow: frame)
        if position < grantCount && grants[position].frame == frame {
            return grants[position].owner == owner
        }
        guard grantCount < Self.grantCapacity else { return false }
        var index = grantCount
        while index > position {
            grants[index] = grants[index - 1]
            index -= 1
        }
        grants[position] = DMAGrant(frame: frame, owner: owner)
        grantCount += 1
        return true
    }

    /// Forgets everything `owner` was granted and every device shadow it wrote.
    mutating func revoke(_ owner: Int) {
        var kept = 0
        for index in 0..<grantCount where grants[index].owner != owner {
            grants[kept] = grants[index]
            kept += 1
        }
        grantCount = kept
        for index in 0..<Self.deviceCapacity where devices[index].owner == owner {
            devices[index] = DeviceShadow()
        }
    }

    /// How many frames are granted to `owner`.
    func grantCount(of owner: Int) -> Int {
        var count = 0
        for index in 0..<grantCount where grants[index].owner == owner { count += 1 }
        return count
    }

    /// Whether every byte of `[address, address + byteCount)` lies in frames granted to `owner`.
    func covers(_ address: UInt64, byteCount: UInt64, for owner: Int) -> Bool {
        guard byteCount > 0, address <= UInt64.max - byteCount else { return false }
        let pageMask = UInt64(pageSize - 1)
        var page = address & ~pageMask
        let last = (address + byteCount - 1) & ~pageMask
        while true {
            let position = firstPosition(notBelow: page)
            guard position < grantCount, grants[position].frame == page, grants[position].owner == owner else {
                return false
            }
            if page == last { return true }
            page += UInt64(pageSize)
        }
    }

    /// Binary search: the first grant whose frame is not below `frame`.
    private func firstPosition(notBelow frame: UInt64) -> Int {
        var low = 0
        var high = grantCount
        while low < high {
            let middle = (low + high) / 2
            if grants[middle].frame < frame { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: Register writes

    /// Decides a driver's write of `value` to register `offset` of the virtio device
    /// whose register page is at `base`; on success the caller performs the write.
    /// `memory` is read for the rings at a notify.
    mutating func admit<M: PhysicalMemory>(_ value: UInt32, to offset: Int, ofDeviceAt base: UInt64,
                                           by owner: Int, memory: M) throws(DeviceWriteRefusal) {
        let index = try shadowIndex(base: base, owner: owner)
        switch offset {
        case VirtioRegister.deviceFeaturesSelect, VirtioRegister.interruptAcknowledge:
            return
        case VirtioRegister.config..<Int(VirtioRegister.pageBytes):
            return
        case VirtioRegister.driverFeaturesSelect:
            devices[index].driverFeaturesSelect = value
        case VirtioRegister.driverFeatures:
            let permitted: UInt32 = switch devices[index].driverFeaturesSelect {
            case 0: VirtioRegister.permittedFeatures.low
            case 1: VirtioRegister.permittedFeatures.high
            default: 0
            }
            guard value & ~permitted == 0 else { throw .notPermitted }
        case VirtioRegister.status:
            if value == 0 { devices[index] = DeviceShadow(base: base, owner: owner) }
        case VirtioRegister.queueSelect:
            devices[index].queueSelect = value
        case VirtioRegister.queueNum, VirtioRegister.queueDescriptorLow, VirtioRegister.queueDescriptorHigh,
             VirtioRegister.queueDriverLow, VirtioRegister.queueDriverHigh, VirtioRegister.queueDeviceLow,
             VirtioRegister.queueDeviceHigh:
            let queue = try selectedQueue(of: index)
            guard !devices[index].queues[queue].isLive else { throw .notPermitted }
            setUp(&devices[index].queues[queue], offset: offset, value: value)
        case VirtioRegister.queueReady:
            let queue = try selectedQueue(of: index)
            guard !devices[index].queues[queue].isLive else { throw .notPermitted }
            guard value == 1 else { return }
            try checkRings(devices[index].queues[queue], for: owner)
            devices[index].queues[queue].isLive = true
        case VirtioRegister.queueNotify:
            guard value < UInt32(DeviceShadow.queueCount), devices[index].queues[Int(value)].isLive else {
                throw .badValue
            }
            let checked = try checkNewChains(devices[index].queues[Int(value)], for: owner, memory: memory)
            devices[index].queues[Int(value)].checkedIndex = checked
        default:
            throw .notPermitted
        }
    }

    /// The shadow of the device at `base`, made on first use; a device whose shadow
    /// belongs to another driver (which cannot happen: device ranges are exclusive)
    /// or no room for one more is refused.
    private mutating func shadowIndex(base: UInt64, owner: Int) throws(DeviceWriteRefusal) -> Int {
        var free = -1
        for index in 0..<Self.deviceCapacity {
            if devices[index].base == base {
                guard devices[index].owner == owner else { throw .notPermitted }
                return index
            }
            if devices[index].base == 0 && free < 0 { free = index }
        }
        guard free >= 0 else { throw .notPermitted }
        devices[free] = DeviceShadow(base: base, owner: owner)
        return free
    }

    private func selectedQueue(of index: Int) throws(DeviceWriteRefusal) -> Int {
        let queue = devices[index].queueSelect
        guard queue < UInt32(DeviceShadow.queueCount) else { throw .badValue }
        return Int(queue)
    }

    private func setUp(_ queue: inout QueueShadow, offset: Int, value: UInt32) {
        let low = UInt64(value)
        let high = UInt64(value) << 32
        switch offset {
        case VirtioRegister.queueNum: queue.size = value
        case VirtioRegister.queueDescriptorLow: queue.descriptorTable = queue.descriptorTable & ~0xFFFF_FFFF | low
        case VirtioRegister.queueDescriptorHigh: queue.descriptorTable = queue.descriptorTable & 0xFFFF_FFFF | high
        case VirtioRegister.queueDriverLow: queue.availableRing = queue.availableRing & ~0xFFFF_FFFF | low
        case VirtioRegister.queueDriverHigh: queue.availableRing = queue.availableRing & 0xFFFF_FFFF | high
        case VirtioRegister.queueDeviceLow: queue.usedRing = queue.usedRing & ~0xFFFF_FFFF | low
        default: queue.usedRing = queue.usedRing & 0xFFFF_FFFF | high
        }
    }

    /// The largest queue the kernel checks rings for (virtio allows 32768).
    static let maximumQueueSize: UInt32 = 1024

    /// Each ring, with the event-index word at its end, inside grants and aligned
    /// (virtio 1.x §2.7: descriptor table 16, available ring 2, used ring 4).
    private func checkRings(_ queue: QueueShadow, for owner: Int) throws(DeviceWriteRefusal) {
        guard queue.size >= 1, queue.size <= Self.maximumQueueSize else { throw .badValue }
        let size = UInt64(queue.size)
        guard queue.descriptorTable % 16 == 0, queue.availableRing % 2 == 0, queue.usedRing % 4 == 0 else {
            throw .badValue
        }
        guard covers(queue.descriptorTable, byteCount: 16 * size, for: owner),
              covers(queue.availableRing, byteCount: 6 + 2 * size, for: owner),
              covers(queue.usedRing, byteCount: 6 + 8 * size, for: owner) else { throw .outsideGrants }
    }

    /// Checks every chain the driver made available since the last check; returns the
    /// new checked index. The rings themselves were checked when the queue went live.
    private func checkNewChains<M: PhysicalMemory>(_ queue: QueueShadow, for owner: Int,
                                                   memory: M) throws(DeviceWriteRefusal) -> UInt16 {
        let available = memory.pointer(to: PhysicalAddress(queue.availableRing))
        let published = UInt16(littleEndian: available.load(fromByteOffset: 2, as: UInt16.self))
        let pending = published &- queue.checkedIndex
        guard UInt32(pending) <= queue.size else { throw .badValue }
        var position = queue.checkedIndex
        while position != published {
            let slot = Int(UInt32(position) % queue.size)
            let head = UInt16(littleEndian: available.load(fromByteOffset: 4 + 2 * slot, as: UInt16.self))
            try checkChain(from: head, of: queue, for: owner, memory: memory)
            position &+= 1
        }
        return published
    }

    /// A descriptor (virtio 1.x §2.7.5): addr u64, len u32, flags u16, next u16.
    private static let nextFlag: UInt16 = 1
    private static let indirectFlag: UInt16 = 4

    private func checkChain<M: PhysicalMemory>(from head: UInt16, of queue: QueueShadow, for owner: Int,
                                               memory: M) throws(DeviceWriteRefusal) {
        let table = memory.pointer(to: PhysicalAddress(queue.descriptorTable))
        var index = head
        for _ in 0..<queue.size {
            guard UInt32(index) < queue.size else { throw .badValue }
            let descriptor = 16 * Int(index)
            let address = UInt64(littleEndian: table.load(fromByteOffset: descriptor, as: UInt64.self))
            let length = UInt32(littleEndian: table.load(fromByteOffset: descriptor + 8, as: UInt32.self))
            let flags = UInt16(littleEndian: table.load(fromByteOffset: descriptor + 12, as: UInt16.self))
            guard flags & Self.indirectFlag == 0 else { throw .notPermitted }
            guard covers(address, byteCount: UInt64(length), for: owner) else { throw .outsideGrants }
            guard flags & Self.nextFlag != 0 else { return }
            index = UInt16(littleEndian: table.load(fromByteOffset: descriptor + 14, as: UInt16.self))
        }
        throw .badValue
    }
}

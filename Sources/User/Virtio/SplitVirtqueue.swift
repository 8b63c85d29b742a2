// A split virtqueue (virtio 1.x §2.7): the driver offers chains of buffers through the
// available ring and the device returns them through the used ring.
//
// Trust. The device writes two things back: the used ring (an index and, per entry, a
// chain id and a byte count) and the buffers the driver marked device-writable. A
// confused or hostile device (or a stray DMA from the previous server instance) must
// not be able to crash the driver, so nothing the device writes is used as an index
// or a count before it is checked: the used index may not run ahead of the chains in
// flight, the chain id must name a chain the driver has in flight, and the byte count
// may not exceed what that chain offered. The first two cannot be attributed to any
// request, so they fail the whole queue (`VirtqueueError`) and the caller resets
// the device; a bad count belongs to one chain and only marks that chain.
//
// Bookkeeping lives in the driver's own memory, never in the descriptor table: which
// descriptors are free is one bit mask, and each chain in flight is remembered by its
// head (the set of descriptors it holds, and how many bytes the device may write).
// So a device scribbling over the descriptors' `next` fields cannot corrupt the free
// list, and freeing a chain needs no walk over device-visible memory.
//
// Layout in the DMA region (offsets fixed for the largest size, so they do not depend
// on the negotiated size; all fields little-endian):
//
//   offset  bytes         contents                                        alignment
//   ------  ------------  ----------------------------------------------  ---------
//   0       16 * 16       descriptor table: per descriptor                16
//                           +0 addr u64, +8 len u32, +12 flags u16, +14 next u16
//   256     6 + 2 * 16    available ring (driver -> device):              2
//                           +0 flags u16, +2 idx u16, +4 ring[size] u16,
//                           then used_event u16 (unused: no EVENT_IDX)
//   320     6 + 8 * 16    used ring (device -> driver):                   4
//                           +0 flags u16, +2 idx u16, +4 ring[size] of
//                           { id u32, len u32 }, then avail_event u16
//   512                   end
//
// Memory-ordering points (the driver calls `Barrier.fence()` at each):
//   F1  after writing the descriptors and the available-ring entry, before publishing
//       them by storing the new available index (§2.7.13.2): the device may read the
//       entry as soon as it sees the index.
//   F2  after storing the available index, before the notify register is written
//       (the driver's job, e.g. `VirtioBlockDriver.submit`): the device reacts to the
//       notification by reading the index.
//   F3  after loading the used index, before loading the used entries it covers and
//       the buffers the device wrote (§2.7.13.3 read side).
// Indices are free-running 16-bit counters; a position is the index modulo the size,
// which is a power of two so the wrap at 65536 keeps them consistent.

/// Why a queue cannot be set up, or can no longer be trusted.
public enum VirtqueueError: Error, Equatable, Sendable {
    /// The memory given for the rings is shorter than `requiredBytes`.
    case regionTooSmall
    /// The memory given for the rings is not 16-byte aligned (virtually or physically).
    case regionMisaligned
    /// A size that is not 0 or a power of two up to `maximumSize`.
    case badSize
    /// Not enough free descriptors for the chain.
    case full
    /// The device moved the used index past the chains in flight.
    case badUsedIndex
    /// The device returned a chain id that is not a chain in flight.
    case badUsedID
}

/// One buffer of a chain: its physical address, its length, and who writes it.
public struct VirtqueueBuffer: Sendable, Equatable {
    public var physical: UInt64
    public var byteCount: UInt32
    public var deviceWritable: Bool

    public init(physical: UInt64, byteCount: UInt32, deviceWritable: Bool) {
        self.physical = physical
        self.byteCount = byteCount
        self.deviceWritable = deviceWritable
    }
}

/// A chain the device returned.
public struct UsedChain: Sendable, Equatable {
    /// The chain's first descriptor (what `add` returned).
    public var head: UInt16
    /// The descriptors the chain held (bit i = descriptor i), as the driver gave them.
    public var descriptors: UInt32
    /// The token the chain was added with.
    public var token: UInt16
    /// The bytes the device says it wrote.
    public var writtenBytes: UInt32
    /// False if the device claimed to write more than the chain offered.
    public var lengthIsValid: Bool
}

public struct SplitVirtqueue<Barrier: VirtioBarrier> {
    public static var maximumSize: Int { 16 }
    public static var requiredBytes: Int { 512 }

    static var descriptorTableOffset: Int { 0 }
    static var availableRingOffset: Int { 256 }
    static var usedRingOffset: Int { 320 }
    public static var descriptorBytes: Int { 16 }

    static var descriptorFlagNext: UInt16 { 1 }
    static var descriptorFlagWrite: UInt16 { 2 }

    /// What the driver remembers of a chain in flight, by its head.
    struct Chain {
        /// The descriptors it holds (bit i = descriptor i); 0 when not in flight.
        var descriptors: UInt32
        /// The device-writable bytes it offered.
        var writableBytes: UInt32
        /// The caller's name for the chain.
        var token: UInt16

        static var none: Chain { Chain(descriptors: 0, writableBytes: 0, token: 0) }
    }

    let memory: DMARegion
    let barrier: Barrier
    /// The negotiated size; 0 until `reset(size:)` (a queue of size 0 takes nothing).
    public private(set) var size: Int
    var freeDescriptors: UInt32
    var chains: InlineArray<16, Chain>
    var nextAvailableIndex: UInt16
    var nextUsedIndex: UInt16
    public private(set) var chainsInFlight: Int

    /// Lays a queue over `memory`, which must be `requiredBytes` long and 16-byte
    /// aligned both virtually and physically. Its size is 0 until `reset(size:)`.
    public init(memory: DMARegion, barrier: Barrier) throws(VirtqueueError) {
        guard memory.byteCount >= Self.requiredBytes else { throw .regionTooSmall }
        guard UInt(bitPattern: memory.base) % 16 == 0, memory.physical % 16 == 0 else { throw .regionMisaligned }
        self.memory = memory
        self.barrier = barrier
        size = 0
        freeDescriptors = 0
        chains = InlineArray(repeating: .none)
        nextAvailableIndex = 0
        nextUsedIndex = 0
        chainsInFlight = 0
        memory.base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.requiredBytes)
    }

    public var descriptorTablePhysical: UInt64 { memory.physical + UInt64(Self.descriptorTableOffset) }
    public var availableRingPhysical: UInt64 { memory.physical + UInt64(Self.availableRingOffset) }
    public var usedRingPhysical: UInt64 { memory.physical + UInt64(Self.usedRingOffset) }

    public var freeDescriptorCount: Int { freeDescriptors.nonzeroBitCount }

    /// Forgets every chain, zeroes the rings and sets the size (0, or a power of two
    /// up to `maximumSize`). Only while the device does not use the queue (after a
    /// device reset): a live device could still be reading or writing the rings.
    public mutating func reset(size newSize: Int) throws(VirtqueueError) {
        guard newSize >= 0, newSize <= Self.maximumSize, newSize & (newSize - 1) == 0 else {
            throw .badSize
        }
        memory.base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.requiredBytes)
        size = newSize
        freeDescriptors = (1 << UInt32(newSize)) - 1
        for head in 0..<Self.maximumSize { chains[head] = .none }
        nextAvailableIndex = 0
        nextUsedIndex = 0
        chainsInFlight = 0
    }

    /// Offers the chain `first`, `second`, `third` (one to three buffers) to the device
    /// and returns its head; `popUsed` hands `token` back with it. The caller then
    /// notifies the device (after a fence, F2). Device-writable buffers must follow the
    /// readable ones (§2.7.4.2).
    public mutating func add(_ first: VirtqueueBuffer, _ second: VirtqueueBuffer? = nil,
                             _ third: VirtqueueBuffer? = nil, token: UInt16) throws(VirtqueueError) -> UInt16 {
        let length = second == nil ? 1 : third == nil ? 2 : 3
        guard freeDescriptorCount >= length else { throw .full }
        let buffers: InlineArray<3, VirtqueueBuffer> = [first, second ?? first, third ?? first]
        var indices: InlineArray<3, UInt16> = [0, 0, 0]
        var held: UInt32 = 0
        for position in 0..<length {
            let index = (freeDescriptors & ~held).trailingZeroBitCount
            indices[position] = UInt16(index)
            held |= 1 << UInt32(index)
        }
        var writable: UInt32 = 0
        for position in 0..<length {
            let buffer = buffers[position]
            var flags: UInt16 = buffer.deviceWritable ? Self.descriptorFlagWrite : 0
            var next: UInt16 = 0
            if position + 1 < length {
                flags |= Self.descriptorFlagNext
                next = indices[position + 1]
            }
            if buffer.deviceWritable { writable &+= buffer.byteCount }
            writeDescriptor(Int(indices[position]), address: buffer.physical, byteCount: buffer.byteCount,
                            flags: flags, next: next)
        }
        let head = indices[0]
        freeDescriptors &= ~held
        chains[Int(head)] = Chain(descriptors: held, writableBytes: writable, token: token)
        chainsInFlight += 1

        let slot = Int(nextAvailableIndex) & (size - 1)
        store16(head, at: Self.availableRingOffset + 4 + 2 * slot)
        barrier.fence() // F1
        nextAvailableIndex &+= 1
        store16(nextAvailableIndex, at: Self.availableRingOffset + 2)
        return head
    }

    /// The next chain the device returned, or nil if it returned none since the last
    /// call. Throws if the used ring cannot be trusted; the queue is then unusable
    /// until the device is reset and `reset(size:)` called.
    public mutating func popUsed() throws(VirtqueueError) -> UsedChain? {
        let deviceIndex = load16(at: Self.usedRingOffset + 2)
        let pending = Int(deviceIndex &- nextUsedIndex)
        if pending == 0 { return nil }
        guard pending <= chainsInFlight else { throw .badUsedIndex }
        barrier.fence() // F3
        let slot = Int(nextUsedIndex) & (size - 1)
        let entry = Self.usedRingOffset + 4 + 8 * slot
        let id = load32(at: entry)
        let written = load32(at: entry + 4)
        guard id < UInt32(size), chains[Int(id)].descriptors != 0 else { throw .badUsedID }
        let chain = chains[Int(id)]
        chains[Int(id)] = .none
        freeDescriptors |= chain.descriptors
        chainsInFlight -= 1
        nextUsedIndex &+= 1
        return UsedChain(head: UInt16(id), descriptors: chain.descriptors, token: chain.token, writtenBytes: written,
                         lengthIsValid: written <= chain.writableBytes)
    }

    /// Descriptor `index` as it sits in the table now (what the device read, unless
    /// it was changed since): its buffer, and the next descriptor if it links one.
    /// Nil for an index outside the queue.
    public func descriptor(_ index: Int) -> (buffer: VirtqueueBuffer, next: UInt16?)? {
        guard index >= 0, index < size else { return nil }
        let offset = Self.descriptorTableOffset + Self.descriptorBytes * index
        let address = UInt64(littleEndian: memory.base.load(fromByteOffset: offset, as: UInt64.self))
        let flags = load16(at: offset + 12)
        let buffer = VirtqueueBuffer(physical: address, byteCount: load32(at: offset + 8),
                                     deviceWritable: flags & Self.descriptorFlagWrite != 0)
        return (buffer, flags & Self.descriptorFlagNext != 0 ? load16(at: offset + 14) : nil)
    }

    func writeDescriptor(_ index: Int, address: UInt64, byteCount: UInt32, flags: UInt16, next: UInt16) {
        let offset = Self.descriptorTableOffset + Self.descriptorBytes * index
        memory.base.storeBytes(of: address.littleEndian, toByteOffset: offset, as: UInt64.self)
        memory.base.storeBytes(of: byteCount.littleEndian, toByteOffset: offset + 8, as: UInt32.self)
        store16(flags, at: offset + 12)
        store16(next, at: offset + 14)
    }

    func store16(_ value: UInt16, at offset: Int) {
        memory.base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    func load16(at offset: Int) -> UInt16 {
        UInt16(littleEndian: memory.base.load(fromByteOffset: offset, as: UInt16.self))
    }

    func load32(at offset: Int) -> UInt32 {
        UInt32(littleEndian: memory.base.load(fromByteOffset: offset, as: UInt32.self))
    }
}

// A virtio-net driver (virtio 1.x §5.1) over the modern virtio-mmio transport: one
// receive queue, one transmit queue, whole Ethernet frames in and out.
//
// What it negotiates. VERSION_1 and MAC, nothing else: no checksum offload, no
// segmentation offload, no mergeable receive buffers, no control queue. So every
// frame the device hands over is at most 1514 bytes (no FCS) and arrives in one
// buffer, with the 12-byte `virtio_net_hdr` in front (in virtio 1.x the header always
// carries `num_buffers`), which a driver that negotiated nothing may ignore on receive
// and sends as zeros. The stack above computes every checksum itself.
//
// Memory. The driver is given one page for the two rings and a run of buffer pages,
// each split into two 2 KiB buffers (a receive buffer must hold 1526 bytes, §5.1.6.3.1):
//
//   ring page                          buffer pages (2 buffers each)
//   +0     receive queue (512 bytes)   buffer 0 .. size-1          receive
//   +512   transmit queue (512 bytes)  buffer size .. 2*size-1     transmit
//
//   one buffer:  +0 virtio_net_hdr (12 bytes, zero)   +12 Ethernet frame (≤ 1514)
//
// Every receive buffer is offered to the device at start and offered again as soon as
// the frame in it was handed to the caller, so the device can always deliver; when
// the stack is slower than the wire, the device drops frames (like any NIC with a
// full ring) and TCP's retransmissions recover them. A transmit buffer is taken for a
// frame and comes back when the device returns its chain.
//
// Trust. What the device writes back is checked before use (SplitVirtqueue checks the
// used ring; here, the length of a received frame and that the chain returned is the
// buffer the token names). A violation fails the driver: the server resets the
// device and starts again, losing what was in the rings — which to the protocols
// above is packet loss. Every physical address given to the device is checked
// against the pages the driver was given (`DMAPages`) first; the kernel checks again
// (Kernel/Core/Devices/DMAGuard.swift).

import Virtio

/// Why the device cannot be driven, or no longer can.
public enum NetworkDeviceError: Error, Equatable, Sendable {
    /// No virtio device in the slot (wrong magic value, or device id 0).
    case notVirtio
    /// A legacy (version 1) virtio-mmio device.
    case legacyDevice
    /// A virtio device, but not a network device.
    case notNetworkDevice
    /// The device has no MAC address to give (VIRTIO_NET_F_MAC not offered).
    case missingMAC
    /// A step of setting the device up failed (VirtioDevice's own reasons).
    case setUp(VirtioSetUpError)
    /// Too few ring or buffer pages for the queues.
    case dmaRegionTooSmall
    case dmaRegionMisaligned
    /// A physical address outside the pages the driver was given.
    case dmaAddressNotPermitted
    /// The driver was never initialized, or failed since.
    case notReady
    /// The device broke the used-ring protocol (index, id or length).
    case deviceMisbehaved
}

extension NetworkDeviceError {
    init(_ error: VirtioSetUpError) { self = .setUp(error) }

    init(_ error: VirtqueueError) {
        switch error {
        case .regionTooSmall: self = .dmaRegionTooSmall
        case .regionMisaligned: self = .dmaRegionMisaligned
        case .badSize: self = .setUp(.queueUnavailable)
        case .full, .badUsedIndex, .badUsedID: self = .deviceMisbehaved
        }
    }
}

extension VirtioFeature {
    /// The device has a MAC address in its configuration space (§5.1.3).
    public static let networkMAC: UInt64 = 1 << 5
}

public enum VirtioNetDriverState: Equatable, Sendable {
    case reset
    case ready
    case failed
}

/// What the driver has seen, for `netstat`.
public struct NetworkDeviceCounters: Equatable, Sendable {
    public var framesReceived: UInt64 = 0
    public var framesSent: UInt64 = 0
    /// Frames the caller had to drop because every transmit buffer was in use.
    public var transmitBusy: UInt64 = 0
    /// Receive buffers the device returned with a length it had no right to.
    public var badLengths: UInt64 = 0

    public init() {}
}

public struct VirtioNetDriver<Registers: VirtioRegisters, Barrier: VirtioBarrier> {
    public static var headerBytes: Int { 12 }
    public static var bufferBytes: Int { 2048 }
    /// The longest frame without the FCS: 14 bytes of Ethernet header and 1500 of payload.
    public static var maximumFrameBytes: Int { 1514 }
    public static var queueSize: Int { SplitVirtqueue<Barrier>.maximumSize }
    /// Buffer pages the driver needs: receive and transmit buffers, two per page.
    public static var bufferPagesNeeded: Int { 2 * queueSize * bufferBytes / DMAPages.pageBytes }

    static var receiveQueueIndex: UInt32 { 0 }
    static var transmitQueueIndex: UInt32 { 1 }
    static var transmitQueueOffset: Int { 512 }

    public let registers: Registers
    var device: VirtioDevice<Registers> { VirtioDevice(registers: registers) }
    let barrier: Barrier
    /// The ring page: where the rings may be.
    let ring: DMARegion
    let ringPages: DMAPages
    /// The buffers (virtually contiguous; their pages' physical addresses in `bufferPages`).
    let buffers: UnsafeMutableRawPointer
    let bufferPages: DMAPages
    var receiveQueue: SplitVirtqueue<Barrier>
    var transmitQueue: SplitVirtqueue<Barrier>
    /// The negotiated queue size (both queues).
    public private(set) var size = 0
    /// Transmit buffers the device holds (bit i = transmit buffer i).
    var transmitBusy: UInt32 = 0
    /// Receive buffers lent to the caller as frames (bit i = receive buffer i): only
    /// these go back to the device on `release`, so a frame released twice, or a
    /// damaged frame naming a transmit buffer, never puts a buffer on the ring twice.
    var receiveLent: UInt32 = 0
    public private(set) var state = VirtioNetDriverState.reset
    public private(set) var mac: UInt64 = 0
    public private(set) var counters = NetworkDeviceCounters()

    /// Takes the registers, the ring page, and `bufferPagesNeeded` buffer pages at
    /// `buffers` whose physical addresses are `bufferPages` (in order); touches the
    /// device not until `initialize`.
    public init(registers: Registers, ring: DMARegion, buffers: UnsafeMutableRawPointer, bufferPages: DMAPages,
                barrier: Barrier) throws(NetworkDeviceError) {
        guard ring.byteCount >= 2 * SplitVirtqueue<Barrier>.requiredBytes,
              bufferPages.count >= Self.bufferPagesNeeded else { throw .dmaRegionTooSmall }
        var ringPages = DMAPages()
        guard ring.physical % UInt64(DMAPages.pageBytes) == 0, ringPages.append(ring.physical) == 0 else {
            throw .dmaRegionMisaligned
        }
        self.registers = registers
        self.barrier = barrier
        self.ring = ring
        self.ringPages = ringPages
        self.buffers = buffers
        self.bufferPages = bufferPages
        do throws(VirtqueueError) {
            receiveQueue = try SplitVirtqueue(memory: ring.slice(from: 0, byteCount: SplitVirtqueue<Barrier>.requiredBytes),
                                              barrier: barrier)
            transmitQueue = try SplitVirtqueue(memory: ring.slice(from: Self.transmitQueueOffset,
                                                                  byteCount: SplitVirtqueue<Barrier>.requiredBytes),
                                               barrier: barrier)
        } catch {
            throw NetworkDeviceError(error)
        }
    }

    /// Whether the register window holds a modern virtio network device.
    public static func probe(_ registers: Registers) -> Bool {
        identify(registers) == nil
    }

    static func identify(_ registers: Registers) -> NetworkDeviceError? {
        guard registers.read32(VirtioMMIO.magicValue) == VirtioMMIO.expectedMagic else { return .notVirtio }
        guard registers.read32(VirtioMMIO.version) == VirtioMMIO.modernVersion else { return .legacyDevice }
        let id = registers.read32(VirtioMMIO.deviceID)
        // An empty virtio-mmio slot answers the magic value with device id 0.
        guard id != 0 else { return .notVirtio }
        guard id == VirtioMMIO.networkDeviceID else { return .notNetworkDevice }
        return nil
    }

    /// Resets the device: afterwards it neither reads nor writes our memory, and every
    /// frame in the rings is gone.
    public mutating func reset() throws(NetworkDeviceError) {
        state = .failed
        do throws(VirtioSetUpError) { try device.reset() } catch { throw NetworkDeviceError(error) }
        do throws(VirtqueueError) {
            try receiveQueue.reset(size: 0)
            try transmitQueue.reset(size: 0)
        } catch {
            throw NetworkDeviceError(error)
        }
        transmitBusy = 0
        receiveLent = 0
        size = 0
        state = .reset
    }

    /// Brings the device from any state to ready (§3.1.1, §5.1.5; VirtioDevice.swift):
    /// reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, the MAC, both queues,
    /// DRIVER_OK, and every receive buffer offered.
    public mutating func initialize() throws(NetworkDeviceError) {
        state = .failed
        if let wrong = Self.identify(registers) { throw wrong }
        try reset()
        state = .failed
        let device = device
        var status = device.begin()
        do throws(NetworkDeviceError) {
            let offered = device.offeredFeatures()
            guard offered & VirtioFeature.networkMAC != 0 || offered & VirtioFeature.version1 == 0 else {
                throw .missingMAC
            }
            do throws(VirtioSetUpError) {
                try device.accept(offered & (VirtioFeature.version1 | VirtioFeature.networkMAC), status: &status)
                // The MAC: config bytes 0...5, in two 32-bit reads of one generation.
                let (low, high) = try device.readConfiguration(VirtioMMIO.config, VirtioMMIO.config + 4)
                var address: UInt64 = 0
                for index in 0..<4 { address = address << 8 | UInt64(low >> UInt32(8 * index) & 0xFF) }
                for index in 0..<2 { address = address << 8 | UInt64(high >> UInt32(8 * index) & 0xFF) }
                mac = address
                let receiveSize = try device.setUpQueue(Self.receiveQueueIndex, &receiveQueue, ringPages: ringPages)
                let transmitSize = try device.setUpQueue(Self.transmitQueueIndex, &transmitQueue, ringPages: ringPages)
                size = min(receiveSize, transmitSize)
            } catch {
                throw NetworkDeviceError(error)
            }
        } catch {
            device.fail(status)
            throw error
        }
        device.finish(&status)
        state = .ready
        for buffer in 0..<receiveQueue.size { try offer(receiveBuffer: buffer) }
        notify(Self.receiveQueueIndex)
    }

    /// Buffer `index` (receive buffers first, then transmit buffers): its memory and its
    /// physical address, if that lies in the pages the driver was given.
    func buffer(_ index: Int) -> (memory: UnsafeMutableRawPointer, physical: UInt64)? {
        let perPage = DMAPages.pageBytes / Self.bufferBytes
        guard let page = bufferPages.address(ofPage: index / perPage) else { return nil }
        let offset = (index % perPage) * Self.bufferBytes
        let physical = page + UInt64(offset)
        guard bufferPages.contains(physical, byteCount: Self.bufferBytes) else { return nil }
        return (buffers + index * Self.bufferBytes, physical)
    }

    mutating func offer(receiveBuffer index: Int) throws(NetworkDeviceError) {
        guard let (_, physical) = buffer(index) else {
            state = .failed
            throw .dmaAddressNotPermitted
        }
        do throws(VirtqueueError) {
            _ = try receiveQueue.add(VirtqueueBuffer(physical: physical, byteCount: UInt32(Self.bufferBytes),
                                                     deviceWritable: true), token: UInt16(index))
        } catch {
            state = .failed
            throw NetworkDeviceError(error)
        }
    }

    func notify(_ queue: UInt32) {
        barrier.fence() // F2
        registers.write32(VirtioMMIO.queueNotify, queue)
    }

    /// Reads and acknowledges the interrupt status (call before `receive` and
    /// `reclaimTransmitted`, so a completion landing in between raises it again).
    public func acknowledgeInterrupt() {
        let pending = registers.read32(VirtioMMIO.interruptStatus)
        if pending != 0 { registers.write32(VirtioMMIO.interruptAcknowledge, pending) }
    }

    /// The next frame the device delivered, or nil. Its bytes stay valid, and its
    /// buffer stays out of the device's hands, until `release(_:)`; take and release
    /// one frame at a time. Throws if the device broke the protocol: reset and
    /// initialize again.
    public mutating func nextFrame() throws(NetworkDeviceError) -> ReceivedFrame? {
        guard state == .ready else { throw .notReady }
        while true {
            let next: UsedChain?
            do throws(VirtqueueError) { next = try receiveQueue.popUsed() } catch {
                state = .failed
                throw NetworkDeviceError(error)
            }
            guard let used = next else { return nil }
            let index = Int(used.token)
            guard index < receiveQueue.size, let (memory, _) = buffer(index) else {
                state = .failed
                throw .deviceMisbehaved
            }
            let length = Int(used.writtenBytes)
            guard used.lengthIsValid, length >= Self.headerBytes,
                  length <= Self.headerBytes + Self.maximumFrameBytes else {
                counters.badLengths &+= 1
                try offer(receiveBuffer: index)
                notify(Self.receiveQueueIndex)
                continue
            }
            counters.framesReceived &+= 1
            receiveLent |= 1 << UInt32(index)
            return ReceivedFrame(buffer: index,
                                 bytes: UnsafeRawBufferPointer(start: memory + Self.headerBytes,
                                                               count: length - Self.headerBytes))
        }
    }

    /// Gives a received frame's buffer back to the device. A frame that is not out
    /// (released already, or damaged) is refused and fails the driver, as `send` does
    /// with a buffer it did not lend.
    public mutating func release(_ frame: ReceivedFrame) throws(NetworkDeviceError) {
        guard state == .ready else { throw .notReady }
        guard frame.buffer >= 0, frame.buffer < receiveQueue.size, receiveLent & (1 << UInt32(frame.buffer)) != 0 else {
            state = .failed
            throw .dmaAddressNotPermitted
        }
        receiveLent &= ~(1 << UInt32(frame.buffer))
        try offer(receiveBuffer: frame.buffer)
        notify(Self.receiveQueueIndex)
    }

    /// Takes back the transmit buffers the device is done with.
    public mutating func reclaimTransmitted() throws(NetworkDeviceError) {
        guard state == .ready else { throw .notReady }
        while true {
            let next: UsedChain?
            do throws(VirtqueueError) { next = try transmitQueue.popUsed() } catch {
                state = .failed
                throw NetworkDeviceError(error)
            }
            guard let used = next else { return }
            let slot = Int(used.token)
            guard slot < transmitQueue.size, transmitBusy & (1 << UInt32(slot)) != 0 else {
                state = .failed
                throw .deviceMisbehaved
            }
            transmitBusy &= ~(1 << UInt32(slot))
        }
    }

    /// A free transmit buffer to build a frame in (at most `maximumFrameBytes`), or nil
    /// when the device holds every one (the caller drops the frame, as a NIC with a
    /// full ring would). Hand it to `send` or simply drop it.
    public mutating func transmitBuffer() throws(NetworkDeviceError) -> TransmitBuffer? {
        guard state == .ready else { throw .notReady }
        try reclaimTransmitted()
        let free = ~transmitBusy & ((1 << UInt32(transmitQueue.size)) - 1)
        guard free != 0 else {
            counters.transmitBusy &+= 1
            return nil
        }
        let slot = free.trailingZeroBitCount
        guard let (memory, _) = buffer(receiveQueue.size + slot) else {
            state = .failed
            throw .dmaAddressNotPermitted
        }
        return TransmitBuffer(slot: slot, frame: UnsafeMutableRawBufferPointer(start: memory + Self.headerBytes,
                                                                                count: Self.maximumFrameBytes))
    }

    /// Sends the first `length` bytes of `buffer`'s frame.
    public mutating func send(_ buffer: TransmitBuffer, length: Int) throws(NetworkDeviceError) {
        guard state == .ready else { throw .notReady }
        guard buffer.slot >= 0, buffer.slot < transmitQueue.size, transmitBusy & (1 << UInt32(buffer.slot)) == 0,
              length > 0, length <= Self.maximumFrameBytes,
              let (memory, physical) = self.buffer(receiveQueue.size + buffer.slot),
              memory + Self.headerBytes == buffer.frame.baseAddress else {
            state = .failed
            throw .dmaAddressNotPermitted
        }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: Self.headerBytes)
        do throws(VirtqueueError) {
            _ = try transmitQueue.add(VirtqueueBuffer(physical: physical, byteCount: UInt32(Self.headerBytes + length),
                                                      deviceWritable: false), token: UInt16(buffer.slot))
        } catch {
            state = .failed
            throw NetworkDeviceError(error)
        }
        transmitBusy |= 1 << UInt32(buffer.slot)
        counters.framesSent &+= 1
        notify(Self.transmitQueueIndex)
    }
}

/// A frame in a receive buffer the driver lent out.
public struct ReceivedFrame {
    public let buffer: Int
    public let bytes: UnsafeRawBufferPointer
}

/// A transmit buffer lent out for one frame.
public struct TransmitBuffer {
    public let slot: Int
    public let frame: UnsafeMutableRawBufferPointer
}

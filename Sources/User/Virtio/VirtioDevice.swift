// Bringing a modern virtio-mmio device up and down, the part every driver does the
// same way (virtio 1.x §3.1.1, §4.2.3): reset, ACKNOWLEDGE and DRIVER, feature
// negotiation, configuration reads under one generation, queue set-up, DRIVER_OK or
// FAILED. What differs between drivers — which features, which configuration fields,
// how many queues — stays in the driver, which maps `VirtioSetUpError` to its own error.
//
//   driver                          this file                       device status
//   ------                          ---------                       -------------
//   reset()                         Status = 0, poll until 0        0
//   begin()                         ACKNOWLEDGE, DRIVER             1 | 2
//   accept(features)                DriverFeatures, FEATURES_OK     | 8 (must stick)
//   readConfiguration(...)          two words, one generation
//   setUpQueue(i, ...)              size, rings (checked), ready
//   finish() / fail()               DRIVER_OK / FAILED              | 4  or  | 128

/// Why a device could not be set up.
public enum VirtioSetUpError: Error, Equatable, Sendable {
    /// The device did not read back status 0 after a reset.
    case resetTimeout
    /// The device does not offer VIRTIO_F_VERSION_1.
    case missingVersion1
    /// The device refused our feature set (FEATURES_OK did not stick).
    case featuresRejected
    /// The configuration kept changing while we read it.
    case configUnstable
    /// The queue was already live when we came to set it up.
    case queueInUse
    /// The queue does not exist, or cannot have the size we need.
    case queueUnavailable
    /// A ring would lie outside the pages the driver was given.
    case dmaAddressNotPermitted
}

public struct VirtioDevice<Registers: VirtioRegisters> {
    public let registers: Registers

    static var resetPollLimit: Int { 100_000 }
    static var configReadAttempts: Int { 8 }

    public init(registers: Registers) {
        self.registers = registers
    }

    /// Writes 0 to Status and waits (boundedly) for it to read back 0: the device has
    /// dropped its queues and touches none of our memory any more.
    public func reset() throws(VirtioSetUpError) {
        registers.write32(VirtioMMIO.status, 0)
        for _ in 0..<Self.resetPollLimit where registers.read32(VirtioMMIO.status) == 0 { return }
        throw .resetTimeout
    }

    /// ACKNOWLEDGE and DRIVER; returns the status written so far.
    public func begin() -> UInt32 {
        var status = VirtioStatus.acknowledge
        registers.write32(VirtioMMIO.status, status)
        status |= VirtioStatus.driver
        registers.write32(VirtioMMIO.status, status)
        return status
    }

    /// The 64 feature bits the device offers.
    public func offeredFeatures() -> UInt64 {
        registers.write32(VirtioMMIO.deviceFeaturesSelect, 0)
        let low = registers.read32(VirtioMMIO.deviceFeatures)
        registers.write32(VirtioMMIO.deviceFeaturesSelect, 1)
        let high = registers.read32(VirtioMMIO.deviceFeatures)
        return UInt64(high) << 32 | UInt64(low)
    }

    /// Accepts `features` (which must include VERSION_1) and sets FEATURES_OK, which the
    /// device must keep set (§3.1.1 step 6).
    public func accept(_ features: UInt64, status: inout UInt32) throws(VirtioSetUpError) {
        guard features & VirtioFeature.version1 != 0 else { throw .missingVersion1 }
        registers.write32(VirtioMMIO.driverFeaturesSelect, 0)
        registers.write32(VirtioMMIO.driverFeatures, UInt32(truncatingIfNeeded: features))
        registers.write32(VirtioMMIO.driverFeaturesSelect, 1)
        registers.write32(VirtioMMIO.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
        status |= VirtioStatus.featuresOK
        registers.write32(VirtioMMIO.status, status)
        guard registers.read32(VirtioMMIO.status) & VirtioStatus.featuresOK != 0 else { throw .featuresRejected }
    }

    /// Two 32-bit words of the configuration space, read with the same configuration
    /// generation before and after (§4.2.2.2), so that they belong together.
    public func readConfiguration(_ first: Int, _ second: Int) throws(VirtioSetUpError) -> (UInt32, UInt32) {
        for _ in 0..<Self.configReadAttempts {
            let generation = registers.read32(VirtioMMIO.configGeneration)
            let words = (registers.read32(first), registers.read32(second))
            if registers.read32(VirtioMMIO.configGeneration) == generation { return words }
        }
        throw .configUnstable
    }

    /// Sets up queue `index` over `queue`'s memory, of size min(QueueNumMax, 16)
    /// rounded down to a power of two (§4.2.3.2), its rings checked to lie in
    /// `ringPages` first; returns the size.
    public func setUpQueue<Barrier: VirtioBarrier>(_ index: UInt32, _ queue: inout SplitVirtqueue<Barrier>,
                                                   ringPages: DMAPages) throws(VirtioSetUpError) -> Int {
        registers.write32(VirtioMMIO.queueSelect, index)
        guard registers.read32(VirtioMMIO.queueReady) == 0 else { throw .queueInUse }
        let largest = min(Int(registers.read32(VirtioMMIO.queueNumMax)), SplitVirtqueue<Barrier>.maximumSize)
        guard largest >= 2 else { throw .queueUnavailable }
        var size = 1
        while size * 2 <= largest { size *= 2 }
        guard ringPages.contains(queue.descriptorTablePhysical,
                                 byteCount: SplitVirtqueue<Barrier>.descriptorBytes * size),
              ringPages.contains(queue.availableRingPhysical, byteCount: 6 + 2 * size),
              ringPages.contains(queue.usedRingPhysical, byteCount: 6 + 8 * size) else {
            throw .dmaAddressNotPermitted
        }
        do throws(VirtqueueError) { try queue.reset(size: size) } catch { throw .queueUnavailable }
        registers.write32(VirtioMMIO.queueNum, UInt32(size))
        writeAddress(queue.descriptorTablePhysical, low: VirtioMMIO.queueDescriptorLow,
                     high: VirtioMMIO.queueDescriptorHigh)
        writeAddress(queue.availableRingPhysical, low: VirtioMMIO.queueDriverLow, high: VirtioMMIO.queueDriverHigh)
        writeAddress(queue.usedRingPhysical, low: VirtioMMIO.queueDeviceLow, high: VirtioMMIO.queueDeviceHigh)
        registers.write32(VirtioMMIO.queueReady, 1)
        return size
    }

    func writeAddress(_ address: UInt64, low: Int, high: Int) {
        registers.write32(low, UInt32(truncatingIfNeeded: address))
        registers.write32(high, UInt32(truncatingIfNeeded: address >> 32))
    }

    /// DRIVER_OK: the device may go.
    public func finish(_ status: inout UInt32) {
        status |= VirtioStatus.driverOK
        registers.write32(VirtioMMIO.status, status)
    }

    /// FAILED: the driver gave up on the device (§3.1.1).
    public func fail(_ status: UInt32) {
        registers.write32(VirtioMMIO.status, status | VirtioStatus.failed)
    }
}

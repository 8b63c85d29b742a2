// The virtio-mmio transport (virtio 1.x §4.2), modern layout only (Version 2).
//
// Why only version 2: the legacy layout (Version 1) places the whole queue at one
// page-aligned physical address with guest page size arithmetic; the modern one takes
// three independent physical addresses, which is what a user-mode server with ordinary
// pages can provide. QEMU gives modern devices with `-global
// virtio-mmio.force-legacy=false`; a legacy device is refused rather than half-driven.
//
// Why a protocol for register access: the server reaches the registers through a
// volatile mapping, the tests through a software model of the device. The driver is
// generic over both, so the code the tests exercise is the code the server runs and
// no existential is needed (Embedded Swift has none for such protocols).
//
// Why a separate barrier protocol: the driver shares memory with a device that does not
// see the CPU's store buffer. The split virtqueue has a few points where the order of
// stores (and loads) as seen by the device matters; there the driver calls
// `VirtioBarrier.fence()`. On riscv64 the server implements it with `fence iorw, iorw`,
// which also orders the normal-memory stores before the MMIO store that notifies the
// device. The call must also be a compiler barrier (an opaque call or an asm statement
// with a memory clobber), so that a load of the used ring is never hoisted across it.

/// Access to one device's 4 KiB register window; every access is 32 bits wide and
/// aligned (§4.2.2.2 requires that even for the 64-bit capacity field).
public protocol VirtioRegisters {
    func read32(_ offset: Int) -> UInt32
    func write32(_ offset: Int, _ value: UInt32)
}

/// A full memory barrier between the driver's accesses and the device's view of them.
public protocol VirtioBarrier {
    func fence()
}

/// The register map of a modern virtio-mmio device (offsets in bytes).
///
///   offset  name                 dir  meaning
///   ------  -------------------  ---  ------------------------------------------------
///   0x000   MagicValue           R    0x74726976 ("virt" little-endian)
///   0x004   Version              R    2 (modern); 1 is legacy and refused
///   0x008   DeviceID             R    0 = empty slot, 1 = net, 2 = block
///   0x00c   VendorID             R
///   0x010   DeviceFeatures       R    32 feature bits, the half chosen by ...Sel
///   0x014   DeviceFeaturesSel    W    0 = bits 0..31, 1 = bits 32..63
///   0x020   DriverFeatures       W    the accepted bits of the selected half
///   0x024   DriverFeaturesSel    W
///   0x030   QueueSel             W    the queue the Queue* registers below refer to
///   0x034   QueueNumMax          R    largest size the device supports (0: no queue)
///   0x038   QueueNum             W    the size the driver chose
///   0x044   QueueReady           RW   1 = the driver finished setting up the queue
///   0x050   QueueNotify          W    queue index: "new buffers are available"
///   0x060   InterruptStatus      R    bit 0: used buffer, bit 1: configuration change
///   0x064   InterruptACK         W    the bits of InterruptStatus handled
///   0x070   Status               RW   device status bits (VirtioStatus); 0 resets
///   0x080   QueueDescLow/High    W    physical address of the descriptor table
///   0x090   QueueDriverLow/High  W    physical address of the available ring
///   0x0a0   QueueDeviceLow/High  W    physical address of the used ring
///   0x0fc   ConfigGeneration     R    changes whenever the device config changes
///   0x100   Config               RW   device-specific (block: capacity; net: MAC address)
public enum VirtioMMIO {
    public static let magicValue = 0x000
    public static let version = 0x004
    public static let deviceID = 0x008
    public static let vendorID = 0x00c
    public static let deviceFeatures = 0x010
    public static let deviceFeaturesSelect = 0x014
    public static let driverFeatures = 0x020
    public static let driverFeaturesSelect = 0x024
    public static let queueSelect = 0x030
    public static let queueNumMax = 0x034
    public static let queueNum = 0x038
    public static let queueReady = 0x044
    public static let queueNotify = 0x050
    public static let interruptStatus = 0x060
    public static let interruptAcknowledge = 0x064
    public static let status = 0x070
    public static let queueDescriptorLow = 0x080
    public static let queueDescriptorHigh = 0x084
    public static let queueDriverLow = 0x090
    public static let queueDriverHigh = 0x094
    public static let queueDeviceLow = 0x0a0
    public static let queueDeviceHigh = 0x0a4
    public static let configGeneration = 0x0fc
    public static let config = 0x100

    public static let expectedMagic: UInt32 = 0x7472_6976
    public static let modernVersion: UInt32 = 2
    /// DeviceID values (§5).
    public static let networkDeviceID: UInt32 = 1
    public static let blockDeviceID: UInt32 = 2

    /// InterruptStatus bits.
    public static let usedBufferInterrupt: UInt32 = 1 << 0
    public static let configurationChangeInterrupt: UInt32 = 1 << 1
}

/// Device status bits (§2.1), written cumulatively during initialization.
public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1
    public static let driver: UInt32 = 2
    public static let driverOK: UInt32 = 4
    public static let featuresOK: UInt32 = 8
    public static let deviceNeedsReset: UInt32 = 64
    public static let failed: UInt32 = 128
}

/// Feature bits (as bit masks of the 64-bit feature word).
public enum VirtioFeature {
    /// The device follows virtio 1.x (not legacy); without it we do not drive it.
    public static let version1: UInt64 = 1 << 32
}

/// Memory shared with a device: a virtual address the driver uses and the physical
/// address of the same bytes, which is what the device is told.
public struct DMARegion {
    public let base: UnsafeMutableRawPointer
    public let physical: UInt64
    public let byteCount: Int

    public init(base: UnsafeMutableRawPointer, physical: UInt64, byteCount: Int) {
        self.base = base
        self.physical = physical
        self.byteCount = byteCount
    }

    /// The part of the region from `offset` on; the caller keeps `offset` within it.
    public func slice(from offset: Int, byteCount: Int) -> DMARegion {
        DMARegion(base: base + offset, physical: physical + UInt64(offset), byteCount: byteCount)
    }
}

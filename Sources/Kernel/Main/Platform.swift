// The riscv64 machine as the kernel core sees it (the `Platform` protocol).

import KernelArch
import KernelCore

/// RAM is identity-mapped in every address space, so a physical address is a pointer.
struct IdentityMemory: PhysicalMemory {
    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(address.rawValue))!
    }
}

struct RISCVPlatform: Platform {
    let memory = IdentityMemory()
    let kernelRoot: AddressSpace
    let asidsWork: Bool
    private(set) var powerOffRequested = false
    private(set) var powerOffCode = 0
    private var activeASID: UInt16 = 0
    private let console = KernelConsole()

    init(kernelRoot: AddressSpace, asidsWork: Bool) {
        self.kernelRoot = kernelRoot
        self.asidsWork = asidsWork
    }

    func now() -> UInt64 { csr_read_time() }

    mutating func setInterrupt(_ irq: UInt32, enabled: Bool) {
        PLIC.setEnabled(irq, enabled)
    }

    /// Called before an address space with this ASID is built or freed: leave it if it
    /// is the active one (its tables are about to be freed), and drop its TLB entries.
    mutating func flushAddressSpace(asid: UInt16) {
        if activeASID == asid {
            csr_write_satp(kernelRoot.satp(asid: 0))
            activeASID = 0
            activeSlot = -1
        }
        if asidsWork { sfence_vma_asid(UInt64(asid)) } else { sfence_vma_all() }
    }

    mutating func activate(_ space: AddressSpace, asid: UInt16) {
        csr_write_satp(space.satp(asid: asidsWork ? asid : 0))
        if !asidsWork { sfence_vma_all() }
        activeASID = asid
    }

    mutating func flushPage(_ address: UInt64, asid: UInt16) {
        sfence_vma_page(address, UInt64(asidsWork ? asid : 0))
    }

    mutating func synchronizeInstructions() { fence_instructions() }

    /// Resets each virtio-mmio device in the range (virtio 1.x §4.2.2: writing 0 to
    /// Status resets the device, which then uses none of the queues it was given).
    /// Other devices — the UART — have no virtio magic value and are left alone.
    mutating func quiesceDevices(base: UInt64, size: UInt64) {
        var slot = base
        while slot < base &+ size {
            if mmio_read32(slot + VirtioMMIO.magicOffset) == VirtioMMIO.magicValue {
                mmio_write32(slot + VirtioMMIO.statusOffset, 0)
                var polls = 0
                while mmio_read32(slot + VirtioMMIO.statusOffset) != 0 && polls < 1_000 { polls += 1 }
            }
            slot &+= VirtioMMIO.slotSize
        }
    }

    mutating func requestPowerOff(code: Int) {
        powerOffRequested = true
        powerOffCode = code
    }

    func write(_ text: StaticString) { console.write(text) }
    func write(bytes: UnsafeRawBufferPointer) { console.write(bytes: bytes) }
    func write(decimal: Int) { console.write(decimal: decimal) }
    func write(hex: UInt64) { console.write(hex: hex) }
}

/// The few virtio-mmio registers the kernel touches itself (virtio 1.x §4.2.2).
enum VirtioMMIO {
    static let slotSize: UInt64 = 0x1000
    static let magicOffset: UInt64 = 0x000
    /// "virt", little-endian.
    static let magicValue: UInt32 = 0x7472_6976
    static let statusOffset: UInt64 = 0x070
}

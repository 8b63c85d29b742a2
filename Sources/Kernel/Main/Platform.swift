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

    /// QEMU virt's eight virtio-mmio slots (hw/riscv/virt.c: VIRT_VIRTIO).
    var virtioRange: Range<UInt64> { 0x1000_1000..<0x1000_9000 }

    func readDeviceRegister(_ address: UInt64) -> UInt32 { mmio_read32(address) }

    mutating func writeDeviceRegister(_ address: UInt64, _ value: UInt32) { mmio_write32(address, value) }

    mutating func requestPowerOff(code: Int) {
        powerOffRequested = true
        powerOffCode = code
    }

    func write(_ text: StaticString) { console.write(text) }
    func write(bytes: UnsafeRawBufferPointer) { console.write(bytes: bytes) }
    func write(decimal: Int) { console.write(decimal: decimal) }
    func write(hex: UInt64) { console.write(hex: hex) }
}


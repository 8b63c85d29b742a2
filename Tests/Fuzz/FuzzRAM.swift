// Fake RAM for the harnesses that run the kernel core (boot-image, syscall):
// allocated once per process at the address where QEMU's RAM starts; every run
// starts a fresh frame allocator over it.

@testable import KernelCore

final class FuzzRAM: PhysicalMemory {
    static let base: UInt64 = 0x8000_0000
    let size: Int
    let bytes: UnsafeMutableRawPointer

    init(megabytes: Int) {
        size = megabytes << 20
        bytes = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    }

    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        precondition(address.rawValue >= Self.base && address.rawValue - Self.base < UInt64(size),
                     "the kernel touched memory outside RAM")
        return bytes + Int(address.rawValue - Self.base)
    }

    var range: Range<PhysicalAddress> { PhysicalAddress(Self.base)..<PhysicalAddress(Self.base + UInt64(size)) }
}

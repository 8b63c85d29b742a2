// The fake physical memory the memory tests run on, and tests of the address types.
//
// `MemoryTestRAM` backs the physical addresses 0x8000_0000 ..< 0x8000_0000 + size
// (where QEMU virt's RAM starts) with one host allocation, filled with a junk byte so
// that a frame handed out unzeroed shows up. Any address outside it traps, which
// catches the page-table code reaching somewhere it should not.
import Testing
@testable import KernelCore

final class MemoryTestRAM: PhysicalMemory {
    static let base: UInt64 = 0x8000_0000
    static let junk: UInt8 = 0xA5

    let size: Int
    private let bytes: UnsafeMutableRawPointer

    init(megabytes: Int = 8) {
        size = megabytes << 20
        bytes = .allocate(byteCount: size, alignment: pageSize)
        bytes.initializeMemory(as: UInt8.self, repeating: Self.junk, count: size)
    }

    deinit { bytes.deallocate() }

    var range: Range<PhysicalAddress> {
        PhysicalAddress(Self.base)..<PhysicalAddress(Self.base + UInt64(size))
    }

    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer {
        precondition(address.rawValue >= Self.base && address.rawValue < Self.base + UInt64(size),
                     "MemoryTestRAM: address outside fake RAM")
        return bytes + Int(address.rawValue - Self.base)
    }

    func bytes(at address: PhysicalAddress, count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: pointer(to: address), count: count))
    }

    func fill(_ address: PhysicalAddress, count: Int, with byte: UInt8) {
        pointer(to: address).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }
}

/// A fake RAM and an allocator managing all of it.
func makeMemoryTestAllocator(megabytes: Int = 8) -> (MemoryTestRAM, FrameAllocator<MemoryTestRAM>) {
    let ram = MemoryTestRAM(megabytes: megabytes)
    return (ram, FrameAllocator(memory: ram, range: ram.range))
}

/// `frames.allocate()`, failing the test when the allocator is exhausted.
func allocateFrame(_ frames: inout FrameAllocator<MemoryTestRAM>) throws -> PhysicalAddress {
    let frame = frames.allocate()
    return try #require(frame)
}

/// `AddressSpace.create`, failing the test when the allocator is exhausted.
func createSpace(_ frames: inout FrameAllocator<MemoryTestRAM>, sharing kernelRoot: PhysicalAddress?) throws
    -> AddressSpace
{
    let space = AddressSpace.create(allocator: &frames, sharing: kernelRoot)
    return try #require(space)
}

@Suite struct MemoryTests {
    @Test func physicalAddressArithmetic() {
        let address = PhysicalAddress(0x8000_1234)
        #expect(!address.isPageAligned)
        #expect(PhysicalAddress(0x8000_1000).isPageAligned)
        #expect(address.pageNumber == 0x80001)
        #expect(address.advanced(by: 0x10) == PhysicalAddress(0x8000_1244))
        #expect(address.advanced(by: -0x234) == PhysicalAddress(0x8000_1000))
        #expect(PhysicalAddress(1) < PhysicalAddress(2))
    }

    @Test func virtualAddressArithmetic() {
        let address = VirtualAddress(0x4000_2ABC)
        #expect(!address.isPageAligned)
        #expect(address.pageOffset == 0xABC)
        #expect(address.pageBase == VirtualAddress(0x4000_2000))
        #expect(address.pageBase.isPageAligned)
        #expect(address.pageNumber == 0x40002)
        #expect(address.advanced(by: 0x544) == VirtualAddress(0x4000_3000))
        #expect(VirtualAddress(0).advanced(by: -1) == VirtualAddress(UInt64.max))
        #expect(VirtualAddress(0x1000) > VirtualAddress(0xFFF))
    }

    @Test func sv39CanonicalAddresses() {
        #expect(Sv39.isCanonical(VirtualAddress(0)))
        #expect(Sv39.isCanonical(VirtualAddress(0x3F_FFFF_FFFF)))
        #expect(!Sv39.isCanonical(VirtualAddress(0x40_0000_0000)))
        #expect(!Sv39.isCanonical(VirtualAddress(0xFFFF_FFBF_FFFF_FFFF)))
        #expect(Sv39.isCanonical(VirtualAddress(0xFFFF_FFC0_0000_0000)))
        #expect(Sv39.isCanonical(VirtualAddress(UInt64.max)))
    }

    @Test func sv39Indexes() {
        let address = VirtualAddress(0b101_010101_0_11001100_1_00001111_111100001111)
        #expect(Sv39.index(of: address, level: 2) == 0b101010101)
        #expect(Sv39.index(of: address, level: 1) == 0b011001100)
        #expect(Sv39.index(of: address, level: 0) == 0b100001111)
    }
}

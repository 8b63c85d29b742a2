// Physical and virtual addresses, and how the kernel reaches physical memory.
//
// Both kinds of address are plain 64-bit numbers on riscv64, which is exactly why
// they get distinct types here: a physical address handed where a virtual one is
// expected (or the reverse) is the classic paging bug, and with two types the
// compiler refuses it. Neither type checks anything on construction; the code that
// consumes an address (the frame allocator, the page-table walker) knows which
// values it accepts and says so with its own errors.
//
// The kernel never turns a physical address into a pointer by itself. It asks a
// `PhysicalMemory`. In the running kernel all of RAM is identity-mapped, so the
// answer is the same number as a pointer; in host tests a fake backs a range of
// "physical" addresses with an ordinary host buffer. Everything that touches page
// tables, frames or user pages is generic over that protocol (Embedded Swift has no
// existentials of non-class protocols), so the same code runs in both worlds and
// the kernel's copy specialises down to plain loads and stores.

/// The size of a base page and of a physical frame: 4 KiB.
public let pageSize = 4096

/// The number of bits below a page number; `pageSize == 1 << pageShift`.
let pageShift: UInt64 = 12

/// An address in physical memory (RAM or a device register).
public struct PhysicalAddress: Hashable, Comparable, Sendable {
    public var rawValue: UInt64

    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public var isPageAligned: Bool { rawValue & UInt64(pageSize - 1) == 0 }

    /// Wraps around rather than trapping: callers check ranges before stepping.
    public func advanced(by bytes: Int) -> PhysicalAddress {
        PhysicalAddress(rawValue &+ UInt64(bitPattern: Int64(bytes)))
    }

    /// The physical page number (PPN): the address without its page offset.
    public var pageNumber: UInt64 { rawValue >> pageShift }

    public static func < (lhs: PhysicalAddress, rhs: PhysicalAddress) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

/// An address as a program (or the kernel) sees it through the page tables.
public struct VirtualAddress: Hashable, Comparable, Sendable {
    public var rawValue: UInt64

    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    public var isPageAligned: Bool { rawValue & UInt64(pageSize - 1) == 0 }

    /// Wraps around rather than trapping: callers check ranges before stepping.
    public func advanced(by bytes: Int) -> VirtualAddress {
        VirtualAddress(rawValue &+ UInt64(bitPattern: Int64(bytes)))
    }

    /// The virtual page number: the address without its page offset.
    public var pageNumber: UInt64 { rawValue >> pageShift }

    /// The byte within the 4 KiB page.
    public var pageOffset: Int { Int(rawValue & UInt64(pageSize - 1)) }

    /// The start of the 4 KiB page holding this address.
    public var pageBase: VirtualAddress { VirtualAddress(rawValue & ~UInt64(pageSize - 1)) }

    public static func < (lhs: VirtualAddress, rhs: VirtualAddress) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}

/// How the kernel reaches physical memory. In the kernel RAM is identity-mapped, so this
/// returns UnsafeMutableRawPointer(bitPattern: address); in tests a fake backs a range of
/// "physical" addresses with a host buffer.
public protocol PhysicalMemory {
    func pointer(to address: PhysicalAddress) -> UnsafeMutableRawPointer
}

// Sv39 page tables: one address space per process.
//
// RISC-V Sv39 translates a 39-bit virtual address through a three-level tree of
// page tables. Each table is one 4 KiB frame of 512 eight-byte entries (PTEs); nine
// bits of the virtual address pick the entry at each level, and the last twelve are
// the offset within the page:
//
//    63           39 38        30 29        21 20        12 11            0
//   +---------------+------------+------------+------------+---------------+
//   | copies of 38  |  VPN[2]    |  VPN[1]    |  VPN[0]    |  page offset  |
//   +---------------+------------+------------+------------+---------------+
//                     root index   level 1      level 0
//
// Bits 63..39 must all equal bit 38 ("canonical"), so the usable addresses are the
// low 256 GiB, 0 ..< 0x40_0000_0000, and the high 256 GiB. `map` rejects a
// non-canonical address with `outOfRange` (the hardware would fault on it, so a
// mapping there could never be used) and `translate` reports it unmapped.
//
// A page-table entry:
//
//    63    54 53                         10 9   8 7 6 5 4 3 2 1 0
//   +--------+-----------------------------+-----+-+-+-+-+-+-+-+-+
//   |reserved|  PPN: physical page number  | RSW |D|A|G|U|X|W|R|V|
//   +--------+-----------------------------+-----+-+-+-+-+-+-+-+-+
//                                           | |
//                                           | +-- bit 8: `owned` (leaf) — the frame
//                                           |     belongs to this space, freed with it
//                                           +---- bit 9: borrowed (root entry copied
//                                                 from the kernel's root; not ours)
//
// V = 0 means the entry maps nothing. An entry with V set and R, W, X all clear
// points to the next-level table; an entry with any of R, W, X set is a leaf. A leaf
// at level 0 maps a 4 KiB page, at level 1 a 2 MiB megapage, at the root a 1 GiB
// gigapage. The two RSW bits are ignored by the hardware and left to software;
// Curio uses them to record ownership in the tables themselves, so an address space
// needs no side structure (and the kernel no heap) to know what to free.
//
// The kernel's own mappings. The kernel identity-maps MMIO and RAM under root
// indexes 0 and 2 of its root table (index 1, 0x4000_0000 ..< 0x8000_0000, is left
// for user programs), W^X: a gigapage for MMIO, and a level-1 table with megapages
// and 4 KiB pages for RAM (KernelMappings.swift). Every address space must contain
// those mappings so the kernel keeps running when it switches `satp` to a process.
// `create` therefore copies every valid entry of the kernel's root into the new root
// and marks each copy "borrowed"; a copy may be a leaf or point to a kernel table,
// which all spaces then share. Nothing beneath a borrowed entry is ever freed by
// `destroy`, and `map` and `unmap` refuse to work there, so a process's address
// space can never edit or free the kernel's tables. The copy is taken at creation:
// the kernel must finish its root entries before creating the first process (root
// entries it adds later would not appear in existing spaces). The kernel's root
// itself is made by `createKernel` (tests also build one with `mapGigapage`).
//
// `map` works in two phases: it first walks the tree to count the tables it will
// need and checks the allocator has that many free frames, and only then changes
// anything. So a failed map leaves the tree and the allocator exactly as they were;
// there is nothing to roll back. Tables emptied by `unmap` stay in place until
// `destroy`: processes are small and short, and reclaiming tables early would cost
// a scan of 512 entries on every unmap.
//
// `map` writes the flags it is given plus V, nothing more. Hardware may either set A
// and D itself or fault when they are clear (the Svade behaviour); a caller that
// wants to run on both passes `accessed` (and `dirty` for writable pages) up front.
//
// No function here flushes the TLB: after `unmap` or a permission change the caller
// must run `sfence.vma`, which belongs to the architecture layer.

/// The permission and status bits of a page-table entry (its low bits).
public struct PageFlags: OptionSet, Sendable {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let valid = PageFlags(rawValue: 1 << 0)
    public static let read = PageFlags(rawValue: 1 << 1)
    public static let write = PageFlags(rawValue: 1 << 2)
    public static let execute = PageFlags(rawValue: 1 << 3)
    public static let user = PageFlags(rawValue: 1 << 4)
    public static let global = PageFlags(rawValue: 1 << 5)
    public static let accessed = PageFlags(rawValue: 1 << 6)
    public static let dirty = PageFlags(rawValue: 1 << 7)
    /// RSW bit 8: the leaf frame belongs to this address space and is freed with it.
    public static let owned = PageFlags(rawValue: 1 << 8)
}

public enum MapError: Error, Equatable, Sendable {
    /// An address is not aligned to the size of the page being mapped.
    case misaligned
    /// The virtual address is not canonical, the physical address does not fit in
    /// Sv39's 56 bits, or the page lies beneath a root entry borrowed from the kernel.
    case outOfRange
    /// Something is already mapped at that virtual address.
    case alreadyMapped
    /// The allocator has too few frames for the page tables needed.
    case outOfMemory
}

/// One page-table entry, as stored in a table.
struct PageTableEntry {
    var rawValue: UInt64

    static let empty = PageTableEntry(rawValue: 0)

    /// RSW bit 9 in a root entry copied from the kernel's root: mapped, but not ours.
    static let borrowedBit: UInt64 = 1 << 9
    /// Every bit a caller may set through `PageFlags`.
    static let flagBits: UInt64 = 0x1FF
    /// R, W and X: a literal, so it needs no lazy initialisation in the kernel.
    private static let permissionBits: UInt64 = 0b1110
    private static let ppnShift: UInt64 = 10
    private static let ppnMask: UInt64 = (1 << 44) - 1

    init(rawValue: UInt64) { self.rawValue = rawValue }

    init(frame: PhysicalAddress, flags: PageFlags) {
        rawValue = frame.pageNumber << Self.ppnShift | flags.rawValue | PageFlags.valid.rawValue
    }

    /// An entry pointing at a next-level table: V alone.
    init(table: PhysicalAddress) {
        self.init(frame: table, flags: .valid)
    }

    var isValid: Bool { rawValue & PageFlags.valid.rawValue != 0 }
    var isLeaf: Bool { rawValue & Self.permissionBits != 0 }
    var isBorrowed: Bool { rawValue & Self.borrowedBit != 0 }
    var flags: PageFlags { PageFlags(rawValue: rawValue & Self.flagBits) }
    var frame: PhysicalAddress {
        PhysicalAddress((rawValue >> Self.ppnShift & Self.ppnMask) << pageShift)
    }
}

/// The page-table geometry of Sv39.
enum Sv39 {
    static let levels = 3
    static let entriesPerTable = 512
    /// The first physical address Sv39 cannot reach (44-bit PPN + 12-bit offset).
    static let physicalLimit: UInt64 = 1 << 56

    /// The VPN field of `address` that indexes a table at `level` (2 = root).
    static func index(of address: VirtualAddress, level: Int) -> Int {
        Int(truncatingIfNeeded: address.rawValue >> (pageShift + 9 * UInt64(level))) & (entriesPerTable - 1)
    }

    /// The bytes a leaf at `level` maps: 4 KiB, 2 MiB or 1 GiB.
    static func leafSize(level: Int) -> UInt64 {
        1 << (pageShift + 9 * UInt64(level))
    }

    /// Whether bits 63..39 of `address` all equal bit 38.
    static func isCanonical(_ address: VirtualAddress) -> Bool {
        let upperBits = Int64(bitPattern: address.rawValue) >> 38
        return upperBits == 0 || upperBits == -1
    }

    static func entryAddress(in table: PhysicalAddress, at index: Int) -> PhysicalAddress {
        table.advanced(by: index * MemoryLayout<UInt64>.size)
    }

    static func load<M: PhysicalMemory>(_ slot: PhysicalAddress, memory: M) -> PageTableEntry {
        PageTableEntry(rawValue: memory.pointer(to: slot).load(as: UInt64.self))
    }

    static func store<M: PhysicalMemory>(_ entry: PageTableEntry, at slot: PhysicalAddress, memory: M) {
        memory.pointer(to: slot).storeBytes(of: entry.rawValue, as: UInt64.self)
    }
}

/// Where a walk down the tree stopped: at an invalid entry, at a leaf, or at the
/// level-0 entry for the address.
struct WalkResult {
    var level: Int
    /// The physical address of the entry the walk stopped at.
    var slot: PhysicalAddress
    var entry: PageTableEntry
    /// Whether the walk passed through a root entry borrowed from the kernel.
    var isBorrowed: Bool

    var isLeaf: Bool { entry.isValid && entry.isLeaf }
    var isPageLeaf: Bool { level == 0 && isLeaf }
}

/// One Sv39 address space: a tree of page tables rooted at `root`.
public struct AddressSpace: Sendable {
    public let root: PhysicalAddress

    /// Wraps an existing root table.
    public init(root: PhysicalAddress) { self.root = root }

    /// Allocates a zeroed root and copies into it, marked borrowed, every valid entry
    /// of `kernelRoot` (none when it is nil), so the space shares the kernel's
    /// mappings without owning them. Nil when the allocator is exhausted.
    public static func create<M: PhysicalMemory>(
        allocator: inout FrameAllocator<M>, sharing kernelRoot: PhysicalAddress?
    ) -> AddressSpace? {
        guard let root = allocator.allocate() else { return nil }
        if let kernelRoot {
            for index in 0..<Sv39.entriesPerTable {
                let entry = Sv39.load(Sv39.entryAddress(in: kernelRoot, at: index), memory: allocator.memory)
                if entry.isValid {
                    let borrowed = PageTableEntry(rawValue: entry.rawValue | PageTableEntry.borrowedBit)
                    Sv39.store(borrowed, at: Sv39.entryAddress(in: root, at: index), memory: allocator.memory)
                }
            }
        }
        return AddressSpace(root: root)
    }

    /// Maps one 4 KiB page; allocates intermediate tables from `allocator`; returns how
    /// many table pages it allocated (the caller charges them to the process).
    /// `flags` must make a leaf (R or X; W only with R); V is added.
    public func map<M: PhysicalMemory>(
        _ va: VirtualAddress, to pa: PhysicalAddress, flags: PageFlags, allocator: inout FrameAllocator<M>
    ) throws(MapError) -> Int {
        Self.checkLeafFlags(flags)
        guard va.isPageAligned, pa.isPageAligned else { throw .misaligned }
        guard Sv39.isCanonical(va), pa.rawValue < Sv39.physicalLimit else { throw .outOfRange }
        let stop = walk(va, memory: allocator.memory)
        guard !stop.isBorrowed else { throw .outOfRange }
        guard !stop.entry.isValid else { throw .alreadyMapped }
        let tablesNeeded = stop.level
        guard allocator.freeFrames >= tablesNeeded else { throw .outOfMemory }

        var slot = stop.slot
        for level in stride(from: stop.level - 1, through: 0, by: -1) {
            guard let table = allocator.allocate() else {
                preconditionFailure("AddressSpace.map: frames counted free but none allocated")
            }
            Sv39.store(PageTableEntry(table: table), at: slot, memory: allocator.memory)
            slot = Sv39.entryAddress(in: table, at: Sv39.index(of: va, level: level))
        }
        Sv39.store(PageTableEntry(frame: pa, flags: flags), at: slot, memory: allocator.memory)
        return tablesNeeded
    }

    /// Maps a gigapage leaf at root level (for the kernel's own identity mappings).
    /// `flags` must make a leaf and must not include `owned`: a gigapage is not a frame.
    public func mapGigapage<M: PhysicalMemory>(
        _ va: VirtualAddress, to pa: PhysicalAddress, flags: PageFlags, memory: M
    ) throws(MapError) {
        Self.checkLeafFlags(flags)
        precondition(!flags.contains(.owned), "AddressSpace.mapGigapage: a gigapage cannot be owned")
        let gigapageMask = Sv39.leafSize(level: Sv39.levels - 1) - 1
        guard va.rawValue & gigapageMask == 0, pa.rawValue & gigapageMask == 0 else { throw .misaligned }
        guard Sv39.isCanonical(va), pa.rawValue < Sv39.physicalLimit else { throw .outOfRange }
        let slot = Sv39.entryAddress(in: root, at: Sv39.index(of: va, level: Sv39.levels - 1))
        guard !Sv39.load(slot, memory: memory).isValid else { throw .alreadyMapped }
        Sv39.store(PageTableEntry(frame: pa, flags: flags), at: slot, memory: memory)
    }

    /// Removes a 4 KiB mapping; returns the frame and flags it mapped, nil if none.
    /// Does not free the frame. Mappings beneath borrowed root entries are the
    /// kernel's and are left alone (nil).
    public func unmap<M: PhysicalMemory>(_ va: VirtualAddress, memory: M) -> (PhysicalAddress, PageFlags)? {
        guard Sv39.isCanonical(va) else { return nil }
        let stop = walk(va, memory: memory)
        guard stop.isPageLeaf, !stop.isBorrowed else { return nil }
        Sv39.store(.empty, at: stop.slot, memory: memory)
        return (stop.entry.frame, stop.entry.flags)
    }

    /// Walks the tree (4 KiB, 2 MiB and 1 GiB leaves); nil if unmapped. The address
    /// returned includes `va`'s offset within its page.
    public func translate<M: PhysicalMemory>(_ va: VirtualAddress, memory: M) -> (PhysicalAddress, PageFlags)? {
        guard Sv39.isCanonical(va) else { return nil }
        let stop = walk(va, memory: memory)
        guard stop.isLeaf else { return nil }
        let offset = va.rawValue & (Sv39.leafSize(level: stop.level) - 1)
        return (PhysicalAddress(stop.entry.frame.rawValue | offset), stop.entry.flags)
    }

    /// Frees every page table below the root that this space owns (not the shared root
    /// entries), every leaf frame marked `owned`, and the root itself; returns the
    /// number of frames freed.
    public func destroy<M: PhysicalMemory>(allocator: inout FrameAllocator<M>) -> Int {
        var freed = 0
        for index in 0..<Sv39.entriesPerTable {
            let entry = Sv39.load(Sv39.entryAddress(in: root, at: index), memory: allocator.memory)
            if entry.isValid, !entry.isBorrowed, !entry.isLeaf {
                freed += Self.destroyTable(entry.frame, allocator: &allocator)
            }
        }
        allocator.free(root)
        return freed + 1
    }

    /// The satp value selecting this space: mode 8 (Sv39), ASID, root PPN.
    public func satp(asid: UInt16) -> UInt64 {
        8 << 60 | UInt64(asid) << 44 | root.pageNumber
    }

    /// Descends from the root towards `va`'s level-0 entry, stopping early at an
    /// invalid entry or a leaf.
    func walk<M: PhysicalMemory>(_ va: VirtualAddress, memory: M) -> WalkResult {
        var level = Sv39.levels - 1
        var slot = Sv39.entryAddress(in: root, at: Sv39.index(of: va, level: level))
        var entry = Sv39.load(slot, memory: memory)
        let isBorrowed = entry.isBorrowed
        while level > 0, entry.isValid, !entry.isLeaf {
            level -= 1
            slot = Sv39.entryAddress(in: entry.frame, at: Sv39.index(of: va, level: level))
            entry = Sv39.load(slot, memory: memory)
        }
        return WalkResult(level: level, slot: slot, entry: entry, isBorrowed: isBorrowed)
    }

    /// Frees the table at `table`, every table below it and every owned leaf frame in
    /// them; returns the number of frames freed.
    private static func destroyTable<M: PhysicalMemory>(
        _ table: PhysicalAddress, allocator: inout FrameAllocator<M>
    ) -> Int {
        var freed = 0
        for index in 0..<Sv39.entriesPerTable {
            let entry = Sv39.load(Sv39.entryAddress(in: table, at: index), memory: allocator.memory)
            guard entry.isValid else { continue }
            if !entry.isLeaf {
                freed += destroyTable(entry.frame, allocator: &allocator)
            } else if entry.flags.contains(.owned) {
                allocator.free(entry.frame)
                freed += 1
            }
        }
        allocator.free(table)
        return freed + 1
    }

    /// A leaf needs R or X (V, R, W, X all clear would mean "pointer to a table"), W
    /// without R is reserved by the architecture, and only `PageFlags` bits may be set.
    /// The kernel chooses these flags itself, so a bad set is a kernel bug. (Written
    /// without OptionSet array literals, which allocate in unoptimised builds.)
    private static func checkLeafFlags(_ flags: PageFlags) {
        precondition(flags.rawValue & ~PageTableEntry.flagBits == 0, "AddressSpace: unknown page flag bits")
        precondition(flags.contains(.read) || flags.contains(.execute), "AddressSpace: leaf needs read or execute")
        precondition(!flags.contains(.write) || flags.contains(.read), "AddressSpace: write without read")
    }
}

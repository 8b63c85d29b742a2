// The kernel's own page table: an identity map of MMIO and RAM, writable or
// executable but never both (W^X).
//
// The kernel reaches everything physical through an identity map (virtual address =
// physical address): its image, the frames it hands to processes, their page tables
// and SSRs, and the devices. Mapping all of it read-write-execute would be simplest,
// but then one stray kernel store could rewrite kernel code or the boot image it
// loads programs from, and any frame a process can fill (its own pages, which the
// kernel reaches through this map) would be code the kernel can be steered into.
// So each region gets only what the kernel does with it:
//
//   physical = virtual                                         leaves          root
//   0x0000_0000 +------------------------------------+
//               | devices (MMIO)                rw-  |  gigapage          0
//   0x4000_0000 +------------------------------------+
//               | user space: never the kernel's     |  (each process's)  1
//   0x8000_0000 +------------------------------------+  ram.lowerBound
//               | firmware (OpenSBI)            rw-  |  megapage          2: one
//   0x8020_0000 +------------------------------------+  textStart            level-1
//               | kernel text                   r-x  |  4 KiB                table
//               +------------------------------------+  textEnd
//               | rodata, GOT, boot image       r--  |  4 KiB up to 2 MiB,
//               |                                    |  megapages, 4 KiB
//               +------------------------------------+  readOnlyEnd
//               | data, bss, boot stack         rw-  |  4 KiB
//               +------------------------------------+  kernelEnd
//               | free frames (the allocator's) rw-  |  4 KiB up to 2 MiB,
//               |                                    |  then megapages
//               +------------------------------------+  ram.upperBound
//               | (no RAM: unmapped)                 |
//   0xC000_0000 +------------------------------------+
//               | RAM past 1 GiB, if any        rw-  |  gigapages         3 ...
//
// Only kernel text is executable, and it is not writable. The rest of RAM must stay
// writable: the kernel zeroes frames, writes page tables, copies into user pages and
// patches user code through this map (the process executes that code through its
// own user mapping, after `fence.i`). Every leaf is global (G: the same in every
// address space, so a `satp` switch keeps it in the TLB), supervisor-only (no U), and
// has A (and D where writable) preset, so hardware that faults on clear A/D bits
// never faults on the kernel.
//
// Each region is mapped with the largest leaves its alignment allows: a gigapage
// where a whole aligned GiB fits, else a megapage where a whole aligned 2 MiB fits,
// else 4 KiB pages. Small pages thus appear only around section boundaries that do
// not fall on 2 MiB, and the linker script aligns every boundary to 4 KiB. For QEMU's
// 128 MiB and today's image that costs four frames (the root, one level-1 table, and
// the level-0 tables around text/rodata and data/free memory) instead of one; they
// come from the frame allocator at boot and stay the kernel's.
//
// Sharing with processes. `AddressSpace.create` copies every valid root entry of this
// table into each process's root, marked borrowed, so the level-1 and level-0 tables
// above are shared by every address space. That is safe because nothing below a
// borrowed entry is ever changed or freed by a process's space: `map` and `unmap`
// refuse beneath a borrowed entry, `destroy` and the audit skip it, and user access
// wants 4 KiB leaves with U set, which the kernel's leaves never have. The kernel
// never edits this table after boot; it must also keep away from root entry 1, the
// gigapage of user space, or no process could map anything there — `createKernel`
// refuses a layout that reaches into it.

/// Where the kernel image's sections and the machine's memory lie: all that decides
/// the kernel's mappings. Every boundary is a physical (= virtual) address on a 4 KiB
/// page, and the sections follow each other inside RAM:
/// `ram.lowerBound <= textStart <= textEnd <= readOnlyEnd <= kernelEnd <= ram.upperBound`.
public struct KernelLayout: Sendable {
    /// The gigapage every process maps its program, stacks and windows in (root
    /// entry 1 of Sv39); the kernel maps nothing there.
    public static var userSpace: Range<UInt64> { 0x4000_0000..<0x8000_0000 }

    public var ram: Range<PhysicalAddress>
    /// One window holding every device's registers (on QEMU virt, the first GiB).
    public var devices: Range<PhysicalAddress>
    public var textStart: PhysicalAddress
    /// Where kernel code ends and constants begin (rodata, GOT, boot image).
    public var textEnd: PhysicalAddress
    /// Where constants end and writable data begins (data, bss, boot stack).
    public var readOnlyEnd: PhysicalAddress
    /// Where the kernel image ends and the frame allocator's memory begins.
    public var kernelEnd: PhysicalAddress

    public init(ram: Range<PhysicalAddress>, devices: Range<PhysicalAddress>, textStart: PhysicalAddress,
                textEnd: PhysicalAddress, readOnlyEnd: PhysicalAddress, kernelEnd: PhysicalAddress) {
        self.ram = ram
        self.devices = devices
        self.textStart = textStart
        self.textEnd = textEnd
        self.readOnlyEnd = readOnlyEnd
        self.kernelEnd = kernelEnd
    }

    /// Checks the layout before anything is mapped, so mapping cannot meet an overlap.
    func validate() throws(KernelMapError) {
        guard ram.lowerBound.isPageAligned, ram.upperBound.isPageAligned, devices.lowerBound.isPageAligned,
              devices.upperBound.isPageAligned, textStart.isPageAligned, textEnd.isPageAligned,
              readOnlyEnd.isPageAligned, kernelEnd.isPageAligned else { throw .misaligned }
        guard ram.lowerBound <= textStart, textStart <= textEnd, textEnd <= readOnlyEnd,
              readOnlyEnd <= kernelEnd, kernelEnd <= ram.upperBound else { throw .sectionsOutOfOrder }
        guard ram.upperBound.rawValue <= Self.identityLimit, devices.upperBound.rawValue <= Self.identityLimit
        else { throw .outOfRange }
        guard !Self.intersect(ram, devices) else { throw .devicesOverlapRAM }
        let user = PhysicalAddress(Self.userSpace.lowerBound)..<PhysicalAddress(Self.userSpace.upperBound)
        guard !Self.intersect(ram, user), !Self.intersect(devices, user) else { throw .reachesUserSpace }
    }

    /// The first address an identity map cannot reach: the top of Sv39's low half.
    private static var identityLimit: UInt64 { 0x40_0000_0000 }

    private static func intersect(_ first: Range<PhysicalAddress>, _ second: Range<PhysicalAddress>) -> Bool {
        !first.isEmpty && !second.isEmpty && first.lowerBound < second.upperBound
            && second.lowerBound < first.upperBound
    }
}

public enum KernelMapError: Error, Equatable, Sendable {
    /// A boundary is not on a 4 KiB page.
    case misaligned
    /// The sections do not follow each other, text, constants, data, inside RAM.
    case sectionsOutOfOrder
    /// RAM or the device window ends above the low half of Sv39, which the identity
    /// map cannot reach.
    case outOfRange
    /// The device window overlaps RAM.
    case devicesOverlapRAM
    /// RAM or the device window reaches into the gigapage kept for user space.
    case reachesUserSpace
    /// The allocator ran out of frames for the page tables.
    case outOfMemory
}

/// What the kernel does with a region, which decides the only permissions it gets.
enum KernelMemoryUse {
    /// Kernel text: read and execute.
    case code
    /// Read-only data and the boot image: read.
    case constants
    /// Kernel data, its stack and every frame it hands out: read and write.
    case data
    /// Device registers: read and write.
    case devices

    var flags: PageFlags {
        let common = PageFlags.read.union(.global).union(.accessed)
        switch self {
        case .code: return common.union(.execute)
        case .constants: return common
        case .data, .devices: return common.union(.write).union(.dirty)
        }
    }
}

extension AddressSpace {
    /// Builds the kernel's page table for `layout`: a fresh root and the tables below
    /// it, all from `allocator` (and the kernel's from then on). A failure leaves a
    /// partly built table behind; the kernel cannot run without one, so its boot stops.
    public static func createKernel<M: PhysicalMemory>(
        layout: KernelLayout, allocator: inout FrameAllocator<M>
    ) throws(KernelMapError) -> AddressSpace {
        try layout.validate()
        guard let root = allocator.allocate() else { throw .outOfMemory }
        let space = AddressSpace(root: root)
        try space.mapIdentity(layout.devices, as: .devices, allocator: &allocator)
        try space.mapIdentity(layout.ram.lowerBound..<layout.textStart, as: .data, allocator: &allocator)
        try space.mapIdentity(layout.textStart..<layout.textEnd, as: .code, allocator: &allocator)
        try space.mapIdentity(layout.textEnd..<layout.readOnlyEnd, as: .constants, allocator: &allocator)
        try space.mapIdentity(layout.readOnlyEnd..<layout.kernelEnd, as: .data, allocator: &allocator)
        try space.mapIdentity(layout.kernelEnd..<layout.ram.upperBound, as: .data, allocator: &allocator)
        return space
    }

    /// Identity-maps the page-aligned `region`, each step with the largest leaf whose
    /// alignment and size fit inside what is left of it.
    private func mapIdentity<M: PhysicalMemory>(
        _ region: Range<PhysicalAddress>, as use: KernelMemoryUse, allocator: inout FrameAllocator<M>
    ) throws(KernelMapError) {
        let flags = use.flags
        var address = region.lowerBound.rawValue
        let end = region.upperBound.rawValue
        while address < end {
            var level = Sv39.levels - 1
            while level > 0 {
                let size = Sv39.leafSize(level: level)
                if address & (size - 1) == 0 && end - address >= size { break }
                level -= 1
            }
            try mapKernelLeaf(address, level: level, flags: flags, allocator: &allocator)
            address += Sv39.leafSize(level: level)
        }
    }

    /// Maps one identity leaf at `level`, allocating the tables above it that are
    /// missing. The layout was validated, so the slot is always free.
    private func mapKernelLeaf<M: PhysicalMemory>(
        _ address: UInt64, level leafLevel: Int, flags: PageFlags, allocator: inout FrameAllocator<M>
    ) throws(KernelMapError) {
        let va = VirtualAddress(address)
        var table = root
        var level = Sv39.levels - 1
        while level > leafLevel {
            let slot = Sv39.entryAddress(in: table, at: Sv39.index(of: va, level: level))
            var entry = Sv39.load(slot, memory: allocator.memory)
            if !entry.isValid {
                guard let next = allocator.allocate() else { throw .outOfMemory }
                entry = PageTableEntry(table: next)
                Sv39.store(entry, at: slot, memory: allocator.memory)
            }
            precondition(!entry.isLeaf, "AddressSpace.createKernel: regions overlap")
            table = entry.frame
            level -= 1
        }
        let slot = Sv39.entryAddress(in: table, at: Sv39.index(of: va, level: leafLevel))
        precondition(!Sv39.load(slot, memory: allocator.memory).isValid, "AddressSpace.createKernel: regions overlap")
        Sv39.store(PageTableEntry(frame: PhysicalAddress(address), flags: flags), at: slot, memory: allocator.memory)
    }
}

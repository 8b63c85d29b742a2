// Tests of Sv39 address spaces on fake RAM: mapping, translation, errors, sharing the
// kernel's root entries, and that destroy gives back exactly what was allocated.
import Testing
@testable import KernelCore

private let userRW: PageFlags = [.read, .write, .user]

@Suite struct Sv39Tests {
    @Test func mapTranslateUnmapRoundTrip() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        let frame = try allocateFrame(&frames)
        let va = VirtualAddress(0x4000_3000)

        let tables = try space.map(va, to: frame, flags: userRW, allocator: &frames)
        #expect(tables == 2, "a level-1 and a level-0 table")

        let translated = try #require(space.translate(va.advanced(by: 0x123), memory: ram))
        #expect(translated.0 == frame.advanced(by: 0x123))
        #expect(translated.1 == userRW.union(.valid))
        #expect(space.translate(va.advanced(by: pageSize), memory: ram) == nil)
        #expect(space.translate(va.advanced(by: -1), memory: ram) == nil)

        let removed = try #require(space.unmap(va, memory: ram))
        #expect(removed.0 == frame)
        #expect(removed.1 == userRW.union(.valid))
        #expect(space.translate(va, memory: ram) == nil)
        #expect(space.unmap(va, memory: ram) == nil)
        #expect(frames.isAllocated(frame), "unmap does not free the frame")
    }

    @Test func tablesAreAllocatedOnlyWhenMissing() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        let frame = try allocateFrame(&frames)
        let start = frames.freeFrames

        #expect(try space.map(VirtualAddress(0x4000_0000), to: frame, flags: userRW, allocator: &frames) == 2)
        #expect(try space.map(VirtualAddress(0x4000_1000), to: frame, flags: userRW, allocator: &frames) == 0)
        #expect(try space.map(VirtualAddress(0x4020_0000), to: frame, flags: userRW, allocator: &frames) == 1)
        #expect(try space.map(VirtualAddress(0xC000_0000), to: frame, flags: userRW, allocator: &frames) == 2)
        #expect(frames.freeFrames == start - 5)
        #expect(space.translate(VirtualAddress(0x4020_0000), memory: ram)?.0 == frame)
    }

    @Test func highCanonicalAddressesMap() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        let frame = try allocateFrame(&frames)
        let va = VirtualAddress(0xFFFF_FFC0_0000_0000)
        _ = try space.map(va, to: frame, flags: [.read], allocator: &frames)
        #expect(space.translate(va, memory: ram)?.0 == frame)
        #expect(space.translate(VirtualAddress(0), memory: ram) == nil, "index 256 is not index 0")
    }

    @Test func mapRejectsBadArguments() throws {
        var (_, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        let frame = try allocateFrame(&frames)
        let start = frames.freeFrames

        #expect(throws: MapError.misaligned) {
            try space.map(VirtualAddress(0x4000_0010), to: frame, flags: userRW, allocator: &frames)
        }
        #expect(throws: MapError.misaligned) {
            try space.map(VirtualAddress(0x4000_0000), to: frame.advanced(by: 8), flags: userRW, allocator: &frames)
        }
        #expect(throws: MapError.outOfRange) {
            try space.map(VirtualAddress(0x40_0000_0000), to: frame, flags: userRW, allocator: &frames)
        }
        #expect(throws: MapError.outOfRange) {
            try space.map(VirtualAddress(0x8000_0000_0000_0000), to: frame, flags: userRW, allocator: &frames)
        }
        #expect(throws: MapError.outOfRange) {
            try space.map(VirtualAddress(0x4000_0000), to: PhysicalAddress(1 << 56), flags: userRW, allocator: &frames)
        }
        #expect(frames.freeFrames == start, "a rejected map allocates nothing")

        _ = try space.map(VirtualAddress(0x4000_0000), to: frame, flags: userRW, allocator: &frames)
        let afterFirst = frames.freeFrames
        #expect(throws: MapError.alreadyMapped) {
            try space.map(VirtualAddress(0x4000_0000), to: frame, flags: [.read], allocator: &frames)
        }
        #expect(frames.freeFrames == afterFirst)
    }

    @Test func outOfMemoryMidMapLeavesNoTrace() throws {
        var (ram, frames) = makeMemoryTestAllocator(megabytes: 1)
        let space = try createSpace(&frames, sharing: nil)
        var hoard: [PhysicalAddress] = []
        while frames.freeFrames > 1, let frame = frames.allocate() { hoard.append(frame) }
        let va = VirtualAddress(0x4000_0000)

        #expect(throws: MapError.outOfMemory) {
            try space.map(va, to: hoard[0], flags: userRW, allocator: &frames)
        }
        #expect(frames.freeFrames == 1, "the one free frame was not taken")
        #expect(space.translate(va, memory: ram) == nil)
        #expect(space.walk(va, memory: ram).level == 2, "the root entry is still empty")

        frames.free(hoard.removeLast())
        #expect(try space.map(va, to: hoard[0], flags: userRW, allocator: &frames) == 2)
        #expect(space.translate(va, memory: ram)?.0 == hoard[0])
    }

    @Test func destroyFreesExactlyWhatWasAllocated() throws {
        var (_, frames) = makeMemoryTestAllocator(megabytes: 16)
        let start = frames.freeFrames
        let space = try createSpace(&frames, sharing: nil)

        // 1100 owned pages over many level-0 tables, three level-1 tables (one for a
        // page at the top of the high half), plus one page the space does not own.
        var tables = 0
        var pages = 0
        for index in 0..<1000 {
            let frame = try allocateFrame(&frames)
            tables += try space.map(VirtualAddress(0x4000_0000 + UInt64(index) << 12), to: frame,
                                    flags: userRW.union(.owned), allocator: &frames)
            pages += 1
        }
        for index in 0..<99 {
            let frame = try allocateFrame(&frames)
            tables += try space.map(VirtualAddress(0x1_0000_0000 + UInt64(index) << 21), to: frame,
                                    flags: [.read, .execute, .user, .owned], allocator: &frames)
            pages += 1
        }
        let highFrame = try allocateFrame(&frames)
        tables += try space.map(VirtualAddress(0xFFFF_FFFF_FFFF_F000), to: highFrame,
                                flags: [.read, .owned], allocator: &frames)
        pages += 1
        let shared = try allocateFrame(&frames)
        tables += try space.map(VirtualAddress(0x7000_0000), to: shared, flags: userRW, allocator: &frames)

        // Per region: its level-1 table plus one level-0 table per 2 MiB touched.
        #expect(tables == (1 + 2) + (1 + 99) + (1 + 1) + 1)
        #expect(frames.freeFrames == start - 1 - tables - pages - 1)

        let freed = space.destroy(allocator: &frames)
        #expect(freed == 1 + tables + pages)
        #expect(frames.isAllocated(shared), "a page without `owned` stays allocated")
        frames.free(shared)
        #expect(frames.freeFrames == start)
    }

    @Test func repeatedCreateMapDestroyDoesNotLeak() throws {
        var (_, frames) = makeMemoryTestAllocator(megabytes: 4)
        let start = frames.freeFrames
        for round in 0..<20 {
            let space = try createSpace(&frames, sharing: nil)
            for index in 0..<(50 + round * 7) {
                let frame = try allocateFrame(&frames)
                _ = try space.map(VirtualAddress(0x4000_0000 + UInt64(index * 37) << 12), to: frame,
                                  flags: userRW.union(.owned), allocator: &frames)
            }
            _ = space.destroy(allocator: &frames)
            #expect(frames.freeFrames == start)
        }
    }

    @Test func gigapagesTranslate() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let kernel = try createSpace(&frames, sharing: nil)
        let rwx: PageFlags = [.read, .write, .execute, .global, .accessed, .dirty]
        try kernel.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0x8000_0000), flags: rwx, memory: ram)
        try kernel.mapGigapage(VirtualAddress(0xFFFF_FFC0_0000_0000), to: PhysicalAddress(0x4000_0000),
                               flags: [.read, .write], memory: ram)

        let identity = try #require(kernel.translate(VirtualAddress(0x8012_3456), memory: ram))
        #expect(identity.0 == PhysicalAddress(0x8012_3456))
        #expect(identity.1 == rwx.union(.valid))
        #expect(kernel.translate(VirtualAddress(0xBFFF_FFFF), memory: ram)?.0 == PhysicalAddress(0xBFFF_FFFF))
        #expect(kernel.translate(VirtualAddress(0xC000_0000), memory: ram) == nil)
        #expect(kernel.translate(VirtualAddress(0xFFFF_FFC0_0000_0042), memory: ram)?.0 == PhysicalAddress(0x4000_0042))

        #expect(throws: MapError.misaligned) {
            try kernel.mapGigapage(VirtualAddress(0x4020_0000), to: PhysicalAddress(0x4000_0000),
                                   flags: [.read], memory: ram)
        }
        #expect(throws: MapError.misaligned) {
            try kernel.mapGigapage(VirtualAddress(0x4000_0000), to: PhysicalAddress(0x8020_0000),
                                   flags: [.read], memory: ram)
        }
        #expect(throws: MapError.outOfRange) {
            try kernel.mapGigapage(VirtualAddress(0x40_0000_0000), to: PhysicalAddress(0x4000_0000),
                                   flags: [.read], memory: ram)
        }
        #expect(throws: MapError.alreadyMapped) {
            try kernel.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0), flags: [.read], memory: ram)
        }
        let frame = try allocateFrame(&frames)
        #expect(throws: MapError.alreadyMapped, "a 4 KiB page inside a gigapage") {
            try kernel.map(VirtualAddress(0x8000_1000), to: frame, flags: [.read], allocator: &frames)
        }
        #expect(kernel.unmap(VirtualAddress(0x8000_1000), memory: ram) == nil, "unmap removes 4 KiB pages only")
    }

    @Test func megapagesTranslate() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        let frame = try allocateFrame(&frames)
        _ = try space.map(VirtualAddress(0x4000_0000), to: frame, flags: [.read], allocator: &frames)
        // Turn the level-1 entry for 0x4020_0000 into a 2 MiB leaf by hand; `map` only
        // makes 4 KiB pages, but the hardware (and so translate) accepts megapages.
        let stop = space.walk(VirtualAddress(0x4020_0000), memory: ram)
        #expect(stop.level == 1)
        Sv39.store(PageTableEntry(frame: PhysicalAddress(0x8040_0000), flags: [.read, .execute]),
                   at: stop.slot, memory: ram)
        let translated = try #require(space.translate(VirtualAddress(0x402F_EDCB), memory: ram))
        #expect(translated.0 == PhysicalAddress(0x804F_EDCB))
        #expect(translated.1 == [.valid, .read, .execute])
    }

    @Test func spacesShareTheKernelRootWithoutOwningIt() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let kernel = try createSpace(&frames, sharing: nil)
        let rwx: PageFlags = [.read, .write, .execute, .global]
        try kernel.mapGigapage(VirtualAddress(0x0), to: PhysicalAddress(0x0), flags: [.read, .write, .global],
                               memory: ram)
        try kernel.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0x8000_0000), flags: rwx, memory: ram)
        // A kernel mapping made of 4 KiB pages, so the kernel root also holds a table.
        let kernelFrame = try allocateFrame(&frames)
        _ = try kernel.map(VirtualAddress(0x1_0000_0000), to: kernelFrame, flags: [.read, .global], allocator: &frames)
        let kernelLeafTable = PhysicalAddress(kernel.walk(VirtualAddress(0x1_0000_0000), memory: ram).slot.rawValue & ~0xFFF)
        let start = frames.freeFrames

        let space = try createSpace(&frames, sharing: kernel.root)
        #expect(frames.freeFrames == start - 1, "only the root is allocated")
        #expect(space.translate(VirtualAddress(0x1000_0000), memory: ram)?.0 == PhysicalAddress(0x1000_0000))
        #expect(space.translate(VirtualAddress(0x8765_4321), memory: ram)?.0 == PhysicalAddress(0x8765_4321))
        #expect(space.translate(VirtualAddress(0x8765_4321), memory: ram)?.1 == rwx.union(.valid),
                "the borrowed mark is not a page flag")
        #expect(space.translate(VirtualAddress(0x1_0000_0000), memory: ram)?.0 == kernelFrame)
        #expect(space.translate(VirtualAddress(0x4000_0000), memory: ram) == nil, "index 1 is not shared")

        let frame = try allocateFrame(&frames)
        #expect(throws: MapError.outOfRange, "beneath a borrowed gigapage") {
            try space.map(VirtualAddress(0x8000_0000), to: frame, flags: userRW, allocator: &frames)
        }
        #expect(throws: MapError.outOfRange, "beneath a borrowed table") {
            try space.map(VirtualAddress(0x1_0000_1000), to: frame, flags: userRW, allocator: &frames)
        }
        #expect(space.unmap(VirtualAddress(0x1_0000_0000), memory: ram) == nil)
        #expect(kernel.translate(VirtualAddress(0x1_0000_0000), memory: ram)?.0 == kernelFrame)

        _ = try space.map(VirtualAddress(0x4000_0000), to: frame, flags: userRW.union(.owned), allocator: &frames)
        #expect(kernel.translate(VirtualAddress(0x4000_0000), memory: ram) == nil, "the kernel root is untouched")

        #expect(space.destroy(allocator: &frames) == 1 + 2 + 1)
        #expect(frames.freeFrames == start)
        #expect(frames.isAllocated(kernelLeafTable))
        #expect(frames.isAllocated(kernelFrame))
        #expect(kernel.translate(VirtualAddress(0x1_0000_0000), memory: ram)?.0 == kernelFrame)
    }

    @Test func satpSelectsSv39RootAndASID() {
        let space = AddressSpace(root: PhysicalAddress(0x8012_3000))
        #expect(space.satp(asid: 7) == 0x8000_7000_0008_0123)
        #expect(space.satp(asid: 0xFFFF) >> 44 & 0xFFFF == 0xFFFF)
        #expect(space.satp(asid: 0) >> 60 == 8)
    }
}

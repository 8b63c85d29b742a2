// Tests of the kernel's W^X page table (`AddressSpace.createKernel`) on the layout
// the real kernel has: QEMU's 128 MiB of RAM, kernel text from 0x8020_0000 and a boot
// image of ~23 MiB. Only the allocator's frames (where the tables go) are backed by
// fake RAM; the regions mapped are never touched, only described.
//
// They check every 4 KiB page of RAM for the permissions of its section, that small
// pages appear only around section boundaries, that user space stays empty, and that
// processes built on this table (which share its level-1 and level-0 tables through
// borrowed root entries) still map, translate and free exactly their own frames.
import Testing
@testable import KernelCore

private let ram = PhysicalAddress(0x8000_0000)..<PhysicalAddress(0x8800_0000)
private let devices = PhysicalAddress(0)..<PhysicalAddress(0x4000_0000)
private let textStart = PhysicalAddress(0x8020_0000)
private let textEnd = PhysicalAddress(0x8021_4000)
private let readOnlyEnd = PhysicalAddress(0x8197_1000)
private let kernelEnd = PhysicalAddress(0x819E_7000)

private let realistic = KernelLayout(ram: ram, devices: devices, textStart: textStart, textEnd: textEnd,
                                     readOnlyEnd: readOnlyEnd, kernelEnd: kernelEnd)

/// Fake RAM backing the first 32 MiB, and an allocator over what follows the kernel.
private func makeAllocator() -> (MemoryTestRAM, FrameAllocator<MemoryTestRAM>) {
    let backing = MemoryTestRAM(megabytes: 32)
    return (backing, FrameAllocator(memory: backing, range: kernelEnd..<backing.range.upperBound))
}

@Suite struct KernelMappingsTests {
    @Test func everyPageOfRAMHasOnlyItsSectionsPermissions() throws {
        var (backing, frames) = makeAllocator()
        let kernel = try AddressSpace.createKernel(layout: realistic, allocator: &frames)

        // Pages whose mapping is wrong, by kind (one expectation each, not 32,768).
        var wrongText: [UInt64] = [], wrongConstants: [UInt64] = [], wrongData: [UInt64] = []
        var address = ram.lowerBound.rawValue
        while address < ram.upperBound.rawValue {
            let (physical, flags) = try #require(kernel.translate(VirtualAddress(address), memory: backing))
            let common = physical.rawValue == address && flags.contains(.read) && flags.contains(.global)
                && flags.contains(.accessed) && !flags.contains(.user)
            if address >= textStart.rawValue && address < textEnd.rawValue {
                if !common || !flags.contains(.execute) || flags.contains(.write) { wrongText.append(address) }
            } else if address >= textEnd.rawValue && address < readOnlyEnd.rawValue {
                if !common || flags.contains(.execute) || flags.contains(.write) { wrongConstants.append(address) }
            } else if !common || flags.contains(.execute) || !flags.contains(.write) || !flags.contains(.dirty) {
                wrongData.append(address)
            }
            address += UInt64(pageSize)
        }
        #expect(wrongText.count == 0, "text must be r-x: first wrong \(wrongText.prefix(3)) of \(wrongText.count)")
        #expect(wrongConstants.count == 0,
                "constants must be r--: first wrong \(wrongConstants.prefix(3)) of \(wrongConstants.count)")
        #expect(wrongData.count == 0, "data and free RAM must be rw-: first wrong \(wrongData.prefix(3)) of \(wrongData.count)")
        #expect(kernel.translate(VirtualAddress(ram.upperBound.rawValue), memory: backing) == nil,
                "no RAM there, so no mapping")
        #expect(kernel.translate(VirtualAddress(0xBFFF_F000), memory: backing) == nil)
    }

    @Test func devicesAreWritableButNeverExecutable() throws {
        var (backing, frames) = makeAllocator()
        let kernel = try AddressSpace.createKernel(layout: realistic, allocator: &frames)
        for register: UInt64 in [0x0010_0000, 0x0200_0000, 0x0C00_0000, 0x1000_0000, 0x1000_8000, 0x3FFF_F000] {
            let (physical, flags) = try #require(kernel.translate(VirtualAddress(register), memory: backing))
            #expect(physical.rawValue == register)
            #expect(flags.contains(.read) && flags.contains(.write))
            #expect(!flags.contains(.execute) && !flags.contains(.user))
        }
        #expect(kernel.walk(VirtualAddress(0x1000_0000), memory: backing).level == 2, "one gigapage")
    }

    @Test func userSpaceStaysEmpty() throws {
        var (backing, frames) = makeAllocator()
        let kernel = try AddressSpace.createKernel(layout: realistic, allocator: &frames)
        let userRootEntry = Sv39.load(Sv39.entryAddress(in: kernel.root, at: 1), memory: backing)
        #expect(!userRootEntry.isValid)
        for index in 3..<Sv39.entriesPerTable {
            #expect(!Sv39.load(Sv39.entryAddress(in: kernel.root, at: index), memory: backing).isValid)
        }
        #expect(KernelLayout.userSpace == 0x4000_0000..<0x8000_0000, "root entry 1, exactly")
    }

    @Test func smallPagesOnlyAtSectionBoundaries() throws {
        var (backing, frames) = makeAllocator()
        let start = frames.freeFrames
        let kernel = try AddressSpace.createKernel(layout: realistic, allocator: &frames)
        #expect(start - frames.freeFrames == 4,
                "root, the level-1 table, level-0 tables for text/rodata and for data/free RAM")

        func level(_ address: UInt64) -> Int { kernel.walk(VirtualAddress(address), memory: backing).level }
        #expect(level(0x8000_0000) == 1, "firmware: one megapage")
        #expect(level(textStart.rawValue) == 0)
        #expect(level(textEnd.rawValue) == 0)
        #expect(level(0x803F_F000) == 0)
        #expect(level(0x8040_0000) == 1, "the boot image in megapages")
        #expect(level(0x8160_0000) == 1)
        #expect(level(0x8180_0000) == 0, "the megapage holding the end of the image")
        #expect(level(kernelEnd.rawValue) == 0)
        #expect(level(0x81A0_0000) == 1, "free RAM in megapages")
        #expect(level(0x87E0_0000) == 1)
    }

    @Test func largerRAMGetsGigapagesAndATail() throws {
        var (backing, frames) = makeAllocator()
        var layout = realistic
        layout.ram = ram.lowerBound..<PhysicalAddress(0x1_4000_1000)
        let kernel = try AddressSpace.createKernel(layout: layout, allocator: &frames)
        func walk(_ address: UInt64) -> WalkResult { kernel.walk(VirtualAddress(address), memory: backing) }
        #expect(walk(0xC000_0000).level == 2)
        #expect(walk(0x1_0000_0000).level == 2)
        #expect(walk(0x1_4000_0000).level == 0, "the last 4 KiB")
        #expect(walk(0x1_4000_0000).entry.flags.contains(.write))
        #expect(!walk(0x1_4000_0000).entry.flags.contains(.execute))
        #expect(kernel.translate(VirtualAddress(0x1_4000_1000), memory: backing) == nil)
    }

    @Test func aProcessSpaceBuiltOnTheKernelTableWorksAndFreesOnlyItsOwn() throws {
        var (backing, frames) = makeAllocator()
        let kernel = try AddressSpace.createKernel(layout: realistic, allocator: &frames)
        let kernelTextTable = PhysicalAddress(
            kernel.walk(VirtualAddress(textStart.rawValue), memory: backing).slot.rawValue & ~0xFFF)
        let start = frames.freeFrames

        let space = try createSpace(&frames, sharing: kernel.root)
        let userRW: PageFlags = [.read, .write, .user, .owned]
        for page in 0..<40 {
            let frame = try allocateFrame(&frames)
            _ = try space.map(VirtualAddress(0x4000_0000 + UInt64(page * 0x3_1000)), to: frame, flags: userRW,
                              allocator: &frames)
        }
        let frame = try allocateFrame(&frames)
        _ = try space.map(VirtualAddress(0x7FFF_F000), to: frame, flags: userRW, allocator: &frames)
        #expect(space.translate(VirtualAddress(0x7FFF_F123), memory: backing)?.0 == frame.advanced(by: 0x123))
        #expect(space.translate(VirtualAddress(0x8020_0040), memory: backing)?.0 == PhysicalAddress(0x8020_0040),
                "the kernel's text, through the shared tables")

        for kernelPage: UInt64 in [textStart.rawValue, textEnd.rawValue, kernelEnd.rawValue, 0x8040_0000] {
            let spare = try allocateFrame(&frames)
            #expect(throws: MapError.outOfRange, "beneath a borrowed kernel entry") {
                try space.map(VirtualAddress(kernelPage), to: spare, flags: userRW, allocator: &frames)
            }
            frames.free(spare)
            #expect(space.unmap(VirtualAddress(kernelPage), memory: backing) == nil)
            #expect(!space.isUserAccessible(VirtualAddress(kernelPage), count: 1, writable: false, memory: backing))
        }
        var byte: UInt8 = 0
        #expect(throws: UserAccessError.badAddress) {
            try space.copyIn(from: VirtualAddress(textStart.rawValue), count: 1, into: &byte, memory: backing)
        }
        #expect(kernel.translate(VirtualAddress(kernelEnd.rawValue), memory: backing) != nil, "unmap left it")

        _ = space.destroy(allocator: &frames)
        #expect(frames.freeFrames == start, "the space's frames, and only those, came back")
        #expect(frames.isAllocated(kernelTextTable), "the kernel's shared table survives")
        #expect(kernel.translate(VirtualAddress(textStart.rawValue), memory: backing)?.1.contains(.execute) == true)
    }

    @Test func layoutsThatCannotBeMappedAreRefused() throws {
        var (_, frames) = makeAllocator()
        let start = frames.freeFrames
        func refusal(_ change: (inout KernelLayout) -> Void) -> KernelMapError? {
            var layout = realistic
            change(&layout)
            do {
                _ = try AddressSpace.createKernel(layout: layout, allocator: &frames)
                return nil
            } catch {
                return error
            }
        }
        #expect(refusal { $0.textEnd = PhysicalAddress(0x8021_3800) } == .misaligned)
        #expect(refusal { $0.ram = ram.lowerBound..<PhysicalAddress(0x8800_0200) } == .misaligned)
        #expect(refusal { $0.readOnlyEnd = PhysicalAddress(0x8021_0000) } == .sectionsOutOfOrder)
        #expect(refusal { $0.ram = ram.lowerBound..<PhysicalAddress(0x8100_0000) } == .sectionsOutOfOrder)
        #expect(refusal { $0.devices = PhysicalAddress(0x7000_0000)..<PhysicalAddress(0x8000_1000) }
                == .devicesOverlapRAM)
        #expect(refusal { $0.devices = PhysicalAddress(0x3000_0000)..<PhysicalAddress(0x4000_1000) }
                == .reachesUserSpace)
        #expect(refusal { $0.ram = PhysicalAddress(0x7FE0_0000)..<ram.upperBound } == .reachesUserSpace)
        #expect(refusal { $0.ram = ram.lowerBound..<PhysicalAddress(0x40_0000_1000) } == .outOfRange)
        #expect(frames.freeFrames == start, "a refused layout allocates nothing")

        let backing = MemoryTestRAM()
        var tiny = FrameAllocator(memory: backing,
                                  range: backing.range.lowerBound..<backing.range.lowerBound.advanced(by: 4 * pageSize))
        #expect(tiny.freeFrames == 3, "one frame short of the four tables")
        #expect(throws: KernelMapError.outOfMemory) {
            _ = try AddressSpace.createKernel(layout: realistic, allocator: &tiny)
        }
    }
}

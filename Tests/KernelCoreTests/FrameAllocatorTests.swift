// Tests of the bitmap frame allocator on fake RAM.
import Testing
@testable import KernelCore

@Suite struct FrameAllocatorTests {
    @Test func bitmapTakesTheFirstPages() {
        let (ram, allocator) = makeMemoryTestAllocator(megabytes: 8)
        // 2048 pages: one bitmap page covers the 2047 left.
        #expect(allocator.totalFrames == 2047)
        #expect(allocator.freeFrames == 2047)
        #expect(!allocator.isAllocated(ram.range.lowerBound))
    }

    @Test func partialPagesAtTheEndsAreIgnored() {
        let ram = MemoryTestRAM(megabytes: 1)
        let range = PhysicalAddress(MemoryTestRAM.base + 0x100)..<PhysicalAddress(MemoryTestRAM.base + 0x10_0000 - 0x100)
        var allocator = FrameAllocator(memory: ram, range: range)
        // Whole pages 0x8000_1000 ..< 0x800F_F000: 254, one of them the bitmap.
        #expect(allocator.totalFrames == 253)
        var lowest = UInt64.max
        var highest = UInt64.min
        while let frame = allocator.allocate() {
            lowest = min(lowest, frame.rawValue)
            highest = max(highest, frame.rawValue)
        }
        #expect(lowest == MemoryTestRAM.base + 0x2000)
        #expect(highest == MemoryTestRAM.base + 0xF_E000)
    }

    @Test func bitmapSizeIsTheSmallestThatFits() {
        // One bitmap page holds 32768 bits, so 32769 pages need one and 32770 need two.
        // Only the first bitmap page is touched, so a small fake RAM is enough.
        let ram = MemoryTestRAM(megabytes: 1)
        func frames(pages: UInt64) -> Int {
            let range = PhysicalAddress(MemoryTestRAM.base)..<PhysicalAddress(MemoryTestRAM.base + pages << 12)
            return FrameAllocator(memory: ram, range: range).totalFrames
        }
        #expect(frames(pages: 32769) == 32768)
        #expect(frames(pages: 32770) == 32768)
        #expect(frames(pages: 32771) == 32769)
    }

    @Test func emptyAndTinyRanges() {
        let ram = MemoryTestRAM(megabytes: 1)
        let start = PhysicalAddress(MemoryTestRAM.base)
        var empty = FrameAllocator(memory: ram, range: start..<start.advanced(by: 0xFFF))
        #expect(empty.totalFrames == 0)
        #expect(empty.allocate() == nil)
        var bitmapOnly = FrameAllocator(memory: ram, range: start..<start.advanced(by: pageSize))
        #expect(bitmapOnly.totalFrames == 0)
        #expect(bitmapOnly.allocate() == nil)
        var one = FrameAllocator(memory: ram, range: start..<start.advanced(by: 2 * pageSize))
        #expect(one.allocate() == start.advanced(by: pageSize))
        #expect(one.allocate() == nil)
    }

    @Test func exhaustsAndRecoversExactly() {
        let (ram, allocator) = makeMemoryTestAllocator(megabytes: 4)
        var frames = allocator
        let start = frames.freeFrames
        var handedOut = Set<PhysicalAddress>()
        while let frame = frames.allocate() {
            #expect(frame.isPageAligned)
            #expect(ram.range.contains(frame))
            #expect(frame != ram.range.lowerBound, "the bitmap page is never handed out")
            #expect(handedOut.insert(frame).inserted, "frame handed out twice")
        }
        #expect(handedOut.count == start)
        #expect(frames.freeFrames == 0)
        #expect(frames.allocate() == nil)

        for frame in handedOut { frames.free(frame) }
        #expect(frames.freeFrames == start)
        var again = 0
        while frames.allocate() != nil { again += 1 }
        #expect(again == start)
    }

    @Test func allocatedFramesAreZeroed() {
        let (ram, allocator) = makeMemoryTestAllocator(megabytes: 1)
        var frames = allocator
        let first = frames.allocate()!
        #expect(ram.bytes(at: first, count: pageSize).allSatisfy { $0 == 0 }, "fresh RAM holds junk")

        ram.fill(first, count: pageSize, with: 0xFF)
        frames.free(first)
        let reused = frames.allocate()!
        #expect(reused == first, "the frame just freed is found first")
        #expect(ram.bytes(at: reused, count: pageSize).allSatisfy { $0 == 0 })
    }

    @Test func isAllocatedTracksEachFrame() {
        let (ram, allocator) = makeMemoryTestAllocator(megabytes: 1)
        var frames = allocator
        let a = frames.allocate()!
        let b = frames.allocate()!
        #expect(frames.isAllocated(a))
        #expect(frames.isAllocated(b))
        #expect(!frames.isAllocated(b.advanced(by: pageSize)))
        frames.free(a)
        #expect(!frames.isAllocated(a))
        #expect(frames.isAllocated(b))
        #expect(!frames.isAllocated(b.advanced(by: 8)), "misaligned addresses are not frames")
        #expect(!frames.isAllocated(ram.range.lowerBound), "the bitmap page is not a frame")
        #expect(!frames.isAllocated(ram.range.upperBound), "past the end is not a frame")
        #expect(!frames.isAllocated(PhysicalAddress(0x1000)), "before the start is not a frame")
    }

    @Test func searchWrapsAroundToFreeFramesBehindTheCursor() {
        var (_, frames) = makeMemoryTestAllocator(megabytes: 1)
        var all: [PhysicalAddress] = []
        while let frame = frames.allocate() { all.append(frame) }
        let first = all[0]
        let last = all[all.count - 1]
        let middle = all[all.count / 2]
        frames.free(first)
        frames.free(middle)
        frames.free(last)
        #expect(frames.allocate() == last)
        #expect(frames.allocate() == first, "the search wraps from the last word to the first")
        #expect(frames.allocate() == middle)
        #expect(frames.allocate() == nil)
        #expect(frames.freeFrames == 0)
    }
}

// The physical frame allocator.
//
// Curio hands out physical memory one 4 KiB frame at a time: page tables, process
// pages and kernel stacks are all single frames, so there is no need for a buddy
// system or for contiguous multi-frame runs. The allocator keeps one bit per frame
// (1 = allocated) in a bitmap, and the bitmap lives in the first frames of the very
// range it manages, because the kernel has no heap to put it in. Those bitmap frames
// are not counted as free or as total: from the outside the allocator simply
// manages a slightly smaller range.
//
//   range.lowerBound (rounded up to a page)          range.upperBound (rounded down)
//   |                                                                            |
//   +-------------+--------+--------+--------+--------+-- ... --+--------+-------+
//   | bitmap      | frame 0| frame 1| frame 2| frame 3|         |frame   |       |
//   | b frames    |        |        |        |        |         | T - 1  |       |
//   +-------------+--------+--------+--------+--------+-- ... --+--------+-------+
//   bit i of the bitmap (word i / 64, bit i % 64) says whether frame i is allocated.
//
// With N whole pages in the range, b bitmap frames hold 32768·b bits and must cover
// the T = N − b frames left over, so the smallest b is ⌈N / 32769⌉.
//
// Why a bitmap rather than xv6's free list threaded through the free frames: the
// bitmap answers "is this frame allocated?" without touching the frame, which lets
// `free` catch a double free (a free list would quietly link the frame in twice and
// later hand it to two owners), and it costs only 1/32768 of memory.
//
// Finding a free frame scans the bitmap a 64-bit word at a time, starting at a
// cursor where the last search ended (or at the last frame freed), so a run of
// allocations does not rescan the full words at the front. The unused bits of the
// last word are set once at start-up so the scan never has to check for the end.
//
// `allocate` zeroes the frame it returns. Every caller wants that (a page table must
// start empty, a process must never see another process's old data), and zeroing in
// one place means no caller can forget it.
//
// The allocator is a struct because the kernel has no heap for a class. Its state is
// split between the struct (counts, cursor) and the bitmap in physical memory, so
// there must be exactly one copy of it: the kernel keeps one in its state and passes
// it `inout`; a stray copy would disagree with the bitmap as soon as either is used.

public struct FrameAllocator<Memory: PhysicalMemory> {
    /// How the allocator reaches its bitmap and zeroes frames; the page-table code
    /// borrows it to reach the tables it allocates.
    let memory: Memory
    /// Where the bitmap starts: the first whole page of the range.
    let bitmapBase: PhysicalAddress
    /// The first frame handed out: frame index 0.
    let firstFrame: PhysicalAddress

    public let totalFrames: Int
    public private(set) var freeFrames: Int

    /// The bitmap word where the next search starts.
    private var searchCursor = 0

    private static var bitsPerWord: Int { 64 }
    private static var bitsPerPage: Int { pageSize * 8 }

    /// Manages every whole 4 KiB page in `range`, taking the first pages for the bitmap.
    public init(memory: Memory, range: Range<PhysicalAddress>) {
        let pageMask = UInt64(pageSize - 1)
        let start = (range.lowerBound.rawValue &+ pageMask) & ~pageMask
        let end = range.upperBound.rawValue & ~pageMask
        let pages = end > start ? Int((end - start) >> pageShift) : 0
        let bitmapPages = (pages + Self.bitsPerPage) / (Self.bitsPerPage + 1)

        self.memory = memory
        bitmapBase = PhysicalAddress(start)
        firstFrame = bitmapBase.advanced(by: bitmapPages * pageSize)
        totalFrames = pages - bitmapPages
        freeFrames = totalFrames

        for index in 0..<wordCount {
            storeWord(0, at: index)
        }
        let bitsInLastWord = totalFrames % Self.bitsPerWord
        if bitsInLastWord != 0 {
            storeWord(~0 << UInt64(bitsInLastWord), at: wordCount - 1)
        }
    }

    /// Returns a zeroed frame, or nil when every frame is allocated.
    public mutating func allocate() -> PhysicalAddress? {
        guard freeFrames > 0 else { return nil }
        var index = searchCursor
        while loadWord(at: index) == ~0 {
            index = (index + 1) % wordCount
        }
        let word = loadWord(at: index)
        let bit = (~word).trailingZeroBitCount
        storeWord(word | 1 << UInt64(bit), at: index)
        searchCursor = index
        freeFrames -= 1

        let frame = firstFrame.advanced(by: (index * Self.bitsPerWord + bit) * pageSize)
        memory.pointer(to: frame).initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
        return frame
    }

    /// Returns `frame` to the pool. Freeing anything but an allocated frame of this
    /// allocator is a kernel bug, and a double free would hand one frame to two owners,
    /// so both stop the kernel.
    public mutating func free(_ frame: PhysicalAddress) {
        guard let index = frameIndex(of: frame) else {
            preconditionFailure("FrameAllocator.free: not a frame of this allocator")
        }
        let wordIndex = index / Self.bitsPerWord
        let mask: UInt64 = 1 << UInt64(index % Self.bitsPerWord)
        let word = loadWord(at: wordIndex)
        precondition(word & mask != 0, "FrameAllocator.free: frame is not allocated (double free?)")
        storeWord(word & ~mask, at: wordIndex)
        searchCursor = wordIndex
        freeFrames += 1
    }

    /// Whether `frame` is currently allocated. Anything that is not one of this
    /// allocator's frames (misaligned, outside the range, a bitmap page) never was.
    public func isAllocated(_ frame: PhysicalAddress) -> Bool {
        guard let index = frameIndex(of: frame) else { return false }
        return loadWord(at: index / Self.bitsPerWord) & 1 << UInt64(index % Self.bitsPerWord) != 0
    }

    private var wordCount: Int { (totalFrames + Self.bitsPerWord - 1) / Self.bitsPerWord }

    /// The bitmap index of `frame`, or nil if it is not a page this allocator hands out.
    private func frameIndex(of frame: PhysicalAddress) -> Int? {
        guard frame.isPageAligned, frame >= firstFrame else { return nil }
        let index = Int((frame.rawValue - firstFrame.rawValue) >> pageShift)
        return index < totalFrames ? index : nil
    }

    private func wordPointer(_ index: Int) -> UnsafeMutableRawPointer {
        memory.pointer(to: bitmapBase.advanced(by: index * MemoryLayout<UInt64>.size))
    }

    private func loadWord(at index: Int) -> UInt64 {
        wordPointer(index).load(as: UInt64.self)
    }

    private func storeWord(_ word: UInt64, at index: Int) {
        wordPointer(index).storeBytes(of: word, as: UInt64.self)
    }
}

// Fuzz target `elf`: the kernel's ELF reader, and what the loader then does with a
// file it accepted.
//
// The input is an ELF file; the seeds are real Curio programs as ld.lld links them
// and small hand-made ones. `ELFImage` checks it against the range the kernel loads
// programs into (`Kernel.programSpace`); for a file it accepts, the harness does
// what `Kernel.load` does with the answers — each segment's pages, the file bytes
// copied into each, the end address and the heap base rounded up after it — so a
// segment the reader passed but that lies outside the file or wraps the address
// space shows up as an out-of-bounds read or an overflow trap here. It also reads
// the same bytes with the host tool's wide range (mkimage checks every ELF so),
// where only the segments' places in the file and the end address are used.

import KernelCore

/// What `Kernel.load` does with an accepted image: returns the bytes it would copy.
func loadAsTheKernelDoes(_ elf: ELFImage, file: UnsafeRawBufferPointer, page: UnsafeMutableRawBufferPointer) -> Int {
    var copied = 0
    let pageBytes = Int(ELFImage.pageSize)
    for index in 0..<elf.loadSegmentCount {
        let segment = elf.loadSegment(index)
        precondition(segment.fileSize <= segment.memorySize && segment.virtualAddress % ELFImage.pageSize == 0)
        let pages = Int((segment.memorySize + ELFImage.pageSize - 1) / ELFImage.pageSize)
        // The kernel's budget stops a huge segment long before this; so does the harness.
        for pageIndex in 0..<min(pages, 64) {
            let offset = pageIndex * pageBytes
            if UInt64(offset) < segment.fileSize {
                let count = min(pageBytes, Int(segment.fileSize) - offset)
                let source = file.baseAddress! + Int(segment.fileOffset) + offset
                page.baseAddress!.copyMemory(from: source, byteCount: count)
                copied += count
            }
        }
    }
    return copied
}

nonisolated(unsafe) let scratchPage = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzELF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = UnsafeRawBufferPointer(start: data, count: size)
    let programSpace: Range<UInt64> = 0x4000_0000..<0x6000_0000
    if let elf = try? ELFImage(file, allowedRange: programSpace) {
        precondition(elf.endAddress <= programSpace.upperBound, "a segment ends past the program space")
        precondition(programSpace.contains(elf.entryPoint), "the entry point is outside the program space")
        _ = loadAsTheKernelDoes(elf, file: file, page: scratchPage)
        let pageMask = ELFImage.pageSize - 1
        _ = (elf.endAddress + pageMask) & ~pageMask  // the heap's base, as Kernel.load rounds it
    }
    if let elf = try? ELFImage(file, allowedRange: 0..<UInt64.max) {
        for index in 0..<elf.loadSegmentCount {
            let segment = elf.loadSegment(index)
            precondition(segment.fileOffset <= UInt64(size) && segment.fileSize <= UInt64(size) - segment.fileOffset,
                         "a segment's bytes lie outside the file")
        }
        _ = elf.endAddress
    }
    return 0
}

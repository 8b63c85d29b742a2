// ELFImage against hand-built executables (one rule broken at a time), against
// corrupted and truncated copies of a good one (it must answer, never trap),
// and against a real riscv64 executable built by swiftc and ld.lld.

import Foundation
import KernelCore
import Testing

@Suite struct ELFTests {
    @Test func readsATypicalExecutable() throws {
        let segments = try parseELF(TestELF.typical()).get()
        #expect(segments.count == 2)
        let text = segments[0], data = segments[1]
        #expect(text.virtualAddress == TestELF.textAddress)
        #expect(text.memorySize == 0x20 && text.fileSize == 0x20)
        #expect(text.fileOffset == UInt64(TestELF.headerSize + 2 * TestELF.programHeaderSize))
        #expect(text.readable && !text.writable && text.executable)
        #expect(data.virtualAddress == TestELF.dataAddress)
        #expect(data.fileSize == 8 && data.memorySize == 0x2000)
        #expect(data.fileOffset == text.fileOffset + 0x20)
        #expect(data.readable && data.writable && !data.executable)

        TestELF.typical(entry: TestELF.textAddress + 0x1F).withUnsafeBytes { buffer in
            #expect((try? ELFImage(buffer, allowedRange: 0..<UInt64.max))?.entryPoint == TestELF.textAddress + 0x1F)
        }
    }

    @Test func skipsSegmentsThatAreNotLoadable() throws {
        let elf = makeELF(entry: TestELF.textAddress, segments: [
            TestSegment(type: 0x6474_E551, flags: 6, virtualAddress: 0, memorySize: 0),  // PT_GNU_STACK
            TestSegment(flags: 5, virtualAddress: TestELF.textAddress, memorySize: 4, contents: [0, 0, 0, 0]),
            TestSegment(type: 0x7000_0003, flags: 4, virtualAddress: 0, memorySize: 0, contents: [9, 9]),  // attributes
            TestSegment(flags: 4, virtualAddress: TestELF.dataAddress, memorySize: 4, contents: [1, 1, 1, 1]),
        ])
        let segments = try parseELF(elf).get()
        #expect(segments.map(\.virtualAddress) == [TestELF.textAddress, TestELF.dataAddress])
        #expect(segments.map(\.executable) == [true, false])
    }

    @Test func acceptsSegmentsOnNeighbouringPages() {
        let elf = makeELF(entry: TestELF.textAddress, segments: [
            TestSegment(flags: 5, virtualAddress: TestELF.textAddress, memorySize: 0x1000),
            TestSegment(flags: 6, virtualAddress: TestELF.textAddress + 0x1000, memorySize: 0x1000),
        ])
        #expect(elfError(elf) == nil)
    }

    @Test func refusesBadHeaders() {
        let good = TestELF.typical()
        #expect(elfError([]) == .truncated)
        #expect(elfError(Array(good[0..<63])) == .truncated)
        #expect(elfError(withMutation(good) { $0[1] = UInt8(ascii: "e") }) == .badMagic)
        #expect(elfError(withMutation(good) { $0[TestELF.classOffset] = 1 }) == .notELF64LittleEndian)
        #expect(elfError(withMutation(good) { $0[TestELF.dataOffset] = 2 }) == .notELF64LittleEndian)
        #expect(elfError(withMutation(good) { put(UInt16(62), in: &$0, at: TestELF.machineOffset) }) == .notRISCV)
        #expect(elfError(withMutation(good) { put(UInt16(3), in: &$0, at: TestELF.typeOffset) }) == .notExecutable)
        #expect(elfError(withMutation(good) { put(UInt16(1), in: &$0, at: TestELF.typeOffset) }) == .notExecutable)
    }

    @Test func refusesBadProgramHeaderTables() {
        let good = TestELF.typical()
        let entrySize = TestELF.programHeaderEntrySizeOffset, count = TestELF.programHeaderCountOffset
        let tableOffset = TestELF.programHeaderOffsetOffset
        #expect(elfError(withMutation(good) { put(UInt16(32), in: &$0, at: entrySize) }) == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt16(65), in: &$0, at: count) }) == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt16(0xFFFF), in: &$0, at: count) }) == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt64(good.count - 56), in: &$0, at: tableOffset) }) == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt64.max, in: &$0, at: tableOffset) }) == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt64.max - 8, in: &$0, at: tableOffset) }) == .badProgramHeaders)
        // File size larger than memory size.
        #expect(elfError(withMutation(good) { put(UInt64(0x21), in: &$0, at: TestELF.programHeader(0) + 32) })
            == .badProgramHeaders)
        #expect(elfError(withMutation(good) { put(UInt16(0), in: &$0, at: count) }) == .noLoadableSegments)
        let onlyStack = makeELF(entry: 0, segments: [TestSegment(type: 0x6474_E551, flags: 6, virtualAddress: 0, memorySize: 0)])
        #expect(elfError(onlyStack) == .noLoadableSegments)
    }

    @Test func refusesBadSegments() {
        let good = TestELF.typical()
        let data = TestELF.programHeader(1)
        #expect(elfError(withMutation(good) { put(TestELF.dataAddress + 8, in: &$0, at: data + 16) }) == .misalignedSegment)
        // File range past the end, and offsets or sizes that overflow when added.
        #expect(elfError(withMutation(good) { put(UInt64(good.count - 7), in: &$0, at: data + 8) }) == .segmentOutsideFile)
        #expect(elfError(withMutation(good) { put(UInt64.max, in: &$0, at: data + 8) }) == .segmentOutsideFile)
        #expect(elfError(withMutation(good) {
            put(UInt64.max - 4, in: &$0, at: data + 32)
            put(UInt64.max - 4, in: &$0, at: data + 40)
        }) == .segmentOutsideFile)

        let range: Range<UInt64> = 0x4000_0000..<0x4000_3000
        #expect(elfError(good, allowedRange: range) == nil)
        #expect(elfError(good, allowedRange: 0x4000_1000..<0x4000_3000) == .segmentOutsideAllowedRange)
        #expect(elfError(good, allowedRange: 0x4000_0000..<0x4000_2FFF) == .segmentOutsideAllowedRange)
        #expect(elfError(withMutation(good) { put(UInt64.max, in: &$0, at: data + 40) }, allowedRange: 0..<UInt64.max)
            == .segmentOutsideAllowedRange)
        #expect(elfError(withMutation(good) { put(UInt64.max - 0xFFF, in: &$0, at: data + 16) }, allowedRange: 0..<UInt64.max)
            == .segmentOutsideAllowedRange)
    }

    @Test func refusesSegmentsSharingAPage() {
        let shared = makeELF(entry: TestELF.textAddress, segments: [
            TestSegment(flags: 5, virtualAddress: TestELF.textAddress, memorySize: 0x1001),
            TestSegment(flags: 6, virtualAddress: TestELF.textAddress + 0x1000, memorySize: 0x10),
        ])
        #expect(elfError(shared) == .overlappingSegments)
        let same = makeELF(entry: TestELF.textAddress, segments: [
            TestSegment(flags: 6, virtualAddress: TestELF.dataAddress, memorySize: 0x3000),
            TestSegment(flags: 5, virtualAddress: TestELF.textAddress, memorySize: 0x10),
            TestSegment(flags: 4, virtualAddress: TestELF.dataAddress + 0x2000, memorySize: 0x10),
        ])
        #expect(elfError(same) == .overlappingSegments)
    }

    @Test func refusesAnEntryPointOutsideCode() {
        #expect(elfError(TestELF.typical(entry: TestELF.dataAddress)) == .entryPointNotExecutable)
        #expect(elfError(TestELF.typical(entry: TestELF.textAddress + 0x20)) == .entryPointNotExecutable)
        #expect(elfError(TestELF.typical(entry: 0)) == .entryPointNotExecutable)
    }

    @Test func survivesEveryCorruptionOfTheHeaders() {
        let good = TestELF.typical()
        let headersEnd = TestELF.programHeader(2)
        for offset in 0..<headersEnd {
            for value in corruptions(of: good[offset]) {
                _ = parseELF(withMutation(good) { $0[offset] = value }, allowedRange: 0..<UInt64.max)
            }
        }
        var generator = SeededGenerator(state: 0xE1F)
        for _ in 0..<20_000 {
            let mutated = withMutation(good) { bytes in
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    bytes[Int.random(in: 0..<headersEnd, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            if case .success(let segments) = parseELF(mutated, allowedRange: 0..<UInt64.max) {
                for segment in segments {
                    #expect(segment.fileSize <= segment.memorySize)
                    #expect(segment.fileOffset + segment.fileSize <= UInt64(mutated.count))
                }
            }
        }
    }

    @Test func refusesEveryTruncation() {
        let good = TestELF.typical()
        for length in 0..<good.count {
            #expect(elfError(Array(good[0..<length])) != nil, "length \(length)")
        }
    }

    /// Compiles a tiny Embedded Swift program for riscv64 and links it the way our
    /// linker scripts do: text at 0x40000000, data on the next page.
    static func buildRealExecutable(in directory: URL) throws -> URL {
        let source = directory.appendingPathComponent("prog.swift")
        try """
            nonisolated(unsafe) var counter: Int = 7
            nonisolated(unsafe) var scratch: (Int, Int, Int, Int) = (0, 0, 0, 0)
            @_cdecl("_start")
            public func start(_ step: Int) -> Int {
                counter &+= step
                scratch.1 = counter
                return scratch.0 &+ scratch.1
            }
            """.write(to: source, atomically: true, encoding: .utf8)
        let script = directory.appendingPathComponent("link.ld")
        try """
            SECTIONS {
              . = 0x40000000;
              .text : { *(.text .text.*) }
              . = ALIGN(4096);
              .data : { *(.data .data.* .sdata .sdata.*) }
              .bss : { *(.bss .bss.* .sbss .sbss.*) }
              /DISCARD/ : { *(.swift_modhash) }
            }
            """.write(to: script, atomically: true, encoding: .utf8)
        let object = directory.appendingPathComponent("prog.o")
        let executable = directory.appendingPathComponent("Prog.elf")
        try runTool("\(toolchain)/swiftc", [
            "-target", "riscv64-none-none-eabi", "-enable-experimental-feature", "Embedded", "-parse-as-library",
            "-wmo", "-Osize", "-Xfrontend", "-disable-stack-protector", "-Xfrontend", "-function-sections",
            "-module-name", "prog", "-c", source.path, "-o", object.path,
        ])
        try runTool("\(toolchain)/ld.lld", ["-T", script.path, "-e", "_start", "--gc-sections", object.path,
                                            "-o", executable.path])
        return executable
    }

    @Test(.enabled(if: toolExists("\(toolchain)/swiftc") && toolExists("\(toolchain)/ld.lld")))
    func readsARealRISCVExecutable() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let elf = [UInt8](try Data(contentsOf: Self.buildRealExecutable(in: directory)))

        let segments = try parseELF(elf, allowedRange: 0x4000_0000..<0x80_0000_0000).get()
        #expect(segments.count == 2)
        #expect(segments[0].virtualAddress == 0x4000_0000 && segments[0].executable && !segments[0].writable)
        #expect(segments[1].virtualAddress == 0x4000_1000 && segments[1].writable && !segments[1].executable)
        #expect(segments[1].memorySize > segments[1].fileSize, "bss follows data")
        elf.withUnsafeBytes { buffer in
            #expect((try? ELFImage(buffer, allowedRange: 0x4000_0000..<0x80_0000_0000))?.entryPoint == 0x4000_0000)
        }
        #expect(elfError(elf, allowedRange: 0x4000_1000..<0x80_0000_0000) == .segmentOutsideAllowedRange)
    }
}

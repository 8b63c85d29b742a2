// ImageWriter -> BootImage round trips (what is written is what the kernel
// reads), BootImage's answer to each kind of bad entry, and mutation loops
// showing that no corruption or truncation of an image makes it trap.

import Foundation
import KernelCore
import SystemImage
import Testing

private let system = """
    [program.console]
    module = "ConsoleServer"
    priority = 1
    memory = 128
    stack = 16
    heap = 32
    start = true
    interrupts = [10, 11]
    devices = ["0x10000000+0x1000", "0x10001000+0x2000"]

    [program.shell]
    module = "Shell"
    priority = 4
    memory = 512
    stack = 32
    heap = 256
    start = true
    manage = true
    boot_arguments = true
    sends = ["crashme", "console"]

    [program.crashme]
    module = "Crashme"
    priority = 7
    memory = 8
    stack = 4
    heap = 0
    sends = ["console"]
    """

private let shellSymbols = [
    ProgramSymbol(address: 0x4000_0100, name: "Shell.run()"),
    ProgramSymbol(address: 0x4000_0000, name: "_start"),
    ProgramSymbol(address: 0x4000_0040, name: "main()"),
]

private func binaries() -> [ProgramBinary] {
    [
        ProgramBinary(elf: TestELF.typical(), symbols: [ProgramSymbol(address: 0x4000_0000, name: "console")]),
        ProgramBinary(elf: TestELF.typical(entry: TestELF.textAddress + 4), symbols: shellSymbols),
        ProgramBinary(elf: makeELF(entry: TestELF.textAddress, segments: [
            TestSegment(flags: 7, virtualAddress: TestELF.textAddress, memorySize: 2, contents: [0x02, 0x90]),
        ]), symbols: []),
    ]
}

private func makeImage() throws -> [UInt8] {
    try ImageWriter.makeImage(system: SystemDescription(parsing: system), binaries: binaries())
}

private func bootImageError(_ bytes: [UInt8]) -> BootImageError? {
    bytes.withUnsafeBytes { buffer in
        do throws(BootImageError) {
            _ = try BootImage(buffer)
            return nil
        } catch {
            return error
        }
    }
}

private func name(_ text: String) -> [UInt8] { Array(text.utf8) }

private func string(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

/// Parses `bytes` and, if they are accepted, uses every accessor on every program.
private func exerciseEverything(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        guard let image = try? BootImage(buffer) else { return }
        for index in 0..<image.programCount {
            let program = image.program(index)
            for slot in 0..<program.interruptCount { _ = program.interrupt(slot) }
            for slot in 0..<program.deviceCount { _ = program.device(slot) }
            let elf = image.elf(of: index)
            _ = parseELF(Array(elf))
            _ = program.name.withBytes { image.index(of: $0) }
            for address: UInt64 in [0, 0x4000_0000, 0x4000_0041, 0x4000_0FFF, .max] {
                if let (symbol, _) = image.symbolize(program: index, address: address) { _ = Array(symbol) }
            }
        }
    }
}

@Suite struct BootImageRoundTripTests {
    @Test func readsBackWhatWasWritten() throws {
        let bytes = try makeImage()
        let binaries = binaries()
        try bytes.withUnsafeBytes { buffer in
            let image = try BootImage(buffer)
            #expect(image.programCount == 3)
            let console = image.program(0), shell = image.program(1), crashme = image.program(2)
            #expect(console.name.withBytes(string) == "console" && console.name.count == 7)
            #expect(shell.name.withBytes(string) == "shell")
            #expect(crashme.name.withBytes(string) == "crashme")
            #expect([console.priority, shell.priority, crashme.priority] == [1, 4, 7])
            #expect(console.startsAtBoot && !console.mayManage && !console.receivesBootArguments)
            #expect(shell.startsAtBoot && shell.mayManage && shell.receivesBootArguments)
            #expect(!crashme.startsAtBoot && !crashme.mayManage && !crashme.receivesBootArguments)
            #expect([console.memoryPages, console.stackPages, console.heapPages] as [Int] == [32, 4, 8])
            #expect([shell.memoryPages, shell.stackPages, shell.heapPages] as [Int] == [128, 8, 64])
            #expect([crashme.memoryPages, crashme.stackPages, crashme.heapPages] as [Int] == [2, 1, 0])
            #expect(console.sendMask == 0 && shell.sendMask == 0b101 && crashme.sendMask == 0b001)
            #expect(console.interruptCount == 2 && console.interrupt(0) == 10 && console.interrupt(1) == 11)
            #expect(shell.interruptCount == 0 && shell.deviceCount == 0)
            #expect(console.deviceCount == 2)
            #expect(console.device(0) == (0x1000_0000, 0x1000) && console.device(1) == (0x1000_1000, 0x2000))

            for index in 0..<3 {
                #expect(Array(image.elf(of: index)) == binaries[index].elf)
            }
            #expect(name("shell").withUnsafeBytes { image.index(of: $0) } == 1)
            #expect(name("crashme").withUnsafeBytes { image.index(of: $0) } == 2)
            #expect(name("nobody").withUnsafeBytes { image.index(of: $0) } == nil)
            #expect(name("Shell").withUnsafeBytes { image.index(of: $0) } == nil)
            #expect(name("").withUnsafeBytes { image.index(of: $0) } == nil)
            #expect(name("shell-but-much-too-long").withUnsafeBytes { image.index(of: $0) } == nil)
        }
    }

    @Test func placesEveryELFOnAPage() throws {
        let bytes = try makeImage()
        for index in 0..<3 {
            let entry = BootImageFormat.headerSize + index * BootImageFormat.programEntrySize
            #expect(readLittleEndian(UInt32.self, from: bytes, at: entry + BootImageFormat.ProgramField.elfOffset) % 4096 == 0)
        }
    }

    @Test func symbolizesAddresses() throws {
        let bytes = try makeImage()
        try bytes.withUnsafeBytes { buffer in
            let image = try BootImage(buffer)
            func lookUp(_ program: Int, _ address: UInt64) -> String? {
                image.symbolize(program: program, address: address).map { "\(string($0.name))+\($0.offset)" }
            }
            #expect(lookUp(1, 0x3FFF_FFFF) == nil)
            #expect(lookUp(1, 0x4000_0000) == "_start+0")
            #expect(lookUp(1, 0x4000_003F) == "_start+63")
            #expect(lookUp(1, 0x4000_0040) == "main()+0")
            #expect(lookUp(1, 0x4000_00FF) == "main()+191")
            #expect(lookUp(1, 0x4000_0100) == "Shell.run()+0")
            #expect(lookUp(1, 0x4000_2000) == "Shell.run()+7936")
            #expect(lookUp(0, 0x4000_0010) == "console+16")
            #expect(lookUp(2, 0x4000_0000) == nil, "a program without symbols")
        }
    }

    @Test func refusesBinariesThatDoNotMatch() throws {
        let description = try SystemDescription(parsing: system)
        #expect(throws: ImageWriterError.self) {
            try ImageWriter.makeImage(system: description, binaries: Array(binaries().dropLast()))
        }
        var broken = binaries()
        broken[1].elf[18] = 62  // x86-64
        do {
            _ = try ImageWriter.makeImage(system: description, binaries: broken)
            Issue.record("a non-RISC-V ELF was packed")
        } catch {
            guard case .badELF(program: "shell", .notRISCV) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
        }
    }
}

@Suite struct RealProgramTests {
    @Test(.enabled(if: toolExists("\(toolchain)/swiftc") && toolExists("\(toolchain)/ld.lld")
                   && toolExists(SymbolTools().nm) && toolExists(SymbolTools().demangler)))
    func packsARealProgramWithItsSymbols() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let executable = try ELFTests.buildRealExecutable(in: directory)

        let symbols = try SymbolTools().textSymbols(ofELFAt: executable.path)
        #expect(symbols.contains(ProgramSymbol(address: 0x4000_0000, name: "_start")))
        #expect(symbols.contains { $0.name == "start(_:)" }, "Embedded Swift names are demangled: \(symbols)")
        #expect(!symbols.contains { $0.name.hasPrefix(".L") }, "local labels are dropped")
        #expect(!symbols.contains { $0.name.contains("counter") }, "data symbols are dropped")

        let description = try SystemDescription(parsing: "[program.prog]\nmodule = \"Prog\"\npriority = 3\n"
                                                + "memory = 16\nstack = 4\nheap = 4\nstart = true")
        let bytes = try ImageWriter.makeImage(system: description, elfDirectory: directory.path)
        try bytes.withUnsafeBytes { buffer in
            let image = try BootImage(buffer)
            #expect(Array(image.elf(of: 0)) == [UInt8](try Data(contentsOf: executable)))
            let start = try #require(symbols.first { $0.name == "start(_:)" })
            let found = try #require(image.symbolize(program: 0, address: start.address + 6))
            #expect(String(decoding: found.name, as: UTF8.self) == "start(_:)" && found.offset == 6)
        }
    }

    @Test func reportsToolsThatFail() throws {
        let missing = SymbolTools(nm: "/nonexistent/llvm-nm")
        #expect(throws: ImageWriterError.self) { try missing.textSymbols(ofELFAt: "/dev/null") }
        let failing = SymbolTools(nm: "/bin/false")
        do {
            _ = try failing.textSymbols(ofELFAt: "/dev/null")
            Issue.record("a failing nm was not noticed")
        } catch {
            guard case .toolFailed(tool: "/bin/false", status: 1, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
        }
    }
}

@Suite struct BootImageValidationTests {
    typealias Field = BootImageFormat.ProgramField

    /// The image with entry `index`'s bytes at `field` changed.
    private func withEntry(_ index: Int, _ change: (inout [UInt8], Int) -> Void) throws -> [UInt8] {
        withMutation(try makeImage()) { change(&$0, BootImageFormat.headerSize + index * BootImageFormat.programEntrySize) }
    }

    @Test func refusesBadHeaders() throws {
        let good = try makeImage()
        #expect(bootImageError(good) == nil)
        #expect(bootImageError([]) == .truncated)
        #expect(bootImageError(Array(good[0..<31])) == .truncated)
        #expect(bootImageError(withMutation(good) { $0[0] = UInt8(ascii: "c") }) == .badMagic)
        #expect(bootImageError(withMutation(good) { put(UInt32(2), in: &$0, at: 8) }) == .badVersion)
        #expect(bootImageError(withMutation(good) { $0[31] = 1 }) == .badVersion)
        #expect(bootImageError(withMutation(good) { put(UInt32(65), in: &$0, at: 12) }) == .tooManyPrograms)
        #expect(bootImageError(withMutation(good) { put(UInt32.max, in: &$0, at: 12) }) == .tooManyPrograms)
        #expect(bootImageError(withMutation(good) { put(UInt32(good.count + 1), in: &$0, at: 16) }) == .truncated)
        #expect(bootImageError(withMutation(good) { put(UInt32(100), in: &$0, at: 16) }) == .truncated)
        #expect(bootImageError(Array(good.dropLast())) == .truncated)
        // Bytes after the declared size are not part of the image.
        #expect(bootImageError(good + [0xFF, 0xFF]) == nil)
    }

    @Test func refusesBadProgramEntries() throws {
        let bad = BootImageError.badProgramEntry(index: 1)
        let cases: [(String, (inout [UInt8], Int) -> Void)] = [
            ("empty name", { bytes, entry in bytes[entry] = 0 }),
            ("upper case", { bytes, entry in bytes[entry] = UInt8(ascii: "S") }),
            ("space", { bytes, entry in bytes[entry + 2] = UInt8(ascii: " ") }),
            ("no terminating NUL", { bytes, entry in
                for offset in 0..<16 { bytes[entry + offset] = UInt8(ascii: "a") } }),
            ("garbage after the NUL", { bytes, entry in bytes[entry + 10] = UInt8(ascii: "x") }),
            ("a name used before", { bytes, entry in
                bytes.replaceSubrange(entry..<entry + 8, with: Array("console\0".utf8)) }),
            ("priority 8", { bytes, entry in bytes[entry + Field.priority] = 8 }),
            ("unknown flag", { bytes, entry in bytes[entry + Field.flags] |= 0x40 }),
            ("SSR of 5 pages", { bytes, entry in bytes[entry + Field.ssrPages] = 5 }),
            ("9 interrupts", { bytes, entry in bytes[entry + Field.interruptCount] = 9 }),
            ("interrupt 0 in use", { bytes, entry in bytes[entry + Field.interruptCount] = 1 }),
            ("unused interrupt set", { bytes, entry in put(UInt16(7), in: &bytes, at: entry + Field.interrupts + 7 * Field.interruptSize) }),
            ("3 devices", { bytes, entry in bytes[entry + Field.deviceCount] = 3 }),
            ("empty device in use", { bytes, entry in bytes[entry + Field.deviceCount] = 1 }),
            ("unused device set", { bytes, entry in put(UInt64(0x1000), in: &bytes, at: entry + Field.devices + 24) }),
            ("stack + heap over budget", { bytes, entry in put(UInt32(200), in: &bytes, at: entry + Field.stackPages) }),
            ("sends to program 3 of 3", { bytes, entry in put(UInt64(0b1001), in: &bytes, at: entry + Field.sendMask) }),
            ("sends to program 63", { bytes, entry in put(UInt64(1) << 63, in: &bytes, at: entry + Field.sendMask) }),
            ("reserved byte", { bytes, entry in bytes[entry + Field.reserved + Field.reservedSize - 1] = 1 }),
            ("a version of program 3 of 3", { bytes, entry in bytes[entry + Field.versionOf] = 4 }),
            ("ELF inside the table", { bytes, entry in put(UInt32(40), in: &bytes, at: entry + Field.elfOffset) }),
            ("ELF past the end", { bytes, entry in put(UInt32.max, in: &bytes, at: entry + Field.elfSize) }),
            ("ELF offset past the end", { bytes, entry in put(UInt32.max, in: &bytes, at: entry + Field.elfOffset) }),
            ("symbols past the end", { bytes, entry in put(UInt32.max, in: &bytes, at: entry + Field.symbolCount) }),
            ("strings past the end", { bytes, entry in put(UInt32.max - 2, in: &bytes, at: entry + Field.stringsSize) }),
            ("unsorted symbols", { bytes, entry in
                let symbols = Int(readLittleEndian(UInt32.self, from: bytes, at: entry + Field.symbolsOffset))
                put(UInt64(0x5000_0000), in: &bytes, at: symbols) }),
            ("symbol name outside the strings", { bytes, entry in
                let symbols = Int(readLittleEndian(UInt32.self, from: bytes, at: entry + Field.symbolsOffset))
                put(UInt32(1000), in: &bytes, at: symbols + 2 * 16 + 8) }),
            ("symbol name too long", { bytes, entry in
                let symbols = Int(readLittleEndian(UInt32.self, from: bytes, at: entry + Field.symbolsOffset))
                put(UInt32.max, in: &bytes, at: symbols + 2 * 16 + 12) }),
        ]
        for (what, change) in cases {
            #expect(bootImageError(try withEntry(1, change)) == bad, "\(what)")
        }
        // The device checks, on the program that has devices.
        let misaligned = try withEntry(0) { bytes, entry in put(UInt64(0x1000_0800), in: &bytes, at: entry + Field.devices) }
        #expect(bootImageError(misaligned) == .badProgramEntry(index: 0))
        let wrapping = try withEntry(0) { bytes, entry in
            put(UInt64.max - 0xFFF, in: &bytes, at: entry + Field.devices)
            put(UInt64(0x2000), in: &bytes, at: entry + Field.devices + 8)
        }
        #expect(bootImageError(wrapping) == .badProgramEntry(index: 0))
    }

    @Test func survivesEveryCorruptionOfTheTables() throws {
        let good = try makeImage()
        let tableEnd = BootImageFormat.headerSize + 3 * BootImageFormat.programEntrySize
        for offset in 0..<tableEnd {
            for value in corruptions(of: good[offset]) {
                exerciseEverything(withMutation(good) { $0[offset] = value })
            }
        }
    }

    @Test func survivesRandomCorruptionAnywhere() throws {
        let good = try makeImage()
        var generator = SeededGenerator(state: 0xB007)
        for _ in 0..<3_000 {
            exerciseEverything(withMutation(good) { bytes in
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            })
        }
    }

    @Test func refusesEveryTruncation() throws {
        let good = try makeImage()
        for length in 0..<good.count {
            #expect(bootImageError(Array(good[0..<length])) == .truncated)
        }
    }

    @Test func checksProgramNames() {
        func programName(_ text: String) -> ProgramName? { name(text).withUnsafeBytes { ProgramName($0) } }
        #expect(programName("shell")?.count == 5)
        #expect(programName("a-b_c-012345678") != nil)
        #expect(programName("0123456789abcdef") == nil, "16 bytes")
        #expect(programName("") == nil)
        #expect(programName("Shell") == nil && programName("sh ell") == nil && programName("sh/ell") == nil)
        #expect(programName("shell") == programName("shell"))
        #expect(programName("shell") != programName("shel"))
        #expect(programName("shell")?.withBytes { Array($0) } == name("shell"))
    }
}

// ImageWriter: compiling a system description and its programs into a boot image.
//
// The writer is the only producer of the format `BootImage` (in KernelCore)
// reads, and it uses that file's `BootImageFormat` constants for every offset,
// so the two cannot drift apart; the tests read back every image written.
//
// For each program, in description order, the image holds its ELF file
// unchanged, a table of its code symbols, and the symbols' names:
//
//   +--------+-----------+~~~~~+------------+---------+---------+~~~~~+------------+-----
//   | header | entries   | pad | ELF of 0   | symbols | strings | pad | ELF of 1   | ...
//   |        | 128 x n   |     | (4 KiB     | 16 x k  | names,  |     |            |
//   |        |           |     |  aligned)  | (8-al.) | no NULs |     |            |
//   +--------+-----------+~~~~~+------------+---------+---------+~~~~~+------------+-----
//
// ELF files start on page boundaries, so a loader could map file-backed
// pages of a segment in place instead of copying them; symbol records are
// 8-byte aligned so their u64 addresses are naturally aligned.
//
// Symbols come from `llvm-nm --defined-only --numeric-sort`, keeping the text
// symbols (types t, T and W) but not the assembler's local labels (".L..."),
// which would otherwise claim the middle of the functions they sit in. Names
// are demangled in one batch by `swift-demangle --simplified --compact`, one
// name per line in and out; Embedded Swift's `$e` manglings demangle like
// ordinary ones, and C names pass through unchanged. The kernel then prints
// "main()+0x1c" for a fault without needing any of this at run time.
//
// Each ELF is parsed with `ELFImage` before it is packed, accepting any
// address: the kernel checks the real user range when it loads the program,
// but a file that is not a RISC-V executable at all is better caught here.

import Foundation
import KernelCore

public struct ProgramSymbol: Equatable, Sendable {
    public var address: UInt64
    public var name: String

    public init(address: UInt64, name: String) {
        self.address = address
        self.name = name
    }
}

/// What the build produced for one program.
public struct ProgramBinary: Sendable {
    public var elf: [UInt8]
    public var symbols: [ProgramSymbol]

    public init(elf: [UInt8], symbols: [ProgramSymbol]) {
        self.elf = elf
        self.symbols = symbols
    }
}

public enum ImageWriterError: Error, CustomStringConvertible {
    case binaryCountMismatch(programs: Int, binaries: Int)
    case unreadableELF(path: String)
    case badELF(program: String, ELFError)
    case imageTooLarge(bytes: Int)
    case toolFailed(tool: String, status: Int32, message: String)
    case unexpectedToolOutput(tool: String, detail: String)

    public var description: String {
        switch self {
        case .binaryCountMismatch(let programs, let binaries):
            "\(programs) programs described but \(binaries) binaries given"
        case .unreadableELF(let path): "cannot read \(path)"
        case .badELF(let program, let error): "the ELF file of '\(program)' is unusable: \(error)"
        case .imageTooLarge(let bytes): "the image would be \(bytes) bytes; the format allows 4 GiB"
        case .toolFailed(let tool, let status, let message):
            "\(tool) failed (status \(status))" + (message.isEmpty ? "" : ": \(message)")
        case .unexpectedToolOutput(let tool, let detail): "unexpected output from \(tool): \(detail)"
        }
    }
}

public enum ImageWriter {
    /// Builds the image from binaries given in the same order as the programs.
    public static func makeImage(system: SystemDescription, binaries: [ProgramBinary]) throws(ImageWriterError)
        -> [UInt8] {
        guard binaries.count == system.programs.count else {
            throw .binaryCountMismatch(programs: system.programs.count, binaries: binaries.count)
        }
        for (program, binary) in zip(system.programs, binaries) {
            let problem = binary.elf.withUnsafeBytes { bytes -> ELFError? in
                do throws(ELFError) {
                    _ = try ELFImage(bytes, allowedRange: 0..<UInt64.max)
                    return nil
                } catch {
                    return error
                }
            }
            if let problem { throw .badELF(program: program.name, problem) }
        }

        let tableEnd = BootImageFormat.headerSize + system.programs.count * BootImageFormat.programEntrySize
        var image = [UInt8](repeating: 0, count: tableEnd)
        for (index, (program, binary)) in zip(system.programs, binaries).enumerated() {
            pad(&image, toMultipleOf: Int(BootImageFormat.pageSize))
            let elfOffset = image.count
            image += binary.elf

            pad(&image, toMultipleOf: 8)
            let symbolsOffset = image.count
            let symbols = binary.symbols.sorted { $0.address < $1.address }
            let stringsSize = symbols.reduce(0) { $0 + $1.name.utf8.count }
            var nameOffset = 0
            for symbol in symbols {
                var record = [UInt8](repeating: 0, count: BootImageFormat.symbolRecordSize)
                store(symbol.address, in: &record, at: BootImageFormat.SymbolField.address)
                store(UInt32(nameOffset), in: &record, at: BootImageFormat.SymbolField.nameOffset)
                store(UInt32(symbol.name.utf8.count), in: &record, at: BootImageFormat.SymbolField.nameLength)
                image += record
                nameOffset += symbol.name.utf8.count
            }
            let stringsOffset = image.count
            for symbol in symbols {
                image += Array(symbol.name.utf8)
            }
            guard image.count <= UInt32.max else { throw .imageTooLarge(bytes: image.count) }

            let regions = ProgramRegions(elfOffset: elfOffset, elfSize: binary.elf.count,
                                         symbolsOffset: symbolsOffset, symbolCount: symbols.count,
                                         stringsOffset: stringsOffset, stringsSize: stringsSize)
            writeEntry(for: program, sendMask: system.sendMask(of: program),
                       versionOf: program.versionOf.flatMap { system.index(of: $0) }, regions: regions, into: &image,
                       at: BootImageFormat.headerSize + index * BootImageFormat.programEntrySize)
        }

        store(BootImageFormat.magic, in: &image, at: BootImageFormat.HeaderField.magic)
        store(BootImageFormat.version, in: &image, at: BootImageFormat.HeaderField.version)
        store(UInt32(system.programs.count), in: &image, at: BootImageFormat.HeaderField.programCount)
        store(UInt32(image.count), in: &image, at: BootImageFormat.HeaderField.totalSize)
        return image
    }

    /// Builds the image from `<module>.elf` files in `elfDirectory`, reading their symbols with `tools`.
    public static func makeImage(system: SystemDescription, elfDirectory: String,
                                 tools: SymbolTools = SymbolTools()) throws(ImageWriterError) -> [UInt8] {
        var binaries: [ProgramBinary] = []
        for program in system.programs {
            let path = URL(fileURLWithPath: elfDirectory).appendingPathComponent("\(program.module).elf").path
            guard let elf = FileManager.default.contents(atPath: path) else { throw .unreadableELF(path: path) }
            binaries.append(ProgramBinary(elf: [UInt8](elf), symbols: try tools.textSymbols(ofELFAt: path)))
        }
        return try makeImage(system: system, binaries: binaries)
    }

    /// Where a program's parts were placed in the image.
    private struct ProgramRegions {
        var elfOffset, elfSize, symbolsOffset, symbolCount, stringsOffset, stringsSize: Int
    }

    private static func writeEntry(for program: ProgramDescription, sendMask: UInt64, versionOf: Int?,
                                   regions: ProgramRegions,
                                   into image: inout [UInt8], at entry: Int) {
        typealias Field = BootImageFormat.ProgramField
        typealias Flag = BootImageFormat.ProgramFlag
        let name = Array(program.name.utf8)
        image.replaceSubrange(entry + Field.name..<entry + Field.name + name.count, with: name)
        image[entry + Field.priority] = UInt8(program.priority)
        image[entry + Field.flags] = (program.startsAtBoot ? Flag.startsAtBoot : 0)
            | (program.mayManage ? Flag.mayManage : 0)
            | (program.receivesBootArguments ? Flag.receivesBootArguments : 0)
            | (program.restartable ? Flag.restartable : 0)
            | (program.promisesReplies ? Flag.promisesReplies : 0)
            | (program.keepsSSRs ? Flag.keepsSSRs : 0)
        image[entry + Field.ssrPages] = UInt8(program.ssrKiB / SystemDescription.kibibytesPerPage)
        store(UInt16(program.replyLimitMilliseconds), in: &image, at: entry + Field.replyLimit)
        image[entry + Field.versionOf] = UInt8(versionOf.map { $0 + 1 } ?? 0)
        image[entry + Field.interruptCount] = UInt8(program.interrupts.count)
        image[entry + Field.deviceCount] = UInt8(program.devices.count)
        let kibibytesPerPage = SystemDescription.kibibytesPerPage
        store(UInt32(program.memoryKiB / kibibytesPerPage), in: &image, at: entry + Field.memoryPages)
        store(UInt32(program.stackKiB / kibibytesPerPage), in: &image, at: entry + Field.stackPages)
        store(UInt32(program.heapKiB / kibibytesPerPage), in: &image, at: entry + Field.heapPages)
        store(sendMask, in: &image, at: entry + Field.sendMask)
        store(UInt32(regions.elfOffset), in: &image, at: entry + Field.elfOffset)
        store(UInt32(regions.elfSize), in: &image, at: entry + Field.elfSize)
        store(UInt32(regions.symbolsOffset), in: &image, at: entry + Field.symbolsOffset)
        store(UInt32(regions.symbolCount), in: &image, at: entry + Field.symbolCount)
        store(UInt32(regions.stringsOffset), in: &image, at: entry + Field.stringsOffset)
        store(UInt32(regions.stringsSize), in: &image, at: entry + Field.stringsSize)
        for (slot, source) in program.interrupts.enumerated() {
            store(UInt16(source), in: &image, at: entry + Field.interrupts + slot * Field.interruptSize)
        }
        for (slot, device) in program.devices.enumerated() {
            store(device.base, in: &image, at: entry + Field.devices + slot * Field.deviceSize)
            store(device.size, in: &image, at: entry + Field.devices + slot * Field.deviceSize + 8)
        }
    }
}

/// Finds a program's code symbols with llvm-nm and demangles them with swift-demangle.
public struct SymbolTools: Sendable {
    public var nm: String
    public var demangler: String

    public init(nm: String = "/opt/swift/usr/bin/llvm-nm", demangler: String = "/opt/swift/usr/bin/swift-demangle") {
        self.nm = nm
        self.demangler = demangler
    }

    public func textSymbols(ofELFAt path: String) throws(ImageWriterError) -> [ProgramSymbol] {
        let listing = try run(nm, ["--defined-only", "--numeric-sort", path])
        var addresses: [UInt64] = []
        var mangledNames: [Substring] = []
        // Each line: "0000000040000010 T $e5Shell4mainyyF".
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let address = UInt64(fields[0], radix: 16) else {
                throw .unexpectedToolOutput(tool: nm, detail: String(line))
            }
            guard ["t", "T", "W"].contains(fields[1]), !fields[2].hasPrefix(".L") else { continue }
            addresses.append(address)
            mangledNames.append(fields[2])
        }
        guard !mangledNames.isEmpty else { return [] }

        let demangled = try run(demangler, ["--simplified", "--compact"],
                                input: mangledNames.joined(separator: "\n") + "\n")
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        guard demangled.count == mangledNames.count else {
            throw .unexpectedToolOutput(tool: demangler, detail: "\(mangledNames.count) names in, \(demangled.count) out")
        }
        return zip(addresses, demangled).map { ProgramSymbol(address: $0, name: String($1)) }
    }

    /// Runs `tool` to completion with files for its standard streams (pipes
    /// could fill up while the other side waits) and returns its output.
    private func run(_ tool: String, _ arguments: [String], input: String = "") throws(ImageWriterError) -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mkimage-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputFile = directory.appendingPathComponent("in")
        let outputFile = directory.appendingPathComponent("out")
        let errorFile = directory.appendingPathComponent("err")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(input.utf8).write(to: inputFile)
            try Data().write(to: outputFile)
            try Data().write(to: errorFile)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            process.standardInput = try FileHandle(forReadingFrom: inputFile)
            process.standardOutput = try FileHandle(forWritingTo: outputFile)
            process.standardError = try FileHandle(forWritingTo: errorFile)
            try process.run()
            process.waitUntilExit()
            let output = try String(contentsOf: outputFile, encoding: .utf8)
            guard process.terminationReason == .exit, process.terminationStatus == 0 else {
                let message = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
                throw ImageWriterError.toolFailed(tool: tool, status: process.terminationStatus,
                                                  message: message.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return output
        } catch let error as ImageWriterError {
            throw error
        } catch {
            throw .toolFailed(tool: tool, status: -1, message: "\(error)")
        }
    }
}

private func pad(_ image: inout [UInt8], toMultipleOf alignment: Int) {
    image += [UInt8](repeating: 0, count: (alignment - image.count % alignment) % alignment)
}

private func store<Value: FixedWidthInteger>(_ value: Value, in bytes: inout [UInt8], at offset: Int) {
    for index in 0..<MemoryLayout<Value>.size {
        bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
    }
}

// Helpers shared by the SystemImage tests: a hand-rolled ELF64 writer (so each
// test states exactly the headers it means), a seeded random generator for
// the mutation loops (so a failure reproduces), and process and file helpers
// for the tests that use real tools.

import Foundation
import KernelCore

/// One program header for `makeELF`. `contents` become the segment's file bytes.
struct TestSegment {
    var type: UInt32 = 1  // PT_LOAD
    var flags: UInt32  // X=1 W=2 R=4
    var virtualAddress: UInt64
    var memorySize: UInt64
    var contents: [UInt8] = []
}

enum TestELF {
    static let headerSize = 64
    static let programHeaderSize = 56
    static let textAddress: UInt64 = 0x4000_0000
    static let dataAddress: UInt64 = 0x4000_1000

    /// Offsets of fields the tests corrupt.
    static let classOffset = 4
    static let dataOffset = 5
    static let typeOffset = 16
    static let machineOffset = 18
    static let entryOffset = 24
    static let programHeaderOffsetOffset = 32
    static let programHeaderEntrySizeOffset = 54
    static let programHeaderCountOffset = 56

    static func programHeader(_ index: Int) -> Int { headerSize + index * programHeaderSize }

    /// A two-segment executable like our linker script makes: text r-x, then
    /// data rw- with a zero-filled tail.
    static func typical(entry: UInt64 = textAddress) -> [UInt8] {
        makeELF(entry: entry, segments: [
            TestSegment(flags: 5, virtualAddress: textAddress, memorySize: 0x20, contents: Array(repeating: 0x13, count: 0x20)),
            TestSegment(flags: 6, virtualAddress: dataAddress, memorySize: 0x2000, contents: [1, 2, 3, 4, 5, 6, 7, 8]),
        ])
    }
}

/// Header, then program headers, then each segment's contents in order.
func makeELF(entry: UInt64, segments: [TestSegment], machine: UInt16 = 243, type: UInt16 = 2) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: TestELF.headerSize + segments.count * TestELF.programHeaderSize)
    bytes.replaceSubrange(0..<4, with: [0x7F, 0x45, 0x4C, 0x46])
    bytes[4] = 2  // ELFCLASS64
    bytes[5] = 1  // little-endian
    bytes[6] = 1  // EV_CURRENT
    put(type, in: &bytes, at: 16)
    put(machine, in: &bytes, at: 18)
    put(UInt32(1), in: &bytes, at: 20)
    put(entry, in: &bytes, at: 24)
    put(UInt64(TestELF.headerSize), in: &bytes, at: 32)
    put(UInt16(TestELF.headerSize), in: &bytes, at: 52)
    put(UInt16(TestELF.programHeaderSize), in: &bytes, at: 54)
    put(UInt16(segments.count), in: &bytes, at: 56)
    for (index, segment) in segments.enumerated() {
        let header = TestELF.programHeader(index)
        put(segment.type, in: &bytes, at: header)
        put(segment.flags, in: &bytes, at: header + 4)
        put(UInt64(bytes.count), in: &bytes, at: header + 8)
        put(segment.virtualAddress, in: &bytes, at: header + 16)
        put(segment.virtualAddress, in: &bytes, at: header + 24)
        put(UInt64(segment.contents.count), in: &bytes, at: header + 32)
        put(segment.memorySize, in: &bytes, at: header + 40)
        put(UInt64(4096), in: &bytes, at: header + 48)
        bytes += segment.contents
    }
    return bytes
}

func put<Value: FixedWidthInteger>(_ value: Value, in bytes: inout [UInt8], at offset: Int) {
    for index in 0..<MemoryLayout<Value>.size {
        bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
    }
}

func putBigEndian(_ value: UInt32, in bytes: inout [UInt8], at offset: Int) {
    put(value.byteSwapped, in: &bytes, at: offset)
}

func readLittleEndian<Value: FixedWidthInteger>(_: Value.Type, from bytes: [UInt8], at offset: Int) -> Value {
    (0..<MemoryLayout<Value>.size).reduce(0) { $0 | Value(bytes[offset + $1]) << ($1 * 8) }
}

/// The ELF parser's verdict on `bytes`; on success also walks every segment.
func parseELF(_ bytes: [UInt8], allowedRange: Range<UInt64> = 0x1000..<0x40_0000_0000) -> Result<[ELFSegment], ELFError> {
    bytes.withUnsafeBytes { buffer in
        do throws(ELFError) {
            let image = try ELFImage(buffer, allowedRange: allowedRange)
            return .success((0..<image.loadSegmentCount).map(image.loadSegment))
        } catch {
            return .failure(error)
        }
    }
}

func elfError(_ bytes: [UInt8], allowedRange: Range<UInt64> = 0x1000..<0x40_0000_0000) -> ELFError? {
    if case .failure(let error) = parseELF(bytes, allowedRange: allowedRange) { return error }
    return nil
}

func withMutation(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
    var copy = bytes
    change(&copy)
    return copy
}

/// SplitMix64: small, fast, and the same sequence on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

/// Values a corrupted byte is set to: both ends, sign boundaries, and bit flips of the original.
func corruptions(of byte: UInt8) -> [UInt8] {
    [0, 1, 0x7F, 0x80, 0xFF, byte ^ 0x01, byte ^ 0x10, byte ^ 0x80]
}

struct ProcessFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a tool to completion; throws with its output if it fails.
@discardableResult
func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ProcessFailure(description: "\(path) \(arguments.joined(separator: " ")) failed:\n\(text)")
    }
    return text
}

func makeTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curio-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

func toolExists(_ path: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: path)
}

let toolchain = "/opt/swift/usr/bin"

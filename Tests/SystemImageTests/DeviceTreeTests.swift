// DeviceTree against the blob QEMU itself hands the kernel (dumped with
// `-machine virt,dumpdtb=...`), against small hand-built trees that each break
// one rule, and against corrupted and truncated copies of QEMU's blob.

import Foundation
import KernelCore
import Testing

/// Dumps the device tree of `qemu-system-riscv64 -machine virt -m 128M`, with
/// `-append bootArguments` if given. QEMU insists on a kernel for -append, so
/// it gets a one-byte file (an empty one fails to load); QEMU writes the blob
/// and exits before running anything.
private func dumpQEMUDeviceTree(bootArguments: String?) -> Result<[UInt8], ProcessFailure> {
    do {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let blob = directory.appendingPathComponent("virt.dtb")
        let kernel = directory.appendingPathComponent("dummy-kernel")
        try Data([0]).write(to: kernel)
        var arguments = ["qemu-system-riscv64", "-machine", "virt,dumpdtb=\(blob.path)", "-m", "128M",
                         "-kernel", kernel.path, "-nographic"]
        if let bootArguments { arguments += ["-append", bootArguments] }
        try runTool("/usr/bin/env", arguments)
        return .success([UInt8](try Data(contentsOf: blob)))
    } catch {
        return .failure(ProcessFailure(description: "\(error)"))
    }
}

private let qemuBlob = dumpQEMUDeviceTree(bootArguments: "ps; echo hi")

/// The blob without QEMU's padding to 1 MiB: exactly totalsize bytes.
private func trimmedQEMUBlob() throws -> [UInt8] {
    let blob = try qemuBlob.get()
    return Array(blob[0..<Int(readBigEndian(blob, at: 4))])
}

private func readBigEndian(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    readLittleEndian(UInt32.self, from: bytes, at: offset).byteSwapped
}

private func parseTree(_ bytes: [UInt8]) -> Result<(arguments: String?, memory: (base: UInt64, size: UInt64)?), DeviceTreeError> {
    bytes.withUnsafeBytes { buffer in
        do throws(DeviceTreeError) {
            let tree = try DeviceTree(buffer)
            return .success((tree.bootArguments.map { String(decoding: $0, as: UTF8.self) }, tree.memory))
        } catch {
            return .failure(error)
        }
    }
}

private func treeError(_ bytes: [UInt8]) -> DeviceTreeError? {
    if case .failure(let error) = parseTree(bytes) { return error }
    return nil
}

/// Writes a flattened device tree token by token (version 17, empty reservation list).
private struct TreeBuilder {
    var structure: [UInt8] = []
    var strings: [UInt8] = []

    mutating func word(_ value: UInt32) {
        structure += withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    mutating func padStructure() {
        while structure.count % 4 != 0 { structure.append(0) }
    }

    mutating func begin(_ name: String) {
        word(1)
        structure += Array(name.utf8) + [0]
        padStructure()
    }

    mutating func end() { word(2) }

    mutating func property(_ name: String, _ value: [UInt8], nameOffset: UInt32? = nil) {
        word(3)
        word(UInt32(value.count))
        word(nameOffset ?? offset(ofName: name))
        structure += value
        padStructure()
    }

    mutating func offset(ofName name: String) -> UInt32 {
        let offset = UInt32(strings.count)
        strings += Array(name.utf8) + [0]
        return offset
    }

    func blob(terminated: Bool = true) -> [UInt8] {
        var structure = structure
        if terminated { structure += [0, 0, 0, 9] }
        let reservations = [UInt8](repeating: 0, count: 16)
        let structureOffset = 40 + reservations.count
        let stringsOffset = structureOffset + structure.count
        var header = [UInt8](repeating: 0, count: 40)
        for (offset, value) in [(0, 0xD00D_FEED), (4, stringsOffset + strings.count), (8, structureOffset),
                                (12, stringsOffset), (16, 40), (20, 17), (24, 16), (32, strings.count),
                                (36, structure.count)] {
            putBigEndian(UInt32(value), in: &header, at: offset)
        }
        return header + reservations + structure + strings
    }
}

private func cells(_ values: UInt32...) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bigEndian) { Array($0) } }
}

private func text(_ value: String) -> [UInt8] { Array(value.utf8) + [0] }

/// A root with the given cell sizes (nil: property absent), /chosen with
/// bootargs, and a memory node with `reg`.
private func simpleTree(addressCells: UInt32? = 2, sizeCells: UInt32? = 2, reg: [UInt8], memoryName: String = "memory@80000000",
                        bootArguments: [UInt8]? = text("console=ttyS0")) -> [UInt8] {
    var tree = TreeBuilder()
    tree.begin("")
    if let addressCells { tree.property("#address-cells", cells(addressCells)) }
    if let sizeCells { tree.property("#size-cells", cells(sizeCells)) }
    tree.property("compatible", text("riscv-virtio"))
    tree.begin("chosen")
    if let bootArguments { tree.property("bootargs", bootArguments) }
    tree.end()
    tree.begin(memoryName)
    tree.property("device_type", text("memory"))
    tree.property("reg", reg)
    tree.end()
    tree.end()
    return tree.blob()
}

@Suite struct DeviceTreeTests {
    @Test func readsQEMUsDeviceTree() throws {
        let blob = try qemuBlob.get()
        let tree = try #require(try? parseTree(blob).get())
        #expect(tree.arguments == "ps; echo hi")
        #expect(tree.memory?.base == 0x8000_0000 && tree.memory?.size == 128 << 20)

        try blob.withUnsafeBytes { buffer in
            let fromPointer = try DeviceTree(buffer.baseAddress!)
            #expect(fromPointer.bootArguments.map { String(decoding: $0, as: UTF8.self) } == "ps; echo hi")
            #expect(fromPointer.memory?.base == 0x8000_0000 && fromPointer.memory?.size == 128 << 20)
        }
        #expect(try parseTree(trimmedQEMUBlob()).get().arguments == "ps; echo hi")
    }

    @Test func hasNoBootArgumentsWithoutAppend() throws {
        let tree = try parseTree(dumpQEMUDeviceTree(bootArguments: nil).get()).get()
        #expect(tree.arguments == nil)
        #expect(tree.memory?.base == 0x8000_0000 && tree.memory?.size == 128 << 20)
    }

    @Test func honoursCellSizes() throws {
        let wide = try parseTree(simpleTree(reg: cells(0x1, 0x2000_0000, 0x0, 0x4000_0000))).get()
        #expect(wide.memory?.base == 0x1_2000_0000 && wide.memory?.size == 0x4000_0000)
        #expect(wide.arguments == "console=ttyS0")

        let narrow = try parseTree(simpleTree(addressCells: 1, sizeCells: 1, reg: cells(0x8000_0000, 0x100_0000, 7, 7))).get()
        #expect(narrow.memory?.base == 0x8000_0000 && narrow.memory?.size == 0x100_0000)

        // The specification's defaults: two address cells, one size cell.
        let defaults = try parseTree(simpleTree(addressCells: nil, sizeCells: nil, reg: cells(0, 0x8000_0000, 0x800_0000))).get()
        #expect(defaults.memory?.base == 0x8000_0000 && defaults.memory?.size == 0x800_0000)

        let unnamedUnit = try parseTree(simpleTree(addressCells: 1, sizeCells: 1, reg: cells(1, 2), memoryName: "memory")).get()
        #expect(unnamedUnit.memory?.base == 1 && unnamedUnit.memory?.size == 2)
    }

    @Test func readsBootArgumentsUpToTheirNUL() throws {
        let reg = cells(0, 0x8000_0000, 0, 0x1000)
        #expect(try parseTree(simpleTree(reg: reg, bootArguments: [0])).get().arguments == "")
        #expect(try parseTree(simpleTree(reg: reg, bootArguments: Array("a b".utf8))).get().arguments == "a b")
        #expect(try parseTree(simpleTree(reg: reg, bootArguments: text("one") + text("two"))).get().arguments == "one")
        #expect(try parseTree(simpleTree(reg: reg, bootArguments: nil)).get().arguments == nil)
    }

    @Test func takesOnlyTopLevelNodesAndTheFirstMemory() throws {
        var tree = TreeBuilder()
        tree.begin("")
        tree.property("#address-cells", cells(1))
        tree.property("#size-cells", cells(1))
        tree.begin("soc")
        tree.begin("chosen")
        tree.property("bootargs", text("nested"))
        tree.end()
        tree.begin("memory@0")
        tree.property("reg", cells(9, 9))
        tree.end()
        tree.end()
        tree.begin("memory-controller@1000")
        tree.property("reg", cells(8, 8))
        tree.end()
        tree.word(4)  // FDT_NOP
        tree.begin("memory@80000000")
        tree.property("reg", cells(0x8000_0000, 0x1000))
        tree.end()
        tree.begin("memory@90000000")
        tree.property("reg", cells(0x9000_0000, 0x1000))
        tree.end()
        tree.end()
        let parsed = try parseTree(tree.blob()).get()
        #expect(parsed.arguments == nil)
        #expect(parsed.memory?.base == 0x8000_0000 && parsed.memory?.size == 0x1000)
    }

    @Test func refusesMalformedStructure() {
        let reg = cells(0, 0x8000_0000, 0, 0x1000)
        #expect(treeError(simpleTree(reg: cells(1, 2, 3))) == .malformed, "reg shorter than one pair")
        #expect(treeError(simpleTree(addressCells: 3, reg: cells(1, 2, 3, 4, 5))) == .malformed)
        #expect(treeError(simpleTree(sizeCells: 0, reg: reg)) == .malformed)

        func build(_ steps: (inout TreeBuilder) -> Void, terminated: Bool = true) -> [UInt8] {
            var tree = TreeBuilder()
            steps(&tree)
            return tree.blob(terminated: terminated)
        }
        #expect(treeError(build { $0.begin(""); $0.end() }) == nil)
        #expect(treeError(build({ $0.begin(""); $0.end() }, terminated: false)) == .malformed)
        #expect(treeError(build { $0.begin("") }) == .malformed, "root never ends")
        #expect(treeError(build { $0.begin(""); $0.end(); $0.end() }) == .malformed, "ends twice")
        #expect(treeError(build { $0.begin(""); $0.end(); $0.begin(""); $0.end() }) == .malformed, "two roots")
        #expect(treeError(build { _ in }) == .malformed, "no root")
        #expect(treeError(build { $0.property("x", []); $0.begin(""); $0.end() }) == .malformed, "property outside a node")
        #expect(treeError(build {
            $0.begin(""); $0.begin("a"); $0.end(); $0.property("late", []); $0.end()
        }) == .malformed, "property after a subnode")
        #expect(treeError(build { $0.begin(""); $0.word(7); $0.end() }) == .malformed, "unknown token")
        #expect(treeError(build { $0.begin(""); $0.property("x", [], nameOffset: 1000); $0.end() }) == .malformed)
        #expect(treeError(build { $0.begin(""); $0.property("#address-cells", [0, 0, 1]); $0.end() }) == .malformed)
        #expect(treeError(build { $0.begin(""); $0.word(3); $0.word(0xFFFF_FFF0); $0.word(0) }) == .malformed,
                "value longer than the block")
        #expect(treeError(build({ $0.word(1); $0.structure += [0x61, 0x62] }, terminated: false)) == .malformed,
                "name without NUL")
        // A property name running off the end of the strings block.
        var unterminatedName = TreeBuilder()
        unterminatedName.begin("")
        unterminatedName.property("x", [])
        unterminatedName.end()
        unterminatedName.strings.removeLast()
        #expect(treeError(unterminatedName.blob()) == .malformed)
    }

    @Test func refusesBadHeaders() throws {
        let blob = try trimmedQEMUBlob()
        func changed(_ offset: Int, to value: UInt32) -> [UInt8] {
            withMutation(blob) { putBigEndian(value, in: &$0, at: offset) }
        }
        #expect(treeError([]) == .truncated)
        #expect(treeError(Array(blob[0..<39])) == .truncated)
        #expect(treeError(Array(blob.dropLast())) == .truncated)
        #expect(treeError(changed(0, to: 0xEDFE_0DD0)) == .badMagic)
        #expect(treeError(changed(20, to: 16)) == .badVersion)
        #expect(treeError(changed(24, to: 18)) == .badVersion)
        #expect(treeError(changed(4, to: UInt32(blob.count + 1))) == .truncated)
        #expect(treeError(changed(4, to: 39)) == .malformed)
        #expect(treeError(changed(8, to: 0xFFFF_FFF0)) == .malformed, "structure offset")
        #expect(treeError(changed(8, to: readBigEndian(blob, at: 8) + 2)) == .malformed, "misaligned structure")
        #expect(treeError(changed(8, to: 8)) == .malformed, "structure inside the header")
        #expect(treeError(changed(36, to: 0xFFFF_FFFF)) == .malformed, "structure size")
        #expect(treeError(changed(12, to: 0xFFFF_FFFF)) == .malformed, "strings offset")
        #expect(treeError(changed(32, to: UInt32(blob.count))) == .malformed, "strings size")
        #expect(treeError(changed(16, to: 44)) == .malformed, "misaligned reservations")
        #expect(treeError(changed(16, to: UInt32(blob.count - 8))) == .malformed, "reservations past the end")
    }

    @Test func refusesOversizedBlobsThroughAPointer() throws {
        var blob = try qemuBlob.get()
        putBigEndian(UInt32(DeviceTree.maxSize + 1), in: &blob, at: 4)
        blob.withUnsafeBytes { buffer in
            _ = #expect(throws: DeviceTreeError.malformed) { try DeviceTree(buffer.baseAddress!) }
        }
        putBigEndian(0xDEAD_BEEF, in: &blob, at: 0)
        blob.withUnsafeBytes { buffer in
            _ = #expect(throws: DeviceTreeError.badMagic) { try DeviceTree(buffer.baseAddress!) }
        }
    }

    @Test func survivesEveryCorruption() throws {
        var blob = try trimmedQEMUBlob()
        let structureEnd = Int(readBigEndian(blob, at: 8) + readBigEndian(blob, at: 36))
        for offset in 0..<structureEnd {
            let original = blob[offset]
            for value in corruptions(of: original) {
                blob[offset] = value
                _ = parseTree(blob)
            }
            blob[offset] = original
        }
        var generator = SeededGenerator(state: 0xD7B)
        for _ in 0..<5_000 {
            let mutated = withMutation(blob) { bytes in
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            _ = parseTree(mutated)
        }
    }

    @Test func survivesCorruptHeadersThroughAPointer() throws {
        // QEMU pads its dump to 1 MiB, so any size the pointer constructor accepts is readable.
        var blob = try qemuBlob.get()
        #expect(blob.count >= DeviceTree.maxSize)
        for offset in 0..<40 {
            let original = blob[offset]
            for value in corruptions(of: original) {
                blob[offset] = value
                blob.withUnsafeBytes { buffer in _ = try? DeviceTree(buffer.baseAddress!) }
            }
            blob[offset] = original
        }
    }

    @Test func refusesEveryTruncation() throws {
        let blob = try trimmedQEMUBlob()
        for length in 0..<blob.count {
            #expect(treeError(Array(blob[0..<length])) == .truncated)
        }
    }
}

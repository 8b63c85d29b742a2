// The profile names whose code ran by matching instruction bytes: two programs
// linked at the same address, their samples told apart by host page.

import ProfileKit
import Testing

/// A minimal ELF64 file with one executable PT_LOAD segment of `code` at `address`.
func elf(code: [UInt8], at address: UInt64) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 64 + 56)
    func put(_ value: UInt64, at offset: Int, size: Int) {
        for index in 0..<size { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }
    bytes[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
    put(64, at: 0x20, size: 8)            // program headers right after the file header
    put(56, at: 0x36, size: 2)
    put(1, at: 0x38, size: 2)
    put(1, at: 64, size: 4)               // PT_LOAD
    put(5, at: 68, size: 4)               // R X
    put(UInt64(bytes.count), at: 72, size: 8)
    put(address, at: 80, size: 8)
    put(UInt64(code.count), at: 96, size: 8)
    return bytes + code
}

@Suite struct AttributionTests {
    // add a0, a0, a1 (32-bit) then c.addi a0, 1 (16-bit), in two programs that differ.
    let first = ProgramImage(name: "first", elf: elf(code: [0x33, 0x05, 0xB5, 0x00, 0x05, 0x05], at: 0x4000_0000))!
    let second = ProgramImage(name: "second", elf: elf(code: [0x33, 0x85, 0xB5, 0x40, 0x09, 0x05], at: 0x4000_0000))!

    @Test func samplesGoToTheProgramWhoseBytesRanFromThatPage() {
        let samples = [
            ProfileSample(address: 0x4000_0000, hostPage: 0x1000, bytes: 0x00B5_0533, count: 7),
            ProfileSample(address: 0x4000_0004, hostPage: 0x1000, bytes: 0x0000_0505, count: 7),
            ProfileSample(address: 0x4000_0000, hostPage: 0x2000, bytes: 0x40B5_8533, count: 3),
            ProfileSample(address: 0x4000_0004, hostPage: 0x2000, bytes: 0x0000_0509, count: 3),
            ProfileSample(address: 0x8020_0010, hostPage: 0x3000, bytes: 0x0000_0001, count: 11),
            ProfileSample(address: 0x8000_0010, hostPage: 0x4000, bytes: 0x0000_0001, count: 2),
            ProfileSample(address: 0x4000_0000, hostPage: 0x5000, bytes: 0xFFFF_FFFF, count: 1),
        ]
        let attribution = Attribution(samples, programs: [first, second])
        #expect(attribution.counts["first"] == [0x4000_0000: 7, 0x4000_0004: 7])
        #expect(attribution.counts["second"] == [0x4000_0000: 3, 0x4000_0004: 3])
        #expect(attribution.counts[Attribution.kernel] == [0x8020_0010: 11])
        #expect(attribution.counts[Attribution.firmware] == [0x8000_0010: 2])
        #expect(attribution.counts[Attribution.unknown] == [0x4000_0000: 1], "bytes no program has")
        #expect(attribution.totals.first?.owner == "first" && attribution.totals.first?.instructions == 14)
    }

    @Test func theUpperHalfOfAFullInstructionMustAgreeToo() {
        // Same low half as `first`'s add, another upper half: not first's.
        let sample = ProfileSample(address: 0x4000_0000, hostPage: 0x1000, bytes: 0x01B5_0533, count: 1)
        let attribution = Attribution([sample], programs: [first])
        #expect(attribution.counts["first"] == nil && attribution.counts[Attribution.unknown] == [0x4000_0000: 1])
    }

    @Test func thePluginsOutputParses() {
        let profile = Profile(parsing: """
            40000000 7f0000001000 00b50533 12
            80200000 7f0000002000 00000013 30
            phases 4
            phase 0 100
            phase 1 0
            garbage line
            """)
        #expect(profile.samples.count == 2 && profile.totalInstructions == 42)
        #expect(profile.samples[0] == ProfileSample(address: 0x4000_0000, hostPage: 0x7F00_0000_1000, bytes: 0x00B5_0533, count: 12))
        #expect(profile.phaseCount == 4 && profile.phaseInstructions == [100, 0])
    }

    @Test func aFileThatIsNotELF64IsRefused() {
        #expect(ProgramImage(name: "x", elf: [0x7F, 0x45, 0x4C, 0x46, 1, 1] + [UInt8](repeating: 0, count: 100)) == nil)
        #expect(ProgramImage(name: "x", elf: []) == nil)
    }
}

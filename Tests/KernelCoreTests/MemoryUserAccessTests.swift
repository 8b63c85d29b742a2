// Tests of validated user-memory access: copyIn, copyOut and cross-space copy.
//
// Every test maps the same small user layout, one page per row, at 0x4000_0000:
//
//   page 0  0x4000_0000  U R W
//   page 1  0x4000_1000  U R W
//   page 2  0x4000_2000  (unmapped)
//   page 3  0x4000_3000  U R      read-only
//   page 4  0x4000_4000    R W    kernel-only (no U)
//   page 5  0x4000_5000  U R W
import Testing
@testable import KernelCore

private struct UserLayout {
    let ram: MemoryTestRAM
    var frames: FrameAllocator<MemoryTestRAM>
    /// The free frames before the space was created.
    let initialFreeFrames: Int
    let space: AddressSpace

    static let base: UInt64 = 0x4000_0000
    static func page(_ index: Int) -> VirtualAddress { VirtualAddress(base + UInt64(index * pageSize)) }

    init() throws {
        (ram, frames) = makeMemoryTestAllocator()
        initialFreeFrames = frames.freeFrames
        space = try createSpace(&frames, sharing: nil)
        try mapUserPages(in: space)
    }

    /// Maps the layout above into `space` with fresh, owned frames.
    mutating func mapUserPages(in space: AddressSpace) throws {
        let rw: PageFlags = [.user, .read, .write, .owned]
        let layout: [(Int, PageFlags)] = [
            (0, rw), (1, rw), (3, [.user, .read, .owned]), (4, [.read, .write, .owned]), (5, rw),
        ]
        for (index, flags) in layout {
            let frame = try allocateFrame(&frames)
            _ = try space.map(Self.page(index), to: frame, flags: flags, allocator: &frames)
        }
    }

    /// The bytes at user address `va` of `space` (by default the layout's own), read
    /// straight from the frames the page tables name.
    func peek(_ va: VirtualAddress, count: Int, in space: AddressSpace? = nil) throws -> [UInt8] {
        var bytes: [UInt8] = []
        for offset in 0..<count {
            let address = try #require((space ?? self.space).translate(va.advanced(by: offset), memory: ram))
            bytes.append(ram.bytes(at: address.0, count: 1)[0])
        }
        return bytes
    }
}

private func pattern(_ count: Int, seed: Int = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
}

@Suite struct MemoryUserAccessTests {
    @Test func copyOutThenInAcrossAPageBoundary() throws {
        let user = try UserLayout()
        let data = pattern(300)
        let va = UserLayout.page(1).advanced(by: -100)
        try data.withUnsafeBytes { buffer in
            try user.space.copyOut(from: buffer.baseAddress!, count: data.count, to: va, memory: user.ram)
        }
        #expect(try user.peek(va, count: data.count) == data)

        var back = [UInt8](repeating: 0, count: data.count)
        try back.withUnsafeMutableBytes { buffer in
            try user.space.copyIn(from: va, count: buffer.count, into: buffer.baseAddress!, memory: user.ram)
        }
        #expect(back == data)
    }

    @Test func accessibilityFollowsThePageFlags() throws {
        let user = try UserLayout()
        let (space, ram) = (user.space, user.ram)
        func readable(_ va: VirtualAddress, _ count: Int) -> Bool {
            space.isUserAccessible(va, count: count, writable: false, memory: ram)
        }
        func writable(_ va: VirtualAddress, _ count: Int) -> Bool {
            space.isUserAccessible(va, count: count, writable: true, memory: ram)
        }
        #expect(readable(UserLayout.page(0), 2 * pageSize))
        #expect(writable(UserLayout.page(0), 2 * pageSize))
        #expect(!readable(UserLayout.page(2), 1), "unmapped")
        #expect(!readable(UserLayout.page(1), pageSize + 1), "runs into the unmapped page")
        #expect(readable(UserLayout.page(3).advanced(by: 10), 20))
        #expect(!writable(UserLayout.page(3).advanced(by: 10), 20), "read-only")
        #expect(!readable(UserLayout.page(4), 1), "no U bit")
        #expect(!readable(UserLayout.page(5).advanced(by: -1), 2), "starts in the kernel-only page")
        #expect(readable(UserLayout.page(2), 0), "zero bytes touch nothing")
        #expect(!readable(UserLayout.page(0), -1))
    }

    @Test func badAccessesThrowAndChangeNothing() throws {
        let user = try UserLayout()
        let before = try user.peek(UserLayout.page(0), count: 2 * pageSize)
        let data = pattern(512, seed: 9)

        func copyOut(_ va: VirtualAddress) throws {
            try data.withUnsafeBytes { buffer in
                try user.space.copyOut(from: buffer.baseAddress!, count: buffer.count, to: va, memory: user.ram)
            }
        }
        #expect(throws: UserAccessError.badAddress, "mapped into unmapped") {
            try copyOut(UserLayout.page(2).advanced(by: -256))
        }
        #expect(throws: UserAccessError.badAddress, "unmapped") { try copyOut(UserLayout.page(2)) }
        #expect(throws: UserAccessError.badAddress, "read-only") { try copyOut(UserLayout.page(3)) }
        #expect(throws: UserAccessError.badAddress, "no U bit") { try copyOut(UserLayout.page(4)) }
        #expect(try user.peek(UserLayout.page(0), count: 2 * pageSize) == before, "no byte was written")

        var buffer = [UInt8](repeating: 0xEE, count: 64)
        #expect(throws: UserAccessError.badAddress, "no U bit") {
            try buffer.withUnsafeMutableBytes { bytes in
                try user.space.copyIn(from: UserLayout.page(4), count: 64, into: bytes.baseAddress!, memory: user.ram)
            }
        }
        #expect(buffer.allSatisfy { $0 == 0xEE })
    }

    @Test func rangesMustNotWrapOrLeaveUserSpace() throws {
        let user = try UserLayout()
        let (space, ram) = (user.space, user.ram)
        #expect(!space.isUserAccessible(VirtualAddress(UInt64.max - 0xFFF), count: 0x2000, writable: false,
                                        memory: ram), "wraps past 2^64")
        #expect(!space.isUserAccessible(UserLayout.page(0), count: Int.max, writable: false, memory: ram))
        #expect(!space.isUserAccessible(VirtualAddress(0x3F_FFFF_F000), count: 0x1001, writable: false,
                                        memory: ram), "ends above user space")
        #expect(!space.isUserAccessible(VirtualAddress(0xFFFF_FFC0_0000_0000), count: 1, writable: false,
                                        memory: ram), "the high half is not user space")

        var byte: UInt8 = 0
        #expect(throws: UserAccessError.badAddress) {
            try space.copyIn(from: VirtualAddress(UInt64.max), count: 2, into: &byte, memory: ram)
        }
    }

    @Test func pagesLargerThan4KiBAreNotUserMemory() throws {
        var (ram, frames) = makeMemoryTestAllocator()
        let space = try createSpace(&frames, sharing: nil)
        try space.mapGigapage(VirtualAddress(0x4000_0000), to: PhysicalAddress(0x8000_0000),
                              flags: [.user, .read, .write], memory: ram)
        #expect(space.translate(VirtualAddress(0x4000_0000), memory: ram) != nil)
        #expect(!space.isUserAccessible(VirtualAddress(0x4000_0000), count: 1, writable: false, memory: ram))
    }

    @Test func crossSpaceCopyIsByteExact() throws {
        var user = try UserLayout()
        let receiver = try createSpace(&user.frames, sharing: nil)
        try user.mapUserPages(in: receiver)

        // Fill the sender's two writable pages, then copy 5000 bytes from an offset in
        // the sender to a different offset in the receiver, so source and destination
        // cross page boundaries at different points.
        let fill = pattern(2 * pageSize, seed: 3)
        try fill.withUnsafeBytes { buffer in
            try user.space.copyOut(from: buffer.baseAddress!, count: buffer.count, to: UserLayout.page(0),
                                   memory: user.ram)
        }
        let source = UserLayout.page(0).advanced(by: 123)
        let destination = UserLayout.page(0).advanced(by: 3000)
        let count = 5000
        try AddressSpace.copy(from: user.space, source, to: receiver, destination, count: count, memory: user.ram)

        var received = [UInt8](repeating: 0, count: 2 * pageSize)
        try received.withUnsafeMutableBytes { buffer in
            try receiver.copyIn(from: UserLayout.page(0), count: buffer.count, into: buffer.baseAddress!,
                                memory: user.ram)
        }
        #expect(Array(received[3000..<(3000 + count)]) == Array(fill[123..<(123 + count)]))
        #expect(received[..<3000].allSatisfy { $0 == 0 }, "nothing before the destination")
        #expect(received[(3000 + count)...].allSatisfy { $0 == 0 }, "nothing after the destination")
    }

    @Test func crossSpaceCopyValidatesBothSidesFirst() throws {
        var user = try UserLayout()
        let receiver = try createSpace(&user.frames, sharing: nil)
        try user.mapUserPages(in: receiver)
        let (sender, ram) = (user.space, user.ram)
        // Nonzero source bytes, so any partial copy would show in the zeroed receiver.
        let fill = pattern(2 * pageSize, seed: 5)
        try fill.withUnsafeBytes { buffer in
            try sender.copyOut(from: buffer.baseAddress!, count: buffer.count, to: UserLayout.page(0), memory: ram)
        }

        #expect(throws: UserAccessError.badAddress, "destination runs into an unmapped page") {
            try AddressSpace.copy(from: sender, UserLayout.page(0), to: receiver, UserLayout.page(1),
                                  count: pageSize + 1, memory: ram)
        }
        #expect(throws: UserAccessError.badAddress, "destination read-only") {
            try AddressSpace.copy(from: sender, UserLayout.page(0), to: receiver, UserLayout.page(3),
                                  count: 16, memory: ram)
        }
        #expect(throws: UserAccessError.badAddress, "source runs into an unmapped page") {
            try AddressSpace.copy(from: sender, UserLayout.page(1), to: receiver, UserLayout.page(0),
                                  count: pageSize + 1, memory: ram)
        }
        #expect(throws: UserAccessError.badAddress, "source not user-accessible") {
            try AddressSpace.copy(from: sender, UserLayout.page(4), to: receiver, UserLayout.page(0),
                                  count: 16, memory: ram)
        }
        #expect(try user.peek(UserLayout.page(0), count: 2 * pageSize, in: receiver).allSatisfy { $0 == 0 })

        // A zero-length copy touches no page, so it succeeds whatever the addresses.
        try AddressSpace.copy(from: sender, UserLayout.page(4), to: receiver, UserLayout.page(3),
                              count: 0, memory: ram)
    }

    @Test func destroyingBothSpacesFreesEverything() throws {
        var user = try UserLayout()
        let receiver = try createSpace(&user.frames, sharing: nil)
        try user.mapUserPages(in: receiver)
        // Each space: root, level-1 and level-0 table, five owned pages.
        #expect(user.space.destroy(allocator: &user.frames) == 8)
        #expect(receiver.destroy(allocator: &user.frames) == 8)
        #expect(user.frames.freeFrames == user.initialFreeFrames)
    }
}

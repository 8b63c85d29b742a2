// A driver's devices reach only the pages the kernel granted it (DMAGuard.swift).
//
// The driver here is `blockdriver` (device range 0x1000_1000+0x8000) with a fake virtio
// device in the first page. It grants its two heap pages: the first holds a queue of
// four (descriptor table, available ring, used ring), the second is its data page.
// Each test then plays the driver — honest or hostile — through the `deviceWrite` and
// `physicalAddress` system calls and checks what reached the device.

import CurioABI
import Testing
@testable import KernelCore

@Suite struct DMAGuardTests {
    static let device: UInt64 = 0x1000_1000
    static let ringPage = ProcessLayout.heap
    static let dataPage = ProcessLayout.heap + 0x1000
    static let descriptorOffset: UInt64 = 0
    static let availableOffset: UInt64 = 0x100
    static let usedOffset: UInt64 = 0x200
    static let queueSize: UInt32 = 4

    /// A harness with the driver running and both heap pages granted.
    final class Rig {
        let harness: KernelHarness
        let driver: Int
        var ringPhysical: UInt64 = 0
        var dataPhysical: UInt64 = 0

        init() throws {
            harness = try KernelHarness(programs: KernelTestProgram.standard)
            harness.kernel.platform.installVirtioDevice(at: DMAGuardTests.device)
            driver = try harness.spawn(StandardProgram.blockDriver).index
            ringPhysical = try grant(DMAGuardTests.ringPage)
            dataPhysical = try grant(DMAGuardTests.dataPage)
        }

        func grant(_ address: UInt64) throws -> UInt64 {
            harness.syscall(driver, .physicalAddress, UInt(address))
            try #require(harness.error(driver) == nil)
            return UInt64(harness.result(driver, 1))
        }

        /// deviceWrite of `value` to register `offset` of the device; nil if admitted.
        @discardableResult
        func write(_ offset: Int, _ value: UInt32, slotOffset: UInt64 = 0) -> SyscallError? {
            harness.syscall(driver, .deviceWrite, 0, UInt(slotOffset) + UInt(offset), UInt(value))
            return harness.error(driver)
        }

        /// Whether the device saw a write of `value` to `offset` (of the first device).
        func deviceSaw(_ offset: Int, _ value: UInt32) -> Bool {
            harness.kernel.platform.deviceWrites.contains {
                $0.address == DMAGuardTests.device + UInt64(offset) && $0.value == value
            }
        }

        var notifies: Int {
            harness.kernel.platform.deviceWrites.filter {
                $0.address == DMAGuardTests.device + UInt64(VirtioRegister.queueNotify)
            }.count
        }

        /// Queue 0's rings at the given physical addresses, then QueueReady.
        @discardableResult
        func setUpQueue(descriptors: UInt64? = nil, available: UInt64? = nil, used: UInt64? = nil,
                        size: UInt32 = DMAGuardTests.queueSize) -> SyscallError? {
            let rings = [descriptors ?? ringPhysical + DMAGuardTests.descriptorOffset,
                         available ?? ringPhysical + DMAGuardTests.availableOffset,
                         used ?? ringPhysical + DMAGuardTests.usedOffset]
            let registers = [VirtioRegister.queueDescriptorLow, VirtioRegister.queueDriverLow,
                             VirtioRegister.queueDeviceLow]
            write(VirtioRegister.queueSelect, 0)
            write(VirtioRegister.queueNum, size)
            for (register, address) in zip(registers, rings) {
                write(register, UInt32(truncatingIfNeeded: address))
                write(register + 4, UInt32(truncatingIfNeeded: address >> 32))
            }
            return write(VirtioRegister.queueReady, 1)
        }

        /// Descriptor `index` of the queue, written in the driver's ring page.
        func describe(_ index: Int, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) throws {
            var bytes = [UInt8]()
            withUnsafeBytes(of: address.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: length.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: flags.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: next.littleEndian) { bytes += $0 }
            try harness.write(bytes, at: DMAGuardTests.ringPage + DMAGuardTests.descriptorOffset + UInt64(16 * index),
                              in: driver)
        }

        /// Publishes chain heads at available-ring positions from `first` on, and the new index.
        func publish(_ heads: [UInt16], from first: UInt16 = 0) throws {
            for (offset, head) in heads.enumerated() {
                let position = Int((first &+ UInt16(offset)) % UInt16(DMAGuardTests.queueSize))
                try harness.write([UInt8(head & 0xff), UInt8(head >> 8)],
                                  at: DMAGuardTests.ringPage + DMAGuardTests.availableOffset + 4 + UInt64(2 * position),
                                  in: driver)
            }
            let index = first &+ UInt16(heads.count)
            try harness.write([UInt8(index & 0xff), UInt8(index >> 8)],
                              at: DMAGuardTests.ringPage + DMAGuardTests.availableOffset + 2, in: driver)
        }
    }

    // MARK: Grants

    @Test func onlyADriversOwnWritablePagesCanBeGranted() throws {
        let rig = try Rig()
        let harness = rig.harness
        harness.syscall(rig.driver, .physicalAddress, UInt(ProcessLayout.text))
        #expect(harness.error(rig.driver) == .badAddress, "its code is not writable")
        harness.syscall(rig.driver, .physicalAddress, UInt(Kernel<FakePlatform>.deviceWindow))
        #expect(harness.error(rig.driver) == .badAddress, "a device window is not its memory")
        let plain = try harness.spawn(StandardProgram.peer).index
        harness.syscall(plain, .physicalAddress, UInt(ProcessLayout.heap))
        #expect(harness.error(plain) == .notPermitted, "a program without devices grants nothing")
        #expect(harness.kernel.dma.pointee.grantCount(of: rig.driver) == 2)
        _ = try rig.grant(Self.ringPage)
        #expect(harness.kernel.dma.pointee.grantCount(of: rig.driver) == 2, "granting again adds nothing")
        #expect(harness.kernel.audit().isClean)
    }

    @Test func aVirtioDevicesRegistersAreMappedReadOnly() throws {
        let rig = try Rig()
        let window = rig.harness.mappings(of: rig.driver).filter {
            $0.virtualAddress >= Kernel<FakePlatform>.deviceWindow && $0.virtualAddress < Kernel<FakePlatform>.stackTop - 0x10_0000
        }
        #expect(window.count == 8)
        #expect(window.first { $0.virtualAddress == Kernel<FakePlatform>.deviceWindow }?.flags.contains(.write) == false)
        #expect(window.filter { $0.flags.contains(.write) }.count == 7, "pages without a virtio device stay writable")
    }

    // MARK: Queue set-up

    @Test func ringsInsideTheGrantsGoLive() throws {
        let rig = try Rig()
        #expect(rig.setUpQueue() == nil)
        #expect(rig.deviceSaw(VirtioRegister.queueReady, 1))
        #expect(rig.deviceSaw(VirtioRegister.queueDescriptorLow, UInt32(truncatingIfNeeded: rig.ringPhysical)))
    }

    @Test(arguments: [0, 1, 2])
    func aRingOutsideTheGrantsNeverReachesTheDevice(ring: Int) throws {
        let rig = try Rig()
        let kernelMemory: UInt64 = rig.harness.kernelRoot.rawValue
        #expect(rig.setUpQueue(descriptors: ring == 0 ? kernelMemory : nil,
                                available: ring == 1 ? kernelMemory + 0x100 : nil,
                                used: ring == 2 ? kernelMemory + 0x200 : nil) == .dmaNotPermitted)
        #expect(!rig.deviceSaw(VirtioRegister.queueReady, 1))
    }

    @Test func aRingThatRunsOffItsGrantedPageIsRefused() throws {
        let rig = try Rig()
        // 6 + 8 × 4 bytes of used ring starting 8 bytes before the end of the data page.
        #expect(rig.setUpQueue(used: rig.dataPhysical + 0x1000 - 8) == .dmaNotPermitted)
        #expect(rig.setUpQueue(size: 0) == .badArgument)
        #expect(rig.setUpQueue(size: 4096) == .badArgument)
        #expect(rig.setUpQueue(descriptors: rig.ringPhysical + 8) == .badArgument, "misaligned table")
    }

    @Test func aLiveQueueIsFrozenUntilTheDeviceIsReset() throws {
        let rig = try Rig()
        try #require(rig.setUpQueue() == nil)
        #expect(rig.write(VirtioRegister.queueNum, 256) == .notPermitted, "QEMU would resize the live ring")
        #expect(rig.write(VirtioRegister.queueDescriptorLow, 0x8020_0000) == .notPermitted)
        #expect(rig.write(VirtioRegister.queueReady, 0) == .notPermitted, "not ready is not unused")
        #expect(rig.write(VirtioRegister.status, 0) == nil)
        #expect(rig.setUpQueue() == nil, "after a reset the driver sets it up again")
    }

    // MARK: Notify

    @Test func aNotifyWhoseChainsStayInsideTheGrantsReachesTheDevice() throws {
        let rig = try Rig()
        try #require(rig.setUpQueue() == nil)
        try rig.describe(0, address: rig.ringPhysical + 0x800, length: 16, flags: 1, next: 1)
        try rig.describe(1, address: rig.dataPhysical, length: 4096, flags: 3, next: 2)
        try rig.describe(2, address: rig.ringPhysical + 0x900, length: 1, flags: 2)
        try rig.publish([0])
        #expect(rig.write(VirtioRegister.queueNotify, 0) == nil)
        #expect(rig.notifies == 1)
        try rig.publish([0], from: 1)
        #expect(rig.write(VirtioRegister.queueNotify, 0) == nil, "the ring's index moves on")
        #expect(rig.notifies == 2)
    }

    @Test func aDescriptorAimedOutsideTheGrantsStopsTheNotifyUntilItIsMended() throws {
        let rig = try Rig()
        try #require(rig.setUpQueue() == nil)
        try rig.describe(0, address: rig.harness.kernelRoot.rawValue, length: 512, flags: 2)
        try rig.publish([0])
        #expect(rig.write(VirtioRegister.queueNotify, 0) == .dmaNotPermitted)
        try rig.describe(1, address: rig.dataPhysical, length: 512)
        try rig.publish([1], from: 1)
        #expect(rig.write(VirtioRegister.queueNotify, 0) == .dmaNotPermitted, "the bad entry is still pending")
        #expect(rig.notifies == 0)
        try rig.describe(0, address: rig.dataPhysical, length: 512, flags: 2)
        #expect(rig.write(VirtioRegister.queueNotify, 0) == nil)
        #expect(rig.notifies == 1)
    }

    @Test func malformedChainsAreRefused() throws {
        let spill = try Rig()
        try #require(spill.setUpQueue() == nil)
        try spill.describe(0, address: spill.dataPhysical + 4000, length: 200)
        try spill.publish([0])
        #expect(spill.write(VirtioRegister.queueNotify, 0) == .dmaNotPermitted, "runs into the next frame")

        let indirect = try Rig()
        try #require(indirect.setUpQueue() == nil)
        try indirect.describe(0, address: indirect.dataPhysical, length: 64, flags: 4)
        try indirect.publish([0])
        #expect(indirect.write(VirtioRegister.queueNotify, 0) == .notPermitted, "indirect tables are not walked")

        let loop = try Rig()
        try #require(loop.setUpQueue() == nil)
        try loop.describe(0, address: loop.dataPhysical, length: 64, flags: 1, next: 0)
        try loop.publish([0])
        #expect(loop.write(VirtioRegister.queueNotify, 0) == .badArgument, "a chain longer than the queue")

        let far = try Rig()
        try #require(far.setUpQueue() == nil)
        try far.describe(0, address: far.dataPhysical, length: 64)
        try far.publish([0, 0, 0, 0, 0])
        #expect(far.write(VirtioRegister.queueNotify, 0) == .badArgument, "more entries than the ring holds")

        let empty = try Rig()
        try #require(empty.setUpQueue() == nil)
        try empty.describe(0, address: 0, length: 0)
        try empty.publish([0])
        #expect(empty.write(VirtioRegister.queueNotify, 0) == .dmaNotPermitted, "an empty buffer names nothing")
        #expect(spill.notifies + indirect.notifies + loop.notifies + far.notifies + empty.notifies == 0)
    }

    @Test func aNotifyForAQueueThatIsNotLiveIsRefused() throws {
        let rig = try Rig()
        #expect(rig.write(VirtioRegister.queueNotify, 0) == .badArgument)
        #expect(rig.write(VirtioRegister.queueNotify, 7) == .badArgument)
    }

    // MARK: Registers and features

    @Test func featuresThatHideDescriptorsAreRefused() throws {
        let rig = try Rig()
        #expect(rig.write(VirtioRegister.driverFeaturesSelect, 0) == nil)
        #expect(rig.write(VirtioRegister.driverFeatures, 1 << 28) == .notPermitted, "indirect descriptors")
        #expect(rig.write(VirtioRegister.driverFeatures, 1 << 9 | 1 << 29) == nil)
        #expect(rig.write(VirtioRegister.driverFeaturesSelect, 1) == nil)
        #expect(rig.write(VirtioRegister.driverFeatures, 1 << 2) == .notPermitted, "the packed ring")
        #expect(rig.write(VirtioRegister.driverFeatures, 1 << 6) == .notPermitted, "notification data")
        #expect(rig.write(VirtioRegister.driverFeatures, 1 << 0) == nil, "VERSION_1")
        #expect(rig.write(VirtioRegister.driverFeaturesSelect, 2) == nil)
        #expect(rig.write(VirtioRegister.driverFeatures, 1) == .notPermitted)
    }

    @Test func registersADriverHasNoBusinessWithAreRefused() throws {
        let rig = try Rig()
        #expect(rig.write(0x040, 0x8020_0) == .notPermitted, "the legacy QueuePFN")
        #expect(rig.write(0x028, 4096) == .notPermitted, "the legacy GuestPageSize")
        #expect(rig.write(VirtioRegister.status, 1, slotOffset: 0x1000) == .notPermitted, "no virtio device there")
        #expect(rig.write(VirtioRegister.status, 1, slotOffset: 0x8000) == .badArgument, "past its range")
        #expect(rig.write(VirtioRegister.status + 2, 1) == .badArgument, "misaligned")
        rig.harness.syscall(rig.driver, .deviceWrite, 1, 0, 0)
        #expect(rig.harness.error(rig.driver) == .notPermitted, "it has one device range")
        rig.harness.syscall(rig.driver, .deviceWrite, 0, UInt(VirtioRegister.status), 1 << 32)
        #expect(rig.harness.error(rig.driver) == .badArgument)
        #expect(rig.write(VirtioRegister.interruptAcknowledge, 1) == nil)
        #expect(rig.write(VirtioRegister.config + 8, 1) == nil)
        #expect(rig.harness.kernel.platform.deviceWrites.count == 2)
    }

    // MARK: The driver goes

    @Test func aRestartRevokesTheGrants() throws {
        let rig = try Rig()
        try #require(rig.setUpQueue() == nil)
        rig.harness.kernel.platform.clock = 1_000_000
        rig.harness.kernel.fault(rig.driver, cause: .loadPageFault, address: 0)
        #expect(rig.harness.kernel.platform.resets.map(\.base) == [Self.device])
        #expect(rig.harness.kernel.dma.pointee.grantCount == 0)
        #expect(rig.setUpQueue() == .dmaNotPermitted, "the old pages are no longer its")
        #expect(rig.harness.kernel.audit().isClean)
    }

    @Test func theAuditFindsAGrantOfAFrameTheDriverDoesNotOwn() throws {
        let rig = try Rig()
        let peer = try rig.harness.spawn(StandardProgram.peer).index
        let stranger = try #require(rig.harness.mappings(of: peer).first { $0.flags.contains(.owned) })
        let granted = rig.harness.kernel.dma.pointee.grant(stranger.frame, to: rig.driver)
        #expect(granted)
        #expect(rig.harness.kernel.audit().first == .dmaGrantNotOwned)
    }

    @Test func grantsAreSortedAndBelongToOneDriver() {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: DMAGuard.storageBytes, alignment: 8)
        defer { storage.deallocate() }
        var dma = DMAGuard(storage: storage)
        for frame: UInt64 in [0x8030_0000, 0x8010_0000, 0x8020_0000] {
            let granted = dma.grant(frame, to: 5)
            #expect(granted)
        }
        #expect(dma.grants[0].frame == 0x8010_0000 && dma.grants[2].frame == 0x8030_0000)
        #expect(dma.covers(0x8010_0ff0, byteCount: 16, for: 5))
        #expect(!dma.covers(0x8010_0ff0, byteCount: 17, for: 5), "the next frame is not granted")
        #expect(!dma.covers(0x8020_0000, byteCount: 1, for: 6), "another driver's")
        let second = dma.grant(0x8020_0000, to: 6)
        #expect(!second, "a frame has one driver")
        #expect(!dma.covers(UInt64.max - 3, byteCount: 8, for: 5))
        dma.revoke(5)
        #expect(dma.grantCount == 0)
        var granted = 0
        for index in 0..<DMAGuard.grantCapacity where dma.grant(UInt64(index) << 12 | 0x9000_0000, to: 1) {
            granted += 1
        }
        #expect(granted == DMAGuard.grantCapacity)
        let overflow = dma.grant(0xA000_0000, to: 1)
        #expect(!overflow, "the table is full")
    }
}

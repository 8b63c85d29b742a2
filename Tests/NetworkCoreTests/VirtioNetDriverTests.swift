@testable import NetworkCore
import Testing
import Virtio

@Suite struct VirtioNetDriverInitialization {
    @Test func initializesInTheSpecifiedOrder() throws {
        let rig = try NetRig()
        #expect(FakeNetDriver.probe(rig.device))
        #expect(rig.driver.state == .reset)
        try rig.driver.initialize()
        let s = VirtioStatus.self
        #expect(rig.device.statusLog == [0, s.acknowledge, s.acknowledge | s.driver,
                                         s.acknowledge | s.driver | s.featuresOK,
                                         s.acknowledge | s.driver | s.featuresOK | s.driverOK])
        #expect(rig.device.acceptedFeatures == VirtioFeature.version1 | VirtioFeature.networkMAC)
        #expect(rig.driver.state == .ready)
        #expect(rig.driver.mac == 0x5254_0012_3456)
        #expect(rig.driver.size == 16)
        #expect(rig.device.queues.map(\.num) == [16, 16])
        #expect(rig.device.queues.map(\.ready) == [1, 1])
        #expect(rig.device.receiveBuffersAvailable == 16)
        #expect(rig.driver.counters == NetworkDeviceCounters())
        #expect(rig.device.violations.isEmpty)
    }

    /// Every receive buffer is offered: the device can fill all of them, each at its own
    /// address in the buffer pages, and only then drops.
    @Test func offersEveryReceiveBuffer() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        for index in 0..<16 { #expect(rig.device.deliver(frame: testFrame(length: 60, seed: index))) }
        #expect(!rig.device.deliver(frame: testFrame(length: 60)))
        #expect(rig.device.dropped == 1)
        let offered = rig.device.offeredAddresses[FakeNetDevice.receive]
        #expect(offered.count == 16)
        #expect(offered.allSatisfy { rig.isBufferAddress($0) })
        for index in 0..<16 { #expect(try rig.receive() == testFrame(length: 60, seed: index)) }
        #expect(rig.device.violations.isEmpty)
    }

    static let macs: [([UInt8], UInt16, UInt64)] = [
        ([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], 0xBEEF, 0x5254_0012_3456),
        ([0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54], 0xFFFF, 0xFEDC_BA98_7654),
        ([0x02, 0x00, 0x00, 0x00, 0x00, 0x01], 0, 0x0200_0000_0001),
    ]

    @Test(arguments: macs)
    func readsTheMACAndNothingAfterIt(bytes: [UInt8], linkStatus: UInt16, expected: UInt64) throws {
        let rig = try NetRig {
            $0.macAddress = bytes
            $0.linkStatusField = linkStatus
        }
        try rig.driver.initialize()
        #expect(rig.driver.mac == expected)
    }

    @Test func readsTheMACAgainWhenTheConfigurationChangesUnderIt() throws {
        let rig = try NetRig { $0.generationFlaps = 3 }
        try rig.driver.initialize()
        #expect(rig.driver.mac == 0x5254_0012_3456)
        #expect(rig.driver.state == .ready)
    }

    @Test(arguments: [(UInt32(256), 16), (16, 16), (12, 8), (8, 8), (3, 2), (2, 2)])
    func queueSizeIsTheLargestPowerOfTwoUpTo16(numMax: UInt32, expected: Int) throws {
        let rig = try NetRig { $0.queueNumMax = numMax }
        try rig.driver.initialize()
        #expect(rig.driver.size == expected)
        #expect(rig.device.queues.map(\.num) == [UInt32(expected), UInt32(expected)])
        #expect(rig.device.receiveBuffersAvailable == expected)
        for index in 0..<(3 * expected) {
            #expect(rig.device.deliver(frame: testFrame(length: 100, seed: index)))
            #expect(try rig.receive() == testFrame(length: 100, seed: index))
            #expect(try rig.send(testFrame(length: 80, seed: index)))
        }
        #expect(rig.device.transmitted == (0..<(3 * expected)).map { testFrame(length: 80, seed: $0) })
        #expect(rig.device.violations.isEmpty)
    }

    /// Queues of different sizes: the receive buffers and the transmit buffers still
    /// do not overlap.
    @Test(arguments: [(UInt32(4), UInt32(16)), (16, 2)])
    func queuesOfDifferentSizesKeepTheirBuffersApart(receiveMax: UInt32, transmitMax: UInt32) throws {
        let rig = try NetRig {
            $0.setQueueNumMax(receiveMax, queue: FakeNetDevice.receive)
            $0.setQueueNumMax(transmitMax, queue: FakeNetDevice.transmit)
            $0.transmitOnNotify = false
        }
        try rig.driver.initialize()
        #expect(rig.device.queues.map(\.num) == [receiveMax, transmitMax])
        for index in 0..<Int(transmitMax) { #expect(try rig.send(testFrame(length: 1514, seed: index))) }
        #expect(try !rig.send(testFrame(length: 60)))
        for index in 0..<Int(receiveMax) { #expect(rig.device.deliver(frame: testFrame(length: 1514, seed: 100 + index))) }
        rig.device.completeTransmits()
        #expect(rig.device.transmitted == (0..<Int(transmitMax)).map { testFrame(length: 1514, seed: $0) })
        for index in 0..<Int(receiveMax) { #expect(try rig.receive() == testFrame(length: 1514, seed: 100 + index)) }
        let receive = rig.device.offeredAddresses[FakeNetDevice.receive]
        let transmit = rig.device.offeredAddresses[FakeNetDevice.transmit]
        #expect(receive.count == Int(receiveMax) && transmit.count == Int(transmitMax))
        #expect(receive.isDisjoint(with: transmit))
        #expect(rig.device.violations.isEmpty)
    }

    @Test func refusesWhatIsNotAModernNetworkDevice() throws {
        let cases: [((FakeNetDevice) -> Void, NetworkDeviceError)] = [
            ({ $0.magic = 0 }, .notVirtio),
            ({ $0.magic = 0x7472_6977 }, .notVirtio),
            ({ $0.version = 1 }, .legacyDevice),
            ({ $0.deviceID = 0 }, .notVirtio),
            ({ $0.deviceID = 2 }, .notNetworkDevice),
        ]
        for (configure, expected) in cases {
            let rig = try NetRig(configure: configure)
            #expect(!FakeNetDriver.probe(rig.device))
            #expect(throws: expected) { try rig.driver.initialize() }
            #expect(rig.device.statusLog.isEmpty, "an unknown device is not touched")
            #expect(rig.driver.state == .failed)
        }
    }

    @Test func failsAndSaysSoWhenNegotiationFails() throws {
        let everything = VirtioFeature.version1 | VirtioFeature.networkMAC | FakeNetDevice.checksumOffload
        let cases: [((FakeNetDevice) -> Void, NetworkDeviceError)] = [
            ({ $0.offeredFeatures = everything & ~VirtioFeature.version1 }, .setUp(.missingVersion1)),
            ({ $0.offeredFeatures = everything & ~VirtioFeature.networkMAC }, .missingMAC),
            ({ $0.refusesFeatures = true }, .setUp(.featuresRejected)),
            ({ $0.generationFlaps = 1000 }, .setUp(.configUnstable)),
            ({ $0.queueNumMax = 0 }, .setUp(.queueUnavailable)),
            ({ $0.queueNumMax = 1 }, .setUp(.queueUnavailable)),
            ({ $0.setQueueNumMax(0, queue: FakeNetDevice.transmit) }, .setUp(.queueUnavailable)),
        ]
        for (configure, expected) in cases {
            let rig = try NetRig(configure: configure)
            #expect(throws: expected) { try rig.driver.initialize() }
            #expect(rig.device.status & VirtioStatus.failed != 0)
            #expect(rig.device.status & VirtioStatus.driverOK == 0)
            #expect(rig.device.acceptedFeatures & ~(VirtioFeature.version1 | VirtioFeature.networkMAC) == 0)
            #expect(rig.driver.state == .failed)
            #expect(throws: NetworkDeviceError.notReady) { try rig.driver.nextFrame() }
            #expect(throws: NetworkDeviceError.notReady) { try rig.driver.transmitBuffer() }
            #expect(throws: NetworkDeviceError.notReady) { try rig.driver.reclaimTransmitted() }
            #expect(rig.device.violations.isEmpty)
        }
    }

    /// A device whose queues stay live through a reset is not taken over: the driver
    /// would be setting up rings the device is still using.
    @Test func refusesAQueueThatIsAlreadyLive() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.queueReadySurvivesReset = true
        #expect(throws: NetworkDeviceError.setUp(.queueInUse)) { try rig.driver.initialize() }
        #expect(rig.driver.state == .failed)
        #expect(rig.device.status & VirtioStatus.failed != 0)
        #expect(rig.device.violations.isEmpty, "no queue register was written while the queue was live")
    }

    @Test func rejectsATooSmallOrMisalignedRingOrTooFewBufferPages() throws {
        let memory = TestMemory()
        let device = FakeNetDevice(memory: memory)
        let barrier = FakeNetBarrier(device: device)
        let ring = memory.allocate(4096)
        let (buffers, physical) = memory.allocatePages(FakeNetDriver.bufferPagesNeeded)
        var pages = DMAPages()
        for address in physical { pages.append(address) }
        var tooFew = DMAPages()
        for address in physical.dropLast() { tooFew.append(address) }
        #expect(throws: NetworkDeviceError.dmaRegionTooSmall) {
            _ = try FakeNetDriver(registers: device, ring: DMARegion(base: ring.base, physical: ring.physical,
                                                                     byteCount: 1000),
                                  buffers: buffers, bufferPages: pages, barrier: barrier)
        }
        #expect(throws: NetworkDeviceError.dmaRegionTooSmall) {
            _ = try FakeNetDriver(registers: device, ring: ring, buffers: buffers, bufferPages: tooFew, barrier: barrier)
        }
        #expect(throws: NetworkDeviceError.dmaRegionMisaligned) {
            _ = try FakeNetDriver(registers: device, ring: DMARegion(base: ring.base + 16, physical: ring.physical + 16,
                                                                     byteCount: 2048),
                                  buffers: buffers, bufferPages: pages, barrier: barrier)
        }
        #expect(FakeNetDriver.bufferPagesNeeded == 16)
    }
}

@Suite struct VirtioNetDriverReceive {
    @Test(arguments: [14, 60, 61, 1000, 1513, 1514])
    func deliversAFrameByteExactly(length: Int) throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        #expect(try rig.driver.nextFrame() == nil)
        let frame = testFrame(length: length, seed: length)
        #expect(rig.device.deliver(frame: frame))
        let received = try #require(try rig.driver.nextFrame())
        #expect(Array(received.bytes) == frame)
        #expect(rig.driver.counters.framesReceived == 1)
        try rig.driver.release(received)
        #expect(try rig.driver.nextFrame() == nil)
        #expect(rig.device.violations.isEmpty)
    }

    @Test func releaseOffersTheBufferAgain() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        for index in 0..<100 {
            #expect(rig.device.deliver(frame: testFrame(length: 14 + index, seed: index)))
            #expect(try rig.receive() == testFrame(length: 14 + index, seed: index))
        }
        #expect(rig.device.dropped == 0)
        #expect(rig.driver.counters.framesReceived == 100)
        #expect(rig.device.receiveBuffersAvailable == 16)
        #expect(rig.device.violations.isEmpty)
    }

    /// A frame the caller holds stays out of the device's hands: its bytes survive
    /// the device filling every other buffer, and its buffer is not filled.
    @Test func aHeldFrameIsNotOverwritten() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.deliver(frame: testFrame(length: 1514, seed: 1))
        let held = try #require(try rig.driver.nextFrame())
        for index in 0..<15 { #expect(rig.device.deliver(frame: testFrame(length: 1514, seed: 2 + index))) }
        #expect(!rig.device.deliver(frame: testFrame(length: 60)), "the held buffer is not offered")
        #expect(Array(held.bytes) == testFrame(length: 1514, seed: 1))
        try rig.driver.release(held)
        #expect(rig.device.deliver(frame: testFrame(length: 60, seed: 99)))
        for index in 0..<15 { #expect(try rig.receive() == testFrame(length: 1514, seed: 2 + index)) }
        #expect(try rig.receive() == testFrame(length: 60, seed: 99))
        #expect(try rig.receive() == nil)
        #expect(rig.device.violations.isEmpty)
    }

    /// Only a frame the driver lent out goes back to the device: a second release of
    /// the same frame, or a frame naming another buffer (a transmit buffer, one beyond
    /// them all), would put a buffer on the ring twice or offer the device memory that
    /// is not a receive buffer.
    @Test func releaseRefusesAFrameNotLentOut() throws {
        let cases: [(ReceivedFrame) -> ReceivedFrame?] = [
            { _ in nil },
            { ReceivedFrame(buffer: 1, bytes: $0.bytes) },
            { ReceivedFrame(buffer: 16, bytes: $0.bytes) },
            { ReceivedFrame(buffer: 40, bytes: $0.bytes) },
            { ReceivedFrame(buffer: -1, bytes: $0.bytes) },
        ]
        for forge in cases {
            let rig = try NetRig()
            try rig.driver.initialize()
            rig.device.deliver(frame: testFrame(length: 60))
            let frame = try #require(try rig.driver.nextFrame())
            let other = forge(frame)
            if other == nil { try rig.driver.release(frame) }
            #expect(throws: NetworkDeviceError.self) { try rig.driver.release(other ?? frame) }
            #expect(rig.driver.state == .failed)
            #expect(rig.device.receiveBuffersAvailable == (other == nil ? 16 : 15))
            let offered = rig.device.offeredAddresses[FakeNetDevice.receive]
            while rig.device.deliver(frame: testFrame(length: 60)) {}
            #expect(rig.device.offeredAddresses[FakeNetDevice.receive].count == 16)
            #expect(offered.isSubset(of: rig.device.offeredAddresses[FakeNetDevice.receive]))
            #expect(rig.device.violations.isEmpty)
        }
    }

    /// A length the device had no right to report (shorter than the header, longer
    /// than a frame, longer than the buffer) is counted and skipped; the buffer goes
    /// back to the device and the driver carries on.
    @Test(arguments: [UInt32(0), 11, 1527, 2048, 2049, 100_000, UInt32.max])
    func aBadLengthIsCountedAndSkipped(length: UInt32) throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.sabotage = .usedLength(length)
        rig.device.deliver(frame: testFrame(length: 60, seed: 1))
        rig.device.deliver(frame: testFrame(length: 60, seed: 2))
        #expect(try rig.receive() == testFrame(length: 60, seed: 2))
        #expect(try rig.receive() == nil)
        #expect(rig.driver.counters.badLengths == 1)
        #expect(rig.driver.counters.framesReceived == 1)
        #expect(rig.driver.state == .ready)
        #expect(rig.device.receiveBuffersAvailable == 16, "the skipped buffer is offered again")
        #expect(rig.device.violations.isEmpty)
    }

    /// Far more frames than queue entries, and past the 16-bit wrap of the ring
    /// indices, in batches of varying size.
    @Test(arguments: [(UInt32(16), 16), (16, 5), (2, 2)])
    func survivesRingAndIndexWrapAround(numMax: UInt32, maximumBatch: Int) throws {
        let rig = try NetRig { $0.queueNumMax = numMax }
        try rig.driver.initialize()
        var delivered = 0
        var received = 0
        var round = 0
        while delivered < 70_000 {
            let batch = round % maximumBatch + 1
            for _ in 0..<min(batch, 70_000 - delivered) {
                let length = delivered % 1000 == 0 ? 1514 : 14 + delivered % 50
                guard rig.device.deliver(frame: testFrame(length: length, seed: delivered)) else {
                    Issue.record("frame \(delivered) dropped")
                    return
                }
                delivered += 1
            }
            while let frame = try rig.driver.nextFrame() {
                let length = received % 1000 == 0 ? 1514 : 14 + received % 50
                guard Array(frame.bytes) == testFrame(length: length, seed: received) else {
                    Issue.record("frame \(received) differs")
                    return
                }
                try rig.driver.release(frame)
                received += 1
            }
            round += 1
        }
        #expect(received == 70_000)
        #expect(rig.driver.counters.framesReceived == 70_000)
        #expect(rig.device.queues[FakeNetDevice.receive].usedIndex == UInt16(truncatingIfNeeded: 70_000))
        #expect(rig.device.violations.isEmpty)
    }

    @Test func raisesAndAcknowledgesTheInterrupt() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.driver.acknowledgeInterrupt()
        #expect(rig.device.interruptStatus == 0)
        rig.device.deliver(frame: testFrame(length: 60))
        #expect(rig.device.interruptStatus == VirtioMMIO.usedBufferInterrupt)
        rig.driver.acknowledgeInterrupt()
        #expect(rig.device.interruptStatus == 0)
        #expect(try rig.receive() == testFrame(length: 60))
        #expect(try rig.send(testFrame(length: 60)))
        #expect(rig.device.interruptStatus == VirtioMMIO.usedBufferInterrupt)
        rig.driver.acknowledgeInterrupt()
        #expect(rig.device.interruptStatus == 0)
    }
}

@Suite struct VirtioNetDriverTransmit {
    @Test(arguments: [14, 60, 1000, 1514])
    func aFrameReachesTheDeviceByteExactly(length: Int) throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        #expect(try rig.send(testFrame(length: length, seed: 3)))
        #expect(rig.device.transmitted == [testFrame(length: length, seed: 3)])
        #expect(rig.driver.counters.framesSent == 1)
        #expect(rig.device.violations.isEmpty, "a zero header, a device-readable buffer")
    }

    @Test func aSendOfFewerBytesThanWrittenSendsOnlyThose() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        let buffer = try #require(try rig.driver.transmitBuffer())
        #expect(buffer.frame.count == 1514)
        let frame = testFrame(length: 1514)
        frame.withUnsafeBytes { buffer.frame.copyMemory(from: $0) }
        try rig.driver.send(buffer, length: 42)
        #expect(rig.device.transmitted == [Array(frame[..<42])])
    }

    @Test func aFullTransmitQueueRefusesUntilTheDeviceReturnsBuffers() throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        for index in 0..<16 { #expect(try rig.send(testFrame(length: 60 + index, seed: index))) }
        #expect(try rig.driver.transmitBuffer() == nil)
        #expect(try rig.driver.transmitBuffer() == nil)
        #expect(rig.driver.counters.transmitBusy == 2)
        #expect(rig.device.transmitted.isEmpty)
        #expect(rig.device.transmitsPending == 16)
        rig.device.completeTransmits()
        #expect(rig.device.transmitted == (0..<16).map { testFrame(length: 60 + $0, seed: $0) })
        for index in 16..<40 {
            #expect(try rig.send(testFrame(length: 60, seed: index)))
            rig.device.completeTransmits()
        }
        #expect(rig.device.transmitted.count == 40)
        #expect(rig.device.transmitted.last == testFrame(length: 60, seed: 39))
        #expect(rig.driver.counters.framesSent == 40)
        #expect(rig.driver.counters.transmitBusy == 2)
        #expect(rig.device.violations.isEmpty)
    }

    /// Past the 16-bit wrap of the transmit ring's indices.
    @Test func survivesIndexWrapAround() throws {
        let rig = try NetRig { $0.queueNumMax = 4 }
        try rig.driver.initialize()
        for index in 0..<70_000 {
            guard try rig.send(testFrame(length: 14 + index % 20, seed: index)) else {
                Issue.record("no transmit buffer for frame \(index)")
                return
            }
        }
        #expect(rig.device.transmitted.count == 70_000)
        #expect(rig.device.transmitted.last == testFrame(length: 14 + 69_999 % 20, seed: 69_999))
        #expect(rig.device.violations.isEmpty)
    }

    @Test(arguments: [0, -1, 1515, 4096])
    func refusesABadLength(length: Int) throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        let buffer = try #require(try rig.driver.transmitBuffer())
        #expect(throws: NetworkDeviceError.self) { try rig.driver.send(buffer, length: length) }
        #expect(rig.device.transmitsPending == 0 && rig.device.transmitted.isEmpty)
        #expect(rig.driver.counters.framesSent == 0)
    }

    /// A buffer that did not come from `transmitBuffer` (another slot's memory, a slot
    /// out of range, memory outside the buffers) is refused, and nothing reaches the
    /// device.
    @Test func refusesABufferNotLentByTransmitBuffer() throws {
        let elsewhere = UnsafeMutableRawBufferPointer.allocate(byteCount: 1514, alignment: 8)
        defer { elsewhere.deallocate() }
        let forgeries: [(TransmitBuffer) -> TransmitBuffer] = [
            { TransmitBuffer(slot: 1, frame: $0.frame) },
            { TransmitBuffer(slot: 16, frame: $0.frame) },
            { TransmitBuffer(slot: -1, frame: $0.frame) },
            { _ in TransmitBuffer(slot: 0, frame: elsewhere) },
            { TransmitBuffer(slot: 0, frame: UnsafeMutableRawBufferPointer(rebasing: $0.frame[1...])) },
        ]
        for forge in forgeries {
            let rig = try NetRig { $0.transmitOnNotify = false }
            try rig.driver.initialize()
            let real = try #require(try rig.driver.transmitBuffer())
            #expect(real.slot == 0)
            #expect(throws: NetworkDeviceError.self) { try rig.driver.send(forge(real), length: 60) }
            #expect(rig.device.transmitsPending == 0)
            #expect(rig.driver.counters.framesSent == 0)
        }
    }

    /// Sent once, the same buffer cannot be sent again while the device holds it.
    @Test func refusesABufferSentTwice() throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        let buffer = try #require(try rig.driver.transmitBuffer())
        try rig.driver.send(buffer, length: 60)
        #expect(rig.device.transmitsPending == 1)
        #expect(throws: NetworkDeviceError.self) { try rig.driver.send(buffer, length: 60) }
        #expect(rig.device.transmitsPending == 1)
        #expect(rig.driver.counters.framesSent == 1)
        #expect(rig.device.violations.isEmpty)
    }
}

@Suite struct VirtioNetDriverDistrust {
    /// After the driver failed: it refuses to work until reset and initialized again,
    /// and then frames pass both ways.
    func expectFailedThenRecovers(_ rig: NetRig) throws {
        #expect(rig.driver.state == .failed)
        #expect(throws: NetworkDeviceError.notReady) { try rig.driver.nextFrame() }
        #expect(throws: NetworkDeviceError.notReady) { try rig.driver.transmitBuffer() }
        try rig.driver.reset()
        #expect(rig.driver.state == .reset)
        #expect(rig.device.status == 0)
        try rig.driver.initialize()
        rig.device.transmitOnNotify = true
        #expect(rig.device.deliver(frame: testFrame(length: 60, seed: 5)))
        #expect(try rig.receive() == testFrame(length: 60, seed: 5))
        #expect(try rig.send(testFrame(length: 70, seed: 6)))
        #expect(rig.device.transmitted.last == testFrame(length: 70, seed: 6))
        #expect(rig.device.violations.isEmpty)
    }

    /// Chain 0's frame is held by the caller, so not in flight; 16... are beyond the queue.
    @Test(arguments: [UInt32(0), 16, 1000, UInt32.max])
    func aReceiveUsedIDThatIsNoChainInFlightFailsTheDriver(badID: UInt32) throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.deliver(frame: testFrame(length: 60))
        let held = try #require(try rig.driver.nextFrame())
        #expect(held.buffer == 0)
        rig.device.sabotage = .usedID(badID)
        rig.device.deliver(frame: testFrame(length: 60, seed: 1))
        #expect(throws: NetworkDeviceError.deviceMisbehaved) { try rig.driver.nextFrame() }
        try expectFailedThenRecovers(rig)
    }

    @Test func aReceiveUsedIndexJumpFailsTheDriver() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.sabotage = .usedIndexJump(16)
        rig.device.deliver(frame: testFrame(length: 60))
        #expect(throws: NetworkDeviceError.deviceMisbehaved) { try rig.driver.nextFrame() }
        try expectFailedThenRecovers(rig)
    }

    @Test(arguments: [UInt32(3), 16, 0xFFFF])
    func aTransmitUsedIDThatIsNoChainInFlightFailsTheDriver(badID: UInt32) throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        #expect(try rig.send(testFrame(length: 60)))
        #expect(try rig.send(testFrame(length: 60)))
        rig.device.sabotage = .usedID(badID)
        rig.device.completeTransmits()
        #expect(throws: NetworkDeviceError.deviceMisbehaved) { try rig.driver.reclaimTransmitted() }
        try expectFailedThenRecovers(rig)
    }

    /// The same through `transmitBuffer`, which reclaims first.
    @Test func aTransmitUsedIndexJumpFailsTheDriver() throws {
        let rig = try NetRig()
        try rig.driver.initialize()
        rig.device.sabotage = .usedIndexJump(2)
        #expect(try rig.send(testFrame(length: 60)))
        #expect(throws: NetworkDeviceError.deviceMisbehaved) { try rig.driver.transmitBuffer() }
        try expectFailedThenRecovers(rig)
    }

    /// A transmit chain returned twice: the second time it is no longer in flight.
    @Test func aTransmitChainReturnedTwiceFailsTheDriver() throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        #expect(try rig.send(testFrame(length: 60)))
        #expect(try rig.send(testFrame(length: 61)))
        rig.device.completeTransmits()
        try rig.driver.reclaimTransmitted()
        // The next frame goes out as chain 0 again; the device names chain 1, done before.
        #expect(try rig.send(testFrame(length: 62)))
        rig.device.sabotage = .usedID(1)
        rig.device.completeTransmits()
        #expect(throws: NetworkDeviceError.deviceMisbehaved) { try rig.driver.reclaimTransmitted() }
        try expectFailedThenRecovers(rig)
    }

    /// A reset forgets everything in the rings: nothing from before it is delivered.
    @Test func resetForgetsTheRings() throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        rig.device.deliver(frame: testFrame(length: 60, seed: 1))
        #expect(try rig.send(testFrame(length: 60, seed: 2)))
        try rig.driver.reset()
        #expect(rig.driver.state == .reset)
        #expect(throws: NetworkDeviceError.notReady) { try rig.driver.nextFrame() }
        try rig.driver.initialize()
        #expect(try rig.driver.nextFrame() == nil)
        rig.device.completeTransmits()
        #expect(rig.device.transmitted.isEmpty)
        #expect(rig.device.receiveBuffersAvailable == 16)
        #expect(rig.device.violations.isEmpty)
    }
}

@Suite struct VirtioNetDriverDMAPages {
    /// A receive buffer's page is missing from the list: the driver stops at it rather
    /// than give the device an address it was not given.
    @Test(arguments: [0, 3, 7])
    func aMissingReceivePageIsRefused(page: Int) throws {
        let rig = try NetRig(missingPage: page)
        #expect(throws: NetworkDeviceError.dmaAddressNotPermitted) { try rig.driver.initialize() }
        #expect(rig.driver.state == .failed)
        #expect(throws: NetworkDeviceError.notReady) { try rig.driver.nextFrame() }
        while rig.device.deliver(frame: testFrame(length: 60)) {}
        // The device may see the buffers offered before the missing one (no fence
        // published the last), never one beyond.
        let offered = rig.device.offeredAddresses[FakeNetDevice.receive]
        #expect(offered.count <= 2 * page)
        #expect(offered.allSatisfy { rig.isBufferAddress($0, excludingPage: page) })
        #expect(rig.device.violations.isEmpty)
    }

    /// A transmit buffer's page is missing: the buffers before it work, and it is
    /// refused when its turn comes.
    @Test func aMissingTransmitPageIsRefused() throws {
        let rig = try NetRig(missingPage: 10) { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        for index in 0..<4 { #expect(try rig.send(testFrame(length: 60, seed: index))) }
        #expect(throws: NetworkDeviceError.dmaAddressNotPermitted) { try rig.driver.transmitBuffer() }
        #expect(rig.driver.state == .failed)
        rig.device.completeTransmits()
        #expect(rig.device.transmitted == (0..<4).map { testFrame(length: 60, seed: $0) })
        let offered = rig.device.offeredAddresses[FakeNetDevice.transmit]
        #expect(offered.allSatisfy { rig.isBufferAddress($0, excludingPage: 10) })
    }

    /// Every address the device is given lies in the pages the driver was given.
    @Test func everyAddressIsInTheGivenPages() throws {
        let rig = try NetRig { $0.transmitOnNotify = false }
        try rig.driver.initialize()
        for index in 0..<16 { #expect(try rig.send(testFrame(length: 60, seed: index))) }
        while rig.device.deliver(frame: testFrame(length: 60)) {}
        rig.device.completeTransmits()
        let all = rig.device.offeredAddresses[0].union(rig.device.offeredAddresses[1])
        #expect(all.count == 32)
        #expect(all.allSatisfy { rig.isBufferAddress($0) })
        #expect(Set(all.map { $0 & ~0xFFF }).count == 16, "two buffers in each of the 16 pages")
    }
}

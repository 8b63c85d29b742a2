import StorageCore
import Virtio
import Testing

@Suite struct VirtioBlockDriverInitialization {
    @Test func initializesInTheSpecifiedOrder() throws {
        let rig = try Rig(sectors: 300) { $0.offeredFeatures |= 1 << 28 | 1 << 29 | 1 << 35 }
        #expect(FakeDriver.probe(rig.device))
        try rig.driver.initialize()
        let s = VirtioStatus.self
        #expect(rig.device.statusLog == [0, s.acknowledge, s.acknowledge | s.driver,
                                         s.acknowledge | s.driver | s.featuresOK,
                                         s.acknowledge | s.driver | s.featuresOK | s.driverOK])
        #expect(rig.device.acceptedFeatures == VirtioFeature.version1 | VirtioFeature.blockFlush)
        #expect(rig.driver.state == .ready)
        #expect(rig.driver.capacity == 300)
        #expect(rig.driver.queueSize == 16)
        #expect(rig.device.queueNum == 16)
        #expect(rig.driver.hasWriteCache && !rig.driver.isReadOnly)
        #expect(rig.driver.info == StorageDeviceInfo(capacity: 300, readOnly: false, hasWriteCache: true))
        #expect(rig.device.violations.isEmpty)
    }

    @Test(arguments: [(1024, 16), (16, 16), (12, 8), (8, 8), (2, 2)])
    func queueSizeIsTheLargestPowerOfTwoUpTo16(numMax: UInt32, expected: Int) throws {
        let rig = try Rig { $0.queueNumMax = numMax }
        try rig.driver.initialize()
        #expect(rig.driver.queueSize == expected)
        #expect(rig.device.violations.isEmpty)
    }

    @Test func refusesWhatIsNotAModernBlockDevice() throws {
        let cases: [((FakeBlockDevice) -> Void, StorageDeviceError)] = [
            ({ $0.magic = 0 }, .notVirtio),
            ({ $0.version = 1 }, .legacyDevice),
            ({ $0.deviceID = 0 }, .notVirtio),
            ({ $0.deviceID = 1 }, .notBlockDevice),
        ]
        for (configure, expected) in cases {
            let rig = try Rig(configure: configure)
            #expect(!FakeDriver.probe(rig.device))
            #expect(throws: expected) { try rig.driver.initialize() }
            #expect(rig.device.statusLog.isEmpty, "an unknown device is not touched")
            #expect(rig.driver.state == .failed)
        }
    }

    @Test func failsAndSaysSoWhenNegotiationFails() throws {
        let cases: [((FakeBlockDevice) -> Void, StorageDeviceError)] = [
            ({ $0.offeredFeatures = VirtioFeature.blockFlush }, .setUp(.missingVersion1)),
            ({ $0.refusesFeatures = true }, .setUp(.featuresRejected)),
            ({ $0.queueNumMax = 0 }, .setUp(.queueUnavailable)),
            ({ $0.generationFlaps = 1000 }, .setUp(.configUnstable)),
        ]
        for (configure, expected) in cases {
            let rig = try Rig(configure: configure)
            #expect(throws: expected) { try rig.driver.initialize() }
            #expect(rig.device.status & VirtioStatus.failed != 0)
            #expect(rig.device.status & VirtioStatus.driverOK == 0)
            #expect(rig.driver.state == .failed)
            #expect(throws: StorageDeviceError.notReady) {
                try rig.driver.submit(tag: 1, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical,
                                      byteCount: 512)
            }
        }
    }

    @Test func readsTheCapacityAgainWhenTheConfigurationChangesUnderIt() throws {
        let rig = try Rig(sectors: 77) { $0.generationFlaps = 3 }
        try rig.driver.initialize()
        #expect(rig.driver.capacity == 77)
    }

    @Test func notesAReadOnlyDevice() throws {
        let rig = try Rig { $0.offeredFeatures |= VirtioFeature.blockReadOnly }
        try rig.driver.initialize()
        #expect(rig.driver.isReadOnly)
        #expect(throws: StorageDeviceError.readOnly) {
            try rig.driver.submit(tag: 1, kind: .write, sector: 0, dataPhysical: rig.buffers[0].physical,
                                  byteCount: 512)
        }
        try rig.driver.submit(tag: 2, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        #expect(try rig.collect() == [Completion(tag: 2, status: .ok)])
    }

    @Test func rejectsATooSmallOrMisalignedDMARegion() throws {
        let memory = TestMemory()
        let device = FakeBlockDevice(memory: memory, sectors: 8)
        let region = memory.allocate(4096)
        #expect(throws: StorageDeviceError.dmaRegionTooSmall) {
            _ = try FakeDriver(registers: device, dma: DMARegion(base: region.base, physical: region.physical,
                                                                   byteCount: 1000),
                               dataPages: DMAPages(), barrier: FakeBarrier(device: device))
        }
        #expect(throws: StorageDeviceError.dmaRegionMisaligned) {
            _ = try FakeDriver(registers: device, dma: DMARegion(base: region.base + 8, physical: region.physical + 8,
                                                                   byteCount: 2048),
                               dataPages: DMAPages(), barrier: FakeBarrier(device: device))
        }
    }
}

@Suite struct VirtioBlockDriverRequests {
    @Test func writeThenReadRoundTrip() throws {
        let rig = try Rig()
        try rig.driver.initialize()
        rig.fill(0, with: { UInt8(truncatingIfNeeded: $0 * 7 + 3) }, count: 1024)
        try rig.driver.submit(tag: 40, kind: .write, sector: 5, dataPhysical: rig.buffers[0].physical, byteCount: 1024)
        #expect(try rig.collect() == [Completion(tag: 40, status: .ok)])
        #expect(Array(rig.device.disk[2560..<3584]) == rig.bytes(of: 0, count: 1024))
        #expect(rig.device.disk[2559] == 0 && rig.device.disk[3584] == 0)

        try rig.driver.submit(tag: 41, kind: .read, sector: 5, dataPhysical: rig.buffers[1].physical, byteCount: 1024)
        #expect(try rig.collect() == [Completion(tag: 41, status: .ok)])
        #expect(rig.bytes(of: 1, count: 1024) == rig.bytes(of: 0, count: 1024))
        #expect(rig.bytes(of: 1, count: 1025).last == 0xA5, "nothing past the request is written")
        #expect(rig.device.violations.isEmpty)
    }

    @Test func flushReachesTheDevice() throws {
        let rig = try Rig()
        try rig.driver.initialize()
        try rig.driver.submit(tag: 3, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        #expect(try rig.collect() == [Completion(tag: 3, status: .ok)])
        #expect(rig.device.flushes == 1)
    }

    @Test func flushWithoutAWriteCacheIsRefused() throws {
        let rig = try Rig { $0.offeredFeatures = VirtioFeature.version1 }
        try rig.driver.initialize()
        #expect(!rig.driver.hasWriteCache)
        #expect(throws: StorageDeviceError.flushUnsupported) {
            try rig.driver.submit(tag: 3, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        }
    }

    @Test(arguments: [(StorageRequestKind.read, 0), (.read, 100), (.write, 4608), (.read, 4097), (.flush, 512)])
    func refusesBadByteCounts(kind: StorageRequestKind, byteCount: Int) throws {
        let rig = try Rig()
        try rig.driver.initialize()
        #expect(throws: StorageDeviceError.badRequest) {
            try rig.driver.submit(tag: 1, kind: kind, sector: 0, dataPhysical: rig.buffers[0].physical,
                                  byteCount: byteCount)
        }
        #expect(rig.driver.requestsInFlight == 0)
    }

    @Test func sectorsPastTheEndComeBackAsIOErrors() throws {
        let rig = try Rig(sectors: 64)
        try rig.driver.initialize()
        try rig.driver.submit(tag: 1, kind: .read, sector: 63, dataPhysical: rig.buffers[0].physical, byteCount: 1024)
        try rig.driver.submit(tag: 2, kind: .write, sector: 1 << 60, dataPhysical: rig.buffers[0].physical,
                              byteCount: 512)
        try rig.driver.submit(tag: 3, kind: .read, sector: 63, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        #expect(try rig.collect() == [Completion(tag: 1, status: .ioError), Completion(tag: 2, status: .ioError),
                                      Completion(tag: 3, status: .ok)])
        #expect(VirtioBlockStatus.ioError.replyCode == .ioError)
        #expect(VirtioBlockStatus.ok.replyCode == .ok)
    }

    @Test func completesInTheOrderTheDeviceDoes() throws {
        let rig = try Rig()
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        for tag in UInt16(10)..<15 {
            try rig.driver.submit(tag: tag, kind: .read, sector: UInt64(tag), dataPhysical: rig.buffers[Int(tag - 10)]
                .physical, byteCount: 512)
        }
        #expect(try rig.collect().isEmpty)
        #expect(rig.driver.requestsInFlight == 5)
        rig.device.process()
        #expect(try rig.collect().map(\.tag) == [10, 11, 12, 13, 14])
        #expect(rig.driver.requestsInFlight == 0)
    }

    @Test func aFullQueueRefusesMoreUntilRequestsComplete() throws {
        let rig = try Rig()
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        for tag in UInt16(0)..<5 {
            #expect(rig.driver.canSubmit)
            try rig.driver.submit(tag: tag, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical,
                                  byteCount: 512)
        }
        #expect(!rig.driver.canSubmit)
        #expect(throws: StorageDeviceError.queueFull) {
            try rig.driver.submit(tag: 5, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        }
        #expect(throws: StorageDeviceError.queueFull) {
            try rig.driver.submit(tag: 5, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        }
        rig.device.process()
        #expect(try rig.collect().count == 5)
        #expect(rig.driver.canSubmit)
        try rig.driver.submit(tag: 5, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        rig.device.process()
        #expect(try rig.collect() == [Completion(tag: 5, status: .ok)])
    }

    @Test func aSmallQueueHoldsFewerRequests() throws {
        let rig = try Rig { $0.queueNumMax = 4 }
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        try rig.driver.submit(tag: 0, kind: .write, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        #expect(throws: StorageDeviceError.queueFull) {
            try rig.driver.submit(tag: 1, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        }
        rig.device.process()
        #expect(try rig.collect() == [Completion(tag: 0, status: .ok)])
    }

    /// Far more requests than queue entries, and past the 16-bit wrap of the ring
    /// indices, with varying numbers in flight and interleaved flushes.
    @Test(arguments: [(UInt32(1024), 5), (8, 2), (4, 1)])
    func survivesRingAndIndexWrapAround(queueNumMax: UInt32, maximumBatch: Int) throws {
        let rig = try Rig(sectors: 64) { $0.queueNumMax = queueNumMax }
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        var submitted = 0
        var round = 0
        var expected: [UInt16] = []
        while submitted < 66_000 {
            let batch = round % maximumBatch + 1
            expected.removeAll(keepingCapacity: true)
            for slot in 0..<batch {
                let tag = UInt16(truncatingIfNeeded: submitted)
                let sector = UInt64(submitted % 64)
                if submitted % 97 == 0 {
                    try rig.driver.submit(tag: tag, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
                } else if slot % 2 == 0 {
                    rig.buffers[slot].base.storeBytes(of: UInt32(submitted), as: UInt32.self)
                    try rig.driver.submit(tag: tag, kind: .write, sector: sector,
                                          dataPhysical: rig.buffers[slot].physical, byteCount: 512)
                } else {
                    try rig.driver.submit(tag: tag, kind: .read, sector: sector,
                                          dataPhysical: rig.buffers[slot].physical, byteCount: 512)
                }
                expected.append(tag)
                submitted += 1
            }
            rig.device.process()
            let completions = try rig.collect()
            guard completions.map(\.tag) == expected, completions.allSatisfy({ $0.status == .ok }) else {
                Issue.record("round \(round): \(completions) instead of \(expected)")
                return
            }
            round += 1
        }
        #expect(rig.device.completedRequests == 66_000)
        // The last write to sector 0 is the one the disk holds.
        let lastWriteToSector0 = (0..<66_000).last { $0 % 64 == 0 && $0 % 97 != 0 && isWrite($0) }!
        #expect(rig.device.disk.withUnsafeBytes { $0.load(as: UInt32.self) } == UInt32(lastWriteToSector0))
        #expect(rig.device.violations.isEmpty)

        // Which requests were writes: even positions within their batch.
        func isWrite(_ request: Int) -> Bool {
            var start = 0
            var round = 0
            while start + round % maximumBatch + 1 <= request {
                start += round % maximumBatch + 1
                round += 1
            }
            return (request - start) % 2 == 0
        }
    }

    @Test func acknowledgesTheInterrupt() throws {
        let rig = try Rig()
        try rig.driver.initialize()
        #expect(rig.driver.acknowledgeInterrupt() == 0)
        try rig.driver.submit(tag: 1, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        #expect(rig.device.interruptStatus == VirtioMMIO.usedBufferInterrupt)
        #expect(rig.driver.acknowledgeInterrupt() == VirtioMMIO.usedBufferInterrupt)
        #expect(rig.device.interruptStatus == 0)
        #expect(try rig.collect().count == 1)
    }
}

@Suite struct VirtioBlockDriverDistrust {
    /// A rig with two requests in flight, the device set to misbehave on the first.
    func rigWithSabotage(_ sabotage: FakeBlockDevice.Sabotage) throws -> Rig {
        let rig = try Rig()
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        try rig.driver.submit(tag: 1, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        try rig.driver.submit(tag: 2, kind: .read, sector: 1, dataPhysical: rig.buffers[1].physical, byteCount: 512)
        rig.device.sabotage = sabotage
        rig.device.process()
        return rig
    }

    @Test(arguments: [UInt32(1), 15, 16, 1000, UInt32.max])
    func aUsedIDThatIsNoChainInFlightFailsTheDriver(badID: UInt32) throws {
        // Heads in flight are 0 and 3; 1 is inside a chain, 15 free, 16... beyond the queue.
        let rig = try rigWithSabotage(.usedID(badID))
        #expect(throws: StorageDeviceError.badUsedID) { try rig.collect() }
        #expect(rig.driver.state == .failed)
        #expect(throws: StorageDeviceError.notReady) {
            try rig.driver.submit(tag: 3, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        }
        // A fresh initialization recovers.
        try rig.driver.initialize()
        rig.device.processOnNotify = true
        try rig.driver.submit(tag: 3, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        #expect(try rig.collect() == [Completion(tag: 3, status: .ok)])
    }

    @Test func aUsedIndexPastTheRequestsInFlightFailsTheDriver() throws {
        let rig = try rigWithSabotage(.usedIndexJump(5))
        #expect(throws: StorageDeviceError.badUsedIndex) { try rig.collect() }
        #expect(rig.driver.state == .failed)
    }

    @Test func aUsedIDAlreadyCompletedFailsTheDriver() throws {
        // Request 1 (head 0) completes; then the device answers request 2 (head 3) by
        // naming chain 0 again.
        let rig = try Rig()
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        try rig.driver.submit(tag: 1, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        rig.device.process()
        try rig.driver.submit(tag: 2, kind: .read, sector: 1, dataPhysical: rig.buffers[1].physical, byteCount: 512)
        #expect(try rig.collect() == [Completion(tag: 1, status: .ok)])
        rig.device.sabotage = .usedID(0)
        rig.device.process()
        #expect(throws: StorageDeviceError.badUsedID) { try rig.collect() }
        #expect(rig.driver.state == .failed)
    }

    @Test(arguments: [FakeBlockDevice.Sabotage.usedLength(514), .statusByte(3), .statusByte(0xFF), .noStatus])
    func aRequestTheDeviceAnsweredWronglyIsADeviceError(sabotage: FakeBlockDevice.Sabotage) throws {
        let rig = try rigWithSabotage(sabotage)
        #expect(try rig.collect() == [Completion(tag: 1, status: .deviceError), Completion(tag: 2, status: .ok)])
        #expect(rig.driver.state == .ready)
        #expect(VirtioBlockStatus.deviceError.replyCode == .ioError)
    }

    /// The status byte of a reused slot still says OK from its last request; a device
    /// that does not write it must not make the new request look successful.
    @Test func aStatusLeftUnwrittenIsNotSuccess() throws {
        let rig = try Rig()
        try rig.driver.initialize()
        try rig.driver.submit(tag: 1, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        #expect(try rig.collect() == [Completion(tag: 1, status: .ok)])
        rig.device.sabotage = .noStatus
        try rig.driver.submit(tag: 2, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        #expect(try rig.collect() == [Completion(tag: 2, status: .deviceError)])
    }

    @Test func aLengthUpToWhatWasOfferedIsAccepted() throws {
        let rig = try rigWithSabotage(.usedLength(513))
        #expect(try rig.collect() == [Completion(tag: 1, status: .ok), Completion(tag: 2, status: .ok)])
    }

    @Test func unsupportedStatusIsReported() throws {
        let rig = try rigWithSabotage(.statusByte(2))
        #expect(try rig.collect().first == Completion(tag: 1, status: .unsupported))
    }
}

@Suite struct VirtioBlockDriverReset {
    @Test func resetForgetsRequestsInFlight() throws {
        let rig = try Rig()
        rig.device.processOnNotify = false
        try rig.driver.initialize()
        for tag in UInt16(1)...3 {
            try rig.driver.submit(tag: tag, kind: .read, sector: 0, dataPhysical: rig.buffers[Int(tag)].physical,
                                  byteCount: 512)
        }
        try rig.driver.reset()
        #expect(rig.driver.state == .reset)
        #expect(rig.driver.requestsInFlight == 0)
        #expect(rig.device.status == 0)
        #expect(throws: StorageDeviceError.notReady) {
            try rig.driver.submit(tag: 4, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        }
        try rig.driver.initialize()
        rig.device.process()
        #expect(try rig.collect().isEmpty, "no request from before the reset completes")
        try rig.driver.submit(tag: 9, kind: .flush, sector: 0, dataPhysical: 0, byteCount: 0)
        rig.device.process()
        #expect(try rig.collect() == [Completion(tag: 9, status: .ok)])
        #expect(rig.device.violations.isEmpty)
    }

    /// A new server instance: a new driver, in new memory, over a device that still
    /// holds the old instance's requests.
    @Test func aRestartedDriverGetsNothingOfItsPredecessor() throws {
        let rig = try Rig()
        rig.device.processOnNotify = false
        rig.device.disk[0] = 0x42
        try rig.driver.initialize()
        try rig.driver.submit(tag: 1, kind: .read, sector: 0, dataPhysical: rig.buffers[0].physical, byteCount: 512)
        try rig.driver.submit(tag: 2, kind: .write, sector: 1, dataPhysical: rig.buffers[1].physical, byteCount: 512)

        var successor = try FakeDriver(registers: rig.device, dma: rig.memory.allocate(4096),
                                       dataPages: Rig.pages(of: rig.buffers), barrier: FakeBarrier(device: rig.device))
        try successor.initialize()
        rig.device.process()
        var completions: [UInt16] = []
        _ = try successor.collect { completions.append($0.tag) }
        #expect(completions.isEmpty)
        #expect(rig.bytes(of: 0, count: 1) == [0xA5], "the old read never lands")
        #expect(rig.device.disk[512] == 0, "the old write never lands")

        try successor.submit(tag: 7, kind: .read, sector: 0, dataPhysical: rig.buffers[2].physical, byteCount: 512)
        rig.device.process()
        _ = try successor.collect { completion in
            #expect(completion.status == .ok)
            completions.append(completion.tag)
        }
        #expect(completions == [7])
        #expect(rig.bytes(of: 2, count: 1) == [0x42])
        #expect(rig.device.violations.isEmpty)
    }
}

import NetworkCore
import Testing

@Suite struct PortTableTests {
    let alice = SocketOwner(client: 10, slot: 0)
    let alice2 = SocketOwner(client: 10, slot: 3)
    let bob = SocketOwner(client: 11, slot: 0)

    func ports(_ table: PortTable) -> [UInt16: SocketOwner] {
        var result: [UInt16: SocketOwner] = [:]
        table.forEach { port, owner in
            #expect(result[port] == nil, "port \(port) listed twice")
            result[port] = owner
        }
        return result
    }

    @Test func claimReleaseAndOwner() {
        var table = PortTable()
        #expect(table.claim(53, by: alice) == true)
        #expect(table.claim(53, by: bob) == false, "taken")
        #expect(table.claim(53, by: alice) == false, "taken, even by its owner")
        #expect(table.claim(0, by: bob) == false, "port 0 is nobody's")
        #expect(table.claim(54, by: bob) == true)
        #expect(table.owner(of: 53) == alice)
        #expect(table.owner(of: 54) == bob)
        #expect(table.owner(of: 55) == nil)
        #expect(table.count == 2)
        table.release(53, by: bob)
        #expect(table.owner(of: 53) == alice, "only the owner releases")
        table.release(53, by: alice)
        #expect(table.owner(of: 53) == nil)
        #expect(table.claim(53, by: bob) == true)
        #expect(ports(table) == [53: bob, 54: bob])
    }

    @Test func releaseAllForgetsOneClientsPorts() {
        var table = PortTable()
        #expect(table.claim(1000, by: alice) == true)
        #expect(table.claim(1001, by: bob) == true)
        #expect(table.claim(1002, by: alice2) == true)
        table.releaseAll(of: 10)
        #expect(ports(table) == [1001: bob])
        table.releaseAll(of: 99)
        #expect(table.count == 1)
    }

    @Test func capacityIsRefused() {
        var table = PortTable()
        for index in 0..<PortTable.capacity {
            #expect(table.claim(UInt16(1 + index), by: SocketOwner(client: UInt32(index / 8), slot: index % 8)) == true)
        }
        #expect(table.count == 128)
        #expect(table.claim(5000, by: bob) == false)
        #expect(table.owner(of: 5000) == nil)
        table.release(1, by: SocketOwner(client: 0, slot: 0))
        #expect(table.claim(5000, by: bob) == true)
    }

    @Test func freeEphemeralPortStartsAtTheHintAndSkipsTakenPorts() {
        var table = PortTable()
        #expect(table.freeEphemeralPort(hint: 49152) == 49152)
        #expect(table.freeEphemeralPort(hint: 50000) == 50000)
        #expect(table.freeEphemeralPort(hint: 65535) == 65535)
        #expect(table.claim(50000, by: alice) == true)
        #expect(table.claim(50001, by: alice2) == true)
        #expect(table.claim(50003, by: bob) == true)
        #expect(table.freeEphemeralPort(hint: 50000) == 50002)
        #expect(table.freeEphemeralPort(hint: 50002) == 50002)
        #expect(table.freeEphemeralPort(hint: 50003) == 50004)
    }

    @Test func freeEphemeralPortWrapsToTheStartOfTheRange() {
        var table = PortTable()
        for port in UInt16(65530)...65535 { #expect(table.claim(port, by: alice) == true) }
        #expect(table.claim(49152, by: bob) == true)
        #expect(table.freeEphemeralPort(hint: 65530) == 49153)
        #expect(table.freeEphemeralPort(hint: 65529) == 65529)
    }

    /// Whatever the hint, the port is ephemeral and free.
    @Test func freeEphemeralPortStaysInTheRange() {
        var table = PortTable()
        for port in UInt16(49152)..<49152 + 100 { #expect(table.claim(port, by: alice) == true) }
        for hint in [UInt16(0), 1, 1023, 32768, 49151, 49152, 49200, 65535] {
            let port = table.freeEphemeralPort(hint: hint)
            #expect(port.map { NetworkLimits.ephemeralPorts.contains($0) && table.owner(of: $0) == nil } == true,
                    "hint \(hint): \(String(describing: port))")
        }
        var random = SplitMix(seed: 7)
        for _ in 0..<1000 {
            let port = table.freeEphemeralPort(hint: UInt16(truncatingIfNeeded: random.next()))
            #expect(port.map { NetworkLimits.ephemeralPorts.contains($0) && table.owner(of: $0) == nil } == true)
        }
    }
}

@Suite struct DatagramPoolTests {
    let alice = SocketOwner(client: 10, slot: 0)
    let alice2 = SocketOwner(client: 10, slot: 3)
    let bob = SocketOwner(client: 11, slot: 0)

    func payload(_ n: Int, length: Int = 20) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ n &* 37) }
    }

    @discardableResult
    func enqueue(_ pool: DatagramPool, _ bytes: [UInt8], for owner: SocketOwner, port: UInt16 = 7) -> Bool {
        bytes.withUnsafeBytes { pool.enqueue($0, from: Endpoint(address: 0x0A00_0202, port: port), for: owner) }
    }

    func dequeue(_ pool: DatagramPool, for owner: SocketOwner) -> (bytes: [UInt8], port: UInt16)? {
        pool.dequeue(for: owner) { datagram, bytes in
            #expect(datagram.owner == owner)
            #expect(datagram.length == bytes.count)
            return (Array(bytes), datagram.source.port)
        }
    }

    @Test func firstInFirstOutPerOwnerAcrossInterleavedOwners() {
        let pool = DatagramPool()
        for n in 0..<6 {
            enqueue(pool, payload(n), for: alice, port: UInt16(100 + n))
            enqueue(pool, payload(100 + n, length: 1 + n), for: bob, port: UInt16(200 + n))
            if n % 2 == 0 { enqueue(pool, payload(200 + n, length: 1472), for: alice2, port: UInt16(300 + n)) }
        }
        // Free some slots in the middle so new ones land in reused slots, out of slot order.
        for n in 0..<2 { #expect(dequeue(pool, for: bob)?.port == UInt16(200 + n)) }
        enqueue(pool, payload(6), for: alice, port: 106)
        enqueue(pool, payload(7), for: alice, port: 107)
        for n in 0..<8 {
            let got = dequeue(pool, for: alice)
            #expect(got?.bytes == payload(n) && got?.port == UInt16(100 + n))
        }
        #expect(dequeue(pool, for: alice) == nil)
        for n in 2..<6 {
            let got = dequeue(pool, for: bob)
            #expect(got?.bytes == payload(100 + n, length: 1 + n) && got?.port == UInt16(200 + n))
        }
        for n in [0, 2, 4] {
            let got = dequeue(pool, for: alice2)
            #expect(got?.bytes == payload(200 + n, length: 1472) && got?.port == UInt16(300 + n))
        }
        #expect(pool.dropped == 0)
    }

    @Test func perSocketLimitAndPoolCapacityDropAndCount() {
        let pool = DatagramPool()
        for n in 0..<8 { #expect(enqueue(pool, payload(n), for: alice)) }
        #expect(!enqueue(pool, payload(8), for: alice))
        #expect(pool.count(for: alice) == 8)
        #expect(pool.dropped == 1)
        // 8 + 8 + 8 + 8 = 32 fills the pool.
        for client in UInt32(20)..<23 {
            for n in 0..<8 { #expect(enqueue(pool, payload(n), for: SocketOwner(client: client, slot: 1))) }
        }
        #expect(!enqueue(pool, payload(0), for: bob), "the pool is full")
        #expect(pool.count(for: bob) == 0)
        #expect(pool.dropped == 2)
        #expect(dequeue(pool, for: alice)?.bytes == payload(0))
        #expect(enqueue(pool, payload(9), for: bob))
        #expect(!enqueue(pool, payload(10), for: bob))
        #expect(pool.dropped == 3)
        // What was dropped never shows up; the rest is in order.
        for n in 1..<8 { #expect(dequeue(pool, for: alice)?.bytes == payload(n)) }
        #expect(dequeue(pool, for: alice) == nil)
        #expect(dequeue(pool, for: bob)?.bytes == payload(9))
    }

    @Test func tooLongADatagramIsDropped() {
        let pool = DatagramPool()
        #expect(!enqueue(pool, payload(0, length: 1473), for: alice))
        #expect(pool.dropped == 1)
        #expect(enqueue(pool, payload(0, length: 1472), for: alice))
        #expect(dequeue(pool, for: alice)?.bytes == payload(0, length: 1472))
    }

    @Test func zeroLengthDatagramsAreKept() {
        let pool = DatagramPool()
        #expect(pool.enqueue(UnsafeRawBufferPointer(start: nil, count: 0), from: Endpoint(address: 1, port: 2),
                             for: alice))
        #expect(enqueue(pool, [], for: alice, port: 9))
        #expect(pool.count(for: alice) == 2)
        let first = dequeue(pool, for: alice)
        #expect(first?.bytes == [] && first?.port == 2)
        let second = dequeue(pool, for: alice)
        #expect(second?.bytes == [] && second?.port == 9)
        #expect(dequeue(pool, for: alice) == nil)
    }

    @Test func discardAllForOneSocketAndOfOneClient() {
        let pool = DatagramPool()
        for n in 0..<3 {
            enqueue(pool, payload(n), for: alice)
            enqueue(pool, payload(n), for: alice2)
            enqueue(pool, payload(n), for: bob)
        }
        pool.discardAll(for: alice)
        #expect(pool.count(for: alice) == 0)
        #expect(pool.count(for: alice2) == 3 && pool.count(for: bob) == 3)
        enqueue(pool, payload(9), for: alice)
        pool.discardAll(of: 10)
        #expect(pool.count(for: alice) == 0 && pool.count(for: alice2) == 0)
        #expect(pool.count(for: bob) == 3)
        for n in 0..<3 { #expect(dequeue(pool, for: bob)?.bytes == payload(n)) }
        #expect(pool.dropped == 0, "discarded is not dropped")
        // The slots are free again: the whole pool can be filled.
        for client in UInt32(30)..<34 {
            for n in 0..<8 { #expect(enqueue(pool, payload(n), for: SocketOwner(client: client, slot: 0))) }
        }
    }

    /// Bytes survive other datagrams being queued and taken around them.
    @Test func payloadBytesArePreserved() {
        let pool = DatagramPool()
        var random = SplitMix(seed: 42)
        var expected: [[UInt8]] = []
        for n in 0..<8 {
            let bytes = (0..<(1 + random.below(1472))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            expected.append(bytes)
            enqueue(pool, bytes, for: alice)
            enqueue(pool, payload(n, length: 1472), for: bob)
            _ = dequeue(pool, for: bob)
        }
        for bytes in expected { #expect(dequeue(pool, for: alice)?.bytes == bytes) }
    }
}

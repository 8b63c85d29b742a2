import NetworkCore
import Testing

/// DHCP messages checked byte by byte against RFC 2131/2132 as written here, and the
/// client's state machine driven through its paths with a clock of 100 ticks a second.
@Suite struct DHCPTests {
    static let mac = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
    static let ticks: UInt64 = 100

    /// A server's reply as RFC 2131 lays it out, with `options` (code, bytes) after
    /// the cookie and an end option.
    static func reply(transaction: UInt32 = 0x1234_5678, yourAddress: [UInt8] = [10, 0, 2, 15],
                      chaddr: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
                      options: [(UInt8, [UInt8])], end: Bool = true, op: UInt8 = 2) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 240)
        bytes[0] = op
        bytes[1] = 1
        bytes[2] = 6
        bytes[4] = UInt8(transaction >> 24); bytes[5] = UInt8(transaction >> 16 & 0xFF)
        bytes[6] = UInt8(transaction >> 8 & 0xFF); bytes[7] = UInt8(transaction & 0xFF)
        bytes.replaceSubrange(16..<20, with: yourAddress)
        bytes.replaceSubrange(28..<34, with: chaddr)
        bytes.replaceSubrange(236..<240, with: [99, 130, 83, 99])
        for (code, data) in options { bytes += [code, UInt8(data.count)] + data }
        if end { bytes.append(255) }
        return bytes
    }

    static func standardOptions(_ type: UInt8) -> [(UInt8, [UInt8])] {
        [(53, [type]), (1, [255, 255, 255, 0]), (3, [10, 0, 2, 2]), (6, [10, 0, 2, 3]), (54, [10, 0, 2, 2]),
         (51, [0, 1, 81, 128])]
    }

    func parse(_ bytes: [UInt8], transaction: UInt32 = 0x1234_5678) -> DHCPReply? {
        bytes.withUnsafeBytes { DHCPMessage.parse($0, transaction: transaction, mac: Self.mac) }
    }

    @Test func aRequestIsLaidOutAsRFC2131Says() {
        var buffer = [UInt8](repeating: 0xEE, count: 400)
        let length = buffer.withUnsafeMutableBytes {
            DHCPMessage.build(into: $0, type: .request, transaction: 0xA1B2_C3D4, mac: Self.mac,
                              client: IPv4Address(10, 0, 2, 15), requested: IPv4Address(10, 0, 2, 16),
                              server: IPv4Address(10, 0, 2, 2))
        }
        #expect(length == 300, "BOOTP's minimum message")
        #expect(Array(buffer[0..<4]) == [1, 1, 6, 0], "BOOTREQUEST, Ethernet, 6-byte address, no hops")
        #expect(Array(buffer[4..<8]) == [0xA1, 0xB2, 0xC3, 0xD4])
        #expect(Array(buffer[10..<12]) == [0x80, 0], "answer by broadcast")
        #expect(Array(buffer[12..<16]) == [10, 0, 2, 15], "ciaddr")
        #expect(Array(buffer[16..<28]) == [UInt8](repeating: 0, count: 12), "yiaddr, siaddr, giaddr")
        #expect(Array(buffer[28..<34]) == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        #expect(Array(buffer[236..<240]) == [99, 130, 83, 99])
        #expect(Array(buffer[240..<262]) == [53, 1, 3, 50, 4, 10, 0, 2, 16, 54, 4, 10, 0, 2, 2, 55, 4, 1, 3, 6, 51, 255])
        #expect(buffer[262..<300].allSatisfy { $0 == 0 })
        #expect(buffer[300...].allSatisfy { $0 == 0xEE }, "nothing past the message")
        var small = [UInt8](repeating: 0, count: 299)
        #expect(small.withUnsafeMutableBytes { DHCPMessage.build(into: $0, type: .discover, transaction: 1, mac: Self.mac) } == nil)
    }

    @Test func anOfferBecomesALease() throws {
        let offer = try #require(parse(Self.reply(options: Self.standardOptions(2))))
        #expect(offer.type == .offer)
        #expect(offer.lease == DHCPLease(settings: .standard, server: IPv4Address(10, 0, 2, 2), seconds: 86400))
        // Pads between options, a second router and DNS server, unknown options: fine.
        var padded = Self.reply(yourAddress: [10, 0, 7, 7],
                                options: [(53, [5]), (12, Array("curio".utf8)), (1, [255, 255, 0, 0]),
                                          (3, [10, 0, 9, 1, 10, 0, 9, 2]), (54, [10, 0, 9, 1])])
        padded.insert(0, at: 243)  // a pad option after the type
        let acknowledgment = try #require(parse(padded))
        #expect(acknowledgment.type == DHCPMessageType.acknowledgment)
        #expect(acknowledgment.lease?.settings == InterfaceSettings(address: IPv4Address(10, 0, 7, 7), prefixLength: 16,
                                                                    gateway: IPv4Address(10, 0, 9, 1), dnsServer: .any),
                "no DNS option: none; no lease time: an hour")
        #expect(acknowledgment.lease?.seconds == 3600)
        #expect(parse(Self.reply(options: [(53, [6])]))?.type == .negativeAcknowledgment)
        // QEMU's server with restrict=on: no router, no name server.
        let restricted = parse(Self.reply(yourAddress: [10, 0, 2, 42], options: Self.standardOptions(2).filter { $0.0 != 3 && $0.0 != 6 }))
        #expect(restricted?.lease?.settings == InterfaceSettings(address: IPv4Address(10, 0, 2, 42), prefixLength: 24,
                                                                 gateway: .any, dnsServer: .any))
    }

    @Test func malformedOrForeignRepliesAreDropped() {
        let good = Self.standardOptions(2)
        let cases: [(String, [UInt8])] = [
            ("another transaction", Self.reply(transaction: 1, options: good)),
            ("another hardware address", Self.reply(chaddr: [0x52, 0x54, 0, 0, 0, 1], options: good)),
            ("a BOOTREQUEST", Self.reply(options: good, op: 1)),
            ("no end option", Self.reply(options: good, end: false)),
            ("no message type", Self.reply(options: Array(good.dropFirst()))),
            ("a DISCOVER", Self.reply(options: [(53, [1])] + good.dropFirst())),
            ("an unknown type", Self.reply(options: [(53, [9])] + good.dropFirst())),
            ("type of two bytes", Self.reply(options: [(53, [2, 2])] + good.dropFirst())),
            ("no mask", Self.reply(options: good.filter { $0.0 != 1 })),
            ("a mask with a hole", Self.reply(options: good.map { $0.0 == 1 ? (1, [255, 0, 255, 0]) : $0 })),
            ("a mask of three bytes", Self.reply(options: good.map { $0.0 == 1 ? (1, [255, 255, 255]) : $0 })),
            ("a router off the subnet", Self.reply(options: good.map { $0.0 == 3 ? (3, [10, 0, 3, 2]) : $0 })),
            ("a router list of 6 bytes", Self.reply(options: good.map { $0.0 == 3 ? (3, [10, 0, 2, 2, 10, 0]) : $0 })),
            ("no server identifier", Self.reply(options: good.filter { $0.0 != 54 })),
            ("the subnet's broadcast address offered", Self.reply(yourAddress: [10, 0, 2, 255], options: good)),
            ("no address offered", Self.reply(yourAddress: [0, 0, 0, 0], options: good)),
        ]
        for (name, bytes) in cases { #expect(parse(bytes) == nil, "\(name)") }
        // Cut anywhere: never a crash, and never a reply once the end option is gone.
        let whole = Self.reply(options: good)
        for length in 0..<whole.count { #expect(parse(Array(whole[0..<length])) == nil, "cut at \(length)") }
        // An option whose length runs past the message.
        var overrun = Self.reply(options: good, end: false)
        overrun += [12, 40, 1, 2]
        #expect(parse(overrun) == nil)
    }

    @Test func theClientDiscoversRequestsAndIsBound() throws {
        var client = DHCPClient(transaction: 7, now: 1000, ticksPerSecond: Self.ticks)
        #expect(client.timerFired(now: 999) == nil, "not due yet")
        let firstDiscover = client.timerFired(now: 1000)
        let discover = try #require(firstDiscover)
        #expect(discover.type == .discover && discover.transaction == 7 && discover.client == .any)
        // No offer: again after 1 s, then 2 s.
        #expect(client.timerFired(now: 1099) == nil)
        #expect(client.timerFired(now: 1100)?.type == .discover)
        #expect(client.deadline == 1300)
        let offer = try #require(parse(Self.reply(transaction: 7, options: Self.standardOptions(2)), transaction: 7))
        #expect(client.received(offer, now: 1150) == nil)
        let firstRequest = client.timerFired(now: 1150)
        let request = try #require(firstRequest)
        #expect(request == DHCPClient.Outgoing(type: .request, transaction: 7, client: .any,
                                               requested: IPv4Address(10, 0, 2, 15), server: IPv4Address(10, 0, 2, 2)))
        #expect(client.received(offer, now: 1160) == nil, "a second offer while requesting is ignored")
        let acknowledgment = try #require(parse(Self.reply(transaction: 7, options: Self.standardOptions(5)), transaction: 7))
        let granted = client.received(acknowledgment, now: 1200)
        let lease = try #require(granted)
        #expect(lease.settings == .standard && client.phase == .bound && client.lease == lease)
        // T1 is half the lease (86,400 s): a renewing REQUEST from the held address.
        #expect(client.deadline == 1200 + 43200 * Self.ticks)
        let renewing = client.timerFired(now: client.deadline)
        let renewal = try #require(renewing)
        #expect(renewal.type == .request && renewal.client == IPv4Address(10, 0, 2, 15) && renewal.requested == nil)
        #expect(client.phase == .renewing)
        #expect(client.received(acknowledgment, now: client.deadline) == lease, "renewed")
        #expect(client.phase == .bound)
    }

    @Test func aNakOrSilenceStartsOver() throws {
        var client = DHCPClient(transaction: 7, now: 0, ticksPerSecond: Self.ticks)
        _ = client.timerFired(now: 0)
        let offer = try #require(parse(Self.reply(transaction: 7, options: Self.standardOptions(2)), transaction: 7))
        _ = client.received(offer, now: 10)
        var now: UInt64 = 10
        for _ in 0..<4 {
            #expect(client.timerFired(now: now)?.type == .request)
            now = client.deadline
        }
        let restarted = client.timerFired(now: now)
        let again = try #require(restarted)
        #expect(again.type == .discover && again.transaction != 7, "four unanswered requests: a new transaction")
        #expect(client.phase == .selecting)

        var refused = DHCPClient(transaction: 9, now: 0, ticksPerSecond: Self.ticks)
        _ = refused.timerFired(now: 0)
        let offer9 = try #require(parse(Self.reply(transaction: 9, options: Self.standardOptions(2)), transaction: 9))
        _ = refused.received(offer9, now: 5)
        _ = refused.timerFired(now: 5)
        let nak = try #require(parse(Self.reply(transaction: 9, options: [(53, [6])]), transaction: 9))
        #expect(refused.received(nak, now: 6) == nil)
        #expect(refused.phase == .selecting && refused.timerFired(now: 6)?.type == .discover)
    }

    @Test func anUnrenewedLeaseRunsOut() throws {
        var client = DHCPClient(transaction: 3, now: 0, ticksPerSecond: Self.ticks)
        _ = client.timerFired(now: 0)
        let short: [(UInt8, [UInt8])] = Self.standardOptions(2).map { $0.0 == 51 ? (51, [0, 0, 0, 120]) : $0 }
        let offer = try #require(parse(Self.reply(transaction: 3, options: short), transaction: 3))
        _ = client.received(offer, now: 0)
        _ = client.timerFired(now: 0)
        let acknowledgment = try #require(parse(Self.reply(transaction: 3, options: short.map { $0.0 == 53 ? (53, [5]) : $0 }),
                                                transaction: 3))
        #expect(client.received(acknowledgment, now: 0)?.seconds == 120)
        var now = client.deadline
        #expect(now == 60 * Self.ticks, "T1 at half of 120 s")
        while client.phase != .selecting {
            #expect(client.timerFired(now: now) != nil)
            now = client.deadline
        }
        #expect(client.lease == nil)
        #expect(now >= 120 * Self.ticks, "given up only when the lease ran out")
    }
}

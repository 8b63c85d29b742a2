import NetworkCore
import Testing

@Suite struct AddressTests {
    func parse(_ text: String) -> IPv4Address? {
        Array(text.utf8).withUnsafeBytes { IPv4Address.parse($0) }
    }

    func written(_ address: IPv4Address, capacity: Int = 15) -> String? {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let count = buffer.withUnsafeMutableBytes { address.write(into: $0) }
        return count == 0 ? nil : String(decoding: buffer[..<count], as: UTF8.self)
    }

    @Test func macAddressBytesAndGroupBit() {
        let mac = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
        #expect(mac.rawValue == 0x5254_0012_3456)
        #expect(!mac.isMulticast && !mac.isBroadcast)
        #expect(MACAddress(0x01, 0x00, 0x5E, 0x00, 0x00, 0x01).isMulticast)
        #expect(MACAddress.broadcast.isBroadcast && MACAddress.broadcast.isMulticast)
        #expect(MACAddress.broadcast == MACAddress(0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF))
        #expect(MACAddress.zero.rawValue == 0)
        #expect(MACAddress(rawValue: 0xABCD_5254_0012_3456) == mac, "only the low 48 bits are kept")
    }

    @Test func ipv4AddressParts() {
        #expect(IPv4Address(10, 0, 2, 15).rawValue == 0x0A00_020F)
        #expect(IPv4Address.any.rawValue == 0)
        #expect(IPv4Address.broadcast == IPv4Address(255, 255, 255, 255))
    }

    @Test func parseAndWriteRoundTrip() {
        for text in ["10.0.2.2", "0.0.0.0", "255.255.255.255", "192.168.100.7", "1.22.133.4"] {
            let address = parse(text)
            #expect(address != nil, "\(text)")
            #expect(address.flatMap { written($0) } == text)
        }
        #expect(parse("10.0.2.15") == IPv4Address(10, 0, 2, 15))
        var generator = SplitMix(seed: 3)
        for _ in 0..<500 {
            let address = IPv4Address(rawValue: UInt32(truncatingIfNeeded: generator.next()))
            #expect(written(address).flatMap(parse) == address)
        }
    }

    @Test func parseRejectsJunk() {
        for text in ["1.2.3", "256.1.1.1", "1.2.3.4.5", "", "a.b.c.d", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ",
                     " 1.2.3.4", "1.2.3.-4", "+1.2.3.4", "1.2.3.1000", "01.2.3.4", "1.2.3.00", "1.2.3.4\0", "...",
                     "999.999.999.999", "1,2,3,4"] {
            #expect(parse(text) == nil, "\(text)")
        }
    }

    @Test func writeNeedsRoomForTheWholeText() {
        #expect(written(IPv4Address(255, 255, 255, 255), capacity: 14) == nil)
        #expect(written(IPv4Address(255, 255, 255, 255), capacity: IPv4Address.maximumTextBytes)
                == "255.255.255.255")
        #expect(written(IPv4Address(1, 2, 3, 4), capacity: 7) == "1.2.3.4")
        #expect(written(IPv4Address(1, 2, 3, 4), capacity: 6) == nil)
    }

    @Test func nextHopIsTheDestinationOnTheSubnetElseTheGateway() {
        let interface = Interface(mac: hostA.mac, address: IPv4Address(10, 0, 2, 15), prefixLength: 24,
                                  gateway: IPv4Address(10, 0, 2, 2))
        #expect(interface.isLocal(IPv4Address(10, 0, 2, 3)))
        #expect(interface.isLocal(IPv4Address(10, 0, 2, 255)))
        #expect(interface.isLocal(.broadcast))
        #expect(!interface.isLocal(IPv4Address(10, 0, 3, 1)))
        #expect(!interface.isLocal(IPv4Address(8, 8, 8, 8)))
        #expect(interface.nextHop(for: IPv4Address(10, 0, 2, 3)) == IPv4Address(10, 0, 2, 3))
        #expect(interface.nextHop(for: IPv4Address(10, 0, 2, 2)) == IPv4Address(10, 0, 2, 2))
        #expect(interface.nextHop(for: IPv4Address(8, 8, 8, 8)) == IPv4Address(10, 0, 2, 2))
        #expect(interface.nextHop(for: IPv4Address(10, 0, 3, 1)) == IPv4Address(10, 0, 2, 2))
        #expect(interface.nextHop(for: .broadcast) == .broadcast)
        #expect(interface.subnetBroadcast == IPv4Address(10, 0, 2, 255))
    }

    @Test func prefixLengthsAtTheEdges() {
        var interface = hostA
        interface.prefixLength = 0
        #expect(interface.isLocal(IPv4Address(8, 8, 8, 8)))
        interface.prefixLength = 32
        #expect(!interface.isLocal(IPv4Address(10, 0, 2, 16)))
        #expect(interface.nextHop(for: IPv4Address(10, 0, 2, 16)) == hostA.gateway)
        interface.prefixLength = 99
        #expect(interface.subnetMask == 0xFFFF_FFFF)
        interface.prefixLength = -1
        #expect(interface.subnetMask == 0)
        interface.prefixLength = 8
        #expect(interface.subnetMask == 0xFF00_0000)
    }
}

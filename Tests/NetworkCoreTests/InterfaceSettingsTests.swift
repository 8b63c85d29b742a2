import NetworkCore
import Testing

@Suite struct InterfaceSettingsTests {
    func parse(_ address: String, _ gateway: String = "10.0.2.2", _ dns: String = "10.0.2.3")
        -> Result<InterfaceSettings, InterfaceSettingsError> {
        Array(address.utf8).withUnsafeBytes { address in
            Array(gateway.utf8).withUnsafeBytes { gateway in
                Array(dns.utf8).withUnsafeBytes { dns in
                    Result { () throws(InterfaceSettingsError) in
                        try InterfaceSettings.parse(address: address, gateway: gateway, dnsServer: dns)
                    }
                }
            }
        }
    }

    @Test func theConfigurationServersDefaultsAreTheStandardSettings() throws {
        #expect(try parse("10.0.2.15/24").get() == .standard)
        #expect(InterfaceSettings.standard.address == IPv4Address(10, 0, 2, 15))
        #expect(InterfaceSettings.standard.dnsServer == IPv4Address(10, 0, 2, 3))
    }

    @Test func otherSubnetsAndPrefixLengths() throws {
        let wide = try parse("172.16.9.1/12", "172.31.255.254", "1.1.1.1").get()
        #expect(wide == InterfaceSettings(address: IPv4Address(172, 16, 9, 1), prefixLength: 12,
                                          gateway: IPv4Address(172, 31, 255, 254), dnsServer: IPv4Address(1, 1, 1, 1)))
        #expect(try parse("192.168.1.1/30", "192.168.1.2").get().prefixLength == 30)
        #expect(try parse("10.0.0.1/1", "10.0.0.2").get().prefixLength == 1)
    }

    @Test func zeroMeansNoGatewayOrNameServer() throws {
        let bare = try parse("10.0.2.15/24", "0.0.0.0", "0.0.0.0").get()
        #expect(bare.gateway == .any && bare.dnsServer == .any)
        let interface = Interface(mac: .zero, address: bare.address, prefixLength: bare.prefixLength, gateway: bare.gateway)
        #expect(interface.reaches(IPv4Address(10, 0, 2, 2)) && !interface.reaches(IPv4Address(10, 0, 3, 2)))
        let routed = Interface(mac: .zero, address: bare.address, prefixLength: 24, gateway: IPv4Address(10, 0, 2, 2))
        #expect(routed.reaches(IPv4Address(192, 168, 1, 1)))
        let unaddressed = Interface(mac: .zero, address: .any, prefixLength: 0, gateway: .any)
        #expect(!unaddressed.reaches(IPv4Address(10, 0, 2, 2)), "no address yet: nothing")
    }

    @Test func eachRefusalNamesItsKey() {
        let cases: [(String, String, String, InterfaceSettingsError)] = [
            ("10.0.2.15", "10.0.2.2", "10.0.2.3", .badAddress),           // no prefix length
            ("10.0.2.15/", "10.0.2.2", "10.0.2.3", .badAddress),
            ("10.0.2.15/024", "10.0.2.2", "10.0.2.3", .badAddress),
            ("10.0.2.15/2x", "10.0.2.2", "10.0.2.3", .badAddress),
            ("10.0.2/24", "10.0.2.2", "10.0.2.3", .badAddress),
            ("10.0.2.15/24/", "10.0.2.2", "10.0.2.3", .badAddress),
            ("10.0.2.15/0", "10.0.2.2", "10.0.2.3", .badPrefixLength),
            ("10.0.2.15/31", "10.0.2.14", "10.0.2.3", .badPrefixLength),
            ("10.0.2.15/32", "10.0.2.2", "10.0.2.3", .badPrefixLength),
            ("10.0.2.0/24", "10.0.2.2", "10.0.2.3", .addressNotAHost),    // the subnet itself
            ("10.0.2.255/24", "10.0.2.2", "10.0.2.3", .addressNotAHost),  // its broadcast
            ("10.0.2.15/24", "10.0.2", "10.0.2.3", .badGateway),
            ("10.0.2.15/24", "", "10.0.2.3", .badGateway),
            ("10.0.2.15/24", "10.0.3.2", "10.0.2.3", .gatewayOffSubnet),
            ("10.0.2.15/24", "10.0.2.15", "10.0.2.3", .gatewayOffSubnet), // itself
            ("10.0.2.15/24", "10.0.2.255", "10.0.2.3", .gatewayOffSubnet),
            ("10.0.2.15/24", "10.0.2.2", "255.255.255.255", .badDNSServer),
            ("10.0.2.15/24", "10.0.2.2", "224.0.0.251", .badDNSServer),   // multicast
            ("10.0.2.15/24", "10.0.2.2", "dns", .badDNSServer),
        ]
        for (address, gateway, dns, expected) in cases {
            #expect(throws: expected, "\(address) \(gateway) \(dns)") { try parse(address, gateway, dns).get() }
        }
        #expect(InterfaceSettingsError.badPrefixLength.key.description == "net.address")
        #expect(InterfaceSettingsError.gatewayOffSubnet.key.description == "net.gateway")
        #expect(InterfaceSettingsError.badDNSServer.key.description == "net.dns")
    }
}

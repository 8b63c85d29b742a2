// InterfaceSettings: the interface's address, subnet, gateway and DNS server, as the
// configuration service holds them.
//
//   net.address   "10.0.2.15/24"   the host's address and its subnet's prefix length
//   net.gateway   "10.0.2.2"       where datagrams for hosts off the subnet go
//   net.dns       "10.0.2.3"       the name server a resolver asks (reported by ifconfig)
//
// 0.0.0.0 as the gateway or the DNS server means none: only the subnet is reachable,
// or there is no name server (what QEMU's DHCP server offers with restrict=on). And
// `net.address` = `dhcp` leases all three from a DHCP server instead (DHCP.swift).
//
// The defaults are QEMU user networking's. The network server reads the three keys
// whenever it starts — at boot and after every restart — so `config net.address ...`
// in the shell takes effect at the next restart (`inject net ...` or `stop net`). A
// connection made on the old address then no longer matches, and its peer is reset.
//
// The three are parsed and checked together and taken all or not at all: a gateway
// off the subnet, or an address that is the subnet itself or its broadcast, would
// leave the host sending into nowhere. A server that finds a bad value says which key
// and why, and runs on the defaults, because a host on the wrong address can still
// be reached on the console and mended, and one with no address could not be.

/// Why a configured interface setting was refused.
public enum InterfaceSettingsError: Error, Equatable, Sendable {
    /// net.address is not "a.b.c.d/n".
    case badAddress
    /// The prefix length is outside 1...30 (a subnet with room for a host and a gateway).
    case badPrefixLength
    /// net.address is the subnet's own address or its broadcast address.
    case addressNotAHost
    /// net.gateway is not a dotted IPv4 address.
    case badGateway
    /// net.gateway is not a host on net.address's subnet (nor 0.0.0.0), or is that
    /// very address.
    case gatewayOffSubnet
    /// net.dns is not a dotted unicast IPv4 address (nor 0.0.0.0).
    case badDNSServer

    /// The configuration key at fault.
    public var key: StaticString {
        switch self {
        case .badAddress, .badPrefixLength, .addressNotAHost: "net.address"
        case .badGateway, .gatewayOffSubnet: "net.gateway"
        case .badDNSServer: "net.dns"
        }
    }

    public var explanation: StaticString {
        switch self {
        case .badAddress: "not an address with a prefix length, such as 10.0.2.15/24"
        case .badPrefixLength: "the prefix length is not 1...30"
        case .addressNotAHost: "the address is its subnet's own or its broadcast address"
        case .badGateway: "not a dotted IPv4 address, such as 10.0.2.2"
        case .gatewayOffSubnet: "the gateway is not another host on the address's subnet"
        case .badDNSServer: "not a dotted unicast IPv4 address, such as 10.0.2.3"
        }
    }
}

/// The interface's addresses (`Interface` adds the MAC the device reports).
public struct InterfaceSettings: Equatable, Sendable {
    public var address: IPv4Address
    public var prefixLength: Int
    public var gateway: IPv4Address
    public var dnsServer: IPv4Address

    public init(address: IPv4Address, prefixLength: Int, gateway: IPv4Address, dnsServer: IPv4Address) {
        self.address = address
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.dnsServer = dnsServer
    }

    /// QEMU user networking's: 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3.
    public static let standard = InterfaceSettings(address: IPv4Address(10, 0, 2, 15), prefixLength: 24,
                                                   gateway: IPv4Address(10, 0, 2, 2),
                                                   dnsServer: IPv4Address(10, 0, 2, 3))

    /// The settings spelled by the three configuration values (see the top of this
    /// file), each checked and all checked against each other.
    public static func parse(address: UnsafeRawBufferPointer, gateway: UnsafeRawBufferPointer,
                             dnsServer: UnsafeRawBufferPointer) throws(InterfaceSettingsError) -> InterfaceSettings {
        guard let slash = address.firstIndex(of: UInt8(ascii: "/")),
              let host = IPv4Address.parse(UnsafeRawBufferPointer(rebasing: address[..<slash])) else {
            throw .badAddress
        }
        let prefixDigits = UnsafeRawBufferPointer(rebasing: address[(slash + 1)...])
        guard let prefixLength = decimal(prefixDigits) else { throw .badAddress }
        guard let router = IPv4Address.parse(gateway) else { throw .badGateway }
        guard let resolver = IPv4Address.parse(dnsServer) else { throw .badDNSServer }
        return try validated(address: host, prefixLength: prefixLength, gateway: router, dnsServer: resolver)
    }

    /// The settings if they fit together (the checks `parse` makes, for values that
    /// came as numbers: a DHCP lease).
    public static func validated(address: IPv4Address, prefixLength: Int, gateway: IPv4Address,
                                 dnsServer: IPv4Address) throws(InterfaceSettingsError) -> InterfaceSettings {
        guard prefixLength >= 1, prefixLength <= 30 else { throw .badPrefixLength }
        let mask = UInt32.max << UInt32(32 - prefixLength)
        let hostBits = address.rawValue & ~mask
        guard hostBits != 0, hostBits != ~mask else { throw .addressNotAHost }
        let routerBits = gateway.rawValue & ~mask
        guard gateway == .any || (gateway.rawValue ^ address.rawValue) & mask == 0 && routerBits != 0
                && routerBits != ~mask && gateway != address else { throw .gatewayOffSubnet }
        guard dnsServer != .broadcast, dnsServer.rawValue >> 28 != 0xE else { throw .badDNSServer }
        return InterfaceSettings(address: address, prefixLength: prefixLength, gateway: gateway, dnsServer: dnsServer)
    }

    /// A decimal number of one or two digits with no leading zero, or nil.
    private static func decimal(_ digits: UnsafeRawBufferPointer) -> Int? {
        guard digits.count >= 1, digits.count <= 2, digits.count == 1 || digits[0] != UInt8(ascii: "0") else {
            return nil
        }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }
}

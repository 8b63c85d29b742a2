// Addresses: the Ethernet and IPv4 names of hosts, and the host's own configuration.
//
// Why integers and not byte arrays: an address is compared, masked and hashed far
// more often than it is taken apart, and a UInt64 or UInt32 does all of that in one
// instruction with no storage to manage. The integer holds the wire bytes in wire
// order, first byte most significant, so the value reads the way people write it
// (0x52_54_00_12_34_56 is 52:54:00:12:34:56, 0x0a00_020f is 10.0.2.15) and a subnet
// mask is an ordinary shift.
//
// Why parsing and printing take raw bytes: the shell hands servers command-line
// words as bytes, and String in Embedded Swift pulls in Unicode tables for what is
// ASCII digits and dots. `parse` is strict because an address typed wrongly should
// be refused, not guessed at: exactly four decimal parts, each 0...255, no signs,
// no spaces, and no leading zeros (inet_aton would read "010" as octal 8, so a
// reader could not tell what "010.0.2.2" names).
//
// Why `Interface` is here: routing a datagram is two questions about addresses —
// is the destination on my link, and if not, who forwards it — and both need only
// the address, the prefix length and the gateway.

/// An Ethernet (IEEE 802) hardware address: the low 48 bits, the first byte on the
/// wire most significant.
public struct MACAddress: Equatable, Sendable {
    public var rawValue: UInt64

    /// Keeps the low 48 bits of `rawValue`.
    public init(rawValue: UInt64) { self.rawValue = rawValue & 0xFFFF_FFFF_FFFF }

    /// The address whose wire bytes are b0 (first) ... b5.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        rawValue = UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5)
    }

    /// ff:ff:ff:ff:ff:ff, every station on the link.
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    /// 00:00:00:00:00:00, "unknown" (the target of an ARP request).
    public static let zero = MACAddress(rawValue: 0)

    public var isBroadcast: Bool { self == .broadcast }
    /// The group bit, bit 0 of the first byte on the wire (broadcast is a group too).
    public var isMulticast: Bool { rawValue >> 40 & 1 == 1 }
}

/// An IPv4 address: a.b.c.d is `a << 24 | b << 16 | c << 8 | d`.
public struct IPv4Address: Equatable, Sendable {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// 0.0.0.0, "this host, not yet configured" (and a listener's "any address").
    public static let any = IPv4Address(rawValue: 0)
    /// 255.255.255.255, every host on the link.
    public static let broadcast = IPv4Address(rawValue: 0xFFFF_FFFF)

    /// The longest dotted text, "255.255.255.255".
    public static let maximumTextBytes = 15

    /// The address written as dotted decimal ASCII in `text` ("10.0.2.2"), or nil
    /// unless `text` is exactly four parts of 1...3 digits, each at most 255, with
    /// no leading zero in a part of two or three digits.
    public static func parse(_ text: UnsafeRawBufferPointer) -> IPv4Address? {
        var value: UInt32 = 0
        var parts = 0
        var part: UInt32 = 0
        var digits = 0
        var firstDigit: UInt8 = 0
        for index in 0...text.count {
            let byte: UInt8 = index < text.count ? text[index] : UInt8(ascii: ".")
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if digits == 0 { firstDigit = byte }
                digits += 1
                guard digits <= 3 else { return nil }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
            } else if byte == UInt8(ascii: ".") {
                guard digits > 0, part <= 255, parts < 4 else { return nil }
                guard digits == 1 || firstDigit != UInt8(ascii: "0") else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else {
                return nil
            }
        }
        return parts == 4 ? IPv4Address(rawValue: value) : nil
    }

    /// Writes the address as dotted decimal ASCII at the start of `buffer` and
    /// returns the byte count (7...15); writes nothing and returns 0 if the text does
    /// not fit.
    public func write(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var needed = 3
        for shift in stride(from: 24, through: 0, by: -8) {
            needed += Self.decimalDigits(UInt8(truncatingIfNeeded: rawValue >> UInt32(shift)))
        }
        guard buffer.count >= needed else { return 0 }
        var position = 0
        for shift in stride(from: 24, through: 0, by: -8) {
            if shift != 24 {
                buffer[position] = UInt8(ascii: ".")
                position += 1
            }
            let part = UInt8(truncatingIfNeeded: rawValue >> UInt32(shift))
            let digits = Self.decimalDigits(part)
            var remaining = part
            for place in (0..<digits).reversed() {
                buffer[position + place] = UInt8(ascii: "0") + remaining % 10
                remaining /= 10
            }
            position += digits
        }
        return position
    }

    static func decimalDigits(_ value: UInt8) -> Int {
        value >= 100 ? 3 : value >= 10 ? 2 : 1
    }
}

/// The host's own network configuration.
public struct Interface: Sendable {
    public var mac: MACAddress
    public var address: IPv4Address
    /// The subnet's prefix length, 0...32 (values outside are taken as the nearest).
    public var prefixLength: Int
    /// Where datagrams for hosts off the subnet are sent.
    public var gateway: IPv4Address

    public init(mac: MACAddress, address: IPv4Address, prefixLength: Int, gateway: IPv4Address) {
        self.mac = mac
        self.address = address
        self.prefixLength = prefixLength
        self.gateway = gateway
    }

    /// The subnet mask: `prefixLength` one bits from the top.
    public var subnetMask: UInt32 {
        let length = min(max(prefixLength, 0), 32)
        return length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    /// The subnet's directed broadcast address (every host bit set).
    public var subnetBroadcast: IPv4Address {
        IPv4Address(rawValue: address.rawValue | ~subnetMask)
    }

    /// Whether `ip` is reached directly on the link: on our subnet, or the limited
    /// broadcast 255.255.255.255.
    public func isLocal(_ ip: IPv4Address) -> Bool {
        ip == .broadcast || (ip.rawValue ^ address.rawValue) & subnetMask == 0
    }

    /// The address whose MAC a datagram to `destination` is sent to: the destination
    /// itself when it is local, else the gateway.
    public func nextHop(for destination: IPv4Address) -> IPv4Address {
        isLocal(destination) ? destination : gateway
    }

    /// Whether a datagram to `destination` can be sent at all: the interface has an
    /// address (not yet, while DHCP asks for one), and the destination is on the link
    /// or there is a gateway (0.0.0.0: none).
    public func reaches(_ destination: IPv4Address) -> Bool {
        address != .any && (isLocal(destination) || gateway != .any)
    }
}

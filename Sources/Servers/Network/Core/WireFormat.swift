// The wire layouts the parser reads and the builder writes, in one place, so the
// two cannot disagree about where a field lives.
//
// Every multi-byte field is big-endian ("network order"). Frames arrive at any
// alignment (the Ethernet header is 14 bytes, so the IP header after it is only
// 2-byte aligned), so fields are read and written a byte at a time; on RISC-V an
// unaligned load is emulated byte by byte anyway.
//
// The accessors below do no bounds checking of their own: `UnsafeRawBufferPointer`
// checks its subscript only in debug builds. Every caller checks the length of what
// it is about to read first, once per header, and the parser's tests run every
// truncation and thousands of random frames through it to keep that honest.
//
// Ethernet II (IEEE 802.3 with a type field), 14 bytes; the frame check sequence is
// the device's business and never reaches us:
//
//   offset  size  field
//   0       6     destination MAC
//   6       6     source MAC
//   12      2     EtherType (0x0800 IPv4, 0x0806 ARP)
//   14      ...   payload (short frames are padded to 60 bytes, so a payload may
//                 carry trailing zeros that belong to nothing)
//
// ARP for IPv4 over Ethernet (RFC 826), 28 bytes after the Ethernet header:
//
//   offset  size  field
//   0       2     hardware type (1 = Ethernet)
//   2       2     protocol type (0x0800 = IPv4)
//   4       1     hardware address length (6)
//   5       1     protocol address length (4)
//   6       2     operation (1 request, 2 reply)
//   8       6     sender hardware address
//   14      4     sender protocol address
//   18      6     target hardware address (zero in a request)
//   24      4     target protocol address
//
// IPv4 (RFC 791), 20 bytes plus up to 40 of options:
//
//    0       4       8              16    19                     31
//   +-------+-------+---------------+-----+-----------------------+
//   |version|  IHL  |  type of svc  |        total length         |   0
//   +-------+-------+---------------+-----+-----------------------+
//   |        identification         |R|D|M|   fragment offset     |   4
//   +---------------+---------------+-----+-----------------------+
//   |  time to live |   protocol    |       header checksum       |   8
//   +---------------+---------------+-----------------------------+
//   |                       source address                        |  12
//   +-------------------------------------------------------------+
//   |                    destination address                      |  16
//   +-------------------------------------------------------------+
//   |              options (IHL * 4 - 20 bytes)                   |  20
//   +-------------------------------------------------------------+
//
//   IHL counts 32-bit words (5...15); total length counts the header and payload in
//   bytes; D = don't fragment, M = more fragments; the header checksum covers the
//   header only (IHL * 4 bytes).
//
// ICMP echo request (type 8) and echo reply (type 0) (RFC 792), the IP payload:
//
//   offset  size  field
//   0       1     type
//   1       1     code (0)
//   2       2     checksum over the whole ICMP message
//   4       2     identifier
//   6       2     sequence number
//   8       ...   data, returned unchanged in the reply
//
// UDP (RFC 768), the IP payload:
//
//   offset  size  field
//   0       2     source port
//   2       2     destination port
//   4       2     length (header and data, >= 8)
//   6       2     checksum (0 = not computed) over the pseudo-header and datagram
//   8       ...   data
//
//   pseudo-header: source address (4), destination address (4), zero (1),
//   protocol 17 (1), UDP length (2).

public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
}

public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
}

/// Offsets and constants of the layouts above (offsets within their own header).
enum Wire {
    static let ethernetHeaderBytes = 14
    static let ethernetDestination = 0
    static let ethernetSource = 6
    static let ethernetType = 12

    static let arpBytes = 28
    static let arpHardwareType = 0
    static let arpProtocolType = 2
    static let arpHardwareLength = 4
    static let arpProtocolLength = 5
    static let arpOperation = 6
    static let arpSenderMAC = 8
    static let arpSenderAddress = 14
    static let arpTargetMAC = 18
    static let arpTargetAddress = 24
    static let arpHardwareEthernet: UInt16 = 1
    static let arpRequest: UInt16 = 1
    static let arpReply: UInt16 = 2

    static let ipMinimumHeaderBytes = 20
    static let ipVersionAndLength = 0
    static let ipTypeOfService = 1
    static let ipTotalLength = 2
    static let ipIdentification = 4
    static let ipFlagsAndFragment = 6
    static let ipTimeToLive = 8
    static let ipProtocol = 9
    static let ipChecksum = 10
    static let ipSource = 12
    static let ipDestination = 16
    static let ipDontFragment: UInt16 = 0x4000
    static let ipMoreFragments: UInt16 = 0x2000
    static let ipFragmentOffsetMask: UInt16 = 0x1FFF
    static let ipDefaultTimeToLive: UInt8 = 64
    /// The largest IP datagram on an Ethernet link (the MTU).
    static let ipMaximumDatagramBytes = 1500

    static let icmpHeaderBytes = 8
    static let icmpType = 0
    static let icmpCode = 1
    static let icmpChecksum = 2
    static let icmpIdentifier = 4
    static let icmpSequence = 6
    static let icmpEchoReply: UInt8 = 0
    static let icmpEchoRequest: UInt8 = 8

    static let udpHeaderBytes = 8
    static let udpSourcePort = 0
    static let udpDestinationPort = 2
    static let udpLength = 4
    static let udpChecksum = 6
}

extension UnsafeRawBufferPointer {
    func uint16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func ipv4Address(at offset: Int) -> IPv4Address {
        IPv4Address(self[offset], self[offset + 1], self[offset + 2], self[offset + 3])
    }

    func macAddress(at offset: Int) -> MACAddress {
        MACAddress(self[offset], self[offset + 1], self[offset + 2],
                   self[offset + 3], self[offset + 4], self[offset + 5])
    }
}

extension UnsafeMutableRawBufferPointer {
    func setUInt16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    func setIPv4Address(_ address: IPv4Address, at offset: Int) {
        setUInt16(UInt16(truncatingIfNeeded: address.rawValue >> 16), at: offset)
        setUInt16(UInt16(truncatingIfNeeded: address.rawValue), at: offset + 2)
    }

    func setMACAddress(_ address: MACAddress, at offset: Int) {
        for index in 0..<6 {
            self[offset + index] = UInt8(truncatingIfNeeded: address.rawValue >> UInt64(40 - 8 * index))
        }
    }
}

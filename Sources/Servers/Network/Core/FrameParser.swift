// FrameParser: what one incoming Ethernet frame means to this host, decided in one
// pass over bytes that anyone on the link may have chosen.
//
// Why one function that answers with a meaning, not a chain of header views: the
// server's job per frame is a single decision (answer an ARP request, learn a MAC,
// answer a ping, hand a datagram to a socket, drop), and every one of those needs a
// frame that has been checked all the way down first. Returning a `FrameMeaning`
// only after the last check means a half-validated frame cannot leak into the
// server: there is no value that says "IP looked fine, UDP not yet checked". The
// payloads are returned as offsets into the caller's frame, not copied, so the
// server copies each byte once, from the receive buffer to the client.
//
// Why every drop has its own reason: a frame that vanishes is the hardest network
// bug to find. The server counts drops per `DropReason` and netstat shows them, so
// "the ping never arrives" becomes "badICMPChecksum went up by one".
//
// Hostile input: the frame may be any length, 0 included, and any bytes. Each
// header's length is checked before any of its fields is read, lengths from the
// wire are compared with what is present before they are used, and the arithmetic
// is on Ints built from 16-bit fields, so nothing can overflow. The answer's
// payload range always lies inside the frame.
//
// What is checked, in order (the first failure is the reason):
//   Ethernet  14 bytes present; destination is our MAC or broadcast.
//   ARP       28 bytes present; Ethernet/IPv4 with lengths 6 and 4; operation 1 or 2;
//             the sender's MAC is not a group address (it would poison the cache);
//             a request must ask for our address, a reply is reported whoever
//             it answers (a gratuitous reply still tells us a mapping).
//   IPv4      20 bytes present; version 4, IHL >= 5; the header present and its
//             checksum right; IHL*4 <= total length <= bytes present (anything after
//             total length is Ethernet padding and ignored); not a fragment (we do
//             not reassemble); to our address, the limited broadcast or our subnet's
//             broadcast; from an address one could answer (not broadcast or
//             multicast; 0.0.0.0 is allowed, it is what an unconfigured host sends).
//   ICMP      8 bytes; checksum over the message; an echo request or reply with
//             code 0; an echo request sent to a broadcast address is not answered
//             (RFC 1122 §3.2.2.6 allows it; answering lets one frame make every
//             host on the link reply to a forged source).
//   UDP       8 bytes; 8 <= length <= the IP payload; checksum over the pseudo-
//             header and datagram unless the sender sent 0 (none computed).
//   TCP       handed on with the IP header checked; the TCP layer parses it.

/// Why an incoming frame was not used (counted per reason by the server, shown by netstat).
public enum DropReason: Int, CaseIterable, Sendable {
    /// Shorter than its Ethernet, ARP or IP header, or than the IP total length.
    case truncated
    /// Addressed to another station's MAC (or a multicast group), or an ARP request
    /// for another host's address.
    case notForUs
    case unknownEtherType
    /// An ARP packet that is not Ethernet/IPv4, has an unknown operation or a group sender.
    case badARP
    /// IP version not 4, IHL below 5, or a total length shorter than the header.
    case badIPHeader
    case badIPChecksum
    /// A fragment of a larger datagram (more-fragments set or a nonzero offset).
    case fragment
    /// An IP destination that is not ours, the limited broadcast or our subnet's broadcast.
    case notOurAddress
    /// An IP source that is a broadcast or multicast address.
    case badSourceAddress
    case unknownProtocol
    /// An ICMP message under 8 bytes, or an echo with a nonzero code.
    case badICMP
    case badICMPChecksum
    /// ICMP other than echo request and echo reply.
    case unknownICMPType
    /// An echo request to a broadcast address.
    case broadcastEchoRequest
    /// A UDP datagram under 8 bytes, or whose length field is below 8 or beyond the IP payload.
    case badUDP
    case badUDPChecksum

    /// The reason as netstat prints it.
    public var name: StaticString {
        switch self {
        case .truncated: "truncated"
        case .notForUs: "not for us"
        case .unknownEtherType: "unknown EtherType"
        case .badARP: "bad ARP"
        case .badIPHeader: "bad IP header"
        case .badIPChecksum: "bad IP checksum"
        case .fragment: "IP fragment"
        case .notOurAddress: "not our IP address"
        case .badSourceAddress: "bad IP source address"
        case .unknownProtocol: "unknown IP protocol"
        case .badICMP: "bad ICMP"
        case .badICMPChecksum: "bad ICMP checksum"
        case .unknownICMPType: "unknown ICMP type"
        case .broadcastEchoRequest: "broadcast echo request"
        case .badUDP: "bad UDP"
        case .badUDPChecksum: "bad UDP checksum"
        }
    }
}

/// What an incoming Ethernet frame means to the host `interface`. Offsets are from
/// the start of the frame; every range lies within it.
public enum FrameMeaning: Equatable {
    /// Someone asks for `interface.address`.
    case arpRequest(sender: MACAddress, senderAddress: IPv4Address)
    /// Someone tells us its mapping (in answer to our request, or unasked).
    case arpReply(sender: MACAddress, senderAddress: IPv4Address)
    case echoRequest(from: MACAddress, source: IPv4Address, identifier: UInt16, sequence: UInt16,
                     dataOffset: Int, dataLength: Int)
    case echoReply(source: IPv4Address, identifier: UInt16, sequence: UInt16, dataOffset: Int, dataLength: Int)
    case udp(from: MACAddress, source: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
             payloadOffset: Int, payloadLength: Int)
    /// The IP header is checked; the TCP segment itself is not parsed here.
    case tcp(from: MACAddress, source: IPv4Address, destination: IPv4Address, segmentOffset: Int, segmentLength: Int)
    case drop(DropReason)
}

public enum FrameParser {
    public static func classify(_ frame: UnsafeRawBufferPointer, for interface: Interface) -> FrameMeaning {
        guard frame.count >= Wire.ethernetHeaderBytes else { return .drop(.truncated) }
        let destination = frame.macAddress(at: Wire.ethernetDestination)
        guard destination == interface.mac || destination.isBroadcast else { return .drop(.notForUs) }
        switch frame.uint16(at: Wire.ethernetType) {
        case EtherType.arp:
            return classifyARP(frame, for: interface)
        case EtherType.ipv4:
            return classifyIPv4(frame, from: frame.macAddress(at: Wire.ethernetSource), for: interface)
        default:
            return .drop(.unknownEtherType)
        }
    }

    static func classifyARP(_ frame: UnsafeRawBufferPointer, for interface: Interface) -> FrameMeaning {
        let arp = Wire.ethernetHeaderBytes
        guard frame.count >= arp + Wire.arpBytes else { return .drop(.truncated) }
        guard frame.uint16(at: arp + Wire.arpHardwareType) == Wire.arpHardwareEthernet,
              frame.uint16(at: arp + Wire.arpProtocolType) == EtherType.ipv4,
              frame[arp + Wire.arpHardwareLength] == 6,
              frame[arp + Wire.arpProtocolLength] == 4
        else { return .drop(.badARP) }
        let sender = frame.macAddress(at: arp + Wire.arpSenderMAC)
        let senderAddress = frame.ipv4Address(at: arp + Wire.arpSenderAddress)
        guard !sender.isMulticast else { return .drop(.badARP) }
        switch frame.uint16(at: arp + Wire.arpOperation) {
        case Wire.arpRequest:
            guard frame.ipv4Address(at: arp + Wire.arpTargetAddress) == interface.address else {
                return .drop(.notForUs)
            }
            return .arpRequest(sender: sender, senderAddress: senderAddress)
        case Wire.arpReply:
            return .arpReply(sender: sender, senderAddress: senderAddress)
        default:
            return .drop(.badARP)
        }
    }

    static func classifyIPv4(_ frame: UnsafeRawBufferPointer, from sourceMAC: MACAddress,
                             for interface: Interface) -> FrameMeaning {
        let ip = Wire.ethernetHeaderBytes
        guard frame.count >= ip + Wire.ipMinimumHeaderBytes else { return .drop(.truncated) }
        let versionAndLength = frame[ip + Wire.ipVersionAndLength]
        let headerBytes = Int(versionAndLength & 0x0F) * 4
        guard versionAndLength >> 4 == 4, headerBytes >= Wire.ipMinimumHeaderBytes else {
            return .drop(.badIPHeader)
        }
        guard frame.count - ip >= headerBytes else { return .drop(.truncated) }
        var headerChecksum = InternetChecksum()
        headerChecksum.add(frame, from: ip, count: headerBytes)
        guard headerChecksum.value == 0 else { return .drop(.badIPChecksum) }
        let totalLength = Int(frame.uint16(at: ip + Wire.ipTotalLength))
        guard totalLength >= headerBytes else { return .drop(.badIPHeader) }
        guard totalLength <= frame.count - ip else { return .drop(.truncated) }
        let fragmentField = frame.uint16(at: ip + Wire.ipFlagsAndFragment)
        guard fragmentField & (Wire.ipMoreFragments | Wire.ipFragmentOffsetMask) == 0 else {
            return .drop(.fragment)
        }
        let destination = frame.ipv4Address(at: ip + Wire.ipDestination)
        let toBroadcast = destination == .broadcast || destination == interface.subnetBroadcast
        guard destination == interface.address || toBroadcast else { return .drop(.notOurAddress) }
        let source = frame.ipv4Address(at: ip + Wire.ipSource)
        guard source != .broadcast, source != interface.subnetBroadcast, source.rawValue >> 28 != 0xE else {
            return .drop(.badSourceAddress)
        }

        let payload = IPPayload(source: source, destination: destination, offset: ip + headerBytes,
                                length: totalLength - headerBytes)
        switch frame[ip + Wire.ipProtocol] {
        case IPProtocol.icmp:
            return classifyICMP(frame, payload, toBroadcast: toBroadcast, from: sourceMAC)
        case IPProtocol.udp:
            return classifyUDP(frame, payload, from: sourceMAC)
        case IPProtocol.tcp:
            return .tcp(from: sourceMAC, source: source, destination: destination,
                        segmentOffset: payload.offset, segmentLength: payload.length)
        default:
            return .drop(.unknownProtocol)
        }
    }

    /// Where a checked IP datagram's payload lies in the frame, and its addresses.
    struct IPPayload {
        var source: IPv4Address
        var destination: IPv4Address
        var offset: Int
        var length: Int
    }

    static func classifyICMP(_ frame: UnsafeRawBufferPointer, _ payload: IPPayload, toBroadcast: Bool,
                             from sourceMAC: MACAddress) -> FrameMeaning {
        let icmp = payload.offset
        guard payload.length >= Wire.icmpHeaderBytes else { return .drop(.badICMP) }
        var checksum = InternetChecksum()
        checksum.add(frame, from: icmp, count: payload.length)
        guard checksum.value == 0 else { return .drop(.badICMPChecksum) }
        let type = frame[icmp + Wire.icmpType]
        guard type == Wire.icmpEchoRequest || type == Wire.icmpEchoReply else { return .drop(.unknownICMPType) }
        guard frame[icmp + Wire.icmpCode] == 0 else { return .drop(.badICMP) }
        let identifier = frame.uint16(at: icmp + Wire.icmpIdentifier)
        let sequence = frame.uint16(at: icmp + Wire.icmpSequence)
        let dataOffset = icmp + Wire.icmpHeaderBytes
        let dataLength = payload.length - Wire.icmpHeaderBytes
        if type == Wire.icmpEchoReply {
            return .echoReply(source: payload.source, identifier: identifier, sequence: sequence,
                              dataOffset: dataOffset, dataLength: dataLength)
        }
        guard !toBroadcast else { return .drop(.broadcastEchoRequest) }
        return .echoRequest(from: sourceMAC, source: payload.source, identifier: identifier, sequence: sequence,
                            dataOffset: dataOffset, dataLength: dataLength)
    }

    static func classifyUDP(_ frame: UnsafeRawBufferPointer, _ payload: IPPayload,
                            from sourceMAC: MACAddress) -> FrameMeaning {
        let udp = payload.offset
        guard payload.length >= Wire.udpHeaderBytes else { return .drop(.badUDP) }
        let length = Int(frame.uint16(at: udp + Wire.udpLength))
        guard length >= Wire.udpHeaderBytes, length <= payload.length else { return .drop(.badUDP) }
        if frame.uint16(at: udp + Wire.udpChecksum) != 0 {
            var checksum = InternetChecksum()
            checksum.addPseudoHeader(source: payload.source, destination: payload.destination,
                                     protocol: IPProtocol.udp, length: length)
            checksum.add(frame, from: udp, count: length)
            guard checksum.value == 0 else { return .drop(.badUDPChecksum) }
        }
        return .udp(from: sourceMAC, source: payload.source,
                    sourcePort: frame.uint16(at: udp + Wire.udpSourcePort),
                    destinationPort: frame.uint16(at: udp + Wire.udpDestinationPort),
                    payloadOffset: udp + Wire.udpHeaderBytes, payloadLength: length - Wire.udpHeaderBytes)
    }
}

extension InternetChecksum {
    /// Adds `count` bytes of `bytes` from `offset` on; the caller checked the range.
    mutating func add(_ bytes: UnsafeRawBufferPointer, from offset: Int, count: Int) {
        add(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
    }

    /// Adds the pseudo-header UDP and TCP checksums begin with (RFC 768).
    mutating func addPseudoHeader(source: IPv4Address, destination: IPv4Address, protocol: UInt8, length: Int) {
        add(source)
        add(destination)
        add(word: UInt16(`protocol`))
        add(word: UInt16(truncatingIfNeeded: length))
    }
}

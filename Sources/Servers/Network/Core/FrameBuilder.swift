// FrameBuilder: the frames this host sends, written whole into a buffer the caller
// owns (a transmit buffer the device reads), with every length and checksum filled.
//
// Why whole frames and not layer by layer: Curio sends four kinds of frame, and
// each is a fixed stack of headers before a payload. Writing the stack in one
// function keeps every length field next to the number it must equal, and the
// checksums are computed over the bytes as they finally lie in the buffer, so what
// is summed is exactly what is sent.
//
// Why the payload may alias the buffer: the server answers a ping by building the
// reply in the buffer the request arrived in, or builds a datagram around data a
// client already copied to `headerBytesBeforeUDPPayload`. Headers are written first
// and the payload is then moved with memmove semantics (`copyMemory`), so a payload
// that lies in `into` anywhere past the headers (42 bytes) arrives intact.
//
// Every builder returns the frame's length, or nil if `into` is too small or the
// datagram would not fit the 1500-byte Ethernet MTU; on nil, `into` may have been
// partly written. Frames are not padded to the 60-byte Ethernet minimum: the device
// does that. IPv4 headers carry no options, TTL 64 and don't-fragment (we never
// send more than the MTU, and path MTU discovery needs DF); the identification is
// the caller's, so the server can count it across restarts.
//
// Frames as sent (offsets from the start of the frame):
//
//   ARP                 echo                        UDP
//   0   Ethernet (14)   0   Ethernet (14)           0   Ethernet (14)
//   14  ARP (28)        14  IPv4 (20)               14  IPv4 (20)
//   42  end             34  ICMP echo header (8)    34  UDP header (8)
//                       42  data                    42  payload

public enum FrameBuilder {
    /// Where a UDP frame's payload starts: Ethernet 14 + IPv4 20 + UDP 8.
    public static let headerBytesBeforeUDPPayload = 42
    /// The most UDP payload one frame carries: 1500 MTU - 20 IPv4 - 8 UDP.
    public static let maximumUDPPayload = 1472
    /// The most echo data one frame carries: 1500 MTU - 20 IPv4 - 8 ICMP.
    public static let maximumEchoData = 1472

    static let ipHeaderOffset = Wire.ethernetHeaderBytes
    static let transportOffset = Wire.ethernetHeaderBytes + Wire.ipMinimumHeaderBytes

    /// A broadcast request for `asking`'s MAC.
    public static func arpRequest(into frame: UnsafeMutableRawBufferPointer, from interface: Interface,
                                  asking: IPv4Address) -> Int? {
        arp(into: frame, from: interface, operation: Wire.arpRequest, to: .broadcast,
            targetMAC: .zero, targetAddress: asking)
    }

    /// Our answer to `to`'s request for our address.
    public static func arpReply(into frame: UnsafeMutableRawBufferPointer, from interface: Interface,
                                to: MACAddress, toAddress: IPv4Address) -> Int? {
        arp(into: frame, from: interface, operation: Wire.arpReply, to: to, targetMAC: to, targetAddress: toAddress)
    }

    /// An ICMP echo request (`isReply` false) or reply carrying `data`.
    public static func echo(into frame: UnsafeMutableRawBufferPointer, from interface: Interface, toMAC: MACAddress,
                            to: IPv4Address, isReply: Bool, identifier: UInt16, sequence: UInt16,
                            data: UnsafeRawBufferPointer, ipIdentification: UInt16) -> Int? {
        guard data.count <= maximumEchoData else { return nil }
        let icmpLength = Wire.icmpHeaderBytes + data.count
        guard let length = ipFrame(into: frame, from: interface, toMAC: toMAC, to: to, protocol: IPProtocol.icmp,
                                   transportLength: icmpLength, ipIdentification: ipIdentification)
        else { return nil }
        let icmp = transportOffset
        frame[icmp + Wire.icmpType] = isReply ? Wire.icmpEchoReply : Wire.icmpEchoRequest
        frame[icmp + Wire.icmpCode] = 0
        frame.setUInt16(0, at: icmp + Wire.icmpChecksum)
        frame.setUInt16(identifier, at: icmp + Wire.icmpIdentifier)
        frame.setUInt16(sequence, at: icmp + Wire.icmpSequence)
        place(data, in: frame, at: icmp + Wire.icmpHeaderBytes)
        var checksum = InternetChecksum()
        checksum.add(UnsafeRawBufferPointer(frame), from: icmp, count: icmpLength)
        frame.setUInt16(checksum.value, at: icmp + Wire.icmpChecksum)
        return length
    }

    /// A UDP datagram carrying `payload`, its checksum computed.
    public static func udp(into frame: UnsafeMutableRawBufferPointer, from interface: Interface, toMAC: MACAddress,
                           to: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
                           payload: UnsafeRawBufferPointer, ipIdentification: UInt16) -> Int? {
        guard payload.count <= maximumUDPPayload else { return nil }
        let udpLength = Wire.udpHeaderBytes + payload.count
        guard let length = ipFrame(into: frame, from: interface, toMAC: toMAC, to: to, protocol: IPProtocol.udp,
                                   transportLength: udpLength, ipIdentification: ipIdentification)
        else { return nil }
        let udp = transportOffset
        frame.setUInt16(sourcePort, at: udp + Wire.udpSourcePort)
        frame.setUInt16(destinationPort, at: udp + Wire.udpDestinationPort)
        frame.setUInt16(UInt16(udpLength), at: udp + Wire.udpLength)
        frame.setUInt16(0, at: udp + Wire.udpChecksum)
        place(payload, in: frame, at: udp + Wire.udpHeaderBytes)
        var checksum = InternetChecksum()
        checksum.addPseudoHeader(source: interface.address, destination: to, protocol: IPProtocol.udp,
                                 length: udpLength)
        checksum.add(UnsafeRawBufferPointer(frame), from: udp, count: udpLength)
        // 0 on the wire means "no checksum"; a sum that comes out 0 is sent as its
        // other one's-complement form, all ones (RFC 768).
        let value = checksum.value
        frame.setUInt16(value == 0 ? 0xFFFF : value, at: udp + Wire.udpChecksum)
        return length
    }

    static func arp(into frame: UnsafeMutableRawBufferPointer, from interface: Interface, operation: UInt16,
                    to destination: MACAddress, targetMAC: MACAddress, targetAddress: IPv4Address) -> Int? {
        let length = Wire.ethernetHeaderBytes + Wire.arpBytes
        guard frame.count >= length else { return nil }
        writeEthernetHeader(into: frame, to: destination, from: interface.mac, type: EtherType.arp)
        let arp = Wire.ethernetHeaderBytes
        frame.setUInt16(Wire.arpHardwareEthernet, at: arp + Wire.arpHardwareType)
        frame.setUInt16(EtherType.ipv4, at: arp + Wire.arpProtocolType)
        frame[arp + Wire.arpHardwareLength] = 6
        frame[arp + Wire.arpProtocolLength] = 4
        frame.setUInt16(operation, at: arp + Wire.arpOperation)
        frame.setMACAddress(interface.mac, at: arp + Wire.arpSenderMAC)
        frame.setIPv4Address(interface.address, at: arp + Wire.arpSenderAddress)
        frame.setMACAddress(targetMAC, at: arp + Wire.arpTargetMAC)
        frame.setIPv4Address(targetAddress, at: arp + Wire.arpTargetAddress)
        return length
    }

    /// Writes the Ethernet and IPv4 headers of a datagram whose transport part is
    /// `transportLength` bytes, and returns the frame's length (nil: no room).
    static func ipFrame(into frame: UnsafeMutableRawBufferPointer, from interface: Interface, toMAC: MACAddress,
                        to: IPv4Address, protocol: UInt8, transportLength: Int, ipIdentification: UInt16) -> Int? {
        let totalLength = Wire.ipMinimumHeaderBytes + transportLength
        let length = Wire.ethernetHeaderBytes + totalLength
        guard totalLength <= Wire.ipMaximumDatagramBytes, frame.count >= length else { return nil }
        writeEthernetHeader(into: frame, to: toMAC, from: interface.mac, type: EtherType.ipv4)
        let ip = ipHeaderOffset
        frame[ip + Wire.ipVersionAndLength] = 0x45
        frame[ip + Wire.ipTypeOfService] = 0
        frame.setUInt16(UInt16(totalLength), at: ip + Wire.ipTotalLength)
        frame.setUInt16(ipIdentification, at: ip + Wire.ipIdentification)
        frame.setUInt16(Wire.ipDontFragment, at: ip + Wire.ipFlagsAndFragment)
        frame[ip + Wire.ipTimeToLive] = Wire.ipDefaultTimeToLive
        frame[ip + Wire.ipProtocol] = `protocol`
        frame.setUInt16(0, at: ip + Wire.ipChecksum)
        frame.setIPv4Address(interface.address, at: ip + Wire.ipSource)
        frame.setIPv4Address(to, at: ip + Wire.ipDestination)
        var checksum = InternetChecksum()
        checksum.add(UnsafeRawBufferPointer(frame), from: ip, count: Wire.ipMinimumHeaderBytes)
        frame.setUInt16(checksum.value, at: ip + Wire.ipChecksum)
        return length
    }

    static func writeEthernetHeader(into frame: UnsafeMutableRawBufferPointer, to destination: MACAddress,
                                    from source: MACAddress, type: UInt16) {
        frame.setMACAddress(destination, at: Wire.ethernetDestination)
        frame.setMACAddress(source, at: Wire.ethernetSource)
        frame.setUInt16(type, at: Wire.ethernetType)
    }

    /// Moves `bytes` to `offset` in `frame` (memmove: they may already lie in it).
    static func place(_ bytes: UnsafeRawBufferPointer, in frame: UnsafeMutableRawBufferPointer, at offset: Int) {
        guard bytes.count > 0, let source = bytes.baseAddress, let base = frame.baseAddress else { return }
        (base + offset).copyMemory(from: source, byteCount: bytes.count)
    }
}

// A TCP segment's header (RFC 9293 §3.1), read from a received frame and written
// into a frame to send.
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-------------------------------+-------------------------------+
//   |          source port          |       destination port        |   0
//   +-------------------------------+-------------------------------+
//   |                        sequence number                        |   4
//   +---------------------------------------------------------------+
//   |                    acknowledgment number                      |   8
//   +-------+-------+-+-+-+-+-+-+-+-+-------------------------------+
//   | offset| rsrvd |C|E|U|A|P|R|S|F|            window             |  12
//   +-------+-------+-+-+-+-+-+-+-+-+-------------------------------+
//   |           checksum            |        urgent pointer         |  16
//   +-------------------------------+-------------------------------+
//   |                  options (offset * 4 - 20 bytes)              |  20
//   +---------------------------------------------------------------+
//
// The checksum covers the pseudo-header (source and destination address, zero,
// protocol 6, TCP length) and the whole segment. Options read: MSS (kind 2, length 4,
// only in a SYN) and window scale (kind 3, length 3, only in a SYN; shifts above 14
// are taken as 14, RFC 7323 §2.3); every other option is skipped by its length, and
// an option that runs past the header makes the segment malformed. Options written:
// MSS and window scale in SYNs, padded with NOP to a multiple of 4; nothing else (no
// timestamps, no SACK: the receiver here keeps only in-order data). The urgent
// pointer is ignored (RFC 9293 §3.8.5 allows it: no application here asks for it).

/// The control bits.
public struct TCPFlags: OptionSet, Equatable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
}

/// A checked segment: its header fields, and where its data lies in the frame.
public struct TCPSegment: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    /// The window field as sent (unscaled).
    public var window: UInt16
    /// Options of a SYN: the peer's MSS and window shift, if it sent them.
    public var maximumSegmentSize: UInt16?
    public var windowShift: UInt8?
    public var dataOffset: Int
    public var dataLength: Int

    public static let minimumHeaderBytes = 20

    /// The sequence space the segment occupies: its data, plus one each for SYN and FIN.
    public var sequenceLength: UInt32 {
        UInt32(dataLength) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }

    /// The segment at `offset..<offset+length` of `frame` (an IP payload the frame
    /// parser checked, from `source` to `destination`), or nil if it is malformed or
    /// its checksum is wrong.
    public static func parse(_ frame: UnsafeRawBufferPointer, offset: Int, length: Int, source: IPv4Address,
                             destination: IPv4Address) -> TCPSegment? {
        guard offset >= 0, length >= minimumHeaderBytes, offset <= frame.count, length <= frame.count - offset else {
            return nil
        }
        let headerBytes = Int(frame[offset + 12] >> 4) * 4
        guard headerBytes >= minimumHeaderBytes, headerBytes <= length else { return nil }
        var checksum = InternetChecksum()
        checksum.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.tcp, length: length)
        checksum.add(frame, from: offset, count: length)
        guard checksum.value == 0 else { return nil }
        let flags = TCPFlags(rawValue: frame[offset + 13] & 0x3F)
        var segment = TCPSegment(sourcePort: frame.uint16(at: offset), destinationPort: frame.uint16(at: offset + 2),
                                 sequence: frame.uint32(at: offset + 4), acknowledgment: frame.uint32(at: offset + 8),
                                 flags: flags, window: frame.uint16(at: offset + 14), maximumSegmentSize: nil,
                                 windowShift: nil, dataOffset: offset + headerBytes,
                                 dataLength: length - headerBytes)
        var option = offset + minimumHeaderBytes
        let end = offset + headerBytes
        while option < end {
            let kind = frame[option]
            if kind == 0 { break }
            if kind == 1 {
                option += 1
                continue
            }
            guard option + 1 < end else { return nil }
            let optionLength = Int(frame[option + 1])
            guard optionLength >= 2, optionLength <= end - option else { return nil }
            if flags.contains(.syn) {
                if kind == 2 && optionLength == 4 { segment.maximumSegmentSize = frame.uint16(at: option + 2) }
                if kind == 3 && optionLength == 3 { segment.windowShift = min(frame[option + 2], 14) }
            }
            option += optionLength
        }
        return segment
    }
}

/// What a segment to send says; the frame builder writes it.
public struct TCPSegmentHeader: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    /// Sent with a SYN.
    public var maximumSegmentSize: UInt16?
    public var windowShift: UInt8?

    public init(sourcePort: UInt16, destinationPort: UInt16, sequence: UInt32, acknowledgment: UInt32,
                flags: TCPFlags, window: UInt16, maximumSegmentSize: UInt16? = nil, windowShift: UInt8? = nil) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.window = window
        self.maximumSegmentSize = maximumSegmentSize
        self.windowShift = windowShift
    }

    /// The header's length with its options (a multiple of 4).
    public var headerBytes: Int {
        TCPSegment.minimumHeaderBytes + (maximumSegmentSize != nil ? 4 : 0) + (windowShift != nil ? 4 : 0)
    }
}

extension FrameBuilder {
    /// The largest TCP payload in one Ethernet frame without options (1500 - 20 - 20).
    public static let maximumTCPPayload = 1460

    /// A TCP segment with `header` and `payload`, its checksum computed.
    public static func tcp(into frame: UnsafeMutableRawBufferPointer, from interface: Interface, toMAC: MACAddress,
                           to: IPv4Address, header: TCPSegmentHeader, payload: UnsafeRawBufferPointer,
                           ipIdentification: UInt16) -> Int? {
        let headerBytes = header.headerBytes
        let tcpLength = headerBytes + payload.count
        guard let length = ipFrame(into: frame, from: interface, toMAC: toMAC, to: to, protocol: IPProtocol.tcp,
                                   transportLength: tcpLength, ipIdentification: ipIdentification)
        else { return nil }
        let tcp = transportOffset
        frame.setUInt16(header.sourcePort, at: tcp)
        frame.setUInt16(header.destinationPort, at: tcp + 2)
        frame.setUInt32(header.sequence, at: tcp + 4)
        frame.setUInt32(header.acknowledgment, at: tcp + 8)
        frame[tcp + 12] = UInt8(headerBytes / 4) << 4
        frame[tcp + 13] = header.flags.rawValue
        frame.setUInt16(header.window, at: tcp + 14)
        frame.setUInt16(0, at: tcp + 16)
        frame.setUInt16(0, at: tcp + 18)
        var option = tcp + TCPSegment.minimumHeaderBytes
        if let mss = header.maximumSegmentSize {
            frame[option] = 2
            frame[option + 1] = 4
            frame.setUInt16(mss, at: option + 2)
            option += 4
        }
        if let shift = header.windowShift {
            frame[option] = 1
            frame[option + 1] = 3
            frame[option + 2] = 3
            frame[option + 3] = shift
            option += 4
        }
        place(payload, in: frame, at: tcp + headerBytes)
        var checksum = InternetChecksum()
        checksum.addPseudoHeader(source: interface.address, destination: to, protocol: IPProtocol.tcp,
                                 length: tcpLength)
        checksum.add(UnsafeRawBufferPointer(frame), from: tcp, count: tcpLength)
        frame.setUInt16(checksum.value, at: tcp + 16)
        return length
    }
}

extension UnsafeRawBufferPointer {
    func uint32(at offset: Int) -> UInt32 {
        UInt32(uint16(at: offset)) << 16 | UInt32(uint16(at: offset + 2))
    }
}

extension UnsafeMutableRawBufferPointer {
    func setUInt32(_ value: UInt32, at offset: Int) {
        setUInt16(UInt16(truncatingIfNeeded: value >> 16), at: offset)
        setUInt16(UInt16(truncatingIfNeeded: value), at: offset + 2)
    }
}

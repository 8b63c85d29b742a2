import NetworkCore

/// Two hosts on QEMU's user network: Curio (A) and the gateway (B).
let hostA = Interface(mac: MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56), address: IPv4Address(10, 0, 2, 15),
                      prefixLength: 24, gateway: IPv4Address(10, 0, 2, 2))
let hostB = Interface(mac: MACAddress(0x52, 0x55, 0x0A, 0x00, 0x02, 0x02), address: IPv4Address(10, 0, 2, 2),
                      prefixLength: 24, gateway: IPv4Address(10, 0, 2, 2))

/// Runs a builder over a buffer of `capacity` bytes (filled with 0xAA so unwritten
/// bytes show) and returns the frame it wrote, or nil.
func build(capacity: Int = 1600, _ body: (UnsafeMutableRawBufferPointer) -> Int?) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0xAA, count: capacity)
    let length = buffer.withUnsafeMutableBytes { body($0) }
    return length.map { Array(buffer[..<$0]) }
}

func classify(_ frame: [UInt8], for interface: Interface) -> FrameMeaning {
    frame.withUnsafeBytes { FrameParser.classify($0, for: interface) }
}

func checksum(_ bytes: [UInt8]) -> UInt16 {
    var sum = InternetChecksum()
    bytes.withUnsafeBytes { sum.add($0) }
    return sum.value
}

func udpFrame(from source: Interface = hostA, toMAC: MACAddress = hostB.mac, to: IPv4Address = hostB.address,
              sourcePort: UInt16 = 1234, destinationPort: UInt16 = 53, payload: [UInt8],
              ipIdentification: UInt16 = 1) -> [UInt8] {
    build { into in
        payload.withUnsafeBytes {
            FrameBuilder.udp(into: into, from: source, toMAC: toMAC, to: to, sourcePort: sourcePort,
                             destinationPort: destinationPort, payload: $0, ipIdentification: ipIdentification)
        }
    }!
}

func echoFrame(from source: Interface = hostA, toMAC: MACAddress = hostB.mac, to: IPv4Address = hostB.address,
               isReply: Bool = false, data: [UInt8]) -> [UInt8] {
    build { into in
        data.withUnsafeBytes {
            FrameBuilder.echo(into: into, from: source, toMAC: toMAC, to: to, isReply: isReply, identifier: 0x1234,
                              sequence: 7, data: $0, ipIdentification: 2)
        }
    }!
}

func arpRequestFrame(from source: Interface = hostA, asking: IPv4Address = hostB.address) -> [UInt8] {
    build { FrameBuilder.arpRequest(into: $0, from: source, asking: asking) }!
}

func arpReplyFrame() -> [UInt8] {
    build { FrameBuilder.arpReply(into: $0, from: hostB, to: hostA.mac, toAddress: hostA.address) }!
}

/// A TCP frame as far as this layer cares: a UDP frame relabelled protocol 6.
func tcpFrame(segment: [UInt8]) -> [UInt8] {
    var frame = udpFrame(payload: segment)
    frame[23] = 6
    fixIPChecksum(&frame)
    return frame
}

/// Recomputes the IPv4 header checksum of a frame whose header starts at 14.
func fixIPChecksum(_ frame: inout [UInt8]) {
    let headerBytes = Int(frame[14] & 0x0F) * 4
    frame[24] = 0
    frame[25] = 0
    let value = checksum(Array(frame[14..<(14 + headerBytes)]))
    frame[24] = UInt8(value >> 8)
    frame[25] = UInt8(value & 0xFF)
}

/// Recomputes the ICMP checksum of a frame with a 20-byte IPv4 header.
func fixICMPChecksum(_ frame: inout [UInt8]) {
    let end = 14 + (Int(frame[16]) << 8 | Int(frame[17]))
    frame[36] = 0
    frame[37] = 0
    let value = checksum(Array(frame[34..<end]))
    frame[36] = UInt8(value >> 8)
    frame[37] = UInt8(value & 0xFF)
}

extension FrameMeaning {
    /// The byte range the meaning points into the frame, if any.
    var range: (offset: Int, length: Int)? {
        switch self {
        case let .echoRequest(_, _, _, _, offset, length): (offset, length)
        case let .echoReply(_, _, _, offset, length): (offset, length)
        case let .udp(_, _, _, _, offset, length): (offset, length)
        case let .tcp(_, _, _, offset, length): (offset, length)
        case .arpRequest, .arpReply, .drop: nil
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

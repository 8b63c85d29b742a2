// A host-side Ethernet peer for Curio's network device: QEMU's `-netdev dgram` carries
// each frame the guest sends as one UDP datagram to this peer's socket on 127.0.0.1,
// and each datagram the peer sends back as one frame to the guest. So a test can be
// the guest's whole network — the gateway 10.0.2.2 answering ARP, a UDP client, a
// pinger, a sender of malformed frames — with nothing leaving this machine.
//
// The peer's frames are built and checked here, from RFC 791/768/792/826, not with
// Curio's NetworkCore: an oracle the guest's code did not write.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class NetworkPeer {
    static let mac: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02]
    static let address: [UInt8] = [10, 0, 2, 2]
    static let guestAddress: [UInt8] = [10, 0, 2, 15]

    private let socket: Int32
    /// The port the peer listens on, and the port QEMU's end listens on.
    let port: UInt16
    let guestPort: UInt16
    /// The guest's MAC, learnt from its first frame.
    private(set) var guestMAC: [UInt8]?
    private(set) var arpRequestsAnswered = 0

    init() throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw POSIXError(.EIO) }
        port = try Self.bind(socket, port: 0)
        // A port for QEMU's end: free now (bound and released), taken by QEMU at boot.
        let probe = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(probe) }
        guestPort = try Self.bind(probe, port: 0)
    }

    deinit { close(socket) }

    var qemuArguments: [String] {
        ["-netdev", "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=\(guestPort),"
            + "remote.type=inet,remote.host=127.0.0.1,remote.port=\(port)",
         "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"]
    }

    private static func bind(_ socket: Int32, port: UInt16) throws -> UInt16 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Sends one frame to the guest.
    func send(_ frame: [UInt8]) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = guestPort.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = frame.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// The next frame from the guest, or nil after `timeout` seconds of silence.
    func receive(timeout: TimeInterval) -> [UInt8]? {
        var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = recv(socket, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let frame = Array(buffer[0..<count])
        if frame.count >= 12 { guestMAC = Array(frame[6..<12]) }
        return frame
    }

    /// Waits up to `timeout` for a frame `accept` takes, answering the guest's ARP
    /// requests for the peer's address meanwhile; other frames are passed to `other`.
    func await(timeout: TimeInterval, other: ([UInt8]) -> Void = { _ in },
               _ accept: ([UInt8]) -> Bool) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            guard let frame = receive(timeout: left) else { return nil }
            if let reply = Self.answer(arp: frame) {
                arpRequestsAnswered += 1
                send(reply)
                continue
            }
            if accept(frame) { return frame }
            other(frame)
        }
        return nil
    }

    // MARK: Frames (RFC 826, 791, 768, 792)

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let high = UInt32(bytes[index])
            let low = index + 1 < bytes.endIndex ? UInt32(bytes[index + 1]) : 0
            sum += high << 8 | low
            index += 2
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

    /// The reply to an ARP request for the peer's address, or nil if `frame` is not one.
    static func answer(arp frame: [UInt8]) -> [UInt8]? {
        guard frame.count >= 42, frame[12] == 0x08, frame[13] == 0x06, frame[20] == 0, frame[21] == 1,
              Array(frame[38..<42]) == address else { return nil }
        let senderMAC = Array(frame[22..<28])
        let senderIP = Array(frame[28..<32])
        return senderMAC + mac + [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2] + mac + address + senderMAC + senderIP
    }

    /// An IPv4 packet in an Ethernet frame to the guest, header checksum filled in.
    static func ipv4Frame(to destinationMAC: [UInt8], protocol number: UInt8, payload: [UInt8],
                          identification: Int = 1, flagsAndOffset: Int = 0) -> [UInt8] {
        var header: [UInt8] = [0x45, 0] + be16(20 + payload.count) + be16(identification) + be16(flagsAndOffset)
            + [64, number, 0, 0] + address + guestAddress
        let sum = checksum(header[...])
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return destinationMAC + mac + [0x08, 0x00] + header + payload
    }

    static func udpSegment(from sourcePort: Int, to destinationPort: Int, payload: [UInt8]) -> [UInt8] {
        var segment = be16(sourcePort) + be16(destinationPort) + be16(8 + payload.count) + [0, 0] + payload
        let pseudo = address + guestAddress + [0, 17] + be16(segment.count)
        var sum = checksum((pseudo + segment)[...])
        if sum == 0 { sum = 0xFFFF }
        segment[6] = UInt8(sum >> 8)
        segment[7] = UInt8(sum & 0xFF)
        return segment
    }

    static func be32(_ value: UInt32) -> [UInt8] { be16(Int(value >> 16)) + be16(Int(value & 0xFFFF)) }

    /// A TCP segment (RFC 9293) from the peer to the guest; a SYN carries MSS 1460
    /// unless `options` says otherwise. `headerWords` overrides the data offset (to
    /// forge one that disagrees with the options' length).
    static func tcpSegment(from sourcePort: Int, to destinationPort: Int, sequence: UInt32, acknowledgment: UInt32,
                           flags: UInt8, payload: [UInt8] = [], window: Int = 65535, options: [UInt8]? = nil,
                           headerWords: Int? = nil) -> [UInt8] {
        var options = options ?? (flags & 0x02 != 0 ? [2, 4, 0x05, 0xB4] : [])
        while options.count % 4 != 0 { options.append(0) }
        let offset = headerWords ?? (20 + options.count) / 4
        var segment = be16(sourcePort) + be16(destinationPort) + be32(sequence) + be32(acknowledgment)
            + [UInt8(offset & 0xF) << 4, flags] + be16(window) + [0, 0, 0, 0] + options + payload
        let pseudo = address + guestAddress + [0, 6] + be16(segment.count)
        let sum = checksum((pseudo + segment)[...])
        segment[16] = UInt8(sum >> 8)
        segment[17] = UInt8(sum & 0xFF)
        return segment
    }

    /// A TCP segment the guest sent to the peer, its checksum checked.
    struct Segment {
        var sourcePort: Int
        var destinationPort: Int
        var sequence: UInt32
        var acknowledgment: UInt32
        var flags: UInt8
        var window: Int
        var payload: [UInt8]
    }

    static func tcpSegment(in frame: [UInt8]) -> Segment? {
        guard let (protocolNumber, body) = ipv4Payload(of: frame), protocolNumber == 6, body.count >= 20 else {
            return nil
        }
        let pseudo = guestAddress + address + [0, 6] + be16(body.count)
        guard checksum((pseudo + body)[...]) == 0 else { return nil }
        let headerBytes = Int(body[12] >> 4) * 4
        guard headerBytes >= 20, headerBytes <= body.count else { return nil }
        func word(_ offset: Int) -> UInt32 { body[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        return Segment(sourcePort: Int(body[0]) << 8 | Int(body[1]), destinationPort: Int(body[2]) << 8 | Int(body[3]),
                       sequence: word(4), acknowledgment: word(8), flags: body[13], window: Int(body[14]) << 8 | Int(body[15]),
                       payload: Array(body[headerBytes...]))
    }

    static func echoRequest(identifier: Int, sequence: Int, data: [UInt8]) -> [UInt8] {
        var message: [UInt8] = [8, 0, 0, 0] + be16(identifier) + be16(sequence) + data
        let sum = checksum(message[...])
        message[2] = UInt8(sum >> 8)
        message[3] = UInt8(sum & 0xFF)
        return message
    }

    /// A UDP datagram the guest sent, fully checked: Ethernet to the peer, IPv4 from
    /// the guest to the peer with a good header checksum, UDP with a good checksum.
    struct Datagram: Equatable {
        var sourcePort: Int
        var destinationPort: Int
        var payload: [UInt8]
    }

    static func datagram(in frame: [UInt8]) -> Datagram? {
        guard let (protocolNumber, body) = ipv4Payload(of: frame), protocolNumber == 17, body.count >= 8 else {
            return nil
        }
        let length = Int(body[4]) << 8 | Int(body[5])
        guard length >= 8, length <= body.count else { return nil }
        let segment = Array(body[0..<length])
        if segment[6] != 0 || segment[7] != 0 {
            let pseudo = guestAddress + address + [0, 17] + be16(length)
            guard checksum((pseudo + segment)[...]) == 0 else { return nil }
        }
        return Datagram(sourcePort: Int(segment[0]) << 8 | Int(segment[1]),
                        destinationPort: Int(segment[2]) << 8 | Int(segment[3]), payload: Array(segment[8...]))
    }

    /// An ICMP echo reply the guest sent: identifier, sequence, data; checksums checked.
    static func echoReply(in frame: [UInt8]) -> (identifier: Int, sequence: Int, data: [UInt8])? {
        guard let (protocolNumber, body) = ipv4Payload(of: frame), protocolNumber == 1, body.count >= 8,
              body[0] == 0, body[1] == 0, checksum(body[...]) == 0 else { return nil }
        return (Int(body[4]) << 8 | Int(body[5]), Int(body[6]) << 8 | Int(body[7]), Array(body[8...]))
    }

    /// The protocol and payload of an IPv4 packet from the guest to the peer.
    static func ipv4Payload(of frame: [UInt8]) -> (UInt8, [UInt8])? {
        guard frame.count >= 34, Array(frame[0..<6]) == mac, frame[12] == 0x08, frame[13] == 0x00,
              frame[14] == 0x45 else { return nil }
        let header = frame[14..<34]
        guard checksum(header) == 0, Array(frame[26..<30]) == guestAddress, Array(frame[30..<34]) == address else {
            return nil
        }
        let total = Int(frame[16]) << 8 | Int(frame[17])
        guard total >= 20, 14 + total <= frame.count else { return nil }
        return (frame[23], Array(frame[34..<14 + total]))
    }
}

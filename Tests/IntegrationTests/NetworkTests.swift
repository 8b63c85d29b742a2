// The network service on the real machine, with the test as the guest's whole network
// (NetworkPeer, over QEMU's `-netdev dgram` on 127.0.0.1): ARP both ways, ICMP echo
// both ways, UDP echo of every datagram size byte-exactly, malformed frames dropped
// and counted, and a UDP socket that survives faults in the network server.

import Foundation
import Testing

@Suite(.serialized) struct NetworkTests {
    static func boot(_ peer: NetworkPeer) throws -> InteractiveMachine {
        let machine = try InteractiveMachine(extra: peer.qemuArguments)
        #expect(machine.waitFor("curio> "), "no prompt:\n\(machine.transcript)")
        return machine
    }

    /// Asks the guest for its MAC (an ARP request for 10.0.2.15) and returns it.
    static func resolveGuest(_ peer: NetworkPeer) -> [UInt8]? {
        let request: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + NetworkPeer.mac + [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]
            + NetworkPeer.mac + NetworkPeer.address + [0, 0, 0, 0, 0, 0] + NetworkPeer.guestAddress
        for _ in 0..<5 {
            peer.send(request)
            let reply = peer.await(timeout: 1) { frame in
                frame.count >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 2
                    && Array(frame[0..<6]) == NetworkPeer.mac && Array(frame[28..<32]) == NetworkPeer.guestAddress
                    && Array(frame[32..<38]) == NetworkPeer.mac && Array(frame[38..<42]) == NetworkPeer.address
            }
            if let reply { return Array(reply[22..<28]) }
        }
        return nil
    }

    static func payload(_ tag: String, size: Int, seed: Int) -> [UInt8] {
        var generator = seed &* 2_654_435_761 &+ size
        var bytes = Array(tag.utf8.prefix(size))
        while bytes.count < size {
            generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes.append(UInt8(truncatingIfNeeded: generator >> 33))
        }
        return bytes
    }

    /// Sends `payload` from the peer's port 40000 to the guest's port 7 until its echo
    /// comes back (at most `attempts` times, `wait` seconds each); the echo, checked
    /// end to end, or nil.
    static func echo(_ payload: [UInt8], via peer: NetworkPeer, guestMAC: [UInt8], attempts: Int = 1,
                     wait: TimeInterval = 3, identification: Int = 1) -> NetworkPeer.Datagram? {
        let frame = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17,
                                          payload: NetworkPeer.udpSegment(from: 40000, to: 7, payload: payload),
                                          identification: identification)
        for _ in 0..<attempts {
            peer.send(frame)
            let reply = peer.await(timeout: wait) { frame in NetworkPeer.datagram(in: frame)?.payload == payload }
            if let reply { return NetworkPeer.datagram(in: reply) }
        }
        return nil
    }

    @Test func udpEchoAndPingAnswerByteExactlyAndMalformedFramesAreDropped() throws {
        let peer = try NetworkPeer()
        let machine = try Self.boot(peer)
        defer { _ = machine.waitForExit(timeout: 1) }
        let guestMAC = try #require(Self.resolveGuest(peer), "the guest never answered ARP:\n\(machine.transcript)")
        #expect(guestMAC == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], "QEMU's default MAC, read from the device")

        // Ping the guest: three echo requests, each answered with its identifier,
        // sequence number and data.
        for sequence in 1...3 {
            let data = Self.payload("ping", size: 56 * sequence, seed: sequence)
            let request = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 1, payload: NetworkPeer.echoRequest(
                identifier: 0x4321, sequence: sequence, data: data))
            // Sent again after a silence, as ping does: on a loaded host the guest may be slow.
            var reply: [UInt8]?
            for _ in 0..<5 where reply == nil {
                peer.send(request)
                reply = peer.await(timeout: 3) { NetworkPeer.echoReply(in: $0)?.sequence == sequence }
            }
            let echo = try #require(reply.flatMap(NetworkPeer.echoReply), "no echo reply to ping \(sequence)")
            #expect(echo.identifier == 0x4321 && echo.sequence == sequence && echo.data == data)
        }

        let sizes = [0, 1, 2, 17, 100, 512, 1000, 1471, 1472]
        machine.type("run udpecho 7 \(sizes.count)")
        #expect(machine.waitFor("udpecho listening on port 7"), "\(machine.transcript)")

        // Malformed frames, each carrying "BAD": none may reach the echo service.
        let bad = Self.payload("BAD", size: 64, seed: 99)
        let good = NetworkPeer.udpSegment(from: 40000, to: 7, payload: bad)
        var wrongUDPChecksum = good
        wrongUDPChecksum[6] ^= 0x01
        var shortUDPLength = good
        shortUDPLength[4] = 0x10  // a UDP length beyond the IP payload
        var wrongIPChecksum = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: good)
        wrongIPChecksum[24] ^= 0x40
        var truncated = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: good)
        truncated.removeLast(20)
        var otherAddress = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: good)
        otherAddress[33] = 99
        let sum = NetworkPeer.checksum(otherAddress[14..<24] + [0, 0] + otherAddress[26..<34])
        otherAddress[24] = UInt8(sum >> 8)
        otherAddress[25] = UInt8(sum & 0xFF)
        let malformed: [[UInt8]] = [
            NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: wrongUDPChecksum),
            NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: shortUDPLength),
            wrongIPChecksum, truncated, otherAddress,
            NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: good, flagsAndOffset: 0x2000),  // a fragment
            NetworkPeer.ipv4Frame(to: [0x02, 0, 0, 0, 0, 0x99], protocol: 17, payload: good),  // another MAC
            Array(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 17, payload: good).prefix(20)),
        ]
        for frame in malformed { peer.send(frame) }

        for (index, size) in sizes.enumerated() {
            let payload = Self.payload("datagram \(index)", size: size, seed: index)
            let echo = Self.echo(payload, via: peer, guestMAC: guestMAC, wait: 10, identification: 100 + index)
            let echoed = echo == NetworkPeer.Datagram(sourcePort: 7, destinationPort: 40000, payload: payload)
            #expect(echoed, "datagram of \(size) bytes: \(echo.map { "\($0.payload.count) bytes back" } ?? "no echo")")
        }
        #expect(machine.waitFor("udpecho done: \(sizes.count) datagrams, \(sizes.reduce(0, +)) bytes"),
                "a malformed frame was taken for a datagram:\n\(machine.transcript)")

        machine.type("ifconfig")
        #expect(machine.waitFor("datagrams: \(sizes.count) delivered"), "\(machine.transcript.suffix(1500))")
        let dropped = machine.transcript.components(separatedBy: "received, ").last?
            .split(separator: " ").dropFirst(2).first.flatMap { Int($0) }
        #expect((dropped ?? 0) >= malformed.count, "every malformed frame counted as dropped:\n\(machine.transcript)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// The paper's claim for the network service: a socket's state is in its client's
    /// SSR, so faults that restart the server cost the client nothing but datagrams in
    /// flight, which the peer sends again.
    @Test func aUDPSocketSurvivesFaultsInTheNetworkServer() throws {
        let peer = try NetworkPeer()
        let machine = try Self.boot(peer)
        defer { _ = machine.waitForExit(timeout: 1) }
        let guestMAC = try #require(Self.resolveGuest(peer))
        machine.type("run udpecho 7 100000 &")
        #expect(machine.waitFor("udpecho listening on port 7"), "\(machine.transcript)")

        let faults = ["illegal", "reg-flip", "wild-write", "illegal", "stack-flip", "pointer-flip", "illegal", "data-flip"]
        var injected = 0
        for round in 0..<(faults.count * 4) {
            if round % 4 == 0 {
                let fault = faults[round / 4]
                machine.type("inject net \(fault) next seed=\(round + 1)")
                injected += 1
                #expect(machine.waitFor("armed ", count: injected, timeout: 10), "\(machine.transcript.suffix(400))")
            }
            let payload = Self.payload("round \(round)", size: 40 + 37 * round, seed: round)
            let echo = Self.echo(payload, via: peer, guestMAC: guestMAC, attempts: 10, wait: 1, identification: round)
            let echoed = echo?.payload == payload
            #expect(echoed, "round \(round) after \(injected) faults:\n\(machine.transcript.suffix(800))")
        }
        machine.type("ps")
        #expect(machine.waitFor("RESTARTS"))
        #expect(machine.waitFor("curio> ", count: injected + 3))
        let table = machine.transcript.components(separatedBy: "RESTARTS").last ?? ""
        let netRow = table.split(whereSeparator: \.isNewline).first { $0.contains(" net ") }
        let restarts = netRow?.split(separator: " ").last.flatMap { Int($0) }
        #expect((restarts ?? 0) >= 3, "every illegal instruction restarts the server:\n\(table)")
        #expect(table.contains("udpecho"), "the client is still running:\n\(table)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// A flood of SYNs that are never answered (forged peers) does not lock a real
    /// client out of httpd: past the backlog the server answers with SYN cookies and
    /// keeps nothing, and the real client's handshake and request go through.
    @Test func aFloodOfHalfOpenConnectionsDoesNotLockOutARealClient() throws {
        let peer = try NetworkPeer()
        let machine = try Self.boot(peer)
        defer { _ = machine.waitForExit(timeout: 1) }
        #expect(machine.waitFor("httpd: serving the disk over HTTP on port 80"), "\(machine.transcript)")
        let guestMAC = try #require(Self.resolveGuest(peer))
        var answered = Set<Int>()
        // Sent again, as a SYN sender does, for what got no answer: a burst may find the
        // device's transmit ring full, and a frame dropped there is as lost as on a wire.
        for _ in 0..<3 where answered.count < 40 {
            for port in 30000..<30040 where !answered.contains(port) {
                peer.send(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: NetworkPeer.tcpSegment(
                    from: port, to: 80, sequence: UInt32(port) * 7919, acknowledgment: 0, flags: 0x02)))
            }
            while let frame = peer.await(timeout: 3, { NetworkPeer.tcpSegment(in: $0) != nil }),
                  let segment = NetworkPeer.tcpSegment(in: frame) {
                if segment.flags & 0x12 == 0x12 { answered.insert(segment.destinationPort) }
                if answered.count == 40 { break }
            }
        }
        #expect(answered.count == 40, "every SYN got its SYN-ACK, past the backlog of 16 too: \(answered.count)")

        // The real client: handshake, then a request; the answer is HTTP.
        let clientPort = 41000
        let request = NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: NetworkPeer.tcpSegment(
            from: clientPort, to: 80, sequence: 1000, acknowledgment: 0, flags: 0x02))
        var synAck: NetworkPeer.Segment?
        for _ in 0..<5 where synAck == nil {
            peer.send(request)
            synAck = peer.await(timeout: 3) {
                guard let segment = NetworkPeer.tcpSegment(in: $0) else { return false }
                return segment.destinationPort == clientPort && segment.flags & 0x12 == 0x12
            }.flatMap(NetworkPeer.tcpSegment)
        }
        let handshake = try #require(synAck, "the real client's SYN was answered")
        #expect(handshake.acknowledgment == 1001)
        let get = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        var response: NetworkPeer.Segment?
        for _ in 0..<5 where response == nil {
            peer.send(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: NetworkPeer.tcpSegment(
                from: clientPort, to: 80, sequence: 1001, acknowledgment: handshake.sequence &+ 1, flags: 0x18,
                payload: get)))
            response = peer.await(timeout: 3) {
                guard let segment = NetworkPeer.tcpSegment(in: $0) else { return false }
                return segment.destinationPort == clientPort && !segment.payload.isEmpty
            }.flatMap(NetworkPeer.tcpSegment)
        }
        let answer = try #require(response, "httpd answered the real client")
        #expect(answer.payload.starts(with: Array("HTTP/1.".utf8)), "\(String(decoding: answer.payload, as: UTF8.self))")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }
}

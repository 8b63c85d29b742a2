// A hostile TCP peer against the real machine: the test is the guest's whole network
// (NetworkPeer) and holds a real connection to `tcpecho` with its own TCP (PeerTCP),
// and beside that connection forges what an attacker on the path or a broken host
// would send — segments outside the window, overlapping and duplicated data, resets
// and acknowledgments that do not match, options of impossible lengths, a SYN inside
// the connection, a window shut for seconds. After each burst the echo must still
// return the whole stream byte for byte: a forged byte taken, a byte delivered twice
// or a connection dropped all show there, as a stream that differs from what was sent;
// and the shell must still answer, netstat listing the connection, with no kernel panic
// on the console. Last, a second connection's window is shut while the network server
// is killed: the restarted server must take it up from the client's SSR and hear the
// window open.
//
// What the guest owes each forgery is RFC 9293 §3.10.7.4 with RFC 5961's hardening:
// an unacceptable segment is answered with an acknowledgment and dropped; a reset or a
// SYN inside the window but not exactly at its edge gets a challenge acknowledgment;
// a reset outside it is ignored; an acknowledgment of bytes never sent is answered and
// its segment dropped, data and all. Where the guest must answer, the test waits for
// the answer; the round trip after each burst retransmits through any loss, so the
// checks do not depend on timing.

import Foundation
import Testing

@Suite(.serialized) struct HostileTCPTests {
    static func bytes(_ tag: String, _ count: Int) -> [UInt8] {
        NetworkTests.payload(tag, size: count, seed: count)
    }

    /// Whether the guest answers `forge` with a bare acknowledgment of exactly what
    /// `connection` sent (the answer an unacceptable or forged segment is owed). The
    /// forgery is sent again if no answer comes, as its answer may be lost like any
    /// frame: each copy is as unacceptable as the first.
    static func challenged(on connection: PeerTCP, by forge: () -> Void) -> Bool {
        for _ in 0..<3 {
            forge()
            let answer = connection.next(timeout: 3) {
                $0.flags & 0x17 == 0x10 && $0.payload.isEmpty && $0.acknowledgment == connection.sendNext
            }
            if answer != nil { return true }
        }
        return false
    }

    /// The shell still answers, its netstat lists the connection as established, and
    /// the console shows no kernel panic: the burst felled neither the kernel nor the
    /// network server's hold on the connection.
    static func machineIsWell(_ machine: InteractiveMachine, with connection: PeerTCP) -> Bool {
        let prompts = machine.transcript.components(separatedBy: "curio> ").count - 1
        machine.type("netstat")
        guard machine.waitFor("curio> ", count: prompts + 1, timeout: 15) else { return false }
        let listing = machine.transcript.components(separatedBy: "PROTO  STATE").last ?? ""
        let listed = listing.split(whereSeparator: \.isNewline).contains {
            $0.contains("ESTABLISHED") && $0.contains("10.0.2.2:\(connection.localPort)")
        }
        return listed && !machine.transcript.contains("PANIC")
    }

    /// Sends `count` fresh bytes and waits for their echo; then the guest has echoed the
    /// whole stream, and nothing else, and is well.
    static func roundTrip(_ connection: PeerTCP, _ tag: String, count: Int = 300, after what: String,
                          _ machine: InteractiveMachine) -> Bool {
        connection.write(bytes(tag, count))
        let done = connection.exchange(untilReceived: connection.stream.count)
        let exact = connection.received == connection.stream
        let verdict = exact ? "exact" : "different"
        #expect(done && exact && !connection.resetReceived, """
            after \(what): \(connection.received.count) of \(connection.stream.count) bytes echoed, \(verdict), \
            reset \(connection.resetReceived)\n\(machine.transcript.suffix(800))
            """)
        let well = machineIsWell(machine, with: connection)
        #expect(well, "after \(what), netstat:\n\(machine.transcript.suffix(800))")
        return done && exact && well
    }

    @Test func anEstablishedConnectionSurvivesForgedSegmentsAndAShutWindow() throws {
        let peer = try NetworkPeer()
        let machine = try NetworkTests.boot(peer)
        defer { _ = machine.waitForExit(timeout: 1) }
        let guestMAC = try #require(NetworkTests.resolveGuest(peer), "no ARP answer:\n\(machine.transcript)")
        machine.type("run tcpecho 7 &")
        #expect(machine.waitFor("tcpecho listening on port 7"), "\(machine.transcript)")

        // A SYN to a port nobody listens on is refused with a reset that acknowledges it.
        let closed = PeerTCP(peer: peer, guestMAC: guestMAC, localPort: 41001, guestPort: 9)
        var refusal: NetworkPeer.Segment?
        for _ in 0..<3 where refusal == nil {
            closed.send(flags: 0x02, sequence: 5000, acknowledgment: 0)
            refusal = closed.next(timeout: 3) { $0.flags & 0x04 != 0 }
        }
        #expect(refusal.map { $0.flags & 0x14 == 0x14 && $0.acknowledgment == 5001 } == true,
                "the SYN to port 9 is reset: \(String(describing: refusal))")

        let connection = PeerTCP(peer: peer, guestMAC: guestMAC, localPort: 41000, guestPort: 7)
        try #require(connection.connect(), "no handshake with tcpecho:\n\(machine.transcript)")
        try #require(Self.roundTrip(connection, "first", after: "the handshake", machine))
        connection.settle()

        // Data wholly outside the window, after it and before it.
        let evil = Array("EVIL".utf8)
        for distance: UInt32 in [100_000, 0 &- 100_000] {
            #expect(Self.challenged(on: connection) {
                connection.send(flags: 0x18, sequence: connection.sendNext &+ distance,
                                acknowledgment: connection.receiveNext, payload: evil)
            }, "data \(distance) away is acknowledged and dropped")
        }
        try #require(Self.roundTrip(connection, "after the window", after: "out-of-window data", machine))

        // Overlap and duplication: 900 bytes sent as 0..<500, 200..<900 (old and new
        // bytes together), 0..<500 again, and all of it once more after its echo.
        let chunk = Self.bytes("overlap", 900)
        let base = connection.sendNext
        connection.account(chunk)
        for range in [0..<500, 200..<900, 0..<500] {
            connection.send(flags: 0x18, sequence: base &+ UInt32(range.lowerBound), acknowledgment: connection.receiveNext,
                            payload: Array(chunk[range]))
        }
        #expect(connection.exchange(untilReceived: connection.stream.count))
        #expect(Self.challenged(on: connection) {
            connection.send(flags: 0x18, sequence: base, acknowledgment: connection.receiveNext, payload: chunk)
        }, "a whole old segment is acknowledged again")
        try #require(Self.roundTrip(connection, "after the overlap", after: "overlapping segments", machine))
        connection.settle()

        // Resets: inside the window but off its edge (with and without ACK), then far outside it.
        #expect(Self.challenged(on: connection) {
            connection.send(flags: 0x04, sequence: connection.sendNext &+ 500, acknowledgment: 0)
        }, "an in-window RST is challenged")
        #expect(Self.challenged(on: connection) {
            connection.send(flags: 0x14, sequence: connection.sendNext &+ 1, acknowledgment: connection.receiveNext)
        }, "an in-window RST-ACK is challenged")
        connection.send(flags: 0x04, sequence: connection.sendNext &+ 1_000_000, acknowledgment: 0)
        try #require(Self.roundTrip(connection, "after resets", after: "forged resets", machine))
        connection.settle()

        // Acknowledgments of bytes the guest never sent (or sent long ago): answered,
        // and the segment dropped with the data it carries. A SYN inside the connection
        // is challenged too.
        for (distance, payload) in [(UInt32(50_000), [UInt8]()), (50_000, evil), (0 &- 1_000_000, evil)] {
            #expect(Self.challenged(on: connection) {
                connection.send(flags: 0x18, sequence: connection.sendNext,
                                acknowledgment: connection.receiveNext &+ distance, payload: payload)
            }, "an ACK \(distance) away is challenged")
        }
        #expect(Self.challenged(on: connection) {
            connection.send(flags: 0x02, sequence: connection.sendNext, acknowledgment: 0)
        }, "a SYN in the connection is challenged")
        try #require(Self.roundTrip(connection, "after ACKs", after: "forged acknowledgments", machine))
        connection.settle()

        // Segments that cannot be parsed are dropped: a wrong checksum, a header cut
        // short by the IP length, an IP length beyond the frame's end, and options of
        // length 0 or 1, running past the header, or cut off after a kind; a data
        // offset past the segment's end or below 5.
        let junk = Array("JUNK".utf8)
        var wrongChecksum = NetworkPeer.tcpSegment(from: connection.localPort, to: connection.guestPort,
                                                   sequence: connection.sendNext, acknowledgment: connection.receiveNext,
                                                   flags: 0x18, payload: junk)
        wrongChecksum[17] ^= 0x5A
        peer.send(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: wrongChecksum))
        peer.send(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: Array(wrongChecksum.prefix(14))))
        let whole = NetworkPeer.tcpSegment(from: connection.localPort, to: connection.guestPort,
                                           sequence: connection.sendNext, acknowledgment: connection.receiveNext,
                                           flags: 0x18, payload: junk)
        peer.send(Array(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: whole).dropLast(3)))
        let malformed: [(options: [UInt8], words: Int?)] = [
            ([2, 0, 5, 0xB4], nil), ([8, 1, 1, 1], nil), ([1, 1, 8, 10, 0, 0, 0, 0], nil), ([1, 1, 1, 2], nil),
            ([], 15), ([], 4),
        ]
        for (options, words) in malformed {
            connection.send(flags: 0x18, sequence: connection.sendNext, acknowledgment: connection.receiveNext,
                            payload: junk, options: options, headerWords: words)
        }
        // Options that are well formed but out of place or unknown are ignored, and the
        // data taken: an MSS of 16 and a window scale in a non-SYN, timestamps, kind 254.
        let odd: [UInt8] = [2, 4, 0, 16, 3, 3, 14, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 254, 6, 1, 2, 3, 4]
        let oddData = Self.bytes("odd options", 200)
        connection.send(flags: 0x18, sequence: connection.sendNext, acknowledgment: connection.receiveNext,
                        payload: oddData, options: odd)
        connection.account(oddData)
        let logged = connection.log.count
        try #require(Self.roundTrip(connection, "after options", count: 3000, after: "malformed options", machine))
        let largest = connection.log[logged...].map(\.payload.count).max() ?? 0
        #expect(largest > 536, "an MSS option outside the SYN was ignored: segments of \(largest) bytes")
        connection.settle()

        // A shut window: the echo waits, the guest probes it with single bytes and does
        // not give up; once it opens, the echo completes.
        connection.window = 0
        let held = Self.bytes("zero window", 2500)
        connection.write(held)
        let shutSince = connection.log.count
        let shutUntil = Date().addingTimeInterval(8)
        while Date() < shutUntil {
            if connection.next(timeout: 1) == nil { connection.retransmit() }
        }
        let whileShut = connection.log[shutSince...].filter { !$0.payload.isEmpty }
        #expect(whileShut.count >= 2 && whileShut.allSatisfy { $0.payload.count == 1 },
                "one-byte probes, again and again, while the window is shut: \(whileShut.map(\.payload.count))")
        // (What the echo took is acknowledged; the rest waits unacknowledged, since the
        // echo takes no more while its own send is held up by the shut window.)
        #expect(connection.acknowledged > connection.stream.count - held.count, "the echo took our data meanwhile")
        connection.window = 65535
        connection.acknowledge()
        try #require(Self.roundTrip(connection, "after the window opened", after: "a shut window", machine))

        // The end: our FIN, the echo's FIN after the last byte.
        connection.sendFin()
        let closedDeadline = Date().addingTimeInterval(15)
        while !connection.finReceived && Date() < closedDeadline {
            if connection.next(timeout: 1) == nil { connection.sendFin() }
        }
        #expect(connection.finReceived && !connection.resetReceived && connection.received == connection.stream)


        // A shut window across a restart of the network server: the echo waits on the
        // window when an illegal instruction kills the server; the restarted server
        // takes the connection up from tcpecho's SSR, window shut, and must hear it
        // open. This peer's sequence numbers lie in the half of sequence space before 0.
        let second = PeerTCP(peer: peer, guestMAC: guestMAC, localPort: 41002, guestPort: 7,
                             initialSequence: 0x9000_0000)
        try #require(second.connect(), "no second handshake with tcpecho:\n\(machine.transcript.suffix(800))")
        try #require(Self.roundTrip(second, "second", after: "the second handshake", machine))
        second.settle()
        second.window = 0
        second.write(Self.bytes("across a restart", 2500))
        #expect(second.next(timeout: 10) { !$0.payload.isEmpty } != nil, "a probe of the shut window")
        machine.type("inject net illegal next seed=7")
        #expect(machine.waitFor("armed ", timeout: 20), "\(machine.transcript.suffix(600))")
        // The shell's netstat is the server's next request: the fault strikes there.
        #expect(Self.machineIsWell(machine, with: second), "\(machine.transcript.suffix(1500))")
        let shutUntilAgain = Date().addingTimeInterval(3)
        while Date() < shutUntilAgain {
            if second.next(timeout: 1) == nil { second.retransmit() }
        }
        second.window = 65535
        second.acknowledge()
        try #require(Self.roundTrip(second, "after the restart", after: "a restart with the window shut", machine))
        let prompts = machine.transcript.components(separatedBy: "curio> ").count - 1
        machine.type("ps")
        #expect(machine.waitFor("curio> ", count: prompts + 1))
        let table = machine.transcript.components(separatedBy: "RESTARTS").last ?? ""
        let restarts = table.split(whereSeparator: \.isNewline).first { $0.contains(" net ") }?
            .split(separator: " ").last.flatMap { Int($0) } ?? 0
        #expect(restarts >= 1, "the fault restarted the network server:\n\(table)")

        machine.type("netstat")
        #expect(machine.waitFor("LISTEN"), "the shell and the network server answer:\n\(machine.transcript.suffix(800))")
        #expect(!machine.transcript.contains("PANIC"), "\(machine.transcript)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }
}

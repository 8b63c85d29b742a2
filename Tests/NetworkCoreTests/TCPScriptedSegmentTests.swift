// TCPConnection against recorded segment sequences: the test is the peer, and writes
// down segment by segment what arrives — lost, reordered, duplicated, overlapping,
// forged — instead of running a second TCPConnection (TCPConnectionTests does that).
// A peer written this way cannot share a bug with the connection it talks to, and an
// arrival order that a simulated link would produce only by chance is here on purpose.
//
// The connection keeps out-of-order data at its place until the gap before it fills
// (up to four gaps; each such arrival is answered with an acknowledgment of what it
// has, so that the peer retransmits the missing segment), so each script's promise
// is the same: every byte is delivered once, in order, as soon as every byte before
// it arrived; after the peer's retransmissions (go-back-N from the last
// acknowledgment, as any sender may) the whole stream is.
// Sequence numbers in the scripts are offsets into each side's stream; the peer's
// initial sequence number sits just below 2^32 so the stream crosses the wrap.

@testable import NetworkCore
import Testing

/// One connection accepted from the scripted peer, and everything it sent back.
final class ScriptedPeer {
    static let peerISS: UInt32 = 0xFFFF_FF80
    static let localISS: UInt32 = 7000
    static let remote = Endpoint(address: 0x0A00_0202, port: 40000)

    final class Wire {
        var sent: [(header: TCPSegmentHeader, payload: [UInt8])] = []
    }

    let wire = Wire()
    var now: UInt64 = 1_000_000
    let connection: TCPConnection
    /// The bytes the connection delivered to its client, in delivery order.
    var delivered: [UInt8] = []

    var emit: TCPConnection.Emit {
        { [wire] header, payload in wire.sent.append((header, Array(payload))) }
    }

    /// The peer's SYN (MSS 1460) arrives, and the connection answers SYN-ACK; with
    /// `handshake`, the peer's ACK follows.
    init(configuration: TCPConfiguration = TCPConfiguration(), handshake: Bool = true) {
        let syn = Self.segment(.syn, sequence: Self.peerISS, acknowledgment: 0, window: 65535, dataLength: 0,
                               maximumSegmentSize: 1460)
        let wire = wire
        connection = TCPConnection.accepting(syn, localPort: 7, from: Self.remote, iss: Self.localISS, now: now,
                                             configuration: configuration) { wire.sent.append(($0, Array($1))) }
        if handshake { arrive(.ack, at: 0, []) }
    }

    static func segment(_ flags: TCPFlags, sequence: UInt32, acknowledgment: UInt32, window: UInt16,
                        dataLength: Int, maximumSegmentSize: UInt16? = nil) -> TCPSegment {
        TCPSegment(sourcePort: remote.port, destinationPort: 7, sequence: sequence, acknowledgment: acknowledgment,
                   flags: flags, window: window, maximumSegmentSize: maximumSegmentSize, windowShift: nil,
                   dataOffset: 0, dataLength: dataLength)
    }

    /// The peer's segment carrying `payload` at `offset` of its stream, acknowledging
    /// `acknowledged` bytes of ours (default: everything sent so far).
    @discardableResult
    func arrive(_ flags: TCPFlags = .ack, at offset: Int, _ payload: [UInt8], acknowledged: Int? = nil,
                window: UInt16 = 65535) -> TCPEvents {
        let acknowledgment = Self.localISS &+ 1 &+ UInt32(truncatingIfNeeded: acknowledged ?? sentOffset)
        return arrive(Self.segment(flags, sequence: Self.peerISS &+ 1 &+ UInt32(truncatingIfNeeded: offset),
                                   acknowledgment: acknowledgment, window: window, dataLength: payload.count),
                      payload)
    }

    @discardableResult
    func arrive(_ segment: TCPSegment, _ payload: [UInt8]) -> TCPEvents {
        payload.withUnsafeBytes { connection.segmentArrived(segment, data: $0, now: now, emit: emit) }
    }

    /// What the client's receive would do: take every waiting byte, then acknowledge.
    func read() {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while connection.receivedCount > 0 {
            let count = buffer.withUnsafeMutableBytes { connection.deliver(into: $0) }
            delivered += buffer[0..<count]
            connection.acknowledge(emit: emit)
        }
    }

    /// Advances the clock to the connection's next deadline and fires its timers.
    @discardableResult
    func fireTimer() -> TCPEvents {
        guard let deadline = connection.nextDeadline else { return [] }
        now = max(now, deadline)
        return connection.timerFired(now: now, emit: emit)
    }

    /// How far into the peer's stream the connection's last segment acknowledged.
    var acknowledgedOffset: Int { Int(wire.sent.last.map { $0.header.acknowledgment &- Self.peerISS &- 1 } ?? 0) }
    /// How far into its own stream the connection has sent (data, FIN).
    var sentOffset: Int { Int(connection.sendMaximum &- Self.localISS &- 1) }
    /// Sent segments from `index` on that carry data.
    func dataSegments(from index: Int) -> [(header: TCPSegmentHeader, payload: [UInt8])] {
        wire.sent[index...].filter { !$0.payload.isEmpty }
    }
}

/// Deterministic random numbers (xorshift) for the random schedules.
struct Dice {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    /// 0 to `sides` - 1.
    mutating func roll(_ sides: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Int(state % UInt64(sides))
    }
}

@Suite struct TCPScriptedSegmentTests {
    static let stream = (0..<500).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 >> 3) }

    /// Scripts of arrivals, each a list of byte ranges of the peer's 500-byte stream.
    static let scripts: [(name: String, ranges: [Range<Int>])] = [
        ("in order", [0..<100, 100..<200, 200..<300, 300..<400, 400..<500]),
        ("every segment twice", [0..<100, 0..<100, 100..<200, 100..<200, 200..<300, 300..<400, 300..<400, 400..<500]),
        ("two swapped", [0..<100, 200..<300, 100..<200, 300..<400, 400..<500]),
        ("reversed", [400..<500, 300..<400, 200..<300, 100..<200, 0..<100]),
        ("the middle lost", [0..<100, 100..<200, 300..<400, 400..<500]),
        ("the first lost", [100..<200, 200..<300, 300..<400, 400..<500]),
        ("old duplicates between new", [0..<100, 100..<200, 0..<100, 200..<300, 100..<200, 400..<500, 300..<400]),
        ("repacketized overlapping retransmission", [0..<100, 200..<300, 50..<250, 250..<500]),
        ("a retransmission covering all", [0..<100, 300..<400, 0..<500]),
        ("an overlap ending inside delivered data", [0..<300, 100..<250, 250..<350, 350..<500]),
    ]

    /// Delivers every script, then the peer's go-back-N retransmissions: the stream
    /// arrives once and in order, each byte as soon as every byte before it has
    /// arrived (whatever came before, beyond a gap, was kept), and every arrival was
    /// answered at once with an acknowledgment of the delivered prefix.
    @Test(arguments: 0..<scripts.count) func aScriptedArrivalOrderDeliversTheStreamExactlyOnce(index: Int) {
        let (name, ranges) = Self.scripts[index]
        let peer = ScriptedPeer()
        var arrived = [Bool](repeating: false, count: Self.stream.count)
        var prefix = 0
        for range in ranges {
            let before = peer.wire.sent.count
            peer.arrive(at: range.lowerBound, Array(Self.stream[range]))
            peer.read()
            for byte in range { arrived[byte] = true }
            prefix = arrived.firstIndex(of: false) ?? arrived.count
            #expect(peer.delivered.count == prefix, "\(name): \(range) leaves \(prefix) delivered")
            #expect(peer.wire.sent.count > before && peer.acknowledgedOffset == prefix,
                    "\(name): \(range) answered with ack \(peer.acknowledgedOffset), not \(prefix)")
        }
        retransmitUntilDelivered(peer)
        #expect(peer.delivered == Self.stream, "\(name): \(peer.delivered.count) bytes delivered")
        #expect(peer.connection.state == .established)
    }

    /// Random schedules over the same stream, in segments of 40 to 129 bytes: each
    /// segment lost, duplicated, or held back behind a later one with probability 1/5
    /// each; the client reads after some arrivals only.
    @Test func randomLossReorderingAndDuplicationNeverCorruptTheStream() {
        var dice = Dice(seed: 0x2545_F491_4F6C_DD1D)
        func roll() -> Int { dice.roll(5) }
        for seed in 0..<300 {
            let peer = ScriptedPeer()
            let size = 40 + seed % 90
            var arrivals: [Range<Int>] = []
            var heldBack: Range<Int>?
            for start in stride(from: 0, to: Self.stream.count, by: size) {
                let range = start..<min(start + size, Self.stream.count)
                switch roll() {
                case 0: continue
                case 1: arrivals += [range, range]
                case 2 where heldBack == nil: heldBack = range; continue
                default: arrivals.append(range)
                }
                if let late = heldBack, late != range {
                    arrivals.append(late)
                    heldBack = nil
                }
            }
            for range in arrivals {
                peer.arrive(at: range.lowerBound, Array(Self.stream[range]))
                if roll() < 3 { peer.read() }
            }
            peer.read()
            retransmitUntilDelivered(peer)
            #expect(peer.delivered == Self.stream, "seed \(seed): \(arrivals)")
        }
    }

    /// The other direction: the connection sends three 4 KiB sends while its segments
    /// and the peer's acknowledgments are each lost, duplicated or delayed behind later
    /// ones with probability 1/6 each; the peer takes bytes in order only. Every send
    /// completes, the peer has every byte once, and the connection never gives up.
    @Test func randomLossReorderingAndDuplicationBothWaysNeverCorruptASend() {
        var dice = Dice(seed: 0x9E37_79B9_7F4A_7C15)
        func roll() -> Int { dice.roll(6) }
        for seed in 0..<40 {
            let peer = ScriptedPeer()
            let data = (0..<(3 * 4096)).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ seed) }
            var received: [UInt8] = []
            var sends = 0
            var seen = 0
            // What is on the wire: a data segment to the peer, or an acknowledgment to the connection.
            var inFlight: [(toPeer: Bool, offset: Int, payload: [UInt8])] = []
            var delayed: [(toPeer: Bool, offset: Int, payload: [UInt8])] = []
            func put(_ item: (toPeer: Bool, offset: Int, payload: [UInt8])) {
                switch roll() {
                case 0: break
                case 1: inFlight += [item, item]
                case 2: delayed.append(item)
                default: inFlight.append(item)
                }
            }
            for _ in 0..<5000 where sends < 3 || !peer.connection.sendIsComplete {
                if sends == 0 || peer.connection.sendIsComplete {
                    if sends > 0 { _ = peer.connection.finishSend() }
                    data[(sends * 4096)..<((sends + 1) * 4096)].withUnsafeBytes {
                        peer.connection.queueSend($0, now: peer.now, emit: peer.emit)
                    }
                    sends += 1
                }
                for segment in peer.wire.sent[seen...] where !segment.payload.isEmpty {
                    put((true, Int(segment.header.sequence &- ScriptedPeer.localISS &- 1), segment.payload))
                }
                seen = peer.wire.sent.count
                if inFlight.isEmpty {
                    if !delayed.isEmpty {
                        inFlight = delayed
                        delayed = []
                    } else {
                        peer.fireTimer()
                    }
                    continue
                }
                let item = inFlight.removeFirst()
                if item.toPeer {
                    let overlap = received.count - item.offset
                    if overlap >= 0 && overlap < item.payload.count { received += item.payload[overlap...] }
                    put((false, received.count, []))
                } else {
                    peer.arrive(at: 0, [], acknowledged: item.offset)
                }
            }
            #expect(received == data && peer.connection.sendIsComplete && peer.connection.state == .established,
                    "seed \(seed): \(received.count) bytes, state \(peer.connection.state.rawValue)")
        }
    }

    /// The peer sends again from the connection's last acknowledgment, 100 bytes a
    /// segment, until everything is delivered.
    func retransmitUntilDelivered(_ peer: ScriptedPeer) {
        for _ in 0..<20 where peer.delivered.count < Self.stream.count {
            for start in stride(from: peer.acknowledgedOffset, to: Self.stream.count, by: 100) {
                let range = start..<min(start + 100, Self.stream.count)
                peer.arrive(at: range.lowerBound, Array(Self.stream[range]))
                peer.read()
            }
        }
    }

    /// Five segments beyond five gaps: four are held, the fifth (a fifth gap) is not.
    /// Once the gaps fill, the held bytes are delivered without being sent again, and
    /// only the fifth segment's bytes must come again.
    @Test func fourGapsAreHeldAndAFifthSegmentBeyondOneIsDropped() {
        let peer = ScriptedPeer()
        for start in stride(from: 50, to: 500, by: 100) {
            peer.arrive(at: start, Array(Self.stream[start..<(start + 50)]))
        }
        #expect(peer.connection.heldRanges.count == TCPConnection.maximumHeldRanges)
        #expect(peer.delivered.isEmpty && peer.acknowledgedOffset == 0)
        for start in stride(from: 0, to: 400, by: 100) {
            peer.arrive(at: start, Array(Self.stream[start..<(start + 50)]))
            peer.read()
        }
        #expect(peer.delivered == Array(Self.stream[0..<400]), "the four held segments joined the stream")
        #expect(peer.acknowledgedOffset == 400 && peer.connection.heldRanges.isEmpty)
        peer.arrive(at: 400, Array(Self.stream[400..<450]))
        peer.read()
        #expect(peer.delivered.count == 450, "the fifth was dropped: its bytes are still missing")
        peer.arrive(at: 450, Array(Self.stream[450..<500]))
        peer.read()
        #expect(peer.delivered == Self.stream)
    }

    /// The segment before the peer's last one, which carries its FIN, is lost: the FIN
    /// is held with the bytes, and the end of the stream is readable as soon as the
    /// missing segment arrives, without the FIN being sent again.
    @Test func aFinBeyondAGapIsTakenWhenTheGapFills() {
        let peer = ScriptedPeer()
        peer.arrive(at: 0, Array(Self.stream[0..<200]))
        peer.arrive([.ack, .fin], at: 300, Array(Self.stream[300..<500]))
        #expect(!peer.connection.finPending && peer.connection.heldRanges.count == 1)
        peer.read()
        let filled = peer.arrive(at: 200, Array(Self.stream[200..<300]))
        #expect(filled.contains(.readable) && peer.connection.finPending)
        peer.read()
        #expect(peer.delivered == Self.stream)
        #expect(peer.connection.consumeFin(now: peer.now) && peer.connection.state == .closeWait)
        // Data claimed to lie past a FIN is not taken.
        let other = ScriptedPeer()
        other.arrive([.ack, .fin], at: 100, Array(Self.stream[100..<200]))
        other.arrive(at: 300, Array(Self.stream[300..<400]))
        #expect(other.connection.heldRanges.count == 1)
        other.arrive(at: 0, Array(Self.stream[0..<100]))
        other.read()
        #expect(other.delivered == Array(Self.stream[0..<200]) && other.connection.finPending)
    }

    /// Held bytes stay inside the window: a segment past it is not kept, one across its
    /// edge is kept up to the edge.
    @Test func heldBytesStayInsideTheWindow() {
        var configuration = TCPConfiguration()
        configuration.receiveCapacity = 300
        let peer = ScriptedPeer(configuration: configuration)
        let stream = (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        peer.arrive(at: 300, Array(stream[300..<400]))
        #expect(peer.connection.heldRanges.isEmpty, "past the window")
        peer.arrive(at: 200, Array(stream[200..<400]))
        #expect(peer.connection.heldRanges.count == 1
                && peer.connection.heldRanges[0].end &- peer.connection.heldRanges[0].start == 100, "up to the edge")
        peer.arrive(at: 0, Array(stream[0..<200]))
        peer.read()
        #expect(peer.delivered == Array(stream[0..<300]))
    }

    /// The connection sends 4000 bytes (three segments); the peer's acknowledgments
    /// come duplicated and out of order. Two duplicates resend nothing, the third
    /// resends the first unacknowledged segment once, later ones do not resend it
    /// again, an acknowledgment older than one already seen changes nothing, and
    /// a duplicate of the final acknowledgment sends nothing at all.
    @Test func duplicatedAndReorderedAcknowledgmentsResendOnlyAtTheThirdDuplicate() {
        let peer = ScriptedPeer()
        let data = (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        data.withUnsafeBytes { peer.connection.queueSend($0, now: peer.now, emit: peer.emit) }
        let firstSends = peer.dataSegments(from: 0)
        #expect(firstSends.map(\.payload.count) == [1460, 1460, 1080])
        var mark = peer.wire.sent.count
        // The first segment acknowledged, then two duplicates of that acknowledgment.
        peer.arrive(at: 0, [], acknowledged: 1460)
        peer.arrive(at: 0, [], acknowledged: 1460)
        peer.arrive(at: 0, [], acknowledged: 1460)
        #expect(peer.dataSegments(from: mark).isEmpty, "two duplicates resend nothing")
        peer.arrive(at: 0, [], acknowledged: 1460)
        let resent = peer.dataSegments(from: mark)
        #expect(resent.count == 1 && resent.first?.header.sequence == ScriptedPeer.localISS &+ 1 &+ 1460
                    && resent.first?.payload == Array(data[1460..<2920]), "the third resends the lost segment")
        mark = peer.wire.sent.count
        peer.arrive(at: 0, [], acknowledged: 1460)
        #expect(peer.dataSegments(from: mark).allSatisfy { $0.header.sequence != ScriptedPeer.localISS &+ 1 &+ 1460 },
                "a fourth does not resend it again")
        peer.arrive(at: 0, [], acknowledged: 4000)
        #expect(peer.connection.sendIsComplete && peer.connection.nextDeadline == nil)
        mark = peer.wire.sent.count
        peer.arrive(at: 0, [], acknowledged: 2920, window: 0)
        #expect(peer.connection.sendWindow == 65535, "an old acknowledgment does not shut the window")
        peer.arrive(at: 0, [], acknowledged: 4000)
        peer.arrive(at: 0, [], acknowledged: 4000)
        #expect(peer.wire.sent.count == mark, "old and duplicate acknowledgments of a finished send are silent")
        #expect(peer.connection.finishSend() == 4000)
    }

    /// The SYN-ACK is lost: the connection's timer sends it again, unchanged; then the
    /// handshake's last ACK is lost too, and the peer's first data completes it.
    @Test func aLostSynAckIsResentAndDataCompletesTheHandshake() {
        let peer = ScriptedPeer(handshake: false)
        let synAck = peer.wire.sent[0].header
        #expect(synAck.flags == [.syn, .ack] && peer.connection.state == .synReceived)
        peer.fireTimer()
        #expect(peer.wire.sent.count == 2 && peer.wire.sent[1].header == synAck, "the same SYN-ACK, again")
        let events = peer.arrive(at: 0, Array(Self.stream[0..<100]))
        #expect(events.contains(.established) && events.contains(.readable))
        peer.read()
        #expect(peer.delivered == Array(Self.stream[0..<100]) && peer.connection.nextDeadline == nil)
    }

    /// Our FIN is lost and sent again by the timer; the peer's FIN comes twice (its
    /// first acknowledgment was lost), and is delivered once; in TIME-WAIT a third copy
    /// is acknowledged again and restarts the 2 MSL wait.
    @Test func lostFinsAreResentAndADuplicateFinIsDeliveredOnce() {
        let peer = ScriptedPeer()
        peer.connection.queueFin(now: peer.now, emit: peer.emit)
        let fin = peer.wire.sent.last!.header
        #expect(fin.flags == [.fin, .ack] && peer.connection.state == .finWait1)
        peer.fireTimer()
        #expect(peer.wire.sent.last!.header.flags.contains(.fin)
                    && peer.wire.sent.last!.header.sequence == fin.sequence, "the FIN again")
        peer.arrive(at: 0, [], acknowledged: 1)
        #expect(peer.connection.state == .finWait2)
        var events = peer.arrive([.fin, .ack], at: 0, [], acknowledged: 1)
        #expect(events.contains(.readable) && peer.connection.consumeFin(now: peer.now))
        #expect(peer.connection.state == .timeWait)
        peer.connection.acknowledge(emit: peer.emit)
        events = peer.arrive([.fin, .ack], at: 0, [], acknowledged: 1)
        #expect(!events.contains(.readable) && !peer.connection.consumeFin(now: peer.now), "delivered once")
        #expect(peer.wire.sent.last!.header.acknowledgment == ScriptedPeer.peerISS &+ 2, "and acknowledged again")
        peer.now += TCPConfiguration().timeWaitTicks / 2
        peer.arrive([.fin, .ack], at: 0, [], acknowledged: 1)
        #expect(peer.connection.nextDeadline == peer.now + TCPConfiguration().timeWaitTicks, "the wait starts over")
        peer.fireTimer()
        #expect(peer.connection.state == .closed && peer.connection.error == nil)
    }

    /// Forged segments against an established connection (RFC 5961, RFC 9293
    /// §3.10.7.4): each is answered with at most an acknowledgment and changes
    /// nothing, and the stream goes on.
    @Test func forgedSegmentsAreAnsweredWithAnAcknowledgmentAndChangeNothing() {
        let peer = ScriptedPeer()
        peer.arrive(at: 0, Array(Self.stream[0..<100]))
        peer.read()
        let evil = Array("EVIL".utf8)
        let forgeries: [(String, TCPFlags, Int, Int, [UInt8], Bool)] = [
            ("data past the window", .ack, 100 + 9000, 0, evil, true),
            ("data long before the window", .ack, 100 - 70000, 0, evil, true),
            ("data acknowledging bytes never sent", .ack, 100, 5000, evil, true),
            ("data acknowledging bytes long before any sent", .ack, 100, -1_000_000, evil, true),
            ("a reset inside the window but not at its edge", .rst, 150, 0, [], true),
            ("a reset with acknowledgment inside the window", [.rst, .ack], 1000, 0, [], true),
            ("a reset outside the window", .rst, 100 + 100_000, 0, [], false),
            ("a SYN", .syn, 100, 0, [], true),
        ]
        for (name, flags, offset, acknowledged, payload, challenged) in forgeries {
            let mark = peer.wire.sent.count
            let events = peer.arrive(flags, at: offset, payload, acknowledged: acknowledged)
            peer.read()
            #expect(events.isEmpty && peer.connection.state == .established, "\(name): \(events.rawValue)")
            let answers = peer.wire.sent[mark...]
            #expect(answers.count == (challenged ? 1 : 0) && answers.allSatisfy {
                $0.header.flags == .ack && $0.payload.isEmpty && $0.header.acknowledgment == ScriptedPeer.peerISS &+ 101
            }, "\(name): \(answers.map(\.header))")
        }
        peer.arrive(at: 100, Array(Self.stream[100..<500]))
        peer.read()
        #expect(peer.delivered == Self.stream)
    }

    /// The peer shuts its window and keeps it shut, answering every probe, for longer
    /// than the retransmission limit: the connection probes with one byte at a time,
    /// at growing intervals, and never gives up (RFC 9293 §3.8.6.1); when the window
    /// opens, the send completes byte-exactly.
    @Test func aWindowShutForLongerThanTheRetransmissionLimitIsProbedNotAbandoned() {
        let peer = ScriptedPeer()
        peer.arrive(at: 0, [], window: 0)
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        data.withUnsafeBytes { peer.connection.queueSend($0, now: peer.now, emit: peer.emit) }
        #expect(peer.dataSegments(from: 0).isEmpty, "nothing goes into a shut window")
        var probeTimes: [UInt64] = []
        for _ in 0..<(TCPConfiguration().maximumRetransmissions + 6) {
            let mark = peer.wire.sent.count
            let events = peer.fireTimer()
            #expect(!events.contains(.closed) && peer.connection.state == .established)
            let sent = peer.dataSegments(from: mark)
            #expect(sent.allSatisfy { $0.payload.count == 1 && $0.header.sequence == ScriptedPeer.localISS &+ 1 },
                    "only one-byte probes of the first byte: \(sent.map(\.payload.count))")
            if !sent.isEmpty { probeTimes.append(peer.now) }
            // The peer's answer to each probe: nothing taken, the window still shut.
            peer.arrive(at: 0, [], acknowledged: 0, window: 0)
        }
        #expect(probeTimes.count >= TCPConfiguration().maximumRetransmissions + 2)
        let gaps = zip(probeTimes.dropFirst(), probeTimes).map { $0 - $1 }
        #expect(zip(gaps.dropFirst(), gaps).allSatisfy { $0 >= $1 }, "intervals never shrink: \(gaps)")
        var received: [UInt8] = []
        var mark = peer.wire.sent.count
        peer.arrive(at: 0, [], acknowledged: 0, window: 65535)
        for _ in 0..<10 where received.count < data.count {
            for segment in peer.dataSegments(from: mark) {
                let offset = Int(segment.header.sequence &- ScriptedPeer.localISS &- 1)
                if offset == received.count { received += segment.payload }
                else if offset < received.count && offset + segment.payload.count > received.count {
                    received += segment.payload[(received.count - offset)...]
                }
            }
            mark = peer.wire.sent.count
            peer.arrive(at: 0, [], acknowledged: received.count, window: 65535)
        }
        #expect(received == data && peer.connection.sendIsComplete)
    }

    /// A server restarted while the peer's window was shut takes the connection up
    /// from its record (window 0), and must still hear the peer open it, wherever the
    /// peer's sequence numbers stand: here in the half of sequence space "before" 0,
    /// where a window-update mark left at 0 would make every segment look older.
    @Test(arguments: [UInt32(0x9000_0000), 0x1000_0000, 0xFFFF_FFF0])
    func aRestoredConnectionHearsThePeerOpenItsWindow(peerSequence: UInt32) {
        let record = TCPRecord(state: .established, localPort: 7, remote: ScriptedPeer.remote, sendNext: 5000,
                               receiveNext: peerSequence, sendWindow: 0, peerMaximumSegmentSize: 1460, sendShift: 0,
                               receiveShift: 0)
        let wire = ScriptedPeer.Wire()
        let emit: TCPConnection.Emit = { wire.sent.append(($0, Array($1))) }
        let connection = TCPConnection.restoring(record)
        let data = (0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 5) }
        data.withUnsafeBytes { connection.queueSend($0, now: 1000, emit: emit) }
        #expect(wire.sent.isEmpty, "the window in the record is shut")
        let update = ScriptedPeer.segment(.ack, sequence: peerSequence, acknowledgment: 5000, window: 65535,
                                          dataLength: 0)
        let events = [UInt8]().withUnsafeBytes { connection.segmentArrived(update, data: $0, now: 2000, emit: emit) }
        #expect(events.contains(.writable) && connection.sendWindow == 65535)
        #expect(wire.sent.reduce(0) { $0 + $1.payload.count } == 2000, "the send goes out at once")
    }

    /// Acknowledgments overtaken by a newer one are not duplicates of it (RFC 5681
    /// §2): three late copies of an older acknowledgment resend nothing.
    @Test func lateOldAcknowledgmentsAreNotDuplicates() {
        let peer = ScriptedPeer()
        let data = (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        data.withUnsafeBytes { peer.connection.queueSend($0, now: peer.now, emit: peer.emit) }
        peer.arrive(at: 0, [], acknowledged: 2920)
        let mark = peer.wire.sent.count
        for _ in 0..<3 { peer.arrive(at: 0, [], acknowledged: 1460) }
        #expect(peer.dataSegments(from: mark).isEmpty, "\(peer.dataSegments(from: mark).map(\.header.sequence))")
        peer.arrive(at: 0, [], acknowledged: 4000)
        #expect(peer.connection.sendIsComplete)
    }
}

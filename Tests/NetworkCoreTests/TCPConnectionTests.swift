// TCPConnection against itself over a simulated link: every segment one side emits
// is built into a real frame (FrameBuilder.tcp), parsed back (TCPSegment.parse, so
// checksums and options are exercised) and delivered to the other side, unless the
// link's schedule drops it. Time is a counter the test advances, so retransmission
// timers fire exactly when the test says.

@testable import NetworkCore
import Testing

/// Two hosts, A (10.0.2.15) and B (10.0.2.2), and the segments in flight between them.
final class Link {
    struct InFlight {
        var toA: Bool
        var frame: [UInt8]
    }

    let a = Interface(mac: MACAddress(rawValue: 0x52_54_00_12_34_56), address: IPv4Address(10, 0, 2, 15),
                      prefixLength: 24, gateway: IPv4Address(10, 0, 2, 2))
    let b = Interface(mac: MACAddress(rawValue: 0x02_00_00_00_00_02), address: IPv4Address(10, 0, 2, 2),
                      prefixLength: 24, gateway: IPv4Address(10, 0, 2, 2))
    var queue: [InFlight] = []
    /// Drops the Nth segment sent (counting from 0) when it says so.
    var drop: (Int, TCPSegmentHeader) -> Bool = { _, _ in false }
    var sent = 0
    var segmentsSent: [TCPSegmentHeader] = []
    var now: UInt64 = 1_000_000

    /// An `emit` for the side at `from`.
    func emitter(fromA: Bool) -> TCPConnection.Emit {
        { header, payload in
            let index = self.sent
            self.sent += 1
            self.segmentsSent.append(header)
            if self.drop(index, header) { return }
            var frame = [UInt8](repeating: 0, count: 1514)
            let source = fromA ? self.a : self.b
            let destination = fromA ? self.b : self.a
            let length = frame.withUnsafeMutableBytes {
                FrameBuilder.tcp(into: $0, from: source, toMAC: destination.mac, to: destination.address,
                                 header: header, payload: payload, ipIdentification: 1)
            }
            guard let length else {
                Issue.record("a segment did not fit a frame")
                return
            }
            self.queue.append(InFlight(toA: !fromA, frame: Array(frame[0..<length])))
        }
    }

    /// Delivers everything in flight (and what the answers emit) to `a` and `b`;
    /// returns the events each saw.
    @discardableResult
    func run(_ connectionA: TCPConnection, _ connectionB: TCPConnection?, listenerB: ((TCPSegment) -> TCPConnection?)? = nil)
        -> (a: TCPEvents, b: TCPEvents) {
        var eventsA: TCPEvents = []
        var eventsB: TCPEvents = []
        var b = connectionB
        var rounds = 0
        while !queue.isEmpty && rounds < 10_000 {
            rounds += 1
            let next = queue.removeFirst()
            next.frame.withUnsafeBytes { frame in
                guard case .tcp(_, let source, let destination, let offset, let length)
                        = FrameParser.classify(frame, for: next.toA ? a : self.b),
                      let segment = TCPSegment.parse(frame, offset: offset, length: length, source: source,
                                                     destination: destination) else {
                    Issue.record("a frame the link carried did not parse")
                    return
                }
                let data = UnsafeRawBufferPointer(rebasing: frame[segment.dataOffset..<segment.dataOffset + segment.dataLength])
                if next.toA {
                    eventsA.formUnion(connectionA.segmentArrived(segment, data: data, now: now,
                                                                 emit: emitter(fromA: true)))
                } else if let target = b {
                    eventsB.formUnion(target.segmentArrived(segment, data: data, now: now, emit: emitter(fromA: false)))
                } else if let listenerB, let accepted = listenerB(segment) {
                    b = accepted
                }
            }
        }
        return (eventsA, eventsB)
    }

    /// Advances the clock by `ticks` and fires both sides' timers.
    func advance(_ ticks: UInt64, _ connections: TCPConnection...) {
        now += ticks
        for (index, connection) in connections.enumerated() {
            _ = connection.timerFired(now: now, emit: emitter(fromA: index == 0))
        }
    }
}

@Suite struct TCPConnectionTests {
    static let portA: UInt16 = 49152
    static let portB: UInt16 = 80

    /// A connected pair: A opened actively, B passively; the handshake has run.
    func connectedPair(_ link: Link, configuration: TCPConfiguration = TCPConfiguration()) -> (TCPConnection, TCPConnection) {
        let a = TCPConnection.connecting(localPort: Self.portA, to: Endpoint(address: link.b.address.rawValue, port: Self.portB),
                                         iss: 0xFFFF_FF00, now: link.now, configuration: configuration,
                                         emit: link.emitter(fromA: true))
        var b: TCPConnection?
        link.run(a, nil) { syn in
            let accepted = TCPConnection.accepting(syn, localPort: Self.portB,
                                                   from: Endpoint(address: link.a.address.rawValue, port: Self.portA),
                                                   iss: 1000, now: link.now, configuration: configuration,
                                                   emit: link.emitter(fromA: false))
            b = accepted
            return accepted
        }
        guard let b else { fatalError("no SYN reached B") }
        link.run(a, b)
        return (a, b)
    }

    func bytes(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ $0 >> 8) }
    }

    /// Everything B can deliver, delivered and acknowledged.
    func drain(_ b: TCPConnection, _ link: Link, into received: inout [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while b.receivedCount > 0 {
            let count = buffer.withUnsafeMutableBytes { b.deliver(into: $0) }
            received += buffer[0..<count]
            b.acknowledge(emit: link.emitter(fromA: false))
        }
    }

    @Test func theHandshakeNegotiatesMSSAndWindowScaleAndEstablishesBothSides() {
        let link = Link()
        let (a, b) = connectedPair(link)
        #expect(a.state == .established && b.state == .established)
        #expect(link.segmentsSent[0].flags == [.syn] && link.segmentsSent[0].maximumSegmentSize == 1460)
        #expect(link.segmentsSent[0].windowShift == 0)
        #expect(link.segmentsSent[1].flags == [.syn, .ack] && link.segmentsSent[1].acknowledgment == 0xFFFF_FF01)
        #expect(link.segmentsSent[2].flags == [.ack] && link.segmentsSent[2].acknowledgment == 1001)
        #expect(a.sendUnacknowledged == 0xFFFF_FF01 && b.receiveNext == 0xFFFF_FF01)
        #expect(b.sendUnacknowledged == 1001 && a.receiveNext == 1001)
        #expect(a.nextDeadline == nil && b.nextDeadline == nil, "nothing outstanding")
    }

    /// 4 KiB sends across the 2^32 wrap of A's sequence numbers, each completed only
    /// when B acknowledges it, which B does only as it delivers.
    @Test func sendsCompleteOnlyWhenDeliveredAndAcknowledged() {
        let link = Link()
        let (a, b) = connectedPair(link)
        var received: [UInt8] = []
        var expected: [UInt8] = []
        for round in 0..<6 {
            let data = bytes(4096 - round * 333, seed: round)
            expected += data
            data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
            let (eventsA, eventsB) = link.run(a, b)
            #expect(eventsB.contains(.readable))
            #expect(!eventsA.contains(.sendCompleted) && !a.sendIsComplete, "not acknowledged before delivery")
            drain(b, link, into: &received)
            let after = link.run(a, b)
            #expect(after.a.contains(.sendCompleted) && a.sendIsComplete)
            #expect(a.finishSend() == data.count)
        }
        #expect(received == expected)
        #expect(a.sendUnacknowledged == 0xFFFF_FF01 &+ UInt32(expected.count))
    }

    @Test func aLostSegmentIsRetransmittedAfterTheTimeout() {
        let link = Link()
        let (a, b) = connectedPair(link)
        let data = bytes(3000, seed: 9)
        var dropped = false
        link.drop = { _, header in
            guard !dropped, header.sequence == 0xFFFF_FF01 &+ 1460 else { return false }
            dropped = true
            return true
        }
        data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        #expect(dropped && b.receivedCount == 1460, "the second segment was lost")
        #expect(a.nextDeadline != nil)
        var received: [UInt8] = []
        drain(b, link, into: &received)
        link.run(a, b)
        for _ in 0..<4 where !a.sendIsComplete {
            link.advance(TCPConfiguration().ticksPerSecond, a, b)
            link.run(a, b)
            drain(b, link, into: &received)
            link.run(a, b)
        }
        #expect(received == data && a.sendIsComplete)
    }

    @Test func threeDuplicateAcknowledgmentsTriggerFastRetransmission() {
        var configuration = TCPConfiguration()
        configuration.receiveCapacity = 16384
        let link = Link()
        let (a, b) = connectedPair(link, configuration: configuration)
        // The first of three segments is lost; the next two make B repeat its ack.
        let data = bytes(4096, seed: 3)
        var dropped = false
        link.drop = { _, header in
            guard !dropped, !header.flags.contains(.syn), header.sequence == 0xFFFF_FF01 else { return false }
            dropped = true
            return true
        }
        data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        // Two duplicates came from the two later segments; one more (a window update
        // would not count) and A resends without waiting for its timer.
        b.acknowledge(emit: link.emitter(fromA: false))
        link.run(a, b)
        var received: [UInt8] = []
        drain(b, link, into: &received)
        link.run(a, b)
        #expect(received.count >= 1460 && Array(received.prefix(1460)) == Array(data.prefix(1460)),
                "resent at the third duplicate, before any timer")
    }

    @Test func gracefulCloseFromBothSidesEndsInTimeWaitAndClosed() {
        let link = Link()
        let (a, b) = connectedPair(link)
        a.queueFin(now: link.now, emit: link.emitter(fromA: true))
        #expect(a.state == .finWait1)
        let first = link.run(a, b)
        #expect(first.a.contains(.finAcknowledged) == false, "B acknowledges the FIN only when delivered")
        #expect(b.finPending && first.b.contains(.readable))
        #expect(b.consumeFin(now: link.now) && b.state == .closeWait)
        b.acknowledge(emit: link.emitter(fromA: false))
        let second = link.run(a, b)
        #expect(second.a.contains(.finAcknowledged) && a.state == .finWait2)
        b.queueFin(now: link.now, emit: link.emitter(fromA: false))
        #expect(b.state == .lastAck)
        link.run(a, b)
        #expect(a.finPending && a.consumeFin(now: link.now) && a.state == .timeWait)
        a.acknowledge(emit: link.emitter(fromA: true))
        let third = link.run(a, b)
        #expect(third.b.contains(.closed) && b.state == .closed && b.error == nil)
        link.advance(TCPConfiguration().timeWaitTicks + 1, a)
        #expect(a.state == .closed)
    }

    @Test func aResetEndsTheConnectionWithConnectionReset() {
        let link = Link()
        let (a, b) = connectedPair(link)
        b.abort(emit: link.emitter(fromA: false))
        let events = link.run(a, b)
        #expect(events.a.contains(.closed) && a.state == .closed && a.error == .connectionReset)
    }

    @Test func aConnectionToNobodyIsRefused() {
        let link = Link()
        let a = TCPConnection.connecting(localPort: Self.portA, to: Endpoint(address: link.b.address.rawValue, port: 9),
                                         iss: 5, now: link.now, emit: link.emitter(fromA: true))
        link.run(a, nil) { syn in
            TCPConnection.reset(answering: syn, emit: link.emitter(fromA: false))
            return nil
        }
        #expect(a.state == .closed && a.error == .connectionRefused)
    }

    @Test func retransmissionGivesUpAfterTheLimit() {
        let link = Link()
        let (a, _) = connectedPair(link)
        link.drop = { _, _ in true }
        let data = bytes(100, seed: 1)
        data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        var events: TCPEvents = []
        for _ in 0..<40 where !events.contains(.closed) {
            link.now = a.nextDeadline ?? link.now
            events = a.timerFired(now: link.now, emit: link.emitter(fromA: true))
        }
        #expect(a.state == .closed && a.error == .connectionTimedOut)
    }

    /// The SSR rule: a server that restarts from B's record (taken at its last reply)
    /// while A's send is in flight loses nothing — A retransmits, the restored B
    /// accepts, and the bytes B had delivered before are not delivered twice.
    @Test func aConnectionRestoredFromItsRecordGoesOnWithoutLossOrDuplication() {
        let link = Link()
        let (a, b) = connectedPair(link)
        var received: [UInt8] = []
        let first = bytes(2000, seed: 1)
        first.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        drain(b, link, into: &received)
        link.run(a, b)
        _ = a.finishSend()
        let committed = b.record
        // The next send reaches B but B "crashes" before delivering it.
        let second = bytes(3000, seed: 2)
        second.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        #expect(b.receivedCount == 3000 && !a.sendIsComplete)
        let restored = TCPConnection.restoring(committed)
        #expect(restored.receiveNext == committed.receiveNext && restored.state == .established)
        link.advance(TCPConfiguration().ticksPerSecond, a)
        link.run(a, restored)
        drain(restored, link, into: &received)
        link.run(a, restored)
        // A's retransmission delivered the first segment; the rest follow as its window reopens.
        for _ in 0..<6 where !a.sendIsComplete {
            link.advance(TCPConfiguration().ticksPerSecond, a)
            link.run(a, restored)
            drain(restored, link, into: &received)
            link.run(a, restored)
        }
        #expect(a.sendIsComplete, "A: una \(a.sendUnacknowledged) nxt \(a.sendNext) wnd \(a.sendWindow) cwnd \(a.congestionWindow); B: rcvnxt \(restored.receiveNext) waiting \(restored.receivedCount); received \(received.count)")
        #expect(received == first + second)
    }

    @Test func aLostReceiveReplyIsRewoundAndTheBytesComeAgain() {
        let link = Link()
        let (a, b) = connectedPair(link)
        let data = bytes(1000, seed: 4)
        data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        let before = b.receiveNext
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = buffer.withUnsafeMutableBytes { b.deliver(into: $0) }
        // The reply is lost: no acknowledgment went out, and the client still expects `before`.
        #expect(b.rewindReceive(to: before) && b.receiveNext == before && b.receivedCount == 0)
        #expect(!b.rewindReceive(to: before &- 5000), "no single lost reply reaches that far back")
        link.advance(TCPConfiguration().ticksPerSecond, a)
        link.run(a, b)
        var received: [UInt8] = []
        drain(b, link, into: &received)
        link.run(a, b)
        #expect(received == data && a.sendIsComplete)
    }

    @Test func aShutWindowIsProbedAndTheSendGoesOnWhenItOpens() {
        var small = TCPConfiguration()
        small.receiveCapacity = 1000
        let link = Link()
        let (a, b) = connectedPair(link, configuration: small)
        let data = bytes(3000, seed: 8)
        data.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, b)
        #expect(b.receivedCount == 1000, "the window holds 1000 bytes")
        var received: [UInt8] = []
        for _ in 0..<20 where received.count < 3000 {
            drain(b, link, into: &received)
            link.run(a, b)
            link.advance(TCPConfiguration().ticksPerSecond, a, b)
            link.run(a, b)
        }
        #expect(received == data && a.sendIsComplete)
    }

    /// A server that crashed after answering a SYN knows nothing of the handshake: the
    /// peer's acknowledgment carries the cookie back, and the connection is rebuilt
    /// with what the SYN said, its data taken in order.
    @Test func aHandshakeTheServerForgotIsRebuiltFromItsCookie() {
        let link = Link()
        let key: UInt64 = 0x1234_5678_9ABC_DEF1
        let remote = Endpoint(address: link.a.address.rawValue, port: Self.portA)
        let a = TCPConnection.connecting(localPort: Self.portA, to: Endpoint(address: link.b.address.rawValue, port: Self.portB),
                                         iss: 77, now: link.now, emit: link.emitter(fromA: true))
        var forgotten: TCPConnection?
        link.run(a, nil) { syn in
            let iss = SynCookie.make(key: key, localPort: Self.portB, remote: remote,
                                     slot: SynCookie.slot(at: link.now, ticksPerSecond: 10_000_000),
                                     maximumSegmentSize: syn.maximumSegmentSize, windowShift: syn.windowShift)
            forgotten = TCPConnection.accepting(syn, localPort: Self.portB, from: remote, iss: iss, now: link.now,
                                                emit: link.emitter(fromA: false))
            return forgotten
        }
        #expect(a.state == .established && forgotten != nil)
        // The server "crashes": forgotten is gone. A sends its request.
        let request = bytes(300, seed: 6)
        var rebuilt: TCPConnection?
        request.withUnsafeBytes { a.queueSend($0, now: link.now, emit: link.emitter(fromA: true)) }
        link.run(a, nil) { segment in
            guard let cookie = SynCookie.check(segment.acknowledgment &- 1, key: key, localPort: Self.portB,
                                               remote: remote, now: link.now, ticksPerSecond: 10_000_000) else {
                Issue.record("the cookie did not check")
                return nil
            }
            #expect(cookie.maximumSegmentSize == 1460 && cookie.windowShift == 0)
            let connection = TCPConnection.rebuilding(from: segment, cookie: cookie, localPort: Self.portB, remote: remote)
            rebuilt = connection
            return nil
        }
        guard let b = rebuilt else { return }
        #expect(b.state == .established && b.receiveNext == 78 && b.sendUnacknowledged == forgotten!.sendUnacknowledged)
        // A retransmits (nothing was acknowledged); the rebuilt side takes it in order.
        link.advance(TCPConfiguration().ticksPerSecond, a)
        link.run(a, b)
        var received: [UInt8] = []
        drain(b, link, into: &received)
        link.run(a, b)
        #expect(received == request && a.sendIsComplete)
    }

    @Test func aCookieChecksOnlyForItsKeyEndpointsAndTime() {
        let remote = Endpoint(address: 0x0A00_0202, port: 40000)
        let ticks: UInt64 = 10_000_000
        let now: UInt64 = 1_000 * ticks
        let slot = SynCookie.slot(at: now, ticksPerSecond: ticks)
        let cookie = SynCookie.make(key: 9, localPort: 80, remote: remote, slot: slot, maximumSegmentSize: 1300,
                                    windowShift: 7)
        #expect(SynCookie.check(cookie, key: 9, localPort: 80, remote: remote, now: now, ticksPerSecond: ticks)
                == SynCookie(maximumSegmentSize: 1220, windowShift: 7))
        #expect(SynCookie.check(cookie, key: 9, localPort: 80, remote: remote, now: now + 64 * ticks,
                                ticksPerSecond: ticks) != nil, "the next slot still takes it")
        #expect(SynCookie.check(cookie, key: 9, localPort: 80, remote: remote, now: now + 128 * ticks,
                                ticksPerSecond: ticks) == nil, "two slots later it has expired")
        #expect(SynCookie.check(cookie, key: 10, localPort: 80, remote: remote, now: now, ticksPerSecond: ticks) == nil)
        #expect(SynCookie.check(cookie, key: 9, localPort: 81, remote: remote, now: now, ticksPerSecond: ticks) == nil)
        #expect(SynCookie.check(cookie, key: 9, localPort: 80, remote: Endpoint(address: 0x0A00_0202, port: 40001),
                                now: now, ticksPerSecond: ticks) == nil)
        #expect(SynCookie.check(cookie ^ 1 << 22, key: 9, localPort: 80, remote: remote, now: now,
                                ticksPerSecond: ticks) == nil, "the options are under the hash")
        let plain = SynCookie.make(key: 9, localPort: 80, remote: remote, slot: slot, maximumSegmentSize: nil,
                                   windowShift: nil)
        #expect(SynCookie.check(plain, key: 9, localPort: 80, remote: remote, now: now, ticksPerSecond: ticks)
                == SynCookie(maximumSegmentSize: 536, windowShift: nil))
    }

    @Test func aRetransmittedSYNGetsTheSYNAckAgain() {
        let link = Link()
        var lostOnce = false
        link.drop = { _, header in
            guard !lostOnce, header.flags == [.syn, .ack] else { return false }
            lostOnce = true
            return true
        }
        let a = TCPConnection.connecting(localPort: Self.portA, to: Endpoint(address: link.b.address.rawValue, port: Self.portB),
                                         iss: 500, now: link.now, emit: link.emitter(fromA: true))
        var b: TCPConnection?
        link.run(a, nil) { syn in
            b = TCPConnection.accepting(syn, localPort: Self.portB,
                                        from: Endpoint(address: link.a.address.rawValue, port: Self.portA), iss: 9000,
                                        now: link.now, emit: link.emitter(fromA: false))
            return b
        }
        #expect(lostOnce && a.state == .synSent)
        link.advance(TCPConfiguration().ticksPerSecond, a)
        link.run(a, b)
        #expect(a.state == .established && b?.state == .established)
        #expect(link.segmentsSent.filter { $0.flags == [.syn, .ack] }.count >= 2)
    }
}

// The test's own end of one TCP connection to the guest, over NetworkPeer: as much of
// RFC 9293 as a test needs and nothing of Curio's, so that it can also step outside
// the protocol on purpose (HostileTCPTests forge segments beside it).
//
// It is a deliberately simple endpoint. It acknowledges every segment that carries
// data or a FIN at once, keeps only in-order bytes (anything else is answered with a
// duplicate acknowledgment), and retransmits go-back-N from the guest's last
// acknowledgment whenever the guest falls silent. Its window is either fully open or,
// when a test shuts it, zero: then it takes no byte at all, as a receiver whose
// buffer is full, and answers each of the guest's probes with the same shut window.

import Foundation

final class PeerTCP {
    let peer: NetworkPeer
    let guestMAC: [UInt8]
    let localPort: Int
    let guestPort: Int
    let initialSequence: UInt32
    /// Every byte this end sent, in order: byte k has sequence number initialSequence + 1 + k.
    private(set) var stream: [UInt8] = []
    /// How many of them the guest acknowledged.
    private(set) var acknowledged = 0
    /// The guest's next sequence number expected, and every byte taken from it, in order.
    private(set) var receiveNext: UInt32 = 0
    private(set) var received: [UInt8] = []
    private(set) var finReceived = false
    /// Our FIN is sent: it follows the stream and takes one sequence number.
    private(set) var finSent = false
    private(set) var resetReceived = false
    /// The window advertised: open (65535) or shut (0).
    var window = 65535
    /// Every segment of this connection the guest sent, in arrival order.
    private(set) var log: [NetworkPeer.Segment] = []

    var sendNext: UInt32 { initialSequence &+ 1 &+ UInt32(stream.count) &+ (finSent ? 1 : 0) }

    /// By default the stream starts 4 KiB before the wrap, and crosses 2^32 after its
    /// first round trips.
    init(peer: NetworkPeer, guestMAC: [UInt8], localPort: Int, guestPort: Int,
         initialSequence: UInt32 = 0xFFFF_F000) {
        self.peer = peer
        self.guestMAC = guestMAC
        self.localPort = localPort
        self.guestPort = guestPort
        self.initialSequence = initialSequence
    }

    /// Sends one segment of this connection as given, however wrong.
    func send(flags: UInt8, sequence: UInt32, acknowledgment: UInt32, payload: [UInt8] = [], options: [UInt8]? = nil,
              headerWords: Int? = nil) {
        peer.send(NetworkPeer.ipv4Frame(to: guestMAC, protocol: 6, payload: NetworkPeer.tcpSegment(
            from: localPort, to: guestPort, sequence: sequence, acknowledgment: acknowledgment, flags: flags,
            payload: payload, window: window, options: options, headerWords: headerWords)))
    }

    func acknowledge() { send(flags: 0x10, sequence: sendNext, acknowledgment: receiveNext) }

    /// SYN (with MSS 1460), the guest's SYN-ACK, ACK; false if no SYN-ACK came.
    func connect(attempts: Int = 5) -> Bool {
        for _ in 0..<attempts {
            send(flags: 0x02, sequence: initialSequence, acknowledgment: 0)
            let synAck = next(timeout: 3) { $0.flags & 0x12 == 0x12 }
            if let synAck, synAck.acknowledgment == initialSequence &+ 1 {
                receiveNext = synAck.sequence &+ 1
                acknowledge()
                return true
            }
        }
        return false
    }

    /// The next segment of this connection for which `accept` holds, within `timeout`
    /// seconds; every segment on the way is taken in (data, acknowledgment, FIN, RST)
    /// and answered as the file's essay says.
    @discardableResult
    func next(timeout: TimeInterval, _ accept: (NetworkPeer.Segment) -> Bool = { _ in true }) -> NetworkPeer.Segment? {
        let deadline = Date().addingTimeInterval(timeout)
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            let frame = peer.await(timeout: left) { frame in
                guard let segment = NetworkPeer.tcpSegment(in: frame) else { return false }
                return segment.sourcePort == guestPort && segment.destinationPort == localPort
            }
            guard let frame, let segment = NetworkPeer.tcpSegment(in: frame) else { return nil }
            take(segment)
            if accept(segment) { return segment }
        }
        return nil
    }

    private func take(_ segment: NetworkPeer.Segment) {
        log.append(segment)
        if segment.flags & 0x04 != 0 {
            resetReceived = true
            return
        }
        if segment.flags & 0x10 != 0 {
            let offset = Int(Int32(bitPattern: segment.acknowledgment &- initialSequence &- 1))
            if offset > acknowledged && offset <= stream.count { acknowledged = offset }
        }
        guard segment.flags & 0x02 == 0 else { return }
        let carries = !segment.payload.isEmpty || segment.flags & 0x01 != 0
        if window > 0 && segment.sequence == receiveNext {
            received += segment.payload
            receiveNext = receiveNext &+ UInt32(segment.payload.count)
            if segment.flags & 0x01 != 0 && !finReceived {
                finReceived = true
                receiveNext = receiveNext &+ 1
            }
        } else if window > 0 && !segment.payload.isEmpty,
                  case let behind = Int(Int32(bitPattern: receiveNext &- segment.sequence)),
                  behind > 0, behind < segment.payload.count {
            // A retransmission that overlaps what we have: take the new part.
            received += segment.payload[behind...]
            receiveNext = segment.sequence &+ UInt32(segment.payload.count)
        }
        if carries { acknowledge() }
    }

    /// Appends `data` to the stream and sends it, in segments of at most 1000 bytes.
    func write(_ data: [UInt8]) {
        let start = stream.count
        stream += data
        send(from: start)
    }

    /// Sends again what the guest has not acknowledged.
    func retransmit() { send(from: acknowledged) }

    private func send(from offset: Int) {
        for start in stride(from: offset, to: stream.count, by: 1000) {
            let end = min(start + 1000, stream.count)
            send(flags: 0x18, sequence: initialSequence &+ 1 &+ UInt32(start), acknowledgment: receiveNext,
                 payload: Array(stream[start..<end]))
        }
    }

    /// Sends our FIN after the whole stream (again, if called again).
    func sendFin() {
        finSent = true
        send(flags: 0x11, sequence: sendNext &- 1, acknowledgment: receiveNext)
    }

    /// Counts `data` as sent without sending it (the test sends it itself, cut up
    /// its own way).
    func account(_ data: [UInt8]) { stream += data }

    /// Waits until the guest has acknowledged everything and sent `count` bytes in all
    /// (or `timeout` seconds passed); in every second of silence, sends again what
    /// it has not acknowledged, and a window update.
    func exchange(untilReceived count: Int, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while (received.count < count || acknowledged < stream.count) && !resetReceived && Date() < deadline {
            if next(timeout: 1) == nil {
                retransmit()
                acknowledge()
            }
        }
        return received.count >= count && acknowledged == stream.count
    }

    /// Reads segments until `quiet` seconds pass without one.
    func settle(quiet: TimeInterval = 0.5) {
        while next(timeout: quiet) != nil {}
    }
}

// One TCP connection's state machine (RFC 9293), with retransmission (RFC 6298),
// congestion control with fast retransmit and recovery (RFC 5681), window scaling
// (RFC 7323) and zero-window probes, and the rule that lets a connection outlive a
// crash of the server that runs it.
//
// What lives where. The paper asks that a socket's state live in its client's SSR and
// that a crash of the network server cost no more than packet loss. The SSR is written
// only when the server answers the client, so the connection keeps, in the SSR, just
// what a restarted server needs to go on (TCPRecord: the state, the endpoints, the
// next sequence number each way, the peer's MSS, window and scale) and arranges that
// everything else may be lost:
//
//   - Bytes the client sends. A send is answered only when the peer has acknowledged
//     every byte of it; until then the bytes are in the client's held request, which
//     the kernel delivers again to a restarted server. So the unacknowledged bytes
//     are always those of the one send in progress (`sendBuffer`, a copy for
//     retransmission), and the SSR's `sendNext` is where that send begins.
//   - Bytes the peer sends. They are acknowledged only once delivered to the client
//     (the receive reply committed, and sent): the acknowledgment number the peer sees
//     is `receiveNext`, which counts delivered bytes. Bytes that arrived but were not
//     delivered sit unacknowledged in `receiveBuffer`; a crash loses them and the peer
//     sends them again, as it would after any loss.
//   - Everything else — round-trip estimates, the congestion window, timers, the
//     handshake of a connection nobody accepted yet — is the server's, and is
//     rebuilt (or, for an unaccepted handshake, lost: the peer's next segment is
//     answered with a reset, as for any connection the host does not know).
//
// The price of that rule is visible, and documented: a sender's window is one send
// (4 KiB) per round trip, and the window the peer sees reopens only as the client
// reads.
//
// Out of order. A segment that arrives beyond a gap (one before it was lost, or is
// late) is kept at its place in the receive buffer, and its range of sequence space
// noted (`heldRanges`, at most four, in order and apart; a FIN after them is noted
// too); each is answered with a duplicate acknowledgment, so that the peer's fast
// retransmit sends the missing segment. When that arrives, everything held that now
// follows on without a gap joins the bytes waiting for the client, and the next
// acknowledgment covers them all, so the peer need not send them again. Held bytes
// are no more acknowledged than the waiting ones, and a crash loses them the same
// way. A fifth gap is not held: that segment is dropped, as a full queue drops.
//
//   receive buffer (a ring of receiveCapacity bytes from receiveHead):
//
//   receiveNext         receiveEnd            held range          held range
//   |-- waiting (receivedCount) --|.. gap ..|=== bytes ===|.. gap ..|=== bytes ===|
//   ^ the client reads from here                 window: receiveNext + receiveCapacity
//
// Sequence numbers are compared modulo 2^32 (`isBefore`). Times are clock ticks.

/// RFC 9293's connection states; the raw values are what the SSR and netstat hold.
public enum TCPState: UInt8, Sendable, CaseIterable {
    case closed = 0
    case listen = 1
    case synSent = 2
    case synReceived = 3
    case established = 4
    case finWait1 = 5
    case finWait2 = 6
    case closeWait = 7
    case closing = 8
    case lastAck = 9
    case timeWait = 10

    public var name: StaticString {
        switch self {
        case .closed: "CLOSED"
        case .listen: "LISTEN"
        case .synSent: "SYN-SENT"
        case .synReceived: "SYN-RECEIVED"
        case .established: "ESTABLISHED"
        case .finWait1: "FIN-WAIT-1"
        case .finWait2: "FIN-WAIT-2"
        case .closeWait: "CLOSE-WAIT"
        case .closing: "CLOSING"
        case .lastAck: "LAST-ACK"
        case .timeWait: "TIME-WAIT"
        }
    }

    /// The handshake is done and the connection not yet gone: data may flow.
    public var isSynchronized: Bool {
        switch self {
        case .established, .finWait1, .finWait2, .closeWait, .closing, .lastAck, .timeWait: true
        case .closed, .listen, .synSent, .synReceived: false
        }
    }

    /// Our FIN has not been queued: the client may still send.
    public var maySend: Bool { self == .established || self == .closeWait }
}

/// What changed in a connection, for the server to act on (answer held requests).
public struct TCPEvents: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The handshake completed.
    public static let established = TCPEvents(rawValue: 1 << 0)
    /// Bytes, or the peer's FIN, are ready to be delivered.
    public static let readable = TCPEvents(rawValue: 1 << 1)
    /// Every byte of the send in progress is acknowledged.
    public static let sendCompleted = TCPEvents(rawValue: 1 << 2)
    /// Our FIN is acknowledged.
    public static let finAcknowledged = TCPEvents(rawValue: 1 << 3)
    /// The connection failed (`error` says how) or closed for good.
    public static let closed = TCPEvents(rawValue: 1 << 4)
    /// The peer opened its window: a send may go on.
    public static let writable = TCPEvents(rawValue: 1 << 5)
}

public struct TCPConfiguration: Sendable {
    /// Our MSS: an Ethernet MTU less the IP and TCP headers.
    public var maximumSegmentSize = 1460
    /// Bytes the peer may send beyond the last delivered one.
    public var receiveCapacity = 8192
    public var ticksPerSecond: UInt64 = 10_000_000
    public var maximumRetransmissions = 10
    /// 2 MSL. RFC 9293 suggests 2 minutes for MSL; a host that reuses few ports
    /// and whose peers are this close can afford far less.
    public var timeWaitTicks: UInt64 = 20_000_000

    public init() {}

    var initialRTO: UInt64 { ticksPerSecond }
    /// RFC 6298 says 1 s; like most stacks, we take less (200 ms).
    var minimumRTO: UInt64 { ticksPerSecond / 5 }
    var maximumRTO: UInt64 { ticksPerSecond * 60 }
}

/// What the SSR keeps of a connection (see the file's essay).
public struct TCPRecord: Equatable, Sendable {
    public var state: TCPState
    public var localPort: UInt16
    public var remote: Endpoint
    /// The next sequence number to send: every byte before it is acknowledged.
    public var sendNext: UInt32
    /// The next sequence number expected: every byte before it was delivered.
    public var receiveNext: UInt32
    public var sendWindow: UInt32
    public var peerMaximumSegmentSize: UInt16
    public var sendShift: UInt8
    public var receiveShift: UInt8

    public init(state: TCPState, localPort: UInt16, remote: Endpoint, sendNext: UInt32, receiveNext: UInt32,
                sendWindow: UInt32, peerMaximumSegmentSize: UInt16, sendShift: UInt8, receiveShift: UInt8) {
        self.state = state
        self.localPort = localPort
        self.remote = remote
        self.sendNext = sendNext
        self.receiveNext = receiveNext
        self.sendWindow = sendWindow
        self.peerMaximumSegmentSize = peerMaximumSegmentSize
        self.sendShift = sendShift
        self.receiveShift = receiveShift
    }
}

/// `a` comes before `b` in sequence space.
@inline(__always) func isBefore(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }
@inline(__always) func isAtOrBefore(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) <= 0 }

public final class TCPConnection {
    public typealias Emit = (TCPSegmentHeader, UnsafeRawBufferPointer) -> Void

    public let localPort: UInt16
    public let remote: Endpoint
    public private(set) var state: TCPState
    public private(set) var error: NetworkError?
    let configuration: TCPConfiguration

    // Send side.
    public private(set) var initialSendSequence: UInt32
    public private(set) var sendUnacknowledged: UInt32
    public private(set) var sendNext: UInt32
    /// The highest sequence number sent so far: after a retransmission timeout sends
    /// again from `sendUnacknowledged`, acknowledgments up to here are still good.
    var sendMaximum: UInt32
    /// The peer's window, in bytes (scaled).
    public private(set) var sendWindow: UInt32
    /// The largest window the peer ever offered (RFC 5961's MAX.SND.WND), at least
    /// 64 KiB: how far behind the first unacknowledged byte an acknowledgment may be
    /// and still be taken as a late one rather than a forged one.
    var largestSendWindow: UInt32 = 65535
    var sendWindowUpdateSequence: UInt32 = 0
    var sendWindowUpdateAcknowledgment: UInt32 = 0
    /// The shift of the peer's windows, and of ours (0 unless both sides sent the option).
    public private(set) var sendShift: UInt8 = 0
    public private(set) var receiveShift: UInt8 = 0
    /// Whether the peer's SYN carried the window scale option (we answer it in kind).
    var receivedWindowScaleOption = false
    public private(set) var peerMaximumSegmentSize: Int
    /// The bytes of the send in progress; `sendStart` is the sequence number of the first.
    let sendBuffer: UnsafeMutableRawPointer
    public static let sendBufferBytes = 4096
    var sendStart: UInt32 = 0
    public private(set) var sendCount = 0
    /// A FIN is queued (shutdown or close); `finSequence` once it is sent.
    public private(set) var finQueued = false
    var finSequence: UInt32?

    // Receive side.
    public private(set) var initialReceiveSequence: UInt32 = 0
    /// Every byte before it was delivered (and may be acknowledged).
    public private(set) var receiveNext: UInt32 = 0
    let receiveBuffer: UnsafeMutableRawPointer
    var receiveHead = 0
    /// Bytes that arrived in order and wait for the client (unacknowledged).
    public private(set) var receivedCount = 0
    /// The peer's FIN follows the waiting bytes.
    public private(set) var finPending = false
    var finDelivered = false
    /// Bytes that arrived beyond a gap, kept at their place in `receiveBuffer`: ranges
    /// of sequence space after `receiveEnd`, in order and apart (see "Out of order").
    public private(set) var heldRanges: [(start: UInt32, end: UInt32)] = []
    public static let maximumHeldRanges = 4
    /// Where the peer's FIN lies, if it arrived after held bytes, beyond a gap.
    var heldFin: UInt32?

    // Timers and estimates.
    var retransmissionTimeout: UInt64
    var smoothedRTT: UInt64 = 0
    var rttVariance: UInt64 = 0
    var timedSegment: (sequence: UInt32, sentAt: UInt64)?
    var retransmitDeadline: UInt64?
    var retransmissions = 0
    var duplicateAcknowledgments = 0
    var persistDeadline: UInt64?
    /// Zero-window probes sent since the peer last acknowledged anything.
    var unansweredProbes = 0
    var timeWaitDeadline: UInt64?
    var congestionWindow: Int
    var slowStartThreshold = Int.max
    var inFastRecovery = false
    /// A restored connection may hear acknowledgments of bytes it sent before the
    /// crash: those of the send in progress are taken (see `acknowledge`).
    var restored = false
    /// Counters for netstat.
    public private(set) var bytesSent: UInt64 = 0
    public private(set) var bytesReceived: UInt64 = 0

    init(localPort: UInt16, remote: Endpoint, state: TCPState, initialSendSequence: UInt32,
         configuration: TCPConfiguration) {
        self.localPort = localPort
        self.remote = remote
        self.state = state
        self.configuration = configuration
        self.initialSendSequence = initialSendSequence
        sendUnacknowledged = initialSendSequence
        sendNext = initialSendSequence
        sendMaximum = initialSendSequence
        sendWindow = 0
        peerMaximumSegmentSize = 536
        retransmissionTimeout = configuration.initialRTO
        congestionWindow = 10 * configuration.maximumSegmentSize
        sendBuffer = UnsafeMutableRawPointer.allocate(byteCount: Self.sendBufferBytes, alignment: 8)
        receiveBuffer = UnsafeMutableRawPointer.allocate(byteCount: configuration.receiveCapacity, alignment: 8)
    }

    deinit {
        sendBuffer.deallocate()
        receiveBuffer.deallocate()
    }

    /// A passive open: `syn` arrived for a listening port. Answers SYN-ACK.
    public static func accepting(_ syn: TCPSegment, localPort: UInt16, from remote: Endpoint, iss: UInt32,
                                 now: UInt64, configuration: TCPConfiguration = TCPConfiguration(),
                                 emit: Emit) -> TCPConnection {
        let connection = TCPConnection(localPort: localPort, remote: remote, state: .synReceived,
                                       initialSendSequence: iss, configuration: configuration)
        connection.takeOptions(of: syn)
        connection.receivedWindowScaleOption = syn.windowShift != nil
        connection.initialReceiveSequence = syn.sequence
        connection.receiveNext = syn.sequence &+ 1
        connection.sendWindow = UInt32(syn.window)
        connection.sendWindowUpdateSequence = syn.sequence
        connection.sendNext = iss &+ 1
        connection.sendMaximum = connection.sendNext
        connection.sendSynchronize(acknowledging: true, now: now, emit: emit)
        return connection
    }

    /// An active open: sends SYN.
    public static func connecting(localPort: UInt16, to remote: Endpoint, iss: UInt32, now: UInt64,
                                  configuration: TCPConfiguration = TCPConfiguration(),
                                  emit: Emit) -> TCPConnection {
        let connection = TCPConnection(localPort: localPort, remote: remote, state: .synSent,
                                       initialSendSequence: iss, configuration: configuration)
        connection.sendNext = iss &+ 1
        connection.sendMaximum = connection.sendNext
        connection.sendSynchronize(acknowledging: false, now: now, emit: emit)
        return connection
    }

    /// A connection whose handshake a restarted server never saw: `segment` acknowledged
    /// our SYN-ACK, whose sequence number was `cookie` (SynCookie.swift). Established
    /// as if that acknowledgment had just arrived; hand it the segment next.
    public static func rebuilding(from segment: TCPSegment, cookie: SynCookie, localPort: UInt16,
                                  remote: Endpoint, configuration: TCPConfiguration = TCPConfiguration())
        -> TCPConnection {
        let connection = TCPConnection(localPort: localPort, remote: remote, state: .established,
                                       initialSendSequence: segment.acknowledgment &- 1, configuration: configuration)
        connection.sendUnacknowledged = segment.acknowledgment
        connection.sendNext = segment.acknowledgment
        connection.sendMaximum = segment.acknowledgment
        connection.initialReceiveSequence = segment.sequence &- 1
        connection.receiveNext = segment.sequence
        connection.peerMaximumSegmentSize = Int(cookie.maximumSegmentSize)
        connection.receivedWindowScaleOption = cookie.windowShift != nil
        connection.sendShift = cookie.windowShift ?? 0
        connection.sendWindow = UInt32(segment.window) << UInt32(connection.sendShift)
        connection.sendWindowUpdateSequence = segment.sequence
        connection.sendWindowUpdateAcknowledgment = segment.acknowledgment
        return connection
    }

    /// A connection a restarted server takes up again from its SSR record.
    public static func restoring(_ record: TCPRecord, configuration: TCPConfiguration = TCPConfiguration())
        -> TCPConnection {
        let connection = TCPConnection(localPort: record.localPort, remote: record.remote, state: record.state,
                                       initialSendSequence: record.sendNext, configuration: configuration)
        connection.receiveNext = record.receiveNext
        connection.sendWindow = record.sendWindow
        connection.peerMaximumSegmentSize = Int(record.peerMaximumSegmentSize)
        connection.sendShift = record.sendShift
        connection.receiveShift = record.receiveShift
        // Every segment the peer sends from here on is newer than the record's window.
        // (Left at 0, the window-update marks would make every segment from half of
        // sequence space look older than the last update, and its window ignored.)
        connection.sendWindowUpdateSequence = record.receiveNext &- 1
        connection.sendWindowUpdateAcknowledgment = record.sendNext
        connection.restored = true
        // Our FIN may have been sent (but not acknowledged) before the crash: the
        // client's held shutdown or close comes again and queues it again.
        return connection
    }

    /// The state to commit to the SSR: what a restarted server goes on from.
    public var record: TCPRecord {
        TCPRecord(state: state, localPort: localPort, remote: remote, sendNext: sendUnacknowledged,
                  receiveNext: receiveNext, sendWindow: sendWindow,
                  peerMaximumSegmentSize: UInt16(clamping: peerMaximumSegmentSize), sendShift: sendShift,
                  receiveShift: receiveShift)
    }

    var segmentSize: Int { min(peerMaximumSegmentSize, configuration.maximumSegmentSize) }

    /// The window we advertise: everything up to `receiveCapacity` past the last byte
    /// delivered (the bytes waiting, unacknowledged, are inside it).
    var advertisedWindow: UInt16 {
        UInt16(clamping: configuration.receiveCapacity >> Int(receiveShift))
    }

    func takeOptions(of syn: TCPSegment) {
        if let mss = syn.maximumSegmentSize, mss >= 64 { peerMaximumSegmentSize = Int(mss) }
        if let shift = syn.windowShift {
            sendShift = shift
            receiveShift = 0
        }
    }

    // MARK: Output

    func header(sequence: UInt32, flags: TCPFlags) -> TCPSegmentHeader {
        TCPSegmentHeader(sourcePort: localPort, destinationPort: remote.port, sequence: sequence,
                         acknowledgment: flags.contains(.ack) ? receiveNext : 0, flags: flags,
                         window: advertisedWindow)
    }

    func sendSynchronize(acknowledging: Bool, now: UInt64, emit: Emit) {
        var header = header(sequence: initialSendSequence, flags: acknowledging ? [.syn, .ack] : [.syn])
        header.maximumSegmentSize = UInt16(configuration.maximumSegmentSize)
        // Our own shift is 0; we send the option so that the peer may scale its windows.
        if !acknowledging || receivedWindowScaleOption { header.windowShift = 0 }
        emit(header, UnsafeRawBufferPointer(start: nil, count: 0))
        armRetransmission(now: now)
    }

    /// Sends a bare acknowledgment of every delivered byte.
    public func acknowledge(emit: Emit) {
        guard state.isSynchronized || state == .synReceived else { return }
        emit(header(sequence: sendNext, flags: .ack), UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// A SYN-ACK to `syn` that leaves nothing behind: its sequence number is a SYN
    /// cookie (`iss`), and the handshake is rebuilt from it when the peer answers
    /// (`rebuilding`). What a listener under a flood of SYNs sends instead of keeping a
    /// half-open connection for each (RFC 4987 §3.6).
    public static func statelessSynAcknowledgment(answering syn: TCPSegment, iss: UInt32,
                                                  configuration: TCPConfiguration = TCPConfiguration(), emit: Emit) {
        var header = TCPSegmentHeader(sourcePort: syn.destinationPort, destinationPort: syn.sourcePort, sequence: iss,
                                      acknowledgment: syn.sequence &+ 1, flags: [.syn, .ack],
                                      window: UInt16(clamping: configuration.receiveCapacity))
        header.maximumSegmentSize = UInt16(configuration.maximumSegmentSize)
        if syn.windowShift != nil { header.windowShift = 0 }
        emit(header, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// A reset in answer to `segment`, which found no connection (RFC 9293 §3.10.7.1).
    public static func reset(answering segment: TCPSegment, emit: Emit) {
        guard !segment.flags.contains(.rst) else { return }
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        if segment.flags.contains(.ack) {
            emit(TCPSegmentHeader(sourcePort: segment.destinationPort, destinationPort: segment.sourcePort,
                                  sequence: segment.acknowledgment, acknowledgment: 0, flags: .rst, window: 0), none)
        } else {
            emit(TCPSegmentHeader(sourcePort: segment.destinationPort, destinationPort: segment.sourcePort,
                                  sequence: 0, acknowledgment: segment.sequence &+ segment.sequenceLength,
                                  flags: [.rst, .ack], window: 0), none)
        }
    }

    /// Ends the connection at once with a reset to the peer.
    public func abort(emit: Emit) {
        if state.isSynchronized || state == .synReceived {
            emit(header(sequence: sendNext, flags: [.rst, .ack]), UnsafeRawBufferPointer(start: nil, count: 0))
        }
        enterClosed()
    }

    func enterClosed() {
        state = .closed
        retransmitDeadline = nil
        persistDeadline = nil
        timeWaitDeadline = nil
    }

    /// The end of the data the send in progress holds, in sequence space (with none in
    /// progress, everything up to `sendUnacknowledged` is done).
    var sendEnd: UInt32 { sendCount == 0 ? sendUnacknowledged : sendStart &+ UInt32(sendCount) }

    /// Takes the bytes of a client's send (at most 4 KiB; none may be in progress) and
    /// sends what the windows allow.
    public func queueSend(_ data: UnsafeRawBufferPointer, now: UInt64, emit: Emit) {
        guard sendCount == 0, data.count <= Self.sendBufferBytes, state.maySend else { return }
        if data.count > 0 { sendBuffer.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        sendStart = sendUnacknowledged
        sendCount = data.count
        if isBefore(sendNext, sendStart) { sendNext = sendStart }
        transmit(now: now, emit: emit)
    }

    /// The send in progress is done: its bytes are all acknowledged.
    public var sendIsComplete: Bool { sendCount > 0 && isAtOrBefore(sendEnd, sendUnacknowledged) }

    /// Forgets the completed send; returns how many bytes it carried.
    public func finishSend() -> Int {
        let count = sendCount
        sendCount = 0
        return count
    }

    /// Queues our FIN after whatever is being sent.
    public func queueFin(now: UInt64, emit: Emit) {
        guard !finQueued, state.maySend || state == .synReceived else { return }
        finQueued = true
        transmit(now: now, emit: emit)
    }

    /// Our FIN is out and acknowledged.
    public var finIsAcknowledged: Bool {
        guard let fin = finSequence else { return false }
        return isBefore(fin, sendUnacknowledged)
    }

    /// Sends new data (and a queued FIN) as far as the peer's and the congestion window
    /// allow; arms the retransmission timer, or the persist timer when the peer's
    /// window is shut.
    func transmit(now: UInt64, emit: Emit) {
        guard state.isSynchronized, state != .timeWait else { return }
        while isBefore(sendNext, sendEnd) {
            let inFlight = Int(sendNext &- sendUnacknowledged)
            let window = min(Int(sendWindow), congestionWindow)
            let usable = window - inFlight
            guard usable > 0 else { break }
            let remaining = Int(sendEnd &- sendNext)
            let length = min(segmentSize, remaining, usable)
            let offset = Int(sendNext &- sendStart)
            let last = length == remaining
            emit(header(sequence: sendNext, flags: last ? [.ack, .psh] : .ack),
                 UnsafeRawBufferPointer(start: sendBuffer + offset, count: length))
            if timedSegment == nil { timedSegment = (sendNext, now) }
            sendNext = sendNext &+ UInt32(length)
            if isBefore(sendMaximum, sendNext) { sendMaximum = sendNext }
            bytesSent &+= UInt64(length)
            if retransmitDeadline == nil { armRetransmission(now: now) }
        }
        if finQueued && finSequence == nil && sendNext == sendEnd {
            finSequence = sendNext
            emit(header(sequence: sendNext, flags: [.fin, .ack]), UnsafeRawBufferPointer(start: nil, count: 0))
            sendNext = sendNext &+ 1
            if isBefore(sendMaximum, sendNext) { sendMaximum = sendNext }
            if state == .closeWait { state = .lastAck }
            if state == .established { state = .finWait1 }
            if retransmitDeadline == nil { armRetransmission(now: now) }
        }
        if isBefore(sendNext, sendEnd) && sendWindow == 0 && sendNext == sendUnacknowledged {
            if persistDeadline == nil { persistDeadline = now &+ retransmissionTimeout }
        } else {
            persistDeadline = nil
            unansweredProbes = 0
        }
    }

    func armRetransmission(now: UInt64) {
        retransmitDeadline = now &+ retransmissionTimeout
    }

    // MARK: Input

    /// Bytes the peer may send past `receiveNext`.
    var receiveWindow: UInt32 { UInt32(configuration.receiveCapacity) }
    /// The next byte expected from the peer: after the delivered and the waiting ones.
    var receiveEnd: UInt32 { receiveNext &+ UInt32(receivedCount) }

    /// A segment for this connection arrived (its checksum checked); `data` is its
    /// payload. Acts on it as RFC 9293 §3.10.7 says, and tells what changed.
    public func segmentArrived(_ segment: TCPSegment, data: UnsafeRawBufferPointer, now: UInt64,
                               emit: Emit) -> TCPEvents {
        switch state {
        case .closed, .listen:
            return []
        case .synSent:
            return synSentArrival(segment, now: now, emit: emit)
        default:
            return synchronizedArrival(segment, data: data, now: now, emit: emit)
        }
    }

    func synSentArrival(_ segment: TCPSegment, now: UInt64, emit: Emit) -> TCPEvents {
        let flags = segment.flags
        if flags.contains(.ack) {
            guard isBefore(initialSendSequence, segment.acknowledgment),
                  isAtOrBefore(segment.acknowledgment, sendNext) else {
                Self.reset(answering: segment, emit: emit)
                return []
            }
        }
        if flags.contains(.rst) {
            guard flags.contains(.ack) else { return [] }
            error = .connectionRefused
            enterClosed()
            return .closed
        }
        guard flags.contains(.syn) else { return [] }
        takeOptions(of: segment)
        receivedWindowScaleOption = segment.windowShift != nil
        if segment.windowShift == nil { sendShift = 0 }
        initialReceiveSequence = segment.sequence
        receiveNext = segment.sequence &+ 1
        sendWindow = UInt32(segment.window)
        sendWindowUpdateSequence = segment.sequence
        sendWindowUpdateAcknowledgment = segment.acknowledgment
        if flags.contains(.ack) {
            sendUnacknowledged = segment.acknowledgment
            sample(acknowledging: segment.acknowledgment, now: now)
            retransmitDeadline = nil
            retransmissions = 0
            state = .established
            acknowledge(emit: emit)
            return .established
        }
        // A simultaneous open (RFC 9293 §3.5): both sides sent SYN.
        state = .synReceived
        sendSynchronize(acknowledging: true, now: now, emit: emit)
        return []
    }

    func synchronizedArrival(_ segment: TCPSegment, data: UnsafeRawBufferPointer, now: UInt64,
                             emit: Emit) -> TCPEvents {
        let flags = segment.flags
        var events: TCPEvents = []
        // The peer's SYN again, before the handshake completed: our SYN-ACK was lost.
        if state == .synReceived && flags.contains(.syn) && !flags.contains(.ack)
            && segment.sequence == initialReceiveSequence {
            sendSynchronize(acknowledging: true, now: now, emit: emit)
            return []
        }
        // 1. Acceptability: some of the segment lies in the window, or it is an empty
        // segment at its edge.
        let length = segment.sequenceLength
        let windowEnd = receiveNext &+ receiveWindow
        let startsInWindow = isAtOrBefore(receiveNext, segment.sequence) && isBefore(segment.sequence, windowEnd)
        let endsInWindow = length > 0 && isBefore(receiveNext, segment.sequence &+ length)
            && isAtOrBefore(segment.sequence &+ length, windowEnd)
        let acceptable = length == 0 ? (startsInWindow || segment.sequence == windowEnd) : (startsInWindow || endsInWindow)
        guard acceptable else {
            if !flags.contains(.rst) { acknowledge(emit: emit) }
            if state == .timeWait && flags.contains(.fin) { timeWaitDeadline = now &+ configuration.timeWaitTicks }
            return []
        }
        // 2. A reset: the connection is gone (RFC 5961's exact-match rule: anything else
        // in the window gets a challenge acknowledgment instead).
        if flags.contains(.rst) {
            guard segment.sequence == receiveNext || segment.sequence == receiveEnd else {
                acknowledge(emit: emit)
                return []
            }
            if state == .synReceived && !restored {
                error = .connectionRefused
            } else if state != .timeWait && state != .lastAck && state != .closing {
                error = .connectionReset
            }
            enterClosed()
            return .closed
        }
        // 3. A SYN in a synchronized connection: a challenge acknowledgment (RFC 5961 §4).
        if flags.contains(.syn) {
            acknowledge(emit: emit)
            return []
        }
        // 4. The acknowledgment.
        guard flags.contains(.ack) else { return [] }
        if state == .synReceived {
            guard isBefore(sendUnacknowledged, segment.acknowledgment),
                  isAtOrBefore(segment.acknowledgment, sendNext) else {
                Self.reset(answering: segment, emit: emit)
                return []
            }
            state = .established
            events.insert(.established)
            sendWindowUpdateSequence = segment.sequence &- 1
        }
        guard let acknowledged = acknowledge(segment, now: now, emit: emit) else { return events }
        events.formUnion(acknowledged)
        if state == .closed { return events }
        // 5. Data, in order only.
        if data.count > 0 && (state == .established || state == .finWait1 || state == .finWait2) {
            var payload = data
            var sequence = segment.sequence
            if isBefore(sequence, receiveEnd) {
                let duplicate = Int(receiveEnd &- sequence)
                payload = duplicate >= payload.count ? UnsafeRawBufferPointer(start: nil, count: 0)
                    : UnsafeRawBufferPointer(rebasing: payload[duplicate...])
                sequence = receiveEnd
            }
            if sequence == receiveEnd && !payload.isEmpty && !finPending {
                var room = configuration.receiveCapacity - receivedCount
                // Nothing the peer sends lies past its FIN.
                if let fin = heldFin { room = min(room, Int(fin &- receiveEnd)) }
                let taken = min(room, payload.count)
                store(UnsafeRawBufferPointer(rebasing: payload[0..<taken]))
                if absorbHeld() { events.insert(.readable) }
                if taken > 0 { events.insert(.readable) }
                if taken < payload.count { acknowledge(emit: emit) }
            } else {
                // A duplicate, or a gap before it (kept, if there is room to note it):
                // tell the peer where we stand (three of these start its fast
                // retransmission).
                if !payload.isEmpty && !finPending && isBefore(receiveEnd, sequence) {
                    let held = hold(payload, at: sequence)
                    if held && flags.contains(.fin) { heldFin = sequence &+ UInt32(payload.count) }
                }
                acknowledge(emit: emit)
            }
        }
        // 6. The peer's FIN, right after everything that arrived (or after held bytes
        // that now follow on).
        if let fin = heldFin, fin == receiveEnd {
            heldFin = nil
            if !finPending && (state == .established || state == .finWait1 || state == .finWait2) {
                finPending = true
                events.insert(.readable)
            }
        }
        if flags.contains(.fin) && state.isSynchronized {
            let finAt = segment.sequence &+ UInt32(data.count)
            if finAt == receiveEnd && !finPending && state != .closeWait && state != .closing
                && state != .lastAck && state != .timeWait {
                finPending = true
                events.insert(.readable)
            } else if state == .timeWait {
                acknowledge(emit: emit)
                timeWaitDeadline = now &+ configuration.timeWaitTicks
            }
        }
        return events
    }

    /// The acknowledgment field of a segment (RFC 9293 §3.10.7.4, fifth check); nil
    /// if the segment must be dropped, data and all, because it acknowledges what we
    /// never sent or what was acknowledged longer ago than a window (RFC 5961 §5.2: a
    /// blind attacker must guess the acknowledgment number too, not just a sequence
    /// number inside the window, to have forged data taken).
    func acknowledge(_ segment: TCPSegment, now: UInt64, emit: Emit) -> TCPEvents? {
        var events: TCPEvents = []
        var acknowledgment = segment.acknowledgment
        // After a restart, the peer may already hold bytes of the send in progress that
        // the old instance sent: taking its word for those of the send in progress
        // costs nothing (they are the same client bytes) and saves a window of waiting.
        let limit = finSequence.map { $0 &+ 1 } ?? sendEnd
        if restored && isBefore(sendMaximum, acknowledgment) && isAtOrBefore(acknowledgment, limit) && sendCount > 0 {
            sendMaximum = acknowledgment
        }
        if isBefore(sendMaximum, acknowledgment)
            || isBefore(acknowledgment, sendUnacknowledged &- largestSendWindow) {
            // Answer with where we are, and take nothing.
            acknowledge(emit: emit)
            return nil
        }
        // An acknowledgment older than one already taken says nothing of the window,
        // nor is it a duplicate of the newer one.
        let isCurrent = isAtOrBefore(sendUnacknowledged, acknowledgment)
        if !isCurrent { acknowledgment = sendUnacknowledged }
        unansweredProbes = 0
        let window = UInt32(segment.window) << UInt32(sendShift)
        let newlyAcknowledged = Int(acknowledgment &- sendUnacknowledged)
        if newlyAcknowledged > 0 {
            sample(acknowledging: acknowledgment, now: now)
            sendUnacknowledged = acknowledgment
            if isBefore(sendNext, acknowledgment) { sendNext = acknowledgment }
            restored = false
            retransmissions = 0
            duplicateAcknowledgments = 0
            growCongestionWindow(by: newlyAcknowledged)
            retransmitDeadline = sendUnacknowledged == sendMaximum ? nil : now &+ retransmissionTimeout
            if sendIsComplete { events.insert(.sendCompleted) }
        } else if isCurrent && acknowledgment == sendUnacknowledged && sendUnacknowledged != sendMaximum
                    && segment.dataLength == 0 && window == sendWindow
                    && window > 0  // a shut window's answer to a probe is no sign of loss
                    && !segment.flags.contains(.fin) {
            duplicateAcknowledgments += 1
            if duplicateAcknowledgments == 3 {
                enterFastRecovery()
                retransmitFirst(now: now, emit: emit)
            } else if duplicateAcknowledgments > 3 && inFastRecovery {
                congestionWindow += segmentSize
            }
        }
        // The window, from the newest segment only (RFC 9293's SND.WL1/WL2 rule).
        if isCurrent && (isBefore(sendWindowUpdateSequence, segment.sequence)
            || (sendWindowUpdateSequence == segment.sequence
                && isAtOrBefore(sendWindowUpdateAcknowledgment, acknowledgment))) {
            let opened = sendWindow == 0 && window > 0
            sendWindow = window
            largestSendWindow = max(largestSendWindow, window)
            sendWindowUpdateSequence = segment.sequence
            sendWindowUpdateAcknowledgment = acknowledgment
            if opened { events.insert(.writable) }
        }
        // Our FIN acknowledged.
        if finIsAcknowledged {
            switch state {
            case .finWait1:
                state = .finWait2
                events.insert(.finAcknowledged)
            case .closing:
                enterTimeWait(now: now)
                events.insert(.finAcknowledged)
            case .lastAck:
                enterClosed()
                events.formUnion([.finAcknowledged, .closed])
                return events
            default:
                break
            }
        }
        transmit(now: now, emit: emit)
        return events
    }

    func enterTimeWait(now: UInt64) {
        state = .timeWait
        retransmitDeadline = nil
        persistDeadline = nil
        timeWaitDeadline = now &+ configuration.timeWaitTicks
    }

    /// An RTT sample from the timed segment, if this acknowledgment covers it and it
    /// was not retransmitted (Karn's algorithm); then RFC 6298's estimator.
    func sample(acknowledging acknowledgment: UInt32, now: UInt64) {
        guard let timed = timedSegment, isBefore(timed.sequence, acknowledgment) else { return }
        timedSegment = nil
        let rtt = now &- timed.sentAt
        if smoothedRTT == 0 {
            smoothedRTT = rtt
            rttVariance = rtt / 2
        } else {
            let difference = smoothedRTT > rtt ? smoothedRTT - rtt : rtt - smoothedRTT
            rttVariance = (3 * rttVariance + difference) / 4
            smoothedRTT = (7 * smoothedRTT + rtt) / 8
        }
        retransmissionTimeout = min(max(smoothedRTT + max(4 * rttVariance, 1), configuration.minimumRTO),
                                    configuration.maximumRTO)
    }

    func growCongestionWindow(by acknowledged: Int) {
        if inFastRecovery {
            inFastRecovery = false
            congestionWindow = slowStartThreshold
        } else if congestionWindow < slowStartThreshold {
            congestionWindow += min(acknowledged, segmentSize)
        } else {
            congestionWindow += max(segmentSize * segmentSize / congestionWindow, 1)
        }
    }

    func enterFastRecovery() {
        let inFlight = Int(sendMaximum &- sendUnacknowledged)
        slowStartThreshold = max(inFlight / 2, 2 * segmentSize)
        congestionWindow = slowStartThreshold + 3 * segmentSize
        inFastRecovery = true
    }

    /// Sends the first unacknowledged segment again: SYN, data, or FIN.
    func retransmitFirst(now: UInt64, emit: Emit) {
        timedSegment = nil
        switch state {
        case .synSent:
            sendSynchronize(acknowledging: false, now: now, emit: emit)
        case .synReceived:
            sendSynchronize(acknowledging: true, now: now, emit: emit)
        default:
            if isBefore(sendUnacknowledged, sendEnd) && isAtOrBefore(sendStart, sendUnacknowledged) {
                let offset = Int(sendUnacknowledged &- sendStart)
                let length = min(segmentSize, Int(sendEnd &- sendUnacknowledged))
                emit(header(sequence: sendUnacknowledged, flags: [.ack, .psh]),
                     UnsafeRawBufferPointer(start: sendBuffer + offset, count: length))
            } else if let fin = finSequence, fin == sendUnacknowledged {
                emit(header(sequence: fin, flags: [.fin, .ack]), UnsafeRawBufferPointer(start: nil, count: 0))
            }
            armRetransmission(now: now)
        }
    }

    func store(_ bytes: UnsafeRawBufferPointer) {
        write(bytes, at: receivedCount)
        receivedCount += bytes.count
        bytesReceived &+= UInt64(bytes.count)
    }

    /// Copies `bytes` into the receive ring, `offset` bytes past `receiveNext`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        let capacity = configuration.receiveCapacity
        var written = 0
        while written < bytes.count {
            let position = (receiveHead + offset + written) % capacity
            let run = min(bytes.count - written, capacity - position)
            (receiveBuffer + position).copyMemory(from: bytes.baseAddress! + written, byteCount: run)
            written += run
        }
    }

    /// Keeps `payload`, which starts at `sequence`, beyond a gap after `receiveEnd`:
    /// the part inside the window goes to its place in the buffer and its range into
    /// `heldRanges`, merged with the ranges it touches. False if it was not kept (no
    /// room in the window, or a fifth range).
    func hold(_ payload: UnsafeRawBufferPointer, at sequence: UInt32) -> Bool {
        let offset = Int(sequence &- receiveNext)
        guard offset < configuration.receiveCapacity else { return false }
        let taken = min(payload.count, configuration.receiveCapacity - offset)
        // Nothing the peer sends lies past its FIN.
        if let fin = heldFin, isBefore(fin, sequence &+ UInt32(taken)) { return false }
        var start = sequence
        var end = sequence &+ UInt32(taken)
        // The ranges it touches or overlaps are merged into it; the rest stay.
        var kept: [(start: UInt32, end: UInt32)] = []
        var insertAt = 0
        for range in heldRanges {
            if isBefore(range.end, start) {
                kept.append(range)
                insertAt = kept.count
            } else if isBefore(end, range.start) {
                kept.append(range)
            } else {
                if isBefore(range.start, start) { start = range.start }
                if isBefore(end, range.end) { end = range.end }
            }
        }
        guard kept.count < Self.maximumHeldRanges else { return false }
        kept.insert((start, end), at: insertAt)
        write(UnsafeRawBufferPointer(rebasing: payload[0..<taken]), at: offset)
        heldRanges = kept
        return true
    }

    /// Joins the held ranges that now follow on from `receiveEnd` to the waiting bytes;
    /// true if any did.
    func absorbHeld() -> Bool {
        var absorbed = false
        while let first = heldRanges.first, isAtOrBefore(first.start, receiveEnd) {
            if isBefore(receiveEnd, first.end) {
                let joined = Int(first.end &- receiveEnd)
                receivedCount += joined
                bytesReceived &+= UInt64(joined)
                absorbed = true
            }
            heldRanges.removeFirst()
        }
        return absorbed
    }

    /// Forgets what was held beyond a gap.
    func forgetHeld() {
        heldRanges.removeAll()
        heldFin = nil
    }

    // MARK: Delivery to the client

    /// Something to deliver: bytes, or the end of the stream.
    public var isReadable: Bool { receivedCount > 0 || finPending || error != nil }

    /// Copies up to `buffer.count` waiting bytes into `buffer` and counts them as
    /// delivered; acknowledge them (`acknowledge`) only once the client has them.
    public func deliver(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let capacity = configuration.receiveCapacity
        let count = min(buffer.count, receivedCount)
        var copied = 0
        while copied < count {
            let run = min(count - copied, capacity - receiveHead)
            (buffer.baseAddress! + copied).copyMemory(from: receiveBuffer + receiveHead, byteCount: run)
            receiveHead = (receiveHead + run) % capacity
            copied += run
        }
        receivedCount -= count
        receiveNext = receiveNext &+ UInt32(count)
        return count
    }

    /// Takes the peer's FIN as delivered (the client read the end of the stream) once
    /// every byte before it was; true if it was.
    public func consumeFin(now: UInt64) -> Bool {
        guard finPending, receivedCount == 0 else { return false }
        finPending = false
        finDelivered = true
        receiveNext = receiveNext &+ 1
        switch state {
        case .established: state = .closeWait
        case .finWait1: state = finIsAcknowledged ? .timeWait : .closing
        case .finWait2: enterTimeWait(now: now)
        default: break
        }
        if state == .timeWait { timeWaitDeadline = now &+ configuration.timeWaitTicks }
        return true
    }

    /// The client has read the end of the stream (this instance saw it delivered, or
    /// the state it was restored to says so).
    public var hasReceivedFin: Bool {
        finDelivered || state == .closeWait || state == .lastAck || state == .closing || state == .timeWait
    }

    /// The client stands at `expected`, before `receiveNext`: the reply that delivered
    /// the bytes in between was lost with a crash of the server (the SSR committed it,
    /// the client never got it). Those bytes were never acknowledged, so the peer will
    /// send them again: forget what waits and expect them from `expected` on. False if
    /// `expected` is not a point one lost reply could leave the client at.
    public func rewindReceive(to expected: UInt32) -> Bool {
        let lost = receiveNext &- expected
        if hasReceivedFin { return lost == 1 }
        guard lost >= 1, lost <= UInt32(NetworkLimits.maximumTransfer) else { return false }
        receiveNext = expected
        receivedCount = 0
        receiveHead = 0
        finPending = false
        forgetHeld()
        return true
    }

    /// The client abandons what it has not read (close): the waiting bytes and a FIN
    /// count as delivered, so they may be acknowledged.
    public func discardReceived(now: UInt64) {
        receiveNext = receiveNext &+ UInt32(receivedCount)
        receivedCount = 0
        receiveHead = 0
        forgetHeld()
        _ = consumeFin(now: now)
    }

    // MARK: Timers

    /// The next moment `timerFired` has something to do (nil: none).
    public var nextDeadline: UInt64? {
        var earliest = retransmitDeadline
        if let persist = persistDeadline, earliest.map({ persist < $0 }) ?? true { earliest = persist }
        if let timeWait = timeWaitDeadline, earliest.map({ timeWait < $0 }) ?? true { earliest = timeWait }
        return earliest
    }

    /// Retransmits, probes a shut window, or ends TIME-WAIT, as the timers say.
    public func timerFired(now: UInt64, emit: Emit) -> TCPEvents {
        if let deadline = timeWaitDeadline, deadline <= now {
            enterClosed()
            return .closed
        }
        if let deadline = retransmitDeadline, deadline <= now {
            retransmissions += 1
            if retransmissions > configuration.maximumRetransmissions {
                error = .connectionTimedOut
                abort(emit: emit)
                return .closed
            }
            let inFlight = Int(sendMaximum &- sendUnacknowledged)
            slowStartThreshold = max(inFlight / 2, 2 * segmentSize)
            congestionWindow = segmentSize
            inFastRecovery = false
            retransmissionTimeout = min(retransmissionTimeout * 2, configuration.maximumRTO)
            if state == .synSent || state == .synReceived {
                retransmitFirst(now: now, emit: emit)
            } else {
                // Go back to the first unacknowledged byte and send again as the
                // (now one-segment) congestion window allows: the ACKs that follow open
                // it and bring the rest.
                timedSegment = nil
                sendNext = sendUnacknowledged
                if let fin = finSequence, isAtOrBefore(sendUnacknowledged, fin) { finSequence = nil }
                transmit(now: now, emit: emit)
                // Into a shut window nothing went: the persist timer takes over.
                if sendNext != sendUnacknowledged { armRetransmission(now: now) } else { retransmitDeadline = nil }
            }
        }
        if let deadline = persistDeadline, deadline <= now {
            persistDeadline = nil
            guard isBefore(sendNext, sendEnd) else { return [] }
            // A zero-window probe: the first byte the window holds back, at growing
            // intervals, for as long as the peer answers (RFC 9293 §3.8.6.1: a window
            // may stay shut indefinitely). The byte is not counted as sent — the
            // acknowledgment says whether the peer took it — and arms no
            // retransmission timer, whose count would end the connection.
            unansweredProbes += 1
            if unansweredProbes > configuration.maximumRetransmissions {
                error = .connectionTimedOut
                abort(emit: emit)
                return .closed
            }
            emit(header(sequence: sendNext, flags: .ack),
                 UnsafeRawBufferPointer(start: sendBuffer + Int(sendNext &- sendStart), count: 1))
            if isBefore(sendMaximum, sendNext &+ 1) { sendMaximum = sendNext &+ 1 }
            retransmissionTimeout = min(retransmissionTimeout * 2, configuration.maximumRTO)
            persistDeadline = now &+ retransmissionTimeout
        }
        return []
    }
}

// The network server's TCP: sockets, connections and the requests that wait on them.
//
// Each connection is a TCPConnection (NetworkCore), which says what a segment or a
// timer changed; this file routes segments to connections, answers the clients' TCP
// requests, and answers held requests when their connection moves on:
//
//   request   answered                                 held until
//   --------  ---------------------------------------  --------------------------------------
//   listen    at once                                  -
//   accept    when a handshake to the port completed   a handshake completes
//   connect   -                                        the handshake completes (or fails)
//   send      -                                        the peer acknowledged every byte
//   receive   when bytes or the end are waiting        bytes, the end, or an error arrive
//   shutdown  -                                        the peer acknowledged our FIN
//   close     at once (abort, or nothing to shut)      the peer acknowledged our FIN
//   poll      when one of its sockets is ready         one is ready, or its timeout
//
// Every answer commits the connection's TCPRecord into the client's SSR with the reply
// (`store`), so a restarted server finds each connection where its client last saw
// it; bytes delivered by a receive are acknowledged to the peer only after the reply
// is out (`acknowledgeAfterReply`, then `followUp`). A held request's connection is
// found again after a restart because the kernel delivers the request again and the
// connection was rebuilt from the SSR (`rebuildTCP`).
//
// A handshake that completed but was not accepted yet belongs to no client: it lives
// here only, and a crash resets it (the peer's next segment finds no connection).

import CurioUser
import NetworkCore
import SSRServer

/// A connection and who it is for.
final class ConnectionEntry {
    let connection: TCPConnection
    /// The client's socket, once accepted or connected.
    var owner: SocketOwner?
    /// The listening socket it waits on, while nobody accepted it.
    var listener: SocketOwner?
    /// The owner's request waiting on this connection.
    var held: HeldStreamRequest? {
        didSet { if held == nil { heldDeadline = nil } }
    }
    /// When the held receive or send gives up (the socket's timeout option).
    var heldDeadline: UInt64?

    init(_ connection: TCPConnection, owner: SocketOwner?, listener: SocketOwner?) {
        self.connection = connection
        self.owner = owner
        self.listener = listener
    }
}

enum HeldStreamRequest: Equatable {
    case connect
    case send
    case receive(count: Int)
    case shutdown
    case close
}

struct Listener {
    var owner: SocketOwner
    var port: UInt16
    var backlog: Int
    /// The key of its SYN cookies, kept in its SSR record.
    var cookieKey: UInt64
    /// Its client waits in accept.
    var acceptHeld = false
}

struct HeldPoll {
    var client: TaskID
    var interest: PollInterest
    /// Nil: no timeout.
    var deadline: UInt64?
}

extension NetworkService {
    static let maximumConnections = 96

    // MARK: Recovery

    /// A TCP socket found in an SSR at recovery: its port claimed again, a listener or
    /// a connection taken up again where the SSR says.
    mutating func rebuildTCP(_ socket: SocketRecord, owner: SocketOwner) {
        _ = tcpPorts.claim(socket.localPort, by: owner)
        if socket.isListening {
            listeners.append(Listener(owner: owner, port: socket.localPort, backlog: Int(socket.backlog),
                                      cookieKey: socket.cookieKey))
        } else if let record = socket.tcpRecord {
            connections.append(ConnectionEntry(TCPConnection.restoring(record, configuration: tcpConfiguration),
                                               owner: owner, listener: nil))
        }
    }

    mutating func tcpClientEnded(_ client: TaskID) {
        tcpPorts.releaseAll(of: client.rawValue)
        polls.removeAll { $0.client == client }
        let gone = listeners.filter { $0.owner.client == client.rawValue }
        listeners.removeAll { $0.owner.client == client.rawValue }
        for entry in connections {
            let orphan = entry.owner?.client == client.rawValue
                || gone.contains { entry.listener == $0.owner }
            if orphan { abort(entry) }
        }
        connections.removeAll { $0.connection.state == .closed }
    }

    // MARK: Requests

    func entry(of owner: SocketOwner) -> ConnectionEntry? {
        connections.first { $0.owner == owner }
    }

    mutating func listen(_ socket: SocketHandle, backlog: Int, client: TaskID,
                         state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        guard let slot = state.slot(of: socket) else { throw .badSocket }
        let record = state.sockets[slot]
        guard record.kind == SocketKind.tcp.rawValue, record.tcpState == TCPState.closed.rawValue,
              !record.isListening else { throw .wrongState }
        if !record.isBound { _ = try bind(slot: slot, port: 0, client: client, state: &state) }
        let owner = SocketOwner(client: client.rawValue, slot: slot)
        state.sockets[slot].flags |= SocketRecord.listeningFlag
        state.sockets[slot].tcpState = TCPState.listen.rawValue
        state.sockets[slot].backlog = UInt8(backlog)
        var key = sequenceSecret ^ System.clock() &* 0xD6E8_FEB8_6659_FD93 ^ UInt64(client.rawValue) << 32
        key = (key ^ (key >> 29)) | 1
        state.sockets[slot].cookieKey = key
        listeners.append(Listener(owner: owner, port: state.sockets[slot].localPort, backlog: backlog, cookieKey: key))
        return .reply()
    }

    mutating func accept(_ socket: SocketHandle, nonblocking: Bool, client: TaskID,
                         state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        guard let slot = state.slot(of: socket) else { throw .badSocket }
        guard state.sockets[slot].isListening,
              let index = listeners.firstIndex(where: { $0.owner == SocketOwner(client: client.rawValue, slot: slot) })
        else { throw .wrongState }
        if let waiting = connections.first(where: { $0.listener == listeners[index].owner && $0.connection.state.isSynchronized }) {
            let words = try adopt(waiting, client: client, state: &state)
            return .reply(0, words.0, words.1)
        }
        if nonblocking { throw .wouldBlock }
        listeners[index].acceptHeld = true
        return .deferred
    }

    /// Gives a connection waiting on a listener to its client, in a new socket slot.
    func adopt(_ entry: ConnectionEntry, client: TaskID,
                        state: inout NetworkClientState) throws(NetworkError) -> (UInt, UInt) {
        let socket = try state.open(.tcp)
        state.sockets[socket.slot].store(entry.connection.record)
        entry.owner = SocketOwner(client: client.rawValue, slot: socket.slot)
        entry.listener = nil
        return (UInt(socket.rawValue), entry.connection.remote.word)
    }

    mutating func connect(_ socket: SocketHandle, to destination: Endpoint, client: TaskID,
                          state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        guard let slot = state.slot(of: socket) else { throw .badSocket }
        let record = state.sockets[slot]
        guard record.kind == SocketKind.tcp.rawValue, record.tcpState == TCPState.closed.rawValue,
              !record.isListening else { throw .wrongState }
        guard driver != nil else { throw .noDevice }
        let address = IPv4Address(rawValue: destination.address)
        guard destination.port != 0, address != .any, address != .broadcast else {
            throw .badAddress
        }
        guard address == interface.address || interface.reaches(address) else { throw .networkUnreachable }
        let owner = SocketOwner(client: client.rawValue, slot: slot)
        // A connect the kernel delivers again after a crash starts over.
        if let stale = entry(of: owner) { forget(stale) }
        guard connections.count < Self.maximumConnections else { throw .busy }
        if !record.isBound { _ = try bind(slot: slot, port: 0, client: client, state: &state) }
        let localPort = state.sockets[slot].localPort
        let now = System.clock()
        let connection = TCPConnection.connecting(localPort: localPort, to: destination,
                                                  iss: initialSequence(localPort, destination, now: now), now: now,
                                                  configuration: tcpConfiguration) { self.sendSegment($0, payload: $1, to: destination) }
        let entry = ConnectionEntry(connection, owner: owner, listener: nil)
        entry.held = .connect
        connections.append(entry)
        arm()
        return .deferred
    }

    /// The connection of a client's TCP socket, or the error its request gets.
    func connectionEntry(_ socket: SocketHandle, client: TaskID,
                         state: NetworkClientState) throws(NetworkError) -> (slot: Int, entry: ConnectionEntry) {
        guard let slot = state.slot(of: socket) else { throw .badSocket }
        guard state.sockets[slot].kind == SocketKind.tcp.rawValue else { throw .wrongState }
        guard let entry = entry(of: SocketOwner(client: client.rawValue, slot: slot)) else {
            throw state.sockets[slot].tcpState == TCPState.closed.rawValue && state.sockets[slot].isBound
                ? .connectionReset : .wrongState
        }
        return (slot, entry)
    }

    mutating func sendStream(_ socket: SocketHandle, data: UnsafeRawBufferPointer, client: TaskID,
                             state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        let (slot, entry) = try connectionEntry(socket, client: client, state: state)
        let connection = entry.connection
        if let error = connection.error { throw error }
        guard connection.state.maySend, !connection.finQueued else {
            throw connection.state.isSynchronized ? .sendingShutDown : .wrongState
        }
        // A send the kernel delivers again after a crash finds the connection rebuilt
        // from the SSR, with nothing in progress: it begins where the SSR says.
        let now = System.clock()
        connection.queueSend(data, now: now) { self.sendSegment($0, payload: $1, to: connection.remote) }
        entry.held = .send
        entry.heldDeadline = Self.deadline(afterMilliseconds: state.sockets[slot].sendTimeout, now: now)
        arm()
        return .deferred
    }

    mutating func receiveStream(_ socket: SocketHandle, count: Int, nonblocking: Bool, expected: UInt32?,
                                into buffer: UnsafeMutableRawBufferPointer, client: TaskID,
                                state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        let (slot, entry) = try connectionEntry(socket, client: client, state: state)
        let connection = entry.connection
        if let expected, expected != connection.receiveNext {
            // The reply to the client's previous receive was committed but lost with a
            // crash: its bytes were never acknowledged, so the peer still has them.
            guard connection.rewindReceive(to: expected) else { throw .badRequest }
            state.sockets[slot].store(connection.record)
        }
        if let outcome = completeReceive(entry, count: count, into: buffer, state: &state) {
            acknowledgeAfterReply.append(connection)
            SSRServer<NetworkService>.requestFollowUp()
            return outcome
        }
        if nonblocking { throw .wouldBlock }
        entry.held = .receive(count: count)
        entry.heldDeadline = Self.deadline(afterMilliseconds: state.sockets[slot].receiveTimeout, now: System.clock())
        arm()
        return .deferred
    }

    /// `milliseconds` from `now` (nil for 0: no timeout).
    static func deadline(afterMilliseconds milliseconds: UInt32, now: UInt64) -> UInt64? {
        milliseconds == 0 ? nil : now &+ UInt64(milliseconds) * (System.ticksPerSecond / 1000)
    }

    mutating func setOption(_ socket: SocketHandle, _ option: SocketOption, value: UInt32,
                            state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        guard let slot = state.slot(of: socket) else { throw .badSocket }
        switch option {
        case .receiveTimeout: state.sockets[slot].receiveTimeout = value
        case .sendTimeout: state.sockets[slot].sendTimeout = value
        }
        return .reply()
    }

    /// The answer to a receive, if there is one now: waiting bytes, the end of the
    /// stream, or the connection's error.
    func completeReceive(_ entry: ConnectionEntry, count: Int, into buffer: UnsafeMutableRawBufferPointer,
                         state: inout NetworkClientState) -> SSROutcome? {
        guard let slot = entry.owner?.slot else { return nil }
        let connection = entry.connection
        let now = System.clock()
        if connection.receivedCount > 0 {
            let delivered = connection.deliver(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(count, buffer.count)]))
            state.sockets[slot].store(connection.record)
            state.sockets[slot].received &+= UInt64(delivered)
            return .reply(code: 0, words: (UInt(delivered), UInt(connection.receiveNext)), length: delivered)
        }
        if connection.consumeFin(now: now) || connection.hasReceivedFin {
            state.sockets[slot].store(connection.record)
            return .reply(0, 0, UInt(connection.receiveNext))
        }
        if let error = connection.error {
            state.sockets[slot].markFailed()
            return .reply(error.rawValue)
        }
        return nil
    }

    mutating func shutdown(_ socket: SocketHandle, client: TaskID,
                           state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        let (slot, entry) = try connectionEntry(socket, client: client, state: state)
        let connection = entry.connection
        if let error = connection.error { throw error }
        if connection.finIsAcknowledged {
            state.sockets[slot].store(connection.record)
            return .reply()
        }
        guard connection.state.isSynchronized else { throw .wrongState }
        connection.queueFin(now: System.clock()) { self.sendSegment($0, payload: $1, to: connection.remote) }
        entry.held = .shutdown
        arm()
        return .deferred
    }

    mutating func closeTCP(slot: Int, abort abortNow: Bool, client: TaskID,
                           state: inout NetworkClientState) -> SSROutcome {
        let owner = SocketOwner(client: client.rawValue, slot: slot)
        if state.sockets[slot].isListening {
            listeners.removeAll { $0.owner == owner }
            for entry in connections where entry.listener == owner { abort(entry) }
            connections.removeAll { $0.connection.state == .closed }
        }
        if let entry = entry(of: owner) {
            let connection = entry.connection
            let now = System.clock()
            // What the client leaves unread counts as delivered: nobody will ask for it.
            connection.discardReceived(now: now)
            if abortNow || connection.error != nil || !connection.state.isSynchronized {
                abort(entry)
                connections.removeAll { $0 === entry }
            } else if !connection.finIsAcknowledged && connection.state != .timeWait {
                connection.queueFin(now: now) { self.sendSegment($0, payload: $1, to: connection.remote) }
                acknowledge(connection)
                entry.held = .close
                arm()
                return .deferred
            } else {
                entry.owner = nil
            }
        }
        tcpPorts.release(state.sockets[slot].localPort, by: owner)
        state.close(slot: slot)
        return .reply()
    }

    /// Which of `interest`'s sockets are ready.
    func readiness(_ interest: PollInterest, client: TaskID, state: NetworkClientState) -> PollInterest {
        var ready = PollInterest()
        for slot in 0..<NetworkLimits.socketsPerClient {
            let readable = interest.rawValue & 1 << UInt64(slot) != 0
            let writable = interest.rawValue & 1 << UInt64(32 + slot) != 0
            guard readable || writable, !state.sockets[slot].isFree else { continue }
            let owner = SocketOwner(client: client.rawValue, slot: slot)
            let socket = state.sockets[slot]
            var isReadable = false
            var isWritable = false
            if socket.kind == SocketKind.udp.rawValue {
                isReadable = pool.count(for: owner) > 0
                isWritable = true
            } else if socket.isListening {
                isReadable = connections.contains { $0.listener == owner && $0.connection.state.isSynchronized }
            } else if let entry = entry(of: owner) {
                let connection = entry.connection
                isReadable = connection.isReadable || connection.hasReceivedFin
                isWritable = connection.error != nil
                    || (connection.state.maySend && !connection.finQueued && connection.sendCount == 0)
            } else {
                // A socket whose connection failed: reading it reports the error.
                isReadable = socket.isBound
            }
            if readable && isReadable { ready.rawValue |= 1 << UInt64(slot) }
            if writable && isWritable { ready.rawValue |= 1 << UInt64(32 + slot) }
        }
        return ready
    }

    mutating func poll(_ interest: PollInterest, timeoutMilliseconds: UInt, client: TaskID,
                       state: NetworkClientState) -> SSROutcome {
        let ready = readiness(interest, client: client, state: state)
        if !ready.isEmpty || timeoutMilliseconds == 0 { return .reply(0, UInt(ready.rawValue)) }
        polls.removeAll { $0.client == client }
        let deadline = timeoutMilliseconds == NetworkLimits.pollForever ? nil
            : System.clock() &+ UInt64(timeoutMilliseconds) * (System.ticksPerSecond / 1000)
        polls.append(HeldPoll(client: client, interest: interest, deadline: deadline))
        arm()
        return .deferred
    }

    /// Answers `client`'s held poll if one of its sockets became ready.
    mutating func wakePoll(of client: UInt32) {
        guard let index = polls.firstIndex(where: { $0.client.rawValue == client }) else { return }
        let poll = polls[index]
        let answered = try? SSRServer<NetworkService>.complete(poll.client) { state in
            let ready = readiness(poll.interest, client: poll.client, state: state)
            return ready.isEmpty ? .deferred : .reply(0, UInt(ready.rawValue))
        }
        if answered != false { polls.removeAll { $0.client.rawValue == client } }
    }

    // MARK: netstat

    /// The sockets the server knows, every client's: UDP ports, listeners, connections.
    var socketCount: Int { udpPorts.count + listeners.count + connections.count }

    func socketInfo(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) -> SSROutcome {
        guard index < socketCount else { return .reply() }
        let length = socketInfoPayload(words: (UInt(index), 0), into: buffer)
        let next = index + 1 < socketCount ? UInt(index + 1) : 0
        return .reply(code: 0, words: (next, 0), length: length)
    }

    func socketInfoPayload(words: (UInt, UInt), into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var index = Int(words.0)
        var info = SocketInfo()
        if index < udpPorts.count {
            var position = 0
            udpPorts.forEach { port, owner in
                if position == index {
                    info.kind = SocketKind.udp.rawValue
                    info.localPort = port
                    info.owner = owner.client
                }
                position += 1
            }
            return info.encode(into: buffer)
        }
        index -= udpPorts.count
        if index < listeners.count {
            info.kind = SocketKind.tcp.rawValue
            info.state = TCPState.listen.rawValue
            info.localPort = listeners[index].port
            info.owner = listeners[index].owner.client
            return info.encode(into: buffer)
        }
        index -= listeners.count
        guard index < connections.count else { return 0 }
        let entry = connections[index]
        info.kind = SocketKind.tcp.rawValue
        info.state = entry.connection.state.rawValue
        info.localPort = entry.connection.localPort
        info.owner = entry.owner?.client ?? 0
        info.remote = entry.connection.remote
        info.bytesSent = entry.connection.bytesSent
        info.bytesReceived = entry.connection.bytesReceived
        return info.encode(into: buffer)
    }

    // MARK: Segments

    /// A checked TCP segment from `source`: to its connection, to a listener (a SYN),
    /// or answered with a reset.
    mutating func segmentArrived(_ segment: TCPSegment, data: UnsafeRawBufferPointer, from source: IPv4Address,
                                 now: UInt64) {
        let remote = Endpoint(address: source.rawValue, port: segment.sourcePort)
        if let entry = connections.first(where: {
            $0.connection.localPort == segment.destinationPort && $0.connection.remote == remote
        }) {
            let events = entry.connection.segmentArrived(segment, data: data, now: now) { self.sendSegment($0, payload: $1, to: remote) }
            act(on: events, of: entry, now: now)
            return
        }
        let flags = segment.flags
        guard let index = listeners.firstIndex(where: { $0.port == segment.destinationPort }),
              !flags.contains(.rst), flags.contains(.syn) != flags.contains(.ack) else {
            TCPConnection.reset(answering: segment) { self.sendSegment($0, payload: $1, to: remote) }
            return
        }
        let listener = listeners[index]
        // The backlog counts completed handshakes waiting for accept; when it is full a
        // SYN or a cookie's acknowledgment is dropped, and the peer tries again later
        // (RFC 9293 §3.10.7.2).
        let ready = connections.filter { $0.listener == listener.owner && $0.connection.state.isSynchronized }.count
        guard ready < listener.backlog, connections.count < Self.maximumConnections else { return }
        if flags.contains(.ack) {
            // No connection, yet an acknowledgment: a handshake an earlier instance of
            // this server answered, if the cookie says so; then take it up again.
            guard let cookie = SynCookie.check(segment.acknowledgment &- 1, key: listener.cookieKey,
                                               localPort: segment.destinationPort, remote: remote, now: now,
                                               ticksPerSecond: System.ticksPerSecond) else {
                TCPConnection.reset(answering: segment) { self.sendSegment($0, payload: $1, to: remote) }
                return
            }
            let entry = ConnectionEntry(TCPConnection.rebuilding(from: segment, cookie: cookie,
                                                                 localPort: segment.destinationPort, remote: remote,
                                                                 configuration: tcpConfiguration),
                                        owner: nil, listener: listener.owner)
            connections.append(entry)
            var events = entry.connection.segmentArrived(segment, data: data, now: now) {
                self.sendSegment($0, payload: $1, to: remote)
            }
            events.insert(.established)
            act(on: events, of: entry, now: now)
            return
        }
        let iss = SynCookie.make(key: listener.cookieKey, localPort: segment.destinationPort, remote: remote,
                                 slot: SynCookie.slot(at: now, ticksPerSecond: System.ticksPerSecond),
                                 maximumSegmentSize: segment.maximumSegmentSize, windowShift: segment.windowShift)
        // Half-open handshakes beyond the backlog (a flood of SYNs that are never
        // answered, from forged addresses) get a SYN-ACK and no memory: a real peer's
        // answer rebuilds its connection from the cookie above.
        let halfOpen = connections.filter { $0.listener == listener.owner && !$0.connection.state.isSynchronized }.count
        guard halfOpen < listener.backlog, connections.count + 1 < Self.maximumConnections else {
            TCPConnection.statelessSynAcknowledgment(answering: segment, iss: iss, configuration: tcpConfiguration) {
                self.sendSegment($0, payload: $1, to: remote)
            }
            return
        }
        let connection = TCPConnection.accepting(segment, localPort: segment.destinationPort, from: remote, iss: iss,
                                                 now: now, configuration: tcpConfiguration) {
            self.sendSegment($0, payload: $1, to: remote)
        }
        connections.append(ConnectionEntry(connection, owner: nil, listener: listener.owner))
    }

    /// Answers the requests `events` unblocked.
    mutating func act(on events: TCPEvents, of entry: ConnectionEntry, now: UInt64) {
        let connection = entry.connection
        if events.contains(.established), let listener = entry.listener,
           let index = listeners.firstIndex(where: { $0.owner == listener }), listeners[index].acceptHeld {
            let client = TaskID(rawValue: listener.client)
            var adopted = false
            let answered = try? SSRServer<NetworkService>.complete(client) { state in
                do throws(NetworkError) {
                    let words = try adopt(entry, client: client, state: &state)
                    adopted = true
                    return .reply(0, words.0, words.1)
                } catch {
                    return .reply(error.rawValue)
                }
            }
            if answered != nil { listeners[index].acceptHeld = false }
            if answered == true && !adopted { abort(entry) }
        }
        if let listener = entry.listener, events.contains(.established) { wakePoll(of: listener.client) }
        if let owner = entry.owner {
            let client = TaskID(rawValue: owner.client)
            switch entry.held {
            case .connect where events.contains(.established) || events.contains(.closed):
                entry.held = nil
                _ = try? SSRServer<NetworkService>.complete(client) { state in
                    if let error = connection.error {
                        state.sockets[owner.slot].markFailed()
                        return .reply(error.rawValue)
                    }
                    state.sockets[owner.slot].store(connection.record)
                    return .reply(0, UInt(connection.localPort))
                }
            case .send where events.contains(.sendCompleted) || events.contains(.closed):
                entry.held = nil
                let count = connection.sendIsComplete ? connection.finishSend() : 0
                _ = try? SSRServer<NetworkService>.complete(client) { state in
                    if count == 0, let error = connection.error {
                        state.sockets[owner.slot].markFailed()
                        return .reply(error.rawValue)
                    }
                    state.sockets[owner.slot].store(connection.record)
                    state.sockets[owner.slot].sent &+= UInt64(count)
                    return .reply(0, UInt(count))
                }
            case .receive(let count) where events.contains(.readable) || events.contains(.closed):
                entry.held = nil
                let scratch = receiveScratch
                var delivered = false
                let answered = try? SSRServer<NetworkService>.complete(client, payload: UnsafeRawBufferPointer(scratch)) { state in
                    let outcome = completeReceive(entry, count: count, into: scratch, state: &state)
                    delivered = outcome != nil
                    return outcome ?? .deferred
                }
                if answered == false || !delivered { entry.held = .receive(count: count) }
                if answered == true { acknowledge(connection) }
            case .shutdown where events.contains(.finAcknowledged) || events.contains(.closed):
                entry.held = nil
                _ = try? SSRServer<NetworkService>.complete(client) { state in
                    if !connection.finIsAcknowledged, let error = connection.error {
                        state.sockets[owner.slot].markFailed()
                        return .reply(error.rawValue)
                    }
                    state.sockets[owner.slot].store(connection.record)
                    return .reply()
                }
            case .close where events.contains(.finAcknowledged) || events.contains(.closed):
                entry.held = nil
                entry.owner = nil
                _ = try? SSRServer<NetworkService>.complete(client) { state in
                    tcpPorts.release(state.sockets[owner.slot].localPort, by: owner)
                    state.close(slot: owner.slot)
                    return .reply()
                }
            default:
                break
            }
            if !events.isEmpty { wakePoll(of: owner.client) }
        }
        // A connection its client closed has no reader: what arrives after the close
        // counts as delivered at once, so the peer's FIN is acknowledged and its own
        // close completes (two programs on this machine, the first closing first, left
        // the second waiting on its FIN until it gave up).
        let closedByClient = entry.listener == nil && (entry.owner == nil || entry.held == .close)
        if closedByClient && events.contains(.readable) {
            connection.discardReceived(now: now)
            acknowledge(connection)
        }
        if connection.state == .closed && entry.owner == nil { connections.removeAll { $0 === entry } }
    }

    // MARK: Timers

    var tcpNextDeadline: UInt64? {
        var earliest: UInt64?
        for entry in connections {
            if let deadline = entry.connection.nextDeadline, earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        for poll in polls {
            if let deadline = poll.deadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        for entry in connections {
            if let deadline = entry.heldDeadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        for receive in receives {
            if let deadline = receive.deadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        return earliest
    }

    mutating func tcpTimers(now: UInt64) {
        for entry in connections {
            guard let deadline = entry.heldDeadline, deadline <= now, let owner = entry.owner else { continue }
            giveUp(entry, owner: owner)
        }
        var held = 0
        while held < receives.count {
            let receive = receives[held]
            guard let deadline = receive.deadline, deadline <= now else {
                held += 1
                continue
            }
            receives.remove(at: held)
            _ = try? SSRServer<NetworkService>.complete(TaskID(rawValue: receive.owner.client)) { _ in
                .reply(NetworkError.timedOut.rawValue)
            }
        }
        for entry in connections {
            guard let deadline = entry.connection.nextDeadline, deadline <= now else { continue }
            let events = entry.connection.timerFired(now: now) { self.sendSegment($0, payload: $1, to: entry.connection.remote) }
            act(on: events, of: entry, now: now)
        }
        var index = 0
        while index < polls.count {
            let poll = polls[index]
            guard let deadline = poll.deadline, deadline <= now else {
                index += 1
                continue
            }
            polls.remove(at: index)
            _ = try? SSRServer<NetworkService>.complete(poll.client) { state in
                .reply(0, UInt(readiness(poll.interest, client: poll.client, state: state).rawValue))
            }
        }
    }

    /// A held receive or send ran past its socket's timeout. A receive just answers
    /// `timedOut`; a send resets the connection (its bytes can no longer be known to
    /// have arrived) and answers `connectionTimedOut` — what keeps a peer that shut
    /// its window from holding its client for ever.
    mutating func giveUp(_ entry: ConnectionEntry, owner: SocketOwner) {
        let client = TaskID(rawValue: owner.client)
        switch entry.held {
        case .receive:
            entry.held = nil
            _ = try? SSRServer<NetworkService>.complete(client) { _ in .reply(NetworkError.timedOut.rawValue) }
        case .send:
            entry.held = nil
            abort(entry)
            _ = entry.connection.finishSend()
            _ = try? SSRServer<NetworkService>.complete(client) { state in
                state.sockets[owner.slot].markFailed()
                return .reply(NetworkError.connectionTimedOut.rawValue)
            }
        default:
            entry.heldDeadline = nil
        }
    }

    // MARK: Output

    /// Sends one of a connection's segments to `remote` (every TCPConnection call
    /// takes this as its `emit`).
    mutating func sendSegment(_ header: TCPSegmentHeader, payload: UnsafeRawBufferPointer, to remote: Endpoint) {
        let identification = nextIdentification()
        let interface = interface
        let address = IPv4Address(rawValue: remote.address)
        try? send(to: address) { frame, mac in
            FrameBuilder.tcp(into: frame, from: interface, toMAC: mac, to: address, header: header, payload: payload,
                             ipIdentification: identification)
        }
    }

    mutating func acknowledge(_ connection: TCPConnection) {
        connection.acknowledge { self.sendSegment($0, payload: $1, to: connection.remote) }
    }

    /// Resets a connection: the peer learns it is gone.
    mutating func abort(_ entry: ConnectionEntry) {
        entry.connection.abort { self.sendSegment($0, payload: $1, to: entry.connection.remote) }
    }

    /// Drops a connection without a word to the peer (a connect started over).
    mutating func forget(_ entry: ConnectionEntry) {
        connections.removeAll { $0 === entry }
    }

    /// RFC 6528's initial sequence number: a 4 µs clock plus a keyed hash of the
    /// connection's endpoints, so that a restarted server does not reuse the numbers of
    /// the old one's connections.
    func initialSequence(_ localPort: UInt16, _ remote: Endpoint, now: UInt64) -> UInt32 {
        var hash = sequenceSecret ^ UInt64(remote.word) &* 0x100_0000_01B3 ^ UInt64(localPort) << 48
        hash = (hash ^ (hash >> 31)) &* 0x9E37_79B9_7F4A_7C15
        return UInt32(truncatingIfNeeded: now / (System.ticksPerSecond / 250_000) &+ (hash >> 32))
    }
}

extension SocketRecord {
    /// A connection that failed: unconnected again (still bound, so that reads report
    /// the failure), its connection fields cleared.
    mutating func markFailed() {
        let port = localPort
        let keep = (kind, generation, sent, received, receiveTimeout, sendTimeout)
        self = SocketRecord.free
        kind = keep.0
        generation = keep.1
        sent = keep.2
        received = keep.3
        receiveTimeout = keep.4
        sendTimeout = keep.5
        localPort = port
        flags = port != 0 ? SocketRecord.boundFlag : 0
        tcpState = TCPState.closed.rawValue
    }
}

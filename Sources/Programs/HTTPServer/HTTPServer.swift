// httpd [PORT]: serves the filesystem read-only over HTTP/1.1 (default port 80).
//
//   httpd listening on port 80
//
// GET and HEAD of files (with single byte ranges: 206, 416), directories (a path
// without its trailing slash is redirected, 301, to the slash form; with it, an HTML
// listing), 404 for what does not exist, 405 for other methods, 400 for requests we
// cannot parse, and 500 with the filesystem's reason when it fails (no disk mounted,
// I/O error). Keep-alive and pipelining as RFC 9112 §9 describes. All the protocol is
// in HTTPCore, host-tested; this file is the event loop and the filesystem calls.
//
// Design: one process, one thread, an event loop over `Network.poll`, up to 28
// connections (the network server gives a client 32 sockets: one listens, a few stay
// spare). Each turn polls the listener (readable: a connection is waiting, accepted
// nonblocking), every connection without a response in progress for readable
// (received nonblocking and fed to its parser), and every connection with one for
// writable; then walks the ready connections round-robin, starting one further on
// each turn, and sends each at most one piece of 4 KiB (the network's message size).
// So 16 downloads progress together, each a piece per turn, and none waits for
// another to finish. A send returns once the peer acknowledged it (NetworkAPI), so
// a turn takes as long as its round trips: the price of a server with no threads.
//
// A connection reads no more requests while it answers one: pipelined requests wait
// in its parser (or in the network) until the response before them is sent, which is
// both the order HTTP/1.1 requires and what bounds a connection's memory to the
// parser's 8 KiB and one piece in flight.
//
// Files are not held open per connection: the filesystem server keeps 8 handles per
// client, fewer than the downloads we serve. A transfer keeps its path, the inode and
// generation `stat` saw, and its offset; a small cache of handles (at most 6) serves
// the transfers in progress, the least recently used handle closed to make room, and
// reopened (checked to be the same file: same inode and generation, else the
// transfer is cut, because its head already promised bytes of the old one) and
// sought to the offset when its turn comes again.
//
// Idle keep-alive connections are closed after 15 seconds without a byte: the poll's
// timeout is the nearest such deadline (System.clock), so an idle server sleeps in
// poll and wakes only to close what has expired. A connection that sent half a
// request and stopped is idle in the same sense. A send waits until the peer has
// acknowledged its bytes, so a peer that stops reading in the middle of a response
// would hold the whole loop: each connection's send timeout (10 s, a socket option)
// makes the network server reset such a connection, and the others go on.

import ConsoleAPI
import CurioUser
import FileSystemAPI
import HTTPCore
import NetworkAPI

/// A file being sent: what it is, and how far we are.
struct Transfer {
    var path: [UInt8]
    var inode: InodeNumber
    var generation: UInt32
    /// The next byte to send, and how many are still to send.
    var offset: UInt64
    var remaining: UInt64
    /// The cached handle, positioned at `offset`, or nil (opened when needed).
    var handle: FileHandle?
    var handleUsed: UInt64 = 0
}

final class Connection {
    let socket: SocketHandle
    var parser = HTTPRequestParser()
    var lastActivity: UInt64
    /// The head and any in-memory body (listing, error text) still to send.
    var pending: [UInt8] = []
    var pendingSent = 0
    var transfer: Transfer?
    /// Close once the response in progress is sent.
    var closeAfter = false
    /// A response is in progress.
    var responding = false

    init(socket: SocketHandle, now: UInt64) {
        self.socket = socket
        lastActivity = now
    }
}

@main
struct HTTPServer {
    static let maximumConnections = 28
    static let maximumHandles = 6
    static let idleTicks = 15 * Clock.ticksPerSecond
    static let pieceBytes = NetworkLimits.maximumTransfer

    nonisolated(unsafe) static var connections = [Connection?](repeating: nil, count: maximumConnections)
    nonisolated(unsafe) static var openHandles = 0
    nonisolated(unsafe) static var handleClock: UInt64 = 0
    /// One piece on its way out (and what a receive lands in).
    nonisolated(unsafe) static var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 8)

    static func main() {
        var words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        // `quiet`: started by the shell at boot, which says so itself (a line printed
        // later would land in the middle of whatever a person is typing).
        let quiet = words.last == "quiet"
        if quiet { words.removeLast() }
        guard words.count <= 1, let port = words.count > 0 ? UInt16(words[0]) : 80, port != 0 else {
            print("usage: httpd [PORT] [quiet]")
            System.exit(1)
        }
        let listener: SocketHandle
        do throws(NetworkError) {
            listener = try Network.openTCP()
            try Network.bind(listener, port: port)
            try Network.listen(listener, backlog: NetworkLimits.maximumBacklog)
        } catch {
            print("httpd: port \(port): " + error.explanation.description)
            System.exit(2)
        }
        if !quiet { print("httpd listening on port \(port)") }
        var start = 0
        while true {
            let now = System.clock()
            var interest = PollInterest()
            var count = 0
            var deadline = UInt64.max
            for case let connection? in connections {
                count += 1
                if connection.responding {
                    interest.insert(writable: connection.socket)
                } else {
                    interest.insert(readable: connection.socket)
                    deadline = min(deadline, connection.lastActivity + idleTicks)
                }
            }
            if count < maximumConnections { interest.insert(readable: listener) }
            let timeout = deadline == UInt64.max ? NetworkLimits.pollForever
                : UInt(deadline > now ? (deadline - now) / Clock.ticksPerMillisecond + 1 : 0)
            let ready: PollInterest
            do throws(NetworkError) {
                ready = try Network.poll(interest, timeoutMilliseconds: timeout)
            } catch {
                print("httpd: poll: " + error.explanation.description)
                System.exit(2)
            }
            if ready.isReadable(listener) { acceptAll(listener) }
            for step in 0..<maximumConnections {
                let slot = (start + step) % maximumConnections
                guard let connection = connections[slot] else { continue }
                if connection.responding {
                    if ready.isWritable(connection.socket) { sendPiece(connection, slot: slot) }
                } else if ready.isReadable(connection.socket) {
                    receive(connection, slot: slot)
                }
            }
            start = (start + 1) % maximumConnections
            closeIdle(now: System.clock())
        }
    }

    // MARK: Connections

    static func acceptAll(_ listener: SocketHandle) {
        while let slot = connections.firstIndex(where: { $0 == nil }) {
            let socket: SocketHandle
            do throws(NetworkError) {
                socket = try Network.accept(listener, nonblocking: true).socket
            } catch {
                // wouldBlock: none left; anything else: that connection is gone already.
                return
            }
            // A peer that stops reading shuts its window, and a send waits for it: after
            // 10 s the network server resets that connection and the loop goes on.
            try? Network.setOption(socket, .sendTimeout, milliseconds: sendTimeoutMilliseconds)
            connections[slot] = Connection(socket: socket, now: System.clock())
        }
    }

    /// How long one piece may wait for the peer to take it (see `acceptAll`).
    static let sendTimeoutMilliseconds: UInt32 = 10_000

    static func drop(_ slot: Int, abort: Bool) {
        guard let connection = connections[slot] else { return }
        releaseHandle(of: connection)
        try? Network.close(connection.socket, abort: abort)
        connections[slot] = nil
    }

    static func closeIdle(now: UInt64) {
        for slot in 0..<maximumConnections {
            guard let connection = connections[slot], !connection.responding,
                  now > connection.lastActivity + idleTicks else { continue }
            drop(slot, abort: false)
        }
    }

    static func receive(_ connection: Connection, slot: Int) {
        let room = min(connection.parser.freeSpace, scratch.count)
        guard room > 0 else { return }
        let count: Int
        do throws(NetworkError) {
            count = try Network.receive(on: connection.socket, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<room]),
                                        nonblocking: true)
        } catch .wouldBlock {
            return
        } catch {
            drop(slot, abort: true)
            return
        }
        guard count > 0 else {
            // The peer closed: nothing left to answer (a complete request would have
            // started a response already), so we close too.
            drop(slot, abort: false)
            return
        }
        connection.lastActivity = System.clock()
        _ = connection.parser.feed(UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
        startNextResponse(connection)
    }

    /// Starts answering the next request in the parser, if a whole one is there.
    static func startNextResponse(_ connection: Connection) {
        switch connection.parser.parse() {
        case .needMore:
            return
        case .failed(let error):
            // The framing is unknown after an error: answer and close.
            connection.parser.consumeHead()
            respond(connection, status: error.status, method: .get, close: true, detail: "")
        case .complete(let head):
            connection.parser.consumeHead()
            answer(head, on: connection)
        }
    }

    /// Sends the next piece: what is left of the head (and in-memory body), topped up
    /// with file bytes.
    static func sendPiece(_ connection: Connection, slot: Int) {
        var used = 0
        if connection.pendingSent < connection.pending.count {
            used = min(scratch.count, connection.pending.count - connection.pendingSent)
            for index in 0..<used { scratch[index] = connection.pending[connection.pendingSent + index] }
        }
        var fileBytes = 0
        if used < scratch.count, var transfer = connection.transfer, transfer.remaining > 0 {
            let wanted = Int(min(UInt64(scratch.count - used), transfer.remaining))
            do throws(FileSystemError) {
                let handle = try handle(for: &transfer)
                fileBytes = try FileSystem.read(handle, into: UnsafeMutableRawBufferPointer(rebasing: scratch[used..<used + wanted]))
            } catch {
                connection.transfer = transfer
                drop(slot, abort: true)  // the head promised bytes we cannot give
                return
            }
            guard fileBytes == wanted else {
                // The file shrank under us: the promised length cannot be kept.
                connection.transfer = transfer
                drop(slot, abort: true)
                return
            }
            transfer.offset += UInt64(fileBytes)
            transfer.remaining -= UInt64(fileBytes)
            connection.transfer = transfer
        }
        do throws(NetworkError) {
            try Network.send(UnsafeRawBufferPointer(rebasing: scratch[0..<used + fileBytes]), on: connection.socket)
        } catch {
            drop(slot, abort: true)
            return
        }
        connection.pendingSent += used
        connection.lastActivity = System.clock()
        guard connection.pendingSent == connection.pending.count, (connection.transfer?.remaining ?? 0) == 0 else {
            return
        }
        // Done with this response.
        releaseHandle(of: connection)
        connection.transfer = nil
        connection.pending.removeAll(keepingCapacity: true)
        connection.pendingSent = 0
        connection.responding = false
        if connection.closeAfter {
            drop(slot, abort: false)
        } else {
            startNextResponse(connection)
        }
    }

    // MARK: The handle cache

    /// An open handle for the transfer at its offset: the cached one, or a new one
    /// (closing the least recently used of another transfer if the cache is full).
    static func handle(for transfer: inout Transfer) throws(FileSystemError) -> FileHandle {
        handleClock += 1
        transfer.handleUsed = handleClock
        if let handle = transfer.handle { return handle }
        if openHandles >= maximumHandles { evictOldestHandle() }
        let handle = try transfer.path.withUnsafeBytes { path in
            Result { () throws(FileSystemError) in try FileSystem.open(path, .read) }
        }.get()
        openHandles += 1
        transfer.handle = handle
        let status = try FileSystem.fstat(handle)
        guard status.inode == transfer.inode, status.generation == transfer.generation else {
            // Another file now has this name.
            throw .staleHandle
        }
        if transfer.offset > 0 { _ = try FileSystem.seek(handle, to: Int64(transfer.offset)) }
        return handle
    }

    static func releaseHandle(of connection: Connection) {
        guard let handle = connection.transfer?.handle else { return }
        try? FileSystem.close(handle)
        connection.transfer?.handle = nil
        openHandles -= 1
    }

    static func evictOldestHandle() {
        var oldest: Connection? = nil
        for case let connection? in connections {
            guard let transfer = connection.transfer, transfer.handle != nil else { continue }
            if oldest == nil || transfer.handleUsed < oldest!.transfer!.handleUsed { oldest = connection }
        }
        if let oldest { releaseHandle(of: oldest) }
    }
}

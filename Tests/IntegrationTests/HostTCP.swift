// A plain TCP client on the host, for talking to Curio through QEMU's host forwards
// (127.0.0.1 only), and a free port to forward from.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class HostTCP: @unchecked Sendable {
    private let socket: Int32

    /// Connects to 127.0.0.1:`port`, trying again until `timeout` (QEMU may not be
    /// listening yet). slirp accepts before the guest does: a connect proves nothing
    /// about the guest, only data does.
    /// `receiveBuffer`: the host's socket buffer (0: the system's), small to make a
    /// peer that stops reading shut its window soon.
    init(port: UInt16, timeout: TimeInterval = 20, receiveBuffer: Int32 = 0) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let candidate = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard candidate >= 0 else { throw POSIXError(.EIO) }
            if receiveBuffer > 0 {
                var size = receiveBuffer
                setsockopt(candidate, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(candidate, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if connected == 0 {
                socket = candidate
                return
            }
            close(candidate)
            guard Date() < deadline else { throw POSIXError(.ECONNREFUSED) }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    deinit { close(socket) }

    /// A TCP port on 127.0.0.1 that is free now.
    static func freePort() -> UInt16 {
        let probe = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw POSIXError(.EPIPE) }
            sent += count
        }
    }

    /// Up to `limit` bytes, waiting at most `timeout`; empty at the end of the stream;
    /// nil on a timeout; throws on a reset.
    func receive(limit: Int = 65536, timeout: TimeInterval) throws -> [UInt8]? {
        var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = recv(socket, &buffer, limit, 0)
        guard count >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return Array(buffer[0..<count])
    }

    /// Exactly `count` bytes, or what came before a silence of `timeout` or the end.
    func receive(exactly count: Int, timeout: TimeInterval) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            guard let piece = try receive(limit: min(65536, count - bytes.count), timeout: timeout), !piece.isEmpty else {
                break
            }
            bytes += piece
        }
        return bytes
    }

    func shutdownSending() {
        _ = Glibc.shutdown(socket, Int32(SHUT_WR))
    }
}

/// A one-file HTTP/1.1 server on 127.0.0.1, for Curio's `fetch` to download from
/// through a guest forward: every request gets `body`, with its length, then the
/// connection is closed.
final class HostHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let body: [UInt8]
    private(set) var requests: [String] = []
    private let lock = NSLock()

    init(body: [UInt8]) throws {
        self.body = body
        let listener = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in serve() }.start()
    }

    deinit { close(listener) }

    var requestsSeen: [String] {
        lock.lock()
        defer { lock.unlock() }
        return requests
    }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            var head = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !head.suffix(4).elementsEqual([13, 10, 13, 10]) && head.count < 16384 {
                let count = recv(connection, &buffer, buffer.count, 0)
                guard count > 0 else { break }
                head += buffer[0..<count]
            }
            lock.lock()
            requests.append(String(decoding: head, as: UTF8.self))
            lock.unlock()
            let response = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
            var sent = 0
            while sent < response.count {
                let count = response[sent...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard count > 0 else { break }
                sent += count
            }
            close(connection)
        }
    }
}

// fetch URL PATH: downloads one http:// URL into a file.
//
//   fetch http://10.0.2.2:8000/notes.txt /notes.txt
//   fetch: 1234 bytes to /notes.txt
//
// One request, `Connection: close`, so the end of the body is never in doubt: the
// server's framing (Content-Length, chunked, or the end of the connection, RFC 9112
// §6.3) says where it ends, and a connection that ends before the framing does is an
// error, not a short file passed off as the whole. Bytes go to the file as they
// arrive, 4 KiB at a time, so a file of any size needs no more memory than that.
//
// A server that sends nothing for 20 s has gone (`silenceMilliseconds`): without a
// bound, a connection whose other end vanished without a reset — its program ended
// while its network server was restarting — would be waited on for ever; so would a
// server that accepted and then never answered.
//
// The file is created (or truncated) only once the server answered 200: a 404 must
// not destroy what was at PATH. Every failure prints one line saying which party
// failed (the URL, the network, the server, the filesystem) and exits with status 1,
// so a script can tell success (0) from failure.

import ConsoleAPI
import CurioUser
import FileSystemAPI
import HTTPCore
import NetworkAPI

enum FetchError: Error {
    case url(HTTPURLError)
    case network(NetworkError)
    case response(HTTPResponseError)
    case chunk(HTTPChunkError)
    case status(Int)
    case closedEarly(received: UInt64)
    case file(FileSystemError)
}

@main
struct HTTPFetch {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        guard words.count == 2 else {
            print("usage: fetch URL PATH")
            System.exit(2)
        }
        let path = words[1].hasPrefix("/") ? String(words[1]) : "/" + words[1]
        do throws(FetchError) {
            let count = try fetch(url: Array(words[0].utf8), to: Array(path.utf8))
            print("fetch: \(count) bytes to " + path)
            System.exit(0)
        } catch {
            print("fetch: " + explain(error, path: path))
            System.exit(1)
        }
    }

    static func explain(_ error: FetchError, path: String) -> String {
        switch error {
        case .url(let reason): "bad URL: " + reason.description.description
        case .network(.connectionRefused): "connection refused (nothing listens at that port)"
        case .network(.connectionReset): "connection reset by the server"
        case .network(.connectionTimedOut): "connection timed out (the server stopped answering)"
        case .network(.timedOut): "the server sent nothing for \(silenceMilliseconds / 1000) s"
        case .network(.noDevice): "no network device"
        case .network(.badOperation): "the network server does not speak TCP yet"
        case .network(let other): "network error: " + other.explanation.description
        case .response(let reason): "bad response from the server: " + reason.description.description
        case .chunk: "bad chunked body from the server"
        case .status(let status): "the server answered \(status), not 200: nothing written"
        case .closedEarly(let received): "the server closed the connection after \(received) bytes of the body"
        case .file(let reason): path + ": " + reason.name.description
        }
    }

    /// How long a receive waits for the server's next bytes (see the top of this file).
    static let silenceMilliseconds: UInt32 = 20_000

    /// Downloads `url` into the file at `path`; returns the body's size.
    static func fetch(url text: [UInt8], to path: [UInt8]) throws(FetchError) -> UInt64 {
        let url: HTTPURL
        do throws(HTTPURLError) { url = try HTTPURL.parse(text) } catch { throw .url(error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumTransfer, alignment: 8)
        defer { buffer.deallocate() }
        let socket = try network { () throws(NetworkError) in try Network.openTCP() }
        // Whatever happens, the connection is dropped at once: we have all we want or
        // nothing more to say.
        defer { try? Network.close(socket, abort: true) }
        _ = try network { () throws(NetworkError) in
            try Network.connect(socket, to: Endpoint(address: url.address, port: url.port))
            try Network.setOption(socket, .receiveTimeout, milliseconds: silenceMilliseconds)
        }
        var request = [UInt8]()
        request.append(ascii: "GET ")
        request.append(contentsOf: url.target)
        request.append(ascii: " HTTP/1.1\r\nHost: ")
        request.append(contentsOf: url.host)
        request.append(ascii: "\r\nUser-Agent: Curio-fetch\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        // (withUnsafeBytes rethrows untyped errors: the Result carries the typed one out.)
        try network { () throws(NetworkError) in
            try request.withUnsafeBytes { bytes in
                Result { () throws(NetworkError) in try Network.send(bytes, on: socket) }
            }.get()
        }

        // The head; interim 1xx answers are skipped (RFC 9110 §15.2).
        var parser = HTTPResponseParser()
        var info: HTTPResponseInfo
        var early: [UInt8]
        while true {
            let count = try receive(socket, buffer)
            guard count > 0 else { throw .closedEarly(received: 0) }
            var result = parser.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            while case .complete(let head) = result, head.status < 200 {
                let rest = parser.takeRemainder()
                result = parser.feed(rest)
            }
            switch result {
            case .needMore: continue
            case .failed(let reason): throw .response(reason)
            case .complete(let head): info = head
            }
            early = parser.takeRemainder()
            break
        }
        guard info.status == 200 else { throw .status(info.status) }

        let file: FileHandle
        do throws(FileSystemError) {
            file = try path.withUnsafeBytes { bytes in
                Result { () throws(FileSystemError) in try FileSystem.open(bytes, [.write, .create, .truncate]) }
            }.get()
        } catch {
            throw .file(error)
        }
        var fileOpen = true
        defer { if fileOpen { try? FileSystem.close(file) } }

        var body = Body(framing: info.framing, file: file)
        // The body's first bytes came with the head; they go through the buffer too,
        // in pieces that fit it.
        var offset = 0
        while offset < early.count && !body.done {
            let count = min(buffer.count, early.count - offset)
            for index in 0..<count { buffer[index] = early[offset + index] }
            try body.take(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
            offset += count
        }
        while !body.done {
            let count = try receive(socket, buffer)
            if count == 0 {
                guard case .untilClose = info.framing else { throw .closedEarly(received: body.written) }
                break
            }
            try body.take(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        }
        fileOpen = false
        do throws(FileSystemError) { try FileSystem.close(file) } catch { throw .file(error) }
        return body.written
    }

    static func network<R>(_ body: () throws(NetworkError) -> R) throws(FetchError) -> R {
        do throws(NetworkError) { return try body() } catch { throw .network(error) }
    }

    static func receive(_ socket: SocketHandle, _ buffer: UnsafeMutableRawBufferPointer) throws(FetchError) -> Int {
        try network { () throws(NetworkError) in try Network.receive(on: socket, into: buffer) }
    }
}

/// The body's bytes on their way to the file, by the response's framing.
struct Body {
    let framing: HTTPBodyFraming
    let file: FileHandle
    var written: UInt64 = 0
    var chunks = HTTPChunkedDecoder()
    var done: Bool

    init(framing: HTTPBodyFraming, file: FileHandle) {
        self.framing = framing
        self.file = file
        if case .length(0) = framing { done = true } else { done = false }
    }

    /// Takes bytes that arrived (decoding chunks in place) and writes the data.
    mutating func take(_ bytes: UnsafeMutableRawBufferPointer) throws(FetchError) {
        var data = bytes
        switch framing {
        case .length(let length):
            // Bytes past the length are not ours (the server should not send them).
            let wanted = Int(min(UInt64(bytes.count), length - written))
            data = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<wanted])
            done = written + UInt64(wanted) == length
        case .chunked:
            let decoded: Int
            do throws(HTTPChunkError) { decoded = try chunks.decode(bytes).data } catch { throw .chunk(error) }
            data = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<decoded])
            done = chunks.isDone
        case .untilClose:
            break
        }
        guard data.count > 0 else { return }
        do throws(FileSystemError) {
            guard try FileSystem.write(file, from: UnsafeRawBufferPointer(data)) == data.count else { throw .noSpace }
        } catch {
            throw .file(error)
        }
        written += UInt64(data.count)
    }
}

// httpd's answers: from a parsed request to the bytes (and the file range) to send.
//
// Everything is decided here, before the first byte goes out, because the head must
// say the length: a file's size comes from `stat`, a listing is built in memory
// whole (a directory of a few hundred names is a few tens of KiB), an error's text
// is a line. HEAD gets the same head as GET and no body. Decoding the target (which
// refuses ".." above the root, %00 and malformed escapes) is HTTPCore's; what names
// a file here is only ever its result.

import CurioUser
import FileSystemAPI
import HTTPCore
import NetworkAPI

extension HTTPServer {
    static func answer(_ request: HTTPRequestHead, on connection: Connection) {
        let close = !request.keepAlive
        let path: [UInt8]
        do throws(HTTPTargetError) {
            path = try HTTPTarget.decodePath(request.target, maximumLength: FileSystemLimits.maxPathBytes)
        } catch {
            respond(connection, status: error.status, method: request.method, close: close, detail: "")
            return
        }
        let status: FileStatus
        do throws(FileSystemError) {
            status = try path.withUnsafeBytes { bytes in
                Result { () throws(FileSystemError) in try FileSystem.stat(bytes) }
            }.get()
        } catch {
            fileSystemFailure(error, connection: connection, method: request.method, close: close)
            return
        }
        let trailingSlash = path.last == UInt8(ascii: "/")
        switch status.type {
        case .directory where !trailingSlash:
            var head = HTTPResponseHead(status: .movedPermanently, contentLength: 0, close: close)
            head.location = HTTPTarget.encodePath(path + [UInt8(ascii: "/")])
            start(connection, head: head, body: [], method: request.method)
        case .directory:
            listDirectory(path, connection: connection, method: request.method, close: close)
        case .regular where !trailingSlash:
            sendFile(path, status: status, range: request.range, connection: connection, method: request.method,
                     close: close)
        default:
            respond(connection, status: .notFound, method: request.method, close: close, detail: "")
        }
    }

    static func sendFile(_ path: [UInt8], status: FileStatus, range: HTTPRangeHeader, connection: Connection,
                         method: HTTPMethod, close: Bool) {
        let contentType = HTTPContentType.forPath(path)
        var head: HTTPResponseHead
        var first: UInt64 = 0
        switch range.resolve(size: status.size) {
        case .whole:
            head = HTTPResponseHead(status: .ok, contentLength: status.size, contentType: contentType, close: close)
        case .partial(let from, let last):
            first = from
            head = HTTPResponseHead(status: .partialContent, contentLength: last - from + 1, contentType: contentType,
                                    close: close)
            head.contentRange = (first: from, last: last, size: status.size)
        case .unsatisfiable:
            head = HTTPResponseHead(status: .rangeNotSatisfiable, contentLength: 0, close: close)
            head.unsatisfiedRangeSize = status.size
        }
        start(connection, head: head, body: [], method: method)
        if method == .get && head.contentLength > 0 && head.status != .rangeNotSatisfiable {
            connection.transfer = Transfer(path: path, inode: status.inode, generation: status.generation,
                                           offset: first, remaining: head.contentLength)
        }
    }

    static func listDirectory(_ path: [UInt8], connection: Connection, method: HTTPMethod, close: Bool) {
        var listing = HTTPDirectoryListing(path: path)
        do throws(FileSystemError) {
            try path.withUnsafeBytes { bytes in
                Result { () throws(FileSystemError) in
                    try FileSystem.readDirectory(bytes) { entry in
                        entry.withName { name in
                            let dot = name.count == 1 && name[0] == UInt8(ascii: ".")
                            let dotDot = name.count == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".")
                            if !dot && !dotDot { listing.add(name: name, isDirectory: entry.type == .directory) }
                        }
                        return true
                    }
                }
            }.get()
        } catch {
            fileSystemFailure(error, connection: connection, method: method, close: close)
            return
        }
        listing.finish()
        let head = HTTPResponseHead(status: .ok, contentLength: UInt64(listing.html.count),
                                    contentType: HTTPContentType.html, close: close)
        start(connection, head: head, body: listing.html, method: method)
    }

    /// 404 for what is not there, 414 for a name too long, 500 (with the reason) for
    /// a filesystem that fails.
    static func fileSystemFailure(_ error: FileSystemError, connection: Connection, method: HTTPMethod, close: Bool) {
        switch error {
        case .noSuchFile, .notADirectory, .invalidArgument:
            respond(connection, status: .notFound, method: method, close: close, detail: "")
        case .nameTooLong:
            respond(connection, status: .uriTooLong, method: method, close: close, detail: "")
        default:
            var detail = "the filesystem failed: " + error.name.description
            if error == .notMounted, let explanation = (try? FileSystem.mountStatus())?.explanation {
                detail = explanation
            }
            respond(connection, status: .internalServerError, method: method, close: close, detail: detail)
        }
    }

    /// A short text answer: the status line's words, and `detail` if any.
    static func respond(_ connection: Connection, status: HTTPStatus, method: HTTPMethod, close: Bool, detail: String) {
        var body = [UInt8]()
        body.append(decimal: UInt64(status.code))
        body.append(UInt8(ascii: " "))
        body.append(ascii: status.reason)
        body.append(UInt8(ascii: "\n"))
        if !detail.isEmpty {
            body.append(contentsOf: detail.utf8)
            body.append(UInt8(ascii: "\n"))
        }
        let head = HTTPResponseHead(status: status, contentLength: UInt64(body.count), contentType: HTTPContentType.text,
                                    close: close)
        start(connection, head: head, body: body, method: method)
    }

    /// Queues the head and (but for HEAD) the in-memory body; the loop sends them.
    static func start(_ connection: Connection, head: HTTPResponseHead, body: [UInt8], method: HTTPMethod) {
        connection.pending.removeAll(keepingCapacity: true)
        head.append(to: &connection.pending)
        if method == .get { connection.pending.append(contentsOf: body) }
        connection.pendingSent = 0
        connection.closeAfter = head.close
        connection.responding = true
    }
}

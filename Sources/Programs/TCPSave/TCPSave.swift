// tcpsave PORT PATH [crash=N]: accepts one TCP connection on PORT and saves what its
// peer sends into PATH, until the peer closes; resumes on the same connection after
// its own crash (paper §4: "if the SSR holds TCP connection information from the
// network server, the TCP connection can be resumed without interruption after a
// crash and restart of the client").
//
// tcpsave keeps its SSRs across its crashes (system.toml `keep_ssrs`): restarted, it
// asks the network server for its sockets (`Network.sockets`) and fs for its files
// (`FileSystem.openHandles`), takes its connection and the file it writes, and goes on
// receiving. The connection never left the network server: its peer sees neither a
// reset nor a gap. What a crash can lose is a chunk already received but not yet
// written (it is in no server's keeping then): the restarted copy compares what the
// connection delivered with what the file holds and says so. `crash=N` makes the first
// incarnation crash after writing N chunks, where nothing is in its hands.

import ConsoleAPI
import CurioUser
import FileSystemAPI
import NetworkAPI
import UserArch

@main
struct TCPSave {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        let restarts = (try? System.taskInfo(slot: System.whoAmI().index))?.restarts ?? 0
        if restarts > 0 {
            resume(after: Int(restarts))
        }
        let positional = words.filter { !$0.contains("=") }
        guard positional.count == 2, let port = UInt16(positional[0]), port != 0 else {
            print("usage: tcpsave PORT PATH [crash=N]")
            System.exit(2)
        }
        let crashAfter = words.first { $0.hasPrefix("crash=") }.flatMap { Int($0.dropFirst(6)) }
        let connection: SocketHandle
        do throws(NetworkError) {
            let listener = try Network.openTCP()
            try Network.bind(listener, port: port)
            try Network.listen(listener, backlog: 1)
            print("tcpsave listening on port \(port)")
            connection = try Network.accept(listener).socket
            try Network.close(listener)
        } catch {
            print("tcpsave: port \(port): " + error.explanation.description)
            System.exit(1)
        }
        let file: FileHandle
        do throws(FileSystemError) {
            file = try withUTF8Bytes(positional[1]) { path throws(FileSystemError) in
                try FileSystem.open(path, [.write, .create, .truncate])
            }
        } catch {
            print("tcpsave: \(positional[1]): \(error.name)")
            System.exit(1)
        }
        save(from: connection, to: file, crashAfter: crashAfter)
    }

    /// The continuation after a crash: the same connection and file, from where they are.
    static func resume(after restarts: Int) -> Never {
        do throws(NetworkError) {
            let sockets = try Network.sockets()
            guard let connection = sockets.first(where: { $0.kind == SocketKind.tcp.rawValue
                && $0.state != TCPState.listen.rawValue }), let socket = connection.socket else {
                print("tcpsave: restarted (\(restarts)), but the network server holds no connection for it")
                System.exit(1)
            }
            let handles = (try? FileSystem.openHandles()) ?? []
            guard let file = handles.first(where: { $0.flags.contains(.write) }) else {
                print("tcpsave: restarted (\(restarts)), but fs holds no file for it")
                System.exit(1)
            }
            let lost = connection.bytesReceived > file.offset ? connection.bytesReceived - file.offset : 0
            print("tcpsave: restarted (\(restarts)); the connection from port \(connection.remote.port) is still "
                  + "open, \(connection.bytesReceived) bytes received, \(file.offset) saved"
                  + (lost > 0 ? "; \(lost) bytes were lost in the crash" : "") + "; resuming")
            save(from: socket, to: file.handle, crashAfter: nil)
        } catch {
            print("tcpsave: restarted, but: " + error.explanation.description)
            System.exit(1)
        }
    }

    static func save(from connection: SocketHandle, to file: FileHandle, crashAfter: Int?) -> Never {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumTransfer, alignment: 8)
        var chunks = 0
        var saved: UInt64 = 0
        do throws(NetworkError) {
            while true {
                let count = try Network.receive(on: connection, into: buffer)
                if count == 0 { break }
                do throws(FileSystemError) {
                    var written = 0
                    while written < count {
                        written += try FileSystem.write(file, from: UnsafeRawBufferPointer(rebasing: buffer[written..<count]))
                    }
                    saved = try FileSystem.seek(file, to: 0, from: .current)
                } catch {
                    print("tcpsave: writing: \(error.name)")
                    System.exit(1)
                }
                chunks += 1
                if chunks == crashAfter {
                    print("tcpsave: crashing after \(chunks) chunks")
                    curio_store64(0, 0xDEAD)
                }
            }
            try Network.close(connection)
        } catch {
            print("tcpsave: receiving: " + error.explanation.description)
            System.exit(1)
        }
        try? FileSystem.close(file)
        print("tcpsave: saved \(saved) bytes")
        System.exit(0)
    }
}

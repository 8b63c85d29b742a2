// tcpecho [PORT]: the TCP echo service (RFC 862) on PORT (default 7).
//
// Listens, and serves one connection at a time: every byte received is sent back
// until the peer closes its side, then the connection is closed and the next one
// accepted (others wait in the listen backlog meanwhile). One at a time keeps the
// program a plain loop; the echo service has no use for more, and httpd shows the
// poll loop for many connections.
//
//   tcpecho listening on port 7
//
// A connection that fails (reset, timed out) is closed and forgotten: it is the
// peer's business, not a reason to stop serving. Only a failure of the listener
// itself ends the program. Its sockets live in its SSR at the network server, so a
// crash of that server costs it nothing: every byte in flight is either in a held
// request or still the peer's to send again (see NetworkAPI).

import ConsoleAPI
import CurioUser
import NetworkAPI

@main
struct TCPEcho {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        guard words.count <= 1, let port = words.count > 0 ? UInt16(words[0]) : 7, port != 0 else {
            print("usage: tcpecho [PORT]")
            System.exit(1)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumTransfer, alignment: 8)
        let listener: SocketHandle
        do throws(NetworkError) {
            listener = try Network.openTCP()
            try Network.bind(listener, port: port)
            try Network.listen(listener, backlog: 4)
        } catch {
            print("tcpecho: port \(port): " + error.explanation.description)
            System.exit(2)
        }
        print("tcpecho listening on port \(port)")
        while true {
            let connection: SocketHandle
            do throws(NetworkError) {
                connection = try Network.accept(listener).socket
            } catch {
                print("tcpecho: accept: " + error.explanation.description)
                System.exit(2)
            }
            do throws(NetworkError) {
                while true {
                    let count = try Network.receive(on: connection, into: buffer)
                    if count == 0 { break }
                    try Network.send(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), on: connection)
                }
                try Network.close(connection)
            } catch {
                // The peer went away: drop the connection without waiting for it.
                try? Network.close(connection, abort: true)
            }
        }
    }
}

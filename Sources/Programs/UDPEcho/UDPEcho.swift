// udpecho [PORT [COUNT]]: the UDP echo service (RFC 862) on PORT (default 7).
//
// Binds a UDP socket and sends every datagram back to where it came from, COUNT
// datagrams (default: for ever), then prints what it did:
//
//   udpecho listening on port 7
//   udpecho done: 100 datagrams, 12800 bytes
//
// Its socket lives in its SSR at the network server, so a crash of the server costs
// it nothing but the datagrams in flight at that moment, which its peer sends again.

import ConsoleAPI
import CurioUser
import NetworkAPI

@main
struct UDPEcho {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        guard words.count <= 2, let port = words.count > 0 ? UInt16(words[0]) : 7, port != 0,
              let count = words.count > 1 ? Int(words[1]) : Int.max, count > 0 else {
            print("usage: udpecho [PORT [COUNT]]")
            System.exit(1)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumDatagram, alignment: 8)
        do throws(NetworkError) {
            let socket = try Network.openUDP()
            try Network.bind(socket, port: port)
            print("udpecho listening on port \(port)")
            var echoed = 0
            var bytes = 0
            while echoed < count {
                let datagram = try Network.receiveDatagram(on: socket, into: buffer)
                try Network.sendDatagram(UnsafeRawBufferPointer(rebasing: buffer[0..<datagram.count]), on: socket,
                                 to: datagram.source)
                echoed += 1
                bytes += datagram.count
            }
            try Network.close(socket)
            print("udpecho done: \(echoed) datagrams, \(bytes) bytes")
        } catch {
            print("udpecho: " + error.explanation.description)
            System.exit(2)
        }
    }
}

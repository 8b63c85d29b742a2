// netbench: the network benchmarks, counted in retired instructions.
//
//   netbench sink [PORT]        the discard service (RFC 863) on PORT (default 9):
//                               every connection's bytes read and dropped, one
//                               connection at a time, until the machine stops
//   netbench [RUNS] [HOST]      RUNS (default 5) runs of the phases below against the
//                               sink on this machine and, given HOST, one at HOST:9
//   netbench realtime [HOST]    the transfers once more, timed by the clock, for a
//                               boot without -icount: bytes per second
//
// A run's phases, each bracketed by two `rdinstret` reads:
//
//   net-loopback          1 MiB sent to 10.0.2.15:9 in 4 KiB sends (per KiB)
//   net-loopback-connect  8 connections to it, each connected and closed (per connection)
//   net-host              1 MiB sent to HOST:9 (per KiB)
//   net-host-connect      8 connections to HOST:9 (per connection)
//
// A loopback phase covers the whole system's work for it: this program's, the
// kernel's, the network server's for both ends, and the sink's. Over the wire it
// covers Curio's side only. As with fsbench, the phases wait (for the peer's
// acknowledgments), and while the guest idles the instruction counter follows
// QEMU's clock, not the code: `make bench` counts the instructions between these
// reads with its QEMU plugin instead, idle loop excluded, and relies on exactly two
// reads per phase, in the order listed (the host phases only with HOST).
//
// A send is answered once the peer acknowledged every byte (NetworkAPI), so a
// phase's end means the bytes arrived, not that they were queued. A connection phase
// closes each connection gracefully, so it counts the handshake, the FIN exchange
// and the sink's accept. Those leave this side in TIME-WAIT for 2 s; between runs
// the program waits that out (outside the brackets), so every run finds the server's
// connection table as the first did.
//
// Output, one line per phase in the kernel benchmarks' form (`make bench` reads
// `iterations`), and for `realtime` one line per transfer:
//
//   bench net-loopback median=N p10=N p90=N min=N max=N iterations=RUNS unit=KiB
//   bench realtime-net-loopback bytes_per_second=N
//
// A failure prints `netbench: PHASE: ERROR` and exits 1.

import ConsoleAPI
import CurioUser
import NetworkAPI
import UserArch

@main
struct NetworkBench {
    static let defaultRuns = 5
    static let discardPort: UInt16 = 9
    static let pieceBytes = 4096
    static let transferPieces = 256                         // 1 MiB
    static let realtimePieces = 1024                        // 4 MiB
    static let connections = 8
    /// Longer than TIME-WAIT (2 s), so a run starts with no connection left over.
    static let pauseBetweenRuns: UInt = 2100

    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        if words.first == "sink" {
            guard words.count <= 2, let port = words.count == 2 ? UInt16(words[1]) : discardPort, port != 0 else {
                usage()
            }
            sink(port: port)
        }
        let realtime = words.first == "realtime"
        var rest = realtime ? Array(words.dropFirst()) : words
        var runs = defaultRuns
        if !realtime, let first = rest.first, let value = Int(first) {
            guard value > 0, value <= 100 else { usage() }
            runs = value
            rest.removeFirst()
        }
        var host: IPv4Address?
        if let text = rest.first {
            host = Array(text.utf8).withUnsafeBytes { IPv4Address.parse($0) }
            guard host != nil, rest.count == 1 else { usage() }
        }
        let loopback = Endpoint(address: (try? Network.interface().address) ?? 0, port: discardPort)
        let remote = host.map { Endpoint(address: $0.rawValue, port: discardPort) }
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 8)
        for index in 0..<pieceBytes { piece[index] = UInt8(truncatingIfNeeded: index &* 7) }
        waitForSink(loopback)
        if realtime {
            timed("realtime-net-loopback", to: loopback, piece)
            if let remote { timed("realtime-net-host", to: remote, piece) }
            System.exit(0)
        }
        var loopbackSend: [UInt64] = [], loopbackConnect: [UInt64] = []
        var hostSend: [UInt64] = [], hostConnect: [UInt64] = []
        for run in 0..<runs {
            if run > 0 { pause(pauseBetweenRuns) }
            loopbackSend.append(BenchReport.perUnit(phase("net-loopback") { () throws(NetworkError) in
                try send(pieces: transferPieces, to: loopback, piece) }, units: transferPieces * pieceBytes / 1024))
            loopbackConnect.append(BenchReport.perUnit(phase("net-loopback-connect") { () throws(NetworkError) in
                try connectAndClose(connections, to: loopback) }, units: connections))
            if let remote {
                hostSend.append(BenchReport.perUnit(phase("net-host") { () throws(NetworkError) in
                    try send(pieces: transferPieces, to: remote, piece) }, units: transferPieces * pieceBytes / 1024))
                hostConnect.append(BenchReport.perUnit(phase("net-host-connect") { () throws(NetworkError) in
                    try connectAndClose(connections, to: remote) }, units: connections))
            }
        }
        print(BenchReport.line("net-loopback", loopbackSend, unit: "KiB"))
        print(BenchReport.line("net-loopback-connect", loopbackConnect, unit: "connection"))
        if remote != nil {
            print(BenchReport.line("net-host", hostSend, unit: "KiB"))
            print(BenchReport.line("net-host-connect", hostConnect, unit: "connection"))
        }
        System.exit(0)
    }

    static func usage() -> Never {
        print("usage: netbench sink [PORT] | netbench [RUNS] [HOST] | netbench realtime [HOST]")
        System.exit(2)
    }

    // MARK: The sink

    static func sink(port: UInt16) -> Never {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumTransfer, alignment: 8)
        let listener: SocketHandle
        do throws(NetworkError) {
            listener = try Network.openTCP()
            _ = try Network.bind(listener, port: port)
            try Network.listen(listener, backlog: 16)
        } catch {
            print("netbench sink: port \(port): " + error.explanation.description)
            System.exit(1)
        }
        print("netbench sink listening on port \(port)")
        while true {
            guard let connection = try? Network.accept(listener).socket else { continue }
            do throws(NetworkError) {
                while try Network.receive(on: connection, into: buffer) > 0 {}
                try Network.close(connection)
            } catch {
                try? Network.close(connection, abort: true)
            }
        }
    }

    /// The sink is started in the background just before us: connect until it listens
    /// (at most 2 s), outside every bracket.
    static func waitForSink(_ sink: Endpoint) {
        for _ in 0..<100 {
            if let socket = try? Network.openTCP() {
                let connected = (try? Network.connect(socket, to: sink)) != nil

                try? Network.close(socket, abort: !connected)
                if connected { return }
            }
            pause(20)
        }
        print("netbench: no sink listens on port \(discardPort): start `netbench sink &` first")
        System.exit(1)
    }

    // MARK: Phases

    static func phase(_ name: StaticString, _ body: () throws(NetworkError) -> UInt64) -> UInt64 {
        do throws(NetworkError) {
            return try body()
        } catch {
            print("netbench: \(String(name)): " + error.explanation.description)
            System.exit(1)
        }
    }

    /// Connects outside the bracket, brackets the sends, closes outside it.
    static func send(pieces: Int, to destination: Endpoint, _ piece: UnsafeMutableRawBufferPointer)
        throws(NetworkError) -> UInt64 {
        let socket = try Network.openTCP()
        _ = try Network.connect(socket, to: destination)
        let start = curio_read_instret()
        for _ in 0..<pieces { try Network.send(UnsafeRawBufferPointer(piece), on: socket) }
        let instructions = curio_read_instret() &- start
        try Network.close(socket)
        return instructions
    }

    static func connectAndClose(_ count: Int, to destination: Endpoint) throws(NetworkError) -> UInt64 {
        let start = curio_read_instret()
        for _ in 0..<count {
            let socket = try Network.openTCP()
            _ = try Network.connect(socket, to: destination)
            try Network.close(socket)
        }
        return curio_read_instret() &- start
    }

    /// 4 MiB to `destination`, timed by the clock.
    static func timed(_ name: StaticString, to destination: Endpoint, _ piece: UnsafeMutableRawBufferPointer) {
        do throws(NetworkError) {
            let socket = try Network.openTCP()
            _ = try Network.connect(socket, to: destination)
            let start = System.clock()
            for _ in 0..<realtimePieces { try Network.send(UnsafeRawBufferPointer(piece), on: socket) }
            let ticks = max(System.clock() &- start, 1)
            try Network.close(socket)
            let bytes = UInt64(realtimePieces * pieceBytes)
            print("bench \(String(name)) bytes_per_second=\(bytes * System.ticksPerSecond / ticks)")
        } catch {
            print("netbench: \(String(name)): " + error.explanation.description)
            System.exit(1)
        }
    }

    /// Waits `milliseconds`: a poll for no socket answers at its timeout.
    static func pause(_ milliseconds: UInt) {
        _ = try? Network.poll(PollInterest(), timeoutMilliseconds: milliseconds)
    }
}

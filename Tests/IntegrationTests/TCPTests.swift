// TCP on the real machine, reached from the host through QEMU's user networking with
// `restrict=on` and a forward from 127.0.0.1 (the guest reaches nothing else): the
// echo service returns every byte of a stream, and a stream goes on, byte-exact and
// never reset, while the network server is faulted and restarted again and again.

import Foundation
import Testing

@Suite(.serialized) struct TCPTests {
    /// QEMU's arguments for a network device whose guest port 7 is `port` on 127.0.0.1.
    static func forwarding(_ port: UInt16, to guestPort: Int = 7) -> [String] {
        ["-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:\(port)-:\(guestPort)",
         "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"]
    }

    static func bytes(_ count: Int, seed: Int) -> [UInt8] {
        var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// Boots to the prompt with guest port 7 forwarded from a free host port, and starts
    /// `tcpecho` on it.
    static func bootWithEchoService() throws -> (InteractiveMachine, UInt16) {
        let port = HostTCP.freePort()
        let machine = try InteractiveMachine(extra: forwarding(port))
        #expect(machine.waitFor("curio> "))
        machine.type("run tcpecho 7 &")
        #expect(machine.waitFor("tcpecho listening on port 7"), "\(machine.transcript)")
        return (machine, port)
    }

    /// A client that keeps its SSRs resumes its connection after its own crash (paper
    /// §4): tcpsave saves a 200,000-byte stream from the host into a file and crashes
    /// after 10 chunks; restarted, it finds its connection in the network server and its
    /// file in fs and goes on. The host sees its whole stream taken and a clean end, no
    /// reset; the file is the stream byte for byte, and the disk checks clean.
    @Test func aClientCrashingMidStreamResumesOnItsConnection() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("tcpsave")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: nil, blockSize: 1024, megabytes: 16)
        let port = HostTCP.freePort()
        let machine = try InteractiveMachine(extra: Self.forwarding(port, to: 9000) + DiskTools.qemuArguments(image))
        #expect(machine.waitFor("curio> "))
        machine.type("run tcpsave 9000 /saved crash=10 &")
        #expect(machine.waitFor("tcpsave listening on port 9000"), "\(machine.transcript)")
        let peer = try HostTCP(port: port)
        let stream = Self.bytes(200_000, seed: 5)
        // Sent from a thread of its own: a guest that stopped reading would block it.
        let sent = DispatchSemaphore(value: 0)
        let sender = Thread {
            try? peer.send(stream)
            peer.shutdownSending()
            sent.signal()
        }
        sender.start()
        #expect(sent.wait(timeout: .now() + 120) == .success, "the stream was taken whole")
        #expect(machine.waitFor("tcpsave: saved 200000 bytes", timeout: 120), "\(machine.transcript)")
        #expect(try peer.receive(limit: 16, timeout: 30) == [], "a clean end of the stream, no reset")
        let transcript = machine.transcript
        #expect(transcript.contains("tcpsave: crashing after 10 chunks"))
        #expect(transcript.contains("its SSRs kept") && transcript.contains("is still open"))
        #expect(!transcript.contains("lost in the crash"))
        machine.type("poweroff")
        _ = machine.waitForExit(timeout: 30)
        #expect(try OutputRedirectionTests.file("/saved", of: image, in: work) == Data(stream))
        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn: \(check.output)")
    }

    /// Both ends on Curio (loopback), as `make bench` runs them: `netbench` closes
    /// each connection first and the sink closes its end after reading the end of the
    /// stream, so the closed side must still acknowledge the sink's FIN — it once did
    /// not, and the sink's close hung until the retransmissions gave up. Afterwards no
    /// connection is left half closed.
    @Test func loopbackConnectionsCloseFromEitherEndAndTheNetworkBenchmarkRuns() throws {
        let machine = try InteractiveMachine(extra: Self.forwarding(HostTCP.freePort()))
        defer { _ = machine.waitForExit(timeout: 1) }
        #expect(machine.waitFor("curio> "))
        machine.type("run netbench sink &")
        #expect(machine.waitFor("netbench sink listening on port 9"), "\(machine.transcript)")
        machine.type("run netbench 1")
        #expect(machine.waitFor("bench net-loopback-connect median=", timeout: 60), "\(machine.transcript)")
        #expect(machine.transcript.contains("bench net-loopback median="), "\(machine.transcript)")
        #expect(!machine.transcript.contains("netbench:"), "\(machine.transcript)")
        // TIME-WAIT (2 s) over, only the listeners remain.
        machine.type("sleep 2500")
        machine.type("netstat")
        #expect(machine.waitFor("PROTO  STATE"), "\(machine.transcript)")
        var table = ""
        for _ in 0..<100 where !table.contains("curio> ") {
            Thread.sleep(forTimeInterval: 0.1)
            table = machine.transcript.components(separatedBy: "PROTO  STATE").last ?? ""
        }
        for state in ["SYN-", "ESTABLISHED", "FIN-WAIT", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"] {
            #expect(!table.contains(state), "a connection left in \(state):\n\(table)")
        }
        #expect(table.contains("LISTEN"), "\(table)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    @Test func tcpEchoReturnsAStreamByteExactlyAndClosesCleanly() throws {
        let (machine, port) = try Self.bootWithEchoService()
        defer { _ = machine.waitForExit(timeout: 1) }
        let connection = try HostTCP(port: port)
        let data = Self.bytes(1 << 20, seed: 1)
        // Written and read at once: a client that sends everything before reading would
        // stall on the echo's own flow control, as on any TCP.
        let writer = Thread { try? connection.send(data) }
        writer.start()
        let echoed = try connection.receive(exactly: data.count, timeout: 20)
        #expect(echoed.count == data.count && echoed == data, "\(echoed.count) of \(data.count) bytes came back")
        connection.shutdownSending()
        #expect(try connection.receive(timeout: 10) == [], "the end of the stream, then the close")
        machine.type("netstat")
        #expect(machine.waitFor("LISTEN"), "\(machine.transcript.suffix(800))")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// The host's own netcat (`nc -N`: send the file, shut down, print what comes back
    /// until the end) round-trips 256 KiB through `tcpecho`.
    @Test func netcatRoundTripsTheEchoService() throws {
        let (machine, port) = try Self.bootWithEchoService()
        defer { _ = machine.waitForExit(timeout: 1) }
        let work = try DiskTools.temporaryDirectory("netcat")
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("input")
        let data = Self.bytes(256 << 10, seed: 3)
        try Data(data).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["nc", "-N", "-w", "30", "127.0.0.1", "\(port)"]
        process.standardInput = try FileHandle(forReadingFrom: input)
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let echoed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(Array(echoed) == data, "\(echoed.count) of \(data.count) bytes came back")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// Round trips of 400 bytes while every fault kind that strikes the server's own
    /// state strikes the network server, 24 times in all: the connection is never reset
    /// and every byte comes back right. (A flip in the client's own SSR may cost that
    /// client its sockets, reported as `stateLost`, as with every SSR service; the SSR
    /// tests show that.)
    @Test func aTCPStreamSurvivesTwentyFourFaultsOfEveryKindInTheNetworkServer() throws {
        let (machine, port) = try Self.bootWithEchoService()
        defer { _ = machine.waitForExit(timeout: 1) }
        let connection = try HostTCP(port: port)
        let kinds = ["illegal", "reg-flip", "wild-write", "stack-flip", "pointer-flip", "data-flip", "loop",
                     "mutate", "illegal", "reg-flip", "wild-write", "loop"]
        var injected = 0
        var roundTrips = 0
        for round in 0..<(kinds.count * 2 * 6) {
            if round % 6 == 0 {
                let kind = kinds[(round / 6) % kinds.count]
                machine.type("inject net \(kind) next seed=\(round + 1)")
                injected += 1
                #expect(machine.waitFor("armed ", count: injected, timeout: 20), "\(machine.transcript.suffix(600))")
            }
            let message = Self.bytes(400, seed: round)
            try connection.send(message)
            let echoed = try connection.receive(exactly: message.count, timeout: 30)
            guard echoed == message else {
                Issue.record("round \(round): \(echoed.count) bytes, \(echoed == Array(message.prefix(echoed.count)) ? "a prefix" : "wrong bytes")\n\(machine.transcript.suffix(1500))")
                return
            }
            roundTrips += 1
        }
        #expect(roundTrips == kinds.count * 12)
        machine.type("ps")
        #expect(machine.waitFor("RESTARTS"))
        #expect(machine.waitFor("curio> ", count: injected + 3))
        let table = machine.transcript.components(separatedBy: "RESTARTS").last ?? ""
        let restarts = table.split(whereSeparator: \.isNewline).first { $0.contains(" net ") }?
            .split(separator: " ").last.flatMap { Int($0) } ?? 0
        #expect(restarts >= 6, "the illegal instructions and loops restart it at least:\n\(machine.transcript.suffix(3000))")
        connection.shutdownSending()
        #expect(try connection.receive(timeout: 10) == [], "closed cleanly, not reset")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }
}

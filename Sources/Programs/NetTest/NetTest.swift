// nettest: the network workload of fault campaigns and soaks, checked from the console.
//
//   nettest stress CLIENTS ROUNDS [net=N] [every=TICKS] [kind=FAULT]
//                  [trigger=next|after|random|exec] [arg=N] [aim=N] [seed=S] [persistent]
//                                 writes /net-source (a known pattern), starts `httpd`
//                                 on port 80 and CLIENTS downloading clients, and injects
//                                 N faults into the network server as `fstest stress`
//                                 injects them into fs (FaultSchedule's options, the
//                                 same seeds); then the verdict:
//                                 "nettest stress ok clients=... ok=... failed=... error=..."
//   nettest stream ID ROUNDS [UNTIL]
//                                 one downloading client (below): ROUNDS rounds, and more
//                                 until the clock reaches UNTIL; exit 0 ok, 1 wrong bytes
//                                 or fetch crashed, 3 fetch reported an error
//
// Every byte of a download crosses the network server twice — httpd's sends and
// fetch's receives, both Curio's own programs, over the guest's own address — so a
// fault in the server can damage either end's connection. What a client checks is
// what a user of a network would: each round it removes its copy, runs `fetch
// http://10.0.2.15/net-source /copy-ID`, and then
//
//   - fetch must succeed: a reset, a refused connection, lost socket state or 20 s
//     without a byte ends in fetch's own error line and exit status 1, and the client
//     reports it as told (`stream ID ERROR round R`); a fetch that crashed is a client
//     that crashed;
//   - the copy must be the source, byte for byte and no longer: the pattern is a
//     function of the offset, so a piece delivered twice, skipped or moved shows at
//     its first byte (`stream ID FAIL round R: ...`), the silent failure a restart
//     must never cause — fetch itself checks only the length the server announced;
//   - the slowest round's time is reported (`slowest=` in ms); a transfer stalled for
//     good without fetch's bound ending it is a hang, which the campaign's deadline
//     catches.
//
// A restart that loses the server's state (the baseline, without SSRs) ends httpd's
// listener and every connection: the fetch in flight is told, and httpd, told too,
// exits, so every later round is refused — each client fails at its next round.
// Lines use fstest stress's words (`stream ID ok|FAIL|ERROR`), so the campaign reads
// both workloads alike.

import ConsoleAPI
import CurioUser
import FileSystemAPI

@main
struct NetTest {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        switch words.first {
        case "stress":
            guard words.count >= 3, let clients = Int(words[1]), let rounds = Int(words[2]) else { usage() }
            System.exit(stress(clients: clients, rounds: rounds, options: Array(words.dropFirst(3))))
        case "stream":
            guard words.count >= 3, let id = Int(words[1]), let rounds = Int(words[2]) else { usage() }
            let until = words.count > 3 ? UInt64(words[3]) ?? 0 : 0
            System.exit(stream(id: id, rounds: rounds, until: until))
        default: usage()
        }
    }

    static func usage() -> Never {
        print("usage: nettest stress CLIENTS ROUNDS [net=N] [every=TICKS] [kind=FAULT] [trigger=next|after|random|exec]"
              + " [arg=N] [aim=N] [seed=S] [persistent] | stream ID ROUNDS [UNTIL]")
        System.exit(2)
    }

    static let sourcePath = "/net-source"
    /// 96 KiB: 24 of httpd's 4 KiB sends, and a round a fault can land in the middle of.
    static let sourceBytes = 96 * 1024
    static let pieceBytes = 4096

    /// The byte at `offset` of the source: a different byte a piece later, so a piece
    /// out of place shows.
    static func pattern(_ offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (UInt64(offset) &* 0x9E37_79B1 ^ UInt64(offset) >> 12 &* 0x85EB_CA77) >> 11)
    }

    // MARK: stream

    enum StreamFailure: Error {
        case wrong(String)
        case told(String)
    }

    static func stream(id: Int, rounds: Int, until: UInt64) -> Int32 {
        let copy = "/copy-\(id)"
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 8)
        defer { buffer.deallocate() }
        var round = 0
        var slowest: UInt64 = 0
        while round < rounds || System.clock() < until {
            defer { round += 1 }
            let started = System.clock()
            do throws(StreamFailure) {
                try download(to: copy, buffer: buffer)
            } catch {
                switch error {
                case .wrong(let what):
                    print("stream \(id) FAIL round \(round): " + what)
                    return 1
                case .told(let what):
                    print("stream \(id) ERROR round \(round): " + what)
                    return 3
                }
            }
            slowest = max(slowest, System.clock() - started)
        }
        print("stream \(id) ok rounds=\(round) bytes=\(round * sourceBytes) slowest=\(slowest / Clock.ticksPerMillisecond)")
        return 0
    }

    /// One round: a fresh copy by fetch, checked against the pattern.
    static func download(to copy: String, buffer: UnsafeMutableRawBufferPointer) throws(StreamFailure) {
        // An old copy must not pass for a new one.
        let removed: FileSystemError? = withUTF8Bytes(copy) { path in
            do throws(FileSystemError) { try FileSystem.unlink(path) } catch { return error }
            return nil
        }
        if let removed, removed != .noSuchFile { throw .told(copy + ": " + String(removed.name)) }
        let fetch: TaskID
        do throws(SyscallError) {
            fetch = try System.spawn("fetch", arguments: "http://10.0.2.15" + sourcePath + " " + copy)
        } catch {
            throw .told("cannot start fetch: " + String(error.name))
        }
        switch try? System.wait(fetch) {
        case .exited(code: 0)?: break
        case .exited(let code)?: throw .told("fetch exited with status \(code)")
        case .faulted(let cause)?: throw .wrong("fetch crashed: " + String(cause.name))
        default: throw .wrong("fetch was killed")
        }
        let file: FileHandle
        do throws(FileSystemError) {
            file = try withUTF8Bytes(copy) { path throws(FileSystemError) in try FileSystem.open(path, .read) }
        } catch {
            throw .told(copy + ": " + String(error.name))
        }
        defer { try? FileSystem.close(file) }
        var offset = 0
        while true {
            let count: Int
            do throws(FileSystemError) { count = try FileSystem.read(file, into: buffer) } catch {
                throw .told(copy + ": " + String(error.name))
            }
            if count == 0 { break }
            for index in 0..<count where offset + index >= sourceBytes || buffer[index] != pattern(offset + index) {
                throw .wrong("byte \(offset + index) of the copy differs")
            }
            offset += count
        }
        if offset != sourceBytes { throw .wrong("the copy has \(offset) bytes, the source \(sourceBytes)") }
    }

    // MARK: stress

    static func stress(clients: Int, rounds: Int, options: [String]) -> Int32 {
        var faults = 0
        var schedule = FaultSchedule()
        for option in options where !schedule.take(option) {
            guard option.hasPrefix("net="), let count = Int(option.dropFirst(4)) else { usage() }
            faults = count
        }
        let every = schedule.every
        if let failure = writeSource() {
            print("nettest: " + sourcePath + ": " + String(failure.name))
            return 3
        }
        let restartsBefore = System.restarts(of: "net")
        do throws(SyscallError) {
            _ = try System.spawn("httpd", arguments: "80 quiet")
        } catch {
            print("nettest: cannot start httpd: " + String(error.name))
            return 3
        }
        // httpd listens before its first poll; a client's first connect must find it.
        System.sleep(ticks: System.ticksPerSecond / 10)
        var children = [TaskID]()
        // The clients keep going until the last fault has struck, and a little after.
        let until = System.clock() + UInt64(faults + 2) * every
        for id in 0..<clients {
            do throws(SyscallError) {
                children.append(try System.spawn("nettest", arguments: "stream \(id) \(rounds) \(until)"))
            } catch {
                print("nettest: cannot start a client: " + String(error.name))
                return 3
            }
        }
        var armed = 0
        for number in 0..<faults {
            System.sleep(ticks: every)
            let kind = schedule.kind(turn: number)
            do throws(SyscallError) {
                try schedule.arm(number, kind: kind, into: "net")
                armed += 1
            } catch {
                print("nettest: inject " + String(kind.name) + " into net: " + String(error.name))
            }
        }
        var tally = (ok: 0, failed: 0, error: 0, crashed: 0)
        for child in children {
            switch try? System.wait(child) {
            case .exited(code: 0)?: tally.ok += 1
            case .exited(code: 1)?: tally.failed += 1
            case .exited?: tally.error += 1
            default: tally.crashed += 1
            }
        }
        let passed = tally.ok == clients
        print("nettest stress " + (passed ? "ok" : "FAIL") + " clients=\(clients) ok=\(tally.ok) failed=\(tally.failed)"
              + " error=\(tally.error) crashed=\(tally.crashed) armed=\(armed)"
              + " restarts net=\(System.restarts(of: "net") - restartsBefore)")
        return passed ? 0 : 1
    }

    /// Writes the source file the clients download; nil on success.
    static func writeSource() -> FileSystemError? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 8)
        defer { buffer.deallocate() }
        do throws(FileSystemError) {
            let file = try withUTF8Bytes(sourcePath) { path throws(FileSystemError) in
                try FileSystem.open(path, [.write, .create, .truncate])
            }
            defer { try? FileSystem.close(file) }
            var offset = 0
            while offset < sourceBytes {
                for index in 0..<pieceBytes { buffer[index] = pattern(offset + index) }
                offset += try FileSystem.write(file, from: UnsafeRawBufferPointer(buffer))
            }
            return nil
        } catch {
            return error
        }
    }
}

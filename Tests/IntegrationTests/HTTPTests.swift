// Curio's web server and HTTP client against real host tools: `curl` downloads files
// from 0 B to 8 MiB from the httpd that starts at boot (through a forward from
// 127.0.0.1, with `restrict=on`), byte-exactly, sixteen at once, in ranges and over one
// kept-alive connection; a download goes on while the network, filesystem and storage
// servers are faulted and restarted under it; and `fetch` downloads from a server on
// the host through a guest forward and writes the file to the disk.

import Foundation
import Testing

@Suite(.serialized) struct HTTPTests {
    static let sizes = [0, 1, 1459, 1460, 1461, 4095, 4096, 4097, 100_000, 1 << 20, 8 << 20]

    /// A disk with a file of each size (`/size-N`), sixteen 256 KiB files
    /// (`/par/N`) and a directory; the host keeps the bytes to compare.
    static func makeDisk(in work: URL) throws -> (image: URL, files: [String: [UInt8]]) {
        let tree = work.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("par"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("docs"), withIntermediateDirectories: true)
        var files: [String: [UInt8]] = [:]
        for (index, size) in sizes.enumerated() { files["/size-\(size)"] = TCPTests.bytes(size, seed: index + 1) }
        for index in 0..<16 { files["/par/\(index)"] = TCPTests.bytes(256 << 10, seed: 100 + index) }
        files["/docs/a & b.txt"] = Array("ampersand\n".utf8)
        for (path, bytes) in files { try Data(bytes).write(to: tree.appendingPathComponent(String(path.dropFirst()))) }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: tree, blockSize: 1024, megabytes: 32)
        return (image, files)
    }

    struct CurlResult {
        var status: Int32
        var output: Data
        var errors: String
    }

    static func curl(_ arguments: [String], timeout: TimeInterval = 120) throws -> CurlResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "--silent", "--show-error", "--max-time", "\(Int(timeout))"] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let messages = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CurlResult(status: process.terminationStatus, output: data,
                          errors: String(decoding: messages, as: UTF8.self))
    }

    static func boot(_ image: URL, port: UInt16, extraNetwork: String = "") throws -> InteractiveMachine {
        let machine = try InteractiveMachine(extra: DiskTools.qemuArguments(image) + [
            "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:\(port)-:80" + extraNetwork,
            "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"])
        #expect(machine.waitFor("curio> "))
        #expect(machine.waitFor("httpd: serving the disk over HTTP on port 80"),
                "the shell starts httpd at an interactive boot:\n\(machine.transcript)")
        return machine
    }

    @Test func curlGetsEveryFileByteExactlyInRangesOverOneConnectionAndSixteenAtOnce() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("http")
        defer { try? FileManager.default.removeItem(at: work) }
        let (image, files) = try Self.makeDisk(in: work)
        let port = HostTCP.freePort()
        let machine = try Self.boot(image, port: port)
        defer { _ = machine.waitForExit(timeout: 1) }
        let base = "http://127.0.0.1:\(port)"

        for size in Self.sizes {
            let result = try Self.curl(["--fail", "\(base)/size-\(size)"])
            #expect(result.status == 0, "size \(size): \(result.errors)")
            #expect(Array(result.output) == files["/size-\(size)"]!, "size \(size): \(result.output.count) bytes")
        }
        // HEAD: the length, no body.
        let head = try Self.curl(["--head", "\(base)/size-100000"])
        let headText = String(decoding: head.output, as: UTF8.self).lowercased()
        #expect(headText.hasPrefix("http/1.1 200") && headText.contains("content-length: 100000"), "\(headText)")
        // Ranges: a middle, a suffix, an open end, and one past the end.
        let big = files["/size-\(8 << 20)"]!
        for (range, expected) in [("100-199", Array(big[100...199])), ("-10", Array(big.suffix(10))),
                                  ("8388000-", Array(big[8_388_000...]))] {
            let result = try Self.curl(["--fail", "--range", range, "\(base)/size-\(8 << 20)"])
            #expect(result.status == 0 && Array(result.output) == expected, "range \(range): \(result.errors)")
        }
        let unsatisfiable = try Self.curl(["--range", "9000000-", "--write-out", "%{http_code}", "--output", "/dev/null",
                                           "\(base)/size-4096"])
        #expect(String(decoding: unsatisfiable.output, as: UTF8.self) == "416")
        // Two requests on one kept-alive connection.
        let twice = try Self.curl(["--verbose", "--output", "/dev/null", "--output", "/dev/null",
                                   "\(base)/size-4097", "\(base)/size-1461"])
        #expect(twice.status == 0 && twice.errors.contains("Re-using existing connection"), "\(twice.errors)")
        // A listing (names escaped) and a missing file.
        let listing = try Self.curl(["--fail", "\(base)/docs/"])
        #expect(String(decoding: listing.output, as: UTF8.self).contains("a &amp; b.txt"))
        let missing = try Self.curl(["--write-out", "%{http_code}", "--output", "/dev/null", "\(base)/nothing-here"])
        #expect(String(decoding: missing.output, as: UTF8.self) == "404")

        // Sixteen downloads at once.
        var arguments = ["--fail", "--parallel", "--parallel-max", "16"]
        for index in 0..<16 {
            arguments += ["--output", work.appendingPathComponent("par-\(index)").path, "\(base)/par/\(index)"]
        }
        let parallel = try Self.curl(arguments, timeout: 180)
        #expect(parallel.status == 0, "\(parallel.errors)")
        for index in 0..<16 {
            let got = (try? Data(contentsOf: work.appendingPathComponent("par-\(index)"))).map(Array.init) ?? []
            #expect(got == files["/par/\(index)"]!, "download \(index) of 16: \(got.count) bytes")
        }
        // A client that asks for 8 MiB and never reads: its window shuts, httpd's send
        // to it times out (10 s) and the connection is reset; others are served.
        let stalled = try HostTCP(port: port, receiveBuffer: 4096)
        try stalled.send(Array("GET /size-\(8 << 20) HTTP/1.1\r\nHost: curio\r\n\r\n".utf8))
        Thread.sleep(forTimeInterval: 2)
        let meanwhile = try withExtendedLifetime(stalled) { try Self.curl(["--fail", "\(base)/size-4097"], timeout: 60) }
        #expect(meanwhile.status == 0 && Array(meanwhile.output) == files["/size-4097"]!,
                "served while another client stalls: \(meanwhile.errors)")
        machine.type("netstat")
        #expect(machine.waitFor("LISTEN"))
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// 8 MiB downloads, one after another, while 28 faults are aimed at the network
    /// server (every kind that strikes the server's own state) and 9 at the filesystem
    /// and storage servers: every download gets every byte, and no reset. (curl cannot
    /// slow the guest: the host's socket buffers take megabytes at once, so the faults
    /// strike across several downloads.) Then `fetch` downloads a file from a server
    /// on the host (guest forward 10.0.2.100:80 -> 127.0.0.1) to the disk, and e2fsck
    /// finds the disk clean.
    @Test func downloadsSurviveFaultsInTheNetworkFileSystemAndStorageServers() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("httpfaults")
        defer { try? FileManager.default.removeItem(at: work) }
        let (image, files) = try Self.makeDisk(in: work)
        let hosted = TCPTests.bytes(300_000, seed: 77)
        let hostServer = try HostHTTPServer(body: hosted)
        let port = HostTCP.freePort()
        let machine = try Self.boot(image, port: port,
                                    extraNetwork: ",guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:\(hostServer.port)")
        defer { _ = machine.waitForExit(timeout: 1) }

        let expected = files["/size-\(8 << 20)"]!
        let finished = NSLock()
        nonisolated(unsafe) var stop = false
        nonisolated(unsafe) var outcomes: [String] = []
        let downloads = Thread {
            var round = 0
            while true {
                finished.lock()
                let done = stop
                finished.unlock()
                if done { break }
                let target = work.appendingPathComponent("download-\(round)")
                let result = try? Self.curl(["--fail", "--output", target.path,
                                             "http://127.0.0.1:\(port)/size-\(8 << 20)"], timeout: 120)
                let got = (try? Data(contentsOf: target)).map(Array.init) ?? []
                let outcome = result?.status == 0 && got == expected ? "ok"
                    : "download \(round): curl \(result?.status ?? -1) \(result?.errors ?? ""), \(got.count) bytes"
                finished.lock()
                outcomes.append(outcome)
                finished.unlock()
                try? FileManager.default.removeItem(at: target)
                round += 1
            }
        }
        downloads.start()
        Thread.sleep(forTimeInterval: 0.5)

        // One line per command, pasted at once: the console keeps them until the shell
        // reads each.
        let networkKinds = ["illegal", "reg-flip", "wild-write", "stack-flip", "pointer-flip", "data-flip", "loop",
                            "mutate"]
        var script: [String] = []
        for index in 0..<28 {
            script += ["inject net \(networkKinds[index % networkKinds.count]) next seed=\(index + 1)", "sleep 250"]
            if index % 3 == 2 {
                let server = index % 6 == 2 ? "fs" : "storage"
                let kind = ["illegal", "reg-flip", "wild-write", "loop"][(index / 3) % 4]
                script += ["inject \(server) \(kind) next seed=\(index + 50)", "sleep 100"]
            }
        }
        machine.paste(script.joined(separator: "\r") + "\r")
        #expect(machine.waitFor("curio> ", count: 1 + script.count, timeout: 120))
        finished.lock()
        stop = true
        finished.unlock()
        while downloads.isExecuting || !downloads.isFinished { Thread.sleep(forTimeInterval: 0.1) }
        #expect(outcomes.count >= 2 && outcomes.allSatisfy { $0 == "ok" }, "\(outcomes)\n\(machine.transcript.suffix(3000))")
        let injectedIntoNetwork = machine.transcript.split(whereSeparator: \.isNewline)
            .filter { $0.contains("[kernel] injected") && $0.hasSuffix("into net") }.count
        #expect(injectedIntoNetwork >= 20, "faults struck: \(injectedIntoNetwork)\n\(machine.transcript.suffix(4000))")
        let restarts = machine.transcript.components(separatedBy: "[kernel] restarted net").count - 1
        #expect(restarts >= 3, "the network server restarted under the downloads: \(restarts)")
        #expect(!machine.transcript.contains("gave up on"), "\(machine.transcript.suffix(2000))")

        machine.type("run fetch http://10.0.2.100/hosted.bin /fetched.bin")
        #expect(machine.waitFor("fetch: \(hosted.count) bytes to /fetched.bin", timeout: 60), "\(machine.transcript.suffix(1000))")
        #expect(hostServer.requestsSeen.first?.hasPrefix("GET /hosted.bin HTTP/1.1\r\n") == true)
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
        let dumped = work.appendingPathComponent("fetched")
        _ = try DiskTools.debugfs(image, "dump /fetched.bin \(dumped.path)")
        #expect((try? Data(contentsOf: dumped)).map(Array.init) == hosted, "the file on the disk is the host's bytes")
        #expect(try DiskTools.check(image).status == 0, "e2fsck -fn")
    }

    /// Both ends in Curio: `fetch` downloads 1 MiB, then 8 MiB while five faults hit
    /// the network server, from the guest's own httpd (frames to the guest's address
    /// go round inside the network server, which then holds both ends of every
    /// connection, and restarts with both); the copies on the disk are byte-exact and
    /// e2fsck finds the disk clean.
    @Test func fetchCopiesAFileFromTheGuestsOwnServer() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("loopback")
        defer { try? FileManager.default.removeItem(at: work) }
        let (image, files) = try Self.makeDisk(in: work)
        let faults = ["illegal", "reg-flip", "loop", "wild-write", "illegal"].enumerated()
            .map { "inject net \($0.element) after 20 seed=\($0.offset + 1); sleep 300" }
        let script = ["run httpd &", "sleep 300", "run fetch http://10.0.2.15/size-1048576 /copy",
                      "run fetch http://10.0.2.15/size-\(8 << 20) /copy2 &"] + faults + ["wait fetch", "ls -l /"]
        let run = try CurioMachine.run(commands: script.joined(separator: "; "), timeout: .seconds(180),
                                       extra: DiskTools.qemuArguments(image) + [
                                           "-netdev", "user,id=n0,restrict=on",
                                           "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"])
        #expect(!run.timedOut && run.exitStatus == 0, "\(run.console.suffix(3000))")
        #expect(run.console.contains("fetch: 1048576 bytes to /copy\n"), "\(run.console.suffix(2000))")
        #expect(run.console.contains("fetch: \(8 << 20) bytes to /copy2"), "\(run.console.suffix(2000))")
        let restarts = run.console.components(separatedBy: "[kernel] restarted net").count - 1
        #expect(restarts >= 2, "the illegal instruction and the loop restart it: \(run.console.suffix(3000))")
        for (copy, original) in [("/copy", "/size-1048576"), ("/copy2", "/size-\(8 << 20)")] {
            let dumped = work.appendingPathComponent(String(copy.dropFirst()))
            _ = try DiskTools.debugfs(image, "dump \(copy) \(dumped.path)")
            #expect((try? Data(contentsOf: dumped)).map(Array.init) == files[original]!, "\(copy)")
        }
        #expect(try DiskTools.check(image).status == 0, "e2fsck -fn")
    }
}

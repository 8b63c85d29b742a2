// Kernel microbenchmarks, counted in retired instructions.
//
// Run under QEMU with `-icount shift=0` (`make bench`), where `instret` counts every
// instruction the guest retires — user, kernel and firmware alike — and whole runs
// are repeatable. Each measurement brackets one operation between two `rdinstret`
// reads and is repeated; we print the median and the spread, minus the cost of the
// empty bracket itself.
//
//   trap     an `ecall` the kernel rejects at once (unknown number): entry + exit
//   syscall  the cheapest real system call (`whoAmI`)
//   ipc      call + reply between two processes in different address spaces,
//            no payload (pingserver answers)
//   ipc-4k   the same with a 4 KiB payload each way
//   ipc-ssr  the null round trip to a server holding a 4 KiB SSR per client: the
//            kernel maps the SSR on delivery and unmaps it (one-page TLB flush) on
//            reply
//   restart-N  fault to first request served again, with N clients bound
//   realtime   (only when named) nanoseconds per SSR round trip by the clock

import ConsoleAPI
import CurioUser
import UserArch

@main
struct Bench {
    static let iterations = 2001

    /// `bench` runs every measurement; `bench NAME...` only those named (to study one,
    /// e.g. under QEMU's instruction trace).
    static func main() {
        let chosen = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        func wanted(_ name: String) -> Bool { chosen.isEmpty || chosen.contains(name) }

        let emptyBracket = measure { }
        report("bracket", emptyBracket, baseline: 0)
        let baseline = emptyBracket.median
        if wanted("trap") {
            report("trap", measure { _ = curio_syscall(0xFFFF, 0, 0, 0, 0, 0, 0, 0) }, baseline: baseline)
        }
        if wanted("syscall") { report("syscall", measure { _ = System.whoAmI() }, baseline: baseline) }

        let server = start("pingserver")
        if wanted("ipc") {
            report("ipc", measure { _ = try? IPC.call(server, operation: 1, words: (1, 2)) }, baseline: baseline)
        }
        if wanted("ipc-4k") {
            let page = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            page.initializeMemory(as: UInt8.self, repeating: 7)
            report("ipc-4k", measure {
                _ = try? IPC.call(server, operation: 1, payload: UnsafeRawBufferPointer(page), reply: page)
            }, baseline: baseline)
        }
        try? System.kill(server)
        _ = try? System.wait(server)

        let ssrServer = start("ssrping")
        if wanted("ipc-ssr") {
            report("ipc-ssr", measure { _ = try? IPC.call(ssrServer, operation: 1, words: (1, 2)) }, baseline: baseline)
        }
        if wanted("restart") { measureRestarts(ssrServer) }
        if chosen.contains("realtime") { measureRealTime(ssrServer) }
        try? System.kill(ssrServer)
        _ = try? System.wait(ssrServer)
    }

    /// Restart latency: from the fault (an illegal instruction injected at the next
    /// request) to that request answered by the restarted server, which first walks
    /// the SSRs of all its bound clients. Clients are `binder` processes (96 KiB
    /// each, so 256 of them take 24 MiB); the task table's 320 slots bound how many
    /// there can be.
    static func measureRestarts(_ server: TaskID) {
        var binders: [TaskID] = []
        for clients in [1, 16, 64, 256] {
            while binders.count + 1 < clients { binders.append(start("binder")) }
            // Let the binders bind (they run at a lower priority than we do).
            while System.ssrCount() < binders.count + 1 { System.sleep(ticks: 1_000) }
            var samples: [UInt64] = []
            for _ in 0..<9 {
                let name: StaticString = "ssrping"
                let nameBytes = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
                _ = curio_syscall(UInt64(Syscall.injectFault.rawValue), UInt64(UInt(bitPattern: nameBytes.baseAddress)),
                                  UInt64(nameBytes.count), UInt64(FaultKind.illegalInstruction.rawValue),
                                  UInt64(FaultTrigger.nextRequest.rawValue), 0, 0, 0)
                let start = curio_read_instret()
                let endpoint = (try? System.lookup("ssrping")) ?? server
                _ = try? IPC.call(endpoint, operation: 1)
                samples.append(curio_read_instret() &- start)
                System.sleep(ticks: Bench.apartFromBackoff)
            }
            samples.sort()
            print("bench restart-\(clients) median=\(samples[4]) p10=\(samples[0]) p90=\(samples[8]) min=\(samples[0]) max=\(samples[8]) iterations=\(samples.count)")
        }
        for binder in binders {
            try? System.kill(binder)
            _ = try? System.wait(binder)
        }
    }

    /// Wall-clock time per SSR-mapped request, for information: only meaningful
    /// without -icount (then the clock is the host's real time, TLB flush costs and all).
    static func measureRealTime(_ server: TaskID) {
        let requests: UInt64 = 20_000
        let start = System.clock()
        for _ in 0..<requests { _ = try? IPC.call(server, operation: 1) }
        let nanoseconds = (System.clock() - start) * (1_000_000_000 / System.ticksPerSecond) / requests
        print("bench realtime-ipc-ssr ns=\(nanoseconds)")
    }

    /// Faults further apart than the kernel's quick-succession window, so no
    /// measurement includes restart backoff. (Virtual time: under -icount with
    /// sleep=off an idle wait costs no real time.)
    static let apartFromBackoff: UInt64 = 11_000_000

    static func start(_ name: StaticString) -> TaskID {
        do throws(SyscallError) {
            return try System.spawn(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount),
                                    arguments: UnsafeRawBufferPointer(start: nil, count: 0))
        } catch {
            print("bench: cannot start \(String(name)): \(String(error.name))")
            System.exit(1)
        }
    }

    struct Sample {
        var median: UInt64
        var low: UInt64
        var high: UInt64
        var p10: UInt64
        var p90: UInt64
    }

    static func measure(_ operation: () -> Void) -> Sample {
        var counts = [UInt64](repeating: 0, count: iterations)
        for index in 0..<iterations {
            let start = curio_read_instret()
            operation()
            counts[index] = curio_read_instret() &- start
        }
        counts.sort()
        return Sample(median: counts[iterations / 2], low: counts[0], high: counts[iterations - 1],
                      p10: counts[iterations / 10], p90: counts[iterations * 9 / 10])
    }

    /// One line per measurement, parsed by `make bench`:
    /// `bench NAME median=N p10=N p90=N min=N max=N iterations=N`
    static func report(_ name: String, _ sample: Sample, baseline: UInt64) {
        func net(_ value: UInt64) -> UInt64 { value > baseline ? value - baseline : 0 }
        print("bench \(name) median=\(net(sample.median)) p10=\(net(sample.p10)) p90=\(net(sample.p90)) min=\(net(sample.low)) max=\(net(sample.high)) iterations=\(iterations)")
    }
}

extension System {
    /// SSRs in the system (the kernel lists them one index at a time).
    fileprivate static func ssrCount() -> Int {
        var info = [UInt8](repeating: 0, count: SSRInfo.size)
        var count = 0
        while true {
            let found = info.withUnsafeMutableBytes { bytes in
                curio_syscall(UInt64(Syscall.ssrInfo.rawValue), UInt64(count),
                              UInt64(UInt(bitPattern: bytes.baseAddress)), UInt64(bytes.count), 0, 0, 0, 0)
            }
            guard found.status == 0, found.r1 == 1 else { return count }
            count += 1
        }
    }
}

// The dependability core under attack, on the real machine: clients killed in the
// middle of their requests, a request that crashes its server every time, a second
// instance of an SSR server, a hostile driver aiming its disk at the kernel, and the
// kernel's invariant audit after each.

import Foundation
import Testing

@Suite(.serialized)
struct HardeningTests {
    /// rogueserver waits for the timer service in the middle of each request, with its
    /// caller's SSR mapped; the shell kills the caller meanwhile, eight times in well
    /// under a second. Unmapping the SSR under the server used to fault it every time,
    /// and eight quick faults made the kernel give it up for everyone.
    @Test func killingClientsMidRequestCostsTheServerNothing() throws {
        let kill = "run crashme slowrogue &; await rogueserver reply; kill crashme; await rogueserver recv"
        let commands = Array(repeating: kill, count: 8).joined(separator: "; ")
            + "; ssr; run crashme slowrogue; ps; audit"
        let run = try CurioMachine.run(commands: commands, timeout: .seconds(90))
        #expect(!run.timedOut)
        let killed = run.console.components(separatedBy: "killed 1 crashme").count - 1
        #expect(killed == 8, "\(run.console)")
        let served = run.console.components(separatedBy: "slowrogue: served, mark 2").count - 1
        #expect(served == 1, "only the last caller, which nobody killed, is answered:\n\(run.console)")
        // rogueserver (pid 2) asked the timer service to start and wait once per request.
        let timerRequests = run.console.firstMatch(of: /\n2 +timer +1 +valid +(\d+)/).flatMap { Int($0.1) } ?? 0
        #expect(timerRequests == 16, "every caller was killed while rogueserver served it:\n\(run.console)")
        #expect(!run.console.contains("rogueserver (pid"), "no fault, no restart:\n\(run.console)")
        #expect(run.console.contains("audit: clean"), "\(run.console)")
        #expect(!run.console.contains("orphaned"), "every unbind was handled")
        #expect(run.exitStatus == 0)
    }

    /// A request that crashes rogueserver whenever it is delivered: the second crash
    /// fails that request alone, and the server goes on serving.
    @Test func aPoisonRequestFailsAloneAndTheServerCarriesOn() throws {
        let run = try CurioMachine.run(commands: "run crashme poison; run crashme rogue; ps; audit", timeout: .seconds(60))
        #expect(!run.timedOut)
        #expect(run.console.contains("poison: refused: request failed"), "\(run.console)")
        #expect(run.console.contains("rogueserver crashed twice on a request of one client"))
        #expect(!run.console.contains("gave up on rogueserver"))
        #expect(run.console.contains("rogue: served again"), "\(run.console)")
        #expect(run.console.contains("audit: clean"), "\(run.console)")
        #expect(run.exitStatus == 0)
    }

    /// Bindings name the server program, so a second instance would recover, map and
    /// free SSRs the first one is using: it is refused.
    @Test func aSecondInstanceOfAnSSRServerIsRefused() throws {
        let run = try CurioMachine.run(commands: "run timer &; run fs &; run rogueserver &; ps; audit",
                                       timeout: .seconds(60))
        #expect(!run.timedOut)
        for server in ["timer", "fs", "rogueserver"] {
            #expect(run.console.contains("run \(server): already running"), "\(run.console)")
        }
        #expect(run.console.contains("audit: clean"), "\(run.console)")
    }

    /// Spawn/exit cycles and a timer workload with restarts leave the kernel's tables
    /// consistent.
    @Test func theAuditIsCleanAfterBusyRuns() throws {
        let run = try CurioMachine.run(
            commands: "spawntest 300; run timertest 4 100000 20 illegal next faults=3 every=2000000; audit",
            timeout: .seconds(120))
        #expect(!run.timedOut)
        #expect(run.console.contains("audit: clean"), "\(run.console)")
        #expect(run.exitStatus == 0, "\(run.console)")
    }

    /// `dmaprobe` drives the disk by hand and tries, at every point where a driver
    /// decides where the device goes, to make it read into the kernel's code; in its
    /// own system (it must own the virtio slots). A read it was refused would have
    /// overwritten the kernel, and the last step checks the assumption the kernel's
    /// notify check rests on: the device takes a chain's addresses during the notify.
    @Test func aHostileDriverCannotAimItsDiskAtTheKernel() throws {
        let kernel = ProcessInfo.processInfo.environment["CURIO_DMAPROBE_KERNEL"]
            ?? CurioMachine.packageRoot.appendingPathComponent("build/kernel-dmaprobe.elf").path
        let folder = try DiskTools.temporaryDirectory("dmaprobe")
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: nil, blockSize: 1024, megabytes: 4)
        let run = try CurioMachine.run(commands: "", timeout: .seconds(60), extra: DiskTools.qemuArguments(image),
                                       kernel: kernel)
        #expect(!run.timedOut)
        for step in ["grant of a device window", "packed ring feature", "indirect descriptor feature",
                     "descriptor table in kernel memory", "rings in its own page", "read into kernel code",
                     "the same read into its own page", "ext2 magic read", "chain re-aimed after its notify"] {
            #expect(run.console.contains("dmaprobe: \(step) ok"), "\(step):\n\(run.console)")
        }
        #expect(run.console.contains("dmaprobe: all attacks refused"), "\(run.console)")
        #expect(run.exitStatus == 0)
    }
}

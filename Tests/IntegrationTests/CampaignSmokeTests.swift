// A smoke campaign: the campaign's own code (CampaignKit, as `curio-campaign` runs
// it) against the real kernel, one run of every fault kind into the timer at a random
// instruction of its execution, two QEMUs at a time. Every run must leave a record
// with its seed in the CSV, and none may end in a system failure. A flip in a register
// that holds a value the server goes on to commit (a deadline, a sequence number) is
// beyond what a restart mends: the timer answers wrongly, or waits for a deadline that
// never comes. Campaigns measure such runs at about 1 % of transient register faults
// (README), so one of them is tolerated here, not two. Timer runs are deterministic
// under -icount sleep=off and the boot image is the same wherever the repository was
// cloned, so the campaign seed below gives the same runs every time, and a record
// booted again from its command repeats its outcome and its evidence.
//
// Then the comparison's other side, the baseline kernel (`make kernel-baseline`: the
// same binaries, each client's state in the server's memory, restarted as MINIX 3
// restarts a driver): it must serve files (storage's held requests live in server
// memory there), and the same crash that SSRs hide must cost its clients their state.
//
// And the soak, the campaign's other mode: a few faults into one server in one boot,
// counted from the console.
//
// And the network server as a campaign target: nettest's downloads over the guest's
// own address, the fault at a random instruction of net's execution, SSRs beside the
// baseline (net without SSRs too): a restart the SSRs hide must cost the baseline's
// clients their connections.

import CampaignKit
import Foundation
import Testing

@Suite(.serialized) struct CampaignSmokeTests {
    static let campaignSeed: UInt64 = 2026

    @Test func everyFaultKindAtARandomInstructionOfTheTimer() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("campaign-smoke-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("campaign.csv").path
        #expect(FileManager.default.fileExists(atPath: CurioMachine.kernel), "build the kernel first: make build")

        let workload = Workload.standard(for: .timer)
        let plan = CampaignPlan.runs(workload: workload, faults: Faults.all, triggers: [.execution], runsPerCell: 1,
                                     builds: [.ssr], campaignSeed: Self.campaignSeed)
        let machine = Machine(kernels: [.ssr: CurioMachine.kernel], timeout: 60, scratch: folder)
        let started = Date()
        let records = try Campaign(plan: plan, campaignSeed: Self.campaignSeed, machine: machine, jobs: 2,
                                   file: try RecordFile(path: csv)).run { _ in }
        #expect(Date().timeIntervalSince(started) < 120)

        let stored = try RecordFile(path: csv).records
        #expect(stored.count == plan.count)
        #expect(Set(stored.map(\.runID)) == Set(plan.map(\.id)))
        for record in stored {
            let spec = try #require(plan.first { $0.id == record.runID })
            #expect(record.seed == spec.seed && record.seed > 0)
            #expect(record.command.contains(" seed=\(record.seed)"))
            #expect(record.outcome != .systemFailure,
                    "\(record.runID) seed \(record.seed): \(record.outcome.rawValue)\n\(record.consoleTail)")
        }
        // A persistent code fault that leaves the server wrong without stopping it
        // (answering nobody) is beyond what any restart mends too: it may hang.
        let ruledOut = stored.filter {
            $0.outcome == .silentFailure || ($0.outcome == .hang && !$0.fault.hasSuffix("+persistent"))
        }
        #expect(ruledOut.count <= 1, "\(ruledOut.map { "\($0.runID) seed \($0.seed): \($0.outcome.rawValue)\n\($0.consoleTail)" })")
        // Not a vacuous campaign: the faults struck, and restarts hid some of them.
        #expect(stored.filter(\.struck).count >= plan.count / 2)
        #expect(stored.contains { $0.outcome == .recovered })
        #expect(records.count == plan.count)

        // Started again, the campaign finds every run done.
        let again = Campaign(plan: plan, campaignSeed: Self.campaignSeed, machine: machine, jobs: 2,
                             file: try RecordFile(path: csv))
        #expect(again.pending.isEmpty)

        // A record booted again repeats exactly (the same seed, under -icount).
        let restarted = try #require(stored.first { $0.outcome == .recovered })
        let replay = try machine.boot(command: restarted.command, build: .ssr, workload: workload)
        let verdict = ConsoleAnalysis.judge(console: replay.console, server: .timer, clients: workload.clients,
                                            finished: replay.finished)
        #expect(verdict.outcome == restarted.outcome)
        #expect(verdict.evidence == restarted.evidence)
    }

    static var baselineKernel: String {
        ProcessInfo.processInfo.environment["CURIO_BASELINE_KERNEL"]
            ?? CurioMachine.packageRoot.appendingPathComponent("build/kernel-baseline.elf").path
    }

    @Test func theBaselineLosesItsClientsStateWhereSSRsKeepIt() throws {
        #expect(FileManager.default.fileExists(atPath: Self.baselineKernel), "make kernel-baseline")
        let folder = try DiskTools.temporaryDirectory("campaign-baseline")
        defer { try? FileManager.default.removeItem(at: folder) }
        let workload = Workload.standard(for: .timer)
        let plan = CampaignPlan.runs(workload: workload, faults: ["illegal", "loop"], triggers: [.request, .execution],
                                     runsPerCell: 1, builds: [.ssr, .baseline], campaignSeed: Self.campaignSeed)
        let machine = Machine(kernels: [.ssr: CurioMachine.kernel, .baseline: Self.baselineKernel], timeout: 60,
                              scratch: folder)
        let records = try Campaign(plan: plan, campaignSeed: Self.campaignSeed, machine: machine, jobs: 2, file: nil)
            .run { _ in }
        #expect(records.count == 8)
        for record in records {
            #expect(record.struck && record.restarts > 0, "\(record.runID): \(record.evidence)")
            switch record.build {
            case .ssr:
                #expect(record.outcome == .recovered && record.clientsFailed == 0, "\(record.runID): \(record.evidence)")
            case .baseline:
                #expect(record.outcome == .clientTold && record.clientsFailed > 0, "\(record.runID): \(record.evidence)")
            }
        }
    }

    /// A short soak, one boot per build: three illegal instructions into the timer while
    /// its clients run. The counts must agree with each other and with the workload's
    /// own; the SSR boot must hide every fault behind a restart, and every baseline
    /// client must fail at the first: told that a timer is gone, or handed a wrong
    /// expiration (its restarted timer numbers new timers as the lost ones were).
    @Test func aShortSoakCountsEveryInjectionConsistently() throws {
        let folder = try DiskTools.temporaryDirectory("soak-smoke")
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("soak.csv").path
        let workload = SoakWorkload(server: .timer, injections: 3)
        let plan = SoakPlan(workload: workload, faults: ["illegal"], builds: [.ssr, .baseline],
                            soakSeed: Self.campaignSeed)
        let machine = Machine(kernels: [.ssr: CurioMachine.kernel, .baseline: Self.baselineKernel], scratch: folder)
        let started = Date()
        let records = try Soak(plan: plan, bootsPerFault: 1, deadline: nil, machine: machine, jobs: 2,
                               file: try SoakFile(path: csv)).run { _ in }
        #expect(Date().timeIntervalSince(started) < 45)
        #expect(Set(try SoakFile(path: csv).records.map(\.fields)) == Set(records.map(\.fields)))
        #expect(records.map(\.bootID) == ["soak/timer/illegal/0/ssr", "soak/timer/illegal/0/baseline"])

        for record in records {
            let counts = record.counts
            let context = "\(record.bootID) seed \(record.seed): \(counts)\n\(record.consoleTail)"
            #expect(counts.systemFailures.isEmpty, "\(context)")
            #expect(!counts.hang && !counts.panic && counts.audit == .clean && counts.verdict, "\(context)")
            #expect(counts.armed == 3 && counts.struck >= 1 && counts.struck <= 3, "\(context)")
            #expect(counts.stops == counts.restarts + counts.giveUps && counts.workloadRestarts == counts.restarts,
                    "\(context)")
            #expect(counts.recovered <= counts.manifested && counts.clientVisible <= counts.manifested
                    && counts.manifested <= counts.struck, "\(context)")
            switch record.build {
            case .ssr:
                #expect(counts.struck == 3 && counts.restarts == 3 && counts.recovered == 3, "\(context)")
                #expect(counts.clientVisible == 0 && counts.clientsFailed == 0, "\(context)")
                #expect(counts.problems.isEmpty, "\(context)")
            case .baseline:
                #expect(counts.recovered == 0 && counts.clientVisible == 1, "\(context)")
                #expect(counts.clientsFailed == 4 && counts.clientsTold + counts.wrongAnswers == 4, "\(context)")
            }
        }
    }

    /// Two soak boots of 100 code mutations each into the timer, at random
    /// instructions of its execution, accumulating until a restart: the timer must
    /// never be left forgetting a held wait. A soak found five such hangs in six
    /// boots (a deleted promise call, a clock read as 0, a deleted receive check);
    /// since the timer promises each held wait's answer and the kernel restarts it
    /// for a broken or missing promise, they end like any other fault. A mutation can
    /// still make it answer wrongly without crashing, which no restart mends: the
    /// boot's clients may fail, but it must end, with the audit clean. With several
    /// timers per client, as the campaigns run them. (Before the IPC fastpath moved
    /// every strike, boot 1 of this seed left the timer silent after two deletions in
    /// `notified`; not understood, and no longer reproduced: see the README.)
    @Test func aSoakOfCodeMutationsNeverLeavesTheTimerForgettingAWait() throws {
        let folder = try DiskTools.temporaryDirectory("soak-mutate")
        defer { try? FileManager.default.removeItem(at: folder) }
        let workload = SoakWorkload(server: .timer, injections: 100)
        let plan = SoakPlan(workload: workload, faults: ["mutate"], builds: [.ssr], soakSeed: 555)
        let machine = Machine(kernels: [.ssr: CurioMachine.kernel], scratch: folder)
        let records = try Soak(plan: plan, bootsPerFault: 2, deadline: nil, machine: machine, jobs: 2, file: nil)
            .run { _ in }
        #expect(records.count == 2)
        for record in records {
            let counts = record.counts
            let context = "\(record.bootID) seed \(record.seed): \(counts)\n\(record.consoleTail)"
            #expect(!counts.hang && !counts.panic && counts.giveUps == 0, "\(context)")
            #expect(counts.verdict && counts.audit == .clean, "\(context)")
            // The boot ends early when its clients have all failed (a mutation can
            // make the timer answer wrongly, or late, without stopping it).
            #expect(counts.struck >= 10 && counts.restarts >= 5, "\(context)")
        }
    }

    /// Two crashes of net (an illegal instruction at a random instruction of its
    /// execution and at a request) and a register flip, each on both builds: every
    /// download with SSRs must come through byte-exact after the restart; in the
    /// baseline the crash costs httpd its listener and the clients their connections,
    /// and they are told (fetch's error, and every later round refused).
    @Test func aNetworkCampaignRecoversTransfersTheBaselineLoses() throws {
        #expect(FileManager.default.fileExists(atPath: Self.baselineKernel), "make kernel-baseline")
        #expect(DiskTools.available, "install e2fsprogs")
        let folder = try DiskTools.temporaryDirectory("campaign-net")
        defer { try? FileManager.default.removeItem(at: folder) }
        let workload = Workload.standard(for: .net)
        let crashes = CampaignPlan.runs(workload: workload, faults: ["illegal"], triggers: [.request, .execution],
                                        runsPerCell: 1, builds: [.ssr, .baseline], campaignSeed: Self.campaignSeed)
        let flips = CampaignPlan.runs(workload: workload, faults: ["reg-flip"], triggers: [.execution],
                                      runsPerCell: 1, builds: [.ssr, .baseline], campaignSeed: Self.campaignSeed)
        let machine = Machine(kernels: [.ssr: CurioMachine.kernel, .baseline: Self.baselineKernel], timeout: 60,
                              scratch: folder)
        let started = Date()
        let records = try Campaign(plan: crashes + flips, campaignSeed: Self.campaignSeed, machine: machine, jobs: 2,
                                   file: nil).run { _ in }
        #expect(Date().timeIntervalSince(started) < 90)
        #expect(records.count == 6)
        for record in records {
            let context = "\(record.runID) seed \(record.seed): \(record.outcome.rawValue) \(record.evidence)\n\(record.consoleTail)"
            #expect(!record.outcome.isBad, "\(context)")
            guard record.fault == "illegal", record.struck else { continue }
            #expect(record.restarts > 0, "\(context)")
            switch record.build {
            case .ssr: #expect(record.outcome == .recovered && record.clientsFailed == 0, "\(context)")
            case .baseline: #expect(record.outcome == .clientTold && record.clientsFailed > 0, "\(context)")
            }
        }
        // Not vacuous: a crash struck on each build.
        #expect(records.contains { $0.build == .ssr && $0.fault == "illegal" && $0.outcome == .recovered })
        #expect(records.contains { $0.build == .baseline && $0.fault == "illegal" && $0.outcome == .clientTold })
    }

    @Test func theBaselineServesFilesFromServerMemory() throws {
        #expect(DiskTools.available, "install e2fsprogs")
        let folder = try DiskTools.temporaryDirectory("campaign-baseline-disk")
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: nil, blockSize: 1024, megabytes: 8)
        let machine = Machine(kernels: [.baseline: Self.baselineKernel], timeout: 60, scratch: folder)
        var arguments = machine.qemuArguments(kernel: Self.baselineKernel,
                                              command: "write /note hello; append /note again; cat /note",
                                              usesDisk: true)
        arguments += DiskTools.qemuArguments(image)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["qemu-system-riscv64"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: deadline)
        let console = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        deadline.cancel()
        #expect(process.terminationStatus == 0, "\(console)")
        #expect(console.replacingOccurrences(of: "\r\n", with: "\n").contains("curio> cat /note\nhello\nagain\n"),
                "\(console)")
        #expect(!console.contains("stopped:"), "\(console)")
        #expect(try DiskTools.check(image).status == 0)
    }
}

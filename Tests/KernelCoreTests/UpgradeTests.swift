// Tests of live upgrade (Kernel+Upgrade.swift): a version replaces a server's code in
// its slot between two requests, keeping its program, its clients' SSRs and their
// requests; a version that fails its first recovery is rolled back; anything else is
// refused without a change.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct UpgradeTests {
    typealias Program = SSRProgram

    /// fs (slot 1) recovered and idle in `receive`; clients 2 and 3 bound with 64
    /// bytes of state each; client 2's second request held (awaiting the reply); the
    /// manager in slot 0.
    private struct Scene {
        let harness: KernelHarness
        let manager = 0, fs = 1, held = 2, idle = 3
    }

    private func scene() throws -> Scene {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.manager)
        try harness.spawn(Program.fs)
        for _ in 0..<2 { try harness.spawn(Program.client) }
        let scene = Scene(harness: harness)
        harness.recover(scene.fs, pages: 2)
        for (client, byte) in [(scene.held, UInt8(0x5A)), (scene.idle, 0xA5)] {
            harness.receive(scene.fs)
            try harness.call(client, harness.id(scene.fs))
            try harness.write([UInt8](repeating: byte, count: 64), at: SSRLayout.window + 100, in: scene.fs)
            try harness.reply(from: scene.fs, to: harness.id(client))
        }
        harness.receive(scene.fs)
        try harness.call(scene.held, harness.id(scene.fs))
        harness.receive(scene.fs)
        #expect(harness.state(scene.fs) == .receiving && harness.state(scene.held) == .awaitingReply)
        return scene
    }

    /// The manager's `upgrade SERVER VERSION`; the error, if any.
    @discardableResult
    private func upgrade(_ harness: KernelHarness, by caller: Int = 0, _ server: String, to version: String) throws
        -> SyscallError? {
        try harness.write(server + version, at: ProcessLayout.heap, in: caller)
        harness.syscall(caller, .upgrade, UInt(ProcessLayout.heap), UInt(server.utf8.count),
                        UInt(ProcessLayout.heap) + UInt(server.utf8.count), UInt(version.utf8.count))
        return harness.error(caller)
    }

    @Test func anUpgradeReplacesTheCodeKeepingTheProgramItsClientsAndTheirState() throws {
        let scene = try scene()
        let harness = scene.harness
        let before = harness.task(scene.fs)
        let state = harness.ssrBytes(of: scene.held, to: Program.fs)

        #expect(try upgrade(harness, "fs", to: "fs-next") == nil)
        let server = harness.task(scene.fs)
        #expect(server.program == Program.fs && Int(server.codeProgram) == Program.fsNext)
        #expect(server.generation == before.generation + 1 && server.restarts == before.restarts,
                "a new incarnation, not a restart")
        #expect(server.recovering && Int(server.upgradedFrom) == Program.fs)
        #expect(harness.registers(scene.fs)[.pc] == KernelTestELF.textAddress, "the version's image, from the start")
        #expect(harness.ssrBytes(of: scene.held, to: Program.fs) == state, "SSRs untouched")
        #expect(harness.state(scene.held) == .sending, "the held request queued again, as after a restart")
        #expect(harness.output.contains("[kernel] upgrade of fs (pid 1, gen 1): runs fs-next now, recovering"))

        let walked = harness.recover(scene.fs, pages: 2)
        #expect(walked.map(\.client) == [harness.id(scene.held), harness.id(scene.idle)])
        #expect(harness.task(scene.fs).upgradedFrom == -1)
        #expect(harness.output.contains("runs fs-next, recovered (upgraded from fs)"))
        harness.receive(scene.fs)
        #expect(harness.result(scene.fs, 1) == UInt(harness.id(scene.held).rawValue))
        #expect(harness.result(scene.fs, 6) == 2, "the held request again, with its id")
    }

    @Test func aVersionThatFailsItsRecoveryIsRolledBack() throws {
        let scene = try scene()
        let harness = scene.harness
        let rapid = harness.task(scene.fs).rapidRestarts
        try upgrade(harness, "fs", to: "fs-next")
        harness.syscall(scene.fs, .ssrRecoverNext, 0)
        harness.kernel.fault(scene.fs, cause: .reportedFailure, address: 0)

        let server = harness.task(scene.fs)
        #expect(Int(server.codeProgram) == Program.fs && server.upgradedFrom == -1)
        #expect(server.program == Program.fs && server.recovering, "the old code recovers")
        #expect(server.rapidRestarts == rapid && server.lastCrash == CrashSite(),
                "the version's failure counts against neither the old code nor a client")
        #expect(harness.output.contains("failed in recovery: rolled back to fs"))
        #expect(harness.state(scene.held) == .sending)
        harness.recover(scene.fs, pages: 2)
        harness.kernel.fault(scene.fs, cause: .reportedFailure, address: 0)
        #expect(Int(harness.task(scene.fs).codeProgram) == Program.fs, "later failures restart the old code")
    }

    @Test func aVersionThatRecoveredIsRestartedAsItselfAndCanBeUpgradedBack() throws {
        let scene = try scene()
        let harness = scene.harness
        try upgrade(harness, "fs", to: "fs-next")
        harness.recover(scene.fs, pages: 2)
        harness.kernel.fault(scene.fs, cause: .storePageFault, address: 0)
        #expect(Int(harness.task(scene.fs).codeProgram) == Program.fsNext, "the upgrade stands")
        #expect(!harness.output.contains("rolled back"))
        harness.recover(scene.fs, pages: 2)
        harness.receive(scene.fs)
        try harness.reply(from: scene.fs, to: harness.id(scene.held))
        harness.receive(scene.fs)
        #expect(try upgrade(harness, "fs", to: "fs") == nil, "back to its own program")
        #expect(Int(harness.task(scene.fs).codeProgram) == Program.fs)
    }

    @Test func anUpgradeWaitsForARequestBoundary() throws {
        let scene = try scene()
        let harness = scene.harness
        // Handling a request: the client's SSR in its window.
        try harness.reply(from: scene.fs, to: harness.id(scene.held))
        harness.receive(scene.fs)
        try harness.call(scene.idle, harness.id(scene.fs))
        #expect(harness.task(scene.fs).windowClient >= 0)
        let generation = harness.task(scene.fs).generation
        #expect(try upgrade(harness, "fs", to: "fs-next") == .serverBusy)
        #expect(harness.task(scene.fs).generation == generation && Int(harness.task(scene.fs).codeProgram) == Program.fs)
        // Recovering: busy too.
        harness.kernel.fault(scene.fs, cause: .storePageFault, address: 0)
        #expect(try upgrade(harness, "fs", to: "fs-next") == .serverBusy)
        #expect(Int(harness.task(scene.fs).codeProgram) == Program.fs)
    }

    @Test func onlyAManagerUpgradesAndOnlyToAVersionOfTheServer() throws {
        let scene = try scene()
        let harness = scene.harness
        #expect(try upgrade(harness, "fs", to: "plain") == .badArgument, "not a version of fs")
        #expect(try upgrade(harness, "fs", to: "fs") == .badArgument, "what it runs already")
        #expect(try upgrade(harness, "disk", to: "fs-next") == .notFound, "disk is not running")
        #expect(try upgrade(harness, "fs", to: "nosuch") == .notFound)
        #expect(try upgrade(harness, by: scene.idle, "fs", to: "fs-next") == .notPermitted)
        try harness.write("fs-next", at: ProcessLayout.heap, in: scene.manager)
        harness.syscall(scene.manager, .spawn, UInt(ProcessLayout.heap), 7, 0, 0)
        #expect(harness.error(scene.manager) == .notPermitted, "a version never runs on its own")
        #expect(Int(harness.task(scene.fs).codeProgram) == Program.fs && harness.task(scene.fs).generation == 0)
    }
}

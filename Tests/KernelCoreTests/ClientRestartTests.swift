// Tests of clients that keep their SSRs across their own crashes
// (Kernel+ClientRestart.swift): restarted in place with the same TaskID, the same
// arguments and every SSR; ended, releasing them, when they keep crashing or end
// normally; and only those marked `keep_ssrs`.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct ClientRestartTests {
    typealias Program = SSRProgram
    typealias TestKernel = KernelHarness.TestKernel

    /// fs (slot 0) recovered; the keeper (slot 1, started with "copy a b") has one
    /// answered request and 64 bytes of state in its SSR.
    private func scene() throws -> KernelHarness {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        try harness.spawn(Program.keeper, arguments: "copy a b")
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.write([UInt8](repeating: 0x4B, count: 64), at: SSRLayout.window + 100, in: 0)
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0)
        return harness
    }

    @Test func aKeeperIsRestartedWithItsSSRsItsTaskIDAndItsArguments() throws {
        let harness = try scene()
        let id = harness.id(1)
        let frames = harness.ssrFrames(of: 1, to: Program.fs)
        let state = harness.ssrBytes(of: 1, to: Program.fs)
        harness.kernel.fault(1, cause: .storePageFault, address: 0)

        #expect(harness.id(1) == id, "the same client, to its servers")
        #expect(harness.task(1).restarts == 1 && harness.state(1) == .runnable)
        #expect(harness.registers(1)[.pc] == KernelTestELF.textAddress, "from its pristine image")
        #expect(harness.ssrFrames(of: 1, to: Program.fs) == frames && harness.ssrBytes(of: 1, to: Program.fs) == state)
        #expect(harness.output.contains("[kernel] restarted keeper (pid 1, restart 1), its SSRs kept"))
        let file = harness.registers(1)
        #expect(file[.a3] == 8)
        #expect(try harness.read(8, at: file[.a2], in: 1) == Array("copy a b".utf8), "the arguments it started with")
        // Its next request is the next of the same binding.
        try harness.call(1, harness.id(0))
        #expect(harness.result(0, 1) == UInt(id.rawValue) && harness.result(0, 6) == 2)
    }

    @Test func aKeeperThatKeepsCrashingEndsAndItsSSRsGoAsAnyClients() throws {
        let harness = try scene()
        for _ in 0..<TestKernel.restartsBeforeGivingUp { harness.kernel.fault(1, cause: .storePageFault, address: 0) }
        #expect(harness.task(1).restarts == UInt16(TestKernel.restartsBeforeGivingUp), "the first restart is not quick")
        harness.kernel.fault(1, cause: .storePageFault, address: 0)
        #expect(harness.state(1) == .ended, "given up like a server restarting in quick succession")
        #expect(harness.orphans().count == 1, "its SSR is an orphan, for fs to clean up")
    }

    @Test func aKeeperThatEndsNormallyReleasesItsSSRsAndItsArguments() throws {
        let harness = try scene()
        harness.syscall(1, .exit, 0)
        #expect(harness.orphans().count == 1)
        // Its kept arguments were freed: eight more keepers fit in the table.
        for _ in 0..<8 { try harness.spawn(Program.keeper) }
        #expect(throws: SyscallError.noFreeSlot) { try harness.spawn(Program.keeper) }
    }

    @Test func onlyAClientMarkedToKeepItsSSRsIsRestarted() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        try harness.spawn(Program.client)
        harness.kernel.fault(1, cause: .storePageFault, address: 0)
        #expect(harness.state(1) != .runnable && harness.task(1).restarts == 0)
        #expect(!harness.output.contains("its SSRs kept"))
    }
}

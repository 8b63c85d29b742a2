// Each system call's errors, as `Syscall.possibleErrors` lists them (the ABI's
// "faults" of each call, as Hubris lists them): every call is made many times with
// random arguments — small numbers, the caller's own pages, unmapped, kernel and
// wrapping addresses, real and stale task ids and endpoints — from a manager, a plain
// process and a driver, and every error it returns must be one its list names.

import CurioABI
import Testing
@testable import KernelCore

@Suite struct SyscallErrorsTests {
    typealias Program = StandardProgram

    /// Argument values worth trying: each a kind of thing a process could pass.
    static func candidates(_ harness: KernelHarness) -> [UInt] {
        let live = (0..<4).map { UInt(harness.id($0).rawValue) }
        let endpoints = live.flatMap { id in [id, id | 1 << 32, id | 0xFFFF << 32] }
        return [0, 1, 2, 3, 7, 8, 15, 16, 64, 4096, 4097, 0x1_0000, UInt(UInt32.max), UInt.max,
                UInt(ProcessLayout.heap), UInt(ProcessLayout.heap) + 0xFF8, UInt(ProcessLayout.text),
                UInt(ProcessLayout.guardPage), UInt(ProcessLayout.stackBase), 0x8000_0000, 0x8020_0000,
                UInt(ProcessLayout.heapEnd) - 1, 0x3F_FFFF_FFFF, 0x1000_0000]
            + live + endpoints + live.map { $0 ^ 1 << 16 }
    }

    @Test(arguments: Syscall.allCases)
    func everyErrorACallReturnsIsOneItLists(call: Syscall) throws {
        var dice: UInt64 = 0x9E37_79B9_7F4A_7C15 &* (UInt64(call.rawValue) + 1)
        func roll(_ sides: Int) -> Int {
            dice ^= dice << 13
            dice ^= dice >> 7
            dice ^= dice << 17
            return Int(dice % UInt64(sides))
        }
        var seen: Set<SyscallError> = []
        for round in 0..<30 {
            let harness = try KernelHarness()
            try harness.spawn(Program.manager)
            try harness.spawn(Program.server)
            try harness.spawn(Program.client)
            try harness.spawn(Program.driver)
            let values = Self.candidates(harness)
            let caller = [0, 2, 3][round % 3]
            for _ in 0..<8 where harness.state(caller) == .runnable {
                let arguments = (0..<7).map { _ in values[roll(values.count)] }
                harness.syscall(caller, rawNumber: UInt64(call.rawValue), arguments)
                // A call that blocked (or ended the caller) has not returned: its a0 is
                // still an argument.
                guard harness.state(caller) == .runnable,
                      let error = harness.error(caller) else { continue }
                seen.insert(error)
                #expect(call.possibleErrors.contains(error),
                        "\(call) returned \(error) with \(arguments.map { String($0, radix: 16) })")
            }
        }
        // Not vacuous: random arguments reach at least one refusal of every call that
        // has any.
        #expect(seen.isEmpty == call.possibleErrors.isEmpty, "\(call): only \(seen) returned")
    }
}

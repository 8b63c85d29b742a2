// Deliberate faults stop only the offender, with one clear report; no process can
// reach another's memory or the kernel's, through the MMU or through a syscall.

import Testing

@Suite(.serialized)
struct IsolationTests {
    /// Each mode of `crashme`, the fault it must cause, and where in its code.
    static let faults: [(mode: String, report: String, symbol: String)] = [
        ("null", "store page fault at 0x0,", "Crashme.store(at:)"),
        ("kwrite", "store page fault at 0x80200000,", "Crashme.store(at:)"),
        ("kread", "load page fault at 0x80200000,", "Crashme.load(from:)"),
        ("peek", "load page fault at 0x70000000,", "Crashme.load(from:)"),
        ("rotext", "store page fault at 0x40000000,", "Crashme.store(at:)"),
        ("illegal", "illegal instruction", "Crashme.executeIllegalInstruction()"),
        ("overflow", "Swift runtime trap", "Crashme.overflow"),
    ]

    @Test(arguments: faults.map(\.mode))
    func faultKillsOnlyTheOffender(mode: String) throws {
        let expected = try #require(Self.faults.first { $0.mode == mode })
        let run = try CurioMachine.run(commands: "run crashme \(mode); echo still alive; ps")
        #expect(!run.timedOut)
        let report = try #require(run.console.split(separator: "\n").first { $0.hasPrefix("[kernel] crashme") },
                                  "no fault report:\n\(run.console)")
        #expect(report.contains(expected.report), "\(report)")
        #expect(report.contains("in ") && report.contains(expected.symbol), "pc not symbolized: \(report)")
        #expect(run.console.contains("still alive"))
        #expect(run.console.contains("console         recv"), "the console server must survive:\n\(run.console)")
        #expect(!run.console.contains("PANIC"))
        #expect(run.exitStatus == 0)
    }

    /// Curio saves no floating-point state, so no process may use the f-registers: the
    /// firmware leaves them enabled, and a value one process writes would otherwise be
    /// read by the next (a channel no `sends` list allows).
    @Test func floatingPointRegistersAreNoChannel() throws {
        let run = try CurioMachine.run(commands: "run crashme fpput 123456789; run crashme fpget; echo still alive")
        #expect(!run.timedOut)
        let reports = run.console.split(separator: "\n").filter { $0.hasPrefix("[kernel] crashme") }
        #expect(reports.count == 2, "\(run.console)")
        #expect(reports.allSatisfy { $0.contains("illegal instruction") }, "\(reports)")
        #expect(reports.first?.contains("floatingPointStore") == true, "\(reports)")
        #expect(reports.last?.contains("floatingPointLoad") == true, "\(reports)")
        #expect(!run.console.contains("f31 ="), "an FP instruction ran:\n\(run.console)")
        #expect(run.console.contains("still alive"))
    }

    /// Any program may print, but typed lines belong to the shell: another program
    /// asking for one is refused at once rather than held until the user types.
    @Test func onlyTheShellReadsTypedLines() throws {
        let run = try CurioMachine.run(commands: "run crashme readline; echo still alive", timeout: .seconds(60))
        #expect(!run.timedOut, "crashme was given the console's input queue:\n\(run.console)")
        #expect(run.console.contains("readline: refused: not permitted"), "\(run.console)")
        #expect(run.console.contains("still alive"))
    }

    @Test func endlessLoopIsPreemptedAndKillable() throws {
        // The first free slot after the boot programs; the spinner must not stop the
        // shell, and `kill` must stop it.
        let started = try CurioMachine.run(commands: "run crashme loop &")
        let pid = try #require(started.console.firstMatch(of: /started crashme as pid (\d+)/)?.1)
        let run = try CurioMachine.run(commands: "run crashme loop &; echo shell still runs; ps; kill \(pid); ps")
        #expect(run.console.contains("shell still runs"))
        #expect(run.console.contains("killed crashme (pid \(pid))"))
        #expect(run.exitStatus == 0, "\(run.console)")
    }

    @Test func syscallsRefuseKernelPointers() throws {
        let run = try CurioMachine.run(commands: "run crashme badptr")
        #expect(run.exitStatus == 0, "\(run.console)")
        #expect(run.console.components(separatedBy: "badptr: refused: bad address").count - 1 == 2)
    }

    @Test func staleGenerationIsRefused() throws {
        let run = try CurioMachine.run(commands: "run crashme stale")
        #expect(run.exitStatus == 0, "\(run.console)")
        #expect(run.console.contains("stale: refused: dead endpoint"))
    }

    @Test func spawnExitCyclesReturnEveryPage() throws {
        let run = try CurioMachine.run(commands: "spawntest 10000", timeout: .seconds(600))
        #expect(!run.timedOut)
        let line = try #require(run.console.split(separator: "\n").first { $0.hasPrefix("spawntest:") })
        #expect(line.hasPrefix("spawntest: 10000 cycles"), "\(line)")
        let numbers = line.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }
        #expect(numbers.count == 3 && numbers[1] == numbers[2], "free memory moved: \(line)")
        #expect(run.exitStatus == 0)
    }
}

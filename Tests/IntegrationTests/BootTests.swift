// Curio boots, its shell runs commands, and `make run CMDS=...` semantics hold.

import Testing

@Suite(.serialized)
struct BootTests {
    @Test func bootsToAnInteractiveShellAndPowersOff() throws {
        let machine = try InteractiveMachine()
        #expect(machine.waitFor("curio> "), "no prompt:\n\(machine.transcript)")
        machine.type("echo typed by a person")
        #expect(machine.waitFor("typed by a person", count: 2), "no echo:\n\(machine.transcript)")
        machine.type("ps")
        #expect(machine.waitFor("console"), "ps lists no console server:\n\(machine.transcript)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0, "poweroff did not end QEMU with status 0:\n\(machine.transcript)")
    }

    @Test func commandsRunInOrderAndTheLastStatusIsTheExitStatus() throws {
        let run = try CurioMachine.run(commands: "echo first; echo second; ps")
        #expect(!run.timedOut)
        #expect(run.exitStatus == 0, "\(run.console)")
        let first = try #require(run.console.range(of: "first\n"))
        let second = try #require(run.console.range(of: "second\n"))
        #expect(first.upperBound <= second.lowerBound)
        for server in ["console", "shell"] {
            #expect(run.console.contains(server), "ps should list \(server):\n\(run.console)")
        }
    }

    @Test func failingLastCommandGivesItsStatus() throws {
        let run = try CurioMachine.run(commands: "echo hi; run crashme exit 7")
        #expect(run.exitStatus == 7, "\(run.console)")
        #expect(run.console.contains("crashme exited with status 7"))
    }

    @Test func unknownCommandIsAnError() throws {
        let run = try CurioMachine.run(commands: "frobnicate")
        #expect(run.exitStatus == 127)
        #expect(run.console.contains("frobnicate: unknown command"))
    }

    @Test func psAndMemReportTheSystem() throws {
        let run = try CurioMachine.run(commands: "ps; mem")
        #expect(run.exitStatus == 0)
        #expect(run.console.contains("PID  GEN  NAME"))
        #expect(run.console.range(of: #"total \d+ KiB, free \d+ KiB, kernel \d+ KiB"#, options: .regularExpression) != nil)
    }
}

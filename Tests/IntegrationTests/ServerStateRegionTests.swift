// The kernel's side of server state regions, end to end: clients can never reach
// their SSRs, servers only while serving, bindings respect budgets, and a server
// that breaks the rule is restarted while its clients carry on.

import Testing

@Suite(.serialized)
struct ServerStateRegionTests {
    @Test func aClientCannotReachTheSSRWindow() throws {
        let run = try CurioMachine.run(commands: "run crashme ssrpeek; ssr; ps")
        #expect(run.console.range(of: #"crashme \(pid \d+, gen \d+\) stopped: load page fault at 0x60000000"#,
                                  options: .regularExpression) != nil, "\(run.console)")
        #expect(run.exitStatus == 0)
    }

    @Test func aServerTouchingItsWindowOutsideARequestIsRestarted() throws {
        let run = try CurioMachine.run(commands: "run crashme rogue; ps")
        #expect(run.console.range(of: #"rogueserver \(pid \d+, gen 0\) stopped: load page fault at 0x60000000"#,
                                  options: .regularExpression) != nil, "\(run.console)")
        #expect(run.console.range(of: #"restarted rogueserver \(pid \d+, gen 1, restart 1\)"#,
                                  options: .regularExpression) != nil)
        // The client's next requests are served by the new incarnation; the request
        // ids continue (1, 2 before the fault, 3 after), so nothing was replayed.
        #expect(run.console.contains("rogue: served again, requests 1 then 3"), "\(run.console)")
        #expect(run.console.range(of: #"\d+\s+1\s+rogueserver\s+recv\s+3\s+\d+/\d+\s+1"#, options: .regularExpression)
                != nil, "ps should show generation 1 and one restart:\n\(run.console)")
        #expect(run.exitStatus == 0)
    }

    /// Each cycle binds a client to rogueserver (a 16 KiB SSR from the client's
    /// budget) and exits; the server gets the unbind message and the SSR is freed.
    @Test func bindAndExitCyclesReturnEveryPage() throws {
        let run = try CurioMachine.run(commands: "spawntest 1000 crashme bind; ssr", timeout: .seconds(300))
        #expect(!run.timedOut)
        let line = try #require(run.console.split(separator: "\n").first { $0.hasPrefix("spawntest:") })
        #expect(line.hasPrefix("spawntest: 1000 cycles"), "\(line)")
        let numbers = line.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) }
        #expect(numbers.count == 3 && numbers[1] == numbers[2], "free memory moved: \(line)")
        #expect(run.exitStatus == 0)
    }

    @Test func bindingBeyondTheBudgetFailsCleanly() throws {
        let run = try CurioMachine.run(commands: "run tinyclient bind; run crashme bind; mem")
        #expect(run.console.contains("bind: refused: out of memory"), "\(run.console)")
        #expect(run.console.contains("bind: bound"), "a client with room binds:\n\(run.console)")
        #expect(run.exitStatus == 0)
    }
}

// The fault model on the real machine: a fault armed with the execution trigger
// strikes at a random instruction while its target runs (not at a request or a
// tick), and a seed makes the moment and the target repeat exactly under -icount.

import Testing

@Suite(.serialized)
struct FaultModelTests {
    static let icount = ["-icount", "shift=0,sleep=off"]

    private func strikeReport(seed: Int) throws -> String {
        let run = try CurioMachine.run(
            commands: "run timerclient 10000 200 &; inject timer illegal exec 300 seed=\(seed); wait timerclient",
            timeout: .seconds(60), extra: Self.icount)
        #expect(!run.timedOut)
        #expect(run.console.contains("timerclient ok waits=200"), "the client carried on:\n\(run.console)")
        return run.console.split(separator: "\n").first { $0.hasPrefix("[kernel] timer (pid") }.map(String.init) ?? ""
    }

    @Test func anExecutionFaultStrikesMidCodeAndASeedRepeatsIt() throws {
        let first = try strikeReport(seed: 5)
        #expect(first.contains("stopped: illegal instruction"), "\(first)")
        let again = try strikeReport(seed: 5)
        #expect(again == first, "same seed, same instruction")
    }

    /// A true wild write: a random value lands somewhere the server may write. Whatever
    /// it hits, the server's checks or a restart keep its clients' answers right.
    @Test func wildWritesLeaveTheTimerClientsCorrect() throws {
        let injections = (1...6).map { "inject timer wild-write exec 200 seed=\($0); sleep 30" }.joined(separator: "; ")
        let run = try CurioMachine.run(commands: "run timerclient 10000 400 &; " + injections + "; wait timerclient; audit",
                                       timeout: .seconds(90), extra: Self.icount)
        #expect(!run.timedOut)
        #expect(run.console.components(separatedBy: "[kernel] injected wild-write into timer").count - 1 == 6)
        #expect(run.console.contains("timerclient ok waits=400"), "\(run.console)")
        #expect(run.console.contains("audit: clean"))
    }

    /// The campaign's pointer-flip hang: on the build the campaign ran, this seed's
    /// flip hit the register through which the server loop reads its notification
    /// mask, and the timer went on receiving without its own timer's notifications,
    /// every held client waiting for ever (the loop now compares the mask with the
    /// service's constant and restarts). Where a seed's flip lands moves with every
    /// change to the timer's code, so what this run can hold on to is the outcome: no
    /// hang, every client correct.
    @Test func theCampaignsDeafTimerSeedEndsWithEveryClientCorrect() throws {
        let run = try CurioMachine.run(
            commands: "run timertest 4 100000 30 pointer-flip after 33 seed=5072679285713941; audit",
            timeout: .seconds(60), extra: ["-icount", "shift=0,sleep=on"])
        #expect(!run.timedOut, "\(run.console)")
        #expect(run.console.contains("[kernel] injected pointer-flip into timer"), "\(run.console)")
        #expect(run.console.contains("timertest ok clients=4 ok=4 fail=0 lost=0"), "\(run.console)")
        #expect(run.console.contains("audit: clean"))
    }
}

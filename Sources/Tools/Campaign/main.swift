// `make campaign SERVER=timer RUNS=N`: a fault-injection campaign.
//
// For every fault kind, N runs; each run boots Curio under -icount (so it repeats
// exactly), starts timer clients with `timertest`, injects ONE fault of that kind
// into SERVER (at the Nth request in even runs, at a pseudo-random tick in odd
// ones; a different moment per run), and classifies
// what happened, in the vocabulary of the SWIFI literature:
//
//   not activated   no restart and every client correct: masked, or never struck
//   recovered       the server restarted and every client carried on, unaware
//   client error    some client was told (server state lost, a failed call)
//   hang            the run did not finish in time
//   silent corr.    some client got a wrong answer and was not told
//   system failure  a kernel panic, or Curio did not come up
//
// usage: curio-campaign [SERVER [RUNS [KERNEL_ELF]]]

import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let server = arguments.count > 0 ? arguments[0] : "timer"
let runs = arguments.count > 1 ? Int(arguments[1]) ?? 20 : 20
let kernel = arguments.count > 2 ? arguments[2] : "build/kernel.elf"
let kinds = ["wild-write", "reg-flip", "data-flip", "stack-flip", "ssr-flip", "loop", "illegal"]

enum Outcome: String, CaseIterable {
    case notActivated = "not activated"
    case recovered = "recovered"
    case clientError = "client error"
    case hang = "hang"
    case silentCorruption = "silent corr."
    case systemFailure = "system failure"
}

func boot(_ commands: String, timeout: TimeInterval) -> (output: String, finished: Bool) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic",
                         "-bios", "default", "-icount", "shift=0,sleep=off", "-kernel", kernel, "-append", commands]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return ("cannot start QEMU", false) }
    let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    timer.cancel()
    return (String(decoding: data, as: UTF8.self), process.terminationReason == .exit)
}

func classify(_ output: String, finished: Bool) -> Outcome {
    if output.contains("PANIC") || !output.contains("Curio: ") { return .systemFailure }
    guard finished, let summary = output.split(whereSeparator: \.isNewline)
        .last(where: { $0.hasPrefix("timertest ok") || $0.hasPrefix("timertest FAIL") }) else { return .hang }
    var fields: [String: Int] = [:]
    for field in summary.split(separator: " ") {
        let parts = field.split(separator: "=")
        if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
    }
    if fields["fail", default: 0] > 0 { return .silentCorruption }
    if fields["lost", default: 0] + fields["error", default: 0] + fields["crashed", default: 0] > 0 { return .clientError }
    return fields["restarts", default: 0] > 0 ? .recovered : .notActivated
}

print("Fault-injection campaign: \(runs) runs per fault kind against \(server) (4 timer clients, -icount)")
print("")
let header = ["fault", "injected"] + Outcome.allCases.map(\.rawValue)
print("| " + header.joined(separator: " | ") + " |")
print("|" + String(repeating: "---|", count: header.count))
var totals = [Outcome: Int]()
for kind in kinds {
    var counts = [Outcome: Int]()
    for run in 0..<runs {
        // A different moment per run, alternating between the two kinds of moment:
        // as the Nth request is delivered (the server is about to work), and at a
        // random clock tick (wherever the server happens to be, usually waiting).
        let trigger = run % 2 == 0 ? "after \(1 + run * 3)" : "random \(20_000 + run * 37_000)"
        let commands = "run timertest 4 100000 30 \(kind) \(trigger) target=\(server)"
        let (output, finished) = boot(commands, timeout: 120)
        counts[classify(output, finished: finished), default: 0] += 1
    }
    for (outcome, count) in counts { totals[outcome, default: 0] += count }
    let cells = [kind, String(runs)] + Outcome.allCases.map { String(counts[$0, default: 0]) }
    print("| " + cells.joined(separator: " | ") + " |")
}
let cells = ["all", String(runs * kinds.count)] + Outcome.allCases.map { String(totals[$0, default: 0]) }
print("| " + cells.joined(separator: " | ") + " |")

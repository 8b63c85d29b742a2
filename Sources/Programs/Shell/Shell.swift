// Curio's shell.
//
// Interactive, it prompts on the console and runs one command per line. Started
// with a command line (the kernel's bootargs, from `make run CMDS='...'`), it runs
// those `;`-separated commands in order, echoing each after the prompt, then powers
// the machine off with the status of the last one — which becomes QEMU's exit
// status, so scripts and tests can see whether the commands succeeded.
//
// Typing. The shell edits the line itself, with ConsoleCore's `LineEditor` (cursor
// keys, Home/End, deletion anywhere, Ctrl-A/E/U/K/W, history on Up/Down, Tab
// completion of command names and paths), from raw bytes it reads from the console.
// The console keeps every byte typed until the shell reads it, so a line typed while
// a command runs is simply the next line. While the shell edits, the console's echo
// is off and the editor draws; while a command runs it is on, and type-ahead shows
// as it is typed (and again after the next prompt, as in bash).
//
// Ctrl-C. A program run in the foreground at the prompt is stopped by Ctrl-C; the
// shell survives. The shell cannot read the console while it waits for the program,
// and the kernel has no way to wait for "the child ended, or a notification came"
// (nor may the console notify the shell), so the shell alternates: it asks the
// console to hold an `awaitInterrupt` for a few milliseconds — 1, 2, 4, ... up to
// `longestInterruptWatch`, so short programs end promptly and long ones cost a
// wake-up each 64 ms — and between asks reads the child's state with `taskInfo`. A
// Ctrl-C typed at any moment is queued by the console and answers the next ask at
// once; the shell kills the child (it has `manage`) and reaps it (status 130, as in
// Unix shells). Scripts wait in the kernel as before, so scripted runs — benchmarks,
// campaigns and their recorded seeds — schedule exactly as they did; Ctrl-A X stops
// QEMU. A `wait` that also returned on a notification, which the console could post,
// would replace the polling. Built-in commands (`sleep`, `await`, `cat`) are not
// interrupted: a Ctrl-C typed during one abandons the next prompt's line instead.
//
// Ctrl-D at an empty prompt ends the session, which on Curio means powering off, as
// `poweroff` does.
//
// Redirection. `CMD > PATH` and `CMD >> PATH` send what a command prints, or what the
// program `run` waits for prints, to a file (Redirect.swift). Messages about a
// command — its errors, its usage, how a program ended — go past the redirection to
// the terminal (`complain`), as a Unix shell's go to stderr.
//
// At an interactive start the shell asks fs whether the disk is usable and prints
// why not (a disk Curio cannot mount, or only read); every file command that fails
// for that reason says it again (FileCommands.swift).

import ConsoleAPI
import ConsoleCore
import TimerAPI
import CurioUser
import UserArch

@main
struct Shell {
    /// `instret` when the shell began, and whether that counts instructions (see `uptime`).
    nonisolated(unsafe) static var startInstructions: UInt64 = 0
    nonisolated(unsafe) static var countsInstructions = false
    /// Whether a person is typing (no script): only then can Ctrl-C stop a program.
    nonisolated(unsafe) static var interactive = false

    static let prompt = "curio> "
    /// The longest the console holds one `awaitInterrupt` while a program runs.
    static let longestInterruptWatch: UInt = 64

    static func main() {
        noteStartCounters()
        let script = String(decoding: System.arguments, as: UTF8.self)
        if !script.isEmpty {
            var status: Int32 = 0
            for command in script.split(separator: ";") {
                let line = String(command.drop(while: { $0 == " " }))
                print(prompt + line)
                status = execute(line)
            }
            do throws(SyscallError) {
                try System.powerOff(code: Int(status))
            } catch {
                print("poweroff: " + describe(error))
                System.exit(status)
            }
        }
        interactive = true
        // Only interactively: a script's first file command says the same, and scripted
        // runs (benchmarks, campaign seeds) must schedule as they were recorded.
        reportMountStatus()
        startServices()
        print("Curio shell. Type 'help' for commands.")
        var editor = LineEditor(prompt: Array(prompt.utf8))
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        while true {
            let line = readLine(with: &editor, input: input)
            _ = execute(String(decoding: line, as: UTF8.self))
        }
    }

    /// At an interactive boot, what a person expects to find running: the web server
    /// on port 80, which `make run` forwards from 127.0.0.1 (scripts start what they
    /// need themselves, and measure a machine without it).
    static func startServices() {
        guard (try? System.spawn("httpd", arguments: "80 quiet")) != nil else { return }
        print("httpd: serving the disk over HTTP on port 80")
    }

    /// Shows the prompt and edits one line; the console's echo is off meanwhile.
    static func readLine(with editor: inout LineEditor, input: UnsafeMutableRawBufferPointer) -> [UInt8] {
        try? Console.setEcho(false)
        defer { try? Console.setEcho(true) }
        var output: [UInt8] = []
        editor.begin(into: &output)
        while true {
            Console.write(output)
            output.removeAll(keepingCapacity: true)
            let count: Int
            do throws(SyscallError) {
                count = try Console.read(into: input)
            } catch {
                print("shell: the console gives no input (" + describe(error) + "); powering off")
                _ = try? System.powerOff(code: 1)
                System.exit(1)
            }
            for byte in UnsafeRawBufferPointer(rebasing: input[0..<count]) {
                switch editor.feed(byte, into: &output) {
                case nil:
                    break
                case .line(let line):
                    Console.write(output)
                    return line
                case .interrupted:
                    editor.begin(into: &output)
                case .endOfInput:
                    Console.write(output)
                    print("poweroff")
                    return Array("poweroff".utf8)
                case .completionRequested:
                    complete(&editor, into: &output)
                }
            }
        }
    }

    /// Tab: completes the word before the cursor from the command names or a directory.
    static func complete(_ editor: inout LineEditor, into output: inout [UInt8]) {
        let prefix: [UInt8]
        let candidates: [CompletionCandidate]
        switch Completion.target(of: editor.textBeforeCursor) {
        case .command(let typed):
            prefix = typed
            candidates = commandNames.map { CompletionCandidate(name: Array($0.utf8)) }
        case .path(let directory, let typed):
            prefix = typed
            candidates = directoryEntries(directory.isEmpty ? "/" : String(decoding: directory, as: UTF8.self))
        }
        switch Completion.resolve(prefix, among: candidates) {
        case .none: editor.ringBell(into: &output)
        case .insert(let text): editor.insert(text, into: &output)
        case .choices(let names): editor.showChoices(names, into: &output)
        }
    }

    /// Every command `help` lists (the first word of each unindented line of it): what
    /// Tab completes, so that the two cannot disagree.
    static var commandNames: [String] {
        (helpText + "\n" + fileCommandsHelp + "\n" + networkCommandsHelp).split(separator: "\n").filter { !$0.hasPrefix(" ") }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Runs one command, its redirection taken out (`execute`); returns its exit status
    /// (0 for success).
    static func perform(_ line: String) -> Int32 {
        let words = line.split(separator: " ").map(String.init)
        guard let command = words.first else { return 0 }
        let arguments = Array(words.dropFirst())
        switch command {
        case "help": return help()
        case "echo":
            print(arguments.joined(separator: " "))
            return 0
        case "ps": return processStatus()
        case "mem": return memory()
        case "run": return run(arguments)
        case "wait": return waitForBackground(arguments)
        case "kill": return kill(arguments)
        case "sleep": return sleep(arguments)
        case "await": return awaitState(arguments)
        case "spawntest": return spawnTest(arguments)
        case "uptime": return uptime()
        case "ssr": return serverStateRegions()
        case "audit": return audit()
        case "inject": return inject(arguments)
        case "upgrade": return upgrade(arguments)
        case "poweroff":
            _ = try? System.powerOff(code: 0)
            return 1
        default:
            if let status = fileCommand(command, arguments) { return status }
            if let status = networkCommand(command, arguments) { return status }
            complain(command + ": unknown command (try 'help')")
            return 127
        }
    }

    static let helpText = """
        help                      this list
        echo WORDS...             print the words
        ps                        list processes: pid, generation, name, state, priority, memory
        mem                       physical memory: total, free, kernel, processes
        run PROGRAM [ARGS] [&]    start a program from the boot image and wait for it (& : don't wait;
                                  at the prompt, Ctrl-C stops it)
        wait [PROGRAM...]         wait for the programs started with & (those named, or all);
                                  fails unless each exited 0
        kill PID|NAME             stop a process, or every process running program NAME
        sleep MS                  wait MS milliseconds (other programs run meanwhile)
        await NAME STATE [MS]     wait until a process running NAME is in STATE (as ps shows it),
                                  at most MS milliseconds (default 5000)
        spawntest N [PROGRAM [ARGS]]  spawn and reap PROGRAM (default: crashme exit 0) N times;
                                  check that free memory returns exactly
        uptime                    time since boot (under QEMU's -icount shift=0, also the instructions
                                  from power-on to the shell)
        ssr                       list server state regions: owner pid, server, pages, state, last request
        audit                     check the kernel's invariants (frame owners, charges, queues, SSR windows)
        inject SERVER FAULT [TRIGGER [ARG]] [aim=N] [seed=S] [persistent]
                                  inject a fault into a server: FAULT one of wild-write, pointer-flip,
                                  reg-flip, data-flip, stack-flip, ssr-flip, loop, illegal, mutate
                                  (persistent: the restarted server has the same bug); TRIGGER next
                                  (default), after (ARG requests, default 1), random (within ARG ticks,
                                  default 1 s) or exec (within ARG ticks of the server's own execution,
                                  default 10 ms); seed=S makes the moment and target repeatable
        upgrade SERVER PROGRAM    replace a running server with a version of it (system.toml version_of),
                                  or with its own program again, between two requests; clients carry on.
                                  If the version fails its recovery, the kernel rolls back
        poweroff                  turn the machine off
        """

    static let redirectionHelp = """
        Output: COMMAND > PATH writes what a command (or a program started with run) prints to a file,
        replacing it; COMMAND >> PATH adds to its end. Error messages still show here.
        """

    static let keysHelp = """
        Keys: Left/Right, Home/End (Ctrl-A/E), Backspace/Delete, Ctrl-U/K/W erase to the start, to the end,
        the word before the cursor; Up/Down recall earlier lines; Tab completes commands and paths;
        Ctrl-C stops the program running (or abandons the line); Ctrl-D at an empty prompt powers off.
        """

    static func help() -> Int32 {
        print(helpText)
        print(fileCommandsHelp)
        print(networkCommandsHelp)
        print(redirectionHelp)
        print(keysHelp)
        return 0
    }

    /// Task slots in the kernel: `ps` asks about each.
    static let maxProcesses = TaskID.slotCount

    static func processStatus() -> Int32 {
        print("PID  GEN  NAME            STATE  PRI  MEM KiB (used/budget)  RESTARTS")
        for slot in 0..<maxProcesses {
            guard let info = try? System.taskInfo(slot: slot), info.state != .free else { continue }
            let memory = "\(Int(info.pagesUsed) * 4)/\(Int(info.pageBudget) * 4)"
            let columns = [pad("\(slot)", 5), pad("\(info.id.generation)", 5), pad(name(info), 16),
                           pad(String(info.state.name), 7), pad("\(info.priority)", 5), pad(memory, 23)]
            let code = codeName(info) == name(info) ? "" : pad("", 9 - "\(info.restarts)".utf8.count) + "runs " + codeName(info)
            print(columns.joined() + "\(info.restarts)" + code)
        }
        return 0
    }

    /// Lists every SSR in the system (live clients' first, then orphans awaiting cleanup).
    static func serverStateRegions() -> Int32 {
        print("OWNER  SERVER          PAGES  STATE     LAST REQUEST")
        var index = 0
        while true {
            let info: SSRInfo?
            do throws(SyscallError) {
                info = try System.ssrInfo(index: index)
            } catch {
                complain("ssr: " + describe(error))
                return 1
            }
            guard let info else { break }
            var server = info.serverName
            let serverName = withUnsafeBytes(of: &server) { bytes in
                String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            print(pad("\(info.owner.index)", 7) + pad(serverName, 16) + pad("\(info.pages)", 7)
                  + pad(String(info.state.name), 10) + "\(info.lastCompletedRequest)")
            index += 1
        }
        print("\(index) server state region" + (index == 1 ? "" : "s"))
        return 0
    }

    /// `upgrade SERVER PROGRAM`: a live upgrade. The kernel does it only between two of
    /// the server's requests, so a busy server is asked again each millisecond, for up
    /// to two seconds. Whether the version's recovery succeeds, the kernel reports.
    static func upgrade(_ arguments: [String]) -> Int32 {
        guard arguments.count == 2 else {
            complain("usage: upgrade SERVER PROGRAM")
            return 2
        }
        for _ in 0..<2_000 {
            let outcome: SyscallError? = withUTF8Bytes(arguments[0]) { server in
                withUTF8Bytes(arguments[1]) { version in
                    do throws(SyscallError) {
                        try System.upgrade(server, to: version)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            switch outcome {
            case nil:
                return awaitUpgrade(of: arguments[0], to: arguments[1])
            case .serverBusy?:
                System.sleep(ticks: Clock.ticksPerMillisecond)
            case let error?:
                complain("upgrade " + arguments[0] + " " + arguments[1] + ": " + describe(error))
                return 1
            }
        }
        complain("upgrade: " + arguments[0] + " was never between two requests")
        return 1
    }

    /// Watches an upgraded server until its recovery is over: it is back in `receive`
    /// running the version (the upgrade stands), or runs its old code again (the
    /// kernel rolled back).
    static func awaitUpgrade(of server: String, to version: String) -> Int32 {
        for _ in 0..<2_000 {
            for slot in 0..<maxProcesses {
                guard let info = try? System.taskInfo(slot: slot), info.state != .free, info.state != .ended,
                      name(info) == server else { continue }
                if codeName(info) != version {
                    complain("upgrade: " + version + " failed its recovery; " + server + " runs " + codeName(info)
                             + " again")
                    return 1
                }
                if info.state == .receiving {
                    print("upgrade: \(server) runs \(version) now")
                    return 0
                }
            }
            System.sleep(ticks: Clock.ticksPerMillisecond)
        }
        complain("upgrade: " + server + " is still recovering")
        return 1
    }

    /// `inject SERVER FAULT [TRIGGER [ARG]] [aim=N] [seed=S]`: arms a fault in a running server.
    static func inject(_ arguments: [String]) -> Int32 {
        let usage = "usage: inject SERVER FAULT [next|after N|random T|exec T] [aim=N] [seed=S] [persistent]"
        var positional: [String] = []
        var aim: UInt = 0
        var seed: UInt = 0
        var persistent = false
        for word in arguments {
            if word == "persistent" {
                persistent = true
            } else if word.hasPrefix("aim="), let value = UInt(word.dropFirst(4)) {
                aim = value
            } else if word.hasPrefix("seed="), let value = UInt(word.dropFirst(5)) {
                seed = value
            } else {
                positional.append(word)
            }
        }
        guard positional.count >= 2, positional.count <= 4 else {
            complain(usage)
            return 2
        }
        guard let kind = FaultKind.allCases.first(where: { String($0.name) == positional[1] }) else {
            complain("inject: unknown fault '" + positional[1] + "'; one of: "
                  + FaultKind.allCases.map { String($0.name) }.joined(separator: ", "))
            return 2
        }
        var trigger = FaultTrigger.nextRequest
        var argument: UInt = 0
        if positional.count >= 3 {
            switch positional[2] {
            case "next": trigger = .nextRequest
            case "after":
                trigger = .afterRequests
                argument = 1
            case "random":
                trigger = .randomTime
                argument = UInt(System.ticksPerSecond)
            case "exec":
                trigger = .execution
                argument = UInt(System.ticksPerSecond / 100)
            default:
                complain(usage)
                return 2
            }
        }
        if positional.count == 4 {
            guard let value = UInt(positional[3]) else {
                complain(usage)
                return 2
            }
            argument = value
        }
        let name = Array(positional[0].utf8)
        let result: Result<Void, SyscallError> = name.withUnsafeBytes { bytes in
            Result { () throws(SyscallError) in
                try System.injectFault(into: bytes, kind: kind, persistent: persistent, trigger: trigger,
                                       argument: argument, aim: aim, seed: seed)
            }
        }
        do throws(SyscallError) {
            try result.get()
        } catch {
            complain("inject " + positional[0] + ": " + describe(error))
            return 1
        }
        let when = positional.count > 2 ? positional.dropFirst(2).joined(separator: " ") : "next"
        print("armed " + String(kind.name) + " in " + positional[0] + " (" + when + ")"
              + (seed != 0 ? ", seed \(seed)" : "") + (persistent ? ", persistent" : ""))
        return 0
    }

    /// Under QEMU's -icount, `instret` reads QEMU's virtual clock in nanoseconds: at
    /// shift=0, the setting of every Curio tool, one per instruction executed (plus any
    /// idle time QEMU skipped; the shell is runnable from boot, so little or none comes
    /// before its start). Without -icount it reads the host's cycle counter, which says
    /// nothing about the guest (about 2 × 10^12 on a host up for a while). So the shell
    /// reads `instret` on both sides of the clock: only a counter that brackets the
    /// clock's nanoseconds (to its 100 ns tick) is the virtual clock, and only then does
    /// `uptime` print a count. (The shift itself cannot be seen from inside: at shift=N
    /// the count is 2^N times the instructions.)
    static func noteStartCounters() {
        let before = curio_read_instret()
        let clock = System.clock()
        let after = curio_read_instret()
        let nanosecondsPerTick = 1_000_000_000 / System.ticksPerSecond
        let clockNanoseconds = clock * nanosecondsPerTick
        startInstructions = before
        countsInstructions = before < clockNanoseconds + nanosecondsPerTick && clockNanoseconds <= after
    }

    static func uptime() -> Int32 {
        let milliseconds = System.clock() / (System.ticksPerSecond / 1000)
        guard countsInstructions else {
            print("up \(milliseconds) ms (instruction counts need QEMU's -icount)")
            return 0
        }
        print("up \(milliseconds) ms; the shell started \(startInstructions) instructions after power-on")
        return 0
    }

    static func memory() -> Int32 {
        let info = System.memoryInfo()
        let used = info.totalPages - info.freePages
        let processes = (used - info.kernelPages) * 4
        print("total \(info.totalPages * 4) KiB, free \(info.freePages * 4) KiB, kernel \(info.kernelPages * 4) KiB, processes \(processes) KiB")
        return 0
    }

    /// The kernel's invariant audit: frame ownership, charges, IPC queues, SSR windows.
    static func audit() -> Int32 {
        do throws(SyscallError) {
            let report = try System.audit()
            guard report.violations > 0 else {
                print("audit: clean (\(report.ownedFrames) frames owned by processes)")
                return 0
            }
            let first = AuditViolation(rawValue: report.first) ?? .none
            print("audit: \(report.violations) violations; first: " + String(first.name) + " (slot \(report.slot))")
            return 1
        } catch {
            complain("audit: " + describe(error))
            return 1
        }
    }

    static func run(_ arguments: [String]) -> Int32 {
        guard var program = arguments.first else {
            complain("usage: run PROGRAM [ARGS] [&]")
            return 2
        }
        var rest = Array(arguments.dropFirst())
        let background = rest.last == "&" || program.hasSuffix("&")
        if rest.last == "&" { rest.removeLast() }
        if program.hasSuffix("&") { program.removeLast() }
        if background && outputFile != nil {
            complain("run: the output of a program started with & cannot be redirected (the shell collects it only while it waits)")
            return 2
        }
        let child: TaskID
        do throws(SyscallError) {
            child = try System.spawn(program, arguments: rest.joined(separator: " "))
        } catch {
            complain("run " + program + ": " + describe(error))
            return 1
        }
        if background {
            backgroundChildren.append((child, program))
            print("started \(program) as pid \(child.index)")
            return 0
        }
        let interrupted: Bool
        if outputFile != nil {
            interrupted = collectOutput(of: child)
        } else {
            interrupted = interactive && watchForInterrupt(while: child)
            if interrupted { _ = try? System.kill(child) }
        }
        do throws(SyscallError) {
            let status = try System.wait(child)
            guard interrupted, status == .killed else { return report(status, of: program) }
            complain(program + " was interrupted")
            return 130
        } catch {
            complain("wait: " + describe(error))
            return 1
        }
    }

    /// Until `child` ends, watches for Ctrl-C (see the essay); true if it was typed.
    /// False also when the console or the kernel cannot tell: then `wait` just blocks.
    static func watchForInterrupt(while child: TaskID) -> Bool {
        var milliseconds: UInt = 1
        while !hasEnded(child) {
            do throws(SyscallError) {
                if try Console.awaitInterrupt(milliseconds: milliseconds) { return true }
            } catch {
                return false
            }
            milliseconds = min(milliseconds * 2, longestInterruptWatch)
        }
        return false
    }

    /// Whether `wait` for `child` would return at once (true too when `taskInfo` cannot say).
    static func hasEnded(_ child: TaskID) -> Bool {
        guard let info = try? System.taskInfo(slot: child.index), info.id == child else { return true }
        return info.state == .ended || info.state == .failed || info.state == .free
    }

    /// Programs started with `&` and not yet waited for (their slots linger until we do).
    nonisolated(unsafe) static var backgroundChildren: [(id: TaskID, program: String)] = []

    /// `wait [PROGRAM...]`: reaps the background children running those programs (all
    /// of them without names) in the order started, saying how each ended.
    static func waitForBackground(_ programs: [String]) -> Int32 {
        var worst: Int32 = 0
        var others: [(id: TaskID, program: String)] = []
        for (child, program) in backgroundChildren {
            guard programs.isEmpty || programs.contains(program) else {
                others.append((child, program))
                continue
            }
            let status: Int32
            do throws(SyscallError) {
                status = report(try System.wait(child), of: program + " (pid \(child.index))", always: true)
            } catch {
                complain("wait \(program) (pid \(child.index)): " + describe(error))
                status = 1
            }
            if worst == 0 { worst = status }
        }
        backgroundChildren = others
        return worst
    }

    /// Prints how a child ended (a clean exit only if `always`); returns the shell's status for it.
    static func report(_ status: ExitStatus, of program: String, always: Bool = false) -> Int32 {
        switch status {
        case .exited(let code):
            if code != 0 {
                complain("\(program) exited with status \(code)")
            } else if always {
                print("\(program) exited with status \(code)")
            }
            return code
        case .faulted(let cause):
            complain(program + " was stopped: " + String(cause.name))
            return 128 + Int32(cause.rawValue)
        case .killed:
            complain(program + " was killed")
            return 137
        }
    }

    static func kill(_ arguments: [String]) -> Int32 {
        guard let text = arguments.first else {
            complain("usage: kill PID|NAME")
            return 2
        }
        guard let slot = Int(text) else { return killAll(named: text) }
        guard slot >= 0, slot < maxProcesses else {
            complain("usage: kill PID|NAME")
            return 2
        }
        do throws(SyscallError) {
            let info = try System.taskInfo(slot: slot)
            try System.kill(info.id)
            print("killed \(name(info)) (pid \(slot))")
            return 0
        } catch {
            complain("kill " + text + ": " + describe(error))
            return 1
        }
    }

    /// Kills every live process running `program`; fails if there was none.
    static func killAll(named program: String) -> Int32 {
        var killed = 0
        for slot in 0..<maxProcesses {
            guard let info = try? System.taskInfo(slot: slot), info.state != .free, info.state != .ended,
                  info.state != .failed, name(info) == program else { continue }
            if (try? System.kill(info.id)) != nil { killed += 1 }
        }
        print("killed \(killed) \(program)")
        return killed > 0 ? 0 : 1
    }

    /// Waits on the timer service, so that lower-priority programs get to run.
    static func sleep(_ arguments: [String]) -> Int32 {
        guard let text = arguments.first, let milliseconds = UInt64(text), milliseconds > 0 else {
            complain("usage: sleep MS")
            return 2
        }
        do throws(TimerError) {
            _ = try Timer.start(period: milliseconds * 10_000, repeating: false)
            _ = try Timer.wait()
            return 0
        } catch {
            complain("sleep: the timer service failed")
            return 1
        }
    }

    /// Polls every millisecond until some process running `program` is in the state
    /// `ps` names `state`: lets a script act at a known point of another program.
    static func awaitState(_ arguments: [String]) -> Int32 {
        guard arguments.count >= 2 else {
            complain("usage: await NAME STATE [MS]")
            return 2
        }
        let limit = arguments.count > 2 ? Int(arguments[2]) ?? 5_000 : 5_000
        for _ in 0..<max(limit, 1) {
            for slot in 0..<maxProcesses {
                guard let info = try? System.taskInfo(slot: slot), info.state != .free, name(info) == arguments[0]
                else { continue }
                if String(info.state.name) == arguments[1] { return 0 }
            }
            guard sleep(["1"]) == 0 else { return 1 }
        }
        complain("await: no \(arguments[0]) in state \(arguments[1]) after \(limit) ms")
        return 1
    }

    /// Spawns and reaps a program many times; fails unless free memory returns exactly.
    static func spawnTest(_ arguments: [String]) -> Int32 {
        guard let text = arguments.first, let count = Int(text), count > 0 else {
            complain("usage: spawntest N [PROGRAM [ARGS]]")
            return 2
        }
        let program = arguments.count > 1 ? arguments[1] : "crashme"
        let programArguments = arguments.count > 2 ? arguments.dropFirst(2).joined(separator: " ") : "exit 0"
        let before = System.memoryInfo().freePages
        for iteration in 0..<count {
            do throws(SyscallError) {
                let child = try System.spawn(program, arguments: programArguments)
                _ = try System.wait(child)
            } catch {
                complain("spawntest: iteration \(iteration): \(describe(error))")
                return 1
            }
        }
        let after = System.memoryInfo().freePages
        print("spawntest: \(count) cycles, free pages before \(before), after \(after)")
        return before == after ? 0 : 1
    }

    static func name(_ info: TaskInfo) -> String { text(of: info.name) }

    /// The program whose code the process runs (a version of its program, after an upgrade).
    static func codeName(_ info: TaskInfo) -> String { text(of: info.codeName) }

    static func text(of field: (UInt64, UInt64)) -> String {
        var field = field
        return withUnsafeBytes(of: &field) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        let count = text.utf8.count
        return count >= width ? text + " " : text + String(repeating: " ", count: width - count)
    }
}

func describe(_ error: SyscallError) -> String { String(error.name) }

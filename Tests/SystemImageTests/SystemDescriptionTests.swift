// SystemDescription: the real system.toml, every feature of the TOML subset,
// and each error with the line it must be reported at.

import Foundation
import KernelCore
import SystemImage
import Testing

/// A valid program table body, for tests that vary one thing around it.
private let minimalProgram = """
    module = "Shell"
    priority = 4
    memory = 64
    stack = 16
    heap = 16
    """

private func parse(_ text: String) throws(SystemDescriptionError) -> SystemDescription {
    try SystemDescription(parsing: text)
}

/// The error `text` produces, or nil if it parses.
private func problem(_ text: String) -> SystemDescriptionError? {
    do {
        _ = try parse(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct SystemDescriptionTests {
    @Test func readsTheProjectsSystemDescription() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("system.toml")
        let system = try parse(String(contentsOf: path, encoding: .utf8))
        #expect(Array(system.programs.map(\.name).prefix(3)) == ["console", "shell", "crashme"])
        #expect(Array(system.programs.map(\.module).prefix(3)) == ["ConsoleServer", "Shell", "Crashme"])

        // Budgets are tuning knobs; the structure of the system is what must not drift.
        let console = system.programs[0], shell = system.programs[1], crashme = system.programs[2]
        #expect(console.priority == 1)
        #expect(console.startsAtBoot && !console.mayManage && !console.receivesBootArguments)
        #expect(console.interrupts == [10])
        #expect(console.devices == [DeviceRange(base: 0x1000_0000, size: 0x1000)])
        #expect(console.sends.isEmpty)
        #expect(shell.priority == 4)
        #expect(shell.startsAtBoot && shell.mayManage && shell.receivesBootArguments)
        #expect(shell.sends == ["console", "config", "fs", "timer", "net"])
        #expect(crashme.priority == 5)
        #expect(!crashme.startsAtBoot && !crashme.mayManage && !crashme.receivesBootArguments)
        #expect(crashme.sends.contains("console"))
        let index = { (name: String) in system.programs.firstIndex { $0.name == name }! }
        #expect(system.sendMask(of: shell) == 1 << UInt64(index("console")) | 1 << UInt64(index("config"))
                | 1 << UInt64(index("fs")) | 1 << UInt64(index("timer")) | 1 << UInt64(index("net")))
        #expect(system.sendMask(of: console) == 0)
        // The network server owns virtio-mmio slot 0 and its interrupt, the storage
        // server the other seven; the filesystem server reaches the disk only through
        // storage.
        let storage = system.programs[index("storage")], fs = system.programs[index("fs")]
        let net = system.programs[index("net")]
        #expect(storage.interrupts == Array(2...8))
        #expect(storage.devices == [DeviceRange(base: 0x1000_2000, size: 0x7000)])
        #expect(net.interrupts == [1] && net.devices == [DeviceRange(base: 0x1000_1000, size: 0x1000)])
        #expect(net.restartable && net.ssrKiB == 8 && net.sends == ["config", "console"])
        #expect(storage.restartable && fs.restartable && storage.ssrKiB == 4 && fs.ssrKiB == 4)
        // Storage answers within device time; fs may hold lock waits for ever.
        #expect(storage.replyLimitMilliseconds == 2000 && fs.replyLimitMilliseconds == 0)
        // The timer holds each wait to its deadline, promised to the kernel; fs promises
        // its lock waits (for ever), so that a request it forgets gets it restarted.
        #expect(system.programs[index("timer")].promisesReplies && fs.promisesReplies && !storage.promisesReplies)
        #expect(fs.sends == ["config", "storage"] && fs.devices.isEmpty)
    }

    /// A version (`version_of`) has its server's authority, whatever it says itself.
    @Test func aVersionTakesTheAuthorityOfItsServer() throws {
        let server = "[program.timer]\n\(minimalProgram)\nstart = true\nrestartable = true\nssr = 4\npromises = true\n"
            + "sends = [\"log\"]\ninterrupts = [9]\ndevices = [\"0x10000000+0x1000\"]\n"
        let log = "[program.log]\n\(minimalProgram)\n"
        let version = "[program.timer2]\nmodule = \"Next\"\nversion_of = \"timer\"\npriority = 2\nmemory = 128\n"
            + "stack = 16\nheap = 16\n"
        let system = try parse(log + server + version)
        let original = system.programs[1], next = system.programs[2]
        #expect(next.versionOf == "timer" && next.module == "Next" && next.memoryKiB == 128 && next.priority == 2)
        #expect(next.restartable && next.ssrKiB == 4 && next.promisesReplies && next.sends == ["log"])
        #expect(next.interrupts == [9] && next.devices == original.devices, "no second owner of its hardware")
        #expect(!next.startsAtBoot && !next.mayManage)
        #expect(system.sendMask(of: next) == system.sendMask(of: original))

        // Authority of its own, an unknown or later program, a chain, a plain program.
        #expect(problem(log + server + version + "ssr = 8") == SystemDescriptionError(line: 27, .badValue(
            key: "ssr", reason: "a version has the authority of the program it is a version of")))
        #expect(problem(version + server) == SystemDescriptionError(line: 3, .badValue(
            key: "version_of", reason: "'timer' is not a program defined above")))
        let chain = version.replacingOccurrences(of: "timer2", with: "timer3")
            .replacingOccurrences(of: "\"timer\"", with: "\"timer2\"")
        #expect(problem(log + server + version + chain) == SystemDescriptionError(line: 29, .badValue(
            key: "version_of", reason: "'timer2' is itself a version of another program")))
        #expect(problem(log + version.replacingOccurrences(of: "\"timer\"", with: "\"log\"")) == SystemDescriptionError(
            line: 9, .badValue(key: "version_of", reason: "only a restartable server can be upgraded")))
    }

    /// `keep_ssrs` marks a client the kernel restarts with its SSRs; a server keeps its
    /// clients' SSRs by being restartable, and may not say it.
    @Test func keepSSRsIsForClients() throws {
        let client = try parse("[program.fcopy]\n\(minimalProgram)\nkeep_ssrs = true\n")
        #expect(client.programs[0].keepsSSRs && !client.programs[0].restartable)
        #expect(problem("[program.fs]\n\(minimalProgram)\nrestartable = true\nkeep_ssrs = true\n")
            == SystemDescriptionError(line: 8, .badValue(
                key: "keep_ssrs", reason: "a restartable server keeps its clients' SSRs anyway; this is for clients")))
    }

    @Test func readsEveryFeatureOfTheSubset() throws {
        let system = try parse("""
            # leading comment

               [ program . net-1 ]   # spaces inside the brackets
            module = "NetServer"    # a comment after a value
            priority = 0
            memory = 1_024
            stack = 0x10
            heap = 0
            start = false
            manage = true
            boot_arguments = false
            sends = [ "disk_0", ]
            interrupts = [1, 0x3, 1023]
            devices = ["0x10001000+0x1000", "268443648 + 4096"]
            [program.disk_0]
            \(minimalProgram)
            sends = ["net-1"]
            interrupts = []
            """)
        #expect(system.programs.count == 2)
        let net = system.programs[0]
        #expect(net.name == "net-1" && net.module == "NetServer" && net.priority == 0)
        #expect(net.memoryKiB == 1024 && net.stackKiB == 16 && net.heapKiB == 0)
        #expect(!net.startsAtBoot && net.mayManage && !net.receivesBootArguments)
        #expect(net.sends == ["disk_0"] && net.interrupts == [1, 3, 1023])
        #expect(net.devices == [DeviceRange(base: 0x1000_1000, size: 0x1000), DeviceRange(base: 0x1000_2000, size: 0x1000)])
        #expect(system.programs[1].sends == ["net-1"] && system.programs[1].interrupts.isEmpty)
        #expect(system.index(of: "disk_0") == 1 && system.index(of: "nope") == nil)
    }

    @Test func keepsHashesInsideStrings() throws {
        let error = problem("[program.a]\nmodule = \"A#B\" # comment\n")
        #expect(error == SystemDescriptionError(line: 2, .badValue(key: "module", reason: "'A#B' is not a Swift module name")))
    }

    @Test func reportsSyntaxErrorsWithTheirLine() {
        let cases: [(String, Int)] = [
            ("[program.a]\nmodule \"Shell\"", 2),
            ("[program.a]\nmodule = \"Shell", 2),
            ("[program.a]\nmodule = \"Sh\\\"ell\"", 2),
            ("[program.a]\nmodule = Shell", 2),
            ("[program.a]\npriority = 1 2", 2),
            ("[program.a]\npriority = -1", 2),
            ("[program.a]\npriority = 1.5", 2),
            ("[program.a]\npriority = 007", 2),
            ("[program.a]\npriority = 0x", 2),
            ("[program.a]\npriority = 1__0", 2),
            ("[program.a]\n\nsends = [\"b\",\n\"c\"]", 3),
            ("[program.a]\ninterrupts = [1, \"2\"]", 2),
            ("[program.a]\ninterrupts = [[1]]", 2),
            ("[program.a]\ninterrupts = [1 2]", 2),
            ("[[program.a]]", 1),
            ("[program.a", 1),
            ("[program.a] x", 1),
            ("= 3", 1),
        ]
        for (text, line) in cases {
            let error = problem(text)
            guard case .syntax? = error?.problem else {
                Issue.record("expected a syntax error for \(text.debugDescription), got \(String(describing: error))")
                continue
            }
            #expect(error?.line == line, "\(text.debugDescription): \(String(describing: error))")
        }
    }

    @Test func reportsTableAndKeyErrors() {
        #expect(problem("[server.a]") == SystemDescriptionError(line: 1, .unknownTable("server")))
        #expect(problem("[program]") == SystemDescriptionError(line: 1, .unknownTable("program")))
        #expect(problem("# x\n[program.Shell]") == SystemDescriptionError(line: 2, .invalidProgramName("Shell")))
        #expect(problem("[program.a-very-long-name]") == SystemDescriptionError(line: 1, .invalidProgramName("a-very-long-name")))
        #expect(problem("[program.]") == SystemDescriptionError(line: 1, .invalidProgramName("")))
        #expect(problem("[program.a]\n\(minimalProgram)\n[program.a]\n\(minimalProgram)")
            == SystemDescriptionError(line: 7, .duplicateProgram("a")))
        #expect(problem("priority = 1\n[program.a]") == SystemDescriptionError(line: 1, .keyOutsideProgram("priority")))
        #expect(problem("[program.a]\n\(minimalProgram)\ncolour = \"red\"")
            == SystemDescriptionError(line: 7, .unknownKey("colour")))
        #expect(problem("[program.a]\n\(minimalProgram)\npriority = 3")
            == SystemDescriptionError(line: 7, .duplicateKey("priority")))
        #expect(problem("") == SystemDescriptionError(line: 1, .noPrograms))
        #expect(problem("# nothing\n\n") == SystemDescriptionError(line: 3, .noPrograms))
    }

    @Test func reportsMissingKeysAtTheTable() {
        for key in ["module", "priority", "memory", "stack", "heap"] {
            let body = minimalProgram.split(separator: "\n").filter { !$0.hasPrefix(key) }.joined(separator: "\n")
            #expect(problem("[program.x]\n\(minimalProgram)\n[program.y]\n\(body)")
                == SystemDescriptionError(line: 7, .missingKey(key)))
        }
    }

    @Test func reportsBadValues() {
        let stripped = { (key: String) in
            minimalProgram.split(separator: "\n").filter { !$0.hasPrefix(key) }.joined(separator: "\n")
        }
        for (key, value) in [("priority", "8"), ("priority", "\"1\""), ("module", "3"), ("module", "\"9lives\""),
                             ("module", "\"Con-sole\""), ("memory", "6"), ("memory", "0"), ("stack", "0"),
                             ("heap", "2"), ("memory", "0x400000000"), ("start", "1"), ("manage", "\"yes\""),
                             ("boot_arguments", "[]"), ("sends", "\"b\""), ("sends", "[1]"), ("sends", "[\"b\", \"b\"]"),
                             ("sends", "[\"a\"]"), ("interrupts", "[0]"), ("interrupts", "[1024]"),
                             ("interrupts", "[1, 2, 3, 4, 5, 6, 7, 8, 9]"), ("interrupts", "[3, 3]"), ("interrupts", "5"),
                             ("devices", "[\"0x1000\"]"), ("devices", "[\"0x1000+0\"]"), ("devices", "[\"0x1001+0x1000\"]"),
                             ("devices", "[\"0x1000+0x800\"]"), ("devices", "[\"0xFFFFFFFFFFFFF000+0x2000\"]"),
                             ("devices", "[\"0x1000+0x1000\", \"0x1000+0x1000\"]"), ("devices", "[\"a+b\"]"),
                             ("devices", "[\"0x1000+0x1000\", \"0x3000+0x1000\", \"0x5000+0x1000\"]"), ("devices", "[4096]"),
                             ("reply_limit", "0"), ("reply_limit", "65536"), ("reply_limit", "\"1\""),
                             ("reply_limit", "100"), ("promises", "1"), ("promises", "true")]
        {
            let line = "\(key) = \(value)"
            let text = "[program.a]\n\(line)\n\(stripped(key))\n[program.b]\n\(minimalProgram)"
            guard case .badValue(let reportedKey, _)? = problem(text)?.problem, reportedKey == key else {
                Issue.record("'\(line)': expected a bad value for \(key), got \(String(describing: problem(text)))")
                continue
            }
            #expect(problem(text)?.line == 2)
        }
        let tooSmall = "[program.a]\nmodule = \"A\"\npriority = 1\nmemory = 16\nstack = 8\nheap = 12"
        #expect(problem(tooSmall) == SystemDescriptionError(line: 4, .badValue(
            key: "memory", reason: "16 KiB is less than stack + heap (20 KiB)")))
    }

    @Test func checksTheSystemAsAWhole() {
        let sendsUndefined = "[program.a]\n\(minimalProgram)\nsends = [\"b\", \"ghost\"]\n[program.b]\n\(minimalProgram)"
        #expect(problem(sendsUndefined) == SystemDescriptionError(line: 7, .undefinedProgram("ghost")))

        let sendsForward = "[program.a]\n\(minimalProgram)\nsends = [\"b\"]\n[program.b]\n\(minimalProgram)"
        #expect(problem(sendsForward) == nil)

        let sharedInterrupt = "[program.a]\n\(minimalProgram)\ninterrupts = [10]\n[program.b]\n\(minimalProgram)\ninterrupts = [3, 10]"
        guard case .badValue(key: "interrupts", _)? = problem(sharedInterrupt)?.problem else {
            Issue.record("shared interrupt accepted: \(String(describing: problem(sharedInterrupt)))")
            return
        }
        #expect(problem(sharedInterrupt)?.line == 14)

        let overlappingDevices = "[program.a]\n\(minimalProgram)\ndevices = [\"0x10000000+0x2000\"]\n"
            + "[program.b]\n\(minimalProgram)\ndevices = [\"0x10001000+0x1000\"]"
        guard case .badValue(key: "devices", _)? = problem(overlappingDevices)?.problem else {
            Issue.record("overlapping devices accepted: \(String(describing: problem(overlappingDevices)))")
            return
        }
        #expect(problem(overlappingDevices)?.line == 14)
    }

    @Test func allowsAtMost64Programs() throws {
        let programs = (0..<65).map { "[program.p\($0)]\n\(minimalProgram)" }
        let system = try parse(programs[0..<64].joined(separator: "\n"))
        #expect(system.programs.count == 64)
        #expect(problem(programs.joined(separator: "\n")) == SystemDescriptionError(line: 64 * 6 + 1, .tooManyPrograms))
    }

    @Test func describesErrorsForPeople() {
        let error = SystemDescriptionError(line: 12, .unknownKey("colour"))
        #expect(error.description == "line 12: unknown key 'colour'")
        #expect(error.message == "unknown key 'colour'")
    }
}

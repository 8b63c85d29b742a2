// `CMD > PATH` and `CMD >> PATH`: the shell's half of output redirection.
//
// ConsoleCore's Redirection.swift parses the line and explains the design. Here the
// shell opens the file before the command runs (a bad target stops the command, so
// nothing is lost), sends its own output there while a built-in command runs
// (`Console.divertOutput`), and for a program that `run` starts in the foreground
// collects what the console holds of the program's writes and writes it to the same
// file (`collectOutput`). Should the file stop taking bytes part-way (the disk
// fills), the shell says so on the terminal and shows the rest there: what reached
// the file stays, nothing else is dropped.

import ConsoleAPI
import ConsoleCore
import CurioUser
import FileSystemAPI

/// The file a command's output goes to, while it runs.
struct OutputFile {
    let handle: FileHandle
    /// "CMD > PATH", for messages.
    let description: String
    /// Why the file stopped taking output (the rest went to the terminal).
    var failure: FileSystemError?
}

extension Shell {
    nonisolated(unsafe) static var outputFile: OutputFile?

    /// Runs one command line, with its redirection; returns its exit status.
    static func execute(_ line: String) -> Int32 {
        let parsed: RedirectedLine
        do throws(RedirectionError) {
            parsed = try Redirection.parse(Array(line.utf8))
        } catch {
            complain("shell: " + error.explanation)
            return 2
        }
        guard let target = parsed.target else { return perform(line) }
        let command = String(decoding: parsed.command, as: UTF8.self)
        let name = command.split(separator: " ").first.map(String.init) ?? ""
        let path = String(decoding: target.path, as: UTF8.self)
        let flags: OpenFlags = target.appends ? [.write, .create, .append] : [.write, .create, .truncate]
        let opened: FileHandle
        do throws(FileSystemError) {
            opened = try withPath(path) { bytes throws(FileSystemError) in try FileSystem.open(bytes, flags) }
        } catch {
            return failure(name.isEmpty ? "shell" : name, (target.appends ? ">> " : "> ") + path, error)
        }
        outputFile = OutputFile(handle: opened, description: command + (target.appends ? " >> " : " > ") + path)
        Console.divertOutput(to: writeToOutputFile)
        let status = perform(command)
        Console.divertOutput(to: nil)
        try? FileSystem.close(opened)
        outputFile = nil
        return status
    }

    /// Where output goes while redirected: to the file until it fails, then to the terminal.
    static func writeToOutputFile(_ bytes: UnsafeRawBufferPointer) {
        guard var file = outputFile, file.failure == nil else {
            Console.writeToTerminal(bytes)
            return
        }
        var written = 0
        do throws(FileSystemError) {
            while written < bytes.count {
                let count = try FileSystem.write(file.handle, from: UnsafeRawBufferPointer(rebasing: bytes[written...]))
                guard count > 0 else { throw .noSpace }
                written += count
            }
        } catch {
            file.failure = error
            outputFile = file
            complain(file.description + ": " + String(error.name) + "; the rest of the output follows here")
            Console.writeToTerminal(UnsafeRawBufferPointer(rebasing: bytes[written...]))
        }
    }

    /// A message about a command, not its output: to the terminal even while redirected.
    static func complain(_ message: String) {
        let bytes = copyBytes(message + "\n")
        defer { bytes.deallocate() }
        Console.writeToTerminal(UnsafeRawBufferPointer(bytes))
    }

    /// While `child` runs with its output redirected: has the console hold its writes,
    /// takes them into the file, and (interactively) watches for Ctrl-C, as
    /// `watchForInterrupt` does, killing the child on it. Returns whether it was
    /// interrupted. Ends once the child has ended and every write it made is taken.
    static func collectOutput(of child: TaskID) -> Bool {
        do throws(SyscallError) {
            try Console.divert(outputOf: child)
        } catch {
            complain("run: the console cannot divert the program's output (" + describe(error) + "); it shows here")
            return interactive && watchForInterrupt(while: child)
        }
        defer { try? Console.divert(outputOf: nil) }
        // The one case the order of spawn and divert does not cover (Redirection.swift):
        // said, not left for the person to find in the file.
        if let started = try? System.taskInfo(slot: child.index), started.id == child,
           let shell = try? System.taskInfo(slot: System.whoAmI().index), started.priority < shell.priority {
            complain("run: the program is more urgent than the shell: what it printed before the shell could"
                     + " divert its output went to the console")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)
        defer { buffer.deallocate() }
        var interrupted = false
        var milliseconds: UInt = 1
        while true {
            let collected: Collected
            do throws(SyscallError) {
                collected = try Console.collect(into: buffer, milliseconds: milliseconds,
                                                watchingInterrupt: interactive && !interrupted)
            } catch {
                return interrupted
            }
            switch collected {
            case .output(let count):
                writeToOutputFile(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                milliseconds = 1
            case .interrupted:
                interrupted = true
                _ = try? System.kill(child)
            case .timePassed:
                // A child stays blocked in a write until its bytes are taken, and only
                // this shell kills it: one found ended wrote nothing since this empty collect.
                if hasEnded(child) { return interrupted }
                milliseconds = min(milliseconds * 2, longestInterruptWatch)
            }
        }
    }
}

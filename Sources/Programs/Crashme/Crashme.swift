// A program that misbehaves on purpose, one way per argument, to show that the
// kernel stops only the offender and says why.
//
//   null      store through a null pointer           -> store page fault
//   kwrite    store into the kernel's memory         -> store page fault
//   kread     load from the kernel's memory          -> load page fault
//   peek      load from another process's device window (not mapped here)
//   rotext    store into its own read-only code      -> store page fault
//   illegal   execute an illegal instruction         -> illegal instruction
//   overflow  Swift integer overflow                 -> Swift runtime trap
//   loop      spin forever (preemption keeps the system alive; `kill` ends it)
//   badptr    pass the kernel's memory to a syscall  -> refused with badAddress
//   stale     send to an endpoint of an older generation -> refused with deadEndpoint
//   ssrpeek   bind to rogueserver, then read the SSR window address (never mapped
//             in a client)                        -> load page fault
//   rogue     ask rogueserver to touch its window outside a request: it faults and
//             is restarted; then check it serves again
//   bind      call rogueserver, whose SSR may not fit this program's budget
//   fpput X   write X into floating-point register f31 -> illegal instruction
//   fpget     read f31 (what an earlier process left?)  -> illegal instruction
//   readline  try to take typed input from the console -> refused (only the shell reads)
//   poison    send rogueserver a request that crashes it every time -> requestFailed
//   slowrogue a request rogueserver serves slowly (to be killed in the middle)
//   exit N    exit with status N

import ConsoleAPI
import CurioUser
import UserArch

@main
struct Crashme {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ").map(String.init)
        guard let mode = words.first else {
            print("usage: crashme null|kwrite|kread|peek|rotext|illegal|overflow|loop|badptr|stale|exit N")
            System.exit(2)
        }
        switch mode {
        case "null": store(at: 0)
        case "kwrite": store(at: 0x8020_0000)
        case "kread": print(String(load(from: 0x8020_0000)))
        case "peek": print(String(load(from: 0x7000_0000)))
        case "rotext": store(at: programStart)
        case "illegal": executeIllegalInstruction()
        case "overflow": print(String(overflow(Int.max - Int(words.count))))
        case "loop": while true { spin() }
        case "badptr": return badPointer()
        case "stale": return staleEndpoint()
        case "ssrpeek":
            _ = try? IPC.call(System.lookup("rogueserver"), operation: 1)
            print(String(load(from: SSRWindow.base)))
        case "rogue": return rogueServer()
        case "bind": return bind()
        case "fpput": print("fpput: f31 = " + String(floatingPointStore(UInt64(words.count > 1 ? Int(words[1]) ?? 1 : 1))))
        case "readline": return readLine()
        case "poison": return poison()
        case "slowrogue":
            let marks = try? IPC.call(System.lookup("rogueserver"), operation: 4)
            print("slowrogue: served, mark \(marks?.words.0 ?? 0)")
            return
        case "fpget": print("fpget: f31 = " + String(floatingPointLoad()))
        case "exit": System.exit(Int32(words.count > 1 ? Int(words[1]) ?? 1 : 0))
        default:
            print("crashme: unknown mode " + mode)
            System.exit(2)
        }
        print("crashme: " + mode + " did not fault")
        System.exit(1)
    }

    // Not inlined, so each fault report names the function that misbehaved.
    @inline(never)
    static func store(at address: UInt) { curio_store64(UInt64(address), 0xDEAD) }

    @inline(never)
    static func executeIllegalInstruction() { curio_illegal_instruction() }

    /// Where user.ld puts `_start`: the first page of this program's text.
    static let programStart: UInt = 0x4000_0000

    @inline(never)
    static func load(from address: UInt) -> UInt64 { curio_load64(UInt64(address)) }

    @inline(never)
    static func floatingPointStore(_ value: UInt64) -> UInt64 { curio_fp_store_and_load(value) }

    @inline(never)
    static func floatingPointLoad() -> UInt64 { curio_fp_load() }

    @inline(never)
    static func overflow(_ value: Int) -> Int { value + 2 }

    @inline(never)
    static func spin() {}

    static func badPointer() {
        let kernelMemory = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: 0x8020_0000), count: 8)
        do throws(SyscallError) {
            _ = try System.spawn(kernelMemory, arguments: kernelMemory)
            print("crashme: the kernel accepted a kernel pointer")
            System.exit(1)
        } catch {
            print("badptr: refused: " + String(error.name))
        }
        do throws(SyscallError) {
            let console = try System.lookup("console")
            _ = try IPC.call(console, operation: ConsoleOperation.write.rawValue, payload: kernelMemory)
            print("crashme: the kernel copied kernel memory")
            System.exit(1)
        } catch {
            print("badptr: refused: " + String(error.name))
        }
    }

    static func rogueServer() {
        do throws(SyscallError) {
            let first = try IPC.call(System.lookup("rogueserver"), operation: 1)
            _ = try IPC.call(System.lookup("rogueserver"), operation: 2)
            let again = try IPC.call(System.lookup("rogueserver"), operation: 1)
            print("rogue: served again, requests \(first.words.1) then \(again.words.1)")
        } catch {
            print("rogue: " + String(error.name))
            System.exit(1)
        }
    }

    static func bind() {
        do throws(SyscallError) {
            _ = try IPC.call(System.lookup("rogueserver"), operation: 1)
            print("bind: bound")
        } catch {
            print("bind: refused: " + String(error.name))
        }
    }

    static func poison() {
        do throws(SyscallError) {
            _ = try IPC.call(System.lookup("rogueserver"), operation: 3)
            print("crashme: the poison request was answered")
            System.exit(1)
        } catch {
            print("poison: refused: " + String(error.name))
        }
    }

    static func readLine() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        do throws(SyscallError) {
            _ = try Console.read(into: buffer)
            print("crashme: the console gave typed input to a program other than the shell")
            System.exit(1)
        } catch {
            print("readline: refused: " + String(error.name))
        }
    }

    static func staleEndpoint() {
        do throws(SyscallError) {
            let console = try System.lookup("console")
            let older = TaskID(index: console.index, generation: console.generation &+ 1)
            _ = try IPC.call(older, operation: ConsoleOperation.write.rawValue)
            print("crashme: a stale endpoint was accepted")
            System.exit(1)
        } catch {
            print("stale: refused: " + String(error.name))
        }
    }
}

// Curio's system calls as Swift functions: the only way a process talks to the kernel.
//
// Each wrapper is one `ecall`; errors come back as `SyscallError` through typed
// throws, so a caller sees exactly which of the kernel's refusals it got.

@_exported import CurioABI
import UserArch

public enum System {
    @inline(__always)
    static func call(_ syscall: Syscall, _ a0: UInt = 0, _ a1: UInt = 0, _ a2: UInt = 0, _ a3: UInt = 0,
                     _ a4: UInt = 0, _ a5: UInt = 0, _ a6: UInt = 0) throws(SyscallError) -> curio_syscall_result {
        let result = curio_syscall(UInt64(syscall.rawValue), UInt64(a0), UInt64(a1), UInt64(a2), UInt64(a3),
                                   UInt64(a4), UInt64(a5), UInt64(a6))
        if result.status != 0 { throw SyscallError(rawValue: UInt(result.status)) ?? .unknownSyscall }
        return result
    }

    public static func exit(_ code: Int32) -> Never {
        _ = try? call(.exit, UInt(bitPattern: Int(code)))
        while true {}
    }

    public static func yield() { _ = try? call(.yield) }

    /// The clock, in ticks of `ticksPerSecond`.
    public static func clock() -> UInt64 { UInt64((try? call(.clock))?.r1 ?? 0) }
    public static let ticksPerSecond: UInt64 = 10_000_000

    public static func whoAmI() -> TaskID { TaskID(rawValue: UInt32(truncatingIfNeeded: (try? call(.whoAmI))?.r1 ?? 0)) }

    /// Finds the running instance of a program (the endpoint of a server).
    public static func lookup(_ name: StaticString) throws(SyscallError) -> TaskID {
        let result = try call(.lookup, UInt(bitPattern: name.utf8Start), UInt(name.utf8CodeUnitCount))
        return TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
    }

    public static func spawn(_ name: UnsafeRawBufferPointer, arguments: UnsafeRawBufferPointer) throws(SyscallError) -> TaskID {
        let result = try call(.spawn, address(name), UInt(name.count), address(arguments), UInt(arguments.count))
        return TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
    }

    public static func kill(_ task: TaskID) throws(SyscallError) { _ = try call(.kill, UInt(task.rawValue)) }

    public static func wait(_ child: TaskID) throws(SyscallError) -> ExitStatus {
        let result = try call(.wait, UInt(child.rawValue))
        return ExitStatus(rawValue: UInt(result.r1)) ?? .killed
    }

    public static func taskInfo(slot: Int) throws(SyscallError) -> TaskInfo {
        var info = TaskInfo(id: TaskID(rawValue: 0), state: .free, priority: 0, restarts: 0, pagesUsed: 0,
                            pageBudget: 0, name: (0, 0))
        try withUnsafeMutableBytes(of: &info) { bytes throws(SyscallError) in
            _ = try call(.taskInfo, UInt(slot), address(UnsafeRawBufferPointer(bytes)), UInt(bytes.count))
        }
        return info
    }

    public struct MemoryInfo: Sendable {
        public var totalPages: Int
        public var freePages: Int
        public var kernelPages: Int
    }

    public static func memoryInfo() -> MemoryInfo {
        let result = try? call(.memoryInfo)
        return MemoryInfo(totalPages: Int(result?.r1 ?? 0), freePages: Int(result?.r2 ?? 0),
                          kernelPages: Int(result?.r3 ?? 0))
    }

    public static func acknowledgeInterrupt(_ index: Int) throws(SyscallError) {
        _ = try call(.irqAcknowledge, UInt(index))
    }

    /// Posts `bits` to this process when the clock reaches `deadline` (0 cancels).
    public static func setTimer(deadline: UInt64, bits: UInt) throws(SyscallError) {
        _ = try call(.setTimer, UInt(deadline), bits)
    }

    public static func powerOff(code: Int) throws(SyscallError) -> Never {
        _ = try call(.powerOff, UInt(code))
        while true {}
    }

    /// The argument string this process was started with.
    public static var arguments: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: curio_arguments(), count: curio_arguments_length())
    }

    static func address(_ buffer: UnsafeRawBufferPointer) -> UInt {
        UInt(bitPattern: buffer.baseAddress)
    }
}

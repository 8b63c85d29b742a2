// The one report printed when a process is stopped for a fault:
//
//   [kernel] crashme (pid 2, gen 0) stopped: store page fault at 0x0, pc 0x40000a2c
//            in Crashme.writeThroughNull() + 0xc
//
// The pc is symbolized from the program's symbol table, which mkimage put in the
// boot image (already demangled), so no host tool is needed to read it.

import CurioABI

extension Kernel {
    func reportFault(_ slot: Int, cause: FaultCause, address: UInt64) {
        let task = tasks[slot]
        let pc = registers(slot)[.pc]
        platform.write("[kernel] ")
        image.program(task.program).name.withBytes { platform.write(bytes: $0) }
        platform.write(" (pid ")
        platform.write(decimal: slot)
        platform.write(", gen ")
        platform.write(decimal: Int(task.generation))
        platform.write(") stopped: ")
        platform.write(cause.name)
        platform.write(" at ")
        platform.write(hex: address)
        platform.write(", pc ")
        platform.write(hex: pc)
        if let symbol = image.symbolize(program: task.program, address: pc) {
            platform.write(" in ")
            platform.write(bytes: symbol.name)
            platform.write(" + ")
            platform.write(hex: symbol.offset)
        }
        platform.write("\n")
    }
}

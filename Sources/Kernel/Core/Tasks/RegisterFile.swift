// A process's saved registers.
//
// When a process traps, trap.S stores its registers in its frame; the kernel reads
// syscall arguments from there and writes results back; returning to the process
// restores whatever the frame holds. A blocked process is nothing but its frame, so
// the kernel needs no stack per process.
//
// Frame layout (32 doublewords; slot n holds register xn, slot 0 holds the pc):
//
//   slot:  0    1    2    3    4    5..7     8..9     10..17    18..27    28..31
//        +----+----+----+----+----+--------+--------+---------+---------+--------+
//        | pc | ra | sp | gp | tp | t0..t2 | s0..s1 | a0..a7  | s2..s11 | t3..t6 |
//        +----+----+----+----+----+--------+--------+---------+---------+--------+

public enum Register: Int, Sendable {
    case pc = 0, ra = 1, sp = 2, gp = 3, tp = 4, t0 = 5
    case a0 = 10, a1 = 11, a2 = 12, a3 = 13, a4 = 14, a5 = 15, a6 = 16, a7 = 17
}

public struct RegisterFile {
    public static let slots = 32
    public static let byteSize = slots * 8

    public let base: UnsafeMutablePointer<UInt64>

    public init(base: UnsafeMutablePointer<UInt64>) { self.base = base }

    public subscript(register: Register) -> UInt64 {
        get { base[register.rawValue] }
        nonmutating set { base[register.rawValue] = newValue }
    }

    /// Argument register a`n` as an unsigned word.
    public func argument(_ n: Int) -> UInt { UInt(base[Register.a0.rawValue + n]) }

    public func setResult(_ n: Int, _ value: UInt) { base[Register.a0.rawValue + n] = UInt64(value) }

    public func clear() {
        for slot in 0..<Self.slots { base[slot] = 0 }
    }
}

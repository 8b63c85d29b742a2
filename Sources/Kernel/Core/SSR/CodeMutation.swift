// Software faults: mutations of one machine instruction, in the style of the
// binary-level fault injectors of the SWIFI literature (FINE, the Rio and Nooks
// campaigns, MINIX 3's DSN'09 study), which emulate the programming errors that
// survive testing: a wrong register, a missing statement, an inverted condition, a
// bound off by one.
//
// The mutation is applied to the instruction the target is about to execute (the
// execution trigger picks that moment at random, so the mutated code is code the
// workload runs — no separate profile is needed). Programs are RV64IMAC: an
// instruction is 32 bits, or 16 when its two low bits are not 0b11 (the C
// extension).
//
//   32-bit                      31      25 24  20 19  15 14 12 11   7 6     0
//                               +---------+------+------+-----+------+-------+
//   R   add/sub/...             | funct7  | rs2  | rs1  | f3  |  rd  |0110011|
//   I   addi/slti/.../loads     |    imm[11:0]   | rs1  | f3  |  rd  |0010011| 0000011
//   S   stores                  | imm     | rs2  | rs1  | f3  | imm  |0100011|
//   B   beq/bne/blt/bge/...     | imm     | rs2  | rs1  | f3  | imm  |1100011|
//
//   mutation            32-bit                               16-bit
//   ------------------  -----------------------------------  ---------------------
//   delete              `addi x0, x0, 0`                     `c.nop`
//   invert branch       B: funct3 bit 0 (beq<->bne,          c.beqz <-> c.bnez
//                       blt<->bge, bltu<->bgeu)
//   wrong destination   R/I/U/J: one bit of rd flipped        (delete)
//   wrong pointer       loads/stores: one bit of rs1 flipped  (delete)
//   off by one          OP-IMM: immediate + or - 1            c.addi/c.li: imm +- 1
//
// A mutation that does not apply to the instruction found falls back to deleting
// it, so every strike changes the code. Decoding is by opcode only; the result is
// always a valid encoding of the same length.

public enum CodeMutation: UInt8, CaseIterable, Sendable {
    case delete = 0
    case invertBranch = 1
    case wrongDestination = 2
    case wrongPointer = 3
    case offByOne = 4

    public var name: StaticString {
        switch self {
        case .delete: "delete"
        case .invertBranch: "invert-branch"
        case .wrongDestination: "wrong-destination"
        case .wrongPointer: "wrong-pointer"
        case .offByOne: "off-by-one"
        }
    }

    /// Whether an instruction whose first halfword is `low` is 16 bits long.
    public static func isCompressed(_ low: UInt16) -> Bool { low & 0b11 != 0b11 }

    /// The mutated instruction and the mutation actually applied. `word` holds the
    /// instruction in its low 16 or 32 bits; `bit` picks which bit of a register field
    /// flips (taken modulo the field's width).
    public func apply(to word: UInt32, bit: Int) -> (word: UInt32, applied: CodeMutation) {
        if Self.isCompressed(UInt16(truncatingIfNeeded: word)) {
            return applyCompressed(UInt16(truncatingIfNeeded: word))
        }
        let opcode = word & 0x7F
        let registerBit = UInt32(1) << UInt32(bit % 5)
        switch self {
        case .delete:
            break
        case .invertBranch where opcode == Opcode.branch:
            return (word ^ (1 << 12), .invertBranch)
        case .wrongDestination where Opcode.writesRegister(opcode):
            return (word ^ (registerBit << 7), .wrongDestination)
        case .wrongPointer where opcode == Opcode.load || opcode == Opcode.store:
            return (word ^ (registerBit << 15), .wrongPointer)
        case .offByOne where opcode == Opcode.immediate:
            let immediate = Int32(bitPattern: word) >> 20
            let changed = immediate == 2047 ? immediate - 1 : immediate + 1
            return ((word & 0x000F_FFFF) | UInt32(bitPattern: changed << 20), .offByOne)
        default:
            break
        }
        return (Opcode.nop, .delete)
    }

    private func applyCompressed(_ half: UInt16) -> (word: UInt32, applied: CodeMutation) {
        let quadrant = half & 0b11
        let funct3 = half >> 13
        switch self {
        case .invertBranch where quadrant == 0b01 && (funct3 == 0b110 || funct3 == 0b111):
            return (UInt32(half ^ (1 << 13)), .invertBranch)
        case .offByOne where quadrant == 0b01 && (funct3 == 0b000 || funct3 == 0b010) && (half >> 7) & 0x1F != 0:
            // c.addi / c.li: imm[5] at bit 12, imm[4:0] at bits 6..2.
            let raw = Int32((half >> 2) & 0x1F) | Int32((half >> 12) & 1) << 5
            let immediate = raw >= 32 ? raw - 64 : raw
            let changed = immediate == 31 ? immediate - 1 : immediate + 1
            let bits = UInt16(truncatingIfNeeded: changed) & 0x3F
            let cleared = half & ~UInt16(0x107C)
            return (UInt32(cleared | (bits & 0x1F) << 2 | (bits >> 5) << 12), .offByOne)
        default:
            return (UInt32(Opcode.compressedNop), .delete)
        }
    }

    private enum Opcode {
        static let load: UInt32 = 0b000_0011
        static let immediate: UInt32 = 0b001_0011
        static let auipc: UInt32 = 0b001_0111
        static let immediate32: UInt32 = 0b001_1011
        static let store: UInt32 = 0b010_0011
        static let register: UInt32 = 0b011_0011
        static let lui: UInt32 = 0b011_0111
        static let register32: UInt32 = 0b011_1011
        static let branch: UInt32 = 0b110_0011
        static let jal: UInt32 = 0b110_1111
        static func writesRegister(_ opcode: UInt32) -> Bool {
            switch opcode {
            case load, immediate, auipc, immediate32, register, lui, register32, jal: true
            default: false
            }
        }
        /// `addi x0, x0, 0`
        static let nop: UInt32 = 0x0000_0013
        /// `c.nop`
        static let compressedNop: UInt16 = 0x0001
    }
}

// Tests of the software-fault mutations: each operator on the encodings it applies
// to, the fallback to deletion, and that a result keeps the instruction's length.
import Testing
@testable import KernelCore

@Suite struct CodeMutationTests {
    // Encodings (RV64IMAC), checked against llvm-mc:
    static let addi = UInt32(0x0051_0513)       // addi a0, sp, 5
    static let addiMax = UInt32(0x7FF5_0513)    // addi a0, a0, 2047
    static let ld = UInt32(0x0085_3503)         // ld a0, 8(a0)
    static let sd = UInt32(0x00A5_3423)         // sd a0, 8(a0)
    static let beq = UInt32(0x00B5_0463)        // beq a0, a1, 8
    static let bltu = UInt32(0x00B5_6463)       // bltu a0, a1, 8
    static let add = UInt32(0x00B5_0533)        // add a0, a0, a1
    static let ecall = UInt32(0x0000_0073)
    static let cBeqz = UInt32(0xC111)           // c.beqz a0, 4
    static let cAddi = UInt32(0x0511)           // c.addi a0, 4
    static let cLiMinus = UInt32(0x557D)        // c.li a0, -1
    static let cMv = UInt32(0x852E)             // c.mv a0, a1

    @Test func deleteMakesANopOfTheSameLength() {
        #expect(CodeMutation.delete.apply(to: Self.add, bit: 0) == (0x0000_0013, .delete))
        #expect(CodeMutation.delete.apply(to: Self.cMv, bit: 0) == (0x0001, .delete))
    }

    @Test func invertBranchFlipsTheCondition() {
        #expect(CodeMutation.invertBranch.apply(to: Self.beq, bit: 0).word == 0x00B5_1463, "bne")
        #expect(CodeMutation.invertBranch.apply(to: Self.bltu, bit: 0).word == 0x00B5_7463, "bgeu")
        #expect(CodeMutation.invertBranch.apply(to: Self.cBeqz, bit: 0) == (0xE111, .invertBranch), "c.bnez")
        #expect(CodeMutation.invertBranch.apply(to: Self.add, bit: 0).applied == .delete, "no branch: deleted")
    }

    @Test func wrongDestinationFlipsOneBitOfRd() {
        for bit in 0..<5 {
            let (word, applied) = CodeMutation.wrongDestination.apply(to: Self.add, bit: bit)
            #expect(applied == .wrongDestination)
            #expect(word ^ Self.add == UInt32(1) << UInt32(7 + bit))
        }
        #expect(CodeMutation.wrongDestination.apply(to: Self.sd, bit: 1).applied == .delete, "a store has no rd")
    }

    @Test func wrongPointerFlipsOneBitOfTheBaseRegister() {
        #expect(CodeMutation.wrongPointer.apply(to: Self.ld, bit: 2).word ^ Self.ld == 1 << 17)
        #expect(CodeMutation.wrongPointer.apply(to: Self.sd, bit: 0).word ^ Self.sd == 1 << 15)
        #expect(CodeMutation.wrongPointer.apply(to: Self.add, bit: 0).applied == .delete)
    }

    @Test func offByOneMovesAnImmediateByOne() {
        #expect(CodeMutation.offByOne.apply(to: Self.addi, bit: 0).word == 0x0061_0513, "addi a0, sp, 6")
        #expect(CodeMutation.offByOne.apply(to: Self.addiMax, bit: 0).word == 0x7FE5_0513, "never overflows")
        #expect(CodeMutation.offByOne.apply(to: Self.cAddi, bit: 0) == (0x0515, .offByOne), "c.addi a0, 5")
        #expect(CodeMutation.offByOne.apply(to: Self.cLiMinus, bit: 0) == (0x4501, .offByOne), "c.li a0, 0")
        #expect(CodeMutation.offByOne.apply(to: Self.ecall, bit: 0).applied == .delete)
    }

    @Test func everyMutationKeepsTheLengthAndChangesTheCode() {
        for original in [Self.addi, Self.ld, Self.sd, Self.beq, Self.add, Self.ecall, Self.cBeqz, Self.cAddi, Self.cMv] {
            for mutation in CodeMutation.allCases {
                for bit in 0..<5 {
                    let (word, _) = mutation.apply(to: original, bit: bit)
                    let compressed = CodeMutation.isCompressed(UInt16(truncatingIfNeeded: original))
                    #expect(CodeMutation.isCompressed(UInt16(truncatingIfNeeded: word)) == compressed)
                    if compressed { #expect(word <= 0xFFFF) }
                    #expect(word != original, "\(mutation) of \(original)")
                }
            }
        }
    }
}

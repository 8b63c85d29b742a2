// Redirection's two host-testable halves: the shell's parse of `> PATH` and `>> PATH`,
// and the console's holder of a diverted write, which must hand every byte over
// once, in order, and release the writer only after the last one.

import ConsoleCore
import Testing

struct RedirectionTests {
    func parse(_ line: String) throws(RedirectionError) -> (command: String, path: String?, appends: Bool) {
        let parsed = try Redirection.parse(Array(line.utf8))
        return (String(decoding: parsed.command, as: UTF8.self), parsed.target.map { String(decoding: $0.path, as: UTF8.self) },
                parsed.target?.appends ?? false)
    }

    @Test func aLineWithoutARedirectionIsLeftAlone() throws {
        let line = Array("echo  a   b".utf8)
        let parsed = try Redirection.parse(line)
        #expect(parsed.command == line && parsed.target == nil)
    }

    @Test func theTargetMayStandAnywhereWithOrWithoutSpaces() throws {
        #expect(try parse("echo hello > /out") == ("echo hello", "/out", false))
        #expect(try parse("echo hello >> /out") == ("echo hello", "/out", true))
        #expect(try parse("echo hello>/out") == ("echo hello", "/out", false))
        #expect(try parse("echo hello>>/out") == ("echo hello", "/out", true))
        #expect(try parse("echo a > /out b") == ("echo a b", "/out", false))
        #expect(try parse("> /out echo a") == ("echo a", "/out", false))
        #expect(try parse("run crashme exit 0 >> log") == ("run crashme exit 0", "log", true))
        #expect(try parse("> /empty") == ("", "/empty", false))
    }

    @Test func aMissingOrSecondTargetIsRefused() {
        #expect(throws: RedirectionError.missingPath) { try parse("echo a >") }
        #expect(throws: RedirectionError.missingPath) { try parse("echo a >>   ") }
        #expect(throws: RedirectionError.tooManyTargets) { try parse("echo a > /x > /y") }
        #expect(throws: RedirectionError.tooManyTargets) { try parse("echo a > /x >> /y") }
        #expect(throws: RedirectionError.tooManyTargets) { try parse("echo a >>> /x") }
        #expect(throws: RedirectionError.tooManyTargets) { try parse("echo a >/x>/y") }
    }

    @Test func aHeldWriteIsHandedOverWholeInPiecesAndOnlyThenReleased() {
        var diverted = DivertedOutput(capacity: 16)
        #expect(!diverted.diverts(7))
        diverted.divert(7) { _, _ in Issue.record("nothing was held") }
        #expect(diverted.diverts(7) && !diverted.diverts(8))
        let line = Array("0123456789".utf8)
        #expect(line.withUnsafeBytes { diverted.hold($0, from: 7) })
        #expect(diverted.writer == 7 && diverted.pendingCount == 10)
        #expect(!line.withUnsafeBytes { diverted.hold($0, from: 7) }, "one write at a time")
        var piece = [UInt8](repeating: 0, count: 4)
        var received: [UInt8] = []
        var released: [UInt32] = []
        while diverted.pendingCount > 0 {
            let count = piece.withUnsafeMutableBytes { diverted.peek(into: $0) }
            received += piece[0..<count]
            let writer = diverted.take(count)
            if writer != 0 { released.append(writer) }
            #expect(writer == 0 || diverted.pendingCount == 0, "released before the last byte")
        }
        #expect(received == line && released == [7] && diverted.writer == 0)
    }

    @Test func aPeekThatWasNotDeliveredLosesNothing() {
        var diverted = DivertedOutput(capacity: 16)
        diverted.divert(3) { _, _ in }
        _ = Array("abc".utf8).withUnsafeBytes { diverted.hold($0, from: 3) }
        var piece = [UInt8](repeating: 0, count: 8)
        _ = piece.withUnsafeMutableBytes { diverted.peek(into: $0) }
        #expect(diverted.pendingCount == 3, "a reply that failed takes nothing")
        #expect(piece.withUnsafeMutableBytes { diverted.peek(into: $0) } == 3 && Array(piece[0..<3]) == Array("abc".utf8))
    }

    @Test func endingADiversionHandsTheUntakenRestToTheTerminal() {
        var diverted = DivertedOutput(capacity: 16)
        diverted.divert(5) { _, _ in }
        _ = Array("hello".utf8).withUnsafeBytes { diverted.hold($0, from: 5) }
        _ = diverted.take(2)
        var leftover: [UInt8] = []
        var writer: UInt32 = 0
        diverted.divert(0) { bytes, released in
            leftover = Array(bytes)
            writer = released
        }
        #expect(leftover == Array("llo".utf8) && writer == 5)
        #expect(!diverted.diverts(5) && diverted.pendingCount == 0)
    }
}

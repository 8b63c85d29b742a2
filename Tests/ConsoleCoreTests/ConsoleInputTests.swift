// The console's typed-input queue and echo, the key decoder, and tab completion.

import ConsoleCore
import Testing

@Suite struct TypeAheadTests {
    func read(_ queue: inout TypeAhead, limit: Int = 256) -> String {
        let length = queue.readLength(limit: limit)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 1)
        defer { buffer.deallocate() }
        queue.copyOldest(length, to: buffer)
        queue.removeOldest(length)
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[0..<length]), as: UTF8.self)
    }

    @Test func everyByteLeavesInOrderOneLineAtATime() {
        var queue = TypeAhead()
        for byte in "ls -l /\rcat /etc/motd\rech".utf8 { _ = queue.append(byte) }
        #expect(read(&queue) == "ls -l /\r")
        #expect(read(&queue) == "cat /etc/motd\r")
        #expect(read(&queue, limit: 2) == "ec")
        #expect(read(&queue) == "h")
        #expect(queue.isEmpty)
    }

    @Test func aReadStopsAfterCtrlCAndLineFeed() {
        var queue = TypeAhead()
        for byte in "abc\u{3}def\nxyz".utf8 { _ = queue.append(byte) }
        #expect(read(&queue) == "abc\u{3}")
        #expect(read(&queue) == "def\n")
        #expect(read(&queue) == "xyz")
    }

    @Test func aFullQueueRefusesAndKeepsWhatItHasAcrossTheWrap() {
        var queue = TypeAhead(capacity: 8)
        for byte in "abcdef".utf8 { _ = queue.append(byte) }
        #expect(read(&queue, limit: 4) == "abcd")
        for byte in "ghijkl".utf8 {
            let queued = queue.append(byte)
            #expect(queued)
        }
        #expect(queue.isFull)
        let queuedWhenFull = queue.append(UInt8(ascii: "m"))
        #expect(!queuedWhenFull)
        #expect(read(&queue) == "efghijkl")
    }

    @Test func theInterruptIsFoundWithEverythingTypedBeforeIt() {
        var queue = TypeAhead()
        for byte in "ps\r".utf8 { _ = queue.append(byte) }
        #expect(queue.lengthThroughInterrupt() == nil)
        for byte in "ls\u{3}echo after\r".utf8 { _ = queue.append(byte) }
        #expect(queue.lengthThroughInterrupt() == 6)
        queue.removeOldest(6)
        #expect(read(&queue) == "echo after\r")
    }

    @Test func echoShowsTypedTextAndErasesOnlyWhatWasTyped() {
        var echo = TypeAheadEcho()
        var shown: [UInt8] = []
        for byte in Array("ab".utf8) + [ASCII.delete, ASCII.delete, ASCII.delete, ASCII.carriageReturn,
                                       ASCII.lineFeed, ASCII.escape] + Array("[A".utf8) + [ASCII.interrupt, 0xC3] {
            echo.render(byte) { shown.append($0) }
        }
        #expect(String(decoding: shown, as: UTF8.self) == "ab\u{8} \u{8}\u{8} \u{8}\r\n^[[A^C\r\n")
    }
}

@Suite struct KeyDecoderTests {
    func keys(_ bytes: [UInt8]) -> [Key] {
        var decoder = KeyDecoder()
        return bytes.compactMap { decoder.decode($0) }
    }

    func keys(_ text: String) -> [Key] { keys(Array(text.utf8)) }

    @Test func everyDialectOfTheCursorKeys() {
        #expect(keys("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D") == [.up, .down, .right, .left])
        #expect(keys("\u{1B}OA\u{1B}OB\u{1B}OC\u{1B}OD\u{1B}OH\u{1B}OF") == [.up, .down, .right, .left, .home, .end])
        #expect(keys("\u{1B}[H\u{1B}[F\u{1B}[1~\u{1B}[4~\u{1B}[7~\u{1B}[8~") == [.home, .end, .home, .end, .home, .end])
        #expect(keys("\u{1B}[3~\u{7F}\u{8}") == [.delete, .backspace, .backspace])
        #expect(keys("\u{1B}[1;5C\u{1B}[1;3D\u{1B}b\u{1B}f") == [.wordRight, .wordLeft, .wordLeft, .wordRight])
    }

    @Test func controlKeysEnterAndTab() {
        #expect(keys([1, 3, 4, 21, 23, 9, 13, 10, 10]) == [
            .control(letter: UInt8(ascii: "A")), .control(letter: UInt8(ascii: "C")),
            .control(letter: UInt8(ascii: "D")), .control(letter: UInt8(ascii: "U")),
            .control(letter: UInt8(ascii: "W")), .tab, .enter, .enter,
        ])
    }

    @Test func unknownSequencesYieldNothingAndEndCleanly() {
        #expect(keys("\u{1B}[15~a\u{1B}[?25hb\u{1B}OPc\u{1B}[1;2;3Ad\u{1B}[2 qe") == [
            .character(UInt8(ascii: "a")), .character(UInt8(ascii: "b")), .character(UInt8(ascii: "c")),
            .character(UInt8(ascii: "d")), .character(UInt8(ascii: "e")),
        ])
        // A count too long for any number is clamped, not an overflow.
        #expect(keys("\u{1B}[99999999999999999999999999C") == [.right])
    }

    @Test func aControlCharacterInsideASequenceEndsItAndCounts() {
        #expect(keys("\u{1B}[1\u{3}x") == [.control(letter: UInt8(ascii: "C")), .character(UInt8(ascii: "x"))])
        #expect(keys("\u{1B}\rx") == [.enter, .character(UInt8(ascii: "x"))])
    }
}

@Suite struct CompletionTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func theFirstWordIsACommandAndTheOthersArePaths() {
        #expect(Completion.target(of: bytes("ec")[...]) == .command(prefix: bytes("ec")))
        #expect(Completion.target(of: bytes("  ")[...]) == .command(prefix: []))
        #expect(Completion.target(of: bytes("cat /etc/mo")[...])
                == .path(directory: bytes("/etc/"), prefix: bytes("mo")))
        #expect(Completion.target(of: bytes("cat RE")[...]) == .path(directory: [], prefix: bytes("RE")))
        #expect(Completion.target(of: bytes("ls ")[...]) == .path(directory: [], prefix: []))
        #expect(Completion.target(of: bytes("cp /a /docs/")[...]) == .path(directory: bytes("/docs/"), prefix: []))
    }

    @Test func oneMatchIsInsertedAndEnded() {
        let candidates = [CompletionCandidate(name: bytes("etc"), isDirectory: true),
                          CompletionCandidate(name: bytes("README.txt"))]
        #expect(Completion.resolve(bytes("e"), among: candidates) == .insert(bytes("tc/")))
        #expect(Completion.resolve(bytes("R"), among: candidates) == .insert(bytes("EADME.txt ")))
        #expect(Completion.resolve(bytes("x"), among: candidates) == .none)
    }

    @Test func severalMatchesExtendToTheirCommonPrefixThenList() {
        let candidates = ["spawntest", "sleep", "ssr", "stat", "sync"].map { CompletionCandidate(name: bytes($0)) }
            + [CompletionCandidate(name: bytes("sdir"), isDirectory: true)]
        #expect(Completion.resolve(bytes("sp"), among: candidates) == .insert(bytes("awntest ")))
        #expect(Completion.resolve(bytes("s"), among: candidates)
                == .choices(["sdir/", "sleep", "spawntest", "ssr", "stat", "sync"].map(bytes)))
        let pair = [CompletionCandidate(name: bytes("append")), CompletionCandidate(name: bytes("appendix"))]
        #expect(Completion.resolve(bytes("ap"), among: pair) == .insert(bytes("pend")))
        #expect(Completion.resolve(bytes("append"), among: pair) == .choices([bytes("append"), bytes("appendix")]))
        #expect(Completion.commonPrefix([]) == [])
    }
}

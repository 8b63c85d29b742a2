import NetworkCore
import Testing

/// Whatever arrives, the parser answers without trapping and never points outside the frame.
@Suite struct FrameRobustnessTests {
    var validFrames: [[UInt8]] {
        [arpRequestFrame(), arpReplyFrame(), echoFrame(data: Array(0..<40)), udpFrame(payload: Array(0..<30)),
         tcpFrame(segment: Array(0..<24)), echoFrame(from: hostB, toMAC: hostA.mac, to: hostA.address, isReply: true,
                                                     data: [9, 8, 7])]
    }

    /// Classifies `frame` for both hosts; records an issue if a range escapes it.
    /// Returns whether either host accepted the frame.
    @discardableResult
    func check(_ frame: [UInt8]) -> Bool {
        var accepted = false
        for interface in [hostA, hostB] {
            let meaning = classify(frame, for: interface)
            if let (offset, length) = meaning.range {
                accepted = true
                if offset < 0 || length < 0 || offset > frame.count || length > frame.count - offset {
                    Issue.record("range \(offset)+\(length) outside a \(frame.count)-byte frame: \(meaning)")
                }
            } else if case .drop = meaning {
            } else {
                accepted = true
            }
        }
        return accepted
    }

    @Test func everyTruncationIsDroppedAsTruncated() {
        for frame in validFrames {
            #expect(check(frame))
            for length in 0..<frame.count {
                let cut = Array(frame.prefix(length))
                check(cut)
                for interface in [hostA, hostB] {
                    let meaning = classify(cut, for: interface)
                    #expect(meaning == .drop(.truncated) || meaning == .drop(.notForUs),
                            "\(length) of \(frame.count) bytes: \(meaning)")
                }
            }
        }
    }

    @Test func randomFramesNeverTrap() {
        var generator = SplitMix(seed: 0xC0_210)
        for _ in 0..<10_000 {
            let length = generator.below(120)
            var frame = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            // Give most frames a header that gets past the first checks.
            if length >= 14 && generator.below(4) != 0 {
                frame.replaceSubrange(0..<6, with: generator.below(2) == 0 ? [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
                                      : [0x52, 0x55, 0x0A, 0x00, 0x02, 0x02])
                frame[12] = 0x08
                frame[13] = generator.below(2) == 0 ? 0x00 : 0x06
                if frame[13] == 0 && length >= 34 {
                    frame[14] = 0x45
                    fixIPChecksum(&frame)
                }
            }
            check(frame)
        }
    }

    /// Valid frames with a few bytes changed, the IP checksum often repaired so the
    /// damage reaches ICMP, UDP and the lengths behind it.
    @Test func mutatedFramesNeverTrap() {
        var generator = SplitMix(seed: 42)
        let originals = validFrames
        var accepted = 0
        for _ in 0..<10_000 {
            var frame = originals[generator.below(originals.count)]
            for _ in 0...generator.below(4) {
                frame[generator.below(frame.count)] = UInt8(truncatingIfNeeded: generator.next())
            }
            switch generator.below(4) {
            case 0: frame.removeLast(generator.below(frame.count + 1))
            case 1: frame += (0..<generator.below(30)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            default: break
            }
            if frame.count >= 34 && frame[12] == 0x08 && frame[13] == 0x00 && frame[14] & 0x0F >= 5
                && generator.below(3) != 0 && frame.count >= 14 + Int(frame[14] & 0x0F) * 4 {
                fixIPChecksum(&frame)
            }
            if check(frame) { accepted += 1 }
        }
        #expect(accepted > 500, "the mutations must also reach the accepting paths")
    }
}

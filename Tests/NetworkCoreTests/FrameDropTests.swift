import NetworkCore
import Testing

@Suite struct FrameDropTests {
    /// A frame B must drop for `reason`, made by damaging a valid one in one way.
    func malformed(for reason: DropReason) -> [UInt8] {
        switch reason {
        case .truncated:
            return Array(udpFrame(payload: [1, 2, 3, 4]).prefix(44))
        case .notForUs:
            return udpFrame(toMAC: MACAddress(0x52, 0x55, 0x0A, 0x00, 0x02, 0x03), payload: [1])
        case .unknownEtherType:
            var frame = udpFrame(payload: [1])
            frame[12] = 0x86
            frame[13] = 0xDD
            return frame
        case .badARP:
            var frame = arpRequestFrame()
            frame[21] = 3
            return frame
        case .badIPHeader:
            var frame = udpFrame(payload: [1])
            frame[14] = 0x65
            fixIPChecksum(&frame)
            return frame
        case .badIPChecksum:
            var frame = udpFrame(payload: [1])
            frame[25] ^= 0x01
            return frame
        case .fragment:
            var frame = udpFrame(payload: [1])
            frame[20] |= 0x20
            fixIPChecksum(&frame)
            return frame
        case .notOurAddress:
            return udpFrame(to: IPv4Address(10, 0, 2, 3), payload: [1])
        case .badSourceAddress:
            var sender = hostA
            sender.address = IPv4Address(224, 0, 0, 1)
            return udpFrame(from: sender, payload: [1])
        case .unknownProtocol:
            var frame = udpFrame(payload: [1])
            frame[23] = 2
            fixIPChecksum(&frame)
            return frame
        case .badICMP:
            var frame = echoFrame(data: [1, 2])
            frame[35] = 1
            fixICMPChecksum(&frame)
            return frame
        case .badICMPChecksum:
            var frame = echoFrame(data: [1, 2])
            frame[43] ^= 0x80
            return frame
        case .unknownICMPType:
            var frame = echoFrame(data: [1, 2])
            frame[34] = 3
            fixICMPChecksum(&frame)
            return frame
        case .broadcastEchoRequest:
            return echoFrame(toMAC: .broadcast, to: IPv4Address(10, 0, 2, 255), data: [1])
        case .badUDP:
            var frame = udpFrame(payload: [1, 2])
            frame[39] = 11
            return frame
        case .badUDPChecksum:
            var frame = udpFrame(payload: [1, 2])
            frame[42] ^= 0x10
            return frame
        }
    }

    @Test(arguments: DropReason.allCases)
    func eachReasonHasAFrameThatCausesIt(_ reason: DropReason) {
        #expect(classify(malformed(for: reason), for: hostB) == .drop(reason))
    }

    @Test func reasonsHaveDistinctNames() {
        let names = DropReason.allCases.map { "\($0.name)" }
        #expect(Set(names).count == names.count)
        #expect(!names.contains(""))
    }

    @Test func moreDamageAndWhyItIsDropped() {
        var udp = udpFrame(payload: [1, 2, 3, 4])
        #expect(classify([], for: hostB) == .drop(.truncated))
        #expect(classify(Array(udp.prefix(13)), for: hostB) == .drop(.truncated))
        #expect(classify(Array(udp.prefix(33)), for: hostB) == .drop(.truncated), "IP header cut")
        #expect(classify(Array(arpRequestFrame().prefix(41)), for: hostB) == .drop(.truncated))

        var multicast = udp
        multicast[0] = 0x01
        #expect(classify(multicast, for: hostB) == .drop(.notForUs))
        #expect(classify(arpRequestFrame(asking: IPv4Address(10, 0, 2, 3)), for: hostB) == .drop(.notForUs),
                "an ARP request for another address")

        for (offset, value) in [(15, UInt8(0x00)), (14, 1), (16, 6), (17, 3), (18, 5), (19, 16)] {
            var arp = arpRequestFrame()
            arp[offset] = value
            #expect(classify(arp, for: hostB) == .drop(.badARP), "ARP byte \(offset)")
        }
        var groupSender = arpReplyFrame()
        groupSender[22] |= 0x01
        #expect(classify(groupSender, for: hostA) == .drop(.badARP))

        var shortIHL = udp
        shortIHL[14] = 0x44
        #expect(classify(shortIHL, for: hostB) == .drop(.badIPHeader))
        var longIHL = udp
        longIHL[14] = 0x4F
        #expect(classify(longIHL, for: hostB) == .drop(.truncated), "a 60-byte header in a 46-byte frame")
        var totalBelowHeader = udp
        totalBelowHeader[17] = 19
        fixIPChecksum(&totalBelowHeader)
        #expect(classify(totalBelowHeader, for: hostB) == .drop(.badIPHeader))
        var totalBeyondFrame = udp
        totalBeyondFrame[17] += 1
        fixIPChecksum(&totalBeyondFrame)
        #expect(classify(totalBeyondFrame, for: hostB) == .drop(.truncated))

        var offsetSet = udp
        offsetSet[21] = 0x01
        fixIPChecksum(&offsetSet)
        #expect(classify(offsetSet, for: hostB) == .drop(.fragment), "a nonzero fragment offset")

        var broadcastSource = hostA
        broadcastSource.address = .broadcast
        #expect(classify(udpFrame(from: broadcastSource, payload: []), for: hostB) == .drop(.badSourceAddress))
        broadcastSource.address = IPv4Address(10, 0, 2, 255)
        #expect(classify(udpFrame(from: broadcastSource, payload: []), for: hostB) == .drop(.badSourceAddress))
        var unconfigured = hostA
        unconfigured.address = .any
        #expect(classify(udpFrame(from: unconfigured, payload: []), for: hostB).range != nil,
                "0.0.0.0 is what an unconfigured host sends from")

        #expect(classify(echoFrame(toMAC: .broadcast, to: .broadcast, data: []), for: hostB)
                == .drop(.broadcastEchoRequest))
        #expect(classify(echoFrame(from: hostB, toMAC: .broadcast, to: .broadcast, isReply: true, data: []),
                         for: hostA) != .drop(.broadcastEchoRequest), "replies are not refused")

        var shortICMP = echoFrame(data: [])
        shortICMP.removeLast(4)
        shortICMP[17] -= 4
        fixIPChecksum(&shortICMP)
        #expect(classify(shortICMP, for: hostB) == .drop(.badICMP), "ICMP under 8 bytes")

        var shortUDP = udpFrame(payload: [])
        shortUDP.removeLast(2)
        shortUDP[17] -= 2
        fixIPChecksum(&shortUDP)
        #expect(classify(shortUDP, for: hostB) == .drop(.badUDP), "UDP under 8 bytes")
        udp[38] = 0
        udp[39] = 7
        #expect(classify(udp, for: hostB) == .drop(.badUDP), "a UDP length under 8")
    }
}

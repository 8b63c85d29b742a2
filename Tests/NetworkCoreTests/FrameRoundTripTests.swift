import NetworkCore
import Testing

@Suite struct FrameRoundTripTests {
    let data: [UInt8] = (0..<56).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }

    @Test func arpRequestIsHeardByTheHostItAsksFor() {
        let frame = arpRequestFrame()
        #expect(frame.count == 42)
        #expect(Array(frame[0..<6]) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(Array(frame[32..<38]) == [0, 0, 0, 0, 0, 0], "the target MAC is unknown")
        #expect(classify(frame, for: hostB) == .arpRequest(sender: hostA.mac, senderAddress: hostA.address))
        #expect(classify(frame, for: hostA) == .drop(.notForUs))
    }

    @Test func arpReplyReachesTheAsker() {
        let frame = arpReplyFrame()
        #expect(frame.count == 42)
        #expect(classify(frame, for: hostA) == .arpReply(sender: hostB.mac, senderAddress: hostB.address))
        #expect(classify(frame, for: hostB) == .drop(.notForUs), "unicast to A's MAC")
    }

    @Test func echoRequestAndReply() {
        let request = echoFrame(data: data)
        #expect(request.count == 42 + data.count)
        #expect(classify(request, for: hostB) == .echoRequest(from: hostA.mac, source: hostA.address,
                                                              identifier: 0x1234, sequence: 7,
                                                              dataOffset: 42, dataLength: data.count))
        #expect(Array(request[42...]) == data)
        let reply = echoFrame(from: hostB, toMAC: hostA.mac, to: hostA.address, isReply: true, data: data)
        #expect(classify(reply, for: hostA) == .echoReply(source: hostB.address, identifier: 0x1234, sequence: 7,
                                                          dataOffset: 42, dataLength: data.count))
        #expect(Array(reply[42...]) == data)
    }

    @Test func echoWithoutData() {
        let request = echoFrame(data: [])
        #expect(classify(request, for: hostB) == .echoRequest(from: hostA.mac, source: hostA.address,
                                                              identifier: 0x1234, sequence: 7,
                                                              dataOffset: 42, dataLength: 0))
    }

    /// The server answers a ping in the buffer the request arrived in, its data
    /// already in place.
    @Test func echoReplyBuiltInPlaceOverTheRequest() {
        var buffer = echoFrame(data: data)
        guard case let .echoRequest(from, source, identifier, sequence, offset, length) = classify(buffer, for: hostB)
        else { Issue.record("not an echo request"); return }
        let written = buffer.withUnsafeMutableBytes { frame in
            FrameBuilder.echo(into: frame, from: hostB, toMAC: from, to: source, isReply: true, identifier: identifier,
                              sequence: sequence,
                              data: UnsafeRawBufferPointer(rebasing: frame[offset..<(offset + length)]),
                              ipIdentification: 9)
        }
        #expect(written == buffer.count)
        #expect(classify(buffer, for: hostA) == .echoReply(source: hostB.address, identifier: 0x1234, sequence: 7,
                                                           dataOffset: 42, dataLength: data.count))
        #expect(Array(buffer[42...]) == data)
    }

    /// A client's data copied straight to where the payload goes, then wrapped.
    @Test func udpBuiltAroundAPayloadAlreadyInPlace() {
        let payload = Array("already here".utf8)
        var buffer = [UInt8](repeating: 0xAA, count: 100)
        buffer.replaceSubrange(42..<(42 + payload.count), with: payload)
        let written = buffer.withUnsafeMutableBytes { frame in
            FrameBuilder.udp(into: frame, from: hostA, toMAC: hostB.mac, to: hostB.address, sourcePort: 9,
                             destinationPort: 10,
                             payload: UnsafeRawBufferPointer(rebasing: frame[42..<(42 + payload.count)]),
                             ipIdentification: 3)
        }
        let frame = Array(buffer.prefix(written ?? 0))
        #expect(frame == udpFrame(sourcePort: 9, destinationPort: 10, payload: payload, ipIdentification: 3))
        #expect(classify(frame, for: hostB).range! == (42, payload.count))
        #expect(Array(frame[42...]) == payload)
    }

    @Test func udpDatagram() {
        let payload = Array("hello, gateway".utf8)
        let frame = udpFrame(sourcePort: 40000, destinationPort: 7, payload: payload)
        #expect(frame.count == FrameBuilder.headerBytesBeforeUDPPayload + payload.count)
        #expect(classify(frame, for: hostB) == .udp(from: hostA.mac, source: hostA.address, sourcePort: 40000,
                                                    destinationPort: 7, payloadOffset: 42,
                                                    payloadLength: payload.count))
        #expect(Array(frame[42...]) == payload)
        #expect(classify(frame, for: hostA) == .drop(.notForUs))
    }

    @Test func largestUDPDatagramAndOneByteMore() {
        let payload = (0..<FrameBuilder.maximumUDPPayload).map { UInt8(truncatingIfNeeded: $0) }
        let frame = udpFrame(payload: payload)
        #expect(frame.count == 1514)
        #expect(classify(frame, for: hostB).range! == (42, FrameBuilder.maximumUDPPayload))
        let tooLong = [UInt8](repeating: 1, count: FrameBuilder.maximumUDPPayload + 1)
        let refused = build { into in
            tooLong.withUnsafeBytes {
                FrameBuilder.udp(into: into, from: hostA, toMAC: hostB.mac, to: hostB.address, sourcePort: 1,
                                 destinationPort: 2, payload: $0, ipIdentification: 0)
            }
        }
        #expect(refused == nil)
    }

    @Test func udpToTheBroadcastAddresses() {
        for destination in [IPv4Address.broadcast, IPv4Address(10, 0, 2, 255)] {
            let frame = udpFrame(toMAC: .broadcast, to: destination, payload: [1, 2, 3])
            #expect(classify(frame, for: hostB) == .udp(from: hostA.mac, source: hostA.address, sourcePort: 1234,
                                                        destinationPort: 53, payloadOffset: 42, payloadLength: 3))
        }
    }

    /// A checksum that sums to 0 goes out as 0xffff (0 would mean "none"): make the
    /// last payload word the checksum of the datagram without it.
    @Test func udpChecksumOfZeroIsSentAsAllOnes() {
        let first = udpFrame(payload: [0x12, 0x34, 0, 0])
        var payload: [UInt8] = [0x12, 0x34, first[40], first[41]]
        let frame = udpFrame(payload: payload)
        #expect(frame[40] == 0xFF && frame[41] == 0xFF)
        #expect(classify(frame, for: hostB).range! == (42, 4))
        payload[0] ^= 1
        #expect(udpFrame(payload: payload)[40...41] != [0xFF, 0xFF])
    }

    @Test func udpWithoutAChecksumIsAccepted() {
        var frame = udpFrame(payload: [1, 2, 3, 4])
        frame[40] = 0
        frame[41] = 0
        frame[42] = 99
        #expect(classify(frame, for: hostB).range! == (42, 4))
    }

    @Test func udpLengthShorterThanTheIPPayloadLimitsThePayload() {
        var frame = udpFrame(payload: [1, 2, 3, 4, 5, 6])
        frame[38] = 0
        frame[39] = 10
        frame[40] = 0
        frame[41] = 0
        #expect(classify(frame, for: hostB) == .udp(from: hostA.mac, source: hostA.address, sourcePort: 1234,
                                                    destinationPort: 53, payloadOffset: 42, payloadLength: 2))
    }

    @Test func tcpIsHandedOnWithItsAddresses() {
        let segment = [UInt8](repeating: 0x5A, count: 20)
        let frame = tcpFrame(segment: segment)
        #expect(classify(frame, for: hostB) == .tcp(from: hostA.mac, source: hostA.address,
                                                    destination: hostB.address, segmentOffset: 34,
                                                    segmentLength: 28))
    }

    @Test func ipOptionsAreSkipped() {
        // Insert a 4-byte option (NOP, NOP, NOP, end) after the IP header: IHL 6.
        var frame = udpFrame(payload: [7, 8, 9])
        frame.insert(contentsOf: [1, 1, 1, 0], at: 34)
        frame[14] = 0x46
        let total = (Int(frame[16]) << 8 | Int(frame[17])) + 4
        frame[16] = UInt8(total >> 8)
        frame[17] = UInt8(total & 0xFF)
        fixIPChecksum(&frame)
        #expect(classify(frame, for: hostB) == .udp(from: hostA.mac, source: hostA.address, sourcePort: 1234,
                                                    destinationPort: 53, payloadOffset: 46, payloadLength: 3))
    }

    @Test func buildersRefuseABufferTooSmall() {
        #expect(build(capacity: 41) { FrameBuilder.arpRequest(into: $0, from: hostA, asking: hostB.address) } == nil)
        #expect(build(capacity: 42) { FrameBuilder.arpRequest(into: $0, from: hostA, asking: hostB.address) } != nil)
        #expect(build(capacity: 41) { FrameBuilder.arpReply(into: $0, from: hostA, to: hostB.mac,
                                                            toAddress: hostB.address) } == nil)
        let payload: [UInt8] = [1, 2, 3]
        for capacity in [0, 13, 33, 41, 44] {
            let frame = build(capacity: capacity) { into in
                payload.withUnsafeBytes {
                    FrameBuilder.udp(into: into, from: hostA, toMAC: hostB.mac, to: hostB.address, sourcePort: 1,
                                     destinationPort: 2, payload: $0, ipIdentification: 0)
                }
            }
            #expect(frame == nil, "capacity \(capacity)")
            let echo = build(capacity: capacity) { into in
                payload.withUnsafeBytes {
                    FrameBuilder.echo(into: into, from: hostA, toMAC: hostB.mac, to: hostB.address, isReply: false,
                                      identifier: 1, sequence: 1, data: $0, ipIdentification: 0)
                }
            }
            #expect(echo == nil, "capacity \(capacity)")
        }
        #expect(build(capacity: 45) { into in
            payload.withUnsafeBytes {
                FrameBuilder.udp(into: into, from: hostA, toMAC: hostB.mac, to: hostB.address, sourcePort: 1,
                                 destinationPort: 2, payload: $0, ipIdentification: 0)
            }
        }?.count == 45)
    }

    /// QEMU pads every frame shorter than 60 bytes with zeros; the padding is not data.
    @Test func ethernetPaddingIsIgnored() {
        let frames = [arpRequestFrame(), arpReplyFrame(), udpFrame(payload: [0xC0, 0xDE]), udpFrame(payload: []),
                      echoFrame(data: [1]), tcpFrame(segment: [])]
        for frame in frames {
            #expect(frame.count < 60)
            for filler in [UInt8(0), 0xEE] {
                let padded = frame + [UInt8](repeating: filler, count: 60 - frame.count)
                for interface in [hostA, hostB] {
                    #expect(classify(padded, for: interface) == classify(frame, for: interface))
                }
            }
            if case .drop = classify(frame, for: hostA), case .drop = classify(frame, for: hostB) {
                Issue.record("no host accepts the frame")
            }
        }
    }
}

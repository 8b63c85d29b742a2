// The shell's network commands: thin wrappers over NetworkAPI, printing
// "command: reason" and returning 1 on failure.

import ConsoleAPI
import CurioUser
import NetworkAPI

extension Shell {
    static let networkCommandsHelp = """
        ifconfig                  the network interface: MAC, address, gateway, DNS server, frame and datagram counts
                                  (config net.address A/N or dhcp, net.gateway, net.dns: taken when net next starts)
        ping ADDRESS [COUNT]      send COUNT (default 4) ICMP echo requests and print each round trip
        netstat                   every socket the network server knows: protocol, state, ports, owner, bytes
        """

    static func networkCommand(_ command: String, _ arguments: [String]) -> Int32? {
        switch command {
        case "ifconfig": return interfaceConfiguration()
        case "ping": return ping(arguments)
        case "netstat": return networkStatus()
        default: return nil
        }
    }

    static func text(_ address: IPv4Address) -> String {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        defer { bytes.deallocate() }
        let length = address.write(into: bytes)
        return String(decoding: bytes[0..<length], as: UTF8.self)
    }

    /// An address, or "none" for 0.0.0.0 (no gateway, no name server).
    static func text(orNone address: UInt32) -> String {
        address == 0 ? "none" : text(IPv4Address(rawValue: address))
    }

    static func text(mac: UInt64) -> String {
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
        var text = ""
        for index in (0..<6).reversed() {
            let byte = Int(mac >> UInt64(8 * index) & 0xFF)
            text.append(digits[byte >> 4])
            text.append(digits[byte & 15])
            if index > 0 { text.append(":") }
        }
        return text
    }

    static func interfaceConfiguration() -> Int32 {
        let status: InterfaceStatus
        do throws(NetworkError) {
            status = try Network.interface()
        } catch {
            complain("ifconfig: " + String(error.explanation))
            return 1
        }
        guard status.hasDevice else {
            complain("ifconfig: " + String(NetworkError.noDevice.explanation))
            return 1
        }
        print("eth0  mac " + text(mac: status.mac) + "  inet " + text(IPv4Address(rawValue: status.address))
              + "/\(status.prefixLength)  gateway " + text(orNone: status.gateway)
              + "  dns " + text(orNone: status.dnsServer)
              + (status.leasedByDHCP ? (status.hasLease ? "  (dhcp)" : "  (dhcp: no lease yet)") : ""))
        print("      frames: \(status.framesReceived) received, \(status.framesSent) sent, "
              + "\(status.framesDropped) dropped")
        print("      datagrams: \(status.datagramsDelivered) delivered to sockets, "
              + "\(status.datagramsDropped) dropped (socket queue full)")
        return 0
    }

    static func networkStatus() -> Int32 {
        print("PROTO  STATE         LOCAL   REMOTE                 PID  SENT       RECEIVED")
        var index: Int? = 0
        while let current = index {
            let entry: (info: SocketInfo, next: Int?)?
            do throws(NetworkError) {
                entry = try Network.socketInfo(at: current)
            } catch {
                complain("netstat: " + String(error.explanation))
                return 1
            }
            guard let (info, next) = entry else { break }
            let isTCP = info.kind == SocketKind.tcp.rawValue
            let state = isTCP ? String(TCPState(rawValue: info.state)?.name ?? "?") : ""
            let remote = info.remote.port == 0 ? "-"
                : text(IPv4Address(rawValue: info.remote.address)) + ":\(info.remote.port)"
            let owner = info.owner == 0 ? "-" : "\(TaskID(rawValue: info.owner).index)"
            print(pad(isTCP ? "tcp" : "udp", 7) + pad(state, 14) + pad("\(info.localPort)", 8) + pad(remote, 23)
                  + pad(owner, 5) + pad("\(info.bytesSent)", 11) + "\(info.bytesReceived)")
            index = next
        }
        return 0
    }

    static func ping(_ arguments: [String]) -> Int32 {
        guard arguments.count >= 1, arguments.count <= 2,
              let count = arguments.count == 2 ? Int(arguments[1]) : 4, count > 0, count <= 1000 else {
            complain("usage: ping ADDRESS [COUNT]")
            return 1
        }
        let bytes = copyBytes(arguments[0])
        defer { bytes.deallocate() }
        guard let address = IPv4Address.parse(UnsafeRawBufferPointer(bytes)) else {
            complain("ping: " + arguments[0] + ": not an IPv4 address")
            return 1
        }
        var answered = 0
        for sequence in 1...count {
            do throws(NetworkError) {
                let ticks = try Network.ping(address, sequence: UInt16(truncatingIfNeeded: sequence))
                let microseconds = ticks * 1_000_000 / System.ticksPerSecond
                print("reply from " + arguments[0] + ": seq=\(sequence) time=\(microseconds) us")
                answered += 1
            } catch {
                print("seq=\(sequence): " + String(error.explanation))
                if error != .timedOut { return 1 }
            }
        }
        print("ping " + arguments[0] + ": \(count) sent, \(answered) answered")
        return answered == count ? 0 : 1
    }
}

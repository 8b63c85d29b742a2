// The network interface's addresses come from the configuration service: the
// defaults are QEMU user networking's, `config net.address ...` takes effect when the
// network server next starts (here: a fault restarts it), and a refused value is
// named on the console while the server runs on the defaults. In the first test the
// test is the guest's whole network (NetworkPeer), so it sees which address the
// guest answers ARP for and sends from; in the second QEMU's DHCP server leases one.

import Foundation
import Testing

@Suite(.serialized) struct InterfaceConfigurationTests {
    /// The guest's ARP reply for `address`, if it answers for it within a few tries.
    static func arpReply(for address: [UInt8], via peer: NetworkPeer) -> [UInt8]? {
        let request: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + NetworkPeer.mac + [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]
            + NetworkPeer.mac + NetworkPeer.address + [0, 0, 0, 0, 0, 0] + address
        for _ in 0..<3 {
            peer.send(request)
            let reply = peer.await(timeout: 1) { frame in
                frame.count >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 2
                    && Array(frame[28..<32]) == address && Array(frame[38..<42]) == NetworkPeer.address
            }
            if let reply { return reply }
        }
        return nil
    }

    /// Restarts the network server: a fault struck by the next request, which
    /// `ifconfig` then makes (and gets answered by the restarted server).
    static func restartNetworkServer(_ machine: InteractiveMachine, seed: Int) {
        machine.type("inject net illegal next seed=\(seed)")
    }

    @Test func theAddressesComeFromTheConfigurationAndABadOneIsNamed() throws {
        let peer = try NetworkPeer()
        let machine = try NetworkTests.boot(peer)
        machine.type("ifconfig")
        #expect(machine.waitFor("inet 10.0.2.15/24  gateway 10.0.2.2  dns 10.0.2.3"), "\(machine.transcript)")
        #expect(Self.arpReply(for: [10, 0, 2, 15], via: peer) != nil, "the default address answers ARP")

        // A gateway off the subnet is refused as a whole: the defaults stay.
        machine.type("config net.gateway 10.0.9.1")
        Self.restartNetworkServer(machine, seed: 1)
        machine.type("ifconfig")
        #expect(machine.waitFor("net: net.gateway refused: the gateway is not another host on the address's subnet"),
                "\(machine.transcript)")
        #expect(machine.waitFor("inet 10.0.2.15/24  gateway 10.0.2.2  dns 10.0.2.3", count: 2), "\(machine.transcript)")

        // A good new address is taken at the next start.
        machine.type("config net.gateway 10.0.2.2")
        machine.type("config net.address 10.0.2.20/24")
        machine.type("config net.dns 10.0.2.9")
        Self.restartNetworkServer(machine, seed: 2)
        machine.type("ifconfig")
        #expect(machine.waitFor("inet 10.0.2.20/24  gateway 10.0.2.2  dns 10.0.2.9"), "\(machine.transcript)")
        let reply = Self.arpReply(for: [10, 0, 2, 20], via: peer)
        #expect(reply != nil, "the configured address answers ARP")
        #expect(Self.arpReply(for: [10, 0, 2, 15], via: peer) == nil, "the old address no longer answers")

        // The guest's own datagrams leave from the new address.
        machine.type("ping 10.0.2.2 1")
        let request = peer.await(timeout: 5) { frame in
            frame.count >= 34 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 1
        }
        #expect(request.map { Array($0[26..<30]) } == [10, 0, 2, 20], "the echo request's source address")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }

    /// `net.address dhcp`: the restarted server leases its address from QEMU's DHCP
    /// server, told to hand out 10.0.2.42 (not the usual .15), and the host's forward to
    /// that address reaches httpd. With restrict=on QEMU offers no router or name
    /// server, so the interface has none and off-subnet addresses are unreachable.
    @Test func dhcpLeasesTheAddressAndTheHostReachesIt() throws {
        let port = HostTCP.freePort()
        let machine = try InteractiveMachine(extra: [
            "-netdev", "user,id=n0,restrict=on,dhcpstart=10.0.2.42,hostfwd=tcp:127.0.0.1:\(port)-:80",
            "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"])
        defer { _ = machine.waitForExit(timeout: 1) }
        #expect(machine.waitFor("curio> "), "\(machine.transcript)")
        machine.type("config net.address dhcp")
        Self.restartNetworkServer(machine, seed: 3)
        var leased = false
        for attempt in 1...10 where !leased {
            machine.type("ifconfig")
            leased = machine.waitFor("inet 10.0.2.42/24  gateway none  dns none  (dhcp)", timeout: 2)
            if !leased { #expect(machine.waitFor("eth0", count: attempt), "\(machine.transcript)") }
        }
        #expect(leased, "\(machine.transcript)")
        let connection = try HostTCP(port: port)
        try connection.send(Array("HEAD / HTTP/1.1\r\nHost: curio\r\nConnection: close\r\n\r\n".utf8))
        let answer = String(decoding: try connection.receive(timeout: 10) ?? [], as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 "), "httpd answers at the leased address: \(answer)")
        machine.type("ping 10.9.9.9 1")
        #expect(machine.waitFor("network unreachable"), "\(machine.transcript)")
        machine.type("poweroff")
        #expect(machine.waitForExit() == 0)
    }
}

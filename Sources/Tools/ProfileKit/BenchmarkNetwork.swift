// The network `make bench` and `make profile` give netbench: QEMU user networking with
// nothing reachable but a guest forward of 10.0.2.100:9 to a discard sink on this host
// (a new `dd` per connection), so that "TCP to the host" measures Curio's side alone.
// Written once, here, for both tools to measure the same machine.

public enum BenchmarkNetwork {
    /// QEMU's arguments for that network device (virtio-mmio slot 0, modern transport).
    public static let qemuArguments = [
        "-global", "virtio-mmio.force-legacy=false",
        "-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:9-cmd:dd of=/dev/null bs=65536 status=none",
        "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0",
    ]
}

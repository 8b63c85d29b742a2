// What the portable kernel core needs from the machine under it.
//
// The core (tasks, IPC, syscalls, loading) is plain Swift that runs unchanged in
// host tests; everything that touches hardware goes through this protocol. The
// riscv64 kernel implements it with CSRs, the PLIC and the UART; the tests
// implement it with a fake that records what was asked of it.

public protocol Platform {
    associatedtype Memory: PhysicalMemory
    var memory: Memory { get }

    /// The clock, in `time` CSR ticks.
    func now() -> UInt64
    /// Unmask or mask an external interrupt at the interrupt controller.
    mutating func setInterrupt(_ irq: UInt32, enabled: Bool)
    /// Forget any cached translations of the address space with this ASID.
    mutating func flushAddressSpace(asid: UInt16)
    /// Forget the cached translation of one page of one address space.
    mutating func flushPage(_ address: UInt64, asid: UInt16)
    /// Instructions in memory were rewritten (fault injection): make fetches see them.
    mutating func synchronizeInstructions()
    /// Ask for the machine to power off with this exit code once the current trap ends.
    mutating func requestPowerOff(code: Int)
    /// Where virtio-mmio devices may sit. The kernel reads a register to find out
    /// whether a page is a virtio device only inside this range: elsewhere a read can
    /// have effects (on the UART, offset 0 is the receive register: a probe would take
    /// a typed byte).
    var virtioRange: Range<UInt64> { get }
    /// A 32-bit device register, read and written at its physical address (the
    /// kernel's identity map covers MMIO); each access is one volatile access.
    func readDeviceRegister(_ address: UInt64) -> UInt32
    mutating func writeDeviceRegister(_ address: UInt64, _ value: UInt32)

    /// The kernel's own console output, for reports.
    func write(_ text: StaticString)
    func write(bytes: UnsafeRawBufferPointer)
    func write(decimal: Int)
    func write(hex: UInt64)
}

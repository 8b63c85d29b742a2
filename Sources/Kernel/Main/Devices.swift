// The few devices the kernel itself drives. Everything else belongs to servers.
//
//   UART 16550 @ 0x1000_0000   kernel output only (polled): banner, reports, panics.
//                              The console server owns input and normal output.
//   PLIC       @ 0x0C00_0000   routes device interrupts to S-mode of hart 0
//   sifive_test@ 0x0010_0000   powers the machine off with an exit status
//   SBI (OpenSBI, M-mode)      sets the timer

import KernelArch

struct KernelConsole {
    private static let base: UInt64 = 0x1000_0000
    private static let lineStatus: UInt64 = base + 5
    private static let transmitEmpty: UInt8 = 1 << 5

    func write(byte: UInt8) {
        if byte == UInt8(ascii: "\n") { put(UInt8(ascii: "\r")) }
        put(byte)
    }

    private func put(_ byte: UInt8) {
        while mmio_read8(Self.lineStatus) & Self.transmitEmpty == 0 {}
        mmio_write8(Self.base, byte)
    }

    func write(_ text: StaticString) {
        text.withUTF8Buffer { for byte in $0 { write(byte: byte) } }
    }

    func write(bytes: UnsafeRawBufferPointer) {
        for byte in bytes { write(byte: byte) }
    }

    func write(decimal: Int) {
        if decimal < 0 { write(byte: UInt8(ascii: "-")) }
        var magnitude = decimal.magnitude
        var digits = InlineArray<20, UInt8>(repeating: 0)
        var count = 0
        repeat {
            digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            count += 1
        } while magnitude != 0
        while count > 0 {
            count -= 1
            write(byte: digits[count])
        }
    }

    func write(hex: UInt64) {
        write("0x")
        var shift = 60
        while shift > 0 && (hex >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            let nibble = UInt8((hex >> UInt64(shift)) & 0xF)
            write(byte: nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
            shift -= 4
        }
    }
}

enum PLIC {
    private static let base: UInt64 = 0x0C00_0000
    /// Context 1 is hart 0's supervisor mode.
    private static let enableBits: UInt64 = base + 0x2080
    private static let threshold: UInt64 = base + 0x20_1000
    private static let claimComplete: UInt64 = base + 0x20_1004
    private static let sourceCount: UInt32 = 96

    static func initialize() {
        for irq in 1..<sourceCount { mmio_write32(base + UInt64(irq) * 4, 1) }
        mmio_write32(enableBits, 0)
        mmio_write32(enableBits + 4, 0)
        mmio_write32(enableBits + 8, 0)
        mmio_write32(threshold, 0)
    }

    static func setEnabled(_ irq: UInt32, _ enabled: Bool) {
        guard irq > 0 && irq < sourceCount else { return }
        let word = enableBits + UInt64(irq / 32) * 4
        let bit = UInt32(1) << (irq % 32)
        let bits = mmio_read32(word)
        mmio_write32(word, enabled ? bits | bit : bits & ~bit)
        // QEMU's PLIC looks at its sources again on a claim, a completion, a line that
        // changes, a priority or threshold write, but not on an enable write: a device
        // that raised its line while its source was masked (a frame arriving while the
        // network server handled the last one) stayed unheard until some other device
        // interrupted, seconds later or never. Rewriting the threshold makes it look.
        // On a hardware PLIC, which evaluates continuously, the write changes nothing.
        mmio_write32(threshold, 0)
    }

    static func claim() -> UInt32? {
        let irq = mmio_read32(claimComplete)
        return irq == 0 ? nil : irq
    }

    static func complete(_ irq: UInt32) { mmio_write32(claimComplete, irq) }
}

enum SBI {
    private static let timeExtension: UInt64 = 0x5449_4D45

    static func setTimer(_ deadline: UInt64) {
        _ = sbi_call(timeExtension, 0, deadline, 0)
    }
}

enum PowerControl {
    private static let sifiveTest: UInt64 = 0x10_0000

    static func powerOff(code: Int) -> Never {
        let value: UInt32 = code == 0 ? 0x5555 : UInt32(truncatingIfNeeded: code) << 16 | 0x3333
        mmio_write32(sifiveTest, value)
        while true { wait_for_interrupt() }
    }
}

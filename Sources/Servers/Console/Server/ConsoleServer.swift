// The console server: owns the UART, serves `write` and `readLine`.
//
// The UART's registers are mapped into this process only (device window 0), and
// its receive interrupt arrives as notification bit 0. Input is edited here —
// echo, backspace, Enter — so clients get whole lines. A client asking for a line
// before one is typed is simply not answered yet: its `send` stays blocked in the
// kernel until we reply, which is how a server holds a request without threads.
// Typed lines go to the running shell only: every program may print, but none
// other may take the user's input or fill the queue of waiting readers.
//
//   UART 16550 registers (byte offsets from the window):
//     0 RBR/THR   1 IER (bit 0: receive interrupt)   2 FCR   5 LSR (bit 0 data
//     ready, bit 5 transmitter empty)

import ConsoleAPI
import CurioUser
import UserArch

struct UART {
    let base = UnsafeMutablePointer<UInt8>(bitPattern: 0x7000_0000)!

    func enableReceiveInterrupt() {
        curio_mmio_write8(base + 2, 0x07)
        curio_mmio_write8(base + 1, 0x01)
    }

    func put(_ byte: UInt8) {
        while curio_mmio_read8(base + 5) & 0x20 == 0 {}
        curio_mmio_write8(base, byte)
    }

    func get() -> UInt8? {
        curio_mmio_read8(base + 5) & 0x01 != 0 ? curio_mmio_read8(base) : nil
    }
}

@main
struct ConsoleServer {
    static func main() {
        let uart = UART()
        uart.enableReceiveInterrupt()
        var server = LineEditor(uart: uart)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)
        while true {
            guard let message = try? IPC.receive(into: buffer, notificationMask: KernelNotification.firstInterruptBit)
            else { continue }
            if message.isNotification {
                while let byte = uart.get() { server.input(byte) }
                try? System.acknowledgeInterrupt(0)
                continue
            }
            switch ConsoleOperation(rawValue: UInt16(truncatingIfNeeded: message.operation)) {
            case .write:
                for byte in UnsafeRawBufferPointer(rebasing: buffer[0..<message.length]) {
                    if byte == 10 { uart.put(13) }
                    uart.put(byte)
                }
                try? IPC.reply(to: message.sender)
            case .readLine:
                guard let shell = try? System.lookup("shell"), shell == message.sender else {
                    try? IPC.reply(to: message.sender, code: UInt(ConsoleReadRefusal.notTheShell.rawValue))
                    continue
                }
                server.waitForLine(message.sender)
            case nil:
                try? IPC.reply(to: message.sender, code: UInt.max)
            }
        }
    }
}

/// Cooked-mode line editing and the queue of clients waiting for a line.
struct LineEditor {
    let uart: UART
    var line = InlineArray<256, UInt8>(repeating: 0)
    var length = 0
    var readers = InlineArray<8, TaskID>(repeating: TaskID(rawValue: 0))
    var readerCount = 0
    var completeLines = 0

    mutating func input(_ byte: UInt8) {
        switch byte {
        case 13, 10:
            uart.put(13)
            uart.put(10)
            deliverLine()
        case 8, 127:
            if length > 0 {
                length -= 1
                uart.put(8)
                uart.put(32)
                uart.put(8)
            }
        default:
            guard length < line.count, byte >= 32 else { return }
            line[length] = byte
            length += 1
            uart.put(byte)
        }
    }

    mutating func waitForLine(_ client: TaskID) {
        guard readerCount < readers.count else {
            try? IPC.reply(to: client, code: UInt(ConsoleReadRefusal.busy.rawValue))
            return
        }
        readers[readerCount] = client
        readerCount += 1
    }

    private mutating func deliverLine() {
        guard readerCount > 0 else {
            length = 0
            return
        }
        let client = readers[0]
        for index in 1..<max(readerCount, 1) { readers[index - 1] = readers[index] }
        readerCount -= 1
        line.span.withUnsafeBytes { bytes in
            try? IPC.reply(to: client, payload: UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        }
        length = 0
    }
}

// The console server: owns the UART, writes what programs print, and keeps what is
// typed until the shell reads it.
//
// The UART's registers are mapped into this process only (device window 0), and
// its receive interrupt arrives as notification bit 0: the kernel masks the
// interrupt when it posts the bit, and `acknowledgeInterrupt` unmasks it.
//
// Input. Every byte typed goes into the `TypeAhead` queue (ConsoleCore) and reaches
// the shell in order, whenever the shell next reads — the console edits nothing, the
// shell's line editor does. (Bytes were lost before: the console edited lines itself
// and threw away a line finished while no reader waited — every line typed while a
// command ran; and it reset the UART's receive FIFO as it started, which could drop
// what was typed during boot. Once this server runs, the UART and the interrupt path
// lose nothing. One byte typed before the machine starts is still lost, to the
// firmware: OpenSBI's UART set-up enables the FIFO, which QEMU's 16550 takes as a
// FIFO reset, and reads the receive register; QEMU holds that first byte in the
// UART until then, and the rest on the host. Wait for the prompt before typing.)
// When the queue is full the server leaves bytes in the UART and the interrupt masked
// until a read makes room: the UART's FIFO fills and QEMU stops reading the host
// side, so nothing is lost — the policy and its consequences are in TypeAhead.swift.
//
// Holding requests. A client whose request cannot be answered yet is simply not
// answered: its `send` stays blocked in the kernel until we reply, which is how a
// server holds a request without threads. Only the shell's `read` and
// `awaitInterrupt` are held, and the shell has one thread, so one slot holds either;
// a newer request replaces it (the older can only be a dead incarnation's). A
// reply that fails (the shell died) removes nothing from the queue.
//
// Ctrl-C. The shell cannot read while it waits for a program it runs, so it waits
// by asking `awaitInterrupt` again and again — held until Ctrl-C is typed or a few
// milliseconds pass (this server's own timer, `setTimer`) — and checks between
// asks whether the program has ended; on Ctrl-C it kills the program (the shell has
// `manage`; the console does not, and needs no power over processes). Ctrl-C is an
// ordinary byte in the queue: a watch takes the oldest one with everything typed
// before it, and at the prompt the shell's editor reads it as "abandon the line".
// (No notification can wake the shell in `wait` today; a `wait` that also ends on a
// notification would replace the polling, see Shell.swift.)
//
// Redirection. The shell may divert one process's writes to itself (`divert`): such a
// write is not put on the UART but held, its writer blocked, until the shell's
// `collect` has taken every byte of it; then the writer is answered (ConsoleCore's
// Redirection.swift has the design). A `collect` is held like a `read`, in the same
// slot, and also ends on Ctrl-C if the shell asks, so that one wait covers both while
// a redirected program runs.
//
// Echo. While a command runs the console shows what is typed (`TypeAheadEcho`);
// while the shell edits a line it turns that off (`setEcho`) and its editor draws.
// Only the shell may read, watch or set the echo: every program may print, but none
// other may take the user's input.
//
//   UART 16550 registers (byte offsets from the window):
//     0 RBR/THR   1 IER (bit 0: receive interrupt)   2 FCR   5 LSR (bit 0 data
//     ready, bit 5 transmitter empty)

import ConsoleAPI
import ConsoleCore
import CurioUser
import UserArch

struct UART {
    let base = UnsafeMutablePointer<UInt8>(bitPattern: 0x7000_0000)!

    /// FIFOs on (as the firmware left them) without the reset bits: resetting the
    /// receive FIFO here could drop what was typed while Curio booted.
    func enableReceiveInterrupt() {
        curio_mmio_write8(base + 2, 0x01)
        curio_mmio_write8(base + 1, 0x01)
    }

    func put(_ byte: UInt8) {
        while curio_mmio_read8(base + 5) & 0x20 == 0 {}
        curio_mmio_write8(base, byte)
    }

    var hasInput: Bool { curio_mmio_read8(base + 5) & 0x01 != 0 }

    func get() -> UInt8? { hasInput ? curio_mmio_read8(base) : nil }
}

@main
struct ConsoleServer {
    static let notifications = KernelNotification.firstInterruptBit | KernelNotification.timerBit

    static func main() {
        let uart = UART()
        uart.enableReceiveInterrupt()
        var input = TypedInput(uart: uart)
        var terminal = TerminalOutput(uart: uart)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)
        while true {
            guard let message = try? IPC.receive(into: buffer, notificationMask: notifications) else { continue }
            if message.isNotification {
                if message.operation & KernelNotification.firstInterruptBit != 0 { input.takeFromUART() }
                if message.operation & KernelNotification.timerBit != 0 { input.timerExpired() }
                continue
            }
            switch ConsoleOperation(rawValue: UInt16(truncatingIfNeeded: message.operation)) {
            case .write:
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<message.length])
                if input.diverted.diverts(message.sender.rawValue) {
                    guard input.diverted.hold(bytes, from: message.sender.rawValue) else {
                        try? IPC.reply(to: message.sender, code: ConsoleRefusal.badArgument.rawValue)
                        continue
                    }
                    input.answerHeld()
                    continue
                }
                terminal.write(bytes)
                try? IPC.reply(to: message.sender)
            case .read:
                guard isShell(message.sender) else { continue }
                guard message.words.0 > 0 else {
                    try? IPC.reply(to: message.sender, code: ConsoleRefusal.badArgument.rawValue)
                    continue
                }
                let capacity = Int(min(message.words.0, UInt(SyscallLimits.maxMessageBytes)))
                input.hold(.read(message.sender, capacity: capacity))
            case .awaitInterrupt:
                guard isShell(message.sender) else { continue }
                guard message.words.0 > 0, message.words.0 <= ConsoleInterruptWatch.longest else {
                    try? IPC.reply(to: message.sender, code: ConsoleRefusal.badArgument.rawValue)
                    continue
                }
                let deadline = System.clock() + UInt64(message.words.0) * (System.ticksPerSecond / 1000)
                input.hold(.interruptWatch(message.sender, deadline: deadline))
            case .setEcho:
                guard isShell(message.sender) else { continue }
                input.echoes = message.words.0 != 0
                try? IPC.reply(to: message.sender)
            case .divert:
                guard isShell(message.sender) else { continue }
                guard message.words.0 <= UInt(UInt32.max), message.words.1 == 0 else {
                    try? IPC.reply(to: message.sender, code: ConsoleRefusal.badArgument.rawValue)
                    continue
                }
                input.diverted.divert(UInt32(message.words.0)) { leftover, writer in
                    terminal.write(leftover)
                    try? IPC.reply(to: TaskID(rawValue: writer))
                }
                try? IPC.reply(to: message.sender)
            case .collect:
                guard isShell(message.sender) else { continue }
                guard message.words.0 > 0, message.words.0 <= ConsoleInterruptWatch.longest,
                      message.words.1 <= 1, message.length == 0 else {
                    try? IPC.reply(to: message.sender, code: ConsoleRefusal.badArgument.rawValue)
                    continue
                }
                let deadline = System.clock() + UInt64(message.words.0) * (System.ticksPerSecond / 1000)
                input.hold(.collect(message.sender, deadline: deadline, watchesInterrupt: message.words.1 == 1))
            case nil:
                try? IPC.reply(to: message.sender, code: ConsoleRefusal.unknownOperation.rawValue)
            }
        }
    }

    /// Whether `sender` is the running shell; refuses it otherwise.
    static func isShell(_ sender: TaskID) -> Bool {
        guard let shell = try? System.lookup("shell"), shell == sender else {
            try? IPC.reply(to: sender, code: ConsoleRefusal.notTheShell.rawValue)
            return false
        }
        return true
    }
}

/// What goes to the UART. A line feed moves to the start of the next line only with a
/// carriage return before it: programs print "\n"; the shell's editor writes "\r\n" itself.
struct TerminalOutput {
    let uart: UART
    var previousWritten: UInt8 = 0

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes {
            if byte == ASCII.lineFeed && previousWritten != ASCII.carriageReturn { uart.put(ASCII.carriageReturn) }
            uart.put(byte)
            previousWritten = byte
        }
    }
}

/// A request of the shell's that waits for input.
enum HeldRequest {
    /// Wants typed bytes (at most `capacity`).
    case read(TaskID, capacity: Int)
    /// Wants to know of a Ctrl-C until the clock reaches `deadline`.
    case interruptWatch(TaskID, deadline: UInt64)
    /// Wants the diverted process's output (and, if `watchesInterrupt`, a Ctrl-C) until
    /// the clock reaches `deadline`; a reply carries at most one message's bytes.
    case collect(TaskID, deadline: UInt64, watchesInterrupt: Bool)
}

/// What the shell waits for: the typed-input queue, its echo, the diverted output,
/// and the held request that waits for them.
struct TypedInput {
    let uart: UART
    var queue = TypeAhead()
    var echo = TypeAheadEcho()
    var diverted = DivertedOutput(capacity: SyscallLimits.maxMessageBytes)
    /// Whether the console shows typed bytes as they arrive (see the essay).
    var echoes = true
    var held: HeldRequest?
    /// Scratch space for a reply's bytes, so that they leave the queue only once delivered.
    let replyBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)

    /// Moves bytes from the UART into the queue until the UART is empty or the queue
    /// full; unmasks the interrupt unless a full queue left bytes in the UART (the next
    /// read calls this again). It must not ask the UART a second time whether it is
    /// empty: a byte that arrived after the last one taken would then leave the
    /// interrupt masked with nobody to take it — a pasted line stuck in the UART until
    /// the next key (seen under host load). Unmasked, that byte's interrupt comes.
    mutating func takeFromUART() {
        let uart = self.uart
        while !queue.isFull, let byte = uart.get() {
            _ = queue.append(byte)
            if echoes { echo.render(byte) { uart.put($0) } }
        }
        if !(queue.isFull && uart.hasInput) { try? System.acknowledgeInterrupt(0) }
        answerHeld()
    }

    mutating func hold(_ request: HeldRequest) {
        held = request
        switch request {
        case .interruptWatch(_, let deadline), .collect(_, let deadline, _):
            try? System.setTimer(deadline: deadline, bits: KernelNotification.timerBit)
        case .read:
            break
        }
        answerHeld()
    }

    mutating func timerExpired() {
        switch held {
        case .interruptWatch(let shell, let deadline)?, .collect(let shell, let deadline, _)?:
            guard System.clock() >= deadline else { return }
            held = nil
            // timePassed is 0 in both replies.
            try? IPC.reply(to: shell, words: (ConsoleInterruptWatch.timePassed.rawValue, 0))
        case .read?, nil:
            return
        }
    }

    /// Answers the held request if the queue or the diverted output now can.
    mutating func answerHeld() {
        switch held {
        case .read(let shell, let capacity):
            let length = queue.readLength(limit: capacity)
            guard length > 0 else { return }
            held = nil
            queue.copyOldest(length, to: replyBytes)
            let payload = UnsafeRawBufferPointer(rebasing: replyBytes[0..<length])
            guard (try? IPC.reply(to: shell, payload: payload)) != nil else { return }
            removeOldest(length)
        case .interruptWatch(let shell, _):
            answerInterrupt(shell)
        case .collect(let shell, _, let watchesInterrupt):
            guard diverted.pendingCount > 0 else {
                if watchesInterrupt { answerInterrupt(shell) }
                return
            }
            held = nil
            try? System.setTimer(deadline: 0, bits: KernelNotification.timerBit)
            let length = diverted.peek(into: replyBytes)
            let payload = UnsafeRawBufferPointer(rebasing: replyBytes[0..<length])
            guard (try? IPC.reply(to: shell, words: (ConsoleCollection.output.rawValue, 0), payload: payload)) != nil
            else { return }
            let writer = diverted.take(length)
            if writer != 0 { try? IPC.reply(to: TaskID(rawValue: writer)) }
        case nil:
            return
        }
    }

    /// Answers the held watch with the oldest Ctrl-C, if one is queued. (`interrupted`
    /// is 1 in the replies to `awaitInterrupt` and `collect` alike.)
    private mutating func answerInterrupt(_ shell: TaskID) {
        guard let length = queue.lengthThroughInterrupt() else { return }
        held = nil
        try? System.setTimer(deadline: 0, bits: KernelNotification.timerBit)
        guard (try? IPC.reply(to: shell, words: (ConsoleInterruptWatch.interrupted.rawValue, 0))) != nil
        else { return }
        removeOldest(length)
    }

    /// Removes delivered bytes; if the queue was full, what waits in the UART comes in.
    private mutating func removeOldest(_ length: Int) {
        let wasFull = queue.isFull
        queue.removeOldest(length)
        if wasFull { takeFromUART() }
    }
}

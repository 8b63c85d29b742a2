// A server with SSRs that breaks the rules on request, to show the kernel enforcing
// need-to-know on servers:
//
//   op 1  reply with the first word of the caller's SSR (allowed: it is serving it)
//   op 2  reply, then read the window — no request is being served, so the window
//         is unmapped and the read faults; the kernel restarts the server
//   op 3  crash on this request, every time it is delivered (a poison request):
//         the kernel fails it alone after the second crash
//   op 4  serve slowly: mark the SSR, wait 50 ms for the timer service (blocked in
//         its own call, the caller's SSR still mapped), mark it again, reply. A
//         caller killed meanwhile must not cost the server anything
//
// It walks its SSRs at startup like any restarted server, judging each valid.

import CurioUser
import TimerAPI
import UserArch

@main
struct RogueServer {
    static func main() {
        TrivialRecovery.run()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        while true {
            guard let message = try? IPC.receive(into: buffer) else { continue }
            switch message.operation {
            case 1:
                let firstWord = curio_load64(UInt64(SSRWindow.base))
                try? IPC.reply(to: message.sender, words: (UInt(firstWord), UInt(message.requestID)))
            case 2:
                try? IPC.reply(to: message.sender)
                _ = curio_load64(UInt64(SSRWindow.base))
            case 3:
                curio_illegal_instruction()
            case 4:
                let marks = curio_load64(UInt64(SSRWindow.base + 8))
                curio_store64(UInt64(SSRWindow.base + 8), marks &+ 1)
                _ = try? Timer.start(period: 500_000, repeating: false)
                _ = try? Timer.wait()
                curio_store64(UInt64(SSRWindow.base + 8), marks &+ 2)
                try? IPC.reply(to: message.sender, words: (UInt(marks &+ 2), UInt(message.requestID)))
            default:
                try? IPC.reply(to: message.sender, code: 1)
            }
        }
    }
}

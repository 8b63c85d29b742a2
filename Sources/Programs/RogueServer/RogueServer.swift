// A server with SSRs that breaks the rules on request, to show the kernel enforcing
// need-to-know on servers:
//
//   op 1  reply with the first word of the caller's SSR (allowed: it is serving it)
//   op 2  reply, then read the window — no request is being served, so the window
//         is unmapped and the read faults; the kernel restarts the server
//
// It walks its SSRs at startup like any restarted server, judging each valid.

import CurioUser
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
            default:
                try? IPC.reply(to: message.sender, code: 1)
            }
        }
    }
}

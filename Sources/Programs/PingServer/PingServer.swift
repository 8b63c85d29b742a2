// The other end of the IPC benchmark: answers every message at once, echoing its
// two words. As small as a server can be, so the benchmark measures the kernel.

import CurioUser

@main
struct PingServer {
    static func main() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)
        while true {
            guard let message = try? IPC.receive(into: buffer) else { continue }
            try? IPC.reply(to: message.sender, words: message.words,
                           payload: UnsafeRawBufferPointer(rebasing: buffer[0..<message.length]))
        }
    }
}

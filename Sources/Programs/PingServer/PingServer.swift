// The other end of the IPC benchmark: answers every message at once, echoing its
// two words. As small as a server can be, so the benchmark measures the kernel.

import CurioUser

@main
struct PingServer {
    static func main() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SyscallLimits.maxMessageBytes, alignment: 8)
        // As `ssrping` (the same program with an SSR per client, for the SSR cost and
        // restart benchmarks) it starts in recovery and walks its SSRs.
        TrivialRecovery.run()
        guard var message = try? IPC.receive(into: buffer) else { System.exit(1) }
        while true {
            do throws(SyscallError) {
                message = try IPC.replyAndReceive(to: message.sender, words: message.words,
                                                  replyLength: message.length, buffer: buffer)
            } catch {
                guard let next = try? IPC.receive(into: buffer) else { continue }
                message = next
            }
        }
    }
}

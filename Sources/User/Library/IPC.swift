// Message passing from user space: `call` for clients, `receive`/`reply` for servers.
//
// A client calls an endpoint with an operation, two words and an optional payload,
// and gets back a response code, two words and an optional reply payload. A server
// loops over `receive`, which also delivers notifications (interrupts, timers) as
// messages from `TaskID.kernel`.

import UserArch

public struct Reply: Sendable {
    /// The server's own response code (0 conventionally means success).
    public var code: UInt
    public var words: (UInt, UInt)
    /// Bytes the server wrote into the reply buffer.
    public var length: Int
}

public struct Received: Sendable {
    public var sender: TaskID
    /// The operation, or the notification bits when `isNotification`.
    public var operation: UInt
    public var words: (UInt, UInt)
    public var length: Int
    /// The kernel's id for this request when the sender is bound to the receiver by a
    /// server state region (ids count up from 1 per client and survive re-delivery
    /// after a server restart); 0 for notifications, unbind messages and servers
    /// without SSRs.
    public var requestID: UInt64 = 0
    /// The kernel's seal over this request (see `RequestSeal`); 0 when no request id.
    public var seal: UInt64 = 0

    /// Whether the registers still say what the kernel delivered.
    public var isIntact: Bool {
        seal == RequestSeal.value(sender: sender.rawValue, operation: operation, word0: words.0, word1: words.1,
                                  length: UInt(length), requestID: requestID)
    }

    public var isNotification: Bool { sender == .kernel }

    /// A message as a kernel other than the real one delivers it (SSRKernel's fakes).
    public init(sender: TaskID, operation: UInt, words: (UInt, UInt), length: Int, requestID: UInt64, seal: UInt64) {
        self.sender = sender
        self.operation = operation
        self.words = words
        self.length = length
        self.requestID = requestID
        self.seal = seal
    }

    init(_ result: curio_syscall_result) {
        sender = TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
        operation = UInt(result.r2)
        words = (UInt(result.r3), UInt(result.r4))
        length = Int(result.r5)
        requestID = sender == .kernel ? 0 : result.r6
        seal = requestID == 0 ? 0 : result.r7
    }
}

public enum IPC {
    public static func call(_ endpoint: TaskID, operation: UInt16, words: (UInt, UInt) = (0, 0),
                            payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                            reply: UnsafeMutableRawBufferPointer = UnsafeMutableRawBufferPointer(start: nil, count: 0))
        throws(SyscallError) -> Reply {
        let target = EndpointCall(endpoint: endpoint, operation: operation)
        let result = try System.call(.send, target.rawValue, words.0, words.1,
                                     UInt(bitPattern: payload.baseAddress), UInt(payload.count),
                                     UInt(bitPattern: reply.baseAddress), UInt(reply.count))
        return Reply(code: UInt(result.r1), words: (UInt(result.r2), UInt(result.r3)), length: Int(result.r4))
    }

    public static func receive(into buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt = 0)
        throws(SyscallError) -> Received {
        let result = try System.call(.receive, UInt(bitPattern: buffer.baseAddress), UInt(buffer.count),
                                     notificationMask)
        return Received(result)
    }

    /// Replies with `buffer[0..<replyLength]`, then waits for the next message into
    /// `buffer` — a server loop's step in one system call.
    /// `seal`: the reply's seal for the kernel to check (0: none; see `Syscall.reply`).
    public static func replyAndReceive(to client: TaskID, code: UInt32 = 0, words: (UInt, UInt) = (0, 0),
                                       replyLength: Int = 0, buffer: UnsafeMutableRawBufferPointer,
                                       notificationMask: UInt32 = 0, seal: UInt64 = 0) throws(SyscallError) -> Received {
        let result = try System.callSealed(.replyAndReceive, seal: seal, UInt(client.rawValue),
                                           UInt(code) | UInt(notificationMask) << 32, words.0, words.1,
                                           UInt(bitPattern: buffer.baseAddress), UInt(replyLength), UInt(buffer.count))
        return Received(result)
    }

    public static func reply(to client: TaskID, code: UInt = 0, words: (UInt, UInt) = (0, 0),
                             payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                             seal: UInt64 = 0) throws(SyscallError) {
        _ = try System.callSealed(.reply, seal: seal, UInt(client.rawValue), code, words.0, words.1,
                                  UInt(bitPattern: payload.baseAddress), UInt(payload.count))
    }

    /// The seal of a reply to a request (see `Syscall.reply`).
    public static func replySeal(to client: TaskID, code: UInt, words: (UInt, UInt), length: Int,
                                 requestID: UInt64) -> UInt64 {
        RequestSeal.value(sender: client.rawValue, operation: code, word0: words.0, word1: words.1,
                          length: UInt(bitPattern: length), requestID: requestID)
    }
}

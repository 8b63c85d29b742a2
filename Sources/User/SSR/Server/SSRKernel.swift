// SSRKernel: what the SSR runtime asks of the kernel, behind one set of names.
//
// The runtime (SSRServer.swift) is the one piece of every restartable server that
// decides what a crash can lose: when to load a client's state, when to commit it,
// which reply to cache, what to do with a request that comes again. It is tested on
// the host by putting a fake kernel in the place of the real one (Tests/
// SSRServerTests): the fake delivers requests, maps each client's region at the
// window, records replies, and plays a crash by dropping a server between two steps
// and starting another. `SystemSSRKernel` is the real one: each call is the system
// call of the same name, and the window is `SSRWindow.base`, where the kernel maps
// the SSR of the client whose request it delivers.
//
//   runtime step                       system call
//   ---------------------------------  ---------------------------------------------
//   wait for a message                 receive
//   answer, then wait                  replyAndReceive (one trap)
//   answer outside the loop            reply
//   map a held client's SSR            ssrOpen
//   walk the SSRs after a restart      ssrRecoverNext (with the verdict on the last)
//   let re-delivery begin              recoveryComplete
//   give up on a damaged self          reportFailure (the kernel restarts us)

import CurioUser

public protocol SSRKernel {
    /// Where the SSR of the client whose request was delivered is mapped.
    static var window: UnsafeMutableRawPointer { get }
    static func receive(into buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32)
        throws(SyscallError) -> Received
    /// Replies with `buffer[0..<replyLength]`, then waits for the next message in `buffer`.
    static func replyAndReceive(to client: TaskID, code: UInt32, words: (UInt, UInt), replyLength: Int,
                                buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32, seal: UInt64)
        throws(SyscallError) -> Received
    static func reply(to client: TaskID, code: UInt32, words: (UInt, UInt), payload: UnsafeRawBufferPointer,
                      seal: UInt64) throws(SyscallError)
    /// Maps the SSR of `client`, whose request the server holds.
    static func open(_ client: TaskID) throws(SyscallError) -> System.SSRMapping
    static func recoverNext(cursor: Int, verdictOnCurrent: SSRVerdict?) throws(SyscallError) -> System.RecoveredSSR?
    static func recoveryComplete() throws(SyscallError)
    static func reportFailure() -> Never
}

/// The kernel itself: every step a system call.
public enum SystemSSRKernel: SSRKernel {
    public static var window: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: SSRWindow.base)! }

    @inline(__always)
    public static func receive(into buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32)
        throws(SyscallError) -> Received {
        try IPC.receive(into: buffer, notificationMask: UInt(notificationMask))
    }

    @inline(__always)
    public static func replyAndReceive(to client: TaskID, code: UInt32, words: (UInt, UInt), replyLength: Int,
                                       buffer: UnsafeMutableRawBufferPointer, notificationMask: UInt32, seal: UInt64)
        throws(SyscallError) -> Received {
        try IPC.replyAndReceive(to: client, code: code, words: words, replyLength: replyLength, buffer: buffer,
                                notificationMask: notificationMask, seal: seal)
    }

    @inline(__always)
    public static func reply(to client: TaskID, code: UInt32, words: (UInt, UInt), payload: UnsafeRawBufferPointer,
                             seal: UInt64) throws(SyscallError) {
        try IPC.reply(to: client, code: UInt(code), words: words, payload: payload, seal: seal)
    }

    public static func open(_ client: TaskID) throws(SyscallError) -> System.SSRMapping { try System.ssrOpen(client) }

    public static func recoverNext(cursor: Int, verdictOnCurrent: SSRVerdict?) throws(SyscallError)
        -> System.RecoveredSSR? {
        try System.ssrRecoverNext(cursor: cursor, verdictOnCurrent: verdictOnCurrent)
    }

    public static func recoveryComplete() throws(SyscallError) { try System.recoveryComplete() }

    public static func reportFailure() -> Never { System.reportFailure() }
}

// A client that binds to a server and then just waits: the restart benchmark starts
// N of these so the server has N SSRs to walk when it recovers.
//
// usage: binder SERVER   (one request to SERVER, then block forever)

import CurioUser

@main
struct Binder {
    static func main() {
        guard (try? IPC.call(System.lookupSSRPing(), operation: 1)) != nil else { System.exit(1) }
        let nothing = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        while true { _ = try? IPC.receive(into: nothing) }
    }
}

extension System {
    static func lookupSSRPing() throws(SyscallError) -> TaskID { try lookup("ssrping") }
}

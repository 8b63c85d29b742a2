// The recovery walk for servers that keep nothing in their SSRs worth checking
// (benchmark and test servers): visit every SSR, judge it valid, finish. Real
// servers use SSRServer, which checks and repairs each region.

import UserArch

public enum TrivialRecovery {
    public static func run() {
        var cursor: UInt64 = 0
        while true {
            let next = curio_syscall(UInt64(Syscall.ssrRecoverNext.rawValue), cursor, 0, 0, 0, 0, 0, 0)
            guard next.status == 0, UInt32(truncatingIfNeeded: next.r1) != TaskID.kernel.rawValue else { break }
            _ = curio_syscall(UInt64(Syscall.ssrVerdict.rawValue), next.r1, UInt64(SSRVerdict.valid.rawValue),
                              0, 0, 0, 0, 0)
            cursor = next.r3
        }
        _ = curio_syscall(UInt64(Syscall.recoveryComplete.rawValue), 0, 0, 0, 0, 0, 0, 0)
    }
}

// The recovery walk for servers that keep nothing in their SSRs worth checking
// (benchmark and test servers): visit every SSR, judge it valid, finish. Real
// servers use SSRServer, which checks and repairs each region.

import UserArch

public enum TrivialRecovery {
    public static func run() {
        var cursor: UInt64 = 0
        var verdictOnCurrent: UInt64 = 0
        while true {
            let next = curio_syscall(UInt64(Syscall.ssrRecoverNext.rawValue), cursor, verdictOnCurrent,
                                     0, 0, 0, 0, 0)
            guard next.status == 0, UInt32(truncatingIfNeeded: next.r1) != TaskID.kernel.rawValue else { break }
            // Judged valid in the same trap that fetches the next one.
            verdictOnCurrent = 1 + UInt64(SSRVerdict.valid.rawValue)
            cursor = next.r3
        }
        _ = curio_syscall(UInt64(Syscall.recoveryComplete.rawValue), 0, 0, 0, 0, 0, 0, 0)
    }
}

// The clock every process reads (`Syscall.clock`) and every deadline is written in:
// the RISC-V `time` CSR, which QEMU's virt machine drives at 10 MHz (its device
// tree's timebase-frequency). The kernel's time slice, watchdog and restart windows,
// the timer service's deadlines and the programs' sleeps are all counted in its ticks;
// this is the one place that says how long a tick is.
//
// Under `-icount shift=0` the clock follows the retired instructions (one tick per
// 100 of them), not the host's time: a deadline is then a point in the program's
// execution, which is what makes a run repeatable.

public enum Clock {
    /// Ticks of the `time` CSR per second.
    public static let ticksPerSecond: UInt64 = 10_000_000
    public static let ticksPerMillisecond: UInt64 = ticksPerSecond / 1000
}

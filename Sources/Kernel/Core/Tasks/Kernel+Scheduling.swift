// Moving processes between ready and blocked, and choosing who runs.
//
// Strict fixed priorities: the most urgent ready process always runs. Among equals
// the running process keeps the processor until its time slice ends or it blocks,
// then the next in slot order gets it.

import CurioABI

extension Kernel {
    @inline(__always) mutating func makeRunnable(_ slot: Int) {
        tasks[slot].state = .runnable
        tasks[slot].partner = -1
        ready.insert(slot: slot, priority: tasks[slot].priority)
    }

    @inline(__always) mutating func block(_ slot: Int, in state: TaskState, on partner: Int) {
        ready.remove(slot: slot, priority: tasks[slot].priority)
        tasks[slot].state = state
        tasks[slot].partner = partner
    }

    /// Decides which process resumes when this trap ends.
    public mutating func reschedule() {
        let now = platform.now()
        if let running = current, tasks[running].state == .runnable {
            let priority = tasks[running].priority
            // Still among the most urgent: keep the processor until the slice ends,
            // or for good if no equal is waiting.
            if ready.highestPriority == priority
                && (now < sliceEnds || ready.isOnlyReady(slot: running, priority: priority)) {
                return
            }
        }
        guard let next = ready.next(after: current ?? lastRun) else {
            current = nil
            return
        }
        current = next
        lastRun = next
        sliceEnds = now &+ Self.timeSlice
    }

    /// The running process gives up the rest of its slice.
    mutating func yieldSlice() {
        sliceEnds = 0
    }
}

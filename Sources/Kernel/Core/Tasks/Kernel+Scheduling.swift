// Moving processes between ready and blocked, and choosing who runs.
//
// Strict fixed priorities: the most urgent ready process always runs. Among equals
// the running process keeps the processor until its time slice ends or it blocks,
// then the next in slot order gets it. A process preempted by a more urgent one
// is not sent to the back of its level: it resumes first, with what was left of its
// slice, so a server woken often cannot make one of two equals starve the other.

import CurioABI

extension Kernel {
    @inline(__always) mutating func makeRunnable(_ slot: Int) {
        // Waiting on another server is not hanging: the watchdog counts afresh.
        if tasks[slot].servingSince != 0 { watchServing(slot) }
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
        guard let mostUrgent = ready.highestPriority else {
            current = nil
            return
        }
        if let running = current, tasks[running].state == .runnable {
            let priority = tasks[running].priority
            // Still among the most urgent: keep the processor until the slice ends,
            // or for good if no equal is waiting.
            if mostUrgent == priority && (now < sliceEnds || ready.isOnlyReady(slot: running, priority: priority)) {
                return
            }
            if mostUrgent < priority, now < sliceEnds {
                preemptedAtLevel[Int(priority)] = running
                preemptedSliceLeft[Int(priority)] = sliceEnds - now
            }
        }
        let level = Int(mostUrgent)
        var slice = Self.timeSlice
        let next: Int
        let preempted = preemptedAtLevel[level]
        if preempted >= 0 && ready.contains(slot: preempted, priority: UInt8(level)) {
            next = preempted
            slice = preemptedSliceLeft[level]
        } else {
            next = ready.next(after: lastRunAtLevel[level]) ?? preempted
        }
        preemptedAtLevel[level] = -1
        current = next
        lastRunAtLevel[level] = next
        sliceEnds = now &+ slice
    }

    /// The running process gives up the rest of its slice.
    mutating func yieldSlice() {
        sliceEnds = 0
    }
}

// Moving processes between ready and blocked, and choosing who runs.
//
// Strict fixed priorities: the most urgent ready process always runs. Among equals
// the running process keeps the processor until its time slice ends or it blocks,
// then the next in slot order gets it.

import CurioABI

extension Kernel {
    mutating func makeRunnable(_ slot: Int) {
        tasks[slot].state = .runnable
        tasks[slot].partner = -1
        ready.insert(slot: slot, priority: tasks[slot].priority)
    }

    mutating func block(_ slot: Int, in state: TaskState, on partner: Int) {
        ready.remove(slot: slot, priority: tasks[slot].priority)
        tasks[slot].state = state
        tasks[slot].partner = partner
    }

    /// Decides which process resumes when this trap ends.
    public mutating func reschedule() {
        let now = platform.now()
        if let running = current, tasks[running].state == .runnable,
           let mostUrgent = ready.highestPriority, mostUrgent >= tasks[running].priority {
            let othersOfEqualPriority = ready.next(after: running) != running
            if now < sliceEnds || !othersOfEqualPriority || mostUrgent > tasks[running].priority { return }
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

// Tests of the scheduler: the ready bitmaps on their own, then `Kernel.reschedule`
// deciding among real processes (fixed priorities, time slices among equals, blocked
// processes never chosen, idle when nothing is ready).
import CurioABI
import Testing
@testable import KernelCore

@Suite struct SchedulerTests {
    typealias Program = StandardProgram

    // MARK: ReadyQueues

    @Test func emptyQueuesChooseNothing() {
        var queues = ReadyQueues()
        #expect(queues.isEmpty)
        #expect(queues.highestPriority == nil)
        #expect(queues.next(after: 0) == nil)
        #expect(queues.next(after: 319) == nil)
    }

    @Test func mostUrgentPriorityWins() {
        var queues = ReadyQueues()
        queues.insert(slot: 5, priority: 3)
        queues.insert(slot: 9, priority: 1)
        queues.insert(slot: 2, priority: 7)
        #expect(queues.highestPriority == 1)
        for previous in [0, 5, 9, 10, 63, 64, 319] {
            #expect(queues.next(after: previous) == 9, "from \(previous)")
        }
        queues.remove(slot: 9, priority: 1)
        #expect(queues.highestPriority == 3)
        #expect(queues.next(after: 5) == 5, "the only ready slot of the level comes round again")
        #expect(queues.contains(slot: 9, priority: 1) == false)
        #expect(queues.contains(slot: 2, priority: 7) == true)
        #expect(queues.contains(slot: 2, priority: 6) == false)
    }

    @Test func roundRobinWithinALevelWrapsAround() {
        var queues = ReadyQueues()
        for slot in [2, 7, 63, 200, 319] { queues.insert(slot: slot, priority: 4) }
        #expect(queues.next(after: 2) == 7)
        #expect(queues.next(after: 7) == 63)
        #expect(queues.next(after: 63) == 200)
        #expect(queues.next(after: 200) == 319)
        #expect(queues.next(after: 319) == 2)
        #expect(queues.next(after: 0) == 2)
        #expect(queues.next(after: 8) == 63)
        #expect(queues.next(after: 64) == 200)
        #expect(queues.next(after: 250) == 319)

        var edges = ReadyQueues()
        edges.insert(slot: 0, priority: 0)
        #expect(edges.next(after: 319) == 0)
        #expect(edges.next(after: 0) == 0)
        edges.insert(slot: 319, priority: 0)
        #expect(edges.next(after: 0) == 319)
        #expect(edges.next(after: 318) == 319)
        #expect(edges.next(after: 319) == 0)
        edges.insert(slot: 64, priority: 0)
        #expect(edges.next(after: 63) == 64)
        #expect(edges.next(after: 64) == 319)
        #expect(edges.isOnlyReady(slot: 64, priority: 0) == false)
        edges.remove(slot: 0, priority: 0)
        edges.remove(slot: 319, priority: 0)
        #expect(edges.isOnlyReady(slot: 64, priority: 0) == true)
        #expect(edges.next(after: 64) == 64, "alone at its level")
    }

    @Test func insertAndRemoveAreIdempotent() {
        var queues = ReadyQueues()
        queues.insert(slot: 3, priority: 2)
        queues.insert(slot: 3, priority: 2)
        queues.remove(slot: 3, priority: 2)
        #expect(queues.isEmpty)
        queues.remove(slot: 3, priority: 2)
        #expect(queues.isEmpty)
    }

    // MARK: Kernel.reschedule

    @Test func mostUrgentProcessRuns() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.lazy)  // slot 0, priority 6
        try harness.spawn(Program.client)  // slot 1, priority 4
        try harness.spawn(Program.urgent)  // slot 2, priority 1
        try harness.spawn(Program.client)  // slot 3, priority 4
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 2)
        #expect(harness.kernel.currentFrame == harness.registers(2).base)

        // However long it runs, nothing less urgent gets the processor.
        for tick in 1...5 {
            harness.kernel.platform.clock = UInt64(tick) * KernelHarness.TestKernel.timeSlice
            harness.kernel.reschedule()
            #expect(harness.kernel.current == 2)
        }
    }

    @Test func equalPrioritiesShareOnlyAfterTheTimeSlice() throws {
        let harness = try KernelHarness()
        let slice = KernelHarness.TestKernel.timeSlice
        try harness.spawn(Program.client)  // slot 0
        try harness.spawn(Program.client)  // slot 1
        try harness.spawn(Program.lazy)  // slot 2, never runs while the clients are ready
        harness.kernel.platform.clock = 1_000
        harness.kernel.reschedule()
        let first = try #require(harness.kernel.current)
        #expect(first == 0 || first == 1)
        let second = 1 - first

        harness.kernel.platform.clock = 1_000 + slice - 1
        harness.kernel.reschedule()
        #expect(harness.kernel.current == first, "the slice has not ended")

        harness.kernel.platform.clock = 1_000 + slice
        harness.kernel.reschedule()
        #expect(harness.kernel.current == second, "the slice ended: the other equal runs")

        harness.kernel.platform.clock = 1_000 + slice + 10
        harness.kernel.reschedule()
        #expect(harness.kernel.current == second, "with a fresh slice of its own")

        harness.kernel.platform.clock = 1_000 + 2 * slice
        harness.kernel.reschedule()
        #expect(harness.kernel.current == first)
    }

    @Test func aSoleProcessKeepsRunningPastItsSlice() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)
        try harness.spawn(Program.lazy)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)
        harness.kernel.platform.clock = 10 * KernelHarness.TestKernel.timeSlice
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)
    }

    @Test func yieldHandsTheRestOfTheSliceToAnEqual() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)
        try harness.spawn(Program.client)
        harness.kernel.reschedule()
        let first = try #require(harness.kernel.current)
        harness.syscall(first, .yield)
        #expect(harness.error(first) == nil)
        #expect(harness.kernel.current == 1 - first, "no clock needed: yield ends the slice")
        harness.syscall(1 - first, .yield)
        #expect(harness.kernel.current == first)
    }

    @Test func aProcessThatBecomesReadyPreemptsALessUrgentOne() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // slot 0, priority 3
        try harness.spawn(Program.client)  // slot 1, priority 4
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)
        harness.receive(0, mask: 4)  // the server waits for work or notification bit 2
        #expect(harness.kernel.current == 1)

        // A notification wakes the server while the client is runnable and mid-slice:
        // the server runs at once.
        harness.kernel.platform.clock = 10
        harness.kernel.notify(0, bits: 1)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 1, "bits the server does not accept wake nothing")
        harness.kernel.notify(0, bits: 4)
        #expect(harness.state(0) == .runnable)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)

        // So does a message.
        harness.receive(0)
        #expect(harness.kernel.current == 1)
        try harness.send(from: 1, to: harness.id(0), payload: [1, 2, 3])
        #expect(harness.state(0) == .runnable)
        #expect(harness.kernel.current == 0)
    }

    // Bug: when a more urgent process preempts one of several equals and then blocks,
    // `reschedule` continues round-robin from the preemptor's slot (`current`), not
    // from the preempted process, which loses the rest of its slice to the next equal
    // after the preemptor's slot. A frequently woken server thereby steers the
    // processor to one equal, and can starve the others.
    @Test func aPreemptedProcessGetsTheRestOfItsSliceBack() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)  // slot 0, priority 4
        try harness.spawn(Program.urgent)  // slot 1, priority 1
        try harness.spawn(Program.client)  // slot 2, priority 4
        harness.kernel.reschedule()
        harness.receive(1, mask: 1)  // the urgent process waits for an event
        let first = try #require(harness.kernel.current)
        #expect(first == 0 || first == 2)
        // Both equals get a turn, so the test does not depend on which came first.
        let slice = KernelHarness.TestKernel.timeSlice
        harness.kernel.platform.clock = slice
        harness.kernel.reschedule()
        let running = try #require(harness.kernel.current)
        #expect(running == 2 - first)

        // Mid-slice, the urgent process wakes, runs briefly and waits again.
        harness.kernel.platform.clock = slice + 100
        harness.kernel.notify(1, bits: 1)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 1)
        harness.receive(1, mask: 1)
        #expect(harness.kernel.current == running, "equals share the processor only after the time slice")
    }

    // The same property, seen over time: an urgent server woken every millisecond (ten times
    // per slice) hands the processor back to the same equal every time.
    @Test func equalsAreNotStarvedByAFrequentlyWokenServer() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)  // slot 0
        try harness.spawn(Program.urgent)  // slot 1
        try harness.spawn(Program.client)  // slot 2
        harness.kernel.reschedule()
        harness.receive(1, mask: 1)
        var ticks = [0: UInt64(0), 2: UInt64(0)]
        let period = KernelHarness.TestKernel.timeSlice / 10
        for step in 1...200 {  // 20 slices
            ticks[try #require(harness.kernel.current), default: 0] += period
            harness.kernel.platform.clock = UInt64(step) * period
            harness.kernel.notify(1, bits: 1)
            harness.kernel.reschedule()
            #expect(harness.kernel.current == 1)
            harness.receive(1, mask: 1)
        }
        #expect(ticks[0]! > 0 && ticks[2]! > 0, "\(ticks)")
        #expect(ticks[0]! + ticks[2]! == 200 * period)
    }

    @Test func blockedProcessesAreNeverChosen() throws {
        let harness = try KernelHarness()
        let slice = KernelHarness.TestKernel.timeSlice
        try harness.spawn(Program.urgent)  // slot 0, priority 1
        try harness.spawn(Program.client)  // slot 1, priority 4
        try harness.spawn(Program.client)  // slot 2, priority 4
        try harness.spawn(Program.lazy)  // slot 3, priority 6
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)

        harness.receive(0)
        #expect(harness.state(0) == .receiving)
        let running = try #require(harness.kernel.current)
        #expect(running == 1 || running == 2)
        harness.receive(running)
        let other = running == 1 ? 2 : 1
        #expect(harness.kernel.current == other)
        for tick in 1...4 {
            harness.kernel.platform.clock = UInt64(tick) * slice
            harness.kernel.reschedule()
            #expect(harness.kernel.current == other, "the blocked equal and the blocked urgent stay out")
        }
        harness.receive(other)
        #expect(harness.kernel.current == 3, "only the least urgent is left")
    }

    @Test func nothingReadyMeansIdle() throws {
        let harness = try KernelHarness()
        harness.kernel.reschedule()
        #expect(harness.kernel.current == nil, "no processes at all")

        try harness.spawn(Program.server)
        try harness.spawn(Program.peer)
        harness.kernel.reschedule()
        harness.receive(0, mask: 1)
        harness.receive(1, mask: 1)
        #expect(harness.kernel.current == nil)
        #expect(harness.kernel.currentFrame == nil)
        harness.kernel.platform.clock = 5 * KernelHarness.TestKernel.timeSlice
        harness.kernel.reschedule()
        #expect(harness.kernel.current == nil)

        harness.kernel.notify(1, bits: 1)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 1)
    }

    @Test func anExitingProcessIsReplaced() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)
        try harness.spawn(Program.lazy)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == 0)
        harness.syscall(0, .exit, 0)
        #expect(harness.kernel.current == 1)
        harness.syscall(1, .exit, 0)
        #expect(harness.kernel.current == nil)
    }
}

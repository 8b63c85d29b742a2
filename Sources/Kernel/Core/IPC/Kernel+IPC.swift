// Synchronous message passing (L4/Hubris style) and notifications.
//
// A `send` blocks the caller until the receiver replies. Messages carry an
// operation and two words in registers and optionally a payload that the kernel
// copies from the sender's buffer into the receiver's, and a reply payload back
// into the sender's reply buffer. Both buffers are validated when the call is
// decoded, before any state changes; the copy happens at rendezvous, when the
// kernel holds both address spaces' page tables. No message is ever queued in the
// kernel: a sender that finds its receiver busy simply waits, recorded as a bit in
// the receiver's `sendersWaiting` (a SlotSet).
//
//   client                  kernel                        server
//   send(ep, op) ------->   receiver waiting? copy in --> receive returns
//     (awaitingReply)                                     ...work...
//   send returns  <------   copy reply out  <----------- reply(client)
//
// Notifications are bits posted to a process (interrupts, timers). A `receive`
// whose mask matches a pending bit returns at once with sender `TaskID.kernel`.

import CurioABI

extension Kernel {
    mutating func send(from caller: Int, to endpoint: TaskID) throws(SyscallError) {
        guard let target = liveSlot(endpoint) else {
            let failed = endpoint.index < Self.maxTasks && tasks[endpoint.index].state == .failed
            throw failed ? .serverFailed : .deadEndpoint
        }
        guard target != caller else { throw .badArgument }
        guard tasks[caller].sendMask & (1 << UInt64(tasks[target].program)) != 0 else { throw .notPermitted }
        let issued = try issueRequest(from: caller, to: target)

        if tasks[target].state == .receiving && !tasks[target].recovering {
            do {
                try deliver(from: caller, to: target)
            } catch {
                withdrawRequest(issued, of: caller)
                throw error
            }
            block(caller, in: .awaitingReply, on: target)
            startAwaitingReply(caller)
            makeRunnable(target)
        } else {
            block(caller, in: .sending, on: target)
            tasks[target].sendersWaiting.insert(caller)
        }
    }

    /// A request of `client` was just delivered: the supervisor's view of its wait
    /// (first seen, promise) starts afresh, so the send path reads no clock.
    @inline(__always)
    private mutating func startAwaitingReply(_ client: Int) {
        tasks[client].awaitingReplySince = 0
        tasks[client].replyPromisedBy = 0
        tasks[client].promiseOverdueTicks = 0
    }

    mutating func receive(by caller: Int, notificationMask: UInt) {
        closeWindow(of: caller)
        tasks[caller].servingSince = 0
        tasks[caller].receiveCount &+= 1
        let notifications = tasks[caller].notificationsPending & notificationMask
        if notifications != 0 {
            tasks[caller].notificationsPending &= ~notifications
            deliverNotification(notifications, to: caller)
            noteServing(caller)
            return
        }
        if tasks[caller].recovering {
            tasks[caller].receiveMask = notificationMask
            block(caller, in: .receiving, on: -1)
            return
        }
        if tasks[caller].ssrPages > 0 && deliverUnbind(to: caller) {
            noteServing(caller)
            return
        }
        while let sender = mostUrgentSender(of: caller) {
            tasks[caller].sendersWaiting.remove(sender)
            do {
                try deliver(from: sender, to: caller)
                tasks[sender].state = .awaitingReply
                startAwaitingReply(sender)
                return
            } catch {
                if tasks[caller].ssrPages > 0, let index = binding(of: sender, to: tasks[caller].program) {
                    withdrawRequest(IssuedRequest(binding: index, bound: false), of: sender)
                }
                registers(sender).setResult(0, error.rawValue)
                makeRunnable(sender)
            }
        }
        tasks[caller].receiveMask = notificationMask
        block(caller, in: .receiving, on: -1)
    }

    mutating func reply(by caller: Int, to client: TaskID, code: UInt, words: (UInt, UInt),
                        payload: UserBuffer) throws(SyscallError) {
        guard let slot = liveSlot(client) else {
            if finishUnbind(by: caller, client: client) { return }
            // The client ended while we worked for it: its SSR stayed mapped until now.
            if let record = windowRecord(of: caller), record.owner == client, tasks[caller].windowOrphan < 0 {
                closeWindow(of: caller)
            }
            throw .deadEndpoint
        }
        guard tasks[slot].state == .awaitingReply, tasks[slot].partner == caller else {
            throw .notWaitingForReply
        }
        try checkReplySeal(by: caller, to: slot, code: code, words: words, length: payload.count)
        // The client's registers were checked when it called, but are read again
        // now: nothing in them may trap the kernel, whatever changed them since.
        let clientRegisters = registers(slot)
        let replyBuffer = VirtualAddress(UInt64(clientRegisters.argument(5)))
        guard UInt(payload.count) <= clientRegisters.argument(6) else {
            failReply(to: slot, by: caller, with: .messageTooLarge)
            throw .replyUndeliverable
        }
        if payload.count > 0 {
            do {
                try copyPayload(from: caller, payload.address, to: slot, replyBuffer, count: payload.count)
            } catch {
                // The server's payload was checked by this very call: the client's buffer
                // is what went bad.
                failReply(to: slot, by: caller, with: error)
                throw .replyUndeliverable
            }
        }
        clientRegisters.setResult(0, 0)
        clientRegisters.setResult(1, code)
        clientRegisters.setResult(2, words.0)
        clientRegisters.setResult(3, words.1)
        clientRegisters.setResult(4, UInt(payload.count))
        completeRequest(of: slot, by: caller)
        tasks[caller].repliedSinceRestart = true
        makeRunnable(slot)
    }

    /// A sealed reply (t0 ≠ 0) from a server with state regions must match its seal
    /// over the words and the id of the client's request in flight; the client keeps
    /// waiting if not, and the server (SSRServer) restarts and answers again.
    func checkReplySeal(by server: Int, to client: Int, code: UInt, words: (UInt, UInt),
                                length: Int) throws(SyscallError) {
        let seal = registers(server)[.t0]
        guard seal != 0, tasks[server].ssrPages > 0 else { return }
        guard let index = binding(of: client, to: tasks[server].program) else { throw .replySealBroken }
        let expected = RequestSeal.value(sender: id(of: client).rawValue, operation: code, word0: words.0,
                                         word1: words.1, length: UInt(length),
                                         requestID: tasks[client].bindings[index].lastIssuedRequest)
        guard seal == expected else { throw .replySealBroken }
    }

    /// A reply that cannot reach its client ends the client's call with the error:
    /// it would otherwise wait for ever for an answer that can never arrive. The server
    /// is told `replyUndeliverable`, not the client's error: a server that took the
    /// client's error for its own would restart, and any client could make it do so
    /// at will by calling with a reply buffer too small.
    private mutating func failReply(to client: Int, by server: Int, with error: SyscallError) {
        registers(client).setResult(0, error.rawValue)
        completeRequest(of: client, by: server)
        makeRunnable(client)
    }

    /// Posts notification bits; wakes the process if it is receiving them.
    public mutating func notify(_ slot: Int, bits: UInt) {
        tasks[slot].notificationsPending |= bits
        guard tasks[slot].state == .receiving else { return }
        let deliverable = tasks[slot].notificationsPending & tasks[slot].receiveMask
        guard deliverable != 0 else { return }
        tasks[slot].notificationsPending &= ~deliverable
        deliverNotification(deliverable, to: slot)
        noteServing(slot)
        makeRunnable(slot)
    }

    /// Copies a blocked sender's message into a receiver blocked in (or entering)
    /// `receive`, and writes the receiver's results. The sender's registers still hold
    /// its `send` arguments; the receiver's still hold its `receive` arguments.
    private mutating func deliver(from sender: Int, to receiver: Int) throws(SyscallError) {
        let senderRegisters = registers(sender)
        let receiverRegisters = registers(receiver)
        // Both register files were validated when their calls were decoded, but a
        // blocked process's saved registers may have changed since (a fault injected
        // into it, a restart): every word is range-checked again before use.
        let call = EndpointCall(rawValue: senderRegisters.argument(0))
        let length = senderRegisters.argument(4)
        guard length <= UInt(SyscallLimits.maxMessageBytes), length <= receiverRegisters.argument(1) else {
            throw .messageTooLarge
        }
        let count = Int(length)
        let destination = VirtualAddress(UInt64(receiverRegisters.argument(0)))
        if count > 0 {
            let source = VirtualAddress(UInt64(senderRegisters.argument(3)))
            try copyPayload(from: sender, source, to: receiver, destination, count: count)
        }
        receiverRegisters.setResult(0, 0)
        receiverRegisters.setResult(1, UInt(id(of: sender).rawValue))
        receiverRegisters.setResult(2, UInt(call.operation))
        receiverRegisters.setResult(3, senderRegisters.argument(1))
        receiverRegisters.setResult(4, senderRegisters.argument(2))
        receiverRegisters.setResult(5, UInt(count))
        if tasks[receiver].ssrPages > 0 {
            let request = openWindow(of: receiver, for: sender)
            receiverRegisters[.a6] = request
            receiverRegisters[.a7] = RequestSeal.value(
                sender: id(of: sender).rawValue, operation: UInt(call.operation), word0: senderRegisters.argument(1),
                word1: senderRegisters.argument(2), length: UInt(count), requestID: request)
        } else {
            receiverRegisters[.a6] = 0
        }
        noteServing(receiver)
        injectionPointAtDelivery(receiver)
    }

    /// A restartable server starts working on something: the watchdog's clock runs.
    mutating func noteServing(_ server: Int) {
        if tasks[server].restartable { watchServing(server) }
    }

    /// Starts the watchdog's count of `server`'s own running time afresh.
    @inline(__always) mutating func watchServing(_ server: Int) {
        tasks[server].servingSince = platform.now()
        tasks[server].servedTicks = 0
    }

    private mutating func deliverNotification(_ bits: UInt, to slot: Int) {
        tasks[slot].notificationsDelivered &+= 1
        let file = registers(slot)
        file.setResult(0, 0)
        file.setResult(1, UInt(TaskID.kernel.rawValue))
        file.setResult(2, bits)
        file.setResult(3, 0)
        file.setResult(4, 0)
        file.setResult(5, 0)
        file[.a6] = 0
    }

    private func copyPayload(from source: Int, _ sourceAddress: VirtualAddress, to destination: Int,
                             _ destinationAddress: VirtualAddress, count: Int) throws(SyscallError) {
        guard let from = tasks[source].addressSpace, let to = tasks[destination].addressSpace else {
            throw .badAddress
        }
        do {
            try AddressSpace.copy(from: from, sourceAddress, to: to, destinationAddress, count: count,
                                  memory: platform.memory)
        } catch {
            throw .badAddress
        }
    }

    private func mostUrgentSender(of receiver: Int) -> Int? {
        // The common case first, without copying the set.
        guard !tasks[receiver].sendersWaiting.isEmpty else { return nil }
        var waiting = tasks[receiver].sendersWaiting
        var best: Int?
        while let slot = waiting.removeFirst() {
            if best == nil || tasks[slot].priority < tasks[best!].priority { best = slot }
        }
        return best
    }
}

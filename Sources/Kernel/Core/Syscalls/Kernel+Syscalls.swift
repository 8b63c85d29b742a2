// Performing a decoded system call.
//
// `syscall(from:)` is the whole path: step the pc past `ecall` (so a call that blocks
// resumes after it), decode and validate, perform, write the status to a0,
// reschedule. A call that blocks writes its results later, when whatever it waits
// for happens (IPC rendezvous, a child's end).

import CurioABI

extension Kernel {
    public mutating func syscall(from slot: Int) {
        let file = registers(slot)
        file[.pc] &+= 4
        if answeredWithoutArguments(file, slot: slot) {
            reschedule()
            return
        }
        guard let space = tasks[slot].addressSpace else { return }
        if answeredAsIPC(file, slot: slot, space: space) {
            reschedule()
            return
        }
        let generation = tasks[slot].generation
        do {
            let request = try SyscallRequest.decode(file, space: space, memory: platform.memory)
            try perform(request, for: slot)
            // A call that blocked keeps its arguments in place for the rendezvous and
            // gets its status when it completes; one that finished succeeded now. (A
            // call that restarted its caller, `reportFailure`, left a fresh process
            // whose registers are its start-up arguments: not ours to touch.)
            if tasks[slot].state == .runnable && tasks[slot].generation == generation { file.setResult(0, 0) }
        } catch {
            if tasks[slot].generation == generation { file.setResult(0, error.rawValue) }
        }
        reschedule()
    }

    /// The IPC calls servers and clients make on every request: decoded by the same
    /// validators as the general path, without building the general request.
    @inline(__always)
    private mutating func answeredAsIPC(_ file: RegisterFile, slot: Int, space: AddressSpace) -> Bool {
        do throws(SyscallError) {
            switch file[.a7] {
            case UInt64(Syscall.send.rawValue):
                guard case .send(let raw, _, _) = try SyscallRequest.decodeSend(file, space: space,
                                                                                 memory: platform.memory)
                else { return false }
                try send(from: slot, to: EndpointCall(rawValue: raw).endpoint)
            case UInt64(Syscall.replyAndReceive.rawValue):
                let arguments = try SyscallRequest.decodeReplyAndReceive(file, space: space, memory: platform.memory)
                try replyAndReceive(by: slot, arguments)
            default:
                return false
            }
            if tasks[slot].state == .runnable { file.setResult(0, 0) }
        } catch {
            file.setResult(0, error.rawValue)
        }
        return true
    }

    private mutating func replyAndReceive(by slot: Int, _ arguments: ReplyAndReceiveArguments) throws(SyscallError) {
        do {
            try reply(by: slot, to: arguments.client, code: arguments.code,
                      words: (arguments.words.first, arguments.words.second), payload: arguments.payload)
        } catch .deadEndpoint {
            // The client died while we served it; nobody is left to answer.
        } catch .replyUndeliverable {
            // The client's call ended with the error its buffer caused; the reply is over.
        }
        // From here on this is a plain receive: put its arguments where one keeps them.
        rememberCheckedReceiveBuffer(arguments.buffer, of: slot)
        let file = registers(slot)
        file.setResult(0, UInt(arguments.buffer.address.rawValue))
        file.setResult(1, UInt(arguments.buffer.count))
        file.setResult(2, arguments.notificationMask)
        receive(by: slot, notificationMask: arguments.notificationMask)
    }

    /// The calls that take no arguments have nothing to validate; answering them
    /// here keeps them off the general decode path (which sets up every request's
    /// payload). Returns false for every other call.
    @inline(__always)
    private mutating func answeredWithoutArguments(_ file: RegisterFile, slot: Int) -> Bool {
        switch file[.a7] {
        case UInt64(Syscall.whoAmI.rawValue):
            file.setResult(1, UInt(id(of: slot).rawValue))
        case UInt64(Syscall.clock.rawValue):
            file.setResult(1, UInt(platform.now()))
        default:
            return false
        }
        file.setResult(0, 0)
        return true
    }

    @inline(__always)
    private mutating func perform(_ request: SyscallRequest, for slot: Int) throws(SyscallError) {
        let file = registers(slot)
        switch request {
        case .exit(let code):
            // A restartable server never ends of its own accord: an exit is its failure.
            guard tasks[slot].restartable else {
                end(slot, status: .exited(code: code))
                return
            }
            fault(slot, cause: .exited, address: UInt64(UInt32(bitPattern: code)))
        case .yield:
            yieldSlice()
        case .send(let raw, _, _):
            try send(from: slot, to: EndpointCall(rawValue: raw).endpoint)
        case .receive(let buffer, let mask):
            rememberCheckedReceiveBuffer(buffer, of: slot)
            receive(by: slot, notificationMask: mask)
        case .reply(let client, let code, let words, let payload):
            try reply(by: slot, to: client, code: code, words: (words.first, words.second), payload: payload)
        case .replyAndReceive(let arguments):
            try replyAndReceive(by: slot, arguments)
        case .lookup(let name):
            let program = try programIndex(named: name, in: slot)
            guard let running = firstLiveInstance(of: program) else {
                throw hasFailed(program) ? .serverFailed : .notFound
            }
            file.setResult(1, UInt(id(of: running).rawValue))
        case .spawn(let name, let arguments):
            guard tasks[slot].mayManage else { throw .notPermitted }
            let program = try programIndex(named: name, in: slot)
            var argumentBytes = InlineArray<128, UInt8>(repeating: 0)
            try copyIn(arguments, from: slot, into: &argumentBytes)
            let child = try argumentBytes.span.withUnsafeBufferPointer { bytes throws(SyscallError) in
                try spawn(program: program,
                          arguments: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[0..<arguments.count]),
                          parent: id(of: slot))
            }
            file.setResult(1, UInt(child.rawValue))
        case .kill(let id):
            guard tasks[slot].mayManage else { throw .notPermitted }
            guard let victim = liveSlot(id) else { throw .deadEndpoint }
            end(victim, status: .killed)
        case .wait(let id):
            try wait(by: slot, for: id)
        case .taskInfo(let index, let destination):
            var info = taskInfo(index, for: slot)
            try withUnsafeBytes(of: &info) { bytes throws(SyscallError) in
                try copyOut(bytes, to: destination, of: slot)
            }
        case .memoryInfo:
            file.setResult(1, UInt(frames.totalFrames))
            file.setResult(2, UInt(frames.freeFrames))
            file.setResult(3, UInt(kernelPagesInUse))
        case .irqAcknowledge(let index):
            guard index < tasks[slot].hardware.interruptCount else { throw .badArgument }
            platform.setInterrupt(tasks[slot].hardware.interrupt(index), enabled: true)
        case .setTimer(let deadline, let bits):
            tasks[slot].timerDeadline = deadline
            tasks[slot].timerBits = bits
            if deadline != 0 && deadline < (nextTimerDeadline ?? UInt64.max) { nextTimerDeadline = deadline }
        case .clock, .whoAmI:
            _ = answeredWithoutArguments(file, slot: slot)
        case .powerOff(let code):
            guard tasks[slot].mayManage else { throw .notPermitted }
            platform.requestPowerOff(code: code)
        case .ssrOpen(let client):
            try ssrOpen(by: slot, client: client)
            watchServing(slot)
        case .ssrRecoverNext(let cursor, let verdict):
            guard tasks[slot].recovering else { throw .badArgument }
            if let verdict {
                let client = tasks[slot].windowClient
                guard client >= 0 else { throw .badArgument }
                try ssrVerdict(by: slot, client: id(of: client), verdict: verdict)
            }
            ssrRecoverNext(by: slot, cursor: cursor)
        case .ssrVerdict(let client, let verdict):
            guard tasks[slot].recovering else { throw .badArgument }
            try ssrVerdict(by: slot, client: client, verdict: verdict)
        case .recoveryComplete:
            recoveryComplete(by: slot)
        case .injectFault(let name, let kind, let persistent, let trigger, let argument, let aim, let seed):
            try injectFault(by: slot, into: name, kind: kind, persistent: persistent, trigger: trigger,
                            argument: argument, aim: aim, seed: UInt64(seed))
        case .ssrInfo(let index, let destination):
            guard var info = ssrInfo(index, for: slot) else {
                file.setResult(1, 0)
                return
            }
            try withUnsafeBytes(of: &info) { bytes throws(SyscallError) in
                try copyOut(bytes, to: destination, of: slot)
            }
            file.setResult(1, 1)
        case .reportFailure:
            guard tasks[slot].restartable else { throw .notPermitted }
            fault(slot, cause: .reportedFailure, address: 0)
        case .audit:
            guard tasks[slot].mayManage else { throw .notPermitted }
            let report = audit()
            file.setResult(1, UInt(report.violations))
            file.setResult(2, UInt(report.first.rawValue))
            file.setResult(3, UInt(bitPattern: report.firstSlot))
            file.setResult(4, UInt(report.ownedFrames))
        case .physicalAddress(let address):
            file.setResult(1, UInt(try grantDMA(at: address, to: slot).rawValue))
        case .deviceWrite(let window, let offset, let value):
            try writeDevice(window: window, offset: offset, value: value, by: slot)
        case .promiseReply(let client, let deadline):
            guard tasks[slot].restartable else { throw .notPermitted }
            guard let waiting = liveSlot(client), tasks[waiting].state == .awaitingReply,
                  tasks[waiting].partner == slot else { throw .notWaitingForReply }
            tasks[waiting].replyPromisedBy = deadline
            tasks[waiting].promiseOverdueTicks = 0
            tasks[waiting].promiseReceiveMark = tasks[slot].receiveCount
        case .upgrade(let server, let version):
            guard tasks[slot].mayManage else { throw .notPermitted }
            try upgrade(try programIndex(named: server, in: slot), to: try programIndex(named: version, in: slot))
        }
    }

    /// Pages the kernel holds that no process is charged for: its tables and page tables.
    public var kernelPagesInUse: Int {
        var used = frames.totalFrames - frames.freeFrames
        for slot in 0..<Self.maxTasks { used -= tasks[slot].pagesUsed }
        return used
    }

    /// What `taskInfo` reports to `caller`; a free slot reports state `.free` and
    /// nothing else. A manager sees every process; anyone else itself, its children
    /// and the processes it may send to (to learn, say, whether a server restarted);
    /// others read as free.
    func taskInfo(_ slot: Int, for caller: Int) -> TaskInfo {
        let task = tasks[slot]
        let visible = tasks[caller].mayManage || slot == caller || task.parent == id(of: caller)
            || (task.program >= 0 && tasks[caller].sendMask & (1 << UInt64(task.program)) != 0)
        guard visible else {
            return TaskInfo(id: TaskID(index: slot, generation: 0), state: .free, priority: 0, restarts: 0,
                            pagesUsed: 0, pageBudget: 0, name: (0, 0))
        }
        var name: (UInt64, UInt64) = (0, 0)
        var codeName: (UInt64, UInt64) = (0, 0)
        if task.state != .free {
            image.program(task.program).name.withBytes { bytes in
                withUnsafeMutableBytes(of: &name) { $0.copyMemory(from: bytes) }
            }
            image.program(task.codeProgram >= 0 ? Int(task.codeProgram) : task.program).name.withBytes { bytes in
                withUnsafeMutableBytes(of: &codeName) { $0.copyMemory(from: bytes) }
            }
        }
        return TaskInfo(id: task.id(slot: slot), state: task.state, priority: task.priority,
                        restarts: task.restarts, pagesUsed: UInt32(task.pagesUsed),
                        pageBudget: UInt32(task.pageBudget), name: name, codeName: codeName)
    }

    func programIndex(named name: UserBuffer, in slot: Int) throws(SyscallError) -> Int {
        var bytes = InlineArray<16, UInt8>(repeating: 0)
        try copyIn(name, from: slot, into: &bytes)
        let index = bytes.span.withUnsafeBufferPointer { buffer in
            image.index(of: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<name.count]))
        }
        guard let index else { throw .notFound }
        return index
    }

    func hasFailed(_ program: Int) -> Bool {
        for slot in 0..<Self.maxTasks where tasks[slot].state == .failed && tasks[slot].program == program {
            return true
        }
        return false
    }

    func firstLiveInstance(of program: Int) -> Int? {
        for slot in 0..<Self.maxTasks where tasks[slot].isLive && tasks[slot].program == program {
            return slot
        }
        return nil
    }

    private func copyIn<let n: Int>(_ buffer: UserBuffer, from slot: Int,
                                    into bytes: inout InlineArray<n, UInt8>) throws(SyscallError) {
        guard buffer.count <= n else { throw .badArgument }
        guard buffer.count > 0 else { return }
        guard let space = tasks[slot].addressSpace else { throw .badAddress }
        var mutableSpan = bytes.mutableSpan
        let memory = platform.memory
        let result: Result<Void, UserAccessError> = mutableSpan.withUnsafeMutableBytes { raw in
            do throws(UserAccessError) {
                try space.copyIn(from: buffer.address, count: buffer.count, into: raw.baseAddress!, memory: memory)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure = result { throw .badAddress }
    }

    private func copyOut(_ bytes: UnsafeRawBufferPointer, to buffer: UserBuffer, of slot: Int) throws(SyscallError) {
        guard let space = tasks[slot].addressSpace, bytes.count <= buffer.count else { throw .badAddress }
        do {
            try space.copyOut(from: bytes.baseAddress!, count: bytes.count, to: buffer.address, memory: platform.memory)
        } catch {
            throw .badAddress
        }
    }
}

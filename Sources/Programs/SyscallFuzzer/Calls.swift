// What the fuzzer calls: one planned system call at a time, with its oracle.
//
// Three calls in ten are `send`, two thirds of them to the running servers this
// program may call (console, timer, fs, storage, config, pingserver) and the rest
// to forged, stale and impossible endpoints: a send to a server with state regions
// binds the caller and charges it an SSR, so these exercise binding, request ids,
// delivery, the window and — while the servers are being restarted — re-delivery
// and recovery. Half the calls to fs are requests its decoder accepts (on paths in
// a directory of the instance's own), so that they reach the disk through storage.
// The other seven in ten draw a number from 0...40 (every syscall and a stretch of
// unknown ones), or now and then any 64-bit number, and fill the registers that
// call decodes with edge values (see Vocabulary).
//
// Some calls are shaped so that the fuzzer keeps running, and say why:
//
//   - `exit` is never made; a draw of it is counted as skipped (the program's
//     `exit` option ends a run with a raw exit instead).
//   - `receive` and `replyAndReceive` wait for a message, which may never come, so
//     the kernel timer is armed first, at most half a millisecond ahead, with a bit
//     the call's mask includes.
//   - Half the calls to a real server get a reply buffer the whole 4 KiB long, so
//     that they reach the server's deeper paths; the others any buffer at all. A
//     reply that does not fit ends the client's call with `messageTooLarge`, and
//     must cost the server nothing: a server that restarted for it could be made
//     to restart by any client at will.
//   - The console never gets `read` (it holds the caller until someone types)
//     nor a payload it would print; a timer is started with a period of at most
//     2 ms so that `wait` returns; and a file lock never waits. Half the writes to
//     storage carry whole sectors of random data under a random check, which storage
//     must refuse (`badRequest`) without restarting.
//
// Instances may call each other (the program is in the system description twice,
// as `fuzzer` and `fuzzpeer`, each allowed to call the other), so that `receive`,
// `reply` and `replyAndReceive` also meet real clients, with every size of message
// and reply buffer: a message that arrives is answered within 16 calls, out of the
// planned sequence (an "answer", drawn from a generator of its own so that the
// planned calls stay a function of the seed), with a random payload, and again
// without one if the client's reply buffer is too small. An instance calls only siblings in higher
// slots than its own: two instances calling each other at once would wait for each
// other for ever, as the kernel (rightly) lets them.
//
// The same rules apply to a forged endpoint that names a server's slot, whatever
// its generation. A call that must fail — a privilege this program lacks (`manage`:
// spawn, kill, powerOff, injectFault, audit, upgrade; devices; being a server or a parent),
// a buffer in a refused place, a length past the limit, an unknown number — and
// succeeds is a violation.

import CurioUser

/// The servers this program may call, in the order of `ServerRole.names`.
enum ServerRole: Int {
    case console, timer, fileSystem, storage, config, ping, network

    static let all: [ServerRole] = [.console, .timer, .fileSystem, .storage, .config, .ping, .network]
    static let names: [StaticString] = ["console", "timer", "fs", "storage", "config", "pingserver", "net"]

    var name: StaticString { Self.names[rawValue] }
}

/// One system call about to be made, and what the kernel must answer.
struct PlannedCall {
    var number: UInt
    var registers = InlineArray<7, UInt>(repeating: 0)
    /// Why the kernel must refuse it, if it must.
    var mustFail: StaticString?
    /// Nonzero: arm the kernel timer with this bit, `wakeAfter` ticks ahead, first.
    var wakeBit: UInt = 0
    var wakeAfter: UInt64 = 0
    /// The server a send went to (its endpoint is looked up again if it has gone stale).
    var server: ServerRole?

    init(_ number: UInt) { self.number = number }

    init(_ syscall: Syscall) { number = syscall.rawValue }

    mutating func refuseIf(_ condition: Bool, _ reason: StaticString) {
        if condition && mustFail == nil { mustFail = reason }
    }

    /// A buffer argument at registers `pointer`, `length`: refused if it must be.
    mutating func buffer(_ pointer: Int, _ length: Int, _ value: (Pointer, UInt), writable: Bool, limit: Int) {
        registers[pointer] = value.0.address
        registers[length] = value.1
        refuseIf(value.1 > UInt(limit), "a length past the limit")
        refuseIf(value.0.mustRefuse(length: value.1, writable: writable),
                 writable ? "a write to a refused place" : "a read from a refused place")
    }
}

struct Options {
    var seed: UInt64 = 1
    var calls = 10_000
    /// Print every call from this one on.
    var traceFrom = Int.max
    /// End the run with a raw `exit` of a random register value.
    var endWithExit = false
    /// Syscall numbers never drawn (to work around a known defect while developing).
    var without: [UInt] = []
}

struct Planner {
    var vocabulary: Vocabulary
    let options: Options
    /// The endpoint of each `ServerRole` (0: not running).
    var endpoints = InlineArray<7, UInt32>(repeating: 0)
    /// Siblings whose messages we received and have not answered, and when (in calls).
    var clients: [(id: UInt32, since: Int)] = []
    /// Siblings a reply of ours was refused to (too large for their buffer, or their
    /// buffer gone bad): the kernel may have ended their call with the error.
    var refusedReplies: [UInt32] = []
    /// Draws for answers, so that they leave the planned sequence alone.
    var answers: Xorshift
    /// Paths under a directory of this instance's own, for structured filesystem
    /// requests: (offset, length) into `paths`; the last two are rename pairs.
    let paths: UnsafeMutableRawBufferPointer
    var pathSpans: [(offset: Int, length: Int)] = []
    /// The rename payloads are old ++ new; word 0 is the old path's length.
    let renameSplit: Int

    init(options: Options) {
        self.options = options
        vocabulary = Vocabulary(seed: options.seed)
        answers = Xorshift(seed: ~options.seed)
        let directory = "/fz\(options.seed % 100)"
        let names = [directory, directory + "/a", directory + "/b", directory + "/a/x", "/",
                     directory + "/a" + directory + "/b", directory + "/b" + directory + "/a"]
        let bytes = names.reduce(0) { $0 + $1.utf8.count }
        paths = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 8)
        var offset = 0
        for name in names {
            for byte in name.utf8 {
                paths[offset] = byte
                offset += 1
            }
            pathSpans.append((offset - name.utf8.count, name.utf8.count))
        }
        renameSplit = (directory + "/a").utf8.count
    }

    var random: Xorshift {
        get { vocabulary.random }
        _modify { yield &vocabulary.random }
    }

    mutating func lookUpServers() {
        vocabulary.servers = []
        for role in ServerRole.all {
            lookUp(role)
            if endpoints[role.rawValue] != 0 { vocabulary.servers.append(endpoints[role.rawValue]) }
        }
    }

    mutating func lookUp(_ role: ServerRole) {
        let name = role.name
        let result = System.syscall(Syscall.lookup.rawValue, UInt(bitPattern: name.utf8Start),
                                    UInt(name.utf8CodeUnitCount))
        endpoints[role.rawValue] = result.status == 0 ? UInt32(truncatingIfNeeded: result.r1) : 0
    }

    var myIndex: UInt { UInt(vocabulary.me & 0xFFFF) }

    /// The server whose slot `endpoint` names, whatever the generation.
    func role(of endpoint: UInt) -> ServerRole? {
        for role in ServerRole.all where endpoints[role.rawValue] != 0
            && UInt(endpoints[role.rawValue] & 0xFFFF) == endpoint & 0xFFFF {
            return role
        }
        return nil
    }

    mutating func plan() -> PlannedCall? {
        var call: PlannedCall
        if random.percent(30) {
            call = send()
        } else {
            let number = random.percent(97) ? random.below(41) : vocabulary.word()
            guard number != Syscall.exit.rawValue else { return nil }
            call = other(number)
        }
        return options.without.contains(call.number) ? nil : call
    }

    mutating func send() -> PlannedCall {
        var call = PlannedCall(.send)
        var endpoint = vocabulary.taskID()
        if random.percent(65), !vocabulary.servers.isEmpty {
            endpoint = UInt(vocabulary.servers[random.index(vocabulary.servers.count)])
        }
        var operation: UInt
        switch random.below(10) {
        case 0...6: operation = random.below(20)
        case 7: operation = SSRMessage.unbindOperation
        default: operation = random.below(0x1_0000)
        }
        var words = (vocabulary.word(), vocabulary.word())
        var payload = vocabulary.buffer(writable: false, limit: SyscallLimits.maxMessageBytes)
        var reply = vocabulary.buffer(writable: true, limit: SyscallLimits.maxMessageBytes)
        // The instances started together sit in the next few slots, of a low generation.
        let sibling = (myIndex + 1 + random.below(4)) | random.below(2) << 16
        if random.percent(20) { endpoint = sibling }
        var target = endpoint & 0xFFFF_FFFF
        if role(of: target) == nil && target & 0xFFFF < myIndex {
            // Only upward: a slot below ours may hold a sibling that calls us.
            target = target & ~0xFFFF | (myIndex + 1 + target % 8)
        }
        if let role = role(of: target) {
            call.server = role
            shape(for: role, operation: &operation, words: &words, payload: &payload)
            let refused = reply.1 > UInt(SyscallLimits.maxMessageBytes)
                || reply.0.mustRefuse(length: reply.1, writable: true)
            if !refused && random.percent(50) {
                reply = (Pointer.scratch(vocabulary.arena.scratch), UInt(SyscallLimits.maxMessageBytes))
            }
        }
        call.registers[0] = target | operation << 32
        if random.percent(3) {
            call.registers[0] |= (1 + random.below(0xFFFF)) << 48
            call.refuseIf(true, "send with bits above the operation")
        }
        call.registers[1] = words.0
        call.registers[2] = words.1
        call.buffer(3, 4, payload, writable: false, limit: SyscallLimits.maxMessageBytes)
        call.buffer(5, 6, reply, writable: true, limit: SyscallLimits.maxMessageBytes)
        return call
    }

    /// Keeps a request to a real server from holding us for ever or taking the
    /// server down by design (see the essay above).
    mutating func shape(for role: ServerRole, operation: inout UInt, words: inout (UInt, UInt),
                        payload: inout (Pointer, UInt)) {
        let refusedPayload = payload.1 > UInt(SyscallLimits.maxMessageBytes)
            || payload.0.mustRefuse(length: payload.1, writable: false)
        switch role {
        case .console:
            if operation == 2 { operation = 1 }
            if operation == 1 && !refusedPayload { payload.1 = 0 }
        case .timer:
            if operation == 1 {
                words.0 = random.percent(50) ? random.pick([0, 1, 99, 100, 101, 1000, 20_000]) : random.below(20_000)
            }
        case .fileSystem:
            if random.percent(50) { fileSystemRequest(operation: &operation, words: &words, payload: &payload) }
            if operation == 15 { words.0 &= ~(1 << 40) }
        case .storage:
            if operation == 2 && !refusedPayload {
                if random.percent(50) {
                    // A write storage decodes (whole sectors, a sector on a 32 MiB disk, a
                    // priority), with a random 24-bit data check over the data it carries.
                    let sectors = 1 + random.below(8)
                    payload.1 = 512 * sectors
                    words = (random.below(1 << 16), sectors | random.below(8) << 32 | random.below(1 << 24) << 40)
                } else {
                    payload.1 = 1 + 2 * random.below(256)
                }
            }
        case .network:
            networkRequest(operation: &operation, words: &words)
        case .config, .ping:
            break
        }
    }

    /// A network request that cannot hold us for ever (NetworkProtocol.swift): the
    /// receives and accepts are made nonblocking, a poll waits at most 20 ms, a connect
    /// or a ping goes nowhere it could wait on (half of the time the words stay random,
    /// for the decoder).
    mutating func networkRequest(operation: inout UInt, words: inout (UInt, UInt)) {
        if random.percent(50) { operation = 1 + random.below(16) }
        switch operation {
        case 1:
            if random.percent(70) { words = (1 + random.below(2), 0) }
        case 4, 9:
            words.0 |= 1 << 32
        case 12:
            words.0 |= 1 << 32
            if random.percent(50) { words.1 = 1 + random.below(4096) }
        case 14:
            words.0 = random.below(21)
        case 6, 10:
            // Our own address, 0.0.0.0 or a broadcast: refused at once.
            let address = random.pick([0x0A00_020F, 0, 0xFFFF_FFFF])
            words.1 = operation == 10 ? UInt(address) << 16 | (1 + random.below(65535)) : words.1
            if operation == 6 { words.0 = UInt(address) }
        default:
            break
        }
        if operation == 4 || operation == 9 || operation == 12 { words.0 &= (1 << 33) - 1 }
    }

    /// A request the filesystem's decoder accepts, more often than not, on this
    /// instance's own directory (see FileSystemProtocol.swift for the encoding).
    mutating func fileSystemRequest(operation: inout UInt, words: inout (UInt, UInt), payload: inout (Pointer, UInt)) {
        operation = 1 + random.below(17)
        let handle = random.percent(80) ? random.below(8) | (1 + random.below(6)) << 3 : vocabulary.halfWord()
        let span = pathSpans[random.index(4)]
        var path = (Pointer.scratch(UInt(bitPattern: paths.baseAddress) + UInt(span.offset)), UInt(span.length))
        let sizes: [UInt] = [0, 1, 100, 4096, 65536, 1 << 20, UInt(Int.max), UInt.max]
        words = (0, 0)
        switch operation {
        case 1:
            words = (random.below(0x80), random.below(0o1000))
        case 2, 7:
            words.0 = handle
        case 3:
            words = (handle, random.below(4097))
        case 4:
            words.0 = handle
            path = (Pointer.scratch(vocabulary.arena.scratch + random.below(4096)), random.below(512))
        case 5:
            words = (handle | random.below(4) << 32, random.pick(sizes))
        case 6, 11, 12:
            if operation == 6 && random.percent(20) {
                path = (Pointer.scratch(UInt(bitPattern: paths.baseAddress) + UInt(pathSpans[4].offset)), 1)
            }
        case 8:
            words.0 = random.pick([0, 10, 1000, 65536])
        case 9:
            words = (handle, random.pick([0, 10, 1000, 65536]))
        case 10:
            words.0 = random.below(0o1000)
        case 13:
            let pair = pathSpans[5 + random.index(2)]
            words.0 = UInt(renameSplit)
            path = (Pointer.scratch(UInt(bitPattern: paths.baseAddress) + UInt(pair.offset)), UInt(pair.length))
        case 14:
            words.0 = random.percent(70) ? 0 : random.below(4096)
        case 15:
            words.0 = handle | (1 + random.below(3)) << 32
            path = (Pointer.scratch(vocabulary.arena.scratch + random.below(4096)), 16)
        default:
            path.1 = 0
        }
        if [2, 3, 5, 7, 9].contains(operation) { path.1 = 0 }
        payload = path
    }

    /// Every call but `send`, by number.
    mutating func other(_ number: UInt) -> PlannedCall {
        var call = PlannedCall(number)
        let maxMessage = SyscallLimits.maxMessageBytes
        for index in 0..<7 { call.registers[index] = vocabulary.word() }
        switch number {
        case Syscall.receive.rawValue:
            // Half the time room for any message, so that siblings' calls get through.
            var buffer = vocabulary.buffer(writable: true, limit: maxMessage)
            if random.percent(50) {
                buffer = (Pointer.scratch(vocabulary.arena.scratch + random.below(4096)), UInt(maxMessage))
            }
            call.buffer(0, 1, buffer, writable: true, limit: maxMessage)
            wakeUp(&call)
            call.registers[2] |= call.wakeBit
        case Syscall.reply.rawValue:
            call.registers[0] = client(or: vocabulary.taskID())
            call.buffer(4, 5, vocabulary.buffer(writable: false, limit: maxMessage), writable: false, limit: maxMessage)
            call.refuseIf(!isClient(call.registers[0]), "reply to a task that does not await ours")
        case Syscall.replyAndReceive.rawValue:
            call.registers[0] = client(or: vocabulary.taskID())
            let (pointer, capacity) = vocabulary.buffer(writable: true, limit: maxMessage)
            let length = vocabulary.length(limit: maxMessage)
            call.buffer(4, 5, (pointer, length), writable: false, limit: maxMessage)
            call.buffer(4, 6, (pointer, capacity), writable: true, limit: maxMessage)
            wakeUp(&call)
            call.registers[1] = vocabulary.halfWord() | (vocabulary.halfWord() | call.wakeBit) << 32
        case Syscall.lookup.rawValue:
            nameOrBuffer(&call, 0, 1)
        case Syscall.spawn.rawValue:
            nameOrBuffer(&call, 0, 1)
            call.buffer(2, 3, vocabulary.buffer(writable: false, limit: SyscallLimits.maxArgumentBytes), writable: false,
                        limit: SyscallLimits.maxArgumentBytes)
            call.refuseIf(true, "spawn without manage")
        case Syscall.kill.rawValue:
            call.registers[0] = vocabulary.taskID()
            call.refuseIf(true, "kill without manage")
        case Syscall.wait.rawValue:
            call.registers[0] = vocabulary.taskID()
            call.refuseIf(true, "wait with no children")
        case Syscall.taskInfo.rawValue, Syscall.ssrInfo.rawValue:
            let size = UInt(number == Syscall.taskInfo.rawValue ? TaskInfo.size : SSRInfo.size)
            call.registers[0] = random.percent(70) ? random.below(330) : vocabulary.word()
            let pointer = vocabulary.pointer(writable: true, length: size)
            call.registers[1] = pointer.address
            call.registers[2] = random.percent(70) ? size : vocabulary.length(limit: Int(size))
            call.refuseIf(call.registers[2] < size, "a destination smaller than the record")
            call.refuseIf(pointer.mustRefuse(length: size, writable: true), "a write to a refused place")
            if number == Syscall.taskInfo.rawValue {
                call.refuseIf(call.registers[0] >= UInt(TaskID.slotCount), "a task slot past the table")
            }
        case Syscall.irqAcknowledge.rawValue:
            call.refuseIf(true, "acknowledging an interrupt we do not own")
        case Syscall.setTimer.rawValue:
            let now = UInt(System.clock())
            switch random.below(5) {
            case 0: call.registers[0] = 0
            case 1: call.registers[0] = now &+ random.below(200_000)
            case 2: call.registers[0] = now &- random.below(200_000)
            default: break
            }
        case Syscall.powerOff.rawValue:
            call.refuseIf(true, "powerOff without manage")
        case Syscall.ssrOpen.rawValue, Syscall.ssrVerdict.rawValue:
            call.registers[0] = vocabulary.taskID()
            if random.percent(70) { call.registers[1] = random.below(4) }
            call.refuseIf(true, "an SSR call from a non-server")
        case Syscall.ssrRecoverNext.rawValue:
            if random.percent(70) { call.registers[0] = random.below(2000) }
            if random.percent(70) { call.registers[1] = random.below(5) }
            call.refuseIf(true, "an SSR call from a non-server")
        case Syscall.injectFault.rawValue:
            nameOrBuffer(&call, 0, 1)
            if random.percent(80) {
                call.registers[2] = random.below(8)
                call.registers[3] = random.below(4)
            }
            call.refuseIf(true, "injectFault without manage")
        case Syscall.upgrade.rawValue:
            nameOrBuffer(&call, 0, 1)
            nameOrBuffer(&call, 2, 3)
            call.refuseIf(true, "upgrade without manage")
        case Syscall.reportFailure.rawValue:
            call.refuseIf(true, "reportFailure from a program that is not restartable")
        case Syscall.audit.rawValue:
            call.refuseIf(true, "audit without manage")
        case Syscall.physicalAddress.rawValue:
            call.registers[0] = vocabulary.pointer(writable: true, length: 1).address
            call.refuseIf(true, "physicalAddress without devices")
        case Syscall.promiseReply.rawValue:
            call.registers[0] = vocabulary.taskID()
            call.refuseIf(true, "promiseReply from a program that is not restartable")
        case Syscall.deviceWrite.rawValue:
            call.registers[0] = random.below(3)
            call.registers[1] = random.percent(50) ? 4 * random.below(0x2400) : random.below(0x9000)
            call.refuseIf(true, "deviceWrite without devices")
        default:
            if Syscall(rawValue: number) == nil { call.refuseIf(true, "an unknown syscall number") }
        }
        return call
    }

    /// A program name the kernel may know (exact length), or any buffer.
    mutating func nameOrBuffer(_ call: inout PlannedCall, _ pointer: Int, _ length: Int) {
        if random.percent(60) {
            let name = Edges.names[random.index(Edges.names.count)]
            call.registers[pointer] = UInt(bitPattern: name.utf8Start)
            call.registers[length] = UInt(name.utf8CodeUnitCount)
            if random.percent(10) { call.registers[length] += 1 }
        } else {
            call.buffer(pointer, length, vocabulary.buffer(writable: false, limit: SyscallLimits.maxNameBytes),
                        writable: false, limit: SyscallLimits.maxNameBytes)
        }
    }

    /// Now and then, a sibling awaiting our reply instead of `drawn`.
    mutating func client(or drawn: UInt) -> UInt {
        guard !clients.isEmpty, answers.percent(50) else { return drawn }
        return UInt(clients[answers.index(clients.count)].id)
    }

    func isClient(_ id: UInt) -> Bool { clients.contains { UInt($0.id) == id } }

    /// A reply owed to the sibling that has waited longest, once it has waited 16
    /// calls (or at once with `all`, at the end of the run), with a random payload.
    mutating func answer(at call: Int, all: Bool = false) -> PlannedCall? {
        guard let oldest = clients.first, all || call - oldest.since >= 16 || clients.count > 16 else { return nil }
        clients.removeFirst()
        var answer = PlannedCall(.reply)
        answer.registers[0] = UInt(oldest.id)
        answer.registers[1] = answers.word()
        answer.registers[2] = answers.word()
        answer.registers[3] = answers.word()
        answer.registers[4] = vocabulary.arena.scratch + answers.below(4096)
        answer.registers[5] = answers.percent(50) ? answers.below(65) : answers.below(4097)
        return answer
    }

    /// Keeps track of the siblings awaiting our reply.
    mutating func note(_ call: PlannedCall, status: UInt64, sender: UInt64, at index: Int) {
        let replied = call.number == Syscall.reply.rawValue || call.number == Syscall.replyAndReceive.rawValue
        if replied && (status == 0 || status == SyscallError.deadEndpoint.rawValue) {
            clients.removeAll { UInt($0.id) == call.registers[0] }
        }
        // Only siblings awaiting us matter, each once: the fuzzer replies to random
        // task IDs all the time, and a list of those grew until the heap ran out.
        let target = UInt32(truncatingIfNeeded: call.registers[0])
        if replied && (status == SyscallError.replyUndeliverable.rawValue || status == SyscallError.badAddress.rawValue),
           clients.contains(where: { $0.id == target }), !refusedReplies.contains(target) {
            refusedReplies.append(target)
        }
        let received = call.number == Syscall.receive.rawValue || call.number == Syscall.replyAndReceive.rawValue
        if received && status == 0 && sender != UInt64(TaskID.kernel.rawValue) {
            clients.append((UInt32(truncatingIfNeeded: sender), index))
        }
    }

    /// A call that may wait for a notification: the timer will post one soon.
    mutating func wakeUp(_ call: inout PlannedCall) {
        call.wakeBit = random.percent(50) ? KernelNotification.timerBit : 1 << random.below(31)
        call.wakeAfter = 1 + UInt64(random.below(5_000))
    }
}

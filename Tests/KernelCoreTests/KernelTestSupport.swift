// The harness the task, IPC, scheduler and syscall tests run the kernel core on.
//
// `KernelHarness` builds a whole kernel on the host: fake RAM (`MemoryTestRAM`,
// 16 MiB at 0x8000_0000), a kernel root table with the two identity gigapages the
// riscv64 boot code maps, a boot image assembled byte by byte in memory, task and
// register storage for `maxTasks` slots, and a `FakePlatform` that records what the
// kernel asks of the machine. The programs are tiny hand-written riscv64 ELF files:
// the core only loads them, it never runs them.
//
// A test plays the processes: to "make a syscall" it writes a7 and a0...a6 into the
// process's register frame and calls `kernel.syscall(from:)`, then reads a0...a5.
// User memory is reached by translating through the process's own page tables.
//
// Every process of the standard image has the same layout (text r-x, data rw- with
// a zero-filled tail, a guard page, two heap pages, two stack pages):
//
//   0x4000_0000  text, 1 page           0x4000_4000  heap, 2 pages (a0 at spawn)
//   0x4000_1000  data + bss, 2 pages    0x4000_6000  unmapped above the heap
//   0x4000_3000  guard (unmapped)       0x7FFF_E000  stack, 2 pages, up to 0x8000_0000
import CurioABI
import Testing
@testable import KernelCore

// MARK: - The fake machine

/// Console output; a class so that the platform's non-mutating `write`s can record.
final class FakeConsole {
    var text = ""
}

struct InterruptChange: Equatable, CustomStringConvertible {
    var irq: UInt32
    var enabled: Bool
    var description: String { "\(irq) \(enabled ? "on" : "off")" }
}

struct AddressSpaceFlush: Equatable {
    var asid: UInt16
    /// For each frame in `FakePlatform.framesToCheckAtFlush`: still allocated when flushed?
    var framesStillAllocated: [Bool]
}

struct FakePlatform: Platform {
    let memory: MemoryTestRAM
    /// What `now()` answers; tests advance it by hand.
    var clock: UInt64 = 0
    var interruptChanges: [InterruptChange] = []
    var flushes: [AddressSpaceFlush] = []
    var powerOffRequests: [Int] = []
    let console = FakeConsole()
    /// Reads the allocator's bitmap (which lives in fake RAM) at flush time.
    var frameProbe: FrameAllocator<MemoryTestRAM>?
    var framesToCheckAtFlush: [PhysicalAddress] = []

    var output: String { console.text }
    var flushedASIDs: [UInt16] { flushes.map(\.asid) }

    func now() -> UInt64 { clock }

    mutating func setInterrupt(_ irq: UInt32, enabled: Bool) {
        interruptChanges.append(InterruptChange(irq: irq, enabled: enabled))
    }

    mutating func flushAddressSpace(asid: UInt16) {
        let allocated = framesToCheckAtFlush.map { frameProbe?.isAllocated($0) ?? false }
        flushes.append(AddressSpaceFlush(asid: asid, framesStillAllocated: allocated))
    }

    mutating func requestPowerOff(code: Int) { powerOffRequests.append(code) }

    /// Device registers by physical address: what reads answer (0 if never set).
    /// A virtio device is one whose magic register holds "virt".
    var deviceRegisters: [UInt64: UInt32] = [:]
    /// Every device register write, with: for each frame in `framesToCheckAtFlush`,
    /// still allocated at that moment?
    var deviceWrites: [(address: UInt64, value: UInt32, framesStillAllocated: [Bool])] = []

    /// Registers read (a probe of a device that is not virtio can take a UART's byte).
    let deviceReads = FakeConsole()

    var virtioRange: Range<UInt64> { 0x1000_1000..<0x1000_9000 }

    func readDeviceRegister(_ address: UInt64) -> UInt32 {
        deviceReads.text += String(address, radix: 16) + " "
        return deviceRegisters[address] ?? 0
    }

    mutating func writeDeviceRegister(_ address: UInt64, _ value: UInt32) {
        deviceRegisters[address] = value
        deviceWrites.append((address, value, framesToCheckAtFlush.map { frameProbe?.isAllocated($0) ?? false }))
    }

    /// Makes the 4 KiB register page at `base` a virtio device.
    mutating func installVirtioDevice(at base: UInt64) { deviceRegisters[base] = 0x7472_6976 }

    /// The devices reset (Status 0 written), each with the frames check at that moment.
    var resets: [(base: UInt64, framesStillAllocated: [Bool])] {
        deviceWrites.filter { $0.address & 0xfff == 0x070 && $0.value == 0 }
            .map { ($0.address & ~0xfff, $0.framesStillAllocated) }
    }

    /// Pages flushed one at a time (SSR windows closing): address and ASID.
    var pageFlushes: [(address: UInt64, asid: UInt16)] = []
    var instructionSynchronizations = 0

    mutating func flushPage(_ address: UInt64, asid: UInt16) { pageFlushes.append((address, asid)) }

    mutating func synchronizeInstructions() { instructionSynchronizations += 1 }

    func write(_ text: StaticString) { console.text += text.description }

    func write(bytes: UnsafeRawBufferPointer) { console.text += String(decoding: bytes, as: UTF8.self) }

    func write(decimal: Int) { console.text += String(decimal) }

    /// Like the riscv64 console: "0x", lower-case digits, no leading zeros.
    func write(hex: UInt64) { console.text += "0x" + String(hex, radix: 16) }
}

// MARK: - Programs: ELF files and the boot image

/// A tiny riscv64 ET_EXEC file: text r-x at 0x4000_0000 (a few instructions) and,
/// unless `withData` is false, data rw- at 0x4000_1000 with 8 file bytes and a
/// zero-filled tail reaching into a second page.
enum KernelTestELF {
    static let textAddress: UInt64 = 0x4000_0000
    static let textMemorySize: UInt64 = 0x100
    /// addi x0,x0,0 (nop); addi a7,x0,1 (li a7, yield); ecall; jal x0,-8
    static let code: [UInt8] = [0x13, 0x00, 0x00, 0x00, 0x93, 0x08, 0x10, 0x00,
                                0x73, 0x00, 0x00, 0x00, 0x6F, 0xF0, 0x9F, 0xFF]
    static let dataAddress: UInt64 = 0x4000_1000
    static let dataMemorySize: UInt64 = 0x1800
    static let data: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]

    static let headerSize = 64
    static let programHeaderSize = 56
    /// Where the data segment's p_flags are, for tests that corrupt them.
    static let dataSegmentFlagsOffset = headerSize + programHeaderSize + 4

    static func make(entry: UInt64 = textAddress, withData: Bool = true) -> [UInt8] {
        // (flags, vaddr, memsz, contents); flags X=1 W=2 R=4.
        var segments: [(UInt32, UInt64, UInt64, [UInt8])] = [(5, textAddress, textMemorySize, code)]
        if withData { segments.append((6, dataAddress, dataMemorySize, data)) }

        var bytes = [UInt8](repeating: 0, count: headerSize + segments.count * programHeaderSize)
        bytes.replaceSubrange(0..<4, with: [0x7F, 0x45, 0x4C, 0x46])
        bytes[4] = 2  // ELFCLASS64
        bytes[5] = 1  // little-endian
        bytes[6] = 1  // EV_CURRENT
        storeLittleEndian(UInt16(2), in: &bytes, at: 16)  // ET_EXEC
        storeLittleEndian(UInt16(243), in: &bytes, at: 18)  // EM_RISCV
        storeLittleEndian(UInt32(1), in: &bytes, at: 20)
        storeLittleEndian(entry, in: &bytes, at: 24)
        storeLittleEndian(UInt64(headerSize), in: &bytes, at: 32)  // phoff
        storeLittleEndian(UInt16(headerSize), in: &bytes, at: 52)
        storeLittleEndian(UInt16(programHeaderSize), in: &bytes, at: 54)
        storeLittleEndian(UInt16(segments.count), in: &bytes, at: 56)
        for (index, (flags, address, memorySize, contents)) in segments.enumerated() {
            let header = headerSize + index * programHeaderSize
            storeLittleEndian(UInt32(1), in: &bytes, at: header)  // PT_LOAD
            storeLittleEndian(flags, in: &bytes, at: header + 4)
            storeLittleEndian(UInt64(bytes.count), in: &bytes, at: header + 8)
            storeLittleEndian(address, in: &bytes, at: header + 16)
            storeLittleEndian(address, in: &bytes, at: header + 24)
            storeLittleEndian(UInt64(contents.count), in: &bytes, at: header + 32)
            storeLittleEndian(memorySize, in: &bytes, at: header + 40)
            storeLittleEndian(UInt64(4096), in: &bytes, at: header + 48)
            bytes += contents
        }
        return bytes
    }
}

struct KernelTestSymbol: Sendable {
    var address: UInt64
    var name: String
}

struct KernelTestDevice: Sendable {
    var base: UInt64
    var size: UInt64
}

/// One program entry of a test boot image.
struct KernelTestProgram: Sendable {
    var name: String
    var priority: UInt8 = 4
    var startsAtBoot = false
    var mayManage = false
    var receivesBootArguments = false
    /// Restarted from its pristine image when it faults (flag bit 3).
    var restartable = false
    /// Holds requests only to a promised time (flag bit 4).
    var promisesReplies = false
    /// A client restarted when it faults, keeping its SSRs (flag bit 5).
    var keepsSSRs = false
    /// Pages of server state per client (entry byte 112; 0: not an SSR server).
    var ssrPages: UInt8 = 0
    /// Entry bytes 113-114 (0: no reply limit).
    var replyLimitMilliseconds: UInt16 = 0
    /// Entry byte 115: the program this one is a version of (a live upgrade's target).
    var versionOf: String?
    var memoryPages: UInt32 = 32
    var stackPages: UInt32 = 2
    var heapPages: UInt32 = 2
    /// Names of the programs this one may send to.
    var sends: [String] = []
    var interrupts: [UInt32] = []
    var devices: [KernelTestDevice] = []
    var elf: [UInt8] = KernelTestELF.make()
    var symbols: [KernelTestSymbol] = []
}

/// Indexes of the programs in `KernelTestProgram.standard`.
enum StandardProgram {
    static let manager = 0
    static let server = 1
    static let client = 2
    static let urgent = 3
    static let lazy = 4
    static let crashme = 5
    static let peer = 6
    static let driver = 7
    static let blockDriver = 8
}

extension KernelTestProgram {
    /// The image most tests use (see `StandardProgram` for the indexes).
    static let standard: [KernelTestProgram] = [
        KernelTestProgram(name: "manager", priority: 2, mayManage: true, sends: ["server"]),
        KernelTestProgram(name: "server", priority: 3),
        KernelTestProgram(name: "client", priority: 4, sends: ["server", "client", "lazy"]),
        KernelTestProgram(name: "urgent", priority: 1, sends: ["server"]),
        KernelTestProgram(name: "lazy", priority: 6, sends: ["server"]),
        KernelTestProgram(name: "crashme", priority: 4, symbols: [
            KernelTestSymbol(address: 0x4000_0000, name: "Crashme.main()"),
            KernelTestSymbol(address: 0x4000_0040, name: "Crashme.writeThroughNull()"),
            KernelTestSymbol(address: 0x4000_0080, name: "Crashme.spin()"),
        ]),
        KernelTestProgram(name: "peer", priority: 4),
        KernelTestProgram(name: "driver", priority: 3, interrupts: [10, 11],
                          devices: [KernelTestDevice(base: 0x1000_0000, size: 0x1000)]),
        KernelTestProgram(name: "blockdriver", priority: 3, restartable: true, interrupts: [8],
                          devices: [KernelTestDevice(base: 0x1000_1000, size: 0x8000)]),
    ]
}

/// Assembles a boot image in the layout `BootImage` documents: header, entries,
/// then each program's ELF, symbol records and symbol names.
enum KernelTestImage {
    static func make(_ programs: [KernelTestProgram]) -> [UInt8] {
        typealias Field = BootImageFormat.ProgramField
        let tableEnd = BootImageFormat.headerSize + programs.count * BootImageFormat.programEntrySize
        var image = [UInt8](repeating: 0, count: tableEnd)
        for (index, program) in programs.enumerated() {
            align(&image, to: 16)
            let elfOffset = image.count
            image += program.elf
            align(&image, to: 8)
            let symbolsOffset = image.count
            let symbols = program.symbols.sorted { $0.address < $1.address }
            var nameOffset = 0
            for symbol in symbols {
                var record = [UInt8](repeating: 0, count: BootImageFormat.symbolRecordSize)
                storeLittleEndian(symbol.address, in: &record, at: 0)
                storeLittleEndian(UInt32(nameOffset), in: &record, at: 8)
                storeLittleEndian(UInt32(symbol.name.utf8.count), in: &record, at: 12)
                image += record
                nameOffset += symbol.name.utf8.count
            }
            let stringsOffset = image.count
            for symbol in symbols { image += Array(symbol.name.utf8) }

            let entry = BootImageFormat.headerSize + index * BootImageFormat.programEntrySize
            let name = Array(program.name.utf8)
            image.replaceSubrange(entry..<entry + name.count, with: name)
            image[entry + Field.priority] = program.priority
            image[entry + Field.flags] = (program.startsAtBoot ? 1 : 0) | (program.mayManage ? 2 : 0)
                | (program.receivesBootArguments ? 4 : 0) | (program.restartable ? 8 : 0) | (program.promisesReplies ? 16 : 0)
                | (program.keepsSSRs ? 32 : 0)
            image[entry + Field.ssrPages] = program.ssrPages
            storeLittleEndian(program.replyLimitMilliseconds, in: &image, at: entry + Field.replyLimit)
            if let target = program.versionOf {
                image[entry + Field.versionOf] = UInt8(programs.firstIndex { $0.name == target }! + 1)
            }
            image[entry + Field.interruptCount] = UInt8(program.interrupts.count)
            image[entry + Field.deviceCount] = UInt8(program.devices.count)
            storeLittleEndian(program.memoryPages, in: &image, at: entry + Field.memoryPages)
            storeLittleEndian(program.stackPages, in: &image, at: entry + Field.stackPages)
            storeLittleEndian(program.heapPages, in: &image, at: entry + Field.heapPages)
            var sendMask: UInt64 = 0
            for target in program.sends {
                let targetIndex = programs.firstIndex { $0.name == target }!
                sendMask |= 1 << UInt64(targetIndex)
            }
            storeLittleEndian(sendMask, in: &image, at: entry + Field.sendMask)
            storeLittleEndian(UInt32(elfOffset), in: &image, at: entry + Field.elfOffset)
            storeLittleEndian(UInt32(program.elf.count), in: &image, at: entry + Field.elfSize)
            storeLittleEndian(UInt32(symbolsOffset), in: &image, at: entry + Field.symbolsOffset)
            storeLittleEndian(UInt32(symbols.count), in: &image, at: entry + Field.symbolCount)
            storeLittleEndian(UInt32(stringsOffset), in: &image, at: entry + Field.stringsOffset)
            storeLittleEndian(UInt32(nameOffset), in: &image, at: entry + Field.stringsSize)
            for (slot, irq) in program.interrupts.enumerated() {
                storeLittleEndian(UInt16(irq), in: &image, at: entry + Field.interrupts + slot * Field.interruptSize)
            }
            for (slot, device) in program.devices.enumerated() {
                storeLittleEndian(device.base, in: &image, at: entry + Field.devices + slot * Field.deviceSize)
                storeLittleEndian(device.size, in: &image, at: entry + Field.devices + slot * Field.deviceSize + 8)
            }
        }
        storeLittleEndian(BootImageFormat.magic, in: &image, at: 0)
        storeLittleEndian(BootImageFormat.version, in: &image, at: 8)
        storeLittleEndian(UInt32(programs.count), in: &image, at: 12)
        storeLittleEndian(UInt32(image.count), in: &image, at: 16)
        return image
    }

    private static func align(_ bytes: inout [UInt8], to alignment: Int) {
        bytes += [UInt8](repeating: 0, count: (alignment - bytes.count % alignment) % alignment)
    }
}

func storeLittleEndian<Value: FixedWidthInteger>(_ value: Value, in bytes: inout [UInt8], at offset: Int) {
    for index in 0..<MemoryLayout<Value>.size {
        bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
    }
}

// MARK: - The harness

/// Where things are in every process of the standard image.
enum ProcessLayout {
    static let text: UInt64 = 0x4000_0000
    static let data: UInt64 = 0x4000_1000
    static let guardPage: UInt64 = 0x4000_3000
    static let heap: UInt64 = 0x4000_4000
    static let heapEnd: UInt64 = 0x4000_6000
    static let stackTop: UInt64 = 0x8000_0000
    static let stackBase: UInt64 = 0x7FFF_E000
    /// Root, text page, two tables for 0x4000_0000, two data pages, two heap pages,
    /// one table for the stack's 2 MiB region, two stack pages.
    static let standardPages = 11
}

final class KernelHarness {
    typealias TestKernel = Kernel<FakePlatform>

    let ram: MemoryTestRAM
    let programs: [KernelTestProgram]
    var kernel: TestKernel
    /// Free frames once the kernel exists, before any process.
    let baselineFreeFrames: Int
    let kernelRoot: PhysicalAddress
    private let imageStorage: UnsafeMutableRawBufferPointer
    private let argumentStorage: UnsafeMutableRawBufferPointer?
    private let taskStorage: UnsafeMutablePointer<KernelCore.Task>
    private let registerStorage: UnsafeMutablePointer<UInt64>

    init(programs: [KernelTestProgram] = KernelTestProgram.standard, megabytes: Int = 16,
         bootArguments: String? = nil) throws {
        let ram = MemoryTestRAM(megabytes: megabytes)
        var frames = FrameAllocator(memory: ram, range: ram.range)
        let allocated = frames.allocate()
        let root = try #require(allocated)
        let kernelSpace = AddressSpace(root: root)
        let global: PageFlags = [.read, .write, .global, .accessed, .dirty]
        try kernelSpace.mapGigapage(VirtualAddress(0), to: PhysicalAddress(0), flags: global, memory: ram)
        try kernelSpace.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0x8000_0000),
                                    flags: global.union(.execute), memory: ram)

        let bytes = KernelTestImage.make(programs)
        let imageStorage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 4096)
        bytes.withUnsafeBytes { imageStorage.copyMemory(from: $0) }
        let image = try BootImage(UnsafeRawBufferPointer(imageStorage))

        var argumentStorage: UnsafeMutableRawBufferPointer?
        if let bootArguments {
            let argumentBytes = Array(bootArguments.utf8)
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: argumentBytes.count, alignment: 8)
            argumentBytes.withUnsafeBytes { storage.copyMemory(from: $0) }
            argumentStorage = storage
        }

        let taskStorage = UnsafeMutablePointer<KernelCore.Task>.allocate(capacity: TestKernel.maxTasks)
        let registerCount = TestKernel.maxTasks * RegisterFile.slots
        let registerStorage = UnsafeMutablePointer<UInt64>.allocate(capacity: registerCount)
        registerStorage.initialize(repeating: 0, count: registerCount)

        var platform = FakePlatform(memory: ram)
        platform.frameProbe = frames
        self.ram = ram
        self.programs = programs
        self.kernelRoot = root
        self.imageStorage = imageStorage
        self.argumentStorage = argumentStorage
        self.taskStorage = taskStorage
        self.registerStorage = registerStorage
        kernel = TestKernel(platform: platform, frames: frames, image: image, kernelRoot: root,
                            taskStorage: taskStorage, registerStorage: registerStorage,
                            bootArguments: argumentStorage.map { UnsafeRawBufferPointer($0) })
        baselineFreeFrames = kernel.frames.freeFrames
    }

    /// The frames the kernel holds before any process: its root table and the DMA guard.
    static let kernelOwnPages = 2

    deinit {
        taskStorage.deinitialize(count: TestKernel.maxTasks)
        taskStorage.deallocate()
        registerStorage.deallocate()
        imageStorage.deallocate()
        argumentStorage?.deallocate()
    }

    // MARK: Processes

    /// Spawns a program as the kernel does at boot (or for a parent).
    @discardableResult
    func spawn(_ program: Int, parent: TaskID? = nil, arguments: String? = nil) throws(SyscallError) -> TaskID {
        guard let arguments else { return try kernel.spawn(program: program, arguments: nil, parent: parent) }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: arguments.utf8.count, alignment: 1)
        defer { bytes.deallocate() }
        bytes.copyBytes(from: arguments.utf8)
        return try kernel.spawn(program: program, arguments: UnsafeRawBufferPointer(bytes), parent: parent)
    }

    func task(_ slot: Int) -> KernelCore.Task { kernel.task(slot) }
    func state(_ slot: Int) -> TaskState { kernel.task(slot).state }
    func id(_ slot: Int) -> TaskID { kernel.task(slot).id(slot: slot) }
    func registers(_ slot: Int) -> RegisterFile { kernel.registers(slot) }
    var freeFrames: Int { kernel.frames.freeFrames }
    var output: String { kernel.platform.output }

    /// All 32 saved registers of a slot.
    func snapshot(_ slot: Int) -> [UInt64] {
        (0..<RegisterFile.slots).map { registers(slot).base[$0] }
    }

    // MARK: System calls

    /// Enters the kernel from `slot` with a7 = `number` and a0... = `arguments` (the
    /// rest of a0...a6 zero), as `ecall` would.
    func syscall(_ slot: Int, _ number: Syscall, _ arguments: UInt...) {
        syscall(slot, rawNumber: UInt64(number.rawValue), arguments)
    }

    func syscall(_ slot: Int, rawNumber: UInt64, _ arguments: [UInt]) {
        loadArguments(slot, rawNumber: rawNumber, arguments)
        kernel.syscall(from: slot)
    }

    /// Writes a7 and a0...a6 without entering the kernel.
    func loadArguments(_ slot: Int, rawNumber: UInt64, _ arguments: [UInt]) {
        precondition(arguments.count <= 7)
        let file = registers(slot)
        for index in 0..<7 {
            file.base[Register.a0.rawValue + index] = index < arguments.count ? UInt64(arguments[index]) : 0
        }
        file[.a7] = rawNumber
    }

    /// a`n` as the process sees it.
    func result(_ slot: Int, _ n: Int) -> UInt { registers(slot).argument(n) }

    /// The status in a0: nil for success, the error otherwise.
    func error(_ slot: Int) -> SyscallError? {
        let code = registers(slot)[.a0]
        return code == 0 ? nil : SyscallError(rawValue: UInt(code))
    }

    /// send(endpoint|op, words, payload at `payloadAddress`, reply buffer).
    func send(from slot: Int, to endpoint: TaskID, operation: UInt16 = 0, words: (UInt, UInt) = (0, 0),
              payload: [UInt8] = [], payloadAddress: UInt64 = ProcessLayout.heap,
              replyBuffer: UInt64 = ProcessLayout.heap + 0x1000, replyCapacity: UInt = 0x1000) throws {
        if !payload.isEmpty { try write(payload, at: payloadAddress, in: slot) }
        syscall(slot, .send, EndpointCall(endpoint: endpoint, operation: operation).rawValue, words.0, words.1,
                UInt(payloadAddress), UInt(payload.count), UInt(replyBuffer), replyCapacity)
    }

    func receive(_ slot: Int, buffer: UInt64 = ProcessLayout.heap, capacity: UInt = 0x1000, mask: UInt = 0) {
        syscall(slot, .receive, UInt(buffer), capacity, mask)
    }

    func reply(from slot: Int, to client: TaskID, code: UInt = 0, words: (UInt, UInt) = (0, 0),
               payload: [UInt8] = [], payloadAddress: UInt64 = ProcessLayout.heap + 0x800) throws {
        if !payload.isEmpty { try write(payload, at: payloadAddress, in: slot) }
        syscall(slot, .reply, UInt(client.rawValue), code, words.0, words.1, UInt(payloadAddress),
                UInt(payload.count))
    }

    // MARK: User memory

    func write(_ bytes: [UInt8], at address: UInt64, in slot: Int) throws {
        let space = try #require(task(slot).addressSpace)
        try bytes.withUnsafeBytes { buffer in
            try space.copyOut(from: buffer.baseAddress!, count: buffer.count, to: VirtualAddress(address), memory: ram)
        }
    }

    func write(_ text: String, at address: UInt64, in slot: Int) throws {
        try write(Array(text.utf8), at: address, in: slot)
    }

    func read(_ count: Int, at address: UInt64, in slot: Int) throws -> [UInt8] {
        let space = try #require(task(slot).addressSpace)
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { buffer in
            try space.copyIn(from: VirtualAddress(address), count: count, into: buffer.baseAddress!, memory: ram)
        }
        return bytes
    }

    /// The page flags of a user address, nil if unmapped.
    func flags(at address: UInt64, in slot: Int) -> PageFlags? {
        task(slot).addressSpace?.translate(VirtualAddress(address), memory: ram)?.1
    }
}

/// Deterministic filler bytes.
func testPattern(_ count: Int, seed: Int = 1) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ seed &* 11 &+ 3) }
}

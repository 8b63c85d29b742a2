// Fuzz target `syscall`: decoding a system call from registers a process chose.
//
// The input is the register file at an `ecall`: a7 (the syscall number), then a0
// to a6, eight little-endian words (missing bytes read as zero); the seeds are
// well-formed calls of every syscall. They are decoded against one process's
// address space, built once on fake RAM the way the kernel builds them, whose map
// has every kind of place a pointer can aim at:
//
//   0x4000_0000  text, r-x user          0x4000_5000  heap, rw- user (2 pages)
//   0x4000_1000  data, rw- user (2)      0x4000_7000  a page mapped without U
//   0x4000_3000  unmapped guard          0x7FFF_E000  stack, rw- user (2 pages)
//   0x4000_4000  rodata, r-- user        0x3F_FFFF_F000  the last page of user space
//   and the kernel's gigapages at 0 and 0x8000_0000 (borrowed, no U), as in every space.
//
// Decoding must refuse or answer, never trap; and what it answers must be true:
// every buffer it hands back lies in pages the process may access in the way the
// call will use them (checked again, page by page, with `translate`), within the
// call's size limit.

import CurioABI
@testable import KernelCore

/// The process's address space, built once.
struct Process {
    let ram = FuzzRAM(megabytes: 1)
    let space: AddressSpace

    init() {
        var frames = FrameAllocator(memory: ram, range: ram.range)
        let kernelRoot = frames.allocate()!
        let kernelSpace = AddressSpace(root: kernelRoot)
        let global: PageFlags = [.read, .write, .global, .accessed, .dirty]
        try! kernelSpace.mapGigapage(VirtualAddress(0), to: PhysicalAddress(0), flags: global, memory: ram)
        try! kernelSpace.mapGigapage(VirtualAddress(0x8000_0000), to: PhysicalAddress(0x8000_0000),
                                     flags: global.union(.execute), memory: ram)
        space = AddressSpace.create(allocator: &frames, sharing: kernelRoot)!
        let user: PageFlags = [.user, .owned]
        let pages: [(UInt64, Int, PageFlags)] = [
            (0x4000_0000, 1, user.union([.read, .execute])),
            (0x4000_1000, 2, user.union([.read, .write])),
            (0x4000_4000, 1, user.union(.read)),
            (0x4000_5000, 2, user.union([.read, .write])),
            (0x4000_7000, 1, [.read, .write, .owned]),
            (0x7FFF_E000, 2, user.union([.read, .write])),
            (0x3F_FFFF_F000, 1, user.union([.read, .write])),
        ]
        for (base, count, flags) in pages {
            for page in 0..<count {
                let frame = frames.allocate()!
                _ = try! space.map(VirtualAddress(base + UInt64(page * 4096)), to: frame, flags: flags,
                                   allocator: &frames)
            }
        }
    }
}

nonisolated(unsafe) let process = Process()
nonisolated(unsafe) let registerStorage: UnsafeMutablePointer<UInt64> = {
    let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: RegisterFile.slots)
    storage.initialize(repeating: 0, count: RegisterFile.slots)
    return storage
}()

/// True if every byte of the buffer is in a user page with R (and W if `writable`).
func isReallyAccessible(_ buffer: UserBuffer, writable: Bool) -> Bool {
    guard buffer.count > 0 else { return true }
    var page = buffer.address.rawValue & ~0xFFF
    let end = buffer.address.rawValue + UInt64(buffer.count)
    while page < end {
        guard let (_, flags) = process.space.translate(VirtualAddress(page), memory: process.ram),
              flags.contains(.user), flags.contains(.read), !writable || flags.contains(.write) else { return false }
        page += 4096
    }
    return end <= 0x40_0000_0000
}

func check(_ buffer: UserBuffer, limit: Int, writable: Bool) {
    precondition(buffer.count >= 0 && buffer.count <= limit, "a buffer over its limit was accepted")
    precondition(isReallyAccessible(buffer, writable: writable), "a buffer the process cannot use was accepted")
}

/// The claims a decoded request makes about the caller's memory.
func checkBuffers(_ request: SyscallRequest) {
    let message = SyscallLimits.maxMessageBytes
    switch request {
    case .send(_, let send, let reply):
        check(send, limit: message, writable: false)
        check(reply, limit: message, writable: true)
    case .receive(let buffer, _):
        check(buffer, limit: message, writable: true)
    case .reply(_, _, _, let payload):
        check(payload, limit: message, writable: false)
    case .replyAndReceive(let arguments):
        check(arguments.payload, limit: message, writable: false)
        check(arguments.buffer, limit: message, writable: true)
    case .lookup(let name):
        check(name, limit: SyscallLimits.maxNameBytes, writable: false)
    case .spawn(let name, let arguments):
        check(name, limit: SyscallLimits.maxNameBytes, writable: false)
        check(arguments, limit: SyscallLimits.maxArgumentBytes, writable: false)
    case .taskInfo(_, let destination):
        check(destination, limit: TaskInfo.size, writable: true)
    case .injectFault(let server, _, _, _, _, _, _):
        check(server, limit: SyscallLimits.maxNameBytes, writable: false)
    case .ssrInfo(_, let destination):
        check(destination, limit: SSRInfo.size, writable: true)
    case .physicalAddress(let address):
        check(UserBuffer(address: address, count: 1), limit: 1, writable: true)
    default:
        break  // the requests that carry no user memory
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSyscall(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let registers = RegisterFile(base: registerStorage)
    registers.clear()
    registers[.a7] = input.integer(UInt64.self)
    for argument in 0..<7 { registers.base[Register.a0.rawValue + argument] = input.integer(UInt64.self) }
    if let request = try? SyscallRequest.decode(registers, space: process.space, memory: process.ram) {
        checkBuffers(request)
    }
    return 0
}
